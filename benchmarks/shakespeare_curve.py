"""Tiny Shakespeare, character level: our GPT against the same GPT in PyTorch, from identical weights.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/shakespeare_curve.py [--seeds 1 2 3]
    ... --weight-decay 0.1 --grad-clip 1 --out benchmarks/results/shakespeare_nanogpt.json   # nanoGPT's exact settings

nanoGPT's small CPU configuration (4 layers, 4 heads, width 128, block 64,
batch 12, 2,000 iterations, lr 1e-3 with 100 warmup steps and a cosine down to
1e-4, AdamW betas (0.9, 0.99), no dropout, and nanoGPT's default of no biases
in the Linear and LayerNorm layers), with ``tinytransformer train``'s defaults
of no weight decay and no gradient clipping (nanoGPT: 0.1 and 1.0). Both
models start from our initial weights (loaded by name into the PyTorch twin of
``tinytransformer.reference.torch_gpt``), see the same batches in the same
order, and use the same optimiser and schedule, so their loss curves should lie
on top of each other: any gap is float32 rounding, or a bug.

Writes benchmarks/results/shakespeare_curve.json and .png (or --out), and prints the final
validation losses (on 200 fixed batches), the wall and CPU times and the
largest gap between the two curves; ``--report`` redraws the plot from the JSON.
Both run on one thread (``tt.kernels.set_num_threads(1)`` for BLAS and Numba,
``torch.set_num_threads(1)``), so the times compare the code, not how each
library spreads over cores.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tinytransformer.autograd import no_grad
from tinytransformer.data import CharTokenizer, load_corpus, random_windows, train_val_split
from tinytransformer.kernels import backend_info, set_num_threads
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.optim.lr_scheduler import cosine_with_warmup
from tinytransformer.rng import manual_seed
from tinytransformer.reference.torch_gpt import TorchGPT
from tinytransformer.training import TrainConfig, Trainer
from tinytransformer.training.checkpoint import atomic_write_text

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
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % config.eval_interval == 0 or step == config.max_iters:
            evaluate(step)
    return history


def setup(max_iters, weight_decay, grad_clip, seed):
    """The corpus split, the model config and the training config of one run."""
    text = load_corpus("shakespeare")
    tokenizer = CharTokenizer.train(text)
    train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
    model_config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128,
                             bias=False)
    config = TrainConfig(max_iters=max_iters, batch_size=12, lr=1e-3, warmup_iters=100, weight_decay=weight_decay,
                         betas=(0.9, 0.99), grad_clip=grad_clip, eval_interval=250, eval_iters=20, seed=seed)
    return tokenizer, train_ids, val_ids, model_config, config


def ours_only(max_iters, weight_decay, grad_clip, seed):
    """Our half alone, for another seed: the final validation loss (200 fixed batches) and CPU seconds."""
    tokenizer, train_ids, val_ids, model_config, config = setup(max_iters, weight_decay, grad_clip, seed)
    manual_seed(seed)
    model = GPT(model_config)
    start_cpu = time.process_time()
    Trainer(model, train_ids, val_ids, config, tokenizer=tokenizer).train(progress=False)
    final = ours_loss(model, eval_batches(val_ids, model_config.block_size, config, FINAL_EVAL_ITERS))
    print(f"seed {seed}: validation loss {final:.4f}", flush=True)
    return {"final_val_loss": final, "cpu_seconds": round(time.process_time() - start_cpu, 1)}


def run(max_iters, weight_decay, grad_clip, seed=1337):
    """Train both models; returns the result record (see ``report``)."""
    tokenizer, train_ids, val_ids, model_config, config = setup(max_iters, weight_decay, grad_clip, seed)
    manual_seed(config.seed)
    ours = GPT(model_config)
    twin = TorchGPT.from_config(model_config).load_numpy_state(ours.state_dict())
    final_batches = eval_batches(val_ids, model_config.block_size, config, FINAL_EVAL_ITERS)

    start, start_cpu = time.perf_counter(), time.process_time()
    trainer = Trainer(ours, train_ids, val_ids, config, tokenizer=tokenizer)
    trainer.train(progress=False, on_eval=lambda t, losses: print(f"ours step {t.step}: val loss {losses['val']:.4f}",
                                                                    flush=True))
    ours_seconds, ours_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    start, start_cpu = time.perf_counter(), time.process_time()
    torch_history = train_torch(twin, train_ids, val_ids, model_config.block_size, config)
    torch_seconds, torch_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {
        "config": {**model_config.to_dict(), **config.to_dict()},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(), "threads": 1,
                    "tinytransformer_backend": backend_info()},
        "final_eval_batches": FINAL_EVAL_ITERS,
        "tinytransformer": {"seconds": round(ours_seconds, 1), "cpu_seconds": round(ours_cpu, 1),
                            "final_val_loss": ours_loss(ours, final_batches), "history": trainer.history},
        "pytorch": {"seconds": round(torch_seconds, 1), "cpu_seconds": round(torch_cpu, 1),
                    "final_val_loss": torch_loss(twin, final_batches), "history": torch_history},
    }


def report(result, png):
    """Print the summary and draw the two curves and their difference to shakespeare_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, theirs = result["tinytransformer"], result["pytorch"]
    h, t = ours["history"], theirs["history"]
    step_gap = np.abs(np.subtract(h["train_loss"], t["train_loss"]))
    val_gap = np.abs(np.subtract(h["val_loss"], t["val_loss"])).max()
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax.plot(h["step"], h["train_loss"], color="tab:blue", alpha=0.35, lw=0.8, label="tinytransformer, each batch")
    ax.plot(t["step"], t["train_loss"], color="tab:red", alpha=0.35, lw=0.8, ls="--", label="PyTorch, each batch")
    ax.plot(h["eval_step"], h["val_loss"], "o-", color="tab:blue", label="tinytransformer, validation")
    ax.plot(t["eval_step"], t["val_loss"], "x--", color="tab:red", ms=8, label="PyTorch, validation")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per character)", ylim=(1.3, 4.4),
           title="Tiny Shakespeare, nanoGPT's small CPU config, identical start")
    ax.legend()
    ax.grid(alpha=0.3)
    ulp = np.spacing(np.float32(2.0))  # the float32 spacing of numbers near the losses
    ax_gap.plot(h["step"], step_gap / ulp, ".", ms=2)
    ax_gap.set(xlabel="step", ylabel="|loss ours - loss PyTorch| in float32 ulps (near 2.0)",
               title=f"The same batch's loss: bit-identical on {np.mean(step_gap == 0):.0%} of the steps")
    ax_gap.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"final validation loss ({result['final_eval_batches']} fixed batches): "
          f"tinytransformer {ours['final_val_loss']:.4f}, PyTorch {theirs['final_val_loss']:.4f}")
    for name, record in (("tinytransformer", ours), ("PyTorch", theirs)):
        print(f"{name}: {record['seconds']:.0f} s wall, {record['cpu_seconds']:.0f} s CPU on one thread "
              "(wall > CPU when other jobs share the cores)")
    print(f"largest gap: {step_gap.max():.2e} between the training losses of one step (identical on "
          f"{np.mean(step_gap == 0):.0%} of the steps), {val_gap:.2e} between the validation losses")
    if result.get("seeds"):
        extra = sorted(result["seeds"].items(), key=lambda kv: int(kv[0]))
        losses = [ours["final_val_loss"]] + [r["final_val_loss"] for _, r in extra]
        seeds = [result["config"]["seed"], *(seed for seed, _ in extra)]
        print(f"tinytransformer over seeds {', '.join(map(str, seeds))}: "
              f"{', '.join(f'{x:.4f}' for x in losses)}; mean {np.mean(losses):.4f}, sd {np.std(losses, ddof=1):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-iters", type=int, default=2000, help="steps (default 2000)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="AdamW's weight decay (default 0, as `tinytransformer train`; nanoGPT: 0.1)")
    parser.add_argument("--grad-clip", type=float, default=0.0,
                        help="gradient-norm clipping, 0 for none (default 0, as `tinytransformer train`; nanoGPT: 1.0)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[],
                        help="more seeds to train (our model only) after the seed-1337 race, for the spread")
    parser.add_argument("--out", default=str(RESULTS / "shakespeare_curve.json"), help="the JSON (the PNG beside it)")
    parser.add_argument("--report", action="store_true", help="only redraw the plot and summary from the JSON")
    args = parser.parse_args()
    path = Path(args.out)
    if not args.report:
        torch.set_num_threads(1)
        set_num_threads(1)  # NumPy's BLAS and Numba's loops on one thread too: a like-for-like race
        result = run(args.max_iters, args.weight_decay, args.grad_clip)
        result["seeds"] = {seed: ours_only(args.max_iters, args.weight_decay, args.grad_clip, seed)
                           for seed in args.seeds}
        RESULTS.mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps(result, indent=1))
    report(json.loads(path.read_text()), path.with_suffix(".png"))


if __name__ == "__main__":
    main()
