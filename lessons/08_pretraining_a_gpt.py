# %% [markdown]
# # 08 · Pretraining a GPT
#
# A GPT learns from raw text with one task: **predict the next token**. Cut the text
# into windows of `T` tokens; at every position `t` of a window the model sees the
# tokens `x_1 .. x_t` (the causal mask hides the rest) and gives a probability to
# each of the `V` possible next tokens. The loss is the cross-entropy of the token
# that really came next, averaged over all `B * T` positions of a batch:
#
#     L = -1/(B T) * sum_{b, t} log p_model(x_{b, t+1} | x_{b, 1..t})
#
# in nats per token. No labels are needed: the text is its own answer key, which
# is why *pre*training can use any text there is. Three numbers put a loss in
# perspective:
#
# - `ln V`, the loss of a uniform guess: a model that knows nothing;
# - the **unigram** loss, the entropy of the token frequencies: knows which tokens
#   are common, ignores the context;
# - the **bigram** loss: knows the previous token only (a table of counts).
#
# A Transformer earns its keep by going below the bigram line, using the whole window.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import CharTokenizer, data_dir, load_corpus, random_windows, train_val_split
from tinytransformer.generation import generate
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.training import TrainConfig, Trainer

# %% [markdown]
# ## The corpus and its tokens
#
# Tiny Shakespeare (1.1 MB, the corpus of char-rnn and nanoGPT) when a copy is in the
# data directory (`$TINYTRANSFORMER_DATA`), otherwise Python's own help pages, which
# ship with every Python. Characters are the tokens, as in nanoGPT's Shakespeare run;
# the last 10% of the text is held out for validation.

# %%
if (data_dir() / "tinyshakespeare" / "input.txt").is_file():
    corpus_name, text = "Tiny Shakespeare", load_corpus("shakespeare")
else:
    corpus_name, text = "Python's help pages", load_corpus("pydoc")
tokenizer = CharTokenizer.train(text)
ids = np.asarray(tokenizer.encode(text))
train_ids, val_ids = train_val_split(ids, 0.1)
V = tokenizer.vocab_size
print(f"{corpus_name}: {len(text):,} characters, vocabulary of {V}; {len(train_ids):,} training / "
      f"{len(val_ids):,} validation tokens")
print(text[:250])

# %% [markdown]
# ## One batch: the targets are the inputs shifted by one
#
# `random_windows` cuts `B` windows at random offsets. Row `b` of the targets `y` is row
# `b` of the inputs `x` moved one token to the left, so each of the `T` positions is
# its own prediction problem: one window is `T` training examples.

# %%
x, y = random_windows(train_ids, block_size=16, batch_size=2, rng=np.random.default_rng(0))  # (2, 16) each
for t in range(4):
    print(f"context {tokenizer.decode(x[0, :t + 1])!r:22} -> next {tokenizer.decode(y[0, t:t + 1])!r}")
assert (x[:, 1:] == y[:, :-1]).all()

# %% [markdown]
# ## The three reference lines
#
# The bigram table counts how often token `j` follows token `i` in the training text
# (plus one, so no pair has probability zero), and its loss is measured on the
# validation text like the model's.

# %%
uniform_loss = math.log(V)
freq = np.bincount(train_ids, minlength=V) + 1.0
unigram_loss = float(-(freq / freq.sum() * np.log(freq / freq.sum())).sum())
counts = np.ones((V, V))
np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)  # counts[i, j]: how often j follows i
bigram = counts / counts.sum(axis=1, keepdims=True)  # P(next = j | previous = i)
bigram_loss = float(-np.log(bigram[val_ids[:-1], val_ids[1:]]).mean())
print(f"uniform {uniform_loss:.3f}   unigram {unigram_loss:.3f}   bigram {bigram_loss:.3f} nats per character")
assert bigram_loss < unigram_loss < uniform_loss

# %% [markdown]
# ## The model, and its loss before any training
#
# The full run uses nanoGPT's small CPU configuration (4 layers, 4 heads, width 128,
# context 64, batch 12, 2,000 steps, AdamW at lr 1e-3 with 100 warmup steps and a
# cosine decay to 1e-4, weight decay 0.1, gradients clipped to norm 1). CI's short
# mode trains a much smaller model for 50 steps. (`tinytransformer train` drops the
# weight decay and the clipping, which at this size only slow the model down: the
# README's "Train a GPT" compares both over eight seeds.)
#
# Weights start at N(0, 0.02), so every logit starts near 0 and every token near
# probability 1/V: the first loss should be within a few percent of `ln V`. If it is
# not, the initialisation (or the loss) is broken: the cheapest bug check there is.
# (It can land a little *below* `ln V`: the output layer shares its weights with the
# token embedding, so at the start the model slightly favours repeating the current
# token, which pays off on text with runs of spaces or `*`.)

