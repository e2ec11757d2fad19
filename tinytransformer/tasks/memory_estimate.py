"""Whether a training run fits in this machine's memory, estimated before anything is allocated."""

import os


def check_memory(model_type, config, batch_size):
    """A ValueError, before anything is allocated, if training a model of this size would not fit in this
    machine's memory: 16 bytes per parameter (float32 weights, gradients, AdamW's two moments) and a rough
    count of one batch's activations (float32)."""
    c, layers, vocab, block = config["n_embd"], config["n_layer"], config["vocab_size"], config["block_size"]
    attention = model_type in ("gpt", "bert")
    params = layers * (12 if attention else 8) * c * c + (vocab + block) * c + (0 if attention else vocab * c)
    per_token = layers * (20 * c + (2 * config["n_head"] * block if attention else 0)) + 2 * vocab  # + attention maps
    needed = 16 * params + 4 * batch_size * block * per_token
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not Linux or macOS: nothing to compare with
        return
    if needed > memory:
        raise ValueError(f"training this {model_type} ({params:,} parameters, batches of {batch_size:,} x {block:,} "
                         f"tokens) needs about {needed / 2**30:,.0f} GiB, more than this machine's "
                         f"{memory / 2**30:,.0f} GiB; use a smaller n_embd, n_layer, block_size or batch_size")
