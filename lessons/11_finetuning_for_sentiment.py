# %% [markdown]
# # 11 · Fine-tuning for sentiment: does pretraining pay?
#
# Lessons 08 and 10a pretrained bodies on text without labels. Here we put one to
# work on a task with labels: is a movie review positive or negative? (SST-2, the
# Stanford Sentiment Treebank's sentences, Socher et al. 2013.) The recipe of GPT-1
# (Radford et al. 2018), BERT (Devlin et al. 2019) and ULMFiT (Howard & Ruder 2018)
# has two stages:
#
# 1. **pretrain** a body on plenty of unlabelled text from the task's world: here,
#    2,000 movie reviews (Pang & Lee's polarity corpus, 1.5M words), by masked-word
#    prediction (lesson 10a);
# 2. **fine-tune**: put a small *head* on top, a Linear layer from the body's hidden
#    states to the classes, and train body and head together on the labelled examples.
#
# The claim to test: a pretrained body needs fewer labels. We measure it as a
# **label-efficiency curve**, accuracy against the share of the training labels used,
# for the pretrained body, the same body with random weights, and a bag of words.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.baselines import BagOfWordsClassifier
from tinytransformer.data import data_dir, load_corpus, load_sst2, split_train_dev
from tinytransformer.data.batching import pad
from tinytransformer.data.encoding import encode_texts
from tinytransformer.data.ptb import to_ptb
from tinytransformer.data.segments import bert_special_ids, pretraining_data, train_tokenizer
from tinytransformer.data.tasks import TaskData
from tinytransformer.models import SequenceClassifier
from tinytransformer.models.bert import BertConfig, BertForMaskedLM
from tinytransformer.nn import functional as F
from tinytransformer.plots import plot_label_efficiency
from tinytransformer.tasks.finetune import FinetuneConfig, finetune
from tinytransformer.training import TrainConfig, Trainer

# %% [markdown]
# ## The labelled data
#
# SST-2's sentences come lower-cased and split into words, each labelled "1"
# (positive) or "0" (negative). When the files are not in the data directory
# (`$TINYTRANSFORMER_DATA`), and in the short mode CI runs, a small generated
# stand-in takes their place. We hold out 10% of the training sentences for validation:
# the official dev and test sets stay untouched, as a benchmark's should.

# %%
GOOD, BAD = ["good", "great", "moving", "funny", "smart"], ["bad", "dull", "boring", "silly", "flat"]
SUBJECTS = ["the film", "this movie", "the plot", "the cast", "it"]


