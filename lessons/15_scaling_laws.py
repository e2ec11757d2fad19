# %% [markdown]
# # 15 · Scaling laws
#
# Train the same kind of model at several sizes on the same data, and the validation
# losses fall on a straight line when both axes are logarithmic. Kaplan et al. (2020,
# "Scaling laws for neural language models") measured this over seven orders of
# magnitude: the loss is a **power law** in each of three resources, as long as the
# other two do not hold it back:
#
#     L(N) = (N_c / N)^alpha_N      N = parameters (outside the embeddings)   alpha_N ~ 0.076
#     L(D) = (D_c / D)^alpha_D      D = training tokens                       alpha_D ~ 0.095
#     L(C) = (C_c / C)^alpha_C      C = training compute in FLOPs             alpha_C ~ 0.050
#
# Taking logs, `log L = log a - alpha log N`: a line of slope `-alpha`. So a power
# law is fitted by least squares on the logarithms, and `alpha` says how fast more of a
# resource pays: doubling `N` multiplies the loss by `2^-alpha`. Hoffmann et al. (2022,
# "Chinchilla") add a floor, `L = E + A / N^alpha + B / D^beta`: `E` is the entropy of
# the text itself, which no model can beat.
#
# This lesson counts compute (`C ~ 6 N D`), runs the experiment in miniature on Python's
# help pages, fits the exponents, and reads them. `make scaling` runs the bigger version
# (`benchmarks/scaling.py`, about 15 minutes on 2 cores; its figure is in the README).

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.autograd import no_grad
from tinytransformer.data import CharTokenizer, load_corpus, random_windows, train_val_split
from tinytransformer.interpret import fit_power_law, non_embedding_parameters, training_flops
from tinytransformer.kernels import set_num_threads
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.training import TrainConfig, Trainer

set_num_threads(1)  # models this small run fastest on one thread (and leave the other core free)

# %% [markdown]
# ## Counting compute: C ~ 6 N D
#
# A Linear layer with an `n_in x n_out` weight costs `n_in * n_out` multiplications and
# as many additions per token: **2 FLOPs per weight**. A GPT's blocks hold
# `N ~ 12 n_layer d^2` weights (`c_attn` 3d^2, `c_proj` d^2, the MLP 8d^2), so the forward
# pass costs about `2N` FLOPs per token, plus attention itself: each query meets `T`
# keys twice (scores, then the weighted sum of values), `4 T d` per layer. The
# backward pass costs twice the forward: for `Y = X W` it needs both `dX = dY W^T`
# and `dW = X^T dY`, two matmuls of the same size. In all `C ~ 3 * 2N = 6N` per
# training token, `6 N D` for a run. Like Kaplan et al., we leave out the embeddings
# (a lookup, no multiplications) and the output layer.
#
# The attention term is why `6N` is an approximation: it is small when `d` is large
# compared with the context `T`, which is where the big models live.

# %%
def forward_flops_per_token(n_layer, d, T):
    """The matmuls of one block, counted one by one, times n_layer (2 FLOPs per multiply-add)."""
    per_layer = (2 * d * 3 * d        # c_attn: queries, keys, values
                 + 2 * T * d          # scores q . k against T keys
                 + 2 * T * d          # the weighted sum of T values
                 + 2 * d * d          # c_proj
                 + 2 * d * 4 * d * 2)  # the MLP's c_fc and c_proj
    return n_layer * per_layer


tt.manual_seed(0)
model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=64))
assert non_embedding_parameters(model) == 2 * (12 * 64 ** 2 + 13 * 64) + 2 * 64  # + biases, gains, ln_f

T = 64
print(f"{'n_layer':>7} {'d':>5} {'N ~ 12 n_layer d^2':>19} {'forward FLOPs/token':>20} {'/ 2N':>6}")
for n_layer, d in [(1, 16), (2, 64), (4, 128), (12, 768), (48, 1600)]:  # the last two: GPT-2 small and XL
    N = 12 * n_layer * d * d
    flops = forward_flops_per_token(n_layer, d, T)
    print(f"{n_layer:7d} {d:5d} {N:19,d} {flops:20,d} {flops / (2 * N):6.2f}")
assert abs(forward_flops_per_token(48, 1600, T) / (2 * 12 * 48 * 1600 ** 2) - 1) < 0.01  # big models: 2N

# %% [markdown]
# The backward pass really is about twice the forward: time both on one model.

# %%
x = np.random.default_rng(0).integers(0, 65, (16, 64))
forward_s, total_s = [], []
for _ in range(steps(5, 2)):
    start = time.perf_counter()
    _, loss = model(x, x)
    middle = time.perf_counter()
    loss.backward()
    forward_s.append(middle - start)
    total_s.append(time.perf_counter() - start)
    model.zero_grad()
