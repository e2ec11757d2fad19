"""GPT: a decoder-only Transformer language model (Radford et al. 2018, 2019).

    tokens (B, T) -> token embedding + position embedding        (B, T, C)
                  -> n_layer pre-LN blocks: x += attn(ln_1(x)); x += mlp(ln_2(x))
                  -> final LayerNorm ln_f -> lm_head (tied to the token embedding)
                  -> logits over the vocabulary                 (B, T, V)

Parameter names follow GPT-2 and nanoGPT (``transformer.wte``,
``transformer.h.0.attn.c_attn``, ``lm_head``, ...), so the state dict of the
same architecture written in PyTorch loads into this model unchanged, and
``GPT.from_pretrained`` / ``save_pretrained`` read and write Hugging Face's
GPT-2 folders (``hf_gpt2.py``).

``forward`` builds the autograd graph, for training; ``infer`` computes the same
logits on plain arrays, for generation (``generation/sampling.py``).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..autograd import as_array
from ..nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList, TransformerBlock
from ..nn import functional as F
from ..nn.blocks import ACTIVATIONS
from ..nn.module import skipping_init
from ..rng import get_rng
from ..validation import check_fields, check_value


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu"  # the MLP's: exact erf "gelu", or "gelu_tanh" as in GPT-2 (nn/blocks.py)
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        size = (int, "[1, inf)")
        check_fields(self, {"vocab_size": size, "block_size": size, "n_layer": size, "n_head": size, "n_embd": size,
                            "dropout": (float, "[0, 1)"), "layer_norm_eps": (float, "(0, inf)")})
        check_value("GPTConfig: activation", self.activation, None, choices=sorted(ACTIVATIONS))
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    def to_dict(self):
        return asdict(self)


class GPT(Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        c = config
        self.transformer = ModuleDict(
            {
                "wte": Embedding(c.vocab_size, c.n_embd),
                "wpe": Embedding(c.block_size, c.n_embd),
                "drop": Dropout(c.dropout),
                "h": ModuleList(
                    TransformerBlock(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias, norm_first=True, causal=True,
                                     activation=c.activation, layer_norm_eps=c.layer_norm_eps)
                    for _ in range(c.n_layer)
                ),
                "ln_f": LayerNorm(c.n_embd, eps=c.layer_norm_eps, bias=c.bias),
            }
        )
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer["wte"].weight  # weight tying (Press & Wolf 2017)
        if not skipping_init():  # inside nn.skip_init() the weights are about to be loaded: no draw
            self._init_weights()

    def _init_weights(self):
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, and the projections
        that write into the residual stream scaled by 1/sqrt(2 n_layer), so the
        residual's variance does not grow with depth."""
        rng = get_rng()
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                p.data[...] = 0
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.data[...] = 1
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else 0.02
                p.data[...] = rng.normal(0.0, std, p.shape)

    def forward(self, idx, targets=None, caches=None):
        """Logits for the next token at each position, and the loss if ``targets`` is given.

        ``idx`` holds token ids (B, T). Without targets only the last position's
        logits are computed (all that generation needs), as nanoGPT does.
        ``caches`` (one KVCache per block, see ``generation.py``) makes each
        call continue the sequence the caches already hold.
        """
        idx = as_array(idx)
        x = self.hidden_states(idx, caches=caches)  # (B, T, C)
        B, T = idx.shape
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, V)
        logits = self.lm_head(x)  # (B, T, V)
        targets = as_array(targets)
        if targets.shape != (B, T):
            raise ValueError(f"GPT: targets must have the shape of idx {(B, T)}, got {targets.shape}")
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx, key_padding_mask=None, caches=None):
        """The final LayerNorm's output at every position, (B, T, C): what a task head reads.

        ``key_padding_mask`` (B, T), True = padding, hides the padded keys from
        every query. Pad on the right: the model is causal, so the real tokens
        of a right-padded row never see its padding, and positions start at 0
        as in pretraining. ``caches`` are ``forward``'s.
        """
        idx = as_array(idx)
        pos = self._positions(idx, caches)  # (T,)
        t = self.transformer
        x = t["drop"](t["wte"](idx) + t["wpe"](pos))  # (B, T, C)
        for i, block in enumerate(t["h"]):
            x = block(x, key_padding_mask, cache=caches[i] if caches else None)  # (B, T, C)
        return t["ln_f"](x)  # (B, T, C)

    def infer(self, idx, caches=None):
        """The next token's logits after each row of ``idx`` (B, T), as an array (B, 1, V): what ``forward``
        without targets returns, computed on plain arrays. What ``generate`` runs.

        Every layer's ``infer`` does its ``forward``'s arithmetic, in the same order (the logits are
        equal bit for bit), without building the autograd graph: no Tensor, no graph node, nothing
        saved for a backward pass; and no dropout. ``caches`` are ``forward``'s.
        """
        idx = as_array(idx)
        pos = self._positions(idx, caches)  # (T,)
        t = self.transformer
        x = t["wte"].infer(idx) + t["wpe"].infer(pos)  # (B, T, C)
        for i, block in enumerate(t["h"]):
            x = block.infer(x, caches[i] if caches else None)  # (B, T, C)
        x = t["ln_f"].infer(x[:, -1:, :])  # (B, 1, C): only the last position's logits are needed
        return self.lm_head.infer(x)  # (B, 1, V)

    def _positions(self, idx, caches):
        """The positions of the tokens ``idx`` (B, T), after the ones the caches hold, checked against block_size."""
        if idx.ndim != 2:
            raise ValueError(f"GPT: idx must have shape (batch, time), got {idx.shape}")
        start = caches[0].length if caches else 0
        if start + idx.shape[1] > self.config.block_size:
            raise ValueError(
                f"GPT: sequence of length {start + idx.shape[1]} is longer than block_size={self.config.block_size}"
            )
        return np.arange(start, start + idx.shape[1])

    @classmethod
    def from_pretrained(cls, name_or_path, dtype=np.float32) -> "GPT":
        """A GPT-2 from a Hugging Face folder (config.json + model.safetensors) or a hub name such as "gpt2",
        in eval mode: ``hf_gpt2.load_gpt2``."""
        from .hf_gpt2 import load_gpt2  # here, not at the top: hf_gpt2 builds GPTs, so it imports this module

        return load_gpt2(name_or_path, dtype=dtype)

    def save_pretrained(self, folder, tokenizer=None, overwrite=False):
        """Write this GPT (and a BPE tokenizer, if given) as a Hugging Face GPT-2 folder: ``hf_gpt2.save_gpt2``."""
        from .hf_gpt2 import save_gpt2

        return save_gpt2(self, folder, tokenizer=tokenizer, overwrite=overwrite)

    def optimizer_groups(self, weight_decay):
        """Parameter groups for AdamW: decay on matrices (2-D weights, embeddings
        included), none on biases and norm gains, as nanoGPT does."""
        decay = [p for _, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in self.named_parameters() if p.ndim < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
