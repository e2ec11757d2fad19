"""A catalogue of bad hyper-parameters given through the Python API: each one fails where it is given, with a
ValueError that names the argument and the value (``tinytransformer.validation`` is the one layer behind them)."""

import math
import re

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer import nn, optim
from tinytransformer.data import BPETokenizer, random_windows
from tinytransformer.generation import beam_search, generate, greedy_decode, sample_next_token
from tinytransformer.models import GPT, GPTConfig, RNNLMConfig, Seq2SeqConfig
from tinytransformer.optim.lr_scheduler import LambdaLR, WarmupCosineLR
from tinytransformer.training import TrainConfig
from tinytransformer.validation import check_value

NAN, INF = math.nan, math.inf


def _params():
    return [nn.Parameter(np.ones(2, dtype=np.float32))]


def _adam_state(**group):
    """A saved Adam state (one parameter, stepped once) with some of its group's values replaced."""
    opt = optim.Adam(_params())
    opt.param_groups[0]["params"][0].grad = np.ones(2, dtype=np.float32)
    opt.step()
    state = opt.state_dict()
    state["param_groups"][0].update(group)
    return state


def _load_adam(state):
    optim.Adam(_params()).load_state_dict(state)


def _with_state(key, value):
    state = _adam_state()
    state["state"][0][key] = value
    return state


def _load_schedule(**saved):
    scheduler = WarmupCosineLR(optim.SGD(_params(), lr=0.1), warmup_steps=2, total_steps=10)
    scheduler.load_state_dict({**scheduler.state_dict(), **saved})


def _uniform_step(vocab):
    return lambda prefixes, rows: np.full((len(prefixes), vocab), -math.log(vocab))


TINY = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
LOGITS = np.zeros((2, 5))

