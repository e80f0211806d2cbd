"""The explorers in a kernel: a control moves, the figure's data change as the library says; bad input gives a message."""

import math

import pytest
import torch

from lessons.checkpoints import load_checkpoint
from lessons.data2d import sample_target
from lessons.flow_matching import cfm_loss
from lessons.metrics import straightness, straightness_per_sample
from lessons.mnist import tile
from lessons.models import MLP
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule
from lessons.solvers import solve_ode
from lessons.training import random_batches, train
from widgets.models2d import CHECKPOINT_DIR, METHOD_CHECKPOINTS, PretrainedModels, sample_method
from widgets.sampler_explorer import SamplerExplorer
from widgets.schedule_explorer import ScheduleExplorer
from widgets.training_monitor import TrainingMonitor
from widgets.trajectory_explorer import TrajectoryExplorer


@pytest.fixture(scope="module")
def models():
    return PretrainedModels()


def test_checkpoints_load_with_settings_and_checksums():
    for name in sorted(set(METHOD_CHECKPOINTS.values())):
        state, settings = load_checkpoint(CHECKPOINT_DIR / f"{name}.pt")
        assert settings["method"] == name and settings["target"] == "8gaussians"
        MLP(**settings["model"]).load_state_dict(state)  # strict: every tensor present, right shapes
        raw = torch.load(CHECKPOINT_DIR / f"{name}.pt", weights_only=True)
        assert raw["sha256"] and len(raw["sha256"]) == 64
    total = sum(p.stat().st_size for p in CHECKPOINT_DIR.glob("*.pt"))
    assert total < 500_000, f"the 2D checkpoints take {total} bytes; keep them small"


def test_schedule_explorer_draws_the_library_schedule_and_marginal():
    e = ScheduleExplorer(family="cosine", t=0.5)
    assert not e.message.value
    alpha_curve = e.view.data[0]
    ref = CosineSchedule()(torch.tensor(alpha_curve["x"], dtype=torch.float64)).alpha
    torch.testing.assert_close(torch.tensor(alpha_curve["y"], dtype=torch.float64), ref, atol=1e-4, rtol=0)
    before = e.view.data[10]["z"]
    e.t.value = 0.9
    c = CosineSchedule()(torch.tensor([0.9]))
    assert e.view.data[5]["x"] == [0.9] and e.view.data[5]["y"][0] == pytest.approx(float(c.alpha), abs=1e-4)
    assert e.view.data[6]["y"][0] == pytest.approx(float(c.sigma), abs=1e-4)
    assert e.view.data[10]["z"] != before  # the marginal changed
    assert e.last_update_seconds < 1.0


def test_schedule_explorer_family_change_and_impossible_schedule():
    e = ScheduleExplorer(family="cosine")
    e.family.value = "vp"
    assert [b.description for b in e.params] == ["beta_min", "beta_max"]
    ts = torch.tensor(e.view.data[1]["x"][:-1], dtype=torch.float64)  # sigma; t = 1 is sigma = 0
    torch.testing.assert_close(
        torch.tensor(e.view.data[1]["y"][:-1], dtype=torch.float64), VPSchedule()(ts).sigma, atol=1e-4, rtol=0
    )
    curve = list(e.view.data[1]["y"])
    e.params[0].value = 30.0  # beta_min > beta_max
    assert "beta_min" in e.message.value and e.message.layout.display != "none"
    assert e.view.data[1]["y"] == curve  # the figure keeps the last good schedule
    e.t.value = 0.3  # still a message, not a traceback
    assert e.message.value
    e.params[0].value = 0.1
    assert not e.message.value and e.message.layout.display == "none"


def test_trajectory_explorer_shows_the_library_samples(models):
    e = TrajectoryExplorer(
        models=models, left="I-CFM", right="reflow", steps=4, n_samples=200, precompute=False
    )
    traj = sample_method(models, "I-CFM", e.noise, 4, "euler")
    expected = solve_ode(models.get("icfm")[0], e.noise, steps=4, method="euler")
    torch.testing.assert_close(traj.xs, expected.xs)
    samples = e.view.data[7]  # left panel: target, 5 bend bins, noise, samples
    torch.testing.assert_close(torch.tensor([samples["x"], samples["y"]]).T, traj.final, atol=1e-4, rtol=0)
    assert f"{straightness(traj):.2f}" in e.readouts[0].value
    e.steps.value = 2
    assert "2 steps" in e.view.layout["annotations"][0]["text"]
    assert e.view.data[7]["x"] != samples["x"]
    # reflow is straighter than I-CFM: its paths fall in the straighter colour bins
    left = sum(len(e.view.data[1 + b]["x"]) for b in range(2))
    right = sum(len(e.view.data[9 + b]["x"]) for b in range(2))
    assert right > left


