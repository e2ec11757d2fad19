"""`tinytransformer train --model bert`: a masked language model through the GPT's loop, checkpoints and resume.

Tiny models on a small text of "reviews" (documents separated by blank lines), never the full corpus."""

import json

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.cli import build_parser, main
from tinytransformer.data import BPETokenizer, WordTokenizer
from tinytransformer.data.encoding import IGNORE_INDEX
from tinytransformer.data.segments import (
    MASK_TOKENS, MaskedSegments, bert_special_ids, encode_segments, held_out_documents, pack_segments,
    pretraining_data, train_tokenizer,
)
from tinytransformer.models.bert import BertForMaskedLM
from tinytransformer.tasks.language_model import (
    MODEL_DEFAULTS, PRETRAINED_BODIES, VOCAB_SIZES, LanguageModelConfig, load_pretrained, prepare_pretraining,
    resume_pretraining,
)
from tinytransformer.tasks.options import options
from tinytransformer.training import TrainConfig

SENTENCES = ["the movie was great and the acting was fine .", "i did not like the plot at all .",
             "a dull , lifeless film with nothing to say .", "the director knows how to tell a story .",
             "it 's a gorgeous , witty , seductive movie .", "what a waste of time and money ."]
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16)
TINY_FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
              "--eval-iters", "2", "--warmup-iters", "2", "--vocab-size", "40"]


def _reviews(n=30):
    """``n`` documents of 2-3 sentences each, a blank line between them, as the movie-review corpus."""
    rng = np.random.default_rng(0)
    return "\n\n".join("\n".join(rng.choice(SENTENCES, 2 + i % 2)) for i in range(n)) + "\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text(_reviews(), encoding="utf-8")
    return path


def _train_config(**overrides):
    settings = dict(max_iters=6, batch_size=3, grad_accum=2, lr=3e-3, warmup_iters=2, eval_interval=2, eval_iters=2,
                    seed=3)
    return TrainConfig(**{**settings, **overrides})


# ---------------------------------------------------------------- the defaults table
def _config_from_cli(argv):
    args = build_parser().parse_args(argv)
    return args.config_class(**{f.name: getattr(args, f.name) for f in options(args.config_class)})


@pytest.mark.parametrize("model", sorted(MODEL_DEFAULTS))
def test_each_models_defaults_come_from_the_one_table(model):
    """`train --model M` and LanguageModelConfig(model=M) fill the same defaults, MODEL_DEFAULTS[M]'s; a flag wins."""
    config = LanguageModelConfig(model=model)
    assert _config_from_cli(["train", "--model", model]) == config
    for name, value in MODEL_DEFAULTS[model].items():
        assert getattr(config, name) == value, name
    assert config.vocab_size == VOCAB_SIZES.get(config.tokenizer)
    assert config.train_config().max_iters == MODEL_DEFAULTS[model]["max_iters"]
    assert LanguageModelConfig(model=model, n_embd=32, dropout=0.0).n_embd == 32


def test_the_help_of_a_per_model_setting_shows_every_models_default():
    sub = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in sub._actions}
    for name in MODEL_DEFAULTS["bert"]:
        shown = "/".join(str(d[name]) for d in MODEL_DEFAULTS.values())
        assert helps[name].endswith(f"(default gpt/rnn/lstm/bert: {shown})"), name
    assert "default bpe/word: 512/16384" in helps["vocab_size"]


@pytest.mark.parametrize("bad, message", [
    ({"model": "bert", "tokenizer": "char"}, "tokenizer char has no ids for the special tokens a BERT needs"),
    ({"model": "bert", "tokenizer": "bpe", "vocab_size": 258}, "vocab_size must be at least 260 for a bpe tokenizer of a BERT"),
    ({"model": "gpt", "tokenizer": "word", "vocab_size": 3}, "vocab_size must be at least 5 for a word tokenizer"),
    ({"model": "bert", "max_minutes": 0}, r"max_minutes must be in \(0, inf\)"),
])
def test_settings_a_bert_cannot_use_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelConfig(**bad)


# ---------------------------------------------------------------- tokenizers
def test_a_word_tokenizer_without_extra_specials_is_unchanged():
    """Every word tokenizer trained before the option: the same ids, the same dict (fine-tuning numbers stay)."""
    plain = WordTokenizer.train(SENTENCES)
    assert set(plain.to_dict()) == {"type", "lower", "pattern", "words"}
    assert plain.words[:5] == ["<pad>", "<unk>", "<cls>", "<bos>", "<eos>"]
    masked = WordTokenizer.train(SENTENCES, extra_specials=("<mask>",))
    assert masked.words == [*plain.words[:5], "<mask>", *plain.words[5:]]
    assert masked.special_ids["<mask>"] == 5 and masked.to_dict()["extra_specials"] == ["<mask>"]
    again = WordTokenizer.from_dict(json.loads(json.dumps(masked.to_dict())))
    assert again.words == masked.words and again.special_ids == masked.special_ids
    assert WordTokenizer.train(SENTENCES, vocab_size=8, extra_specials=("<mask>",)).vocab_size == 8
    with pytest.raises(ValueError, match="extra_specials must be a list"):
        WordTokenizer(masked.words, extra_specials="<mask>")


