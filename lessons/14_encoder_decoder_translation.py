# %% [markdown]
# # 14 · The encoder-decoder Transformer: numbers into words
#
# GPT is half of the original Transformer (Vaswani et al. 2017). The whole of it
# translates: an encoder reads the source sentence, a decoder writes the target
# one token at a time, looking back at the source through cross-attention. This
# lesson trains one to write numbers in English ("4,213" -> "four thousand two
# hundred thirteen"), a task whose data the library generates, so the test set is
# truly unseen; then it draws what cross-attention looks at, compares greedy
# decoding with beam search, and asks which positional encoding copes with
# numbers longer than any it was trained on.

# %%
import copy
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.generation import beam_search, greedy_decode, model_step
from tinytransformer.kernels import set_num_threads
from tinytransformer.models import Seq2SeqTransformer
from tinytransformer.nn import functional as F
from tinytransformer.tasks.translation import (
    TranslateConfig, decode_ids, evaluate_translator, train_translator, translate,
)

set_num_threads(1)  # small matrices: one thread is fastest, and the machine may be shared

# %% [markdown]
# ## The architecture
#
#     source ids -> embedding * sqrt(d) + sinusoidal positions -> N encoder layers -> memory
#     target ids -> embedding * sqrt(d) + sinusoidal positions -> N decoder layers -> Linear -> next-token logits
#
# An encoder layer is self-attention (every source token sees every other;
# padding hidden) and an MLP. A decoder layer has three sub-layers: causal
# self-attention over the target so far, **cross-attention** whose queries come
# from the decoder and whose keys and values are the encoder's memory, and an
# MLP. The parameters carry `torch.nn.Transformer`'s names, so its weights load
# unchanged (the tests do exactly that and compare every gradient).

# %%
config = TranslateConfig(max_steps=steps(1000, 80), test_size=steps(2000, 100))
task = config.task()
model = Seq2SeqTransformer(config.model_config(task))
names = [name for name, _ in model.named_parameters()]
print(f"{model.num_parameters():,} parameters; the first decoder layer's:")
print("\n".join(n for n in names if ".decoder.layers.0." in n))
assert "transformer.decoder.layers.0.multihead_attn.in_proj_weight" in names  # cross-attention, PyTorch's name
assert "transformer.encoder.norm.weight" in names and "transformer.decoder.layers.0.norm3.weight" in names

# %% [markdown]
# ## The forward pass by hand
#
# As lesson 08 did for the GPT, here is the whole model in NumPy, reading its own
# parameters by name. Every part is one the course has built: embeddings and
# sinusoidal positions (04), multi-head attention from `in_proj_weight` (06, with the
# masks of 05), LayerNorm and the pre-LN residual wiring (06; `norm_first=True`, so
# each sub-layer reads `norm_i(x)` and adds its output to `x`), the MLP with a ReLU.
# Two things are new: the decoder's second sub-layer attends with queries from the
# target and keys and values from the encoder's output (the *memory*), with the
# source's padding hidden; and the logits come from a `generator` of their own, not
# tied to an embedding. Three sentence pairs of different lengths, padded, on a
# float64 copy of the model: the logits must match `model(src, tgt_in)` to 1e-10.

# %%
mc = model.config


def layer_norm(x, P, name, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1)
    return (x - mu) / np.sqrt(var + eps) * P[f"{name}.weight"] + P[f"{name}.bias"]  # (B, T, d)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attend(P, name, queries, memory, keep):
    """Multi-head attention ``name`` (lesson 06): queries (B, L, d) read memory (B, S, d); keep (B, L, S), True = may."""
    (B, L, d), S, nh = queries.shape, memory.shape[1], mc.nhead
    hs = d // nh
    W_q, W_k, W_v = np.split(P[f"{name}.in_proj_weight"], 3)  # (d, d) each
    b_q, b_k, b_v = np.split(P[f"{name}.in_proj_bias"], 3)  # (d,) each
    q = (queries @ W_q.T + b_q).reshape(B, L, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, L, hs)
    k = (memory @ W_k.T + b_k).reshape(B, S, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, S, hs)
    v = (memory @ W_v.T + b_v).reshape(B, S, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, S, hs)
    scores = np.where(keep[:, None], q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs), -np.inf)  # (B, nh, L, S)
    heads = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, L, d)  # (B, L, d): the heads side by side
    return heads @ P[f"{name}.out_proj.weight"].T + P[f"{name}.out_proj.bias"]  # (B, L, d)


