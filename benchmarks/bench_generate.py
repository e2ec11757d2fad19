"""Generation speed: our graph path, our inference path and PyTorch with a KV cache; and GPT-2's load time.

    .venv/bin/python benchmarks/bench_generate.py                  # configs A and B, one thread
    .venv/bin/python benchmarks/bench_generate.py --configs A --rounds 5 --threads 2
    .venv/bin/python benchmarks/bench_generate.py --load           # also: load a 124M GPT-2 folder (writes 500 MB to a temp dir)

Tokens per second for ``--new-tokens`` (256) new tokens from a one-token prompt, sampled at
temperature 1, every implementation with its KV cache (refilled from the last block_size tokens
when the context is full, as ``generate`` does):

- ours, graph: ``generate(..., use_graph=True)``, each layer's ``forward`` under ``no_grad``;
- ours, inference: ``generate(...)``, each layer's ``infer``: the same arithmetic on arrays;
- torch: ``TorchGPT.generate`` (tinytransformer/reference/torch_gpt.py): SDPA, ``inference_mode``.

The three run interleaved, one generation each per round (the order alternating); medians over
the rounds, of wall time and of CPU time (``time.process_time``, all the process's threads: on a
machine shared with other jobs it counts our work, not the waiting). The same weights in all
three (float32). Results go to benchmarks/results/generate.json (written atomically) after a header
(CPU, cores, load average before and after, threads, versions; benchmarks/machine.py).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep (as in bench_train.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tinytransformer as tt  # noqa: E402
from machine import machine_header, write_result  # noqa: E402
from tinytransformer.generation import generate  # noqa: E402
from tinytransformer.kernels import get_backend, set_num_threads  # noqa: E402
from tinytransformer.models import GPT, GPTConfig  # noqa: E402
from tinytransformer.nn import skip_init  # noqa: E402
from tinytransformer.reference.torch_gpt import TorchGPT  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CONFIGS = {  # bench_train.py's
    "A": dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64),
    "B": dict(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256),
}
GPT2_SMALL = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, activation="gelu_tanh")


def bench_generation(name, new_tokens, rounds):
    tt.manual_seed(0)
    model = GPT(GPTConfig(**CONFIGS[name])).eval()
    twin = TorchGPT.from_config(model.config).load_numpy_state(model.state_dict()).eval()
    prompt = np.zeros((1, 1), dtype=np.int64)
    runs = {
        "ours_graph": lambda n: generate(model, prompt, n, seed=0, use_graph=True),
        "ours_inference": lambda n: generate(model, prompt, n, seed=0),
        "torch_kv_cache": lambda n: twin.generate(torch.from_numpy(prompt), n),
    }
    for run in runs.values():
        run(3)  # warm-up: Numba's kernels, torch's first call
    seconds, cpu_seconds = ({run_name: [] for run_name in runs} for _ in range(2))
    for r in range(rounds):
        for run_name in runs if r % 2 == 0 else reversed(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = runs[run_name](new_tokens)
            cpu_seconds[run_name].append(time.process_time() - start_cpu)
            seconds[run_name].append(time.perf_counter() - start)
            assert tuple(out.shape) == (1, 1 + new_tokens)
    tps, cpu_tps = ({run_name: new_tokens / float(np.median(s)) for run_name, s in times.items()}
                    for times in (seconds, cpu_seconds))
    return {"tokens_per_s": tps, "tokens_per_cpu_s": cpu_tps, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "new_tokens": new_tokens, "inference_over_graph": tps["ours_inference"] / tps["ours_graph"],
            "inference_over_torch": tps["ours_inference"] / tps["torch_kv_cache"],
            "inference_over_torch_cpu": cpu_tps["ours_inference"] / cpu_tps["torch_kv_cache"]}


def bench_load():
    """Seconds to build GPT-2 small's shapes with and without the initial draw, and to load such a folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPTConfig(**GPT2_SMALL)
    start = time.perf_counter()
    GPT(config)
    drawn = time.perf_counter() - start
    start = time.perf_counter()
    with skip_init():
        GPT(config)
    empty = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)  # a random GPT-2 small, as transformers writes it
        start = time.perf_counter()
        GPT.from_pretrained(folder)
        loaded = time.perf_counter() - start
    return {"build_drawing_s": drawn, "build_skip_init_s": empty, "from_pretrained_s": loaded}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="AB")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--load", action="store_true", help="also time loading a 124M GPT-2 folder")
    parser.add_argument("--out", default=str(RESULTS / "generate.json"))
    args = parser.parse_args()
    set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    header = machine_header(args.threads, torch_threads=torch.get_num_threads(), new_tokens=args.new_tokens,
                            rounds=args.rounds, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY"))
    result = {"header": header}
    print(f"{header['cpu']}, {header['cores']} cores, load average before {header['load_average_before'][0]:.2f}; "
          f"{args.threads} thread(s), backend {get_backend()}; numpy {np.__version__}, numba {header['numba']}, "
          f"torch {torch.__version__}")
    print(f"{'config':<8}{'ours, graph':>14}{'ours, inference':>18}{'torch, KV cache':>18}"
          f"{'inference/graph':>18}{'inference/torch':>18}{'(CPU time)':>12}   (tokens/s, {args.new_tokens} new tokens)")
    for name in args.configs:
        r = result[name] = bench_generation(name, args.new_tokens, args.rounds)
        t = r["tokens_per_s"]
        print(f"{name:<8}{t['ours_graph']:>14.0f}{t['ours_inference']:>18.0f}{t['torch_kv_cache']:>18.0f}"
              f"{r['inference_over_graph']:>17.2f}x{r['inference_over_torch']:>17.2f}x"
              f"{r['inference_over_torch_cpu']:>11.2f}x")
    if args.load:
        r = result["load"] = bench_load()
        print(f"GPT-2 small (124M): GPT(config) {r['build_drawing_s']:.2f} s drawing its weights, "
              f"{r['build_skip_init_s']:.2f} s under skip_init(); GPT.from_pretrained {r['from_pretrained_s']:.2f} s")
    write_result(args.out, result, indent=2)


if __name__ == "__main__":
    main()
