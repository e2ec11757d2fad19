# %% [markdown]
# # 09 · Generation: choosing the next token, and the KV cache
#
# A trained GPT gives, for a context, one logit `z_i` per token of the vocabulary.
# Generation is a loop: turn the logits into a choice, append the chosen token to the
# context, run the model again. How the choice is made changes the text a lot:
#
# | strategy | rule | effect |
# |---|---|---|
# | greedy | `argmax z` | deterministic; tends to loop on the likeliest phrase |
# | temperature `tau` | sample from `softmax(z / tau)` | `tau < 1` sharpens, `tau > 1` flattens |
# | top-k | keep the `k` largest logits, renormalise, sample | cuts the long tail of unlikely tokens |
# | top-p (nucleus) | keep the smallest set of likeliest tokens whose mass is `>= p` | a tail cut that adapts to the model's confidence (Holtzman et al. 2020) |
#
# Then the cost: without a cache, each new token re-runs the model over the whole
# context. With a **KV cache** each layer keeps the keys and values it has already
# computed, and a new token costs one position.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import CharTokenizer, data_dir, load_corpus, train_val_split
from tinytransformer.generation import generate, sample_next_token
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.training import TrainConfig, Trainer

# %% [markdown]
# ## A model to sample from
#
# A small character-level GPT, trained for a few minutes as in lesson 08 (a few
# seconds in CI's short mode, where the text will still be mostly noise: the
# claims below hold for any model).

# %%
if (data_dir() / "tinyshakespeare" / "input.txt").is_file():
    text, prompt_text = load_corpus("shakespeare"), "ROMEO:"
else:
    text, prompt_text = load_corpus("pydoc"), "The "
tokenizer = CharTokenizer.train(text)
train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
tt.manual_seed(0)
if SHORT:
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32))
else:
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128))
config = TrainConfig(max_iters=steps(800, 40), lr=steps(1e-3, 3e-3), warmup_iters=steps(100, 5),
                     eval_interval=steps(800, 40), eval_iters=steps(20, 5))
history = Trainer(model, train_ids, val_ids, config).train(progress=not SHORT)
print(f"validation loss {history['val_loss'][-1]:.3f} after {config.max_iters} steps")
model.eval()
prompt = np.asarray(tokenizer.encode(prompt_text))[None, :]  # (1, T)

# %% [markdown]
# ## One distribution, five ways to draw from it
#
# Take the logits the model gives after the prompt and look at the distribution each
# strategy actually samples from (the 12 likeliest characters shown).

# %%
with tt.no_grad():
    logits, _ = model(prompt)
z = logits.data[0, -1].astype(np.float64)  # (V,) the next-token logits


def distribution(z, temperature=1.0, top_k=None, top_p=None, n=20_000):
    """The empirical distribution of ``sample_next_token``: n draws, counted."""
    draws = sample_next_token(np.tile(z, (n, 1)), temperature, top_k, top_p, rng=np.random.default_rng(0))
    return np.bincount(draws, minlength=len(z)) / n


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


strategies = {
    "temperature 1": dict(temperature=1.0),
    "temperature 0.5": dict(temperature=0.5),
    "temperature 1.5": dict(temperature=1.5),
    "top-k, k = 5": dict(top_k=5),
    "top-p, p = 0.9": dict(top_p=0.9),
}
order = np.argsort(-z)[:12]
labels = [repr(tokenizer.decode([i]))[1:-1].replace(" ", "␣") for i in order]  # a space made visible
fig, axes = plt.subplots(1, len(strategies), figsize=(15, 3), sharey=True)
empirical = {}
for ax, (name, options) in zip(axes, strategies.items()):
    empirical[name] = distribution(z, **options)
    ax.bar(range(12), empirical[name][order])
    ax.set_xticks(range(12), labels, fontsize=8)
    ax.set_title(name)
axes[0].set_ylabel(f"P(next) after {prompt_text!r}")
fig.tight_layout()
fig.savefig(figure_path("09_sampling_strategies.png"), dpi=110)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


for name, p in empirical.items():
    print(f"{name:16} entropy {entropy(p):.3f} nats, tokens with any draw: {int((p > 0).sum())}")

# %% [markdown]
# What the samples must show, and do:
#
# - at temperature 1 the draws follow `softmax(z)` (up to sampling noise);
# - a lower temperature concentrates the mass (lower entropy), a higher one spreads it;
# - top-k never draws outside the `k` likeliest tokens;
# - top-p draws exactly the nucleus: the likeliest tokens up to the first whose
#   cumulative probability reaches `p`.

# %%
p = softmax(z)
assert np.abs(empirical["temperature 1"] - p).max() < 0.02
assert entropy(empirical["temperature 0.5"]) < entropy(empirical["temperature 1"]) < entropy(
    empirical["temperature 1.5"])
assert set(np.flatnonzero(empirical["top-k, k = 5"])) <= set(np.argsort(-z)[:5])
ranked = np.argsort(-p)
nucleus = ranked[: int(np.searchsorted(np.cumsum(p[ranked]), 0.9)) + 1]
assert p[nucleus].sum() >= 0.9 > p[nucleus[:-1]].sum()
assert set(np.flatnonzero(empirical["top-p, p = 0.9"])) <= set(nucleus)

