"""The PyTorch twin of ``tinytransformer train`` (benchmarks/torch_train.py), which the whole-run benchmark
races: the same batches, weights, schedule and evaluations, so the same losses, up to float32 rounding."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tinytransformer.tasks.language_model import LanguageModelConfig, prepare_pretraining

pytest.importorskip("torch")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_train.py"
spec = importlib.util.spec_from_file_location("torch_train", SCRIPT)
torch_train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_train)
TorchRun, main = torch_train.TorchRun, torch_train.main

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=3, eval_iters=2, eval_interval=2,
            warmup_iters=2)


def test_the_twin_trains_as_ours_does(tmp_path):
    config = LanguageModelConfig(**TINY, out=str(tmp_path / "torch"))
    ours = prepare_pretraining(config=config)
    twin = TorchRun(config)
    assert twin.estimate_loss(twin.val_data) == pytest.approx(ours.estimate_loss(ours.val_data), rel=1e-5)
    for _ in range(3):  # the same batches, AdamW and schedule: the losses stay together
        assert twin.train_step() == pytest.approx(ours.train_step(), rel=1e-4)
    assert twin.history["lr"] == pytest.approx(ours.history["lr"], rel=1e-12)


def test_the_command_line_evaluates_and_checkpoints_like_train(tmp_path, capsys):
    out, summary = tmp_path / "run", tmp_path / "summary.json"
    flags = [part for key, value in TINY.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    result = main([*flags, "--out", str(out), "--summary", str(summary)])
    printed = capsys.readouterr().out
    assert [line.split(":")[0] for line in printed.splitlines() if line.startswith("step ")] == ["step 0", "step 2",
                                                                                                 "step 3"]
    assert (out / "checkpoint.pt").is_file() and json.loads(summary.read_text()) == result
    history = json.loads((out / "history.json").read_text())
    assert history["eval_step"] == [0, 2, 3] and len(history["train_loss"]) == 3
    assert np.isfinite(result["val_loss"]) and result["step"] == 3
