"""The training loop: the one every task in the library runs, one straight line per step.

One optimisation step (``Trainer.train_step``):

    for each of grad_accum micro-batches:
        batch = source.next_batch(rng)                    e.g. (B, T) inputs and (B, T) next tokens
        loss  = loss_fn(model, batch)                      by default model(*batch)[1]
        (loss / grad_accum).backward()                    gradients add up over micro-batches
    clip_grad_norm_(params, grad_clip)                    one bad batch cannot throw the weights far
    optimizer.step(); optimizer.zero_grad()               AdamW, decay on matrices only
    scheduler.step()                                      linear warmup, then cosine down

Around it (``Trainer.train``): an evaluation every ``eval_interval`` steps
and after the last one, a progress bar, and, with ``out_dir``, a checkpoint
and the loss curve at each evaluation. Pretraining a GPT, fine-tuning a head,
pretraining a body on a task's sentences and training a translator are all
this loop with their own data, loss and evaluation (``tinytransformer.tasks``).

Language modelling is the default: given 1-D arrays of token ids, the data are
random windows of them and the evaluation is the mean loss on fixed batches of
the training and validation tokens, the same batches at every evaluation, so
the curve is not noisier than the model.

Exact resumption. A checkpoint holds every input of the steps still to come:
the weights, AdamW's moments and step counts, the schedule's position, the
generator that draws the batches, the library's generator (dropout) and the
history of losses. Loading it into a fresh model and trainer and continuing
gives the same losses, bit for bit, as a run that never stopped.

Data parallelism. Given a ``world`` of N processes (``training.distributed``:
``mpirun -n N`` or ``train --nproc N``), each rank keeps its B/N rows of every
batch, the gradients and losses are averaged over the ranks before clipping
and the optimizer step, and only rank 0 writes checkpoints, plots, progress
and logs. Without one the loop is the single process it always was.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..autograd import no_grad
from ..data.batching import TokenWindows
from ..optim import AdamW, clip_grad_norm_
from ..optim.lr_scheduler import WarmupCosineLR
from ..plots.backend import missing_extra, note_once
from ..rng import get_rng_state, set_rng_state
from ..validation import check_fields, check_value
from .checkpoint import load_checkpoint, save_checkpoint
from .checkpoint_schema import describe, kind_of
from .distributed import World
from .progress import Progress


@dataclass
class TrainConfig:
    """How the loop trains: steps, batches, AdamW and its schedule, clipping, evaluation.

    These defaults are the loop's own, nanoGPT's recipe for its small
    character-level Shakespeare run; each task (``tinytransformer.tasks``) keeps
    its own defaults in its config and passes every value here.
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
        positive, non_negative = (int, "[1, inf)"), (float, "[0, inf)")
        check_fields(self, {
            "max_iters": positive, "batch_size": positive, "grad_accum": positive, "eval_interval": positive,
            "eval_iters": positive, "lr_decay_iters": positive, "warmup_iters": (int, "[0, inf)"),
            "lr": non_negative, "weight_decay": non_negative, "grad_clip": non_negative,
            "min_lr_ratio": (float, "[0, 1]"), "seed": (int, "[0, inf)"),
        })
        self.warmup_iters = min(self.warmup_iters, self.lr_decay_iters)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"TrainConfig: betas must be a pair (beta1, beta2), got {self.betas!r}")
        self.betas = tuple(check_value(f"TrainConfig: betas[{i}]", beta, float, "[0, 1)")
                           for i, beta in enumerate(self.betas))

    def to_dict(self):
        return asdict(self)


def default_loss(model, batch):
    """The loss of a model that takes its targets last and returns ``(output, loss)``: ``model(*batch)[1]``."""
    return model(*batch)[1]


