"""The standard 2D flow benchmark (after Tong et al. 2024) in one command.

    python benchmarks/flows_2d.py            # the full protocol, 2 worker processes
    python benchmarks/flows_2d.py --quick    # a smoke test for CI
    python benchmarks/flows_2d.py --help     # every setting (seeds, steps, points, workers)

Tasks: N(0, I) -> 8 gaussians, moons -> 8 gaussians, N(0, I) -> moons, N(0, I) -> s-curve.
Methods: I-CFM (= 1-rectified flow), OT-CFM (minibatch OT), 2-RF (reflow of the I-CFM model),
FM on the VP (diffusion) path, and a DDPM baseline sampled with deterministic DDIM. The last two
need a Gaussian source and are skipped on moons -> 8 gaussians.
Protocol: an MLP of 3 hidden layers of width 64 with SELU, AdamW, 10,000 training points,
100 Euler steps, exact W2 between the samples and a held-out test set (POT's ot.emd2, the exact
network simplex, since scipy's assignment is far slower at 10,000 points), normalized path energy
of the 100-step trajectories, several seeds (mean and standard deviation); plus W2 at 1, 2, 4, 8 steps.
Writes benchmarks/results/flows_2d[_quick].md and .json.
"""

import argparse
import copy
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

from lessons.couplings import pair_batches, reflow_pairs
from lessons.data2d import sample_target
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.flow_matching import cfm_batch_loss
from lessons.metrics import normalized_path_energy
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule, VPSchedule
from lessons.solvers import solve_ode
from lessons.training import random_batches, train

TASKS = {
    "N -> 8gaussians": ("gaussian", "8gaussians"),
    "moons -> 8gaussians": ("moons", "8gaussians"),
    "N -> moons": ("gaussian", "moons"),
    "N -> scurve": ("gaussian", "scurve"),
}
BENCHMARK_METHODS = ("I-CFM", "OT-CFM", "2-RF (reflow)", "FM-VP", "DDPM")  # the rows of the table
GAUSSIAN_SOURCE_ONLY = ("FM-VP", "DDPM")
FEW_STEPS = (1, 2, 4, 8)
VP_T_END = 1 - 1e-3  # the VP velocity diverges at t = 1; train and integrate on [0, 1 - 1e-3]
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Config:
    seeds: int = 3
    steps: int = 3000
    batch: int = 256
    lr: float = 1e-3
    lr_schedule: str = (
        "constant"  # the recipe of the recorded table (lessons.training.train's default is cosine)
    )
    n_train: int = 10_000
    n_eval: int = 10_000  # points for W2 at 100 steps and for the path energy
    n_few: int = 2_000  # points for W2 at 1, 2, 4, 8 steps
    sample_steps: int = 100
    workers: int = 2


def _mlp(seed):
    torch.manual_seed(seed)
    return MLP(hidden=64, depth=3, activation="selu")


def _fit(cfg, model, loss_fn, next_batch, seed):
    """Train model in place with the benchmark's settings; return it."""
    train(
        model,
        loss_fn,
        next_batch,
        steps=cfg.steps,
        lr=cfg.lr,
        seed=seed,
        device="cpu",
        lr_schedule=cfg.lr_schedule,
    )
    return model


def _train_flow(cfg, next_batch, path, seed, init=None, t_max=1.0):
    model = _mlp(seed) if init is None else copy.deepcopy(init)
    return _fit(cfg, model, cfm_batch_loss(path, t_max), next_batch, seed)


def _train_ddpm(cfg, data, seed):
    ddpm, model = DDPM(), _mlp(seed)
    next_batch = random_batches(data, cfg.batch, torch.Generator().manual_seed(seed))
    _fit(cfg, model, lambda m, batch: ddpm.loss(m, batch), next_batch, seed)
    schedule = DiscreteVPSchedule(ddpm)
    return lambda noise, n: ddim(
        model, noise, schedule, torch.linspace(0, 1, n + 1), eta=0.0, prediction="eps"
    )


def _flow_sampler(model, t_end=1.0):
    return lambda noise, n: solve_ode(model, noise, steps=n, method="euler", t_end=t_end)


