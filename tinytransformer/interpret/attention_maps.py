"""Attention maps: the probabilities each head of each layer puts on earlier tokens.

For block l and head h, with x_{l-1} the residual stream entering the block
(see ``logit_lens.residual_stream``):

    q, k = split(c_attn(ln_1(x_{l-1})))           (T, C) each, then (nh, T, hs)
    A[l, h] = softmax(q_h k_h^T / sqrt(hs) + causal mask)      (T, T)

Nothing here recomputes that: the attention layer records what it computed
(``CausalSelfAttention.record``, ``last_weights``) while the model runs.

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
from .logit_lens import residual_stream


def _recorded(layers, run):
    """Run ``run()`` with every attention layer in ``layers`` recording; return what each recorded."""
    for layer in layers:
        layer.record = True
    try:
        run()
        return [layer.last_weights for layer in layers]
    finally:
        for layer in layers:
            layer.record, layer.last_weights = False, None


def head_attention(block, x):
    """The attention probabilities of one ``TransformerBlock`` on its input x (B, T, C): an array (B, nh, T, T)."""
    with no_grad():
        (weights,) = _recorded([block.attn], lambda: block(x))
    return weights


def attention_maps(model, idx):
    """Every layer's and head's attention probabilities for one sequence ``idx`` ((T,) or (1, T)).

    Returns an array (n_layer, n_head, T, T); ``maps[l, h, i, j]`` is how much
    query i attends to key j in head h of block l (0-based).
    """
    layers = [block.attn for block in model.transformer["h"]]
    maps = _recorded(layers, lambda: residual_stream(model, idx))  # n_layer arrays (1, nh, T, T)
    return np.stack([m[0] for m in maps])  # (n_layer, nh, T, T)
