"""Switching graph recording on and off (``with tt.no_grad():``).

Inside ``no_grad`` every op computes its value but records nothing, so no
buffers are kept for a backward pass: what evaluation and generation want.
"""

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when new ops are recorded in the graph."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    previous = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


def no_grad():
    """Context manager: ops inside it build no graph (like ``torch.no_grad``)."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: turn recording back on inside a ``no_grad`` block."""
    return _grad_mode(True)
