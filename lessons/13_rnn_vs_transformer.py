# %% [markdown]
# # 13 · Recurrent networks vs the Transformer
#
# Before attention, a sequence was read the way we read: one token at a time,
# carrying a summary of everything so far in a hidden state. This lesson builds
# that recurrent cell, the Elman RNN and the LSTM, differentiates through the
# loop (backpropagation through time), shows why the RNN's gradient vanishes and
# how the LSTM's cell state helps, then races both against a GPT of the same size.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.autograd import no_grad
from tinytransformer.data import CharTokenizer, load_corpus, random_windows, train_val_split
from tinytransformer.kernels import set_num_threads
from tinytransformer.models import GPT, RNNLM, GPTConfig, RNNLMConfig
from tinytransformer.nn import LSTM, RNN, LSTMCell, RNNCell
from tinytransformer.optim import AdamW
from tinytransformer.training import TrainConfig, Trainer

set_num_threads(1)  # small matrices: one thread is fastest, and the machine may be shared

# %% [markdown]
# ## The recurrent cell
#
# An Elman cell mixes the new input with the previous state and squashes:
#
#     h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
#
# The same weights are used at every step, so a sequence of any length runs
# through a fixed number of parameters. `RNNCell` is that one line; we check it
# against NumPy.

# %%
tt.manual_seed(0)
rng = np.random.default_rng(0)
cell = RNNCell(3, 4, dtype=np.float64)
x_t, h_prev = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))  # (B, I), (B, H)
h_t = cell(tt.Tensor(x_t), tt.Tensor(h_prev))  # (B, H)
by_hand = np.tanh(x_t @ cell.weight_ih.data.T + cell.bias_ih.data + h_prev @ cell.weight_hh.data.T + cell.bias_hh.data)
print([name for name, _ in cell.named_parameters()])  # PyTorch's names
assert np.allclose(h_t.data, by_hand, rtol=1e-14)

# %% [markdown]
# The LSTM (Hochreiter & Schmidhuber 1997) keeps a second state, the cell c, and
# four gates computed like the RNN's pre-activation, in PyTorch's order i, f, g, o:
#
#     c_t = f * c_{t-1} + i * g          forget some of the old, write some of the new
#     h_t = o * tanh(c_t)                show some of it
#
# c is only ever scaled by f and added to: no squashing nonlinearity sits on its path.

# %%
lstm_cell = LSTMCell(3, 4, dtype=np.float64)
c_prev = rng.standard_normal((2, 4))
h_new, c_new = lstm_cell(tt.Tensor(x_t), (tt.Tensor(h_prev), tt.Tensor(c_prev)))
z = x_t @ lstm_cell.weight_ih.data.T + lstm_cell.bias_ih.data + h_prev @ lstm_cell.weight_hh.data.T \
    + lstm_cell.bias_hh.data  # (B, 4H)
i, f, g, o = np.split(z, 4, axis=1)
sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
c_by_hand = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(g)
assert np.allclose(c_new.data, c_by_hand, rtol=1e-14)
assert np.allclose(h_new.data, sigmoid(o) * np.tanh(c_by_hand), rtol=1e-14)

# %% [markdown]
# ## Backpropagation through time
#
# Unroll the loop and it is an ordinary (deep) computation graph: step t feeds
# step t+1. Autograd differentiates it like any other, and every step adds its
# share to the gradient of the shared weights. `RNN` runs the whole sequence as
# one op whose backward walks the steps in reverse by hand (`nn/recurrent.py`);
# both must agree.

# %%
T = 6
layer = RNN(3, 4, dtype=np.float64)
cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
xs = tt.Tensor(rng.standard_normal((T, 2, 3)))  # (T, B, I)
h = None
for t in range(T):
    h = cell(xs[t], h)  # the loop, unrolled into the graph
h.sum().backward()
out, h_n = layer(xs)
h_n.sum().backward()
print("dL/dW_hh through the unrolled cells:\n", cell.weight_hh.grad.round(4))
assert np.allclose(cell.weight_hh.grad, layer.weight_hh_l0.grad, rtol=1e-10)
assert np.allclose(cell.weight_ih.grad, layer.weight_ih_l0.grad, rtol=1e-10)

