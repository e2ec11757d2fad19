"""Attention maps: the probabilities each head of each layer puts on earlier tokens.

For block l and head h, with x_{l-1} the residual stream entering the block
(see ``logit_lens.residual_stream``):

    q, k = split(c_attn(ln_1(x_{l-1})))           (T, C) each, then (nh, T, hs)
    A[l, h] = softmax(q_h k_h^T / sqrt(hs) + causal mask)      (T, T)

Row i of A[l, h] is how query position i shares its attention among the keys
j <= i: it sums to 1, and the entries above the diagonal are exactly 0.

What a map can and cannot tell. It shows where a head *reads* from, not what
it reads nor what it writes: a head may put most of its weight on a token
whose value vector is nearly zero (attending to the first token is a common
"no-op"), and the output still passes through c_proj, the MLP and later
layers. Attention weights are not explanations (Jain & Wallace 2019); they are
a place to start looking.
"""

import numpy as np

from ..autograd import no_grad
from ..nn.attention import attention_weights
from .logit_lens import residual_stream


def head_attention(block, x):
    """The attention probabilities of one ``TransformerBlock`` on its input x (B, T, C): (B, nh, T, T)."""
    attn = block.attn
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    h = block.ln_1(x) if block.norm_first else x  # pre-LN reads a normalised stream, post-LN the raw one
    q, k, _ = attn.c_attn(h).split(C, axis=2)  # 3 x (B, T, C)
    q = q.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    k = k.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    return attention_weights(q, k, is_causal=attn.causal)  # (B, nh, T, T)


def attention_maps(model, idx):
    """Every layer's and head's attention probabilities for one sequence ``idx`` ((T,) or (1, T)).

    Returns an array (n_layer, n_head, T, T); ``maps[l, h, i, j]`` is how much
    query i attends to key j in head h of block l (0-based).
    """
    stream = residual_stream(model, idx)  # n_layer + 1 tensors (1, T, C)
    with no_grad():
        maps = [head_attention(block, x).data[0] for block, x in zip(model.transformer["h"], stream)]  # (nh, T, T)
    return np.stack(maps)  # (n_layer, nh, T, T)
