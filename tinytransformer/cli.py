"""The ``tinytransformer`` command: argument parsing, then a call into the library.

    tinytransformer train --data shakespeare --out runs/shakespeare     pretrain a GPT, save checkpoints
    tinytransformer train --out runs/shakespeare --resume               continue that run exactly
    tinytransformer generate --checkpoint runs/shakespeare --prompt "ROMEO:"
    tinytransformer demo                                                train on Python's help pages, then sample
    tinytransformer train --model lstm --out runs/lstm                  the same with a recurrent language model
    tinytransformer translate --train --out runs/translate              numbers to words: train, test, save
    tinytransformer translate --checkpoint runs/translate "4,213"       ... then translate
    tinytransformer finetune --task classify --data sst2 --out runs/sst2    fine-tune for a task, keep the best
    tinytransformer classify --checkpoint runs/sst2 --input reviews.txt  label<TAB>probability<TAB>text per line
    tinytransformer inspect --checkpoint runs/gpt --text "def f(x):" --out runs/gpt/inspect   attention, logit lens, attribution PNGs

A bad flag or value prints one line (``tinytransformer train: error: ...``)
and exits with status 2; errors the library raises are reported the same way.
"""

import argparse
import sys
import time

import numpy as np

DEFAULT_MAX_ITERS = 2000  # nanoGPT's CPU run; a few minutes on two cores
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


def _regularizer(args, name):
    """--weight-decay or --grad-clip as given; by default off for a GPT (measured better at the default size,
    README "Train a GPT"), and TrainConfig's (nanoGPT's) value for rnn/lstm."""
    from .training import TrainConfig

    value = getattr(args, name)
    if value is not None:
        return value
    return 0.0 if args.model == "gpt" else TrainConfig.__dataclass_fields__[name].default


