"""Fine-tuning a pretrained body to classify sentences or tag words: what ``tinytransformer finetune`` runs.

    run(FinetuneRecipe(task="classify", data="sst2", out="runs/sst2"))    the command, from Python

Tagging trains the tagger that reads both ways by default (``tagger="bitagger"``: tasks/tagging.py).
A head on a body (every classifier; a tagger with ``tagger="head"``, the default with a
``checkpoint``) goes through four steps:

    1. a tokenizer trained on the training and dev texts: words for classification
       (SST-2 comes lower-cased and tokenised; words seen once become <unk>),
       byte-level BPE for tagging (new names fall apart into known pieces instead
       of becoming <unk>);
    2. the body (``finetune_body.prepare_body``): a pretrained GPT or BERT encoder from
       ``checkpoint``, or a GPT-2 from ``pretrained`` (its tokenizer replaces the one
       of step 1: body and head must read text the same way), or a GPT pretrained here
       for ``pretrain_steps`` on the task's sentences (with ``pretrain_corpus="pydoc"``,
       Python's help pages too; saved to ``OUT/pretrained`` for reuse with
       ``checkpoint``), or a fresh GPT (``pretrain_steps=0``);
    3. ``ensemble`` heads trained on that body (``finetune``; member k seeded 1000 seed + k),
       each kept at its best epoch by dev score, their probabilities averaged; with ``lora``,
       low-rank adapters train inside the frozen body (``nn/lora.py``), merged after; optionally
       with a smaller learning rate for each lower layer (``layer_lr_decay``) and the body
       unfrozen top-down over the first epochs (``unfreeze_epochs``), as in ULMFiT;
    4. the result saved to ``out`` (``load_finetuned`` reads it), the dev and test scores
       printed and written to ``OUT/results.json``.

Both trainings are the library's one loop (``training.Trainer``) with their own
batches, loss and evaluation. A fine-tuning step is the language model's step
with a head's loss, on sentences of similar lengths padded to their longest:

    idx, mask, y = next batch                 (B, T), (B, T), (B,) labels or (B, T) tags
    loss = model(idx, mask, y)[1]             binary cross-entropy, or cross-entropy
    loss.backward(); clip; AdamW step; warmup then cosine to 0
    after each epoch: score dev, keep the best; unfreeze the next layers down (if asked)

The classification defaults are the best of what was measured on SST-2 within
the 15-minute budget of a 2-core machine (docs/finetuning.md): a one-block,
128-wide GPT from scratch with max pooling, ten of them averaged. Pretraining on
the task's own 7,800 sentences did not help there, so it is off by default for
classification; tagging keeps it.
"""

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..data import CORPORA, load_task
from ..data.batching import EpochBatches, pad
from ..data.encoding import IGNORE_INDEX, TOKENIZER_KINDS, encode_tagged, encode_texts
from ..data.tasks import BUILT_IN_TASKS as BUILT_IN
from ..models.heads import BODIES, POOLINGS, Ensemble, TokenClassifier, body_type
from ..nn.lora import merge_lora
from ..rng import manual_seed
from ..training import TrainConfig, Trainer, check_out_folder
from ..training.checkpoint import atomic_write_text
from .finetune_body import head_on_body, prepare_body
from .finetuned import describe_scores, evaluate, save_confusion_matrix, save_finetuned
from .options import check_options, option
from .tagging import BITAGGER_DEFAULTS, TaggingConfig, run as run_tagging

TASK_KINDS = {"classify": "classification", "tag": "tagging"}  # the task -> the kind of data it reads
# Settings that differ by task; None in a FinetuneRecipe field means "this task's default".
TASK_DEFAULTS = {
    "classify": {"tokenizer": "word", "vocab_size": None, "min_freq": 2, "n_layer": 1, "epochs": 3, "pretrain_steps": 0,
                 "ensemble": 10, "dropout": 0.1, "lr": 1e-3, "weight_decay": 0.01, "tagger": None},
    "tag": {"tokenizer": "bpe", "vocab_size": 2048, "min_freq": 1, "n_layer": 2, "epochs": 8, "pretrain_steps": 600,
            "ensemble": 1, "dropout": 0.1, "lr": 1e-3, "weight_decay": 0.01, "tagger": "bitagger"},
}


