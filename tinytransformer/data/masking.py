"""BERT's masked-language-model corruption (Devlin et al. 2019, section 3.1 and appendix A.1).

A bidirectional encoder sees the whole sentence, so "predict the next token"
would be trivial for it. Instead some tokens are hidden and the model predicts
them from both sides:

    1. choose 15% of the tokens that may be chosen (not padding, not [CLS],
       [SEP] or any other special token), uniformly at random, in every row;
    2. of the chosen ones, replace 80% by [MASK], 10% by a random ordinary
       token, and leave 10% unchanged;
    3. label each chosen position with its original token, every other one
       with -100, so the loss is taken on the chosen tokens only.

Why not always [MASK]: [MASK] never occurs when the model is fine-tuned, and a
model trained only on [MASK] positions could ignore what an ordinary token
says about itself. The random and unchanged 10%s keep every input token worth
reading, since any of them might be a chosen one.

As in BERT's ``create_pretraining_data.py``, each row gets exactly
round(mask_prob * n) chosen tokens, at least one, where n is the number of its
tokens that may be chosen; so no row of a batch goes without a loss.
"""

import numpy as np

from ..validation import check_value
from .encoding import IGNORE_INDEX


def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, mask_token_prob=0.8,
                random_token_prob=0.1, ignore_index=IGNORE_INDEX):
    """``(inputs, labels)``: ``ids`` with BERT's corruption applied, and the targets of the masked-LM loss.

    ``ids`` is an integer array of token ids (T,) or (B, T), rows along the
    last axis; it is not modified. ``rng`` is a ``numpy.random.Generator``
    (the same seed gives the same corruption). ``special_ids`` lists the ids
    never chosen nor drawn as random tokens: padding, [CLS], [SEP], ...;
    ``mask_id`` is one of them whether listed or not. Of the chosen tokens,
    ``mask_token_prob`` become ``mask_id``, ``random_token_prob`` a token drawn
    uniformly from the other ids of ``range(vocab_size)``, the rest stay.
    ``labels`` holds the original id at the chosen positions and
    ``ignore_index`` elsewhere.
    """
    ids = np.asarray(ids)
    if ids.ndim < 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"mask_tokens: ids must be an integer array of shape (T,) or (B, T), got {ids.dtype} "
                         f"{ids.shape}")
    vocab_size = check_value("mask_tokens: vocab_size", vocab_size, int, "[1, inf)")
    mask_id = check_value("mask_tokens: mask_id", mask_id, int, f"[0, {vocab_size})")
    mask_prob = check_value("mask_tokens: mask_prob", mask_prob, float, "(0, 1]")
    mask_token_prob = check_value("mask_tokens: mask_token_prob", mask_token_prob, float, "[0, 1]")
    random_token_prob = check_value("mask_tokens: random_token_prob", random_token_prob, float, "[0, 1]")
    if mask_token_prob + random_token_prob > 1:
        raise ValueError(f"mask_tokens: mask_token_prob + random_token_prob must be at most 1, got "
                         f"{mask_token_prob} + {random_token_prob}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"mask_tokens: ids must lie in [0, {vocab_size}), got values in [{ids.min()}, {ids.max()}]")
    special = np.union1d(np.asarray(list(special_ids), dtype=np.int64), [mask_id])  # sorted, unique
    ordinary = np.setdiff1d(np.arange(vocab_size), special)  # the ids a random replacement is drawn from
    if ordinary.size == 0:
        raise ValueError("mask_tokens: every id of the vocabulary is special, so there is nothing to mask")

    # 1. choose round(mask_prob * n) of the n eligible tokens of each row: rank them by a random key
    eligible = ~np.isin(ids, special)  # (..., T)
    n_chosen = np.round(mask_prob * eligible.sum(axis=-1, keepdims=True))  # (..., 1)
    n_chosen = np.where(eligible.any(axis=-1, keepdims=True), np.maximum(n_chosen, 1), 0)
    keys = np.where(eligible, rng.random(ids.shape), np.inf)  # ineligible tokens rank last
    rank = np.argsort(np.argsort(keys, axis=-1), axis=-1)  # (..., T): 0 for the smallest key of each row
    chosen = eligible & (rank < n_chosen)  # (..., T)

    # 2. 80% [MASK], 10% a random ordinary token, 10% unchanged
    u = rng.random(ids.shape)
    to_mask = chosen & (u < mask_token_prob)
    to_random = chosen & (u >= mask_token_prob) & (u < mask_token_prob + random_token_prob)
    inputs = ids.copy()
    inputs[to_mask] = mask_id
    inputs[to_random] = ordinary[rng.integers(0, ordinary.size, int(to_random.sum()))]

    # 3. the loss reads the original token where one was chosen, nothing elsewhere
    labels = np.where(chosen, ids, ignore_index).astype(np.int64)
    return inputs, labels
