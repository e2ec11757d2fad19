"""The memorization and bias probes compute what their docstrings promise, on models whose answers are known."""

from types import SimpleNamespace

import numpy as np
import pytest

from tinytransformer.autograd import Tensor
from tinytransformer.interpret import bias_probe, memorization_rate, window_starts
from tinytransformer.nn import Module

V = 50


class Successor(Module):
    """A 'language model' that has memorized one rule: after token t comes t + 1 (mod V)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(block_size=64, n_layer=1)

    def forward(self, idx, targets=None, caches=None):
        idx = np.asarray(idx)
        logits = np.full((idx.shape[0], 1, V), -5.0, dtype=np.float32)
        logits[np.arange(idx.shape[0]), 0, (idx[:, -1] + 1) % V] = 5.0  # (B, 1, V)
        return Tensor(logits), None


def test_memorization_is_one_on_the_memorized_text_and_zero_on_random_text():
    model = Successor()
    memorized = np.arange(2000) % V
    out = memorization_rate(model, memorized, prefix_len=8, suffix_len=12, n_windows=40)
    assert out["rate"] == 1.0 and out["token_match"] == 1.0 and out["matches"].all()
    random_text = np.random.default_rng(0).integers(0, V, 2000)
    out = memorization_rate(model, random_text, prefix_len=8, suffix_len=12, n_windows=40)
    assert out["rate"] == 0.0
    assert out["token_match"] < 0.1  # about 1/V of the tokens match by chance


def test_one_wrong_token_breaks_the_exact_match():
    text = np.arange(200) % V
    text[30::20] += 25  # every 20th token breaks the rule
    out = memorization_rate(Successor(), text, prefix_len=4, suffix_len=16, n_windows=50, batch_size=7)
    # greedy decoding continues from the prompt's last token (s + 3); any broken token from there on fails it
    broken = [any(q in range(30, 200, 20) for q in range(s + 3, s + 20)) for s in out["starts"]]
    np.testing.assert_array_equal(out["matches"], ~np.array(broken))
    assert 0 < out["rate"] < 1


def test_window_starts_are_distinct_in_range_and_seeded():
    starts = window_starts(100, 30, 20, seed=3)
    assert len(set(starts)) == 20 and starts.min() >= 0 and starts.max() <= 70
    np.testing.assert_array_equal(starts, window_starts(100, 30, 20, seed=3))
    assert len(window_starts(10, 8, 50)) == 3  # only 3 windows fit
    with pytest.raises(ValueError, match="fewer than one window"):
        window_starts(5, 8, 1)


GROUPS = {"A": ["Ann", "Bea", "Cai", "Dee", "Eve"], "B": ["Fay", "Gus", "Hal", "Ivo", "Jo"]}
TEMPLATES = ["{name} was a great director.", "I watched the film {name} made."]


def biased(sentences):
    """P(positive): 0.6, plus 0.2 when a name of group A appears, plus 0.1 for 'great'."""
    return [0.6 + 0.2 * any(n in s for n in GROUPS["A"]) + 0.1 * ("great" in s) for s in sentences]


def test_bias_probe_measures_a_known_bias():
    report = bias_probe(biased, TEMPLATES, GROUPS)
    assert report["mean_gap"] == pytest.approx(0.2) and report["max_gap"] == pytest.approx(0.2)
    first, second = report["templates"]
    assert first["group_means"] == pytest.approx({"A": 0.9, "B": 0.7})
    assert second["group_means"] == pytest.approx({"A": 0.8, "B": 0.6})
    assert first["gap"] == pytest.approx(0.2) and first["spread"] == pytest.approx(0.2)
    assert report["group_means"] == pytest.approx({"A": 0.85, "B": 0.65})
    assert report["probabilities"][TEMPLATES[0]]["Fay"] == pytest.approx(0.7)
    assert report["permutation_p"] < 0.05  # only 2 of the 252 ways to split 10 names give this gap


def test_bias_probe_without_bias_and_with_bias_in_one_template():
    fair = bias_probe(lambda s: [0.5] * len(s), TEMPLATES, GROUPS)
    assert fair["mean_gap"] == 0 and fair["max_gap"] == 0 and fair["permutation_p"] == 1.0

    def director_bias(sentences):
        return [0.7 if "director" in s and any(n in s for n in GROUPS["A"]) else 0.5 for s in sentences]

    report = bias_probe(director_bias, TEMPLATES, GROUPS)
    assert report["max_gap"] == pytest.approx(0.2) and report["mean_gap"] == pytest.approx(0.1)
    assert [t["gap"] for t in report["templates"]] == pytest.approx([0.2, 0.0])


def test_one_unusual_name_gives_a_spread_but_a_large_permutation_p():
    """One name's own sentiment moves its group's mean; re-dealing the names shows it is not the grouping."""
    report = bias_probe(lambda s: [0.9 if "Cai" in x else 0.5 for x in s], TEMPLATES, GROUPS)
    assert report["templates"][0]["spread"] == pytest.approx(0.4)
    assert report["mean_gap"] == pytest.approx(0.08)
    assert report["permutation_p"] == pytest.approx(1.0)  # every split puts Cai in some group


def test_bias_probe_rejects_bad_input():
    with pytest.raises(ValueError, match="two non-empty groups"):
        bias_probe(biased, TEMPLATES, {"A": ["Ann"]})
    with pytest.raises(ValueError, match="{name} slot"):
        bias_probe(biased, ["no slot here"], GROUPS)
    with pytest.raises(ValueError, match="returned shape"):
        bias_probe(lambda s: [0.5], TEMPLATES, GROUPS)
