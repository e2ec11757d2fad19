"""Checks of exercises/05_attention.py: a causal mask, a padding mask, single-head attention with both.

Held to ``nn.attention.causal_mask``, to the mask ``data.batching.pad`` makes, and to the library's
``scaled_dot_product_attention`` with the two masks combined in its convention (True = may attend).
"""

import numpy as np

from ..autograd import Tensor
from ..data.batching import pad
from ..nn.attention import causal_mask, scaled_dot_product_attention
from .checking import Check, ExerciseFailure, expect_close, expect_equal, shapes

# (n_queries, n_keys): square, one by one, more keys than queries, fewer
MASK_SIZES = [(4, 4), (1, 1), (3, 5), (5, 3)]


def check_causal_mask(learner):
    for n_queries, n_keys in MASK_SIZES:
        case = f"for n_queries={n_queries}, n_keys={n_keys}"
        expect_equal("the mask", learner(n_queries, n_keys), causal_mask(n_queries, n_keys), case)


LENGTHS = [[3, 1, 2], [4], [1, 1], [2, 0, 3]]


def check_padding_mask(learner):
    for lengths in LENGTHS:
        case = f"for lengths {lengths}"
        _, want = pad([[0] * n for n in lengths])
        expect_equal("the mask", learner(np.array(lengths)), want, case, source="data.batching.pad's")


# (B, L, S, E, Ev, causal, lengths of the key sequences or None)
ATTENTION_CASES = [
    (2, 3, 5, 4, 6, False, None),
    (1, 4, 4, 8, 8, True, None),
    (2, 5, 5, 4, 3, False, [3, 5]),
    (3, 4, 4, 2, 2, True, [4, 2, 1]),
    (2, 3, 2, 4, 4, False, [0, 2]),  # the first sequence is all padding: its rows must be zeros, not NaN
    (1, 1, 1, 1, 1, False, None),
]


def _as_floats(got):
    """``got`` as a float64 array, or None when it is not one (``expect_close`` then says what it is)."""
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def check_attention(attention):
    rng = np.random.default_rng(10)
    for B, L, S, E, Ev, causal, lengths in ATTENTION_CASES:
        q, k, v = rng.standard_normal((B, L, E)), rng.standard_normal((B, S, E)), rng.standard_normal((B, S, Ev))
        attn_mask = causal_mask(L, S) if causal else None
        padding = np.arange(S)[None, :] >= np.array(lengths)[:, None] if lengths is not None else None  # (B, S)
        keep = np.ones((B, L, S), dtype=bool)
        if attn_mask is not None:
            keep &= attn_mask
        if padding is not None:
            keep &= ~padding[:, None, :]
        masks = ", a causal attn_mask" if causal else ""
        masks += f", key_padding_mask for lengths {lengths}" if lengths is not None else ""
        case = shapes(q=q, k=k, v=v) + masks
        got = attention(q.copy(), k.copy(), v.copy(), attn_mask=attn_mask, key_padding_mask=padding)
        got_array = _as_floats(got)
        if got_array is not None and got_array.shape == (B, L, Ev) and np.isnan(got_array).any():
            where = tuple(int(i) for i in np.argwhere(np.isnan(got_array))[0])
            hint = (": a row whose keys are all masked must give zeros (its softmax has nothing to sum)"
                    if not keep[where[:2]].any() else "")
            raise ExerciseFailure(f"the output holds NaN, first at index {where}{hint}, {case}")
        want = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), attn_mask=keep).data
        expect_close("the output", got, want, case)


CHECKS = [
    Check("causal_mask", check_causal_mask),
    Check("padding_mask", check_padding_mask),
    Check("attention", check_attention),
]
