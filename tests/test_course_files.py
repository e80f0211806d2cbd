"""The course's files outside the checkout: where checkpoints and notebooks are found, the copy command, the wheel."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lessons import course_files
from lessons.checkpoints import REMAKE, checkpoint_path
from lessons.course_files import CHECKPOINTS_DIR, NOTEBOOKS_DIR, copy_notebooks, main, notebook_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from setup_cell import SETUP_CELL  # noqa: E402


def test_in_a_checkout_the_folders_are_the_checkouts_own():
    assert CHECKPOINTS_DIR == ROOT / "checkpoints"
    assert NOTEBOOKS_DIR == ROOT / "notebooks"
    assert course_files.RESULTS_DIR == ROOT / "benchmarks" / "results"


def test_the_recorded_benchmark_results_are_read_and_bad_names_refused(tmp_path, monkeypatch):
    recorded = course_files.benchmark_results("flows_2d")
    assert recorded == json.loads((ROOT / "benchmarks" / "results" / "flows_2d.json").read_text())
    assert {"task", "method"} <= set(recorded["rows"][0])
    with pytest.raises(ValueError, match="ships the results of flows_2d, vs_peers"):
        course_files.benchmark_results("flows_2d.json")
    monkeypatch.setattr(course_files, "RESULTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="python benchmarks/vs_peers.py"):
        course_files.benchmark_results("vs_peers")


def test_the_wheel_ships_the_results_the_lessons_read():
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["lessons.shipped_results"] == "benchmarks/results"
    shipped = setuptools["package-data"]["lessons.shipped_results"]
    assert shipped == [f"{name}.json" for name in course_files.SHIPPED_RESULTS]
    assert all((ROOT / "benchmarks" / "results" / name).is_file() for name in shipped)


def test_outside_a_checkout_the_package_copies_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr(course_files, "CHECKOUT_DIR", tmp_path)  # a site-packages: no pyproject.toml there
    (tmp_path / "checkpoints").mkdir()
    assert course_files._course_folder("checkpoints", "shipped_checkpoints") == (
        course_files.PACKAGE_DIR / "shipped_checkpoints"
    )


def test_every_lesson_is_listed_in_pairs():
    names = [p.name for p in notebook_files()]
    stems = {Path(n).stem for n in names}
    for stem in stems:
        assert f"{stem}.ipynb" in names and f"{stem}.py" in names, stem
    assert "00_welcome.ipynb" in names and "app.ipynb" in names


def test_copy_notebooks_copies_and_refuses_to_overwrite(tmp_path):
    copied = copy_notebooks(tmp_path / "course")
    assert sorted(p.name for p in copied) == [p.name for p in notebook_files()]
    assert (tmp_path / "course" / "00_welcome.ipynb").read_bytes() == (
        NOTEBOOKS_DIR / "00_welcome.ipynb"
    ).read_bytes()
    with pytest.raises(ValueError, match="already exist.*--overwrite"):
        copy_notebooks(tmp_path / "course")
    assert len(copy_notebooks(tmp_path / "course", overwrite=True)) == len(copied)


def test_copy_notebooks_refuses_a_file_and_a_non_path(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        copy_notebooks(tmp_path / "a_file")
    with pytest.raises(TypeError, match="folder path"):
        copy_notebooks(3)


def test_the_command_reports_in_words(tmp_path, capsys):
    assert main([str(tmp_path / "c")]) == 0
    assert "copied" in capsys.readouterr().out
    assert main([str(tmp_path / "c")]) == 1
    assert "--overwrite" in capsys.readouterr().err


def _fresh_venv_with_the_wheel(tmp: Path) -> Path:
    """Build the course's wheel, install it into a new venv whose other packages come from this one; its python."""
    wheels = tmp / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
    ]
    subprocess.run(build, check=True, cwd=tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # torch and the rest from this environment, appended after the venv's own site-packages (a .pth line);
    # this environment's editable install of the course is not seen from there (its .pth is not processed)
    Path(site, "course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the venv's own old setuptools would hide this environment's, which torch's requirements need
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
    # installed by the lessons' own setup cell, which takes the wheel from the folder it runs in (no index: its
    # dependencies are all found in this environment)
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    done = subprocess.run(
        [str(python), "-c", SETUP_CELL], cwd=wheels, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "installing the course from" in done.stdout, done.stdout + done.stderr
    # a kernel of that venv's own, so the lesson cannot run in a kernel of this environment by mistake
    kernel = [str(python), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "course-wheel"]
    subprocess.run(kernel, check=True, capture_output=True)
    return python


@pytest.mark.timeout(900)
def test_the_wheel_works_outside_the_checkout(tmp_path):
    python = _fresh_venv_with_the_wheel(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # a learner outside the checkout: the wheel ships no solutions, so the exercises stay unfilled (not done yet)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "COURSE_LEDGER_DIR", "COURSE_EXERCISES")
    }
    env["COURSE_BUDGET"] = "fast"
    load_all = (
        "import json, lessons, lessons.course_files as f\n"
        "from lessons.checkpoints import load_checkpoint, checkpoint_path\n"
        f"keys = {sorted(REMAKE)!r}\n"
        "sizes = {k: len(load_checkpoint(checkpoint_path(*k.split('/')))[0]) for k in keys}\n"
        "rows = len(f.benchmark_results('flows_2d')['rows'])\n"
        "print(json.dumps({'lessons': lessons.__file__, 'checkpoints': str(f.CHECKPOINTS_DIR), 'sizes': sizes,\n"
        "                  'results': str(f.RESULTS_DIR), 'rows': rows}))\n"
    )
    out = subprocess.run(
        [str(python), "-c", load_all], cwd=outside, env=env, check=True, capture_output=True, text=True
    )
    seen = json.loads(out.stdout)
    assert not Path(seen["lessons"]).is_relative_to(ROOT), seen["lessons"]
    assert seen["checkpoints"].endswith("shipped_checkpoints")
    assert seen["results"].endswith("shipped_results") and seen["rows"] > 0  # the table lesson 05 shows
    assert all(n > 0 for n in seen["sizes"].values()) and len(seen["sizes"]) == len(REMAKE)
    assert checkpoint_path("mnist", "classifier.pt").is_file()  # and the same ones are here in the checkout

    copy = subprocess.run(
        [str(python.parent / "course-notebooks"), "course"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr
    lesson = outside / "course" / "00_welcome.ipynb"
    run = [
        str(python),
        "-m",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--output",
        "ran.ipynb",
    ]
    run += [
        "--ExecutePreprocessor.timeout=600",
        "--ExecutePreprocessor.kernel_name=course-wheel",
        str(lesson),
    ]
    done = subprocess.run(run, cwd=outside, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads((outside / "course" / "ran.ipynb").read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and any(c.get("outputs") for c in cells)
