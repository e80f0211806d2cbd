"""lessons.lab_contents: the language_info it fills in is what a real kernel reports; it fills it in only for a
kernel that runs this Python; it leaves it out of the files it writes; `make setup` switches it on."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from lessons.lab_contents import LessonContentsManager, kernel_language_info, runs_this_python

ROOT = Path(__file__).resolve().parent.parent


def test_language_info_is_what_a_started_kernel_reports():
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        msg_id = client.kernel_info()
        reply = client.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        reported = reply["content"]["language_info"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert kernel_language_info() == reported
    assert kernel_language_info()["version"] == ".".join(map(str, sys.version_info[:3]))


def test_runs_this_python_resolves_names_as_jupyter_client_does():
    assert runs_this_python(["python", "-m", "ipykernel_launcher"])
    assert runs_this_python([f"python{sys.version_info[0]}"])
    assert runs_this_python([sys.executable, "-m", "ipykernel_launcher"])
    assert not runs_this_python(["/bin/sh", "-c", "true"])  # control: another program
    assert not runs_this_python(["python2.7"])  # control: a name that is not this Python
    assert not runs_this_python([])


def _write(path: Path, kernel_name: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A lesson")])
    notebook.metadata["kernelspec"] = {"display_name": "x", "language": "python", "name": kernel_name}
    nbformat.write(notebook, path)


@pytest.fixture
def contents(tmp_path):
    _write(tmp_path / "lesson.ipynb", "python3")
    _write(tmp_path / "other_kernel.ipynb", "a-kernel-that-is-not-installed")
    return LessonContentsManager(root_dir=str(tmp_path)), tmp_path


def test_reading_fills_in_language_info_only_for_a_kernel_on_this_python(contents):
    manager, _ = contents
    lesson = asyncio.run(manager.get("lesson.ipynb"))
    assert lesson["content"]["metadata"]["language_info"] == kernel_language_info()
    other = asyncio.run(manager.get("other_kernel.ipynb"))  # control: its version is unknown here
    assert "language_info" not in other["content"]["metadata"]
    listing = asyncio.run(manager.get("lesson.ipynb", content=False))
    assert listing["content"] is None


def test_writing_leaves_out_the_language_info_reading_filled_in(contents):
    manager, folder = contents
    model = asyncio.run(manager.get("lesson.ipynb"))
    asyncio.run(manager.save(model, "lesson.ipynb"))
    on_disk = json.loads((folder / "lesson.ipynb").read_text())["metadata"]
    assert "language_info" not in on_disk and on_disk["kernelspec"]["name"] == "python3"
    # control: language_info that is not this kernel's (another Python) is the notebook's own, and is kept
    model = asyncio.run(manager.get("lesson.ipynb"))
    model["content"]["metadata"]["language_info"] = dict(kernel_language_info(), version="2.7.18")
    asyncio.run(manager.save(model, "lesson.ipynb"))
    kept = json.loads((folder / "lesson.ipynb").read_text())["metadata"]["language_info"]
    assert kept["version"] == "2.7.18"


def _lesson_pair(folder: Path, config: str) -> None:
    (folder / "jupytext.toml").write_text(config)
    for suffix in (".py", ".ipynb"):
        (folder / f"00_welcome{suffix}").write_text((ROOT / "notebooks" / f"00_welcome{suffix}").read_text())


def test_a_py_lesson_read_through_jupytext_gets_it_too(tmp_path):
    _lesson_pair(tmp_path, (ROOT / "jupytext.toml").read_text())
    model = asyncio.run(LessonContentsManager(root_dir=str(tmp_path)).get("00_welcome.py"))
    assert model["type"] == "notebook"
    assert model["content"]["metadata"]["language_info"] == kernel_language_info()


def _saved_unchanged_py(folder: Path) -> str:
    manager = LessonContentsManager(root_dir=str(folder))
    asyncio.run(manager.save(asyncio.run(manager.get("00_welcome.py")), "00_welcome.py"))
    return (folder / "00_welcome.py").read_text()


def test_saving_an_unchanged_py_lesson_rewrites_it_byte_for_byte(tmp_path):
    config = (ROOT / "jupytext.toml").read_text()
    _lesson_pair(tmp_path, config)
    assert _saved_unchanged_py(tmp_path) == (ROOT / "notebooks" / "00_welcome.py").read_text()
    # control: without jupytext.toml's exclusions the header gains jupytext's version and the filters
    plain = tmp_path / "plain"
    plain.mkdir()
    _lesson_pair(plain, config.replace(",-jupytext.text_representation", ""))
    assert "jupytext_version" in _saved_unchanged_py(plain)


def test_make_setup_switches_it_on_for_this_environment(tmp_path):
    """The server config `make setup` installs is the one in scripts/, and a Jupyter server started from any
    folder in this environment takes the course's contents manager from it."""
    shipped = json.loads((ROOT / "scripts" / "jupyter_server_config.json").read_text())
    assert shipped["ServerApp"]["contents_manager_class"] == "lessons.lab_contents.LessonContentsManager"
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json"
    assert json.loads(installed.read_text()) == shipped, "run `make setup` to install the server config"
    code = (
        "from jupyter_server.serverapp import ServerApp; a = ServerApp(); a.load_config_file(); "
        "print(a.contents_manager_class.__module__ + '.' + a.contents_manager_class.__name__)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "lessons.lab_contents.LessonContentsManager"
