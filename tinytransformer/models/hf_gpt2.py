"""GPT-2 in the Hugging Face layout, in both directions: a folder of config.json + model.safetensors <-> ``GPT``.

    folder/config.json          the architecture (transformers' GPT2Config): n_layer, n_head, n_embd, ...
    folder/model.safetensors    the weights: a JSON header (name, dtype, shape, offsets), then the raw arrays
    folder/vocab.json, merges.txt   the tokenizer (``data/gpt2_tokenizer.py``)

    model = GPT.from_pretrained("gpt2")            a folder, or a hub name (from the cache, or downloaded)
    model.save_pretrained("out", tokenizer=tok)    transformers.GPT2LMHeadModel.from_pretrained("out") reads it

Our GPT already uses GPT-2's parameter names (``transformer.h.0.attn.c_attn.weight``, ...). Three
things differ, and this file is where they meet:

1. GPT-2's projections are ``Conv1D`` layers, y = x W + b with W stored (in, out); ours are
   ``Linear``, y = x W^T + b with W stored (out, in). So every c_attn, c_proj and c_fc weight is
   transposed on the way in and out. (The step most often got wrong when porting GPT-2: c_proj
   is square, so a missing transpose loads without complaint and only the logits show it.)
2. GPT-2's MLP uses GELU's tanh approximation ("gelu_new"); ours defaults to the exact erf form.
   ``GPTConfig.activation`` records which, and an export writes it ("gelu" is exact erf in transformers).
3. GPT-2 always has biases. A GPT trained without them is written with zero biases, which
   compute the same function.

A load checks everything before it builds anything: config.json's values, then each array's name,
dtype and shape in model.safetensors' header against that config. Every error names the file.
"""

import json
import os
import re
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from ..data import BPETokenizer, GPT2Tokenizer
from ..data.gpt2_tokenizer import END_OF_TEXT
from ..extras import import_optional
from ..nn import skip_init
from ..validation import check_value
from .gpt import GPT, GPTConfig

FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # stored (in, out)
# transformers' activation_function -> GPTConfig.activation, and back
ACTIVATIONS_IN = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_python_tanh": "gelu_tanh",
                  "gelu": "gelu", "gelu_python": "gelu", "relu": "relu"}
ACTIVATIONS_OUT = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
# config.json settings this GPT does not have, and the value that means "not used"
UNSUPPORTED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
               "tie_word_embeddings": True}
# transformers' defaults for a key config.json leaves out (GPT-2 small's sizes)
DEFAULTS = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "resid_pdrop": 0.1,
            "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # older files' causal-mask buffers: not parameters
DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
MAX_CONFIG_BYTES = 2**20

# ------------------------------------------------------------------ config.json <-> GPTConfig
def read_config(path) -> GPTConfig:
    """The ``GPTConfig`` a GPT-2 config.json describes, or a ValueError naming config.json and the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a GPT-2 folder holds config.json and model.safetensors)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes, too large for a model's config.json")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(hf, dict):
        raise ValueError(f"{path}: must hold a JSON object, got a {type(hf).__name__}")
    if hf.get("model_type") != "gpt2":
        archs = ", ".join(hf.get("architectures") or []) or "no architectures listed"
        raise ValueError(f"{path}: model_type is {hf.get('model_type')!r} ({archs}); only GPT-2 checkpoints "
                         "(model_type 'gpt2') load into tinytransformer's GPT")

    def number(key, kind=int, within="[1, inf)"):
        return check_value(f"{path}: {key}", hf.get(key, DEFAULTS[key]), kind, within)

    n_embd = number("n_embd")
    if hf.get("n_inner") not in (None, 4 * n_embd):
        raise ValueError(f"{path}: n_inner is {hf['n_inner']}; tinytransformer's GPT has an MLP of 4 n_embd = "
                         f"{4 * n_embd} (n_inner null)")
    activation = hf.get("activation_function", DEFAULTS["activation_function"])
    if activation not in ACTIVATIONS_IN:
        raise ValueError(f"{path}: activation_function {activation!r} is not one tinytransformer's GPT has "
                         f"({', '.join(ACTIVATIONS_IN)})")
    for key, plain in UNSUPPORTED.items():
        if hf.get(key, plain) != plain:
            raise ValueError(f"{path}: {key} is {json.dumps(hf[key])}; tinytransformer's GPT supports only "
                             f"{json.dumps(plain)}")
    if "n_positions" not in hf and "n_ctx" in hf:  # n_ctx: the older name of the context length
        hf["n_positions"] = hf["n_ctx"]
    sizes = {"vocab_size": number("vocab_size"), "block_size": number("n_positions"), "n_layer": number("n_layer"),
             "n_head": number("n_head"), "n_embd": n_embd}
    # one dropout rate here: GPT-2's on the residual branches (resid_pdrop; all three are 0.1 in GPT-2)
    dropout, eps = number("resid_pdrop", float, "[0, 1)"), number("layer_norm_epsilon", float, "(0, inf)")
    try:
        return GPTConfig(**sizes, dropout=dropout, bias=True, activation=ACTIVATIONS_IN[activation], layer_norm_eps=eps)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def hf_config(config: GPTConfig, eos_id=None) -> dict:
    """config.json for ``config``: transformers' GPT2Config keys (``eos_id``: the id of <|endoftext|>, if any)."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": config.vocab_size,
            "n_positions": config.block_size, "n_ctx": config.block_size, "n_embd": config.n_embd,
            "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
            "activation_function": ACTIVATIONS_OUT[config.activation], "layer_norm_epsilon": config.layer_norm_eps,
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": True,
            "bos_token_id": eos_id, "eos_token_id": eos_id}


