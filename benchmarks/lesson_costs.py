"""What does each lesson cost? Wall time and peak memory of every lesson, in each budget, in a fresh kernel.

    python benchmarks/lesson_costs.py                      # every lesson, fast and full budgets
    python benchmarks/lesson_costs.py 04 07 --budget full  # the lessons named, in one budget
    python benchmarks/lesson_costs.py --table --readme     # no runs: the table of the recorded runs, into README.md

Each run executes the lesson's Jupytext source (notebooks/NN_name.py, the reviewed text) in a new Jupyter
kernel started in notebooks/, with COURSE_BUDGET set and the claims ledger sent to a temporary folder (a
benchmark must not rewrite build/claims). The wall time runs from the first cell to the last; the peak
memory is the largest resident set of the kernel's process tree, the larger of the kernel's own high-water
mark (VmHWM) and the sum over the tree sampled every 0.1 s. Runs are merged into
benchmarks/results/lessons.json by (lesson, budget), so lessons measured one at a time add up to one table;
--readme writes that table into README.md between its lesson-cost markers. Limits (issue 20, item 6; issue 18 for lesson
10): every lesson peaks under 2 GiB in both budgets; in the full budget the 2D lessons run under 5 minutes, the
MNIST lessons (07, 08) under 10 and lesson 10 under 15; lesson 10's fast budget runs under 4; on 2 CPU cores.
"""

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import jupytext
import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "benchmarks" / "results" / "lessons.json"
README = ROOT / "README.md"
START, END = "<!-- lesson costs: start -->", "<!-- lesson costs: end -->"
BUDGETS = ("fast", "full")
PEAK_LIMIT_MIB = 2048
# the issues' wall-time limits, in seconds: every lesson's full budget (issue 20, item 6: 300 s for the 2D
# lessons, 600 s for the MNIST ones; issue 18: 900 s for lesson 10) and, where an issue sets one, its fast budget
FULL_LIMIT_S, FULL_LIMITS_S = 300.0, {"07": 600.0, "08": 600.0, "09": 1200.0, "10": 900.0}
FAST_LIMITS_S = {"09": 240.0, "10": 240.0}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colour codes of a kernel's traceback


def time_limit_s(lesson: str, budget: str) -> float | None:
    """The issues' wall-time limit for a lesson in a budget, in seconds; None where there is none."""
    if budget == "full":
        return FULL_LIMITS_S.get(lesson, FULL_LIMIT_S)
    return FAST_LIMITS_S.get(lesson)


def limits_sentence() -> str:
    """The time limits in words, for the README's note under the table."""
    by_limit = {}
    for lesson, limit in FULL_LIMITS_S.items():
        by_limit.setdefault(limit, []).append(lesson)
    full = [f"{limit:.0f} s for {' and '.join(lessons)}" for limit, lessons in by_limit.items()]
    fast = ", ".join(f"{limit:.0f} s for {lesson}" for lesson, limit in FAST_LIMITS_S.items())
    full_words = ", ".join([*full, f"{FULL_LIMIT_S:.0f} s for the others"])
    return f"in the full budget, under {full_words}; in the fast budget, under {fast}"


LESSON_ID = re.compile(r"^(\d+)([a-z]?)$")  # 4, 04, 02b