def feed_forward(P, layer, x):
    h = np.maximum(0, x @ P[f"{layer}.linear1.weight"].T + P[f"{layer}.linear1.bias"])  # (B, T, ff): ReLU
    return h @ P[f"{layer}.linear2.weight"].T + P[f"{layer}.linear2.bias"]  # (B, T, d)


def seq2seq_forward_by_hand(P, positions, src, tgt_in):
    """Logits (B, T, V_tgt) of the encoder-decoder from its parameters (name -> array) and its table of
    sinusoidal positions (max_len, d), NumPy only."""
    (B, S), T, d = src.shape, tgt_in.shape[1], mc.d_model
    source_keys = np.broadcast_to((src != mc.pad_id)[:, None, :], (B, S, S))  # (B, S, S): real source tokens
    x = P["src_tok_emb.weight"][src] * math.sqrt(d) + positions[:S]  # (B, S, d)
    for i in range(mc.num_encoder_layers):
        layer = f"transformer.encoder.layers.{i}"
        x = x + attend(P, f"{layer}.self_attn", layer_norm(x, P, f"{layer}.norm1"),
                       layer_norm(x, P, f"{layer}.norm1"), source_keys)  # every real source token sees every other
        x = x + feed_forward(P, layer, layer_norm(x, P, f"{layer}.norm2"))  # (B, S, d)
    memory = layer_norm(x, P, "transformer.encoder.norm")  # (B, S, d): what the decoder reads
    causal = np.broadcast_to(np.tril(np.ones((T, T), dtype=bool)), (B, T, T))  # (B, T, T)
    to_source = np.broadcast_to((src != mc.pad_id)[:, None, :], (B, T, S))  # (B, T, S)
    y = P["tgt_tok_emb.weight"][tgt_in] * math.sqrt(d) + positions[:T]  # (B, T, d)
    for i in range(mc.num_decoder_layers):
        layer = f"transformer.decoder.layers.{i}"
        h = layer_norm(y, P, f"{layer}.norm1")
        y = y + attend(P, f"{layer}.self_attn", h, h, causal)  # the target so far
        y = y + attend(P, f"{layer}.multihead_attn", layer_norm(y, P, f"{layer}.norm2"), memory, to_source)  # cross
        y = y + feed_forward(P, layer, layer_norm(y, P, f"{layer}.norm3"))  # (B, T, d)
    y = layer_norm(y, P, "transformer.decoder.norm")  # (B, T, d)
    return y @ P["generator.weight"].T + P["generator.bias"]  # (B, T, V_tgt)


twin = copy.deepcopy(model).double().eval()
src, tgt_in, tgt_out = task.batch([7, 4213, 970_021])  # (3, S), (3, T), (3, T), padded with 0
table = twin.positions.pe.data  # (max_len, d): the model's own table, built by F.sinusoidal_positions
assert np.array_equal(table, F.sinusoidal_positions(mc.max_len, mc.d_model))  # (computed in float32, as the model did)
by_hand = seq2seq_forward_by_hand(twin.state_dict(), table, src, tgt_in)  # (3, T, V)
with tt.no_grad():
    logits, _ = twin(src, tgt_in)
gap = np.abs(by_hand - logits.data).max()
print(f"sources padded to {src.shape[1]}, targets to {tgt_in.shape[1]}; largest |by hand - model| over "
      f"{by_hand.size:,} logits: {gap:.1e}")
assert gap < 1e-10

# %% [markdown]
# ## The data
#
# `NumberTranslation` writes the pairs itself. The test numbers are drawn once
# from a seed and never handed out for training, so a correct answer on them is
# generalisation, not memory. Sources are characters, targets words (the
# hyphen of "twenty-one" is a token of its own).

# %%
for n in (7, 4213, 970_021, int(task.test_numbers[0])):
    print("%-10s -> %s" % task.texts(n))
training_draw = task.sample_train(np.random.default_rng(0), 50_000)
assert not set(training_draw.tolist()) & set(task.test_numbers.tolist())

