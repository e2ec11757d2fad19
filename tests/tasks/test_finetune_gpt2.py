"""`finetune --pretrained` (a GPT-2 folder, GPT-2's tokenizer) and `finetune --lora` (adapters, merged when saved),
on a small random GPT-2 written by transformers (offline: nothing downloaded)."""

import json
import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.cli import main
from tinytransformer.data import BPETokenizer, GPT2Tokenizer, WordTokenizer, load_corpus
from tinytransformer.models import GPT, BertConfig, BertForMaskedLM
from tinytransformer.models.hf_gpt2 import load_gpt2
from tinytransformer.nn import Linear, LoRALinear
from tinytransformer.tasks.finetune import FinetuneRecipe
from tinytransformer.tasks.finetune_body import head_on_body, load_gpt2_body
from tinytransformer.tasks.finetuned import load_finetuned, predict_proba, save_finetuned
from tinytransformer.training import load_checkpoint, save_checkpoint

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REVIEWS = {"pos": ["a good film", "great fun , good acting", "a moving story"],
           "neg": ["bad plot", "a dull , bad film", "awful acting"]}
FAST = ["--epochs", "2", "--batch-size", "8", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """A random GPT-2 (2 layers, width 16) and a byte-level BPE tokenizer of its 300 ids, in Hugging Face's files."""
    import torch

    folder = tmp_path_factory.mktemp("gpt2")
    GPT2Tokenizer.from_bpe(BPETokenizer.train(load_corpus("pydoc")[:20_000], 300)).save_files(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=None, eos_token_id=None)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews")
    rng = np.random.default_rng(0)
    for name, n in (("train", 40), ("dev", 12)):
        labels = rng.choice(list(REVIEWS), n)
        lines = [f"{y}\t{rng.choice(REVIEWS[y])}" for y in labels]
        (folder / f"{name}.tsv").write_text("label\ttext\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _finetune(files, *flags, out):
    return main(["finetune", "--task", "classify", "--train", str(files / "train.tsv"), "--dev",
                 str(files / "dev.tsv"), *FAST, *flags, "--out", str(out)])


@pytest.fixture(scope="module")
def lora_run(gpt2, files, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "model"
    assert _finetune(files, "--pretrained", str(gpt2), "--lora", "4", out=out) == 0
    return out


def test_a_lora_run_saves_a_plain_classifier_that_classify_reads(lora_run, gpt2, files, capsys):
    state, _, meta = load_checkpoint(lora_run)
    assert meta["tokenizer"]["type"] == "gpt2" and meta["head"]["members"] is None  # one model with --pretrained
    assert meta["recipe"]["lora"] == 4 and not any("lora_" in name for name in state)
    pretrained = load_gpt2(gpt2).state_dict()
    for name, value in pretrained.items():  # the adapted projections changed, nothing else in the body did
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            assert not np.array_equal(state["body." + name], value), name
        else:
            np.testing.assert_array_equal(state["body." + name], value, err_msg=name)
    capsys.readouterr()
    assert main(["classify", "--checkpoint", str(lora_run), "--input", str(files / "dev.tsv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 13 and all(line.split("\t")[0] in REVIEWS for line in lines)


def test_the_saved_body_exports_as_a_gpt2_folder(lora_run, tmp_path):
    model, tokenizer, _ = load_finetuned(lora_run)
    model.body.save_pretrained(tmp_path, tokenizer=tokenizer)
    again = GPT.from_pretrained(tmp_path)
    for name, value in model.body.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value, err_msg=name)


def test_merging_when_saved_changes_no_prediction(gpt2, tmp_path):
    state, config, tokenizer = load_gpt2_body(gpt2, 0.0, log=lambda *_: None)
    recipe = FinetuneRecipe(task="classify", train="unused", pretrained=str(gpt2), lora=2, lora_alpha=3.0,
                            pooling="max", out=None)
    model = head_on_body(recipe, config, state, ["neg", "pos"]).eval()
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 4 * config.n_layer
    rng = np.random.default_rng(1)
    for name, p in model.named_parameters():
        if "lora_" in name:  # as if trained
            p.data[...] = 0.5 * rng.standard_normal(p.shape)
    texts = ["a good film", "bad plot , awful acting", "café ☕"]
    save_finetuned(tmp_path, model, tokenizer, ["neg", "pos"])
    loaded, _, _ = load_finetuned(tmp_path)
    assert not any(isinstance(m, LoRALinear) for m in loaded.modules())
    np.testing.assert_allclose(predict_proba(loaded, tokenizer, texts), predict_proba(model, tokenizer, texts),
                               rtol=1e-5, atol=1e-6)


def test_a_gpt2_body_is_built_without_a_random_draw(gpt2):
    """The head's weights are the first thing drawn after the seed: no wasted draw for a body about to be loaded."""
    state, config, _ = load_gpt2_body(gpt2, 0.1, log=lambda *_: None)
    recipe = FinetuneRecipe(task="classify", train="unused", pretrained=str(gpt2), pooling="max", out=None)
    tt.manual_seed(7)
    model = head_on_body(recipe, config, state, ["neg", "pos"])
    tt.manual_seed(7)
    np.testing.assert_array_equal(model.score.weight.data, Linear(config.n_embd, 1).weight.data)
    for name, value in state.items():
        np.testing.assert_array_equal(model.body.state_dict()[name], value, err_msg=name)


def test_full_finetuning_and_tagging_take_a_gpt2_too(gpt2, files, tmp_path, capsys):
    out = tmp_path / "full"
    assert _finetune(files, "--pretrained", str(gpt2), "--epochs", "1", out=out) == 0
    assert "body: GPT-2 from" in capsys.readouterr().out
    assert json.loads((out / "meta.json").read_text())["recipe"]["lora"] is None
    tags = tmp_path / "tags.conll"
    tags.write_text("\n\n".join("we\tO\nmet\tO\nAnn\tB-person\ntoday\tO" for _ in range(12)) + "\n", encoding="utf-8")
    assert main(["finetune", "--task", "tag", "--train", str(tags), "--pretrained", str(gpt2), "--lora", "2",
                 *FAST, "--out", str(tmp_path / "tagger")]) == 0
    assert "LoRA: rank 2 adapters" in capsys.readouterr().out
    assert main(["tag", "--checkpoint", str(tmp_path / "tagger"), "--input", str(files / "dev.tsv")]) == 0


def _fails(args, capsys, *match):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(m in err for m in match), err


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A tiny BERT checkpoint, as `train --model bert` writes one."""
    tokenizer = WordTokenizer.train([" ".join(sum(REVIEWS.values(), []))], extra_specials=("<mask>",))
    tt.manual_seed(0)
    body = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, block_size=12, n_layer=1, n_head=2, n_embd=8))
    folder = tmp_path_factory.mktemp("bert")
    save_checkpoint(folder, body.state_dict(), None, {
        "kind": "language_model", "model_type": "bert", "data": "test", "step": 0, "model_config": body.config.to_dict(),
        "train_config": {}, "tokenizer": tokenizer.to_dict(), "rng": {}, "scheduler": {}, "history": {}})
    return folder


def test_bad_lora_and_body_flags_are_one_line_naming_the_flag(gpt2, files, bert, tmp_path, capsys):
    base = ["finetune", "--task", "classify", "--train", str(files / "train.tsv"), "--out", str(tmp_path / "o")]
    _fails([*base, "--pretrained", str(gpt2), "--lora", "0"], capsys, "--lora", "must be in [1, inf)")
    _fails([*base, "--pretrained", str(gpt2), "--lora", "2.5"], capsys, "--lora", "integer")
    _fails([*base, "--checkpoint", str(bert), "--lora", "2"], capsys, "--lora", "BERT")
    _fails([*base, "--pretrained", str(gpt2), "--lora", "17"], capsys, "--lora 17", "width 16")
    _fails([*base, "--pretrained", str(gpt2), "--checkpoint", str(bert)], capsys, "checkpoint", "pretrained",
           "give one of them")
    _fails([*base, "--pretrained", str(gpt2), "--lora-alpha", "2"], capsys, "--lora-alpha", "give lora")
    _fails([*base, "--pretrained", str(gpt2), "--lora", "2", "--freeze"], capsys, "lora", "freeze")
    _fails([*base, "--pretrained", str(gpt2), "--lora", "2", "--unfreeze-epochs", "1"], capsys, "--unfreeze-epochs")
    _fails(["finetune", "--task", "tag", "--tagger", "bitagger", "--train", str(files / "train.tsv"), "--lora", "2",
            "--out", str(tmp_path / "o")], capsys, "--lora", "--tagger head")
    _fails([*base, "--pretrained", str(tmp_path / "nowhere")], capsys, "nowhere", "not a folder")


def test_the_recipe_checks_the_same_from_python(gpt2):
    recipe = FinetuneRecipe(task="classify", train="x", pretrained=str(gpt2), out=None)
    assert recipe.ensemble == 1 and recipe.tagger is None  # one GPT-2 is plenty on a CPU
    assert FinetuneRecipe(task="classify", train="x", out=None).ensemble == 10
    with pytest.raises(ValueError, match="both name the body"):
        FinetuneRecipe(task="classify", train="x", pretrained=str(gpt2), checkpoint="y", out=None)
    with pytest.raises(ValueError, match="lora must be"):
        FinetuneRecipe(task="classify", train="x", lora=0, out=None)
