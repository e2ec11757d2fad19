"""Pretraining a language model on a text corpus: ``tinytransformer train``, and the same from Python.

    text   = load_corpus("shakespeare")                 the corpus (or "pydoc", "movie_reviews", or a path)
    tok    = CharTokenizer.train(text)                   or a byte-level BPE, or words
    ids    = tok.encode(text)                            one long stream of token ids
    train, val = train_val_split(ids, 0.1)               the first 90% / the last 10%
    model  = GPT(GPTConfig(vocab_size=tok.vocab_size, ...))
    Trainer(model, train, val, TrainConfig(...)).train()

That is next-token prediction (``--model gpt``, ``rnn``, ``lstm``). A BERT
(``--model bert``) learns to fill in masked words through the same loop,
checkpoints and resume; its data are masked segments of whole lines, its
validation split held-out documents (``data/segments.py``, which also says
why the movie reviews' split is whole reviews for every model).

``LanguageModelConfig`` holds every setting of a run and is the only home of
their defaults, those that differ by model in one table (``MODEL_DEFAULTS``):
the command line builds ``train``'s flags from it, and
``run(LanguageModelConfig())`` trains the same model as ``tinytransformer
train``. ``prepare_pretraining`` builds the trainer, ``resume_pretraining``
rebuilds it from a checkpoint folder (the corpus is read again, the tokenizer
comes from the checkpoint), ``load_pretrained`` gives back the model and
tokenizer, to generate from or to fine-tune.

Under ``mpirun -n N`` (or ``--nproc N``) N processes train one model data-parallel,
each on its share of every batch (``training.distributed``, docs/parallel.md).
"""

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path


from ..data import load_corpus, tokenizer_from_dict
from ..data.segments import DOCUMENT_CORPORA, MASK_TOKENS, TOKENIZERS, bert_special_ids, pretraining_data, train_tokenizer
from ..data.word_tokenizer import SPECIALS as WORD_SPECIALS
from ..kernels.threads import thread_policy
from ..models.bert import BertConfig, BertForMaskedLM
from ..models.gpt import GPT, GPTConfig
from ..models.rnn_lm import RNNLM, RNNLMConfig
from ..plots import note_once
from ..rng import manual_seed
from ..training import TrainConfig, Trainer, check_out_folder, load_checkpoint, save_checkpoint
from ..training.distributed import data_parallel_world, launch
from .memory_estimate import check_memory
from .options import check_options, flags_for, option

MODEL_TYPES = ("gpt", "rnn", "lstm", "bert")
# The defaults that differ by model (None in a LanguageModelConfig field: "this model's"). gpt: nanoGPT's, without
# weight decay and clipping, measured better at this size (docs/shakespeare.md); rnn, lstm: nanoGPT's, as their
# gradients can explode; bert: 30 minutes on two cores on the movie reviews (docs/pretraining.md).
NANOGPT = {"tokenizer": "char", "block_size": 64, "batch_size": 12, "max_iters": 2000, "weight_decay": 0.1,
           "grad_clip": 1.0, "eval_iters": 20}
MODEL_DEFAULTS = {
    "gpt": {**NANOGPT, "weight_decay": 0.0, "grad_clip": 0.0},
    "rnn": NANOGPT,
    "lstm": NANOGPT,
    "bert": {"tokenizer": "word", "block_size": 128, "batch_size": 32, "max_iters": 3000, "weight_decay": 0.01,
             "grad_clip": 1.0, "eval_iters": 10},
}
VOCAB_SIZES = {"bpe": 512, "word": 16384}  # --vocab-size's default per tokenizer (char: one id per character)
DEFAULT_MAX_ITERS = MODEL_DEFAULTS["gpt"]["max_iters"]  # `demo`'s
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")
# What each reader reads (names of training.checkpoint_schema.HOLDS): `generate` a model that predicts the next
# token (from `train`, or the body `finetune` pretrains); `inspect` a GPT; `finetune --checkpoint` a GPT or a BERT.
LANGUAGE_MODELS, GPT_BODIES = ("gpt", "rnn", "lstm", "pretrained_body"), ("gpt", "pretrained_body")
PRETRAINED_BODIES, ALL_LANGUAGE_MODELS = (*GPT_BODIES, "bert"), (*LANGUAGE_MODELS, "bert")
WANTS = {LANGUAGE_MODELS: "a language model that predicts the next token", GPT_BODIES: "a GPT language model",
         PRETRAINED_BODIES: "a pretrained GPT or BERT body", ALL_LANGUAGE_MODELS: "a language model"}


