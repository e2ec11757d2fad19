"""Exercises for lesson 09, generation: top-k and top-p filtering, and drawing the next token.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 09

The solutions are in exercises/solutions/09_sampling.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def top_k_filter(logits, k):
    """Keep each row's k largest logits; set the others to -inf (np.inf with a minus sign, not a large number).

    logits: (B, V); k >= 1. Returns (B, V). A logit equal to the row's k-th largest stays (so a tie may
    keep more than k); k >= V keeps everything. (np.sort or np.partition find the k-th largest.)
    """
    raise NotImplementedError


def top_p_filter(probs, p):
    """Nucleus (top-p) filtering (Holtzman et al. 2020): keep each row's most probable tokens, renormalised.

    probs: (B, V), each row sums to 1; 0 < p <= 1. Returns (B, V): the probabilities of the smallest set of
    the most probable tokens whose mass reaches p, divided by that mass, and 0 for every other token.
    In other words, a token stays when the tokens ranked above it hold less than p in all, so the most
    probable token always stays. (np.argsort(-probs, axis=-1) ranks them.)
    """
    raise NotImplementedError


def sample_next_token(logits, temperature, top_k, top_p, rng):
    """Draw one token id per row of logits (B, V) with a temperature, then top-k, then top-p (None: not used).

    temperature == 0 means greedy: the argmax of each row. Otherwise:

        z = logits / temperature;  top-k on z if top_k is given
        probs = softmax(z) per row;  top-p on probs if top_p is given
        u = rng.random((B, 1))       one uniform number per row, drawn exactly once in this call
        the token: the number of entries of the row's cumulative sum of probs that are < u
                   (at most V - 1, in case rounding leaves the total a hair under u)

    rng: a np.random.Generator. Returns an integer array (B,).
    """
    raise NotImplementedError
