"""Pretraining a GPT on a text corpus, from a name to a trainer ready to run, and back from a checkpoint.

    text   = load_corpus("shakespeare")                 the corpus (or "pydoc", or a path)
    tok    = CharTokenizer.train(text)                   or a byte-level BPE of vocab_size ids
    ids    = tok.encode(text)                            one long stream of token ids
    train, val = train_val_split(ids, 0.1)               the first 90% / the last 10%
    model  = GPT(GPTConfig(vocab_size=tok.vocab_size, ...))
    Trainer(model, train, val, TrainConfig(...)).train()

``prepare_pretraining`` does exactly that; ``resume_pretraining`` rebuilds the
same trainer from a checkpoint folder (the corpus is read again, the tokenizer
comes from the checkpoint); ``load_pretrained`` gives back the model and
tokenizer for generation. The command line (``tinytransformer train`` /
``generate``) is a thin layer over these three.
"""

from pathlib import Path

import numpy as np

from ..data import BPETokenizer, CharTokenizer, load_corpus, tokenizer_from_dict, train_val_split
from ..models.gpt import GPT, GPTConfig
from ..models.rnn_lm import RNNLM, RNNLMConfig
from ..random import manual_seed
from .checkpoint import load_checkpoint, load_meta
from .trainer import TrainConfig, Trainer

TOKENIZERS = ("char", "bpe")
VAL_FRACTION = 0.1
MODEL_TYPES = ("gpt", "rnn", "lstm")


def build_model(model_type, config):
    """A fresh language model from a dict of config fields: a ``GPT``, or an ``RNNLM`` with an
    Elman ("rnn") or LSTM ("lstm") cell (fields it has no use for, such as ``n_head``, are dropped)."""
    if model_type == "gpt":
        return GPT(GPTConfig(**config))
    if model_type in ("rnn", "lstm"):
        fields = RNNLMConfig.__dataclass_fields__
        return RNNLM(RNNLMConfig(**{**{k: v for k, v in config.items() if k in fields}, "cell": model_type}))
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


def prepare_pretraining(data="pydoc", tokenizer="char", vocab_size=512, model_config=None, train_config=None,
                        out_dir=None, model_type="gpt"):
    """A ``Trainer`` for a fresh GPT on corpus ``data`` (see the module docstring).

    ``model_config`` is a dict of ``GPTConfig`` fields (``vocab_size`` is set
    from the tokenizer), ``train_config`` a ``TrainConfig``. The weights are
    initialised from ``tt.manual_seed(train_config.seed)``. ``model_type``
    "rnn" or "lstm" trains a recurrent ``RNNLM`` instead (see ``build_model``).
    """
    train_config = train_config if train_config is not None else TrainConfig()
    text = load_corpus(data)
    tok = train_tokenizer(text, tokenizer, vocab_size)
    train_ids, val_ids = _split(text, tok)
    manual_seed(train_config.seed)
    model = build_model(model_type, {**(model_config or {}), "vocab_size": tok.vocab_size})
    source = str(Path(data).resolve()) if Path(data).is_file() else str(data)  # a resume may run from elsewhere
    meta = {"data": source, "model_type": model_type}
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
