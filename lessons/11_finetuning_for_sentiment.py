# %% [markdown]
# # 11 · Fine-tuning for sentiment
#
# Lesson 08 pretrained a GPT to predict the next token. Here we put that model to
# work on a task with labels: is a movie review positive or negative? (SST-2, the
# Stanford Sentiment Treebank's sentences, Socher et al. 2013.) The recipe of GPT-1
# (Radford et al. 2018) has two stages:
#
# 1. **pretrain** the body on unlabelled text by next-token prediction;
# 2. **fine-tune**: put a small *head* on top, a Linear layer from the body's hidden
#    states to the classes, and train body and head together on the labelled examples.
#
# We run both stages, compare with the same model trained from scratch, and look
# at which words the fine-tuned model attends to.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.data import WordTokenizer, data_dir, load_sst2, split_train_dev
from tinytransformer.data.batching import length_batches, pad
from tinytransformer.data.encoding import encode_texts, pretraining_sentences
from tinytransformer.interpret import attention_maps
from tinytransformer.models import GPT, GPTConfig, SequenceClassifier
from tinytransformer.nn import functional as F
from tinytransformer.optim import Adam, clip_grad_norm_
from tinytransformer.tasks.finetune_body import pretrain_for_task
from tinytransformer.tasks.finetuned import predict_proba

# %% [markdown]
# ## The data
#
# SST-2's sentences come lower-cased and split into words, each labelled "1"
# (positive) or "0" (negative). When the files are not in the data directory
# (`$TINYTRANSFORMER_DATA`), and in the short mode CI runs, a small generated
# stand-in takes their place. We hold out 10% of the training sentences for validation:
# the official dev and test sets stay untouched, as a benchmark's should.

# %%
def stand_in_reviews(n, seed):
    """Generated reviews: an opinion word, sometimes negated ("not good" is negative)."""
    rng = np.random.default_rng(seed)
    good, bad = ["good", "great", "moving", "funny", "smart"], ["bad", "dull", "boring", "silly", "flat"]
    texts, labels = [], []
    for _ in range(n):
        positive, negated = rng.random() < 0.5, rng.random() < 0.3
        word = rng.choice(good if positive != negated else bad)
        subject = rng.choice(["the film", "this movie", "the plot", "the cast", "it"])
        texts.append(f"{subject} is {'not ' if negated else ''}{word} {rng.choice(['.', ', really .', 'overall .'])}")
        labels.append("1" if positive else "0")
    return texts, labels


if (data_dir() / "sst2" / "stsa.binary.train").is_file() and not SHORT:
    source, (texts, labels) = "SST-2", load_sst2("train")
else:  # also in CI's short mode, where a few seconds of training would not get far on SST-2
    source, (texts, labels) = "a generated stand-in for SST-2", stand_in_reviews(1500, 0)
(train_texts, train_labels), (val_texts, val_labels) = split_train_dev(texts, labels, dev_fraction=0.1, seed=0)
y_train = np.array([int(label) for label in train_labels])
y_val = np.array([int(label) for label in val_labels])
majority = max(y_val.mean(), 1 - y_val.mean())
print(f"{source}: {len(train_texts):,} training and {len(val_texts):,} validation sentences; "
      f"always guessing the majority class scores {majority:.1%} on validation")
for text, label in zip(train_texts[:3], train_labels[:3]):
    print(label, text)

# %% [markdown]
# ## One tokenizer for both stages
#
# Pretraining and fine-tuning must read text the same way: the body's embedding row
# 17 has to mean the same word in both. Sentences this short and this cleanly split
# suit a word-level tokenizer, trained on the training text. Words it never saw
# become `<unk>`, and so do words seen only once (`min_freq=2`): one example is too
# few to learn a word from, only enough to memorise its sentence. Every sentence
# starts with `<bos>`.

# %%
tokenizer = WordTokenizer.train(train_texts, min_freq=2)
train_ids = encode_texts(tokenizer, train_texts, max_len=64)
val_ids = encode_texts(tokenizer, val_texts, max_len=64)
print(f"{tokenizer.vocab_size:,} words; '{val_texts[0]}' ->", val_ids[0])
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=4,
                   n_embd=steps(128, 32), dropout=0.1)

# %% [markdown]
# ## Stage 1: pretraining on the task's own sentences
#
# Next-token prediction needs no labels, so any text will do; here it is the
# training sentences themselves, each a row starting at position 0 as the
# classifier will see it. The model learns which words occur in which company,
# which is a start on what they mean. (`tinytransformer finetune` does the same
# when given no pretrained checkpoint.)

