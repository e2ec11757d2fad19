"""Task heads on a pretrained body: one label per sentence, one tag per token.

The body is a whole pretrained model, built from its config by ``build_body``:

    GPTConfig  -> GPT               causal: position t sees tokens 0..t (Radford et al. 2018, section 3.2)
    BertConfig -> BertForMaskedLM   bidirectional: every position sees the whole sentence (Devlin et al. 2019)

Its language-model head stays (GPT's tied to the token embedding, BERT's
masked-LM head) and is simply not used, so a pretrained checkpoint loads into
the body unchanged. A head reads only ``body.hidden_states(idx,
key_padding_mask)``, the final hidden states h (B, T, C):

    SequenceClassifier   pool h over the sentence -> dropout -> Linear(C, K) -> logits (B, K)
    TokenClassifier      causal body: [h_t ; h_t+1] -> dropout -> Linear(2C, K) -> logits (B, T, K)
                         bidirectional body: h_t -> dropout -> Linear(C, K)  (h_t has seen both sides)

Two classes need one logit, z = log p(1) / p(0), and the loss is
binary_cross_entropy_with_logits(z, y); more classes get K logits and
cross_entropy. Both are the same model when K = 2 (a softmax over two logits
depends only on their difference), the first with half the output weights.

Padding. Sequences of different lengths go in one batch padded on the right,
with ``key_padding_mask`` (B, T), True at the padding. The mask hides padded
keys from attention, pooling reads only real positions, and the tagger's
look-ahead reads zeros past a row's last token, so padding a sentence never
changes its logits (``tests/models/test_heads.py`` checks it).

Fine-tuning choices (ULMFiT, Howard & Ruder 2018): ``freeze_body()`` trains the
head alone (the body becomes a fixed feature extractor); ``unfreeze_top(n)``
trains only the body's top n layers (gradual unfreezing, one more per epoch);
``param_groups(lr, body_lr, weight_decay, layer_decay)`` gives the body its
own, usually smaller, learning rate, and with ``layer_decay`` each lower layer
a smaller one still (discriminative fine-tuning). ``add_lora(rank)`` freezes a
GPT body's weights and trains low-rank adapters inside it instead (LoRA, Hu et
al. 2021: ``nn/lora.py``).
"""

from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor, as_array, concatenate, no_grad
from ..data.encoding import IGNORE_INDEX  # the label of positions that carry no tag (padding, inner sub-words)
from ..nn import Dropout, Linear, Module, ModuleList
from ..nn.lora import LORA_TARGETS, add_lora
from ..nn import functional as F
from .bert import BertConfig, BertForMaskedLM
from .gpt import GPT, GPTConfig

POOLINGS = ("mean", "max", "last", "cls")


# ------------------------------------------------------------------ bodies
def gpt_layers(gpt) -> list:
    """A GPT's parameters layer by layer, lowest first: [embeddings], [block 0], ..., [block L-1, final LayerNorm].
    (The lm_head is the token embedding, tied: it is listed once, with the embeddings.)"""
    t = gpt.transformer
    blocks = [list(block.parameters()) for block in t["h"]]
    blocks[-1] += list(t["ln_f"].parameters())
    return [[*t["wte"].parameters(), *t["wpe"].parameters()], *blocks]


def bert_layers(bert) -> list:
    """A BERT's parameters layer by layer, lowest first: [embeddings], [layer 0], ..., [layer L-1].
    The masked-LM head is left out: fine-tuning never reads it, so it never trains."""
    encoder = bert.bert
    return [list(encoder.embeddings.parameters()), *[list(layer.parameters()) for layer in encoder.encoder.layer]]


@dataclass(frozen=True)
class BodyKind:
    """What a head needs to know of one kind of body."""

    config: type  # its config dataclass, which says the kind: build_body(config)
    model: type  # the pretrained model that is the body
    causal: bool  # position t sees tokens 0..t only
    pooling: str  # a classifier's default pooling on this body (docs/finetuning.md)
    body_lr: float | None  # the body's default fine-tuning learning rate; None: the head's
    layers: object  # body -> its parameters, layer by layer, lowest first


