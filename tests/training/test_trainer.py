"""The training loop: exact resumption from a checkpoint, gradient accumulation, the schedule, evaluation."""

import sys

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.tasks.language_model import prepare_pretraining, resume_pretraining
from tinytransformer.training import Progress, TrainConfig, Trainer

TEXT = "the quick brown fox jumps over the lazy dog; " * 40
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8)


def _corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(**overrides):
    settings = dict(max_iters=6, batch_size=3, grad_accum=2, lr=3e-3, warmup_iters=2, eval_interval=2, eval_iters=2,
                    seed=3)
    return TrainConfig(**{**settings, **overrides})


def test_resuming_from_a_checkpoint_gives_the_losses_of_an_uninterrupted_run(tmp_path):
    """N steps straight == K steps, save, load into a fresh model and optimizer, N - K more: bit for bit.
    Dropout is on, so the library's generator must be restored too."""
    corpus, model_config = _corpus(tmp_path), {**TINY, "dropout": 0.2}
    straight = prepare_pretraining(corpus, model_config=model_config, train_config=_config())
    straight.train(progress=False)

    first = prepare_pretraining(corpus, model_config=model_config, train_config=_config(max_iters=3, lr_decay_iters=6),
                                out_dir=tmp_path / "run")
    first.train(progress=False)
    tt.manual_seed(12345)  # a different state everywhere: only the checkpoint can bring the old one back
    resumed = resume_pretraining(tmp_path / "run", max_iters=6)
    assert resumed.step == 3
    resumed.train(progress=False)

    assert resumed.history["train_loss"] == straight.history["train_loss"]  # exact equality of floats
    assert resumed.history["lr"] == straight.history["lr"]
    assert resumed.history["val_loss"][-1] == straight.history["val_loss"][-1]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def _tiny_trainer(**overrides):
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, **TINY))
    tokens = np.tile(np.random.default_rng(1).integers(0, 11, 37), 11)  # a learnable stream: period 37
    return Trainer(model, tokens[:300], tokens[300:], _config(**{"grad_clip": 0.0, **overrides}))


def test_gradient_accumulation_equals_one_big_batch():
    """Two micro-batches of 3 with loss/2 each give the gradient of one batch of 6 (the windows are the
    same: the generator draws the offsets one after another either way)."""
    accumulated, big = _tiny_trainer(grad_accum=2, batch_size=3), _tiny_trainer(grad_accum=1, batch_size=6)
    for _ in range(2):
        loss_a, loss_b = accumulated.train_step(), big.train_step()
        assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for (name, a), b in zip(accumulated.model.state_dict().items(), big.model.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)


def test_warmup_then_cosine_schedule_and_evaluation_points():
    trainer = _tiny_trainer(max_iters=10, warmup_iters=4, eval_interval=4, lr=1e-2)
    trainer.train(progress=False)
    lr = trainer.history["lr"]
    np.testing.assert_allclose(lr[:4], [2.5e-3, 5e-3, 7.5e-3, 1e-2])  # linear warmup to the peak
    assert lr[4] == lr[3] and all(a > b for a, b in zip(lr[4:], lr[5:]))  # the cosine starts at the peak
    assert lr[-1] > 1e-3  # towards the floor lr/10, reached after the last step
    assert trainer.history["eval_step"] == [0, 4, 8, 10]
    assert len(trainer.history["train_loss"]) == 10


def test_loss_falls_and_evaluation_does_not_disturb_training():
    trainer = _tiny_trainer(max_iters=40, grad_accum=1, batch_size=8, eval_interval=40)
    before = trainer.estimate_loss(trainer.val_tokens)
    assert trainer.estimate_loss(trainer.val_tokens) == before  # the same batches every time
    state = trainer.batch_rng.bit_generator.state
    trainer.evaluate()
    assert trainer.batch_rng.bit_generator.state == state
    trainer.train(progress=False)
    assert np.mean(trainer.history["train_loss"][-5:]) < np.mean(trainer.history["train_loss"][:5]) - 0.3


def test_a_validation_split_shorter_than_a_block_is_a_clear_error():
    model = GPT(GPTConfig(vocab_size=5, **TINY))
    with pytest.raises(ValueError, match="validation split has 8 tokens"):
        Trainer(model, np.zeros(100, dtype=np.int64), np.zeros(8, dtype=np.int64))


def test_progress_prints_plain_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm...` raise ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = Progress(100)
    assert bar.bar is None
    for i in range(100):
        bar.update(loss=f"{i:.1f}")
    bar.write("an evaluation")
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]  # said once per process
    lines = [line for line in captured.err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 50 and lines[-1] == "train 100/100 loss 99.0"
    assert len(notes) <= 1 and all("pip install tqdm" in note for note in notes)
    assert captured.out == "an evaluation\n"