def _train(args, parser):
    from .training import TrainConfig, prepare_pretraining, resume_pretraining

    if args.resume:
        print(f"resuming the run in {args.out} (its saved settings; only --max-iters may change them)")
        trainer = resume_pretraining(args.out, max_iters=args.max_iters)
    else:
        if args.model == "gpt" and args.n_embd % args.n_head:
            parser.error(f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}")
        model_config = dict(
            n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
            dropout=args.dropout, bias=args.bias,
        )
        train_config = TrainConfig(
            max_iters=args.max_iters or DEFAULT_MAX_ITERS, batch_size=args.batch_size, grad_accum=args.grad_accum,
            lr=args.lr, warmup_iters=args.warmup_iters, weight_decay=_regularizer(args, "weight_decay"),
            grad_clip=_regularizer(args, "grad_clip"),
            eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed,
        )
        trainer = prepare_pretraining(args.data, args.tokenizer, args.vocab_size, model_config, train_config, args.out,
                                      model_type=args.model)
    n_params = trainer.model.num_parameters()
    print(
        f"{trainer.meta.get('model_type', 'gpt').upper()} with {n_params / 1e6:.2f}M parameters on {trainer.meta['data']} ({len(trainer.train_tokens):,} "
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


def _finetune(args, parser):
    from .training.finetune_recipe import FinetuneRecipe, run_finetune

    fields = FinetuneRecipe.__dataclass_fields__
    run_finetune(FinetuneRecipe(**{name: getattr(args, name) for name in fields if hasattr(args, name)}), args.out)
    return 0


def _read_input(args):
    from .training.finetune_recipe import read_texts

    return read_texts(args.input) if args.input else read_texts(stream=sys.stdin)


def _classify(args, parser):
    from .training.finetune import load_finetuned, predict_proba

    model, tokenizer, meta = load_finetuned(args.checkpoint, task="classify")
    texts = _read_input(args)
    for text, probs in zip(texts, predict_proba(model, tokenizer, texts)):
        print(f"{meta['labels'][probs.argmax()]}\t{probs.max():.4f}\t{text}")
    return 0


def _tag(args, parser):
    from .training.finetune import load_finetuned, predict_tags

    model, tokenizer, meta = load_finetuned(args.checkpoint, task="tag")
    sentences = [text.split() for text in _read_input(args)]
    for i, (words, tags) in enumerate(zip(sentences, predict_tags(model, tokenizer, sentences, meta["labels"]))):
        print(("\n" if i else "") + "\n".join(f"{word}\t{tag}" for word, tag in zip(words, tags)))
    return 0


def _translate(args, parser):
    from .kernels import set_num_threads
    from .training.translate import (
        TranslateConfig, evaluate_translator, load_translator, save_translator, train_translator, translate,
    )

    set_num_threads(args.threads)
    if args.train:
        config = TranslateConfig(
            direction=args.direction, train_range=(0, args.max_number + 1), test_size=args.test_size,
            d_model=args.d_model, num_layers=args.num_layers, positional=args.positional, max_steps=args.max_steps,
            max_seconds=args.max_seconds, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        )
        model, task, history = train_translator(config, progress=True)
        results = evaluate_translator(model, task, beam_size=args.beam)
        save_translator(args.out, model, task, config, {**results, **{k: history[k] for k in
                                                                     ("steps", "seconds", "cpu_seconds")}})
        print(
            f"trained {history['steps']} steps in {history['seconds']:.1f} s ({history['cpu_seconds']:.1f} s of CPU); "
            f"{model.num_parameters():,} parameters\n"
            f"held-out test, {results['n']:,} numbers never seen in training: exact match "
            f"{results['exact_match']:.2%}, BLEU {100 * results['bleu']:.1f}"
        )
        for m in results["mistakes"][:5]:
            print(f"  {m['source']}: wrote {m['prediction']!r}, expected {m['reference']!r}")
        print(f'checkpoint: {args.out}\ntranslate:  tinytransformer translate --checkpoint {args.out} "4,213"')
        if not args.texts:
            return 0
    elif args.checkpoint is None:
        parser.error("give --checkpoint DIR to translate with a trained model, or --train to train one")
    else:
        model, task, _ = load_translator(args.checkpoint)
    texts = args.texts or [line.strip() for line in sys.stdin if line.strip()]
    for text, translation in zip(texts, translate(model, task, texts, beam_size=args.beam)):
        print(f"{text}\t{translation}")
    return 0


def _inspect(args, parser):
    from .inspect.report import inspect_checkpoint

    written = inspect_checkpoint(args.checkpoint, args.text, args.out, args.what or ("attention", "logit-lens",
                                                                                      "attribution"))
    for what, path in written.items():
        print(f"{what}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tinytransformer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    fmt = HelpFormatter

    train = sub.add_parser(
        "train", formatter_class=fmt, help="pretrain a GPT on a text corpus",
        description="Pretrain a GPT on a text corpus (next-token prediction), with AdamW, warmup + cosine learning "
        "rate, gradient clipping and periodic validation. Writes a checkpoint and loss.png to --out at every "
        "evaluation. The defaults are nanoGPT's small CPU configuration for character-level Shakespeare, except "
        "that a GPT trains without weight decay and gradient clipping (measured better at this size; README).",
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
    model.add_argument("--model", default="gpt", choices=["gpt", "rnn", "lstm"],
                       help="a GPT, or a character-level RNN/LSTM language model (then --n-layer recurrent layers "
                       "of width --n-embd; --n-head unused)")
    model.add_argument("--n-layer", type=positive_int, default=4, help="Transformer blocks")
    model.add_argument("--n-head", type=positive_int, default=4, help="attention heads per block")
    model.add_argument("--n-embd", type=positive_int, default=128, help="width of the residual stream")
    model.add_argument("--block-size", type=positive_int, default=64, help="context length in tokens")
    model.add_argument("--dropout", type=dropout_probability, default=0.0, help="dropout probability")
    model.add_argument("--bias", action="store_true",
                       help="biases in the Linear and LayerNorm layers, as in GPT-2 (default: none, as in nanoGPT)")
    opt = train.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=positive_int, default=12, help="sequences per micro-batch")
    opt.add_argument("--grad-accum", type=positive_int, default=1,
                     help="micro-batches whose gradients add up to one step")
    opt.add_argument("--max-iters", type=positive_int, default=None,
                     help=f"optimisation steps (default {DEFAULT_MAX_ITERS}; with --resume, the saved run's)")
    opt.add_argument("--lr", type=nonnegative_float, default=1e-3, help="peak learning rate of AdamW")
    opt.add_argument("--warmup-iters", type=nonnegative_int, default=100,
                     help="steps of linear warmup (capped at --max-iters); then a cosine down to lr/10")
    opt.add_argument("--weight-decay", type=nonnegative_float, default=None,
                     help="AdamW's decoupled weight decay, on weight matrices and embeddings only (default: 0 for a "
                     "GPT, which measured better than nanoGPT's 0.1 at this size (README); 0.1 for rnn/lstm)")
    opt.add_argument("--grad-clip", type=nonnegative_float, default=None,
                     help="clip the global gradient norm to this; 0: no clipping (default: 0 for a GPT, which "
                     "measured better than nanoGPT's 1.0 at this size; 1.0 for rnn/lstm, whose gradients can explode)")
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

    ft = sub.add_parser(
        "finetune", formatter_class=fmt, help="fine-tune a GPT to classify sentences or tag tokens",
        description="Train a classification head (one label per line of text) or a tagging head (BIO tags per "
        "token) on a GPT body: pretrained (--checkpoint, or --pretrain-steps on the task's own text) or from "
        "scratch. Prints the training loss and dev scores after every epoch, keeps the best epoch by dev score, "
        "and saves the model (an ensemble when --ensemble > 1) to --out. Defaults marked 'classify/tag' differ by "
        "task; those for classify are the measured SST-2 recipe (README, 'Fine-tuning').",
    )
    task = ft.add_argument_group("task")
    task.add_argument("--task", required=True, choices=["classify", "tag"],
                      help="classify: label<TAB>text lines; tag: CoNLL token<TAB>tag lines, blank between sentences")
    task.add_argument("--data", choices=["sst2", "wnut17"], help="a built-in task with its own dev and test splits")
    task.add_argument("--train", metavar="FILE", help="your training file (instead of --data)")
    task.add_argument("--dev", metavar="FILE", help="your dev file (default: 10%% of --train, held out)")
    task.add_argument("--test", metavar="FILE", help="scored once, at the end")
    body = ft.add_argument_group("body")
    body.add_argument("--checkpoint", metavar="DIR",
                      help="a pretrained GPT (from `tinytransformer train`, or OUT/pretrained of an earlier run); "
                      "its tokenizer and size are used")
    body.add_argument("--freeze", action="store_true", help="train the head only, keep the body as it is")
    body.add_argument("--pretrain-steps", type=nonnegative_int,
                      help="without --checkpoint: steps of next-token prediction on the task's training and dev "
                      "text before fine-tuning; 0 starts from scratch (default classify/tag: 0/600)")
    body.add_argument("--pretrain-corpus", choices=["pydoc", "shakespeare"],
                      help="also pretrain on this corpus's lines (default: the task's text only)")
    body.add_argument("--tokenizer", choices=["word", "bpe"], help="default classify/tag: word/bpe")
    body.add_argument("--vocab-size", type=positive_int, help="default classify/tag: no limit/2048")
    body.add_argument("--min-freq", type=positive_int,
                      help="word tokenizer: keep words seen this often, the rest are <unk> (default classify/tag: 2/1)")
    body.add_argument("--n-layer", type=positive_int, help="Transformer blocks (default classify/tag: 1/2)")
    body.add_argument("--n-head", type=positive_int, default=4, help="attention heads per block")
    body.add_argument("--n-embd", type=positive_int, help="width of the residual stream (default: 128)")
    body.add_argument("--dropout", type=dropout_probability, default=0.1, help="dropout inside the body")
    head = ft.add_argument_group("fine-tuning")
    head.add_argument("--epochs", type=positive_int, help="passes over the training data (default classify/tag: 3/8)")
    head.add_argument("--batch-size", type=positive_int, default=32, help="examples per step")
    head.add_argument("--lr", type=nonnegative_float, help="peak learning rate of AdamW for the head (default: 1e-3)")
    head.add_argument("--body-lr", type=nonnegative_float, help="learning rate of the body (default: --lr)")
    head.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW's weight decay")
    head.add_argument("--head-dropout", type=dropout_probability, default=0.1, help="dropout before the head")
    head.add_argument("--pooling", choices=["max", "mean", "last"], default="max",
                      help="classify: each feature's maximum over the sentence's hidden states, their average, "
                      "or the last one")
    head.add_argument("--ensemble", type=positive_int,
                      help="train this many models (member k seeded 1000 * seed + k) and average their probabilities "
                      "(default classify/tag: 10/1)")
    head.add_argument("--seed", type=int, default=0, help="seeds pretraining, the weights, batches and dropout")
    ft.add_argument("--out", required=True, metavar="DIR", help="folder for the fine-tuned model and results.json")
    ft.set_defaults(func=_finetune, command_parser=ft)

    for name, what, prints in (("classify", "classify", "label<TAB>probability<TAB>text"),
                               ("tag", "tag", "token<TAB>tag, a blank line between sentences")):
        cmd = sub.add_parser(
            name, formatter_class=fmt, help=f"{what} lines of text with a fine-tuned model",
            description=f"Read one text per line (from --input, or standard input) and print {prints}."
            + (" Words are split on whitespace." if name == "tag" else ""),
        )
        cmd.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of `finetune`")
        cmd.add_argument("--input", metavar="FILE", help="UTF-8 text, one per line (default: standard input)")
        cmd.set_defaults(func=_classify if name == "classify" else _tag, command_parser=cmd)

    tr = sub.add_parser(
        "translate", formatter_class=fmt, help="train a numbers-to-words translator, or translate with one",
        description="Numbers into English words (\"4,213\" -> \"four thousand two hundred thirteen\"), or back, "
        "with an encoder-decoder Transformer. --train trains one on generated pairs, reports exact match and BLEU on "
        "held-out numbers and saves it to --out; --checkpoint DIR translates the TEXTs given, or each line of "
        "standard input, printing source<TAB>translation. The defaults reach 99% exact match (see README).",
    )
    tr.add_argument("texts", nargs="*", metavar="TEXT", help="numbers to translate (default: read standard input)")
    tr.add_argument("--train", action="store_true", help="train a new translator (then translate any TEXTs)")
    tr.add_argument("--out", default="runs/translate", metavar="DIR", help="where --train saves the translator")
    tr.add_argument("--checkpoint", metavar="DIR", help="a translator saved by --train")
    tr.add_argument("--beam", type=positive_int, default=1, help="beam size; 1 is greedy decoding")
    tr.add_argument("--threads", type=positive_int, default=1,
                    help="BLAS/Numba threads (the matrices are small: one thread is fastest)")
    learn = tr.add_argument_group("training (with --train)")
    learn.add_argument("--direction", default="to_words", choices=["to_words", "to_digits"],
                      help="digits to words, or words to digits")
    learn.add_argument("--max-number", type=positive_int, default=999_999, help="train and test on 0 .. this")
    learn.add_argument("--test-size", type=positive_int, default=2000, help="held-out test numbers")
    learn.add_argument("--max-steps", type=positive_int, default=1000, help="optimisation steps")
    learn.add_argument("--max-seconds", type=nonnegative_float, default=None, help="stop training after this long")
    learn.add_argument("--batch-size", type=positive_int, default=64, help="number pairs per step")
    learn.add_argument("--lr", type=nonnegative_float, default=3e-3, help="peak learning rate of AdamW")
    learn.add_argument("--d-model", type=positive_int, default=64, help="width of the model (4 heads)")
    learn.add_argument("--num-layers", type=positive_int, default=2, help="encoder layers, and as many decoder layers")
    learn.add_argument("--positional", default="sinusoidal", choices=["sinusoidal", "learned", "rotary"],
                      help="how positions enter the model")
    learn.add_argument("--seed", type=int, default=1337, help="seeds the weights and the training numbers")
    tr.set_defaults(func=_translate, command_parser=tr)

    ins = sub.add_parser(
        "inspect", formatter_class=fmt, help="draw attention maps, the logit lens and token attributions for a text",
        description="Look inside a saved model (from `train`, or a classifier from `finetune`) on one text: every "
        "layer's and head's attention map, the logit lens (what each layer would predict next) and gradient x input "
        "attribution of the prediction (the class, or the next token) to the text's tokens. Writes attention.png, "
        "logit_lens.png and attribution.png to --out.",
    )
    ins.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of `train` or `finetune`")
    ins.add_argument("--text", required=True, help="the input to look at (cut to the model's block size)")
    ins.add_argument("--out", default="inspect", metavar="DIR", help="folder for the PNGs")
    ins.add_argument("--what", action="append", choices=["attention", "logit-lens", "attribution"],
                     help="which figure; repeat for several (default: all three)")
    ins.set_defaults(func=_inspect, command_parser=ins)
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
