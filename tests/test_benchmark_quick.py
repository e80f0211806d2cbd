"""The 2D benchmark's --quick mode runs end to end and writes a sane table (shape and ranges, not values)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "flows_2d.py"


def _load():
    spec = importlib.util.spec_from_file_location("flows_2d", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_quick_benchmark_table(tmp_path, capsys):
    bench = _load()
    cfg, quick, name = bench.parse_config(["--quick"])
    assert (
        quick and name == "flows_2d_quick" and cfg == bench.Config(**{**vars(bench.Config()), **bench.QUICK})
    )
    rows, text = bench.run(cfg, out_dir=tmp_path, name="quick")
    # every task has every method, except the Gaussian-source-only ones on moons -> 8gaussians
    expected = [
        (task, m)
        for task, (source, _) in bench.TASKS.items()
        for m in bench.BENCHMARK_METHODS
        if source == "gaussian" or m not in bench.GAUSSIAN_SOURCE_ONLY
    ]
    assert [(r["task"], r["method"]) for r in rows] == expected
    payload = json.loads((tmp_path / "quick.json").read_text())
    refs = payload["w2_sq_reference"]
    for r in rows:
        assert r["seeds"] == cfg.seeds
        for key in ["W2", "NPE"] + [f"W2@{n}" for n in bench.FEW_STEPS]:
            assert math.isfinite(r[key]["mean"]) and r[key]["mean"] >= 0 and r[key]["std"] >= 0
        if r["method"] != "DDPM":  # even briefly trained, every flow moves the source towards the target
            assert r["W2"]["mean"] < math.sqrt(refs[r["task"]]), r
    # the markdown table: a header line, column titles, a rule, one line per row
    table = [line for line in (tmp_path / "quick.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows) and all(line.count("|") == table[0].count("|") for line in table)
    assert (
        payload["complete"]
        and payload["config"]["seeds"] == cfg.seeds
        and set(payload["raw"]) == set(bench.TASKS)
    )


def test_command_line_options():
    bench = _load()
    cfg, quick, name = bench.parse_config(["--seeds", "5", "--lr", "0.01", "--name", "trial"])
    assert not quick and name == "trial" and cfg.seeds == 5 and cfg.lr == 0.01 and cfg.n_eval == 10_000
    with pytest.raises(SystemExit):
        bench.parse_config(["--no-such-option"])
