"""Checked exercises: a learner's function runs on random inputs against the library, with feedback in words.

A lesson's exercise cell holds a stub, ``raise NotImplementedError("hint: ...")``, then ``check("name", stub)``,
which prints what is right, what is off and by how much, and a hint when the answer matches a common slip
(a wrong sign, a missing factor, alpha_t where alpha_s belongs). An unfilled stub prints "not done yet" and
the notebook runs on. The checks of lesson NN live in lessons.exercises_NN; their wording in exercise_checks.

The switch COURSE_EXERCISES is read here only: 'learner' (the default) checks your answers and never stops the
notebook; 'solutions' (make test) replaces each unfilled stub by the shipped solution, the function of the
exercise's name in solutions/<lesson>.py, and raises AssertionError when a check does not pass.
"""

import importlib.util
import os

import torch

from lessons import (
    exercises_00,
    exercises_01,
    exercises_02,
    exercises_02b,
    exercises_03,
    exercises_04,
    exercises_05,
    exercises_06,
    exercises_07,
    exercises_08,
    exercises_09,
    exercises_10,
)
from lessons.course_files import CHECKOUT_DIR
from lessons.exercise_checks import Feedback, _WrongKind

SWITCH = "COURSE_EXERCISES"
MODES = ("learner", "solutions")
# one file per lesson, one function per exercise; a handout (scripts/make_handout.py) has none
SOLUTIONS_DIR = CHECKOUT_DIR / "solutions"
# a lesson with exercises adds its module here
LESSON_CHECKS = (
    exercises_00,
    exercises_01,
    exercises_02,
    exercises_02b,
    exercises_03,
    exercises_04,
    exercises_05,
    exercises_06,
    exercises_07,
    exercises_08,
    exercises_09,
    exercises_10,
)
# exercise name -> (its lesson, which names its solutions file, and its check)
EXERCISES = {name: (module.LESSON, fn) for module in LESSON_CHECKS for name, fn in module.CHECKS.items()}


def exercise_mode() -> str:
    """'learner' (default: a check never stops the notebook) or 'solutions' (stubs use the shipped solution)."""
    value = os.environ.get(SWITCH, "learner").strip().lower() or "learner"
    if value not in MODES:
        raise ValueError(
            f"unknown {SWITCH} {value!r}; choose 'learner' (the default: your answers are checked) or "
            f"'solutions' (CI: each unfilled exercise is checked with the shipped solution)."
        )
    return value


def _exercise(name):
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"there is no exercise {name!r}; the exercises are: {', '.join(EXERCISES)}.")
    return EXERCISES[name]


def solution(name: str):
    """The shipped solution of an exercise: the function of that name in solutions/<lesson>.py."""
    lesson, _ = _exercise(name)
    path = SOLUTIONS_DIR / f"{lesson}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"the solution of {name} should be in {path}, which this copy of the course does not have (a handout "
            f"has no solutions/ folder); unset {SWITCH} to check your own answers."
        )
    spec = importlib.util.spec_from_file_location(f"solutions_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # an ordinary import of that one file
    if not callable(getattr(module, name, None)):
        raise ValueError(
            f"{path} has no function {name}: each exercise's solution is a function of its name."
        )
    return getattr(module, name)


def review(name: str, answer) -> Feedback:
    """Run the check of exercise ``name`` on the function ``answer``; return what it found, never raise for a wrong answer."""
    _, checker = _exercise(name)
    if isinstance(answer, type) or not callable(answer):
        raise TypeError(
            f"check({name!r}, ...) takes your function itself, e.g. check({name!r}, {name}), "
            f"not {type(answer).__name__} {answer!r:.40}."
        )
    try:
        with torch.random.fork_rng(devices=[]):  # the check's draws leave the notebook's random state alone
            return checker(answer)
    except NotImplementedError as stub:
        return Feedback(
            name,
            "not done yet",
            f"{name}: not done yet ({stub}). Replace the raise line by your code, then run the cell again.",
        )
    except _WrongKind as off:
        return Feedback(name, "not right yet", f"{name}: not right yet. {off}")
    except Exception as error:  # the learner's code failed: say so in words, the notebook runs on
        return Feedback(
            name,
            "not right yet",
            f"{name}: not right yet. It raised {type(error).__name__}: {error} "
            f"(call {name}(...) yourself in a cell to see where).",
        )


def check(name: str, answer) -> None:
    """Print the feedback on a learner's answer; under COURSE_EXERCISES=solutions a stub is replaced by the solution,
    and any check that does not pass raises AssertionError (so CI fails)."""
    mode = exercise_mode()
    feedback = review(name, answer)
    if mode == "solutions" and feedback.status == "not done yet":
        feedback = review(name, solution(name))
        feedback.text = f"[{SWITCH}=solutions: the shipped solution] {feedback.text}"
    print(feedback.text)
    if mode == "solutions" and not feedback.passed:
        raise AssertionError(
            f"exercise {name} does not pass its check under {SWITCH}=solutions: {feedback.text}"
        )