# (id, call, message): every message names the argument and the bad value.
CASES = [
    # optimizers
    ("adam-lr-inf", lambda: optim.Adam(_params(), lr=INF), "Adam: lr must be finite, got inf"),
    ("adam-lr-nan", lambda: optim.Adam(_params(), lr=NAN), "Adam: lr must be finite, got nan"),
    ("sgd-lr-negative", lambda: optim.SGD(_params(), lr=-0.1), "SGD: lr must be in [0, inf), got -0.1"),
    ("sgd-lr-text", lambda: optim.SGD(_params(), lr="0.1"), "SGD: lr must be a number, got '0.1'"),
    ("adamw-beta2-one", lambda: optim.AdamW(_params(), betas=(0.9, 1.0)), "AdamW: betas[1] must be in [0, 1), got 1.0"),
    ("adam-beta1-nan", lambda: optim.Adam(_params(), betas=(NAN, 0.9)), "Adam: betas[0] must be finite, got nan"),
    ("adam-betas-three", lambda: optim.Adam(_params(), betas=(0.9, 0.9, 0.9)), "Adam: betas must be a pair"),
    ("adam-eps-zero", lambda: optim.Adam(_params(), eps=0), "Adam: eps must be in (0, inf), got 0.0"),
    ("adamw-decay-inf", lambda: optim.AdamW(_params(), weight_decay=INF),
     "AdamW: weight_decay must be finite, got inf"),
    ("sgd-momentum-nan", lambda: optim.SGD(_params(), momentum=NAN), "SGD: momentum must be finite, got nan"),
    ("sgd-dampening-2", lambda: optim.SGD(_params(), dampening=2), "SGD: dampening must be in [0, 1], got 2.0"),
    ("adam-group-lr", lambda: optim.Adam([{"params": _params(),
     "lr": -2.0}]), "Adam: lr must be in [0, inf), got -2.0"),
    # an optimizer's state: load_state_dict makes the constructor's checks
    ("load-lr-nan", lambda: _load_adam(_adam_state(lr=NAN)),
     "Adam.load_state_dict: group 0: lr must be finite, got nan"),
    ("load-lr-negative", lambda: _load_adam(_adam_state(lr=-1.0)),
     "Adam.load_state_dict: group 0: lr must be in [0, inf), got -1.0"),
    ("load-beta-one", lambda: _load_adam(_adam_state(betas=[0.9, 1.0])),
     "Adam.load_state_dict: group 0: betas[1] must be in [0, 1), got 1.0"),
    ("load-eps-inf", lambda: _load_adam(_adam_state(eps=INF)),
     "Adam.load_state_dict: group 0: eps must be finite, got inf"),
    ("load-unknown-key", lambda: _load_adam(_adam_state(momentum=0.9)),
     "Adam.load_state_dict: group 0 has unknown hyperparameters ['momentum']"),
    ("load-step-negative", lambda: _load_adam(_with_state("step", -1)),
     "Adam.load_state_dict: state of parameter 0: step must be in [1, inf), got -1"),
    ("load-moment-nan", lambda: _load_adam(_with_state("exp_avg", np.array([NAN, 0.0]))),
     "Adam.load_state_dict: state of parameter 0: 'exp_avg' holds non-finite values"),
    # learning-rate schedules, built and restored
    ("warmup-negative", lambda: WarmupCosineLR(optim.SGD(_params()), warmup_steps=-1, total_steps=10),
     "WarmupCosineLR: warmup_steps must be in [0, inf), got -1"),
    ("warmup-fraction", lambda: WarmupCosineLR(optim.SGD(_params()), warmup_steps=2.5, total_steps=10),
     "WarmupCosineLR: warmup_steps must be an integer, got 2.5"),
    ("total-steps-nan", lambda: WarmupCosineLR(optim.SGD(_params()), warmup_steps=1, total_steps=NAN),
     "WarmupCosineLR: total_steps must be finite, got nan"),
    ("min-lr-ratio", lambda: WarmupCosineLR(optim.SGD(_params()), 1, 10, min_lr_ratio=1.5),
     "WarmupCosineLR: min_lr_ratio must be in [0, 1], got 1.5"),
    ("lambda-gives-nan", lambda: LambdaLR(optim.SGD(_params()), lambda step: NAN),
     "LambdaLR: the lr of group 0 at step 0 must be finite, got nan"),
    ("lambda-not-callable", lambda: LambdaLR(optim.SGD(_params()), 0.5), "LambdaLR: lr_lambda must be a function"),
    ("schedule-last-epoch", lambda: _load_schedule(last_epoch=-3),
     "WarmupCosineLR.load_state_dict: last_epoch must be in [0, inf), got -3"),
    ("schedule-base-lr-nan", lambda: _load_schedule(base_lrs=[NAN]),
     "WarmupCosineLR.load_state_dict: base_lrs[0] must be finite, got nan"),
    ("schedule-last-lr-inf", lambda: _load_schedule(_last_lr=[INF]),
     "WarmupCosineLR.load_state_dict: _last_lr[0] must be finite, got inf"),
    # model and training configs
    ("gpt-layers-zero", lambda: GPTConfig(n_layer=0), "GPTConfig: n_layer must be in [1, inf), got 0"),
    ("gpt-block-fraction", lambda: GPTConfig(block_size=8.5), "GPTConfig: block_size must be an integer, got 8.5"),
    ("gpt-dropout-one", lambda: GPTConfig(dropout=1.0), "GPTConfig: dropout must be in [0, 1), got 1.0"),
    ("gpt-dropout-nan", lambda: GPTConfig(dropout=NAN), "GPTConfig: dropout must be finite, got nan"),
    ("gpt-heads-divide", lambda: GPTConfig(n_embd=30, n_head=4), "GPTConfig: n_embd=30 is not divisible by n_head=4"),
    ("gpt-vocab-bool", lambda: GPTConfig(vocab_size=True), "GPTConfig: vocab_size must be an integer, got True"),
    ("rnn-hidden-negative", lambda: RNNLMConfig(n_hidden=-1), "RNNLMConfig: n_hidden must be in [1, inf), got -1"),
    ("rnn-bptt-zero", lambda: RNNLMConfig(bptt_steps=0), "RNNLMConfig: bptt_steps must be in [1, inf), got 0"),
    ("seq2seq-width-inf", lambda: Seq2SeqConfig(10, 10, d_model=INF), "Seq2SeqConfig: d_model must be finite, got inf"),
    ("seq2seq-pad-id", lambda: Seq2SeqConfig(10, 12, pad_id=10), "Seq2SeqConfig: pad_id must be in [0, 10), got 10"),
    ("train-lr-inf", lambda: TrainConfig(lr=INF), "TrainConfig: lr must be finite, got inf"),
    ("train-batch-fraction", lambda: TrainConfig(batch_size=2.5),
     "TrainConfig: batch_size must be an integer, got 2.5"),
    ("train-beta", lambda: TrainConfig(betas=(0.9, 1.5)), "TrainConfig: betas[1] must be in [0, 1), got 1.5"),
    ("train-iters-zero", lambda: TrainConfig(max_iters=0), "TrainConfig: max_iters must be in [1, inf), got 0"),
    ("train-clip-nan", lambda: TrainConfig(grad_clip=NAN), "TrainConfig: grad_clip must be finite, got nan"),
    # layers
    ("embedding-padding-fraction", lambda: nn.Embedding(10, 4, padding_idx=1.5),
     "Embedding: padding_idx must be an integer, got 1.5"),
    ("embedding-padding-range", lambda: nn.Embedding(10, 4, padding_idx=10),
     "Embedding: padding_idx must be in [-10, 10), got 10"),
    ("embedding-rows-zero", lambda: nn.Embedding(0, 4), "Embedding: num_embeddings must be in [1, inf), got 0"),
    ("linear-out-zero", lambda: nn.Linear(4, 0), "Linear: out_features must be in [1, inf), got 0"),
    ("linear-in-fraction", lambda: nn.Linear(4.5, 2), "Linear: in_features must be an integer, got 4.5"),
    ("layernorm-eps-zero", lambda: nn.LayerNorm(8, eps=0), "LayerNorm: eps must be in (0, inf), got 0.0"),
    ("layernorm-shape", lambda: nn.LayerNorm((8, -1)), "LayerNorm: normalized_shape must be in [1, inf), got -1"),
    ("dropout-nan", lambda: nn.Dropout(NAN), "Dropout: dropout probability p must be finite, got nan"),
    ("dropout-functional", lambda: nn.functional.dropout(tt.ones(3), -0.5),
     "dropout: dropout probability p must be in [0, 1], got -0.5"),
    ("mha-heads-zero", lambda: nn.MultiheadAttention(8, 0), "MultiheadAttention: num_heads must be in [1, inf), got 0"),
    ("mha-dropout-inf", lambda: nn.MultiheadAttention(8, 2, dropout=INF),
     "MultiheadAttention: dropout must be finite, got inf"),
    ("lstm-layers-fraction", lambda: nn.LSTM(3, 4, num_layers=1.5), "LSTM: num_layers must be an integer, got 1.5"),
    ("attention-heads-zero", lambda: nn.CausalSelfAttention(8, 0),
     "CausalSelfAttention: n_head must be in [1, inf), got 0"),
    ("sinusoidal-dim-zero", lambda: nn.SinusoidalPositionalEncoding(0),
     "SinusoidalPositionalEncoding: dim must be in [1, inf), got 0"),
    ("rotary-base-nan", lambda: nn.RotaryEmbedding(8, base=NAN), "RotaryEmbedding: base must be finite, got nan"),
    # generation
    ("temperature-nan", lambda: sample_next_token(LOGITS, temperature=NAN),
     "sample_next_token: temperature must be finite, got nan"),
    ("temperature-negative", lambda: sample_next_token(LOGITS, temperature=-1),
     "sample_next_token: temperature must be in [0, inf), got -1.0"),
    ("top-k-fraction", lambda: sample_next_token(LOGITS, top_k=2.5),
     "sample_next_token: top_k must be an integer, got 2.5"),
    ("top-p-zero", lambda: sample_next_token(LOGITS, top_p=0), "sample_next_token: top_p must be in (0, 1], got 0.0"),
    ("top-p-nan", lambda: sample_next_token(LOGITS, top_p=NAN), "sample_next_token: top_p must be finite, got nan"),
    ("generate-negative", lambda: generate(GPT(GPTConfig(**TINY)), [[1, 2]], max_new_tokens=-3),
     "generate: max_new_tokens must be in [0, inf), got -3"),
    ("generate-temperature-inf", lambda: generate(GPT(GPTConfig(**TINY)), [[1, 2]], 2, temperature=INF),
     "generate: temperature must be finite, got inf"),
    # decoding
    ("beam-zero", lambda: beam_search(_uniform_step(5), 1, 0, 1, max_len=3, beam_size=0),
     "beam_search: beam_size must be in [1, inf), got 0"),
    ("beam-wider-than-vocab", lambda: beam_search(_uniform_step(5), 1, 0, 1, max_len=3, beam_size=100_000),
     "beam_search: beam_size must be at most the vocabulary's size 5, got 100000"),
    ("beam-max-len-fraction", lambda: beam_search(_uniform_step(5), 1, 0, 1, max_len=2.5),
     "beam_search: max_len must be an integer, got 2.5"),
    ("greedy-max-len-zero", lambda: greedy_decode(_uniform_step(5), 1, 0, 1, max_len=0),
     "greedy_decode: max_len must be in [1, inf), got 0"),
    # data
    ("windows-block-zero", lambda: random_windows(np.arange(50), block_size=0, batch_size=2),
     "random_windows: block_size must be in [1, inf), got 0"),
    ("windows-batch-fraction", lambda: random_windows(np.arange(50), block_size=4, batch_size=1.5),
     "random_windows: batch_size must be an integer, got 1.5"),
    ("bpe-vocab-small", lambda: BPETokenizer.train("abc", 100),
     "BPETokenizer.train: vocab_size must be in [256, inf), got 100"),
    ("bpe-vocab-fraction", lambda: BPETokenizer.train("abc", 300.5),
     "BPETokenizer.train: vocab_size must be an integer, got 300.5"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_hyperparameter_fails_where_it_is_given_and_is_named(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_integral_floats_are_accepted_as_ints():
    config = GPTConfig(block_size=8.0, n_layer=1.0, n_head=2, n_embd=8, vocab_size=11)
    assert config.block_size == 8 and type(config.block_size) is int and type(config.n_layer) is int
    assert nn.Embedding(10, 4, padding_idx=1.0).padding_idx == 1
    assert nn.Embedding(10, 4, padding_idx=-1).padding_idx == 9  # negative counts from the end, as in PyTorch
    assert sample_next_token(np.array([[0.0, 5.0, 1.0]]), top_k=2.0, rng=np.random.default_rng(0)).shape == (1,)
    assert TrainConfig(batch_size=4.0, lr=1).batch_size == 4 and TrainConfig(lr=1).lr == 1.0
    assert generate(GPT(GPTConfig(**TINY)), [[1, 2]], max_new_tokens=3.0, seed=0).shape == (1, 5)


def test_a_load_that_fails_leaves_the_optimizer_as_it_was():
    opt = optim.Adam(_params(), lr=0.01)
    with pytest.raises(ValueError, match="betas"):
        opt.load_state_dict(_adam_state(lr=0.5, betas=[0.9, 2.0]))
    assert opt.param_groups[0]["lr"] == 0.01 and opt.state == {}
    opt.load_state_dict(_adam_state(lr=0.5, betas=[0.8, 0.9]))  # a list from JSON: back to a tuple
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["betas"] == (0.8, 0.9)


def test_check_value_rules():
    assert check_value("n", 8.0, int, "[1, inf)") == 8
    assert check_value("p", 1, float, "[0, 1]") == 1.0 and check_value("p", np.float32(0.5), float) == 0.5
    assert check_value("k", None, int, optional=True) is None
    assert check_value("sizes", [1, 2.0], int, "[1, inf)") == [1, 2]
    assert check_value("kind", "a", None, choices=("a", "b")) == "a"
    for value, kind, within, message in [
        (None, int, None, "k must be given, got None"),
        (0, int, "(0, 1]", "k must be in (0, 1], got 0"),
        (1, float, "[0, 1)", "k must be in [0, 1), got 1.0"),
        (-INF, float, None, "k must be finite, got -inf"),
        ("c", None, None, "k must be one of a, b; got 'c'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_value("k", value, kind, within, choices=("a", "b") if kind is None else None)
