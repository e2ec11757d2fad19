"""The recurrent language model: GPT's interface, the same Trainer and checkpoints, generation that
carries the hidden state, truncated BPTT through the config."""

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.generation import generate
from tinytransformer.models import RNNLM, RNNLMConfig
from tinytransformer.training import TrainConfig, Trainer, load_checkpoint


def model(cell, **overrides):
    tt.manual_seed(0)
    return RNNLM(RNNLMConfig(**{"vocab_size": 11, "block_size": 8, "cell": cell, "n_layer": 2, "n_embd": 8,
                                "n_hidden": 12, **overrides}))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_forward_has_gpts_interface(cell, rng):
    m = model(cell)
    idx, targets = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    logits, loss = m(idx, targets)
    assert logits.shape == (3, 8, 11) and logits.dtype == np.float32
    assert abs(loss.item() - np.log(11)) < 0.3  # near uniform at initialisation
    last, none = m(idx)
    assert last.shape == (3, 1, 11) and none is None
    np.testing.assert_allclose(last.data[:, 0], logits.data[:, -1], rtol=1e-5, atol=1e-6)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in m.parameters())


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_generation_carrying_the_state_equals_rerunning_the_window(cell):
    """One step per new token from the carried state gives the tokens a full re-run gives, also past
    block_size, where both restart from the last block_size tokens."""
    m = model(cell)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    carried = generate(m, prompt, 12, temperature=0.0, use_cache=True)
    rerun = generate(m, prompt, 12, temperature=0.0, use_cache=False)
    np.testing.assert_array_equal(carried, rerun)
    assert carried.shape == (2, 15)
    sampled = generate(m, prompt, 12, temperature=1.0, seed=3, use_cache=True)
    np.testing.assert_array_equal(sampled, generate(m, prompt, 12, temperature=1.0, seed=3, use_cache=False))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_gpt_trainer_trains_it_and_its_checkpoint_loads(cell, tmp_path):
    tokens = np.tile(np.arange(11), 40)  # 0 1 2 ... 10 0 1 2 ...: every next token is determined
    m = model(cell)
    config = TrainConfig(max_iters=80, batch_size=8, lr=3e-2, warmup_iters=5, eval_interval=80, eval_iters=2)
    trainer = Trainer(m, tokens, tokens, config, out_dir=tmp_path)
    history = trainer.train(progress=False)
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    state, _, meta = load_checkpoint(tmp_path)
    fresh = RNNLM(RNNLMConfig(**meta["model_config"]))
    fresh.load_state_dict(state)
    x = tokens[None, :8]
    np.testing.assert_array_equal(fresh(x)[0].data, m(x)[0].data)


def test_truncated_bptt_in_the_config_changes_gradients_not_the_loss(rng):
    idx, targets = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    full, truncated = model("lstm"), model("lstm", bptt_steps=2)
    loss_full, loss_truncated = full(idx, targets)[1], truncated(idx, targets)[1]
    assert loss_full.item() == loss_truncated.item()
    loss_full.backward()
    loss_truncated.backward()
    assert not np.allclose(full.rnn.weight_hh_l0.grad, truncated.rnn.weight_hh_l0.grad)
    np.testing.assert_allclose(full.lm_head.weight.grad, truncated.lm_head.weight.grad)


def test_config_errors():
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNLMConfig(cell="gru")
    with pytest.raises(ValueError, match=r"n_layer must be in \[1, inf\), got 0"):
        RNNLMConfig(n_layer=0)
    assert RNNLMConfig(n_embd=32).n_hidden == 32
    with pytest.raises(ValueError, match="idx must have shape"):
        model("rnn")(np.zeros(5, dtype=np.int64))


def test_train_model_lstm_then_generate_and_resume_on_the_command_line(tmp_path, capsys):
    from tinytransformer.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    out = tmp_path / "run"
    tiny = ["--data", str(corpus), "--n-layer", "1", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--eval-iters", "1", "--eval-interval", "3", "--out", str(out)]
    assert main(["train", "--model", "lstm", "--max-iters", "3", *tiny]) == 0
    assert "LSTM with" in capsys.readouterr().out
    _, _, meta = load_checkpoint(out)
    assert meta["model_type"] == "lstm" and meta["model_config"]["cell"] == "lstm"
    assert main(["generate", "--checkpoint", str(out), "--prompt", "the ", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    assert main(["train", "--out", str(out), "--resume", "--max-iters", "4"]) == 0
    assert load_checkpoint(out)[2]["step"] == 4