# The default 3,000-step BERT of `train --model bert --data movie_reviews`, fine-tuned on SST-2 (dev, one seed, mean
# pooling): body at 1e-4 73.6%, at 3e-4 77.9%, at the head's 1e-3 78.8%; cls pooling at 3e-4 78.2% (docs/pretraining.md).
# (A barely trained 6-minute body had preferred 1e-4: docs/finetuning.md.)
BODIES = {
    "gpt": BodyKind(GPTConfig, GPT, causal=True, pooling="max", body_lr=None, layers=gpt_layers),
    "bert": BodyKind(BertConfig, BertForMaskedLM, causal=False, pooling="mean", body_lr=None, layers=bert_layers),
}


def body_type(config) -> str:
    """The name in ``BODIES`` of the body a config describes: "gpt" or "bert"."""
    for name, kind in BODIES.items():
        if isinstance(config, kind.config):
            return name
    raise ValueError(f"heads: a body's config must be one of {', '.join(k.config.__name__ for k in BODIES.values())}, "
                     f"got {type(config).__name__}")


def build_body(config):
    """A fresh body of the kind ``config`` describes: a ``GPT`` or a ``BertForMaskedLM``."""
    return BODIES[body_type(config)].model(config)


def _check_mask(idx, key_padding_mask, caller):
    """``key_padding_mask`` as a boolean (B, T) array (all False when None)."""
    if key_padding_mask is None:
        return np.zeros(idx.shape, dtype=bool)
    mask = np.asarray(as_array(key_padding_mask), dtype=bool)
    if mask.shape != idx.shape:
        raise ValueError(f"{caller}: key_padding_mask has shape {mask.shape}, expected idx's shape {idx.shape}")
    bad = mask[:, 0] | (mask[:, :-1] & ~mask[:, 1:]).any(axis=1)  # padding first, or a real token after padding
    if bad.any():
        raise ValueError(f"{caller}: every row needs at least one real token, and padding goes on the right; "
                         f"rows {np.flatnonzero(bad).tolist()} break that")
    return mask


def pool(h, key_padding_mask, pooling="mean"):
    """One vector per sentence from its hidden states h (B, T, C), ignoring padding.

    ``"mean"``: the average over the real positions, sum_t m_t h_t / sum_t m_t
    with m_t = 1 for a real token. ``"max"``: each feature's largest value over
    the real positions (Collobert et al. 2011; Kim 2014's max-over-time), so a
    feature that detects a telling phrase fires wherever the phrase stands. On
    SST-2, max pooling beat mean pooling by about two points with a GPT body
    (docs/finetuning.md). ``"last"``: the state of the last real token, the
    only one that has seen the whole sentence in a causal model (GPT-1's
    choice, with an extra end token). ``"cls"``: the state of the first token,
    BERT's [CLS], which an encoder lets see the whole sentence (meaningless for
    a causal body, where it has seen only itself).
    """
    real = ~np.asarray(key_padding_mask, dtype=bool)  # (B, T)
    if pooling == "mean":
        weights = (real / real.sum(axis=1, keepdims=True)).astype(h.dtype)  # (B, T), rows sum to 1
        return (h * weights[:, :, None]).sum(axis=1)  # (B, C)
    if pooling == "max":
        return h.masked_fill(~real[:, :, None], -np.inf).max(axis=1)  # (B, C)
    if pooling == "last":
        last = real.sum(axis=1) - 1  # (B,): index of the last real token
        return h[np.arange(h.shape[0]), last]  # (B, C)
    if pooling == "cls":
        return h[:, 0]  # (B, C): the first token, always a real one
    raise ValueError(f"pool: pooling must be one of {POOLINGS}, got {pooling!r}")