# %% [markdown]
# ## Vanishing gradients
#
# Going one step back multiplies the gradient by the Jacobian
# diag(1 - h_t^2) W_hh. Over many steps that product shrinks (or explodes)
# geometrically, so the loss at the last step barely reaches the early inputs:
# an RNN struggles to learn long-range dependencies (Bengio et al. 1994).
# Through the LSTM's cell the gradient is multiplied by the forget gate f instead,
# which the network can hold near 1. We read ||dL/dh_t|| for a loss on the last
# state only, keeping each h_t's gradient with `retain_grad`.

# %%
T, H = 60, 32
inputs = rng.standard_normal((T, 1, 8))


def state_gradient_norms(kind, forget_bias=0.0):
    tt.manual_seed(0)
    cell = RNNCell(8, H, dtype=np.float64) if kind == "rnn" else LSTMCell(8, H, dtype=np.float64)
    if kind == "lstm":
        cell.bias_ih.data[H : 2 * H] += forget_bias  # rows H..2H of the bias feed the forget gate
    state, hs = None, []
    for t in range(T):
        state = cell(tt.Tensor(inputs[t]), state)
        h = state[0] if kind == "lstm" else state
        hs.append(h.retain_grad())
    hs[-1].sum().backward()
    return np.array([np.linalg.norm(h.grad) for h in hs])


curves = {
    "RNN (tanh)": state_gradient_norms("rnn"),
    "LSTM, PyTorch's init": state_gradient_norms("lstm"),
    "LSTM, forget bias +1": state_gradient_norms("lstm", 1.0),
    "LSTM, forget bias +3": state_gradient_norms("lstm", 3.0),
}
fig, ax = plt.subplots(figsize=(7, 4))
for label, norms in curves.items():
    ax.semilogy(np.arange(T), norms / norms[-1], label=label)
ax.set(xlabel="time step t", ylabel="||dL/dh_t|| / ||dL/dh_T||", title="gradient of the last state's loss, back in time")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("13_vanishing_gradients.png"), dpi=110)
plt.close(fig)
reach = {label: norms[0] / norms[-1] for label, norms in curves.items()}
print({label: f"{r:.1e}" for label, r in reach.items()})
assert reach["RNN (tanh)"] < 1e-10  # sixty steps back, nothing is left
assert reach["LSTM, forget bias +3"] > 1e-3  # an open forget gate carries the gradient across
assert all(reach[label] > reach["RNN (tanh)"] for label in reach if label.startswith("LSTM"))

# %% [markdown]
# The LSTM is not immune: with its gates at their initial 0.5 the cell loses
# half of itself per step too. What it has is a path the network can *learn* to
# keep open, and a common trick (Gers et al. 2000; Jozefowicz et al. 2015) is to
# start the forget gate's bias at 1.
#
# ## Truncated backpropagation through time
#
# On long sequences one stops the gradient every k steps (Williams & Peng 1990):
# the forward pass is unchanged, but the state handed across a boundary counts
# as a constant. `bptt_steps=k` does that inside the layer; it equals running
# chunks of k steps and detaching the state between them.

# %%
k = 10
lstm = LSTM(8, H)
x = tt.Tensor(inputs.astype(np.float32), requires_grad=True)
out, _ = lstm(x, bptt_steps=k)
out[-1].sum().backward()
reached = np.abs(x.grad).sum(axis=(1, 2)) > 0
print("steps the last output's gradient reaches:", np.flatnonzero(reached))
assert not reached[: (T - 1) // k * k].any() and reached[(T - 1) // k * k :].all()

# %% [markdown]
# ## The comparison: GPT vs LSTM vs RNN
#
# Three character-level language models of about the same size, on Python's
# help pages, with the same trainer and batches. `RNNLM` has GPT's interface,
# so `Trainer`, checkpoints and `generate` serve all three
# (`tinytransformer train --model lstm`). We measure the validation loss,
# training tokens per second, and the loss at each position of the 64-character
# window: position t predicts from t+1 characters of context.
# `benchmarks/rnn_vs_gpt.py` runs the full race on Tiny Shakespeare with equal
# wall-clock budgets.

# %%
text = load_corpus("pydoc")
tok = CharTokenizer.train(text)
train_ids, val_ids = train_val_split(np.asarray(tok.encode(text)), 0.1)
V, BLOCK = tok.vocab_size, 64
models = {  # widths chosen so that all three have about 64k parameters
    "GPT": lambda: GPT(GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, n_embd=48)),
    "LSTM": lambda: RNNLM(RNNLMConfig(vocab_size=V, block_size=BLOCK, cell="lstm", n_layer=1, n_embd=77)),
    "RNN": lambda: RNNLM(RNNLMConfig(vocab_size=V, block_size=BLOCK, cell="rnn", n_layer=2, n_embd=103)),
}
eval_rng = np.random.default_rng(1)
val_windows = [random_windows(val_ids, BLOCK, 16, eval_rng) for _ in range(steps(40, 8))]