def per_task(help, name, none="none", also=""):
    """``help`` and the defaults of setting ``name`` in TASK_DEFAULTS: "... (default classify/tag: 3/8)", and the
    bitagger's if it reads the setting too: "... (default classify/tag: 3/8; --tagger bitagger: 20)"; ``also``
    adds another case ("; --pretrained: 1")."""
    shown = [none if defaults[name] is None else str(defaults[name]) for defaults in TASK_DEFAULTS.values()]
    bitagger = f"; --tagger bitagger: {BITAGGER_DEFAULTS[name]}" if name in BITAGGER_DEFAULTS else ""
    return f"{help} (default {'/'.join(TASK_DEFAULTS)}: {'/'.join(shown)}{bitagger}{also})"


def per_body(help, name, none=None):
    """``help`` and each body's default of setting ``name`` (``models.heads.BODIES``): "... (default: max on a
    GPT body, mean on a BERT body)"; ``none`` stands for a default of None."""
    shown = [none if getattr(kind, name) is None else getattr(kind, name) for kind in BODIES.values()]
    return f"{help} (default: {', '.join(f'{s} on a {n.upper()} body' for n, s in zip(BODIES, shown))})"


@dataclass
class FinetuneRecipe:
    """Every choice of a fine-tuning run; ``tinytransformer finetune --help`` shows the same, as flags."""

    task: str = option("classify", "classify: label<TAB>text lines; tag: CoNLL token<TAB>tag lines, blank between "
                       "sentences", choices=tuple(TASK_KINDS), required=True, group="task")
    data: str = option(None, "a built-in task with its own dev and test splits", choices=tuple(BUILT_IN), group="task")
    train: str = option(None, "your training file (instead of --data)", metavar="FILE", group="task")
    dev: str = option(None, "your dev file (default: 10% of --train, held out)", metavar="FILE", group="task")
    test: str = option(None, "scored once, at the end", metavar="FILE", group="task")
    tagger: str = option(None, per_task("tag: bitagger reads each sentence both ways (words, characters, shapes; "
                                        "a BiLSTM, a CRF; from scratch); head: a head on a body (with --checkpoint or "
                                        "--pretrained)",
                                        "tagger", none="-"), choices=("bitagger", "head"), group="task")
    checkpoint: str = option(None, "a pretrained GPT (from `tinytransformer train`, or OUT/pretrained of an earlier "
                             "run) or BERT encoder (`train --model bert`); its tokenizer and size are used",
                             metavar="DIR", group="body")
    pretrained: str = option(None, "a GPT-2 in Hugging Face's layout, as for `generate --pretrained`: a folder or a "
                             "hub name such as gpt2 (docs/gpt2.md); its tokenizer and size are used",
                             metavar="PATH_OR_NAME", group="body")
    lora: int = option(None, "freeze the GPT body and train low-rank adapters of this rank on its attention and MLP "
                       "projections instead (LoRA, docs/gpt2.md); saved merged into plain weights",
                       within="[1, inf)", metavar="RANK", group="body")
    lora_alpha: float = option(None, "LoRA's scale: the adapters' update B A is multiplied by alpha / rank "
                               "(default: alpha = rank, a scale of 1)", within="(0, inf)", group="body")
    freeze: bool = option(False, "train the head only, keep the body as it is", group="body")
    tokenizer: str = option(None, per_task("the tokenizer trained on the task's text", "tokenizer"),
                            choices=TOKENIZER_KINDS, group="body")
    vocab_size: int = option(None, per_task("at most this many ids", "vocab_size", none="no limit"),
                             within="[1, inf)", group="body")
    min_freq: int = option(None, per_task("word tokenizer: keep words seen this often, the rest are <unk>",
                                          "min_freq"), within="[1, inf)", group="body")
    n_layer: int = option(None, per_task("Transformer blocks", "n_layer"), within="[1, inf)", group="body")
    n_head: int = option(4, "attention heads per block", within="[1, inf)", group="body")
    n_embd: int = option(128, "width of the residual stream", within="[1, inf)", group="body")
    dropout: float = option(None, per_task("dropout inside the body", "dropout"), within="[0, 1)", group="body")
    pretrain_steps: int = option(None, per_task("without --checkpoint or --pretrained: steps of next-token "
                                                "prediction on the task's training and dev text before fine-tuning; "
                                                "0 starts from scratch",
                                                "pretrain_steps"), within="[0, inf)", group="body")
    pretrain_corpus: str = option(None, "also pretrain on this corpus's lines (default: the task's text only)",
                                  choices=CORPORA, group="body")
    shortlist: int = option(2000, "word tokenizer: pretraining predicts only the N most frequent words, the rarer "
                            "ones as <unk>", within="[1, inf)", metavar="N", group="body")
    epochs: int = option(None, per_task("passes over the training data", "epochs"), within="[1, inf)",
                         group="fine-tuning")
    batch_size: int = option(32, "examples per step", within="[1, inf)", group="fine-tuning")
    lr: float = option(None, per_task("peak learning rate of AdamW for the head", "lr"), within="[0, inf)",
                       group="fine-tuning")
    body_lr: float = option(None, per_body("learning rate of the body", "body_lr", "--lr"), within="[0, inf)",
                            group="fine-tuning")
    layer_lr_decay: float = option(None, "discriminative fine-tuning: the body's top block learns at --body-lr, each "
                                   "layer below at this times the rate of the one above, the embeddings last "
                                   "(e.g. 0.8; default: the whole body at --body-lr)", within="(0, 1]",
                                   group="fine-tuning")
    unfreeze_epochs: int = option(0, "gradual unfreezing: the first epoch trains the head alone, the next ones "
                                  "unfreeze the body top-down, the whole of it from epoch N + 1 (0: the body "
                                  "trains from the start)", within="[0, inf)", metavar="N", group="fine-tuning")
    weight_decay: float = option(None, per_task("AdamW's weight decay", "weight_decay"), within="[0, inf)",
                                 group="fine-tuning")
    head_dropout: float = option(0.1, "dropout before the head", within="[0, 1)", group="fine-tuning")
    pooling: str = option(None, per_body("classify: how the sentence's hidden states become one vector: their "
                                         "average, each feature's maximum, the last one, or the first (<cls>: an "
                                         "encoder's only)", "pooling"), choices=POOLINGS, group="fine-tuning")
    ensemble: int = option(None, per_task("train this many models (member k seeded 1000 * seed + k) and average "
                                          "their probabilities", "ensemble", also="; --pretrained: 1"),
                           within="[1, inf)", group="fine-tuning")
    seed: int = option(0, "seeds pretraining, the weights, batches and dropout", within="[0, inf)",
                       group="fine-tuning")
    out: str = option(None, "folder for the fine-tuned model and results.json; None (from Python) saves nothing",
                      metavar="DIR", required=True)
    overwrite: bool = option(False, "replace the checkpoint in --out (only its own files go), or write beside other files")

    def __post_init__(self):
        check_options(self)
        if (self.data is None) == (self.train is None):
            raise ValueError("FinetuneRecipe: give either data (a built-in task) or train (your file), not both")
        if self.data is not None and (self.dev or self.test):
            raise ValueError(f"FinetuneRecipe: {self.data!r} comes with its own dev and test splits")
        if self.data is not None and BUILT_IN[self.data] != TASK_KINDS[self.task]:
            raise ValueError(f"FinetuneRecipe: {self.data!r} is a {BUILT_IN[self.data]} task, not {self.task!r}")
        if self.task == "classify" and self.pooling == "cls" and self.checkpoint is None:
            raise ValueError("FinetuneRecipe: pooling 'cls' reads <cls>, which only an encoder sees the whole sentence "
                             "from: give the checkpoint of one (`train --model bert`); a GPT trained here is causal")
        if self.freeze and self.unfreeze_epochs:
            raise ValueError("FinetuneRecipe: freeze keeps the body frozen and unfreeze_epochs unfreezes it: give "
                             "one of them")
        if self.checkpoint is not None and self.pretrained is not None:
            raise ValueError("FinetuneRecipe: checkpoint (a model trained here) and pretrained (a GPT-2) both name "
                             "the body: give one of them")
        if self.lora is None and self.lora_alpha is not None:
            raise ValueError("FinetuneRecipe: lora_alpha scales the adapters that lora adds: give lora (a rank) too")
        if self.lora is not None and (self.freeze or self.unfreeze_epochs):
            raise ValueError(f"FinetuneRecipe: lora trains adapters inside the body, its weights frozen; "
                             f"{'freeze' if self.freeze else 'unfreeze_epochs'} decides which of the body's own "
                             "weights train: give one of them")
        given_body = self.checkpoint is not None or self.pretrained is not None
        if self.task == "tag" and self.tagger is None:  # a pretrained body is fine-tuned with a head
            self.tagger = "head" if given_body else TASK_DEFAULTS["tag"]["tagger"]
        if self.pretrained is not None and self.ensemble is None and self.tagger != "bitagger":  # one GPT-2 is plenty
            self.ensemble = 1
        for name, value in (BITAGGER_DEFAULTS if self.tagger == "bitagger" else TASK_DEFAULTS[self.task]).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def finetune_config(self, seed) -> "FinetuneConfig":
        return FinetuneConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, body_lr=self.body_lr,
                              layer_lr_decay=self.layer_lr_decay, unfreeze_epochs=self.unfreeze_epochs,
                              weight_decay=self.weight_decay, freeze=self.freeze, seed=seed)


