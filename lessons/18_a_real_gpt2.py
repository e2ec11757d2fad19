# %% [markdown]
# # 18 · A real GPT-2
#
# Everything so far ran on models we trained ourselves, in minutes. OpenAI's GPT-2 small
# is the same architecture as our `GPT` (pre-LN blocks, learned positions, an output
# layer tied to the token embedding), 124 million parameters, trained on 40 GB of web
# text. Its weights are a folder in Hugging Face's layout:
#
#     config.json          the sizes: n_layer, n_head, n_embd, n_positions, vocab_size, ...
#     model.safetensors    the arrays, by name (transformer.h.0.attn.c_attn.weight, ...)
#     vocab.json           the tokenizer: token -> id
#     merges.txt           the BPE merges, in the order they were learned
#
# and `GPT.from_pretrained(folder)` reads it into the code of lessons 04-09. We count
# its parameters layer by layer, generate with it, read its layers with the logit lens,
# look at one head's attention, and fine-tune it to tell positive reviews from negative,
# all its weights or only low-rank adapters (LoRA).
#
# **Which GPT-2.** The real one is used when its files are here: in the Hugging Face
# cache (`~/.cache/huggingface/hub`, filled by `tinytransformer generate --pretrained gpt2`
# or by transformers), or in a folder named by `$TINYTRANSFORMER_GPT2`. Nothing is
# downloaded by this lesson. Otherwise, and always in CI's short mode, it builds a
# **stand-in**: a small GPT-2 made with the `transformers` package, random weights, and a
# byte-level BPE tokenizer trained on Python's help pages with the `tokenizers` package,
# saved in exactly the same four files. Every step below runs the same on both; what
# only trained weights can show is checked on the real one only, and the lesson says
# which is which.

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import data_dir, load_corpus, load_sst2
from tinytransformer.data.batching import pad
from tinytransformer.generation import generate
from tinytransformer.interpret import attention_maps, logit_lens, plot_attention_maps, plot_logit_lens, token_labels
from tinytransformer.kernels import set_num_threads
from tinytransformer.models import SequenceClassifier
from tinytransformer.models.hf_gpt2 import FILES, load_model_and_tokenizer
from tinytransformer.nn import KVCache, merge_lora
from tinytransformer.optim import AdamW

set_num_threads(1)


# %% [markdown]
# ## Finding GPT-2, or building a stand-in

# %%
def find_gpt2():
    """The folder of GPT-2 small if its four files are here ($TINYTRANSFORMER_GPT2, or the Hugging Face cache)."""
    if os.environ.get("TINYTRANSFORMER_GPT2"):
        return Path(os.environ["TINYTRANSFORMER_GPT2"])
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for name in ("openai-community/gpt2", "gpt2"):
        try:  # the cache only: local_files_only never touches the network
            folder = Path(snapshot_download(name, allow_patterns=list(FILES), local_files_only=True))
        except Exception:  # huggingface_hub's "not in the cache" errors
            continue
        if all((folder / f).is_file() for f in FILES):
            return folder
    return None


def build_stand_in(folder):
    """A small random GPT-2 and its tokenizer, written by transformers and tokenizers as the real one is."""
    import tokenizers
    import torch
    import transformers

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's bytes and split
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([load_corpus("pydoc")[:200_000]], trainer=trainer)
    bpe.model.save(str(folder))  # vocab.json + merges.txt
    torch.manual_seed(0)
    end_of_text = bpe.token_to_id("<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=128, n_embd=64, n_layer=4, n_head=4,
                                     bos_token_id=end_of_text, eos_token_id=end_of_text)
    transformers.logging.disable_progress_bar()
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)  # config.json + model.safetensors


found = None if SHORT else find_gpt2()
REAL = found is not None
if REAL:
    folder = found
    print(f"OpenAI's GPT-2, from {folder}")
else:
    stand_in = tempfile.TemporaryDirectory(prefix="gpt2-stand-in-")  # removed when Python exits
    folder = Path(stand_in.name)
    build_stand_in(folder)
    print(f"GPT-2 is not here{' (or this is the short mode)' if SHORT else ''}: a small stand-in with random "
          f"weights, built with transformers in {folder}")
print(sorted(p.name for p in folder.iterdir()))

start = time.perf_counter()
model, tok = load_model_and_tokenizer(folder)  # (GPT in eval mode, float32; GPT2Tokenizer)
print(f"loaded in {time.perf_counter() - start:.1f} s: {model.config}")

