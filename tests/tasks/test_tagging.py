"""The bidirectional tagger's training run (tasks/tagging.py): vocabularies from training sentences only, <unk>
for words seen once, batches for the one loop, learning a toy task, the tagger checkpoint and its checks, and
`finetune --task tag` choosing it by default while `--tagger head` keeps the GPT recipe."""

import io
import json
import sys

import numpy as np
import pytest

from tinytransformer.cli import main
from tinytransformer.tasks.finetune import TASK_DEFAULTS, FinetuneRecipe
from tinytransformer.tasks.finetuned import load_finetuned
from tinytransformer.tasks.tagging import (
    BITAGGER_DEFAULTS, TaggerVocab, TaggingBatches, TaggingConfig, load_tagger, replace_singletons, run, tag_sentences,
)
from tinytransformer.training import load_checkpoint

FILL = ["we", "met", "today", "and", "saw", "the", "game", "with", "at", "lol"]
NAMES = [["Ann", "Lee"], ["Bo"], ["Cy", "Dow"], ["Eve"], ["Fay", "Gu"]]
LABELS = ("O", "B-person", "I-person")
TINY = dict(word_dim=8, char_dim=8, char_filters=8, hidden_size=8, batch_size=8, lr=2e-2, epochs=6)


def _names(n, seed):
    """Sentences of lower-case filler with one capitalised name in them, tagged B-person I-person."""
    rng = np.random.default_rng(seed)
    sentences, tags = [], []
    for _ in range(n):
        words = list(rng.choice(FILL, int(rng.integers(2, 6))))
        name, at = NAMES[int(rng.integers(len(NAMES)))], int(rng.integers(len(words) + 1))
        word_tags = ["O"] * len(words)
        words[at:at], word_tags[at:at] = name, ["B-person"] + ["I-person"] * (len(name) - 1)
        sentences.append([str(w) for w in words])
        tags.append(word_tags)
    return sentences, tags


def _write(path, sentences, tags):
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(words, word_tags)) for words, word_tags in zip(sentences, tags)]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tagger trained on toy names by `run` (the files a user would give), saved; its folder and results."""
    folder = tmp_path_factory.mktemp("tagging")
    train, dev = _write(folder / "train.conll", *_names(80, 0)), _write(folder / "dev.conll", *_names(30, 1))
    results = run(TaggingConfig(train=train, dev=dev, test=dev, out=str(folder / "out"), **TINY), log=lambda _: None)
    return folder / "out", results


def test_the_vocabularies_come_from_the_training_sentences_only():
    train, dev = [["Ann", "met", "Bo"], ["ann", "lol"]], [["Zoë", "met", "Ann"]]
    vocab = TaggerVocab.train(train, LABELS)
    assert "zoë" not in vocab.tokenizer.words and "ë" not in vocab.char_vocab.chars
    batch = vocab.batch(dev)
    unk = vocab.tokenizer.unk_id
    assert batch.pieces[0, :, 0].tolist() == [unk, vocab.tokenizer.stoi["met"], vocab.tokenizer.stoi["ann"]]
    assert batch.chars[0, 0, 2] == vocab.char_vocab.unk_id  # ë: never seen in training
    assert vocab.tokenizer.encode_words(["Ann"]) == vocab.tokenizer.encode_words(["ann"])  # lower-cased words
    assert vocab.char_vocab.encode("Ann") != vocab.char_vocab.encode("ann")  # characters keep their case
    assert TaggerVocab.train(train, LABELS, lower=False).tokenizer.encode_words(["Ann"]) != \
        TaggerVocab.train(train, LABELS, lower=False).tokenizer.encode_words(["ann"])


def test_words_seen_once_become_unk_at_the_rate_asked(rng):
    sentences = [["a", "b", "c"], ["a", "b", "d"], ["a", "e"], ["a"]]
    vocab = TaggerVocab.train(sentences, LABELS)
    singletons = vocab.singletons(sentences)
    once = {vocab.tokenizer.stoi[w] for w in "cde"}
    assert set(np.flatnonzero(singletons)) == once
    unk = vocab.tokenizer.unk_id
    def fresh():
        return vocab.batch(sentences)

    kept = replace_singletons(fresh(), singletons, 0.0, rng, unk).pieces
    np.testing.assert_array_equal(kept, fresh().pieces)
    gone = replace_singletons(fresh(), singletons, 1.0, rng, unk).pieces
    np.testing.assert_array_equal(gone, np.where(np.isin(fresh().pieces, list(once)), unk, fresh().pieces))
    draws = [replace_singletons(fresh(), singletons, 0.5, rng, unk).pieces for _ in range(400)]
    share = np.mean([(d == unk).sum() / len(once) for d in draws])
    assert 0.45 < share < 0.55


def test_the_batch_source_gives_every_sentence_once_an_epoch_with_its_tags(rng):
    sentences, tags = _names(21, 3)
    vocab = TaggerVocab.train(sentences, LABELS)
    source = TaggingBatches(vocab, sentences, tags, batch_size=4)
    seen = []
    for _ in range(source.batches_per_epoch):
        batch = source.next_batch(rng)
        assert batch.tags.shape == batch.mask.shape and (batch.tags[~batch.mask] == -100).all()
        for row, n in zip(batch.tags, batch.lengths):
            seen.append(tuple(LABELS[t] for t in row[:n]))
    assert sorted(seen) == sorted(tuple(t) for t in tags)


def test_the_tagger_learns_toy_names_and_keeps_its_best_epoch(trained):
    folder, results = trained
    assert results["dev"]["f1"] > 0.9 and results["test"] == results["dev"]  # test = dev here
    meta = json.loads((folder / "meta.json").read_text())
    history = meta["history"]
    assert meta["kind"] == "tagger" and meta["model_type"] == "bitagger" and meta["labels"] == list(LABELS)
    assert max(d["f1"] for d in history["dev"]) == history["best_dev"]["f1"] == results["dev"]["f1"]
    assert json.loads((folder / "results.json").read_text())["dev"] == results["dev"]


def test_a_saved_tagger_loads_and_tags_as_before(trained):
    folder, _ = trained
    model, vocab, meta = load_tagger(folder)
    sentences = [["we", "met", "Ann", "Lee", "today"], ["Bo"], ["lol", "Zed", "Quux", "at", "the", "game"]]
    tags = tag_sentences(model, vocab, sentences)
    assert tags[0] == ["O", "O", "B-person", "I-person", "O"] and tags[1] == ["B-person"]
    assert [len(t) for t in tags] == [len(s) for s in sentences]
    assert tag_sentences(model, vocab, sentences[::-1]) == tags[::-1]  # other company in the batch, same tags


def _edited(folder, tmp_path, edit):
    """A copy of the checkpoint in ``folder`` with its meta.json changed by ``edit``."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    meta = json.loads((copy / "meta.json").read_text())
    edit(meta)
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m["model_config"].update(hidden_size=4096), "model_config.hidden_size"),
    (lambda m: m["model_config"].update(char_filters=9), "model_config.char_filters"),
    (lambda m: m["model_config"].update(output="softmax"), "model_config.output"),
    (lambda m: m["model_config"].update(word_dim="wide"), "model_config.word_dim"),
    (lambda m: m["char_vocab"].update(chars=m["char_vocab"]["chars"][:-1]), "char_vocab has"),
    (lambda m: m["char_vocab"].update(chars=["ab"]), "char_vocab"),
    (lambda m: m.update(labels=["O", "B-person"]), "labels holds 2 tags"),
    (lambda m: m.update(model_type="lstm"), "model_type must be 'bitagger'"),
    (lambda m: m.pop("char_vocab"), "missing key char_vocab"),
    (lambda m: m.update(head={"dropout": 0.1}), "unknown key head"),
])
def test_a_tagger_checkpoint_is_checked_before_anything_is_built(trained, tmp_path, edit, needle):
    folder, _ = trained
    with pytest.raises(ValueError, match="meta.json") as error:
        load_tagger(_edited(folder, tmp_path, edit))
    assert needle in str(error.value)


