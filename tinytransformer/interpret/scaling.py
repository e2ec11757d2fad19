"""Scaling laws: count a model's parameters and compute, and fit a power law to losses.

Kaplan et al. (2020) found that a language model's test loss falls as a power
of each resource when the other two do not hold it back:

    L(N) = (N_c / N)^alpha_N       N: non-embedding parameters    (alpha_N ~ 0.076)
    L(D) = (D_c / D)^alpha_D       D: training tokens             (alpha_D ~ 0.095)
    L(C) = (C_c / C)^alpha_C       C: training compute in FLOPs   (alpha_C ~ 0.050)

with C ~ 6 N D: each parameter costs a multiply and an add (2 FLOPs) per
token forward, and backward costs twice the forward. Hoffmann et al. (2022)
fit L(N, D) = E + A / N^alpha + B / D^beta instead; the constant E is the
loss no model can beat (the entropy of the text itself). ``fit_power_law``
fits either form, L = a x^-alpha (+ c), by least squares in log space.
"""

from dataclasses import asdict, dataclass

import numpy as np


def non_embedding_parameters(model) -> int:
    """Parameters outside the token and position embeddings (Kaplan's N): the blocks and ln_f."""
    return sum(p.size for name, p in model.named_parameters() if name.split(".")[-2:-1] not in (["wte"], ["wpe"]))


def training_flops(n_params, n_tokens) -> float:
    """C ~ 6 N D: forward 2 N FLOPs per token, backward twice that (Kaplan et al. 2020, section 2.1)."""
    return 6.0 * float(n_params) * float(n_tokens)


@dataclass
class PowerLaw:
    """L(x) = a * x^-alpha + c, with ``r2`` the fit's R^2 on log(L - c)."""

    a: float
    alpha: float
    c: float = 0.0
    r2: float = float("nan")

    def __call__(self, x):
        return self.a * np.asarray(x, dtype=np.float64) ** -self.alpha + self.c

    def to_dict(self):
        return asdict(self)


def _fit_log_linear(x, y):
    """Least squares of log y = log a - alpha log x: returns (a, alpha, r2)."""
    X = np.stack([np.ones_like(x), np.log(x)], axis=1)  # (n, 2)
    (log_a, slope), *_ = np.linalg.lstsq(X, np.log(y), rcond=None)
    residual = np.log(y) - X @ np.array([log_a, slope])
    spread = np.log(y) - np.log(y).mean()
    r2 = 1 - (residual @ residual) / (spread @ spread) if spread @ spread > 0 else 1.0
    return float(np.exp(log_a)), float(-slope), float(r2)


def fit_power_law(x, y, offset=False, grid=50, rounds=4) -> PowerLaw:
    """Fit L = a x^-alpha (``offset=False``) or L = a x^-alpha + c (``offset=True``) to points (x, y).

    Without the offset it is one linear least-squares fit of log y on log x.
    With it, for a given c the rest is linear again (a fit of log(y - c) on
    log x), so c is searched: ``grid`` values in [0, min(y)), keeping the c
    whose curve is closest to the points in log space, sum (log y - log L(x))^2,
    then ``rounds - 1`` finer grids around the best so far. Needs x > 0, y > 0,
    at least 2 points (3 with an offset).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"fit_power_law: x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    if len(x) < (3 if offset else 2):
        raise ValueError(f"fit_power_law: need at least {3 if offset else 2} points, got {len(x)}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("fit_power_law: x and y must be positive (the fit is done on their logarithms)")
    if not offset:
        a, alpha, r2 = _fit_log_linear(x, y)
        return PowerLaw(a, alpha, 0.0, r2)
    best, lo, hi = None, 0.0, y.min()
    for _ in range(rounds):
        candidates = np.linspace(lo, hi, grid, endpoint=False)  # c < min(y), so log(y - c) exists
        for c in candidates:
            a, alpha, r2 = _fit_log_linear(x, y - c)
            error = float(((np.log(y) - np.log(a * x ** -alpha + c)) ** 2).sum())  # comparable across c
            if best is None or error < best[0]:
                best = (error, PowerLaw(a, alpha, float(c), r2))
        step = candidates[1] - candidates[0]
        lo, hi = max(0.0, best[1].c - step), min(y.min(), best[1].c + step)
    return best[1]
