"""Solutions to lesson 09's exercises (exercises/09_sampling.py): read them after trying.

    tinytransformer exercises check 09 --solutions
"""

import numpy as np


def top_k_filter(logits, k):
    if k >= logits.shape[-1]:
        return logits
    kth = np.sort(logits, axis=-1)[:, -k, None]  # (B, 1) the k-th largest of each row
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(probs, p):
    order = np.argsort(-probs, axis=-1)  # (B, V) the most probable first
    ranked = np.take_along_axis(probs, order, axis=-1)
    above = np.cumsum(ranked, axis=-1) - ranked  # the mass of the tokens ranked above each one
    keep = np.zeros(probs.shape, dtype=bool)
    np.put_along_axis(keep, order, above < p, axis=-1)  # back from ranks to token ids
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum(axis=-1, keepdims=True)


def sample_next_token(logits, temperature, top_k, top_p, rng):
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    probs = np.exp(z - z.max(axis=-1, keepdims=True))  # exp(-inf) = 0: filtered tokens drop out
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None:
        probs = top_p_filter(probs, top_p)
    u = rng.random((probs.shape[0], 1))  # (B, 1)
    return np.minimum((np.cumsum(probs, axis=-1) < u).sum(axis=-1), probs.shape[-1] - 1)
