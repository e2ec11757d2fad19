"""The checks of the course's graded exercises (``exercises/NN_topic.py``, solutions in ``exercises/solutions/``).

    results = check_exercises("05", "exercises/05_attention.py")    a Result per exercise, in the file's order
    for r in results: print(r.line())                                 "  PASS  causal_mask", "  FAIL  ...: why"

``tinytransformer exercises check 05`` does the same from the project root.
One file of checks per lesson beside this one (``lesson05_attention.py``);
``checking.py`` loads the learner's file and words every failure.
"""

from pathlib import Path

from . import (
    lesson01_autograd, lesson02_gradcheck, lesson03_layers_and_adam, lesson04_positions, lesson05_attention,
    lesson06_block, lesson07_bpe, lesson09_sampling,
)
from .checking import Check, ExerciseFailure, Result, load_exercises, run_checks

# lesson -> (the file's topic, as in exercises/NN_topic.py; its checks)
LESSONS = {
    "01": ("autograd", lesson01_autograd.CHECKS),
    "02": ("gradcheck", lesson02_gradcheck.CHECKS),
    "03": ("layers_and_adam", lesson03_layers_and_adam.CHECKS),
    "04": ("positions", lesson04_positions.CHECKS),
    "05": ("attention", lesson05_attention.CHECKS),
    "06": ("block", lesson06_block.CHECKS),
    "07": ("bpe", lesson07_bpe.CHECKS),
    "09": ("sampling", lesson09_sampling.CHECKS),
}


def lesson_number(lesson) -> str:
    """ "5", "05" or 5 -> "05"; a ValueError naming the lessons that have exercises otherwise."""
    text = str(lesson).strip()
    number = text.zfill(2) if text.isdigit() else text
    if number not in LESSONS:
        raise ValueError(f"lesson {lesson!r} has no exercises; the lessons with exercises are {', '.join(LESSONS)}")
    return number


def exercise_file(lesson, root=".", solutions=False) -> Path:
    """``exercises/NN_topic.py`` (or ``exercises/solutions/NN_topic.py``) under ``root``, the project root."""
    number = lesson_number(lesson)
    folder = Path(root) / "exercises" / ("solutions" if solutions else "")
    return folder / f"{number}_{LESSONS[number][0]}.py"


def check_exercises(lesson, path) -> list:
    """A ``Result`` per exercise of ``lesson``, for the functions in the file at ``path``."""
    number = lesson_number(lesson)
    return run_checks(load_exercises(path), LESSONS[number][1], path)


__all__ = ["LESSONS", "Check", "ExerciseFailure", "Result", "check_exercises", "exercise_file", "lesson_number",
           "load_exercises", "run_checks"]