# ------------------------------------------------------------------ model.safetensors <-> state dict
def expected_shapes(config: GPTConfig) -> dict:
    """Each array a GPT-2 of ``config`` stores, by our name, with its shape *as stored* (Conv1D: (in, out))."""
    C, V = config.n_embd, config.vocab_size
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (config.block_size, C),
              "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(config.n_layer):
        h = f"transformer.h.{i}."
        shapes.update({h + "ln_1.weight": (C,), h + "ln_1.bias": (C,), h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
                       h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
                       h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
                       h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
                       h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,)})
    return shapes


def _our_name(name) -> str:
    """A stored name in our terms: the hub's own "gpt2" has GPT2Model's names ("h.0..."), later saves
    GPT2LMHeadModel's ("transformer.h.0...")."""
    return name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name


def load_gpt2(name_or_path, dtype=np.float32) -> GPT:
    """A ``GPT`` holding the GPT-2 in ``name_or_path`` (a folder, or a hub name: ``resolve_pretrained``),
    in eval mode, its arrays of ``dtype``."""
    folder = resolve_pretrained(name_or_path)
    config = read_config(folder / "config.json")
    path = folder / "model.safetensors"
    if not path.is_file():
        others = [f for f in ("pytorch_model.bin", "model.safetensors.index.json") if (folder / f).exists()]
        why = {"pytorch_model.bin": "pytorch_model.bin is a pickle, which can run code and which tinytransformer never "
                                    "loads; convert it with transformers: GPT2LMHeadModel.from_pretrained(folder)"
                                    ".save_pretrained(folder) writes model.safetensors",
               "model.safetensors.index.json": "a checkpoint split into shards is not supported; save it as one file "
                                               "(save_pretrained(folder, max_shard_size='100GB'))"}
        raise FileNotFoundError(f"{path}: no such file{''.join('; ' + why[f] for f in others)}")
    safetensors = import_optional("safetensors", "loading GPT-2's weights")
    try:
        with safetensors.safe_open(path, framework="np") as f:
            headers = {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}
            arrays = _check_arrays(path, config, headers)
            # no random initial weights (skip_init): every one is read from the file below; casting the
            # uninitialised arrays to dtype may meet bit patterns that are NaN, harmlessly
            with skip_init(), np.errstate(invalid="ignore"):
                model = GPT(config).to(dtype)
            own = model.state_dict()  # name -> the parameter's own array: filled in place, one at a time
            for stored, ours in arrays.items():
                array = f.get_tensor(stored)
                own[ours][...] = array.T if ours.endswith(CONV1D) else array
    except safetensors.SafetensorError as err:
        raise ValueError(f"{path}: not a safetensors file, or damaged ({err})") from None
    model.eval()
    return model


def _check_arrays(path, config, headers) -> dict:
    """``{stored name: our name}`` for the arrays to load, after every name, dtype and shape is checked."""
    expected = expected_shapes(config)
    arrays, extra = {}, []
    for stored, (dtype, shape) in headers.items():
        ours = _our_name(stored)
        if ours in expected:
            arrays[stored] = ours
            if shape != expected[ours]:
                raise ValueError(f"{path}: {stored} has shape {shape}, but config.json's sizes make it "
                                 f"{expected[ours]} (does config.json belong to these weights?)")
            if dtype not in DTYPES:
                raise ValueError(f"{path}: {stored} is {dtype}, which NumPy cannot read (it reads "
                                 f"{', '.join(DTYPES)}); save the model in float32")
        elif ours != "lm_head.weight" and not IGNORED.fullmatch(stored.removeprefix("transformer.")):
            extra.append(stored)  # lm_head: tied to wte (tie_word_embeddings, checked), so transformers ignores it too
    missing = [name for name in expected if name not in arrays.values()]
    if missing or extra:
        raise ValueError(f"{path}: {len(missing)} arrays of a GPT-2 missing ({', '.join(missing[:3]) or 'none'}), "
                         f"{len(extra)} unknown ({', '.join(extra[:3]) or 'none'})")
    return arrays


