"""Training the tagger that reads both ways: what ``tinytransformer finetune --task tag`` runs by default.

    results = run(TaggingConfig(data="wnut17", out="runs/wnut17"))    the command, from Python
    model, vocab, meta = load_tagger("runs/wnut17")
    tags = tag_sentences(model, vocab, [["I", "saw", "Taylor", "Swift"]])   a tag per word

A run goes through four steps:

    1. the vocabularies, from the TRAINING sentences only (no dev or test word is
       seen before it is scored): a word tokenizer of the words seen ``min_freq``
       times (lower-cased with ``lower``: "Apple" and "apple" share a vector) and
       the characters (``CharVocab``, case kept: the character CNN sees "Apple");
    2. a ``BiTagger`` (models/tagger.py): word embedding + character CNN + shape
       features -> a bidirectional LSTM -> a CRF (or a softmax) over the tags;
    3. the library's one loop (``training.Trainer``) with three pieces of its own:
       a batch source of sentences of similar lengths (``tagging_batch``), the
       model's own loss (the CRF's negative log-likelihood), and the dev entity F1
       after every epoch; the best epoch's weights are kept;
    4. the result saved to ``out`` as a "tagger" checkpoint (the tagger's config,
       the word tokenizer, the characters and the labels; ``load_tagger`` reads it),
       dev and test scored once, ``OUT/results.json`` written.

Words unseen in training are ``<unk>`` for the embedding, but their characters
and shapes are still read. So that ``<unk>`` is trained at all, each training
word seen only once becomes ``<unk>`` with probability ``unk_replace`` in each
batch (Lample et al. 2016).
"""

import json
import time
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np

from ..data import WordTokenizer, load_task, tokenizer_from_dict
from ..data.batching import EpochBatches, length_batches
from ..data.tasks import BUILT_IN_TASKS
from ..data.word_features import CharVocab, tagging_batch
from ..metrics import entity_scores, token_accuracy
from ..models.tagger import OUTPUTS, BiTagger, BiTaggerConfig
from ..rng import manual_seed
from ..training import TrainConfig, Trainer, check_out_folder, load_checkpoint, save_checkpoint
from ..training.checkpoint import atomic_write_text
from ..training.checkpoint_schema import is_bitagger
from .options import check_options, option

# What a FinetuneRecipe (`finetune --task tag`) passes on to the bitagger: every other setting is a head's or a body's.
FROM_RECIPE = ("data", "train", "dev", "test", "min_freq", "dropout", "epochs", "batch_size", "lr", "weight_decay",
               "seed", "out", "overwrite")


