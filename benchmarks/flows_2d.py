"""Tong et al.'s 2D benchmark on its own protocol (TorchCFM's runner), in one command.

    python benchmarks/flows_2d.py            # the full protocol, 2 worker processes (hours: see the README)
    python benchmarks/flows_2d.py --quick    # a smoke test for CI (about a minute)
    python benchmarks/flows_2d.py --help     # every setting

The protocol is the one of the runner that produced the paper's 2D table (github.com/atong01/
conditional-flow-matching, runner/: scripts/two-dim-cfm.sh, configs/experiment/cfm.yaml,
configs/model/{cfm,otcfm,fm}.yaml, src/datamodules/distribution_datamodule.py and
components/two_dim.py, src/models/cfm_module.py), written again here on the course's library:
- tasks: N(0, I) -> 8 gaussians (torchdyn's: radius 5, std 1), moons -> 8 gaussians (the
  Schroedinger-bridge pair: moons of noise 0.1 standardised and scaled by 7, 8 gaussians of radius 12 and
  std 1.5), N(0, I) -> moons (sklearn, noise 0.05, times 2, shifted by -1), N(0, I) -> s-curve (sklearn,
  noise 0.05, times 1.5); 30,000 points split 10,000 / 10,000 / 10,000 by torch's random_split with seed 42.
  The runner's datamodule configs say 10,000 / 1,000 / 1,000, but W2 on 1,000 test points has a sampling floor
  (about 0.3 on the moons) above the paper's OT-CFM values, and the author's account of the paper's
  path-energy baselines (conditional-flow-matching issue #140) uses 10,000 / 10,000 / 10,000, so the paper's
  numbers cannot come from 1,000 test points; with 10,000 the runner's I-CFM and FM land on them;
- network: an MLP on [t, x] with 3 hidden layers of 64 SELU units; AdamW, lr 1e-3, weight decay 1e-5,
  no schedule, no clipping; 1,000 epochs of shuffled batches of 512 (the last batch of an epoch is smaller);
  the validation loss every 10 epochs picks the checkpoint that is tested;
- methods of the runner's sweep: I-CFM and OT-CFM (sigma = 0.1 around the straight line; OT-CFM draws
  its pairs from the exact OT plan of each batch) and FM (Lipman et al.'s path with sigma_min = 0.1);
  rows the course adds, not in the paper: 2-RF (reflow of the I-CFM model), FM-VP (the VP path) and DDPM;
- test: 10,000 source points through 100 Euler steps, exact W2 to the 10,000 test points (POT's ot.emd2),
  normalized path energy |PE - W2^2(source, test)| / W2^2(source, test); plus W2 after 1, 2, 4, 8 steps
  (on 2,000 of the points: the course's columns, not the paper's);
- seeds 42 to 46; mean and sample standard deviation over them.
Jobs finished so far are kept in benchmarks/results/flows_2d.partial.json (a run with the same settings
continues from there); when all are done the run writes flows_2d.md and flows_2d.json.
"""

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.flow_matching import cfm_loss
from lessons.metrics import normalized_path_energy, path_energy
from lessons.optimal_transport import optimal_permutation, w2
from lessons.paths import GaussianPath
from lessons.progress import Progress
from lessons.schedules import LinearSchedule, VPSchedule
from lessons.solvers import solve_ode
from lessons.training import train

RESULTS = Path(__file__).resolve().parent / "results"
RUNNER = "atong01/conditional-flow-matching, runner/ (scripts/two-dim-cfm.sh, configs/experiment/cfm.yaml)"
# task -> (source, target); source None is N(0, I)
TASKS = {
    "N -> 8gaussians": (None, "gaussians"),
    "moons -> 8gaussians": ("dsb-moons", "dsb-8gaussians"),
    "N -> moons": (None, "moons"),
    "N -> scurve": (None, "scurve"),
}
RUNNER_METHODS = ("I-CFM", "OT-CFM", "FM")  # the runner's sweep, the rows of the paper's table
COURSE_METHODS = (
    "2-RF (reflow)",
    "FM-VP",
    "DDPM",
)  # the course's rows on the same protocol, not in the paper
METHODS = RUNNER_METHODS + COURSE_METHODS
GAUSSIAN_SOURCE_ONLY = ("FM", "FM-VP", "DDPM")
# one job trains these together (2-RF starts from the I-CFM model); the cheap ones first, OT-CFM last
JOB_GROUPS = (("I-CFM", "2-RF (reflow)"), ("FM",), ("FM-VP",), ("DDPM",), ("OT-CFM",))
FEW_STEPS = (1, 2, 4, 8)
VP_T_END = 1 - 1e-3  # the VP velocity diverges at t = 1; train and integrate on [0, 1 - 1e-3]
SPLIT_SEED = 42  # torch.utils.data.random_split(..., generator=torch.Generator().manual_seed(42))
# raise it when a change of this file changes the numbers: a partial run then starts afresh
PROTOCOL_VERSION = 2