# %%
if SHORT:
    model_config = GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=2, n_embd=32)
    train_config = TrainConfig(max_iters=50, batch_size=16, lr=3e-3, warmup_iters=5, eval_interval=25, eval_iters=5)
else:
    model_config = GPTConfig(vocab_size=V, block_size=64, n_layer=4, n_head=4, n_embd=128)
    train_config = TrainConfig(max_iters=2000, batch_size=12, lr=1e-3, warmup_iters=100, eval_interval=250,
                               eval_iters=20)
tt.manual_seed(train_config.seed)
model = GPT(model_config)
print(f"{model.num_parameters():,} parameters")
with tt.no_grad():
    _, initial = model(*random_windows(val_ids, model_config.block_size, 32, np.random.default_rng(1)))
print(f"loss before training: {initial.item():.4f}, ln V = {uniform_loss:.4f}")
assert abs(initial.item() - uniform_loss) < 0.05 * uniform_loss

# %% [markdown]
# ## Training, with samples as it goes
#
# `Trainer` runs the loop (see `tinytransformer/training/trainer.py`): a batch, the
# loss, `backward`, clip, an AdamW step, the next learning rate. Every
# `eval_interval` steps it measures the loss on fixed training and validation
# batches; at each of those moments we also let the model write a few lines, to see
# what it has learnt so far.

# %%
samples = {}
prompt = np.asarray(tokenizer.encode("\n"))[None, :]  # (1, 1)


def write_a_sample(trainer, losses):
    out = generate(trainer.model, prompt, steps(200, 60), temperature=0.8, seed=0)
    samples[trainer.step] = tokenizer.decode(out[0, 1:])


trainer = Trainer(model, train_ids, val_ids, train_config, tokenizer=tokenizer)
start = time.perf_counter()
history = trainer.train(progress=not SHORT, on_eval=write_a_sample)
seconds = time.perf_counter() - start
print(f"{trainer.step} steps in {seconds:.0f} s ({trainer.step * trainer.tokens_per_step / seconds:,.0f} tokens/s)")
for step, sample in samples.items():
    print(f"--- after {step} steps (val loss {history['val_loss'][history['eval_step'].index(step)]:.3f}) ---")
    print(sample)

# %% [markdown]
# ## The loss curves
#
# The faint line is the loss of each training batch; the dots are the evaluations
# on fixed batches. The learning rate warms up, and the loss drops fast through
# `ln V` and the unigram line (the model learns which characters are common), then
# more slowly as it learns to spell words, and, with enough steps, through the
# bigram line, where the context starts to pay.

# %%
fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
ax.plot(history["step"], history["train_loss"], color="tab:blue", alpha=0.25, lw=0.8, label="training batch")
ax.plot(history["eval_step"], history["eval_train_loss"], "o-", ms=3, color="tab:blue", label="training (evaluated)")
ax.plot(history["eval_step"], history["val_loss"], "o-", ms=3, color="tab:orange", label="validation")
for level, name, style in [(uniform_loss, "uniform: ln V", ":"), (unigram_loss, "unigram", "--"),
                           (bigram_loss, "bigram", "-.")]:
    ax.axhline(level, color="gray", ls=style, lw=1)
    ax.text(history["step"][-1], level, f" {name}", va="bottom", ha="right", color="gray")
ax.set(xlabel="step", ylabel="cross-entropy (nats per character)", title=f"Pretraining a GPT on {corpus_name}")
ax.legend()
ax.grid(alpha=0.3)
ax_lr.plot(history["step"], history["lr"])
ax_lr.set(xlabel="step", title="learning rate (warmup, cosine)")
fig.tight_layout()
fig.savefig(figure_path("08_pretraining_loss.png"), dpi=110)

final_val = history["val_loss"][-1]
print(f"validation loss {final_val:.3f} (uniform {uniform_loss:.3f}, unigram {unigram_loss:.3f}, "
      f"bigram {bigram_loss:.3f})")
assert final_val < uniform_loss, "after training the model must beat a uniform guess"
assert history["val_loss"][-1] < history["val_loss"][0]
if not SHORT:
    assert final_val < bigram_loss, "the full run must use more context than one character"
    if corpus_name == "Tiny Shakespeare":
        assert final_val < 1.95  # nanoGPT reports about 1.88 for this configuration

# %% [markdown]
# ## The same from the command line
#
# `tinytransformer train` runs this loop with these defaults, saves a checkpoint (the
# weights, AdamW's moments, the step, the generators' states: a run resumes exactly
# with `--resume`) and `loss.png` at every evaluation:
#
#     tinytransformer train --data shakespeare --max-iters 2000 --out runs/shakespeare
#     tinytransformer generate --checkpoint runs/shakespeare --prompt "ROMEO:"
#
# Lesson 09 is about that last command: how the next token is chosen, and how a KV
# cache makes each new token cheap.
