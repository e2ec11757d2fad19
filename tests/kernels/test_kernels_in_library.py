"""The kernels inside the library: layers, GPT and AdamW on both backends, against finite differences and torch.

Every test here runs once per backend (``use_backend``). Spies check that the
fused Functions really call the backend's kernel. Subprocesses check the
library without Numba installed, and with Numba's JIT disabled.
"""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer import kernels
from tinytransformer.autograd.tensor import topological_order
from tinytransformer.kernels import attention_softmax, gelu, layernorm, softmax_cross_entropy, use_backend, vector_math
from tinytransformer.models import GPT, GPTConfig
from tinytransformer.nn import functional as F
from tinytransformer.reference.torch_gpt import TorchGPT

BACKENDS = ["numpy", "numba"]
TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


@pytest.fixture(params=BACKENDS)
def on_backend(request):
    with use_backend(request.param):
        yield request.param


def _f64(rng, *shape):
    return tt.Tensor(rng.standard_normal(shape), requires_grad=True)


def test_layers_gradcheck(on_backend, rng):
    x, w, b = _f64(rng, 3, 4, 6), _f64(rng, 6), _f64(rng, 6)
    assert tt.gradcheck(lambda x, w, b: F.layer_norm(x, 6, w, b), [x, w, b])
    for approximate in ("none", "tanh"):
        assert tt.gradcheck(lambda x, a=approximate: F.gelu(x * 3, approximate=a), [_f64(rng, 5, 7)])
    logits, weight = _f64(rng, 7, 5), rng.uniform(0.5, 2, 5)
    target = np.array([0, 4, -1, 2, 2, 1, 3])
    assert tt.gradcheck(lambda z: F.cross_entropy(z, target, weight, ignore_index=-1, label_smoothing=0.1), [logits])
    q, k, v = _f64(rng, 2, 2, 5, 3), _f64(rng, 2, 2, 5, 3), _f64(rng, 2, 2, 5, 3)
    padding = np.ones((2, 1, 1, 5), bool)
    padding[0, ..., :2] = False  # batch row 0: the first two queries see no key under the causal mask
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, padding & np.tri(5, dtype=bool)), [q, k, v])
    table = _f64(rng, 6, 3)
    assert tt.gradcheck(lambda t: F.embedding(np.array([[1, 5, 1], [0, 1, 2]]), t), [table])


@pytest.mark.parametrize("dtype, tol", [(np.float64, dict(rtol=1e-9, atol=1e-11)), (np.float32, dict(rtol=2e-4, atol=2e-5))])
def test_gpt_matches_torch_loss_gradients_and_adamw(on_backend, dtype, tol):
    tt.manual_seed(0)
    ours = GPT(GPTConfig(**TINY)).to(dtype)
    twin = TorchGPT.from_config(ours.config).to(torch.float64 if dtype == np.float64 else torch.float32)
    twin.load_numpy_state(ours.state_dict())
    idx = np.random.default_rng(1).integers(0, 11, (3, 8))
    targets = np.roll(idx, -1, axis=1)
    opt = tt.optim.AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    t_opt = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        opt.zero_grad()
        t_opt.zero_grad()
        logits, loss = ours(idx, targets)
        loss.backward()
        t_logits, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
        t_loss.backward()
        np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), **tol)
        assert loss.dtype == dtype and abs(loss.item() - t_loss.item()) <= tol["rtol"] * abs(t_loss.item())
        t_params = dict(twin.named_parameters())
        for name, p in ours.named_parameters():
            assert p.grad.dtype == dtype, name
            np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), err_msg=name, **tol)
        opt.step()
        t_opt.step()
    for name, p in twin.named_parameters():  # after two AdamW steps, the weights still agree
        np.testing.assert_allclose(dict(ours.named_parameters())[name].data, p.detach().numpy(), err_msg=name, **tol)


def test_gpt_gradcheck(on_backend):
    tt.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "n_layer": 1})).double()
    idx = np.random.default_rng(2).integers(0, 11, (2, 8))
    params = [p for name, p in model.named_parameters() if name.endswith(("wte.weight", "ln_1.weight", "c_attn.weight", "c_fc.bias"))]
    assert tt.gradcheck(lambda *ps: model(idx, np.roll(idx, -1, axis=1))[1], params)