# %%
sentences = pretraining_sentences(train_texts, tokenizer, config.block_size)
val_sentences = pretraining_sentences(val_texts, tokenizer, config.block_size)


def lm_loss(model, seqs):
    """Mean next-token loss of a GPT over ``seqs`` (lists of ids), padding ignored."""
    with tt.no_grad():
        x, mask = pad(seqs)
        targets = np.where(mask[:, 1:], -1, x[:, 1:])  # (B, T - 1)
        return model(x[:, :-1], targets)[1].item()


tt.manual_seed(0)
before = lm_loss(GPT(GPTConfig(**{**config.to_dict(), "dropout": 0.0})), val_sentences[:200])
body = pretrain_for_task(sentences, GPTConfig(**{**config.to_dict(), "dropout": 0.0}), steps=steps(600, 60),
                         lr=2e-3 if not SHORT else 5e-3, shortlist=2000, unk_id=tokenizer.unk_id)
after = lm_loss(body, val_sentences[:200])
print(f"validation next-token loss: {before:.2f} nats untrained (ln V = {np.log(config.vocab_size):.2f}), "
      f"{after:.2f} after pretraining")
assert after < before - 0.5, "pretraining should lower the language-model loss"

# %% [markdown]
# ## Stage 2: a head on the body
#
# The body turns a sentence of T tokens into T hidden vectors. The head needs *one*
# vector per sentence, and `SequenceClassifier` offers three ways to *pool* them,
# always over the real tokens only:
#
# - `"mean"`: their average, every word's state with the same weight;
# - `"last"`: the final token's state, the only one that has read the whole
#   sentence in a causal model (GPT-1's choice);
# - `"max"`: each of the C features' largest value over the sentence: a feature
#   that fires on "brilliant" fires for the sentence wherever the word stands (the
#   max-over-time pooling of Collobert et al. 2011 and Kim 2014).
#
# On SST-2, max pooling was the clearest win we measured (README, "Fine-tuning"):
# about two points over the mean with the same model. A Linear layer maps the
# pooled vector to **one logit** z = log p(positive) / p(negative), and the loss is
# the binary cross-entropy computed from the logit directly (stable for large |z|):
#
#     loss = -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]
#
# Two classes need no more: a softmax over the two logits (0, z) is exactly
# sigmoid(z), so cross-entropy over (0, z) is the same number.

# %%
z = tt.Tensor(np.array([2.0, -1.0, 0.3]))
y = np.array([1.0, 0.0, 0.0])
bce = F.binary_cross_entropy_with_logits(z, y).item()
two_logits = tt.Tensor(np.stack([np.zeros(3), z.data], axis=1))  # (3, 2): logits (0, z)
ce = F.cross_entropy(two_logits, y.astype(int)).item()
print(f"BCE with logits {bce:.6f} == cross-entropy over (0, z) {ce:.6f}")
assert abs(bce - ce) < 1e-12

# %% [markdown]
# Sentences in a batch differ in length, so the short ones are **padded** on the
# right and `key_padding_mask` marks the padding: attention never looks at it and
# the mean skips it. A sentence's prediction must not depend on the company it
# keeps in a batch:

# %%
tt.manual_seed(0)
probe = SequenceClassifier(config, num_classes=2, pooling="max").eval()
short, long = val_ids[0][:4], val_ids[1]
alone = probe(np.array([short]))[0].data[0]
batched = probe(*pad([short, long]))[0].data[0]
print(f"logit alone {alone:.6f}, padded in a batch {batched:.6f}")
assert abs(alone - batched) < 1e-5

# %% [markdown]
# ## Fine-tuning, from scratch and from the pretrained body
#
# The loop is the language model's loop with the head's loss. Adam, one learning
# rate for everything, batches of sentences of similar length (little padding),
# gradient clipping; after every epoch, accuracy on the validation split. We
# train two models identically, except that one starts from the pretrained body.

# %%
def accuracy(model):
    return float(((predict_proba(model, tokenizer, val_texts)[:, 1] > 0.5) == y_val).mean())


def fine_tune(model, epochs, lr=1e-3, seed=0):
    optimizer = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    curve = []
    for _ in range(epochs):
        model.train()
        for batch in length_batches([len(s) for s in train_ids], 32, rng):
            idx, mask = pad([train_ids[i] for i in batch])  # (B, T) each
            logits, loss = model(idx, mask, labels=y_train[batch])  # loss: BCE with logits
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        curve.append(accuracy(model))
        print(f"  epoch {len(curve)}: validation accuracy {curve[-1]:.1%}")
    return curve


