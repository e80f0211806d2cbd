"""The setup cell every lesson starts with: one source (scripts/setup_cell.py), the same copy in each lesson."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import setup_cell  # noqa: E402


def test_every_lesson_starts_with_the_same_setup_cell():
    stale = [
        p.name
        for p in setup_cell.lesson_files()
        if setup_cell.setup_cell_of(p.read_text()) != setup_cell.SETUP_CELL
    ]
    assert not stale, f"run `python scripts/setup_cell.py` then `make sync`: {stale}"
    assert setup_cell.main(["--check"]) == 0


@pytest.mark.parametrize("lesson", setup_cell.lesson_files(), ids=lambda p: p.stem)
def test_writing_the_cell_changes_nothing_else(lesson):
    text = lesson.read_text()
    written = setup_cell.with_setup_cell(text)
    assert setup_cell.with_setup_cell(written) == written
    without = "\n".join(c for c in setup_cell._cells(written) if not c.startswith(setup_cell.CELL_START))
    assert setup_cell.with_setup_cell(without) == written
    first_code = next(c for c in setup_cell._cells(written)[1:] if not c.startswith("# %% [markdown]"))
    assert first_code.startswith(setup_cell.CELL_START)


def test_where_the_course_is_installed_the_cell_does_nothing():
    done = subprocess.run(
        [sys.executable, "-c", setup_cell.SETUP_CELL], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_where_the_install_fails_the_cell_says_what_to_do(tmp_path):
    env = {**os.environ, "COURSE_INSTALL_SOURCE": str(tmp_path / "no_such_course.whl"), "PIP_NO_INDEX": "1"}
    # -S: no site-packages, so the course's library cannot be imported and the cell tries to install it
    done = subprocess.run(
        [sys.executable, "-S", "-c", setup_cell.SETUP_CELL],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "installing the course from" in done.stdout
    assert "could not install the course" in done.stderr and "COURSE_INSTALL_SOURCE" in done.stderr
