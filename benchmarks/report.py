"""Render the benchmark results as markdown tables and two figures.

    .venv/bin/python benchmarks/report.py      # reads the JSON files `make bench` writes in benchmarks/results/

Writes benchmarks/results/RESULTS.md (issue 15's targets against what was measured first,
then the tables, each run's header first), benchmarks/results/train.png (training step time
and generation speed) and benchmarks/results/targets.png (each target's measured ratio).
"""

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results"
IMPLS = ("numpy", "numba", "torch")
LABELS = {"numpy": "tinytransformer NumPy", "numba": "tinytransformer Numba", "torch": "PyTorch"}


def runs():
    """{file stem: result} for every training-benchmark file, the main one first."""
    files = sorted(RESULTS.glob("train*.json"), key=lambda p: (p.stem != "train", p.stem))
    return {p.stem: json.loads(p.read_text()) for p in files}


def header_lines(h):
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, {b['num_threads']} threads)"
                     for b in h.get("tinytransformer_blas") or [])
    return [
        f"- {h['date']}, {h['cpu']} ({h['cores']} cores, AVX-512: {h['avx512']}), {h['machine']}",
        f"- load average before {', '.join(f'{x:.1f}' for x in h['load_average_before'])}; "
        f"after {', '.join(f'{x:.1f}' for x in h.get('load_average_after', []))}",
        f"- threads: {h['threads']} (BLAS and Numba: tinytransformer.kernels.set_num_threads; torch: {h['torch_threads']}); "
        f"Numba threading layer {h['tinytransformer_threading_layer']}",
        f"- Python {h['python']}, NumPy {h['numpy']}, Numba {h['tinytransformer_numba']}, torch {h['torch']} "
        f"(BLAS: {h['torch_blas']}), tinytransformer {h['tinytransformer']}",
        f"- NumPy's BLAS: {blas}",
        f"- OPENBLAS_CORETYPE={h['OPENBLAS_CORETYPE']}, OPENBLAS_L2_SIZE={h['OPENBLAS_L2_SIZE']} during the run; "
        f"in the caller's environment: {h['caller_environment']}; OMP_WAIT_POLICY={h['OMP_WAIT_POLICY']}, "
        f"OPENBLAS_THREAD_TIMEOUT={h.get('OPENBLAS_THREAD_TIMEOUT')}; allocator tuned: {h['tinytransformer_allocator_tuned']}",
    ]


def step_table(all_runs):
    rows = ["| run | config | NumPy ms | Numba ms | torch ms | Numba / torch | NumPy / torch |", "|---" * 7 + "|"]
    for stem, r in all_runs.items():
        for name, s in r.get("step", {}).items():
            cell = lambda impl, s=s: f"{s[impl]['median_ms']:.1f} [{s[impl]['q1_ms']:.0f}-{s[impl]['q3_ms']:.0f}]"
            rows.append(f"| {stem} ({r['header']['threads']} thr) | {name} | {cell('numpy')} | {cell('numba')} | "
                        f"{cell('torch')} | {s['ratios']['numba/torch']:.2f} | {s['ratios']['numpy/torch']:.2f} |")
    return rows


def generation_table(all_runs):
    rows = ["| run | config | new tokens | ours, KV cache (Numba) | ours, KV cache (NumPy) | ours, no cache | "
            "torch, no cache | cache speed-up | ours cached / torch |", "|---" * 9 + "|"]
    for stem, r in all_runs.items():
        for name, g in r.get("generation", {}).items():
            tps = lambda k, g=g: f"{g[k]['tokens_per_s']:.1f}"
            rows.append(f"| {stem} | {name} | {g['new_tokens']} | {tps('numba_cache')} | {tps('numpy_cache')} | "
                        f"{tps('numba_no_cache')} | {tps('torch_no_cache')} | {g['cache_speedup']:.1f}x | "
                        f"{g['ours_cache_over_torch_no_cache']:.2f} |")
    return rows


def memory_table(all_runs):
    rows = ["| run | config | " + " | ".join(f"{LABELS[i]} peak (step) MB" for i in IMPLS) + " |", "|---" * 5 + "|"]
    for stem, r in all_runs.items():
        for name, m in r.get("memory", {}).items():
            rows.append(f"| {stem} | {name} | " + " | ".join(
                f"{m[i]['peak_mb']:.0f} ({m[i]['step_mb']:.0f})" for i in IMPLS) + " |")
    return rows


def other_lines(all_runs):
    lines = []
    for stem, r in all_runs.items():
        for name, a in r.get("allocator", {}).items():
            lines.append(f"- {stem}, config {name}, Numba: glibc's default malloc {a['default']['median_ms']:.1f} ms per step, "
                         f"{a['default']['page_faults_per_step']} page faults; tuned {a['tuned']['median_ms']:.1f} ms, "
                         f"{a['tuned']['page_faults_per_step']} page faults")
        if "startup" in r:
            cold, cached = r["startup"]["cold"], r["startup"]["cached"]
            lines.append(f"- {stem}, Numba compile (config A): first step of a process with an empty cache "
                         f"{cold['first_step_s']:.1f} s; of the next process, loading the cache {cached['first_step_s']:.2f} s "
                         f"(its second step {cached['second_step_s']:.2f} s)")
    return lines


