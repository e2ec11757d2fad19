# %% [markdown]
# # 02 · Gradient checking
#
# Every backward pass in tinytransformer is written by hand, and a wrong sign or a
# forgotten factor does not crash: the model just trains badly. The cure is to
# compare each analytic gradient with a numerical one, computed from nothing but
# the forward pass. This lesson shows which finite difference to use, how to pick
# its step `eps`, why the check must run in float64, and how `tt.gradcheck` puts
# it all together.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt

# %% [markdown]
# ## Two finite differences
#
# Taylor's theorem says f(x + ε) = f(x) + ε f'(x) + ε²/2 f''(x) + ε³/6 f'''(x) + ...
#
# - **forward difference**: (f(x + ε) - f(x)) / ε = f'(x) + ε/2 f''(x) + ...,
#   so its truncation error shrinks like **O(ε)**;
# - **central difference**: (f(x + ε) - f(x - ε)) / (2ε) = f'(x) + ε²/6 f'''(x) + ...:
#   the even terms cancel, and the error shrinks like **O(ε²)**.
#
# So a smaller ε is better? Only down to a point: f is computed with rounding errors
# of about machine epsilon (1.1e-16 in float64) times |f|, and dividing by ε blows
# them up to about 1e-16 / ε. The total error is a V on a log-log plot.
#
# Our test function is `f(x) = tanh(x) e^x` at x = 0.7, evaluated with tinytransformer;
# its derivative, by the product rule, is `(1 - tanh²x) e^x + tanh(x) e^x`.

# %%
x0 = 0.7


def f(x, dtype=np.float64):
    """f(x) = tanh(x) e^x, computed by tinytransformer in ``dtype`` (no graph needed)."""
    with tt.no_grad():
        t = tt.Tensor(np.array(x, dtype=dtype))
        return (t.tanh() * t.exp()).item()


exact = (1 - np.tanh(x0) ** 2) * np.exp(x0) + np.tanh(x0) * np.exp(x0)
x = tt.Tensor(np.array(x0), requires_grad=True)
(x.tanh() * x.exp()).backward()
print(f"f'({x0}) by hand {exact:.15f}, by autograd {x.grad.item():.15f}")
assert abs(x.grad.item() - exact) < 1e-15

# %% [markdown]
# ## The error-vs-ε curve
#
# We sweep ε over thirteen decades and measure both errors against the exact
# derivative, in float64, and the central one again in float32.

# %%
epsilons = np.logspace(-14, -1, steps(105, 27))
forward = np.array([abs((f(x0 + e) - f(x0)) / e - exact) for e in epsilons])
central = np.array([abs((f(x0 + e) - f(x0 - e)) / (2 * e) - exact) for e in epsilons])
central32 = np.array([abs((f(x0 + e, np.float32) - f(x0 - e, np.float32)) / (2 * e) - exact) for e in epsilons])


def slope(lo, hi, errors):
    """The log-log slope of ``errors`` for lo <= eps <= hi, by least squares."""
    keep = (epsilons >= lo) & (epsilons <= hi)
    return np.polyfit(np.log10(epsilons[keep]), np.log10(errors[keep]), 1)[0]


truncation = {"forward": slope(1e-5, 1e-1, forward), "central": slope(1e-3, 1e-1, central)}
rounding = {"forward": slope(1e-14, 1e-10, forward), "central": slope(1e-14, 1e-10, central)}
best = {name: (errors.min(), epsilons[errors.argmin()]) for name, errors in
        [("forward", forward), ("central", central), ("central float32", central32)]}
for name, (error, eps) in best.items():
    print(f"{name:16s} smallest error {error:.1e} at eps = {eps:.0e}")
for name in ("forward", "central"):
    print(f"{name}: slope {truncation[name]:+.2f} where truncation dominates, {rounding[name]:+.2f} where rounding does")

# %% [markdown]
# What the curve shows, checked:
#
# - right side (large ε): slopes 1 and 2, the O(ε) and O(ε²) truncation errors;
# - left side (tiny ε): slope about -1 for both, the rounding error ~1e-16 / ε;
# - the bottom of the V: forward reaches about 1e-8 near ε ≈ √1e-16 = 1e-8, while
#   central reaches about 1e-12 near ε ≈ ∛1e-16 ≈ 5e-6, thousands of times better;
# - in float32 (machine epsilon 6e-8) even the best central difference is off by
#   a few 1e-6, too coarse to tell a right gradient from a slightly wrong one.
#   That is why `tt.gradcheck` insists on float64 and uses ε = 1e-6.

# %%
assert 0.9 < truncation["forward"] < 1.1 and 1.9 < truncation["central"] < 2.1
assert rounding["forward"] < -0.5 and rounding["central"] < -0.5
assert best["central"][0] < best["forward"][0] / 100
assert 1e-10 <= best["forward"][1] <= 1e-6 and 1e-7 <= best["central"][1] <= 1e-3
assert best["central float32"][0] > 1000 * best["central"][0]
assert central[np.abs(np.log10(epsilons) + 6).argmin()] < 1e-9  # gradcheck's eps = 1e-6 is near the bottom

fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.loglog(epsilons, forward, "o-", ms=3, label="forward difference, float64")
ax.loglog(epsilons, central, "s-", ms=3, label="central difference, float64")
ax.loglog(epsilons, central32, "^-", ms=3, alpha=0.6, label="central difference, float32")
ax.loglog(epsilons, epsilons, "k:", lw=1, label="slope 1: O(eps)")
ax.loglog(epsilons, epsilons**2, "k--", lw=1, label="slope 2: O(eps²)")
ax.loglog(epsilons, 1e-16 / epsilons, "k-.", lw=1, label="slope -1: rounding ~1e-16/eps")
ax.set_ylim(1e-14, 10)
ax.set_xlabel("eps")
ax.set_ylabel("|finite difference - f'(x)|")
ax.set_title("Error of finite differences for f(x) = tanh(x) e^x at x = 0.7")
ax.legend(fontsize=7, loc="lower left")
fig.tight_layout()
fig.savefig(figure_path("02_error_vs_eps.png"), dpi=120)
plt.close(fig)

# %% [markdown]
# ## `tt.gradcheck`: every element, every input
#
# `tt.gradcheck(fn, inputs)` runs `fn(*inputs)` once with a backward pass, then,
# for every element of every input that requires grad, nudges it by ±ε and takes
# the central difference. An output with many elements is reduced to one number
# first, `sum(out * w)` with fixed random weights `w`, so that every output element
# is checked at once. An element passes when
# `|analytic - numeric| <= atol + rtol * |numeric|` (defaults 1e-8 and 1e-6); it
# returns `True` or raises `GradcheckError` naming the worst element.

# %%
rng = np.random.default_rng(0)
x = tt.Tensor(rng.standard_normal((3, 4)), requires_grad=True)  # float64
w = tt.Tensor(rng.standard_normal((4, 5)), requires_grad=True)
assert tt.gradcheck(lambda x, w: (x @ w).gelu().log_softmax(axis=-1), [x, w])
print("gradcheck passed: matmul, gelu and log_softmax, 12 + 20 elements")

# %% [markdown]
# Now an op with a classic slip: a sigmoid whose backward forgets the `(1 - y)`
# factor of dy/dx = y (1 - y). It runs, its gradients have the right shapes, and
# gradcheck catches it at once.


# %%
class SigmoidWithBug(tt.Function):
    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + np.exp(-x))
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.y  # should be grad * ctx.y * (1 - ctx.y)


assert tt.gradcheck(lambda x: x.sigmoid(), [x])
try:
    tt.gradcheck(SigmoidWithBug.apply, [x])
    raise AssertionError("gradcheck should have caught the bug")
except tt.GradcheckError as err:
    print("GradcheckError:", err)
    assert "element" in str(err) and "analytic" in str(err) and "numeric" in str(err)

# %% [markdown]
# ## Large inputs: random directions
#
# Checking each element costs two forward passes per element: fine for a (3, 4)
# matrix, hopeless for a (768, 3072) weight. Above `max_elements` (4096 by default)
# gradcheck checks random directions `v` instead: the analytic directional
# derivative `grad · v` against `(L(x + εv) - L(x - εv)) / (2ε)`. A wrong gradient
# almost surely has a nonzero component along a random direction, and each
# direction costs just two forward passes.

# %%
big = tt.Tensor(rng.standard_normal((64, 80)), requires_grad=True)  # 5,120 elements
calls = []


def counted(x):
    calls.append(1)
    return (x.tanh() @ x.T).sum(axis=0)


assert tt.gradcheck(counted, [big], n_directions=4)
print(f"{big.size} elements checked with {len(calls)} calls of fn (1 forward + 2 per direction)")
assert len(calls) == 1 + 2 * 4
try:
    tt.gradcheck(SigmoidWithBug.apply, [big])
    raise AssertionError("the directional check should have caught the bug")
except tt.GradcheckError as err:
    assert "random direction" in str(err)

# %% [markdown]
# And the float32 lesson of the curve above, enforced:

# %%
try:
    tt.gradcheck(lambda x: x.exp(), [tt.tensor([1.0, 2.0], requires_grad=True)])
    raise AssertionError("gradcheck should refuse float32")
except TypeError as err:
    print("TypeError:", err)
    assert "float64" in str(err)

# %% [markdown]
# ## What you can do now
#
# - Check a gradient with central differences: O(ε²) truncation error against O(ε)
#   for forward ones.
# - Choose the step: too small an ε drowns in rounding error (~1e-16 / ε); in
#   float64, ε ≈ 1e-6 sits near the bottom of the V, with errors near 1e-10.
# - Run `tt.gradcheck` in float64, on every element of every input, with tight
#   tolerances, and in random directions when inputs are large. Every op and layer in
#   this library is tested this way, and against PyTorch.
#
# Exercises: `exercises/02_gradcheck.py`, checked with `tinytransformer exercises check 02`.
