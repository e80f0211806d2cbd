"""The first code cell of every lesson: it installs the course where it is missing (Colab, a JupyterHub).

    python scripts/setup_cell.py          # write the cell into every notebooks/*.py (then `make sync`)
    python scripts/setup_cell.py --check  # exit 1 if a notebook's setup cell differs from SETUP_CELL

This file is the one place that says where the course is installed from; tests/test_setup_cell.py keeps every
notebook's copy equal to it.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# Course setup"
CELL_START = "# %%\n" + MARKER  # how the setup cell begins in a jupytext percent file
SETUP_CELL = """\
# Course setup: where the course's library is not installed (Colab, a JupyterHub), install it first.
# It takes the course's wheel from this folder if you uploaded one, else COURSE_INSTALL_SOURCE (a git URL or
# a wheel's path), else the package index. In a checkout, or after `pip install`, this cell does nothing.
# PyTorch is not reinstalled (Colab's own, with its GPU, is kept); lessons use the GPU when there is one.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("lessons") is None:
    wheels = sorted(Path.cwd().glob("diffusion_to_flow_matching-*.whl"))
    default = os.environ.get("COURSE_INSTALL_SOURCE", "diffusion-to-flow-matching")
    source = str(wheels[-1]) if wheels else default
    print(f"installing the course from {source} ...")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", source]).returncode != 0:
        raise RuntimeError(
            f"could not install the course from {source!r}. Upload the course's wheel "
            "(diffusion_to_flow_matching-*.whl, made by `make wheel`) next to this notebook, or set "
            "COURSE_INSTALL_SOURCE to the course repository's git URL (git+https://...), then run this cell again."
        )
    importlib.invalidate_caches()"""


def _cells(text: str) -> list[str]:
    """The notebook's jupytext percent cells, each starting with its '# %%' line (the header comes first)."""
    parts = text.split("\n# %%")
    return [parts[0]] + ["# %%" + p for p in parts[1:]]


def with_setup_cell(text: str) -> str:
    """The notebook text with SETUP_CELL as its first code cell (replacing an older copy)."""
    cells = [c for c in _cells(text) if not c.startswith(CELL_START)]
    first_code = next(
        (i for i, c in enumerate(cells) if i > 0 and not c.startswith("# %% [markdown]")), len(cells)
    )
    cells.insert(first_code, "# %%\n" + SETUP_CELL + "\n")  # every other cell keeps its text as it was
    return "\n".join(cells)


def setup_cell_of(text: str) -> str | None:
    """The setup cell's source in a notebook's text, or None when it has none."""
    for cell in _cells(text):
        if cell.startswith(CELL_START):
            return cell[len("# %%\n") :].strip("\n")
    return None


def lesson_files() -> list[Path]:
    """The lessons' jupytext sources (the app notebook is served by Voila from a checkout, so it has none)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a notebook differs")
    args = parser.parse_args(argv)
    stale = [p for p in lesson_files() if setup_cell_of(p.read_text()) != SETUP_CELL]
    if args.check:
        for p in stale:
            print(
                f"{p.name}: its setup cell differs from scripts/setup_cell.py; run `python scripts/setup_cell.py`"
            )
        return 1 if stale else 0
    for p in stale:
        p.write_text(with_setup_cell(p.read_text()))
        print(f"wrote the setup cell into {p.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
