# %% [markdown]
# # 05 · Attention
#
# Attention lets each position gather information from the others, weighting
# each by how well its *key* matches the position's *query*:
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d}} + M\Big)\, V$$
#
# (Vaswani et al. 2017). This lesson computes it step by step in NumPy, explains
# the $1/\sqrt{d}$, shows the masks $M$, and compares this dot-product score with
# the older additive one (Bahdanau et al. 2015) on a small lookup task.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer import nn, optim

N_STEPS = steps(600, 200)

# %% [markdown]
# ## Step by step, on arrays
#
# Three queries look at five keys, of which the last two are padding (a batch
# of sentences of unequal length is filled up to one length with them); each
# key carries a value. Queries and keys have size $d = 8$, values size 4.

# %%
rng = np.random.default_rng(0)
L, S, d, d_v = 3, 5, 8, 4
Q = rng.standard_normal((L, d))  # (L, d)
K = rng.standard_normal((S, d))  # (S, d)
V = rng.standard_normal((S, d_v))  # (S, d_v)
keep = np.array([True, True, True, False, False])  # (S,): True = a real key, False = padding

scores = Q @ K.T  # (L, S): how well query i matches key j
scaled = scores / np.sqrt(d)  # keeps the scores' spread near 1 whatever d is (next section)
masked = np.where(keep, scaled, -np.inf)  # (L, S): exp(-inf) = 0, so padding gets no weight
shifted = masked - masked.max(axis=-1, keepdims=True)  # softmax is unchanged by a shift; exp cannot overflow
weights = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)  # (L, S), rows sum to 1
out = weights @ V  # (L, S) @ (S, d_v) -> (L, d_v): a weighted average of the values
print("weights:\n", weights.round(3))
assert np.allclose(weights.sum(axis=-1), 1) and not weights[:, ~keep].any()

# %% [markdown]
# The library's `F.scaled_dot_product_attention` is the same computation as one
# fused op, with its backward pass derived by hand (see its docstring);
# `F.scaled_dot_product_attention_composed` chains autograd primitives and lets
# autograd derive it. Forward and gradients agree to rounding, and central
# differences confirm the fused backward.

# %%
q, k, v = (tt.Tensor(a, requires_grad=True) for a in (Q, K, V))
fused = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (L, d_v)
assert np.allclose(fused.data, out, rtol=1e-12, atol=1e-14)

upstream = rng.standard_normal((L, d_v))  # dL/d(out), as if from the layers above
(fused * tt.Tensor(upstream)).sum().backward()
fused_grads = [t.grad.copy() for t in (q, k, v)]
for t in (q, k, v):
    t.grad = None
(F.scaled_dot_product_attention_composed(q, k, v, attn_mask=keep) * tt.Tensor(upstream)).sum().backward()
for name, g_fused, t in zip("qkv", fused_grads, (q, k, v)):
    assert np.allclose(g_fused, t.grad, rtol=1e-10, atol=1e-12), name
assert not fused_grads[1][~keep].any()  # padding keys receive no gradient
assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=keep), [q, k, v])

# %% [markdown]
# ## Why divide by $\sqrt{d}$
#
# If the $d$ components of $q$ and $k$ are independent with mean 0 and variance 1,
# then $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1:
# its variance is $d$. At $d = 1024$ the scores are spread over about $\pm 32$, and
# softmax of such numbers is almost one-hot. A one-hot softmax has almost no
# gradient: its Jacobian $\operatorname{diag}(p) - p p^\top$ is zero at a one-hot $p$.
# Dividing by $\sqrt{d}$ brings the variance back to 1 at every $d$.

# %%
dims = [4, 16, 64, 256, 1024]
n_pairs, n_keys = steps(4000, 2000), 16
measured_var, top_prob, jacobian_norm = {}, {}, {}
for dim in dims:
    qs = rng.standard_normal((n_pairs, 1, dim))  # (N, 1, dim): one query each
    ks = rng.standard_normal((n_pairs, n_keys, dim))  # (N, 16, dim): sixteen keys each
    dots = (qs * ks).sum(axis=-1)  # (N, 16)
    measured_var[dim] = dots.var()
    for scale in ("raw", "scaled"):
        p = F.softmax(tt.Tensor(dots / (np.sqrt(dim) if scale == "scaled" else 1))).data  # (N, 16)
        jac = p[:, :, None] * np.eye(n_keys) - p[:, :, None] * p[:, None, :]  # (N, 16, 16): diag(p) - p p^T
        top_prob[scale, dim] = p.max(axis=-1).mean()
        jacobian_norm[scale, dim] = np.linalg.norm(jac, axis=(1, 2)).mean()
    print(f"d={dim:5d}: var(q.k)={measured_var[dim]:8.1f}  top softmax weight raw {top_prob['raw', dim]:.3f}, "
          f"scaled {top_prob['scaled', dim]:.3f}")