def stand_in_reviews(n, seed):
    """Generated reviews: an opinion word, sometimes negated ("not good" is negative)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        positive, negated = rng.random() < 0.5, rng.random() < 0.3
        word = rng.choice(GOOD if positive != negated else BAD)
        texts.append(f"{rng.choice(SUBJECTS)} is {'not ' if negated else ''}{word} "
                     f"{rng.choice(['.', ', really .', 'overall .'])}")
        labels.append("1" if positive else "0")
    return texts, labels


real = (data_dir() / "sst2" / "stsa.binary.train").is_file() and not SHORT
if real:
    source, (texts, labels) = "SST-2", load_sst2("train")
else:  # also in CI's short mode, where a few seconds of training would not get far on SST-2
    source, (texts, labels) = "a generated stand-in for SST-2", stand_in_reviews(1500, 0)
(train_texts, train_labels), (val_texts, val_labels) = split_train_dev(texts, labels, dev_fraction=0.1, seed=0)
y_val = np.array([int(label) for label in val_labels])
majority = max(y_val.mean(), 1 - y_val.mean())
print(f"{source}: {len(train_texts):,} training and {len(val_texts):,} validation sentences; "
      f"always guessing the majority class scores {majority:.1%} on validation")

# %% [markdown]
# ## The unlabelled text, in the labelled text's spelling
#
# The reviews are lower-cased with spaces around punctuation, but not in SST-2's
# Penn-Treebank style: they write `don't` and `(` where SST-2 writes `do n't` and
# `-lrb-`. A body pretrained on one spelling and fine-tuned on the other would meet
# SST-2's most frequent tokens as strangers, so `load_corpus("movie_reviews")`
# normalises the reviews with `to_ptb`. None of the reviews' document labels is used:
# to the body they are only text.

# %%
print(to_ptb('i don\'t think it\'s ( really ) " great " .'))
assert to_ptb("don't") == "do n't" and to_ptb("(") == "-lrb-"
if real and (data_dir() / "movie_reviews" / "movie_reviews.zip").is_file():
    corpus_name, corpus = "the movie reviews", load_corpus("movie_reviews")
else:  # short mode: generated "reviews" in the stand-in's words, documents separated by blank lines
    rng = np.random.default_rng(1)
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(['is', 'was', 'seems'])} {'not ' * (rng.random() < 0.3)}"
             f"{rng.choice(GOOD + BAD)} {rng.choice(['and', 'but'])} {rng.choice(GOOD + BAD)} "
             f"{rng.choice(['.', ', really .', 'overall .'])}"
             for _ in range(4000)]
    corpus_name, corpus = "generated reviews", "\n\n".join("\n".join(lines[i:i + 20]) for i in range(0, 4000, 20))
words = corpus.split()
sst_words = [w for t in train_texts for w in t.split()]
known = set(words)
coverage = np.mean([w in known for w in sst_words])
print(f"{corpus_name}: {len(words):,} words; {coverage:.1%} of the labelled training words occur in it")
assert coverage > 0.9

# %% [markdown]
# ## Stage 1: a masked language model on the reviews
#
# The library's pieces, in the order `tinytransformer train --model bert --data
# movie_reviews` uses them: a word tokenizer with `<mask>` among its ids; the
# reviews packed into segments `<cls> sentence sentence ... <eos>`, whole reviews
# held out for validation; a BERT encoder whose masked-LM head is tied to its word
# embedding; and the loop, with the loss on the 15% of positions chosen each batch
# (lesson 10a). The command's default trains 3,000 steps (about 25 minutes on one
# core); the lesson trains a few hundred, enough to see the loss fall well below what
# word frequencies alone give.

# %%
tokenizer = train_tokenizer(corpus, "word", steps(16384, 2000), masked=True)
block_size, batch_size = 128, steps(32, 16)
train_segments, val_segments = pretraining_data(corpus, tokenizer, block_size, batch_size, masked=True,
                                                by_document=True)
config = BertConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=steps(4, 1), n_head=4,
                    n_embd=steps(128, 32), intermediate_size=steps(512, 64), dropout=0.0,
                    pad_id=bert_special_ids(tokenizer)["pad"])
tt.manual_seed(0)
bert = BertForMaskedLM(config)
pretrain_steps = steps(500, 100)
trainer = Trainer(bert, train_segments, val_segments,
                  TrainConfig(max_iters=pretrain_steps, batch_size=batch_size, lr=1e-3, warmup_iters=steps(50, 5),
                              lr_decay_iters=pretrain_steps, weight_decay=0.01, grad_clip=1.0,
                              eval_interval=steps(100, 10), eval_iters=steps(5, 2)),
                  loss_fn=lambda model, batch: model.masked_lm_loss(*batch))
history = trainer.train(progress=False)
uniform = np.log(tokenizer.vocab_size)
print(f"masked-word validation loss: {history['val_loss'][0]:.2f} nats at step 0 (uniform: ln V = {uniform:.2f}), "
      f"{history['val_loss'][-1]:.2f} after {pretrain_steps} steps")
assert history["val_loss"][-1] < history["val_loss"][0] - steps(1.0, 0.3)

# %% [markdown]
# ## Stage 2: a head on the body
#
# The body turns a sentence of T tokens into T hidden vectors. The head needs *one*
# vector per sentence; `SequenceClassifier` *pools* them, over the real tokens only:
#
# - `"cls"`: the state at `<cls>`, the first position, which a bidirectional
#   encoder lets read the whole sentence (BERT's choice; a causal GPT cannot use it);
# - `"mean"`: their average, every word's state with the same weight;
# - `"max"`: each of the C features' largest value over the sentence: a feature
#   that fires on "brilliant" fires for the sentence wherever the word stands;
# - `"last"`: the final token's state, the only one a causal GPT lets read the whole
#   sentence (GPT-1's choice).
#
# A Linear layer maps the pooled vector to **one logit**, the log-odds of the
# positive class:
#
# $$z = \log \frac{p(\text{positive})}{p(\text{negative})}, \qquad p(\text{positive}) = \sigma(z) = \frac{1}{1 + e^{-z}},$$
#
# and the loss is the binary cross-entropy computed from the logit directly (stable
# for large $|z|$): $-[y \log \sigma(z) + (1 - y) \log(1 - \sigma(z))]$. Two classes
# need no more: a softmax over the two logits $(0, z)$ is exactly $\sigma(z)$, so
# cross-entropy over $(0, z)$ is the same number.

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
# the pooling skips it. A sentence's prediction must not depend on the company it
# keeps in a batch, for every pooling:

# %%
val_ids = encode_texts(tokenizer, val_texts, block_size, True)  # <cls> words <eos>, as in pretraining
for pooling in ("cls", "mean", "max", "last"):
    tt.manual_seed(0)
    probe = SequenceClassifier(config, num_classes=2, pooling=pooling).eval()
    alone = probe(np.array([val_ids[0]]))[0].data[0]
    batched = probe(*pad([val_ids[0], val_ids[1] + val_ids[1]]))[0].data[0]
    assert abs(alone - batched) < 1e-5, pooling
print("padding changes no prediction, with any of the four poolings")

# %% [markdown]
# ## Fine-tuning, and which pooling
#
# `finetune` (what `tinytransformer finetune` runs) trains a head on a body with
# AdamW, a short warmup and a cosine decay, scores the validation split after every
# epoch and keeps the best epoch. The body and the head may learn at different rates
# (`body_lr`: discriminative fine-tuning); on this small encoder the head's rate
# for both measured best (docs/pretraining.md). We try each pooling once, with a
# fifth of the labels, and keep the best for the rest of the lesson. With one seed
# and so few labels the ranking is noisy; what holds up is that the pooling matters
# by several points, so it is worth a measurement rather than a habit.

# %%
def fine_tune(pooling, fraction, pretrained=True, seed=0):
    """Validation accuracy of a head on the (pretrained or random) body, trained on ``fraction`` of the labels
    for about the same number of steps whatever the fraction (3 epochs of all the labels)."""
    rows = np.random.default_rng(seed).permutation(len(train_texts))[:max(2, round(fraction * len(train_texts)))]
    data = TaskData("classification", ("0", "1"), ([train_texts[i] for i in rows], [train_labels[i] for i in rows]),
                    (val_texts, val_labels))
    tt.manual_seed(seed)
    model = SequenceClassifier(config, num_classes=2, pooling=pooling, dropout=0.1)
    if pretrained:
        model.load_body(bert.state_dict())
    epochs = int(np.ceil(steps(3, 2) / fraction))
    history = finetune(model, tokenizer, data, FinetuneConfig(epochs=epochs, lr=1e-3, body_lr=1e-3, seed=seed),
                       log=lambda line: None)
    return history["best_dev"]["accuracy"]


poolings = {pooling: fine_tune(pooling, 0.2) for pooling in ("cls", "mean", "max", "last")}
for pooling, acc in poolings.items():
    print(f"  pooling {pooling:>4}: validation accuracy {acc:.1%} (20% of the labels)")
pooling = max(poolings, key=poolings.get)
assert poolings[pooling] > majority + 0.1, "the best pooling learns the task"

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(poolings), [100 * a for a in poolings.values()])
ax.axhline(100 * majority, color="grey", ls=":", label="majority class")
ax.set_ylim(100 * majority - 5, 100)
ax.set_ylabel("validation accuracy (%)")
ax.set_title("pooling the encoder's states")
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("11_pooling.png"), dpi=120)

# %% [markdown]
# ## The label-efficiency curve
#
# Now the question itself. For each share of the labels, the same recipe from the
# pretrained body and from the same body with random weights, and a bag of words
# (logistic regression on word counts, the classic baseline) on the same sentences.

# %%
fractions = [0.05, 0.2, 1.0] if not SHORT else [0.2, 1.0]
curves = {"pretrained on " + corpus_name: [], "same encoder, random weights": []}
bow = []
for fraction in fractions:
    curves["pretrained on " + corpus_name].append(100 * fine_tune(pooling, fraction))
    curves["same encoder, random weights"].append(100 * fine_tune(pooling, fraction, pretrained=False))
    rows = np.random.default_rng(0).permutation(len(train_texts))[:round(fraction * len(train_texts))]
    words_model = BagOfWordsClassifier().fit([train_texts[i] for i in rows], [train_labels[i] for i in rows])
    bow.append(100 * np.mean(np.array(words_model.predict(val_texts)) == np.array(val_labels)))
    print(f"{fraction:>5.0%} of the labels: " + ", ".join(f"{name} {c[-1]:.1f}%" for name, c in curves.items())
          + f", bag of words {bow[-1]:.1f}%")
plot_label_efficiency({name: {"fractions": fractions, "mean": c} for name, c in curves.items()},
                      figure_path("11_label_efficiency.png"), {"bag of words": {"fractions": fractions, "mean": bow}},
                      title=f"{source}: one seed, {pretrain_steps} pretraining steps", ylabel="validation accuracy (%)")
assert all(c[-1] > 100 * majority + 5 for c in curves.values()), "with all the labels, both learn the task"

# %% [markdown]
# ## What the full measurement says
#
# One seed and a few hundred pretraining steps prove little: differences of a point
# or two are within the spread between seeds. `benchmarks/pretraining.py` runs the
# full version: the 25-minute BERT of `tinytransformer train --model bert --data
# movie_reviews` and a GPT pretrained on the same reviews, fine-tuned through
# `tinytransformer finetune` with 5%, 20% and 100% of SST-2's labels, three seeds
# each, scored on the test set. Its results, read from the file it wrote:

# %%
measured = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "pretraining.json"
report = json.loads(measured.read_text())["sst2"]
shares = report["fractions"]
means = {}
for name, runs in {"bag of words": report["bag of words"], **report["runs"]}.items():
    means[name] = [100 * np.mean([r["test"] for r in runs if r["fraction"] == f]) for f in shares]
    spread = [100 * np.std([r["test"] for r in runs if r["fraction"] == f]) for f in shares]
    print(f"{name:<53} " + "  ".join(f"{m:5.1f} ± {s:.1f}" for m, s in zip(means[name], spread)))
scratch = means["from scratch, the encoder"]
for name in ("BERT pretrained on the reviews", "the encoder from scratch, word vectors of the reviews"):
    print(f"{name}, minus the same encoder from scratch: "
          + ", ".join(f"{100 * f:g}% {m - s:+.1f}" for f, m, s in zip(shares, means[name], scratch)))
assert len(shares) == 3 and all(len(runs) >= 3 * len(shares) for runs in report["runs"].values())

# %% [markdown]
# Read the numbers before the claim. At this scale (a 4-layer, 128-wide body,
# 1.5M words of reviews, half an hour of one CPU core) the masked-word loss only
# gets a little below what word frequencies give, and a body that weak buys little
# or nothing over the same body trained from its random start: the gaps between the
# curves are about the size of the spread between seeds, and a bag of words stays
# close to all of them. What does pay here is the cheapest pretraining of all: word
# vectors of the same reviews (co-occurrence counts within a few words, factorised by
# an SVD in half a minute) as the encoder's word embedding, a few points where labels
# are scarce and nothing with all of them. The pretraining that made the claim true in the papers
# (BERT: 3.3 billion words and days of TPU time; ULMFiT: 103 million words of
# Wikipedia before the reviews) is four orders of magnitude more text and compute.
# `docs/pretraining.md` shows the curves, the loss curves of the two pretraining
# runs, and what was tried.

# %% [markdown]
# ## The same from the command line
#
#     tinytransformer train --model bert --data movie_reviews --out runs/bert     # about 25 minutes
#     tinytransformer finetune --task classify --data sst2 --checkpoint runs/bert --out runs/sst2-bert
#     tinytransformer finetune --task classify --data sst2 --out runs/sst2        # from scratch: the default
#     echo "a gorgeous , witty , seductive movie ." | tinytransformer classify --checkpoint runs/sst2
#
# ## What you can do now
#
# - Normalise unlabelled text to the labelled text's spelling, and check how much of
#   the task's vocabulary it covers.
# - Pretrain a masked language model with the library's pieces, and read its loss
#   against the uniform guess.
# - Put a classification head on a body, choose its pooling (`cls`, `mean`, `max`,
#   `last`) and explain which a causal body can use.
# - Measure a label-efficiency curve against a bag of words, and tell an effect from
#   the spread between seeds.