def test_each_loader_says_which_kind_of_tagger_it_reads(trained, tmp_path):
    folder, _ = trained
    with pytest.raises(ValueError, match="holds a BiTagger, not a head on a body"):
        load_finetuned(folder, task="tag")
    state, _, _ = load_checkpoint(folder)
    assert "crf.transitions" in state and "char_cnn.weight" in state


def test_finetune_tag_trains_the_bitagger_by_default_and_the_head_keeps_its_recipe():
    recipe = FinetuneRecipe(task="tag", data="wnut17")
    assert recipe.tagger == "bitagger"
    assert {name: getattr(recipe, name) for name in BITAGGER_DEFAULTS} == BITAGGER_DEFAULTS
    config = TaggingConfig.from_recipe(recipe)
    assert config == TaggingConfig(data="wnut17")  # the command's defaults are TaggingConfig's
    head = FinetuneRecipe(task="tag", data="wnut17", tagger="head")
    assert {name: getattr(head, name) for name in TASK_DEFAULTS["tag"]} == {**TASK_DEFAULTS["tag"], "tagger": "head"}
    assert FinetuneRecipe(task="tag", data="wnut17", checkpoint="runs/bert").tagger == "head"
    assert FinetuneRecipe(task="classify", data="sst2").tagger is None
    assert TaggingConfig.from_recipe(FinetuneRecipe(task="tag", data="wnut17", epochs=3, lr=0.5)).lr == 0.5
    with pytest.raises(ValueError, match="--n-embd, --ensemble: a setting of a head on a body"):
        TaggingConfig.from_recipe(FinetuneRecipe(task="tag", data="wnut17", n_embd=64, ensemble=2))
    with pytest.raises(ValueError, match="the bitagger tags words"):
        TaggingConfig.from_recipe(FinetuneRecipe(task="classify", data="sst2", tagger="bitagger"))


def test_finetune_then_tag_on_the_command_line(tmp_path, capsys, monkeypatch):
    train = _write(tmp_path / "train.conll", *_names(40, 0))
    out = tmp_path / "tagger"
    assert main(["finetune", "--task", "tag", "--train", train, "--epochs", "2", "--out", str(out)]) == 0
    assert "dev entity F1" in capsys.readouterr().out
    assert json.loads((out / "meta.json").read_text())["model_type"] == "bitagger"
    monkeypatch.setattr(sys, "stdin", io.StringIO("we met Ann Lee today\n\nBo\n"))
    assert main(["tag", "--checkpoint", str(out)]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    rows = [[line.split("\t") for line in block.splitlines()] for block in blocks]
    assert [[w for w, _ in r] for r in rows] == [["we", "met", "Ann", "Lee", "today"], ["Bo"]]
    assert all(tag in LABELS for r in rows for _, tag in r)
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--task", "tag", "--train", train, "--n-layer", "3", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "--n-layer: a setting of a head on a body" in capsys.readouterr().err


def test_finetune_help_shows_the_bitagger_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--tagger {bitagger,head}" in text and "(default classify/tag: -/bitagger)" in text
    for name in ("epochs", "min_freq", "dropout"):
        assert f"--tagger bitagger: {BITAGGER_DEFAULTS[name]})" in text, name
