"""``Optimizer``: what every update rule shares (parameter groups, state, state dicts).

An optimizer holds its parameters in ``param_groups``, a list of dicts, each
with a ``"params"`` list and its own hyperparameters, so one model can train
its weight matrices with weight decay and its biases, norms and embeddings
without it:

    decay    = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)

Hyperparameters a group does not set come from the optimizer's defaults.
Changing ``group["lr"]`` between steps takes effect at the next step (that is
all a learning-rate schedule does). ``state[p]`` holds what the rule remembers
per parameter (momentum buffers, Adam's moments, the step count).

``state_dict()`` layout (PyTorch's, with plain NumPy arrays and Python numbers,
so it can be written as JSON plus an ``.npz`` without pickle):

    {"state": {0: {"step": 3, "exp_avg": ndarray, "exp_avg_sq": ndarray},   # per parameter
               1: {...}, ...},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]},
                      {"lr": 0.001, ..., "params": [2]}]}

Parameters are numbered 0, 1, 2, ... in group order; a parameter that has not
been stepped yet has no entry in ``"state"``. Keys of ``"state"`` may come back
as strings (as JSON writes them); ``load_state_dict`` accepts both.
"""

import numpy as np

from ..autograd import Tensor, as_array, enable_grad
from ..validation import check_value


class Optimizer:
    """Base class: subclasses define ``step`` and list their hyperparameters' ``checks``.

    ``checks`` maps a hyperparameter to ``(kind, interval)`` for
    ``tinytransformer.validation.check_value``; the constructor, ``add_param_group``
    and ``load_state_dict`` all check every group with it (and with a subclass's
    ``_check_group``, for rules that join two values), so a NaN or negative lr
    fails where it is given, never at a later step.
    """

    checks = {}

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of Tensors or of dicts, got a single Tensor "
                "(wrap it in a list, or pass model.parameters())"
            )
        self.defaults = dict(defaults)
        self._check_group(self.defaults, name)
        self.state = {}  # Parameter -> dict of per-parameter state
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list (params)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def _check_group(self, group, where):
        """Check ``group``'s hyperparameters in place (8.0 -> 8, 1 -> 1.0); a ValueError starting with ``where``."""
        for key, (kind, within) in self.checks.items():
            group[key] = check_value(f"{where}: {key}", group[key], kind, within)
        if "initial_lr" in group:  # written there by a learning-rate schedule
            group["initial_lr"] = check_value(f"{where}: initial_lr", group["initial_lr"], float, "[0, inf)")

    def add_param_group(self, param_group):
        """Add a group of parameters, filling unset hyperparameters from the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{name}: a parameter group has an empty parameter list (params)")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, got {type(p).__name__} in params")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point Tensors, got dtype {p.dtype}")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear more than once in params (or in two groups)")
        group = {**self.defaults, **param_group, "params": params}
        self._check_group(group, name)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Forget every gradient: ``grad = None`` (default), or fill it with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    def _evaluate(self, closure):
        """Run ``closure`` (which recomputes the loss and calls backward) if one was given."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------- state dict
    def state_dict(self):
        """A copy of the state and hyperparameters; see the module docstring for the layout."""
        index = {}
        groups = []
        for group in self.param_groups:
            numbered = list(range(len(index), len(index) + len(group["params"])))
            index.update(zip((id(p) for p in group["params"]), numbered))
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": numbered})
        state = {
            index[id(p)]: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict()`` returned (for the same parameters, in the same groups).

        Arrays are copied and cast to each parameter's dtype; hyperparameters
        (including ``lr``) are taken from the saved groups after the checks the
        constructor makes; the optimizer is left unchanged if anything is invalid.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}"
            )
        params_by_index, restored = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters in the "
                    f"state dict but {len(group['params'])} in the optimizer"
                )
            unknown = sorted(set(saved) - set(self.defaults) - {"params", "initial_lr"})
            if unknown:
                raise ValueError(f"{name}.load_state_dict: group {i} has unknown hyperparameters {unknown}")
            params_by_index.update(zip((int(k) for k in saved["params"]), group["params"]))
            new = dict(group)
            for key, value in saved.items():
                if key != "params":  # JSON turns tuples (betas) into lists: turn them back
                    new[key] = tuple(value) if isinstance(group.get(key), tuple) else value
            self._check_group(new, f"{name}.load_state_dict: group {i}")  # the constructor's checks, again
            restored.append(new)
        state = {}
        for key, saved_state in state_dict["state"].items():
            if int(key) not in params_by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, but the groups hold "
                                 f"parameters 0 to {len(params_by_index) - 1}")
            p = params_by_index[int(key)]
            state[p] = {k: self._load_value(p, k, v, f"{name}.load_state_dict: state of parameter {key}")
                        for k, v in saved_state.items()}
        for group, new in zip(self.param_groups, restored):  # nothing changes unless everything was valid
            group.update(new)
        self.state = state

    def _load_value(self, p, key, value, where):
        if isinstance(value, np.generic):  # a NumPy scalar (e.g. read back from an .npz): a Python number
            value = value.item()
        if key == "step":  # Adam's count of steps taken, the exponent of its bias corrections
            return check_value(f"{where}: step", value, int, "[1, inf)")
        if isinstance(value, (np.ndarray, Tensor)):
            array = np.array(as_array(value), dtype=p.dtype)  # a copy
            if array.shape != p.shape:
                raise ValueError(f"{where}: {key!r} has shape {array.shape} but its parameter has shape {p.shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"{where}: {key!r} holds non-finite values (inf or NaN)")
            return array
        return value

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
