"""GPT-2 folders in Hugging Face's layout, both ways, against transformers' GPT2LMHeadModel (offline: small
random models built here, nothing downloaded)."""

import json
import sys

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.cli import main
from tinytransformer.data import BPETokenizer, CharTokenizer, GPT2Tokenizer, load_corpus
from tinytransformer.generation import generate
from tinytransformer.models import GPT, GPTConfig
from tinytransformer.models.hf_gpt2 import load_gpt2, load_model_and_tokenizer, resolve_pretrained

transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
huggingface_hub = pytest.importorskip("huggingface_hub")
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

# GPT-2 has no switch for biases: "zero_biases" is the nearest a GPT2Config comes to a GPT without them
CONFIGS = {
    "gelu_new": dict(vocab_size=101, n_positions=32, n_embd=12, n_layer=2, n_head=3),
    "odd-heads-exact-gelu": dict(vocab_size=67, n_positions=40, n_embd=15, n_layer=3, n_head=5,
                                 activation_function="gelu", layer_norm_epsilon=1e-3),
    "zero-biases": dict(vocab_size=50, n_positions=32, n_embd=8, n_layer=2, n_head=2, zero_biases=True),
    "short-context": dict(vocab_size=259, n_positions=8, n_embd=8, n_layer=1, n_head=2,
                          activation_function="gelu_pytorch_tanh", n_inner=32),
    "byte-level": dict(vocab_size=300, n_positions=32, n_embd=12, n_layer=2, n_head=2),  # room for a BPE tokenizer
}
PROMPT_LENGTH, NEW_TOKENS = 12, 20


def hf_model(name, dtype=torch.float32, seed=0):
    """A random GPT2LMHeadModel of ``CONFIGS[name]``: every weight, gain and bias drawn, so none is left at its init."""
    settings = dict(CONFIGS[name])
    zero_biases = settings.pop("zero_biases", False)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings, bos_token_id=None, eos_token_id=None))
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.copy_(torch.zeros_like(p) if zero_biases else 0.1 * torch.randn_like(p))
            elif ".ln_" in pname:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model.to(dtype).eval()


def all_logits(model, idx):
    """Our logits at every position (B, T, V) (``forward`` without targets gives only the last)."""
    with tt.no_grad():
        return model.lm_head(model.hidden_states(idx)).data


def their_logits(model, idx):
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.numpy()


def relative_error(ours, theirs):
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def their_greedy(model, prompt, n_new):
    """transformers' greedy generation; past n_positions (where it cannot go) a loop that crops as ours does."""
    n_positions = model.config.n_positions
    if prompt.shape[1] + n_new <= n_positions:
        with torch.no_grad():
            out = model.generate(torch.from_numpy(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                                 max_new_tokens=n_new, do_sample=False, num_beams=1, pad_token_id=0)
        return out.numpy()
    idx = prompt
    for _ in range(n_new):
        next_id = their_logits(model, idx[:, -n_positions:])[:, -1].argmax(-1)
        idx = np.concatenate([idx, next_id[:, None]], axis=1)
    return idx


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> a folder written by transformers' save_pretrained, in float32."""
    out = {}
    for name in CONFIGS:
        out[name] = tmp_path_factory.mktemp(name)
        hf_model(name).save_pretrained(out[name])
    return out


# ------------------------------------------------------------------ loading
@pytest.mark.parametrize("name", CONFIGS)
def test_loaded_logits_equal_transformers_in_float32(name, folders):
    theirs = hf_model(name)
    ours = GPT.from_pretrained(folders[name])
    assert not ours.training and ours.config.bias
    idx = np.random.default_rng(1).integers(0, theirs.config.vocab_size, (2, theirs.config.n_positions))
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) < 1e-5  # measured <= 1e-6


@pytest.mark.parametrize("name", CONFIGS)
def test_loaded_logits_equal_transformers_in_float64(name, tmp_path):
    theirs = hf_model(name, torch.float64)
    theirs.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path, dtype=np.float64)
    assert ours.transformer["wte"].weight.dtype == np.float64
    idx = np.random.default_rng(2).integers(0, theirs.config.vocab_size, (2, theirs.config.n_positions))
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) < 1e-10  # measured ~1e-15


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_generation_equals_transformers_and_the_kv_cache_changes_nothing(name, folders):
    theirs, ours = hf_model(name), GPT.from_pretrained(folders[name])
    prompt = np.random.default_rng(3).integers(0, theirs.config.vocab_size, (1, PROMPT_LENGTH))
    cached = generate(ours, prompt, NEW_TOKENS, temperature=0)
    np.testing.assert_array_equal(cached, their_greedy(theirs, prompt, NEW_TOKENS))
    np.testing.assert_array_equal(cached, generate(ours, prompt, NEW_TOKENS, temperature=0, use_cache=False))
    sampled = [generate(ours, prompt, NEW_TOKENS, temperature=1.0, top_k=5, seed=7, use_cache=c) for c in (True, False)]
    np.testing.assert_array_equal(*sampled)


