# %% [markdown]
# # 06 · Multi-head attention and the Transformer block
#
# The article this project started from builds its "Transformer" from three
# layers: a `Linear` embedding, one `MultiheadAttention`, a `Linear` output
# (`tinytransformer.models.SeedTransformer`). This lesson trains it on a task where
# order matters, watches it fail, and then adds what a real Transformer has:
# positions, the feed-forward network, residual connections, LayerNorm and
# depth. Last, where the LayerNorm goes (before or after each sub-layer) and
# why deep models put it before.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer import nn, optim
from tinytransformer.models import SeedTransformer

N_STEPS = steps(1500, 600)

# %% [markdown]
# ## Multi-head attention, by hand
#
# One attention head computes one weighting of the values. $H$ heads each get
# their own projections, of size $d_h = E / H$, attend independently, and an
# output projection $W_o$ mixes their results:
#
# $$\text{head}_h = \operatorname{softmax}\!\Big(\frac{(X W_q^h)(X W_k^h)^\top}{\sqrt{d_h}}\Big)\, X W_v^h,
# \qquad \operatorname{MultiHead}(X) = [\text{head}_1, \dots, \text{head}_H]\, W_o .$$
#
# `nn.MultiheadAttention` stores all of $W_q, W_k, W_v$ in one `in_proj_weight`
# `(3E, E)`, as PyTorch does; head $h$ owns rows $h d_h, \dots, (h + 1) d_h - 1$ of each.

# %%
E, H, T_DEMO = 8, 2, 5
tt.manual_seed(0)
mha = nn.MultiheadAttention(E, H, batch_first=True, dtype=np.float64)
mha.in_proj_bias.data[...] = np.random.default_rng(0).standard_normal(3 * E)  # zero at init: make it count
x = np.random.default_rng(1).standard_normal((1, T_DEMO, E))  # (B, T, E)
out, avg_weights = mha(tt.Tensor(x), tt.Tensor(x), tt.Tensor(x))

d_h = E // H
W_q, W_k, W_v = np.split(mha.in_proj_weight.data, 3)  # (E, E) each
b_q, b_k, b_v = np.split(mha.in_proj_bias.data, 3)  # (E,) each
heads, maps = [], []
for h in range(H):
    rows = slice(h * d_h, (h + 1) * d_h)  # this head's share of the projections
    q, k, v = (x[0] @ W[rows].T + b[rows] for W, b in ((W_q, b_q), (W_k, b_k), (W_v, b_v)))  # (T, d_h) each
    weights = F.softmax(tt.Tensor(q @ k.T / np.sqrt(d_h))).data  # (T, T)
    heads.append(weights @ v)  # (T, d_h)
    maps.append(weights)
by_hand = np.concatenate(heads, axis=-1) @ mha.out_proj.weight.data.T + mha.out_proj.bias.data  # (T, E)
assert np.allclose(out.data[0], by_hand, rtol=1e-12, atol=1e-14)
assert np.allclose(avg_weights.data[0], np.mean(maps, axis=0))  # the layer returns the heads' average map
print("per-head attention of token 0:", [m[0].round(2) for m in maps])

# %% [markdown]
# ## A task where order matters
#
# Is a sequence sorted? Each example is 8 distinct numbers from 0-15. Half are
# sorted; each of the others is a sorted one with a single *adjacent* pair
# swapped, so a model must check every neighbouring pair, and each unsorted
# sequence holds exactly the same numbers as a sorted one.

# %%
V, T, C, N_HEADS, BATCH = 16, 8, 32, 4, 32


def sorted_batch(rng, n=BATCH):
    """n sequences (n/2 sorted, then the same with one adjacent pair swapped) and labels 1 = sorted."""
    half = n // 2
    ids = np.sort(np.argsort(rng.random((half, V)), axis=1)[:, :T], axis=1)  # (n/2, T) distinct, sorted
    swapped = ids.copy()
    rows, i = np.arange(half), rng.integers(0, T - 1, half)
    swapped[rows, i], swapped[rows, i + 1] = ids[rows, i + 1], ids[rows, i]
    return np.concatenate([ids, swapped]), np.r_[np.ones(half, int), np.zeros(half, int)]  # (n, T), (n,)


eval_ids, eval_labels = sorted_batch(np.random.default_rng(99), n=512)
print("a sorted sequence and its swapped twin:", eval_ids[0], eval_ids[256])

# %% [markdown]
# The seed model reads one-hot vectors, sequence axis first as in the article,
# and gives an output per position; a sequence's answer is the average of its
# positions' outputs.


# %%
def seed_logits(model, ids):
    one_hot = tt.Tensor(np.eye(V, dtype=np.float32)[ids.T])  # (T, B, V), sequence first
    return model(one_hot).mean(axis=0)  # (T, B, 2) -> (B, 2)


