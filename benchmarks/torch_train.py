"""``tinytransformer train`` for a GPT, in PyTorch: the twin that the whole-run benchmark races.

    .venv/bin/python benchmarks/torch_train.py --max-iters 300 --out runs/torch-a --threads 2

The same run as ``python -m tinytransformer train`` with the same flags, step for step:

    data        the corpus, tokenizer and split of ``tasks/language_model.py`` (``pretraining_data``),
                random windows drawn by the same generator (``TokenWindows``, seeded with ``--seed``)
    weights     our GPT's initial weights under the same seed, loaded into ``TorchGPT`` (SDPA attention)
    optimiser   ``torch.optim.AdamW`` on our parameter groups (decay on matrices and embeddings only),
                our betas, eps and weight decay; the gradient norm clipped when ``--grad-clip`` > 0
    schedule    our ``cosine_with_warmup`` multiplier, through ``LambdaLR``
    evaluation  before the first step, every ``--eval-interval`` steps and after the last: ``--eval-iters``
                batches of each split from a generator seeded afresh each time (``Trainer.estimate_loss``),
                then a checkpoint (weights, optimiser, step, history: ``torch.save``, atomically) and the
                loss plot, as ``Trainer`` writes at each evaluation

Every default comes from ``LanguageModelConfig`` (only a GPT, one process). It lives here, beside
the benchmark, not in ``tinytransformer.reference``: it reads the task's config and the training
code's checkpoint writer, layers above the models (tests/test_layout.py). It prints
``step N: train loss X, val loss Y`` at each evaluation, as ``train`` does, and ``--summary FILE``
writes the final losses and the seconds spent in training steps. Torch's threads: ``--threads``
(default: torch's own choice).
"""

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from tinytransformer.data import load_corpus
from tinytransformer.data.batching import TokenWindows
from tinytransformer.data.segments import DOCUMENT_CORPORA, pretraining_data, train_tokenizer
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.optim.lr_scheduler import cosine_with_warmup
from tinytransformer.reference.torch_gpt import TorchGPT
from tinytransformer.rng import manual_seed
from tinytransformer.tasks.language_model import LanguageModelConfig
from tinytransformer.training.checkpoint import atomic_write_bytes, atomic_write_text

FLAGS = {"data": str, "tokenizer": str, "vocab_size": int, "n_layer": int, "n_head": int, "n_embd": int,
         "block_size": int, "dropout": float, "batch_size": int, "max_iters": int, "lr": float, "warmup_iters": int,
         "weight_decay": float, "grad_clip": float, "eval_interval": int, "eval_iters": int, "seed": int, "out": str}


