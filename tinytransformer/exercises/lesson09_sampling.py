"""Checks of exercises/09_sampling.py: top-k and top-p filtering, and drawing the next token.

Held to ``generation.sampling``: ``top_k_filter``, ``top_p_filter`` and ``sample_next_token``, the last
with generators seeded alike, so the same uniform numbers meet both.
"""

import numpy as np

from ..generation.sampling import sample_next_token, top_k_filter, top_p_filter
from .checking import Check, expect_close, expect_equal, shapes

# (logits, k): a batch, k = V (everything stays), k = 1, ties with the k-th largest, k > V, one token
TOP_K_CASES = [
    (np.random.default_rng(14).standard_normal((2, 10)), 3),
    (np.random.default_rng(15).standard_normal((1, 5)), 5),
    (np.random.default_rng(16).standard_normal((3, 4)), 1),
    (np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 1.0, 1.0, 1.0]]), 2),
    (np.random.default_rng(17).standard_normal((2, 5)), 7),
    (np.array([[0.5]]), 1),
]


def check_top_k_filter(learner):
    for logits, k in TOP_K_CASES:
        case = f"{shapes(logits=logits)}, k={k}"
        expect_close("the filtered logits", learner(logits.copy(), k), top_k_filter(logits, k), case,
                     atol=1e-12, rtol=1e-12)


def _probs(rng, shape, scale=2.0):
    z = scale * rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# (probs, p): a batch at several p, a token that alone holds more than p, p = 1 (nothing dropped), one token
TOP_P_CASES = [
    (_probs(np.random.default_rng(18), (3, 8)), 0.5),
    (_probs(np.random.default_rng(19), (2, 6)), 0.9),
    (_probs(np.random.default_rng(20), (2, 6), scale=6.0), 0.3),
    (_probs(np.random.default_rng(21), (1, 5)), 1.0),
    (np.array([[0.1, 0.6, 0.3]]), 0.6),
    (np.array([[1.0]]), 0.5),
]


def check_top_p_filter(learner):
    for probs, p in TOP_P_CASES:
        case = f"{shapes(probs=probs)}, p={p}"
        expect_close("the filtered probabilities", learner(probs.copy(), p), top_p_filter(probs, p), case,
                     atol=1e-12, rtol=1e-9)


# (temperature, top_k, top_p): plain sampling, sharper with top-k, flatter with top-p, both, greedy
SAMPLING = [(1.0, None, None), (0.7, 3, None), (1.3, None, 0.8), (1.0, 2, 0.5), (0.0, None, None)]


def check_sample_next_token(learner):
    logits = 1.5 * np.random.default_rng(22).standard_normal((4, 9))
    for temperature, top_k, top_p in SAMPLING:
        for seed in range(6):
            case = f"{shapes(logits=logits)}, temperature={temperature}, top_k={top_k}, top_p={top_p}, " \
                   f"rng=np.random.default_rng({seed})"
            got = learner(logits.copy(), temperature, top_k, top_p, np.random.default_rng(seed))
            want = sample_next_token(logits, temperature, top_k, top_p, np.random.default_rng(seed))
            expect_equal("the token ids", got, want, case)


CHECKS = [
    Check("top_k_filter", check_top_k_filter),
    Check("top_p_filter", check_top_p_filter),
    Check("sample_next_token", check_sample_next_token),
]
