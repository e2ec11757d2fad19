"""A tagger that reads both ways: words, characters and shapes -> a BiLSTM -> a CRF (Lample et al. 2016).

Each word w_t of a sentence becomes one vector, the concatenation of

    the mean of its token embeddings      one id per word (a word vocabulary), or its BPE pieces pooled
    a character CNN                        tanh(max over the characters of conv1d(char embeddings)) (Ma & Hovy 2016)
    its shape features                     capitalised, all caps, digits, @, #, URL, ... (data/word_features.py)
    ``extra`` per-word features            optional: e.g. a pretrained encoder's state at the word's last piece

then a bidirectional LSTM (Graves & Schmidhuber 2005) reads the sentence
forwards and backwards, so each word's state has seen the whole sentence
(today's causal ``TokenClassifier`` sees one token ahead), and a Linear layer
gives the emissions (B, T, K): a score for every tag at every word. The output
is either a softmax per word (loss: cross-entropy) or a linear-chain CRF over
the whole sequence (loss: negative log-likelihood; decoding: Viterbi; nn/crf.py).

Padding. Sentences are padded on the right, ``batch.mask`` (B, T) True at real
words. The forward LSTM reads the padding only after every real word; the
backward one reads each sentence reversed within its own length
(``reverse_padded``), so it starts at the sentence's real last word. The
character CNN masks padding characters out of its max. So padding a batch never
changes a sentence's emissions or tags (``tests/models/test_tagger.py``).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..autograd import Function, Tensor, concatenate, no_grad
from ..data.encoding import IGNORE_INDEX
from ..data.tasks import WNUT17_TAGS
from ..data.word_features import SHAPE_FEATURES
from ..nn import CRF, LSTM, Dropout, Embedding, Linear, Module, ModuleList, Parameter
from ..nn import functional as F
from ..nn.crf import check_mask
from ..rng import get_rng
from ..validation import check_fields, check_value

OUTPUTS = ("crf", "softmax")


# ------------------------------------------------------------------ the character CNN
def conv1d(x, weight, bias=None, padding=0):
    """A 1-D convolution over the middle axis, channels last: x (N, L, C_in) -> (N, L + 2p - k + 1, C_out).

    ``weight`` (C_out, C_in, k) is PyTorch's layout, and the result is
    ``torch.nn.functional.conv1d(x.transpose(1, 2), weight, bias, padding=p).transpose(1, 2)``:

        y[n, s, o] = b[o] + sum_{j < k} sum_c x[n, s + j, c] weight[o, c, j]      (x padded with p zeros each side)

    Written as unfold + one matrix product: the k shifted views x[:, j : j + L_out]
    side by side make every window a row of k * C_in numbers, and the filters,
    flattened in the same (j, c) order, multiply all windows at once. Autograd
    derives the backward (each shifted view sends its slice of the gradient back).
    """
    N, L, C = x.shape
    C_out, C_in, k = weight.shape
    if C != C_in:
        raise ValueError(f"conv1d: input has {C} channels (shape {x.shape}), the weight expects {C_in}")
    if padding:
        zeros = Tensor(np.zeros((N, padding, C), dtype=x.dtype))
        x = concatenate([zeros, x, zeros], axis=1)  # (N, L + 2p, C)
    L_out = x.shape[1] - k + 1
    if L_out < 1:
        raise ValueError(f"conv1d: a kernel of width {k} does not fit {x.shape[1]} positions")
    windows = concatenate([x[:, j:j + L_out] for j in range(k)], axis=2)  # (N, L_out, k * C): unfold
    filters = weight.permute(0, 2, 1).reshape(C_out, k * C)  # (C_out, k * C), the windows' (j, c) order
    return F.linear(windows, filters, bias)  # (N, L_out, C_out)


class CharCNN(Module):
    """Characters of each word -> one vector: embed, convolve (odd width k, padded to keep the length),
    max over the real characters, tanh (max and tanh commute, so tanh runs on the pooled values only).

    Padding characters (id 0) are multiplied by zero after the lookup, so they read exactly as the
    convolution's own zero padding. Parameters: ``embedding.weight`` (V, E), ``weight`` (F, E, k) and
    ``bias`` (F,), the layout of ``torch.nn.Conv1d``.
    """

    def __init__(self, num_chars, char_dim, num_filters, kernel_size=3, dtype=np.float32):
        super().__init__()
        kernel_size = check_value("CharCNN: kernel_size", kernel_size, int, "[1, inf)")
        if kernel_size % 2 == 0:
            raise ValueError(f"CharCNN: kernel_size must be odd (a window centred on each character), "
                             f"got {kernel_size}")
        self.kernel_size = kernel_size
        self.embedding = Embedding(num_chars, char_dim, dtype=dtype)
        bound, rng = 1 / math.sqrt(char_dim * kernel_size), get_rng()  # PyTorch's Conv1d init: U(-1/sqrt(fan_in), ..)
        self.weight = Parameter(rng.uniform(-bound, bound, (num_filters, char_dim, kernel_size)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, num_filters).astype(dtype))

    def forward(self, chars):
        """chars (N, L) ids, 0 = padding -> (N, num_filters); a row of only padding (a padding word) reads column 0."""
        chars = np.asarray(chars)
        real = chars != 0  # (N, L)
        x = self.embedding(chars) * real[:, :, None]  # (N, L, E), zeros at padding
        h = conv1d(x, self.weight, self.bias, padding=self.kernel_size // 2)  # (N, L, F)
        real[:, 0] |= ~real.any(axis=1)  # the max needs one position
        return h.masked_fill(~real[:, :, None], -np.inf).max(axis=1).tanh()  # (N, F)


# ------------------------------------------------------------------ the bidirectional LSTM
def _reversal(mask):
    """index (B, T): position n_b - 1 - t for each real t of row b, t itself at the padding."""
    T = mask.shape[1]
    t = np.arange(T)
    return np.where(mask, mask.sum(axis=1, keepdims=True) - 1 - t, t)  # (B, T)


class ReversePadded(Function):
    """y[b, t] = x[b, n_b - 1 - t] for the n_b real steps of row b; padding stays where it is.

    A permutation that is its own inverse, so the backward is the same reversal
    of the gradient (no scatter-add needed: no step is read twice).
    """

    @staticmethod
    def forward(ctx, x, mask):
        ctx.index = _reversal(mask)[:, :, None]  # (B, T, 1)
        return np.take_along_axis(x, ctx.index, axis=1)  # (B, T, D)

    @staticmethod
    def backward(ctx, grad):
        return np.take_along_axis(grad, ctx.index, axis=1), None


def reverse_padded(x, mask):
    """Each row of x (B, T, D) reversed within its real length (mask (B, T) True at real steps)."""
    return ReversePadded.apply(x, np.asarray(mask, dtype=bool))


class BiLSTM(Module):
    """One bidirectional LSTM layer over padded batches: x (B, T, I), mask (B, T) -> (B, T, 2H), zeros at padding.

    out_t = [forward h_t ; backward h_t]: the first half has read words 0 .. t, the second
    words n-1 .. t. ``forward_lstm`` and ``reverse_lstm`` are the library's ``LSTM``; their
    weights are PyTorch's ``weight_ih_l0`` and ``weight_ih_l0_reverse`` of ``nn.LSTM(bidirectional=True)``.
    """

    def __init__(self, input_size, hidden_size, dtype=np.float32):
        super().__init__()
        self.forward_lstm = LSTM(input_size, hidden_size, batch_first=True, dtype=dtype)
        self.reverse_lstm = LSTM(input_size, hidden_size, batch_first=True, dtype=dtype)

    def forward(self, x, mask):
        mask = np.asarray(mask, dtype=bool)
        ahead, _ = self.forward_lstm(x)  # (B, T, H); padding comes after every real word, so never reaches one
        back, _ = self.reverse_lstm(reverse_padded(x, mask))  # (B, T, H), each row read from its last real word
        out = concatenate([ahead, reverse_padded(back, mask)], axis=2)  # (B, T, 2H)
        return out * mask[:, :, None]


# ------------------------------------------------------------------ the tagger
@dataclass
class BiTaggerConfig:
    """Sizes of a ``BiTagger``; a size of 0 turns its input off (at least one input must be on).

    vocab_size       ids of the tokenizer whose word or pieces are embedded (0: no token embedding)
    char_vocab_size  ``CharVocab.vocab_size`` (0: no character CNN)
    shapes           whether ``word_shape_features`` are read
    extra_dim        width of ``batch.extra``, per-word features computed elsewhere (0: none)
    hidden_size      of each direction of each BiLSTM layer
    output           "crf" (loss: negative log-likelihood, decoding: Viterbi) or "softmax" (cross-entropy, argmax)
    """

    num_tags: int = len(WNUT17_TAGS)
    vocab_size: int = 0
    word_dim: int = 100
    char_vocab_size: int = 0
    char_dim: int = 30
    char_filters: int = 50
    char_kernel: int = 3
    shapes: bool = True
    extra_dim: int = 0
    hidden_size: int = 100
    num_layers: int = 1
    dropout: float = 0.5
    output: str = "crf"

    def __post_init__(self):
        size, optional = (int, "[1, inf)"), (int, "[0, inf)")
        check_fields(self, {"num_tags": (int, "[2, inf)"), "vocab_size": optional, "word_dim": size,
                            "char_vocab_size": optional, "char_dim": size, "char_filters": size, "char_kernel": size,
                            "extra_dim": optional, "hidden_size": size, "num_layers": size,
                            "dropout": (float, "[0, 1)")})
        self.output = check_value("BiTaggerConfig: output", self.output, None, choices=OUTPUTS)
        if not (self.vocab_size or self.char_vocab_size or self.shapes or self.extra_dim):
            raise ValueError("BiTaggerConfig: every input is off; set vocab_size, char_vocab_size, shapes or extra_dim")

    @property
    def input_size(self) -> int:
        """The width of one word's vector, the body's input."""
        return ((self.word_dim if self.vocab_size else 0) + (self.char_filters if self.char_vocab_size else 0)
                + (len(SHAPE_FEATURES) if self.shapes else 0) + self.extra_dim)

    def to_dict(self):
        return asdict(self)


class BiTagger(Module):
    """Words -> tags, reading the sentence both ways: ``model(batch) -> (emissions (B, T, K), loss)``.

    ``batch`` is a ``data.word_features.TaggerBatch`` (``tagging_batch`` builds one).
    The loss is None without ``batch.tags``; with the CRF it is the negative
    log-likelihood averaged over sentences, with the softmax the cross-entropy
    averaged over words. ``predict(batch)`` gives each sentence's tag ids.
    """

    def __init__(self, config: BiTaggerConfig, dtype=np.float32):
        super().__init__()
        self.config = c = config
        if c.vocab_size:
            self.embedding = Embedding(c.vocab_size, c.word_dim, dtype=dtype)
        if c.char_vocab_size:
            self.char_cnn = CharCNN(c.char_vocab_size, c.char_dim, c.char_filters, c.char_kernel, dtype=dtype)
        self.dropout = Dropout(c.dropout)
        widths = [c.input_size] + [2 * c.hidden_size] * (c.num_layers - 1)
        self.body = ModuleList(BiLSTM(width, c.hidden_size, dtype=dtype) for width in widths)
        self.classifier = Linear(2 * c.hidden_size, c.num_tags, dtype=dtype)
        if c.output == "crf":
            self.crf = CRF(c.num_tags, dtype=dtype)

    def _needs(self, batch, field, why):
        value = getattr(batch, field)
        if value is None:
            raise ValueError(f"BiTagger: the config sets {why}, but batch.{field} is None; "
                             f"build the batch with tagging_batch and the matching argument")
        return value

    def word_vectors(self, batch, mask):
        """One vector per word, every input side by side: (B, T, config.input_size)."""
        c, dtype = self.config, self.classifier.weight.dtype
        B, T = mask.shape
        parts = []
        if c.vocab_size:
            pieces, piece_mask = self._needs(batch, "pieces", "vocab_size"), batch.piece_mask
            share = piece_mask / np.maximum(piece_mask.sum(axis=2, keepdims=True), 1)  # (B, T, P): mean weights
            parts.append((self.embedding(pieces) * share[..., None].astype(dtype)).sum(axis=2))  # (B, T, D)
        if c.char_vocab_size:
            chars = self._needs(batch, "chars", "char_vocab_size")  # (B, T, L)
            parts.append(self.char_cnn(chars.reshape(B * T, -1)).reshape(B, T, c.char_filters))  # (B, T, F)
        if c.shapes:
            parts.append(Tensor(np.asarray(self._needs(batch, "shapes", "shapes=True"), dtype=dtype)))
        if c.extra_dim:
            extra = self._needs(batch, "extra", "extra_dim")
            parts.append(extra if isinstance(extra, Tensor) else Tensor(np.asarray(extra, dtype=dtype)))
        for part in parts:
            if part.shape[:2] != (B, T):
                raise ValueError(f"BiTagger: every per-word input must be (B, T, ...) = {(B, T)}, got {part.shape}")
        return concatenate(parts, axis=2)  # (B, T, input_size)

    def emissions(self, batch):
        """The score of every tag at every word, (B, T, K)."""
        mask = check_mask(batch.mask, np.shape(batch.mask), "BiTagger")  # (B, T), True at real words
        x = self.dropout(self.word_vectors(batch, mask))  # (B, T, input_size)
        for layer in self.body:
            x = self.dropout(layer(x, mask))  # (B, T, 2H)
        return self.classifier(x)  # (B, T, K)

    def forward(self, batch):
        emissions = self.emissions(batch)  # (B, T, K)
        if batch.tags is None:
            return emissions, None
        mask, tags = np.asarray(batch.mask, dtype=bool), np.asarray(batch.tags)
        if tags.shape != mask.shape:
            raise ValueError(f"BiTagger: batch.tags must have the mask's shape {mask.shape}, got {tags.shape}")
        if self.config.output == "crf":
            return emissions, -self.crf.log_likelihood(emissions, tags, mask).mean()
        B, T, K = emissions.shape
        scored = np.where(mask, tags, IGNORE_INDEX).reshape(-1)  # (B * T,)
        return emissions, F.cross_entropy(emissions.reshape(B * T, K), scored, ignore_index=IGNORE_INDEX)

    def predict(self, batch) -> list:
        """Each sentence's tag ids, a list per sentence with one per real word: Viterbi with the CRF,
        else the argmax. Runs in eval mode (no dropout), without a graph."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                emissions = self.emissions(batch)  # (B, T, K)
        finally:
            self.train(was_training)
        mask = np.asarray(batch.mask, dtype=bool)
        if self.config.output == "crf":
            return self.crf.decode(emissions, mask)
        best = emissions.data.argmax(axis=-1)  # (B, T)
        return [row[:n].tolist() for row, n in zip(best, mask.sum(axis=1))]

    def extra_repr(self):
        return f"output={self.config.output!r}"
