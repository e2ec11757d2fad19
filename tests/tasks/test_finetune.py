"""Fine-tuning: the loop on toy tasks, best-by-dev checkpoints, pretraining for a task, the recipe's defaults."""

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.data import BPETokenizer, TaskData, WordTokenizer
from tinytransformer.data.encoding import pretraining_sentences
from tinytransformer.models import GPT, GPTConfig
from tinytransformer.models.heads import Ensemble
from tinytransformer.tasks.finetune import TASK_DEFAULTS, FinetuneConfig, FinetuneRecipe, finetune
from tinytransformer.tasks.finetune_body import pretrain_for_task
from tinytransformer.tasks.finetuned import (
    build_head, evaluate, load_finetuned, predict_proba, predict_tags, save_finetuned,
)

GOOD, BAD, FILL = ["good", "great", "fine"], ["bad", "awful", "poor"], ["the", "film", "was", "a", "plot", "it"]


def _reviews(n, seed):
    """Sentences of filler words with one sentiment word: the label says which kind."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(FILL, int(rng.integers(2, 6))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(GOOD if label else BAD)))
        texts.append(" ".join(words))
        labels.append(str(label))
    return texts, labels


def _names(n, seed):
    """Sentences where a capitalised word is a person (B-person), the word after it I-person if capitalised."""
    rng = np.random.default_rng(seed)
    sentences, tags = [], []
    for _ in range(n):
        words, word_tags = list(rng.choice(FILL, int(rng.integers(2, 5)))), None
        at = int(rng.integers(len(words) + 1))
        name = ["Ann", "Bo"] if rng.random() < 0.5 else ["Cy"]
        words[at:at] = name
        word_tags = ["O"] * len(words)
        word_tags[at:at + len(name)] = ["B-person"] + ["I-person"] * (len(name) - 1)
        sentences.append(words)
        tags.append(word_tags)
    return sentences, tags


@pytest.fixture(scope="module")
def reviews():
    train, dev = _reviews(200, 0), _reviews(60, 1)
    return TaskData("classification", ("0", "1"), train, dev), WordTokenizer.train(train[0])


def _config(tokenizer, **options):
    return GPTConfig(**{"vocab_size": tokenizer.vocab_size, "block_size": 16, "n_layer": 1, "n_head": 2,
                        "n_embd": 16, **options})


def test_finetune_learns_a_toy_sentiment_task_and_saves_the_best_epoch(reviews, tmp_path):
    data, tok = reviews
    tt.manual_seed(0)
    model = build_head("classify", _config(tok), data.labels)
    lines = []
    history = finetune(model, tok, data, FinetuneConfig(epochs=4, lr=1e-2), tmp_path, log=lines.append)
    assert len(lines) == 4 and all("train loss" in line and "dev accuracy" in line for line in lines)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["best_dev"]["accuracy"] >= 0.9
    loaded, loaded_tok, meta = load_finetuned(tmp_path, task="classify")
    assert meta["history"]["best_epoch"] == history["best_epoch"]
    texts = data.dev[0]
    np.testing.assert_array_equal(predict_proba(loaded, loaded_tok, texts), predict_proba(model, tok, texts))
    assert evaluate(loaded, loaded_tok, data.labels, *data.dev) == history["best_dev"]
    with pytest.raises(ValueError, match="holds a classifier .*`load_finetuned` reads a tagger"):
        load_finetuned(tmp_path, task="tag")


def test_freeze_leaves_the_body_unchanged(reviews):
    data, tok = reviews
    tt.manual_seed(0)
    model = build_head("classify", _config(tok), data.labels)
    body_before = {k: v.copy() for k, v in model.body.state_dict().items()}
    head_before = model.score.weight.data.copy()
    finetune(model, tok, data, FinetuneConfig(epochs=1, freeze=True), log=lambda line: None)
    for name, value in model.body.state_dict().items():
        np.testing.assert_array_equal(value, body_before[name], err_msg=name)
    assert not np.array_equal(model.score.weight.data, head_before)


def test_tagger_learns_capitalised_names_and_an_ensemble_round_trips(tmp_path):
    train, dev = _names(150, 0), _names(40, 1)
    data = TaskData("tagging", ("O", "B-person", "I-person"), train, dev)
    tok = BPETokenizer.train(" ".join(w for s in train[0] for w in s), vocab_size=280)
    members = []
    for seed in (0, 1):
        tt.manual_seed(seed)
        model = build_head("tag", _config(tok, block_size=24), data.labels)
        history = finetune(model, tok, data, FinetuneConfig(epochs=3, lr=1e-2, seed=seed), log=lambda line: None)
        assert history["best_dev"]["f1"] >= 0.8
        members.append(model)
    ensemble = Ensemble(members)
    save_finetuned(tmp_path, ensemble, tok, data.labels)
    loaded, loaded_tok, _ = load_finetuned(tmp_path)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2
    assert predict_tags(loaded, loaded_tok, dev[0], data.labels) == predict_tags(ensemble, tok, dev[0], data.labels)


def test_words_past_the_block_size_are_tagged_o():
    tok = WordTokenizer.train([["a", "b"]])
    tt.manual_seed(0)
    model = build_head("tag", _config(tok, block_size=4), ("O", "B-x"))
    tags = predict_tags(model, tok, [["a", "b", "a", "b", "a", "b"]], ("O", "B-x"))
    assert len(tags[0]) == 6 and tags[0][3:] == ["O"] * 3  # <bos> + 3 words fill the block


def test_pretraining_for_the_task_lowers_the_loss_and_loads_into_a_head(reviews):
    data, tok = reviews
    sentences = pretraining_sentences(data.train[0], tok, block_size=16)
    assert sentences[0][0] == tok.bos_id and sentences[0][-1] == tok.eos_id
    config = _config(tok)
    lines = []
    body = pretrain_for_task(sentences, config, steps=30, lr=1e-2, shortlist=8, unk_id=tok.unk_id, log=lines.append)
    first, last = (float(line.rsplit(" ", 1)[1]) for line in (lines[0], lines[-1]))
    assert last < first - 0.5
    untrained = GPT(config)
    with tt.no_grad():
        x = np.array([s[:-1] for s in sentences if len(s) == 5])
        y = np.array([s[1:] for s in sentences if len(s) == 5])
        assert body(x, y)[1].item() < untrained(x, y)[1].item()
    head = build_head("classify", config, data.labels).load_body(body.state_dict())
    np.testing.assert_array_equal(head.body.transformer["wte"].weight.data, body.transformer["wte"].weight.data)


def test_finetune_config_rejects_bad_values():
    with pytest.raises(ValueError, match="epochs"):
        FinetuneConfig(epochs=0)
    with pytest.raises(ValueError, match="warmup"):
        FinetuneConfig(warmup=1.5)
    with pytest.raises(ValueError, match="task must be"):
        build_head("translate", GPTConfig(), ("a", "b"))


def test_the_recipe_fills_in_its_task_defaults_and_says_them_in_its_help():
    for task, data, tagger in (("classify", "sst2", None), ("tag", "wnut17", "head")):  # the bitagger: test_tagging
        recipe = FinetuneRecipe(task=task, data=data, tagger=tagger)
        assert {name: getattr(recipe, name) for name in TASK_DEFAULTS[task]} == {**TASK_DEFAULTS[task], "tagger": tagger}
    assert FinetuneRecipe(task="tag", data="wnut17", epochs=2, vocab_size=300).epochs == 2
    helps = {name: f.metadata["help"] for name, f in FinetuneRecipe.__dataclass_fields__.items()}
    c, t = TASK_DEFAULTS["classify"], TASK_DEFAULTS["tag"]
    for name in ("epochs", "ensemble", "n_layer", "pretrain_steps", "min_freq", "tokenizer"):
        assert f"(default classify/tag: {c[name]}/{t[name]}" in helps[name], name
    assert "(default classify/tag: no limit/2048)" in helps["vocab_size"]


def test_the_recipe_rejects_bad_values():
    with pytest.raises(ValueError, match="give either data"):
        FinetuneRecipe(task="classify")
    with pytest.raises(ValueError, match="is a classification task"):
        FinetuneRecipe(task="tag", data="sst2")
    with pytest.raises(ValueError, match="epochs must be in"):
        FinetuneRecipe(task="classify", data="sst2", epochs=0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        FinetuneRecipe(task="classify", data="sst2", pooling="sum")
