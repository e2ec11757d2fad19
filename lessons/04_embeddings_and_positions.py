# %% [markdown]
# # 04 · Embeddings and positions
#
# A Transformer turns each token id into a vector (the *embedding*) and then lets
# the vectors look at each other (attention). This lesson shows what an embedding
# is, why attention on its own cannot tell "dog bites man" from "man bites dog",
# and three ways to give it a sense of order: sinusoidal, learned and rotary
# positions.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import figure_path, steps

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer import nn, optim

N_STEPS = steps(400, 120)

# %% [markdown]
# ## An embedding is a lookup, and a lookup is a matrix product
#
# `nn.Embedding(V, D)` holds a table $W$ of shape `(V, D)`, one row per token. Id
# $i$ becomes row $W_i$. Writing the id as a one-hot vector $e_i$ (a 1 at place
# $i$), that row is $e_i^\top W$: an embedding is a `Linear` layer without bias,
# fed one-hot vectors, computed without multiplying by all those zeros.

# %%
V, D = 10, 4
tt.manual_seed(0)
emb = nn.Embedding(V, D, dtype=np.float64)
ids = np.array([3, 1, 3, 7])  # token 3 appears twice
one_hot = np.eye(V)[ids]  # (4, V)
looked_up = emb(ids)  # (4, D)
assert np.array_equal(looked_up.data, one_hot @ emb.weight.data)  # (4, V) @ (V, D): the same rows, exactly

# %% [markdown]
# The backward pass follows from the product. If $Y = X W$ with $X$ the one-hot
# rows, then $\partial L / \partial W = X^\top \, \partial L/\partial Y$: row $v$ of the
# gradient is the sum of the upstream gradients of every position holding token
# $v$. That is a *scatter-add*: each position adds its gradient into its token's
# row; token 3 (twice) gets two contributions, tokens never seen get zero.

# %%
upstream = np.random.default_rng(0).standard_normal((4, D))  # dL/dY, as if from the layers above
(looked_up * tt.Tensor(upstream)).sum().backward()  # L = sum(Y * upstream), so dL/dY = upstream
scatter = np.zeros((V, D))
np.add.at(scatter, ids, upstream)  # scatter[ids[s]] += upstream[s]
assert np.allclose(emb.weight.grad, one_hot.T @ upstream, rtol=1e-14, atol=0)
assert np.allclose(emb.weight.grad, scatter, rtol=1e-14, atol=0)
assert np.allclose(emb.weight.grad[3], upstream[0] + upstream[2])  # two positions, two contributions
assert not emb.weight.grad[[0, 2, 4, 5, 6, 8, 9]].any()  # unseen tokens: no gradient
print("rows of dL/dW that are not zero:", np.flatnonzero(np.abs(emb.weight.grad).sum(axis=1)))

# %% [markdown]
# ## Attention alone cannot see order
#
# Self-attention computes, for each position $t$,
# $y_t = \sum_s \operatorname{softmax}_s(q_t \cdot k_s / \sqrt{d})\, v_s$ with
# $q_t, k_t, v_t$ linear in $x_t$. Nothing in that formula mentions $t$ or $s$:
# permute the input rows by $\pi$ and the scores, weights and outputs are permuted
# the same way. Attention is *permutation-equivariant*, $f(x_\pi) = f(x)_\pi$, so
# "dog bites man" and "man bites dog" give the word "dog" the very same vector.
#
# **A black box for now.** This lesson needs attention before the course builds it:
# the formula above is all you need here. Lesson 05 computes it step by step (the
# scores, the $\sqrt{d}$, the softmax, and the causal mask that `is_causal=True`
# applies below: position $t$ may only look at positions $\le t$); lesson 06 opens
# `nn.MultiheadAttention`, several such attentions side by side, and checks it by
# hand. Until then, treat both as "the formula above, with learned $W_q, W_k, W_v$".

# %%
vocab = {"dog": 0, "bites": 1, "man": 2}
E = 16
tt.manual_seed(0)
words = nn.Embedding(len(vocab), E, dtype=np.float64)
attention = nn.MultiheadAttention(E, num_heads=2, batch_first=True, dtype=np.float64)


def self_attend(x):
    return attention(x, x, x, need_weights=False)[0]  # (1, T, E) -> (1, T, E)