def test_fused_functions_call_the_backends_kernels(on_backend, monkeypatch, rng):
    """Each fused Function reaches the kernel of the backend in use, forward and backward."""
    calls = []
    names = {layernorm: ["layer_norm_forward", "layer_norm_backward"], gelu: ["bias_gelu_forward", "bias_gelu_backward"],
             softmax_cross_entropy: ["cross_entropy_rows", "cross_entropy_grad"],
             attention_softmax: ["masked_softmax", "masked_softmax_backward"]}
    if on_backend == "numpy":  # Numba's masked_softmax kernel also recomputes the probabilities
        names[attention_softmax].append("softmax_from_lse")
    for module, kernel_names in names.items():
        for name in kernel_names:
            kernel = getattr(module, f"{name}_{on_backend}")
            monkeypatch.setattr(module, f"{name}_{on_backend}", lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    tt.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    idx = rng.integers(0, 11, (2, 8))
    model(idx, idx)[1].backward()
    assert set(calls) == {name for kernel_names in names.values() for name in kernel_names}
    if on_backend == "numba":
        assert calls.count("masked_softmax") == 2 * TINY["n_layer"]  # each layer's forward, and its backward's recompute


def test_float32_stays_float32_through_a_gpt_backward(on_backend, monkeypatch, rng):
    """No op hands a float64 gradient back (a float64 matmul in the backward costs 2-5x)."""
    seen = []

    def recording(backward):
        def spy(ctx, grad):
            grads = backward(ctx, grad)
            seen.extend(g.dtype for g in (grads if isinstance(grads, tuple) else (grads,)) if g is not None)
            return grads
        return staticmethod(spy)

    tt.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    idx = rng.integers(0, 11, (2, 8))
    loss = model(idx, idx)[1]
    for fn in {node._ctx.fn for node in topological_order(loss) if node._ctx is not None}:  # every Function in the graph
        monkeypatch.setattr(fn, "backward", recording(fn.backward))
    loss.backward()
    assert len(seen) > 50 and set(seen) == {np.dtype(np.float32)}


def test_leaf_gradients_do_not_share_memory():
    """A leaf's .grad is an array of its own: never shared with another leaf, a view of one, or the caller's."""
    x, y = tt.tensor([1.0, 2.0], requires_grad=True), tt.tensor([3.0, 4.0], requires_grad=True)
    (x + y).sum().backward()  # Add hands the same array to both parents
    x.grad *= 10  # what clip_grad_norm_ does, in place
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])
    a, b = tt.tensor([[1.0, 2.0]], requires_grad=True), tt.tensor([1.0, 2.0], requires_grad=True)
    (a.reshape(2) + b).sum().backward()  # a's gradient is a view of b's
    assert not np.shares_memory(a.grad, b.grad)
    g = np.ones(2, np.float32)
    leaf = tt.tensor([5.0, 6.0], requires_grad=True)
    leaf.backward(g)  # the caller's array must not become .grad
    assert leaf.grad is not g and not np.shares_memory(leaf.grad, g)
    w = tt.nn.Linear(3, 2)
    w(tt.tensor(np.ones((4, 3), np.float32))).sum().backward()
    np.testing.assert_allclose(w.weight.grad, np.full((2, 3), 4.0))


def test_attention_masks_and_dropout_on_both_backends(rng):
    """Float masks, boolean masks per batch row, batch broadcasting and fully masked rows give the same
    result on both backends; a fully masked query gets zeros, not NaN."""
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 4, 5), (1, 3, 6, 5), (1, 3, 6, 5)])
    bool_mask = rng.random((2, 1, 4, 6)) < 0.7
    bool_mask[1, 0, 2] = False
    float_mask = np.where(rng.random((4, 6)) < 0.8, 0.0, -np.inf).astype(np.float32)
    float_mask[3] = -np.inf
    results = {}
    for name in BACKENDS:
        with use_backend(name):
            results[name] = [F.scaled_dot_product_attention(*map(tt.Tensor, (q, k, v)), attn_mask=m).data
                             for m in (bool_mask, float_mask)]
    for fast, ref in zip(results["numba"], results["numpy"]):
        assert np.isfinite(fast).all()
        np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6)
    assert not results["numba"][0][1, :, 2].any() and not results["numba"][1][:, :, 3].any()