print(f"forward {min(forward_s) * 1e3:.0f} ms, forward + backward {min(total_s) * 1e3:.0f} ms: "
      f"{min(total_s) / min(forward_s):.1f}x (the FLOP count says 3x; small matmuls and Python add their own costs)")

# %% [markdown]
# ## The experiment in miniature
#
# Character-level GPTs of five sizes, every one trained on the same number of tokens,
# with the same schedule and the same batches, on Python's help pages. The full run
# spans about 45x in `N`; CI's short mode trains smaller models for fewer steps.

# %%
text = load_corpus("pydoc")
tokenizer = CharTokenizer.train(text)
train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
BLOCK, BATCH = (32, 8) if SHORT else (64, 16)
SIZES = [(1, 2, 8), (1, 2, 16), (2, 2, 16), (2, 4, 32), (2, 4, 48)] if SHORT else \
    [(1, 2, 16), (1, 2, 24), (2, 4, 32), (2, 4, 48), (3, 4, 64)]
STEPS = steps(300, 80)
VAL_BATCHES = [random_windows(val_ids, BLOCK, 32, np.random.default_rng(i)) for i in range(steps(8, 4))]


def val_loss(model):
    """Validation loss on fixed batches, the same for every model."""
    model.eval()
    with no_grad():
        return float(np.mean([model(x, y)[1].item() for x, y in VAL_BATCHES]))


