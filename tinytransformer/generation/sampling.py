"""Sampling text from a language model: strategies, and the KV cache that makes each token cheap.

A language model gives logits z over the vocabulary for the next token; we
turn them into a choice:

    greedy        argmax z                          (temperature=0)
    temperature   sample from softmax(z / tau)      tau < 1 sharpens, tau > 1 flattens
    top-k         keep the k largest logits, sample among them
    top-p         keep the smallest set of tokens whose probability adds up to
                  at least p (nucleus sampling, Holtzman et al. 2020), sample among them

Without a cache every new token re-runs the model over the whole context:
O(T) positions per token. A KV cache keeps each layer's keys and values, so a
new token costs one position; only the new query attends over the cached keys.
Until the context is full, that is: past block_size the window slides, every
position shifts, and with learned positions every key and value changes, so
each further token runs the whole (cropped) context again.

Nothing here is ever differentiated, so ``generate`` runs the model's ``infer``
(a GPT's: the same arithmetic as ``forward``, on plain arrays) rather than
``forward``, which builds an autograd graph (Tensors, graph nodes, the arrays a
backward pass would need) for every layer of every token, even under
``no_grad``. The tokens are the same (``use_graph=True`` runs ``forward``, to
check); at the small sizes of docs/speed.md the inference path is 1.3-1.6x faster.
"""

import numpy as np

from ..autograd import no_grad
from ..nn import KVCache
from ..rng import get_rng
from ..validation import check_value


def _check_sampling(name, temperature, top_k, top_p):
    """The sampling settings, checked (top_k=2.0 -> 2): a NaN temperature would always pick token 0."""
    return (check_value(f"{name}: temperature", temperature, float, "[0, inf)"),
            check_value(f"{name}: top_k", top_k, int, "[1, inf)", optional=True),
            check_value(f"{name}: top_p", top_p, float, "(0, 1]", optional=True))


def top_k_filter(logits, k) -> np.ndarray:
    """The logits (B, V) with all but each row's ``k`` largest set to -inf (a tie with the k-th largest stays)."""
    if k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k, None]  # (B, 1) the k-th largest logit
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(probs, p) -> np.ndarray:
    """The probabilities (B, V) of each row's nucleus, renormalised; 0 outside it (Holtzman et al. 2020).

    The nucleus is the smallest set of the most probable tokens whose mass reaches ``p``: a token stays
    when the tokens ranked above it hold less than ``p``, so the most probable one always stays.
    """
    if p >= 1:
        return probs
    order = np.argsort(-probs, axis=-1)  # (B, V) most probable first
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p  # mass of the tokens ranked above
    keep = np.zeros(probs.shape, dtype=bool)
    np.put_along_axis(keep, order, before < p, axis=-1)
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum(axis=-1, keepdims=True)


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, rng=None) -> np.ndarray:
    """One token id per row of ``logits`` (B, V)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"sample_next_token: logits must have shape (batch, vocab), got {logits.shape}")
    temperature, top_k, top_p = _check_sampling("sample_next_token", temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(axis=-1)
    rng = rng if rng is not None else get_rng()
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    probs = np.exp(z - z.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None:
        probs = top_p_filter(probs, top_p)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((np.cumsum(probs, axis=-1) < u).sum(axis=-1), probs.shape[-1] - 1)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, use_cache=True,
             use_graph=False):
    """Extend each row of ``idx`` (B, T) by ``max_new_tokens`` sampled tokens.

    Prompts longer than the model's ``block_size`` are cropped to their last
    ``block_size`` tokens. ``seed`` makes sampling repeatable; the cached and
    uncached paths give the same tokens. The model runs its ``infer`` (no autograd
    graph) when it has one; ``use_graph=True`` runs ``forward`` under ``no_grad``
    instead, the graph path, which gives the same tokens, more slowly: kept to check
    one against the other.
    """
    max_new_tokens = check_value("generate: max_new_tokens", max_new_tokens, int, "[0, inf)")
    temperature, top_k, top_p = _check_sampling("generate", temperature, top_k, top_p)
    seed = check_value("generate: seed", seed, int, "[0, inf)", optional=True)
    idx = np.asarray(idx, dtype=np.int64)
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"generate: idx must be a non-empty (batch, time) array of token ids, got shape {idx.shape}")
    rng = np.random.default_rng(seed) if seed is not None else get_rng()
    block_size = model.config.block_size
    if hasattr(model, "infer") and not use_graph:
        next_logits = model.infer  # (B, 1, V) arrays
    else:
        next_logits = lambda context, caches=None: model(context, caches=caches)[0].data  # (B, 1, V)
    B, T = idx.shape
    out = np.empty((B, T + max_new_tokens), dtype=np.int64)  # the prompt, then each new token written in place
    out[:, :T] = idx
    was_training = model.training
    model.eval()
    caches = None
    try:
        with no_grad():
            for t in range(T, T + max_new_tokens):
                context = out[:, max(0, t - block_size) : t]  # (B, <= block_size): the cropped context
                if use_cache and caches is not None and caches[0].length < block_size:
                    logits = next_logits(context[:, -1:], caches=caches)  # one new position
                elif use_cache and context.shape[1] < block_size:
                    # fill the caches from the prompt
                    # a recurrent model keeps its own state instead of keys and values (models/rnn_lm.py)
                    caches = model.new_caches() if hasattr(model, "new_caches") else [
                        KVCache(capacity=block_size) for _ in range(model.config.n_layer)
                    ]
                    logits = next_logits(context, caches=caches)
                else:
                    # no cache, or a full context: the next token slides the window by one, which shifts
                    # every position (learned positions), so every key and value changes: the whole
                    # context runs again, and a cache filled now would be thrown away unread
                    caches = None
                    logits = next_logits(context)
                out[:, t] = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, rng)
    finally:
        model.train(was_training)
    return out
