"""``tinytransformer inspect``: the three looks inside a saved model, for one text, as PNGs.

    inspect_checkpoint("runs/gpt", "def f(x):", "runs/gpt/inspect")

works on a pretrained language model (``tinytransformer train``) and on a
fine-tuned classifier (``tinytransformer finetune --task classify``):

- ``attention``: every layer's and head's attention map (the classifier's GPT body);
- ``logit-lens``: what each layer would predict next (the body's own lm_head,
  which a fine-tuned classifier keeps but does not use);
- ``attribution``: gradient x input on the token embeddings, explaining the
  predicted class (a classifier) or the likeliest next token (a language model).
  An ensemble's members are explained one by one and their attributions averaged:
  that is gradient x input of the members' mean score.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.encoding import encode_texts
from ..interpret import attention_maps, logit_lens, token_attribution
from ..models.gpt import GPT
from ..models.heads import Ensemble, SequenceClassifier
from ..plots import plot_attention_maps, plot_attribution, plot_logit_lens, token_labels
from ..training.checkpoint import load_meta
from .finetuned import load_finetuned
from .language_model import load_pretrained
from .options import check_options, option

WHAT = ("attention", "logit-lens", "attribution")


def load_for_inspection(folder, text):
    """``(model, gpt, tokenizer, ids, labels)`` for a checkpoint folder and a text.

    ``model`` is what attribution explains (the classifier, or the GPT itself),
    ``gpt`` the language model whose attention and residual stream are drawn,
    ``ids`` the text's token ids as the model sees them (cut to the block
    size), ``labels`` the class names of a classifier (None for a language model).
    """
    if load_meta(folder).get("kind") == "finetuned":
        model, tokenizer, meta = load_finetuned(folder)
        head = model.members[0] if isinstance(model, Ensemble) else model
        gpt, labels = head.body, meta["labels"]
        ids = encode_texts(tokenizer, [text], gpt.config.block_size)[0]
    else:
        model, tokenizer, _ = load_pretrained(folder)
        gpt, labels = model, None
        ids = tokenizer.encode(text)[-gpt.config.block_size:]
    if not len(ids):
        raise ValueError(f"inspect: the text {text!r} has no tokens")
    return model, gpt, tokenizer, np.asarray(ids, dtype=np.int64), labels


def explain(model, ids):
    """Gradient x input (T,) for the model's likeliest class or next token; returns (scores, target, probability)."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    if not isinstance(members[0], (SequenceClassifier, GPT)):
        raise ValueError("inspect: attribution explains one prediction per text; this checkpoint tags every "
                         "token (use a classifier or a language model, or --what attention / logit-lens)")
    probabilities = np.mean([token_attribution(m, ids)["probabilities"] for m in members], axis=0)
    target = int(np.argmax(probabilities))
    scores = np.mean([token_attribution(m, ids, target=target)["scores"] for m in members], axis=0)
    return scores, target, float(probabilities[target])


def inspect_checkpoint(folder, text, out_dir, what=WHAT) -> dict:
    """Write the PNGs named in ``what`` (any of ``WHAT``) for ``text`` to ``out_dir``; returns {what: path}."""
    unknown = [w for w in what if w not in WHAT]
    if unknown:
        raise ValueError(f"inspect: unknown view(s) {unknown}; choose from {WHAT}")
    model, gpt, tokenizer, ids, labels = load_for_inspection(folder, text)
    tokens = token_labels(tokenizer, ids)
    out_dir = Path(out_dir)
    written = {}
    if "attention" in what:
        written["attention"] = plot_attention_maps(
            attention_maps(gpt, ids), tokens, out_dir / "attention.png", title=f"attention maps: {text[:60]!r}")
    if "logit-lens" in what:
        written["logit-lens"] = plot_logit_lens(
            logit_lens(gpt, ids), tokens, token_labels(tokenizer, np.arange(gpt.config.vocab_size)),
            out_dir / "logit_lens.png", title=f"logit lens: {text[:60]!r}")
    if "attribution" in what:
        scores, target, p = explain(model, ids)
        explained = f"class {labels[target]!r}" if labels is not None else \
            f"the next token {token_labels(tokenizer, [target])[0]!r}"
        written["attribution"] = plot_attribution(
            scores, tokens, out_dir / "attribution.png", title=f"gradient x input for {explained} (p = {p:.2f})")
    return written


@dataclass
class InspectConfig:
    """``tinytransformer inspect``: which checkpoint, which text, where the PNGs go, which of them."""

    checkpoint: str = option(None, "the --out folder of `train` or `finetune`", metavar="DIR", required=True)
    text: str = option(None, "the input to look at (cut to the model's block size)", required=True)
    out: str = option("inspect", "folder for the PNGs", metavar="DIR")
    what: list = option(None, "which figure; repeat for several (default: all three)", choices=WHAT, many=True)

    def __post_init__(self):
        check_options(self)
        if self.checkpoint is None or self.text is None:
            raise ValueError("inspect: give the checkpoint folder and the text to look at")
        self.what = tuple(self.what or WHAT)


def run(config: InspectConfig) -> dict:
    """Write the figures and print where each went."""
    written = inspect_checkpoint(config.checkpoint, config.text, config.out, config.what)
    for what, path in written.items():
        print(f"{what}: {path}")
    return written
