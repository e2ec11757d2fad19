"""Heads on any body: a GPT or a BERT encoder; pooling, discriminative learning rates, gradual unfreezing,
saving and loading, and `finetune --checkpoint` on an encoder."""

import json

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.cli import main
from tinytransformer.data import TaskData, WordTokenizer
from tinytransformer.data.encoding import encode_texts, encode_words
from tinytransformer.models import GPT, BertConfig, BertForMaskedLM, GPTConfig, SequenceClassifier, TokenClassifier
from tinytransformer.models.heads import BODIES, POOLINGS, Ensemble, body_type, build_body
from tinytransformer.optim import AdamW
from tinytransformer.tasks.finetune import FinetuneConfig, FinetuneRecipe, finetune
from tinytransformer.tasks.finetuned import build_head, load_finetuned, predict_proba, predict_tags, save_finetuned
from tinytransformer.tasks.inspection import load_for_inspection
from tinytransformer.training import save_checkpoint

BERT = BertConfig(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=8, dropout=0.0)
GPT_CONFIG = GPTConfig(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=8)
HEADS = [("classify", {"pooling": p}) for p in POOLINGS] + [("tag", {})]


def _ragged(seed=0, lengths=(3, 7, 1, 5)):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, BERT.vocab_size, n) for n in lengths]


def _pad(seqs, fill=0):
    T = max(len(s) for s in seqs)
    idx = np.full((len(seqs), T), fill)
    mask = np.ones((len(seqs), T), dtype=bool)
    for i, s in enumerate(seqs):
        idx[i, :len(s)], mask[i, :len(s)] = s, False
    return idx, mask


def _head(kind, config=BERT, n_out=3, **options):
    tt.manual_seed(0)
    cls = SequenceClassifier if kind == "classify" else TokenClassifier
    return cls(config, n_out, **options).double().eval()


def test_the_config_says_the_body():
    assert body_type(BERT) == "bert" and body_type(GPT_CONFIG) == "gpt"
    assert isinstance(build_body(BERT), BertForMaskedLM) and isinstance(build_body(GPT_CONFIG), GPT)
    assert BODIES["gpt"].causal and not BODIES["bert"].causal
    with pytest.raises(ValueError, match="must be one of GPTConfig, BertConfig"):
        body_type({"n_embd": 8})


@pytest.mark.parametrize("kind, options", HEADS)
@pytest.mark.parametrize("fill", [0, 5])
def test_padding_never_changes_a_prediction_on_an_encoder(kind, options, fill):
    seqs = _ragged()
    model = _head(kind, **options)
    batched = model(*_pad(seqs, fill))[0].data
    for row, s in enumerate(seqs):
        alone = model(s[None, :])[0].data[0]
        got = batched[row] if kind == "classify" else batched[row, :len(s)]
        np.testing.assert_allclose(got, alone, rtol=1e-10, atol=1e-12)


def test_an_encoder_tagger_reads_both_sides_without_look_ahead():
    model = _head("tag")
    assert not model.look_ahead and model.classifier.weight.shape == (3, BERT.n_embd)
    assert _head("tag", GPT_CONFIG).classifier.weight.shape == (3, 2 * GPT_CONFIG.n_embd)
    a, b = np.array([[1, 2, 3, 4]]), np.array([[1, 2, 3, 5]])
    assert not np.allclose(model(a)[0].data[0, 0], model(b)[0].data[0, 0])  # the first token sees the last


def test_cls_pooling_reads_the_first_token_and_is_refused_on_a_causal_body():
    model = _head("classify", pooling="cls")
    a, b = np.array([[1, 2, 3]]), np.array([[1, 2, 4]])
    assert not np.allclose(model(a)[0].data, model(b)[0].data)  # [CLS]'s state has seen the whole sentence
    with pytest.raises(ValueError, match="pooling 'cls' .* causal body \\(gpt\\)"):
        SequenceClassifier(GPT_CONFIG, 2, pooling="cls")
    with pytest.raises(ValueError, match="only an encoder"):
        FinetuneRecipe(task="classify", data="sst2", pooling="cls")