# %% [markdown]
# Loading builds the model without drawing random initial weights (`tt.nn.skip_init`):
# every array is about to be read from the file, and drawing GPT-2's 124 million
# random numbers first took 9 of the 10 seconds a load used to take.
#
# ## GPT-2's projections are stored the other way round
#
# GPT-2 was written with `Conv1D` layers, `y = x W + b` with `W` of shape (in, out);
# our `Linear`, like PyTorch's, computes `y = x W^T + b` with `W` of shape (out, in).
# So every `c_attn`, `c_proj` and `c_fc` weight is transposed on the way in. (This is
# the step most often got wrong when porting GPT-2: `c_proj` is square, so a missing
# transpose loads without complaint and only the outputs show it.)

# %%
from safetensors import safe_open  # noqa: E402  (the hf extra, as GPT.from_pretrained needs it)

with safe_open(folder / "model.safetensors", framework="np") as f:
    name = next(k for k in f.keys() if k.endswith("h.0.attn.c_attn.weight"))
    stored = f.get_tensor(name)
ours = model.transformer["h"][0].attn.c_attn.weight.data
C = model.config.n_embd
print(f"{name}: stored {stored.shape} (in, out); ours {ours.shape} (out, in)")
assert stored.shape == (C, 3 * C) and ours.shape == (3 * C, C)
assert np.array_equal(stored.T, ours)

# %% [markdown]
# ## Its parameters, layer by layer
#
# With width `C`, vocabulary `V` and context `n_ctx`, one block holds
#
#     ln_1, ln_2        2 x 2C          (gain and bias)
#     attn.c_attn       3C^2 + 3C       (queries, keys and values in one matrix)
#     attn.c_proj       C^2 + C
#     mlp.c_fc          4C^2 + 4C       (the MLP widens to 4C)
#     mlp.c_proj        4C^2 + C
#                       -----------
#                       12 C^2 + 13 C
#
# and the rest is the two embeddings (`V C + n_ctx C`) and the final LayerNorm (`2C`).
# The output layer is the token embedding again (tied): no parameters of its own.

# %%
c = model.config
per_block = {}
for name, p in model.transformer["h"][0].named_parameters():
    group = name.rsplit(".", 1)[0]  # ln_1, attn.c_attn, ...
    per_block[group] = per_block.get(group, 0) + p.size
rows = [("transformer.wte (token embedding)", model.transformer["wte"].weight.size),
        ("transformer.wpe (position embedding)", model.transformer["wpe"].weight.size)]
rows += [(f"block: {group}  (x {c.n_layer})", n * c.n_layer) for group, n in per_block.items()]
rows += [("transformer.ln_f", sum(p.size for p in model.transformer["ln_f"].parameters())),
         ("lm_head (tied to wte)", 0)]
total = model.num_parameters()
for name, n in rows:
    print(f"{name:42s} {n:>13,}  {n / total:6.1%}")
print(f"{'total':42s} {total:>13,}")
assert sum(per_block.values()) == 12 * C**2 + 13 * C
assert total == sum(n for _, n in rows) == c.vocab_size * C + c.block_size * C + c.n_layer * (12 * C**2 + 13 * C) + 2 * C
if REAL and (c.vocab_size, c.n_layer, C) == (50257, 12, 768):
    assert total == 124_439_808, "GPT-2 small"

groups = {"embeddings": rows[0][1] + rows[1][1],
          "attention": sum(n for g, n in per_block.items() if g.startswith("attn")) * c.n_layer,
          "MLP": sum(n for g, n in per_block.items() if g.startswith("mlp")) * c.n_layer,
          "LayerNorms": sum(n for g, n in per_block.items() if g.startswith("ln")) * c.n_layer + rows[-2][1]}
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(groups), list(groups.values()), color=["tab:gray", "tab:blue", "tab:orange", "tab:green"])
for y, n in enumerate(groups.values()):
    ax.text(n, y, f" {n / total:.1%}", va="center")
ax.set_xlabel("parameters")
ax.set_title(f"Where {'GPT-2' if REAL else 'the stand-in'}'s {total:,} parameters are")
fig.tight_layout()
fig.savefig(figure_path("18_parameters.png"), dpi=110)

# %% [markdown]
# In GPT-2 small the MLPs hold 46% of the parameters, attention 23%, the embeddings
# 32% (the 50,257 x 768 token table alone is 31%), the LayerNorms next to nothing. The
# stand-in is narrow (64), so its vocabulary of 512 weighs less.
#
# ## Generating
#
# `generate` is lesson 09's loop: greedy, temperature, top-k. On a model this size the
# cost of each token is the model itself, so `generate` runs each layer's `infer`: the
# arithmetic of `forward` on plain arrays, without building the autograd graph that
# training needs (no Tensors, no graph nodes, nothing kept for a backward pass). The
# tokens are the same as the graph path's, and we check that.