class TorchRun:
    """One training run of a ``TorchGPT`` with ``Trainer``'s loop; ``config`` is a ``LanguageModelConfig``."""

    def __init__(self, config):
        if config.model != "gpt" or config.grad_accum != 1 or config.nproc != 1:
            raise ValueError("torch_train: only a GPT, without gradient accumulation, in one process")
        self.config, self.train_config = config, config.train_config()
        c = self.train_config
        text = load_corpus(config.data)
        tok = train_tokenizer(text, config.tokenizer, config.vocab_size)
        train_ids, val_ids = pretraining_data(text, tok, config.block_size, c.batch_size,
                                              by_document=config.data in DOCUMENT_CORPORA)
        self.train_data, self.val_data = (TokenWindows(ids, config.block_size, c.batch_size)
                                          for ids in (train_ids, val_ids))
        manual_seed(c.seed)  # our initial weights, drawn as prepare_pretraining draws them
        ours = GPT(GPTConfig(**{**config.model_config(), "vocab_size": tok.vocab_size}))
        self.model = TorchGPT.from_config(ours.config).load_numpy_state(ours.state_dict())
        params = dict(self.model.named_parameters())  # the tied lm_head / wte weight once
        groups = [{"params": [p for p in params.values() if p.ndim >= 2], "weight_decay": c.weight_decay},
                  {"params": [p for p in params.values() if p.ndim < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=1e-8, weight_decay=c.weight_decay,
                                           fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: cosine_with_warmup(step, c.warmup_iters, c.lr_decay_iters, c.min_lr_ratio))
        self.batch_rng = np.random.default_rng(c.seed)  # the training batches, as Trainer draws them
        self.step = 0
        self.history = {"step": [], "train_loss": [], "lr": [], "eval_step": [], "eval_train_loss": [], "val_loss": []}

    def loss(self, batch):
        x, y = (torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in batch)  # (B, T) each
        return self.model(x, y)[1]

    def train_step(self) -> float:
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        loss = self.loss(self.train_data.next_batch(self.batch_rng))
        loss.backward()
        if self.train_config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.history["step"].append(self.step)
        self.history["train_loss"].append(loss.item())
        self.history["lr"].append(lr)
        return self.history["train_loss"][-1]

    @torch.no_grad()
    def estimate_loss(self, source) -> float:
        """Mean loss over eval_iters batches, from a generator seeded afresh: ``Trainer.estimate_loss``."""
        rng = np.random.default_rng([self.train_config.seed, 1])
        self.model.eval()
        losses = [self.loss(source.next_batch(rng)).item() for _ in range(self.train_config.eval_iters)]
        self.model.train()
        return float(np.mean(losses))

    def evaluate(self):
        """Both losses, logged, then the checkpoint and the loss plot: what ``Trainer`` does at each evaluation."""
        train, val = self.estimate_loss(self.train_data), self.estimate_loss(self.val_data)
        self.history["eval_step"].append(self.step)
        self.history["eval_train_loss"].append(train)
        self.history["val_loss"].append(val)
        print(f"step {self.step}: train loss {train:.4f}, val loss {val:.4f}", flush=True)
        out = Path(self.config.out)
        out.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "step": self.step,
                    "rng": self.batch_rng.bit_generator.state, "config": self.config.to_dict()}, buffer)
        atomic_write_bytes(out / "checkpoint.pt", lambda f: f.write(buffer.getvalue()))
        atomic_write_text(out / "history.json", json.dumps(self.history) + "\n")
        try:
            from tinytransformer.plots import plot_loss_curves

            plot_loss_curves(self.history, out / "loss.png", title=f"TorchGPT on {self.config.data}, step {self.step}")
        except ImportError:  # matplotlib is optional, as for train
            pass

    def train(self) -> float:
        """Train to max_iters with evaluations; returns the seconds spent in training steps (evaluations left out)."""
        seconds = 0.0
        self.evaluate()
        while self.step < self.train_config.max_iters:
            start = time.perf_counter()
            self.train_step()
            seconds += time.perf_counter() - start
            if self.step % self.train_config.eval_interval == 0 or self.step == self.train_config.max_iters:
                self.evaluate()
        return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, kind in FLAGS.items():  # train's flags of the same names; their defaults: LanguageModelConfig's
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind)
    parser.add_argument("--bias", action="store_true", help="biases in the Linear and LayerNorm layers")
    parser.add_argument("--overwrite", action="store_true", help="accepted, as train's: the checkpoint is replaced")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--summary", help="write the final losses and training seconds here (JSON)")
    args = parser.parse_args(argv)
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    config = LanguageModelConfig(**given, bias=args.bias)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run = TorchRun(config)
    print(f"TorchGPT with {sum(p.numel() for p in run.model.parameters()) / 1e6:.2f}M parameters on {config.data}; "
          f"{run.train_config.max_iters} steps; {torch.get_num_threads()} torch threads", flush=True)
    seconds = run.train()
    h = run.history
    summary = {"step": run.step, "train_loss": h["eval_train_loss"][-1], "val_loss": h["val_loss"][-1],
               "last_step_loss": h["train_loss"][-1] if h["train_loss"] else None, "training_seconds": seconds}
    print(f"done: step {run.step}, val loss {summary['val_loss']:.4f}, {seconds:.1f} s", flush=True)
    if args.summary:
        atomic_write_text(args.summary, json.dumps(summary) + "\n")
    return summary


if __name__ == "__main__":
    main()
