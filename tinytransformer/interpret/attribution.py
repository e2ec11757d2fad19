"""Which input tokens pushed a prediction, and which way: gradient-based token attribution.

A model's score f (a class's logit, or a next token's) depends on the token
embeddings x_1 .. x_T, one vector of C numbers per token. Two attributions,
one number per token:

    gradient x input     a_t = sum_c x_{t,c} * df/dx_{t,c}
                         (Baehrens et al. 2010; Shrikumar et al. 2017)
    integrated gradients a_t = sum_c (x - x')_{t,c} * mean_{s in (0, 1]} df/dx_{t,c} (x' + s (x - x'))
                         (Sundararajan, Taly & Yan 2017), x' a baseline (zeros)

a_t > 0: token t raised the score; a_t < 0: it lowered it. For a linear
f(x) = sum_t w_t . x_t + b both give a_t = w_t . x_t exactly, and the a_t add
up to f(x) - b. For a real network gradient x input is only the first-order
Taylor term, blind where the model saturates; integrated gradients restores
completeness, sum_t a_t = f(x) - f(x'), at the price of ``steps`` backward passes.

Both measure sensitivity of *this* model at *this* input, not what the model
"knows", and both depend on the baseline and on what counts as the input
(here the token embeddings; the position embeddings are left fixed).
"""

import numpy as np

from ..autograd import Tensor, no_grad
from ..nn import Embedding, Module, ModuleDict, ModuleList
from .logit_lens import as_sequence


def gradient_x_input(score_fn, inputs):
    """Gradient x input of ``score_fn`` at ``inputs`` (..., T, C): returns ``(attributions (T,), gradient)``.

    ``score_fn`` maps a Tensor shaped like ``inputs`` to a Tensor with one
    element, the score to explain. The attribution of token t sums
    ``inputs * gradient`` over the embedding axis (and any leading axes of size 1).
    """
    inputs = np.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"gradient_x_input: inputs must be (..., T, C), one vector per token; got {inputs.shape}")
    x = Tensor(inputs, requires_grad=True)  # a leaf, so backward leaves its gradient in x.grad
    score = score_fn(x)
    if score.size != 1:
        raise ValueError(f"gradient_x_input: score_fn must return a single number, got shape {score.shape}")
    score.sum().backward()
    grad = np.zeros_like(inputs) if x.grad is None else x.grad  # no path from input to score: zero gradient
    return (inputs * grad).reshape(-1, *inputs.shape[-2:]).sum(axis=(0, 2)), grad  # (T,), (..., T, C)


def integrated_gradients(score_fn, inputs, baseline=None, steps=32):
    """Integrated gradients of ``score_fn`` from ``baseline`` (default zeros) to ``inputs`` (..., T, C).

    The path integral is a midpoint Riemann sum over ``steps`` points.
    Returns ``(attributions (T,), f(inputs) - f(baseline))``: the attributions
    add up to that difference, to the accuracy of the sum.
    """
    inputs = np.asarray(inputs)
    baseline = np.zeros_like(inputs) if baseline is None else np.asarray(baseline, dtype=inputs.dtype)
    if baseline.shape != inputs.shape:
        raise ValueError(f"integrated_gradients: baseline {baseline.shape} must have the inputs' shape {inputs.shape}")
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    total = np.zeros_like(inputs, dtype=np.float64)
    for s in (np.arange(steps) + 0.5) / steps:
        total += gradient_x_input(score_fn, baseline + s * (inputs - baseline))[1]
    attributions = ((inputs - baseline) * total / steps).reshape(-1, *inputs.shape[-2:]).sum(axis=(0, 2))  # (T,)
    gap = score_fn(Tensor(inputs)).item() - score_fn(Tensor(baseline)).item()
    return attributions, gap


class _FixedEmbedding(Module):
    """Stands in for a token embedding and returns ``value``, so a gradient can be taken with respect to it."""

    def __init__(self):
        super().__init__()
        self.value = None

    def forward(self, idx):
        return self.value


def _token_embedding(model):
    """``(parent, key, embedding)``: the token embedding of a GPT or of a head on one (``...wte``)."""
    for name, module in model.named_modules():
        if name.split(".")[-1] == "wte" and isinstance(module, Embedding):
            parent = model
            *path, key = name.split(".")
            for part in path:
                parent = parent[part] if isinstance(parent, (ModuleDict, ModuleList)) else getattr(parent, part)
            return parent, key, module
    raise ValueError(f"token_attribution: {type(model).__name__} has no token embedding named 'wte'")


def _put(parent, key, module):
    if isinstance(parent, ModuleDict):
        parent[key] = module
    else:
        setattr(parent, key, module)


def _probabilities(logits):
    """Class probabilities from one log-odds z (two classes: softmax([0, z])) or from K logits."""
    if logits.size == 1:
        logits = np.array([0.0, logits[0]])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def token_attribution(model, idx, target=None, method="gradient_x_input", steps=32):
    """Attribute one prediction of ``model`` to the tokens of ``idx`` ((T,) or (1, T)).

    ``model(idx)`` must return ``(logits, _)``: a binary classifier's log-odds
    (1,), a classifier's logits (1, K), or a GPT's next-token logits (1, 1, V).
    The score explained is the logit of class ``target`` (default: the
    predicted one); for a binary classifier, the log-odds of ``target``
    (z for class 1, -z for class 0). ``method``: ``"gradient_x_input"`` or
    ``"integrated_gradients"`` (zero baseline, ``steps`` points).

    Returns a dict: ``scores`` (T,) one attribution per token, ``target``,
    ``probabilities`` of the classes (or next tokens), and ``score`` and
    ``baseline_score``, the explained score f at the input and at the zero
    baseline (integrated gradients' scores add up to about their difference).
    The model's parameter gradients are cleared; its training mode and frozen
    parameters are restored.
    """
    if method not in ("gradient_x_input", "integrated_gradients"):
        raise ValueError(f"token_attribution: method must be 'gradient_x_input' or 'integrated_gradients', "
                         f"got {method!r}")
    idx = as_sequence(idx, "token_attribution")
    parent, key, embedding = _token_embedding(model)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    substitute = _FixedEmbedding()

    def score_fn(x):
        substitute.value = x
        flat = model(idx)[0].reshape(-1)  # (1,) log-odds, (K,) class logits or (V,) next-token logits
        if flat.size == 1:
            return flat if chosen == 1 else -flat
        return flat[chosen]

    model.eval()
    for p in params:  # a frozen body skips recording its graph; the gradient must pass through it here
        p.requires_grad = True
    _put(parent, key, substitute)
    try:
        embedded = embedding(idx).data  # (1, T, C)
        substitute.value = Tensor(embedded)
        probabilities = _probabilities(model(idx)[0].data.reshape(-1).astype(np.float64))
        chosen = int(np.argmax(probabilities)) if target is None else int(target)
        if not 0 <= chosen < len(probabilities):
            raise ValueError(f"token_attribution: target must be in [0, {len(probabilities)}), got {target}")
        if method == "gradient_x_input":
            scores = gradient_x_input(score_fn, embedded)[0]
        else:
            scores = integrated_gradients(score_fn, embedded, steps=steps)[0]
        with no_grad():
            score, baseline_score = (score_fn(Tensor(e)).item() for e in (embedded, np.zeros_like(embedded)))
    finally:
        _put(parent, key, embedding)
        for p, flag in zip(params, flags):
            p.requires_grad = flag
            p.grad = None
        model.train(was_training)
    return {"scores": scores, "target": chosen, "probabilities": probabilities, "score": score,
            "baseline_score": baseline_score}
