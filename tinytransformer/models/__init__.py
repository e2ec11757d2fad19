"""Complete models assembled from ``tinytransformer.nn``: each file is one architecture."""

from .gpt import GPT, GPTConfig
from .simple import Transformer

__all__ = ["GPT", "GPTConfig", "Transformer"]
