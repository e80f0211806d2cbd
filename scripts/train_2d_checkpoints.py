"""Train the small 2D models the lecture app and lessons load, one checkpoint per method.

    python scripts/train_2d_checkpoints.py [--out checkpoints/2d] [--methods ddpm icfm otcfm reflow meanflow]

Every model maps N(0, I) noise to the 8-gaussians target; all but meanflow are the course MLP:
  ddpm      eps-prediction with DDPM's loss (T = 1000 linear betas); sampled by DDPM, DDIM or the PF-ODE
  icfm      flow matching, straight conditional paths, independent coupling (I-CFM)
  otcfm     flow matching with minibatch optimal-transport coupling (OT-CFM)
  reflow    rectified flow: I-CFM retrained on its own (noise, sample) pairs (one reflow step)
  meanflow  an AverageVelocityMLP u(x, s, t) distilled from the I-CFM teacher by MeanFlow's loss (one-step sampler);
            the teacher is the icfm of this run, else icfm.pt in --out, else one trained for it
A few minutes on one CPU core under the full budget; COURSE_BUDGET=fast makes a quick smoke run.
"""

import argparse
import time
from pathlib import Path

import torch

from lessons.budget import budget, by_budget
from lessons.checkpoints import checkpoint_path, load_model, save_checkpoint
from lessons.couplings import pair_batches, reflow_pairs
from lessons.data2d import sample_target
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.flow_matching import cfm_batch_loss
from lessons.mean_flow import AverageVelocityMLP, mean_flow_batch_loss, mean_flow_sample
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.training import random_batches, train

# one checkpoint each, checkpoints/2d/<method>.pt; meanflow after icfm, so that a full run distils this run's I-CFM
CHECKPOINT_METHODS = ("ddpm", "icfm", "otcfm", "reflow", "meanflow")
MODEL = {"dim": 2, "hidden": 96, "depth": 3, "time_dim": 32, "activation": "silu"}
# AverageVelocityMLP's embedding scale: its default 1 keeps u smooth in s (see lessons/mean_flow.py)
AVERAGE_MODEL = {**MODEL, "time_scale": 1.0}
EQUAL_FRACTION = 0.5  # MeanFlow's share of rows with s = t (plain flow matching there), the library's default
TARGET, BATCH, LR, LR_SCHEDULE, DATA_SIZE = "8gaussians", 256, 2e-3, "cosine", 20_000


def train_ddpm(steps):
    ddpm, model = DDPM(num_steps=1000), MLP(**MODEL)
    data = sample_target(TARGET, DATA_SIZE, seed=1)
    next_batch = random_batches(data, BATCH, torch.Generator().manual_seed(1_000))
    train(
        model,
        lambda m, batch: ddpm.loss(m, batch),
        next_batch,
        steps,
        lr=LR,
        lr_schedule=LR_SCHEDULE,
        device="cpu",
    )
    return model, {
        "prediction": "eps",
        "schedule": "ddpm",
        "ddpm_steps": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
    }


def train_flow(steps, coupling, data, source=None, init=None, seed=2_000):
    """CFM on the straight path with batches from lessons.couplings.pair_batches; init: weights to start from."""
    path, model = GaussianPath(LinearSchedule()), MLP(**MODEL)
    if init is not None:
        model.load_state_dict(init.state_dict())

    next_batch = pair_batches(data, BATCH, coupling, source=source, seed=seed)
    train(
        model,
        cfm_batch_loss(path),
        next_batch,
        steps,
        lr=LR,
        lr_schedule=LR_SCHEDULE,
        device="cpu",
        seed=seed,
    )
    return model, {"prediction": "velocity", "schedule": "linear", "sigma_min": 0.0, "coupling": coupling}


def icfm_teacher(trained, digests, out, steps, data):
    """The velocity model MeanFlow distils and a record of it: this run's icfm, else out/icfm.pt, else a fresh one."""
    if "icfm" in trained:
        return trained["icfm"], {"method": "icfm", "source": "this run", "sha256": digests["icfm"]}
    path = out / "icfm.pt"
    if path.is_file():
        model, _ = load_model(path, lambda settings: MLP(**settings["model"]))
        digest = torch.load(path, map_location="cpu", weights_only=True)["sha256"]  # verified by load_model
        return model, {"method": "icfm", "source": "icfm.pt", "sha256": digest}
    model = train_flow(steps, "independent", data)[0]
    return model, {"method": "icfm", "source": "trained for this checkpoint", "sha256": None}