sentence = np.array([[vocab["dog"], vocab["bites"], vocab["man"]]])  # (1, 3)
perm = np.array([2, 1, 0])  # "man bites dog"
y = self_attend(words(sentence))
y_swapped = self_attend(words(sentence[:, perm]))
assert np.allclose(y_swapped.data, y.data[:, perm], rtol=1e-12, atol=1e-14)  # f(x_pi) = f(x)_pi

rng = np.random.default_rng(1)
x = rng.standard_normal((1, 12, E))  # any input at all, not just these words
perm12 = rng.permutation(12)
assert np.allclose(self_attend(tt.Tensor(x[:, perm12])).data, self_attend(tt.Tensor(x)).data[:, perm12], atol=1e-12)

# %% [markdown]
# Add a vector that depends on the position, $x_t + p_t$, and the symmetry breaks:
# after the swap "dog" sits at position 2 instead of 0, so it enters attention as
# a different vector and leaves as a different one.

# %%
pe = nn.SinusoidalPositionalEncoding(E, max_len=64, dtype=np.float64)
y = self_attend(pe(words(sentence)))
y_swapped = self_attend(pe(words(sentence[:, perm])))
gap = np.abs(y_swapped.data - y.data[:, perm]).max()
print(f"with positions, |f(x_pi) - f(x)_pi| reaches {gap:.3f}")
assert gap > 0.05

# %% [markdown]
# ## Sinusoidal positions (Vaswani et al. 2017)
#
# A fixed table, added to the embeddings:
#
# $$PE_{t,2i} = \sin(t\,\omega_i), \qquad PE_{t,2i+1} = \cos(t\,\omega_i), \qquad \omega_i = 10000^{-2i/d}.$$
#
# Each pair of columns is a clock hand turning at its own speed, from one turn
# every $2\pi$ positions to one every $10000 \cdot 2\pi$. Moving $k$ positions on
# turns each hand by $k\,\omega_i$, a rotation that does not depend on $t$; so
# $PE_t \cdot PE_{t+k} = \sum_i \cos(k\,\omega_i)$ depends only on the offset $k$.

# %%
T_TABLE, D_TABLE = 64, 32
table = F.sinusoidal_positions(T_TABLE, D_TABLE, dtype=np.float64)  # (64, 32)
omega = 10000.0 ** (-np.arange(0, D_TABLE, 2) / D_TABLE)  # (16,)
k = 5
c, s = np.cos(k * omega), np.sin(k * omega)
sin_cols, cos_cols = table[:, 0::2], table[:, 1::2]  # (64, 16) each
assert np.allclose(table[k:, 0::2], sin_cols[:-k] * c + cos_cols[:-k] * s)  # sin(a + b) = sin a cos b + cos a sin b
assert np.allclose(table[k:, 1::2], cos_cols[:-k] * c - sin_cols[:-k] * s)  # cos(a + b) = cos a cos b - sin a sin b
gram = table @ table.T  # (64, 64): PE_t . PE_u
for offset in range(T_TABLE):
    assert np.allclose(np.diagonal(gram, offset), np.cos(offset * omega).sum())  # constant along each diagonal

fig, (ax_t, ax_g) = plt.subplots(1, 2, figsize=(10, 4))
ax_t.imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax_t.set(xlabel="position t", ylabel="dimension", title="sinusoidal table (fast pairs at the top)")
ax_g.imshow(gram, cmap="viridis")
ax_g.set(xlabel="position u", ylabel="position t", title="PE_t . PE_u depends only on t - u")
fig.tight_layout()
fig.savefig(figure_path("04_sinusoidal_positions.png"), dpi=100)

# %% [markdown]
# ## Learned positions (GPT)
#
# GPT simply learns a second embedding table, one row per position
# (`nn.LearnedPositionalEmbedding`, GPT-2's `wpe`), and adds it. GPT-2 starts it
# as small noise, $N(0, 0.02^2)$, so whatever structure it ends with, training put
# there. A task that needs order: at each position, output the *previous* token.
# One causal attention head must find the key one step back; without positions
# it can only tell keys apart by their content. (`F.attention_weights` is the
# softmax of the scaled scores, the weights of the formula above; `is_causal=True`
# hides the later positions. Both are lesson 05's.)