def per_model(help, name):
    """``help`` and the defaults of setting ``name`` in MODEL_DEFAULTS: "... (default gpt/rnn/lstm/bert: ...)"."""
    return f"{help} (default {'/'.join(MODEL_DEFAULTS)}: {'/'.join(str(d[name]) for d in MODEL_DEFAULTS.values())})"


@dataclass
class LanguageModelConfig:
    """Every setting of a pretraining run. The defaults are nanoGPT's small CPU configuration for
    character-level Shakespeare; those that differ by model are in ``MODEL_DEFAULTS``."""

    data: str = option("pydoc", "the corpus: Python's help pages (built in), Tiny Shakespeare or Pang & Lee's movie "
                       "reviews (downloaded once, or read from $TINYTRANSFORMER_DATA), or a UTF-8 text file; the "
                       "validation split is the last 10%, or for movie_reviews and a BERT 10% of the documents "
                       "(blocks separated by a blank line) drawn at random", metavar="pydoc|shakespeare|movie_reviews|PATH",
                       group="data")
    tokenizer: str = option(None, per_model("one id per character, byte-level BPE, or one id per word (split on "
                                            "whitespace) of the corpus", "tokenizer"), choices=TOKENIZERS, group="data")
    vocab_size: int = option(None, "bpe: ids (256 byte ids + merges); word: the most frequent words kept, the rest "
                             f"<unk>; special tokens included; ignored for char (default bpe/word: "
                             f"{'/'.join(str(n) for n in VOCAB_SIZES.values())})", within="[1, inf)", group="data")
    model: str = option("gpt", "a GPT; a character-level RNN/LSTM language model (then --n-layer recurrent layers "
                        "of width --n-embd; --n-head unused); or a BERT encoder, pretrained as a masked language "
                        "model (15% of the tokens hidden, predicted from both sides)", choices=MODEL_TYPES,
                        group="model")
    n_layer: int = option(4, "Transformer blocks", within="[1, inf)", group="model")
    n_head: int = option(4, "attention heads per block", within="[1, inf)", group="model")
    n_embd: int = option(128, "width of the residual stream", within="[1, inf)", group="model")
    block_size: int = option(None, per_model("context length in tokens", "block_size"), within="[1, inf)",
                             group="model")
    dropout: float = option(0.0, "dropout probability", within="[0, 1)", group="model")
    bias: bool = option(False, "biases in the Linear and LayerNorm layers, as in GPT-2 (default: none, as in nanoGPT; "
                        "a BERT always has them)", group="model")
    batch_size: int = option(None, per_model("sequences per micro-batch", "batch_size"), within="[1, inf)",
                             group="optimisation")
    grad_accum: int = option(1, "micro-batches whose gradients add up to one step", within="[1, inf)",
                            group="optimisation")
    max_iters: int = option(None, per_model("optimisation steps; with --resume, the saved run's", "max_iters"),
                            within="[1, inf)", group="optimisation")
    max_minutes: float = option(None, "also stop after this many minutes of training steps (evaluations not "
                                "counted), with an evaluation and a checkpoint; the schedule stays that of "
                                "--max-iters, so a shorter run ends at a higher learning rate", within="(0, inf)",
                                group="optimisation")
    lr: float = option(1e-3, "peak learning rate of AdamW", within="[0, inf)", group="optimisation")
    warmup_iters: int = option(100, "steps of linear warmup (capped at --max-iters); then a cosine down to lr/10",
                               within="[0, inf)", group="optimisation")
    weight_decay: float = option(None, per_model("AdamW's decoupled weight decay, on weight matrices and embeddings "
                                                 "only (a GPT measured better without nanoGPT's 0.1 at this size)",
                                                 "weight_decay"), within="[0, inf)", group="optimisation")
    grad_clip: float = option(None, per_model("clip the global gradient norm to this; 0: no clipping (a GPT measured "
                                              "better without nanoGPT's 1.0 at this size; recurrent nets' gradients "
                                              "can explode)", "grad_clip"), within="[0, inf)", group="optimisation")
    eval_interval: int = option(250, "evaluate, save a checkpoint and the plot every this many steps",
                                 within="[1, inf)", group="run")
    eval_iters: int = option(None, per_model("batches per loss estimate", "eval_iters"), within="[1, inf)", group="run")
    seed: int = option(1337, "seeds the weights, the batches and dropout", within="[0, inf)", group="run")
    out: str = option("runs/gpt", "folder for the checkpoint and loss.png", metavar="DIR", group="run")
    resume: bool = option(False, "continue the run saved in --out, exactly where it stopped (model and data flags "
                          "ignored)", group="run")
    overwrite: bool = option(False, "replace the checkpoint already in --out (only the files it recorded as its "
                             "own are removed), or write into a folder that holds other files", group="run")
    threads: int = option(None, "BLAS/Numba threads (default: adaptive, the cores that other programs leave idle, "
                          "looked at every 2 s: kernels/threads.py; one per rank under MPI)", within="[1, inf)",
                          group="run")
    nproc: int = option(1, "processes that train together, data-parallel: each takes batch_size/nproc rows of every "
                        "batch, the gradients are averaged; started as MPI ranks with the mpi extra's mpiexec "
                        "(`mpirun -n N python -m tinytransformer train ...` does the same; docs/parallel.md)",
                        within="[1, inf)", group="run")

    def __post_init__(self):
        check_options(self)
        if self.resume and self.overwrite:
            raise ValueError("resume continues the run saved in out and overwrite replaces it: give one of them")
        for name, value in MODEL_DEFAULTS[self.model].items():
            if getattr(self, name) is None and not (name == "max_iters" and self.resume):  # resume: the saved run's
                setattr(self, name, value)
        if not self.resume and self.batch_size % self.nproc:  # (resumed: the saved batch size, checked by Trainer)
            raise ValueError(f"nproc {self.nproc} does not divide batch_size {self.batch_size}: each process takes an "
                             f"equal share of every batch; use a multiple of {self.nproc}")
        if self.vocab_size is None and self.tokenizer in VOCAB_SIZES:
            self.vocab_size = VOCAB_SIZES[self.tokenizer]
        if self.model in ("gpt", "bert") and self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.model == "bert" and self.tokenizer == "char":
            raise ValueError("tokenizer char has no ids for the special tokens a BERT needs (<cls>, <eos> as [SEP], "
                             "<pad>, <mask>): use word or bpe")
        if self.tokenizer != "char":  # room for the byte ids or the special tokens
            least = {"bpe": 256, "word": len(WORD_SPECIALS)}[self.tokenizer]
            least += len(MASK_TOKENS[self.tokenizer]) if self.model == "bert" else 0
            if self.vocab_size < least:
                raise ValueError(f"vocab_size must be at least {least} for a {self.tokenizer} tokenizer"
                                 f"{' of a BERT' if self.model == 'bert' else ''}, got {self.vocab_size}")

    def model_config(self) -> dict:
        """The model's fields (``vocab_size`` comes from the tokenizer)."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            max_iters=self.max_iters or MODEL_DEFAULTS[self.model]["max_iters"], batch_size=self.batch_size,
            grad_accum=self.grad_accum, lr=self.lr, warmup_iters=self.warmup_iters, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            eval_interval=self.eval_interval, eval_iters=self.eval_iters, seed=self.seed,
        )

    def to_dict(self):
        return asdict(self)


def build_model(model_type, config):
    """A fresh language model from a dict of config fields: a ``GPT``, an ``RNNLM`` with an Elman ("rnn") or
    LSTM ("lstm") cell, or a ``BertForMaskedLM`` (fields a model has no use for, such as an RNN's ``n_head``
    or a BERT's ``bias``, are dropped)."""
    if model_type == "gpt":
        return GPT(GPTConfig(**config))
    if model_type in ("rnn", "lstm"):
        names = {f.name for f in fields(RNNLMConfig)}
        return RNNLM(RNNLMConfig(**{**{k: v for k, v in config.items() if k in names}, "cell": model_type}))
    if model_type == "bert":
        names = {f.name for f in fields(BertConfig)}
        return BertForMaskedLM(BertConfig(**{k: v for k, v in config.items() if k in names}))
    raise ValueError(f"build_model: model_type must be one of {MODEL_TYPES}, got {model_type!r}")


def masked_lm_loss(model, batch):
    """A BERT's loss on a ``MaskedSegments`` batch ``(inputs, key_padding_mask, labels)``."""
    return model.masked_lm_loss(*batch)


def _trainer(model_type, model, train_data, val_data, train_config, **kwargs):
    """The loop for a language model: next-token prediction's default loss, or a BERT's masked-LM loss."""
    loss = {"loss_fn": masked_lm_loss} if model_type == "bert" else {}
    return Trainer(model, train_data, val_data, train_config, **loss, world=data_parallel_world(), **kwargs)


def prepare_pretraining(data=None, tokenizer=None, vocab_size=None, model_config=None, train_config=None,
                        out_dir=None, model_type=None, config=None):
    """A ``Trainer`` for a fresh language model, ready to ``train()`` (see the module docstring).

    ``config`` (a ``LanguageModelConfig``, default: all its defaults) gives every
    setting; the other arguments override it: ``data``, ``tokenizer``,
    ``vocab_size``, ``model_type``, ``model_config`` (a dict of the model's config
    fields; ``vocab_size`` comes from the tokenizer) and ``train_config`` (a
    ``TrainConfig``). The weights are initialised from ``tt.manual_seed`` of the
    training seed. With no arguments this is the model ``tinytransformer train`` trains.
    """
    config = config if config is not None else LanguageModelConfig(
        **{k: v for k, v in (("data", data), ("tokenizer", tokenizer), ("vocab_size", vocab_size),
                             ("model", model_type)) if v is not None})
    train_config = train_config if train_config is not None else config.train_config()
    text = load_corpus(config.data)
    masked = config.model == "bert"
    tok = train_tokenizer(text, config.tokenizer, config.vocab_size, masked=masked)
    model_config = {**config.model_config(), **(model_config or {}), "vocab_size": tok.vocab_size}
    if masked:
        model_config["pad_id"] = bert_special_ids(tok)["pad"]
    train_data, val_data = pretraining_data(text, tok, model_config["block_size"], train_config.batch_size,
                                            masked=masked, by_document=config.data in DOCUMENT_CORPORA)
    for split, ids in (("training", train_data), ("validation", val_data)):  # before the model's arrays are allocated
        if not masked and len(ids) <= model_config["block_size"]:  # (a BERT's segments are at most a block)
            raise ValueError(f"{config.data}: the {split} split has {len(ids):,} tokens, but one batch row needs "
                             f"block_size + 1 = {model_config['block_size'] + 1:,}; use a smaller block_size "
                             "or a longer text")
    check_memory(config.model, model_config, train_config.batch_size)
    manual_seed(train_config.seed)
    model = build_model(config.model, model_config)
    source = str(Path(config.data).resolve()) if Path(config.data).is_file() else str(config.data)  # resume elsewhere
    meta = {"kind": "language_model", "data": source, "model_type": config.model}
    return _trainer(config.model, model, train_data, val_data, train_config, tokenizer=tok, out_dir=out_dir,
                    meta=meta, overwrite=config.overwrite)


def resume_pretraining(folder, max_iters=None):
    """The trainer of the run saved in ``folder``, at the step it was saved, ready to continue.

    ``max_iters`` extends (or shortens) the run; the learning-rate schedule is
    the saved one, so steps past its end keep the final, smallest rate.
    """
    _, _, meta = load_checkpoint(folder, holds=("gpt", "rnn", "lstm", "bert"), reader="train --resume",  # arrays
                                 wants="a language model's run")                           # checked before any is built
    if meta.get("data") is None or meta["tokenizer"] is None:
        raise ValueError(f"{folder}/meta.json: no corpus or no tokenizer recorded (saved by Trainer.save from Python, "
                         "not by `tinytransformer train`): resume it with Trainer.load")
    saved = meta["train_config"]
    try:
        train_config = TrainConfig(**{**saved, "max_iters": max_iters or saved.get("max_iters")})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder}/meta.json: train_config: {err}") from None
    tok = tokenizer_from_dict(meta["tokenizer"])
    model_type, model_config = meta["model_type"], meta["model_config"]
    train_data, val_data = pretraining_data(load_corpus(meta["data"]), tok, model_config["block_size"],
                                            train_config.batch_size, masked=model_type == "bert",
                                            by_document=meta["data"] in DOCUMENT_CORPORA)
    model = build_model(model_type, model_config)
    trainer = _trainer(model_type, model, train_data, val_data, train_config, tokenizer=tok, out_dir=folder,
                       meta={"kind": "language_model", "data": meta["data"], "model_type": model_type})
    trainer.load(folder)
    return trainer


