"""Translating numbers into words with the encoder-decoder Transformer: ``tinytransformer translate``,
and the same from Python.

    task  = NumberTranslation(...)                      fresh random numbers every batch, a held-out test set
    model = Seq2SeqTransformer(Seq2SeqConfig(...))      2 + 2 layers, width 64: about 200k parameters
    Trainer(model, NumberPairs(task, batch_size), loss_fn=cross-entropy with label smoothing).train()
    greedy-decode (or beam-search) the test numbers: exact match and BLEU

``TranslateConfig`` holds every setting and is the only home of their
defaults: the command line builds ``translate``'s flags from it, and
``run(config)`` does what the command does (train, evaluate, save, report; or
load a saved translator and translate). ``train_translator`` runs the training
loop of ``tinytransformer.training``; ``save_translator``/``load_translator``
keep the result as a checkpoint folder (without an optimizer: a finished
translator is not resumed); ``translate`` turns what a user typed into words
(or digits).
"""

import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..data.translation import DIRECTIONS, MAX_NUMBER, NumberPairs, NumberTranslation
from ..generation import beam_search, greedy_decode, model_step
from ..kernels import set_num_threads
from ..metrics import bleu, exact_match
from ..plots import note_once
from ..models.seq2seq import POSITIONALS, Seq2SeqConfig, Seq2SeqTransformer
from ..rng import manual_seed
from ..training import TrainConfig, Trainer, check_out_folder, load_checkpoint, save_checkpoint
from .finetuned import read_texts
from .options import check_options, option

TRAINING = "training (with --train)"
MAX_BEAM = 64  # hypotheses per number: far past where a wider beam still finds better translations


@dataclass
class TranslateConfig:
    """What to do (train, or translate with a saved translator), the task, the model and the optimisation;
    the defaults reach >= 99% exact match on held-out numbers (docs/translation.md).

    ``train_range``/``test_range`` are [low, high) ranges of numbers (by
    default 0 .. ``max_number``; the test range defaults to the training one);
    a ``train_range`` given overrides ``max_number``. ``max_seconds`` stops
    training early when the time is spent (the schedule still assumes ``max_steps``).
    """

    texts: list = option([], "numbers to translate (default: read standard input)", metavar="TEXT",
                         positional=True, many=True)
    train: bool = option(False, "train a new translator (then translate any TEXTs)")
    out: str = option("runs/translate", "where --train saves the translator", metavar="DIR")
    overwrite: bool = option(False, "with --train: replace the checkpoint already in --out (only the files it "
                             "recorded as its own are removed), or write into a folder that holds other files")
    checkpoint: str = option(None, "a translator saved by --train", metavar="DIR")
    beam: int = option(1, "beam size; 1 is greedy decoding", within=f"[1, {MAX_BEAM}]")
    threads: int = option(1, "BLAS/Numba threads (the matrices are small: one thread is fastest)", within="[1, inf)")
    # the task
    direction: str = option("to_words", "digits to words, or words to digits", choices=DIRECTIONS, group=TRAINING)
    max_number: int = option(999_999, "train and test on 0 .. this", within=f"[1, {MAX_NUMBER}]", group=TRAINING)
    train_range: tuple = option(None, "[low, high) of the training numbers (default: 0 .. max_number)", flag=False)
    test_range: tuple = option(None, "[low, high) of the test numbers (default: the training range)", flag=False)
    test_size: int = option(2000, "held-out test numbers", within="[1, inf)", group=TRAINING)
    data_seed: int = option(0, "seeds the choice of test numbers", flag=False)
    # the model
    d_model: int = option(64, "width of the model (4 heads)", within="[1, inf)", group=TRAINING)
    nhead: int = option(4, "attention heads", within="[1, inf)", flag=False)
    num_layers: int = option(2, "encoder layers, and as many decoder layers", within="[1, inf)", group=TRAINING)
    dim_feedforward: int = option(256, "width of the MLP's hidden layer", within="[1, inf)", flag=False)
    dropout: float = option(0.0, "dropout probability", within="[0, 1)", flag=False)
    positional: str = option("sinusoidal", "how positions enter the model", choices=POSITIONALS, group=TRAINING)
    # the optimisation
    max_steps: int = option(1000, "optimisation steps", within="[1, inf)", group=TRAINING)
    max_seconds: float = option(None, "stop training after this many seconds (the schedule still assumes "
                                "--max-steps)", within="[0, inf)", group=TRAINING)
    batch_size: int = option(64, "number pairs per step", within="[1, inf)", group=TRAINING)
    lr: float = option(3e-3, "peak learning rate of AdamW", within="[0, inf)", group=TRAINING)
    warmup_steps: int = option(100, "steps of linear warmup (capped at max_steps); then a cosine down to lr/10",
                               within="[0, inf)", flag=False)
    weight_decay: float = option(0.01, "AdamW's weight decay, on matrices only", within="[0, inf)", flag=False)
    label_smoothing: float = option(0.1, "share of each target's probability spread over the vocabulary",
                                    within="[0, 1)", flag=False)
    grad_clip: float = option(1.0, "clip the global gradient norm to this; 0: no clipping", within="[0, inf)",
                              flag=False)
    seed: int = option(1337, "seeds the weights and the training numbers", group=TRAINING)

    def __post_init__(self):
        check_options(self)
        self.texts = list(self.texts)
        self.train_range = (0, self.max_number + 1) if self.train_range is None else tuple(self.train_range)
        self.max_number = self.train_range[1] - 1
        self.test_range = None if self.test_range is None else tuple(self.test_range)

    def task(self):
        return NumberTranslation(self.direction, self.train_range, self.test_range, self.test_size, self.data_seed)

    def model_config(self, task):
        return Seq2SeqConfig(
            src_vocab_size=task.source_tokenizer.vocab_size, tgt_vocab_size=task.target_tokenizer.vocab_size,
            d_model=self.d_model, nhead=self.nhead, num_encoder_layers=self.num_layers,
            num_decoder_layers=self.num_layers, dim_feedforward=self.dim_feedforward, dropout=self.dropout,
            positional=self.positional, pad_id=task.target_tokenizer.pad_id,
        )

    def train_config(self):
        """The training loop's settings: AdamW with betas (0.9, 0.98), warmup, then a cosine down to lr/10."""
        return TrainConfig(
            max_iters=self.max_steps, batch_size=self.batch_size, lr=self.lr, betas=(0.9, 0.98),
            weight_decay=self.weight_decay, warmup_iters=min(self.warmup_steps, self.max_steps),
            lr_decay_iters=self.max_steps, min_lr_ratio=0.1, grad_clip=self.grad_clip, seed=self.seed,
        )

    def to_dict(self):
        return asdict(self)