# %%
V_TASK, T_TASK, D_TASK, BATCH = 16, 12, 32, 32


class PreviousToken(nn.Module):
    """Token embedding (+ learned positions) -> one causal attention head -> logits over the vocabulary."""

    def __init__(self, use_positions):
        super().__init__()
        self.tok = nn.Embedding(V_TASK, D_TASK)
        self.pos = nn.LearnedPositionalEmbedding(T_TASK, D_TASK) if use_positions else None
        if self.pos is not None:
            self.pos.weight.data *= 0.02  # GPT-2's init, N(0, 0.02): training, not the init, draws the table
        self.qkv = nn.Linear(D_TASK, 3 * D_TASK)
        self.head = nn.Linear(D_TASK, V_TASK)

    def forward(self, ids):
        x = self.tok(ids)  # (B, T, D)
        if self.pos is not None:
            x = self.pos(x)  # x + P[:T]
        q, k, v = self.qkv(x).split(D_TASK, axis=-1)  # 3 x (B, T, D)
        weights = F.attention_weights(q, k, is_causal=True)  # (B, T, T)
        return self.head(weights @ v), weights  # (B, T, V), (B, T, T)


def batch(rng):
    ids = rng.integers(0, V_TASK, (BATCH, T_TASK))  # (B, T)
    targets = np.concatenate([np.full((BATCH, 1), -100), ids[:, :-1]], axis=1)  # position 0 has no previous
    return ids, targets


def train_previous_token(use_positions):
    tt.manual_seed(0)
    model = PreviousToken(use_positions)
    table_before = None if model.pos is None else model.pos.weight.data.copy()
    opt = optim.Adam(model.parameters(), lr=3e-2)
    rng = np.random.default_rng(0)
    for _ in range(N_STEPS):
        ids, targets = batch(rng)
        logits, _ = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, V_TASK), targets.reshape(-1))
        model.zero_grad()
        loss.backward()
        opt.step()
    ids, targets = batch(np.random.default_rng(123))  # fresh sequences to measure on
    with tt.no_grad():
        logits, weights = model(ids)
    accuracy = (logits.data.argmax(-1) == targets)[:, 1:].mean()
    return model, table_before, accuracy, weights.data.mean(axis=0)


model, table_before, acc_pos, attn_map = train_previous_token(use_positions=True)
_, _, acc_nopos, _ = train_previous_token(use_positions=False)
on_previous = np.diagonal(attn_map, -1).mean()  # weight query t puts on key t - 1
print(f"previous-token accuracy: {acc_pos:.3f} with learned positions, {acc_nopos:.3f} without")
print(f"attention on the previous position: {on_previous:.3f}")
assert acc_pos > 0.9 and acc_nopos < 0.5
assert on_previous > 0.8

# %% [markdown]
# Without positions the head still beats chance ($1/16$): by content it can avoid
# its own token and spread over the earlier ones, which is exact at $t = 1$ and
# a guess after that. With positions it attends almost only to $t - 1$.
#
# What did the table learn? Not a copy of the sinusoids, but something of their
# kind: how similar the vectors of positions $t$ and $u$ are comes to depend
# mostly on the offset $t - u$ (for the sinusoidal table, entirely).


# %%
def offset_share(table):
    """How much of the similarity cos(P_t, P_u), t != u, the offset t - u alone explains (R^2; 1 = all of it)."""
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)  # (T, D)
    cos = unit @ unit.T  # (T, T)
    offset = np.subtract.outer(np.arange(len(table)), np.arange(len(table)))  # (T, T): t - u
    by_offset = np.zeros_like(cos)
    for o in np.unique(offset):
        by_offset[offset == o] = cos[offset == o].mean()  # the best guess from the offset alone
    off_diagonal = offset != 0
    return 1 - (cos - by_offset)[off_diagonal].var() / cos[off_diagonal].var(), cos


share_before, _ = offset_share(table_before)
share_after, cos_after = offset_share(model.pos.weight.data)
share_sinusoidal, _ = offset_share(F.sinusoidal_positions(T_TASK, D_TASK, dtype=np.float64))
print(f"share of position similarity explained by the offset: {share_before:.2f} before, {share_after:.2f} after "
      f"training ({share_sinusoidal:.2f} for the sinusoidal table)")
