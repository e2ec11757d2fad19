r"""The linear-chain conditional random field (CRF): a tagger's output layer that scores whole tag sequences.

A softmax tags every word on its own, so nothing stops it from writing
``O I-person``, a span that never began. A CRF (Lafferty et al. 2001; on top
of a neural network, Collobert et al. 2011 and Lample et al. 2016) adds a
learned score for every pair of neighbouring tags and normalises over whole
sequences. For emissions e (T, K) from the network, a tag sequence y of length T:

    score(y) = start[y_0] + sum_{t=0}^{T-1} e_t[y_t] + sum_{t=1}^{T-1} A[y_{t-1}, y_t] + end[y_{T-1}]
    log p(y) = score(y) - log Z,        log Z = log sum over all K^T sequences y' of exp(score(y'))

``A[i, j]`` scores the move from tag i to tag j. The K^T terms of Z factor
along the chain (the forward algorithm, one log-sum-exp per step):

    alpha_0(j) = start[j] + e_0[j]
    alpha_t(j) = e_t[j] + log sum_i exp(alpha_{t-1}(i) + A[i, j])       t = 1 .. T-1
    log Z      = log sum_j exp(alpha_{T-1}(j) + end[j])

and the best sequence is the same recursion with max for sum (Viterbi 1967),
read back through the argmax of every step. The backward recursion beta runs
the other way (beta_{T-1}(i) = end[i], beta_t(i) = log sum_j exp(A[i, j] +
e_{t+1}[j] + beta_{t+1}(j))), and the gradient of log Z is a probability:

    d log Z / d e_t[j]  = p(y_t = j)                         = exp(alpha_t(j) + beta_t(j) - log Z)
    d log Z / d A[i, j] = sum_t p(y_{t-1} = i, y_t = j)
                        = sum_t exp(alpha_{t-1}(i) + A[i, j] + e_t[j] + beta_t(j) - log Z)
    d log Z / d start[j] = p(y_0 = j),   d log Z / d end[j] = p(y_{T-1} = j)

so the gradient of the log-likelihood is "observed counts minus expected
counts". Two twins, as elsewhere in the library: ``crf_log_partition_composed``
writes the forward algorithm with autograd ops, whose backward autograd
derives; ``CRFLogPartition`` is one Function whose backward is the
forward-backward marginals above. The tests hold them to each other, to
central differences and to brute-force enumeration of all K^T paths.

Batches are (B, T, K), batch first, with ``mask`` (B, T) True at real tokens
(pytorch-crf's convention, the opposite of attention's ``key_padding_mask``);
every row starts with a real token and its padding follows on the right. A
padded step leaves alpha unchanged, so each row's log Z is that of its own length.
Names follow pytorch-crf (Kurniawan, ``torchcrf.CRF``: ``transitions``,
``start_transitions``, ``end_transitions``, ``forward`` giving the
log-likelihood, ``decode`` giving lists of tags); PyTorch itself has no CRF.
"""

import numpy as np

from ..autograd import Function, as_array, where
from ..rng import get_rng
from ..validation import check_value
from .module import Module, Parameter

REDUCTIONS = ("none", "sum", "mean", "token_mean")


def _logsumexp(x, axis):
    """log sum exp over ``axis`` on arrays, shifted by the maximum so nothing overflows."""
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))