def test_bpe_specials_come_after_the_merges_and_no_text_encodes_to_them():
    text = " ".join(SENTENCES)
    plain, masked = BPETokenizer.train(text, 300), BPETokenizer.train(text, 300, specials=MASK_TOKENS["bpe"])
    assert set(plain.to_dict()) == {"type", "pattern", "merges"} and plain.special_ids == {}
    assert masked.vocab_size == 300 and masked.merges == plain.merges[:40]  # 256 bytes, 40 merges, 4 specials
    assert masked.special_ids == {"<pad>": 296, "<cls>": 297, "<eos>": 298, "<mask>": 299}
    assert max(masked.encode("<mask> <pad> " + text)) < 296
    assert masked.decode([297, *masked.encode("the movie"), 298]) == "<cls>the movie<eos>"
    assert BPETokenizer.from_dict(masked.to_dict()).special_ids == masked.special_ids


# ---------------------------------------------------------------- the split and the segments
def test_the_held_out_documents_are_whole_drawn_from_the_whole_corpus_and_always_the_same():
    docs = [f"review {i} line one .\nreview {i} line two ." for i in range(100)]  # sorted, as neg then pos
    train, val = held_out_documents("\n\n".join(docs) + "\n")
    held = [d for d in val.strip().split("\n\n")]
    assert len(held) == 10 and all(d in docs for d in held)  # whole documents
    assert sorted(held + train.strip().split("\n\n"), key=docs.index) == docs
    numbers = [int(d.split()[1]) for d in held]
    assert min(numbers) < 50 <= max(numbers)  # from both halves, not the last tenth
    assert held_out_documents("\n\n".join(docs) + "\n") == (train, val)
    train, val = held_out_documents("a .\nb .\nc .\nd .\n")  # one document: its lines
    assert len(val.split()) == 2 and len(train.split()) == 6


def test_segments_pack_lines_of_one_document_within_the_block():
    docs = [[[10, 11, 12], [13, 14], list(range(20, 31))], [[40]]]
    segments = [s.tolist() for s in pack_segments(docs, block_size=8, cls_id=2, sep_id=4)]
    assert segments == [[2, 10, 11, 12, 13, 14, 4], [2, 20, 21, 22, 23, 24, 25, 4], [2, 26, 27, 28, 29, 30, 4],
                        [2, 40, 4]]  # a long line cut in pieces; the next document starts a new segment


def test_masking_touches_real_tokens_only_and_a_batch_is_a_function_of_the_generator():
    tok = train_tokenizer(_reviews(), "word", 40, masked=True)
    ids = bert_special_ids(tok)
    source = MaskedSegments(encode_segments(_reviews(), tok, 12), 16, tok)
    inputs, padding, labels = source.next_batch(np.random.default_rng(0))
    for again, first in zip(source.next_batch(np.random.default_rng(0)), (inputs, padding, labels)):
        np.testing.assert_array_equal(again, first)  # the same generator: the same rows and corruption
    chosen = labels != IGNORE_INDEX
    assert padding.any() and not (chosen & padding).any()
    assert (inputs[padding] == ids["pad"]).all()
    assert (inputs[:, 0] == ids["cls"]).all() and not chosen[:, 0].any()
    special = np.isin(labels, list(tok.special_ids.values()))
    assert not special.any() and chosen.any(axis=1).all()  # every row has a loss, no special token is a target
    assert (inputs[chosen & (inputs != ids["mask"])] >= len(tok.special_ids)).all()  # words, never a special


