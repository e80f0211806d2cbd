"""benchmarks/lesson_costs.py without running a lesson: its limits, verdicts, table and README section, on fake records."""

import json

import pytest
from script_helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/lesson_costs.py")


def fake_run(
    lesson, budget, seconds, peak_mib, ok=True, name=None, cores=2, date="2026-12-02 05:00", alone=True
):
    """A record shaped like run_lesson's, with made-up costs."""
    file = f"notebooks/{lesson}_{name or 'lesson'}.py"
    return {
        "lesson": lesson,
        "file": file,
        "budget": budget,
        "ok": ok,
        "error": None if ok else "cell 3 (x = 1 / 0): ZeroDivisionError: division by zero",
        "seconds": seconds,
        "kernel_cpu_seconds": 2 * seconds,
        "peak_mib": peak_mib,
        "slowest_cells": [],
        "cells": [],
        "date": date,
        "machine": {
            "cores": cores,
            "cpu": "Test CPU",
            "torch": "2.0",
            "python": "3.11",
            "omp_num_threads": None,
        },
        "command": f"python benchmarks/lesson_costs.py {lesson} --budget {budget}",
        "alone": alone,
    }


def records(*runs):
    return {f"{r['lesson']}/{r['budget']}": r for r in runs}


def rows(text):
    """The table's body rows, each as its list of cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]  # the first is the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_time_limits_by_lesson_and_budget(bench):
    assert bench.time_limit_s("04", "fast") is None and bench.time_limit_s("07", "fast") is None
    assert bench.time_limit_s("00", "full") == bench.time_limit_s("06", "full") == 300
    assert bench.time_limit_s("07", "full") == bench.time_limit_s("08", "full") == 600
    assert bench.time_limit_s("10", "full") == 900 and bench.time_limit_s("10", "fast") == 240  # issue 18


@pytest.mark.parametrize(
    "lesson, budget, seconds, peak, ok, verdict",
    [
        ("05", "full", 299.9, 2047, True, "yes"),
        ("05", "full", 300.0, 100, True, "no: time >= 300 s"),  # the limit is strict: 300 s is over
        ("05", "fast", 900.0, 100, True, "yes"),  # no time limit in the fast budget
        ("07", "full", 599.0, 100, True, "yes"),  # the MNIST lessons have 600 s
        ("07", "full", 601.0, 100, True, "no: time >= 600 s"),
        ("06", "fast", 10.0, 2048, True, "no: peak >= 2048 MiB"),  # memory is limited in both budgets
        ("06", "full", 400.0, 3000, True, "no: peak >= 2048 MiB, time >= 300 s"),
        ("06", "full", 10.0, 100, False, "failed"),  # a failed run is never within limits
    ],
)
def test_within_limits(bench, lesson, budget, seconds, peak, ok, verdict):
    assert bench.within_limits(fake_run(lesson, budget, seconds, peak, ok)) == verdict


def test_table_one_row_per_lesson_with_verdicts(bench):
    runs = records(
        fake_run("05", "fast", 96.3, 588, name="straight"),
        fake_run("05", "full", 391.9, 600, name="straight"),
        fake_run("06", "fast", 45.2, 903, name="two_sides"),
        fake_run("06", "full", 132.5, 2100, name="two_sides"),
        fake_run("07", "fast", 127.0, 824, name="mnist"),
        fake_run("07", "full", 457.9, 997, name="mnist"),
    )
    text = bench.table(runs)
    header = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.count("|") == header[0].count("|") for line in header)  # every row has every column
    assert rows(text) == [
        ["05_straight", "96", "588", "392", "600", "300 s", "full: no: time >= 300 s"],
        ["06_two_sides", "45", "903", "132", "2100", "300 s", "full: no: peak >= 2048 MiB"],
        ["07_mnist", "127", "824", "458", "997", "600 s", "yes"],
    ]


def test_table_marks_missing_and_failed_runs(bench):
    runs = records(
        fake_run("03", "full", 180.0, 700, name="cnf"),  # fast not measured
        fake_run("04", "fast", 64.0, 1000, name="fm"),
        fake_run("04", "full", 12.4, 300, ok=False, name="fm"),
    )
    assert rows(bench.table(runs)) == [
        ["03_cnf", "-", "-", "180", "700", "300 s", "fast budget not measured yet"],
        ["04_fm", "64", "1000", "failed after 12", "300", "300 s", "full: failed"],
    ]


def test_table_rows_sorted_whatever_the_record_order(bench):
    runs = records(
        fake_run("08", "fast", 1.0, 1), fake_run("00", "fast", 1.0, 1), fake_run("02", "full", 1.0, 1)
    )
    assert [row[0][:2] for row in rows(bench.table(runs))] == ["00", "02", "08"]


def test_provenance_names_machines_dates_and_commands(bench):
    assert bench.provenance({}) == "No runs recorded yet."
    alone = records(
        fake_run("01", "fast", 1.0, 1, date="2026-12-02 07:00"),
        fake_run("02", "full", 1.0, 1, date="2026-12-01 09:30"),
    )
    text = bench.provenance(alone)
    assert "2 CPU cores (Test CPU), torch 2.0" in text
    assert "2026-12-01 09:30 to 2026-12-02 07:00" in text  # earliest to latest, whatever the order
    assert "one lesson and one budget per command" in text
    together = records(fake_run("01", "fast", 1.0, 1, alone=False), fake_run("02", "fast", 1.0, 1, cores=4))
    text = bench.provenance(together)
    assert "`python benchmarks/lesson_costs.py 01 --budget fast`" in text and "4 CPU cores" in text


def test_readme_section_holds_the_table_and_the_note(bench):
    runs = records(fake_run("05", "full", 250.0, 600))
    section = bench.readme_section(runs, note="Measured while nothing else ran.")
    assert section.startswith("## What each lesson costs\n")
    assert bench.table(runs) in section and section.endswith(" Measured while nothing else ran.")
    assert not bench.readme_section(runs).endswith(" ")


def test_replace_section_keeps_the_rest_and_is_idempotent(bench):
    readme = f"# Title\n\nbefore\n{bench.START}\nold table\n{bench.END}\n\nafter\n"
    once = bench.replace_section(readme, "new table")
    assert once == f"# Title\n\nbefore\n{bench.START}\nnew table\n{bench.END}\n\nafter\n"
    assert bench.replace_section(once, "new table") == once


@pytest.mark.parametrize(
    "readme",
    [
        "no markers at all\n",
        "only the start <!-- lesson costs: start -->\n",
        "<!-- lesson costs: end --> the end before the start <!-- lesson costs: start -->\n",
        "<!-- lesson costs: start --> a <!-- lesson costs: end --> b <!-- lesson costs: start --> twice\n",
    ],
)
def test_replace_section_refuses_broken_markers(bench, readme):
    with pytest.raises(SystemExit, match="needs one"):
        bench.replace_section(readme, "table")


def test_main_table_and_readme_from_records_without_running(bench, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lessons.json"
    runs = records(
        fake_run("05", "full", 391.9, 600, name="straight"),
        fake_run("05", "fast", 96.3, 588, name="straight"),
    )
    out.write_text(json.dumps({"runs": runs}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.START}\nstale\n{bench.END}\nrest\n")
    monkeypatch.setattr(bench, "README", readme)
    monkeypatch.setattr(bench, "run_lesson", lambda *a, **k: pytest.fail("--table must not run a lesson"))
    assert bench.main(["--table", "--readme", "--out", str(out), "--note", "A note."]) == 0
    assert (
        "| 05_straight | 96 | 588 | 392 | 600 | 300 s | full: no: time >= 300 s |" in capsys.readouterr().out
    )
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{bench.END}\nrest\n") and "stale" not in text
    assert bench.table(runs) in text and "A note." in text
    assert json.loads(out.read_text()) == {"runs": runs}  # a table-only call records nothing


def test_load_runs_of_a_missing_file_is_empty(bench, tmp_path):
    assert bench.load_runs(tmp_path / "none.json") == {}


def test_pick_lessons_by_number_or_name(bench):
    sources = bench.lesson_sources()
    assert list(bench.pick_lessons(["4", "05_straight_vs_curved"])) == ["04", "05"]
    assert bench.pick_lessons(["2b"]) == {"02b": sources["02b"]} == bench.pick_lessons(["02b_score_matching"])
    assert bench.pick_lessons([]) == sources and "02b" in sources and list(sources) == sorted(sources)
    with pytest.raises(SystemExit, match="no lesson '99'"):
        bench.pick_lessons(["99"])
    with pytest.raises(SystemExit, match="no lesson 'b2'"):
        bench.pick_lessons(["b2"])
