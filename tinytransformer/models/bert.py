"""BERT: a bidirectional Transformer encoder pretrained as a masked language model (Devlin et al. 2019).

    tokens (B, T) -> token + position + token-type embeddings -> LayerNorm -> dropout     (B, T, C)
                  -> n_layer post-LN blocks:  x = LN(x + attn(x));  x = LN(x + ffn(x))     (B, T, C)
                  -> MLM head: dense -> GELU -> LayerNorm -> decoder (tied to the token
                     embedding) + its own bias -> logits over the vocabulary             (B, T, V)

What differs from GPT (``models/gpt.py``):

- attention is bidirectional: every position sees every real token, before and
  after it; only ``key_padding_mask`` (B, T), True = padding, hides keys;
- post-LN, as in Vaswani et al. 2017: the LayerNorm comes after each residual
  sum (eps 1e-12), and the embeddings are normalised too;
- the feed-forward network uses the exact GELU, x Phi(x) with Phi written with erf;
- the objective: predict the tokens that ``data/masking.py`` hid (15% of them,
  80% shown as [MASK], 10% as a random token, 10% unchanged), with the
  cross-entropy taken only where the label is not -100.

Parameter names are those of Hugging Face's ``BertForMaskedLM``, tied weights
listed under both their names as ``state_dict`` does there, so a state dict
moves either way unchanged (``tests/models/test_bert.py``):

    ours.load_state_dict({k: v.numpy() for k, v in hf_model.state_dict().items()})
    hf_model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})

``BertConfig.to_hf_config()`` gives the keyword arguments of ``transformers.BertConfig``.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..autograd import as_array, gelu
from ..data.encoding import IGNORE_INDEX  # the label of a position the loss skips, -100 as in PyTorch
from ..nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList, Parameter
from ..nn import functional as F
from ..nn.attention import scaled_dot_product_attention
from ..rng import get_rng
from ..validation import check_fields, check_value

INIT_STD = 0.02  # BERT's initializer_range: every weight matrix starts N(0, 0.02)


@dataclass
class BertConfig:
    vocab_size: int = 65
    block_size: int = 64  # Hugging Face's max_position_embeddings: the longest sequence
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    intermediate_size: int | None = None  # the feed-forward width; None: 4 n_embd, as in BERT
    dropout: float = 0.1  # on embeddings, attention probabilities and both sub-layer outputs, as in BERT
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2  # segments A and B of a sentence pair
    pad_id: int | None = 0  # this token's embedding row starts at zero and gets no gradient from the lookup

    def __post_init__(self):
        size = (int, "[1, inf)")
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.n_embd
        check_fields(self, {"vocab_size": size, "block_size": size, "n_layer": size, "n_head": size, "n_embd": size,
                            "intermediate_size": size, "type_vocab_size": size, "dropout": (float, "[0, 1)"),
                            "layer_norm_eps": (float, "(0, inf)")})
        self.pad_id = check_value("BertConfig: pad_id", self.pad_id, int, f"[0, {self.vocab_size})", optional=True)
        if self.n_embd % self.n_head:
            raise ValueError(f"BertConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    def to_dict(self):
        return asdict(self)

    def to_hf_config(self) -> dict:
        """The keyword arguments of ``transformers.BertConfig`` for the same architecture."""
        return dict(vocab_size=self.vocab_size, hidden_size=self.n_embd, num_hidden_layers=self.n_layer,
                    num_attention_heads=self.n_head, intermediate_size=self.intermediate_size, hidden_act="gelu",
                    hidden_dropout_prob=self.dropout, attention_probs_dropout_prob=self.dropout,
                    max_position_embeddings=self.block_size, type_vocab_size=self.type_vocab_size,
                    layer_norm_eps=self.layer_norm_eps, pad_token_id=self.pad_id, initializer_range=INIT_STD)

    @classmethod
    def from_hf_config(cls, hf: dict) -> "BertConfig":
        """The config of a Hugging Face BERT (its ``config.json`` as a dict, or ``BertConfig.to_dict()``)."""
        if hf.get("hidden_act", "gelu") != "gelu" or hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("BertConfig.from_hf_config: only hidden_act='gelu' with absolute positions is supported")
        if hf.get("hidden_dropout_prob", 0.1) != hf.get("attention_probs_dropout_prob", 0.1):
            raise ValueError("BertConfig.from_hf_config: this model has one dropout rate; the two given differ")
        return cls(vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"],
                   n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"], n_embd=hf["hidden_size"],
                   intermediate_size=hf["intermediate_size"], dropout=hf.get("hidden_dropout_prob", 0.1),
                   layer_norm_eps=hf.get("layer_norm_eps", 1e-12), type_vocab_size=hf.get("type_vocab_size", 2),
                   pad_id=hf.get("pad_token_id"))


class BertEmbeddings(Module):
    """x_t = dropout(LayerNorm(E_token[id_t] + E_position[t] + E_type[type_t])), positions 0..T-1."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.position_embeddings = Embedding(c.block_size, c.n_embd)
        self.token_type_embeddings = Embedding(c.type_vocab_size, c.n_embd)
        self.LayerNorm = LayerNorm(c.n_embd, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.dropout)

    def forward(self, idx, token_type_ids):
        T = idx.shape[1]
        x = self.word_embeddings(idx) + self.position_embeddings(np.arange(T))  # (B, T, C) + (T, C)
        x = x + self.token_type_embeddings(token_type_ids)  # (B, T, C)
        return self.dropout(self.LayerNorm(x))  # (B, T, C)