@dataclass
class Config:
    seeds: int = 5
    first_seed: int = 42
    epochs: int = 1000
    val_every: int = 10  # epochs between validations
    batch: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-5
    sigma: float = 0.1  # sigma of I-CFM and OT-CFM, sigma_min of FM
    n_train: int = 10_000
    n_val: int = 10_000
    n_test: int = 10_000  # points for W2 and NPE after sample_steps steps
    n_few: int = 2_000  # test points for W2 after 1, 2, 4, 8 steps
    sample_steps: int = 100
    workers: int = 2


QUICK = dict(
    seeds=2, epochs=4, val_every=2, n_train=1000, n_val=200, n_test=200, n_few=100, sample_steps=20, workers=1
)


# ---- the runner's datasets ----


def _runner_gaussians(n_total: int, seed: int) -> torch.Tensor:
    """torchdyn's generate_gaussians(n_total // 8, 8 gaussians, radius 5, std 1, noise 1e-4) drawn from seed.

    noise 1e-4 (a shift of each gaussian) is what the runner's configs/datamodule/gaussians.yaml passes.

    The same draws, in the same order and float32 arithmetic, as torchdyn after torch.manual_seed(seed).
    """
    g = torch.Generator().manual_seed(seed)
    per = n_total // 8
    out = torch.zeros(per * 8, 2)
    angle = torch.zeros(1)
    for i in range(8):
        angle += 2 * math.pi / 8
        loc = torch.Tensor([5 * torch.cos(angle), 5 * torch.sin(angle)])
        draws = torch.normal(loc.expand(per, 2), torch.ones(per, 2), generator=g)
        out[i * per : (i + 1) * per] = draws + torch.randn(2, generator=g) * 1e-4
    return out


def _sklearn_data():
    try:
        from sklearn import datasets
    except ImportError as err:  # scikit-learn comes with mlxtend, a course dependency
        raise ImportError(
            "the 2D benchmark draws its moons and s-curve with scikit-learn, as the runner does; "
            "install it with `pip install scikit-learn`."
        ) from err
    return datasets


def _runner_sklearn(name: str, n_total: int, random_state: int = 42) -> torch.Tensor:
    """The runner's SKLearnDataModule: the same points for every seed (random_state 42)."""
    datasets = _sklearn_data()
    if name == "moons":
        x, _ = datasets.make_moons(n_samples=n_total, noise=0.05, random_state=random_state)
        x = x * 2
        x[:, 0] -= 1
    else:
        x, _ = datasets.make_s_curve(n_samples=n_total, noise=0.05, random_state=random_state)
        x = x[:, [0, 2]] * 1.5
    return torch.from_numpy(x.astype(np.float32))


def _dsb_pair(name: str, n_total: int, seed: int) -> torch.Tensor:
    """The runner's two_dim.data_distrib (from the diffusion Schroedinger bridge code), its numpy draws seeded by seed.

    The runner leaves them unseeded (np.random.seed(None)): the same law, here reproducible."""
    rng = np.random.RandomState(seed)  # the draws of np.random.seed(seed) without touching the global state
    if name == "dsb-moons":
        x, _ = _sklearn_data().make_moons(n_samples=n_total, noise=0.1, random_state=rng)
        x = torch.tensor(x)
        return ((x - x.mean()) / x.std() * 7.0).float()
    s = 1 / np.sqrt(2)
    centers = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    points = []
    for _ in range(n_total):  # one point at a time: the order of the draws is the runner's
        point = rng.randn(2) * 0.5
        points.append(point + centers[rng.randint(8)])
    return torch.from_numpy(np.array(points, dtype="float32") * 3)


def runner_dataset(name: str, n_total: int, seed: int, fresh: bool = False) -> torch.Tensor:
    """n_total points (n_total, 2) of one of the runner's 2D datasets.

    fresh=True draws the fixed sklearn sets (moons, s-curve) anew from seed instead of the runner's random_state
    42: another sample of the same law, for the data-vs-data floor of W2.
    """
    if name == "gaussians":
        return _runner_gaussians(n_total, seed)
    if name in ("moons", "scurve"):
        return _runner_sklearn(name, n_total, random_state=seed if fresh else 42)
    if name in ("dsb-moons", "dsb-8gaussians"):
        return _dsb_pair(name, n_total, seed)
    raise ValueError(f"unknown dataset {name!r}: one of gaussians, moons, scurve, dsb-moons, dsb-8gaussians.")