# %% [markdown]
# ## Training
#
# Cross-entropy on the next target token with label smoothing 0.1 (the paper's
# value: the model is trained to put 90% on the right word and spread the rest,
# which keeps it from growing over-confident), AdamW, warmup then cosine decay,
# fresh random numbers in every batch. `tinytransformer translate --train` runs
# this with the same defaults.

# %%
model, task, history = train_translator(config, progress=False)
result = evaluate_translator(model, task)
print(f"{history['steps']} steps in {history['seconds']:.0f} s; held-out exact match {result['exact_match']:.1%}, "
      f"BLEU {100 * result['bleu']:.1f} on {result['n']} numbers")
for m in result["mistakes"][:3]:
    print(f"  {m['source']}: wrote {m['prediction']!r}, expected {m['reference']!r}")
losses = np.convolve(history["loss"], np.ones(10) / 10, mode="valid")
assert losses[-1] < 0.6 * losses[0]
if not SHORT:
    assert result["exact_match"] >= 0.99  # the bar the command's defaults are set to reach

# %% [markdown]
# ## What cross-attention looks at
#
# Record the last decoder layer's cross-attention while it re-reads its own
# translation (teacher forcing: the decoder's input is <bos> followed by the
# output). Each row is one step, labelled with the word that step writes, and
# holds a distribution over the source characters. A fully trained model
# (`tinytransformer translate --train`) reads "970,021" like a person: "seventy"
# from the 7, "thousand" from the comma, "twenty" from the 2, "one" from the 1,
# and the end from <eos>; after this lesson's short training the picture is
# blurrier.

# %%
source = "970,021"
words = translate(model, task, [source])[0]
src = task.encode_source([source])  # (1, S)
tok = task.target_tokenizer
tgt_in = np.array([[tok.bos_id, *tok.encode(words)]])  # (1, T)
attention = model.transformer.decoder.layers[-1].multihead_attn
attention.record = True
model(src, tgt_in)
attention.record = False
weights = attention.last_weights[0]  # (T, S)
assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-5)

fig, ax = plt.subplots(figsize=(5, 6))
ax.imshow(weights, cmap="Blues", vmin=0)
ax.set_xticks(range(src.shape[1]), [*source, "<eos>"])
ax.set_yticks(range(tgt_in.shape[1]), [*tok.split(words), "<eos>"])
ax.set(xlabel="source", ylabel="the word each step writes", title=f"cross-attention: {source!r}")
fig.tight_layout()
fig.savefig(figure_path("14_cross_attention.png"), dpi=110)
plt.close(fig)
print(source, "->", words)

# %% [markdown]
# ## Greedy decoding vs beam search
#
# Greedy decoding takes the likeliest word at each step. It can be trapped: a
# first word with probability 0.6 whose continuations are all poor loses to one
# with 0.4 followed by a near-certain end. Beam search keeps the `k` best
# prefixes at every step and finds it. A tiny hand-made "model" (a table of
# next-token probabilities; ids: 0 <bos>, 1 <eos>, 2 "a", 3 "b") shows it.

# %%
TRAP = {(): [1e-9, 1e-9, 0.6, 0.4], (2,): [1e-9, 0.5, 0.25, 0.25], (3,): [1e-9, 0.9, 0.05, 0.05]}


def table_step(prefixes, rows):
    return np.log(np.array([TRAP[tuple(p[1:])] for p in prefixes]))


greedy, greedy_score = greedy_decode(table_step, 1, 0, 1, max_len=2)
beam, beam_score = beam_search(table_step, 1, 0, 1, max_len=2, beam_size=2)
print(f"greedy {greedy[0]} p = {np.exp(greedy_score[0]):.2f};  beam {beam[0]} p = {np.exp(beam_score[0]):.2f}")
assert beam_score[0] > greedy_score[0]

# %% [markdown]
# On the trained translator the two mostly agree: the task has one right answer
# and the model is confident. A beam of one *is* greedy decoding.

# %%
sources = task.encode_source([task.texts(n)[0] for n in task.test_numbers[:200]])
step = model_step(model, sources)
greedy_out, greedy_scores = greedy_decode(step, len(sources), tok.bos_id, tok.eos_id, 24)
beam_out, beam_scores = beam_search(step, len(sources), tok.bos_id, tok.eos_id, 24, beam_size=4)
assert decode_ids(model, task, sources, beam_size=1) == greedy_out
agree = np.mean([g == b for g, b in zip(greedy_out, beam_out)])
print(f"beam 4 and greedy agree on {agree:.0%} of {len(sources)} test numbers; beam's summed log-probability is "
      f"higher or equal on {np.mean(beam_scores >= greedy_scores - 1e-6):.0%}")

