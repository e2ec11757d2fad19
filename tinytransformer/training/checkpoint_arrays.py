"""Reading a checkpoint's arrays without trusting them: every header checked before any data is read.

An ``.npz`` file is a zip archive of ``.npy`` files, each a small header (dtype,
shape) followed by the raw bytes. NumPy allocates what a header claims before
it reads, so a header claiming a shape of 10^12 would ask for terabytes.
``array_headers`` reads only the headers, and checks each member:

    it is stored uncompressed (``np.savez`` writes no compression) and lies inside the file
    its dtype is a plain number: never an object array (that is a pickle, and pickles run code)
    prod(shape) x itemsize == the bytes the member really holds

Then ``check_sizes`` compares the model config in meta.json with what the arrays
present show (``gpt_sizes``, ``bert_sizes``, ``rnn_sizes``, ``seq2seq_sizes``, ``bitagger_sizes``): the width and
vocabulary from the embedding table, the layers from the arrays of each layer,
an ensemble's members from the members' arrays. A config edited to a width of
8192 beside a 19 kB file fails there, naming meta.json and the field, before a
model of that width is built; a model that passes allocates about what the file
holds. Only then are the arrays read (``read_arrays``, ``allow_pickle=False``);
``load_state_dict`` finally compares every array with the model built.
"""

import math
import os
import zipfile

import numpy as np

from ..models.bert import BertConfig
from ..models.gpt import GPTConfig
from ..models.rnn_lm import RNNLMConfig
from ..models.seq2seq import Seq2SeqConfig
from ..models.tagger import BiTaggerConfig
from .checkpoint_schema import is_bitagger, what_it_holds

NUMBERS = "biufc"  # dtype kinds of plain numbers: bool, int, uint, float, complex
FLOATS = "f"  # a model's weights


def _damaged(path, err) -> ValueError:
    return ValueError(f"{path}: not a readable .npz file ({err}); the checkpoint is damaged or was cut short")


def _member_header(archive, info, path, dtype_kinds):
    """``(shape, dtype)`` of one member of an .npz, from its header alone, checked against its size."""
    name = info.filename
    where = f"{path}: array {name[:-4]!r}"
    if not name.endswith(".npy"):
        raise ValueError(f"{path}: holds {name!r}, which is not an array (.npy)")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{where} is compressed; checkpoints hold uncompressed arrays (np.savez)")
    if info.header_offset + info.compress_size > os.path.getsize(path):
        raise _damaged(path, f"array {name[:-4]!r} ends past the end of the file")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{where} has .npy format version {version}, which is not read")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        header_bytes = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{where} holds Python objects (a pickle), which are never loaded: a checkpoint holds "
                         "numbers only")
    if dtype.fields is not None or dtype.kind not in dtype_kinds:
        raise ValueError(f"{where} has dtype {dtype}; expected {'floating-point' if dtype_kinds == FLOATS else 'numeric'} "
                         "values")
    claimed = math.prod(shape) * dtype.itemsize
    held = info.file_size - header_bytes
    if claimed != held:
        raise ValueError(f"{where}: its header claims shape {shape} of {dtype} ({claimed:,} bytes), but the file "
                         f"holds {held:,} bytes of it; the checkpoint is damaged")
    return tuple(shape), dtype


def array_headers(path, dtype_kinds=NUMBERS) -> dict:
    """``{name: (shape, dtype)}`` of the arrays in the .npz at ``path``, each checked (module docstring),
    without reading any array's data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}, which the checkpoint's meta.json names, is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise ValueError(f"{path}: holds an array name twice")
            return {info.filename[:-4]: _member_header(archive, info, path, dtype_kinds) for info in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise _damaged(path, err) from None
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise _damaged(path, err) from None


def read_arrays(path) -> dict:
    """The arrays of an .npz whose headers ``array_headers`` has checked, read with ``allow_pickle=False``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise _damaged(path, err) from None