def split(x: torch.Tensor, lengths, generator: torch.Generator):
    """torch's random_split of x into parts of the given lengths (the same indices), as tensors."""
    if sum(lengths) != x.shape[0]:
        raise ValueError(f"the parts {lengths} do not add up to the {x.shape[0]} points.")
    perm = torch.randperm(x.shape[0], generator=generator)
    ends = np.cumsum(lengths)
    return [x[perm[end - n : end]] for n, end in zip(lengths, ends)]


def task_data(cfg: Config, task: str, seed: int):
    """{'train' | 'val' | 'test': (source or None, target)}: the task's points, split as the runner does."""
    source, target = TASKS[task]
    lengths = (cfg.n_train, cfg.n_val, cfg.n_test)
    generator = torch.Generator().manual_seed(SPLIT_SEED)  # one generator for both sets, as in the runner
    parts = [
        split(runner_dataset(name, sum(lengths), seed), lengths, generator)
        for name in (source, target)
        if name
    ]
    sources = parts[0] if source else [None] * 3
    return dict(zip(("train", "val", "test"), zip(sources, parts[-1])))


# ---- network, batches, losses ----


class RunnerNet(nn.Module):
    """The runner's VelocityNet: an MLP on [t, x] (time as a plain input), 3 hidden layers of 64 SELU units."""

    def __init__(self, dim=2, hidden=64, depth=3):
        super().__init__()
        layers, width = [], dim + 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SELU()]
            width = hidden
        self.model = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x, t, cond=None):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.model(torch.cat([t, x], dim=1))


def _net(seed: int) -> RunnerNet:
    torch.manual_seed(seed)
    return RunnerNet()


def steps_per_epoch(n_rows: int, batch: int, drop_last: bool) -> int:
    return n_rows // batch if drop_last else math.ceil(n_rows / batch)


def epoch_batches(cfg: Config, data, seed: int, paired: bool = False):
    """A next_batch() for train: the batches of shuffled epochs, as the runner's DataLoader gives them.

    data = (source or None, target). With a Gaussian source each batch gets fresh noise (the runner's
    randn_like); with a point-set source (moons -> 8 gaussians) both sets are shuffled apart and the last
    incomplete batch is dropped (the runner's TwoDimDataModule); paired=True keeps source[i] with
    target[i] (the reflow pairs). Returns (next_batch, steps per epoch).
    """
    source, target = data
    n, drop_last = target.shape[0], source is not None and not paired
    g = torch.Generator().manual_seed(seed)
    per_epoch = steps_per_epoch(n, cfg.batch, drop_last)
    state = {"k": per_epoch}

    def next_batch():
        if state["k"] == per_epoch:
            state.update(k=0, target=torch.randperm(n, generator=g))
            if source is not None:
                state["source"] = state["target"] if paired else torch.randperm(source.shape[0], generator=g)
        lo, state["k"] = state["k"] * cfg.batch, state["k"] + 1
        x1 = target[state["target"][lo : lo + cfg.batch]]
        x0 = (
            torch.randn(x1.shape, generator=g)
            if source is None
            else source[state["source"][lo : lo + cfg.batch]]
        )
        return x0, x1

    return next_batch, per_epoch


def ot_plan_pairs(x0, x1, generator=None):
    """Pairs drawn with replacement from the exact OT plan of the batch (TorchCFM's OTPlanSampler, 'exact')."""
    perm = torch.as_tensor(optimal_permutation(x0, x1, solver="emd"))
    rows = torch.randint(0, x0.shape[0], (x0.shape[0],), generator=generator)
    return x0[rows], x1[perm[rows]]


def smoothed_cfm_loss(model, x0, x1, sigma, generator=None):
    """I-CFM's loss: x_t = t x1 + (1 - t) x0 + sigma eps, target u = x1 - x0, mean squared error."""
    t = torch.rand(x0.shape[0], 1, generator=generator)
    x_t = t * x1 + (1 - t) * x0 + sigma * torch.randn(x0.shape, generator=generator)
    return F.mse_loss(model(x=x_t, t=t[:, 0]), x1 - x0)


def path_loss(path: GaussianPath, t_max: float = 1.0):
    """The course's CFM loss on a Gaussian path, x0 as the noise: FM (linear, sigma_min) and FM-VP."""

    def loss(model, x0, x1, generator=None):
        t = torch.rand(x0.shape[0], generator=generator) * t_max
        return cfm_loss(model, path, x1, noise=x0, t=t)

    return loss


