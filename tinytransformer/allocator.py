"""Keep freed memory in the process instead of handing it back to the OS (an opt-in for speed).

A training step makes and drops the same large temporaries again and again:
activations, their gradients, attention scores. glibc's ``malloc`` serves a
request above its mmap threshold (128 KiB at first, raised as it sees such
blocks freed, up to 32 MiB) with fresh pages from the kernel, and returns
them on ``free``; it also trims the top of its heap once more than the trim
threshold sits unused there. Every step then touches new pages, and each
first touch is a page fault that the kernel must serve (and zero). Measured on
a GPT step of 4 layers of width 128, batch 12 x 64 tokens (the benchmarks'
configuration A): about 6,000 page faults per step, and the step took 28%
longer than with both thresholds raised to 1 GiB, when the same few
megabytes are reused from step to step and the faults fall to a handful.

    import tinytransformer as tt
    tt.tune_allocator()            # or TINYTRANSFORMER_TUNE_ALLOCATOR=1 before import

It is an opt-in because it changes ``malloc`` for the whole process, other
libraries included, and because memory freed after a peak is no longer given
back to the OS: the process keeps its peak size until it exits. It only works
with glibc (Linux); elsewhere it does nothing and returns False. This is
process tuning, not a kernel: nothing in the library imports this module but
the package's ``__init__``, which reads the environment variable through it.
"""

import ctypes
import ctypes.util
import os
import platform

ENV_VAR = "TINYTRANSFORMER_TUNE_ALLOCATOR"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's <malloc.h>
THRESHOLD = 1 << 30  # 1 GiB: blocks up to this size come from (and go back to) the heap

_tuned = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB; True if done (now or before), False without glibc."""
    global _tuned
    if not _tuned:
        if platform.libc_ver()[0] != "glibc":
            return False
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    return _tuned


def allocator_tuned() -> bool:
    """Whether ``tune_allocator`` has run in this process."""
    return _tuned


if os.environ.get(ENV_VAR, "").strip() not in ("", "0"):
    tune_allocator()