def test_gpt_heads_keep_their_parameter_names():
    body = [f"body.{name}" for name in GPT(GPT_CONFIG).state_dict()]
    assert list(_head("classify", GPT_CONFIG).state_dict()) == body + ["score.weight", "score.bias"]
    assert list(_head("tag", GPT_CONFIG).state_dict()) == body + ["classifier.weight", "classifier.bias"]
    bert_names = list(_head("classify").state_dict())
    assert bert_names[:2] == ["body.bert.embeddings.word_embeddings.weight",
                              "body.bert.embeddings.position_embeddings.weight"]


@pytest.mark.parametrize("config", [GPT_CONFIG, BERT], ids=["gpt", "bert"])
def test_body_layers_cover_what_the_head_reads_once(config):
    model = _head("classify", config)
    layers = model.body_layers()
    assert len(layers) == config.n_layer + 1  # the embeddings, then each block
    listed = [id(p) for layer in layers for p in layer]
    assert len(listed) == len(set(listed))
    unused = {id(p) for name, p in model.body.named_parameters() if name.startswith("cls.")}  # BERT's MLM head
    assert set(listed) == {id(p) for p in model.body.parameters()} - unused
    default = {id(p) for g in model.param_groups(1e-3) if g["name"].startswith("body") for p in g["params"]}
    assert default == set(listed)


def test_layer_decay_gives_each_lower_layer_a_smaller_rate():
    model = _head("classify")  # 2 layers: block 1, block 0, embeddings
    groups = model.param_groups(lr=1e-2, body_lr=1e-3, weight_decay=0.1, layer_decay=0.5)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"head": 1e-2, "head (no decay)": 1e-2, "body block 1": 1e-3, "body block 1 (no decay)": 1e-3,
                     "body block 0": 5e-4, "body block 0 (no decay)": 5e-4, "body embeddings": 2.5e-4,
                     "body embeddings (no decay)": 2.5e-4}
    assert all(g["weight_decay"] == (0.0 if "no decay" in g["name"] else 0.1) for g in groups)
    for g in groups:
        g["weight_decay"] = 0.0
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    idx, mask = _pad(_ragged())
    model.train()
    model(idx, mask, np.array([0, 1, 2, 0]))[1].backward()
    AdamW(groups, lr=0.5, weight_decay=0.0).step()  # Adam's first step moves each weight by +-lr
    moved = {name: np.abs(p.data - before[name]).max() for name, p in model.named_parameters()}
    np.testing.assert_allclose(moved["score.weight"], 1e-2, rtol=1e-4)
    np.testing.assert_allclose(moved["body.bert.encoder.layer.1.intermediate.dense.weight"], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(moved["body.bert.encoder.layer.0.intermediate.dense.weight"], 5e-4, rtol=1e-3)
    np.testing.assert_allclose(moved["body.bert.embeddings.position_embeddings.weight"], 2.5e-4, rtol=1e-3)
    assert moved["body.cls.predictions.transform.dense.weight"] == 0  # the MLM head: no group, no gradient


def test_unfreeze_top_and_the_gradual_unfreezing_schedule():
    model = _head("classify")
    layers = model.body_layers()
    model.unfreeze_top(0)
    assert model.body_frozen
    model.unfreeze_top(1)
    assert all(p.requires_grad for p in layers[2]) and not any(p.requires_grad for p in layers[0] + layers[1])
    model.unfreeze_top(10)
    assert all(p.requires_grad for layer in layers for p in layer)
    assert [FinetuneConfig(unfreeze_epochs=2).trained_layers(e, 3) for e in (1, 2, 3, 4)] == [0, 2, 3, 3]
    assert [FinetuneConfig(unfreeze_epochs=1).trained_layers(e, 3) for e in (1, 2)] == [0, 3]
    assert FinetuneConfig().trained_layers(1, 3) == 3
    with pytest.raises(ValueError, match="unfreeze_epochs"):
        FinetuneConfig(freeze=True, unfreeze_epochs=1)
    with pytest.raises(ValueError, match="layer_lr_decay"):
        FinetuneConfig(layer_lr_decay=0)


# ------------------------------------------------------ training, saving
WORDS = ["the", "film", "was", "a", "plot", "good", "great", "bad", "awful"]


def _reviews(n, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(WORDS[:5], int(rng.integers(2, 5))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(WORDS[5:7] if label else WORDS[7:])))
        texts.append(" ".join(words))
        labels.append("pos" if label else "neg")
    return texts, labels


@pytest.fixture(scope="module")
def encoder():
    """A tiny BERT and its tokenizer (with <mask>), as `train --model bert` writes them."""
    tokenizer = WordTokenizer.train([" ".join(WORDS)], extra_specials=("<mask>",))
    tt.manual_seed(3)
    config = BertConfig(vocab_size=tokenizer.vocab_size, block_size=12, n_layer=2, n_head=2, n_embd=16)
    return BertForMaskedLM(config), tokenizer


def test_an_encoder_reads_cls_then_the_sentence_then_eos(encoder):
    _, tok = encoder
    cls, eos = tok.special_ids["<cls>"], tok.special_ids["<eos>"]
    assert encode_texts(tok, ["the film was good"], 4, encoder=True) == [[cls, *tok.encode("the film"), eos]]
    assert encode_words(tok, ["a", "plot"], encoder=True) == ([cls, *tok.encode("a plot"), eos], [1, 2])
    assert encode_texts(tok, ["the film"], 8) == [[tok.bos_id, *tok.encode("the film")]]  # a GPT: <bos>, as before


def _finetuned(encoder, data, pooling, seed, log=None, **options):
    body, tok = encoder
    tt.manual_seed(seed)
    config = BertConfig(**{**body.config.to_dict(), "dropout": 0.1})
    model = build_head("classify", config, data.labels, pooling=pooling).load_body(body.state_dict())
    history = finetune(model, tok, data, FinetuneConfig(lr=1e-2, seed=seed, **options), log=log or (lambda line: None))
    return model, history


@pytest.fixture(scope="module")
def reviews():
    return TaskData("classification", ("neg", "pos"), _reviews(120, 0), _reviews(40, 1))


def test_gradual_unfreezing_trains_the_head_alone_then_the_body_top_down(encoder, reviews):
    body, _ = encoder
    lines = []
    model, history = _finetuned(encoder, reviews, "cls", 0, lines.append, epochs=1, unfreeze_epochs=1)
    assert len(history["train_loss"]) == 1 and not any("unfrozen" in line for line in lines)
    for name, value in body.state_dict().items():  # one epoch, the first: the body stayed as it was
        np.testing.assert_array_equal(model.body.state_dict()[name], value, err_msg=name)
    lines, embeddings = [], []  # the embeddings after each epoch (the best epoch is restored at the end)

    def log(line):
        lines.append(line)
        embeddings.append(model.body.state_dict()["bert.embeddings.word_embeddings.weight"].copy())

    history = finetune(model, encoder[1], reviews, FinetuneConfig(epochs=3, lr=1e-2, layer_lr_decay=0.5,
                                                                  unfreeze_epochs=2), log=log)
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "unfrozen", "epoch 2/3", "unfrozen", "epoch 3/3"]
    assert "unfrozen: the top 2 of the body's 3 layers" in lines[1]
    first = body.state_dict()["bert.embeddings.word_embeddings.weight"]
    assert [np.array_equal(e, first) for e in embeddings[::2]] == [True, True, False]  # trained in epoch 3 only