def method_loss(cfg: Config, method: str, point_source: bool):
    """(training loss on a batch (x0, x1), validation loss with a generator) for a method."""
    if method == "I-CFM":
        return (
            lambda m, b: smoothed_cfm_loss(m, *b, cfg.sigma),
            lambda m, x0, x1, g: smoothed_cfm_loss(m, x0, x1, cfg.sigma, g),
        )
    if method == "OT-CFM":

        def val(m, x0, x1, g):  # the runner pairs by OT at validation too, except on the point-set pair
            pairs = (x0, x1) if point_source else ot_plan_pairs(x0, x1, g)
            return smoothed_cfm_loss(m, *pairs, cfg.sigma, g)

        return lambda m, b: smoothed_cfm_loss(m, *ot_plan_pairs(*b), cfg.sigma), val
    if method == "2-RF (reflow)":
        return (
            lambda m, b: smoothed_cfm_loss(m, *b, 0.0),
            lambda m, x0, x1, g: smoothed_cfm_loss(m, x0, x1, 0.0, g),
        )
    path = {
        "FM": (GaussianPath(LinearSchedule(sigma_min=cfg.sigma)), 1.0),
        "FM-VP": (GaussianPath(VPSchedule()), VP_T_END),
    }[method]
    loss = path_loss(*path)
    return lambda m, b: loss(m, *b), loss


def _val_noise(x1, g):
    return torch.randn(x1.shape, generator=g)