def check_mask(mask, shape, caller="CRF"):
    """``mask`` as a boolean (B, T) array, True at real tokens (all True when None), checked."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(as_array(mask))
    if mask.dtype != np.bool_:
        raise TypeError(f"{caller}: mask must be boolean (True = real token), got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{caller}: mask has shape {mask.shape}, expected {tuple(shape)} (batch, time)")
    bad = ~mask[:, 0] | (~mask[:, :-1] & mask[:, 1:]).any(axis=1)  # padding first, or a real token after padding
    if bad.any():
        raise ValueError(f"{caller}: every row needs a real first token, and padding goes on the right; "
                         f"rows {np.flatnonzero(bad).tolist()} break that")
    return mask


# ------------------------------------------------------------------ log Z, composed
def crf_log_partition_composed(emissions, transitions, start, end, mask):
    """log Z (B,) by the forward algorithm written with autograd ops; emissions (B, T, K), mask (B, T)."""
    alpha = start + emissions[:, 0]  # (B, K)
    for t in range(1, emissions.shape[1]):
        scores = alpha.unsqueeze(2) + transitions + emissions[:, t].unsqueeze(1)  # (B, K from, K to)
        alpha = where(mask[:, t, None], scores.logsumexp(axis=1), alpha)  # (B, K); padding keeps alpha
    return (alpha + end).logsumexp(axis=1)  # (B,)


# ------------------------------------------------------------------ log Z, fused
class CRFLogPartition(Function):
    """log Z (B,) by the forward algorithm; backward by the forward-backward marginals (module docstring)."""

    @staticmethod
    def forward(ctx, emissions, transitions, start, end, mask):
        B, T, K = emissions.shape
        alphas = np.empty_like(emissions)  # (B, T, K)
        alphas[:, 0] = start + emissions[:, 0]
        for t in range(1, T):
            new = _logsumexp(alphas[:, t - 1, :, None] + transitions, axis=1) + emissions[:, t]  # (B, K)
            alphas[:, t] = np.where(mask[:, t, None], new, alphas[:, t - 1])
        log_z = _logsumexp(alphas[:, -1] + end, axis=1)  # (B,)
        ctx.emissions, ctx.transitions, ctx.end, ctx.mask, ctx.alphas, ctx.log_z = (
            emissions, transitions, end, mask, alphas, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad):
        e, A, mask, alphas, log_z = ctx.emissions, ctx.transitions, ctx.mask, ctx.alphas, ctx.log_z
        B, T, K = e.shape
        betas = np.empty_like(e)  # (B, T, K); beta of a row's last real step is end, carried through padding
        betas[:, -1] = ctx.end
        for t in range(T - 2, -1, -1):
            new = _logsumexp(A + (e[:, t + 1] + betas[:, t + 1])[:, None, :], axis=2)  # (B, K)
            betas[:, t] = np.where(mask[:, t + 1, None], new, betas[:, t + 1])
        g = grad[:, None, None]  # (B, 1, 1): dL/dlog Z of each row
        marginals = np.exp(alphas + betas - log_z[:, None, None]) * mask[:, :, None]  # p(y_t = j), (B, T, K)
        d_emissions = g * marginals
        edges = np.exp(alphas[:, :-1, :, None] + A + (e[:, 1:] + betas[:, 1:])[:, :, None, :]
                       - log_z[:, None, None, None])  # p(y_{t-1} = i, y_t = j), (B, T-1, K, K)
        d_transitions = np.einsum("b,btij->ij", grad, edges * mask[:, 1:, None, None])  # (K, K)
        last = mask.sum(axis=1) - 1  # (B,): each row's last real step
        d_start = (g[:, 0] * marginals[:, 0]).sum(axis=0)  # (K,)
        d_end = (g[:, 0] * marginals[np.arange(B), last]).sum(axis=0)  # (K,)
        return d_emissions, d_transitions, d_start, d_end, None


def crf_log_partition(emissions, transitions, start, end, mask):
    """log Z (B,) of a batch: emissions (B, T, K), transitions (K, K), start and end (K,), mask (B, T)."""
    return CRFLogPartition.apply(emissions, transitions, start, end, np.asarray(mask, dtype=bool))


# ------------------------------------------------------------------ the score of given tags
def crf_sequence_score(emissions, tags, transitions, start, end, mask):
    """score(y) (B,) of the tag sequences ``tags`` (B, T), read off with indexing (autograd ops)."""
    B, T = tags.shape
    tags = np.where(mask, tags, 0)  # padding's tags are never read; 0 keeps them valid indices
    rows = np.arange(B)
    last = tags[rows, mask.sum(axis=1) - 1]  # (B,): each row's last real tag
    real = mask.astype(emissions.dtype)
    emitted = (emissions[rows[:, None], np.arange(T), tags] * real).sum(axis=1)  # sum_t e_t[y_t], (B,)
    moved = (transitions[tags[:, :-1], tags[:, 1:]] * real[:, 1:]).sum(axis=1)  # sum_t A[y_{t-1}, y_t], (B,)
    return start[tags[:, 0]] + emitted + moved + end[last]


# ------------------------------------------------------------------ Viterbi
def viterbi_decode(emissions, transitions, start, end, mask):
    """The highest-scoring tag sequence of each row, as a list of lists of its real length (NumPy, no graph).

    delta_t(j) = e_t[j] + max_i (delta_{t-1}(i) + A[i, j]) remembers the argmax i
    of every (t, j); the best path is read back from the best last tag.
    """
    e, A = as_array(emissions), as_array(transitions)
    B, T, K = e.shape
    delta = as_array(start) + e[:, 0]  # (B, K)
    back = np.zeros((B, T, K), dtype=np.int64)  # back[b, t, j]: the best tag before tag j at step t
    for t in range(1, T):
        scores = delta[:, :, None] + A  # (B, K from, K to)
        back[:, t] = scores.argmax(axis=1)
        delta = np.where(mask[:, t, None], scores.max(axis=1) + e[:, t], delta)
    best = (delta + as_array(end)).argmax(axis=1)  # (B,): the best last tag
    paths = []
    for b, n in enumerate(mask.sum(axis=1)):
        path = [int(best[b])]
        for t in range(n - 1, 0, -1):
            path.append(int(back[b, t, path[-1]]))
        paths.append(path[::-1])
    return paths


class CRF(Module):
    """A linear-chain CRF over ``num_tags`` tags (pytorch-crf's ``CRF(num_tags, batch_first=True)``).

    ``crf(emissions, tags, mask, reduction)`` is the log-likelihood log p(tags)
    (train on its negative); ``crf.decode(emissions, mask)`` the Viterbi tags.
    Parameters, each initialised U(-0.1, 0.1) as in pytorch-crf:
    ``transitions`` (K, K) (from tag i to tag j), ``start_transitions`` (K,),
    ``end_transitions`` (K,).
    """

    def __init__(self, num_tags, dtype=np.float32):
        super().__init__()
        self.num_tags = check_value("CRF: num_tags", num_tags, int, "[1, inf)")
        rng, K = get_rng(), self.num_tags
        self.start_transitions = Parameter(rng.uniform(-0.1, 0.1, K).astype(dtype))
        self.end_transitions = Parameter(rng.uniform(-0.1, 0.1, K).astype(dtype))
        self.transitions = Parameter(rng.uniform(-0.1, 0.1, (K, K)).astype(dtype))

    def _check(self, emissions, mask, caller):
        if emissions.ndim != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"{caller}: emissions must be (batch, time, num_tags={self.num_tags}), "
                             f"got shape {emissions.shape}")
        return check_mask(mask, emissions.shape[:2], caller)

    def _parameters_in(self):
        return self.transitions, self.start_transitions, self.end_transitions

    def log_likelihood(self, emissions, tags, mask=None):
        """log p(tags | emissions) = score(tags) - log Z, one per row (B,)."""
        mask = self._check(emissions, mask, "CRF.log_likelihood")
        tags = np.asarray(as_array(tags))
        if tags.shape != mask.shape:
            raise ValueError(f"CRF.log_likelihood: tags must have shape {mask.shape} (batch, time), got {tags.shape}")
        real = tags[mask]
        if real.size and (real.min() < 0 or real.max() >= self.num_tags):
            raise ValueError(f"CRF.log_likelihood: tags at real tokens must lie in [0, {self.num_tags}), "
                             f"got values from {real.min()} to {real.max()}")
        A, start, end = self._parameters_in()
        score = crf_sequence_score(emissions, tags, A, start, end, mask)  # (B,)
        return score - crf_log_partition(emissions, A, start, end, mask)  # (B,)

    def forward(self, emissions, tags, mask=None, reduction="sum"):
        """The log-likelihood, reduced as in pytorch-crf: 'none' (B,), 'sum', 'mean' over rows, 'token_mean'."""
        if reduction not in REDUCTIONS:
            raise ValueError(f"CRF: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        llh = self.log_likelihood(emissions, tags, mask)  # (B,)
        if reduction == "none":
            return llh
        if reduction == "token_mean":
            return llh.sum() / float(check_mask(mask, emissions.shape[:2]).sum())
        return llh.sum() if reduction == "sum" else llh.mean()

    def decode(self, emissions, mask=None):
        """The Viterbi tags of each row: a list of B lists, each as long as its row's real tokens."""
        mask = self._check(emissions, mask, "CRF.decode")
        return viterbi_decode(emissions, *self._parameters_in(), mask)

    def extra_repr(self):
        return f"num_tags={self.num_tags}"