def per_position_loss(model):
    model.eval()
    total = np.zeros(BLOCK)
    with no_grad():
        for x, y in val_windows:
            log_p = model(x, y)[0].log_softmax(axis=-1).data  # (B, T, V)
            total -= np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0].mean(axis=0)
    return total / len(val_windows)


N_STEPS = steps(600, 30)
results = {}
for name, make in models.items():
    tt.manual_seed(0)
    model = make()
    config = TrainConfig(max_iters=N_STEPS, batch_size=16, lr=3e-3, warmup_iters=20, eval_interval=N_STEPS,
                         eval_iters=2)
    trainer = Trainer(model, train_ids, val_ids, config)
    start = time.perf_counter()
    for _ in range(N_STEPS):
        trainer.train_step()
    seconds = time.perf_counter() - start
    loss_by_position = per_position_loss(model)
    results[name] = {"params": model.num_parameters(), "tokens/s": N_STEPS * trainer.tokens_per_step / seconds,
                     "val loss": loss_by_position.mean(), "by position": loss_by_position}
    print(f"{name:5s} {results[name]['params']:7,} params  {results[name]['tokens/s']:7,.0f} tokens/s  "
          f"val loss {results[name]['val loss']:.3f}")

fig, ax = plt.subplots(figsize=(7, 4))
for name, r in results.items():
    ax.plot(np.arange(1, BLOCK + 1), r["by position"], label=f"{name} ({r['params'] / 1e3:.0f}k params)")
ax.set(xscale="log", xlabel="characters of context", ylabel="validation loss (nats/char)",
       title=f"loss against context length, after {N_STEPS} steps")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("13_loss_by_position.png"), dpi=110)
