"""Optimizers, learning-rate schedules and gradient clipping (``tinytransformer.optim``), PyTorch-named.

    opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    sched = optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=100, total_steps=5000)
    for batch in batches:
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()

Each update rule is a small function on NumPy arrays (``sgd_update``,
``adam_update``, ``adamw_update``) that the optimizer class calls once per
parameter; the formulas are in each file's docstring.
"""

from . import lr_scheduler
from .adam import Adam, AdamW, adam_update, adamw_update
from .clip import clip_grad_norm_
from .optimizer import Optimizer
from .sgd import SGD, sgd_update

__all__ = [
    "Adam", "AdamW", "Optimizer", "SGD", "adam_update", "adamw_update", "clip_grad_norm_", "lr_scheduler",
    "sgd_update",
]
