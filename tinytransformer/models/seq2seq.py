"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017), for translation.

    source ids (B, S) -> embedding * sqrt(d) + positions -> encoder: N x [self-attention, MLP]  -> memory (B, S, d)
    target ids (B, T) -> embedding * sqrt(d) + positions -> decoder: N x [causal self-attention,
                         cross-attention to the memory, MLP] -> generator (Linear) -> logits (B, T, V_tgt)

The encoder reads the whole source at once (bidirectional, padding hidden by a
key padding mask); the decoder predicts target token t+1 from target tokens
<= t (causal) and from every source position (cross-attention: queries from
the decoder, keys and values from the memory).

The layers are ``torch.nn.Transformer``'s twins, built with its names, so its
state dict loads unchanged; every attention is an ``nn.MultiheadAttention``
(batch-first), as in PyTorch: ``encoder.layers.0.self_attn.in_proj_weight``,
``decoder.layers.0.multihead_attn.out_proj.weight``, ``linear1``/``linear2``,
``norm1``/``norm2``/``norm3``, and the final ``encoder.norm``/``decoder.norm``
that ``nn.Transformer`` always adds. Post-LN by default, pre-LN with
``norm_first=True`` (see ``nn/blocks.py`` for the difference). Batch-first only.

Positions (``Seq2SeqConfig.positional``): "sinusoidal" or "learned" tables
added to both embeddings, or "rotary", which rotates the queries and keys of
the self-attention layers (``MultiheadAttention``'s ``rotary`` option;
cross-attention compares positions of two different sequences, so it gets
none). Lesson 14 and ``benchmarks/length_generalisation.py`` compare the
three on sequences longer than any seen in training.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..autograd import as_array
from ..nn import (
    Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear, Module, ModuleList, MultiheadAttention,
    RotaryEmbedding, SinusoidalPositionalEncoding,
)
from ..nn import functional as F
from ..nn.blocks import ACTIVATIONS
from ..rng import get_rng
from ..validation import check_fields, check_value

POSITIONALS = ("sinusoidal", "learned", "rotary")



class _Layer(Module):
    """What both layer kinds share: the feed-forward block and the residual wiring."""

    def __init__(self, d_model, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, dtype, n_sub):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.norm_first = norm_first
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.activation = ACTIVATIONS[activation]()
        for i in range(1, n_sub + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
            setattr(self, f"dropout{i}", Dropout(dropout))

    @staticmethod
    def _attend(attention, x, memory, key_padding_mask, is_causal=False, rotary=None):
        """x's queries attend to memory's keys and values (memory is x for self-attention): (B, T, d)."""
        out, _ = attention(x, memory, memory, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal, rotary=rotary)
        return out

    def _ff(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))  # (B, T, d) -> (B, T, ff) -> (B, T, d)

    def _residual(self, x, i, sublayer):
        """x + sublayer(norm_i(x)) (pre-LN) or norm_i(x + sublayer(x)) (post-LN), with dropout on the sublayer."""
        norm, drop = getattr(self, f"norm{i}"), getattr(self, f"dropout{i}")
        if self.norm_first:
            return x + drop(sublayer(norm(x)))
        return norm(x + drop(sublayer(x)))


class TransformerEncoderLayer(_Layer):
    """Bidirectional self-attention, then the MLP (``torch.nn.TransformerEncoderLayer``, batch-first)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 norm_first=False, bias=True, dtype=np.float32):
        super().__init__(d_model, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, dtype, 2)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)

    def forward(self, src, src_key_padding_mask=None, rotary=None):
        x = self._residual(src, 1, lambda h: self._attend(self.self_attn, h, h, src_key_padding_mask, rotary=rotary))
        return self._residual(x, 2, self._ff)  # (B, S, d)


class TransformerDecoderLayer(_Layer):
    """Causal self-attention, cross-attention to the memory, the MLP (``torch.nn.TransformerDecoderLayer``)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 norm_first=False, bias=True, dtype=np.float32):
        super().__init__(d_model, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, dtype, 3)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                                 dtype=dtype)

    def forward(self, tgt, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=True,
                rotary=None):
        x = self._residual(
            tgt, 1, lambda h: self._attend(self.self_attn, h, h, tgt_key_padding_mask, tgt_is_causal, rotary)
        )
        x = self._residual(x, 2, lambda h: self._attend(self.multihead_attn, h, memory, memory_key_padding_mask))
        return self._residual(x, 3, self._ff)  # (B, T, d)


