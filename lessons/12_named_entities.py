# %% [markdown]
# # 12 · Named entities: a tag for every token
#
# Lesson 11 gave a whole sentence one label. Named-entity recognition labels each
# token: is it part of a person's name, a place, a product...? The usual encoding is
# **BIO**: `B-person` begins a person's name, `I-person` continues it, `O` is outside
# every entity:
#
#     Taylor    Swift     played   in   New         York
#     B-person  I-person  O        O    B-location  I-location
#
# WNUT-17 (Derczynski et al. 2017) is a hard case on purpose: tweets and comments,
# with "emerging" entities, names that were rare or new when the data was collected,
# so most test entities were never seen in training.

# %%
import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps

import tinytransformer as tt
from tinytransformer.baselines import MostFrequentTagTagger
from tinytransformer.data import data_dir, load_wnut17
from tinytransformer.data.batching import length_batches, pad
from tinytransformer.data.encoding import IGNORE_INDEX, encode_tagged, pretraining_sentences, task_tokenizer
from tinytransformer.metrics import bio_entities, entity_scores, token_accuracy
from tinytransformer.models import GPTConfig, TokenClassifier
from tinytransformer.optim import AdamW, clip_grad_norm_
from tinytransformer.tasks.finetune_body import pretrain_for_task
from tinytransformer.tasks.finetuned import predict_tags

# %% [markdown]
# ## The data
#
# One token per line with its tag, sentences separated by blank lines (the CoNLL
# format). Without the files in the data directory, and in the short mode CI runs,
# a generated stand-in with the same shape takes their place.

# %%
def stand_in_tweets(n, seed, people, places):
    """Generated lower-case chatter with capitalised person names and places dropped in."""
    rng = np.random.default_rng(seed)
    chatter = "so we went to see the show and it was fun lol omg cant wait for next week tbh".split()
    sentences, tags = [], []
    for _ in range(n):
        words = [str(w) for w in rng.choice(chatter, int(rng.integers(10, 20)))]
        word_tags = ["O"] * len(words)
        names = [(places[rng.integers(len(places))].split(), "location")]
        if rng.random() < 0.7:
            names.append((people[rng.integers(len(people))].split(), "person"))
        for name, kind in names:
            at = int(rng.integers(len(words) + 1))
            words[at:at] = name
            word_tags[at:at] = [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        sentences.append(words)
        tags.append(word_tags)
    return sentences, tags


if (data_dir() / "wnut17" / "wnut17train.conll").is_file() and not SHORT:
    source, train, dev = "WNUT-17", load_wnut17("train"), load_wnut17("dev")
else:  # also in CI's short mode: a few seconds of training find no WNUT-17 entity yet
    source = "a generated stand-in for WNUT-17"  # whose dev names are all new, as WNUT-17's mostly are
    train = stand_in_tweets(1500, 0, ["Ana", "Bo Lund", "Cyd", "Dee Reyes", "Eli"], ["Oslo", "New York", "Lagos"])
    dev = stand_in_tweets(300, 1, ["Fay Okafor", "Gus", "Hal Moss"], ["San Jose", "Perth", "Kyoto"])
tag_names = ["O", *sorted({t for tags in train[1] for t in tags} - {"O"})]
print(f"{source}: {len(train[0]):,} training and {len(dev[0]):,} dev sentences, {len(tag_names)} tags")
example = next(i for i, (words, tags) in enumerate(zip(*train))
               if sum(t != "O" for t in tags) >= 3 and len(words) <= 16 and all(w.isalpha() for w in words))
print(" ".join(f"{w}/{t}" for w, t in zip(train[0][example], train[1][example])))
print("entities (type, start, end):", bio_entities(train[1][example]))

# %% [markdown]
# ## Why token accuracy misleads
#
# Most tokens are `O`. A tagger that answers `O` everywhere is right on almost every
# token and finds no entity at all. So NER is scored per **entity** (the CoNLL
# `conlleval` convention): a predicted entity counts only if a true entity has
# exactly its span and type; precision, recall and F1 are over entities.

# %%
all_o = [["O"] * len(tags) for tags in dev[1]]
all_o_accuracy = token_accuracy(dev[1], all_o)
print(f"every token O: token accuracy {all_o_accuracy:.1%}, entity F1 {entity_scores(dev[1], all_o)['f1']:.1%}")
assert all_o_accuracy > 0.8 and entity_scores(dev[1], all_o)["f1"] == 0

# A name found with one token missing: 4 of 5 tokens right, but only one of the two entities.
truth = [["B-person", "I-person", "O", "B-location", "O"]]
guess = [["B-person", "O", "O", "B-location", "O"]]
print(f"half a name: token accuracy {token_accuracy(truth, guess):.0%}, entity F1 {entity_scores(truth, guess)['f1']:.0%}")
assert token_accuracy(truth, guess) == 0.8 and entity_scores(truth, guess)["f1"] == 0.5

# %% [markdown]
# The simplest real baseline gives each token the tag it had most often in training.
# It finds the names it has seen, and nothing else: on WNUT-17 that is very little.

# %%
lexicon = MostFrequentTagTagger().fit(*train)
lexicon_scores = entity_scores(dev[1], lexicon.predict(dev[0]))
print(f"most frequent tag: entity F1 {lexicon_scores['f1']:.1%}, "
      f"token accuracy {token_accuracy(dev[1], lexicon.predict(dev[0])):.1%}")

# %% [markdown]
# ## Sub-word tokens, word-level tags
#
# A word tokenizer would turn every unseen name into `<unk>`, the worst case for
# emerging entities. Byte-level BPE spells unseen words from known pieces, keeping
# clues such as a capital letter. A word may then span several tokens, but has one
# tag: we put it on the word's **last** token, the first position of a causal model
# that has read the whole word, and mark the other tokens `IGNORE_INDEX` (-100), which
# the loss skips.

# %%
tokenizer = task_tokenizer(train[0] + dev[0], "bpe", vocab_size=steps(2048, 512))
tag_ids = {t: i for i, t in enumerate(tag_names)}
block_size = 96
ids, labels = encode_tagged(tokenizer, *train, tag_ids, block_size)
words = train[0][example]
piece_ids, piece_labels = encode_tagged(tokenizer, [words], [train[1][example]], tag_ids, block_size)
for token, label in zip(piece_ids[0], piece_labels[0]):
    print(f"  {tokenizer.decode([token])!r:14} {tag_names[label] if label != IGNORE_INDEX else '(ignored)'}")
assert sum(label != IGNORE_INDEX for label in piece_labels[0]) == len(words)

# %% [markdown]
# ## A token-classification head
#
# `TokenClassifier` puts a Linear layer on the body's state at every position. A
# causal body has a blind spot for tagging: at "New" it has not yet seen "York". The
# head therefore reads each state beside the *next* position's state, one token of
# look-ahead. We pretrain the body on the training and dev sentences (next-token
# prediction, as in lesson 11), then fine-tune everything with cross-entropy over the
# scored positions.

# %%
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=steps(2, 1), n_head=4,
                   n_embd=steps(128, 48), dropout=0.1)