@dataclass
class TaggingConfig:
    """Every choice of a run of the bidirectional tagger. The defaults are the best of what was measured on
    WNUT-17's dev set (benchmarks/tagger_tuning.py, docs/finetuning.md). What mattered most there: training
    <unk> (``unk_replace``), lower-cased words, a small start for the word embedding (``word_init``), the CRF,
    and a learning rate of 3e-3 or more; the sizes mattered less than the spread between seeds."""

    data: str = option(None, "a built-in tagging task with its own dev and test splits",
                       choices=tuple(name for name, kind in BUILT_IN_TASKS.items() if kind == "tagging"))
    train: str = option(None, "your CoNLL training file (token<TAB>tag lines, a blank line between sentences)")
    dev: str = option(None, "your dev file (default: 10% of train, held out)")
    test: str = option(None, "scored once, at the end")
    lower: bool = option(True, "lower-case words before looking them up (the characters keep their case)")
    min_freq: int = option(1, "keep words seen this often in training; the rest are <unk>", within="[1, inf)")
    unk_replace: float = option(0.5, "each batch, a training word seen once becomes <unk> with this probability",
                                within="[0, 1]")
    word_dim: int = option(50, "width of a word's embedding", within="[1, inf)")
    word_init: float = option(0.1, "standard deviation of the word embedding's initial values", within="(0, inf)")
    char_dim: int = option(30, "width of a character's embedding", within="[1, inf)")
    char_filters: int = option(50, "filters of the character CNN: the width of a word's character vector",
                               within="[1, inf)")
    hidden_size: int = option(100, "width of each direction of the BiLSTM", within="[1, inf)")
    dropout: float = option(0.5, "dropout on the word vectors and the BiLSTM's output", within="[0, 1)")
    output: str = option("crf", "crf: a linear-chain CRF over the tags (Viterbi decoding); softmax: each word alone",
                         choices=OUTPUTS)
    epochs: int = option(20, "passes over the training sentences", within="[1, inf)")
    batch_size: int = option(32, "sentences per step", within="[1, inf)")
    lr: float = option(6e-3, "peak learning rate of AdamW", within="[0, inf)")
    weight_decay: float = option(0.0, "AdamW's weight decay (matrices only)", within="[0, inf)")
    seed: int = option(0, "seeds the weights, batches and dropout", within="[0, inf)")
    out: str = option(None, "folder for the tagger and results.json; None saves nothing")
    overwrite: bool = option(False, "replace the checkpoint in out (only its own files go)")

    def __post_init__(self):
        check_options(self)
        if (self.data is None) == (self.train is None):
            raise ValueError("TaggingConfig: give either data (a built-in task) or train (your file), not both")
        if self.data is not None and (self.dev or self.test):
            raise ValueError(f"TaggingConfig: {self.data!r} comes with its own dev and test splits")

    @classmethod
    def from_recipe(cls, recipe) -> "TaggingConfig":
        """The bitagger's settings in a ``FinetuneRecipe`` of ``task="tag"`` (``FROM_RECIPE``; None: the default
        here). A setting of a head or a body, changed from its default, is an error rather than ignored."""
        if recipe.task != "tag":
            raise ValueError(f"tagger: the bitagger tags words (--task tag), not {recipe.task!r}")
        changed = [f.name for f in fields(recipe) if f.name not in (*FROM_RECIPE, "task", "tagger")
                   and getattr(recipe, f.name) != (f.default_factory() if f.default is MISSING else f.default)]
        if changed:
            raise ValueError(f"{', '.join('--' + name.replace('_', '-') for name in changed)}: a setting of a "
                             "head on a body, which --tagger bitagger has none of; give --tagger head, or leave it out")
        return cls(**{name: getattr(recipe, name) for name in FROM_RECIPE if getattr(recipe, name) is not None})

    def model_config(self, vocab) -> BiTaggerConfig:
        return BiTaggerConfig(num_tags=len(vocab.labels), vocab_size=vocab.tokenizer.vocab_size, word_dim=self.word_dim,
                              char_vocab_size=vocab.char_vocab.vocab_size, char_dim=self.char_dim,
                              char_filters=self.char_filters, hidden_size=self.hidden_size, dropout=self.dropout,
                              output=self.output)


# The recipe's settings whose default differs by model (None there), with the bitagger's: `finetune --help` shows them
BITAGGER_DEFAULTS = {name: TaggingConfig.__dataclass_fields__[name].default
                     for name in ("min_freq", "dropout", "epochs", "lr", "weight_decay")}


# ------------------------------------------------------------------ words -> inputs
@dataclass
class TaggerVocab:
    """What turns words into a tagger's inputs, and tag ids back into tags; all learned from training sentences."""

    tokenizer: WordTokenizer
    char_vocab: CharVocab
    labels: tuple

    @classmethod
    def train(cls, sentences, labels, min_freq=1, lower=True) -> "TaggerVocab":
        return cls(WordTokenizer.train(sentences, min_freq=min_freq, lower=lower), CharVocab.train(sentences),
                   tuple(labels))

    def batch(self, sentences, tags=None):
        """A ``TaggerBatch`` of sentences (word lists), with tag strings if given."""
        tag_ids = {label: i for i, label in enumerate(self.labels)}
        return tagging_batch(sentences, tags, self.tokenizer, self.char_vocab, tag_ids=tag_ids)

    def singletons(self, sentences) -> np.ndarray:
        """Whether each id is a word seen exactly once in ``sentences``, (vocab_size,) bool."""
        counts = np.bincount([i for s in sentences for i in self.tokenizer.encode_words(s)],
                             minlength=self.tokenizer.vocab_size)
        return counts == 1