class _Headed(Module):
    """What both heads share: the body, loading it, freezing it, adapting it, and per-group learning rates.
    ``body``, if given, is the body itself (built elsewhere, e.g. under ``nn.skip_init`` and then loaded):
    its config must be ``config``."""

    def __init__(self, config, body=None):
        super().__init__()
        if body is not None and body.config != config:
            raise ValueError(f"{type(self).__name__}: the body given is a {body.config}, not the {config} asked for")
        self.body = build_body(config) if body is None else body

    @property
    def body_kind(self) -> BodyKind:
        return BODIES[body_type(self.body.config)]

    def load_body(self, state_dict):
        """Copy a pretrained body's state dict into the body (shapes must match; the head is untouched)."""
        self.body.load_state_dict(state_dict)
        return self

    def body_layers(self) -> list:
        """The body's trainable parameters layer by layer, lowest (the embeddings) first."""
        return self.body_kind.layers(self.body)

    def freeze_body(self, frozen=True):
        """Stop (or restart, ``frozen=False``) training the body: its parameters stop requiring gradients."""
        for p in self.body.parameters():
            p.requires_grad = not frozen
        return self

    def unfreeze_top(self, n):
        """Train only the top ``n`` of ``body_layers()`` (0: none, the body frozen; n_layer + 1: all of it)."""
        self.freeze_body()
        layers = self.body_layers()
        for layer in layers[max(len(layers) - n, 0):]:
            for p in layer:
                p.requires_grad = True
        return self

    def add_lora(self, rank, alpha=None):
        """Low-rank adapters (``nn/lora.py``) on a GPT body's attention and MLP projections, the rest of the body
        frozen; the head still trains. ``merge_lora(model)`` folds them back into plain weights."""
        if body_type(self.body.config) != "gpt":
            raise ValueError(f"{type(self).__name__}.add_lora: adapters go on a GPT body's "
                             f"{', '.join(LORA_TARGETS)}; this body is a {body_type(self.body.config).upper()}")
        add_lora(self.body, rank, alpha)
        return self

    @property
    def body_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.body.parameters())

    def head_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("body.")]

    def param_groups(self, lr, body_lr=None, weight_decay=0.0, layer_decay=None):
        """Optimizer groups: the head at ``lr``, the body at ``body_lr`` (default ``lr``); frozen parameters
        left out.

        ``layer_decay`` xi (discriminative fine-tuning: ULMFiT, Howard & Ruder
        2018; BERT's layer-wise decay, Sun et al. 2019) gives each of the body's
        layers its own group: the top block ``body_lr``, each lower one xi times
        the one above, so block k of L gets body_lr xi^(L-1-k) and the embeddings
        body_lr xi^L. Lower layers hold the more general features, which should
        move less. Weight decay goes on matrices only (not biases, LayerNorm
        gains), as in ``GPT.optimizer_groups``. Each group's ``"name"`` says
        what it holds.
        """
        body_lr = lr if body_lr is None else body_lr
        layers = self.body_layers()
        if layer_decay is None:
            parts = [("head", self.head_parameters(), lr), ("body", [p for layer in layers for p in layer], body_lr)]
        else:
            top = len(layers) - 1
            parts = [("head", self.head_parameters(), lr)] + [
                ("body embeddings" if k == 0 else f"body block {k - 1}", layers[k], body_lr * layer_decay ** (top - k))
                for k in range(top, -1, -1)]
        groups = []
        for name, params, group_lr in parts:
            params = [p for p in params if p.requires_grad]
            for suffix, chosen, decay in (("", [p for p in params if p.ndim >= 2], weight_decay),
                                          (" (no decay)", [p for p in params if p.ndim < 2], 0.0)):
                if chosen:
                    groups.append({"name": name + suffix, "params": chosen, "lr": group_lr, "weight_decay": decay})
        return groups

    def _hidden(self, idx, key_padding_mask, caller):
        idx = np.asarray(as_array(idx))
        mask = _check_mask(idx, key_padding_mask, caller)
        if self.body_frozen:  # nothing in the body to train: do not record its graph
            with no_grad():
                return self.body.hidden_states(idx, mask).detach(), mask
        return self.body.hidden_states(idx, mask), mask  # (B, T, C)


