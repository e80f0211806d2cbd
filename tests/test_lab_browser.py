"""The lessons in JupyterLab, in headless Chromium, as `make lab` serves them: a .py lesson and an .ipynb lesson
open with their kernel started and are not marked as changed; no page error; no request leaves the machine."""

import shutil
import time
from types import SimpleNamespace

import pytest
from app_harness import ROOT, chromium_page, jupyter_lab

pytestmark = pytest.mark.timeout(300)
LESSON = "00_welcome"
KERNEL_IDLE = """() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return s !== null && s.getAttribute('data-status') === 'idle'; }"""
# the "unsaved changes" dot of the open document's tab
DIRTY = "() => document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current').classList.contains('jp-mod-dirty')"
SETTLE_S = 5.0  # Lab writes the kernel's metadata about a second after the kernel starts


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Lab on a folder holding copies of a lesson pair (Lab may autosave; the checkout stays untouched) and a
    control: the lesson's .ipynb with the kernel name the course's files carried before, "Python 3"."""
    root = tmp_path_factory.mktemp("lab") / "course"
    root.mkdir()
    shutil.copy(ROOT / "jupytext.toml", root)
    for suffix in (".py", ".ipynb"):
        shutil.copy(ROOT / "notebooks" / f"{LESSON}{suffix}", root)
    source = (root / f"{LESSON}.ipynb").read_text()
    assert '"display_name": "Python 3 (ipykernel)"' in source
    (root / "stale_metadata.ipynb").write_text(source.replace("Python 3 (ipykernel)", "Python 3"))
    with jupyter_lab(root) as url, chromium_page(1600, 1000) as (page, errors, outside):
        yield SimpleNamespace(url=url, page=page, errors=errors, outside=outside, root=root)


def open_with_kernel(lab, name: str):
    lab.page.goto(lab.url(name), timeout=120_000)
    lab.page.wait_for_function(KERNEL_IDLE, timeout=120_000, polling=200)
    return lab.page


def stays_clean(page, seconds: float) -> bool:
    """Whether the open document shows no unsaved change for `seconds` after its kernel is idle."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.evaluate(DIRTY):
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("name", [f"{LESSON}.py", f"{LESSON}.ipynb"])
def test_a_lesson_opens_in_lab_unmodified(lab, name):
    page = open_with_kernel(lab, name)
    # opened as a notebook (a text editor would show the markdown's source, not its heading)
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownOutput h1", timeout=30_000)
    assert stays_clean(page, SETTLE_S), f"{name} is marked as changed just by opening it"
    assert lab.errors == [], lab.errors
    assert lab.outside == [], f"requests that left the machine: {lab.outside}"


def test_control_a_notebook_whose_metadata_lab_rewrites_is_marked_changed(lab):
    page = open_with_kernel(lab, "stale_metadata.ipynb")
    page.wait_for_function(DIRTY, timeout=20_000, polling=200)  # the check above would see this


def test_saving_an_unchanged_lesson_leaves_its_files_as_they_were(lab):
    """Saving writes the pair (jupytext) without this machine's Python version: git sees no change."""
    page = open_with_kernel(lab, f"{LESSON}.py")
    root = lab.root
    before = {p.name: p.stat().st_mtime_ns for p in root.glob(f"{LESSON}.*")}
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while any(p.stat().st_mtime_ns == before[p.name] for p in root.glob(f"{LESSON}.*")):
        assert time.monotonic() < deadline, "Lab did not save the lesson"
        time.sleep(0.2)
    for suffix in (".py", ".ipynb"):
        saved = (root / f"{LESSON}{suffix}").read_text()
        shipped = (ROOT / "notebooks" / f"{LESSON}{suffix}").read_text()
        assert saved == shipped, f"saving the unchanged {LESSON}{suffix} changed it"
