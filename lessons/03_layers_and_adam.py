# %% [markdown]
# # 03 · Layers and Adam
#
# A layer is a function with weights; training is nudging the weights downhill.
# This lesson builds a small network from `Linear` layers, then trains it twice:
# with plain gradient descent and with Adam. Each update rule is first written out
# by hand on NumPy arrays, a few lines each, and then replaced by the library's
# optimizer, which must land on exactly the same weights.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
from tinytransformer import optim

N_STEPS = steps(1000, 150)

# %% [markdown]
# ## A Linear layer is `x @ W.T + b`
#
# `tt.nn.Linear(in_features, out_features)` holds a weight of shape `(out, in)`
# (PyTorch's layout) and a bias of shape `(out,)`, both `Parameter`s: tensors that
# ask for gradients. Its forward pass is one line of NumPy.

# %%
tt.manual_seed(0)
layer = tt.nn.Linear(3, 2, dtype=np.float64)
x = np.random.default_rng(0).standard_normal((4, 3))  # (B, in) = (4, 3)
y = layer(tt.Tensor(x))  # (4, 2)
by_hand = x @ layer.weight.data.T + layer.bias.data  # (4, 3) @ (3, 2) + (2,) -> (4, 2)
print(layer, [name for name, _ in layer.named_parameters()], y.shape)
assert np.allclose(y.data, by_hand, rtol=1e-14)

# %% [markdown]
# ## A small network and a task
#
# Two layers with a `tanh` between them can bend a line into a curve. The task:
# fit `sin(x)` on [-3, 3] from 64 noisy samples, with the mean squared error.
# We work in float64 so that "the same weights" can mean equal to 1e-10.

# %%
rng = np.random.default_rng(0)
X = np.linspace(-3, 3, 64).reshape(-1, 1)  # (64, 1)
Y = np.sin(X) + 0.1 * rng.standard_normal(X.shape)  # (64, 1)


class MLP(tt.nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = tt.nn.Linear(1, hidden, dtype=np.float64)
        self.fc2 = tt.nn.Linear(hidden, 1, dtype=np.float64)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())  # (64, 1) -> (64, hidden) -> (64, 1)


def fresh_model():
    tt.manual_seed(0)  # every run starts from the same weights
    return MLP()


def train(model, update, n_steps=N_STEPS):
    """Forward, backward, ``update()``; returns the loss at every step."""
    losses = []
    for _ in range(n_steps):
        loss = ((model(tt.Tensor(X)) - tt.Tensor(Y)) ** 2).mean()
        model.zero_grad()
        loss.backward()
        update()
        losses.append(loss.item())
    return losses


# %% [markdown]
# ## Gradient descent, by hand
#
# After `loss.backward()` every parameter holds `p.grad`, the slope of the loss
# along it. Step against it: `p = p - lr * p.grad`.

# %%
LR_SGD = 0.05  # try 0.1: the loss jumps up before it comes down
model = fresh_model()
params = list(model.parameters())


def sgd_by_hand():
    for p in params:
        p.data -= LR_SGD * p.grad  # p <- p - lr * dL/dp


sgd_losses = train(model, sgd_by_hand)
sgd_weights = [p.data.copy() for p in params]
print(f"SGD by hand: loss {sgd_losses[0]:.4f} -> {sgd_losses[-1]:.4f}")

# %% [markdown]
# `optim.SGD` does the same (it also knows momentum and weight decay, off here):

# %%
model = fresh_model()
opt = optim.SGD(model.parameters(), lr=LR_SGD)
assert np.allclose(train(model, opt.step), sgd_losses, rtol=1e-10)
for p, q in zip(model.parameters(), sgd_weights):
    assert np.allclose(p.data, q, rtol=1e-10, atol=1e-12)
assert sgd_losses[-1] < 0.5 * sgd_losses[0]

# %% [markdown]
# ## Adam, by hand
#
# One learning rate for every weight is a poor fit when some gradients are a
# thousand times larger than others. Adam (Kingma & Ba 2015) keeps, per weight,
# a running average of the gradient `m` and of its square `v`, and steps by
# `m / sqrt(v)`: about `lr` per step whatever the gradient's scale. Both averages
# start at zero, so early on they are too small; dividing by `1 - beta**t`
# corrects that.

# %%
LR_ADAM, BETA1, BETA2, EPS = 0.01, 0.9, 0.999, 1e-8
model = fresh_model()
params = list(model.parameters())
m = [np.zeros_like(p.data) for p in params]  # first moments, one per parameter
v = [np.zeros_like(p.data) for p in params]  # second moments
t = 0


def adam_by_hand():
    global t
    t += 1
    for p, m_p, v_p in zip(params, m, v):
        g = p.grad
        m_p[...] = BETA1 * m_p + (1 - BETA1) * g  # m_t = b1 m_{t-1} + (1 - b1) g
        v_p[...] = BETA2 * v_p + (1 - BETA2) * g * g  # v_t = b2 v_{t-1} + (1 - b2) g^2
        m_hat = m_p / (1 - BETA1**t)  # bias corrections
        v_hat = v_p / (1 - BETA2**t)
        p.data -= LR_ADAM * m_hat / (np.sqrt(v_hat) + EPS)


adam_losses = train(model, adam_by_hand)
adam_weights = [p.data.copy() for p in params]
print(f"Adam by hand: loss {adam_losses[0]:.4f} -> {adam_losses[-1]:.4f}")

# %% [markdown]
# `optim.Adam` is the same few lines (`adam_update` in `tinytransformer/optim/adam.py`),
# run for each parameter with its own `m`, `v` and step count. It groups the
# arithmetic a little differently, so the two runs differ in the last bits; over
# the steps here that stays far below 1e-10 (run thousands of steps and such
# rounding differences grow, as they do in any long iteration).

