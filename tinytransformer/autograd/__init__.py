"""The autograd engine: Tensor, Function, grad mode, and the primitive ops."""

# tensor.py first: it defines Tensor, then imports the op modules, which need it.
from .tensor import DEFAULT_DTYPE, Tensor, as_array, ones, tensor, zeros  # isort: skip

from .arithmetic import add, div, matmul, mul, neg, pow, sub
from .elementwise import astype, exp, gelu, log, relu, sigmoid, sqrt, tanh
from .function import Context, Function, unbroadcast
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .reductions import max, mean, sum, var
from .shape import (
    cat,
    concatenate,
    getitem,
    masked_fill,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
    where,
)
from .softmax import log_softmax, logsumexp, softmax
__all__ = [
    "DEFAULT_DTYPE", "Context", "Function", "Tensor", "add", "as_array", "astype", "cat", "concatenate", "div",
    "enable_grad", "exp", "gelu", "getitem", "is_grad_enabled", "log", "log_softmax", "logsumexp",
    "masked_fill", "matmul", "max", "mean", "mul", "neg", "no_grad", "ones", "permute", "pow", "relu",
    "reshape", "sigmoid", "softmax", "split", "sqrt", "squeeze", "stack", "sub", "sum", "swapaxes",
    "tanh", "tensor", "transpose", "unbroadcast", "unsqueeze", "var", "where", "zeros",
]
