"""benchmarks/vs_peers.py without the peers: its turn-taking, its summary and ratios, and its settings."""

import json
import math
from pathlib import Path

import pytest
import torch
from script_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_peers.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/vs_peers.py")


def _recipe(log, name, steps, chunk):
    """A recipe that records which step it ran, handing the turn back every chunk steps."""
    model = torch.nn.Linear(1, 1)

    def body(turns):
        for step in range(1, steps + 1):
            log.append((name, step))
            if step % chunk == 0 or step == steps:
                turns.pause(step, model)

    return body


def test_recipes_take_turns_of_a_chunk_and_are_evaluated_when_due(bench):
    log, turns = [], {}
    for name, steps in (("a", 6), ("b", 4)):
        turns[name] = bench.Turns(name, lambda m: {"W2@4": 1.0, "W2@100": 1.0}, eval_every=2, total=steps)
        turns[name].run_in_thread(_recipe(log, name, steps, chunk=2))
    while not all(t.finished for t in turns.values()):
        for t in turns.values():
            if not t.finished:
                t.take_turn()
    # one recipe at a time, two steps per turn, round robin, each to its own end
    assert [n for n, _ in log] == list("aabbaabbaa")
    assert [r["step"] for r in turns["a"].records] == [2, 4, 6]
    assert [r["step"] for r in turns["b"].records] == [2, 4]
    assert all(r["seconds"] >= 0 for r in turns["a"].records)


def test_a_failing_recipe_is_reported_not_hung(bench):
    turns = bench.Turns("broken", lambda m: {}, eval_every=1, total=3)

    def body(_):
        raise ValueError("boom")

    turns.run_in_thread(body)
    with pytest.raises(RuntimeError, match="broken") as err:
        turns.take_turn()
    assert isinstance(err.value.__cause__, ValueError)


def _run(w2_at_4, seconds, steps):
    return {
        "records": [
            {"step": s, "seconds": sec, "W2@4": w, "W2@100": w} for s, sec, w in zip(steps, seconds, w2_at_4)
        ],
        "steps": steps[-1],
    }


def test_the_ratio_is_the_course_time_to_the_peer_final_quality(bench):
    cfg = bench.Config(seeds=2)
    steps = [1000, 2000, 3000]
    raw = {
        seed: {
            "TorchCFM OT-CFM": _run([0.6, 0.4, 0.30 + 0.02 * seed], [10, 20, 30], steps),  # final mean 0.31
            "course OT-CFM": _run([0.5, 0.32 - 0.02 * seed, 0.2], [4, 8, 12], steps),  # 0.31 at 2000 steps
            "TorchCFM I-CFM": _run([0.9, 0.8, 0.7], [5, 10, 15], steps),
            "course I-CFM": _run([1.0, 0.95, 0.9], [5, 10, 15], steps),  # never reaches 0.7
        }
        for seed in range(2)
    }
    recipes, comparisons = bench.summarize(cfg, raw)
    assert recipes["course OT-CFM"]["ms_per_step"] == pytest.approx(1000 * 12 / 3000)
    assert recipes["TorchCFM OT-CFM"]["final"]["W2@4 std"] == pytest.approx(math.sqrt(2) * 0.01)
    ot, indep = comparisons  # Meta FM did not run: no comparison for it
    assert ot["target_w2"] == pytest.approx(0.31) and ot["course_steps"] == 2000
    assert ot["ratio"] == pytest.approx(8 / 30)
    assert indep["course_seconds"] is None and indep["ratio"] is None
    # control: a course curve shifted above the target never counts as reaching it
    for seed in raw:
        for rec in raw[seed]["course OT-CFM"]["records"]:
            rec["W2@4"] += 1.0
    assert bench.summarize(cfg, raw)[1][0]["ratio"] is None


def test_course_settings_are_read_and_bad_ones_refused(bench):
    assert bench._course_settings("lr=3e-3, grad_clip=none,lr_schedule=constant,time_scale=1") == {
        "lr": 3e-3,
        "grad_clip": None,
        "lr_schedule": "constant",
        "time_scale": 1.0,
    }
    assert bench._course_settings("hidden=64, activation=selu,depth=3") == {
        "hidden": 64,
        "activation": "selu",
        "depth": 3,
    }
    assert bench._course_settings("") == {}
    with pytest.raises(SystemExit, match="--course takes lr"):
        bench._course_settings("learning_rate=1e-3")
    for bad, words in (("lr=fast", "needs a number"), ("hidden=6.5", "needs a whole number")):
        with pytest.raises(SystemExit, match=words):
            bench._course_settings(bad)
    cfg, settings, name = bench.parse_args(["--quick", "--seeds", "2", "--meta", "false"])
    assert cfg.seeds == 2 and cfg.meta is False and cfg.peer_steps == bench.QUICK["peer_steps"]
    assert name == "vs_peers_quick" and settings == {}


def test_the_install_line_names_the_peers_the_makefile_installs(bench):
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if ln.startswith("PEER_LIBS"))
    assert line.split(":=")[1].split() == bench.PEERS_INSTALL.split()[3:]
    assert bench.PEERS_INSTALL.startswith("pip install --no-deps ")


def test_the_readme_shows_the_recorded_run_of_the_library_defaults():
    root = SCRIPT.parents[1]
    readme = (root / "README.md").read_text()
    assert readme.count("<!-- vs peers: start -->") == 1 and readme.count("<!-- vs peers: end -->") == 1
    block = readme.split("<!-- vs peers: start -->")[1].split("<!-- vs peers: end -->")[0]
    assert block.strip() == (root / "benchmarks" / "results" / "vs_peers.md").read_text().strip()
    recorded = json.loads((root / "benchmarks" / "results" / "vs_peers.json").read_text())
    # a finished run of the course with the library's defaults, not of settings passed with --course
    assert recorded["complete"] and recorded["protocol"]["course_settings"] == {}
    assert recorded["protocol"]["seeds"] >= 3
