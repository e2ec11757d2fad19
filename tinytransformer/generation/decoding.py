"""Decoding a sequence-to-sequence model: greedy, and beam search.

A decoder gives log-probabilities log p(y_t | y_<t, x) for the next token; a
translation is a whole sequence, scored by the sum of its tokens' log-probabilities.

    greedy        take the likeliest token at every step             one hypothesis
    beam search   keep the ``beam_size`` best-scoring prefixes,        beam_size hypotheses; beam_size=1 is greedy
                  extend each by every token, keep the best again

Greedy can commit to a token whose best continuation is poor; beam search
keeps the runner-up prefixes alive long enough to find that out (lesson 14
builds such a case). A finished hypothesis (one that wrote <eos>) stays in the
beam unchanged, competing on its score; at the end the best is chosen by
score / length^alpha (``length_penalty`` alpha; 0 = the plain sum, which
favours short outputs, 1 = the mean per token).

Both decoders take a function ``step(prefixes, rows) -> log_probs``: prefixes
(N, t) token ids, rows (N,) which source each prefix belongs to, and it
returns (N, V) log-probabilities of the next token. ``model_step`` makes one
from a ``Seq2SeqTransformer``; a test can pass a hand-made table instead.
What the outputs are worth: ``tinytransformer.metrics`` (exact match, BLEU).
"""

import numpy as np

from ..autograd import no_grad
from ..validation import check_value


def model_step(model, src):
    """A ``step`` function for ``model`` (a ``Seq2SeqTransformer``) on source ids ``src`` (B, S).

    The source is encoded once; each call runs the decoder over the prefixes
    (no cache: targets here are a dozen tokens) and keeps the last position.
    """
    with no_grad():
        memory, padding = model.encode(src)  # (B, S, d), (B, S)

    def step(prefixes, rows):
        with no_grad():
            logits = model.decode(prefixes, memory[rows], padding[rows])  # (N, t, V)
        return logits[:, -1, :].log_softmax(axis=-1).data  # (N, V)

    return step


def _check(name, n_sources, max_len):
    return (check_value(f"{name}: n_sources", n_sources, int, "[0, inf)"),
            check_value(f"{name}: max_len", max_len, int, "[1, inf)"))


def _strip(seq, eos_id):
    """Tokens after <bos>, up to (not including) the first <eos>."""
    seq = [int(t) for t in seq[1:]]
    return seq[: seq.index(eos_id)] if eos_id in seq else seq


def greedy_decode(step, n_sources, bos_id, eos_id, max_len):
    """The likeliest token at every step, for each of ``n_sources`` sources.

    Returns (outputs, scores): ``outputs[b]`` the token list without <bos>/<eos>,
    ``scores[b]`` its summed log-probability (the <eos> included, if written).
    """
    n_sources, max_len = _check("greedy_decode", n_sources, max_len)
    rows = np.arange(n_sources)
    seqs = np.full((n_sources, 1), bos_id, dtype=np.int64)  # (B, 1)
    scores = np.zeros(n_sources)
    done = np.zeros(n_sources, dtype=bool)
    for _ in range(max_len):
        log_probs = step(seqs, rows)  # (B, V)
        token = log_probs.argmax(axis=-1)  # (B,)
        token = np.where(done, eos_id, token)  # finished rows only repeat <eos>, at no cost
        scores += np.where(done, 0.0, log_probs[rows, token])
        seqs = np.concatenate([seqs, token[:, None]], axis=1)  # (B, t + 1)
        done |= token == eos_id
        if done.all():
            break
    return [_strip(s, eos_id) for s in seqs], scores


def beam_search(step, n_sources, bos_id, eos_id, max_len, beam_size=4, length_penalty=0.0):
    """Beam search for each of ``n_sources`` sources at once (see the module docstring).

    Returns (outputs, scores) like ``greedy_decode``; a score is the summed
    log-probability, and the output is the hypothesis with the best
    score / length^length_penalty (length counts the <eos>). ``beam_size`` may be
    at most the vocabulary's size (known at the first step).
    """
    n_sources, max_len = _check("beam_search", n_sources, max_len)
    beam_size = check_value("beam_search: beam_size", beam_size, int, "[1, inf)")
    length_penalty = check_value("beam_search: length_penalty", length_penalty, float)
    B, k = n_sources, beam_size
    seqs = np.full((B, 1, 1), bos_id, dtype=np.int64)  # (B, beams, t): one beam to start with
    scores = np.zeros((B, 1))  # (B, beams)
    done = np.zeros((B, 1), dtype=bool)
    for _ in range(max_len):
        n_beams = seqs.shape[1]
        rows = np.repeat(np.arange(B), n_beams)  # (B * beams,): the source of each prefix
        log_probs = step(seqs.reshape(B * n_beams, -1), rows).reshape(B, n_beams, -1)  # (B, beams, V)
        V = log_probs.shape[-1]
        if k > V:  # the bound: a wider beam keeps V, V^2, V^3, ... prefixes until memory runs out
            raise ValueError(f"beam_search: beam_size must be at most the vocabulary's size {V}, got {k}")
        log_probs = np.where(done[..., None], -np.inf, log_probs)  # a finished beam has one continuation:
        log_probs[..., eos_id] = np.where(done, 0.0, log_probs[..., eos_id])  # <eos> again, free
        candidates = (scores[..., None] + log_probs).reshape(B, n_beams * V)  # (B, beams * V)
        best = np.argsort(-candidates, axis=-1, kind="stable")[:, : min(k, n_beams * V)]  # (B, k')
        beam, token = best // V, best % V  # which beam each survivor extends, and with which token
        seqs = np.concatenate([np.take_along_axis(seqs, beam[..., None], axis=1), token[..., None]], axis=2)
        scores = np.take_along_axis(candidates, best, axis=-1)  # (B, k')
        done = np.take_along_axis(done, beam, axis=1) | (token == eos_id)
        if done.all():
            break
    lengths = np.array([[len(_strip(s, eos_id)) + (eos_id in s[1:]) for s in beams] for beams in seqs])
    ranked = scores / np.maximum(lengths, 1) ** length_penalty  # (B, k')
    pick = ranked.argmax(axis=-1)  # (B,)
    outputs = [_strip(seqs[b, pick[b]], eos_id) for b in range(B)]
    return outputs, scores[np.arange(B), pick]