# ------------------------------------------------------------ the whole run
def load_recipe_data(recipe):
    """The ``TaskData`` a recipe names: a built-in set, or the user's files of the recipe's kind."""
    if recipe.data is not None:
        return load_task(recipe.data)
    return load_task(recipe.train, dev=recipe.dev, test=recipe.test, kind=TASK_KINDS[recipe.task], seed=recipe.seed)


def member_seed(seed, k) -> int:
    """The seed of member k of a run seeded ``seed``: runs with different seeds share no member."""
    return 1000 * seed + k


def run(recipe: FinetuneRecipe, log=print) -> dict:
    """Run the whole recipe (see the module docstring); returns the results written to ``OUT/results.json``."""
    if recipe.tagger == "bitagger":
        return run_tagging(TaggingConfig.from_recipe(recipe), log)
    started, out_dir = time.perf_counter(), recipe.out
    check_out_folder(out_dir, recipe.overwrite, reads={"--checkpoint": recipe.checkpoint,
                                                       "--pretrained": recipe.pretrained})  # before any work
    data = load_recipe_data(recipe)
    log(f"data: {len(data.train[0]):,} training, {len(data.dev[0]):,} dev"
        f"{f', {len(data.test[0]):,} test' if data.test else ''} examples; labels {list(data.labels)}")
    state, config, tokenizer = prepare_body(recipe, data, out_dir, log)
    body = BODIES[body_type(config)]  # the body's defaults for what the recipe leaves open
    recipe = replace(recipe, pooling=recipe.pooling or body.pooling,
                     body_lr=body.body_lr if recipe.body_lr is None else recipe.body_lr)
    pretrain_seconds = time.perf_counter() - started
    members, member_dev = [], []
    for k in range(recipe.ensemble):
        if recipe.ensemble > 1:
            log(f"fine-tune {k + 1} of {recipe.ensemble}")
        seed = member_seed(recipe.seed, k)
        manual_seed(seed)  # the head's (and a fresh body's, and LoRA's A's) initial weights
        model = head_on_body(recipe, config, state, data.labels, log if k == 0 else None)
        single_out = out_dir if recipe.ensemble == 1 else None  # one model: saved at every new best epoch
        history = finetune(model, tokenizer, data, recipe.finetune_config(seed), single_out, log,
                           meta={"recipe": asdict(recipe)}, overwrite=recipe.overwrite)
        members.append(merge_lora(model))  # adapters folded into plain weights (a model without them: unchanged)
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
            save_finetuned(out_dir, model, tokenizer, data.labels, {"recipe": asdict(recipe)}, recipe.overwrite)
        atomic_write_text(Path(out_dir, "results.json"), json.dumps(results, indent=1, default=float) + "\n")
        if recipe.task == "classify":
            for split in ("dev", "test"):
                path = save_confusion_matrix(model, tokenizer, data, split, out_dir) if getattr(data, split) else None
                if path is not None:
                    log(f"confusion matrix ({split}): {path}")
    log(f"done in {results['seconds']['total']:.0f} s; saved to {out_dir}" if out_dir else "done")
    return results


