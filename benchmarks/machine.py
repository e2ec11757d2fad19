"""What a benchmark ran on, for the header of its result file: the CPU, its cores and load, the versions.

    from machine import machine_header       # benchmarks/ is the script's folder, so on sys.path
    header = machine_header(threads=2)       # then header["load_average_after"] = os.getloadavg() at the end

On a machine shared with other jobs the load average before and after is what says whether a
figure can be trusted: with 2 cores, a load near 2 means the measurement shared them.
"""

import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine_header(threads, **extra) -> dict:
    """Date, machine, CPU, cores, the load average now, threads, and the versions of Python, NumPy, Numba,
    torch and tinytransformer (those importable), plus ``extra``."""
    import tinytransformer as tt

    versions = {"python": platform.python_version(), "numpy": np.__version__, "tinytransformer": tt.__version__}
    for name in ("numba", "torch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "load_average_before": os.getloadavg(), "threads": threads,
            "backend": tt.get_backend(), **versions, **extra}


def write_result(out, result, indent=1):
    """Stamp ``result["header"]`` with the load average now, write ``result`` as JSON to ``out`` (atomically,
    creating its folder) and say where."""
    from tinytransformer.training.checkpoint import atomic_write_text

    result["header"]["load_average_after"] = os.getloadavg()
    print(f"load average after: {result['header']['load_average_after'][0]:.2f}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=indent) + "\n")
    print(f"wrote {out}")