def train_translator(config=None, progress=True):
    """Train a fresh model on ``config``'s task; returns ``(model, task, history)``.

    ``history`` holds the loss per step (``loss``), the steps done, and the
    wall-clock and CPU seconds spent. There is no evaluation during training:
    ``evaluate_translator`` scores the result.
    """
    config = config if config is not None else TranslateConfig()
    task = config.task()
    manual_seed(config.seed)
    model = Seq2SeqTransformer(config.model_config(task))

    def loss_fn(model, batch):
        src, tgt_in, tgt_out = batch  # (B, S), (B, T), (B, T)
        return model(src, tgt_in, tgt_out, label_smoothing=config.label_smoothing)[1]  # padding ignored

    trainer = Trainer(model, NumberPairs(task, config.batch_size), config=config.train_config(), loss_fn=loss_fn)
    start, cpu_start = time.perf_counter(), time.process_time()
    trained = trainer.train(progress=progress, max_seconds=config.max_seconds, desc="translate")
    history = {"loss": trained["train_loss"], "steps": trainer.step, "seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time() - cpu_start}  # of this process, all its threads
    model.eval()
    return model, task, history


def decode_ids(model, task, src, beam_size=1, length_penalty=0.0):
    """Target ids (lists, without <bos>/<eos>) for source ids ``src`` (B, S): greedy, or beam search."""
    bos, eos = task.target_tokenizer.bos_id, task.target_tokenizer.eos_id
    max_len = min(model.config.max_len, 2 * src.shape[1] + 8)  # a dozen words at most, here
    step = model_step(model, src)
    if beam_size == 1:
        return greedy_decode(step, len(src), bos, eos, max_len)[0]
    return beam_search(step, len(src), bos, eos, max_len, beam_size, length_penalty)[0]


def translate(model, task, texts, beam_size=1, batch_size=500):
    """Translations of ``texts`` (what a user typed: "4213", "4,213", or words for ``to_digits``)."""
    sources = [task.normalise_source(t) for t in texts]
    out, batch_size = [], max(1, batch_size // beam_size)  # the decoder runs batch_size * beam_size rows at once
    for i in range(0, len(sources), batch_size):
        src = task.encode_source(sources[i : i + batch_size])  # (B, S)
        out += [task.decode_target(ids) for ids in decode_ids(model, task, src, beam_size)]
    return out


def evaluate_translator(model, task, numbers=None, beam_size=1, batch_size=500):
    """Exact match and BLEU on ``numbers`` (default: the held-out test set), with a few mistakes to look at."""
    numbers = task.test_numbers if numbers is None else np.asarray(numbers)
    sources, references = zip(*(task.texts(n) for n in numbers))
    predictions = translate(model, task, sources, beam_size, batch_size)
    mistakes = [
        {"source": s, "reference": r, "prediction": p}
        for s, r, p in zip(sources, references, predictions) if p != r
    ]
    split = task.target_tokenizer.split  # BLEU counts n-grams of tokens: words, or digits and commas
    return {
        "exact_match": exact_match(predictions, list(references)),
        "bleu": bleu([split(p) for p in predictions], [split(r) for r in references]),
        "n": len(numbers), "mistakes": mistakes[:20],
    }


def save_translator(folder, model, task, config, results=None, overwrite=False):
    """A checkpoint folder of kind "translator": the weights, and in meta.json the configs, the task and
    ``results``. ``overwrite``: see ``save_checkpoint``."""
    meta = {
        "kind": "translator", "model_config": model.config.to_dict(), "translate_config": config.to_dict(),
        "task": task.to_dict(), "results": results or {},
    }
    save_checkpoint(folder, model.state_dict(), None, meta, overwrite=overwrite)


def load_translator(folder, reader="load_translator"):
    """``(model, task, meta)`` from a folder written by ``save_translator``, the model in eval mode; a folder
    holding anything else is a ValueError saying what it holds (``reader``: the caller, for that message)."""
    state, _, meta = load_checkpoint(folder, holds=("translator",), reader=reader)
    t = meta["task"]
    task = NumberTranslation(t["direction"], t["train_range"], t["test_range"], t["test_size"], t["seed"])
    model = Seq2SeqTransformer(Seq2SeqConfig(**meta["model_config"]))
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{folder}: the arrays do not fit the model meta.json describes: {err}") from None
    model.eval()
    return model, task, meta


def run(config=None):
    """``tinytransformer translate``: with ``config.train``, train a translator, score it on the held-out
    numbers, save it to ``config.out`` and print the report; then translate ``config.texts`` (or, without
    ``train``, each line of standard input) with it, or with the one saved in ``config.checkpoint``,
    printing source<TAB>translation."""
    config = config if config is not None else TranslateConfig()
    try:
        set_num_threads(config.threads)
    except ImportError as err:  # threadpoolctl is optional (the fast extra): the default threads then
        note_once(f"--threads {config.threads} not applied: {err}")
    if config.train:
        check_out_folder(config.out, config.overwrite)  # before any work: nothing is lost
        model, task, history = train_translator(config, progress=True)
        results = evaluate_translator(model, task, beam_size=config.beam)
        save_translator(config.out, model, task, config,
                        {**results, **{k: history[k] for k in ("steps", "seconds", "cpu_seconds")}}, config.overwrite)
        print(
            f"trained {history['steps']} steps in {history['seconds']:.1f} s ({history['cpu_seconds']:.1f} s of CPU); "
            f"{model.num_parameters():,} parameters\n"
            f"held-out test, {results['n']:,} numbers never seen in training: exact match "
            f"{results['exact_match']:.2%}, BLEU {100 * results['bleu']:.1f}"
        )
        for m in results["mistakes"][:5]:
            print(f"  {m['source']}: wrote {m['prediction']!r}, expected {m['reference']!r}")
        print(f'checkpoint: {config.out}\ntranslate:  tinytransformer translate --checkpoint {config.out} "4,213"')
        if not config.texts:
            return
    elif config.checkpoint is None:
        raise ValueError("give --checkpoint DIR to translate with a trained model, or --train to train one")
    else:
        model, task, _ = load_translator(config.checkpoint, reader="translate")
    texts = config.texts or read_texts(stream=sys.stdin)  # no text at all is an error, not an empty output
    for text, translation in zip(texts, translate(model, task, texts, beam_size=config.beam)):
        print(f"{text}\t{translation}")