def validation_loss(cfg, model, val_fn, val_data, g, paired=False):
    """The mean validation loss over the validation set in batches (the runner's val loader)."""
    source, target = val_data
    if paired:
        return float(val_fn(model, source, target, g))
    if source is not None:  # the point-set pair: one batch, incomplete batches dropped
        n = (target.shape[0] // cfg.batch) * cfg.batch or target.shape[0]
        return float(val_fn(model, source[:n], target[:n], g))
    total = 0.0
    for lo in range(0, target.shape[0], cfg.batch):
        x1 = target[lo : lo + cfg.batch]
        total += float(val_fn(model, _val_noise(x1, g), x1, g)) * x1.shape[0]
    return total / target.shape[0]


def fit(cfg, loss_fn, val_fn, next_batch, per_epoch, val_data, seed, init=None, paired=False):
    """Train for cfg.epochs epochs; return (the checkpoint of least validation loss, its epoch, steps)."""
    model = _net(seed) if init is None else copy.deepcopy(init)
    best = {"loss": math.inf, "state": copy.deepcopy(model.state_dict()), "epoch": 0}
    g = torch.Generator().manual_seed(7919 + seed)

    def validate(step, model, losses):
        with torch.no_grad():
            value = validation_loss(cfg, model, val_fn, val_data, g, paired)
        if value < best["loss"]:
            best.update(loss=value, state=copy.deepcopy(model.state_dict()), epoch=step // per_epoch)

    steps = cfg.epochs * per_epoch
    train(
        model,
        loss_fn,
        next_batch,
        steps=steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=seed,
        device="cpu",
        progress=False,
        grad_clip=None,
        callback=validate,
        callback_every=cfg.val_every * per_epoch,
        lr_schedule="constant",
    )
    if best["epoch"] == 0:
        raise RuntimeError(f"no validation loss was finite in {steps} training steps: nothing to test.")
    model.load_state_dict(best["state"])
    return model, best["epoch"], steps


# ---- one job: train some methods on one task with one seed, and test them ----


def _flow_sampler(model, t_end=1.0):
    return lambda x0, n: solve_ode(model, x0, steps=n, method="euler", t_end=t_end)


def _ddpm_sampler(model, ddpm):
    schedule = DiscreteVPSchedule(ddpm)
    return lambda x0, n: ddim(model, x0, schedule, torch.linspace(0, 1, n + 1), eta=0.0, prediction="eps")


def test_source(task_test, seed):
    """The test's source points: the moons test split, or as many N(0, I) points drawn from the seed."""
    source, target = task_test
    if source is not None:
        return source
    return torch.randn(target.shape, generator=torch.Generator().manual_seed(104_729 + seed))


def reference_cost(cfg: Config, task: str, seed: int) -> float:
    """W2^2 between the test source and the test split: the least path energy, the NPE's yardstick."""
    test = task_data(cfg, task, seed)["test"]
    return w2(test_source(test, seed), test[1], solver="emd") ** 2


def test_metrics(cfg, sampler, test_data, seed, w2_sq_ref):
    """W2 and NPE after cfg.sample_steps Euler steps from the test source, W2 after 1, 2, 4, 8 steps."""
    x0, target = test_source(test_data, seed), test_data[1]
    traj = sampler(x0, cfg.sample_steps)
    out = {
        "w2": w2(traj.final, target, solver="emd"),
        "npe": normalized_path_energy(traj, w2_sq_ref),
        "path_energy": path_energy(traj),
        "w2_sq_reference": w2_sq_ref,
    }
    for n in FEW_STEPS:
        out[f"w2@{n}"] = w2(sampler(x0[: cfg.n_few], n).final, target[: cfg.n_few], solver="emd")
    return out


def _train_method(cfg, method, data, seed, icfm=None):
    """Train one method; return (sampler, model, best epoch, training steps)."""
    train_data, val_data, init, paired = data["train"], data["val"], None, False
    if method == "DDPM":  # DDPM's loss draws its own noise and step
        ddpm = DDPM()
        loss_fn, val_fn = (lambda m, b: ddpm.loss(m, b[1])), (lambda m, x0, x1, g: ddpm.loss(m, x1))
    else:
        loss_fn, val_fn = method_loss(cfg, method, point_source=data["train"][0] is not None)
    if method == "2-RF (reflow)":
        # the course's reflow: fixed pairs (x0, the I-CFM model's 100-step Euler image of x0), sigma = 0
        def pairs(part, offset):
            src, tgt = data[part]
            gen = torch.Generator().manual_seed(offset + seed)
            x0 = torch.randn(tgt.shape, generator=gen) if src is None else src
            with torch.no_grad():
                return x0, solve_ode(icfm, x0, steps=cfg.sample_steps, method="euler").final

        train_data, val_data, init, paired = pairs("train", 1_000_003), pairs("val", 2_000_003), icfm, True
    next_batch, per_epoch = epoch_batches(cfg, train_data, seed, paired=paired)
    model, epoch, steps = fit(
        cfg, loss_fn, val_fn, next_batch, per_epoch, val_data, seed, init=init, paired=paired
    )
    if method == "DDPM":
        return _ddpm_sampler(model, ddpm), model, epoch, steps
    return _flow_sampler(model, VP_T_END if method == "FM-VP" else 1.0), model, epoch, steps


def run_job(cfg: Config, task: str, group, seed: int, w2_sq_ref: float):
    """Train and test the methods of one group on one task with one seed: (task, group, seed, {method: metrics})."""
    torch.set_num_threads(1)
    data = task_data(cfg, task, seed)
    out, icfm = {}, None
    for method in group:
        clock = time.process_time()
        sampler, model, epoch, steps = _train_method(cfg, method, data, seed, icfm=icfm)
        if method == "I-CFM":
            icfm = model
        out[method] = test_metrics(cfg, sampler, data["test"], seed, w2_sq_ref)
        out[method].update(best_epoch=epoch, train_steps=steps, cpu_s=time.process_time() - clock)
    if "2-RF (reflow)" in out:  # its model sits on top of the I-CFM's training
        out["2-RF (reflow)"]["train_steps"] += out["I-CFM"]["train_steps"]
    return task, list(group), seed, out


# ---- the whole run: jobs, resuming, the table ----

# W2 (mean, std over 5 seeds) as printed in Table 2 of Tong, Malkin, Fatras et al., "Simulation-free Schroedinger
# bridges via score and flow matching" (AISTATS 2024), whose OT-CFM and I-CFM rows are credited to Tong et al.
# (TMLR 2024); that table also has SB-CFM and RF rows, not run here. The TMLR paper's own Table 2 could not be read
# from this machine, so its numbers (and its NPE column) are not quoted.
PUBLISHED_W2 = {
    ("N -> 8gaussians", "OT-CFM"): (0.303, 0.043),
    ("moons -> 8gaussians", "OT-CFM"): (0.601, 0.027),
    ("N -> moons", "OT-CFM"): (0.130, 0.016),
    ("N -> scurve", "OT-CFM"): (0.144, 0.028),
    ("N -> 8gaussians", "I-CFM"): (0.373, 0.103),
    ("moons -> 8gaussians", "I-CFM"): (1.557, 0.407),
    ("N -> moons", "I-CFM"): (0.178, 0.014),
    ("N -> scurve", "I-CFM"): (0.242, 0.141),
    ("N -> 8gaussians", "FM"): (0.343, 0.058),
    ("N -> moons", "FM"): (0.209, 0.055),
    ("N -> scurve", "FM"): (0.198, 0.037),
}
PUBLISHED_SOURCE = (
    "Tong, Malkin, Fatras et al., Simulation-free Schroedinger bridges via score and flow matching, AISTATS 2024, "
    "Table 2 (W2, mean ± std over 5 seeds; its OT-CFM and I-CFM rows cite Tong et al., TMLR 2024)"
)


def seeds(cfg: Config):
    return list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))


def jobs(cfg: Config):
    """Every (task, group, seed) of the run, the cheap groups first."""
    out = []
    for group in JOB_GROUPS:
        for seed in seeds(cfg):
            for task, (source, _) in TASKS.items():
                methods = tuple(m for m in group if source is None or m not in GAUSSIAN_SOURCE_ONLY)
                if methods:
                    out.append((task, methods, seed))
    return out


