"""The figures of looking inside a model (``tinytransformer inspect``): attention grids, the logit lens,
token attributions.

Each function takes arrays (from ``tinytransformer.interpret``'s
``attention_maps``, ``logit_lens``, ``token_attribution``) and token labels,
writes a PNG and returns its path. matplotlib is imported only when a figure
is drawn.
"""

import numpy as np

from .backend import import_pyplot, save_figure

MAX_LABELLED = 48  # beyond this many tokens, tick labels would overlap


def token_labels(tokenizer, ids):
    """One printable label per token id: whitespace made visible (space as a middle dot, newline as \\n)."""
    labels = []
    for i in np.asarray(ids).reshape(-1):
        text = tokenizer.decode([int(i)])
        labels.append(text.replace(" ", "\u00b7").replace("\n", "\\n").replace("\t", "\\t") or "\u2205")
    return labels


def _log_softmax(logits, axis=-1):
    """log p = z - logsumexp(z), stable, on arrays (in float64 for display)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _fontsize(n_tokens):
    return 8 if n_tokens <= 32 else 6


def _ticks(ax, labels, axis="both", size=None):
    if len(labels) > MAX_LABELLED:
        return
    ticks, size = np.arange(len(labels)), size or _fontsize(len(labels))
    if axis in ("both", "x"):
        ax.set_xticks(ticks, labels, rotation=90, fontsize=size)
    if axis in ("both", "y"):
        ax.set_yticks(ticks, labels, fontsize=size)


def plot_attention_maps(maps, labels, path, title="attention maps"):
    """A grid of heatmaps, one per layer (rows) and head (columns); ``maps`` (n_layer, n_head, T, T).

    Rows of each map are queries, columns keys: the cell (i, j) is how much
    position i attends to position j.
    """
    plt = import_pyplot()
    n_layer, n_head = maps.shape[:2]
    panel = max(2.4, 0.11 * maps.shape[-1])  # inches: room for one tick label per token
    fig, axes = plt.subplots(n_layer, n_head, figsize=(panel * n_head + 0.6, panel * n_layer + 0.5), squeeze=False)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = ax.imshow(maps[layer, head], vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if head == 0:
                _ticks(ax, labels, "y", size=6)
            if layer == n_layer - 1:
                _ticks(ax, labels, "x", size=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention probability")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_logit_lens(lens_logits, labels, vocab, path, title="logit lens", next_ids=None):
    """What each layer predicts next at each position; ``lens_logits`` (n_layer + 1, T, V).

    ``labels`` name the T input tokens, ``vocab`` all V token ids (e.g.
    ``token_labels(tokenizer, range(V))``). The text in a cell is that layer's
    top guess. The colour is the probability of the top guess; or, given
    ``next_ids`` (the ids of the tokens that really came next, one per position
    from the first, T - 1 or T of them), the probability the layer gives that
    true next token, so a confident wrong guess shows pale (a position without a
    next token stays blank). The bottom axis shows the input tokens, the top
    axis the token that really came next.
    """
    plt = import_pyplot()
    probs = np.exp(_log_softmax(lens_logits))  # (L + 1, T, V)
    top = probs.argmax(axis=-1)  # (L + 1, T)
    n_rows, T = top.shape
    if next_ids is None:
        colour, colour_label = probs.max(axis=-1), "probability of the top guess"  # (L + 1, T)
    else:
        next_ids = np.asarray(next_ids, dtype=np.int64)[:T]
        colour = np.full((n_rows, T), np.nan)  # (L + 1, T)
        colour[:, :len(next_ids)] = probs[:, np.arange(len(next_ids)), next_ids]
        colour_label = "probability of the true next token"
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * T + 2), 0.6 * n_rows + 2.2))
    image = ax.imshow(colour, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    if T <= MAX_LABELLED:
        for row in range(n_rows):
            for t in range(T):
                ax.text(t, row, vocab[top[row, t]], ha="center", va="center", fontsize=_fontsize(T),
                        color="white" if colour[row, t] > 0.6 else "black")
    ax.set_yticks(np.arange(n_rows), ["embed"] + [f"block {i}" for i in range(n_rows - 1)], fontsize=7)
    _ticks(ax, labels, "x")
    ax.set_xlabel("input token")
    if T <= MAX_LABELLED:
        top_axis = ax.secondary_xaxis("top")
        top_axis.set_xticks(np.arange(T - 1), labels[1:], rotation=90, fontsize=_fontsize(T))
        top_axis.set_xlabel("true next token")
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set_title(title, fontsize=10, pad=28 if T <= MAX_LABELLED else 6)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_attribution(scores, labels, path, title="token attribution"):
    """One bar per token: red raised the explained score, blue lowered it."""
    plt = import_pyplot()
    scores = np.asarray(scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(scores) + 1.5), 3.2))
    ax.bar(np.arange(len(scores)), scores, color=np.where(scores >= 0, "tab:red", "tab:blue"))
    ax.axhline(0, color="black", lw=0.6)
    _ticks(ax, labels, "x")
    ax.set_ylabel("attribution")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
