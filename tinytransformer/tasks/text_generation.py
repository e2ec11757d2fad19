"""Sampling text from a trained language model or GPT-2: ``tinytransformer generate``, and ``demo``.

``generate`` reads a checkpoint that ``train`` wrote (or a GPT-2 folder) and
continues a prompt with the KV cache (``generation.generate``); ``demo`` is the
default ``train`` run on Python's help pages followed by a sample of it.
``GenerateConfig`` and ``DemoConfig`` hold the commands' defaults.
"""

import sys
from dataclasses import dataclass

import numpy as np

from ..models.hf_gpt2 import load_model_and_tokenizer
from .language_model import DEFAULT_MAX_ITERS, LANGUAGE_MODELS, LanguageModelConfig, load_pretrained, run
from .options import check_options, option


@dataclass
class GenerateConfig:
    """Sampling from a saved language model, or from a GPT-2 in Hugging Face's layout: ``tinytransformer generate``."""

    checkpoint: str = option(None, "the --out folder of a training run (or give --pretrained)", metavar="DIR")
    pretrained: str = option(None, "a GPT-2 in Hugging Face's layout: a folder of config.json, model.safetensors, "
                             "vocab.json and merges.txt, or a hub name such as gpt2 (read from the Hugging Face cache, "
                             "or downloaded with the hf extra; docs/gpt2.md)", metavar="PATH_OR_NAME")
    prompt: str = option("\n", "text to continue (default: a newline); with a char tokenizer, only characters of "
                         "the training text")
    max_new_tokens: int = option(300, "tokens to generate", within="[1, inf)")
    temperature: float = option(0.8, "divide the logits by this before sampling; 0 is greedy (always the likeliest "
                                "token)", within="[0, inf)")
    top_k: int = option(None, "sample only among the k likeliest tokens", within="[1, inf)")
    top_p: float = option(None, "sample only among the likeliest tokens whose probabilities add up to p (nucleus)",
                          within="(0, 1]")
    seed: int = option(1337, "the same seed gives the same text")

    def __post_init__(self):
        check_options(self)
        if (self.checkpoint is None) == (self.pretrained is None):
            raise ValueError("checkpoint or pretrained: give one of the two, the folder of a trained model or a "
                             "GPT-2 (a folder or hub name)")
        if not self.prompt:
            raise ValueError("prompt must not be empty")


def generate_text(config: GenerateConfig) -> str:
    """The prompt and its continuation, sampled from the checkpoint (or GPT-2) ``config`` names (with the KV cache)."""
    from ..generation import generate

    if config.pretrained is not None:
        model, tokenizer = load_model_and_tokenizer(config.pretrained)
    else:
        model, tokenizer, _ = load_pretrained(config.checkpoint, reader="generate", holds=LANGUAGE_MODELS)
    prompt = np.asarray(tokenizer.encode(config.prompt), dtype=np.int64)[None, :]  # (1, T)
    if prompt.shape[1] > model.config.block_size:
        print(f"note: the prompt has {prompt.shape[1]} tokens, more than the model's block of "
              f"{model.config.block_size}: it sees only the last {model.config.block_size}", file=sys.stderr)
    out = generate(model, prompt, config.max_new_tokens, temperature=config.temperature, top_k=config.top_k,
                   top_p=config.top_p, seed=config.seed)
    return tokenizer.decode(out[0])


def print_generated(config: GenerateConfig):
    """``tinytransformer generate``: print the prompt and its continuation."""
    print(generate_text(config))


@dataclass
class DemoConfig:
    """``tinytransformer demo``: the default run on Python's help pages, then a sample of what it learnt."""

    out: str = option("runs/demo", "folder for the checkpoint and loss.png", metavar="DIR")
    max_iters: int = option(DEFAULT_MAX_ITERS, "optimisation steps", within="[1, inf)")
    overwrite: bool = option(False, "replace the checkpoint already in --out (an earlier demo's)")

    def __post_init__(self):
        check_options(self)


def demo(config: DemoConfig):
    run(LanguageModelConfig(data="pydoc", out=config.out, max_iters=config.max_iters, overwrite=config.overwrite))
    print("\n--- a sample from the trained model ---")
    print_generated(GenerateConfig(checkpoint=config.out, max_new_tokens=400))