epochs = steps(3, 2)
tt.manual_seed(1)
scratch = SequenceClassifier(config, num_classes=2, pooling="max")
print("from scratch")
scratch_curve = fine_tune(scratch, epochs)
tt.manual_seed(1)
pretrained = SequenceClassifier(config, num_classes=2, pooling="max").load_body(body.state_dict())
print("from the pretrained body")
pretrained_curve = fine_tune(pretrained, epochs)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, epochs + 1), scratch_curve, "o-", label="from scratch")
ax.plot(range(1, epochs + 1), pretrained_curve, "o-", label="pretrained, then fine-tuned")
ax.axhline(majority, color="grey", ls=":", label="majority class")
ax.set_xlabel("epoch")
ax.set_ylabel("validation accuracy")
ax.set_title(f"Sentiment on {source}")
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("11_finetuning_curves.png"), dpi=120)
assert max(scratch_curve) > majority + 0.05 and max(pretrained_curve) > majority + 0.05

# %% [markdown]
# Do not expect pretraining to win here. Its text is the same few thousand
# sentences the classifier trains on, so it can teach little the labels do not,
# and what it does teach (which word comes next) is not sentiment. On the real
# SST-2 the pretrained body came out about a point *worse* than a fresh one, over
# many seeds (README, "Fine-tuning"). A plausible reason: it starts the classifier
# from weights shaped for next-token prediction, and three epochs of fine-tuning
# may not undo that.
# Pretraining pays when the unlabelled text is far larger than the labelled set,
# as in GPT-1's 7,000 books.

# %% [markdown]
# ## Which words does it attend to?
#
# Attention weights say where each position reads from. `attention_maps` (from
# `tinytransformer.interpret`) recomputes them for one sentence: for each block, the
# queries and keys of its input, softmax(q k^T / sqrt(d)) under the causal mask, one
# map per head. We take the last layer's and average its heads; row t is what
# position t reads.

# %%
pretrained.eval()
short = [i for i, text in enumerate(val_texts) if 6 <= len(text.split()) <= 12]  # short enough to read a map
p_short = predict_proba(pretrained, tokenizer, [val_texts[i] for i in short])[:, 1]
confidence = np.where(y_val[short] == 1, p_short, 1 - p_short)  # the probability of the right answer
review = val_texts[short[int(np.argmax(confidence))]]  # the review the model is surest (and right) about
ids = encode_texts(tokenizer, [review], 64)[0]
words = [tokenizer.words[i] for i in ids]
weights = attention_maps(pretrained.body, ids)[-1]  # (n_head, T, T): the last layer
assert np.allclose(weights.sum(axis=-1), 1) and np.allclose(np.triu(weights, k=1), 0)
mean_map = weights.mean(axis=0)  # (T, T)
p_pos = predict_proba(pretrained, tokenizer, [review])[0, 1]
print(f"{review!r}: p(positive) = {p_pos:.2f}")
print("the last position, which has read the whole review, attends most to:")
for word, w in sorted(zip(words, mean_map[-1]), key=lambda pair: -pair[1])[:4]:
    print(f"  {word:>12s} {w:.2f}")

fig, ax = plt.subplots(figsize=(0.45 * len(words) + 2, 0.45 * len(words) + 1.5))
ax.imshow(mean_map, cmap="Blues")
ax.set_xticks(range(len(words)), words, rotation=90)
ax.set_yticks(range(len(words)), words)
ax.set_xlabel("attends to (key)")
ax.set_ylabel("position (query)")
ax.set_title(f"last layer, mean of {weights.shape[0]} heads; p(positive) = {p_pos:.2f}")
fig.tight_layout()
fig.savefig(figure_path("11_attention_heatmap.png"), dpi=120)

# %% [markdown]
# Causal attention is lower-triangular: a word reads only itself and what came
# before, so early positions have little choice (the first reads only `<bos>`) and
# the last row is the one that could read everything. How the weights spread there
# varies from review to review and from run to run; opinion words often draw a
# share, and so do `<bos>` and punctuation, places a head can park its attention
# when it has nothing to fetch. Attention weights show where information *can*
# flow, not what the decision rests on: treat the map as a hint, not an
# explanation (Jain and Wallace 2019, "Attention is not Explanation").
#
# ## The same from the command line
#
#     tinytransformer finetune --task classify --data sst2 --out runs/sst2
#     echo "a gorgeous , witty , seductive movie ." | tinytransformer classify --checkpoint runs/sst2
#
# By default `finetune` trains ten one-block classifiers with max pooling from
# scratch (AdamW, warmup and cosine decay), keeps each at its best epoch by dev
# accuracy and averages their probabilities; `--pretrain-steps 600` pretrains a
# body on the task's text first, `--checkpoint DIR` starts from any pretrained
# GPT (see the README's "Fine-tuning").
