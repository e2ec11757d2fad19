"""The training loop of a language model: one straight line per step, and everything around it.

One optimisation step (``Trainer.train_step``):

    for each of grad_accum micro-batches:
        x, y   = random_windows(train tokens)            (B, T) inputs, (B, T) next tokens
        loss   = cross_entropy(model(x), y)               mean over the B*T predictions
        (loss / grad_accum).backward()                    gradients add up over micro-batches
    clip_grad_norm_(params, grad_clip)                    one bad batch cannot throw the weights far
    optimizer.step(); optimizer.zero_grad()               AdamW, decay on matrices only
    scheduler.step()                                      linear warmup, then cosine down to lr/10

Around it: the validation loss every ``eval_interval`` steps (on the same
fixed batches each time, so the curve is not noisier than the model), a
progress bar with the loss and tokens per second, a checkpoint and the loss
curve PNG at each evaluation.

Exact resumption. A checkpoint holds every input of the steps still to come:
the weights, AdamW's moments and step counts, the schedule's position, the
generator that draws the batches, the library's generator (dropout) and the
history of losses. Loading it into a fresh model and trainer and continuing
gives the same losses, bit for bit, as a run that never stopped.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..autograd import no_grad
from ..data import random_windows
from ..optim import AdamW, clip_grad_norm_
from ..optim.lr_scheduler import WarmupCosineLR
from ..random import get_rng_state, set_rng_state
from .checkpoint import load_checkpoint, save_checkpoint
from .progress import Progress


@dataclass
class TrainConfig:
    """How to train; the defaults are nanoGPT's for its small character-level Shakespeare run.

    ``lr_decay_iters`` (default: ``max_iters``) is where the cosine reaches
    ``min_lr_ratio * lr``; later steps keep that floor. ``warmup_iters`` is cut to
    ``lr_decay_iters`` for runs shorter than the warmup. ``grad_clip=0`` turns
    clipping off.
    """

    max_iters: int = 2000
    batch_size: int = 12
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_iters: int = 100
    lr_decay_iters: int = None
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337

    def __post_init__(self):
        if self.lr_decay_iters is None:
            self.lr_decay_iters = self.max_iters
        self.warmup_iters = min(self.warmup_iters, self.lr_decay_iters)
        self.betas = tuple(self.betas)  # JSON gives back a list
        for name in ("max_iters", "batch_size", "grad_accum", "eval_interval", "eval_iters", "lr_decay_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        for name in ("lr", "weight_decay", "grad_clip", "warmup_iters"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainConfig: {name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig: min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")

    def to_dict(self):
        return asdict(self)


class Trainer:
    """Train ``model`` (a GPT, or anything with ``config.block_size``, ``optimizer_groups``
    and ``model(x, y) -> (logits, loss)``) on a stream of token ids.

    ``train_tokens`` and ``val_tokens`` are 1-D arrays of ids. ``tokenizer`` and
    ``meta`` (a JSON-able dict, e.g. the corpus name) only travel into the
    checkpoints. With ``out_dir`` set, every evaluation writes a checkpoint and
    ``loss.png`` there.
    """

    def __init__(self, model, train_tokens, val_tokens, config=None, tokenizer=None, out_dir=None, meta=None):
        self.model = model
        self.config = config = config if config is not None else TrainConfig()
        self.train_tokens = np.asarray(train_tokens)
        self.val_tokens = np.asarray(val_tokens)
        self.block_size = model.config.block_size
        for name, tokens in (("training", self.train_tokens), ("validation", self.val_tokens)):
            if len(tokens) <= self.block_size:
                raise ValueError(
                    f"Trainer: the {name} split has {len(tokens)} tokens, but a batch needs more than "
                    f"block_size={self.block_size}; use a longer text or a smaller block size"
                )
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.meta = dict(meta or {})
        self.optimizer = AdamW(
            model.optimizer_groups(config.weight_decay), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.scheduler = WarmupCosineLR(self.optimizer, config.warmup_iters, config.lr_decay_iters, config.min_lr_ratio)
        self.batch_rng = np.random.default_rng(config.seed)  # draws the training windows
        self.step = 0
        self.history = {"step": [], "train_loss": [], "lr": [], "eval_step": [], "eval_train_loss": [], "val_loss": []}

    @property
    def tokens_per_step(self):
        return self.config.batch_size * self.block_size * self.config.grad_accum

    def train_step(self) -> float:
        """One optimisation step (see the module docstring); returns the mean loss of its micro-batches."""
        c = self.config
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        total = 0.0
        for _ in range(c.grad_accum):
            x, y = random_windows(self.train_tokens, self.block_size, c.batch_size, self.batch_rng)  # (B, T) each
            _, loss = self.model(x, y)
            (loss / c.grad_accum).backward()
            total += loss.item()
        if c.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        loss = total / c.grad_accum
        self.history["step"].append(self.step)
        self.history["train_loss"].append(loss)
        self.history["lr"].append(lr)
        return loss

    def estimate_loss(self, tokens) -> float:
        """Mean loss over ``eval_iters`` batches of ``tokens``, always the same ones, without dropout.

        The batches come from their own generator, seeded afresh on each call,
        so evaluating never changes what training draws next.
        """
        rng = np.random.default_rng([self.config.seed, 1])
        was_training = self.model.training
        self.model.eval()
        losses = []
        with no_grad():
            for _ in range(self.config.eval_iters):
                x, y = random_windows(tokens, self.block_size, self.config.batch_size, rng)
                losses.append(self.model(x, y)[1].item())
        self.model.train(was_training)
        return float(np.mean(losses))

    def evaluate(self) -> dict:
        """Training and validation loss now; appended to the history."""
        losses = {"train": self.estimate_loss(self.train_tokens), "val": self.estimate_loss(self.val_tokens)}
        self.history["eval_step"].append(self.step)
        self.history["eval_train_loss"].append(losses["train"])
        self.history["val_loss"].append(losses["val"])
        return losses

    def train(self, progress=True, on_eval=None) -> dict:
        """Train until ``config.max_iters`` steps (counting steps done before a resume).

        Evaluates before the first step of a fresh run, every ``eval_interval``
        steps and after the last one; each evaluation calls ``on_eval(trainer,
        losses)`` if given and, with ``out_dir``, saves a checkpoint and the loss
        plot. Shows a progress bar (tqdm if installed) unless ``progress=False``.
        Returns the history.
        """
        c = self.config
        bar = Progress(c.max_iters, initial=self.step, enabled=progress)
        if self.step == 0:
            self._after_eval(self.evaluate(), bar, on_eval)
        seconds, done = 0.0, 0  # time in training steps only, evaluations left out
        try:
            while self.step < c.max_iters:
                started = time.perf_counter()
                loss = self.train_step()
                seconds, done = seconds + time.perf_counter() - started, done + 1
                bar.update(loss=f"{loss:.4f}", tok_s=f"{done * self.tokens_per_step / seconds:,.0f}")
                if self.step % c.eval_interval == 0 or self.step == c.max_iters:
                    self._after_eval(self.evaluate(), bar, on_eval)
        finally:
            bar.close()
        return self.history

    def _after_eval(self, losses, bar, on_eval):
        bar.write(f"step {self.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if self.out_dir is not None:
            self.save(self.out_dir)
            self.plot(self.out_dir / "loss.png")
        if on_eval is not None:
            on_eval(self, losses)

    def plot(self, path):
        """The loss curves as a PNG at ``path`` (needs matplotlib)."""
        from .plots import plot_loss_curves

        return plot_loss_curves(self.history, path, title=f"GPT on {self.meta.get('data', 'a corpus')}, step {self.step}")

    # ----------------------------------------------------------- checkpoints
    def save(self, folder):
        """Write a checkpoint: everything ``load`` needs to continue exactly (see the module docstring)."""
        meta = {
            **self.meta,
            "step": self.step,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "rng": {"batches": self.batch_rng.bit_generator.state, "library": get_rng_state()},
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
        }
        save_checkpoint(folder, self.model.state_dict(), self.optimizer.state_dict(), meta)

    def load(self, folder) -> dict:
        """Restore a checkpoint written by ``save`` into this trainer (built with the same model shape
        and config); returns its meta. The next ``train_step`` is the one the saved run would have taken."""
        model_state, optimizer_state, meta = load_checkpoint(folder)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(meta["scheduler"])
        self.batch_rng.bit_generator.state = meta["rng"]["batches"]
        set_rng_state(meta["rng"]["library"])
        self.step = int(meta["step"])
        self.history = meta["history"]
        return meta
