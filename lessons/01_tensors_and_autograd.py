# %% [markdown]
# # 01 · Tensors and autograd
#
# Training a network needs the derivative of one number, the loss, with respect to
# every weight: millions of derivatives. Reverse-mode automatic differentiation gets
# all of them in one backward sweep that costs about as much as the forward pass.
# This lesson opens up tinytransformer's engine: the computational graph, the chain
# rule applied node by node, why the sweep must follow a topological order, and what
# broadcasting does to gradients. Every claim is checked with `assert`.

# %%
import math
import sys

import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
from tinytransformer.autograd.tensor import topological_order

# %% [markdown]
# ## A tensor is an array that remembers where it came from
#
# `tt.tensor` holds a NumPy array in `.data`. Python floats become float32, the
# default; pass float64 arrays (or `dtype=np.float64`) when you want double precision.
# When an input has `requires_grad=True`, every op records a node in a graph: which
# op made the result, from which inputs, and what it saved for the way back.
#
# Our example is a tiny neuron with a twist, `L = tanh(a*b + c) * a`: the input `a`
# is used twice.

# %%
a = tt.tensor(0.5, requires_grad=True)
b = tt.tensor(-1.5, requires_grad=True)
c = tt.tensor(0.25, requires_grad=True)
e = a * b
d = e + c
t = d.tanh()
L = t * a
names = {id(a): "a", id(b): "b", id(c): "c", id(e): "e", id(d): "d", id(t): "t", id(L): "L"}
print(L, L.dtype)
assert L.dtype == np.float32 and L.requires_grad and a.is_leaf and not L.is_leaf


# %% [markdown]
# Each result keeps a context (`_ctx`, internal, but worth a look): the `Function`
# that made it and its parents. Walking the parents from `L` prints the graph. Note
# that `a` shows up twice: it is one node with two arrows leaving it.


# %%
def show(node, depth=0):
    """Print the graph that ends in ``node``, one line per node, parents indented."""
    op = node._ctx.fn.__name__ if node._ctx is not None else "leaf"
    print("    " * depth + f"{names[id(node)]} = {node.item():+.4f}  ({op})")
    if node._ctx is not None:
        for parent in node._ctx.parents:
            show(parent, depth + 1)


show(L)
assert L._ctx.fn.__name__ == "Mul" and L._ctx.parents[0] is t and L._ctx.parents[1] is a

# %% [markdown]
# ## The chain rule, one node at a time
#
# Going backward from `L`, each node turns "how much does L change when I change"
# (its gradient) into the same quantity for its parents, using only its own local
# derivative:
#
# | node | local derivatives | gradient passed back |
# |---|---|---|
# | `L = t * a` | dL/dt = a, dL/da = t | `gt = a`, `ga1 = t` |
# | `t = tanh(d)` | dt/dd = 1 - t² | `gd = gt * (1 - t²)` |
# | `d = e + c` | dd/de = dd/dc = 1 | `ge = gd`, `gc = gd` |
# | `e = a * b` | de/da = b, de/db = a | `ga2 = ge * b`, `gb = ge * a` |
#
# `a` receives gradient along two paths, and its gradient is their sum:
# dL/da = `ga1 + ga2`. We do it by hand, then let `backward()` do it.

# %%
av, bv, cv = a.item(), b.item(), c.item()
tv = math.tanh(av * bv + cv)
gt = av
gd = gt * (1 - tv**2)
ge, gc = gd, gd
ga = tv + ge * bv  # both paths into a
gb = ge * av

L.backward()
print(f"by hand : dL/da={ga:+.6f}  dL/db={gb:+.6f}  dL/dc={gc:+.6f}")
print(f"autograd: dL/da={a.grad.item():+.6f}  dL/db={b.grad.item():+.6f}  dL/dc={c.grad.item():+.6f}")
assert np.allclose([a.grad.item(), b.grad.item(), c.grad.item()], [ga, gb, gc], rtol=1e-6)  # float32
assert e.grad is None  # only leaves keep .grad (call e.retain_grad() to keep an intermediate one)

