"""Progress bars: none for short loops by default, one at once when asked, one once a loop runs long."""

import pytest

from lessons.progress import Progress


def _run(steps: int, progress) -> Progress:
    with Progress(steps, "a loop", progress) as bar:
        for _ in range(steps):
            bar.update()
    return bar


def test_a_short_loop_stays_quiet_by_default(capsys):
    bar = _run(5, None)
    assert bar.done == 5 and bar.bar is None
    assert capsys.readouterr().err == ""


def test_asking_for_a_bar_shows_one_at_once(capsys):
    bar = _run(5, True)
    assert bar.bar is not None
    assert "a loop" in capsys.readouterr().err


def test_a_loop_that_runs_long_opens_its_bar_where_it_is(monkeypatch, capsys):
    monkeypatch.setattr("lessons.progress.QUIET_SECONDS", 0.0)  # every loop counts as long
    bar = _run(4, None)
    assert bar.bar is not None and bar.bar.n == 4  # opened at the first step and counted on from there
    assert "4/4" in capsys.readouterr().err


def test_progress_false_never_shows_a_bar(monkeypatch, capsys):
    monkeypatch.setattr("lessons.progress.QUIET_SECONDS", 0.0)
    assert _run(4, False).bar is None
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("progress", ["yes", 1, 0.5])
def test_progress_must_be_true_false_or_none(progress):
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        Progress(3, "a loop", progress)


def test_the_postfix_shows_beside_the_bar_and_is_ignored_without_one(capsys):
    with Progress(3, "a loop", True) as bar:
        for _ in range(3):
            bar.update(loss="0.125")
    assert bar.bar.postfix == "loss=0.125"
    with Progress(3, "a quiet loop", False) as quiet:
        quiet.update(loss="0.5")
    assert quiet.bar is None and quiet.done == 1
