"""From a task to a saved fine-tuned model: what ``tinytransformer finetune`` runs, with its defaults.

    1. a tokenizer trained on the training and dev texts: words for classification
       (SST-2 comes lower-cased and tokenised; words seen once become <unk>),
       byte-level BPE for tagging (new names fall apart into known pieces instead
       of becoming <unk>);
    2. the body: a pretrained GPT from ``checkpoint`` (its tokenizer replaces the one
       of step 1: body and head must read text the same way), or a GPT pretrained
       here for ``pretrain_steps`` on the task's sentences (and, with
       ``pretrain_corpus="pydoc"``, Python's help pages; saved to ``OUT/pretrained``
       for reuse with ``--checkpoint``), or a fresh GPT (``pretrain_steps=0``);
    3. ``ensemble`` heads trained on that body (member k seeded 1000 seed + k), each
       kept at its best epoch by dev score, their probabilities averaged;
    4. the result saved to ``OUT`` (``load_finetuned``), the dev and test scores printed
       and written to ``OUT/results.json``.

The classification defaults are the best of what was measured on SST-2 within
the 15-minute budget of a 2-core machine (README, "Fine-tuning"): a one-block,
128-wide GPT from scratch with max pooling, ten of them averaged. Pretraining on
the task's own 7,800 sentences did not help there, so it is off by default for
classification; tagging keeps it.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data import load_task
from ..data.tasks import TASKS as BUILT_IN
from ..metrics import accuracy, plot_confusion_matrix
from ..models.gpt import GPTConfig
from ..models.heads import Ensemble
from ..random import manual_seed
from .checkpoint import atomic_write_text, save_checkpoint
from .finetune import (
    FinetuneConfig, build_head, describe_scores, encode_words, evaluate, finetune, pretrain_for_task,
    predict_proba, pretraining_sentences, save_finetuned, task_tokenizer,
)
from .plots import import_pyplot
from .pretrain import load_pretrained

TASKS = {"classify": "classification", "tag": "tagging"}
# Settings that differ by task; None in a FinetuneRecipe field means "this task's default".
TASK_DEFAULTS = {
    "classify": {"tokenizer": "word", "vocab_size": None, "min_freq": 2, "n_layer": 1, "n_embd": 128, "epochs": 3,
                 "lr": 1e-3, "pretrain_steps": 0, "ensemble": 10},
    "tag": {"tokenizer": "bpe", "vocab_size": 2048, "min_freq": 1, "n_layer": 2, "n_embd": 128, "epochs": 8,
            "lr": 1e-3, "pretrain_steps": 600, "ensemble": 1},
}
MAX_BLOCK_SIZE = 128


@dataclass
class FinetuneRecipe:
    """Every choice of a fine-tuning run (``tinytransformer finetune --help`` shows the same)."""

    task: str = "classify"
    data: str = None
    train: str = None
    dev: str = None
    test: str = None
    checkpoint: str = None
    freeze: bool = False
    tokenizer: str = None
    vocab_size: int = None
    min_freq: int = None
    n_layer: int = None
    n_head: int = 4
    n_embd: int = None
    dropout: float = 0.1
    pretrain_steps: int = None
    pretrain_corpus: str = None
    shortlist: int = 2000
    epochs: int = None
    batch_size: int = 32
    lr: float = None
    body_lr: float = None
    weight_decay: float = 0.01
    head_dropout: float = 0.1
    pooling: str = "max"
    ensemble: int = None
    seed: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"FinetuneRecipe: task must be one of {tuple(TASKS)}, got {self.task!r}")
        if (self.data is None) == (self.train is None):
            raise ValueError("FinetuneRecipe: give either data (a built-in task) or train (your file), not both")
        if self.data is not None and (self.dev or self.test):
            raise ValueError(f"FinetuneRecipe: {self.data!r} comes with its own dev and test splits")
        if self.data is not None and BUILT_IN[self.data] != TASKS[self.task]:
            raise ValueError(f"FinetuneRecipe: {self.data!r} is a {BUILT_IN[self.data]} task, not {self.task!r}")
        for name, value in TASK_DEFAULTS[self.task].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.ensemble < 1:
            raise ValueError(f"FinetuneRecipe: ensemble must be at least 1, got {self.ensemble}")

    def finetune_config(self, seed) -> FinetuneConfig:
        return FinetuneConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, body_lr=self.body_lr,
                              weight_decay=self.weight_decay, freeze=self.freeze, seed=seed)


def load_recipe_data(recipe):
    """The ``TaskData`` a recipe names: a built-in set, or the user's files of the recipe's kind."""
    if recipe.data is not None:
        return load_task(recipe.data)
    return load_task(recipe.train, dev=recipe.dev, test=recipe.test, kind=TASKS[recipe.task], seed=recipe.seed)


def _texts(split):
    return [t if isinstance(t, str) else " ".join(t) for t in split[0]]


def _block_size(recipe, tokenizer, data):
    """Room for the longest training or dev sentence (plus <bos>), at most MAX_BLOCK_SIZE."""
    inputs = data.train[0] + data.dev[0]
    if recipe.task == "classify":
        longest = max(len(tokenizer.encode(t)) for t in inputs)
    else:
        longest = max(len(encode_words(tokenizer, words)[0]) for words in inputs)
    return min(longest + 2, MAX_BLOCK_SIZE)


def prepare_body(recipe, data, out_dir, log=print):
    """``(state_dict or None, config, tokenizer)``: the pretrained body the heads start from."""
    if recipe.checkpoint is not None:
        body, tokenizer, _ = load_pretrained(recipe.checkpoint)
        log(f"body: {recipe.checkpoint} ({body.config.n_layer} layers, width {body.config.n_embd}, "
            f"vocabulary {tokenizer.vocab_size})")
        config = GPTConfig(**{**body.config.to_dict(), "dropout": recipe.dropout})
        return body.state_dict(), config, tokenizer
    texts = _texts(data.train) + _texts(data.dev)
    tokenizer = task_tokenizer(texts, recipe.tokenizer, recipe.vocab_size, recipe.min_freq)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=_block_size(recipe, tokenizer, data),
                       n_layer=recipe.n_layer, n_head=recipe.n_head, n_embd=recipe.n_embd, dropout=recipe.dropout)
    log(f"tokenizer: {recipe.tokenizer}, {tokenizer.vocab_size} ids, trained on the training and dev texts")
    if not recipe.pretrain_steps:
        log("body: from scratch (no pretraining)")
        return None, config, tokenizer
    sentences = pretraining_sentences(texts, tokenizer, config.block_size, recipe.pretrain_corpus)
    log(f"pretraining a {config.n_layer}-layer GPT (width {config.n_embd}) for {recipe.pretrain_steps} steps on "
        f"{len(sentences):,} sentences ({sum(map(len, sentences)):,} tokens)")
    shortlist = recipe.shortlist if recipe.tokenizer == "word" else None
    body = pretrain_for_task(sentences, GPTConfig(**{**config.to_dict(), "dropout": 0.0}), recipe.pretrain_steps,
                             batch_size=recipe.batch_size, seed=recipe.seed, shortlist=shortlist,
                             unk_id=getattr(tokenizer, "unk_id", None), log=log)
    if out_dir is not None:
        meta = {"kind": "pretrained", "data": "task text", "model_config": body.config.to_dict(),
                "tokenizer": tokenizer.to_dict()}
        save_checkpoint(Path(out_dir) / "pretrained", body.state_dict(), None, meta)
    return body.state_dict(), config, tokenizer


def member_seed(seed, k) -> int:
    """The seed of member k of a run seeded ``seed``: runs with different seeds share no member."""
    return 1000 * seed + k


def run_finetune(recipe, out_dir=None, log=print) -> dict:
    """Run the whole recipe (see the module docstring); returns the results written to ``results.json``."""
    started = time.perf_counter()
    data = load_recipe_data(recipe)
    log(f"data: {len(data.train[0]):,} training, {len(data.dev[0]):,} dev"
        f"{f', {len(data.test[0]):,} test' if data.test else ''} examples; labels {list(data.labels)}")
    state, config, tokenizer = prepare_body(recipe, data, out_dir, log)
    pretrain_seconds = time.perf_counter() - started
    members, member_dev = [], []
    for k in range(recipe.ensemble):
        if recipe.ensemble > 1:
            log(f"fine-tune {k + 1} of {recipe.ensemble}")
        seed = member_seed(recipe.seed, k)
        manual_seed(seed)  # the head's (and a fresh body's) initial weights
        model = build_head(recipe.task, config, data.labels, recipe.head_dropout, recipe.pooling)
        if state is not None:
            model.load_body(state)
        single_out = out_dir if recipe.ensemble == 1 else None  # one model: saved at every new best epoch
        history = finetune(model, tokenizer, data, recipe.finetune_config(seed), single_out, log,
                           meta={"recipe": asdict(recipe)})
        members.append(model)
        member_dev.append(history["best_dev"])
    model = members[0] if recipe.ensemble == 1 else Ensemble(members)
    results = {"recipe": asdict(recipe), "members_dev": member_dev,
               "dev": evaluate(model, tokenizer, data.labels, *data.dev)}
    if data.test is not None:
        results["test"] = evaluate(model, tokenizer, data.labels, *data.test)
        if recipe.ensemble > 1:
            results["members_test"] = [evaluate(m, tokenizer, data.labels, *data.test) for m in members]
    results["seconds"] = {"pretrain": round(pretrain_seconds, 1), "total": round(time.perf_counter() - started, 1)}
    name = "the model" if recipe.ensemble == 1 else f"the ensemble of {recipe.ensemble}"
    log(f"{name}: dev {describe_scores(results['dev'])}")
    if "test" in results:
        log(f"{name}: test {describe_scores(results['test'])}")
    if out_dir is not None:
        if recipe.ensemble > 1:
            save_finetuned(out_dir, model, tokenizer, data.labels, {"recipe": asdict(recipe)})
        atomic_write_text(Path(out_dir, "results.json"), json.dumps(results, indent=1, default=float) + "\n")
        if recipe.task == "classify":
            for split in ("dev", "test"):
                if getattr(data, split) is not None:
                    log(f"confusion matrix ({split}): {save_confusion_matrix(model, tokenizer, data, split, out_dir)}")
    log(f"done in {results['seconds']['total']:.0f} s; saved to {out_dir}" if out_dir else "done")
    return results


def save_confusion_matrix(model, tokenizer, data, split, out_dir) -> Path:
    """``OUT/confusion_<split>.png``: the classifier's predictions on a split against the truth (needs matplotlib)."""
    plt = import_pyplot()
    texts, truth = getattr(data, split)
    predicted = [data.labels[i] for i in predict_proba(model, tokenizer, texts).argmax(axis=1)]
    path = Path(out_dir) / f"confusion_{split}.png"
    fig = plot_confusion_matrix(truth, predicted, labels=list(data.labels),
                                title=f"{split}: accuracy {accuracy(truth, predicted):.1%}", path=path)
    plt.close(fig)
    return path


def read_texts(path=None, stream=None) -> list:
    """The non-blank lines of a UTF-8 file (or of ``stream``, standard input), stripped: one text each."""
    source = str(path) if path is not None else "standard input"
    try:
        if path is not None:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        else:
            lines = stream.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"{source} holds no text (one text per line expected)")
    return texts