def test_the_conv1d_transpose_is_what_makes_the_logits_right(folders):
    """The mistake most often made porting GPT-2: c_proj is square, so a missing transpose loads silently."""
    theirs, ours = hf_model("gelu_new"), GPT.from_pretrained(folders["gelu_new"])
    c_proj = ours.transformer["h"][0].attn.c_proj.weight
    np.testing.assert_array_equal(c_proj.data, theirs.transformer.h[0].attn.c_proj.weight.detach().numpy().T)
    c_proj.data[...] = c_proj.data.T.copy()
    idx = np.arange(10)[None, :]
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) > 1e-2


def test_the_hubs_names_without_the_transformer_prefix_and_old_mask_buffers_load(tmp_path, folders):
    """The hub's own gpt2 stores GPT2Model's names ("h.0.attn.c_attn.weight") and the causal mask ("h.0.attn.bias")."""
    from safetensors.numpy import load_file

    stored = load_file(folders["gelu_new"] / "model.safetensors")
    arrays = {name.removeprefix("transformer."): a for name, a in stored.items()}
    arrays.update({f"h.{i}.attn.bias": np.tril(np.ones((1, 1, 32, 32), np.float32)) for i in range(2)})
    safetensors_numpy.save_file(arrays, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((folders["gelu_new"] / "config.json").read_text())
    idx = np.arange(9)[None, :]
    np.testing.assert_array_equal(all_logits(GPT.from_pretrained(tmp_path), idx),
                                  all_logits(GPT.from_pretrained(folders["gelu_new"]), idx))


# ------------------------------------------------------------------ exporting
def _our_gpt(bias, activation, dtype=np.float32):
    tt.manual_seed(5)
    model = GPT(GPTConfig(vocab_size=77, block_size=16, n_layer=2, n_head=2, n_embd=12, bias=bias,
                          activation=activation, layer_norm_eps=1e-4)).to(dtype)
    rng = np.random.default_rng(0)
    for _, p in model.named_parameters():  # biases and gains off their initial zeros and ones
        p.data += rng.normal(0.0, 0.1, p.shape).astype(dtype)
    return model.eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_an_exported_gpt_gives_transformers_our_logits(bias, activation, tmp_path):
    ours = _our_gpt(bias, activation)
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["activation_function"] == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[activation]
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = np.random.default_rng(4).integers(0, 77, (2, 16))
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) < 1e-5
    if not bias:  # GPT-2 always has biases: ours are written as zeros
        assert not theirs.transformer.h[0].mlp.c_fc.bias.detach().numpy().any()


def test_an_exported_float64_gpt_gives_transformers_our_logits_to_1e_10(tmp_path):
    ours = _our_gpt(True, "gelu", np.float64)
    ours.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, dtype=torch.float64).eval()
    idx = np.random.default_rng(5).integers(0, 77, (2, 16))
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) < 1e-10


def test_export_then_load_gives_back_the_same_weights(tmp_path):
    ours = _our_gpt(True, "gelu_tanh")
    ours.save_pretrained(tmp_path)
    back = GPT.from_pretrained(tmp_path)
    assert back.config == GPTConfig(**{**ours.config.to_dict(), "dropout": 0.0})
    for name, array in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], array, err_msg=name)


def test_a_model_and_its_bpe_tokenizer_export_as_one_folder_transformers_reads(tmp_path):
    text = "The cat sat on the mat. The dog didn't; the cats' mats were 12 feet wide.\n" * 20
    tok = BPETokenizer.train(text, 300)
    tt.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=8)).eval()
    written = ours.save_pretrained(tmp_path, tokenizer=tok)
    assert {p.name for p in written} == {"config.json", "model.safetensors", "vocab.json", "merges.txt",
                                         "tokenizer_config.json"}
    their_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    sample = "The dog sat; the cat didn't.  New  mats\n"
    assert their_tok.encode(sample) == tok.encode(sample) and len(their_tok) == tok.vocab_size
    model, gpt2_tok = load_model_and_tokenizer(tmp_path)
    assert gpt2_tok.encode(sample) == tok.encode(sample)
    idx = np.asarray(tok.encode(sample))[None, :]
    their = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert relative_error(all_logits(model, idx), their_logits(their, idx)) < 1e-5


