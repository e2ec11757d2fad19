"""Tiny Shakespeare, character level: our GPT against the same GPT in PyTorch, from identical weights.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/shakespeare_curve.py [--max-iters 2000]

nanoGPT's small CPU configuration (4 layers, 4 heads, width 128, block 64,
batch 12, 2,000 iterations, lr 1e-3 with 100 warmup steps and a cosine down to
1e-4, AdamW betas (0.9, 0.99) and weight decay 0.1, gradient clipping at 1.0,
no dropout). Both models start from our initial weights (loaded by name into
the PyTorch twin of ``tinytransformer.reference.torch_gpt``), see the same
batches in the same order, and use the same optimiser and schedule, so their
loss curves should lie on top of each other: any gap is float32 rounding
accumulated over 2,000 steps, or a bug.

Writes benchmarks/results/shakespeare_curve.json and .png, and prints the final
validation losses (on 200 fixed batches) and the wall times. Both run on one
thread (NumPy's BLAS through threadpoolctl, ``torch.set_num_threads(1)``), so
the times compare the code, not how each library spreads over cores.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from tinytransformer.autograd import no_grad
from tinytransformer.data import CharTokenizer, load_corpus, random_windows, train_val_split
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.optim.lr_scheduler import cosine_with_warmup
from tinytransformer.random import manual_seed
from tinytransformer.reference.torch_gpt import TorchGPT
from tinytransformer.training import TrainConfig, Trainer, plot_loss_curves

RESULTS = Path(__file__).parent / "results"
FINAL_EVAL_ITERS = 200


def eval_batches(tokens, block_size, config, n):
    """The windows ``Trainer.estimate_loss`` uses (its generator, seeded the same way), so both
    models are evaluated on exactly the same text."""
    rng = np.random.default_rng([config.seed, 1])
    return [random_windows(tokens, block_size, config.batch_size, rng) for _ in range(n)]


def ours_loss(model, batches):
    model.eval()
    with no_grad():
        losses = [model(x, y)[1].item() for x, y in batches]
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def torch_loss(model, batches):
    model.eval()
    losses = [model(torch.from_numpy(x), torch.from_numpy(y))[1].item() for x, y in batches]
    model.train()
    return float(np.mean(losses))


def train_torch(model, train_ids, val_ids, block_size, config):
    """nanoGPT's loop for the twin: the batches, the AdamW groups, the schedule and the clipping of ``Trainer``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=config.betas,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, config.warmup_iters, config.lr_decay_iters, config.min_lr_ratio)
    )
    rng = np.random.default_rng(config.seed)  # the Trainer's batch generator
    history = {"step": [], "train_loss": [], "eval_step": [], "eval_train_loss": [], "val_loss": []}

    def evaluate(step):
        history["eval_step"].append(step)
        history["eval_train_loss"].append(torch_loss(model, eval_batches(train_ids, block_size, config, config.eval_iters)))
        history["val_loss"].append(torch_loss(model, eval_batches(val_ids, block_size, config, config.eval_iters)))
        print(f"torch step {step}: val loss {history['val_loss'][-1]:.4f}", flush=True)

    evaluate(0)
    for step in range(1, config.max_iters + 1):
        x, y = random_windows(train_ids, block_size, config.batch_size, rng)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % config.eval_interval == 0 or step == config.max_iters:
            evaluate(step)
    return history


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-iters", type=int, default=2000)
    args = parser.parse_args()

    text = load_corpus("shakespeare")
    tokenizer = CharTokenizer.train(text)
    train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
    model_config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
    config = TrainConfig(max_iters=args.max_iters, batch_size=12, lr=1e-3, warmup_iters=100, weight_decay=0.1,
                         betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250, eval_iters=20, seed=1337)
    manual_seed(config.seed)
    ours = GPT(model_config)
    twin = TorchGPT.from_config(model_config).load_numpy_state(ours.state_dict())
    final_batches = eval_batches(val_ids, model_config.block_size, config, FINAL_EVAL_ITERS)

    start = time.perf_counter()
    trainer = Trainer(ours, train_ids, val_ids, config, tokenizer=tokenizer)
    trainer.train(progress=False, on_eval=lambda t, losses: print(f"ours step {t.step}: val loss {losses['val']:.4f}",
                                                                    flush=True))
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    torch_history = train_torch(twin, train_ids, val_ids, model_config.block_size, config)
    torch_seconds = time.perf_counter() - start

    result = {
        "config": {**model_config.to_dict(), **config.to_dict()},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "tinytransformer": {"seconds": round(ours_seconds, 1), "final_val_loss": ours_loss(ours, final_batches),
                            "history": trainer.history},
        "pytorch": {"seconds": round(torch_seconds, 1), "final_val_loss": torch_loss(twin, final_batches),
                    "history": torch_history},
        "final_eval_batches": FINAL_EVAL_ITERS,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shakespeare_curve.json").write_text(json.dumps(result, indent=1))
    plot_loss_curves(trainer.history, RESULTS / "shakespeare_curve.png", curves={"PyTorch twin": torch_history},
                     title=f"Tiny Shakespeare, char level: tinytransformer vs PyTorch, {config.max_iters} steps")
    gap = np.abs(np.subtract(trainer.history["val_loss"], torch_history["val_loss"])).max()
    print(f"final val loss ({FINAL_EVAL_ITERS} batches): tinytransformer {result['tinytransformer']['final_val_loss']:.4f}"
          f" in {ours_seconds:.0f} s, PyTorch {result['pytorch']['final_val_loss']:.4f} in {torch_seconds:.0f} s; "
          f"largest gap between the validation curves {gap:.4f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):  # NumPy's BLAS on one thread too: a like-for-like race
        main()