for dim in dims:
    assert abs(measured_var[dim] / dim - 1) < 0.1  # var(q.k) = d
    assert 0.2 < top_prob["scaled", dim] < 0.45  # scaled: the same moderate softmax at every d
assert top_prob["raw", 1024] > 0.9  # unscaled: nearly one-hot ...
assert jacobian_norm["raw", 1024] < 0.2 * jacobian_norm["scaled", 1024]  # ... with a fraction of the gradient

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
axes[0].loglog(dims, [measured_var[dim] for dim in dims], "o-", label="measured var(q . k)")
axes[0].loglog(dims, dims, "k--", label="d")
axes[0].loglog(dims, [measured_var[dim] / dim for dim in dims], "s-", label="var(q . k / sqrt(d))")
axes[0].set(xlabel="d", title="the scores' variance grows like d")
for scale in ("raw", "scaled"):
    axes[1].semilogx(dims, [top_prob[scale, dim] for dim in dims], "o-", label=scale)
    axes[2].semilogx(dims, [jacobian_norm[scale, dim] for dim in dims], "o-", label=scale)
axes[1].set(xlabel="d", title="largest softmax weight (16 keys)", ylim=(0, 1.05))
axes[2].set(xlabel="d", title="|diag(p) - p p^T|: the softmax's gradient")
for ax in axes:
    ax.legend()
fig.tight_layout()
fig.savefig(figure_path("05_why_sqrt_d.png"), dpi=100)

# %% [markdown]
# ## Masks
#
# A mask says which keys a query may use; a forbidden score becomes $-\infty$ and
# its weight exactly 0. In `F.scaled_dot_product_attention` (as in PyTorch) a
# boolean `attn_mask` is True where attention is *allowed*, and it broadcasts
# over the batch.
#
# - **Causal**: query $i$ may see keys $j \le i$ only, so a language model cannot
#   peek at the token it is asked to predict. `F.causal_mask(T)` is the lower triangle.
# - **Padding**: keys that are filler see no attention. The real tokens' outputs
#   then do not depend on what the padding holds.

# %%
T, B = 6, 2
lengths = np.array([6, 4])  # the second sequence is 4 tokens and 2 of padding
x = tt.Tensor(rng.standard_normal((B, T, d)))  # (B, T, d), queries = keys = values here
real = np.arange(T) < lengths[:, None]  # (B, T): True for real tokens
causal = F.causal_mask(T)  # (T, T)
masks = {
    "causal": causal,  # (T, T), the same for every sequence
    "padding": real[:, None, :],  # (B, 1, T): hide padding keys from every query
    "causal + padding": causal & real[:, None, :],  # (B, T, T)
}
maps = {name: F.attention_weights(x, x, attn_mask=m).data for name, m in masks.items()}  # (B, T, T) each
for name, w in maps.items():
    assert np.allclose(w.sum(axis=-1), 1), name  # every query has at least one key to see here
assert not maps["causal"][:, ~causal].any()  # nothing above the diagonal
assert not maps["padding"][1][:, ~real[1]].any()  # nothing on sequence 2's padding

garbage = x.data.copy()
garbage[1, lengths[1]:] = 1e3 * rng.standard_normal((T - lengths[1], d))  # refill the padding with anything
mask = masks["causal + padding"]
before = F.scaled_dot_product_attention(x, x, x, attn_mask=mask).data
after = F.scaled_dot_product_attention(tt.Tensor(garbage), tt.Tensor(garbage), tt.Tensor(garbage), attn_mask=mask)
assert np.allclose(after.data[1, : lengths[1]], before[1, : lengths[1]])  # the real tokens do not notice

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (name, w) in zip(axes, maps.items()):
    ax.imshow(w[1], cmap="viridis", vmin=0, vmax=1)  # the second sequence, with its padding
    ax.set(xlabel="key j", ylabel="query i", title=f"{name} (sequence 2)")
fig.tight_layout()
fig.savefig(figure_path("05_masks.png"), dpi=100)

# %% [markdown]
# ## Additive versus dot-product attention
#
# Before Transformers, Bahdanau et al. (2015) scored a query against a key with a
# small MLP, $\operatorname{score}(q, k) = w^\top \tanh(W_q q + W_k k)$
# (`nn.AdditiveAttention`). The Transformer's score is a bilinear form,
# $\operatorname{score}(q, k) = (W_q q) \cdot (W_k k) / \sqrt{d}$: one matrix product
# for all pairs at once, where the MLP builds an $(L, S, h)$ tensor first.
#
# A task where a query must find its key: each example holds 8 distinct symbols
# (from 16) as keys, each with a random label (from 8) as its value; the query is
# one of the 8 symbols, and the answer is that key's label. Both models embed the
# symbols and the labels alike; only the scoring differs. Both are trained with
# Adam for the same number of steps.

# %%
N_SYMBOLS, N_LABELS, N_SLOTS, D_MODEL, HIDDEN, BATCH = 16, 8, 8, 16, 16, 64