def test_a_head_on_an_encoder_learns_and_round_trips(encoder, reviews, tmp_path):
    _, tok = encoder
    learnt, history = _finetuned(encoder, reviews, "max", 0, epochs=3)
    assert history["best_dev"]["accuracy"] >= 0.9
    members = [learnt, _finetuned(encoder, reviews, "max", 1, epochs=1)[0]]
    texts = reviews.dev[0]
    for model, folder in ((members[0], tmp_path / "one"), (Ensemble(members), tmp_path / "two")):
        save_finetuned(folder, model, tok, reviews.labels)
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["body_type"] == "bert" and meta["tokenizer"] == tok.to_dict()
        loaded, loaded_tok, _ = load_finetuned(folder, task="classify")
        np.testing.assert_array_equal(predict_proba(loaded, loaded_tok, texts), predict_proba(model, tok, texts))
    with pytest.raises(ValueError, match="looks inside a GPT body only"):
        load_for_inspection(tmp_path / "one", "a good film")
    members[1].pooling = "cls"
    with pytest.raises(ValueError, match="members differ"):
        save_finetuned(tmp_path / "mixed", Ensemble(members), tok, reviews.labels)


def test_a_tagger_on_an_encoder_round_trips(encoder, tmp_path):
    body, tok = encoder
    tt.manual_seed(0)
    tagger = build_head("tag", body.config, ("O", "B-x")).load_body(body.state_dict()).eval()
    sentences = [["the", "film", "was", "good"], ["a", "plot"]]
    save_finetuned(tmp_path, tagger, tok, ("O", "B-x"))
    loaded, loaded_tok, _ = load_finetuned(tmp_path, task="tag")
    np.testing.assert_array_equal(loaded.predict_proba(*_pad([[2, 6, 7, 4], [2, 8, 4]])),
                                  tagger.predict_proba(*_pad([[2, 6, 7, 4], [2, 8, 4]])))
    assert predict_tags(loaded, loaded_tok, sentences, ("O", "B-x")) == predict_tags(tagger, tok, sentences, ("O", "B-x"))