def run_finetune(recipe: FinetuneRecipe, out_dir=None, log=print) -> dict:
    """``run(recipe)``, saving to ``out_dir`` if given (instead of ``recipe.out``)."""
    return run(recipe if out_dir is None else replace(recipe, out=str(out_dir)), log)


# ------------------------------------------------------ training a head
@dataclass
class FinetuneConfig:
    """How ``finetune`` trains a head. ``body_lr`` None: the head's ``lr``. ``warmup`` is a fraction of all steps.

    ``layer_lr_decay`` xi: each layer of the body learns at xi times the rate of the one above
    (``param_groups``). ``unfreeze_epochs`` N: gradual unfreezing (``trained_layers``).
    """

    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    body_lr: float = None
    layer_lr_decay: float = None
    unfreeze_epochs: int = 0
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
        if self.layer_lr_decay is not None and not 0 < self.layer_lr_decay <= 1:
            raise ValueError(f"FinetuneConfig: layer_lr_decay must be in (0, 1] or None, got {self.layer_lr_decay!r}")
        value = self.unfreeze_epochs
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"FinetuneConfig: unfreeze_epochs must be an integer >= 0, got {value!r}")
        if self.freeze and self.unfreeze_epochs:
            raise ValueError("FinetuneConfig: freeze keeps the body frozen and unfreeze_epochs unfreezes it")

    def trained_layers(self, epoch, n_layers) -> int:
        """How many of the body's ``n_layers`` layers (the top ones) train in ``epoch`` (counted from 1).

        Gradual unfreezing (ULMFiT, Howard & Ruder 2018): epoch 1 trains the head
        alone, then each epoch unfreezes the next layers down, evenly, until from
        epoch ``unfreeze_epochs`` + 1 the whole body trains; so a head trained on
        a still-fixed body does not send large, random gradients through layers
        that already know something. 0 ``unfreeze_epochs``: all of them, always.
        """
        if not self.unfreeze_epochs:
            return n_layers
        return min(n_layers, -(-n_layers * (epoch - 1) // self.unfreeze_epochs))  # ceil(n (epoch - 1) / N)

    def to_dict(self):
        return asdict(self)


def finetune(model, tokenizer, data, config=None, out_dir=None, log=print, meta=None, overwrite=False) -> dict:
    """Train ``model`` (a head on a body) on ``data.train``; after each epoch score ``data.dev``.

    ``data`` is a ``TaskData``. Prints one line per epoch (train loss, dev
    scores); the best epoch by dev score (accuracy, or entity F1 for tagging)
    is kept: restored into ``model`` at the end and, with ``out_dir``, saved
    there as a checkpoint (``load_finetuned`` reads it). Returns the history.
    """
    config = config if config is not None else FinetuneConfig()
    manual_seed(config.seed)  # dropout
    if config.freeze:
        model.freeze_body()
    tagging, encoder = isinstance(model, TokenClassifier), not model.body_kind.causal
    ids = {label: i for i, label in enumerate(data.labels)}
    inputs, targets = data.train
    max_len = model.body.config.block_size
    if tagging:
        inputs, targets = encode_tagged(tokenizer, inputs, targets, ids, max_len, encoder)
    else:
        inputs, targets = encode_texts(tokenizer, inputs, max_len, encoder), [ids[t] for t in targets]

    def collate(batch):  # example indices -> idx (B, T), key_padding_mask (B, T), y: tags (B, T) or labels (B,)
        idx, mask = pad([inputs[i] for i in batch])
        y = pad([targets[i] for i in batch], IGNORE_INDEX)[0] if tagging else np.array([targets[i] for i in batch])
        return idx, mask, y

    batches = EpochBatches([len(s) for s in inputs], config.batch_size, collate)
    per_epoch, history, best = batches.batches_per_epoch, {"epoch": [], "train_loss": [], "dev": []}, {}
    if config.unfreeze_epochs:  # every layer gets its group now; while frozen it gets no gradient, so no step
        model.freeze_body(False)
    groups = model.param_groups(config.lr, config.body_lr, config.weight_decay, config.layer_lr_decay)
    n_layers = len(model.body_layers())
    if config.unfreeze_epochs:
        model.unfreeze_top(config.trained_layers(1, n_layers))

    def end_of_epoch(trainer):
        """Score dev, log the epoch, keep the best weights so far (and save them with ``out_dir``)."""
        epoch, loss = trainer.step // per_epoch, np.mean(trainer.history["train_loss"][-per_epoch:])
        scores = evaluate(model, tokenizer, data.labels, *data.dev)
        score = scores["f1"] if tagging else scores["accuracy"]
        history["epoch"].append(epoch)
        history["train_loss"].append(float(loss))
        history["dev"].append(scores)
        improved = score > best.get("score", -1.0)
        log(f"epoch {epoch}/{config.epochs}: train loss {loss:.4f}, dev {describe_scores(scores)}"
            f"{'  (best so far)' if improved else ''}")
        if improved:
            best["score"], best["state"] = score, {k: v.copy() for k, v in model.state_dict().items()}
            history["best_epoch"], history["best_dev"] = epoch, scores
            if out_dir is not None:
                save_finetuned(out_dir, model, tokenizer, data.labels, {**(meta or {}), "finetune": config.to_dict(),
                                                                         "history": history}, overwrite)
        trained, now = config.trained_layers(epoch, n_layers), config.trained_layers(epoch + 1, n_layers)
        if now != trained and epoch < config.epochs:  # gradual unfreezing: the next layers down join in
            model.unfreeze_top(now)
            log(f"unfrozen: the top {now} of the body's {n_layers} layers (embeddings included) train from now on")
        return scores

    steps = config.epochs * per_epoch
    loop = TrainConfig(max_iters=steps, batch_size=config.batch_size, lr=config.lr, betas=(0.9, 0.999),
                       weight_decay=config.weight_decay, warmup_iters=int(config.warmup * steps), lr_decay_iters=steps,
                       min_lr_ratio=0.0, grad_clip=config.grad_clip, eval_interval=per_epoch, seed=config.seed)
    Trainer(model, batches, config=loop, param_groups=groups, evaluate=end_of_epoch,
            evaluate_first=False).train(progress=False)
    model.load_state_dict(best["state"])
    model.eval()
    return history