def replace_singletons(batch, singletons, p, rng, unk_id):
    """Each piece of ``batch`` that is a word seen once becomes ``unk_id`` with probability ``p``, in place."""
    chosen = singletons[batch.pieces] & (rng.random(batch.pieces.shape) < p)  # (B, T, P), one piece per word
    batch.pieces[chosen] = unk_id
    return batch


class TaggingBatches(EpochBatches):
    """The loop's batch source: sentences of similar lengths, a fresh shuffle each epoch, as ``TaggerBatch``es."""

    def __init__(self, vocab, sentences, tags, batch_size, unk_replace=0.0):
        self.vocab, self.sentences, self.tags, self.unk_replace = vocab, sentences, tags, unk_replace
        self.singletons = vocab.singletons(sentences)
        super().__init__([len(s) for s in sentences], batch_size, self.collate)

    def collate(self, indices):
        return self.vocab.batch([self.sentences[i] for i in indices], [self.tags[i] for i in indices])

    def next_batch(self, rng):
        batch = super().next_batch(rng)
        if self.unk_replace:
            replace_singletons(batch, self.singletons, self.unk_replace, rng, self.vocab.tokenizer.unk_id)
        return batch


def tag_sentences(model, vocab, sentences, batch_size=256) -> list:
    """The tag of every word of each sentence (lists of strings), sentences of similar lengths batched together."""
    out = [None] * len(sentences)
    for indices in length_batches([len(s) for s in sentences], batch_size):
        for i, ids in zip(indices, model.predict(vocab.batch([sentences[i] for i in indices]))):
            out[i] = [vocab.labels[t] for t in ids]
    return out


def evaluate(model, vocab, sentences, tags) -> dict:
    """Entity-level precision, recall and F1, and token accuracy, on one split."""
    predicted = tag_sentences(model, vocab, sentences)
    scores = entity_scores(tags, predicted)
    return {"entity_f1": scores["f1"], "f1": scores["f1"], "precision": scores["precision"],
            "recall": scores["recall"], "token_accuracy": token_accuracy(tags, predicted)}


