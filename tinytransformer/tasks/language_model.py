"""Pretraining a language model on a text corpus: ``tinytransformer train``, and the same from Python.

    text   = load_corpus("shakespeare")                 the corpus (or "pydoc", or a path)
    tok    = CharTokenizer.train(text)                   or a byte-level BPE of vocab_size ids
    ids    = tok.encode(text)                            one long stream of token ids
    train, val = train_val_split(ids, 0.1)               the first 90% / the last 10%
    model  = GPT(GPTConfig(vocab_size=tok.vocab_size, ...))
    Trainer(model, train, val, TrainConfig(...)).train()

``LanguageModelConfig`` holds every setting of that run and is the only home
of their defaults: the command line builds ``train``'s flags from it, and
``run(LanguageModelConfig())`` trains the same model as ``tinytransformer
train``. ``prepare_pretraining`` builds the trainer, ``resume_pretraining``
rebuilds it from a checkpoint folder (the corpus is read again, the tokenizer
comes from the checkpoint), ``load_pretrained`` gives back the model and
tokenizer for generation.
"""

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..data import BPETokenizer, CharTokenizer, load_corpus, tokenizer_from_dict, train_val_split
from ..models.gpt import GPT, GPTConfig
from ..models.rnn_lm import RNNLM, RNNLMConfig
from ..rng import manual_seed
from ..training import TrainConfig, Trainer, load_checkpoint, load_meta
from .options import check_options, option

TOKENIZERS = ("char", "bpe")
MODEL_TYPES = ("gpt", "rnn", "lstm")
VAL_FRACTION = 0.1
DEFAULT_MAX_ITERS = 2000  # nanoGPT's CPU run; a few minutes on two cores
# (weight decay, gradient clipping) per model type. A GPT of the default size measured a lower validation loss
# without either (docs/shakespeare.md); a recurrent net keeps nanoGPT's, since its gradients can explode.
REGULARISATION = {"gpt": (0.0, 0.0), "rnn": (0.1, 1.0), "lstm": (0.1, 1.0)}
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")


@dataclass
class LanguageModelConfig:
    """Every setting of a pretraining run; the defaults are nanoGPT's small CPU configuration for
    character-level Shakespeare, without weight decay and clipping for a GPT (see ``REGULARISATION``)."""

    data: str = option("pydoc", "the corpus: Python's help pages (built in), Tiny Shakespeare (downloaded once, or "
                       "read from $TINYTRANSFORMER_DATA), or a UTF-8 text file; the last 10% is the validation split",
                       metavar="pydoc|shakespeare|PATH", group="data")
    tokenizer: str = option("char", "one id per character, or byte-level BPE trained on the corpus",
                            choices=TOKENIZERS, group="data")
    vocab_size: int = option(512, "BPE vocabulary size (256 byte ids + merges); ignored for char", within="[256, inf)",
                             group="data")
    model: str = option("gpt", "a GPT, or a character-level RNN/LSTM language model (then --n-layer recurrent "
                        "layers of width --n-embd; --n-head unused)", choices=MODEL_TYPES, group="model")
    n_layer: int = option(4, "Transformer blocks", within="[1, inf)", group="model")
    n_head: int = option(4, "attention heads per block", within="[1, inf)", group="model")
    n_embd: int = option(128, "width of the residual stream", within="[1, inf)", group="model")
    block_size: int = option(64, "context length in tokens", within="[1, inf)", group="model")
    dropout: float = option(0.0, "dropout probability", within="[0, 1)", group="model")
    bias: bool = option(False, "biases in the Linear and LayerNorm layers, as in GPT-2 (default: none, as in nanoGPT)",
                        group="model")
    batch_size: int = option(12, "sequences per micro-batch", within="[1, inf)", group="optimisation")
    grad_accum: int = option(1, "micro-batches whose gradients add up to one step", within="[1, inf)",
                            group="optimisation")
    max_iters: int = option(None, f"optimisation steps (default {DEFAULT_MAX_ITERS}; with --resume, the saved run's)",
                            within="[1, inf)", group="optimisation")
    lr: float = option(1e-3, "peak learning rate of AdamW", within="[0, inf)", group="optimisation")
    warmup_iters: int = option(100, "steps of linear warmup (capped at --max-iters); then a cosine down to lr/10",
                               within="[0, inf)", group="optimisation")
    weight_decay: float = option(None, "AdamW's decoupled weight decay, on weight matrices and embeddings only "
                                 "(default: 0 for a GPT, which measured better than nanoGPT's 0.1 at this size; "
                                 "0.1 for rnn/lstm)", within="[0, inf)", group="optimisation")
    grad_clip: float = option(None, "clip the global gradient norm to this; 0: no clipping (default: 0 for a GPT, "
                              "which measured better than nanoGPT's 1.0 at this size; 1.0 for rnn/lstm, whose "
                              "gradients can explode)", within="[0, inf)", group="optimisation")
    eval_interval: int = option(250, "evaluate, save a checkpoint and the plot every this many steps",
                                 within="[1, inf)", group="run")
    eval_iters: int = option(20, "batches per loss estimate", within="[1, inf)", group="run")
    seed: int = option(1337, "seeds the weights, the batches and dropout", within="[0, inf)", group="run")
    out: str = option("runs/gpt", "folder for the checkpoint and loss.png", metavar="DIR", group="run")
    resume: bool = option(False, "continue the run saved in --out, exactly where it stopped (model and data flags "
                          "ignored)", group="run")

    def __post_init__(self):
        check_options(self)
        if self.model == "gpt" and self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        decay, clip = REGULARISATION[self.model]
        self.weight_decay = decay if self.weight_decay is None else self.weight_decay
        self.grad_clip = clip if self.grad_clip is None else self.grad_clip

    def model_config(self) -> dict:
        """The model's fields (``vocab_size`` comes from the tokenizer)."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            max_iters=self.max_iters or DEFAULT_MAX_ITERS, batch_size=self.batch_size, grad_accum=self.grad_accum,
            lr=self.lr, warmup_iters=self.warmup_iters, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            eval_interval=self.eval_interval, eval_iters=self.eval_iters, seed=self.seed,
        )

    def to_dict(self):
        return asdict(self)


def build_model(model_type, config):
    """A fresh language model from a dict of config fields: a ``GPT``, or an ``RNNLM`` with an
    Elman ("rnn") or LSTM ("lstm") cell (fields it has no use for, such as ``n_head``, are dropped)."""
    if model_type == "gpt":
        return GPT(GPTConfig(**config))
    if model_type in ("rnn", "lstm"):
        names = {f.name for f in fields(RNNLMConfig)}
        return RNNLM(RNNLMConfig(**{**{k: v for k, v in config.items() if k in names}, "cell": model_type}))
    raise ValueError(f"build_model: model_type must be one of {MODEL_TYPES}, got {model_type!r}")


def train_tokenizer(text, kind="char", vocab_size=512):
    """A tokenizer fitted to ``text``: ``"char"`` (one id per distinct character) or ``"bpe"``."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise ValueError(f"train_tokenizer: kind must be one of {TOKENIZERS}, got {kind!r}")