plt.close(fig)
for name, r in results.items():
    assert r["val loss"] < np.log(V), name  # every model learnt something beyond a uniform guess
    assert r["by position"][BLOCK // 2 :].mean() < r["by position"][0], name  # context helps each of them
sizes = [r["params"] for r in results.values()]
assert max(sizes) < 1.05 * min(sizes)  # a fair race: the same size within 5%

# %% [markdown]
# ## A race attention wins: recall across a gap
#
# On text, most of what predicts the next character is a few characters back, where
# a recurrent state does well. Attention's advantage is reach: any earlier position
# is one step away, however far back. A task that needs only reach: each sequence
# starts with one of 8 symbols, then `gap` filler tokens (4 kinds, at random), then a
# `?`; the model must answer the first symbol at the `?` (only that position is
# scored; chance is 1 in 8). An RNN must carry the symbol through `gap` updates of
# its state, and its gradient must come back through as many (the vanishing gradient
# above); a GPT's attention at `?` can look at position 0 directly, with the learned
# position embedding telling it where that is. Models of about 14k parameters, one
# layer each, the same batches, the same optimiser and the same number of steps (the
# short mode races the GPT against the RNN only; the full lesson adds the LSTM and a
# middling gap).

# %%
N_SYMBOLS, N_FILLERS = 8, 4
QUERY = N_SYMBOLS + N_FILLERS  # ids: symbols 0-7, fillers 8-11, the query 12
COPY_V = QUERY + 1
GAPS = [4, 30] if SHORT else [4, 16, 48]
COPY_STEPS = steps(400, 200)
RACERS = ["GPT", "RNN"] if SHORT else ["GPT", "LSTM", "RNN"]


def recall_batch(n, gap, rng):
    """n sequences: a symbol, ``gap`` fillers, the query; the only target is the symbol, at the query."""
    symbol = rng.integers(0, N_SYMBOLS, n)  # (n,)
    fillers = rng.integers(N_SYMBOLS, QUERY, (n, gap))  # (n, gap)
    x = np.concatenate([symbol[:, None], fillers, np.full((n, 1), QUERY)], axis=1)  # (n, gap + 2)
    y = np.full_like(x, -1)  # -1: not scored
    y[:, -1] = symbol
    return x, y


def recall_model(name, T):
    if name == "GPT":
        return GPT(GPTConfig(vocab_size=COPY_V, block_size=T, n_layer=1, n_head=1, n_embd=32))
    return RNNLM(RNNLMConfig(vocab_size=COPY_V, block_size=T, cell=name.lower(), n_layer=1,
                             n_embd=40 if name == "LSTM" else 80))


recall = {}  # (model, gap) -> accuracy on held-out sequences
for gap in GAPS:
    for name in RACERS:
        tt.manual_seed(0)
        model = recall_model(name, gap + 2)
        optimizer = AdamW(model.optimizer_groups(0.0), lr=3e-3)
        rng = np.random.default_rng(0)  # the same batches for every model
        for _ in range(COPY_STEPS):
            _, loss = model(*recall_batch(32, gap, rng))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        x, y = recall_batch(500, gap, np.random.default_rng(1))
        with no_grad():
            logits, _ = model(x, y)
        recall[name, gap] = (logits.data[:, -1].argmax(-1) == y[:, -1]).mean()
        print(f"gap {gap:2d}  {name:4s} {model.num_parameters():6,} params  recall accuracy {recall[name, gap]:.1%}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for name in RACERS:
    ax.plot(GAPS, [100 * recall[name, gap] for gap in GAPS], "o-", label=name)
ax.axhline(100 / N_SYMBOLS, color="gray", ls=":", label="chance")
ax.set(xlabel="gap (tokens between the symbol and the query)", ylabel="recalled (%)", ylim=(0, 105),
       title=f"recall across a gap, after {COPY_STEPS} steps")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(figure_path("13_recall_across_a_gap.png"), dpi=110)
plt.close(fig)
short_gap, long_gap = GAPS[0], GAPS[-1]
assert all(recall[name, short_gap] > 0.9 for name in RACERS)  # a short gap: everyone recalls
assert recall["GPT", long_gap] > 0.95  # a long gap: attention still reaches back ...
assert all(recall[name, long_gap] < 0.3 for name in RACERS if name != "GPT")  # ... the recurrent states do not

# %% [markdown]
# At a gap of 4 every model recalls the symbol. At a long gap the GPT still recalls
# it perfectly, while the RNN (and, in the full lesson, the LSTM) stays at chance: the
# signal the symbol left in the state, and the gradient that would teach the model to
# keep it, fade over the gap. The LSTM can learn to hold its forget gate open, and at
# the middling gap of the full lesson it partly does. The race is one budget, not a
# proof: in a trial run with three times the learning rate, the RNN learned to recall
# most symbols across a gap of 24; attention needs no such tuning, because its path to
# position 0 has the same length at every gap. This is the trade the two families
# make: the recurrent state costs the same at every step but must squeeze the past
# into a fixed vector; attention keeps every past position and pays for it with a
# cost that grows with the context.
#
# The full race on text, if it has been run (`python benchmarks/rnn_vs_gpt.py`), ends
# with this table; read the README's section on it for what it shows.

# %%
benchmark = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "rnn_vs_gpt.json"
if benchmark.is_file():
    for name, r in json.loads(benchmark.read_text())["models"].items():
        print(f"{name.upper():5s} {r['parameters']:8,} params  {r['tokens_per_s']:7,.0f} tokens/s  "
              f"val loss {r['val_loss']:.3f} after {r['seconds']:.0f} s")
elif not SHORT:
    print("run `python benchmarks/rnn_vs_gpt.py` for the full comparison")

# %% [markdown]
# ## What you can do now
#
# - Write an Elman RNN cell and an LSTM cell, and check them against NumPy.
# - Backpropagate through time, by unrolling the loop or by hand, and truncate it.
# - Show why an RNN's gradient vanishes over many steps and how the LSTM's forget gate
#   can keep it.
# - Race recurrent models against a GPT of the same size, on text and on a task that
#   needs reach, and say what each family pays for what it gets.