# ------------------------------------------------------------------ training
def optimizer_groups(model, weight_decay):
    """AdamW groups: decay on matrices (embeddings included), none on biases."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def build_tagger(config: TaggingConfig, vocab) -> BiTagger:
    """A fresh ``BiTagger``; its word embedding starts at N(0, word_init^2) instead of N(0, 1), on the
    scale of its other inputs (the 0/1 shape features, the character CNN's tanh)."""
    model = BiTagger(config.model_config(vocab))
    model.embedding.weight.data *= config.word_init
    return model


def train_tagger(model, vocab, data, config: TaggingConfig, log=print) -> dict:
    """Train ``model`` on ``data.train`` (the loop of ``training.Trainer``), scoring ``data.dev`` after each
    epoch; the best epoch's weights are restored into ``model`` at the end. Returns the history.

    AdamW at ``config.lr`` after a warmup over the first 5% of the steps, then a cosine to 0; gradients
    clipped to norm 5 (Lample et al. 2016), since the CRF's loss is a sum over a sentence's words.
    """
    batches = TaggingBatches(vocab, *data.train, config.batch_size, config.unk_replace)
    per_epoch = batches.batches_per_epoch
    history, best = {"epoch": [], "train_loss": [], "dev": [], "seconds": []}, {"f1": -1.0}
    started = time.perf_counter()

    def end_of_epoch(trainer):
        epoch, loss = trainer.step // per_epoch, float(np.mean(trainer.history["train_loss"][-per_epoch:]))
        scores = evaluate(model, vocab, *data.dev)
        history["epoch"].append(epoch)
        history["train_loss"].append(loss)
        history["dev"].append(scores)
        history["seconds"].append(round(time.perf_counter() - started, 1))
        improved = scores["f1"] > best["f1"]
        if improved:
            best.update(f1=scores["f1"], state={k: v.copy() for k, v in model.state_dict().items()})
            history["best_epoch"], history["best_dev"] = epoch, scores
        log(f"epoch {epoch}/{config.epochs}: train loss {loss:.4f}, dev entity F1 {scores['f1']:.2%} "
            f"(P {scores['precision']:.2%}, R {scores['recall']:.2%}){'  (best so far)' if improved else ''}")
        return scores

    steps = config.epochs * per_epoch
    loop = TrainConfig(max_iters=steps, batch_size=config.batch_size, lr=config.lr, betas=(0.9, 0.999),
                       weight_decay=config.weight_decay, warmup_iters=steps // 20, min_lr_ratio=0.0, grad_clip=5.0,
                       eval_interval=per_epoch, seed=config.seed)
    Trainer(model, batches, config=loop, loss_fn=lambda model, batch: model(batch)[1],
            param_groups=optimizer_groups(model, config.weight_decay), evaluate=end_of_epoch,
            evaluate_first=False).train(progress=False)
    model.load_state_dict(best["state"])
    model.eval()
    return history


def load_data(config):
    if config.data is not None:
        return load_task(config.data)
    return load_task(config.train, dev=config.dev, test=config.test, kind="tagging", seed=config.seed)


def run(config: TaggingConfig, log=print) -> dict:
    """Run the whole recipe (see the module docstring); returns the results written to ``OUT/results.json``."""
    started = time.perf_counter()
    check_out_folder(config.out, config.overwrite)
    data = load_data(config)
    vocab = TaggerVocab.train(data.train[0], data.labels, config.min_freq, config.lower)
    log(f"data: {len(data.train[0]):,} training, {len(data.dev[0]):,} dev"
        f"{f', {len(data.test[0]):,} test' if data.test else ''} sentences; {len(data.labels)} tags")
    log(f"vocabulary from the training sentences: {vocab.tokenizer.vocab_size:,} words"
        f"{' (lower-cased)' if config.lower else ''}, {vocab.char_vocab.vocab_size} characters")
    manual_seed(config.seed)
    model = build_tagger(config, vocab)
    history = train_tagger(model, vocab, data, config, log)
    results = {"config": asdict(config), "best_epoch": history["best_epoch"], "dev": history["best_dev"]}
    if data.test is not None:
        results["test"] = evaluate(model, vocab, *data.test)
    results["seconds"] = round(time.perf_counter() - started, 1)
    for split in ("dev", "test"):
        if split in results:
            s = results[split]
            log(f"the tagger: {split} entity F1 {s['f1']:.2%} (P {s['precision']:.2%}, R {s['recall']:.2%}), "
                f"token accuracy {s['token_accuracy']:.2%}")
    if config.out is not None:
        save_tagger(config.out, model, vocab, {"tagging": asdict(config), "history": history}, config.overwrite)
        atomic_write_text(f"{config.out}/results.json", json.dumps(results, indent=1) + "\n")
    log(f"done in {results['seconds']:.0f} s" + (f"; saved to {config.out}" if config.out else ""))
    return results


# ------------------------------------------------------------------ checkpoints
def save_tagger(folder, model, vocab, meta=None, overwrite=False):
    """A "tagger" checkpoint of a ``BiTagger``: its weights and config, the word tokenizer, the characters and
    the labels, everything ``load_tagger`` needs."""
    record = {**(meta or {}), "kind": "tagger", "model_type": "bitagger", "model_config": model.config.to_dict(),
              "tokenizer": vocab.tokenizer.to_dict(), "char_vocab": vocab.char_vocab.to_dict(),
              "labels": list(vocab.labels)}
    save_checkpoint(folder, model.state_dict(), None, record, overwrite=overwrite)


def load_tagger(folder, reader="load_tagger") -> tuple:
    """``(model, vocab, meta)`` from a folder ``save_tagger`` wrote."""
    state, _, meta = load_checkpoint(folder, holds=("tagger",), reader=reader)
    if not is_bitagger(meta):
        raise ValueError(f"{folder} holds a tagging head on a body, not a BiTagger: tasks.finetuned.load_finetuned "
                         "reads it")
    model = BiTagger(BiTaggerConfig(**meta["model_config"]))
    model.load_state_dict(state)
    model.eval()
    vocab = TaggerVocab(tokenizer_from_dict(meta["tokenizer"]), CharVocab.from_dict(meta["char_vocab"]),
                        tuple(meta["labels"]))
    return model, vocab, meta