def load_pretrained(folder, reader="load_pretrained", holds=ALL_LANGUAGE_MODELS):
    """``(model, tokenizer, meta)`` from a checkpoint folder, the model in eval mode: a ``GPT``, an ``RNNLM``
    or a ``BertForMaskedLM`` (``model.hidden_states`` is its encoder's output), as meta's ``model_type`` says.

    The folder must hold one of ``holds`` (default: any language model; ``LANGUAGE_MODELS``
    for one that generates, ``GPT_BODIES`` for a GPT, ``PRETRAINED_BODIES`` for a GPT or a
    BERT); else a ValueError says what it holds and which command reads it, naming
    ``reader`` as the one that does not."""
    model_state, _, meta = load_checkpoint(folder, holds=holds, reader=reader, wants=WANTS.get(tuple(holds)))
    if meta["tokenizer"] is None:
        raise ValueError(f"{folder}/meta.json: tokenizer is null (saved by Trainer.save without one), so no text "
                         "can be read or written with this model")
    model = build_model(meta.get("model_type", "gpt"), meta["model_config"])
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{folder}: the arrays do not fit the model meta.json describes: {err}") from None
    model.eval()
    return model, tokenizer_from_dict(meta["tokenizer"]), meta


def save_pretrained_body(folder, model, tokenizer, data, overwrite=False):
    """A checkpoint of a GPT pretrained outside ``train`` (``finetune`` pretrains one on a task's text): weights,
    config and tokenizer, without an optimizer; ``load_pretrained`` reads it, ``finetune --checkpoint`` starts from it."""
    meta = {"kind": "pretrained_body", "data": data, "model_config": model.config.to_dict(),
            "tokenizer": tokenizer.to_dict()}
    save_checkpoint(folder, model.state_dict(), None, meta, overwrite=overwrite)