def train(model, logits_of):
    """Adam on fresh batches; returns the loss per step and the accuracy on the held-out set."""
    opt = optim.Adam(model.parameters(), lr=3e-3)
    data, losses = np.random.default_rng(0), []
    for _ in range(N_STEPS):
        ids, labels = sorted_batch(data)
        loss = F.cross_entropy(logits_of(model, ids), labels)
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with tt.no_grad():
        accuracy = (logits_of(model, eval_ids).data.argmax(-1) == eval_labels).mean()
    return np.array(losses), accuracy


tt.manual_seed(0)
seed = SeedTransformer(input_dim=V, output_dim=2, hidden_dim=C, n_heads=N_HEADS)
curves, accuracies = {}, {}
curves["seed model"], accuracies["seed model"] = train(seed, seed_logits)
print(f"seed model: accuracy {accuracies['seed model']:.3f}, loss over the last 100 steps "
      f"{curves['seed model'][-100:].mean():.3f}")

# %% [markdown]
# It stays at chance, $\ln 2 \approx 0.693$, and it must: without positions its
# attention is permutation-equivariant (lesson 04), its input and output layers
# act on each position alone, and the average over positions forgets the order.
# So a sequence and any shuffle of it get the same answer, and of each sorted
# sequence and its swapped twin, it gets exactly one right.

# %%
with tt.no_grad():
    assert np.allclose(seed_logits(seed, eval_ids[:256]).data, seed_logits(seed, eval_ids[256:]).data, atol=1e-5)
assert abs(accuracies["seed model"] - 0.5) < 0.01

# %% [markdown]
# ## What the seed model lacks
#
# 1. **Positions.** Add the sinusoidal table after the input layer.
# 2. **The Transformer block** (Vaswani et al. 2017; here GPT-2's pre-LN form,
#    `nn.TransformerBlock`):
#
#    $$x \leftarrow x + \operatorname{Attention}(\operatorname{LN}(x)), \qquad
#      x \leftarrow x + \operatorname{MLP}(\operatorname{LN}(x)).$$
#
#    The *MLP* (feed-forward network, $C \to 4C \to C$ with a GELU) transforms
#    each position on its own. Attention's output is a weighted average of the
#    values; turning "my number and my neighbour's" into "are they in order" is
#    the MLP's job. The *residual* $x + \dots$ lets each sub-layer add to its
#    input instead of replacing it, and gives the gradient a direct path down.
#    The vector $x$ that flows from block to block, which every sub-layer reads
#    (through a LayerNorm) and adds its output to, is called the **residual
#    stream**. *LayerNorm* keeps each sub-layer's input at a fixed scale (next
#    section).
# 3. **Depth.** Two blocks: the second can build on what the first found.
#
# ## LayerNorm, by hand
#
# LayerNorm (Ba, Kiros & Hinton 2016) normalises each position's vector of $C$
# numbers on its own, over the feature axis (not over the batch, as BatchNorm does):
#
# $$\mu = \frac{1}{C}\sum_i x_i, \qquad \sigma^2 = \frac{1}{C}\sum_i (x_i - \mu)^2, \qquad
# y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot w + b .$$
#
# After the division each vector has mean 0 and variance 1, whatever scale it came
# in at; the learned gain $w$ (ones at the start) and bias $b$ (zeros) let the model
# choose another scale and shift per feature. $\epsilon$ ($10^{-5}$, PyTorch's
# default) keeps the division finite for a vector whose entries are all equal. The
# variance divides by $C$, not $C - 1$. Lesson 10 shows its backward pass, derived by hand.

# %%
ln = nn.LayerNorm(E, dtype=np.float64)
ln.weight.data[...] = np.random.default_rng(2).standard_normal(E)  # ones and zeros at init: make them count
ln.bias.data[...] = np.random.default_rng(3).standard_normal(E)
h = 5.0 + 3.0 * np.random.default_rng(4).standard_normal((2, T_DEMO, E))  # (B, T, E), far from mean 0, variance 1
mu = h.mean(axis=-1, keepdims=True)  # (B, T, 1): one mean per position
var = ((h - mu) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1): divide by E, not E - 1
h_hat = (h - mu) / np.sqrt(var + ln.eps)  # (B, T, E): mean 0, variance 1 per position
by_hand = h_hat * ln.weight.data + ln.bias.data  # (B, T, E)
assert np.allclose(ln(tt.Tensor(h)).data, by_hand, rtol=1e-12, atol=1e-12)
assert np.allclose(h_hat.mean(axis=-1), 0, atol=1e-12) and np.allclose(h_hat.var(axis=-1), 1, atol=1e-4)
print(f"eps = {ln.eps:g}; a position's mean and variance before: {mu[0, 0, 0]:.2f}, {var[0, 0, 0]:.2f}; "
      f"after normalising: {h_hat[0, 0].mean():.1e}, {h_hat[0, 0].var():.4f}")