def _split(text, tokenizer):
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    return train_val_split(ids, VAL_FRACTION)


def prepare_pretraining(data=None, tokenizer=None, vocab_size=None, model_config=None, train_config=None,
                        out_dir=None, model_type=None, config=None):
    """A ``Trainer`` for a fresh language model, ready to ``train()`` (see the module docstring).

    ``config`` (a ``LanguageModelConfig``, default: all its defaults) gives every
    setting; the other arguments override it: ``data``, ``tokenizer``,
    ``vocab_size``, ``model_type``, ``model_config`` (a dict of ``GPTConfig``
    fields; ``vocab_size`` comes from the tokenizer) and ``train_config`` (a
    ``TrainConfig``). The weights are initialised from ``tt.manual_seed`` of the
    training seed. With no arguments this is the model ``tinytransformer train`` trains.
    """
    config = config if config is not None else LanguageModelConfig(
        **{k: v for k, v in (("data", data), ("tokenizer", tokenizer), ("vocab_size", vocab_size),
                             ("model", model_type)) if v is not None})
    train_config = train_config if train_config is not None else config.train_config()
    text = load_corpus(config.data)
    tok = train_tokenizer(text, config.tokenizer, config.vocab_size)
    train_ids, val_ids = _split(text, tok)
    manual_seed(train_config.seed)
    model = build_model(config.model, {**config.model_config(), **(model_config or {}), "vocab_size": tok.vocab_size})
    source = str(Path(config.data).resolve()) if Path(config.data).is_file() else str(config.data)  # resume elsewhere
    meta = {"data": source, "model_type": config.model}
    return Trainer(model, train_ids, val_ids, train_config, tokenizer=tok, out_dir=out_dir, meta=meta)


def resume_pretraining(folder, max_iters=None):
    """The trainer of the run saved in ``folder``, at the step it was saved, ready to continue.

    ``max_iters`` extends (or shortens) the run; the learning-rate schedule is
    the saved one, so steps past its end keep the final, smallest rate.
    """
    meta = load_meta(folder)
    saved = meta["train_config"]
    train_config = TrainConfig(**{**saved, "max_iters": max_iters or saved["max_iters"]})
    tok = tokenizer_from_dict(meta["tokenizer"])
    train_ids, val_ids = _split(load_corpus(meta["data"]), tok)
    model_type = meta.get("model_type", "gpt")
    model = build_model(model_type, meta["model_config"])
    trainer = Trainer(model, train_ids, val_ids, train_config, tokenizer=tok, out_dir=folder,
                      meta={"data": meta["data"], "model_type": model_type})
    trainer.load(folder)
    return trainer