assert np.isclose(share_sinusoidal, 1.0) and share_after > share_before + 0.25

fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
for ax, tab, title in [(axes[0], table_before, "before"), (axes[1], model.pos.weight.data, "after")]:
    lim = np.abs(tab).max()  # each with its own colour scale: the table grows during training
    ax.imshow(tab.T, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set(xlabel="position", ylabel="dimension", title=f"learned positions, {title} training")
axes[2].imshow(cos_after, cmap="RdBu", vmin=-1, vmax=1)
axes[2].set(xlabel="position u", ylabel="position t", title="cos(P_t, P_u) after training")
axes[3].imshow(attn_map, cmap="viridis")
axes[3].set(xlabel="key position", ylabel="query position", title="attention after training (batch mean)")
fig.tight_layout()
fig.savefig(figure_path("04_learned_positions.png"), dpi=100)

# %% [markdown]
# ## Rotary positions, RoPE (Su et al. 2021)
#
# Instead of adding a vector, RoPE *rotates* queries and keys: pair $i$ of a
# head's dimensions at position $m$ is turned by the angle $m\,\theta_i$,
# $\theta_i = 10000^{-2i/d}$. Rotations compose and are orthogonal,
# $R(a)^\top R(b) = R(b - a)$, so
#
# $$\big(R(m\theta)\,q\big) \cdot \big(R(n\theta)\,k\big) = q^\top R\big((n - m)\theta\big)\, k :$$
#
# the score depends on the positions only through their offset $n - m$, and a
# rotation leaves each vector's length alone. (Added positions give neither.)

# %%
HEAD_DIM, T_ROPE = 16, 32
rope = nn.RotaryEmbedding(HEAD_DIM, max_len=T_ROPE, dtype=np.float64)
rng = np.random.default_rng(2)
q_vec, k_vec = rng.standard_normal(HEAD_DIM), rng.standard_normal(HEAD_DIM)
q_rot = rope(tt.Tensor(np.tile(q_vec, (T_ROPE, 1)))).data  # (T, d): the same q placed at every position m
k_rot = rope(tt.Tensor(np.tile(k_vec, (T_ROPE, 1)))).data  # (T, d): the same k at every position n
scores = q_rot @ k_rot.T  # (T, T): score[m, n]
assert np.allclose(np.linalg.norm(q_rot, axis=1), np.linalg.norm(q_vec))  # rotations keep lengths
for offset in range(-T_ROPE + 1, T_ROPE):
    diagonal = np.diagonal(scores, offset)  # every (m, n) with n - m = offset
    assert np.allclose(diagonal, diagonal[0], rtol=1e-12, atol=1e-12)

added = F.sinusoidal_positions(T_ROPE, HEAD_DIM, dtype=np.float64)  # (T, d)
scores_added = (q_vec + added) @ (k_vec + added).T  # (T, T): additive positions for comparison
assert np.ptp(np.diagonal(scores_added, 3)) > 0.1  # the same offset, different scores

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
axes[0].imshow(rope.cos.data[:, : HEAD_DIM // 2].T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
axes[0].set(xlabel="position m", ylabel="pair i", title="RoPE: cos(m theta_i), the turn of each pair")
axes[1].imshow(scores, cmap="RdBu")
axes[1].set(xlabel="key position n", ylabel="query position m", title="RoPE q.k: constant along diagonals")
axes[2].imshow(scores_added, cmap="RdBu")
axes[2].set(xlabel="key position n", ylabel="query position m", title="added positions: not")
fig.tight_layout()
fig.savefig(figure_path("04_rope.png"), dpi=100)
print("saved", figure_path("04_rope.png"))

# %% [markdown]
# ## What you can do now
#
# - Explain an embedding as a lookup, the same as a one-hot vector times a matrix, and
#   predict its gradient (a scatter-add into the rows of the tokens seen).
# - Show that attention without positions cannot tell one word order from another.
# - Build sinusoidal, learned and rotary positions, and say which depend only on the
#   offset between two positions.
#
# Exercises: `exercises/04_positions.py`, checked with `tinytransformer exercises check 04`.