# %% [markdown]
# ## Why a topological order
#
# A node may pass its gradient on only once it is *complete*: once every path from
# `L` into it has delivered its share. Here `a` must wait for both `L = t * a` and
# `e = a * b`. Sorting the graph so that every node comes after its parents (a
# topological order) and walking it backwards guarantees that: each node's backward
# runs exactly once, with its full gradient.

# %%
order = topological_order(L)
print("topological order:", [names[id(n)] for n in order])
print("backward visits:  ", [names[id(n)] for n in reversed(order)])
position = {id(n): i for i, n in enumerate(order)}
for node in order:
    parents = node._ctx.parents if node._ctx is not None else ()
    assert all(position[id(p)] < position[id(node)] for p in parents if p is not None)


# %% [markdown]
# Without the order you could still push each gradient down every *path*
# separately, recursively: sums are sums, so the answer is right. But the number
# of paths doubles with every node that is used twice. Below, each of `n` layers
# uses the previous value twice, so there are 2^n paths but only 3n + 1 nodes.


# %%
def backward_along_every_path(node, grad, visits):
    """Reverse mode without a topological order: one recursive visit per path."""
    visits.append(node)
    if node._ctx is None:
        node.grad = grad if node.grad is None else node.grad + grad
        return
    grads = node._ctx.fn.backward(node._ctx, grad)
    for parent, g in zip(node._ctx.parents, grads if isinstance(grads, tuple) else (grads,)):
        if parent is not None:
            backward_along_every_path(parent, g, visits)


n = 10
x = tt.tensor(0.3, requires_grad=True)
h = x
for _ in range(n):
    h = h.tanh() + h * 0.5  # h is used twice
visits = []
backward_along_every_path(h, np.ones((), dtype=np.float32), visits)
per_path = x.grad.copy()
x.zero_grad()
h.backward()
print(f"{n} layers: {len(visits)} visits along every path, {len(topological_order(h))} nodes in topological order")
assert np.allclose(per_path, x.grad, rtol=1e-5)
assert len(visits) > 2**n and len(topological_order(h)) == 3 * n + 1

# %% [markdown]
# The sort itself must not recurse either: Python stops at about 1,000 nested calls,
# and a recurrent net or a long training graph easily has more nodes than that.
# `topological_order` keeps its own stack instead, so a chain of 100,000 ops is fine.
# Each step multiplies by 1.00001, so the gradient is 1.00001^N (about e for N = 100,000).

# %%
N = steps(100_000, 20_000)
x = tt.tensor(1.0, dtype=np.float64, requires_grad=True)
y = x
for _ in range(N):
    y = y * 1.00001
y.backward()
print(f"chain of {N} multiplications: dy/dx = {x.grad.item():.6f}, expected {1.00001**N:.6f}")
assert N > 10 * sys.getrecursionlimit()
assert np.isclose(x.grad.item(), 1.00001**N, rtol=1e-9)

# %% [markdown]
# ## Broadcasting gradients: a copied value collects all its copies' gradients
#
# NumPy broadcasting lets `X + bias` add a `(3,)` bias to every row of a `(4, 3)`
# matrix. Forward, the bias is copied 4 times; backward, each copy receives a
# gradient, and the bias's gradient is their **sum**. The same holds for size-1 axes
# (a `(4, 1)` column copied across columns) and for a scalar. So every gradient has
# exactly its input's shape, summed over the axes that broadcasting stretched.

# %%
rng = np.random.default_rng(0)
X = tt.Tensor(rng.standard_normal((4, 3)), requires_grad=True)  # (4, 3)
bias = tt.Tensor(rng.standard_normal(3), requires_grad=True)  # (3,)    copied over rows
column = tt.Tensor(rng.standard_normal((4, 1)), requires_grad=True)  # (4, 1) copied over columns
scale = tt.Tensor(np.array(2.0), requires_grad=True)  # ()      copied everywhere
Y = (X * column + bias) * scale  # (4, 3)
Y.sum().backward()
for name, leaf in [("X", X), ("bias", bias), ("column", column), ("scale", scale)]:
    print(f"{name:6s} shape {leaf.shape}, grad shape {leaf.grad.shape}")
    assert leaf.grad.shape == leaf.shape
