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
import copy
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import CharTokenizer, data_dir, load_corpus, random_windows, train_val_split
from tinytransformer.generation import generate
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.optim import AdamW, clip_grad_norm_
from tinytransformer.optim.lr_scheduler import WarmupCosineLR
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
# The unigram table counts how often each token occurs in the training text, the
# bigram table how often token `j` follows token `i` there (each count plus one, so
# nothing has probability zero). Both are then scored like the model: the
# cross-entropy of the *validation* text under the table, so the three lines and the
# model's validation loss all answer the same question on the same text.

# %%
uniform_loss = math.log(V)
freq = np.bincount(train_ids, minlength=V) + 1.0
unigram = freq / freq.sum()  # P(token), from the training text
unigram_loss = float(-np.log(unigram[val_ids]).mean())  # its cross-entropy on the validation text
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
# token embedding, *weight tying*, opened up in the next section, so at the start the
# model slightly favours repeating the current token, which pays off on text with
# runs of spaces or `*`.)

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
# ## Inside `GPT(config)`: the forward pass by hand
#
# `GPT` is nothing but the parts of lessons 04-06, stacked (`tinytransformer/models/gpt.py`):
#
# 1. **Embeddings.** `wte` (V, C) holds a vector per token, `wpe` (block_size, C) a
#    learned vector per position (lesson 04); their sum enters the residual stream.
# 2. **`n_layer` pre-LN blocks** (lesson 06): `x = x + attn(ln_1(x))` with causal
#    multi-head attention, then `x = x + mlp(ln_2(x))` with a GELU MLP of width 4C.
# 3. **`ln_f`**, one last LayerNorm on the residual stream.
# 4. **`lm_head`**, a Linear layer C -> V without bias that gives each position's
#    logits for the next token. Its weight *is* `wte.weight`, the same array (weight
#    tying, Press & Wolf 2017): the score of token `v` is the dot product of the
#    final vector with `v`'s own embedding. It saves V x C parameters, and a token's
#    input and output meanings learn from each other.
#
# One more detail is in the initialisation: every weight is drawn from N(0, 0.02),
# except the two projections that write into the residual stream in each block
# (`attn.c_proj` and `mlp.c_proj`), drawn with a standard deviation divided by
# `sqrt(2 n_layer)`. The stream adds `2 n_layer` such outputs, so the variance of
# their sum no longer grows with depth (GPT-2's scheme).
#
# Below, the forward pass is written with NumPy alone, reading the model's own
# parameters from its `state_dict` (GPT-2's names), on a float64 copy of the model
# so the comparison can be tight: the logits must match `model(x)` to 1e-10, and the
# loss too.

# %%
tied = model.lm_head.weight is model.transformer["wte"].weight
print(f"lm_head.weight is wte.weight: {tied}")
assert tied

def weight_std(suffix):
    """The standard deviation of all the weights whose names end in ``suffix``, pooled over the blocks."""
    return np.concatenate([p.data.ravel() for n, p in model.named_parameters() if n.endswith(suffix)]).std()


residual_std = 0.02 / math.sqrt(2 * model_config.n_layer)
print(f"weight std: c_attn {weight_std('c_attn.weight'):.4f} (0.02), c_fc {weight_std('c_fc.weight'):.4f} (0.02), "
      f"c_proj {weight_std('c_proj.weight'):.4f} (0.02 / sqrt(2 n_layer) = {residual_std:.4f})")
assert abs(weight_std("c_proj.weight") / residual_std - 1) < 0.05
assert abs(weight_std("c_fc.weight") / 0.02 - 1) < 0.05


def layer_norm(x, weight, bias, eps):
    mu = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1)
    return (x - mu) / np.sqrt(var + eps) * weight + bias  # (B, T, C)


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))  # x Phi(x), exact


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gpt_forward_by_hand(params, idx, config):
    """The logits (B, T, V) of a GPT from its parameters (name -> array), NumPy only."""
    B, T = idx.shape
    C, nh, eps = config.n_embd, config.n_head, config.layer_norm_eps
    hs = C // nh  # head size
    x = params["transformer.wte.weight"][idx] + params["transformer.wpe.weight"][:T]  # (B, T, C)
    causal = np.tril(np.ones((T, T), dtype=bool))  # (T, T): query t sees keys <= t
    for i in range(config.n_layer):
        prefix = f"transformer.h.{i}."
        p = {name[len(prefix):]: a for name, a in params.items() if name.startswith(prefix)}  # block i's parameters
        h = layer_norm(x, p["ln_1.weight"], p["ln_1.bias"], eps)  # (B, T, C)
        qkv = h @ p["attn.c_attn.weight"].T + p["attn.c_attn.bias"]  # (B, T, 3C)
        q, k, v = (a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, axis=-1))  # (B, nh, T, hs)
        scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs), -np.inf)  # (B, nh, T, T)
        heads = softmax(scores) @ v  # (B, nh, T, hs)
        y = heads.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C): the heads side by side
        x = x + y @ p["attn.c_proj.weight"].T + p["attn.c_proj.bias"]  # the residual stream, (B, T, C)
        h = layer_norm(x, p["ln_2.weight"], p["ln_2.bias"], eps)  # (B, T, C)
        h = gelu(h @ p["mlp.c_fc.weight"].T + p["mlp.c_fc.bias"])  # (B, T, 4C)
        x = x + h @ p["mlp.c_proj.weight"].T + p["mlp.c_proj.bias"]  # (B, T, C)
    x = layer_norm(x, params["transformer.ln_f.weight"], params["transformer.ln_f.bias"], eps)  # (B, T, C)
    return x @ params["transformer.wte.weight"].T  # (B, T, V): lm_head is wte (tied)