def lookup_batch(rng):
    keys = np.argsort(rng.random((BATCH, N_SYMBOLS)), axis=1)[:, :N_SLOTS]  # (B, 8) distinct symbols
    labels = rng.integers(0, N_LABELS, (BATCH, N_SLOTS))  # (B, 8)
    slot = rng.integers(0, N_SLOTS, BATCH)  # (B,): which key the query asks for
    rows = np.arange(BATCH)
    return keys[rows, slot], keys, labels, labels[rows, slot], slot  # query (B,), ..., answer (B,), slot (B,)


class Lookup(nn.Module):
    """Embed query, keys and values; attend with ``score`` ("dot" or "additive"); classify the context."""

    def __init__(self, score):
        super().__init__()
        self.score = score
        self.symbols = nn.Embedding(N_SYMBOLS, D_MODEL)
        self.labels = nn.Embedding(N_LABELS, D_MODEL)
        if score == "dot":
            self.W_q = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.W_k = nn.Linear(D_MODEL, D_MODEL, bias=False)
        else:
            self.attn = nn.AdditiveAttention(D_MODEL, D_MODEL, HIDDEN)
        self.out = nn.Linear(D_MODEL, N_LABELS)

    def forward(self, query, keys, labels):
        q = self.symbols(query).unsqueeze(1)  # (B, 1, D): one query per example
        k, v = self.symbols(keys), self.labels(labels)  # (B, 8, D) each
        if self.score == "dot":
            weights = F.attention_weights(self.W_q(q), self.W_k(k))  # (B, 1, 8)
            context = weights @ v  # (B, 1, D)
        else:
            context, weights = self.attn(q, k, v)  # (B, 1, D), (B, 1, 8)
        return self.out(context.squeeze(1)), weights.squeeze(1)  # (B, 8 labels), (B, 8 slots)


def train_lookup(score):
    tt.manual_seed(0)
    model = Lookup(score)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    data, losses = np.random.default_rng(0), []
    for _ in range(N_STEPS):
        query, keys, labels, answer, _ = lookup_batch(data)
        loss = F.cross_entropy(model(query, keys, labels)[0], answer)
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    query, keys, labels, answer, slot = lookup_batch(np.random.default_rng(99))  # fresh examples
    with tt.no_grad():
        logits, weights = model(query, keys, labels)
    return model, losses, (logits.data.argmax(-1) == answer).mean(), weights.data, slot


results = {score: train_lookup(score) for score in ("dot", "additive")}
learned_by = {}
for score, (model, losses, accuracy, weights, slot) in results.items():
    scoring = sum(p.size for name, p in model.named_parameters() if name.startswith(("W_", "attn")))
    on_key = weights[np.arange(BATCH), slot].mean()
    learned_by[score] = int(np.argmax(np.array(losses) < 0.1))  # the first step with a loss under 0.1
    print(f"{score:8s}: accuracy {accuracy:.3f}, loss under 0.1 from step {learned_by[score]}, weight on the right "
          f"key {on_key:.3f}, {scoring} scoring parameters ({sum(p.size for p in model.parameters())} in all)")
    assert accuracy > 0.9 and on_key > 0.8  # both learn to find the key
assert 0 < learned_by["dot"] < learned_by["additive"]

# %% [markdown]
# Both solve the task, with about the same number of parameters
# ($2 d^2 = 512$ for $W_q, W_k$ against $2 d h + h = 528$). Here the dot product
# gets there first: comparing a query with a key is a product, which it has
# built in and the MLP must learn to approximate from sums and a $\tanh$. It also
# costs less: one $(L, d) \times (d, S)$ matrix product, where additive attention
# fills an $(L, S, h)$ tensor before scoring. That, and how well it runs on
# matrix hardware, is why Transformers use it.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for score, (_, losses, *_rest) in results.items():
    axes[0].semilogy(losses, label=score)
axes[0].set(xlabel="step", ylabel="cross-entropy", title="finding the matching key")
axes[0].legend()
for ax, (score, (*_first, weights, slot)) in zip(axes[1:], results.items()):
    ax.imshow(weights[:12], cmap="viridis", vmin=0, vmax=1)
    ax.plot(slot[:12], np.arange(12), "rx")
    ax.set(xlabel="key slot", ylabel="example", title=f"{score} attention (x = the right key)")
fig.tight_layout()
fig.savefig(figure_path("05_additive_vs_dot.png"), dpi=100)
print("saved", figure_path("05_additive_vs_dot.png"))

# %% [markdown]
# ## What you can do now
#
# - Compute scaled dot-product attention by hand on arrays: scores, scale, mask,
#   a softmax that cannot overflow, the weighted sum of the values.
# - Explain the $1/\sqrt{d}$: it keeps the scores' variance at 1, so the softmax
#   neither saturates nor loses its gradient as $d$ grows.
# - Build causal and padding masks, and show that the real tokens ignore what the
#   padding holds.
# - Compare dot-product with additive (Bahdanau) attention.
#
# Exercises: `exercises/05_attention.py`, checked with `tinytransformer exercises check 05`.