assert np.allclose(bias.grad, 4 * scale.data)  # 4 rows, each contributes `scale`
assert np.allclose(column.grad, scale.data * X.data.sum(axis=1, keepdims=True))
assert np.allclose(scale.grad, (X.data * column.data + bias.data).sum())
assert np.allclose(X.grad, scale.data * np.broadcast_to(column.data, (4, 3)))

# %% [markdown]
# ## A derivative you can plot
#
# For an elementwise function, `f(x).sum().backward()` puts f'(x_i) in `x.grad[i]`:
# each output depends on its own input only. Here is GELU, `x Φ(x)`, the activation of
# GPT-2, with its derivative from autograd next to the one derived by hand,
# `Φ(x) + x φ(x)` (φ the standard normal density, Φ its integral).

# %%
xs = np.linspace(-4, 4, 201)
x = tt.Tensor(xs, requires_grad=True)  # float64
y = x.gelu()
y.sum().backward()
Phi = 0.5 * (1 + np.vectorize(math.erf)(xs / math.sqrt(2)))
phi = np.exp(-0.5 * xs**2) / math.sqrt(2 * math.pi)
by_hand = Phi + xs * phi
print(f"max |autograd - by hand| = {np.abs(x.grad - by_hand).max():.2e}")
assert np.allclose(y.data, xs * Phi, rtol=0, atol=1e-14)
assert np.allclose(x.grad, by_hand, rtol=0, atol=1e-14)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(xs, y.data, label="GELU(x)")
ax.plot(xs, x.grad, label="d GELU / dx (autograd)")
ax.plot(xs[::10], by_hand[::10], "o", mfc="none", label="Φ(x) + x φ(x) (by hand)")
ax.axhline(0, color="gray", lw=0.5)
ax.set_xlabel("x")
ax.legend()
ax.set_title("A function and its derivative from backward()")
fig.tight_layout()
fig.savefig(figure_path("01_gelu_and_its_derivative.png"), dpi=120)
plt.close(fig)

# %% [markdown]
# ## Switching the graph off, and its lifetime
#
# Evaluation needs no gradients, so `with tt.no_grad():` computes values without
# recording nodes. `x.detach()` is the same array cut from the graph: a constant.
# After `backward()` the buffers that nodes saved are freed, so a second
# `backward()` through the same graph is an error unless the first one was called
# with `retain_graph=True` (then the gradients add up: twice the first).

# %%
w = tt.tensor([1.0, -2.0], requires_grad=True)
with tt.no_grad():
    assert not (w * 3).requires_grad
assert not w.detach().requires_grad and w.detach().data is w.data

loss = (w.exp() * w).sum()
loss.backward(retain_graph=True)
first = w.grad.copy()
loss.backward()
assert np.allclose(w.grad, 2 * first)
try:
    loss.backward()
    raise AssertionError("a third backward should fail: the graph was freed")
except RuntimeError as err:
    print("RuntimeError:", err)
    assert "retain_graph=True" in str(err)

# %% [markdown]
# ## What you can do now
#
# - Read the graph that ops on tensors with `requires_grad` build, and know that
#   `backward()` walks it once, from the loss to the leaves, in reverse topological order.
# - Apply the chain rule node by node with each node's local derivative, and know that
#   a node used twice collects the sum of both gradients.
# - Predict the gradient of a broadcast op: broadcasting copies forward and sums
#   backward, so a gradient keeps its input's shape.
# - Use `no_grad`, `detach` and `retain_graph`. (Lesson 02 shows how to check any
#   gradient numerically.)
#
# Exercises: `exercises/01_autograd.py`, checked with `tinytransformer exercises check 01`.