def kernel_table():
    path = RESULTS / "kernels.json"
    if not path.exists():
        return []
    k = json.loads(path.read_text())
    rows = [f"Per kernel, forward + backward ({k['info'].get('clock')} clock, {k['info'].get('numba_num_threads')} thread(s), "
            f"median of {k['rounds']} interleaved rounds):", "",
            "| kernel | config | shape | NumPy ms | Numba ms | torch ms | NumPy / Numba | Numba / torch |", "|---" * 8 + "|"]
    for r in k["results"]:
        rows.append(f"| {r['kernel']} | {r['config']} | {r['shape']} | {r['numpy_ms']:.2f} | {r['numba_ms']:.2f} | "
                    f"{r['torch_ms']:.2f} | {r['numpy_over_numba']:.2f} | {r['numba_over_torch']:.2f} |")
    return rows


def load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def targets(all_runs):
    """Issue 15's targets: (what, asked, measured, met, where from), each ratio measured in one `make bench`."""
    rows = []

    def add(what, measured, bound, below, source):
        met = measured <= bound if below else measured >= bound
        rows.append((what, f"{'<=' if below else '>='} {bound}", measured, met, source))

    par = load("parallel")
    if par:
        for name, bound in (("A", 0.7), ("B", 0.85)):
            r = par["step"].get(name)
            if r:
                best = min(("ours_1x2", "ours_mpi_2x1"), key=lambda v: r[v]["median_ms"])
                add(f"training step {name}, 2 cores: our fastest ({best}) / torch eager, 2 threads",
                    r[best]["median_ms"] / r["torch_2t"]["median_ms"], bound, True,
                    f"parallel.json: {r[best]['median_ms']:.1f} vs {r['torch_2t']['median_ms']:.1f} ms; "
                    f"torch DDP 2x1 {r['torch_ddp_2x1']['median_ms']:.1f} ms")
    one = all_runs.get("train")
    for name, bound in (("A", 0.9), ("B", 0.95)):
        if one and name in one.get("step", {}):
            s = one["step"][name]
            add(f"training step {name}, 1 thread: Numba / torch", s["ratios"]["numba/torch"], bound, True,
                f"train.json: {s['numba']['median_ms']:.1f} vs {s['torch']['median_ms']:.1f} ms")
    two = all_runs.get("train_2threads")
    if two and "B" in two.get("floor", {}) and par and "B" in par["step"]:
        floor = two["floor"]["B"]["seconds"] * 1e3
        r = par["step"]["B"]
        best = min(("ours_1x2", "ours_mpi_2x1"), key=lambda v: r[v]["median_ms"])
        add(f"training step B, 2 cores ({best}) / its matrix products alone on 2 threads",
            r[best]["median_ms"] / floor, 1.3, True,
            f"{r[best]['median_ms']:.0f} ms vs floor {floor:.0f} ms ({two['floor']['B']['gflop']:.0f} GFLOP at "
            f"{two['floor']['B']['gflop_per_s']:.0f} GFLOP/s); threads alone {two['floor']['B']['numba_step_over_floor']:.2f}x")
    near = load("neighbour")
    if near:
        d = near["ours_default"]
        add("train's default settings beside one busy process / alone (config A, whole run)", d["slowdown"], 1.25,
            True, f"neighbour.json: {d['beside_busy_s']:.1f} vs {d['alone_s']:.1f} s; " + ", ".join(
                f"{k} {v['slowdown']:.2f}x" for k, v in near.items() if k not in ("header", "ours_default")))
    gen = load("generate")
    for name, bound in (("A", 1.3), ("B", 1.0)):
        if gen and name in gen:
            t = gen[name]["tokens_per_s"]
            add(f"generation {name}, KV cache, 1 thread: ours / torch eager with its KV cache (tokens/s)",
                gen[name]["inference_over_torch"], bound, False,
                f"generate.json: {t['ours_inference']:.0f} vs {t['torch_kv_cache']:.0f} tokens/s")
    runs = load("runs")
    for name, bound in (("A", 0.8), ("B", 0.85)):
        if runs and name in runs:
            r = runs[name]
            m = r["median"]
            best = min((k for k in m if k != "torch"), key=lambda k: m[k]["wall_s"])
            add(f"whole `train` run {name} ({r['steps']} steps; ours {best}) / the PyTorch twin, 2 threads",
                m[best]["wall_s"] / m["torch"]["wall_s"], bound, True,
                "runs.json: " + ", ".join(f"{k} {v['wall_s']:.1f} s" for k, v in m.items()))
    return rows