class Trainer:
    """Train ``model`` with the loop above.

    ``train_data`` is a batch source (anything with ``next_batch(rng)``, see
    ``tinytransformer.data.batching``) or a 1-D array of token ids, which
    becomes random windows of ``model.config.block_size`` tokens. ``val_data``
    likewise (only token ids are evaluated by default). ``loss_fn(model, batch)``
    gives the loss (default ``model(*batch)[1]``). ``param_groups`` are the
    optimizer's groups (default ``model.optimizer_groups(weight_decay)``: decay
    on matrices only). ``evaluate(trainer) -> dict`` replaces the default
    evaluation (the loss on fixed batches of the training and validation tokens);
    ``evaluate_first`` evaluates before the first step of a fresh run. Without
    ``val_data`` or ``evaluate`` there is no evaluation.

    ``tokenizer`` and ``meta`` (a JSON-able dict, e.g. the corpus name) only
    travel into the checkpoints. With ``out_dir`` set, every evaluation writes a
    checkpoint and ``loss.png`` there. A checkpoint records its kind: ``meta``'s
    ``kind``, or a language model for a GPT or an RNN/LSTM, or "custom" (whose
    meta keys are free). ``overwrite`` lets the first save replace a checkpoint
    of another kind already in ``out_dir`` (``save_checkpoint``).

    ``world`` (``training.distributed.World``, default one process) trains
    data-parallel: ``config.batch_size`` stays the global batch, of which this
    rank takes its share (see ``training.distributed``).
    """

    def __init__(self, model, train_data, val_data=None, config=None, tokenizer=None, out_dir=None, meta=None, *,
                 loss_fn=default_loss, param_groups=None, evaluate=None, evaluate_first=True, overwrite=False,
                 world=None):
        self.model = model
        self.config = config = config if config is not None else TrainConfig()
        self.world = world = world if world is not None else World()
        if config.batch_size % world.size:
            raise ValueError(f"Trainer: batch_size {config.batch_size} is not divisible by the {world.size} ranks "
                             f"training together: each takes an equal share of every batch; use a multiple of "
                             f"{world.size}")
        self.train_data, self.val_data = self._source(train_data, "training"), self._source(val_data, "validation")
        self.loss_fn, self.custom_evaluate, self.evaluate_first = loss_fn, evaluate, evaluate_first
        self.evaluates = evaluate is not None or self.val_data is not None  # nothing to evaluate: no evaluations
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.meta = dict(meta or {})
        self.overwrite = overwrite
        groups = param_groups if param_groups is not None else model.optimizer_groups(config.weight_decay)
        self.optimizer = AdamW(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        self.scheduler = WarmupCosineLR(self.optimizer, config.warmup_iters, config.lr_decay_iters, config.min_lr_ratio)
        self.batch_rng = np.random.default_rng(config.seed)  # draws the training batches, the same on every rank
        set_rng_state(world.own_stream(get_rng_state()))     # dropout: rank r > 0 its own stream (distributed.py)
        self.threads = None  # a kernels.threads.AdaptiveThreads to update once per step, or None
        self.step = 0
        self.history = {"step": [], "train_loss": [], "lr": [], "eval_step": [], "eval_train_loss": [], "val_loss": []}
        self.bar = None

    def _source(self, data, name):
        """A batch source (this rank's rows of it, see ``World.share``); token ids become random windows
        (checked to be longer than one window)."""
        if data is None or hasattr(data, "next_batch"):
            return self.world.share(data)
        block_size = self.model.config.block_size
        tokens = np.asarray(data)
        if len(tokens) <= block_size:
            raise ValueError(
                f"Trainer: the {name} split has {len(tokens)} tokens, but a batch needs more than "
                f"block_size={block_size}; use a longer text or a smaller block size"
            )
        return self.world.share(TokenWindows(tokens, block_size, self.config.batch_size))

    @property
    def train_tokens(self):
        return self.train_data.tokens

    @property
    def val_tokens(self):
        return self.val_data.tokens

    @property
    def tokens_per_step(self):
        """Tokens one step reads (language modelling), or None for other data."""
        per_batch = getattr(self.train_data, "tokens_per_batch", None)
        return None if per_batch is None else per_batch * self.config.grad_accum

    def train_step(self) -> float:
        """One optimisation step (see the module docstring); returns the mean loss of its micro-batches."""
        c = self.config
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        total = 0.0
        for _ in range(c.grad_accum):
            loss = self.loss_fn(self.model, self.train_data.next_batch(self.batch_rng))
            (loss / c.grad_accum if c.grad_accum > 1 else loss).backward()
            total += loss.item()
        self.world.average_gradients(params)  # the global batch's mean gradient, on every rank
        if c.grad_clip > 0:
            clip_grad_norm_(params, c.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        loss = self.world.average(total / c.grad_accum)
        self.history["step"].append(self.step)
        self.history["train_loss"].append(loss)
        self.history["lr"].append(lr)
        return loss

    # ------------------------------------------------------------ evaluation
    def estimate_loss(self, source) -> float:
        """Mean loss over ``eval_iters`` batches of ``source`` (token ids or a source), always the same ones,
        without dropout.

        The batches come from their own generator, seeded afresh on each call,
        so evaluating never changes what training draws next.
        """
        source = self._source(source, "evaluation")
        rng = np.random.default_rng([self.config.seed, 1])
        was_training = self.model.training
        self.model.eval()
        losses = []
        with no_grad():
            for _ in range(self.config.eval_iters):
                losses.append(self.loss_fn(self.model, source.next_batch(rng)).item())
        self.model.train(was_training)
        return self.world.average(float(np.mean(losses)))  # every rank evaluated its rows of the same batches

    def evaluate(self) -> dict:
        """Evaluate now and append to the history: by default the training and validation loss
        (``{"train": ..., "val": ...}``), else what the ``evaluate`` callable returns."""
        self.world.check_same_state(self.model, self.batch_rng, "Trainer.evaluate")
        self.history["eval_step"].append(self.step)
        if self.custom_evaluate is not None:
            scores = self.custom_evaluate(self)
            self.history.setdefault("eval", []).append(scores)
            return scores
        losses = {"train": self.estimate_loss(self.train_data), "val": self.estimate_loss(self.val_data)}
        self.history["eval_train_loss"].append(losses["train"])
        self.history["val_loss"].append(losses["val"])
        return losses

    def log(self, text):
        """Print a line without breaking the progress bar (rank 0 only)."""
        if not self.world.is_root:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    # ------------------------------------------------------------- the loop
    def train(self, progress=True, on_eval=None, max_seconds=None, desc="train") -> dict:
        """Train until ``config.max_iters`` steps (counting steps done before a resume), or until
        ``max_seconds`` of training have passed.

        Evaluates before the first step of a fresh run (unless ``evaluate_first``
        is off), every ``eval_interval`` steps and after the last one; each
        evaluation calls ``on_eval(trainer, scores)`` if given and, with
        ``out_dir``, saves a checkpoint and the loss plot. Shows a progress bar
        (tqdm if installed) unless ``progress=False``. Returns the history.
        """
        c = self.config
        self.bar = Progress(c.max_iters, initial=self.step, enabled=progress and self.world.is_root, desc=desc)
        seconds, done = 0.0, 0  # time in training steps only, evaluations left out
        self.world.check_same_state(self.model, self.batch_rng, "Trainer.train")
        try:
            if self.step == 0 and self.evaluate_first and self.evaluates:
                self._after_eval(self.evaluate(), on_eval)
            while self.step < c.max_iters:
                started = time.perf_counter()
                loss = self.train_step()
                seconds, done = seconds + time.perf_counter() - started, done + 1
                if self.threads is not None:  # the fastest count among the cores other programs leave idle
                    self.threads.update(time.perf_counter() - started)
                shown = {"loss": f"{loss:.4f}"}
                if self.tokens_per_step is not None:
                    shown["tok_s"] = f"{done * self.tokens_per_step / seconds:,.0f}"
                self.bar.update(**shown)
                out_of_time = max_seconds is not None and self.world.from_root(seconds > max_seconds)  # all stop
                due = self.step % c.eval_interval == 0 or self.step == c.max_iters or out_of_time
                if due and self.evaluates:
                    self._after_eval(self.evaluate(), on_eval)
                if out_of_time:
                    break
        finally:
            self.bar.close()
            self.bar = None
        self.history["seconds"] = seconds
        return self.history

    def _after_eval(self, scores, on_eval):
        if self.custom_evaluate is None:
            self.log(f"step {self.step}: train loss {scores['train']:.4f}, val loss {scores['val']:.4f}")
        if self.out_dir is not None:
            self.save(self.out_dir)
        if self.out_dir is not None and self.world.is_root:
            try:
                self.plot(self.out_dir / "loss.png")
            except ImportError as err:  # matplotlib is optional: the run goes on without its figure
                if missing_extra(err) is None:
                    raise
                note_once(f"loss.png not drawn: {err}", write=self.bar.note if self.bar is not None else None)
        if on_eval is not None:
            on_eval(self, scores)

    def plot(self, path):
        """The loss curves as a PNG at ``path`` (needs matplotlib)."""
        from ..plots import plot_loss_curves

        model = self.meta.get("model_type", "gpt").upper()
        return plot_loss_curves(self.history, path, title=f"{model} on {self.meta.get('data', 'a corpus')}, step {self.step}")

    # ----------------------------------------------------------- checkpoints
    def save(self, folder):
        """Write a checkpoint: everything ``load`` needs to continue exactly (see the module docstring).
        Data-parallel, every rank calls it and rank 0 writes, with each rank's dropout generator."""
        library = self.world.gather(get_rng_state())  # every rank's, on rank 0
        if not self.world.is_root:
            return
        rng = {"batches": self.batch_rng.bit_generator.state, "library": library[0]}
        if self.world.size > 1:
            rng["library_by_rank"] = library
        meta = {
            **(kind_of(self.model) if "kind" not in self.meta else {}),
            **self.meta,
            "step": self.step,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "rng": rng,
            "scheduler": self.scheduler.state_dict(),
            "history": {k: v for k, v in self.history.items() if k != "seconds"},
        }
        save_checkpoint(folder, self.model.state_dict(), self.optimizer.state_dict(), meta, overwrite=self.overwrite)

    def load(self, folder) -> dict:
        """Restore a checkpoint written by ``save`` into this trainer (built with the same model shape
        and config); returns its meta. The next ``train_step`` is the one the saved run would have taken."""
        model_state, optimizer_state, meta = load_checkpoint(folder, reader="Trainer.load")
        if optimizer_state is None or "scheduler" not in meta:
            raise ValueError(f"Trainer.load: {folder} holds {describe(meta)} without the state of a training run "
                             "(optimizer, schedule, RNG), which only Trainer.save writes")
        try:  # every value below comes from the folder: an error names it
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
            self.scheduler.load_state_dict(meta["scheduler"])
            self.batch_rng.bit_generator.state = meta["rng"]["batches"]
            set_rng_state(self.world.restored_stream(meta["rng"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"Trainer.load: {folder} does not fit this trainer: {err}") from None
        self.step = int(meta["step"])
        self.history = meta["history"]
        return meta