def test_export_refuses_to_replace_files_and_tokenizers_without_a_gpt2_form(tmp_path):
    ours = _our_gpt(True, "gelu")
    ours.save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="config.json, model.safetensors: pass overwrite=True"):
        ours.save_pretrained(tmp_path)
    ours.save_pretrained(tmp_path, overwrite=True)
    with pytest.raises(ValueError, match="CharTokenizer has no GPT-2 form"):
        ours.save_pretrained(tmp_path / "char", tokenizer=CharTokenizer.from_text("abc"))
    with pytest.raises(ValueError, match="the tokenizer has 256 ids but the model 77"):
        ours.save_pretrained(tmp_path / "bpe", tokenizer=BPETokenizer())


def test_configs_saved_before_activation_and_eps_existed_build_the_same_gpt():
    old = {"vocab_size": 11, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, "dropout": 0.0, "bias": True}
    config = GPTConfig(**old)
    assert (config.activation, config.layer_norm_eps) == ("gelu", 1e-5)
    assert GPT(config).transformer["h"][0].mlp.act.approximate == "none"
    with pytest.raises(ValueError, match="GPTConfig: activation must be one of gelu, gelu_tanh, relu; got 'swish'"):
        GPTConfig(**old, activation="swish")


# ------------------------------------------------------------------ bad folders: each error names its file
def _copy(folder, tmp_path, config=None, drop=()):
    """A copy of ``folder`` with config.json's keys replaced by ``config`` and the files in ``drop`` left out."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        if f.name not in drop:
            (tmp_path / f.name).write_bytes(f.read_bytes())
    if config is not None:
        original = json.loads((folder / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**original, **config}))
    return tmp_path


@pytest.mark.parametrize("config, message", [
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
     r"config.json: model_type is 'llama' \(LlamaForCausalLM\); only GPT-2"),
    ({"n_embd": 15}, r"model.safetensors: transformer.h.0.attn.c_attn.bias has shape \(36,\), but config.json's sizes "
                     r"make it \(45,\)"),
    ({"n_layer": 3}, r"model.safetensors: 12 arrays of a GPT-2 missing \(transformer.h.2.ln_1.weight"),
    ({"vocab_size": 100}, r"model.safetensors: transformer.wte.weight has shape \(101, 12\), but config.json's sizes"),
    ({"n_head": 5}, r"config.json: GPTConfig: n_embd=12 is not divisible by n_head=5"),
    ({"vocab_size": -3}, r"config.json: vocab_size must be in \[1, inf\), got -3"),
    ({"n_inner": 7}, r"config.json: n_inner is 7; tinytransformer's GPT has an MLP of 4 n_embd = 48"),
    ({"activation_function": "silu"}, r"config.json: activation_function 'silu' is not one"),
    ({"scale_attn_weights": False}, r"config.json: scale_attn_weights is false; tinytransformer's GPT supports only"),
    ({"tie_word_embeddings": False}, r"config.json: tie_word_embeddings is false"),
])
def test_a_config_that_does_not_describe_these_weights_is_named(config, message, folders, tmp_path):
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(_copy(folders["gelu_new"], tmp_path, config))


def test_missing_and_unreadable_files_are_named(folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="no/such/folder: not a folder"):
        GPT.from_pretrained(tmp_path / "no/such/folder")
    with pytest.raises(FileNotFoundError, match=r"config.json: no such file"):
        GPT.from_pretrained(_copy(folders["gelu_new"], tmp_path / "a", drop=("config.json",)))
    bad = _copy(folders["gelu_new"], tmp_path / "b")
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        GPT.from_pretrained(bad)
    (bad / "config.json").write_text((folders["gelu_new"] / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}")
    with pytest.raises(ValueError, match="model.safetensors: not a safetensors file, or damaged"):
        GPT.from_pretrained(bad)
    with pytest.raises(FileNotFoundError, match="vocab.json: no such file"):
        load_model_and_tokenizer(folders["gelu_new"])


def test_a_pickle_only_folder_is_refused_with_the_way_to_convert_it(folders, tmp_path):
    folder = _copy(folders["gelu_new"], tmp_path / "a", drop=("model.safetensors",))
    (folder / "pytorch_model.bin").write_bytes(b"not loaded, whatever it holds")
    with pytest.raises(FileNotFoundError, match=r"model.safetensors: no such file; pytorch_model.bin is a pickle, "
                                                r"which can run code and which tinytransformer never loads"):
        GPT.from_pretrained(folder)


def test_unknown_arrays_and_unreadable_dtypes_are_named(folders, tmp_path):
    from safetensors.numpy import load_file

    arrays = load_file(folders["gelu_new"] / "model.safetensors")
    folder = _copy(folders["gelu_new"], tmp_path / "a")
    safetensors_numpy.save_file({**arrays, "score.weight": np.zeros((2, 12), np.float32)}, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"model.safetensors: 0 arrays of a GPT-2 missing \(none\), 1 unknown "
                                         r"\(score.weight\)"):
        GPT.from_pretrained(folder)
    hf_model("gelu_new").to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    with pytest.raises(ValueError, match="is BF16, which NumPy cannot read"):
        GPT.from_pretrained(tmp_path / "bf16")


def test_float16_weights_load_into_float32(tmp_path):
    hf_model("gelu_new").half().save_pretrained(tmp_path)
    theirs = hf_model("gelu_new").half().float()  # the float16 weights, computed in float32
    ours = GPT.from_pretrained(tmp_path)
    idx = np.arange(20)[None, :]
    assert relative_error(all_logits(ours, idx), their_logits(theirs, idx)) < 1e-5


# ------------------------------------------------------------------ names, the hub's cache, the hf extra
@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """huggingface_hub with an empty cache of its own and the network forbidden."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def _with_tokenizer(folder, tmp_path, vocab_size):
    """A copy of ``folder`` with a byte-level BPE tokenizer of ``vocab_size`` ids (vocab.json, merges.txt)."""
    out = _copy(folder, tmp_path)
    tokenizer = BPETokenizer.train(load_corpus("pydoc")[:20_000], vocab_size)
    assert tokenizer.vocab_size == vocab_size
    GPT2Tokenizer.from_bpe(tokenizer).save_files(out)
    return out