def test_a_saved_classifier_must_agree_with_its_body(encoder, tmp_path):
    body, tok = encoder
    save_finetuned(tmp_path, build_head("classify", body.config, ("a", "b"), pooling="cls"), tok, ("a", "b"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "body_type": "lstm"}))
    with pytest.raises(ValueError, match="body_type must be one of"):
        load_finetuned(tmp_path)
    gpt_config = {**GPT_CONFIG.to_dict(), "vocab_size": tok.vocab_size}
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "body_type": "gpt", "model_config": gpt_config}))
    with pytest.raises(ValueError, match="head.pooling is 'cls', which a causal body"):
        load_finetuned(tmp_path)


# ------------------------------------------------------------ the command
def _write(path, texts, labels):
    path.write_text("label\ttext\n" + "".join(f"{y}\t{t}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    return path


def test_finetune_checkpoint_takes_an_encoder_and_its_tokenizer(encoder, tmp_path, capsys):
    body, tok = encoder
    folder = tmp_path / "bert"
    meta = {"kind": "language_model", "model_type": "bert", "data": "test", "step": 0,
            "model_config": body.config.to_dict(), "train_config": {}, "tokenizer": tok.to_dict(), "rng": {},
            "scheduler": {}, "history": {}}
    save_checkpoint(folder, body.state_dict(), None, meta)
    train, dev = _write(tmp_path / "train.tsv", *_reviews(80, 0)), _write(tmp_path / "dev.tsv", *_reviews(20, 1))
    out = tmp_path / "out"
    assert main(["finetune", "--task", "classify", "--train", str(train), "--dev", str(dev), "--checkpoint",
                 str(folder), "--epochs", "2", "--ensemble", "1", "--lr", "1e-2", "--layer-lr-decay", "0.8",
                 "--unfreeze-epochs", "1", "--out", str(out)]) == 0
    assert "body: " + str(folder) + " (BERT, 2 layers, width 16" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert (results["recipe"]["pooling"], results["recipe"]["body_lr"]) == ("mean", None)  # an encoder's defaults
    assert results["recipe"]["layer_lr_decay"] == 0.8 and results["recipe"]["unfreeze_epochs"] == 1
    saved = json.loads((out / "meta.json").read_text())
    assert saved["body_type"] == "bert" and saved["tokenizer"] == tok.to_dict()
    assert saved["finetune"]["layer_lr_decay"] == 0.8 and saved["finetune"]["unfreeze_epochs"] == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--task", "classify", "--train", str(train), "--pooling", "cls", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "only an encoder" in capsys.readouterr().err


def test_the_new_flags_come_from_the_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--layer-lr-decay", "--unfreeze-epochs N", "--pooling {mean,max,last,cls}"):
        assert flag in text, flag
    assert "default: max on a GPT body, mean on a BERT body" in text
    assert "learning rate of the body (default: --lr on a GPT body, --lr on a BERT body)" in text
    recipe = FinetuneRecipe(task="classify", data="sst2", layer_lr_decay=0.8, unfreeze_epochs=2)
    assert (recipe.finetune_config(0).layer_lr_decay, recipe.finetune_config(0).unfreeze_epochs) == (0.8, 2)
    assert (FinetuneRecipe(task="tag", data="wnut17").pooling, FinetuneRecipe(task="tag", data="wnut17").layer_lr_decay,
            FinetuneRecipe(task="tag", data="wnut17").unfreeze_epochs) == (None, None, 0)