def load_pretrained(folder):
    """``(model, tokenizer, meta)`` from a checkpoint folder, the model in eval mode."""
    model_state, _, meta = load_checkpoint(folder)
    model = build_model(meta.get("model_type", "gpt"), meta["model_config"])
    model.load_state_dict(model_state)
    model.eval()
    return model, tokenizer_from_dict(meta["tokenizer"]), meta


def run(config=None, progress=True, log=print) -> Trainer:
    """Pretrain (or, with ``config.resume``, continue) the run ``config`` describes, saving to ``config.out``;
    returns the trainer."""
    config = config if config is not None else LanguageModelConfig()
    if config.resume:
        log(f"resuming the run in {config.out} (its saved settings; only max_iters, --max-iters, may change them)")
        trainer = resume_pretraining(config.out, max_iters=config.max_iters)
    else:
        trainer = prepare_pretraining(config=config, out_dir=config.out)
    log(f"{trainer.meta.get('model_type', 'gpt').upper()} with {trainer.model.num_parameters() / 1e6:.2f}M parameters "
        f"on {trainer.meta['data']} ({len(trainer.train_tokens):,} training tokens, vocabulary "
        f"{trainer.model.config.vocab_size}); {trainer.config.max_iters} steps of {trainer.tokens_per_step:,} tokens")
    start, first_step = time.perf_counter(), trainer.step
    history = trainer.train(progress=progress)
    seconds = time.perf_counter() - start
    steps = trainer.step - first_step
    log(f"done: step {trainer.step}, val loss {history['val_loss'][-1]:.4f}, {seconds:.1f} s "
        f"({steps * trainer.tokens_per_step / max(seconds, 1e-9):,.0f} tokens/s)\n"
        f"checkpoint: {config.out}   loss curve: {trainer.out_dir / 'loss.png'}\n"
        f"sample it:  tinytransformer generate --checkpoint {config.out}")
    return trainer


@dataclass
class GenerateConfig:
    """Sampling from a saved language model: ``tinytransformer generate``."""

    checkpoint: str = option(None, "the --out folder of a training run", metavar="DIR", required=True)
    prompt: str = option("\n", "text to continue (default: a newline); with a char tokenizer, only characters of "
                         "the training text")
    max_new_tokens: int = option(300, "tokens to generate", within="[1, inf)")
    temperature: float = option(0.8, "divide the logits by this before sampling; 0 is greedy (always the likeliest "
                                "token)", within="[0, inf)")
    top_k: int = option(None, "sample only among the k likeliest tokens", within="[1, inf)")
    top_p: float = option(None, "sample only among the likeliest tokens whose probabilities add up to p (nucleus)",
                          within="(0, 1]")
    seed: int = option(1337, "the same seed gives the same text")

    def __post_init__(self):
        check_options(self)
        if self.checkpoint is None:
            raise ValueError("checkpoint: give the folder of a trained model")
        if not self.prompt:
            raise ValueError("prompt must not be empty")


def generate_text(config: GenerateConfig) -> str:
    """The prompt and its continuation, sampled from the checkpoint ``config`` names (with the KV cache)."""
    from ..generation import generate

    model, tokenizer, _ = load_pretrained(config.checkpoint)
    prompt = np.asarray(tokenizer.encode(config.prompt), dtype=np.int64)[None, :]  # (1, T)
    out = generate(model, prompt, config.max_new_tokens, temperature=config.temperature, top_k=config.top_k,
                   top_p=config.top_p, seed=config.seed)
    return tokenizer.decode(out[0])


def print_generated(config: GenerateConfig):
    """``tinytransformer generate``: print the prompt and its continuation."""
    print(generate_text(config))


@dataclass
class DemoConfig:
    """``tinytransformer demo``: the default run on Python's help pages, then a sample of what it learnt."""

    out: str = option("runs/demo", "folder for the checkpoint and loss.png", metavar="DIR")
    max_iters: int = option(DEFAULT_MAX_ITERS, "optimisation steps", within="[1, inf)")

    def __post_init__(self):
        check_options(self)


def demo(config: DemoConfig):
    run(LanguageModelConfig(data="pydoc", out=config.out, max_iters=config.max_iters))
    print("\n--- a sample from the trained model ---")
    print_generated(GenerateConfig(checkpoint=config.out, max_new_tokens=400))