def _evaluate(cfg, sampler, source_test, target_test, w2_sq_ref):
    """W2 and NPE at cfg.sample_steps Euler steps, W2 at 1, 2, 4, 8 steps."""
    traj = sampler(source_test[: cfg.n_eval], cfg.sample_steps)
    row = {
        "W2": w2(traj.final, target_test[: cfg.n_eval], solver="emd"),
        "NPE": normalized_path_energy(traj, w2_sq_ref),
    }
    for n in FEW_STEPS:
        row[f"W2@{n}"] = w2(
            sampler(source_test[: cfg.n_few], n).final, target_test[: cfg.n_few], solver="emd"
        )
    return row


def _test_sets(cfg, task):
    source, target = TASKS[task]
    return sample_target(source, cfg.n_eval, seed=1), sample_target(target, cfg.n_eval, seed=2)


def reference_cost(cfg, task):
    """W2^2 between the source and target test sets: the least path energy, for the NPE."""
    return w2(*_test_sets(cfg, task), solver="emd") ** 2


def run_task_seed(cfg, task, seed, w2_sq_ref):
    """Train every method on one task with one seed; return {method: metrics}."""
    torch.set_num_threads(1)
    source, target = TASKS[task]
    source_test, target_test = _test_sets(cfg, task)
    data = sample_target(target, cfg.n_train, seed=1000 + seed)
    src = None if source == "gaussian" else sample_target(source, cfg.n_train, seed=2000 + seed)
    linear = GaussianPath(LinearSchedule())
    out, samplers, clock = {}, {}, time.process_time()
    icfm = _train_flow(cfg, pair_batches(data, cfg.batch, "independent", source=src, seed=seed), linear, seed)
    samplers["I-CFM"] = _flow_sampler(icfm)
    for method in BENCHMARK_METHODS:
        if method in GAUSSIAN_SOURCE_ONLY and src is not None:
            continue
        if method == "OT-CFM":
            model = _train_flow(cfg, pair_batches(data, cfg.batch, "ot", source=src, seed=seed), linear, seed)
            samplers[method] = _flow_sampler(model)
        elif method == "2-RF (reflow)":
            start = (
                torch.randn(cfg.n_train, 2, generator=torch.Generator().manual_seed(3000 + seed))
                if src is None
                else src
            )
            pair_noise, pair_data = reflow_pairs(icfm, start, steps=cfg.sample_steps)
            model = _train_flow(
                cfg,
                pair_batches(pair_data, cfg.batch, "paired", source=pair_noise, seed=seed),
                linear,
                seed,
                init=icfm,
            )
            samplers[method] = _flow_sampler(model)
        elif method == "FM-VP":
            model = _train_flow(
                cfg,
                pair_batches(data, cfg.batch, "independent", seed=seed),
                GaussianPath(VPSchedule()),
                seed,
                t_max=VP_T_END,
            )
            samplers[method] = _flow_sampler(model, t_end=VP_T_END)
        elif method == "DDPM":
            samplers[method] = _train_ddpm(cfg, data, seed)
        train_cpu = time.process_time() - clock
        out[method] = _evaluate(cfg, samplers[method], source_test, target_test, w2_sq_ref)
        out[method]["cpu_s"] = time.process_time() - clock
        out[method]["train_cpu_s"] = train_cpu
        clock = time.process_time()
    return task, seed, out


def _fmt(values, digits=3):
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def summarize(cfg, raw):
    """One row per (task, method): mean ± std over seeds of each metric."""
    rows = []
    for task in TASKS:
        for method in BENCHMARK_METHODS:
            runs = [raw[task][s][method] for s in sorted(raw.get(task, {})) if method in raw[task][s]]
            if not runs:
                continue
            row = {"task": task, "method": method, "seeds": len(runs)}
            for key in ["W2", "NPE"] + [f"W2@{n}" for n in FEW_STEPS]:
                vals = [r[key] for r in runs]
                row[key] = {
                    "mean": statistics.fmean(vals),
                    "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "text": _fmt(vals, 2 if key != "NPE" else 3),
                }
            row["cpu_s"] = statistics.fmean(r["cpu_s"] for r in runs)
            rows.append(row)
    return rows


