"""The graded exercises: every solution passes its checks, every unsolved stub fails each of them (so no check
passes vacuously), a wrong answer fails with a message that names the problem, and `tinytransformer exercises
check NN` exits 0 only when every exercise passes."""

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinytransformer.cli import main
from tinytransformer.exercises import LESSONS, check_exercises, exercise_file, load_exercises, run_checks
from tinytransformer.tasks.exercises import EXIT_NOT_PASSED

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["01_autograd", "02_gradcheck", "03_layers_and_adam", "04_positions", "05_attention", "06_block", "07_bpe",
         "09_sampling"]  # the lessons link to these names


def test_the_files_are_the_ones_the_lessons_link_to():
    assert [f"{n}_{topic}" for n, (topic, _) in LESSONS.items()] == NAMES
    for name in NAMES:
        assert (ROOT / "exercises" / f"{name}.py").is_file() and (ROOT / "exercises/solutions" / f"{name}.py").is_file()
    assert all(2 <= len(checks) <= 4 for _, checks in LESSONS.values())


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_solution_passes(lesson):
    results = check_exercises(lesson, exercise_file(lesson, ROOT, solutions=True))
    assert [r.name for r in results] == [c.name for c in LESSONS[lesson][1]]
    assert all(r.passed for r in results), "\n".join(r.line() for r in results)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_stub_fails_every_check_as_not_written_yet(lesson):
    path = exercise_file(lesson, ROOT)
    results = check_exercises(lesson, path)
    assert [(r.status, r.message) for r in results] == [("todo", "not written yet")] * len(LESSONS[lesson][1])
    stubs = {node.name: node for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert list(stubs) == [c.name for c in LESSONS[lesson][1]]  # nothing else to write, in the checks' order
    for name, node in stubs.items():  # a docstring, then only `raise NotImplementedError`
        assert ast.get_docstring(node) and len(node.body) == 2 and isinstance(node.body[1], ast.Raise), name


def _solutions(lesson):
    return load_exercises(exercise_file(lesson, ROOT, solutions=True))


def _wrong_answers():
    """(lesson, exercise, a wrong answer, what the message must say)."""
    s = {n: _solutions(n) for n in LESSONS}
    yield ("01", "mul_backward", lambda g, a, b: (g * b, g * a), r"dL/da has shape \(4, 3\), expected \(3,\)|"
           r"dL/db has shape \(4, 3\), expected \(3,\)")
    yield ("01", "matmul_backward", lambda g, a, b: (g @ b.T, a.T @ g), "raised ValueError")
    yield ("01", "matmul_backward", lambda g, a, b: (g @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ g),
           r"dL/db has shape \(2, 4, 5\), expected \(4, 5\)")  # the shared weight's gradient not summed

    def recursive_order(node, out=None):
        out = [] if out is None else out
        for parent in (node._ctx.parents if node._ctx is not None else ()):
            if parent is not None:
                recursive_order(parent, out)
        if all(node is not o for o in out):
            out.append(node)
        return out

    yield "01", "topological_order", recursive_order, "RecursionError .* keep your own stack"
    yield "01", "topological_order", lambda root: s["01"].topological_order(root)[::-1], "comes before its parent"

    def forward_difference(f, x, eps=1e-6):
        grad, base = np.zeros_like(x), f(x)
        for i in np.ndindex(x.shape):
            original = x[i]
            x[i] = original + eps
            grad[i] = (f(x) - base) / eps
            x[i] = original
        return grad

    yield "02", "central_difference", forward_difference, "the numeric gradient is wrong at index"
    yield "02", "softmax_backward", lambda g, y: -s["02"].softmax_backward(g, y), \
        r"central differences disagree: gradcheck failed at input 0, element \(\d+,\): analytic"
    yield "02", "cross_entropy_backward", lambda x, t: s["02"].cross_entropy_backward(x, t) * len(t), \
        "central differences disagree"
    yield "03", "linear_backward", lambda g, x, w: s["03"].linear_backward(g, x, w)[:2], "expected a tuple of 3"
    yield "03", "adam_step", _adam_without_bias_correction, r"the new param is wrong at index .* at step t=1"
    yield "03", "adamw_step", s["03"].adam_step, "weight_decay=0.1, AdamW"  # L2 is not decoupled decay
    yield "03", "warmup_cosine_lr", lambda step, lr, w, t, r=0.1: lr * step / max(w, 1) if step < w else \
        s["03"].warmup_cosine_lr(step, lr, w, t, r), r"the lr is wrong at index \(\): got 0, expected 0.0003"
    yield "04", "embedding_backward", _assign_not_add, "central differences disagree"
    yield "04", "sinusoidal_positions", lambda n, d: s["04"].sinusoidal_positions(n, d)[:, ::-1], "the table is wrong"
    yield "04", "apply_rotary", lambda x, offset=0, base=10000.0: s["04"].apply_rotary(x, offset + 1, base), \
        "the rotated x is wrong"
    yield "05", "causal_mask", lambda n, m: np.tri(n, m, k=-1, dtype=bool), \
        r"the mask differs at 4 of 16 elements, first at index \(0, 0\): got False, expected True"
    yield "05", "padding_mask", lambda lengths: np.arange(max(lengths))[None, :] > np.asarray(lengths)[:, None], \
        "the mask differs"
    yield "05", "attention", lambda q, k, v, attn_mask=None, key_padding_mask=None: _attention_with_nan(
        q, k, v, attn_mask, key_padding_mask), "NaN, first at index \\(0, 0, 0\\): a row whose keys are all masked"
    yield "06", "layer_norm", lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdims=True)) / np.sqrt(
        x.var(-1, ddof=min(1, x.shape[-1] - 1), keepdims=True) + eps) * w + b, "y is wrong at index"
    yield "06", "layer_norm_backward", lambda g, x, w, eps=1e-5: (g * w, *s["06"].layer_norm_backward(g, x, w, eps)[1:]), \
        "central differences disagree"
    yield "06", "multi_head_attention", lambda x, wi, bi, wo, bo, nh, causal=False: s["06"].multi_head_attention(
        x, wi, bi, wo, bo, nh, causal=not causal), "the output is wrong at index"
    yield "07", "most_frequent_pair", lambda ids: max(zip(ids, ids[1:]), key=list(zip(ids, ids[1:])).count,
                                                      default=None), "a tie goes to the smaller pair"
    yield "07", "merge_pair", lambda ids, pair, new: [new if (a, b) == pair else a for a, b in zip(ids, ids[1:] + [None])], \
        "the merged ids differ first at item"
    yield "07", "train_bpe", lambda text, n: s["07"].train_bpe(text, n)[:-1], "the merges differ"
    yield "07", "encode", lambda text, merges: list(text.encode()), "the ids differ first at item"
    yield "09", "top_k_filter", lambda z, k: np.where(z < np.sort(z, -1)[:, -k, None], -1e9, z), \
        "got -1e\\+09, expected -inf"
    yield "09", "top_p_filter", lambda p, top: s["09"].top_p_filter(p, top) * p.sum(), "filtered probabilities"
    yield "09", "sample_next_token", lambda z, t, k, p, rng: s["09"].sample_next_token(z, t, k, p,
                                                                                        np.random.default_rng(99)), \
        "the token ids differ"
    yield "09", "sample_next_token", lambda z, t, k, p, rng: None, "is None"