# %%
prompt = tok.encode("The meaning of life is")
n_new = steps(40, 12)
strategies = {"greedy": dict(temperature=0), "temperature 0.8, top-k 40": dict(temperature=0.8, top_k=40),
              "temperature 1.5": dict(temperature=1.5)}
outputs = {}
for label, options in strategies.items():
    outputs[label] = generate(model, [prompt], n_new, seed=0, **options)
    print(f"--- {label} ---\n{tok.decode(outputs[label][0])}\n")
assert (generate(model, [prompt], n_new, temperature=1.0, top_k=1, seed=5) == outputs["greedy"]).all(), \
    "top-k with k = 1 is greedy"

timings = {}
for use_graph in (True, False):
    start = time.perf_counter()
    out = generate(model, [prompt], n_new, temperature=0.8, top_k=40, seed=0, use_graph=use_graph)
    timings[use_graph] = time.perf_counter() - start
    assert (out == outputs["temperature 0.8, top-k 40"]).all(), "the inference path gives the graph path's tokens"
print(f"{n_new / timings[True]:.1f} tokens/s through the autograd graph, {n_new / timings[False]:.1f} through infer")

# %% [markdown]
# Top-k sampling only ever picks among the k likeliest tokens. We check every token of
# the sample, running the model by hand the way `generate` does: the prompt once, then
# one position at a time with a KV cache per layer.

# %%
sample = outputs["temperature 0.8, top-k 40"]
caches = [KVCache() for _ in range(c.n_layer)]
logits = model.infer(sample[:, :len(prompt)], caches)  # (1, 1, V): after the prompt
for t in range(len(prompt), sample.shape[1]):
    top_40 = np.argsort(logits[0, -1])[-40:]
    assert sample[0, t] in top_40
    logits = model.infer(sample[:, t:t + 1], caches)  # one new position
print(f"all {n_new} sampled tokens were among the 40 likeliest at their step")

# %% [markdown]
# ## The logit lens
#
# Lesson 16's tool on a real model: apply the final LayerNorm and the output layer to
# the residual stream after each block, and read what the model would predict if it
# stopped there. The last row is the model's own output.

# %%
text = "The Eiffel Tower is in the city of Paris, and the Colosseum is in Rome."
ids = np.array(tok.encode(text))
lens = logit_lens(model, ids)  # (n_layer + 1, T, V)
assert np.allclose(lens[-1, -1], model.infer(ids[None])[0, -1], rtol=1e-4, atol=1e-4), "the last row is the output"
z = lens - lens.max(-1, keepdims=True)
log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))  # log softmax over the vocabulary, (n_layer + 1, T, V)
next_token_log_prob = log_probs[:, np.arange(len(ids) - 1), ids[1:]].mean(axis=1)  # (n_layer + 1,): of what came next
print("mean log-probability of the actual next token, reading after: embeddings, "
      + ", ".join(f"block {i}" for i in range(c.n_layer)) + "\n", next_token_log_prob.round(2))
plot_logit_lens(lens, token_labels(tok, ids), token_labels(tok, range(c.vocab_size)), figure_path("18_logit_lens.png"),
                title=f"logit lens, {'GPT-2' if REAL else 'the random stand-in'}")
if REAL:
    assert next_token_log_prob[-1] > next_token_log_prob[0] + 2, "GPT-2's blocks make the next token far likelier"
else:
    assert abs(next_token_log_prob[-1] - next_token_log_prob[0]) < 1, "random blocks change the guess little"

# %% [markdown]
# In GPT-2 the early rows typically repeat the input token or guess a frequent word,
# and answers such as "Paris" and "Rome" surface only in the last blocks. The random
# stand-in's rows all sit near `log(1/V)`: it has learned nothing.
#
# ## Attention maps of one head
#
# `attention_maps` records every head's probabilities (lesson 16). A well-known kind of
# head in trained models attends to the **previous token**; we score each head by the
# mean attention from position i to i - 1, and draw the best one.

