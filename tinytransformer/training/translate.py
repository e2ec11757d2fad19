"""Training the encoder-decoder Transformer to write numbers in words, and using what it learnt.

    task  = NumberTranslation(...)                      fresh random numbers every batch, a held-out test set
    model = Seq2SeqTransformer(Seq2SeqConfig(...))      2 + 2 layers, width 64: about 200k parameters
    for each step:
        src, tgt_in, tgt_out = task.batch(task.sample_train(rng, batch_size))
        loss = cross_entropy(model(src, tgt_in), tgt_out, label_smoothing)      padding ignored
        backward, clip the gradient norm, AdamW step, warmup + cosine schedule
    greedy-decode the test numbers: exact match and BLEU

``train_translator`` runs that; ``save_translator``/``load_translator`` keep
the result as a checkpoint folder (the format of ``checkpoint.py``, without
an optimizer: a finished translator is not resumed); ``translate`` turns what
a user typed into words (or digits). The command line's ``tinytransformer
translate`` is a thin layer over these.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..data.translation import NumberTranslation
from ..models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from ..optim import AdamW, clip_grad_norm_
from ..optim.lr_scheduler import WarmupCosineLR
from ..random import manual_seed
from ..translation import beam_search, bleu, exact_match, greedy_decode, model_step
from .checkpoint import load_checkpoint, save_checkpoint
from .progress import Progress


@dataclass
class TranslateConfig:
    """The task, the model and the optimisation; the defaults reach >= 99% exact match on held-out numbers.

    ``train_range``/``test_range`` are [low, high) ranges of numbers (the test
    range defaults to the training one); ``max_seconds`` stops training early
    when the wall-clock budget is spent (the schedule still assumes ``max_steps``).
    """

    direction: str = "to_words"
    train_range: tuple = (0, 1_000_000)
    test_range: tuple = None
    test_size: int = 2000
    data_seed: int = 0
    d_model: int = 64
    nhead: int = 4
    num_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.0
    positional: str = "sinusoidal"
    max_steps: int = 1000
    max_seconds: float = None
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337

    def __post_init__(self):
        self.train_range = tuple(self.train_range)
        self.test_range = None if self.test_range is None else tuple(self.test_range)
        for name in ("max_steps", "batch_size", "test_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TranslateConfig: {name} must be a positive integer, got {getattr(self, name)}")

    def task(self):
        return NumberTranslation(self.direction, self.train_range, self.test_range, self.test_size, self.data_seed)

    def model_config(self, task):
        return Seq2SeqConfig(
            src_vocab_size=task.source_tokenizer.vocab_size, tgt_vocab_size=task.target_tokenizer.vocab_size,
            d_model=self.d_model, nhead=self.nhead, num_encoder_layers=self.num_layers,
            num_decoder_layers=self.num_layers, dim_feedforward=self.dim_feedforward, dropout=self.dropout,
            positional=self.positional, pad_id=task.target_tokenizer.pad_id,
        )

    def to_dict(self):
        return asdict(self)


def train_translator(config=None, progress=True):
    """Train a fresh model on ``config``'s task; returns ``(model, task, history)``.

    ``history`` holds the loss per step, the steps done, and the wall-clock and CPU seconds spent.
    """
    config = config if config is not None else TranslateConfig()
    task = config.task()
    manual_seed(config.seed)
    model = Seq2SeqTransformer(config.model_config(task))
    optimizer = AdamW(model.optimizer_groups(config.weight_decay), lr=config.lr, betas=(0.9, 0.98))
    scheduler = WarmupCosineLR(optimizer, min(config.warmup_steps, config.max_steps), config.max_steps)
    rng = np.random.default_rng(config.seed)
    history = {"loss": []}
    bar = Progress(config.max_steps, enabled=progress, desc="translate")
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        for _ in range(config.max_steps):
            src, tgt_in, tgt_out = task.batch(task.sample_train(rng, config.batch_size))
            _, loss = model(src, tgt_in, tgt_out, label_smoothing=config.label_smoothing)
            loss.backward()
            if config.grad_clip > 0:
                clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            history["loss"].append(loss.item())
            bar.update(loss=f"{loss.item():.3f}")
            if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
                break
    finally:
        bar.close()
    history["steps"], history["seconds"] = len(history["loss"]), time.perf_counter() - start
    history["cpu_seconds"] = time.process_time() - cpu_start  # of this process, all its threads
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
    out = []
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


def save_translator(folder, model, task, config, results=None):
    """A checkpoint folder: the weights, and in meta.json the configs, the task and ``results``."""
    meta = {
        "kind": "translator", "model_config": model.config.to_dict(), "translate_config": config.to_dict(),
        "task": task.to_dict(), "results": results or {},
    }
    save_checkpoint(folder, model.state_dict(), None, meta)


def load_translator(folder):
    """``(model, task, meta)`` from a folder written by ``save_translator``, the model in eval mode."""
    state, _, meta = load_checkpoint(folder)
    if meta.get("kind") != "translator":
        raise ValueError(f"load_translator: {folder} holds no translator (written by `tinytransformer train`?)")
    t = meta["task"]
    task = NumberTranslation(t["direction"], t["train_range"], t["test_range"], t["test_size"], t["seed"])
    model = Seq2SeqTransformer(Seq2SeqConfig(**meta["model_config"]))
    model.load_state_dict(state)
    model.eval()
    return model, task, meta
