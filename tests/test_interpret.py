"""Attention maps, the logit lens and token attribution, each against what it must equal."""

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.autograd import Tensor
from tinytransformer.interpret import (
    attention_maps, gradient_x_input, integrated_gradients, logit_lens, residual_stream, token_attribution,
)
from tinytransformer.interpret.attention_maps import head_attention
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.models.heads import SequenceClassifier
from tinytransformer.nn import Embedding, Linear, Module

CONFIG = dict(vocab_size=23, block_size=16, n_layer=3, n_head=2, n_embd=16)


@pytest.fixture
def gpt():
    tt.manual_seed(0)
    model = GPT(GPTConfig(**CONFIG)).double()
    for p in model.parameters():  # larger than the init, so that attention is far from uniform
        p.data[...] = np.random.default_rng(p.size).normal(0, 0.5, p.shape)
    return model


IDS = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])


def test_attention_maps_shape_rows_and_causal_zeros(gpt):
    maps = attention_maps(gpt, IDS)
    T = len(IDS)
    assert maps.shape == (3, 2, T, T)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert (maps[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0).all()
    assert (maps[..., np.tril_indices(T)[0], np.tril_indices(T)[1]] > 0).all()
    assert maps.std(axis=-1).max() > 0.05  # not the uniform maps a bug would give


def test_attention_maps_are_the_ones_the_model_uses(gpt):
    """Recombining the maps with the values and c_proj gives each block's attention output exactly;
    recording them leaves the layers as they were."""
    stream = residual_stream(gpt, IDS)
    maps = attention_maps(gpt, IDS)
    for layer, block in enumerate(gpt.transformer["h"]):
        x = stream[layer]  # (1, T, C)
        B, T, C = x.shape
        v = block.attn.c_attn(block.ln_1(x)).data[..., 2 * C:]  # (1, T, C)
        v = v.reshape(T, 2, C // 2).transpose(1, 0, 2)  # (nh, T, hs)
        y = (maps[layer] @ v).transpose(1, 0, 2).reshape(1, T, C)  # heads side by side again
        expected = block.attn(block.ln_1(x)).data
        np.testing.assert_allclose(block.attn.c_proj(Tensor(y)).data, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(head_attention(block, x)[0], maps[layer])
        assert block.attn.record is False and block.attn.last_weights is None


def test_residual_stream_ends_where_the_model_does(gpt):
    stream = residual_stream(gpt, IDS)
    assert len(stream) == CONFIG["n_layer"] + 1 and stream[0].shape == (1, len(IDS), CONFIG["n_embd"])
    np.testing.assert_allclose(gpt.transformer["ln_f"](stream[-1]).data, gpt.hidden_states(IDS[None]).data,
                               rtol=1e-12, atol=1e-12)


def test_logit_lens_last_layer_is_the_models_own_logits(gpt):
    lens = logit_lens(gpt, IDS)
    T = len(IDS)
    assert lens.shape == (CONFIG["n_layer"] + 1, T, CONFIG["vocab_size"])
    all_logits, _ = gpt(IDS[None], np.zeros((1, T), dtype=np.int64))  # with targets: every position
    np.testing.assert_allclose(lens[-1], all_logits.data[0], rtol=1e-12, atol=1e-12)
    last, _ = gpt(IDS[None])  # without: the last position only
    np.testing.assert_allclose(lens[-1, -1], last.data[0, 0], rtol=1e-12, atol=1e-12)
    t = gpt.transformer
    embedded = t["wte"](IDS) + t["wpe"](np.arange(T))  # row 0 reads the embeddings alone
    np.testing.assert_allclose(lens[0], gpt.lm_head(t["ln_f"](embedded)).data, rtol=1e-12, atol=1e-12)
    assert not np.allclose(lens[0], lens[-1])


def test_inspect_functions_restore_training_mode_and_check_input(gpt):
    gpt.train()
    attention_maps(gpt, IDS)
    assert gpt.training
    with pytest.raises(ValueError, match="one non-empty sequence"):
        logit_lens(gpt, np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="block_size=16"):
        attention_maps(gpt, np.zeros(17, dtype=np.int64))
    with pytest.raises(TypeError, match="integer token ids"):
        logit_lens(gpt, np.zeros(3))


# ---------------------------------------------------------------- attribution
def test_gradient_x_input_on_a_linear_score_is_w_dot_x():
    """f(x) = sum_t w_t . x_t + b: the attribution of token t is w_t . x_t, and they add up to f(x) - b."""
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), 0.7
    scores, grad = gradient_x_input(lambda e: (e * w).sum() + b, x)
    np.testing.assert_allclose(grad, w, rtol=1e-12)
    np.testing.assert_allclose(scores, (w * x).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(scores.sum(), (w * x).sum(), rtol=1e-12)
    assert scores.shape == (5,)


def test_gradient_x_input_signs_follow_the_contributions():
    """Token 0 pushes the score up, token 1 down, token 2 not at all (a zero embedding)."""
    x = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    w = np.array([1.0, -1.0])
    scores, _ = gradient_x_input(lambda e: (e @ w).sum(), x)
    np.testing.assert_allclose(scores, [2.0, -3.0, 0.0])


def test_integrated_gradients_linear_equals_gradient_x_input_and_is_complete():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    scores, gap = integrated_gradients(lambda e: (e * w).sum(), x, steps=4)
    np.testing.assert_allclose(scores, (w * x).sum(axis=1), rtol=1e-12)
    assert gap == pytest.approx((w * x).sum(), rel=1e-12)

    def nonlinear(e):
        return ((e * w).sum(axis=1).tanh() * np.arange(1.0, 7.0)).sum()

    scores, gap = integrated_gradients(nonlinear, x, steps=200)
    assert scores.sum() == pytest.approx(gap, rel=1e-4)  # completeness: sum of attributions = f(x) - f(0)
    gxi, _ = gradient_x_input(nonlinear, x)
    assert abs(gxi.sum() - gap) > 1e-3  # which gradient x input does not have


class BagOfEmbeddings(Module):
    """logits = (sum_t wte[idx_t]) W^T + b: every token's attribution is known in closed form."""

    def __init__(self, vocab, dim, classes):
        super().__init__()
        self.wte = Embedding(vocab, dim, dtype=np.float64)
        self.score = Linear(dim, classes, dtype=np.float64)

    def forward(self, idx):
        logits = self.score(self.wte(idx).sum(axis=1))  # (1, K)
        return (logits.reshape(-1) if logits.shape[-1] == 1 else logits), None


@pytest.mark.parametrize("classes, target", [(3, 2), (3, None), (1, 0), (1, 1)])
def test_token_attribution_through_a_model_matches_the_closed_form(classes, target):
    tt.manual_seed(0)
    model = BagOfEmbeddings(11, 4, classes)
    ids = np.array([1, 5, 5, 7, 0])
    out = token_attribution(model, ids, target=target)
    W = model.score.weight.data
    x = model.wte.weight.data[ids]  # (T, C)
    if classes == 1:  # binary: the log-odds z of class 1, or -z of class 0
        expected = (x @ W[0]) * (1 if out["target"] == 1 else -1)
        assert out["probabilities"].shape == (2,)
    else:
        expected = x @ W[out["target"]]
    np.testing.assert_allclose(out["scores"], expected, rtol=1e-10)
    if target is None:
        assert out["target"] == int(np.argmax(out["probabilities"]))
    ig = token_attribution(model, ids, target=out["target"], method="integrated_gradients", steps=3)
    np.testing.assert_allclose(ig["scores"], expected, rtol=1e-10)  # linear: the two agree
    sign = -1 if classes == 1 and out["target"] == 0 else 1  # the binary log-odds of class 0 is -z
    f_0 = sign * model.score.bias.data[0 if classes == 1 else out["target"]]  # every embedding zero: the bias
    np.testing.assert_allclose([ig["baseline_score"], ig["score"]], [f_0, f_0 + expected.sum()], rtol=1e-10)
    assert model.wte.weight.grad is None and "wte" in model._modules and model.training


def test_token_attribution_on_a_frozen_classifier_restores_it():
    tt.manual_seed(0)
    model = SequenceClassifier(GPTConfig(**CONFIG), num_classes=2).freeze_body()
    model.train()
    out = token_attribution(model, IDS)
    assert out["scores"].shape == (len(IDS),) and np.abs(out["scores"]).max() > 0
    assert model.body_frozen and model.training
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="target must be in"):
        token_attribution(model, IDS, target=2)
    with pytest.raises(ValueError, match="method"):
        token_attribution(model, IDS, method="saliency")


# ------------------------------------------------------------------ the command
@pytest.fixture
def checkpoints(tmp_path):
    """A tiny pretrained GPT (as `train` saves it) and a tiny fine-tuned classifier (as `finetune` saves it)."""
    from tinytransformer.data import CharTokenizer, WordTokenizer
    from tinytransformer.training import TrainConfig, Trainer
    from tinytransformer.tasks.finetuned import save_finetuned

    text = "the cat sat on the mat. " * 20
    chars = CharTokenizer.train(text)
    ids = np.array(chars.encode(text))
    tt.manual_seed(0)
    lm = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
    Trainer(lm, ids[:400], ids[400:], TrainConfig(max_iters=1, eval_iters=1), tokenizer=chars).save(tmp_path / "lm")
    words = WordTokenizer.train(["a great film", "a dull film"])
    head = SequenceClassifier(GPTConfig(vocab_size=words.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8), 2)
    save_finetuned(tmp_path / "classifier", head, words, ["0", "1"])
    return tmp_path


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_command_writes_the_three_pngs(checkpoints, capsys):
    from tinytransformer.cli import main

    out = checkpoints / "figures"
    assert main(["inspect", "--checkpoint", str(checkpoints / "lm"), "--text", "the cat", "--out", str(out)]) == 0
    for name in ("attention.png", "logit_lens.png", "attribution.png"):
        assert is_png(out / name), name
    assert "logit-lens:" in capsys.readouterr().out
    out = checkpoints / "classifier_figures"
    assert main(["inspect", "--checkpoint", str(checkpoints / "classifier"), "--text", "a great film", "--out",
                 str(out), "--what", "attribution"]) == 0
    assert is_png(out / "attribution.png") and not (out / "attention.png").exists()


def test_inspect_command_reports_bad_input_in_one_line(checkpoints, capsys):
    from tinytransformer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--checkpoint", str(checkpoints / "lm"), "--text", "QQQ", "--out", str(checkpoints)])
    assert exit_info.value.code == 2
    assert "not in the vocabulary" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", "--checkpoint", str(checkpoints / "lm"), "--text", "the", "--what", "saliency"])