def markdown(cfg, rows, wall_s, refs):
    head = (
        f"W2 at {cfg.sample_steps} Euler steps on {cfg.n_eval} points and NPE; W2 at 1, 2, 4, 8 steps "
        f"on {cfg.n_few} points; mean ± std over {cfg.seeds} seed(s). {cfg.steps} training steps of batch "
        f"{cfg.batch} at a {cfg.lr_schedule} learning rate {cfg.lr:g}, {cfg.n_train} training points. "
        f"W2 is exact (POT ot.emd2). DDPM is sampled with "
        f"deterministic DDIM on the same numbers of steps; FM-VP integrates to t = {VP_T_END}."
    )
    cols = ["task", "method", "W2", "NPE"] + [f"W2@{n}" for n in FEW_STEPS] + ["cpu s / seed"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["task"], r["method"], r["W2"]["text"], r["NPE"]["text"]]
        cells += [r[f"W2@{n}"]["text"] for n in FEW_STEPS] + [f"{r['cpu_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    refs_text = ", ".join(f"{t}: {v:.2f}" for t, v in refs.items())
    lines += [
        "",
        f"W2^2(source, target) used by the NPE: {refs_text}.",
        f"Total wall time {wall_s:.0f} s with {cfg.workers} worker process(es), torch {torch.__version__}.",
    ]
    return "\n".join(lines)


def run(cfg, out_dir=RESULTS, name="flows_2d"):
    """Run the benchmark, write name.md and name.json into out_dir, and return (rows, markdown)."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = ProcessPoolExecutor(cfg.workers) if cfg.workers > 1 else None
    mapper = pool.map if pool else map
    refs = dict(zip(TASKS, mapper(reference_cost, [cfg] * len(TASKS), list(TASKS))))
    jobs = [(task, seed) for seed in range(cfg.seeds) for task in TASKS]
    raw = {}
    results = mapper(
        run_task_seed,
        [cfg] * len(jobs),
        [j[0] for j in jobs],
        [j[1] for j in jobs],
        [refs[j[0]] for j in jobs],
    )
    for done, (task, seed, out) in enumerate(results, 1):
        raw.setdefault(task, {})[seed] = out
        print(
            f"[{time.perf_counter() - start:6.0f} s] {task}, seed {seed}: "
            + ", ".join(f"{m} W2 {v['W2']:.2f}" for m, v in out.items()),
            flush=True,
        )
        rows, text = _write(cfg, raw, refs, start, out_dir, name, complete=done == len(jobs))
    if pool:
        pool.shutdown()
    return rows, text


def _write(cfg, raw, refs, start, out_dir, name, complete):
    """Write the table so far (rewritten after every finished job, so an interrupted run keeps its rows)."""
    wall = time.perf_counter() - start
    rows = summarize(cfg, raw)
    text = markdown(cfg, rows, wall, refs) + ("" if complete else "\n\n(partial: the run has not finished)")
    (out_dir / f"{name}.md").write_text(text + "\n")
    payload = {
        "config": asdict(cfg),
        "w2_solver": "POT ot.emd2 (exact)",
        "w2_sq_reference": refs,
        "rows": rows,
        "raw": raw,
        "wall_s": wall,
        "complete": complete,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=1))
    return rows, text


QUICK = dict(seeds=2, steps=100, n_train=2000, n_eval=400, n_few=400, sample_steps=20, workers=1)


def parse_config(argv=None):
    """Read the command line: returns (Config, quick)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run for CI (about a minute)")
    parser.add_argument("--name", help="base name of the result files (default flows_2d, or flows_2d_quick)")
    for field, default in asdict(Config()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(default), help=f"default {default}")
    args = parser.parse_args(argv)
    values = {**asdict(Config()), **(QUICK if args.quick else {})}
    values.update({k: v for k, v in vars(args).items() if k not in ("quick", "name") and v is not None})
    return Config(**values), args.quick, args.name or ("flows_2d_quick" if args.quick else "flows_2d")


def main(argv=None):
    cfg, _, name = parse_config(argv)
    _, text = run(cfg, name=name)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
