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

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.encoding import encode_texts
from ..interpret import attention_maps, logit_lens, token_attribution
from ..models.gpt import GPT
from ..models.heads import Ensemble, SequenceClassifier
from ..models.hf_gpt2 import load_model_and_tokenizer
from ..plots import import_pyplot, plot_attention_maps, plot_attribution, plot_logit_lens, token_labels
from ..training.checkpoint import load_meta
from .finetuned import load_finetuned
from .language_model import GPT_BODIES, load_pretrained
from .options import check_options, option

WHAT = ("attention", "logit-lens", "attribution")


def load_for_inspection(folder, text, pretrained=None):
    """``(model, gpt, tokenizer, ids, labels)`` for a checkpoint folder (or, with ``folder`` None, the
    GPT-2 folder or hub name ``pretrained``) and a text.

    ``model`` is what attribution explains (the classifier, or the GPT itself),
    ``gpt`` the language model whose attention and residual stream are drawn,
    ``ids`` the text's token ids as the model sees them (cut to the block
    size), ``labels`` the class names of a classifier (None for a language model).
    """
    if pretrained is not None:
        (model, tokenizer), kind = load_model_and_tokenizer(pretrained), "gpt2"
    else:
        kind = load_meta(folder, holds=(*GPT_BODIES, "classifier", "tagger"), reader="inspect",
                         wants="a GPT language model, a classifier or a tagger")["kind"]
    if kind in ("classifier", "tagger"):
        model, tokenizer, meta = load_finetuned(folder, reader="inspect")
        head = model.members[0] if isinstance(model, Ensemble) else model
        gpt, labels = head.body, meta["labels"]
        if not isinstance(gpt, GPT):
            raise ValueError(f"inspect: {folder} holds a {meta['kind']} on a {type(gpt).__name__} body; inspect "
                             "looks inside a GPT body only")
        ids = encode_texts(tokenizer, [text], None)[0]
        kept = "first"
    else:
        if pretrained is None:
            model, tokenizer, _ = load_pretrained(folder, reader="inspect", holds=GPT_BODIES)
        gpt, labels, kept = model, None, "last"
        ids = tokenizer.encode(text)
    if not len(ids):
        raise ValueError(f"inspect: the text {text!r} has no tokens")
    block_size = gpt.config.block_size
    if len(ids) > block_size:
        print(f"note: the text has {len(ids)} tokens, more than the model's block of {block_size}: only the "
              f"{kept} {block_size} are drawn", file=sys.stderr, flush=True)
        ids = ids[:block_size] if kept == "first" else ids[-block_size:]
    return model, gpt, tokenizer, np.asarray(ids, dtype=np.int64), labels


def _members(model):
    """The models attribution explains one by one; a ValueError for a tagger, which makes no single prediction."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    if not isinstance(members[0], (SequenceClassifier, GPT)):
        raise ValueError("inspect: attribution explains one prediction per text; this checkpoint tags every "
                         "token (use a classifier or a language model, or --what attention / logit-lens)")
    return members


def explain(model, ids):
    """Gradient x input (T,) for the model's likeliest class or next token; returns (scores, target, probability)."""
    members = _members(model)
    probabilities = np.mean([token_attribution(m, ids)["probabilities"] for m in members], axis=0)
    target = int(np.argmax(probabilities))
    scores = np.mean([token_attribution(m, ids, target=target)["scores"] for m in members], axis=0)
    return scores, target, float(probabilities[target])


def inspect_checkpoint(folder, text, out_dir, what=WHAT, pretrained=None) -> dict:
    """Write the PNGs named in ``what`` (any of ``WHAT``) for ``text`` to ``out_dir``; returns {what: path}.
    ``pretrained`` (a GPT-2 folder or hub name) is looked at in place of the checkpoint ``folder`` (then None)."""
    unknown = [w for w in what if w not in WHAT]
    if unknown:
        raise ValueError(f"inspect: unknown view(s) {unknown}; choose from {WHAT}")
    import_pyplot()  # figures are this command's whole job: without matplotlib, say so before any work
    model, gpt, tokenizer, ids, labels = load_for_inspection(folder, text, pretrained)
    if "attribution" in what:
        _members(model)  # a tagger: refused before any figure is drawn
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

    checkpoint: str = option(None, "the --out folder of `train` or `finetune` (or give --pretrained)", metavar="DIR")
    pretrained: str = option(None, "a GPT-2 in Hugging Face's layout: a folder or a hub name such as gpt2, as for "
                             "`generate --pretrained` (docs/gpt2.md)", metavar="PATH_OR_NAME")
    text: str = option(None, "the input to look at (cut to the model's block size)", required=True)
    out: str = option("inspect", "folder for the PNGs", metavar="DIR")
    what: list = option(None, "which figure; repeat for several (default: all three)", choices=WHAT, many=True)

    def __post_init__(self):
        check_options(self)
        if (self.checkpoint is None) == (self.pretrained is None):
            raise ValueError("checkpoint or pretrained: give one of the two, the folder of a saved model or a GPT-2 "
                             "(a folder or hub name)")
        if self.text is None:
            raise ValueError("inspect: give the text to look at")
        if not self.text.strip():
            raise ValueError("text must not be empty: give the input to look at")
        self.what = tuple(self.what or WHAT)


def run(config: InspectConfig) -> dict:
    """Write the figures and print where each went."""
    written = inspect_checkpoint(config.checkpoint, config.text, config.out, config.what, config.pretrained)
    for what, path in written.items():
        print(f"{what}: {path}")
    return written