# %% [markdown]
# ## Length generalisation: which positions extrapolate?
#
# Train on numbers below 100,000 and test on 100,000 to 999,999: every test
# source is one character longer than any training source, and most targets are
# longer too. Attention itself does not care about length; the positional
# encoding decides. A learned table has never trained the rows of the new
# positions; sinusoids exist at every position but the model only knows some of
# their phases; rotary positions reach attention only as *distances*, which
# mostly did occur in training. This short version trains briefly;
# `benchmarks/length_generalisation.py` trains each to the end.

# %%
def last_group_right(model, task):
    """How often the words after "thousand" are right: the last three digits, whose distances
    from the end of the number all occurred in training."""
    sources, references = zip(*(task.texts(n) for n in task.test_numbers))
    predictions = translate(model, task, sources)
    return np.mean([r.split("thousand")[-1] == p.split("thousand")[-1] and "thousand" in p
                    for r, p in zip(references, predictions)])


table = {}
for positional in ("sinusoidal", "learned", "rotary"):
    cfg = TranslateConfig(train_range=(0, 100_000), test_range=(100_000, 1_000_000), test_size=steps(1000, 100),
                          positional=positional, max_steps=steps(1000, 20))
    m, t, _ = train_translator(cfg, progress=False)
    short = evaluate_translator(m, t, t.sample_train(np.random.default_rng(1), len(t.test_numbers)))
    table[positional] = (short["exact_match"], evaluate_translator(m, t)["exact_match"], last_group_right(m, t))
print("positions    < 100,000   100,000-999,999   last three digits right")
for positional, (short, long, last) in table.items():
    print(f"{positional:11s} {short:9.1%} {long:14.1%} {last:16.1%}")
assert all(0 <= v <= 1 for row in table.values() for v in row)
if not SHORT:
    assert all(long < 0.01 for _, long, _ in table.values())  # "X hundred thousand" was never in a training target
    assert table["rotary"][2] > 0.9 > 0.5 > max(table["sinusoidal"][2], table["learned"][2])

fig, ax = plt.subplots(figsize=(7, 3.5))
x = np.arange(3)
for offset, column, label in ((-0.27, 0, "exact, < 100,000 (trained lengths)"), (0, 1, "exact, 100,000-999,999"),
                              (0.27, 2, "last three digits, 100,000-999,999")):
    ax.bar(x + offset, [100 * row[column] for row in table.values()], 0.27, label=label)
ax.set_xticks(x, list(table))
ax.set(ylabel="right (%)", ylim=(0, 130), title="trained on numbers below 100,000")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(figure_path("14_length_generalisation.png"), dpi=110)
plt.close(fig)

# %% [markdown]
# No encoding writes a single long number right, and none could: "X hundred
# thousand" never occurred in a training target, so writing it is more than a
# question of positions. What differs is how the rest is read. With absolute
# positions (learned or sinusoidal) every digit of a 7-character source sits at
# a position that means something else in training, and the whole number is
# misread. With rotary positions attention sees only distances, so the last
# three digits, at the distances from the end that training showed, come out
# right ("one hundred thousand forty-two" becomes "ten thousand forty-two").

# %%
benchmark = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "length_generalisation.json"
if benchmark.is_file():
    print("the full benchmark (each trained to the end):")
    for positional, r in json.loads(benchmark.read_text())["positionals"].items():
        print(f"{positional:11s} {r['short']['exact_match']:9.1%} {r['long']['exact_match']:14.1%} "
              f"{r['long'].get('last_group', float('nan')):16.1%}")

# %% [markdown]
# ## What you can do now
#
# - Write an encoder-decoder Transformer's forward pass from its parameters:
#   bidirectional encoder, causal decoder, cross-attention to the memory.
# - Train one to translate, with label smoothing, on data that guarantees an unseen
#   test set.
# - Read cross-attention maps, and decode greedily or with a beam (and say when they differ).
# - Say which positional encodings extrapolate to longer inputs, and why.