# %%
maps = attention_maps(model, ids)  # (n_layer, n_head, T, T)
T = len(ids)
assert np.allclose(maps.sum(-1), 1, atol=1e-5) and np.all(np.triu(maps, 1) == 0), "rows sum to 1; causal"
previous = maps[:, :, np.arange(1, T), np.arange(T - 1)].mean(-1)  # (n_layer, n_head)
uniform = np.mean(1 / np.arange(2, T + 1))  # the same score for attention spread evenly over the past
layer, head = np.unravel_index(previous.argmax(), previous.shape)
print(f"previous-token score per head (uniform attention would give {uniform:.2f}):\n{previous.round(2)}")
print(f"best: layer {layer} head {head}, {previous[layer, head]:.2f}")
plot_attention_maps(maps[layer:layer + 1, head:head + 1], token_labels(tok, ids), figure_path("18_attention_head.png"),
                    title=f"layer {layer} head {head} of {'GPT-2' if REAL else 'the random stand-in'}")
if REAL:
    assert previous.max() > 0.5, "GPT-2 has heads that mostly read the previous token"
else:
    assert np.all(np.abs(previous - uniform) < 0.1), "random weights attend almost uniformly"

# %% [markdown]
# GPT-2 has such heads (layer 4's head 11 is a famous one, and several heads send most
# of their attention to the first token, a "sink" they use when nothing else is
# relevant). The stand-in's heads spread attention evenly: with random weights every
# score `q k^T / sqrt(d)` is near zero, and softmax of near-equal scores is uniform.
#
# ## Fine-tuning GPT-2 to classify sentiment
#
# A classification head (lesson 11's `SequenceClassifier`: mean-pool the final hidden
# states, then one Linear layer) on GPT-2's body, trained on a few hundred SST-2 movie
# review sentences. With so few sentences, and 124M parameters to move on a CPU, we
# train the head (learning rate 1e-3) and only the top two blocks of the body, gently
# (3e-5): the lower blocks stay as pretrained, and the backward pass stops above them.
# Sentences are tokenized with GPT-2's own tokenizer and padded on the right.

# %%
def stand_in_reviews(n, seed):
    """Generated reviews, when SST-2 is not in the data directory: an opinion word, sometimes negated."""
    rng = np.random.default_rng(seed)
    good, bad = ["good", "great", "moving", "funny", "smart"], ["bad", "dull", "boring", "silly", "flat"]
    texts, labels = [], []
    for _ in range(n):
        positive, negated = rng.random() < 0.5, rng.random() < 0.3
        word = rng.choice(good if positive != negated else bad)
        texts.append(f"{rng.choice(['the film', 'this movie', 'the plot'])} is {'not ' if negated else ''}{word} .")
        labels.append("1" if positive else "0")
    return texts, labels


n_train, n_dev = steps(400, 64), steps(160, 64)
if (data_dir() / "sst2" / "stsa.binary.train").is_file():
    source, (train_texts, train_labels), (dev_texts, dev_labels) = "SST-2", load_sst2("train"), load_sst2("dev")
else:
    source, (train_texts, train_labels), (dev_texts, dev_labels) = ("generated reviews", stand_in_reviews(n_train, 0),
                                                                    stand_in_reviews(n_dev, 1))
rng = np.random.default_rng(0)
train = rng.permutation(len(train_texts))[:n_train]
dev = rng.permutation(len(dev_texts))[:n_dev]
x_train = [tok.encode(train_texts[i])[:c.block_size] for i in train]
y_train = np.array([int(train_labels[i]) for i in train])
x_dev = [tok.encode(dev_texts[i])[:c.block_size] for i in dev]
y_dev = np.array([int(dev_labels[i]) for i in dev])
majority = max(y_dev.mean(), 1 - y_dev.mean())
print(f"{source}: {len(x_train)} training sentences, {len(x_dev)} held out; the majority class scores {majority:.1%}")

tt.manual_seed(0)
classifier = SequenceClassifier(c, num_classes=2).load_body(model.state_dict()).unfreeze_top(2)


def dev_accuracy():
    probs = np.concatenate([classifier.predict_proba(*pad(x_dev[i:i + 32])) for i in range(0, len(x_dev), 32)])
    return float(((probs[:, 1] > 0.5) == y_dev).mean())


def train_loss(n=64):
    """The mean loss on the first n training sentences, without dropout."""
    with tt.no_grad():
        classifier.eval()
        losses = [classifier(*pad(x_train[i:i + 32]), labels=y_train[i:i + 32])[1].item() * len(x_train[i:i + 32])
                  for i in range(0, n, 32)]
        classifier.train()
    return sum(losses) / n