def lesson_sources() -> dict:
    """{'04': notebooks/04_flow_matching.py, '02b': notebooks/02b_score_matching.py, ...}: every numbered lesson."""
    return {p.name.split("_")[0]: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.py"))}


def lesson_key(name: str) -> str | None:
    """The lesson id that '4', '04', '2b' or '04_flow_matching' names ('04', '02b'); None for anything else."""
    match = LESSON_ID.match(name.split("_")[0])
    return match[1].zfill(2) + match[2] if match else None


def pick_lessons(names: list) -> dict:
    """The lessons named ('4', '04' or '04_flow_matching'), or all of them when none is named."""
    sources = lesson_sources()
    if not names:
        return sources
    picked = {}
    for name in names:
        key = lesson_key(name)
        if key not in sources:
            raise SystemExit(f"no lesson {name!r}; the lessons are {', '.join(sources)}.")
        picked[key] = sources[key]
    return picked


class TreeMemory:
    """Samples the summed resident memory of a process and its descendants in a background thread."""

    def __init__(self, pid: int, every_s: float = 0.1):
        self.process, self.every_s, self.peak, self.cell_peak = psutil.Process(pid), every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.sample()
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        total = 0
        try:
            for p in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:  # a child that ended between the listing and the reading
                    pass
        except psutil.Error:  # the kernel itself has ended
            return
        self.peak, self.cell_peak = max(self.peak, total), max(self.cell_peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def high_water_mark(self) -> int:
        """The kernel's own peak resident set (Linux VmHWM), in bytes; 0 where /proc has none."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        try:
            t = self.process.cpu_times()
            return t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            return float("nan")


def kernel_pid(client: NotebookClient) -> int:
    """The process id of the client's kernel (jupyter_client's local provisioner)."""
    provisioner = client.km.provisioner
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None) or getattr(provisioner, "pid", None)
    if pid is None:
        raise RuntimeError("cannot find the kernel's process id to measure its memory.")
    return pid


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return lines[0][:80] if lines else ""


def run_lesson(
    lesson: str, path: Path, budget: str, cell_timeout: int, keep: Path | None = None, alone: bool = False
) -> dict:
    """Execute one lesson in one budget in a fresh kernel; return its costs and, on failure, the error."""
    nb = jupytext.read(path)
    client = NotebookClient(
        nb, timeout=cell_timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    cells, error = [], None
    client.reset_execution_trackers()
    with (
        tempfile.TemporaryDirectory(prefix="lesson_ledger_") as ledger,
        client.setup_kernel(env={**os.environ, "COURSE_BUDGET": budget, "COURSE_LEDGER_DIR": ledger}),
    ):
        with TreeMemory(kernel_pid(client)) as memory:
            start = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                begin, memory.cell_peak = time.perf_counter(), 0
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as err:
                    last = ANSI.sub("", str(err)).strip().splitlines()[-1]  # the exception's own line
                    error = f"cell {index} ({first_line(cell.source)}): {last}"
                cells.append(
                    {
                        "cell": index,
                        "first_line": first_line(cell.source),
                        "seconds": round(time.perf_counter() - begin, 2),
                        "peak_mib": round(memory.cell_peak / 2**20),  # sampled during the cell
                        "high_water_mib": round(memory.high_water_mark() / 2**20),  # the kernel's, so far
                    }
                )
                if error:
                    break
            seconds = time.perf_counter() - start
            hwm, cpu = memory.high_water_mark(), memory.cpu_seconds()
        peak = max(hwm, memory.peak)
    if keep is not None:  # the executed notebook, outputs included, to read the numbers it printed
        keep.mkdir(parents=True, exist_ok=True)
        jupytext.write(nb, keep / f"{path.stem}.{budget}.ipynb")
    slowest = sorted(cells, key=lambda c: -c["seconds"])[:5]
    return {
        "lesson": lesson,
        "file": str(path.relative_to(ROOT)),
        "budget": budget,
        "ok": error is None,
        "error": error,
        "seconds": round(seconds, 1),
        "kernel_cpu_seconds": round(cpu, 1),
        "peak_mib": round(peak / 2**20),
        "slowest_cells": slowest,
        "cells": cells,  # every code cell: seconds, sampled peak, the kernel's high-water mark after it
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/lesson_costs.py", *sys.argv[1:]]),
        "alone": alone,  # the only run of its command: nothing else of the benchmark ran beside it
    }


def machine() -> dict:
    """The machine a run was made on: cores available, CPU model, torch and Python versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cores": cores,
        "cpu": model,
        "torch": torch_version,
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def within_limits(run: dict) -> str:
    """'yes', or what the run exceeds (or that it failed)."""
    if not run["ok"]:
        return "failed"
    over = []
    if run["peak_mib"] >= PEAK_LIMIT_MIB:
        over.append(f"peak >= {PEAK_LIMIT_MIB} MiB")
    limit = time_limit_s(run["lesson"], run["budget"])
    if limit is not None and run["seconds"] >= limit:
        over.append(f"time >= {limit:.0f} s")
    return "yes" if not over else "no: " + ", ".join(over)


def load_runs(path: Path) -> dict:
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("runs", {})


def table(runs: dict) -> str:
    """The Markdown table of the recorded runs, one row per lesson, and a note on how and where they were made."""
    lines = [
        "| lesson | fast: wall (s) | fast: peak (MiB) | full: wall (s) | full: peak (MiB) | full-budget limit | within limits |",
        "|---|---|---|---|---|---|---|",
    ]
    for lesson in sorted({r["lesson"] for r in runs.values()}):
        measured = [runs.get(f"{lesson}/{budget}") for budget in BUDGETS]
        name = Path(next(r for r in measured if r)["file"]).stem
        cells, verdicts = [name], []
        for budget, run in zip(BUDGETS, measured):
            if run is None:
                cells += ["-", "-"]
                continue
            seconds = f"{run['seconds']:.0f}" if run["ok"] else f"failed after {run['seconds']:.0f}"
            cells += [seconds, f"{run['peak_mib']}"]
            verdict = within_limits(run)
            if verdict != "yes":
                verdicts.append(f"{budget}: {verdict}")
        fast_limit = time_limit_s(lesson, "fast")
        cells.append(
            f"{time_limit_s(lesson, 'full'):.0f} s" + (f" (fast: {fast_limit:.0f} s)" if fast_limit else "")
        )
        missing = [budget for budget, run in zip(BUDGETS, measured) if run is None]
        unknown = f"{' and '.join(missing)} budget not measured yet" if missing else ""
        cells.append("; ".join(verdicts + ([unknown] if unknown else [])) or "yes")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + provenance(runs)


def provenance(runs: dict) -> str:
    """Which commands made the recorded runs, on which machine, and when."""
    if not runs:
        return "No runs recorded yet."
    machines = {(r["machine"]["cores"], r["machine"]["cpu"], r["machine"]["torch"]) for r in runs.values()}
    where = "; ".join(f"{cores} CPU cores ({cpu}), torch {torch}" for cores, cpu, torch in sorted(machines))
    dates = sorted(r["date"] for r in runs.values())
    how = (
        "one lesson and one budget per command, `python benchmarks/lesson_costs.py NN --budget fast|full`"
        if all(r.get("alone") for r in runs.values())
        else ", ".join(f"`{c}`" for c in sorted({r["command"] for r in runs.values()}))
    )
    return (
        f"Peak: the largest resident memory of the kernel's process tree. Limits: peak under {PEAK_LIMIT_MIB} MiB in "
        f"both budgets; {limits_sentence()}. Measured with "
        f"{how}, each run in a fresh kernel, on {where}, {dates[0]} to {dates[-1]}."
    )


def readme_section(runs: dict, note: str | None = None) -> str:
    """The README's section on lesson costs: a heading, how to measure, the table and an optional note."""
    return (
        "## What each lesson costs\n\n"
        "`python benchmarks/lesson_costs.py` runs every lesson in both budgets, each in a fresh kernel, and records "
        "its wall time and peak memory in `benchmarks/results/lessons.json`; name lessons (`04 07`) or a budget "
        "(`--budget full`) to run fewer, and `--table --readme` to rewrite this table from the recorded runs.\n\n"
        + table(runs)
        + (f" {note}" if note else "")
    )


def replace_section(readme: str, text: str) -> str:
    """The README's text with everything between its lesson-cost markers replaced by text (the markers kept)."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise SystemExit(f"README.md needs one {START} followed by one {END} to write the table between.")
    head, rest = readme.split(START, 1)
    return head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]


def write_readme(text: str, path: Path = README) -> None:
    path.write_text(replace_section(path.read_text(), text))


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (04) or names; all when none is given")
    parser.add_argument("--budget", choices=(*BUDGETS, "both"), default="both")
    parser.add_argument(
        "--table", action="store_true", help="run nothing: print the table of the recorded runs"
    )
    parser.add_argument(
        "--readme", action="store_true", help="write the table into README.md between its markers"
    )
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may take")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON file of recorded runs")
    parser.add_argument("--keep", type=Path, help="also write each executed notebook into this folder")
    parser.add_argument(
        "--note", help="a sentence to add after the table in README.md (how the runs were made)"
    )
    args = parser.parse_args(argv)
    runs = load_runs(args.out)
    failed = False
    if not args.table:
        budgets = BUDGETS if args.budget == "both" else (args.budget,)
        lessons = pick_lessons(args.lessons)
        for lesson, path in lessons.items():
            for budget in budgets:
                print(f"lesson {lesson}, {budget} budget ...", flush=True)
                run = run_lesson(
                    lesson, path, budget, args.cell_timeout, args.keep, len(lessons) * len(budgets) == 1
                )
                print(
                    f"  {run['seconds']:.0f} s wall, {run['kernel_cpu_seconds']:.0f} s CPU, peak {run['peak_mib']} MiB; "
                    f"within limits: {within_limits(run)}" + (f"\n  {run['error']}" if run["error"] else ""),
                    flush=True,
                )
                failed |= not run["ok"]
                runs[f"{lesson}/{budget}"] = run
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"runs": dict(sorted(runs.items()))}, indent=1) + "\n")
    print(table(runs))
    if args.readme:
        write_readme(readme_section(runs, args.note), README)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
