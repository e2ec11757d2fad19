"""tinytransformer: a Transformer and GPT built from scratch in NumPy, to learn from.

    import tinytransformer as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

See README.md for the map of the package.
"""

from .autograd import *  # noqa: F403 - the autograd namespace is the library's front page
from .autograd import __all__ as _autograd_all
from .gradcheck import GradcheckError, gradcheck
from .rng import get_rng, get_rng_state, manual_seed, set_rng_state
from .kernels import get_backend, set_backend  # NumPy or Numba for the hot loops
from .allocator import tune_allocator  # opt-in: keep freed memory in the process (no page faults per step)
from . import nn  # noqa: E402,I001 - after the core it builds on
from . import optim  # noqa: E402,I001 - optimizers, schedules, clipping
from . import data  # noqa: E402,I001 - tokenizers, datasets, corpora (NumPy only)


__version__ = "0.1.0"
__all__ = [
    *_autograd_all, "GradcheckError", "gradcheck", "get_rng", "get_rng_state", "manual_seed", "nn",
    "set_rng_state",
    "optim",
    "data",
    "get_backend", "set_backend", "tune_allocator",
]