before = dev_accuracy(), train_loss()
optimizer = AdamW(classifier.param_groups(lr=1e-3, body_lr=3e-5))
epochs, batch = steps(1, 2), 16
start = time.perf_counter()
for _ in range(epochs):
    for i in range(0, len(x_train), batch):
        idx, mask = pad(x_train[i:i + batch])  # (B, T) ids and padding
        _, loss = classifier(idx, mask, labels=y_train[i:i + batch])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
seconds = time.perf_counter() - start
after = dev_accuracy(), train_loss()
print(f"{epochs * -(-len(x_train) // batch)} steps in {seconds:.0f} s; held-out accuracy {before[0]:.1%} -> "
      f"{after[0]:.1%} (majority {majority:.1%}); loss on 64 training sentences {before[1]:.3f} -> {after[1]:.3f}")
assert after[1] < before[1], "fine-tuning lowers the loss on the sentences it trains on"
if REAL:
    assert after[0] > majority, "GPT-2's features separate positive from negative reviews"

# %% [markdown]
# On the real GPT-2, one pass over 400 sentences is enough to beat the majority class
# (the assertion checks it): the pretrained body's features already carry much of
# what separates praise from complaint, and the head reads it off. Lesson 11's GPT,
# pretrained here on movie reviews, trained on all 6,000 SST-2 sentences. The random
# stand-in has nothing to offer: its loss falls only because the head fits the few
# sentences it sees.
#
# ## LoRA: fine-tuning through low-rank adapters
#
# Training every weight costs, besides the weights, a gradient for each and AdamW's two
# moments: three more copies of the model. LoRA (Hu et al. 2021) freezes every weight
# `W` of the body and learns beside each attention and MLP projection a change of low
# rank `r`,
#
#     y = x W^T + b + (alpha / r) x A^T B^T        A (r, in), B (out, r)
#
# with `B` starting at zero, so training starts exactly at the pretrained model. GPT-2
# small's `c_attn` (768 -> 2304) trains 24,576 numbers at rank 8 instead of 1.77 million.
# After training, `B A` folds into `W` (`merge_lora`): a plain GPT-2 again, which is what
# `finetune --lora` saves.

# %%
tt.manual_seed(0)
lora = SequenceClassifier(c, num_classes=2).load_body(model.state_dict()).add_lora(rank=8)
trained = [p for p in lora.parameters() if p.requires_grad]
print(f"rank 8: {sum(p.size for p in trained):,} parameters train (the head's included), "
      f"{lora.num_parameters() - sum(p.size for p in trained):,} stay frozen")
optimizer = AdamW(lora.param_groups(lr=1e-3))
assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in trained}
n_lora = steps(128, 64)
for i in range(0, n_lora, batch):
    _, loss = lora(*pad(x_train[i:i + batch]), labels=y_train[i:i + batch])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
assert all(id(p) in {id(q) for q in trained} for p in optimizer.state), "AdamW keeps state for the adapters only"
assert np.array_equal(lora.body.transformer["wte"].weight.data, model.transformer["wte"].weight.data), "frozen"
adapted = lora.predict_proba(*pad(x_dev[:32]))
merged = merge_lora(lora).predict_proba(*pad(x_dev[:32]))  # c_attn, c_proj, c_fc: plain Linear layers again
print(f"{n_lora // batch} steps; after merging, the largest change of a probability: {np.abs(merged - adapted).max():.1e}")
assert np.allclose(merged, adapted, atol=1e-5), "merged weights compute what the adapters did"

# %% [markdown]
# `tinytransformer finetune --task classify --data sst2 --pretrained gpt2 --lora 8 --out runs/sst2-lora`
# does the same from the command line; docs/gpt2.md measures its memory and time
# against full fine-tuning.
#
# ## Your turn
#
#     tinytransformer generate --pretrained gpt2 --prompt "Alan Turing" --max-new-tokens 40
#     tinytransformer inspect --pretrained gpt2 --text "The capital of France is" --out runs/gpt2-inspect
#     tinytransformer finetune --task classify --data sst2 --pretrained gpt2 --lora 8 --out runs/sst2-lora
#
# and `model.save_pretrained(folder, tokenizer=tok)` writes any GPT trained here in the
# same four files, for transformers and the tools built for scale (docs/gpt2.md).
#
# **What you can do now:** load GPT-2 (or any GPT-2 checkpoint in Hugging Face's layout)
# into code you can read, account for its parameters, generate from it on the inference
# path, read its layers with the logit lens and its heads with attention maps, fine-tune
# it for a classification task, fully or through LoRA adapters that merge back into
# plain weights, and export any GPT trained here for transformers.