class SequenceClassifier(_Headed):
    """A label per sequence: ``model(idx, key_padding_mask, labels) -> (logits, loss)``.

    ``num_classes == 2``: logits (B,) and ``binary_cross_entropy_with_logits``;
    more: logits (B, K) and ``cross_entropy``. ``labels`` are class ids (B,).
    ``config`` (a ``GPTConfig`` or ``BertConfig``) says the body; ``pooling`` is
    one of ``POOLINGS`` (see ``pool``), ``"cls"`` on a bidirectional body only.
    """

    def __init__(self, config, num_classes: int, pooling: str = "mean", dropout: float = 0.1, body=None):
        super().__init__(config, body)
        if int(num_classes) < 2:
            raise ValueError(f"SequenceClassifier: num_classes must be at least 2, got {num_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"SequenceClassifier: pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "cls" and self.body_kind.causal:
            raise ValueError("SequenceClassifier: pooling 'cls' reads the first token's state, which a causal body "
                             f"({body_type(config)}) computes from that token alone; use "
                             f"{', '.join(p for p in POOLINGS if p != 'cls')}, or an encoder body for 'cls'")
        self.num_classes, self.pooling = int(num_classes), pooling
        self.dropout = Dropout(dropout)
        self.score = Linear(config.n_embd, 1 if self.num_classes == 2 else self.num_classes)  # Hugging Face's name

    def forward(self, idx, key_padding_mask=None, labels=None):
        h, mask = self._hidden(idx, key_padding_mask, "SequenceClassifier")  # (B, T, C)
        logits = self.score(self.dropout(pool(h, mask, self.pooling)))  # (B, 1) or (B, K)
        if self.num_classes == 2:
            logits = logits.reshape(-1)  # (B,)
        if labels is None:
            return logits, None
        labels = np.asarray(labels)
        if labels.shape != (h.shape[0],):
            raise ValueError(f"SequenceClassifier: labels must have shape ({h.shape[0]},), got {labels.shape}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"SequenceClassifier: labels must be class ids in [0, {self.num_classes}), "
                             f"got values from {labels.min()} to {labels.max()}")
        if self.num_classes == 2:
            return logits, F.binary_cross_entropy_with_logits(logits, labels.astype(logits.dtype))
        return logits, F.cross_entropy(logits, labels)

    def predict_proba(self, idx, key_padding_mask=None) -> np.ndarray:
        """Class probabilities (B, K), in eval mode (no dropout), without a graph."""
        was_training = self.training
        self.eval()
        with no_grad():
            logits = self(idx, key_padding_mask)[0].data.astype(np.float64)
        self.train(was_training)
        if self.num_classes == 2:
            p1 = 1 / (1 + np.exp(-logits))  # sigmoid, (B,)
            return np.stack([1 - p1, p1], axis=1)  # (B, 2)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)  # (B, K)

    def extra_repr(self):
        return f"num_classes={self.num_classes}, pooling={self.pooling!r}"


class TokenClassifier(_Headed):
    """A tag per token, e.g. BIO named-entity tags: ``model(idx, key_padding_mask, labels) -> (logits, loss)``.

    A causal body's state h_t has seen tokens 0..t only, yet the tag of a
    word often hangs on the next one ("New" in "New York"). On a causal body
    the head therefore reads h_t beside h_t+1 (the next token's state, zeros
    after a row's last real token): one token of look-ahead at the cost of a
    wider Linear. A bidirectional body's h_t has seen both sides already: the
    head reads it alone, as BERT's token classifier does.
    ``labels`` (B, T) are tag ids, ``IGNORE_INDEX`` (-100) where no tag is scored.
    """

    def __init__(self, config, num_tags: int, dropout: float = 0.1, body=None):
        super().__init__(config, body)
        if int(num_tags) < 2:
            raise ValueError(f"TokenClassifier: num_tags must be at least 2, got {num_tags}")
        self.num_tags = int(num_tags)
        self.look_ahead = self.body_kind.causal
        self.dropout = Dropout(dropout)
        width = 2 * config.n_embd if self.look_ahead else config.n_embd
        self.classifier = Linear(width, self.num_tags)  # Hugging Face's name

    def forward(self, idx, key_padding_mask=None, labels=None):
        h, mask = self._hidden(idx, key_padding_mask, "TokenClassifier")  # (B, T, C)
        B, T, C = h.shape
        if self.look_ahead:
            has_next = np.zeros((B, T, 1), dtype=h.dtype)
            has_next[:, :-1, 0] = ~mask[:, 1:]  # 1 where position t + 1 is a real token
            end = Tensor(np.zeros((B, 1, C), dtype=h.dtype))  # the last position has no next token
            following = concatenate([h[:, 1:], end], axis=1) * has_next  # (B, T, C): h_t+1 or 0
            h = concatenate([h, following], axis=2)  # (B, T, 2C)
        logits = self.classifier(self.dropout(h))  # (B, T, K)
        if labels is None:
            return logits, None
        labels = np.asarray(labels)
        if labels.shape != (B, T):
            raise ValueError(f"TokenClassifier: labels must have idx's shape {(B, T)}, got {labels.shape}")
        scored = labels != IGNORE_INDEX
        if scored.any() and (labels[scored].min() < 0 or labels[scored].max() >= self.num_tags):
            raise ValueError(f"TokenClassifier: labels must be tag ids in [0, {self.num_tags}) or {IGNORE_INDEX}")
        return logits, F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=IGNORE_INDEX)

    def predict_proba(self, idx, key_padding_mask=None) -> np.ndarray:
        """Tag probabilities at each position (B, T, K), in eval mode, without a graph."""
        was_training = self.training
        self.eval()
        with no_grad():
            logits = self(idx, key_padding_mask)[0].data.astype(np.float64)
        self.train(was_training)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)  # (B, T, K)

    def predict(self, idx, key_padding_mask=None) -> np.ndarray:
        """The likeliest tag id at each position (B, T)."""
        return self.predict_proba(idx, key_padding_mask).argmax(axis=-1)

    def extra_repr(self):
        return f"num_tags={self.num_tags}, look_ahead={self.look_ahead}"


class Ensemble(Module):
    """Heads fine-tuned for one task (different seeds, same tokenizer) whose probabilities are averaged.

    Each member errs somewhat differently, so the average is right more often
    than a typical member (Dietterich 2000, "Ensemble methods in machine
    learning"); on SST-2 a handful of fine-tunes gains about a point. The
    members' state dicts sit side by side under ``members.<i>.``.
    """

    def __init__(self, members):
        super().__init__()
        self.members = ModuleList(members)
        if not len(self.members):
            raise ValueError("Ensemble: needs at least one member")
        if len({type(m) for m in self.members}) > 1:
            raise ValueError(f"Ensemble: members must be heads of one kind, got {[type(m).__name__ for m in members]}")

    def predict_proba(self, idx, key_padding_mask=None) -> np.ndarray:
        """The members' mean probabilities: (B, K) for classifiers, (B, T, K) for taggers."""
        return np.mean([m.predict_proba(idx, key_padding_mask) for m in self.members], axis=0)

    def predict(self, idx, key_padding_mask=None) -> np.ndarray:
        return self.predict_proba(idx, key_padding_mask).argmax(axis=-1)

    def forward(self, idx, key_padding_mask=None):
        return self.predict_proba(idx, key_padding_mask)
