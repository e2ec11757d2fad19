"""The GPT of ``tinytransformer.models.gpt`` written in PyTorch, with the same names.

Same architecture, same parameter names (nanoGPT / GPT-2), so
``TorchGPT.load_state_dict`` takes our state dict and the two give the same
logits and loss. Used by the tests and by the benchmarks that race the two.
``TorchGPT.generate`` is PyTorch at its best on a CPU for the same job as ours:
a KV cache, ``scaled_dot_product_attention``, no autograd (``inference_mode``).
"""

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class KVCache:
    """One layer's keys and values so far, (B, nh, length, hs), in tensors with room for ``capacity`` positions."""

    def __init__(self, capacity):
        self.capacity, self.length = capacity, 0
        self.k = self.v = None

    def append(self, k, v):
        """Add the new positions' keys and values (B, nh, T, hs); return all of them."""
        B, nh, T, hs = k.shape
        if self.k is None:
            self.k = k.new_empty(B, nh, self.capacity, hs)
            self.v = v.new_empty(B, nh, self.capacity, hs)
        end = self.length + T
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        past, mask = 0, None
        if cache is not None:
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + T, hs)
            if past and T > 1:  # new query i sits at position past + i
                mask = torch.arange(past + T, device=x.device) <= torch.arange(past, past + T, device=x.device)[:, None]
        is_causal = past == 0 and T > 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


ACTIVATIONS = {"gelu": lambda: nn.GELU(), "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": lambda: nn.ReLU()}


class MLP(nn.Module):
    def __init__(self, n_embd, dropout, bias, activation="gelu"):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = ACTIVATIONS[activation]()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias, activation="gelu", layer_norm_eps=1e-5):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, activation)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, bias=True, activation="gelu",
                 layer_norm_eps=1e-5):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab_size, n_embd),
                wpe=nn.Embedding(block_size, n_embd),
                drop=nn.Dropout(dropout),
                h=nn.ModuleList(Block(n_embd, n_head, dropout, bias, activation, layer_norm_eps)
                                for _ in range(n_layer)),
                ln_f=nn.LayerNorm(n_embd, eps=layer_norm_eps, bias=bias),
            )
        )
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @classmethod
    def from_config(cls, config):
        """A twin of ``tinytransformer.models.GPTConfig`` (or a dict of its fields)."""
        c = config if isinstance(config, dict) else config.to_dict()
        return cls(**c)

    def load_numpy_state(self, state):
        """Load a state dict of NumPy arrays (ours) into this model, in its dtype."""
        dtype = next(self.parameters()).dtype
        self.load_state_dict({k: torch.from_numpy(np.array(v)).to(dtype) for k, v in state.items()})
        return self

    def forward(self, idx, targets=None, caches=None):
        B, T = idx.shape
        start = caches[0].length if caches else 0
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, caches[i] if caches else None)
        if targets is None:  # only the last position's logits, as ours: ln_f and lm_head on one row
            return self.lm_head(self.transformer.ln_f(x[:, -1:, :])), None
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    @torch.inference_mode()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """nanoGPT's generate with a KV cache: ``idx`` (B, T) extended by ``max_new_tokens`` tokens.

        The context is cropped to the last ``block_size`` tokens, and once it is full each token
        runs the whole context without a cache, as ``tinytransformer.generation.generate`` does,
        so the two do the same work (and, greedy, give the same tokens). Call ``eval()`` first.
        """
        caches = None
        for _ in range(max_new_tokens):
            context = idx[:, -self.block_size:]
            if use_cache and caches is not None and caches[0].length < self.block_size:
                logits, _ = self(context[:, -1:], caches=caches)  # one new position
            elif use_cache and context.size(1) < self.block_size:
                caches = [KVCache(self.block_size) for _ in self.transformer.h]  # filled from the prompt
                logits, _ = self(context, caches=caches)
            else:  # no cache, or a full context: the window slides by one, every position shifts; no cache to keep
                caches = None
                logits, _ = self(context)
            logits = logits[:, -1, :]  # (B, V)
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx
