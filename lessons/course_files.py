"""Where the course's own files are: the shipped checkpoints, the notebooks and the benchmarks' recorded
results, in a checkout or an installed wheel.

In a checkout they sit beside the library (checkpoints/, notebooks/, benchmarks/results/). A wheel carries
them as package data (lessons/shipped_checkpoints/, lessons/shipped_notebooks/, lessons/shipped_results/,
mapped from those folders in pyproject.toml), so `pip install` of the course brings the models and the tables
the lessons show, and `course-notebooks DEST` copies the lessons out.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent


def _course_folder(checkout_name: str, wheel_name: str) -> Path:
    """The checkout's folder when this library runs from a checkout, else the copy inside the installed package."""
    in_checkout = CHECKOUT_DIR / checkout_name
    if (CHECKOUT_DIR / "pyproject.toml").is_file() and in_checkout.is_dir():
        return in_checkout
    return PACKAGE_DIR / wheel_name


CHECKPOINTS_DIR = _course_folder("checkpoints", "shipped_checkpoints")  # the models shipped with the course
NOTEBOOKS_DIR = _course_folder("notebooks", "shipped_notebooks")  # the lessons, .py and .ipynb pairs
RESULTS_DIR = _course_folder("benchmarks/results", "shipped_results")  # what the benchmark scripts recorded
SHIPPED_RESULTS = ("flows_2d", "vs_peers")  # the results a lesson shows (pyproject.toml ships these)


def benchmark_results(name: str) -> dict:
    """The results a benchmark script recorded, benchmarks/results/<name>.json, e.g. 'flows_2d', as a dict."""
    if name not in SHIPPED_RESULTS:
        raise ValueError(f"the course ships the results of {', '.join(SHIPPED_RESULTS)}; got {name!r}.")
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"the recorded results {path} are missing: run `python benchmarks/{name}.py` in a checkout of the "
            "course to make them, or reinstall the course (pip install --force-reinstall diffusion-to-flow-matching)."
        )
    return json.loads(path.read_text())


def notebook_files() -> list[Path]:
    """The course's notebooks (each .ipynb and its paired .py), sorted by name."""
    if not NOTEBOOKS_DIR.is_dir():
        raise FileNotFoundError(
            f"the course's notebooks are not at {NOTEBOOKS_DIR}: this installation of the course is incomplete; "
            "reinstall it (pip install --force-reinstall diffusion-to-flow-matching) or clone the repository."
        )
    return sorted(
        p for p in NOTEBOOKS_DIR.iterdir() if p.suffix in (".ipynb", ".py") and not p.name.startswith("_")
    )


def copy_notebooks(dest, overwrite: bool = False) -> list[Path]:
    """Copy every notebook of the course into the folder dest (made if missing); return the new files' paths."""
    if isinstance(dest, bool) or not isinstance(dest, (str, Path)):
        raise TypeError(f"dest must be a folder path (a str or pathlib.Path), got {type(dest).__name__}.")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} is a file, not a folder: choose a folder to copy the notebooks into.")
    sources = notebook_files()
    clashes = [dest / p.name for p in sources if (dest / p.name).exists()]
    if clashes and not overwrite:
        raise ValueError(
            f"{len(clashes)} notebooks already exist in {dest} (e.g. {clashes[0].name}); nothing was copied. "
            "Choose another folder, or pass --overwrite to replace them (your edits there would be lost)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, dest / p.name)) for p in sources]


def main(argv: list[str] | None = None) -> int:
    """The console command `course-notebooks [DEST] [--overwrite]`: copy the lessons into DEST."""
    parser = argparse.ArgumentParser(
        prog="course-notebooks",
        description="Copy the notebooks of 'From diffusion to flow matching' into a folder, to open in JupyterLab.",
    )
    parser.add_argument("dest", nargs="?", default="flow-matching-course", help="folder to copy into")
    parser.add_argument("--overwrite", action="store_true", help="replace notebooks already in the folder")
    args = parser.parse_args(argv)
    try:
        copied = copy_notebooks(args.dest, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as err:
        print(f"course-notebooks: {err}", file=sys.stderr)
        return 1
    print(
        f"copied {len(copied)} files into {Path(args.dest).resolve()}; open them with: jupyter lab {args.dest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
