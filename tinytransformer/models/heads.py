"""Task heads on a GPT body: one label per sentence, one tag per token (Radford et al. 2018, section 3.2).

The body is a whole ``GPT`` (its language-model head stays, tied to the token
embedding, and is simply not used), so a checkpoint of a pretrained GPT loads
into it unchanged. On top of its final hidden states h (B, T, C):

    SequenceClassifier   pool h over the sentence -> dropout -> Linear(C, K) -> logits (B, K)
    TokenClassifier      [h_t ; h_t+1] at every position -> dropout -> Linear(2C, K) -> logits (B, T, K)

Two classes need one logit, z = log p(1) / p(0), and the loss is
binary_cross_entropy_with_logits(z, y); more classes get K logits and
cross_entropy. Both are the same model when K = 2 (a softmax over two logits
depends only on their difference), the first with half the output weights.

Padding. Sequences of different lengths go in one batch padded on the right,
with ``key_padding_mask`` (B, T), True at the padding. The mask hides padded
keys from attention, pooling reads only real positions, and the tagger's
look-ahead reads zeros past a row's last token, so padding a sentence never
changes its logits (``tests/models/test_heads.py`` checks it).

Fine-tuning choices: ``freeze_body()`` trains the head alone (the body becomes a
fixed feature extractor); ``param_groups(lr, body_lr)`` gives the body its own,
usually smaller, learning rate.
"""

import numpy as np

from ..autograd import Tensor, as_array, concatenate, no_grad
from ..data.encoding import IGNORE_INDEX  # the label of positions that carry no tag (padding, inner sub-words)
from ..nn import Dropout, Linear, Module, ModuleList
from ..nn import functional as F
from .gpt import GPT, GPTConfig

POOLINGS = ("mean", "last", "max")


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
    with m_t = 1 for a real token. ``"last"``: the state of the last real token,
    the only one that has seen the whole sentence in a causal model (GPT-1's
    choice, with an extra end token). ``"max"``: each feature's largest value
    over the real positions (Collobert et al. 2011; Kim 2014's max-over-time),
    so a feature that detects a telling phrase fires wherever the phrase stands.
    On SST-2, max pooling beat mean pooling by about two points (README).
    """
    real = ~np.asarray(key_padding_mask, dtype=bool)  # (B, T)
    if pooling == "mean":
        weights = (real / real.sum(axis=1, keepdims=True)).astype(h.dtype)  # (B, T), rows sum to 1
        return (h * weights[:, :, None]).sum(axis=1)  # (B, C)
    if pooling == "last":
        last = real.sum(axis=1) - 1  # (B,): index of the last real token
        return h[np.arange(h.shape[0]), last]  # (B, C)
    if pooling == "max":
        return h.masked_fill(~real[:, :, None], -np.inf).max(axis=1)  # (B, C)
    raise ValueError(f"pool: pooling must be one of {POOLINGS}, got {pooling!r}")


class _Headed(Module):
    """What both heads share: the body, loading it, freezing it, and per-group learning rates."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.body = GPT(config)

    def load_body(self, state_dict):
        """Copy a pretrained GPT's state dict into the body (shapes must match; the head is untouched)."""
        self.body.load_state_dict(state_dict)
        return self

    def freeze_body(self, frozen=True):
        """Stop (or restart, ``frozen=False``) training the body: its parameters stop requiring gradients."""
        for p in self.body.parameters():
            p.requires_grad = not frozen
        return self

    @property
    def body_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.body.parameters())

    def head_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("body.")]

    def param_groups(self, lr, body_lr=None, weight_decay=0.0):
        """Optimizer groups: the head at ``lr``, the body at ``body_lr`` (default ``lr``), none if frozen.

        Weight decay goes on matrices only (not biases, LayerNorm gains), as in
        ``GPT.optimizer_groups``. Each group's ``"name"`` says what it holds.
        """
        body_lr = lr if body_lr is None else body_lr
        groups = []
        for name, params, group_lr in (("head", self.head_parameters(), lr),
                                       ("body", list(self.body.parameters()), body_lr)):
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
    ``pooling`` is ``"mean"`` or ``"last"`` (see ``pool``).
    """

    def __init__(self, config: GPTConfig, num_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__(config)
        if int(num_classes) < 2:
            raise ValueError(f"SequenceClassifier: num_classes must be at least 2, got {num_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"SequenceClassifier: pooling must be one of {POOLINGS}, got {pooling!r}")
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
    word often hangs on the next one ("New" in "New York"). The head therefore
    reads h_t beside h_t+1 (the next token's state, zeros after a row's last
    real token): one token of look-ahead at the cost of a wider Linear.
    ``labels`` (B, T) are tag ids, ``IGNORE_INDEX`` (-100) where no tag is scored.
    """

    def __init__(self, config: GPTConfig, num_tags: int, dropout: float = 0.1):
        super().__init__(config)
        if int(num_tags) < 2:
            raise ValueError(f"TokenClassifier: num_tags must be at least 2, got {num_tags}")
        self.num_tags = int(num_tags)
        self.dropout = Dropout(dropout)
        self.classifier = Linear(2 * config.n_embd, self.num_tags)  # Hugging Face's name

    def forward(self, idx, key_padding_mask=None, labels=None):
        h, mask = self._hidden(idx, key_padding_mask, "TokenClassifier")  # (B, T, C)
        B, T, C = h.shape
        has_next = np.zeros((B, T, 1), dtype=h.dtype)
        has_next[:, :-1, 0] = ~mask[:, 1:]  # 1 where position t + 1 is a real token
        end = Tensor(np.zeros((B, 1, C), dtype=h.dtype))  # the last position has no next token
        following = concatenate([h[:, 1:], end], axis=1) * has_next  # (B, T, C): h_t+1 or 0
        logits = self.classifier(self.dropout(concatenate([h, following], axis=2)))  # (B, T, K)
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
        return f"num_tags={self.num_tags}"


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
