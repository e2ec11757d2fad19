"""The ``tinytransformer`` command: argument parsing, then a call into the library.

    tinytransformer train --data shakespeare --out runs/shakespeare     pretrain a GPT, save checkpoints
    tinytransformer train --out runs/shakespeare --resume               continue that run exactly
    tinytransformer generate --checkpoint runs/shakespeare --prompt "ROMEO:"
    tinytransformer demo                                                train on Python's help pages, then sample

A bad flag or value prints one line (``tinytransformer train: error: ...``)
and exits with status 2; errors the library raises are reported the same way.
"""

import argparse
import sys
import time

import numpy as np

DEFAULT_MAX_ITERS = 1000
DEFAULT_OUT = "runs/gpt"


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block), pointing at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (None, or an off switch)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def nonnegative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def dropout_probability(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def nucleus_mass(text):
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _train(args, parser):
    from .training import TrainConfig, prepare_pretraining, resume_pretraining

    if args.resume:
        print(f"resuming the run in {args.out} (its saved settings; only --max-iters may change them)")
        trainer = resume_pretraining(args.out, max_iters=args.max_iters)
    else:
        if args.n_embd % args.n_head:
            parser.error(f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}")
        model_config = dict(
            n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
            dropout=args.dropout,
        )
        train_config = TrainConfig(
            max_iters=args.max_iters or DEFAULT_MAX_ITERS, batch_size=args.batch_size, grad_accum=args.grad_accum,
            lr=args.lr, warmup_iters=args.warmup_iters, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
            eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed,
        )
        trainer = prepare_pretraining(args.data, args.tokenizer, args.vocab_size, model_config, train_config, args.out)
    n_params = trainer.model.num_parameters()
    print(
        f"GPT with {n_params / 1e6:.2f}M parameters on {trainer.meta['data']} ({len(trainer.train_tokens):,} "
        f"training tokens, vocabulary {trainer.model.config.vocab_size}); {trainer.config.max_iters} steps of "
        f"{trainer.tokens_per_step:,} tokens"
    )
    start, first_step = time.perf_counter(), trainer.step
    history = trainer.train(progress=True)
    seconds = time.perf_counter() - start
    steps = trainer.step - first_step
    print(
        f"done: step {trainer.step}, val loss {history['val_loss'][-1]:.4f}, {seconds:.1f} s "
        f"({steps * trainer.tokens_per_step / max(seconds, 1e-9):,.0f} tokens/s)\n"
        f"checkpoint: {args.out}   loss curve: {trainer.out_dir / 'loss.png'}\n"
        f"sample it:  tinytransformer generate --checkpoint {args.out}"
    )
    return 0


def _generate(args, parser):
    from .generation import generate
    from .training import load_pretrained

    model, tokenizer, _ = load_pretrained(args.checkpoint)
    if not args.prompt:
        parser.error("--prompt must not be empty")
    prompt = np.asarray(tokenizer.encode(args.prompt), dtype=np.int64)[None, :]  # (1, T)
    out = generate(
        model, prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        seed=args.seed,
    )
    print(tokenizer.decode(out[0]))
    return 0


def _demo(args, parser):
    """Train the default GPT on Python's help pages, then print a sample of what it learnt."""
    code = main(["train", "--data", "pydoc", "--out", args.out, "--max-iters", str(args.max_iters)])
    print("\n--- a sample from the trained model ---")
    return code or main(["generate", "--checkpoint", args.out, "--max-new-tokens", "400"])


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tinytransformer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    fmt = HelpFormatter

    train = sub.add_parser(
        "train", formatter_class=fmt, help="pretrain a GPT on a text corpus",
        description="Pretrain a GPT on a text corpus (next-token prediction), with AdamW, warmup + cosine learning "
        "rate, gradient clipping and periodic validation. Writes a checkpoint and loss.png to --out at every "
        "evaluation. The defaults are nanoGPT's small CPU configuration for character-level Shakespeare.",
    )
    data = train.add_argument_group("data")
    data.add_argument("--data", default="pydoc", metavar="pydoc|shakespeare|PATH",
                      help="the corpus: Python's help pages (built in), Tiny Shakespeare (downloaded once, or read "
                      "from $TINYTRANSFORMER_DATA), or a UTF-8 text file; the last 10%% is the validation split")
    data.add_argument("--tokenizer", default="char", choices=["char", "bpe"],
                      help="one id per character, or byte-level BPE trained on the corpus")
    data.add_argument("--vocab-size", type=positive_int, default=512,
                      help="BPE vocabulary size (256 byte ids + merges); ignored for char")
    model = train.add_argument_group("model")
    model.add_argument("--n-layer", type=positive_int, default=4, help="Transformer blocks")
    model.add_argument("--n-head", type=positive_int, default=4, help="attention heads per block")
    model.add_argument("--n-embd", type=positive_int, default=128, help="width of the residual stream")
    model.add_argument("--block-size", type=positive_int, default=64, help="context length in tokens")
    model.add_argument("--dropout", type=dropout_probability, default=0.0, help="dropout probability")
    opt = train.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=positive_int, default=12, help="sequences per micro-batch")
    opt.add_argument("--grad-accum", type=positive_int, default=1,
                     help="micro-batches whose gradients add up to one step")
    opt.add_argument("--max-iters", type=positive_int, default=None,
                     help=f"optimisation steps (default {DEFAULT_MAX_ITERS}; with --resume, the saved run's)")
    opt.add_argument("--lr", type=nonnegative_float, default=1e-3, help="peak learning rate of AdamW")
    opt.add_argument("--warmup-iters", type=nonnegative_int, default=100,
                     help="steps of linear warmup (capped at --max-iters); then a cosine down to lr/10")
    opt.add_argument("--weight-decay", type=nonnegative_float, default=0.1,
                     help="AdamW's decoupled weight decay, on weight matrices and embeddings only")
    opt.add_argument("--grad-clip", type=nonnegative_float, default=1.0,
                     help="clip the global gradient norm to this (0: no clipping)")
    run = train.add_argument_group("run")
    run.add_argument("--eval-interval", type=positive_int, default=250,
                     help="evaluate, save a checkpoint and the plot every this many steps")
    run.add_argument("--eval-iters", type=positive_int, default=20, help="batches per loss estimate")
    run.add_argument("--seed", type=int, default=1337, help="seeds the weights, the batches and dropout")
    run.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="folder for the checkpoint and loss.png")
    run.add_argument("--resume", action="store_true",
                     help="continue the run saved in --out, exactly where it stopped (model and data flags ignored)")
    train.set_defaults(func=_train, command_parser=train)

    gen = sub.add_parser(
        "generate", formatter_class=fmt, help="sample text from a trained checkpoint",
        description="Continue a prompt with a model saved by `tinytransformer train`, using the KV cache.",
    )
    gen.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of a training run")
    gen.add_argument("--prompt", default="\n", help="text to continue (default: a newline); with a char tokenizer, "
                     "only characters of the training text")
    gen.add_argument("--max-new-tokens", type=positive_int, default=300, help="tokens to generate")
    gen.add_argument("--temperature", type=nonnegative_float, default=0.8,
                     help="divide the logits by this before sampling; 0 is greedy (always the likeliest token)")
    gen.add_argument("--top-k", type=positive_int, default=None, help="sample only among the k likeliest tokens")
    gen.add_argument("--top-p", type=nucleus_mass, default=None,
                     help="sample only among the likeliest tokens whose probabilities add up to p (nucleus)")
    gen.add_argument("--seed", type=int, default=1337, help="the same seed gives the same text")
    gen.set_defaults(func=_generate, command_parser=gen)

    demo = sub.add_parser(
        "demo", formatter_class=fmt, help="train on Python's help pages, then print a sample",
        description="`train --data pydoc` with the default model, then `generate` from it.",
    )
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="folder for the checkpoint and loss.png")
    demo.add_argument("--max-iters", type=positive_int, default=DEFAULT_MAX_ITERS, help="optimisation steps")
    demo.set_defaults(func=_demo, command_parser=demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command_parser
    try:
        return args.func(args, command)
    except (ValueError, KeyError, OSError) as err:  # the library's errors: one line, not a traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        command.exit(2, f"{command.prog}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
