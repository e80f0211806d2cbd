"""The course book: three tiny lessons built by scripts/build_book.py (Sphinx, myst-nb, sphinx-book-theme),
then read in Chromium with every request that would leave the machine blocked and recorded."""

import contextlib
import io
import sys
from pathlib import Path

import pytest
from app_harness import PLOTS, chromium_page

pytest.importorskip("sphinx_book_theme", reason="the book needs the dev extras (Python 3.11+)")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_book  # noqa: E402

pytestmark = pytest.mark.timeout(300)

FIRST = """# %% [markdown]
# # 01 A tiny lesson
#
# Inline math $x_t = \\alpha_t\\, x + \\sigma_t\\, \\epsilon$ and a display
#
# $$ \\mathcal{L} = \\mathbb{E}\\,\\| v_\\theta(x_t, t) - (x - \\epsilon) \\|^2 . $$
#
# A word to search for: zebrafinch.

# %%
import matplotlib.pyplot as plt

plt.plot([0, 1], [1, 0])
plt.title("a line")
plt.show()

# %%
import plotly.graph_objects as go

go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="plotly line"))

# %%
from widgets.schedule_explorer import ScheduleExplorer

explorer = ScheduleExplorer(t=0.25)
explorer

# %%
from lessons.progress import Progress

with Progress(40, "training", progress=True) as bar:
    for _ in range(40):
        bar.update()
"""
SECOND = """# %% [markdown]
# # 02 Another lesson
#
# With $\\sigma(t) = 1 - t$ the path is straight.

# %%
print("the second lesson ran")
"""
BROKEN = """# %% [markdown]
# # 02b A broken lesson

# %%
1 / 0
"""
# JavaScript: text nodes of the lesson that still hold a dollar sign (code, scripts and MathJax's own excluded)
RAW_DOLLARS = """() => {
  const walk = document.createTreeWalker(document.querySelector('article'), NodeFilter.SHOW_TEXT);
  const hits = [];
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const skip = n.parentElement.closest('pre, code, script, style, .MathJax, .MathJax_Display, .MJX_Assistive_MathML');
    if (!skip && n.nodeValue.includes('$')) hits.push(n.nodeValue.trim().slice(0, 80));
  }
  return hits;
}"""
MATH_DONE = "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0"
LOCAL = ("file:", "data:", "blob:", "http://127.0.0.1", "http://localhost")


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Build the three lessons once; return (site folder, exit status, the build's stderr)."""
    folder = tmp_path_factory.mktemp("lessons")
    for name, text in (("01_tiny.py", FIRST), ("02_more.py", SECOND), ("02b_broken.py", BROKEN)):
        (folder / name).write_text(text)
    out = folder / "site"
    paths = [str(folder / n) for n in ("02b_broken.py", "02_more.py", "01_tiny.py")]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = build_book.main(
            [*paths, "--out", str(out), "--work", str(folder / "work"), "--budget", "fast"]
        )
    sys.stderr.write(stderr.getvalue())
    return out, status, stderr.getvalue()


@pytest.fixture
def offline_page():
    """A Chromium page that aborts (and records) every request not to this machine, and records failed ones."""
    with chromium_page() as (page, errors, outside):
        failed = []
        page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(LOCAL) else route.abort("blockedbyclient")
            ),
        )
        yield page, errors, outside, failed


def test_a_failing_lesson_fails_the_build_and_is_named(book):
    out, status, stderr = book
    assert status == 1
    assert "02b_broken" in stderr and "ZeroDivisionError" in stderr
    page = (out / "lessons" / "02b_broken.html").read_text()
    assert "failed to run" in page and "ZeroDivisionError" in page  # its page says so, with the error
    assert (out / "lessons" / "01_tiny.html").exists() and (out / "search.html").exists()


def test_lessons_are_found_in_course_order():
    stems = [p.stem for p in build_book.lesson_sources(ROOT / "notebooks")]
    assert stems and "app" not in stems
    assert stems == sorted(stems) and all(s[:2].isdigit() for s in stems)
    if "02b_score_matching" in stems:
        assert stems.index("02_ddim_and_sdes") < stems.index("02b_score_matching") < stems.index("03_cnf")


def test_the_pages_typeset_math_draw_figures_and_load_nothing_from_outside(book, offline_page):
    out, _, _ = book
    page, errors, outside, failed = offline_page
    page.goto((out / "lessons" / "01_tiny.html").as_uri())
    page.wait_for_function(MATH_DONE, timeout=60_000)
    assert page.locator("span.math .MathJax, div.math .MathJax_Display").count() == 2  # typeset
    assert page.evaluate(RAW_DOLLARS) == []  # no raw LaTeX left
    page.wait_for_function(f"() => {PLOTS}.length >= 2 && {PLOTS}.every(g => g.querySelector('.main-svg'))")
    assert page.evaluate(f"{PLOTS}.map(g => g.data.length)") == [1, 11]  # plotly figure, explorer's traces
    assert page.evaluate(f"{PLOTS}[1].data[5].x[0]") == pytest.approx(0.25)  # the widget as last shown
    assert page.locator("article img").count() >= 1  # the matplotlib figure
    bars = page.evaluate(
        "Array.from(document.querySelectorAll('.book-progress progress'), p => [p.value, p.max])"
    )
    assert bars == [[40, 40]]  # the tqdm bar in its final state
    assert "\r" not in page.inner_text("article")
    # the theme's sidebar lists the lessons in course order; previous and next lead to the neighbours
    sidebar = page.locator(".bd-sidebar-primary nav a").all_inner_texts()
    assert [s for s in sidebar if s[:2].isdigit()] == [
        "01 A tiny lesson",
        "02 Another lesson",
        "02b A broken lesson",
    ]
    assert page.locator("a.left-prev").get_attribute("href").endswith("index.html")
    page.click("a.right-next")
    page.wait_for_url("**/02_more.html")
    page.wait_for_function(MATH_DONE, timeout=60_000)
    assert page.evaluate(RAW_DOLLARS) == []
    assert errors == [] and outside == [] and failed == []


def test_search_finds_a_word_of_a_lesson_offline(book, offline_page):
    out, _, _ = book
    page, errors, outside, failed = offline_page
    page.goto((out / "search.html").as_uri() + "?q=zebrafinch")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    assert "01_tiny.html" in results.first.get_attribute("href")
    assert errors == [] and outside == [] and failed == []
