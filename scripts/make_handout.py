"""Copy the course without its exercise solutions, for handing out to learners.

    python scripts/make_handout.py build/handout     # the checkout's files into build/handout, minus solutions/

The copy leaves out solutions/ and what is not course material (.git, the venv, build outputs, caches, the
downloaded MNIST in data/). Its lessons keep their stubs and checks: a learner's answers are checked as in
the course, and COURSE_EXERCISES=solutions there says in words that the copy has no solutions.
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = "solutions"
# names left out wherever they occur (.gitignore's list, plus the solutions and the repository itself)
LEFT_OUT = (
    SOLUTIONS,
    ".git",
    ".venv",
    "build",
    "_book",
    "dist",
    "data",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "*.egg-info",
    "*.pyc",
    ".jupyter_ystore.db",
)


def make_handout(dest, source=ROOT) -> int:
    """Copy the course at source into dest (a new or empty folder) without solutions/; return the files copied."""
    source, dest = Path(source).resolve(), Path(dest).resolve()
    if not (source / "lessons").is_dir():
        raise ValueError(f"{source} is not the course: it has no lessons/ folder.")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty folder; name a new folder for the handout.")
    inside = dest.is_relative_to(source)
    if inside and not dest.is_relative_to(source / "build"):
        raise ValueError(
            f"{dest} is inside the course, so the copy would copy itself; use a folder outside it or under build/."
        )
    if dest.exists():
        dest.rmdir()
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*LEFT_OUT))
    return sum(1 for p in dest.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "dest", nargs="?", default=str(ROOT / "build" / "handout"), help="default build/handout"
    )
    args = parser.parse_args(argv)
    try:
        count = make_handout(args.dest)
    except ValueError as error:
        print(f"make_handout: {error}", file=sys.stderr)
        return 1
    print(f"handout: {count} files in {Path(args.dest).resolve()}, without {SOLUTIONS}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