sentences = pretraining_sentences(train[0] + dev[0], tokenizer, block_size)
body = pretrain_for_task(sentences, GPTConfig(**{**config.to_dict(), "dropout": 0.0}), steps=steps(600, 40),
                         lr=3e-3)
tt.manual_seed(0)
tagger = TokenClassifier(config, num_tags=len(tag_names)).load_body(body.state_dict())
lr = 2e-3
optimizer = AdamW(tagger.param_groups(lr=lr, weight_decay=0.01), lr=lr)
rng = np.random.default_rng(0)
history = []
for epoch in range(steps(8, 3)):
    tagger.train()
    for batch in length_batches([len(s) for s in ids], 32, rng):
        idx, mask = pad([ids[i] for i in batch])  # (B, T) each
        targets = pad([labels[i] for i in batch], IGNORE_INDEX)[0]  # (B, T)
        loss = tagger(idx, mask, targets)[1]
        loss.backward()
        clip_grad_norm_(tagger.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    predicted = predict_tags(tagger, tokenizer, dev[0], tag_names)
    scores = entity_scores(dev[1], predicted)
    history.append((scores["f1"], token_accuracy(dev[1], predicted)))
    print(f"epoch {epoch + 1}: dev entity F1 {history[-1][0]:.1%}, token accuracy {history[-1][1]:.1%}")

# %% [markdown]
# Token accuracy starts near the all-`O` line and hardly moves; entity F1 is where
# the learning shows. Per type, people and places come first: they are the most
# frequent and the most regular (capitalised, often after "with" or "in"). Groups,
# corporations, products and creative works, whose names look like any other words,
# are still mostly missed by a model this small; WNUT-17's published systems reach
# 40-50% F1 with large pretrained models.

# %%
per_type = scores["per_type"]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
epochs = range(1, len(history) + 1)
left.plot(epochs, [f for f, _ in history], "o-", label="entity F1")
left.plot(epochs, [a for _, a in history], "s-", label="token accuracy")
left.axhline(all_o_accuracy, color="grey", ls=":", label="token accuracy of all-O")
left.set_xlabel("epoch")
left.set_title(f"{source} dev")
left.legend()
kinds = sorted(per_type)
right.barh(kinds, [per_type[k]["f1"] for k in kinds])
right.set_xlabel("entity F1 after fine-tuning")
fig.tight_layout()
fig.savefig(figure_path("12_entity_f1.png"), dpi=120)
best_f1 = max(f for f, _ in history)
assert best_f1 > 0, "the tagger should find some entities"
assert max(a for _, a in history) - all_o_accuracy < best_f1, "token accuracy moves less than entity F1"

# %% [markdown]
# ## From the command line
#
#     tinytransformer finetune --task tag --data wnut17 --tagger head --out runs/wnut17   # this lesson's head
#     tinytransformer finetune --task tag --data wnut17 --out runs/bitagger               # the default: BiLSTM + CRF
#     echo "heading to new york with taylor swift" | tinytransformer tag --checkpoint runs/wnut17
#
# The default tagger reads each sentence both ways, with characters and word shapes and a
# CRF on top; docs/finetuning.md compares it, this lesson's head and the most-frequent-tag
# baseline on the test set.