def target_lines(rows):
    lines = ["| target | asked | measured | met | measured as |", "|---" * 5 + "|"]
    for what, asked, measured, met, source in rows:
        lines.append(f"| {what} | {asked} | {measured:.2f} | {'yes' if met else '**no**'} | {source} |")
    return lines


def plot_targets(rows, path):
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh(y, [r[2] for r in rows], color=["tab:green" if r[3] else "tab:red" for r in rows])
    ax.scatter([float(r[1].split()[1]) for r in rows], y, marker="|", s=300, color="black", label="target")
    ax.set_yticks(list(y))
    ax.set_yticklabels([r[0].split(":")[0][:70] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("measured ratio (time: lower is better; generation tokens/s: higher is better)")
    ax.set_title("Issue 15's targets on this machine (green: met)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(all_runs, path):
    fig, (ax_step, ax_gen) = plt.subplots(1, 2, figsize=(12, 4.5))
    bars = [(stem, name, s) for stem, r in all_runs.items() for name, s in r.get("step", {}).items()]
    width = 0.8 / len(IMPLS)
    for j, impl in enumerate(IMPLS):
        ratios = [s[impl]["median_ms"] / s["torch"]["median_ms"] for _, _, s in bars]
        errors = [[(s[impl]["median_ms"] - s[impl]["q1_ms"]) / s["torch"]["median_ms"] for _, _, s in bars],
                  [(s[impl]["q3_ms"] - s[impl]["median_ms"]) / s["torch"]["median_ms"] for _, _, s in bars]]
        ax_step.bar([i + j * width for i in range(len(bars))], ratios, width, yerr=errors, label=LABELS[impl], capsize=3)
    ax_step.axhline(1.0, color="gray", lw=0.8)
    ax_step.set_xticks([i + width for i in range(len(bars))])
    ax_step.set_xticklabels([f"{name}, {all_runs[stem]['header']['threads']} thr" for stem, name, _ in bars])
    ax_step.set_ylabel("training step time / PyTorch's (median, quartiles)")
    ax_step.set_title("GPT training step (forward, backward, AdamW)")
    ax_step.legend()
    gens = [(stem, name, g) for stem, r in all_runs.items() for name, g in r.get("generation", {}).items()]
    kinds = [("numba_cache", "ours, KV cache"), ("numba_no_cache", "ours, no cache"), ("torch_no_cache", "PyTorch, no cache")]
    width = 0.8 / len(kinds)
    for j, (key, label) in enumerate(kinds):
        ax_gen.bar([i + j * width for i in range(len(gens))], [g[key]["tokens_per_s"] for _, _, g in gens], width, label=label)
    ax_gen.set_yscale("log")
    ax_gen.set_xticks([i + width for i in range(len(gens))])
    ax_gen.set_xticklabels([f"{name}, {all_runs[stem]['header']['threads']} thr" for stem, name, _ in gens])
    ax_gen.set_ylabel("tokens per second (log scale)")
    ax_gen.set_title(f"Generation, {gens[0][2]['new_tokens'] if gens else '?'} new tokens, batch 1")
    ax_gen.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(RESULTS), help="the folder of the result files")
    RESULTS = Path(parser.parse_args().dir)
    all_runs = runs()
    lines = ["# Benchmark results", "", "Regenerate with `make bench` (see benchmarks/bench_train.py).", ""]
    for stem, r in all_runs.items():
        lines += [f"Run `{stem}`:", ""] + header_lines(r["header"]) + [""]
    rows = targets(all_runs)
    lines += ["## Targets (issue 15)", "", "Each ratio from this `make bench`; the files' headers below say the "
              "machine and its load.", ""] + target_lines(rows) + [""]
    for name in ("parallel", "generate", "runs", "neighbour"):
        if load(name):
            h = load(name)["header"]
            lines += [f"- `{name}.json`: {h['date']}, {h['cpu']}, {h['cores']} cores, load average before "
                      f"{h['load_average_before'][0]:.1f}, after {h.get('load_average_after', [float('nan')])[0]:.1f}"]
    lines += ["", "## Training step (median ms [quartiles])", ""] + step_table(all_runs) + [""]
    lines += ["## Generation (tokens per second)", ""] + generation_table(all_runs) + [""]
    lines += ["## Peak resident memory of a training step", ""] + memory_table(all_runs) + [""]
    lines += ["## Allocator and compile time", ""] + other_lines(all_runs) + [""]
    lines += ["## Kernels", ""] + kernel_table() + [""]
    atomic_write_text(RESULTS / "RESULTS.md", "\n".join(lines))
    plot(all_runs, RESULTS / "train.png")
    if rows:
        plot_targets(rows, RESULTS / "targets.png")
    print("\n".join(lines))
    print(f"wrote {RESULTS / 'RESULTS.md'} and {RESULTS / 'train.png'}")


if __name__ == "__main__":
    main()