def test_a_hub_name_is_read_from_the_cache_offline(folders, offline_hub):
    snapshot = offline_hub / "models--tiny--gpt2" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    _with_tokenizer(folders["short-context"], snapshot, 259)
    (offline_hub / "models--tiny--gpt2" / "refs").mkdir()
    (offline_hub / "models--tiny--gpt2" / "refs" / "main").write_text("0123abc")
    assert resolve_pretrained("tiny/gpt2") == snapshot
    model, tokenizer = load_model_and_tokenizer("tiny/gpt2")
    assert model.config.block_size == 8 and tokenizer.vocab_size == 259


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused(folders, tmp_path):
    folder = _with_tokenizer(folders["short-context"], tmp_path, 270)
    with pytest.raises(ValueError, match="vocab.json has 270 tokens but config.json's vocab_size is 259"):
        load_model_and_tokenizer(folder)


def test_a_hub_name_not_in_the_cache_offline_says_where_to_put_the_files(offline_hub):
    with pytest.raises(FileNotFoundError, match=r"gpt2: not a folder, not in the Hugging Face cache \(.*hub\), and the "
                                                r"download failed \(.*\); with the network .* offline, put "
                                                r"config.json, model.safetensors, vocab.json, merges.txt in a folder"):
        resolve_pretrained("gpt2")


def test_without_the_hf_extra_one_line_says_what_to_install(folders, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
    with pytest.raises(ImportError, match=r"needs safetensors, which is not installed: .*'tinytransformer\[hf\]'"):
        load_gpt2(folders["gelu_new"])
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--pretrained", str(folders["gelu_new"])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "tinytransformer[hf]" in err


# ------------------------------------------------------------------ the command line
def test_generate_pretrained_prints_what_transformers_generates(folders, tmp_path, capsys):
    folder = _with_tokenizer(folders["byte-level"], tmp_path, 300)
    assert main(["generate", "--pretrained", str(folder), "--prompt", "the cat", "--temperature", "0",
                 "--max-new-tokens", "8"]) == 0
    tokenizer = GPT2Tokenizer.from_folder(folder)
    prompt = np.asarray([tokenizer.encode("the cat")])
    assert capsys.readouterr().out == tokenizer.decode(their_greedy(hf_model("byte-level"), prompt, 8)[0]) + "\n"


def test_generate_pretrained_crops_a_prompt_longer_than_the_context_and_says_so(folders, tmp_path, capsys):
    folder = _with_tokenizer(folders["short-context"], tmp_path, 259)
    assert main(["generate", "--pretrained", str(folder), "--prompt", "a hat, a mat, a cat; the hat sat",
                 "--temperature", "0", "--max-new-tokens", "4"]) == 0
    assert "more than the model's block of 8: it sees only the last 8" in capsys.readouterr().err


def test_inspect_pretrained_draws_the_figures(folders, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = _with_tokenizer(folders["byte-level"], tmp_path, 300)
    assert main(["inspect", "--pretrained", str(folder), "--text", "the cat sat", "--out", str(tmp_path / "fig")]) == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["attention.png", "attribution.png",
                                                                    "logit_lens.png"]
