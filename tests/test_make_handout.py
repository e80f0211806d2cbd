"""scripts/make_handout.py: the course without its solutions, still able to run its lessons' checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_handout import main, make_handout  # noqa: E402


def test_the_handout_is_the_course_without_solutions(tmp_path):
    dest = tmp_path / "handout"
    count = make_handout(dest)
    assert (ROOT / "solutions" / "02_ddim_and_sdes.py").is_file()  # control: the checkout has them
    assert not (dest / "solutions").exists() and not list(dest.rglob("solutions"))
    for kept in ("lessons/exercises.py", "notebooks/02_ddim_and_sdes.py", "Makefile", "checkpoints"):
        assert (dest / kept).exists(), kept
    assert not (dest / ".git").exists() and not (dest / ".venv").exists() and count > 50
    shipped = (ROOT / "solutions" / "03_cnf.py").read_text()
    body = shipped.split("def rademacher_variance")[1].split("\n\n\n")[0]  # one solution's code
    assert not any(body in p.read_text(errors="ignore") for p in dest.rglob("*.py"))
    # the copy's own library: a stub gets "not done yet"; asking for solutions says in words there are none
    code = (
        "from lessons.exercises import check\n"
        "def ddim_step(*args):\n    raise NotImplementedError('hint: mine')\n"
        "check('ddim_step', ddim_step)\n"
        "import lessons.exercises; print(lessons.exercises.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(dest)}
    learner = run_python(code, dest, {**env, "COURSE_EXERCISES": "learner"})
    assert learner.returncode == 0 and "ddim_step: not done yet (hint: mine)" in learner.stdout
    assert f"{dest}/lessons/exercises.py" in learner.stdout  # the copy's library ran, not the checkout's
    ci = run_python(code, dest, {**env, "COURSE_EXERCISES": "solutions"})
    assert ci.returncode == 1 and "a handout has no solutions/ folder" in ci.stderr


def run_python(code, cwd, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_handout_refuses_a_folder_in_use_or_inside_the_course(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        make_handout(tmp_path / "full")
    with pytest.raises(ValueError, match="inside the course"):
        make_handout(ROOT / "handout")
    with pytest.raises(ValueError, match="has no lessons/ folder"):
        make_handout(tmp_path / "new", source=tmp_path)
    assert main([str(tmp_path / "full")]) == 1 and "not an empty folder" in capsys.readouterr().err