def train(size, n_steps):
    """A fresh GPT of ``size`` = (n_layer, n_head, n_embd) trained for ``n_steps``; returns its record."""
    n_layer, n_head, n_embd = size
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    config = TrainConfig(max_iters=n_steps, batch_size=BATCH, lr=3e-3, warmup_iters=max(1, n_steps // 10),
                         eval_interval=n_steps, eval_iters=1)
    trainer = Trainer(model, train_ids, val_ids, config)
    trainer.train(progress=False)
    N, D = non_embedding_parameters(model), n_steps * trainer.tokens_per_step
    record = {"size": size, "N": N, "D": D, "C": training_flops(N, D), "loss": val_loss(model)}
    print(f"n_layer={n_layer} n_embd={n_embd:3d}: N = {N:6,d}, D = {D:7,d} tokens, C = {record['C']:.2e} FLOPs, "
          f"validation loss {record['loss']:.3f}")
    return record


size_runs = [train(size, STEPS) for size in SIZES]
N = np.array([r["N"] for r in size_runs], dtype=float)
loss_N = np.array([r["loss"] for r in size_runs])
law_N = fit_power_law(N, loss_N)
print(f"L(N) = {law_N.a:.2f} N^-{law_N.alpha:.3f}   (R^2 = {law_N.r2:.3f}; {N.max() / N.min():.0f}x in N)")
assert N.max() / N.min() >= 30
assert law_N.alpha > 0, "bigger models should reach a lower loss on the same data"
assert loss_N[-1] < loss_N[0] - 0.05

# %% [markdown]
# ## A second sweep: the data
#
# Now the middle model, trained on budgets from a quarter to twice the one above (each
# run with its own full schedule, so every point is a finished run, not the middle of
# a longer one).

# %%
FRACTIONS = [0.25, 0.5, 1.0, 2.0]
data_runs = [train(SIZES[2], max(1, int(f * STEPS))) for f in FRACTIONS]
D = np.array([r["D"] for r in data_runs], dtype=float)
loss_D = np.array([r["loss"] for r in data_runs])
law_D = fit_power_law(D, loss_D)
print(f"L(D) = {law_D.a:.2f} D^-{law_D.alpha:.3f}   (R^2 = {law_D.r2:.3f})")
assert law_D.alpha > 0, "more data should lower the loss"

# %% [markdown]
# ## The figure: log-log axes

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, x, y, law, name in [(axes[0], N, loss_N, law_N, "N"), (axes[1], D, loss_D, law_D, "D")]:
    grid = np.logspace(np.log10(x.min()), np.log10(x.max()), 50)
    ax.loglog(x, y, "o", label="runs")
    ax.loglog(grid, law(grid), "--", color="tab:red", label=f"{law.a:.2f} {name}^-{law.alpha:.3f}")
    ax.set_xlabel({"N": "non-embedding parameters N", "D": "training tokens D"}[name])
    ax.set_ylabel("validation loss (nats/char)")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
axes[0].set_title(f"same data (D = {size_runs[0]['D']:,} tokens)")
axes[1].set_title(f"same model (N = {data_runs[0]['N']:,})")
for run in size_runs + data_runs:
    axes[2].loglog(run["C"], run["loss"], "o" if run in size_runs else "s",
                   color="tab:blue" if run in size_runs else "tab:orange")
axes[2].plot([], [], "o", color="tab:blue", label="size sweep")
axes[2].plot([], [], "s", color="tab:orange", label="data sweep")
axes[2].set(xlabel="training compute C = 6 N D (FLOPs)", ylabel="validation loss", title="both sweeps against compute")
axes[2].legend()
axes[2].grid(alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(figure_path("15_scaling_laws.png"), dpi=110)

# %% [markdown]
# ## What the exponent says
#
# With `L = a N^-alpha`, multiplying `N` by `k` multiplies the loss by `k^-alpha`. Small
# exponents are the norm: Kaplan's `alpha_N ~ 0.076` means 10x the parameters buys
# about 16% less loss, and halving the loss would take `2^(1/0.076)`, about 9,000x.
# That is why frontier models grew by orders of magnitude at a time.
#
# Our exponents should not be expected to match Kaplan's: characters instead of
# word pieces, thousands of parameters instead of billions, and one fixed budget of
# tokens for every size. Kaplan's `L(N)` trains each model until more data no longer
# helps; ours stop early, so the bigger models are held back by `D`, the curve bends
# flat towards the right, and the fitted slope comes out smaller (about 0.04 in the
# full benchmark). Fitting with a floor (`offset=True`) separates the part of the loss
# that more parameters can remove from the part they cannot; with a handful of
# points the three-parameter fit is much less certain than the two-parameter one, so
# treat its `c` as a rough guess.

# %%
for k in (2, 10):
    print(f"{k:3d}x the parameters: loss x {k ** -law_N.alpha:.3f};  {k:3d}x the data: loss x {k ** -law_D.alpha:.3f}")
with_floor = fit_power_law(N, loss_N, offset=True)
print(f"with a floor: L(N) = {with_floor.a:.2f} N^-{with_floor.alpha:.3f} + {with_floor.c:.2f}")
assert math.isclose(10 ** -law_N.alpha, law_N(10 * N[0]) / law_N(N[0]), rel_tol=1e-9)

# %% [markdown]
# A law is only useful if it predicts. Fit on the smaller sizes and extrapolate to the
# largest one, which the fit has not seen:

# %%
held_out_fit = fit_power_law(N[:-1], loss_N[:-1])
predicted = held_out_fit(N[-1])
print(f"largest model: predicted {predicted:.3f}, measured {loss_N[-1]:.3f} "
      f"({abs(predicted - loss_N[-1]) / loss_N[-1]:.1%} off)")
assert abs(predicted - loss_N[-1]) / loss_N[-1] < 0.15

# %% [markdown]
# ## Parameters, data and compute together
#
# For a fixed compute budget `C = 6 N D`, a bigger model sees fewer tokens. Where is the
# best trade? Kaplan et al. concluded "mostly parameters" (N_opt ~ C^0.73); Hoffmann et
# al. (Chinchilla), with learning-rate schedules matched to each run's length, found
# N and D should grow **equally**, N_opt ~ C^0.5 and D_opt ~ C^0.5, at about **20
# tokens per parameter**: GPT-3 (175B parameters, 300B tokens, 1.7 tokens per
# parameter) was undertrained, and the 70B Chinchilla trained on 1.4T tokens beat it.
# Our miniature runs sit at these ratios:

# %%
for run in size_runs:
    print(f"N = {run['N']:6,d}: {run['D'] / run['N']:7.1f} tokens per parameter")
tokens_per_param = [r["D"] / r["N"] for r in size_runs]
assert tokens_per_param[0] > 20 > tokens_per_param[-1]  # the smallest past Chinchilla's ratio, the largest short of it

# %% [markdown]
# So the small models here are trained far past 20 tokens per parameter, the big ones
# short of it: at our budget the bigger models are still learning when we stop. They
# are held back by data, not by their size, which is why the size curve bends flat on
# the right and its fitted exponent comes out small (the section on the exponent
# above). That is Chinchilla's point in miniature: at a fixed number of tokens, more
# parameters pay less and less; to get what a bigger model can give, it needs more
# data too.
#
# ## What you can do now
#
# - Count a model's training compute as `6 N D`, and check the count against the
#   matrix products of one block.
# - Measure a scaling curve for any model family (same data, same budget, sizes spread
#   over a decade or more) and fit its exponent on log-log axes.
# - Test a fitted law by extrapolating to a size it has not seen.
# - Reason about how to spend a compute budget between parameters and data.