twin = copy.deepcopy(model).double()  # the same weights in float64
xb, yb = random_windows(val_ids, model_config.block_size, 4, np.random.default_rng(2))  # (4, T) each
logits_by_hand = gpt_forward_by_hand(twin.state_dict(), xb, model_config)  # (4, T, V)
log_probs = logits_by_hand - np.log(np.exp(logits_by_hand).sum(axis=-1, keepdims=True))  # log-softmax
loss_by_hand = -np.take_along_axis(log_probs, yb[..., None], axis=-1).mean()  # cross-entropy of the true next tokens
with tt.no_grad():
    logits_model, loss_model = twin(xb, yb)
gap = np.abs(logits_by_hand - logits_model.data).max()
print(f"largest |by hand - model(x)| over {logits_by_hand.size:,} logits: {gap:.1e}; "
      f"loss {loss_by_hand:.6f} by hand, {loss_model.item():.6f} from the model")
assert gap < 1e-10 and abs(loss_by_hand - loss_model.item()) < 1e-10

# %% [markdown]
# ## The training loop, written out
#
# Training is ten lines: draw a batch, run the model to get the loss, clear the old
# gradients, backpropagate, clip the gradients' total norm (one bad batch cannot
# throw the weights far), let AdamW step (lesson 03), and move the learning rate
# along its warmup-then-cosine schedule. `Trainer` runs exactly these lines (its
# `train_step`, in `tinytransformer/training/trainer.py`), and adds evaluations,
# a progress bar and checkpoints around them. Started from the same weights (the
# same seed) and drawing the batches from a generator seeded as `Trainer` seeds its
# own, the loop below must give the very losses `Trainer` logs for its first steps.

# %%
N_BY_HAND = 5
tt.manual_seed(train_config.seed)
looped = GPT(model_config)  # the same seed, so the same initial weights as `model`
assert all(np.array_equal(a, b) for a, b in zip(looped.state_dict().values(), model.state_dict().values()))
c = train_config
optimizer = AdamW(looped.optimizer_groups(c.weight_decay), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
scheduler = WarmupCosineLR(optimizer, c.warmup_iters, c.lr_decay_iters, c.min_lr_ratio)
batch_rng = np.random.default_rng(c.seed)  # the generator Trainer draws its batches from
losses_by_hand = []
for _ in range(N_BY_HAND):
    xb, yb = random_windows(train_ids, model_config.block_size, c.batch_size, batch_rng)  # (B, T) each
    _, loss = looped(xb, yb)  # forward and loss
    optimizer.zero_grad()
    loss.backward()  # gradients of every parameter
    clip_grad_norm_(looped.parameters(), c.grad_clip)  # total gradient norm at most grad_clip
    optimizer.step()  # AdamW
    scheduler.step()  # the learning rate for the next step
    losses_by_hand.append(loss.item())
print("the loop's first losses:", np.round(losses_by_hand, 4))

# %% [markdown]
# ## Training, with samples as it goes
#
# Now `Trainer` runs the same loop for all the steps. Every `eval_interval` steps it
# measures the loss on fixed training and validation batches; at each of those
# moments we also let the model write a few lines, to see what it has learnt so far.

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
first_steps = history["train_loss"][:N_BY_HAND]
print(f"Trainer's first losses: {np.round(first_steps, 4)}; the loop by hand gave the same "
      f"(largest difference {np.abs(np.subtract(first_steps, losses_by_hand)).max():.1e})")
assert np.allclose(first_steps, losses_by_hand, rtol=1e-6, atol=0)  # bit for bit on one thread
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
#
# ## What you can do now
#
# - Write a GPT's forward pass from its parameters: token and position embeddings,
#   pre-LN blocks on the residual stream, `ln_f`, and the tied `lm_head`.
# - Write the training loop (batch, loss, zero_grad, backward, clip, AdamW, schedule)
#   and recognise it inside `Trainer`.
# - Pretrain a GPT on a corpus, and check its first loss against `ln V`.
# - Judge a validation loss against the uniform, unigram and bigram baselines.