# %% [markdown]
# The variance after normalising is $\sigma^2 / (\sigma^2 + \epsilon)$, a hair under 1.
#
# ## Dropout
#
# The block can also hold **dropout** (Srivastava et al. 2014; `nn.Dropout(p)`), a
# regulariser: while training, each number is zeroed with probability $p$ and the
# survivors are multiplied by $1/(1-p)$, so the expected value is unchanged; in
# evaluation (`model.eval()`) it does nothing. The model cannot rely on any one
# feature. GPT-2 used $p = 0.1$; the small GPTs of this course train without it
# ($p = 0$, as nanoGPT's small CPU configuration does).

# %%
drop = nn.Dropout(0.25)
ones = tt.Tensor(np.ones((1000, 100)))
tt.manual_seed(0)
dropped = drop(ones).data  # training mode: zeros and 1 / 0.75
assert set(np.unique(dropped)) == {0.0, 1 / 0.75} and abs((dropped == 0).mean() - 0.25) < 0.01
assert abs(dropped.mean() - 1) < 0.01  # the expected value is kept
drop.eval()
assert (drop(ones).data == 1).all()  # evaluation: the identity
print(f"dropout p = 0.25: {(dropped == 0).mean():.1%} zeroed, mean {dropped.mean():.3f}")

# %% [markdown]
# ## The full block against the seed model
#
# We train the seed model with positions added (the one change it needs to see
# order at all), and an encoder of two Transformer blocks (`causal=False`: every
# position sees every other) that has everything.


# %%
class SeedWithPositions(SeedTransformer):
    """The seed model with sinusoidal positions added after its input layer."""

    def forward(self, x):
        h = self.embedding(x)  # (T, B, C)
        h = h + F.sinusoidal_positions(len(h), h.shape[-1])[:, None, :]  # + (T, 1, C), broadcast over the batch
        h, _ = self.attention(h, h, h)
        return self.fc(h)  # (T, B, 2)


class Encoder(nn.Module):
    """Token embedding + sinusoidal positions -> n_layer Transformer blocks -> LayerNorm -> average -> 2 logits."""

    def __init__(self, n_layer, norm_first=True):
        super().__init__()
        self.tok = nn.Embedding(V, C)
        self.pos = nn.SinusoidalPositionalEncoding(C, max_len=T)
        self.blocks = nn.ModuleList(nn.TransformerBlock(C, N_HEADS, causal=False, norm_first=norm_first)
                                    for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, 2)

    def forward(self, ids):
        x = self.pos(self.tok(ids))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x)).mean(axis=1)  # (B, T, 2) -> (B, 2)


def encoder_logits(model, ids):
    return model(ids)


tt.manual_seed(0)
ladder = {
    "seed model + positions": (SeedWithPositions(V, 2, C, N_HEADS), seed_logits),
    "2 Transformer blocks": (Encoder(2), encoder_logits),
}
sizes = {"seed model": sum(p.size for p in seed.parameters())}
for name, (model, logits_of) in ladder.items():
    curves[name], accuracies[name] = train(model, logits_of)
    sizes[name] = sum(p.size for p in model.parameters())
for name in curves:
    print(f"{name:24s} {sizes[name]:6d} parameters, accuracy {accuracies[name]:.3f}, "
          f"loss over the last 100 steps {curves[name][-100:].mean():.3f}")

final = {name: curve[-100:].mean() for name, curve in curves.items()}  # the last 100 steps' mean loss
assert accuracies["2 Transformer blocks"] > 0.85  # the full model solves what the seed model cannot
assert final["seed model + positions"] < np.log(2) - 0.1  # positions alone help ...
assert final["2 Transformer blocks"] < final["seed model + positions"] - 0.1  # ... the rest of the block helps more

# %% [markdown]
# Positions alone lift the seed model off chance; the blocks go much further.
# They also have five times the parameters, so this compares designs, not equal
# budgets.

# %%

fig, ax = plt.subplots(figsize=(8, 4.5))
window = 25  # a running mean: each batch is small, so each step's loss is noisy
for name, curve in curves.items():
    smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(window - 1, len(curve)), smooth, label=f"{name} (acc {accuracies[name]:.2f})")
ax.axhline(np.log(2), color="gray", ls=":", label="chance, ln 2")
ax.set(xlabel="step", ylabel="cross-entropy (running mean)", title="is the sequence sorted?")
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("06_seed_vs_block.png"), dpi=100)

