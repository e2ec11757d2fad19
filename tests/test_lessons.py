"""Every lesson runs in its short mode and asserts its own claims, so a lesson that rots fails CI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parent.parent / "lessons").glob("[0-9][0-9]*_*.py"))  # 10a_ too


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_short_mode(lesson, tmp_path):
    # One BLAS thread: lessons multiply small matrices, where a second thread only adds hand-off costs.
    env = dict(
        os.environ, TINYTRANSFORMER_SHORT="1", TINYTRANSFORMER_FIGURES=str(tmp_path), MPLBACKEND="Agg",
        OPENBLAS_NUM_THREADS="1",
    )
    result = subprocess.run(
        [sys.executable, str(lesson)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{lesson.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert any(tmp_path.glob("*.png")), f"{lesson.name} saved no figure"