# %% [markdown]
# ## Side by side
#
# The same prompt continued five ways. Greedy decoding is deterministic (the seed
# plays no part) and often falls into a loop; high temperatures drift into
# nonsense; top-k and top-p keep the variety while cutting the unlikely tail.

# %%
n_new = steps(200, 40)
texts = {"greedy": generate(model, prompt, n_new, temperature=0, seed=0)}
for name, options in strategies.items():
    texts[name] = generate(model, prompt, n_new, seed=0, **{"temperature": 1.0, **options})
for name, out in texts.items():
    print(f"--- {name} ---\n{tokenizer.decode(out[0])}\n")
assert (generate(model, prompt, n_new, temperature=0, seed=1) == texts["greedy"]).all()
assert (generate(model, prompt, n_new, seed=0) == texts["temperature 1"]).all(), "a seed fixes the sample"

# %% [markdown]
# ## The KV cache
#
# Attention at position `t` needs the query of `t` and the keys and values of
# positions `0..t`. The keys and values of earlier positions do not change when a
# token is appended (the mask stops them from looking ahead), so each layer can keep
# them: a `KVCache` holds two arrays of shape `(B, n_head, t, head_size)` and grows
# by one position per token. Without it, generating `n` tokens runs the model over
# `1 + 2 + ... + n` positions, `O(n^2)` in all; with it, over `n`.
#
# Learned position embeddings stop at `block_size`: once the context is full, the
# window must slide, every position shifts, and the cache is refilled from scratch.
# So we generate a full context's worth of tokens, on a model with a longer context
# (an untrained one: the work does not depend on the weights), and count the
# positions the model processes: a subclass of `GPT` whose `infer` (what `generate`
# calls for each new token) adds up the lengths it is given. The count is exact and
# the same on any machine; the time it saves depends on the machine and on what else
# runs on it, so the time is printed, not asserted.


# %%
class CountingGPT(GPT):
    """A GPT that counts the positions its ``infer`` processes."""

    positions = 0

    def infer(self, idx, caches=None):
        self.positions += idx.shape[1]  # (B, T): T positions in this call
        return super().infer(idx, caches)


long_model = CountingGPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=steps(256, 64), n_layer=4, n_head=4,
                                   n_embd=128))
n_tokens = long_model.config.block_size - 1
start_ids = prompt[:, :1]  # (1, 1)
runs = {}
for use_cache in (True, False):
    long_model.positions = 0
    start = time.perf_counter()
    out = generate(long_model, start_ids, n_tokens, temperature=0.8, seed=0, use_cache=use_cache)
    runs[use_cache] = {"seconds": time.perf_counter() - start, "tokens": out, "positions": long_model.positions}
cached, plain = runs[True], runs[False]
print(f"{n_tokens} tokens: {plain['positions']:,} positions processed without the cache, {cached['positions']:,} "
      f"with it ({plain['positions'] / cached['positions']:.1f}x less work)")
print(f"measured here: {plain['seconds']:.2f} s without the cache, {cached['seconds']:.2f} s with it "
      f"({plain['seconds'] / cached['seconds']:.1f}x faster on this machine, now)")
assert (cached["tokens"] == plain["tokens"]).all(), "the cache must not change a single token"
assert cached["positions"] == n_tokens  # one position per new token
assert plain["positions"] == n_tokens * (n_tokens + 1) // 2  # 1 + 2 + ... + n: the whole context every time
for net in (model, long_model):  # greedy too, and on the trained model
    assert (generate(net, prompt, 30, temperature=0, use_cache=True)
            == generate(net, prompt, 30, temperature=0, use_cache=False)).all()

# %% [markdown]
# The cost of each new token, with and without the cache, as the context grows:

# %%
sizes = np.linspace(8, n_tokens, steps(6, 3), dtype=int)
cost = {True: [], False: []}
for n in sizes:
    for use_cache in (True, False):
        start = time.perf_counter()
        generate(long_model, start_ids, int(n), temperature=0, use_cache=use_cache)
        cost[use_cache].append(time.perf_counter() - start)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(sizes, cost[False], "o-", label="no cache: O(n^2) positions")
ax.plot(sizes, cost[True], "s-", label="KV cache: O(n) positions")
ax.set(xlabel="tokens generated", ylabel="seconds", title=f"Generation time, {long_model.num_parameters():,} parameters")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(figure_path("09_kv_cache.png"), dpi=110)

# %% [markdown]
# The positions processed are the work that scales with the context: the matrix
# products of every layer run once per position. What the cache does not remove is
# attention's own cost, the new query against all the cached keys, which still grows
# with the context; at these sizes the per-position products dominate.
#
# ## What you can do now
#
# - Turn logits into a next token greedily, with temperature, top-k or top-p, and say
#   what each does to the distribution.
# - Make sampling repeatable with a seed, and know why greedy decoding needs none.
# - Explain the KV cache: which keys and values can be kept, why the tokens do not
#   change, and why it turns O(n^2) positions into O(n).
#
# Exercises: `exercises/09_sampling.py`, checked with `tinytransformer exercises check 09`.