# ------------------------------------------------ what the arrays present show
class Shapes:
    """The shapes of one .npz's arrays; a missing array or a shape of the wrong rank is an error naming the file."""

    def __init__(self, headers, path):
        self.shapes = {name: shape for name, (shape, _) in headers.items()}
        self.path = path

    def __contains__(self, name):
        return name in self.shapes

    def dim(self, name, axis, ndim=2):
        """``(size, evidence)``: the size of ``name`` along ``axis``, and where it was read."""
        if name not in self.shapes:
            raise ValueError(f"{self.path}: has no array {name!r}, which this kind of model needs")
        shape = self.shapes[name]
        if len(shape) != ndim:
            raise ValueError(f"{self.path}: array {name!r} has shape {shape}; expected {ndim} dimensions")
        return shape[axis], f"{name} is {shape}"

    def count(self, template, shape):
        """``(n, evidence)``: how many of ``template.format(0)``, ``template.format(1)``, ... are present,
        each of ``shape`` (a layer counts only if its arrays are really in the file)."""
        n = 0
        while template.format(n) in self.shapes:
            if self.shapes[template.format(n)] != shape:
                raise ValueError(f"{self.path}: array {template.format(n)!r} has shape "
                                 f"{self.shapes[template.format(n)]}; expected {shape}")
            n += 1
        return n, f"{template.format(0)} .. {template.format(max(n - 1, 0))} are present" if n else \
            f"there is no {template.format(0)}"


def gpt_sizes(shapes, prefix=""):
    """GPTConfig's sizes as a GPT's arrays show them: (V, C) tokens, (T, C) positions, (3C, C) per block."""
    wte, wpe = prefix + "transformer.wte.weight", prefix + "transformer.wpe.weight"
    n_embd = shapes.dim(wte, 1)
    return {"vocab_size": shapes.dim(wte, 0), "n_embd": n_embd, "block_size": shapes.dim(wpe, 0),
            "n_layer": shapes.count(prefix + "transformer.h.{}.attn.c_attn.weight", (3 * n_embd[0], n_embd[0])),
            "bias": (prefix + "transformer.ln_f.bias" in shapes, f"{prefix}transformer.ln_f.bias present or not")}


def bert_sizes(shapes, prefix=""):
    """BertConfig's sizes as a BertForMaskedLM's arrays show them: (V, C) tokens, (T, C) positions, (types, C)
    segments, (C, C) queries and (F, C) feed-forward weights per layer."""
    emb = prefix + "bert.embeddings."
    n_embd = shapes.dim(emb + "word_embeddings.weight", 1)
    feedforward = shapes.dim(prefix + "bert.encoder.layer.0.intermediate.dense.weight", 0)
    return {"vocab_size": shapes.dim(emb + "word_embeddings.weight", 0), "n_embd": n_embd,
            "block_size": shapes.dim(emb + "position_embeddings.weight", 0),
            "type_vocab_size": shapes.dim(emb + "token_type_embeddings.weight", 0), "intermediate_size": feedforward,
            "n_layer": shapes.count(prefix + "bert.encoder.layer.{}.attention.self.query.weight", (n_embd[0],) * 2)}


def rnn_sizes(shapes, cell):
    """RNNLMConfig's sizes: (V, E) tokens, (V, H) output layer, (gates x H, H) recurrent weights per layer."""
    n_hidden = shapes.dim("lm_head.weight", 1)
    gates = 4 if cell == "lstm" else 1
    return {"vocab_size": shapes.dim("wte.weight", 0), "n_embd": shapes.dim("wte.weight", 1), "n_hidden": n_hidden,
            "n_layer": shapes.count("rnn.weight_hh_l{}", (gates * n_hidden[0], n_hidden[0]))}


def seq2seq_sizes(shapes, positional):
    """Seq2SeqConfig's sizes: the two embedding tables, (F, d) feed-forward weights per layer, learned positions."""
    d_model = shapes.dim("src_tok_emb.weight", 1)
    feedforward = shapes.dim("transformer.encoder.layers.0.linear1.weight", 0)
    layer = (feedforward[0], d_model[0])
    sizes = {"src_vocab_size": shapes.dim("src_tok_emb.weight", 0), "d_model": d_model,
             "tgt_vocab_size": shapes.dim("tgt_tok_emb.weight", 0), "dim_feedforward": feedforward,
             "num_encoder_layers": shapes.count("transformer.encoder.layers.{}.linear1.weight", layer),
             "num_decoder_layers": shapes.count("transformer.decoder.layers.{}.linear1.weight", layer)}
    if positional == "learned":
        sizes["max_len"] = shapes.dim("src_pos.weight", 0)
    return sizes