class BertLayer(Module):
    """One post-LN encoder block over x (B, T, C):

        a = softmax(Q K^T / sqrt(hs) + padding mask) V, per head, heads concatenated   (B, T, C)
        x = LayerNorm(x + dropout(dense(a)))
        x = LayerNorm(x + dropout(W_2 GELU(W_1 x + b_1) + b_2))

    The sub-modules sit where Hugging Face puts them (``attention.self.query``,
    ``attention.output.dense``, ``intermediate.dense``, ``output.LayerNorm``, ...).
    """

    def __init__(self, c: BertConfig):
        super().__init__()
        C, eps = c.n_embd, c.layer_norm_eps
        self.n_head, self.attention_dropout = c.n_head, c.dropout  # the fused attention op takes its own p
        self.attention = ModuleDict({
            "self": ModuleDict({"query": Linear(C, C), "key": Linear(C, C), "value": Linear(C, C)}),
            "output": ModuleDict({"dense": Linear(C, C), "LayerNorm": LayerNorm(C, eps=eps)}),
        })
        self.intermediate = ModuleDict({"dense": Linear(C, c.intermediate_size)})
        self.output = ModuleDict({"dense": Linear(c.intermediate_size, C), "LayerNorm": LayerNorm(C, eps=eps)})
        self.dropout = Dropout(c.dropout)

    def forward(self, x, keep=None):
        """``keep`` (B, 1, 1, T), True = a real key (the functional op's convention), or None: all real."""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        heads, out = self.attention.self, self.attention.output
        q = heads.query(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = heads.key(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = heads.value(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        p = self.attention_dropout if self.training else 0.0
        a = scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)  # (B, nh, T, hs), not causal
        a = a.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        x = out.LayerNorm(x + self.dropout(out.dense(a)))  # (B, T, C)
        h = gelu(self.intermediate.dense(x))  # (B, T, intermediate_size), exact GELU
        return self.output.LayerNorm(x + self.dropout(self.output.dense(h)))  # (B, T, C)


class Bert(Module):
    """The encoder: embeddings, then ``n_layer`` bidirectional post-LN blocks; names of Hugging Face's ``BertModel``
    (without its pooler, as ``BertForMaskedLM`` has none)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = ModuleDict({"layer": ModuleList(BertLayer(config) for _ in range(config.n_layer))})

    def forward(self, idx, key_padding_mask=None, token_type_ids=None):
        """Hidden states (B, T, C) for token ids ``idx`` (B, T).

        ``key_padding_mask`` (B, T), True = padding, hides those keys from every
        query, so a real token's state does not depend on the padding (the
        padded positions get states too; ignore them). ``token_type_ids`` (B, T)
        are the segment ids, all 0 when None.
        """
        idx = as_array(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"Bert: idx must be integer token ids of shape (batch, time), got {idx.dtype} {idx.shape}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"Bert: sequence of length {T} is longer than block_size={self.config.block_size}")
        types = np.zeros_like(idx) if token_type_ids is None else as_array(token_type_ids)
        if types.shape != (B, T):
            raise ValueError(f"Bert: token_type_ids must have the shape of idx {(B, T)}, got {types.shape}")
        keep = None  # True = take part, the convention of scaled_dot_product_attention
        if key_padding_mask is not None:
            padding = np.asarray(as_array(key_padding_mask), dtype=bool)
            if padding.shape != (B, T):
                raise ValueError(f"Bert: key_padding_mask must have the shape of idx {(B, T)}, got {padding.shape}")
            keep = ~padding[:, None, None, :]  # (B, 1, 1, T): the same keys hidden for every head and query
        x = self.embeddings(idx, types)  # (B, T, C)
        for layer in self.encoder.layer:
            x = layer(x, keep)  # (B, T, C)
        return x


class BertLMPredictionHead(Module):
    """logits = LayerNorm(GELU(dense(h))) E^T + b: the tied decoder reads each state back against every token's
    embedding E (V, C); the bias b (V,) is the head's own (``cls.predictions.bias``, also ``decoder.bias``)."""

    def __init__(self, c: BertConfig, word_embeddings):
        super().__init__()
        self.transform = ModuleDict({"dense": Linear(c.n_embd, c.n_embd),
                                     "LayerNorm": LayerNorm(c.n_embd, eps=c.layer_norm_eps)})
        self.decoder = Linear(c.n_embd, c.vocab_size)
        self.bias = Parameter(np.zeros(c.vocab_size, dtype=np.float32))
        self.decoder.weight = word_embeddings  # weight tying (Press & Wolf 2017), as in BERT
        self.decoder.bias = self.bias  # one vector under Hugging Face's two names

    def forward(self, h):
        h = self.transform.LayerNorm(gelu(self.transform.dense(h)))  # (..., C)
        return self.decoder(h)  # (..., V)


class BertForMaskedLM(Module):
    """The encoder with its masked-language-model head: ``bert.*`` and ``cls.predictions.*``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.cls = ModuleDict({"predictions": BertLMPredictionHead(config, self.bert.embeddings.word_embeddings.weight)})
        self._init_weights()

    def _init_weights(self):
        """BERT's initialisation: N(0, 0.02) for every weight matrix and embedding, zero biases,
        LayerNorm gains 1, and the padding token's embedding row 0."""
        rng = get_rng()
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.data[...] = 0
            elif name.endswith("LayerNorm.weight"):
                p.data[...] = 1
            else:
                p.data[...] = rng.normal(0.0, INIT_STD, p.shape)
        if self.config.pad_id is not None:
            self.bert.embeddings.word_embeddings.weight.data[self.config.pad_id] = 0

    def hidden_states(self, idx, key_padding_mask=None, token_type_ids=None):
        """The encoder's output (B, T, C), what a fine-tuning head reads (see ``Bert.forward``)."""
        return self.bert(idx, key_padding_mask, token_type_ids)

    def forward(self, idx, key_padding_mask=None, labels=None, token_type_ids=None):
        """Logits (B, T, V) at every position, and the loss if ``labels`` (B, T) is given.

        The loss is the mean cross-entropy over the positions whose label is not
        -100 (the tokens ``data.masking.mask_tokens`` chose); NaN if there is
        none, as in PyTorch. ``masked_lm_loss`` gives the same number faster.
        """
        logits = self.cls.predictions(self.hidden_states(idx, key_padding_mask, token_type_ids))  # (B, T, V)
        if labels is None:
            return logits, None
        B, T, V = logits.shape
        labels = self._check_labels(labels, (B, T))
        return logits, F.cross_entropy(logits.reshape(B * T, V), labels.reshape(-1), ignore_index=IGNORE_INDEX)

    def masked_lm_loss(self, idx, key_padding_mask, labels, token_type_ids=None):
        """``forward``'s loss, with the head run only at the labelled positions; ``forward``'s
        arguments in its order, so ``model.masked_lm_loss(*batch)`` replaces ``model(*batch)[1]``.

        As in BERT's own code: with 15% of the positions labelled, the vocabulary
        projection, usually the costliest matrix product of a small model, does
        about a seventh of the work.
        """
        h = self.hidden_states(idx, key_padding_mask, token_type_ids)  # (B, T, C)
        B, T, C = h.shape
        labels = self._check_labels(labels, (B, T)).reshape(-1)  # (B*T,)
        rows = np.flatnonzero(labels != IGNORE_INDEX)  # (N,): the chosen positions, N ~ 0.15 B T
        logits = self.cls.predictions(h.reshape(B * T, C)[rows])  # (N, V)
        return F.cross_entropy(logits, labels[rows])

    def _check_labels(self, labels, shape):
        labels = as_array(labels)
        if labels.shape != shape:
            raise ValueError(f"BertForMaskedLM: labels must have the shape of idx {shape}, got {labels.shape}")
        return labels

    def optimizer_groups(self, weight_decay):
        """Parameter groups for AdamW: decay on matrices (2-D weights, embeddings included), none on
        biases and LayerNorm gains, as BERT does."""
        decay = [p for _, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in self.named_parameters() if p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