def _adam_without_bias_correction(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * param
    m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad * grad
    return param - lr * m / (np.sqrt(v) + eps), m, v


def _assign_not_add(grad, ids, num):
    out = np.zeros((num, grad.shape[-1]))
    out[ids.reshape(-1)] += grad.reshape(-1, grad.shape[-1])  # a repeated id keeps only one of its rows
    return out


def _attention_with_nan(q, k, v, attn_mask, key_padding_mask):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    keep = np.ones(scores.shape, dtype=bool)
    if attn_mask is not None:
        keep &= attn_mask
    if key_padding_mask is not None:
        keep &= ~key_padding_mask[:, None, :]
    scores = np.where(keep, scores, -np.inf)
    with np.errstate(invalid="ignore"):
        p = np.exp(scores - scores.max(-1, keepdims=True))
        return p / p.sum(-1, keepdims=True) @ v


@pytest.mark.parametrize("lesson, name, wrong, message", [pytest.param(*case, id=f"{case[0]}-{case[1]}-{i}")
                                                          for i, case in enumerate(_wrong_answers())])
def test_a_wrong_answer_fails_with_a_message_naming_the_problem(lesson, name, wrong, message):
    [result] = run_checks(SimpleNamespace(**{name: wrong}), [c for c in LESSONS[lesson][1] if c.name == name])
    assert result.status == "fail" and re.search(message, result.message), result.message


@pytest.mark.parametrize("lesson", LESSONS)
def test_an_answer_of_none_fails_every_check(lesson):
    checks = LESSONS[lesson][1]
    results = run_checks(SimpleNamespace(**{c.name: lambda *args, **kwargs: None for c in checks}), checks)
    assert all(r.status == "fail" for r in results), "\n".join(r.line() for r in results)


def test_an_error_in_the_learners_code_is_named_with_its_line(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n\n\ndef causal_mask(n, m):\n    return np.zeros((n, m), bool)[n]\n")
    results = check_exercises("05", path)
    assert results[0].status == "fail"
    assert "raised IndexError" in results[0].message and f"{path}, line 5" in results[0].message
    assert [r.message for r in results[1:]] == ["the file has no function named padding_mask",
                                                "the file has no function named attention"]


def test_the_command_exits_0_only_when_every_exercise_passes(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    assert main(["exercises", "check", "5", "--solutions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "exercises/solutions/05_attention.py: lesson 05"
    assert out[1:] == ["  PASS  causal_mask", "  PASS  padding_mask", "  PASS  attention", "3 of 3 exercises pass"]
    with pytest.raises(SystemExit) as exit_:
        main(["exercises", "check", "05"])
    assert exit_.value.code == EXIT_NOT_PASSED == 3
    assert "  TODO  causal_mask: not written yet" in capsys.readouterr().out
    partly = tmp_path / "partly.py"
    partly.write_text((ROOT / "exercises/solutions/05_attention.py").read_text().replace("j <= i", "j < i"))
    with pytest.raises(SystemExit) as exit_:
        main(["exercises", "check", "05", "--file", str(partly)])
    assert exit_.value.code == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  FAIL  causal_mask: the mask differs") and lines[2:] == [
        "  PASS  padding_mask", "  PASS  attention", "2 of 3 exercises pass (exit status 3 until all do)"]


@pytest.mark.parametrize("argv, where, fragment", [
    (["exercises", "check", "08"], ROOT, "lesson '08' has no exercises; the lessons with exercises are 01, 02"),
    (["exercises", "check", "01"], "tmp", "exercises/01_autograd.py: No such file (run this from the project root"),
    (["exercises", "check", "01", "--file", "missing.py"], ROOT, "--file missing.py: No such file"),
    (["exercises", "check", "01", "--file", "broken.py"], "tmp", "broken.py does not load: raised SyntaxError"),
    (["exercises", "check", "01", "--solutions", "--file", "x.py"], ROOT, "either --solutions or --file"),
    (["exercises", "list", "01"], ROOT, "invalid choice: 'list'"),
])
def test_a_missing_or_broken_file_is_a_user_error(argv, where, fragment, monkeypatch, capsys, tmp_path):
    (tmp_path / "broken.py").write_text("def mul_backward(grad, a, b):\n    return grad *\n")
    monkeypatch.chdir(tmp_path if where == "tmp" else where)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert fragment in capsys.readouterr().err
