"""Checks of exercises/06_block.py: LayerNorm forward and backward, multi-head self-attention.

LayerNorm is held to ``nn.functional.layer_norm`` (and its backward also to central differences);
multi-head attention to ``nn.CausalSelfAttention`` loaded with the same weights, causal or not.
"""

import numpy as np

from ..autograd import Tensor
from ..nn import CausalSelfAttention, skip_init
from ..nn.functional import layer_norm
from .checking import Check, expect_close, expect_gradcheck, expect_shape, shapes, unpack, with_backward

# x's shape (..., C): rows, a batch of sequences, one vector, one feature (y = bias), a column of rows
NORM_SHAPES = [(4, 5), (2, 3, 6), (7,), (3, 1), (1, 2)]
EPS = 1e-5


def _inputs(rng, shape):
    x = 3.0 + 2.0 * rng.standard_normal(shape)  # far from mean 0, variance 1
    return x, rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])


def _library(x, weight, bias):
    return layer_norm(x, (x.shape[-1],), weight, bias, EPS)


def check_layer_norm(learner):
    rng = np.random.default_rng(11)
    for shape in NORM_SHAPES:
        x, w, b = _inputs(rng, shape)
        case = shapes(x=x, weight=w, bias=b) + f", eps={EPS}"
        want = _library(Tensor(x), Tensor(w), Tensor(b)).data
        expect_close("y", learner(x.copy(), w.copy(), b.copy(), eps=EPS), want, case, atol=1e-10, rtol=1e-8)


def _layer_norm_saving_inputs(x, w, b):
    return _library(Tensor(x), Tensor(w), Tensor(b)).data, (x, w)


def check_layer_norm_backward(learner):
    rng = np.random.default_rng(12)
    for shape in NORM_SHAPES:
        x, w, b = _inputs(rng, shape)
        grad = rng.standard_normal(shape)
        case = shapes(x=x, weight=w) + f", eps={EPS}"
        got = unpack(learner(grad.copy(), x.copy(), w.copy(), eps=EPS), 3, "dL/dx, dL/dweight, dL/dbias", case)
        for what, g, like in zip(("dL/dx", "dL/dweight", "dL/dbias"), got, (x, w, b)):
            expect_shape(what, g, like.shape, case)
        fn = with_backward(_layer_norm_saving_inputs, lambda g, x, w: learner(g, x, w, eps=EPS))
        expect_gradcheck(fn, [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)], case)
        tensors = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
        _library(*tensors).backward(grad)
        for what, g, t in zip(("dL/dx", "dL/dweight", "dL/dbias"), got, tensors):
            expect_close(what, g, t.grad, case, atol=1e-9, rtol=1e-7)


# (B, T, C, n_head, causal)
ATTENTION_CASES = [(2, 5, 8, 2, True), (1, 1, 4, 1, True), (1, 6, 6, 3, False), (3, 4, 12, 4, True),
                   (2, 3, 4, 4, False)]


def check_multi_head_attention(learner):
    rng = np.random.default_rng(13)
    for B, T, C, n_head, causal in ATTENTION_CASES:
        x = rng.standard_normal((B, T, C))
        w_in, b_in = rng.standard_normal((3 * C, C)) / np.sqrt(C), rng.standard_normal(3 * C)
        w_out, b_out = rng.standard_normal((C, C)) / np.sqrt(C), rng.standard_normal(C)
        case = f"{shapes(x=x)}, n_head={n_head}, causal={causal}"
        got = learner(x.copy(), w_in.copy(), b_in.copy(), w_out.copy(), b_out.copy(), n_head, causal=causal)
        with skip_init():  # the weights are the learner's: leave the random stream alone
            layer = CausalSelfAttention(C, n_head, causal=causal).double()
        layer.load_state_dict({"c_attn.weight": w_in, "c_attn.bias": b_in, "c_proj.weight": w_out,
                               "c_proj.bias": b_out})
        expect_close("the output", got, layer(Tensor(x)).data, case, source="nn.CausalSelfAttention's")


CHECKS = [
    Check("layer_norm", check_layer_norm),
    Check("layer_norm_backward", check_layer_norm_backward),
    Check("multi_head_attention", check_multi_head_attention),
]
