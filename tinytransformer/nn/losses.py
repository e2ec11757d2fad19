"""Loss functions, with PyTorch's arguments and semantics.

``cross_entropy`` is the loss a language model trains on, so it is one fused
Function (softmax and the negative log-likelihood together, with a
hand-derived backward); ``cross_entropy_composed`` computes the same thing
from ``log_softmax`` and an indexed read, as the readable reference the tests
compare it with. ``binary_cross_entropy_with_logits`` works from logits through
softplus, so neither loss overflows even for logits of 1e4.

``reduction`` is 'mean' (the default), 'sum', or 'none' (one loss per element).
"""

import numpy as np

from .. import kernels
from ..autograd import Function, Tensor, as_array
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")



def _class_rows(x):
    """Logits as rows (N, C): class axis 1 moved last, all other axes folded into N; (C,) becomes (1, C)."""
    if x.ndim == 1:
        return x[None, :]
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])  # (N * d1 * ..., C); no copy for 2-D input


def _check_cross_entropy(name, input, target, weight, ignore_index, reduction, label_smoothing):
    """Validate the arguments; return (target array, weight array in input's dtype or None, C)."""
    _check_reduction(name, reduction)
    x, t = as_array(input), as_array(target)
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have a class axis, got a scalar")
    num_classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: target must hold integer class indices, got dtype {t.dtype} "
            "(class-probability targets are not supported)"
        )
    expected = (x.shape[0], *x.shape[2:]) if x.ndim > 1 else ()
    if t.shape != expected:
        raise ValueError(f"{name}: input of shape {x.shape} needs a target of shape {expected}, got {t.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    bad = (t != ignore_index) & ((t < 0) | (t >= num_classes))
    if bad.any():
        raise IndexError(
            f"{name}: target values {np.unique(t[bad])[:10].tolist()} are out of range for C={num_classes} "
            f"classes (valid: 0 to {num_classes - 1}, or ignore_index={ignore_index})"
        )
    if weight is None:
        return t, None, num_classes
    w = as_array(weight)
    if w.shape != (num_classes,):
        raise ValueError(f"{name}: weight must have shape ({num_classes},), one per class, got {w.shape}")
    return t, w.astype(x.dtype, copy=False), num_classes


class CrossEntropyFunction(Function):
    r"""Softmax cross-entropy over rows z (N, C) with class targets y, fused.

    With p = softmax(z) and a per-row target distribution q, each row's loss is
    -sum_c q_c log p_c. Plain cross-entropy has q = onehot(y); PyTorch's label
    smoothing eps and class weights w give

        q_c = (1 - eps) w_y [c = y] + (eps / C) w_c        (q = 0 for ignored rows)

    so the loss is (1 - eps) w_y (-log p_y) + (eps/C) sum_c w_c (-log p_c), and
    'mean' divides the sum over rows by sum of w_y over rows not ignored (the
    row count without weights). Backward: since d log p_c / d z_k = [c = k] - p_k,

        dL/dz_k = -sum_c q_c ([c = k] - p_k) = p_k sum_c q_c - q_k

    which without weights (sum_c q_c = 1) is the familiar softmax - onehot,
    smoothed: p - (1 - eps) onehot(y) - eps/C. Stability: log p_c = z_c - lse
    with lse = max z + log sum e^(z - max z), which never overflows. The
    arithmetic is ``kernels.cross_entropy_forward`` and ``_backward``
    (kernels/softmax_cross_entropy.py): the forward saves only lse, one number
    per row, and the backward recomputes p from it.
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        z = _class_rows(x)  # (N, C)
        y = target.reshape(-1)  # (N,)
        options = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction, weight=weight)
        loss, lse = kernels.cross_entropy_forward(z, y, **options)  # lse (N,): log sum_c e^(z_c)
        ctx.z, ctx.y, ctx.lse, ctx.options, ctx.x_shape = z, y, lse, options, x.shape
        return loss.reshape(target.shape) if reduction == "none" else loss

    @staticmethod
    def backward(ctx, grad):
        row_grad = grad.reshape(-1) if ctx.options["reduction"] == "none" else grad  # (N,) or a scalar
        dz = kernels.cross_entropy_backward(row_grad, ctx.z, ctx.y, ctx.lse, **ctx.options)  # (N, C)
        return _class_rows_back(dz, ctx.x_shape), None, None


def _class_rows_back(rows, shape):
    """Undo ``_class_rows``: (N, C) back to the logits' shape."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = (shape[0], *shape[2:], shape[1])  # class axis last
    return np.moveaxis(rows.reshape(moved), -1, 1)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy between logits and integer class targets (``torch.nn.functional.cross_entropy``).

    input: (N, C), (C,) or (N, C, d1, ...);  target: (N,), () or (N, d1, ...).
    Targets equal to ``ignore_index`` contribute nothing, not even to the
    'mean' denominator. Fused: see ``CrossEntropyFunction`` for the backward.
    """
    t, w, _ = _check_cross_entropy("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)
    return CrossEntropyFunction.apply(
        input, t, w, ignore_index=ignore_index, reduction=reduction, label_smoothing=float(label_smoothing)
    )


def cross_entropy_composed(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The same loss as ``cross_entropy`` from autograd primitives: log_softmax, then a gather.

    Every row's loss is (1 - eps) w_y (-log p_y) + (eps / C) sum_c w_c (-log p_c).
    """
    name = "cross_entropy_composed"
    t, w, num_classes = _check_cross_entropy(name, input, target, weight, ignore_index, reduction, label_smoothing)
    dtype = input.dtype
    if input.ndim == 1:
        log_p = input.log_softmax(axis=0).reshape(1, num_classes)  # (1, C)
    else:  # class axis last, then fold the rest: (N * d1 * ..., C)
        log_p = input.log_softmax(axis=1).permute(0, *range(2, input.ndim), 1).reshape(-1, num_classes)
    y = t.reshape(-1)  # (N,)
    valid = y != ignore_index
    safe_y = np.where(valid, y, 0)
    w_y = (valid if w is None else w[safe_y] * valid).astype(dtype)  # (N,)
    nll = -log_p[np.arange(len(y)), safe_y]  # (N,): -log p_y, read by integer-array indexing
    loss = nll * ((1 - label_smoothing) * w_y)
    if label_smoothing > 0:
        smooth = -(log_p.sum(axis=1) if w is None else (log_p * w).sum(axis=1))  # (N,)
        loss = loss + smooth * (valid * (label_smoothing / num_classes)).astype(dtype)
    if reduction == "none":
        return loss.reshape(t.shape)
    return loss.sum() / w_y.sum() if reduction == "mean" else loss.sum()


class BCEWithLogitsFunction(Function):
    r"""Binary cross-entropy from logits x, elementwise, with targets y in [0, 1].

    With log sigmoid(x) = -softplus(-x) and log(1 - sigmoid(x)) = -softplus(x),
    softplus(x) = log(1 + e^x), PyTorch's loss with weight w and pos_weight pw is

        l = w (pw y softplus(-x) + (1 - y) softplus(x))

    and softplus never overflows (``np.logaddexp(0, x)``). Derivatives, using
    d softplus(x)/dx = sigmoid(x) and sigmoid(x) = exp(-softplus(-x)):

        dl/dx = w (sigmoid(x) (pw y + 1 - y) - pw y)        (= w (sigmoid(x) - y) when pw = 1)
        dl/dy = w (pw softplus(-x) - softplus(x))
    """

    @staticmethod
    def forward(ctx, x, y, weight=None, pos_weight=None):
        w = 1.0 if weight is None else weight
        pw = 1.0 if pos_weight is None else pos_weight
        softplus_pos, softplus_neg = np.logaddexp(0, x), np.logaddexp(0, -x)
        ctx.saved = softplus_pos, softplus_neg, y, w, pw
        return w * (pw * y * softplus_neg + (1 - y) * softplus_pos)

    @staticmethod
    def backward(ctx, grad):
        softplus_pos, softplus_neg, y, w, pw = ctx.saved
        need_x, need_y = ctx.needs_input_grad[:2]
        gw = grad * w
        gx = gw * (np.exp(-softplus_neg) * (pw * y + 1 - y) - pw * y) if need_x else None
        gy = gw * (pw * softplus_neg - softplus_pos) if need_y else None
        return gx, gy


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _as_target(name, input, target):
    """``target`` as a tensor of input's shape; arrays take input's dtype (a float64 target must not upcast)."""
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape {input.shape}")
    return target


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Sigmoid plus binary cross-entropy in one stable step (``torch.nn.functional.binary_cross_entropy_with_logits``).

    ``weight`` rescales each element (broadcast to input's shape); ``pos_weight``
    rescales the positive term, one value per class along the last axis.
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    target = _as_target(name, input, target)
    extras = []
    for arg, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            value = as_array(value).astype(input.dtype, copy=False)
            try:
                fits = np.broadcast_shapes(value.shape, input.shape) == input.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"{name}: {arg} of shape {value.shape} does not broadcast to input shape {input.shape}")
        extras.append(value)
    loss = BCEWithLogitsFunction.apply(input, target, *extras)
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error, (input - target)^2 averaged or summed (``torch.nn.functional.mse_loss``)."""
    _check_reduction("mse_loss", reduction)
    diff = input - _as_target("mse_loss", input, target)
    return _reduce(diff * diff, reduction)


class CrossEntropyLoss(Module):
    """Module form of ``cross_entropy``; ``weight`` is a buffer, as in PyTorch's state dict."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        _check_reduction("CrossEntropyLoss", reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class BCEWithLogitsLoss(Module):
    """Module form of ``binary_cross_entropy_with_logits``; ``weight`` and ``pos_weight`` are buffers."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__()
        _check_reduction("BCEWithLogitsLoss", reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = reduction

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class MSELoss(Module):
    """Module form of ``mse_loss``."""

    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)