def save_gpt2(model: GPT, folder, tokenizer=None, overwrite=False) -> list:
    """Write ``model`` as a Hugging Face GPT-2 folder (config.json, model.safetensors, and with a BPE
    ``tokenizer`` vocab.json, merges.txt and tokenizer_config.json); returns the paths written.

    Files of those names already in ``folder`` are a FileExistsError unless ``overwrite``; nothing
    else in the folder is touched. Each file is written atomically.
    """
    if not isinstance(model, GPT):
        raise ValueError(f"save_gpt2: model must be a GPT, got {type(model).__name__}")
    gpt2_tok = _as_gpt2_tokenizer(tokenizer, model.config.vocab_size)
    folder = Path(folder)
    names = ["config.json", "model.safetensors"]
    names += ["vocab.json", "merges.txt", "tokenizer_config.json"] if gpt2_tok else []
    clash = [n for n in names if (folder / n).exists()]
    if clash and not overwrite:
        raise FileExistsError(f"{folder} already holds {', '.join(clash)}: pass overwrite=True to replace them")
    safetensors_numpy = import_optional("safetensors.numpy", "writing GPT-2's weights")
    folder.mkdir(parents=True, exist_ok=True)
    state, dtype = model.state_dict(), model.transformer["wte"].weight.dtype
    arrays = {}
    for name, shape in expected_shapes(model.config).items():
        array = state.get(name, np.zeros(shape, dtype))  # a bias this GPT does not have: zeros, the same function
        arrays[name] = np.ascontiguousarray(array.T if name.endswith(CONV1D) else array)
    eos = gpt2_tok.encoder.get(END_OF_TEXT) if gpt2_tok else None
    config = {**hf_config(model.config, eos), "dtype": str(arrays["transformer.wte.weight"].dtype)}
    _atomic(folder / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
    # "format": "pt" is what transformers asks of a safetensors file before it reads one
    _atomic(folder / "model.safetensors", lambda tmp: safetensors_numpy.save_file(arrays, tmp, {"format": "pt"}))
    if gpt2_tok:
        gpt2_tok.save_files(folder)
        special = END_OF_TEXT if END_OF_TEXT in gpt2_tok.special_tokens else None  # else transformers would add one
        tok_config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": model.config.block_size,
                      "add_prefix_space": False, "bos_token": special, "eos_token": special, "unk_token": special}
        _atomic(folder / "tokenizer_config.json", lambda tmp: Path(tmp).write_text(json.dumps(tok_config, indent=2)))
    return [folder / n for n in names]


def _as_gpt2_tokenizer(tokenizer, vocab_size):
    if tokenizer is None:
        return None
    if isinstance(tokenizer, BPETokenizer):
        tokenizer = GPT2Tokenizer.from_bpe(tokenizer)
    if not isinstance(tokenizer, GPT2Tokenizer):
        raise ValueError(f"save_gpt2: a {type(tokenizer).__name__} has no GPT-2 form (vocab.json, merges.txt); "
                         "only byte-level BPE does: save the model without its tokenizer")
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"save_gpt2: the tokenizer has {tokenizer.vocab_size} ids but the model {vocab_size}")
    return tokenizer


def _atomic(path, write):
    """``write(temporary path)``, then rename it to ``path``: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------ a folder or a hub name
def resolve_pretrained(name_or_path) -> Path:
    """The folder of a GPT-2: ``name_or_path`` itself if it is a folder; else a hub name ("gpt2",
    "openai-community/gpt2"), found in huggingface_hub's cache or, with the network, downloaded into it."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or not re.fullmatch(r"[\w][\w.-]*(/[\w][\w.-]*)?", str(name_or_path)):
        raise FileNotFoundError(f"{name_or_path}: not a folder (a GPT-2 folder holds {', '.join(FILES)})")
    where = (f"with the network the name is downloaded once into that cache; offline, put {', '.join(FILES)} in a "
             "folder and give its path")
    try:
        hub = import_optional("huggingface_hub", f"{name_or_path} is not a folder here; fetching it by name")
    except ImportError as err:
        raise ImportError(f"{err}; or put {', '.join(FILES)} in a folder and give its path", name=err.name) from None
    for cached_only in (True, False):  # the cache first, without the network
        try:
            folder = Path(hub.snapshot_download(str(name_or_path), allow_patterns=list(FILES),
                                                local_files_only=cached_only))
        except Exception as err:  # the hub's many errors (not cached, offline, unknown name): said in one line
            error = f"{type(err).__name__}: {textwrap.shorten(str(err), 120, placeholder='...')}"
            continue
        if not cached_only or all((folder / f).is_file() for f in FILES):  # a partial cache: download the rest
            return folder
    raise FileNotFoundError(f"{name_or_path}: not a folder, not in the Hugging Face cache "
                            f"({hub.constants.HF_HUB_CACHE}), and the download failed ({error}); {where}")


def load_model_and_tokenizer(name_or_path, dtype=np.float32):
    """``(GPT, GPT2Tokenizer)`` from a GPT-2 folder or hub name: what ``generate --pretrained`` runs."""
    folder = resolve_pretrained(name_or_path)
    model = load_gpt2(folder, dtype=dtype)
    tokenizer = GPT2Tokenizer.from_folder(folder)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"{folder}: vocab.json has {tokenizer.vocab_size} tokens but config.json's vocab_size is "
                         f"{model.config.vocab_size}")
    return model, tokenizer