def train_meanflow(steps, teacher, data, seed=4_000):
    """MeanFlow distillation: AverageVelocityMLP on mean_flow_batch_loss(teacher) over independent (noise, data) pairs."""
    model = AverageVelocityMLP(**AVERAGE_MODEL)
    teacher.eval()
    train(
        model,
        mean_flow_batch_loss(teacher=teacher, equal_fraction=EQUAL_FRACTION),
        pair_batches(data, BATCH, "independent", seed=seed),
        steps,
        lr=LR,
        lr_schedule=LR_SCHEDULE,
        device="cpu",
        seed=seed,
    )
    return model, {
        "architecture": "average_velocity",  # widgets.models2d builds AverageVelocityMLP(**settings["model"])
        "prediction": "average_velocity",
        "schedule": "linear",
        "coupling": "independent",
        "equal_fraction": EQUAL_FRACTION,
        "sampler": "mean_flow_sample",  # its metrics below: one step, x_1 = noise + u(noise, 0, 1)
    }


def sample(model, info, n, seed=0):
    """n samples, (n, 2), for the quality readout: 100 Euler steps (flows), 1000 DDPM steps, or 1 MeanFlow step."""
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    if info["prediction"] == "average_velocity":
        return mean_flow_sample(model, noise, steps=1).final
    if info["prediction"] == "eps":
        ddpm = DDPM(num_steps=info["ddpm_steps"])
        schedule, ts = DiscreteVPSchedule(ddpm), torch.linspace(0, 1, 1001)
        return ddim(model, noise, schedule, ts, eta=1.0, generator=torch.Generator().manual_seed(seed)).final
    return solve_ode(model, noise, steps=100, method="euler").final


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=checkpoint_path("2d"), type=Path)
    parser.add_argument("--methods", nargs="+", default=list(CHECKPOINT_METHODS), choices=CHECKPOINT_METHODS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = by_budget(fast=200, full=6_000)
    trained, digests = {}, {}
    for method in args.methods:
        start = time.process_time()
        data = sample_target(TARGET, DATA_SIZE, seed=1)
        if method == "ddpm":
            model, info = train_ddpm(int(1.5 * steps))
        elif method == "icfm":
            model, info = train_flow(steps, "independent", data)
        elif method == "otcfm":
            model, info = train_flow(steps, "ot", data)
        elif method == "reflow":  # couple noise with the I-CFM model's own samples, then retrain from I-CFM
            base = trained["icfm"] if "icfm" in trained else train_flow(steps, "independent", data)[0]
            noise = torch.randn(
                by_budget(fast=2_000, full=DATA_SIZE), 2, generator=torch.Generator().manual_seed(7)
            )
            noise, data_hat = reflow_pairs(base, noise, steps=50, method="rk4")
            model, info = train_flow(steps // 2, "paired", data_hat, source=noise, init=base, seed=3_000)
            info["reflow_pairs"] = {"count": noise.shape[0], "solver": "rk4", "steps": 50}
        elif method == "meanflow":
            teacher, record = icfm_teacher(trained, digests, args.out, steps, data)
            model, info = train_meanflow(steps, teacher, data)
            info["teacher"] = record
        trained[method] = model
        reference = sample_target(TARGET, 1000, seed=99)
        quality = w2(sample(model, info, 1000, seed=5), reference)
        baseline = w2(sample_target(TARGET, 1000, seed=98), reference)
        settings = {
            "method": method,
            "target": TARGET,
            "model": AVERAGE_MODEL if method == "meanflow" else MODEL,
            "train_steps": steps,
            "batch": BATCH,
            "lr": LR,
            "lr_schedule": LR_SCHEDULE,
            "budget": budget(),
            **info,
            "metrics": {"w2_to_target": round(quality, 4), "w2_data_vs_data": round(baseline, 4)},
        }
        digest = digests[method] = save_checkpoint(args.out / f"{method}.pt", model.state_dict(), settings)
        how = " (1 step)" if method == "meanflow" else ""
        print(
            f"{method:8s} W2 {quality:.3f}{how} (data vs data {baseline:.3f})  "
            f"{time.process_time() - start:.0f} s cpu  sha256 {digest[:12]}"
        )


if __name__ == "__main__":
    main()