class TransformerEncoder(Module):
    """``num_layers`` encoder layers, then the final LayerNorm ``norm`` (if given)."""

    def __init__(self, layers, norm=None):
        super().__init__()
        self.layers, self.norm = ModuleList(layers), norm

    def forward(self, src, src_key_padding_mask=None, rotary=None):
        for layer in self.layers:
            src = layer(src, src_key_padding_mask, rotary)
        return src if self.norm is None else self.norm(src)


class TransformerDecoder(Module):
    """``num_layers`` decoder layers, then the final LayerNorm ``norm`` (if given)."""

    def __init__(self, layers, norm=None):
        super().__init__()
        self.layers, self.norm = ModuleList(layers), norm

    def forward(self, tgt, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=True,
                rotary=None):
        for layer in self.layers:
            tgt = layer(tgt, memory, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal, rotary)
        return tgt if self.norm is None else self.norm(tgt)


class Transformer(Module):
    """``torch.nn.Transformer``'s twin (batch-first): ``transformer(src, tgt) -> (B, T, d_model)``.

    Differences: the decoder's self-attention is causal unless
    ``tgt_is_causal=False`` (PyTorch needs ``tgt_mask`` for that), masks are the
    three key padding masks (True = padding), and ``rotary`` can rotate the
    self-attention queries and keys. Initialised as PyTorch does: every matrix
    Glorot-uniform.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", layer_norm_eps=1e-5, norm_first=False, bias=True, dtype=np.float32):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"Transformer: d_model={d_model} is not divisible by nhead={nhead}")
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias, dtype)
        self.encoder = TransformerEncoder(
            [TransformerEncoderLayer(*args) for _ in range(num_encoder_layers)],
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype),
        )
        self.decoder = TransformerDecoder(
            [TransformerDecoderLayer(*args) for _ in range(num_decoder_layers)],
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype),
        )
        self.d_model, self.nhead = d_model, nhead
        rng = get_rng()
        for p in self.parameters():
            if p.ndim > 1:  # Glorot & Bengio 2010, as nn.Transformer._reset_parameters
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.data[...] = rng.uniform(-bound, bound, p.shape)

    def forward(self, src, tgt, src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                tgt_is_causal=True, rotary=None):
        if src.ndim != 3 or tgt.ndim != 3 or src.shape[0] != tgt.shape[0] or src.shape[-1] != self.d_model or \
                tgt.shape[-1] != self.d_model:
            raise ValueError(
                f"Transformer: src and tgt must be (B, S, {self.d_model}) and (B, T, {self.d_model}) with the same B, "
                f"got {src.shape} and {tgt.shape}"
            )
        memory = self.encoder(src, src_key_padding_mask, rotary)  # (B, S, d)
        return self.decoder(tgt, memory, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal, rotary)


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128
    nhead: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 512
    dropout: float = 0.0
    positional: str = "sinusoidal"
    max_len: int = 64
    norm_first: bool = True
    pad_id: int = 0

    def __post_init__(self):
        if self.positional not in POSITIONALS:
            raise ValueError(f"Seq2SeqConfig: positional must be one of {POSITIONALS}, got {self.positional!r}")
        size = (int, "[1, inf)")
        check_fields(self, {
            "src_vocab_size": size, "tgt_vocab_size": size, "d_model": size, "nhead": size, "num_encoder_layers": size,
            "num_decoder_layers": size, "dim_feedforward": size, "max_len": size, "dropout": (float, "[0, 1)"),
        })
        if self.d_model % self.nhead:
            raise ValueError(f"Seq2SeqConfig: d_model={self.d_model} is not divisible by nhead={self.nhead}")
        smallest = min(self.src_vocab_size, self.tgt_vocab_size)
        self.pad_id = check_value("Seq2SeqConfig: pad_id", self.pad_id, int, f"[0, {smallest})")  # a token of both

    def to_dict(self):
        return asdict(self)


class Seq2SeqTransformer(Module):
    """Token embeddings, positions, the ``Transformer`` and a ``generator`` head: ids in, logits out.

    ``forward(src, tgt_in, tgt_out=None, label_smoothing=0.0) -> (logits, loss)``:
    src (B, S) and tgt_in (B, T) are padded with ``pad_id``; tgt_in starts with
    <bos>, tgt_out is tgt_in shifted left (ends with <eos>); the loss ignores
    padding and can smooth the labels (Szegedy et al. 2016; the paper uses 0.1).
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        rng = get_rng()
        self.src_tok_emb = Embedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_id)
        self.tgt_tok_emb = Embedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id)
        for emb in (self.src_tok_emb, self.tgt_tok_emb):  # N(0, 1/d), so that emb * sqrt(d) has unit scale
            emb.weight.data[...] = rng.normal(0.0, c.d_model**-0.5, emb.weight.shape)
            emb.weight.data[c.pad_id] = 0
        self.rotary = None
        if c.positional == "sinusoidal":
            self.positions = SinusoidalPositionalEncoding(c.d_model, c.max_len)
        elif c.positional == "learned":
            self.src_pos = LearnedPositionalEmbedding(c.max_len, c.d_model)
            self.tgt_pos = LearnedPositionalEmbedding(c.max_len, c.d_model)
            for table in (self.src_pos, self.tgt_pos):
                table.weight.data[...] = rng.normal(0.0, 0.02, table.weight.shape)
        else:
            self.rotary = RotaryEmbedding(c.d_model // c.nhead, c.max_len)
        self.drop = Dropout(c.dropout)
        self.transformer = Transformer(
            c.d_model, c.nhead, c.num_encoder_layers, c.num_decoder_layers, c.dim_feedforward, c.dropout,
            norm_first=c.norm_first,
        )
        self.generator = Linear(c.d_model, c.tgt_vocab_size)

    def _embed(self, ids, table, side):
        x = table(ids) * math.sqrt(self.config.d_model)  # (B, T, d)
        if self.config.positional == "sinusoidal":
            x = self.positions(x)
        elif self.config.positional == "learned":
            x = getattr(self, f"{side}_pos")(x)
        return self.drop(x)

    def _ids(self, ids, name):
        ids = np.asarray(as_array(ids))
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"Seq2SeqTransformer: {name} must be (batch, length) integer ids, got {ids.shape} {ids.dtype}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"Seq2SeqTransformer: {name} has length {ids.shape[1]} > max_len={self.config.max_len}")
        return ids

    def encode(self, src):
        """The memory (B, S, d) and the source padding mask (B, S), True = padding."""
        src = self._ids(src, "src")
        padding = src == self.config.pad_id  # (B, S)
        memory = self.transformer.encoder(self._embed(src, self.src_tok_emb, "src"), padding, self.rotary)
        return memory, padding

    def decode(self, tgt_in, memory, src_padding):
        """Logits (B, T, V_tgt) for the token after each of ``tgt_in``'s, given the encoded source."""
        tgt_in = self._ids(tgt_in, "tgt_in")
        x = self._embed(tgt_in, self.tgt_tok_emb, "tgt")  # (B, T, d)
        # no tgt padding mask: causal attention never lets a real token see the padding after it
        x = self.transformer.decoder(x, memory, None, src_padding, True, self.rotary)  # (B, T, d)
        return self.generator(x)  # (B, T, V)

    def forward(self, src, tgt_in, tgt_out=None, label_smoothing=0.0):
        memory, src_padding = self.encode(src)
        logits = self.decode(tgt_in, memory, src_padding)  # (B, T, V)
        if tgt_out is None:
            return logits, None
        B, T, V = logits.shape
        tgt_out = np.asarray(as_array(tgt_out))
        if tgt_out.shape != (B, T):
            raise ValueError(f"Seq2SeqTransformer: tgt_out must have tgt_in's shape {(B, T)}, got {tgt_out.shape}")
        targets = np.where(tgt_out == self.config.pad_id, -100, tgt_out).reshape(-1)  # padding is ignored
        loss = F.cross_entropy(logits.reshape(B * T, V), targets, label_smoothing=label_smoothing)
        return logits, loss

    def optimizer_groups(self, weight_decay):
        """AdamW groups: decay on matrices (embeddings included), none on biases and norm gains."""
        decay = [p for _, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in self.named_parameters() if p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
