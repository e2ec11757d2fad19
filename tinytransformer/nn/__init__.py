"""Layers and models' building blocks (``tinytransformer.nn``), PyTorch-named.

Each file holds one concept, its functional form beside its Module form;
``tinytransformer.nn.functional`` gathers the functional forms.
"""

from . import functional
from .linear import Linear
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["functional", "Linear", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
