"""The residual stream of a GPT, layer by layer, and the logit lens that reads it (nostalgebraist 2020).

A pre-LN GPT keeps one vector per position, the residual stream, and every
block only *adds* to it:

    x_0 = wte(idx) + wpe(pos)                    (T, C)   what the model knows before any block
    x_l = x_{l-1} + attn(ln_1(x_{l-1})) + mlp(...)          after block l = 1 .. n_layer
    logits = lm_head(ln_f(x_L))                  (T, V)   the model's prediction

The logit lens asks each intermediate x_l the same question the last one is
asked: ``lm_head(ln_f(x_l))``. Because every block writes into the same space
that the unembedding reads, these early "predictions" are often meaningful,
and watching them sharpen from layer to layer shows roughly where a prediction
is formed. The lens is a heuristic: early layers were never trained to be read
this way (the tuned lens of Belrose et al. 2023 learns a map per layer for
that reason), so a poor early guess does not prove the information is absent.
With tied embeddings (GPT-2's choice, and ours) the row of x_0 mostly
"predicts" the current token again: a token's embedding scores highest
against itself.
"""

import numpy as np

from ..autograd import as_array, no_grad


def as_sequence(idx, where):
    """One sequence of token ids as a (1, T) int64 array; ``idx`` may be (T,) or (1, T)."""
    idx = np.asarray(as_array(idx))
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[0] != 1 or idx.shape[1] == 0:
        raise ValueError(f"{where}: idx must be one non-empty sequence of token ids, (T,) or (1, T); got {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{where}: idx must hold integer token ids, got dtype {idx.dtype}")
    return idx.astype(np.int64)


def residual_stream(model, idx):
    """The residual stream of a GPT before the first block and after each one.

    ``idx`` is one sequence of token ids, (T,) or (1, T). Returns a list of
    n_layer + 1 Tensors of shape (1, T, C): x_0 (the embeddings) .. x_L. Runs
    without gradients, in eval mode (no dropout), and restores the mode after.
    """
    idx = as_sequence(idx, "residual_stream")
    T = idx.shape[1]
    if T > model.config.block_size:
        raise ValueError(f"residual_stream: {T} tokens are more than block_size={model.config.block_size}")
    t = model.transformer
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            x = t["wte"](idx) + t["wpe"](np.arange(T))  # (1, T, C)
            stream = [x]
            for block in t["h"]:
                x = block(x)  # (1, T, C)
                stream.append(x)
    finally:
        model.train(was_training)
    return stream


def logit_lens(model, idx):
    """What each layer would predict next: ``lm_head(ln_f(x_l))`` for l = 0 .. n_layer.

    Returns logits of shape (n_layer + 1, T, V): row 0 reads the embeddings
    alone, row n_layer is exactly the model's own output.
    """
    t = model.transformer
    with no_grad():
        lens = [model.lm_head(t["ln_f"](x)).data[0] for x in residual_stream(model, idx)]  # each (T, V)
    return np.stack(lens)  # (n_layer + 1, T, V)
