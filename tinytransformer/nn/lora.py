"""Low-rank adapters (LoRA, Hu et al. 2021): fine-tune a large layer by training a small change to it.

A pretrained ``Linear`` computes y = x W^T + b, W of shape (out, in). LoRA freezes W and b and
learns a change of rank r to W, as the product of two thin matrices:

    y = x W^T + b + (alpha / r) x A^T B^T       A (r, in), B (out, r), r << min(in, out)
      = x (W + (alpha / r) B A)^T + b           one plain Linear again: ``merge()``

B starts at zero, so B A = 0 and training starts exactly at the pretrained model; A starts
random (U(-1/sqrt(in), 1/sqrt(in)), a Linear's own initialisation, as the peft library does), so
that B's first gradient, (alpha / r) (dL/dy)^T (x A^T), is not zero. With u = x A^T (N, r), the
backward pass that autograd derives from the two products is

    dL/dB = (alpha / r) (dL/dy)^T u            (out, r)
    dL/dA = (alpha / r) (dL/dy B)^T x          (r, in)
    dL/dx = dL/dy W + (alpha / r) (dL/dy B) A  (N, in)

and W and b, which do not require gradients, get none. A layer trains r (in + out) numbers
instead of in * out: GPT-2 small's c_attn (768 -> 2304) at r = 8 trains 24,576 instead of 1.77M.
An optimizer given only A and B keeps its state (AdamW's two moments) only for them, which is
where full fine-tuning's memory goes besides the weights' gradients.

alpha scales the update: the paper tunes alpha once and keeps it when it varies r. Here alpha
defaults to r (a scale of 1), so B A is added as it is. ``lora_A`` and ``lora_B`` are the peft
library's names.

    add_lora(gpt, rank=8)            each c_attn, c_proj and c_fc Linear becomes a LoRALinear; all else frozen
    merge_lora(gpt)                  each LoRALinear back to a plain Linear holding W + (alpha / r) B A
    merged_state_dict(model)         the state dict merge_lora would leave, the model unchanged
"""

import math

import numpy as np

from ..rng import get_rng
from ..validation import check_value
from .linear import Linear, linear
from .module import Module, Parameter, initial_weights, skip_init

LORA_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # GPT-2's attention and MLP projections


class LoRALinear(Module):
    """A frozen ``Linear`` plus a trained low-rank update: y = x W^T + b + (alpha / r) x A^T B^T.

    ``base``'s own weight and bias become this layer's (the same Parameters, so a state dict keeps
    their names, ``...c_attn.weight``), no longer requiring gradients; ``lora_A`` (r, in) and
    ``lora_B`` (out, r) are new, in ``base``'s dtype. ``alpha`` None: alpha = r.
    """

    def __init__(self, base: Linear, rank: int, alpha: float = None):
        super().__init__()
        if not isinstance(base, Linear):
            raise ValueError(f"LoRALinear: base must be a Linear, got {type(base).__name__}")
        rank = check_value("LoRALinear: rank", rank, int, "[1, inf)")
        alpha = float(rank) if alpha is None else check_value("LoRALinear: alpha", alpha, float, "(0, inf)")
        if rank > min(base.in_features, base.out_features):
            raise ValueError(f"LoRALinear: rank {rank} is more than min(in, out) = "
                             f"{min(base.in_features, base.out_features)} of a {base.in_features} -> "
                             f"{base.out_features} layer: a full-rank update, not a low-rank one")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.weight, self.bias = base.weight, base.bias  # the pretrained layer's own Parameters, frozen
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad = False
        dtype, bound = base.weight.dtype, 1 / math.sqrt(base.in_features)
        self.lora_A = Parameter(initial_weights(get_rng().uniform, -bound, bound, size=(rank, self.in_features),
                                                dtype=dtype))
        self.lora_B = Parameter(np.zeros((self.out_features, rank), dtype=dtype))  # B A = 0: the pretrained layer

    def forward(self, x):
        y = linear(x, self.weight, self.bias)  # (..., out): the pretrained layer, no gradient for W, b
        return y + linear(linear(x, self.lora_A) * self.scaling, self.lora_B)  # (..., in) -> (..., r) -> (..., out)

    def infer(self, x):
        """``forward`` on an array, outside autograd (generation's inference path): x (..., in) -> (..., out)."""
        flat = x.reshape(-1, self.in_features)  # (N, in)
        y = flat @ self.weight.data.T + ((flat @ self.lora_A.data.T) * self.scaling) @ self.lora_B.data.T  # (N, out)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.data

    def merged_weight(self) -> np.ndarray:
        """W + (alpha / r) B A, (out, in): the one weight that computes what this layer computes."""
        return self.weight.data + self.scaling * (self.lora_B.data @ self.lora_A.data)

    def merge(self) -> Linear:
        """A plain ``Linear`` computing this layer's function: weight W + (alpha / r) B A, the same bias.
        Its parameters require gradients as the frozen base's do (not)."""
        with skip_init():  # filled right below
            merged = Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=self.weight.dtype)
        merged.weight.data[...] = self.merged_weight()
        merged.weight.requires_grad = self.weight.requires_grad
        if self.bias is not None:
            merged.bias.data[...] = self.bias.data
            merged.bias.requires_grad = self.bias.requires_grad
        return merged

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, alpha={self.alpha}"


def _targeted(path, targets) -> bool:
    return any(("." + path).endswith("." + target) for target in targets)


def add_lora(model: Module, rank: int, alpha: float = None, targets=LORA_TARGETS) -> list:
    """Freeze every parameter of ``model``, then wrap each ``Linear`` whose path ends with one of ``targets``
    in a ``LoRALinear`` (in place); returns the wrapped paths. Only the adapters then require gradients."""
    for p in model.parameters():
        p.requires_grad = False
    wrapped = []
    for path, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            child_path = f"{path}.{name}" if path else name
            if isinstance(child, Linear) and _targeted(child_path, targets):
                setattr(module, name, LoRALinear(child, rank, alpha))
                wrapped.append(child_path)
    if not wrapped:
        raise ValueError(f"add_lora: {type(model).__name__} has no Linear named {', '.join(targets)}")
    return wrapped


def merge_lora(model: Module) -> Module:
    """Replace each ``LoRALinear`` in ``model`` by its ``merge()``, a plain ``Linear`` (in place); returns the
    model, which now computes the same function without adapters (and loads as one that never had them)."""
    for _, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merge())
    return model


def merged_state_dict(model: Module) -> dict:
    """``model.state_dict()`` with each LoRALinear's weight merged (W + (alpha / r) B A) and its lora_A and
    lora_B left out: what ``merge_lora(model).state_dict()`` gives, leaving the model as it is."""
    state = model.state_dict()
    for path, module in model.named_modules_with_duplicates():
        if isinstance(module, LoRALinear):
            prefix = f"{path}." if path else ""
            state[prefix + "weight"] = module.merged_weight()
            del state[prefix + "lora_A"], state[prefix + "lora_B"]
    return state