# %% [markdown]
# ## Pre-LN or post-LN?
#
# The original Transformer normalises *after* adding each sub-layer's output
# (post-LN: $x \leftarrow \operatorname{LN}(x + F(x))$); GPT-2 and most models since
# normalise the sub-layer's *input* (pre-LN: $x \leftarrow x + F(\operatorname{LN}(x))$),
# which leaves a path from input to output on which nothing but additions happen.
# Xiong et al. (2020) showed that at initialisation post-LN's gradients near the
# output are large, and pre-LN's are not, and traced post-LN's need for a
# learning-rate warm-up to that. We measure it on stacks of 1 to 32 blocks at
# initialisation, with random inputs and a random target class for every token
# (at initialisation only the architecture matters): the norm of each block's
# parameter gradient, averaged over 3 seeds.


# %%
def gradient_norms(n_layer, norm_first, seed):
    """Norm of each block's parameter gradient at initialisation (random inputs, random targets)."""
    tt.manual_seed(seed)
    blocks = [nn.TransformerBlock(C, N_HEADS, causal=False, norm_first=norm_first) for _ in range(n_layer)]
    ln_f, head = nn.LayerNorm(C), nn.Linear(C, 10)
    rng = np.random.default_rng(seed)
    x = tt.Tensor(rng.standard_normal((16, 16, C)).astype(np.float32))  # (B, T, C)
    for block in blocks:
        x = block(x)  # (B, T, C)
    logits = head(ln_f(x)).reshape(-1, 10)  # (B * T, 10)
    F.cross_entropy(logits, rng.integers(0, 10, len(logits))).backward()
    return np.array([np.sqrt(sum((p.grad**2).sum() for p in block.parameters())) for block in blocks])


depths = [1, 2, 4, 8, 16, 32]
norms = {(depth, first): np.mean([gradient_norms(depth, first, s) for s in range(3)], axis=0)
         for depth in depths for first in (True, False)}  # (depth,) per entry
mean_norm = {first: np.array([norms[depth, first].mean() for depth in depths]) for first in (True, False)}
for first, label in ((True, "pre-LN "), (False, "post-LN")):
    print(label, "mean gradient norm per block, 1 to 32 blocks:", mean_norm[first].round(3))

growth_post = mean_norm[False][-1] / mean_norm[False][0]
growth_pre = mean_norm[True][-1] / mean_norm[True][0]
print(f"from 1 to 32 blocks the gradients grow x{growth_post:.2f} (post-LN), x{growth_pre:.2f} (pre-LN)")
assert growth_post > 2.0  # post-LN: the deeper the stack, the larger every block's gradient
assert 0.75 < growth_pre < 1.25  # pre-LN: about the same at every depth
assert norms[32, False][-1] > norms[32, False][0]  # post-LN: larger towards the output

fig, (ax_depth, ax_layer) = plt.subplots(1, 2, figsize=(11, 4))
for first, label in ((True, "pre-LN"), (False, "post-LN")):
    ax_depth.plot(depths, mean_norm[first], "o-", label=label)
    ax_layer.plot(np.arange(1, 33), norms[32, first], "o-", label=label)
ax_depth.set(xscale="log", xlabel="number of blocks", ylabel="gradient norm (mean over blocks)",
             title="at initialisation, against depth")
ax_layer.set(xlabel="block (1 = next to the input)", ylabel="gradient norm", title="inside a 32-block stack")
for ax in (ax_depth, ax_layer):
    ax.legend()
fig.tight_layout()
fig.savefig(figure_path("06_pre_vs_post_ln.png"), dpi=100)
print("saved", figure_path("06_pre_vs_post_ln.png"))

# %% [markdown]
# Verified here: as the stack deepens, post-LN's gradients at initialisation grow
# (more than twofold from 1 to 32 blocks, and largest next to the output), while
# pre-LN's stay within 25% of the one-block value at every depth. A learning
# rate that suits a shallow post-LN model is then too large for the first steps
# of a deep one, hence the warm-up. Pre-LN is much less sensitive to it: Xiong et
# al. trained pre-LN models without warm-up, and that stability is why GPT-2 and its
# successors put the LayerNorm first (and add one more at the very end, `ln_f`).
# Less sensitive is not immune: Adam's own first steps rest on poor estimates of
# the gradient's variance (lesson 03), so GPTs, this course's pre-LN GPT in lesson
# 08 included, still warm up for a short while; it is cheap insurance, not a
# necessity as it is for deep post-LN stacks.
#
# ## What you can do now
#
# - Compute multi-head attention by hand from `in_proj_weight` and check it against
#   `nn.MultiheadAttention`.
# - Write LayerNorm from its mean, variance, `eps`, gain and bias, and say what
#   dropout does in training and in evaluation.
# - Assemble a pre-LN Transformer block (residual stream, attention, MLP) and show
#   what each part adds on a task where order matters.
# - Measure why deep stacks put the LayerNorm before each sub-layer.
#
# Exercises: `exercises/06_block.py`, checked with `tinytransformer exercises check 06`.
