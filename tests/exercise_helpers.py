"""What each test of a lesson's checks (tests/test_exercises_NN.py) asks: the solution passes, and a typical
wrong answer is rejected with its slip named (or no slip, when the check knows none) and a hint."""

from lessons.exercises import review, solution


def assert_solution_passes(name):
    assert review(name, solution(name)).passed


def assert_rejected_with_hint(name, answer, slip, hint):
    """`hint` is a phrase the feedback must contain, or a tuple of phrases of which one must appear."""
    feedback = review(name, answer)
    assert feedback.status == "not right yet"
    assert (
        (f"It matches a common slip, {slip}." in feedback.text)
        if slip
        else "common slip" not in feedback.text
    )
    hints = hint if isinstance(hint, tuple) else (hint,)
    assert any(h in feedback.text for h in hints), feedback.text


def wrong_answer_ids(wrong):
    """Test ids for a WRONG table: each wrong answer's function name."""
    return [row[1].__name__ for row in wrong]
