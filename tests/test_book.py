"""The course book: a small notebook becomes a static page whose figures render offline in Chromium."""

import sys
from pathlib import Path

import nbformat
import pytest
from app_harness import PLOTS, chromium_page

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import build_book  # noqa: E402

pytestmark = pytest.mark.timeout(300)

CELLS = [
    ("markdown", "# 99 A tiny lesson\n\nSome text and $x_t = \\alpha_t x + \\sigma_t \\epsilon$."),
    ("code", "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.title('a line'); plt.show()"),
    (
        "code",
        "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name='plotly line'))",
    ),
    (
        "code",
        "from widgets.schedule_explorer import ScheduleExplorer\nexplorer = ScheduleExplorer(t=0.25)\n"
        "explorer",
    ),
]


def make_notebook(folder: Path, name: str, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in cells
    ]
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_book_pages_open_and_their_figures_render(tmp_path):
    good = make_notebook(tmp_path, "99_tiny.ipynb", CELLS)
    bad = make_notebook(tmp_path, "98_broken.ipynb", [("markdown", "# 98 Broken"), ("code", "1 / 0")])
    out = tmp_path / "book"
    assert (
        build_book.main([str(bad), str(good), "--out", str(out), "--budget", "fast"]) == 1
    )  # one lesson failed
    index = (out / "index.html").read_text()
    assert "99_tiny.html" in index and "98_broken.html" in index and "failed" in index
    page = (out / "99_tiny.html").read_text()
    assert "cdn." not in page.replace("cdn.jsdelivr.net/npm/@jupyter", "")  # nothing from a CDN
    assert "ZeroDivisionError" in (out / "98_broken.html").read_text()
    with chromium_page() as (browser_page, errors, outside):
        browser_page.goto((out / "index.html").as_uri())
        browser_page.click("text=99 A tiny lesson")
        browser_page.wait_for_function(
            f"() => {PLOTS}.length >= 2 && {PLOTS}.every(g => g.querySelector('.main-svg'))", timeout=60_000
        )
        assert browser_page.locator("img").count() >= 1  # the matplotlib figure
        traces = browser_page.evaluate(f"{PLOTS}.map(g => g.data.length)")
        assert traces[0] == 1 and traces[1] == 11  # the plotly figure, then the explorer's 11 traces
        marker_t = browser_page.evaluate(f"{PLOTS}[1].data[5].x[0]")
        assert marker_t == pytest.approx(0.25)  # drawn as last shown
        assert browser_page.locator("text=Interactive in the notebook").count() == 1
        assert errors == [] and outside == []