def protocol(cfg: Config) -> dict:
    """Every setting that decides the numbers (the worker count does not)."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "workers"}
    return {
        "version": PROTOCOL_VERSION,
        "runner": RUNNER,
        "settings": settings,
        "tasks": {task: {"source": s or "N(0, I)", "target": t} for task, (s, t) in TASKS.items()},
        "split": f"torch random_split [{cfg.n_train}, {cfg.n_val}, {cfg.n_test}], generator seed {SPLIT_SEED} (the "
        "split of the paper's path-energy baselines, conditional-flow-matching issue #140; the runner's datamodule "
        "configs have [10000, 1000, 1000])",
        "network": "MLP on [t, x], 3 hidden layers of 64, SELU (the runner's VelocityNet), PyTorch's default init",
        "optimizer": f"AdamW lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, constant rate, no gradient clipping",
        "training": f"{cfg.epochs} epochs of shuffled batches of {cfg.batch}; the last batch of an epoch is smaller "
        "(dropped on moons -> 8gaussians, as the runner's TwoDimDataModule does); fresh N(0, I) noise per batch",
        "model_selection": f"the checkpoint of least validation loss, validated every {cfg.val_every} epochs",
        "methods": {
            "I-CFM": f"x_t = t x1 + (1 - t) x0 + {cfg.sigma:g} eps, target x1 - x0 (runner: model=cfm)",
            "OT-CFM": "I-CFM on pairs drawn with replacement from each batch's exact OT plan (runner: model=otcfm)",
            "FM": f"x_t = t x1 + (1 - (1 - {cfg.sigma:g}) t) x0 (Lipman et al.; runner: model=fm)",
            "2-RF (reflow)": "not in the paper: the I-CFM model trained on for as long again on fixed pairs "
            "(x0, its 100-step Euler image), sigma = 0",
            "FM-VP": f"not in the paper: the VP path of the course (lessons.schedules.VPSchedule), t up to {VP_T_END}",
            "DDPM": "not in the paper: DDPM (1000 steps, linear betas, eps-prediction) sampled with deterministic DDIM",
        },
        "test": f"{cfg.n_test} source points (N(0, I) drawn per seed, or the moons test split), {cfg.sample_steps} "
        "Euler steps, exact W2 to the test split (POT ot.emd2); NPE = |PE - W2^2(source, test)| / W2^2(source, test), "
        f"PE the mean over points of the sum over steps of ||x_(k+1) - x_k||^2 / dt; W2 also after 1, 2, 4, 8 steps "
        f"on the first {cfg.n_few} test points",
        "seeds": seeds(cfg),
        "std": "sample standard deviation over the seeds",
    }


def data_floor(cfg: Config, task: str, seed: int) -> float:
    """W2 between the test split and as many fresh points of the same law: what sampling alone gives."""
    _, target = TASKS[task]
    test = task_data(cfg, task, seed)["test"][1]
    fresh = runner_dataset(target, cfg.n_test * 2, 900_000 + seed, fresh=True)  # some sets come in clusters:
    fresh = fresh[torch.randperm(fresh.shape[0], generator=torch.Generator().manual_seed(seed))[: cfg.n_test]]
    return w2(test, fresh, solver="emd")


def _reference(cfg, kind, task, seed):
    torch.set_num_threads(1)
    return kind, task, seed, (reference_cost if kind == "w2_sq" else data_floor)(cfg, task, seed)


def references(cfg: Config, known: dict, mapper):
    """{'w2_sq': {task: {seed: W2^2(test source, test split)}}, 'floor': {task: W2 floor}}, computing what is missing."""
    out = {
        "w2_sq": {t: dict(known.get("w2_sq", {}).get(t, {})) for t in TASKS},
        "floor": dict(known.get("floor", {})),
    }
    todo = [("w2_sq", t, s) for t in TASKS for s in seeds(cfg) if str(s) not in out["w2_sq"][t]]
    todo += [("floor", t, cfg.first_seed) for t in TASKS if t not in out["floor"]]
    for kind, task, seed, value in mapper(_reference, [cfg] * len(todo), *zip(*todo)) if todo else ():
        if kind == "w2_sq":
            out["w2_sq"][task][str(seed)] = value
        else:
            out["floor"][task] = value
    return out


def _stats(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(cfg: Config, raw: dict):
    """One row per (task, method) with at least one seed done: means and standard deviations over those seeds.

    2-RF's steps and CPU seconds include the I-CFM training it starts from."""
    rows = []
    for task in TASKS:
        for method in METHODS:
            runs = [raw[task][method][s] for s in sorted(raw.get(task, {}).get(method, {}))]
            if not runs:
                continue
            w2_mean, w2_std = _stats([r["w2"] for r in runs])
            npe_mean, npe_std = _stats([r["npe"] for r in runs])
            row = {
                "task": task,
                "method": method,
                "in_paper": method in RUNNER_METHODS,
                "w2_mean": w2_mean,
                "w2_std": w2_std,
                "npe_mean": npe_mean,
                "npe_std": npe_std,
                "seeds": len(runs),
                "train_steps": runs[0]["train_steps"],
                "cpu_s_per_seed": statistics.fmean(
                    r["cpu_s"] + (raw[task]["I-CFM"][s]["cpu_s"] if method == "2-RF (reflow)" else 0.0)
                    for s, r in zip(sorted(raw[task][method]), runs)
                ),
                "best_epoch_mean": statistics.fmean(r["best_epoch"] for r in runs),
                "w2_at": {},
            }
            for n in FEW_STEPS:
                mean, std = _stats([r[f"w2@{n}"] for r in runs])
                row["w2_at"][str(n)] = {"mean": mean, "std": std}
            if (task, method) in PUBLISHED_W2:
                row["published_w2_mean"], row["published_w2_std"] = PUBLISHED_W2[task, method]
            rows.append(row)
    return rows


