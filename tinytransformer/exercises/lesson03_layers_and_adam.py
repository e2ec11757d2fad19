"""Checks of exercises/03_layers_and_adam.py: a Linear layer's backward, Adam and AdamW steps, the schedule.

The backward is held to ``nn.linear``'s and to central differences; the optimiser steps, run for several
steps from zero moments, to ``optim.adam``'s ``adam_update`` and ``adamw_update``; the schedule to
``optim.lr_scheduler.cosine_with_warmup``.
"""

import numpy as np

from ..autograd import Tensor
from ..nn.functional import linear
from ..optim.adam import adam_update, adamw_update
from ..optim.lr_scheduler import cosine_with_warmup
from .checking import (
    Check, ExerciseFailure, expect_close, expect_gradcheck, expect_shape, shapes, unpack, with_backward,
)

# (x's shape, weight's shape (out, in)): a batch of rows, 1 x 1, a batch of sequences, one vector
LINEAR_SHAPES = [((4, 3), (2, 3)), ((1, 1), (1, 1)), ((2, 3, 4), (5, 4)), ((5,), (2, 5))]


def _linear_saving_inputs(x, w, b):
    return x @ w.T + b, (x, w)


def check_linear_backward(linear_backward):
    rng = np.random.default_rng(6)
    for x_shape, w_shape in LINEAR_SHAPES:
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
        grad = rng.standard_normal(x_shape[:-1] + w_shape[:1])
        case = shapes(x=x, weight=w, bias=b)
        got = unpack(linear_backward(grad.copy(), x.copy(), w.copy()), 3, "dL/dx, dL/dweight, dL/dbias", case)
        for what, g, like in zip(("dL/dx", "dL/dweight", "dL/dbias"), got, (x, w, b)):
            expect_shape(what, g, like.shape, case)
        inputs = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
        expect_gradcheck(with_backward(_linear_saving_inputs, linear_backward), inputs, case)
        tensors = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
        linear(*tensors).backward(grad)
        for what, g, t in zip(("dL/dx", "dL/dweight", "dL/dbias"), got, tensors):
            expect_close(what, g, t.grad, case)


OPTIMIZER_SHAPES = [(3,), (4, 5), ()]
SETTINGS = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)


def check_optimizer(learner, library_update, name):
    """Six steps from zero moments, each compared with the library's, for two weight decays and three shapes."""
    rng = np.random.default_rng(7)
    for weight_decay in (0.0, 0.1):
        for shape in OPTIMIZER_SHAPES:
            param = rng.standard_normal(shape)
            m, v = np.zeros(shape), np.zeros(shape)
            want = [param.copy(), m.copy(), v.copy()]
            for t in range(1, 7):
                grad = rng.standard_normal(shape)
                case = f"{shapes(param=param)}, at step t={t}, weight_decay={weight_decay}, {name}"
                given = (param.copy(), grad.copy(), m.copy(), v.copy())
                got = unpack(learner(*given, t, weight_decay=weight_decay, **SETTINGS), 3, "param, m, v", case)
                library_update(want[0], grad, want[1], want[2], t, SETTINGS["lr"], SETTINGS["beta1"],
                               SETTINGS["beta2"], SETTINGS["eps"], weight_decay)
                for what, g, w in zip(("the new m", "the new v", "the new param"), got[1:] + got[:1],
                                      want[1:] + want[:1]):
                    expect_close(what, g, w, case, atol=1e-12, rtol=1e-9)
                param, m, v = (np.array(g, dtype=np.float64) for g in got)


def check_adam_step(adam_step):
    check_optimizer(adam_step, adam_update, "Adam with L2 weight decay")


def check_adamw_step(adamw_step):
    check_optimizer(adamw_step, adamw_update, "AdamW's decoupled weight decay")


# (warmup_steps, total_steps, min_lr_ratio)
SCHEDULES = [(10, 100, 0.1), (0, 50, 0.0), (5, 5, 0.5), (1, 30, 0.2)]


def check_warmup_cosine_lr(warmup_cosine_lr):
    lr = 3e-3
    for warmup, total, ratio in SCHEDULES:
        for step in range(total + 5):
            case = f"at step {step} of warmup_steps={warmup}, total_steps={total}, min_lr_ratio={ratio}, lr={lr}"
            got = warmup_cosine_lr(step, lr, warmup, total, ratio)
            if not np.isscalar(got) and np.shape(got) != ():
                raise ExerciseFailure(f"returned shape {np.shape(got)}, expected one number, {case}")
            expect_close("the lr", got, lr * cosine_with_warmup(step, warmup, total, ratio), case, atol=1e-15,
                         rtol=1e-9)


CHECKS = [
    Check("linear_backward", check_linear_backward),
    Check("adam_step", check_adam_step),
    Check("adamw_step", check_adamw_step),
    Check("warmup_cosine_lr", check_warmup_cosine_lr),
]
