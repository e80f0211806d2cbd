"""lessons.exercise_checks: the wording of a verdict, the tolerance rules and the naming of slips."""

import math

import pytest
import torch

from lessons.exercise_checks import STATUSES, Feedback, _gap, _judge, _tensor, _WrongKind, _z_judge


def test_feedback_knows_its_statuses_and_prints_its_text():
    feedback = Feedback("x", "passed", "x: right.")
    assert feedback.passed and str(feedback) == "x: right."
    assert not Feedback("x", "not done yet", "...").passed
    with pytest.raises(ValueError, match="status is one of 'passed', 'not done yet', 'not right yet'"):
        Feedback("x", "done", "...")
    assert len(STATUSES) == 3


def test_an_answer_of_the_wrong_kind_is_named_in_words():
    assert _tensor(2, (), "y").dtype == torch.float64  # a plain number is a 0-dim tensor
    with pytest.raises(_WrongKind, match="y has shape \\(3,\\); it should have shape \\(3, 1\\)"):
        _tensor(torch.zeros(3), (3, 1), "y")
    with pytest.raises(_WrongKind, match="y should be a torch tensor of shape \\(3,\\), got list"):
        _tensor([1, 2, 3], (3,), "y")
    with pytest.raises(_WrongKind, match="got bool"):
        _tensor(True, (), "y")


def test_the_gap_is_relative_and_nan_is_infinitely_off():
    want = torch.tensor([2.0, -4.0])
    assert _gap(want + torch.tensor([0.0, 0.4]), want) == pytest.approx(0.1)
    assert _gap(torch.tensor([math.nan, -4.0]), want) == math.inf


def test_judge_passes_within_the_tolerance_and_names_the_slip_an_answer_matches():
    want = torch.ones(3)
    hints = {"twice the answer": "halve it."}
    wrong = {case: {"twice the answer": 2 * want} for case in "ab"}
    right = _judge("f", "On 2 cases", {"a": (want, want), "b": (want, want)}, 1e-6, hints, wrong, "general")
    assert right.passed and "largest relative error 0.0e+00 (allowed 1e-06)" in right.text
    doubled = _judge(
        "f", "On 2 cases", {"a": (2 * want, want), "b": (2 * want, want)}, 1e-6, hints, wrong, "general"
    )
    assert not doubled.passed and "off on every case, by up to 1 (relative error)" in doubled.text
    assert doubled.text.endswith("It matches a common slip, twice the answer. Hint: halve it.")
    half = _judge(
        "f", "On 2 cases", {"a": (want, want), "b": (3 * want, want)}, 1e-6, hints, wrong, "general"
    )
    assert "right on a; off on b: relative error 2." in half.text and half.text.endswith("Hint: general")


def test_z_judge_uses_the_limit_in_standard_errors():
    hints = {"a slip": "fix it."}
    assert _z_judge("f", "Against x", 1.0, 4.5, hints, {"a slip": 0.5}, "general").passed
    off = _z_judge("f", "Against x", 9.0, 4.5, hints, {"a slip": 0.5}, "general")
    assert "9.0 standard errors away (allowed 4.5)" in off.text and off.text.endswith("Hint: fix it.")
    assert _z_judge("f", "Against x", 9.0, 4.5, hints, {"a slip": 6.0}, "general").text.endswith("general")