def test_vector_math_accuracy():
    z = np.linspace(-6, 6, 20001)
    erf = np.array([vector_math.erf(v, False) for v in z])
    assert np.abs(erf - np.array([math.erf(v) for v in z])).max() < 6e-8
    t = np.concatenate([np.linspace(-104, 0, 20001), [-1e3, -np.inf]])
    exp = np.array([vector_math.exp(v, False) for v in t])
    np.testing.assert_allclose(exp[:-2], np.exp(t[:-2]), rtol=3e-8)
    assert exp[-2] == exp[-1] == 0.0
    assert vector_math.exp(-1.5, True) == math.exp(-1.5) and vector_math.erf(0.3, True) == math.erf(0.3)
    x32 = z.astype(np.float32)
    np.testing.assert_allclose(vector_math.erf_array(x32), [math.erf(v) for v in x32], atol=4e-7)
    assert vector_math.erf_array(x32).dtype == np.float32


def test_in_blocks_crosses_block_boundaries(monkeypatch, rng):
    monkeypatch.setattr(gelu, "BLOCK", 7)
    x, y = rng.standard_normal((5, 9)), rng.standard_normal((5, 9))
    np.testing.assert_array_equal(gelu.in_blocks(lambda a, b: a * b + 1, x, y), x * y + 1)
    with use_backend("numpy"):
        np.testing.assert_allclose(kernels.gelu_forward(x), gelu.gelu_forward_numpy(x, "none"), rtol=1e-15)


def _python(code, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("TINYTRANSFORMER_BACKEND", "NUMBA_DISABLE_JIT")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**environ, **env},
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


TRAIN_STEP = """
    import numpy as np, tinytransformer as tt
    from tinytransformer.models import GPT, GPTConfig
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).double()
    opt = tt.optim.AdamW(model.parameters(), lr=1e-2)
    idx = np.random.default_rng(1).integers(0, 11, (3, 8))
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = model(idx, np.roll(idx, -1, axis=1))[1]
        loss.backward()
        opt.step()
        losses.append(loss.item())
"""


def _losses_here():
    namespace = {}
    exec(textwrap.dedent(TRAIN_STEP), namespace)
    return namespace["losses"]


def test_without_numba_installed_training_and_layers_work():
    code, out = _python("import sys\nsys.modules['numba'] = None  # `import numba` fails, as if absent\n"
                        + textwrap.dedent(TRAIN_STEP) + textwrap.dedent("""
    from tinytransformer.nn import functional as F
    x = tt.Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), requires_grad=True)
    assert tt.gradcheck(lambda x: F.gelu(F.layer_norm(x, 4)), [x])
    assert tt.gradcheck(lambda x: F.scaled_dot_product_attention(x, x, x, is_causal=True), [x])
    print(tt.get_backend(), "numba" in sys.modules and sys.modules["numba"] is not None, *losses)
    """))
    assert code == 0, out
    backend_name, numba_loaded, *losses = out.split()
    assert backend_name == "numpy" and numba_loaded == "False"
    with use_backend("numpy"):
        np.testing.assert_allclose([float(v) for v in losses], _losses_here(), rtol=1e-12)


def test_numba_backend_with_jit_disabled_runs_the_loops_as_python():
    code, out = _python(textwrap.dedent(TRAIN_STEP) + "print(tt.get_backend(), *losses)", NUMBA_DISABLE_JIT="1", TINYTRANSFORMER_BACKEND="numba")
    assert code == 0, out
    backend_name, *losses = out.split()
    assert backend_name == "numba"
    with use_backend("numpy"):
        np.testing.assert_allclose([float(v) for v in losses], _losses_here(), rtol=1e-10)


def test_tune_allocator_by_call_and_by_environment():
    probe = "import tinytransformer as tt; from tinytransformer.allocator import allocator_tuned; print(allocator_tuned())"
    code, out = _python(probe)
    assert code == 0 and out.split() == ["False"], out
    code, out = _python(probe, TINYTRANSFORMER_TUNE_ALLOCATOR="1")
    assert code == 0 and out.split() == ["True"], out
    code, out = _python("import tinytransformer as tt; print(tt.tune_allocator(), tt.allocator.allocator_tuned())")
    assert code == 0 and out.split() == ["True", "True"], out
