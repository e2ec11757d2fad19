"""Learning-rate schedules: each sets ``group["lr"]`` of an optimizer's groups, step by step.

Call ``scheduler.step()`` once after each ``optimizer.step()``, as in PyTorch.
Creating a scheduler already applies its value for step 0, and stores each
group's starting lr as ``group["initial_lr"]``; the schedule multiplies it.

``cosine_with_warmup`` is the schedule GPT training uses (as in nanoGPT):
a linear warmup to the full lr, a half cosine down to ``min_lr_ratio * lr``,
then constant. ``WarmupCosineLR`` is that function wrapped in a ``LambdaLR``.
"""

import functools
import math

from ..validation import check_value


class LRScheduler:
    """Base class: subclasses define ``get_lr()``, the lrs for step ``self.last_epoch``.

    ``state_dict()`` is ``{"last_epoch": int, "base_lrs": [float], "_last_lr": [float]}``,
    PyTorch's keys; the schedule's functions and arguments are not saved (they are
    code: build the scheduler again with them, then load the state). Every lr a
    schedule computes or a state restores must be finite and >= 0, checked with
    ``tinytransformer.validation.check_value``.
    """

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        name = type(self).__name__
        last_epoch = check_value(f"{name}: last_epoch", last_epoch, int, "[-1, inf)")
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        elif any("initial_lr" not in group for group in optimizer.param_groups):
            raise KeyError(
                f"{name}: last_epoch={last_epoch} resumes a schedule, but a parameter group has no "
                "'initial_lr' (load the optimizer's state dict first)"
            )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def step(self):
        """Advance one step and write the new lr into every parameter group."""
        self.last_epoch += 1
        for i, (group, lr) in enumerate(zip(self.optimizer.param_groups, self.get_lr())):
            check_value(f"{type(self).__name__}: the lr of group {i} at step {self.last_epoch}", lr, float, "[0, inf)")
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lr of each group, as the last ``step()`` set it."""
        return list(self._last_lr)

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "_last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict):
        """Restore ``state_dict()``'s values, checked first: the scheduler is unchanged if one is invalid."""
        where = f"{type(self).__name__}.load_state_dict"
        missing = [key for key in ("last_epoch", "base_lrs", "_last_lr") if key not in state_dict]
        if missing:
            raise ValueError(f"{where}: the state has no {missing}")
        last_epoch = check_value(f"{where}: last_epoch", state_dict["last_epoch"], int, "[0, inf)")
        lrs = {}
        for key in ("base_lrs", "_last_lr"):
            values = state_dict[key]
            if not isinstance(values, (list, tuple)) or len(values) != len(self.optimizer.param_groups):
                raise ValueError(f"{where}: {key} must hold one lr per parameter group "
                                 f"({len(self.optimizer.param_groups)}), got {values!r}")
            lrs[key] = [check_value(f"{where}: {key}[{i}]", lr, float, "[0, inf)") for i, lr in enumerate(values)]
        self.last_epoch, self.base_lrs, self._last_lr = last_epoch, lrs["base_lrs"], lrs["_last_lr"]


class LambdaLR(LRScheduler):
    """lr of group i at step t = ``initial_lr_i * lr_lambda(t)``, as ``torch.optim.lr_scheduler.LambdaLR``.

    ``lr_lambda`` is one function of the step, or a list with one per group.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n_groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n_groups:
                raise ValueError(f"LambdaLR: expected {n_groups} functions in lr_lambda, got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n_groups
        if not all(callable(f) for f in self.lr_lambdas):
            raise ValueError(f"LambdaLR: lr_lambda must be a function of the step (or one per group), "
                             f"got {lr_lambda!r}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * lmbda(self.last_epoch) for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs)]


def cosine_with_warmup(step, warmup_steps, total_steps, min_lr_ratio=0.1):
    """The lr multiplier at ``step`` (from 0): linear warmup, cosine decay, then a floor.

        step < warmup_steps:                  (step + 1) / warmup_steps
        warmup_steps <= step <= total_steps:  r + (1 - r) * (1 + cos(pi * s)) / 2,
                                              s = (step - warmup_steps) / (total_steps - warmup_steps)
        step > total_steps:                   r = min_lr_ratio

    The warmup counts from ``1 / warmup_steps`` (so the first update is not wasted
    on lr = 0) up to 1 at the last warmup step; the cosine starts at 1 and
    reaches ``min_lr_ratio`` at ``total_steps`` (Loshchilov & Hutter 2017, SGDR,
    without restarts).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step > total_steps:
        return min_lr_ratio
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosineLR(LambdaLR):
    """``LambdaLR`` with ``cosine_with_warmup``: warmup over ``warmup_steps``, cosine to ``total_steps``."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr_ratio=0.1, last_epoch=-1):
        warmup_steps = check_value("WarmupCosineLR: warmup_steps", warmup_steps, int, "[0, inf)")
        total_steps = check_value("WarmupCosineLR: total_steps", total_steps, int, "[0, inf)")
        min_lr_ratio = check_value("WarmupCosineLR: min_lr_ratio", min_lr_ratio, float, "[0, 1]")
        if total_steps < warmup_steps:
            raise ValueError(
                f"WarmupCosineLR: total_steps must be >= warmup_steps, got total_steps={total_steps}, "
                f"warmup_steps={warmup_steps}"
            )
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio
        schedule = functools.partial(
            cosine_with_warmup, warmup_steps=warmup_steps, total_steps=total_steps, min_lr_ratio=min_lr_ratio
        )
        super().__init__(optimizer, schedule, last_epoch)