def _pm(mean, std, digits=3):
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(cfg: Config, rows, floors, wall_s, done, total):
    head = (
        f"Tong et al.'s 2D protocol (TorchCFM's runner): {cfg.epochs} epochs of batch {cfg.batch}, AdamW "
        f"lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, sigma {cfg.sigma:g}, the MLP 3 x 64 SELU on [t, x], the "
        f"checkpoint of least validation loss; W2 (exact) of {cfg.n_test} points after {cfg.sample_steps} Euler steps "
        f"to the test split, NPE, and W2 after 1, 2, 4, 8 steps (on {cfg.n_few} points); mean ± std over the seeds "
        f"done of {seeds(cfg)[0]} to {seeds(cfg)[-1]}. 'paper W2': {PUBLISHED_SOURCE}; the next column is the "
        "difference in units of the published std. Rows marked * are the course's, not in the paper."
    )
    cols = ["task", "method", "W2", "paper W2", "(W2 - paper) / paper std", "NPE"]
    cols += [f"W2@{n}" for n in FEW_STEPS] + ["seeds", "cpu s / seed"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        paper, off = "", ""
        if "published_w2_mean" in r:
            paper = _pm(r["published_w2_mean"], r["published_w2_std"])
            off = f"{(r['w2_mean'] - r['published_w2_mean']) / r['published_w2_std']:+.1f}"
        cells = [
            r["task"],
            r["method"] + ("" if r["in_paper"] else " *"),
            _pm(r["w2_mean"], r["w2_std"]),
            paper,
            off,
        ]
        cells += [_pm(r["npe_mean"], r["npe_std"])]
        cells += [_pm(r["w2_at"][str(n)]["mean"], r["w2_at"][str(n)]["std"], 2) for n in FEW_STEPS]
        cells += [str(r["seeds"]), f"{r['cpu_s_per_seed']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    floor_text = ", ".join(f"{t}: {floors[t]:.3f}" for t in TASKS if t in floors)
    lines += [
        "",
        f"Data-vs-data floor (W2 between the test split of seed {cfg.first_seed} and {cfg.n_test} fresh points of the "
        f"same law): {floor_text}.",
        f"{done} of {total} jobs done; {wall_s:.0f} s of wall time with {cfg.workers} worker process(es) on "
        f"{_machine()}, torch {torch.__version__}.",
    ]
    return "\n".join(lines)


def _machine():
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({name})"


def _load_partial(path: Path, cfg: Config):
    """What an unfinished run with the same protocol left: (raw, references, wall_s), or nothing."""
    if not path.exists():
        return {}, {}, 0.0
    payload = json.loads(path.read_text())
    old, new = payload.get("protocol", {}), protocol(cfg)
    if (old.get("version"), old.get("settings")) != (new["version"], new["settings"]):
        print(f"{path.name} holds a run with other settings: starting afresh", flush=True)
        return {}, {}, 0.0
    return payload["raw"], payload.get("references", {}), payload.get("wall_s", 0.0)


def _done(raw, task, group, seed):
    return all(str(seed) in raw.get(task, {}).get(m, {}) for m in group)


def run(cfg: Config, out_dir: Path = RESULTS, name: str = "flows_2d", fresh: bool = False):
    """Run (or continue) the benchmark; write name.md and name.json once every job is done; return (rows, text)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f"{name}.partial.json"
    raw, known, wall_before = ({}, {}, 0.0) if fresh else _load_partial(partial, cfg)
    todo = [j for j in jobs(cfg) if not _done(raw, *j)]
    total = len(jobs(cfg))
    if raw:
        print(f"continuing {partial.name}: {total - len(todo)} of {total} jobs done", flush=True)
    start = time.perf_counter()
    pool = ProcessPoolExecutor(cfg.workers) if cfg.workers > 1 else None
    try:
        refs = references(cfg, known, pool.map if pool else map)

        def record(task, group, seed, out):
            for method, metrics in out.items():
                raw.setdefault(task, {}).setdefault(method, {})[str(seed)] = metrics
            done = total - sum(not _done(raw, *j) for j in jobs(cfg))
            wall = wall_before + time.perf_counter() - start
            print(
                f"[{wall:7.0f} s] {done}/{total} {task}, seed {seed}: "
                + ", ".join(f"{m} W2 {v['w2']:.3f} NPE {v['npe']:.3f}" for m, v in out.items()),
                flush=True,
            )
            return _write(cfg, raw, refs, wall, done, total, out_dir, name)

        rows, text = _write(
            cfg, raw, refs, wall_before + time.perf_counter() - start, total - len(todo), total, out_dir, name
        )
        args = [(cfg, *job, refs["w2_sq"][job[0]][str(job[2])]) for job in todo]
        # one bar over the jobs (each a few minutes; the trainings inside the workers stay quiet)
        with Progress(len(args), "2D benchmark jobs") as bar:
            results = (
                (f.result() for f in as_completed([pool.submit(run_job, *a) for a in args]))
                if pool
                else (run_job(*a) for a in args)
            )
            for result in results:
                rows, text = record(*result)
                bar.update(last=f"{result[0]}, {'+'.join(result[1])}")
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return rows, text


def _write(cfg, raw, refs, wall, done, total, out_dir, name):
    """Write the table so far: name.partial.* while jobs remain, name.* (and no partial files) when all are done."""
    rows = summarize(cfg, raw)
    text = markdown(cfg, rows, refs["floor"], wall, done, total)
    complete = done == total
    payload = {
        "protocol": protocol(cfg),
        "rows": rows,
        "references": refs,
        "raw": raw,
        "wall_s": wall,
        "jobs_done": done,
        "jobs_total": total,
        "complete": complete,
        "machine": _machine(),
        "torch": torch.__version__,
    }
    stem = name if complete else f"{name}.partial"
    (out_dir / f"{stem}.md").write_text(text + "\n")
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    if complete:
        for suffix in ("md", "json"):
            (out_dir / f"{name}.partial.{suffix}").unlink(missing_ok=True)
    return rows, text


def report(out_dir: Path = RESULTS, name: str = "flows_2d"):
    """Write the table again from the recorded jobs (name.json, or name.partial.json while jobs remain)."""
    path = out_dir / f"{name}.json"
    if not (path.exists() and "protocol" in json.loads(path.read_text())):
        path = out_dir / f"{name}.partial.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no recorded run of the 2D benchmark in {out_dir} ({name}.json or .partial.json)"
        )
    payload = json.loads(path.read_text())
    cfg = Config(**payload["protocol"]["settings"])
    refs, counts = payload["references"], (payload["jobs_done"], payload["jobs_total"])
    return _write(cfg, payload["raw"], refs, payload["wall_s"], *counts, out_dir, name)


def parse_config(argv=None):
    """Read the command line: returns (Config, quick, name, fresh, report)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run for CI (about a minute)")
    parser.add_argument(
        "--fresh", action="store_true", help="start afresh instead of continuing a partial run"
    )
    parser.add_argument("--name", help="base name of the result files (default flows_2d, or flows_2d_quick)")
    parser.add_argument(
        "--report", action="store_true", help="only write the table again from the recorded jobs"
    )
    for field, default in asdict(Config()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(default), help=f"default {default}")
    args = parser.parse_args(argv)
    values = {**asdict(Config()), **(QUICK if args.quick else {})}
    values.update({k: v for k, v in vars(args).items() if k in values and v is not None})
    cfg = Config(**values)
    for field in (
        "seeds",
        "epochs",
        "val_every",
        "batch",
        "n_train",
        "n_val",
        "n_test",
        "sample_steps",
        "n_few",
        "workers",
    ):
        if getattr(cfg, field) < 1:
            parser.error(f"--{field.replace('_', '-')} must be at least 1, got {getattr(cfg, field)}")
    if (cfg.n_train + cfg.n_val + cfg.n_test) % 8:
        parser.error(
            "--n-train + --n-val + --n-test must be a multiple of 8 (the 8 gaussians have equal parts)"
        )
    if cfg.n_few > cfg.n_test:
        parser.error(f"--n-few ({cfg.n_few}) can be at most --n-test ({cfg.n_test})")
    if cfg.epochs % cfg.val_every:
        parser.error(f"--epochs ({cfg.epochs}) must be a multiple of --val-every ({cfg.val_every})")
    name = args.name or ("flows_2d_quick" if args.quick else "flows_2d")
    return cfg, args.quick, name, args.fresh, args.report


def main(argv=None):
    cfg, _, name, fresh, only_report = parse_config(argv)
    _, text = report(name=name) if only_report else run(cfg, name=name, fresh=fresh)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