# %%
model = fresh_model()
opt = optim.Adam(model.parameters(), lr=LR_ADAM, betas=(BETA1, BETA2), eps=EPS)
assert np.allclose(train(model, opt.step), adam_losses, rtol=1e-10)
for p, q in zip(model.parameters(), adam_weights):
    assert np.allclose(p.data, q, rtol=1e-10, atol=1e-12)
print("optim.Adam state of fc1.weight:", {k: getattr(s, "shape", s) for k, s in opt.state[model.fc1.weight].items()})
assert adam_losses[-1] < 0.5 * adam_losses[0]
assert adam_losses[-1] < sgd_losses[-1]  # on this task, in as many steps, Adam gets further

# %% [markdown]
# ## Weight decay: Adam versus AdamW
#
# Weight decay pulls every weight towards zero. Adam's original form (L2
# regularisation) adds `weight_decay * p` to the gradient, and then Adam divides
# the sum by `sqrt(v)` like any gradient. So the decay's pull is rescaled weight by
# weight: where the loss's gradient is large, `v` is large and the decay term is a
# small share of the step, so the weight is barely decayed; where the loss's
# gradient is small, the decay term dominates and is blown up to a step of about
# `lr`. The extreme case shows it most clearly: a weight with no gradient from the
# loss at all moves by about `lr` per step, with a tiny or a huge `weight_decay`
# alike. AdamW (Loshchilov & Hutter 2019) decouples the decay:
# `p = p - lr * weight_decay * p`, outside the moments, the same pull for every weight.


# %%
def decay_share(optimizer_class, loss_grad, weight_decay=0.01):
    """How much further one step moves a weight at p = 2 because of the decay (the step with it minus without)."""
    moved = []
    for wd in (weight_decay, 0.0):
        p = tt.nn.Parameter(np.array([2.0]))
        p.grad = np.array([loss_grad])
        optimizer_class([p], lr=0.01, weight_decay=wd).step()
        moved.append(2.0 - p.data[0])
    return moved[0] - moved[1]


for g in (0.0, 10.0):
    print(f"loss gradient {g:4}: the decay moves the weight {decay_share(optim.Adam, g):.6f} further under Adam, "
          f"{decay_share(optim.AdamW, g):.6f} under AdamW")
assert decay_share(optim.Adam, 0.0) > 10 * decay_share(optim.Adam, 10.0)  # Adam + L2: uneven, by gradient size
assert np.isclose(decay_share(optim.AdamW, 0.0), decay_share(optim.AdamW, 10.0))  # AdamW: lr * wd * p for both

# %% [markdown]
# And the weight with no gradient at all, for two values of `weight_decay`:


# %%
def one_step(optimizer_class, weight_decay):
    p = tt.nn.Parameter(np.array([2.0]))
    p.grad = np.zeros(1)  # the loss does not care about this weight
    optimizer_class([p], lr=0.01, weight_decay=weight_decay).step()
    return 2.0 - p.data[0]  # how far it moved towards zero


for wd in (1e-4, 1.0):
    print(f"weight_decay={wd:g}: Adam moves it {one_step(optim.Adam, wd):.6f}, AdamW {one_step(optim.AdamW, wd):.6f}")
    assert np.isclose(one_step(optim.Adam, wd), 0.01, rtol=1e-3)  # ~lr, whatever weight_decay is
    assert np.isclose(one_step(optim.AdamW, wd), 2.0 * 0.01 * wd)  # exactly lr * weight_decay * p

# %% [markdown]
# ## The learning-rate schedule GPTs train with
#
# Large models start with a short linear warmup (Adam's `v` is still a poor
# estimate in the first steps) and then decay the lr along a half cosine.
# `optim.lr_scheduler.WarmupCosineLR` writes that lr into the optimizer's
# `param_groups` at each `scheduler.step()`.

# %%
opt = optim.AdamW(fresh_model().parameters(), lr=LR_ADAM)
scheduler = optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=N_STEPS // 10, total_steps=N_STEPS)
lrs = []
for _ in range(N_STEPS):
    lrs.append(opt.param_groups[0]["lr"])
    scheduler.step()
assert max(lrs) == lrs[N_STEPS // 10] == LR_ADAM  # the peak, right after the warmup
assert 0.1 * LR_ADAM <= lrs[-1] < 0.11 * LR_ADAM  # down to min_lr_ratio=0.1 at total_steps

# %%
fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_loss.semilogy(sgd_losses, label=f"SGD, lr={LR_SGD}")
ax_loss.semilogy(adam_losses, label=f"Adam, lr={LR_ADAM}")
ax_loss.set(xlabel="step", ylabel="MSE loss", title="fitting sin(x) with a 1-32-1 MLP")
ax_loss.legend()
ax_lr.plot(lrs)
ax_lr.set(xlabel="step", ylabel="lr", title="WarmupCosineLR")
fig.tight_layout()
fig.savefig(figure_path("03_sgd_vs_adam.png"), dpi=100)
print("saved", figure_path("03_sgd_vs_adam.png"))

# %% [markdown]
# ## What you can do now
#
# - Write a Linear layer as `x @ W.T + b` and stack two into an MLP.
# - Write SGD and Adam on plain arrays, then use `optim.SGD`, `optim.Adam` and `optim.AdamW`.
# - Tell Adam's L2 decay (rescaled per weight by the gradient's size) from AdamW's
#   decoupled decay (the same pull for every weight).
# - Schedule the learning rate with a linear warmup and a cosine decay.
#
# Exercises: `exercises/03_layers_and_adam.py`, checked with `tinytransformer exercises check 03`.
