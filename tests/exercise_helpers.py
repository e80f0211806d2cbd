"""What each test of a lesson's checks (tests/test_exercises_NN.py) asks of a typical wrong answer: it is rejected
with its slip named (or no slip, when the check knows none) and a hint. That every shipped solution passes is
tested once for all, in tests/test_exercises.py."""

from lessons.exercises import review


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
