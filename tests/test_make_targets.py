"""Make targets a learner types by hand: `make lesson` names the lessons, and Lab's shipped settings are valid."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*_*.ipynb"))
SCHEMAS = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"  # the JupyterLab this test runs beside


def make(*args):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args", [(), ("N=7",), ("N=02c",), ("N=app",)])
def test_lesson_without_a_lessons_n_lists_every_lesson_and_fails(args):
    done = make("lesson-name", *args)
    assert done.returncode != 0
    listed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("  N=")]
    assert listed == LESSONS and "02b_score_matching" in listed
    assert ("there is no lesson " + args[0]) in done.stdout if args else "there is no" not in done.stdout


@pytest.mark.parametrize("n", ["01", "02b"])
def test_lesson_with_a_lessons_n_runs_that_notebook_only(n):
    assert make("lesson-name", f"N={n}").returncode == 0
    command = make("-n", "lesson", f"N={n}").stdout
    assert f"notebooks/{n}_*.ipynb" in command and "nbconvert" in command


def test_shipped_lab_settings_are_valid_for_the_installed_jupyterlab():
    """Each override names an installed plugin and validates against its schema (a typo would be ignored by Lab)."""
    overrides = json.loads((ROOT / "scripts" / "jupyterlab_overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"  # no news pop-up
    for plugin, settings in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((SCHEMAS / package / f"{name}.json").read_text())
        jsonschema.validate(settings, schema)
        assert set(settings) <= set(schema["properties"]), f"{plugin}: unknown settings"
    with pytest.raises(jsonschema.ValidationError):  # control: Lab's schema refuses a boolean for fetchNews
        notification = json.loads(
            (SCHEMAS / "@jupyterlab/apputils-extension" / "notification.json").read_text()
        )
        jsonschema.validate({"fetchNews": False}, notification)
    assert "scripts/jupyterlab_overrides.json" in (ROOT / "Makefile").read_text()
