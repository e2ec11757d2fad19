"""A catalogue of bad checkpoint folders: each one is refused with one clear error naming the file and the
field at fault, fast, and before anything large is allocated or anything read from it is run.

Every case starts from a real, tiny checkpoint of one kind (a GPT, an LSTM, a classifier, an ensemble, a
tagger, a translator, a pretrained body, custom arrays), damages one thing, and hands the folder to the
loader a command uses. ``CASES`` is the catalogue; ``CLI_CASES`` runs a few of them through the command line.
"""

import io
import json
import shutil
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.data import BPETokenizer, CharTokenizer, WordTokenizer
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.models.heads import Ensemble, SequenceClassifier, TokenClassifier
from tinytransformer.models.rnn_lm import RNNLM, RNNLMConfig
from tinytransformer.models.seq2seq import Seq2SeqTransformer
from tinytransformer.tasks.finetuned import load_finetuned, save_finetuned
from tinytransformer.tasks.inspection import load_for_inspection
from tinytransformer.tasks.language_model import GPT_BODIES, load_pretrained, resume_pretraining, save_pretrained_body
from tinytransformer.tasks.translation import TranslateConfig, load_translator, save_translator
from tinytransformer.training import TrainConfig, Trainer, load_checkpoint, save_checkpoint

TEXT = "the cat sat on the mat. " * 10
MAX_SECONDS, MAX_BYTES = 1.0, 32 * 2**20  # a refusal takes well under a second and allocates nothing large


def _trainer(model, tokenizer):
    ids = np.array(tokenizer.encode(TEXT))
    return Trainer(model, ids, ids, TrainConfig(max_iters=1, eval_iters=1, batch_size=2), tokenizer=tokenizer,
                   meta={"data": "toy"})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One tiny, valid checkpoint of each kind, as the library writes them."""
    root = tmp_path_factory.mktemp("checkpoints")
    tt.manual_seed(0)
    chars, bpe = CharTokenizer.train(TEXT), BPETokenizer.train(TEXT, 260)
    words = WordTokenizer.train(["a great film", "a dull film"])
    body = GPTConfig(vocab_size=words.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)
    gpt = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=16))
    trained = _trainer(gpt, chars)
    trained.train_step()  # the optimizer has moments to save
    trained.save(root / "gpt")
    _trainer(GPT(GPTConfig(vocab_size=260, block_size=8, n_layer=1, n_head=2, n_embd=8)), bpe).save(root / "bpe")
    lstm = RNNLM(RNNLMConfig(vocab_size=chars.vocab_size, block_size=8, cell="lstm", n_layer=2, n_embd=8))
    _trainer(lstm, chars).save(root / "lstm")
    save_finetuned(root / "classifier", SequenceClassifier(body, 2), words, ["neg", "pos"])
    save_finetuned(root / "ensemble", Ensemble([SequenceClassifier(body, 2) for _ in range(2)]), words, ["n", "p"])
    save_finetuned(root / "tagger", TokenClassifier(body, 3), words, ["O", "B-x", "I-x"])
    config = TranslateConfig(train_range=(0, 100), test_size=4, d_model=8, num_layers=1, dim_feedforward=16)
    task = config.task()
    save_translator(root / "translator", Seq2SeqTransformer(config.model_config(task)), task, config)
    save_pretrained_body(root / "pretrained", GPT(body), words, "task text")
    save_checkpoint(root / "custom", {"w": np.ones((2, 3))}, None, {"note": "mine"})
    return root


# ------------------------------------------------------------ damaging a folder
def _meta(folder):
    return json.loads((folder / "meta.json").read_text())


def edit(change):
    """A mutation that edits meta.json as a dict: ``change(meta)``."""
    def mutate(folder):
        meta = _meta(folder)
        change(meta)
        (folder / "meta.json").write_text(json.dumps(meta))
    return mutate


def write_meta(text):
    def mutate(folder):
        (folder / "meta.json").write_text(text)
    return mutate


def setter(*path_and_value):
    """``edit`` that sets meta[a][b]... = value (a key path, then the value); ``...`` as the value deletes."""
    *path, value = path_and_value

    def change(meta):
        for key in path[:-1]:
            meta = meta[key]
        if value is ...:
            del meta[path[-1]]
        else:
            meta[path[-1]] = value
    return edit(change)


def _npz_path(folder, which="model"):
    return folder / _meta(folder)["files"][which]


def cut(size, which="model"):
    """Truncate the model (or optimizer) file to ``size`` bytes (a float: that fraction of it)."""
    def mutate(folder):
        path = _npz_path(folder, which)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * size) if isinstance(size, float) else size])
    return mutate


def rewrite_npz(members=None, drop=(), compress=False, which="model", raw=None):
    """Rewrite the model file with ``members`` ({array name: .npy bytes}) replaced or added, ``drop`` left out,
    and ``raw`` ({file name: bytes}) added as they are."""
    def mutate(folder):
        path = _npz_path(folder, which)
        with zipfile.ZipFile(path) as archive:
            entries = {info.filename: archive.read(info) for info in archive.infolist()}
        for name in drop:
            del entries[name + ".npy"]
        entries.update({name + ".npy": data for name, data in (members or {}).items()}, **(raw or {}))
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    return mutate


def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def lying_npy(shape) -> bytes:
    """An .npy whose header claims ``shape`` of float32, followed by 64 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def flip_a_data_byte(folder):
    """Corrupt one byte inside the first array's data: the zip's CRC no longer matches."""
    path = _npz_path(folder)
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 140] ^= 0xFF
    path.write_bytes(bytes(data))