# ---------------------------------------------------------------- the run
def test_a_bert_run_resumes_bit_for_bit(corpus, tmp_path):
    """N steps straight == K steps, save, load into a fresh model, N - K more: the same losses, the same weights
    (dropout on, masking drawn from the batch generator)."""
    model_config = {**TINY, "dropout": 0.2}

    def prepare(train_config, out_dir=None):
        return prepare_pretraining(corpus, vocab_size=40, model_type="bert", model_config=model_config,
                                   train_config=train_config, out_dir=out_dir)

    straight = prepare(_train_config())
    straight.train(progress=False)
    prepare(_train_config(max_iters=3, lr_decay_iters=6), tmp_path / "run").train(progress=False)
    tt.manual_seed(12345)  # a different state everywhere: only the checkpoint can bring the old one back
    resumed = resume_pretraining(tmp_path / "run", max_iters=6)
    assert isinstance(resumed.model, BertForMaskedLM) and resumed.step == 3
    resumed.train(progress=False)
    assert resumed.history["train_loss"] == straight.history["train_loss"]
    resumed_evals = dict(zip(resumed.history["eval_step"], resumed.history["val_loss"]))  # and one at step 3
    assert {step: resumed_evals[step] for step in (0, 2, 4, 6)} == dict(zip(straight.history["eval_step"],
                                                                          straight.history["val_loss"]))
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_the_evaluation_reads_the_same_masked_batches_every_time(corpus):
    trainer = prepare_pretraining(corpus, vocab_size=40, model_type="bert", model_config=TINY,
                                  train_config=_train_config())
    state = trainer.batch_rng.bit_generator.state
    first = trainer.estimate_loss(trainer.val_data)
    assert trainer.estimate_loss(trainer.val_data) == first
    assert trainer.batch_rng.bit_generator.state == state  # the evaluation's generator is its own


def test_a_bpe_bert_and_word_and_bpe_gpts_train_on_held_out_reviews(corpus):
    for model_type, tokenizer, vocab in (("bert", "bpe", 300), ("gpt", "word", 40), ("gpt", "bpe", 300)):
        trainer = prepare_pretraining(corpus, tokenizer=tokenizer, vocab_size=vocab, model_type=model_type,
                                      model_config={**TINY, "block_size": 8}, train_config=_train_config(max_iters=2))
        history = trainer.train(progress=False)
        assert np.isfinite(history["val_loss"]).all() and trainer.tokenizer.kind == tokenizer, model_type


def test_the_gpt_on_the_movie_reviews_validates_on_the_berts_held_out_reviews():
    text = _reviews(40)
    tok = train_tokenizer(text, "word", 40)
    train_ids, val_ids = pretraining_data(text, tok, 8, 4, by_document=True)  # as for DOCUMENT_CORPORA
    held_out = held_out_documents(text)[1]
    n_lines = len([line for line in held_out.splitlines() if line.strip()])
    assert (val_ids == tok.bos_id).sum() == n_lines and val_ids[0] == tok.bos_id and val_ids[-1] == tok.eos_id
    assert len(train_ids) + len(val_ids) == len(text.split()) + 2 * len(text.strip().replace("\n\n", "\n").splitlines())


def test_train_model_bert_end_to_end_then_the_body_loads_and_generate_refuses(corpus, tmp_path, capsys):
    out = tmp_path / "bert"
    assert main(["train", "--model", "bert", "--data", str(corpus), *TINY_FLAGS, "--max-iters", "4",
                 "--eval-interval", "2", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["kind"], meta["model_type"], meta["step"]) == ("language_model", "bert", 4)
    assert meta["tokenizer"]["extra_specials"] == ["<mask>"] and meta["model_config"]["pad_id"] == 0
    assert "finetune --task classify" in capsys.readouterr().out
    model, tokenizer, _ = load_pretrained(out, reader="finetune --checkpoint", holds=PRETRAINED_BODIES)
    assert isinstance(model, BertForMaskedLM) and not model.training
    ids = np.array([[tokenizer.cls_id, *tokenizer.encode("the movie was <mask> ."), tokenizer.eos_id]])
    assert model.hidden_states(ids).shape == (1, 7, 16)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--checkpoint", str(out)])
    assert exit_.value.code == 2 and "does not generate text" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--max-iters", "6"]) == 0
    assert json.loads((out / "meta.json").read_text())["step"] == 6


def test_max_minutes_stops_the_run_with_an_evaluation_and_a_checkpoint(corpus, tmp_path):
    out = tmp_path / "bert"
    assert main(["train", "--model", "bert", "--data", str(corpus), *TINY_FLAGS, "--max-iters", "50",
                 "--max-minutes", "1e-6", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["step"] == 1 and meta["history"]["eval_step"] == [0, 1] and meta["train_config"]["max_iters"] == 50


def test_a_bert_checkpoint_whose_config_does_not_fit_its_arrays_is_refused(corpus, tmp_path):
    out = tmp_path / "bert"
    assert main(["train", "--model", "bert", "--data", str(corpus), *TINY_FLAGS, "--max-iters", "1",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    meta["model_config"]["n_embd"] = 32
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model_config.n_embd is 32, but the arrays .* show 16"):
        load_pretrained(out)