def test_trajectory_explorer_zero_steps_and_every_method(models):
    e = TrajectoryExplorer(models=models, steps=3, n_samples=64, n_lines=16, precompute=False)
    e.steps.value = 0
    assert "positive whole number" in e.message.value
    e.steps.value = 3
    assert not e.message.value
    for method, solver in [(m, "euler") for m in METHOD_CHECKPOINTS] + [
        ("PF-ODE", "heun"),
        ("OT-CFM", "dopri5"),
    ]:
        e.left.value, e.solver.value = method, solver
        assert not e.message.value, (method, solver, e.message.value)
        assert all(math.isfinite(v) for v in e.view.data[7]["x"])


def test_straightness_per_sample_is_zero_for_lines_and_averages_to_straightness():
    ts = torch.linspace(0, 1, 11)
    start, end = torch.randn(5, 2), torch.randn(5, 2)
    lines = start[None] + ts[:, None, None] * (end - start)[None]
    from lessons.trajectory import Trajectory

    assert straightness_per_sample(Trajectory(ts, lines, 10)).abs().max() < 1e-10
    bent = lines + torch.sin(torch.pi * ts)[:, None, None] * torch.tensor([1.0, 0.0])
    traj = Trajectory(ts, bent, 10)
    assert straightness_per_sample(traj).mean().item() == pytest.approx(straightness(traj))
    # int_0^1 (pi cos(pi t))^2 dt = pi^2 / 2, minus the discretisation error of 10 steps
    assert straightness_per_sample(traj)[0].item() == pytest.approx(math.pi**2 / 2, rel=0.02)


def test_sampler_explorer_dial_and_rescaling(models):
    e = SamplerExplorer(models=models, steps=6, n_samples=100, n_lines=10)
    ddim_x = list(e.view.data[3]["x"])
    e.amount.value = 1.0
    assert e.view.data[3]["x"] != ddim_x and "DDPM" in e.view.layout["annotations"][0]["text"]
    e.mode.value = "churn"
    assert not e.message.value
    ddim_before, euler_before = list(e.view.data[4]["x"]), list(e.view.data[5]["x"])
    assert ddim_before == pytest.approx(euler_before, abs=1e-3)  # straight path: DDIM = flow Euler (C20)
    e.strength.value = 2.0
    assert e.view.data[4]["x"] == pytest.approx(ddim_before, abs=1e-3)  # DDIM ignores the rescaling (C21)
    moved = max(abs(a - b) for a, b in zip(e.view.data[5]["x"], euler_before))
    assert moved > 0.1  # Euler does not
    e.strength.value = -1.0
    assert "positive" in e.message.value


def test_training_monitor_draws_losses_and_samples():
    data = sample_target("moons", 512, seed=0)
    noise = torch.randn(100, 2)
    monitor = TrainingMonitor(sample=lambda m: solve_ode(m, noise, steps=4).final, target=data, smooth=10)
    path, model = GaussianPath(LinearSchedule()), MLP(hidden=32)
    result = train(
        model,
        lambda m, b: cfm_loss(m, path, b),
        random_batches(data, 64),
        40,
        callback=monitor,
        callback_every=20,
        progress=False,
        device="cpu",
    )
    assert monitor.view.data[0]["y"] == pytest.approx(result.losses, rel=1e-3)
    assert len(monitor.view.data[-1]["x"]) == 100 and "step <b>40</b>" in monitor.status.value
    broken = TrainingMonitor(sample=lambda m: (_ for _ in ()).throw(ValueError("no samples today")))
    broken(1, model, [1.0])
    assert "no samples today" in broken.message.value


def test_training_monitor_leaves_the_training_draws_alone():
    """A sampler that draws from torch's global generator changes nothing in training: same losses, same weights."""
    data, path = sample_target("moons", 512, seed=0), GaussianPath(LinearSchedule())

    def run(callback):
        torch.manual_seed(0)
        model = MLP(hidden=32)
        result = train(
            model,
            lambda m, b: cfm_loss(m, path, b),
            random_batches(data, 64),
            30,
            callback=callback,
            callback_every=10,
            progress=False,
            device="cpu",
            seed=3,
        )
        return result.losses, model.state_dict()

    monitor = TrainingMonitor(sample=lambda m: solve_ode(m, torch.randn(50, 2), steps=2).final)
    losses, weights = run(monitor)
    plain_losses, plain_weights = run(None)
    assert monitor.updates == 3 and not monitor.message.value
    assert losses == plain_losses and all(torch.equal(weights[k], plain_weights[k]) for k in weights)


def test_training_monitor_tiles_image_samples():
    images = torch.rand(12, 1, 6, 5) * 2 - 1
    monitor = TrainingMonitor(sample=lambda m: images, images=True)
    monitor(5, torch.nn.Linear(1, 1), [1.0, 0.9, 0.8, 0.7, 0.6])
    assert not monitor.message.value and monitor.view.data[-1]["type"] == "heatmap"
    z = torch.tensor(monitor.view.data[-1]["z"])
    torch.testing.assert_close(z, tile(images, nrow=10), atol=1e-4, rtol=0)
    wrong = TrainingMonitor(sample=lambda m: torch.zeros(4, 2), images=True)
    wrong(1, torch.nn.Linear(1, 1), [1.0])
    assert "(N, 1, H, W)" in wrong.message.value