def run(config=None, progress=True, log=print) -> Trainer:
    """Pretrain (or, with ``config.resume``, continue) the run ``config`` describes, saving to ``config.out``;
    returns the trainer.

    With ``config.nproc`` > 1 this process starts ``nproc`` MPI ranks that train
    (``training.distributed.launch``), waits for them and returns None (their run
    is in ``config.out``: ``resume_pretraining`` loads it). Under mpirun only rank 0 logs.
    """
    config = config if config is not None else LanguageModelConfig()
    if config.nproc > 1:
        return launch(config.nproc, ["train", *flags_for(config, leave_out=("nproc",))])
    world = data_parallel_world()
    log = log if world.is_root else (lambda *_: None)
    if config.resume:
        log(f"resuming the run in {config.out} (its saved settings; only --max-iters and --max-minutes may change "
            "them)")
        trainer = resume_pretraining(config.out, max_iters=config.max_iters)
    else:
        check_out_folder(config.out, config.overwrite, resumable=True)  # before any work: nothing is lost
        trainer = prepare_pretraining(config=config, out_dir=config.out)
    log(f"{trainer.meta.get('model_type', 'gpt').upper()} with {trainer.model.num_parameters() / 1e6:.2f}M parameters "
        f"on {trainer.meta['data']} ({len(trainer.train_tokens):,} training tokens, vocabulary "
        f"{trainer.model.config.vocab_size}); {trainer.config.max_iters} steps of {trainer.tokens_per_step:,} tokens"
        + (f", shared by {world.size} MPI ranks" if world.size > 1 else ""))
    try:
        trainer.threads = thread_policy(config.threads, world)
    except ImportError as err:  # threadpoolctl is optional: the BLAS keeps its own thread count
        note_once(f"--threads not applied: {err}")
    start, first_step = time.perf_counter(), trainer.step
    max_seconds = None if config.max_minutes is None else 60 * config.max_minutes
    history = trainer.train(progress=progress, max_seconds=max_seconds)
    seconds = time.perf_counter() - start
    steps = trainer.step - first_step
    plot = trainer.out_dir / "loss.png"  # not drawn without matplotlib
    use = (f"fine-tune it: tinytransformer finetune --task classify --data sst2 --checkpoint {config.out} --out DIR"
           if trainer.meta["model_type"] == "bert" else f"sample it:  tinytransformer generate --checkpoint {config.out}")
    log(f"done: step {trainer.step}, val loss {history['val_loss'][-1]:.4f}, {seconds:.1f} s "
        f"({steps * trainer.tokens_per_step / max(seconds, 1e-9):,.0f} tokens/s)\n"
        f"checkpoint: {config.out}{f'   loss curve: {plot}' if plot.is_file() else ''}\n{use}")
    return trainer