def both(*mutations):
    def mutate(folder):
        for m in mutations:
            m(folder)
    return mutate


# ------------------------------------------------------------ the readers
def _trainer_load(folder):
    tt.manual_seed(0)
    chars = CharTokenizer.train(TEXT)
    _trainer(GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=16)),
             chars).load(folder)


READERS = {
    "generate": lambda f: load_pretrained(f, reader="generate"),
    "inspect": lambda f: load_for_inspection(f, "the cat"),
    "classify": lambda f: load_finetuned(f, task="classify", reader="classify"),
    "tag": lambda f: load_finetuned(f, task="tag", reader="tag"),
    "translate": lambda f: load_translator(f, reader="translate"),
    "finetune --checkpoint": lambda f: load_pretrained(f, reader="finetune --checkpoint", holds=GPT_BODIES),
    "train --resume": resume_pretraining,
    "Trainer.load": _trainer_load,
    "load_checkpoint": load_checkpoint,
}
META, MODEL, OPTIMIZER, FOLDER = "{meta}", "{model}", "{optimizer}", "{folder}"

# (case id, the folder it starts from, what is damaged, the reader, what the message must say)
CASES = [
    # meta.json: not a JSON object of the known keys
    ("meta not JSON", "gpt", write_meta("{not json"), "generate", [META, "not valid JSON"]),
    ("meta is a list", "gpt", write_meta("[1, 2]"), "generate", [META, "JSON object", "list"]),
    ("meta is a string", "classifier", write_meta('"hello"'), "classify", [META, "JSON object"]),
    ("meta empty file", "gpt", write_meta(""), "generate", [META, "not valid JSON"]),
    ("meta nested a million deep", "gpt", write_meta("[" * 1_000_000), "generate", [META, "not valid JSON"]),
    ("meta not UTF-8", "gpt", lambda f: (f / "meta.json").write_bytes(b"\xff\xfe{}"), "generate",
     [META, "not valid JSON"]),
    ("no format_version", "gpt", setter("format_version", ...), "generate", [META, "format_version"]),
    ("format_version a string", "gpt", setter("format_version", "2"), "generate", [META, "format_version"]),
    ("old format_version 1", "gpt", setter("format_version", 1), "generate", [META, "format_version 1", "older"]),
    ("newer format_version", "gpt", setter("format_version", 99), "generate", [META, "newer"]),
    ("unknown key", "gpt", setter("surprise", 1), "generate", [META, "unknown key surprise"]),
    ("unknown config key", "gpt", setter("model_config", "n_embed", 16), "generate", [META, "model_config.n_embed"]),
    ("unknown head key", "classifier", setter("head", "task", "classify"), "classify", [META, "head.task"]),
    ("missing key", "gpt", setter("tokenizer", ...), "generate", [META, "missing key tokenizer"]),
    ("missing files", "translator", setter("files", ...), "translate", [META, "files"]),
    ("kind missing", "gpt", setter("kind", ...), "generate", [META, "kind"]),
    ("kind unknown", "gpt", setter("kind", "wizard"), "generate", [META, "kind", "wizard"]),
    ("model_type unknown", "gpt", setter("model_type", "transformer"), "generate", [META, "model_type"]),
    ("cell disagrees with model_type", "lstm", setter("model_type", "rnn"), "generate", [META, "model_config.cell"]),
    ("step a string", "gpt", setter("step", "ten"), "generate", [META, "step", "'ten'"]),
    ("step negative", "gpt", setter("step", -4), "generate", [META, "step", "-4"]),
    ("save_count a string", "gpt", setter("save_count", "x"), "generate", [META, "save_count"]),
    ("width a string", "gpt", setter("model_config", "n_embd", "wide"), "generate", [META, "model_config.n_embd"]),
    ("bias a string", "gpt", setter("model_config", "bias", "yes"), "generate", [META, "model_config.bias"]),
    ("width negative", "gpt", setter("model_config", "n_embd", -16), "generate", [META, "n_embd", "-16"]),
    ("width a fraction", "gpt", setter("model_config", "n_embd", 16.5), "generate", [META, "n_embd", "16.5"]),
    ("heads do not divide width", "gpt", setter("model_config", "n_head", 3), "generate", [META, "model_config", "n_head"]),
    ("dropout 1.5", "gpt", setter("model_config", "dropout", 1.5), "generate", [META, "dropout", "1.5"]),
    ("labels not strings", "classifier", setter("labels", [0, 1]), "classify", [META, "labels"]),
    ("labels repeated", "classifier", setter("labels", ["a", "a"]), "classify", [META, "labels"]),
    ("pooling unknown", "classifier", setter("head", "pooling", "median"), "classify", [META, "head.pooling"]),
    ("head dropout a string", "tagger", setter("head", "dropout", "x"), "tag", [META, "head.dropout"]),
    ("task direction unknown", "translator", setter("task", "direction", "sideways"), "translate",
     [META, "task.direction"]),
    ("task range past a billion", "translator", setter("task", "train_range", [0, 10**18]), "translate",
     [META, "task.train_range"]),
    ("test_size 10^9", "translator", setter("task", "test_size", 10**9), "translate", [META, "task.test_size"]),
    ("sinusoid table of 10^9 positions", "translator", setter("model_config", "max_len", 10**9), "translate",
     [META, "model_config.max_len"]),
    ("first save interrupted", "gpt", write_meta('{"format_version": 2, "kind": "language_model", '
                                                '"pending": ["model-1.npz"]}'), "generate", [META, "interrupted"]),
    # file names: inside the folder, of the names a save writes
    ("model file ../x.npz", "gpt", setter("files", "model", "../x.npz"), "generate", [META, "files.model", "../x.npz"]),
    ("model file /etc/passwd", "gpt", setter("files", "model", "/etc/passwd"), "generate",
     [META, "files.model", "/etc/passwd"]),
    ("model file in a subfolder", "gpt", setter("files", "model", "sub/model-1.npz"), "generate",
     [META, "files.model"]),
    ("model file with a backslash", "gpt", setter("files", "model", "..\\model-1.npz"), "generate",
     [META, "files.model"]),
    ("model file of another name", "classifier", setter("files", "model", "weights.bin"), "classify",
     [META, "files.model", "weights.bin"]),
    ("optimizer file ../../o.npz", "gpt", setter("files", "optimizer", "../../o.npz"), "generate",
     [META, "files.optimizer"]),
    ("superseded outside", "gpt", setter("superseded", ["../../victim.npz"]), "generate", [META, "superseded[0]"]),
    ("pending /etc/passwd", "gpt", setter("pending", ["/etc/passwd"]), "generate", [META, "pending[0]"]),
    # tokenizers: a pattern is code, so only the library's own
    ("bpe pattern (a+)+$", "bpe", setter("tokenizer", "pattern", "(a+)+$"), "generate",
     [META, "tokenizer.pattern", "(a+)+$"]),
    ("bpe pattern (", "bpe", setter("tokenizer", "pattern", "("), "generate", [META, "tokenizer.pattern", "'('"]),
    ("word pattern (a+)+$", "classifier", setter("tokenizer", "pattern", "(a+)+$"), "classify",
     [META, "tokenizer.pattern"]),
    ("tokenizer type unknown", "gpt", setter("tokenizer", "type", "sentencepiece"), "generate",
     [META, "tokenizer", "sentencepiece"]),
    ("tokenizer without its chars", "gpt", setter("tokenizer", "chars", ...), "generate", [META, "tokenizer"]),
    ("bpe merge of unknown ids", "bpe", setter("tokenizer", "merges", [[999, 1]]), "generate", [META, "tokenizer"]),
    # sizes: bounded by the arrays present, compared before a model is built
    ("width 8192", "gpt", setter("model_config", "n_embd", 8192), "generate", [META, "model_config.n_embd", "8192",
                                                                               MODEL]),
    ("vocabulary 65536", "gpt", setter("model_config", "vocab_size", 65536), "generate",
     [META, "model_config.vocab_size", "65536"]),
    ("block of 10^9", "gpt", setter("model_config", "block_size", 10**9), "generate",
     [META, "model_config.block_size", MODEL]),
    ("a million layers", "gpt", setter("model_config", "n_layer", 10**6), "generate",
     [META, "model_config.n_layer", MODEL]),
    ("bias denied", "bpe", setter("model_config", "bias", False), "generate", [META, "model_config.bias", MODEL]),
    ("lstm width 4096", "lstm", setter("model_config", "n_hidden", 4096), "generate",
     [META, "model_config.n_hidden", MODEL]),
    ("lstm layers 1000", "lstm", setter("model_config", "n_layer", 1000), "train --resume",
     [META, "model_config.n_layer", MODEL]),
    ("ensemble of 100000", "ensemble", setter("head", "members", 100_000), "classify", [META, "head.members", MODEL]),
    ("ensemble member count dropped", "ensemble", setter("head", "members", None), "classify", [META, "head.members"]),
    ("classifier width 8192", "classifier", setter("model_config", "n_embd", 8192), "inspect",
     [META, "model_config.n_embd", MODEL]),
    ("more labels than the head", "classifier", setter("labels", ["a", "b", "c"]), "classify", [META, "labels", MODEL]),
    ("tagger with fewer tags", "tagger", setter("labels", ["O", "B-x"]), "tag", [META, "labels", MODEL]),
    ("translator width 4096", "translator", setter("model_config", "d_model", 4096), "translate",
     [META, "model_config.d_model", MODEL]),
    ("translator 50 encoder layers", "translator", setter("model_config", "num_encoder_layers", 50), "translate",
     [META, "num_encoder_layers", MODEL]),
    ("translator learned positions claimed", "translator", setter("model_config", "positional", "learned"),
     "translate", [MODEL, "src_pos.weight"]),
    # the arrays: damaged, pickled, lying about their size
    ("model file missing", "gpt", lambda f: _npz_path(f).unlink(), "generate", [MODEL, "missing"]),
    ("npz cut in half", "gpt", cut(0.5), "generate", [MODEL, "cut short"]),
    ("npz cut to 10 bytes", "classifier", cut(10), "classify", [MODEL, "cut short"]),
    ("npz empty", "translator", cut(0), "translate", [MODEL, "cut short"]),
    ("npz is text", "gpt", lambda f: _npz_path(f).write_text("hello"), "generate", [MODEL, "not a readable .npz"]),
    ("npz with a flipped byte", "gpt", flip_a_data_byte, "generate", [MODEL, "damaged"]),
    ("pickled object array", "gpt",
     rewrite_npz({"transformer.wte.weight": npy(np.array([{"evil": 1}], dtype=object), allow_pickle=True)}),
     "generate", [MODEL, "transformer.wte.weight", "pickle"]),
    ("npy header claims 10^12 floats", "gpt", rewrite_npz({"transformer.wte.weight": lying_npy((10**6, 10**6))}),
     "generate", [MODEL, "transformer.wte.weight", "claims shape (1000000, 1000000)"]),
    ("npy header claims a bit more", "classifier", rewrite_npz({"score.bias": lying_npy((17,))}), "classify",
     [MODEL, "score.bias", "claims"]),
    ("compressed npz", "gpt", rewrite_npz(compress=True), "generate", [MODEL, "compressed"]),
    ("string weights", "gpt", rewrite_npz({"transformer.wpe.weight": npy(np.array([["a"] * 16] * 8))}), "generate",
     [MODEL, "transformer.wpe.weight", "dtype"]),
    ("integer weights", "gpt", rewrite_npz({"transformer.wpe.weight": npy(np.zeros((8, 16), np.int64))}), "generate",
     [MODEL, "transformer.wpe.weight", "int64"]),
    ("a weight missing", "gpt", rewrite_npz(drop=["transformer.wpe.weight"]), "generate",
     [MODEL, "transformer.wpe.weight"]),
    ("a weight of the wrong rank", "gpt", rewrite_npz({"transformer.wte.weight": npy(np.zeros(5, np.float32))}),
     "generate", [MODEL, "transformer.wte.weight", "2 dimensions"]),
    ("a layer of the wrong shape", "gpt",
     rewrite_npz({"transformer.h.1.attn.c_attn.weight": npy(np.zeros((3, 3), np.float32))}), "generate",
     [MODEL, "transformer.h.1.attn.c_attn.weight"]),
    ("a member that is not an array", "gpt", rewrite_npz(raw={"readme.txt": b"hi"}), "generate", [MODEL, "readme"]),
    ("optimizer cut short", "gpt", cut(0.3, "optimizer"), "Trainer.load", [OPTIMIZER, "cut short"]),
    ("optimizer array missing", "gpt", rewrite_npz(drop=["state.0.exp_avg"], which="optimizer"), "Trainer.load",
     [OPTIMIZER, "state.0.exp_avg"]),
    ("custom arrays pickled", "custom", rewrite_npz({"w": npy(np.array([print], dtype=object), allow_pickle=True)}),
     "load_checkpoint", [MODEL, "pickle"]),
    # the wrong kind of folder for the command
    ("translator to generate", "translator", None, "generate",
     [FOLDER, "holds a translator", "translate --train", "`generate` reads a language model",
      "tinytransformer translate --checkpoint"]),
    ("translator to inspect", "translator", None, "inspect", [FOLDER, "holds a translator", "`inspect`"]),
    ("translator to classify", "translator", None, "classify", [FOLDER, "holds a translator", "`classify` reads a classifier"]),
    ("translator to train --resume", "translator", None, "train --resume", [FOLDER, "holds a translator"]),
    ("classifier to generate", "classifier", None, "generate",
     [FOLDER, "holds a classifier", "tinytransformer classify --checkpoint"]),
    ("classifier to translate", "classifier", None, "translate", [FOLDER, "holds a classifier", "reads a translator"]),
    ("classifier to tag", "classifier", None, "tag", [FOLDER, "holds a classifier", "`tag` reads a tagger"]),
    ("classifier to Trainer.load", "classifier", None, "Trainer.load", [FOLDER, "classifier", "Trainer.save"]),
    ("tagger to classify", "tagger", None, "classify", [FOLDER, "holds a tagger", "tinytransformer tag --checkpoint"]),
    ("gpt to classify", "gpt", None, "classify", [FOLDER, "holds a GPT language model", "generate --checkpoint"]),
    ("gpt to translate", "gpt", None, "translate", [FOLDER, "holds a GPT language model"]),
    ("lstm to inspect", "lstm", None, "inspect", [FOLDER, "holds an LSTM language model", "`inspect` reads a GPT"]),
    ("lstm to finetune --checkpoint", "lstm", None, "finetune --checkpoint", [FOLDER, "holds an LSTM language model"]),
    ("pretrained body to classify", "pretrained", None, "classify", [FOLDER, "holds a pretrained language model"]),
    ("pretrained body to train --resume", "pretrained", None, "train --resume", [FOLDER, "pretrained language model"]),
    ("custom arrays to generate", "custom", None, "generate", [FOLDER, "holds arrays saved from Python"]),
    ("no checkpoint at all", "gpt", lambda f: (f / "meta.json").unlink(), "generate", [FOLDER, "is not a checkpoint"]),
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.parametrize("name, start, damage, reader, needles", CASES, ids=_ids(CASES))
def test_a_bad_checkpoint_is_refused_fast_with_the_file_and_the_field(name, start, damage, reader, needles, folders,
                                                                      tmp_path):
    folder = tmp_path / start
    shutil.copytree(folders / start, folder)
    meta = _meta(folder)
    paths = {META: folder / "meta.json", FOLDER: folder, MODEL: folder / meta["files"]["model"],
             OPTIMIZER: folder / meta["files"].get("optimizer", "-")}
    if damage is not None:
        damage(folder)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises((ValueError, FileNotFoundError)) as error:
            READERS[reader](folder)
        seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(error.value)
    for needle in needles:
        assert str(paths.get(needle, needle)) in message, (needle, message)
    assert seconds < MAX_SECONDS and peak < MAX_BYTES, (seconds, peak)
    assert "\n" not in message


def test_the_catalogue_is_large_and_its_starting_folders_load(folders):
    assert len(CASES) >= 90
    assert load_pretrained(folders / "gpt", reader="generate")[2]["kind"] == "language_model"
    assert load_pretrained(folders / "lstm")[0].config.cell == "lstm"
    assert load_finetuned(folders / "ensemble", task="classify")[2]["head"]["members"] == 2
    assert load_finetuned(folders / "tagger", task="tag")[2]["kind"] == "tagger"
    assert load_translator(folders / "translator")[2]["kind"] == "translator"
    assert load_pretrained(folders / "pretrained", holds=GPT_BODIES)[2]["kind"] == "pretrained_body"
    assert load_checkpoint(folders / "custom")[2]["note"] == "mine"
    _trainer_load(folders / "gpt")


# (argv after the folder, the folder, what the one line must say)
CLI_CASES = [
    (["generate", "--checkpoint"], "translator", "holds a translator"),
    (["inspect", "--text", "x", "--checkpoint"], "translator", "holds a translator"),
    (["classify", "--checkpoint"], "translator", "holds a translator"),
    (["tag", "--checkpoint"], "classifier", "holds a classifier"),
    (["translate", "12", "--checkpoint"], "gpt", "holds a GPT language model"),
    (["generate", "--checkpoint"], "classifier", "holds a classifier"),
]


@pytest.mark.parametrize("argv, start, needle", CLI_CASES, ids=[f"{a[0]} on {s}" for a, s, _ in CLI_CASES])
def test_the_commands_say_what_the_folder_holds_in_one_line(argv, start, needle, folders, capsys):
    from tinytransformer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, str(folders / start)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and needle in err, err
