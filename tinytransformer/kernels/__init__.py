"""The hot loops of training, each as a readable NumPy function and a Numba twin.

Each file holds one kernel: ``<name>_numpy`` (the formula, the reference that
lessons show), ``<name>_numba`` (explicit loops, compiled on first use) and a
dispatcher without suffix that checks its arguments and runs the backend chosen
with ``set_backend``. Kernels take and return NumPy arrays; they know nothing
of Tensors, so autograd Functions call a forward kernel in ``forward`` and its
backward twin in ``backward``. ``backend.py`` holds the backend switch and the
thread settings; ``jit.py`` how a loop function is compiled (``numba_kernel``,
``prange``); ``vector_math.py`` the exp and erf that the loops call.
"""

from .adamw import adamw_update
from .attention_softmax import masked_softmax, masked_softmax_backward, softmax_from_lse
from .backend import backend_info, get_backend, set_backend, set_num_threads, use_backend
from .causal_attention import causal_attention_backward, causal_attention_forward
from .embedding import embedding_backward
from .gelu import bias_gelu_backward, bias_gelu_forward, gelu_backward, gelu_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .softmax_cross_entropy import cross_entropy_backward, cross_entropy_forward

__all__ = [
    "adamw_update", "backend_info", "bias_gelu_backward", "bias_gelu_forward", "causal_attention_backward",
    "causal_attention_forward", "cross_entropy_backward", "cross_entropy_forward", "embedding_backward",
    "gelu_backward", "gelu_forward", "get_backend", "layer_norm_backward", "layer_norm_forward", "masked_softmax",
    "masked_softmax_backward", "set_backend", "set_num_threads", "softmax_from_lse", "use_backend",
]
