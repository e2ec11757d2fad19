"""Fine-tuning a GPT for a task: encode, batch by length, train a head, keep the best model by dev score.

    data  = load_task("sst2")                                     train / dev / test splits
    texts = data.train[0] + data.dev[0]
    tok   = task_tokenizer(texts, "word", min_freq=2)               one tokenizer for pretraining and fine-tuning
    body  = pretrain_for_task(pretraining_sentences(texts, tok, 64), config, steps=600)   optional
    model = build_head("classify", config, data.labels).load_body(body.state_dict())
    finetune(model, tok, data, FinetuneConfig(epochs=3), out_dir)  prints a line per epoch, saves the best

One step is the language model's step with a head's loss:

    idx, mask, y = a batch of similar lengths, padded on the right    (B, T), (B, T), (B,) or (B, T)
    loss = model(idx, mask, y)[1]                                     BCE-with-logits, or cross-entropy
    loss.backward(); clip_grad_norm_; AdamW step; warmup + cosine schedule

Sentences are short (SST-2: 19 words on average, 52 at most), so batches are
cut from runs of similar length and padded only to their own longest row:
almost no computation is spent on padding.

Tagging words with a sub-word tokenizer: a word may become several tokens.
Its tag is scored at its *last* token, the first position of a causal model
that has seen the whole word; the other tokens carry ``IGNORE_INDEX``.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..data import BPETokenizer, WordTokenizer, load_corpus, tokenizer_from_dict
from ..metrics import classification_scores, entity_scores, token_accuracy
from ..models.gpt import GPT, GPTConfig
from ..models.heads import IGNORE_INDEX, Ensemble, SequenceClassifier, TokenClassifier
from ..nn import functional as F
from ..optim import AdamW, clip_grad_norm_
from ..optim.lr_scheduler import WarmupCosineLR
from ..random import manual_seed
from .checkpoint import load_checkpoint, save_checkpoint

TOKENIZER_KINDS = ("word", "bpe")


# ------------------------------------------------------------------ encoding
def _prefix(tokenizer) -> list:
    """A word tokenizer starts every sequence with <bos>, as in pretraining; char and BPE have no such token."""
    return [tokenizer.bos_id] if isinstance(tokenizer, WordTokenizer) else []


def encode_texts(tokenizer, texts, max_len) -> list:
    """Token ids of each text, cut to ``max_len`` (the body's block size)."""
    return [(_prefix(tokenizer) + tokenizer.encode(text))[:max_len] for text in texts]


def encode_words(tokenizer, words) -> tuple:
    """``(ids, ends)`` of a pre-tokenised sentence: its token ids, and where each word's last token sits."""
    ids = _prefix(tokenizer)
    ends = []
    for i, word in enumerate(words):
        if isinstance(tokenizer, WordTokenizer):
            ids += tokenizer.encode_words([word])
        else:
            ids += tokenizer.encode(word if i == 0 else " " + word)  # BPE sees the space before a word
        ends.append(len(ids) - 1)
    return ids, ends


def encode_tagged(tokenizer, sentences, tags, tag_ids, max_len) -> tuple:
    """``(ids, labels)`` per sentence: each word's tag id at its last token, ``IGNORE_INDEX`` elsewhere.

    Words past ``max_len`` tokens are left out of training (and tagged "O" by ``predict_tags``).
    """
    all_ids, all_labels = [], []
    for words, word_tags in zip(sentences, tags):
        ids, ends = encode_words(tokenizer, words)
        labels = [IGNORE_INDEX] * len(ids)
        for end, tag in zip(ends, word_tags):
            labels[end] = tag_ids[tag]
        all_ids.append(ids[:max_len])
        all_labels.append(labels[:max_len])
    return all_ids, all_labels


def length_batches(lengths, batch_size, rng=None) -> list:
    """Lists of example indices, each of similar lengths so that padding stays small.

    Without ``rng``: in order of length (for evaluation). With it: shuffled,
    sorted by length within pools of 50 batches, and the batches shuffled, so
    each epoch sees new company for every example.
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order, pool = rng.permutation(len(lengths)), 50 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(seqs, fill=0) -> tuple:
    """``(array, key_padding_mask)``: the sequences right-padded with ``fill`` to the longest, (B, T) each."""
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), fill, dtype=np.int64)
    mask = np.ones((len(seqs), T), dtype=bool)
    for row, s in enumerate(seqs):
        out[row, :len(s)] = s
        mask[row, :len(s)] = False
    return out, mask


# ----------------------------------------------------------------- tokenizers
def task_tokenizer(texts, kind="word", vocab_size=None, min_freq=1):
    """A tokenizer trained on ``texts`` (strings, or word lists): ``"word"`` or byte-level ``"bpe"``.

    Word level keeps the words seen at least ``min_freq`` times (``vocab_size``
    caps their number); the rest become <unk>. A word seen once gives a
    classifier a single example to learn it from, mostly a chance to memorise
    that sentence: ``min_freq=2`` halves SST-2's vocabulary and helps. BPE
    learns ``vocab_size`` ids (default 2048) from the texts' words.
    """
    if kind == "word":
        return WordTokenizer.train(list(texts), vocab_size=vocab_size, min_freq=min_freq)
    if kind == "bpe":
        text = "\n".join(t if isinstance(t, str) else " ".join(t) for t in texts)
        return BPETokenizer.train(text, vocab_size or 2048)
    raise ValueError(f"task_tokenizer: kind must be one of {TOKENIZER_KINDS}, got {kind!r}")


# ---------------------------------------------------------------- the loop
@dataclass
class FinetuneConfig:
    """How to fine-tune. ``body_lr`` None: the head's ``lr``. ``warmup`` is a fraction of all steps."""

    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    body_lr: float = None
    weight_decay: float = 0.01
    warmup: float = 0.1
    grad_clip: float = 1.0
    freeze: bool = False
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"FinetuneConfig: {name} must be a positive integer, got {value!r}")
        for name in ("lr", "weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"FinetuneConfig: {name} must be >= 0, got {getattr(self, name)!r}")
        if self.body_lr is not None and not self.body_lr >= 0:
            raise ValueError(f"FinetuneConfig: body_lr must be >= 0 or None, got {self.body_lr!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"FinetuneConfig: warmup must be a fraction in [0, 1), got {self.warmup!r}")

    def to_dict(self):
        return asdict(self)


def _step(model, loss, optimizer, scheduler, grad_clip):
    loss.backward()
    if grad_clip > 0:
        clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    optimizer.step()
    optimizer.zero_grad()
    scheduler.step()


def _encode_split(model, tokenizer, labels, inputs, targets):
    """Token ids and training targets of one split, for the model's kind of head."""
    max_len = model.body.config.block_size
    ids = {label: i for i, label in enumerate(labels)}
    if isinstance(model, TokenClassifier):
        return encode_tagged(tokenizer, inputs, targets, ids, max_len)
    return encode_texts(tokenizer, inputs, max_len), [ids[t] for t in targets]


def finetune(model, tokenizer, data, config=None, out_dir=None, log=print, meta=None) -> dict:
    """Train ``model`` (a head on a body) on ``data.train``; after each epoch score ``data.dev``.

    ``data`` is a ``TaskData``. Prints one line per epoch (train loss, dev
    scores); the best epoch by dev score (accuracy, or entity F1 for tagging)
    is kept: restored into ``model`` at the end and, with ``out_dir``, saved
    there as a checkpoint (``load_finetuned`` reads it). Returns the history.
    """
    config = config if config is not None else FinetuneConfig()
    manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.freeze:
        model.freeze_body()
    ids, targets = _encode_split(model, tokenizer, data.labels, *data.train)
    tagging = isinstance(model, TokenClassifier)
    optimizer = AdamW(model.param_groups(config.lr, config.body_lr, config.weight_decay), lr=config.lr,
                      weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(ids) / config.batch_size)
    scheduler = WarmupCosineLR(optimizer, int(config.warmup * steps), steps, min_lr_ratio=0.0)
    history = {"epoch": [], "train_loss": [], "dev": []}
    best, best_state = -1.0, None
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for batch in length_batches([len(s) for s in ids], config.batch_size, rng):
            idx, mask = pad([ids[i] for i in batch])
            y = pad([targets[i] for i in batch], IGNORE_INDEX)[0] if tagging else np.array([targets[i] for i in batch])
            loss = model(idx, mask, y)[1]
            _step(model, loss, optimizer, scheduler, config.grad_clip)
            losses.append(loss.item())
        scores = evaluate(model, tokenizer, data.labels, *data.dev)
        score = scores["f1"] if tagging else scores["accuracy"]
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["dev"].append(scores)
        improved = score > best
        log(f"epoch {epoch}/{config.epochs}: train loss {np.mean(losses):.4f}, dev {describe_scores(scores)}"
            f"{'  (best so far)' if improved else ''}")
        if improved:
            best, best_state = score, {k: v.copy() for k, v in model.state_dict().items()}
            history["best_epoch"], history["best_dev"] = epoch, scores
            if out_dir is not None:
                save_finetuned(out_dir, model, tokenizer, data.labels, {**(meta or {}), "finetune": config.to_dict(),
                                                                         "history": history})
    model.load_state_dict(best_state)
    model.eval()
    return history


def describe_scores(scores) -> str:
    """One line of the scores ``evaluate`` returns."""
    if "entity_f1" in scores:
        return (f"entity F1 {scores['f1']:.2%} (P {scores['precision']:.2%}, R {scores['recall']:.2%}), "
                f"token accuracy {scores['token_accuracy']:.2%}")
    return (f"accuracy {scores['accuracy']:.2%}, macro F1 {scores['f1']:.2%} "
            f"(P {scores['precision']:.2%}, R {scores['recall']:.2%})")


# ------------------------------------------------------------- prediction
def first_member(model):
    """The model itself, or an ensemble's first member: where the task, sizes and block size are read."""
    return model.members[0] if isinstance(model, Ensemble) else model


def predict_proba(model, tokenizer, texts, batch_size=256) -> np.ndarray:
    """Class probabilities (N, K) of each text, from a classifier or an ensemble of them."""
    head = first_member(model)
    ids = encode_texts(tokenizer, texts, head.body.config.block_size)
    out = np.zeros((len(ids), head.num_classes))
    for batch in length_batches([len(s) for s in ids], batch_size):
        out[batch] = model.predict_proba(*pad([ids[i] for i in batch]))
    return out


def predict_tags(model, tokenizer, sentences, labels, batch_size=256) -> list:
    """The tag of every word of each sentence (lists of strings); words past the block size get "O"."""
    encoded = [encode_words(tokenizer, words) for words in sentences]
    max_len = first_member(model).body.config.block_size
    out = [None] * len(encoded)
    for batch in length_batches([min(len(ids), max_len) for ids, _ in encoded], batch_size):
        predicted = model.predict(*pad([encoded[i][0][:max_len] for i in batch]))  # (B, T)
        for row, i in enumerate(batch):
            out[i] = [labels[predicted[row, end]] if end < max_len else "O" for end in encoded[i][1]]
    return out


def evaluate(model, tokenizer, labels, inputs, targets) -> dict:
    """Scores on one split: accuracy and macro P/R/F1, or entity-level P/R/F1 and token accuracy."""
    if isinstance(first_member(model), TokenClassifier):
        predicted = predict_tags(model, tokenizer, inputs, labels)
        scores = entity_scores(targets, predicted)
        return {"entity_f1": scores["f1"], "f1": scores["f1"], "precision": scores["precision"],
                "recall": scores["recall"], "token_accuracy": token_accuracy(targets, predicted)}
    predicted = [labels[i] for i in predict_proba(model, tokenizer, inputs).argmax(axis=1)]
    return classification_scores(targets, predicted, average="macro")


# ------------------------------------------------------------ checkpoints
HEADS = {"classify": SequenceClassifier, "tag": TokenClassifier}


def build_head(task, config: GPTConfig, labels, dropout=0.1, pooling="mean"):
    """A fresh ``SequenceClassifier`` (task "classify") or ``TokenClassifier`` ("tag") for ``labels``."""
    if task == "classify":
        return SequenceClassifier(config, len(labels), pooling=pooling, dropout=dropout)
    if task == "tag":
        return TokenClassifier(config, len(labels), dropout=dropout)
    raise ValueError(f"build_head: task must be one of {tuple(HEADS)}, got {task!r}")


def save_finetuned(folder, model, tokenizer, labels, meta=None):
    """A checkpoint of a fine-tuned head (or ``Ensemble``): weights, body config, head settings,
    tokenizer and labels, everything ``load_finetuned`` needs."""
    head = first_member(model)
    task = "tag" if isinstance(head, TokenClassifier) else "classify"
    settings = {"task": task, "dropout": head.dropout.p, "pooling": getattr(head, "pooling", None),
                "members": len(model.members) if isinstance(model, Ensemble) else None}
    record = {**(meta or {}), "kind": "finetuned", "head": settings, "labels": list(labels),
              "model_config": head.body.config.to_dict(), "tokenizer": tokenizer.to_dict()}
    save_checkpoint(folder, model.state_dict(), None, record)


def load_finetuned(folder, task=None) -> tuple:
    """``(model, tokenizer, meta)`` from a folder ``save_finetuned`` (or ``tinytransformer finetune``) wrote.

    ``task`` ("classify" or "tag"), if given, must be the checkpoint's.
    """
    state, _, meta = load_checkpoint(folder)
    if meta.get("kind") != "finetuned":
        raise ValueError(f"load_finetuned: {folder} holds a pretrained language model, not a fine-tuned one; "
                         "fine-tune it first with `tinytransformer finetune --checkpoint ...`")
    head = meta["head"]
    if task is not None and head["task"] != task:
        raise ValueError(f"load_finetuned: {folder} holds a model for `{head['task']}`, not for `{task}`")
    config = GPTConfig(**meta["model_config"])

    def build():
        return build_head(head["task"], config, meta["labels"], head["dropout"], head["pooling"] or "mean")

    model = build() if head["members"] is None else Ensemble([build() for _ in range(head["members"])])
    model.load_state_dict(state)
    model.eval()
    return model, tokenizer_from_dict(meta["tokenizer"]), meta


# --------------------------------------------------- pretraining for the task
def pretraining_sentences(texts, tokenizer, block_size, corpus=None) -> list:
    """The sentences a body is pretrained on: the task's ``texts`` (strings or word lists), then,
    if ``corpus`` names one (``load_corpus``), its lines of at least 5 words. Word tokenizers
    frame each with <bos> ... <eos>, as fine-tuning sees them."""
    texts = [t if isinstance(t, str) else " ".join(t) for t in texts]
    if corpus is not None:
        texts += [line for line in load_corpus(corpus).splitlines() if len(line.split()) >= 5]
    end = [tokenizer.eos_id] if isinstance(tokenizer, WordTokenizer) else []
    seqs = [(_prefix(tokenizer) + tokenizer.encode(t) + end)[:block_size + 1] for t in texts]
    return [s for s in seqs if len(s) >= 2]


def pretrain_for_task(sentences, model_config: GPTConfig, steps, batch_size=32, lr=2e-3, seed=0, shortlist=None,
                      unk_id=None, log=print) -> GPT:
    """A GPT pretrained by next-token prediction on ``sentences`` (lists of token ids), one per row.

    Each batch holds sentences of similar lengths, each starting at position 0
    as the fine-tuned model will see them; padded targets are -1 (ignored).
    AdamW (decay 0.1 on matrices), warmup over 5% of the steps, then cosine to lr/10.

    ``shortlist`` N (with ``unk_id``) predicts only the N first ids, the most
    frequent words of a ``WordTokenizer``, and counts every rarer target as
    ``unk_id`` (the short-list of Schwenk 2007). The softmax over a 16k-word
    vocabulary costs three times the rest of a small model; a 2k short-list
    still covers most running words, and rare words still train as inputs.
    """
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GPT(model_config)
    optimizer = AdamW(model.optimizer_groups(0.1), lr=lr, betas=(0.9, 0.99))
    scheduler = WarmupCosineLR(optimizer, max(1, steps // 20), steps, min_lr_ratio=0.1)
    lengths = [len(s) for s in sentences]
    if shortlist is not None and unk_id is None:
        raise ValueError("pretrain_for_task: a shortlist needs unk_id, the id that stands for every rarer word")
    n_out = model_config.vocab_size if shortlist is None else min(shortlist, model_config.vocab_size)
    step, losses, batches = 0, [], []
    model.train()
    while step < steps:
        if not batches:
            batches = length_batches(lengths, batch_size, rng)
        seqs, mask = pad([sentences[i] for i in batches.pop()])
        targets = seqs[:, 1:] if shortlist is None else np.where(seqs[:, 1:] >= n_out, unk_id, seqs[:, 1:])
        targets = np.where(mask[:, 1:], -1, targets)  # (B, T - 1): the next token, -1 at padding (ignored)
        h = model.hidden_states(seqs[:, :-1])  # (B, T - 1, C)
        logits = F.linear(h, model.lm_head.weight[:n_out])  # (B, T - 1, n_out), tied to the embedding
        loss = F.cross_entropy(logits.reshape(-1, n_out), targets.reshape(-1), ignore_index=-1)
        _step(model, loss, optimizer, scheduler, 1.0)
        losses.append(loss.item())
        step += 1
        if step % max(1, steps // 10) == 0 or step == steps:
            log(f"pretrain step {step}/{steps}: loss {np.mean(losses[-50:]):.4f}")
    model.eval()
    return model