def bitagger_sizes(shapes):
    """BiTaggerConfig's sizes: (V, D) words and (C, E) characters (each absent when that input is off), (F, E, k)
    filters, (4H, H) weights per BiLSTM layer, (K, 2H) emissions; and last the width I of a word's inputs, from
    the first layer's (4H, I), for what no array shows alone (the shape features, extra_dim)."""
    sizes = {"vocab_size": (0, "there is no embedding.weight"), "char_vocab_size": (0, "there is no char_cnn.weight")}
    if "embedding.weight" in shapes:
        sizes.update(vocab_size=shapes.dim("embedding.weight", 0), word_dim=shapes.dim("embedding.weight", 1))
    if "char_cnn.weight" in shapes:
        filters = [shapes.dim("char_cnn.weight", axis, ndim=3) for axis in range(3)]
        sizes.update(char_vocab_size=shapes.dim("char_cnn.embedding.weight", 0), char_filters=filters[0],
                     char_dim=filters[1], char_kernel=filters[2])
    hidden = shapes.dim("body.0.forward_lstm.weight_hh_l0", 1)
    sizes.update(hidden_size=hidden, num_layers=shapes.count("body.{}.forward_lstm.weight_hh_l0", (4 * hidden[0],
                                                                                                     hidden[0])),
                 num_tags=shapes.dim("classifier.weight", 0),
                 output=("crf" if "crf.transitions" in shapes else "softmax", "crf.transitions present or not"),
                 input_size=shapes.dim("body.0.forward_lstm.weight_ih_l0", 1))
    return sizes


def _compare(config, sizes, meta_path, npz_path, key="model_config"):
    for field, (size, evidence) in sizes.items():
        if getattr(config, field) != size:
            raise ValueError(f"{meta_path}: {key}.{field} is {getattr(config, field)!r}, but the arrays in "
                             f"{npz_path} show {size!r} ({evidence}); meta.json and the arrays do not belong together")


def _check_head(meta, shapes, meta_path, npz_path):
    """A classifier's or tagger's arrays: the members of an ensemble, each body (a GPT or a BERT), each head's width."""
    bert = meta.get("body_type", "gpt") == "bert"
    config = (BertConfig if bert else GPTConfig)(**meta["model_config"])
    body_sizes, embedding = (bert_sizes, "bert.embeddings.word_embeddings") if bert else (gpt_sizes, "transformer.wte")
    members = meta["head"]["members"]
    present, evidence = shapes.count("members.{}.body." + embedding + ".weight", (config.vocab_size, config.n_embd))
    if (members or 0) != present:
        raise ValueError(f"{meta_path}: head.members is {members!r}, but the arrays in {npz_path} hold "
                         f"{present or 'no'} ensemble members ({evidence})")
    n = len(meta["labels"])
    for prefix in [f"members.{k}." for k in range(members)] if members is not None else [""]:
        _compare(config, body_sizes(shapes, prefix + "body."), meta_path, npz_path)
        if meta["kind"] == "classifier":
            out = shapes.dim(prefix + "score.weight", 0)
            expected = 1 if n == 2 else n  # two classes: one logit
        else:
            out, expected = shapes.dim(prefix + "classifier.weight", 0), n
        if out[0] != expected:
            raise ValueError(f"{meta_path}: labels holds {n} labels, but the arrays in {npz_path} are a head for "
                             f"{max(out[0], 2)} ({out[1]})")


def check_sizes(meta, headers, meta_path, npz_path):
    """Compare meta.json's model config with the arrays of ``npz_path`` (``headers``), before any model is
    built: every size must be what the arrays show (module docstring). Custom checkpoints are not compared."""
    shapes, what = Shapes(headers, npz_path), what_it_holds(meta)
    if what == "custom":
        return
    if what == "translator":
        config = Seq2SeqConfig(**meta["model_config"])
        _compare(config, seq2seq_sizes(shapes, config.positional), meta_path, npz_path)
    elif what in ("rnn", "lstm"):
        _compare(RNNLMConfig(**meta["model_config"]), rnn_sizes(shapes, what), meta_path, npz_path)
    elif what == "bert":
        _compare(BertConfig(**meta["model_config"]), bert_sizes(shapes), meta_path, npz_path)
    elif is_bitagger(meta):
        _compare(BiTaggerConfig(**meta["model_config"]), bitagger_sizes(shapes), meta_path, npz_path)
    elif what in ("classifier", "tagger"):
        _check_head(meta, shapes, meta_path, npz_path)
    else:
        _compare(GPTConfig(**meta["model_config"]), gpt_sizes(shapes), meta_path, npz_path)
