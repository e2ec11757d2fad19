"""``tinytransformer exercises check NN``: the checks of a lesson's graded exercises, run on the learner's file.

    tinytransformer exercises check 05                 exercises/05_attention.py, from the project root
    tinytransformer exercises check 05 --solutions     exercises/solutions/05_attention.py
    tinytransformer exercises check 05 --file my.py    any file with the same functions

One line per exercise (PASS, TODO: not written yet, or FAIL and what is wrong),
then a summary. The exit status is 0 when every exercise of the file passes and
``EXIT_NOT_PASSED`` (3) otherwise; a missing or broken file is a user error
(exit 2), as everywhere in the command line. The checks themselves live in
``tinytransformer.exercises``.
"""

import sys
from dataclasses import dataclass

from ..exercises import LESSONS, check_exercises, exercise_file, lesson_number
from .options import check_options, option

EXIT_NOT_PASSED = 3  # not 1, which the command line keeps for its own bugs


@dataclass
class ExercisesConfig:
    """``tinytransformer exercises check NN``: check the exercises of lesson NN."""

    action: str = option("check", "what to do: check the exercises of a lesson", positional=True, choices=["check"])
    lesson: str = option(None, f"the lesson, one of {', '.join(LESSONS)}", positional=True, metavar="NN")
    solutions: bool = option(False, "check the reference solutions in exercises/solutions/ instead")
    file: str = option(None, "check this file instead of exercises/NN_topic.py", metavar="PATH")

    def __post_init__(self):
        check_options(self)
        if self.lesson is None:
            raise ValueError(f"lesson: give a lesson's number, one of {', '.join(LESSONS)}")
        self.lesson = lesson_number(self.lesson)
        if self.solutions and self.file is not None:
            raise ValueError("give either --solutions or --file, not both")


def checked_file(config: ExercisesConfig):
    """The file the checks read: ``--file``, or the lesson's exercises (or their solutions) under the cwd."""
    return config.file if config.file is not None else exercise_file(config.lesson, solutions=config.solutions)


def run(config: ExercisesConfig) -> list:
    """A ``Result`` per exercise (``tinytransformer.exercises.Result``), for Python callers."""
    path = checked_file(config)
    if config.file is None and not path.is_file():
        raise FileNotFoundError(2, "No such file (run this from the project root, the folder that holds exercises/)",
                                str(path))
    return check_exercises(config.lesson, path)


def print_checked(config: ExercisesConfig):
    """Print a line per exercise and a summary; exit with ``EXIT_NOT_PASSED`` unless every one passes."""
    results = run(config)
    print(f"{checked_file(config)}: lesson {config.lesson}")
    for result in results:
        print(result.line())
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} exercises pass" + ("" if passed == len(results) else
                                                         f" (exit status {EXIT_NOT_PASSED} until all do)"))
    sys.stdout.flush()
    if passed < len(results):
        raise SystemExit(EXIT_NOT_PASSED)
