"""Build the course book: run every lesson, then let Sphinx (myst-nb, sphinx-book-theme) write the site.

    python scripts/build_book.py [--budget fast|full] [--out _book] [--reuse] [notebooks ...]

Every lesson (notebooks/NN_*.py, the reviewed jupytext sources, in course order; or the notebooks
given, .py or .ipynb) runs in a fresh kernel under COURSE_BUDGET, from its own folder. Its widget,
plotly and progress outputs are made static (book/static_outputs.py), and the executed notebooks are
written to <work>/src/lessons/, where Sphinx renders them with book/conf.py into --out. The site loads
nothing from the network: MathJax, plotly.js, search and the theme all ship inside it. A lesson that
fails still gets its page, with the error; the command then names it and exits with status 1.
"""

import argparse
import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK))
sys.path.insert(0, str(ROOT))
from static_outputs import make_static  # noqa: E402

from lessons.budget import BUDGETS, budget  # noqa: E402

LESSON = re.compile(r"^\d\d[a-z]?_\w+$")  # 00_welcome, 02b_score_matching; not app


def lesson_sources(folder: Path) -> list[Path]:
    """The lessons' reviewed sources in course order (02 before 02b before 03)."""
    return sorted(p for p in folder.glob("*.py") if LESSON.match(p.stem))


def read_notebook(path: Path):
    """A notebook from its jupytext .py source or an .ipynb file."""
    if path.suffix == ".py":
        return jupytext.read(path)
    return nbformat.read(path, as_version=4)


def fingerprint(path: Path, chosen: str) -> str:
    """What an executed copy was made from: the source's bytes and the budget."""
    return hashlib.sha256(path.read_bytes() + chosen.encode()).hexdigest()[:16]


def _raised(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def execute(nb, folder: Path, timeout: int) -> tuple[str | None, float]:
    """Run a notebook in place in a fresh kernel started in folder; return (error or None, seconds)."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(folder)}},
    )
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        cell = next((i for i, c in enumerate(nb.cells) if _raised(c)), None)
        error = f"{'a cell' if cell is None else f'cell {cell + 1}'} raised {err.ename}: {err.evalue}".strip()
    except Exception as err:  # a dead kernel or a timeout: the page still gets written
        error = f"{type(err).__name__}: {err}"
    return error, time.perf_counter() - start


def mark_failed(nb, error: str) -> None:
    """Put a warning at the top of a failed lesson's page (the traceback stays in its cell)."""
    text = f":::{{error}}\nThis lesson failed to run when the book was built: `{error.strip('`')}`\n:::"
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))


def run_lesson(path: Path, target: Path, chosen: str, timeout: int, reuse: bool) -> tuple[str | None, str]:
    """Execute one lesson into target (or keep an earlier copy when reuse allows); return (error, how long)."""
    stamp = fingerprint(path, chosen)
    if reuse and target.exists():
        old = nbformat.read(target, as_version=4).metadata.get("course_book", {})
        if old.get("fingerprint") == stamp and old.get("error") is None:
            return None, "reused"
    nb = read_notebook(path)
    error, seconds = execute(nb, path.parent, timeout)
    make_static(nb)
    if error:
        mark_failed(nb, error)
    nb.metadata["course_book"] = {"fingerprint": stamp, "budget": chosen, "seconds": round(seconds, 1)}
    nb.metadata["course_book"]["error"] = error
    nbformat.write(nb, target)
    return error, f"{seconds:.0f} s"


def sphinx(src: Path, out: Path, doctrees: Path) -> int:
    """Render src with book/conf.py into out; Sphinx's exit status."""
    from sphinx.cmd.build import build_main

    return build_main(["-b", "html", "-q", "-E", "-c", str(BOOK), "-d", str(doctrees), str(src), str(out)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every lesson in notebooks/")
    parser.add_argument("--budget", choices=BUDGETS, default=None, help="default: COURSE_BUDGET, else full")
    parser.add_argument("--out", type=Path, default=ROOT / "_book", help="the site (default _book/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "book", help="executed notebooks")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep executed lessons whose source and budget did not change (changes in lessons/ are not seen)",
    )
    args = parser.parse_args(argv)
    chosen = args.budget or budget()
    paths = [p.resolve() for p in args.notebooks] or lesson_sources(ROOT / "notebooks")
    if not paths:
        parser.error("no lessons found (notebooks/NN_*.py)")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    os.environ["COURSE_BUDGET"] = chosen  # the kernels inherit it
    src = args.work / "src"
    lessons = src / "lessons"
    lessons.mkdir(parents=True, exist_ok=True)
    wanted = {f"{p.stem}.ipynb" for p in paths}
    for old in lessons.glob("*.ipynb"):
        if old.name not in wanted or not args.reuse:
            old.unlink()
    index = (BOOK / "index.md").read_text(encoding="utf-8").replace("{{ budget }}", chosen)
    (src / "index.md").write_text(index, encoding="utf-8")

    failed, start = [], time.perf_counter()
    for path in paths:
        print(f"book: running {path.name} ({chosen} budget)...", flush=True)
        error, took = run_lesson(path, lessons / f"{path.stem}.ipynb", chosen, args.timeout, args.reuse)
        print(f"book:   {'FAILED: ' + error if error else 'ok'} ({took})", flush=True)
        if error:
            failed.append(f"{path.stem} ({error})")
    ran = time.perf_counter() - start
    print(f"book: lessons ran in {ran:.0f} s; rendering with Sphinx...", flush=True)
    shutil.rmtree(args.out / "lessons", ignore_errors=True)  # no page of a lesson that is gone
    status = sphinx(src, args.out, args.work / "doctrees")
    print(f"book: wrote {args.out / 'index.html'} in {time.perf_counter() - start:.0f} s in all", flush=True)
    if status:
        print(f"book: Sphinx failed with status {status}", file=sys.stderr)
    if failed:
        print(f"book: {len(failed)} of {len(paths)} lessons FAILED: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
