"""Greedy decoding and beam search over hand-made step functions: a case where beam search beats greedy,
and a beam of one that is greedy."""

import math

import numpy as np

from tinytransformer.generation import beam_search, greedy_decode

def table_step(table):
    """A step function from a dict: prefix (tuple of ids after <bos>) -> next-token probabilities."""
    def step(prefixes, rows):
        return np.log(np.array([table[tuple(p[1:])] for p in prefixes]))
    return step


# bos=0, eos=1, tokens 2 ("a") and 3 ("b"). Greedy takes "a" (0.6), whose continuations are all 0.5 at best;
# "b" (0.4) is followed by <eos> with probability 0.9: 0.4 * 0.9 = 0.36 > 0.6 * 0.5 = 0.30.
TRAP = {
    (): [1e-9, 1e-9, 0.6, 0.4],
    (2,): [1e-9, 0.5, 0.25, 0.25],
    (3,): [1e-9, 0.9, 0.05, 0.05],
}


def test_beam_search_finds_a_likelier_sequence_than_greedy():
    greedy, greedy_score = greedy_decode(table_step(TRAP), 1, 0, 1, max_len=2)
    beam, beam_score = beam_search(table_step(TRAP), 1, 0, 1, max_len=2, beam_size=2)
    assert greedy == [[2]] and beam == [[3]]
    assert math.isclose(greedy_score[0], math.log(0.3)) and math.isclose(beam_score[0], math.log(0.36))


def test_beam_of_one_is_greedy(rng):
    V, bos, eos = 6, 0, 1
    weights = rng.standard_normal((4, 3, V))  # the next token's scores depend on the source, the length, the last token

    def step(prefixes, rows):
        z = weights[rows, (prefixes.shape[1] - 1) % 3] + 0.5 * prefixes[:, -1:]
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    for max_len in (1, 4, 9):
        greedy, g_scores = greedy_decode(step, 4, bos, eos, max_len)
        beam, b_scores = beam_search(step, 4, bos, eos, max_len, beam_size=1)
        assert greedy == beam
        np.testing.assert_allclose(g_scores, b_scores)
    wide, w_scores = beam_search(step, 4, bos, eos, 9, beam_size=4)
    assert np.all(w_scores >= g_scores - 1e-12)  # a wider beam never ends with a worse sum
