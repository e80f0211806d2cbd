"""The explorers in a kernel: a control moves, the figure's data change as the library says; bad input gives a message."""

import math

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
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
from widgets.base import (
    add_legend_entry,
    add_lines,
    add_markers,
    control_style,
    controls_row,
    density_image,
    noise_and_reference,
    paths_xy,
    readout,
    side_by_side_squares,
    style_axes,
    target_backdrop,
    two_panels,
)
from widgets.checks import check_whole
from widgets.guidance import GuidanceExplorer, guidance_explorer, png, precompute_guided_samples
from widgets.models2d import CHECKPOINT_DIR, METHOD_CHECKPOINTS, PretrainedModels, sample_method
from widgets.plotly_view import PlotlyView, plain
from widgets.sampler_explorer import SamplerExplorer, bump
from widgets.schedule_explorer import ScheduleExplorer, build_schedule
from widgets.training_monitor import TrainingMonitor
from widgets.trajectory_explorer import TrajectoryExplorer, bend_bins


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


def test_trajectory_explorer_starts_at_one_step_and_titles_report_the_real_nfe(models):
    e = TrajectoryExplorer(models=models, steps=3, n_samples=64, n_lines=16, precompute=False)
    assert e.steps.min == 1  # 0 steps only gave an error message
    e.steps.value = 0  # the slider clamps a value below its range
    assert e.steps.value == 1 and not e.message.value
    with pytest.raises(ValueError, match="steps must be a whole number from 1 to 64"):
        TrajectoryExplorer(models=models, steps=0, precompute=False)
    e.steps.value, e.left.value, e.solver.value = 3, "I-CFM", "heun"
    assert e.view.layout["annotations"][0]["text"].endswith("3 steps of heun · NFE 6")
    e.solver.value = "dopri5"  # adaptive: the NFE it really made, not the slider's value
    nfe = e.result("I-CFM", "dopri5", 3)["nfe"]
    title = e.view.layout["annotations"][0]["text"]
    assert nfe != 3 and f"NFE {nfe}" in title and "3 steps" not in title
    e.solver.value = "euler"
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
    e.strength.value = -1.0  # c(t) would reach 0: the slider stops short of it
    assert e.strength.value > -1 and not e.message.value
    assert e.view.layout["annotations"][1]["text"].startswith("<b>c(t) = 1 − 0.9·4t(1−t)</b>")
    assert e.view.layout["annotations"][0]["text"].endswith("NFE 6")


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


# --- bad input is refused in words, before any widget is built ---------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(family="cosin"), ValueError, r"schedule family 'cosin'; choose one of: cosine, ddpm, linear"),
        (dict(family=CosineSchedule), TypeError, "family must be a string"),
        (dict(target="circles"), ValueError, r"2D target 'circles'; choose one of: .*8gaussians"),
        (dict(t=1.5), ValueError, r"t must lie in \[0, 1\], got 1.5"),
        (dict(t=-0.1), ValueError, r"t must lie in \[0, 1\]"),
        (dict(t=float("nan")), ValueError, "t must be a finite number"),
        (dict(t="0.5"), TypeError, "t must be a real number"),
        (dict(n_points=0), ValueError, "n_points must be a whole number from 1 to 1000000"),
        (dict(n_points=10**8), ValueError, "n_points must be a whole number from 1 to 1000000"),
        (dict(n_points=2.5), ValueError, "n_points must be a whole number, got 2.5"),
    ],
)
def test_schedule_explorer_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ScheduleExplorer(**kwargs)


def test_schedule_explorer_accepts_the_ends_of_t():
    assert not ScheduleExplorer(family="linear", t=1.0, n_points=500).message.value
    assert not ScheduleExplorer(family="vp", t=0, n_points=500).message.value


def test_build_schedule_refuses_unknown_families_parameters_and_values():
    with pytest.raises(ValueError, match="schedule family 'VP'; choose one of: cosine, ddpm, linear, ve, vp"):
        build_schedule("VP")
    with pytest.raises(ValueError, match="'vp' schedule takes only beta_min, beta_max; .* sigma_max"):
        build_schedule("vp", sigma_max=3.0)
    with pytest.raises(ValueError, match="'cosine' schedule takes only offset"):
        build_schedule("cosine", beta_min=0.1)
    with pytest.raises(ValueError, match="beta_max must be a finite number"):
        build_schedule("vp", beta_max=float("inf"))
    with pytest.raises(TypeError, match="beta_end must be a real number"):
        build_schedule("ddpm", beta_end="0.02")
    assert build_schedule("ddpm", num_steps=10).num_steps == 10  # every DDPM parameter is still open


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(left="DDIM2"), ValueError, r"left panel 'DDIM2'; choose one of: DDIM, DDPM, I-CFM"),
        (dict(right="ot-cfm"), ValueError, r"right panel 'ot-cfm'; choose one of: .*OT-CFM"),
        (dict(left=None), TypeError, "left must be a string"),
        (dict(solver="rk5"), ValueError, r"ODE solver 'rk5'; choose one of: .*dopri5.*euler"),
        (dict(steps=100), ValueError, "steps must be a whole number from 1 to 64 .*slider.*got 100"),
        (dict(steps=0), ValueError, "steps must be a whole number from 1 to 64"),
        (dict(steps="8"), TypeError, "steps must be a whole number, got str"),
        (dict(n_samples=0), ValueError, "n_samples must be a whole number from 1 to 5000"),
        (dict(n_samples=10**6), ValueError, "n_samples must be a whole number from 1 to 5000 .*transport"),
        (dict(n_samples=100, n_lines=150), ValueError, "n_lines must be a whole number from 1 to 100"),
        (dict(n_lines=-3), ValueError, "n_lines must be a whole number from 1 to 500"),
        (dict(seed=-1), ValueError, "seed must be a whole number between 0 and 4294967295"),
        (dict(precompute="no"), TypeError, "precompute must be True or False"),
        (dict(models=PretrainedModels), TypeError, r"class PretrainedModels itself: call it"),
        (dict(models="icfm"), TypeError, "models must be a PretrainedModels object .* not the string 'icfm'"),
    ],
)
def test_trajectory_explorer_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrajectoryExplorer(**{"precompute": False, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(steps=50), ValueError, "steps must be a whole number from 1 to 40 .*slider.*got 50"),
        (dict(steps=1.5), ValueError, "steps must be a whole number, got 1.5"),
        (dict(n_samples=-1), ValueError, "n_samples must be a whole number from 1 to 5000"),
        (dict(n_lines=0), ValueError, "n_lines must be a whole number from 1 to 300"),
        (dict(n_samples=20), ValueError, "n_lines must be a whole number from 1 to 20"),
        (dict(seed=2.5), ValueError, "seed must be a whole number between 0 and 4294967295, got 2.5"),
        (
            dict(models=torch.nn.Linear(2, 2)),
            TypeError,
            "models must be a PretrainedModels object .* got Linear",
        ),
    ],
)
def test_sampler_explorer_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SamplerExplorer(**kwargs)


def test_sampler_explorer_helpers_refuse_bad_arguments(models):
    with pytest.raises(ValueError, match="strength s must be a finite number"):
        bump(float("inf"))
    with pytest.raises(TypeError, match="strength s must be a real number"):
        bump("2")
    with pytest.raises(ValueError, match="needs s > -1"):
        bump(-1.5)
    e = SamplerExplorer.__new__(SamplerExplorer)  # the checks come before any use of the explorer's state
    with pytest.raises(ValueError, match="unknown dial 'temperature'; choose one of: churn, eta"):
        e.dial_result("temperature", 0.5, 4)
    with pytest.raises(ValueError, match=r"eta amount must lie in \[0, inf\)"):
        e.dial_result("eta", -0.5, 4)
    with pytest.raises(ValueError, match="churn amount must be a finite number"):
        e.dial_result("churn", float("nan"), 4)
    with pytest.raises(ValueError, match="number of steps must be a positive whole number"):
        e.dial_result("eta", 0.5, 0)
    with pytest.raises(ValueError, match="strength s must be a finite number"):
        e.rescaling_result(float("nan"), 4)
    with pytest.raises(ValueError, match="number of steps must be a positive whole number"):
        e.rescaling_result(1.0, -2)


def test_sample_method_refuses_bad_arguments(models):
    noise = torch.randn(4, 2)
    with pytest.raises(TypeError, match="models must be a PretrainedModels object .* not the string 'icfm'"):
        sample_method("icfm", "I-CFM", noise, 2)
    with pytest.raises(ValueError, match="unknown method 'CFM'; choose one of: DDIM, DDPM, I-CFM"):
        sample_method(models, "CFM", noise, 2)
    with pytest.raises(ValueError, match="unknown ODE solver 'RK4'; choose one of: .*rk4"):
        sample_method(models, "I-CFM", noise, 2, "RK4")
    with pytest.raises(ValueError, match="noise must have 2 columns"):
        sample_method(models, "I-CFM", torch.randn(4, 3), 2)
    with pytest.raises(TypeError, match="noise must be a torch tensor, got list"):
        sample_method(models, "I-CFM", [[0.0, 0.0]], 2)
    with pytest.raises(ValueError, match="noise holds 1 NaN or infinite value"):
        sample_method(models, "I-CFM", torch.tensor([[0.0, float("nan")]]), 2)
    with pytest.raises(ValueError, match=r"noise has dtype torch.float64 .* noise.to\(torch.float32\)"):
        sample_method(models, "I-CFM", noise.double(), 2)
    with pytest.raises(ValueError, match="stochasticity .* must be a finite number"):
        sample_method(models, "DDIM", noise, 2, stochasticity=float("inf"))
    with pytest.raises(ValueError, match=r"stochasticity .* must lie in \[0, inf\)"):
        sample_method(models, "DDIM", noise, 2, stochasticity=-0.5)
    with pytest.raises(ValueError, match="I-CFM is sampled by a deterministic ODE solver"):
        sample_method(models, "I-CFM", noise, 2, stochasticity=0.5)
    with pytest.raises(ValueError, match="reflow is sampled by a deterministic ODE solver"):
        sample_method(models, "reflow", noise, 2, use_churn=True)
    with pytest.raises(TypeError, match="use_churn must be True or False"):
        sample_method(models, "DDIM", noise, 2, use_churn="yes")
    with pytest.raises(ValueError, match="seed must be a whole number between 0 and 4294967295"):
        sample_method(models, "DDPM", noise, 2, seed=-4)


def test_pretrained_models_refuse_missing_folders_and_names(tmp_path, models):
    with pytest.raises(
        ValueError, match="does not exist; make the 2D checkpoints with python scripts/train_2d"
    ):
        PretrainedModels(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="directory must be a folder path"):
        PretrainedModels(2)
    with pytest.raises(ValueError, match="holds no checkpoints"):
        PretrainedModels(tmp_path).get("icfm")
    with pytest.raises(
        ValueError, match=r"unknown checkpoint in .*'cfm'; choose one of: ddpm, icfm, meanflow, otcfm, reflow"
    ):
        models.get("cfm")


def test_plotting_helpers_refuse_wrong_shapes_and_non_finite_values():
    xs = np.random.default_rng(0).normal(size=(3, 4, 2))
    with pytest.raises(ValueError, match=r"xs .* must have shape \(S\+1, B, 2\), got \(3, 4\)"):
        paths_xy(xs[:, :, 0])
    with pytest.raises(ValueError, match=r"must have shape \(S\+1, B, 2\), got \(3, 4, 3\)"):
        paths_xy(np.zeros((3, 4, 3)))
    bad = xs.copy()
    bad[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="xs .* holds 1 NaN or infinite value"):
        paths_xy(bad)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        paths_xy(xs.tolist())
    tensor_xy = paths_xy(torch.tensor(xs, dtype=torch.float32))  # a tensor is read as its array
    np.testing.assert_allclose(tensor_xy[0], paths_xy(xs.astype(np.float32))[0])
    assert [len(x) for x, _ in bend_bins(xs[:, :0], np.zeros(0))] == [0] * 5  # empty bins are fine
    with pytest.raises(ValueError, match="relative_bend has 3 values for 4 paths"):
        bend_bins(xs, np.zeros(3))
    with pytest.raises(ValueError, match="relative_bend must be >= 0"):
        bend_bins(xs, -np.ones(4))
    with pytest.raises(ValueError, match="relative_bend .* holds 1 NaN"):
        bend_bins(xs, np.array([0.0, np.nan, 0.1, 0.2]))
    centers = np.linspace(-1, 1, 5)
    with pytest.raises(ValueError, match="target with a closed-form density 'moons'; choose one of"):
        density_image("moons", centers)
    with pytest.raises(ValueError, match=r"centers .* must have shape \(P,\)"):
        density_image("8gaussians", np.zeros((5, 2)))
    with pytest.raises(ValueError, match="centers .* holds 1 NaN"):
        density_image("8gaussians", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"sigma must lie in \[0, inf\), got -1"):
        density_image("8gaussians", centers, 1.0, -1.0)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        density_image("8gaussians", centers, float("nan"), 1.0)
    with pytest.raises(ValueError, match="alpha and sigma cannot both be 0"):
        density_image("8gaussians", centers, 0.0, 0.0)


def test_figure_helpers_refuse_wrong_objects_and_ranges():
    fig = two_panels(("a", "b"))
    with pytest.raises(ValueError, match="titles must be two strings"):
        two_panels(("only one",))
    with pytest.raises(ValueError, match="titles must be two strings"):
        two_panels("ab")
    with pytest.raises(TypeError, match="class Figure itself: call it"):
        style_axes(go.Figure)
    with pytest.raises(ValueError, match=r"view .* must lie in \(0, inf\), got 0"):
        side_by_side_squares(fig, 0)
    with pytest.raises(ValueError, match=r"view .* must lie in \(0, inf\), got -8"):
        target_backdrop(fig, (1, 2), -8.0)
    with pytest.raises(ValueError, match="pixels must be a whole number from 2 to 1000"):
        target_backdrop(fig, (1, 2), 8.0, pixels=1)
    with pytest.raises(TypeError, match="cols must be a list of panel columns"):
        target_backdrop(fig, 1, 8.0)
    with pytest.raises(TypeError, match="line must be a dict"):
        add_lines(fig, "paths", "red")
    with pytest.raises(ValueError, match="row must be a whole number from 1 to 1"):
        add_markers(fig, None, {}, row=0)
    with pytest.raises(TypeError, match="width .* must be a string"):
        control_style(300)
    with pytest.raises(TypeError, match="value .* must be a string"):
        readout(3.5)
    with pytest.raises(ValueError, match="n_samples must be a whole number >= 1"):
        noise_and_reference(0, 0)
    with pytest.raises(ValueError, match="seed must be a whole number between 0 and 4294967295"):
        noise_and_reference(10, -1)


def test_plotly_view_refuses_missing_traces_and_wrong_kinds():
    with pytest.raises(TypeError, match="figure must be a Figure or dict object .* not the string"):
        PlotlyView("a figure")
    view = PlotlyView(two_panels(("a", "b")))  # no traces, two annotations (the titles)
    view_with_trace = PlotlyView(go.Figure(go.Scatter(x=[0], y=[0])))
    with pytest.raises(ValueError, match="there is no trace 1: the figure has 1 trace"):
        view_with_trace.update({1: {"x": [1]}})
    with pytest.raises(ValueError, match="there is no trace 0: the figure has 0 trace.*no traces"):
        view.update({0: {"x": [1]}})
    with pytest.raises(TypeError, match="properties of trace 0 must be a dict"):
        view_with_trace.update({0: [1, 2]})
    with pytest.raises(ValueError, match="there is no annotation 5: the figure has 2 annotation"):
        view.update(annotations={5: "title"})
    with pytest.raises(TypeError, match="annotation 0 must be given a text"):
        view.update(annotations={0: 3})
    with pytest.raises(TypeError, match="layout must be a dict"):
        view.update(layout=["height", 300])
    before = view.figure
    with pytest.raises(ValueError, match="no annotation 2"):
        view.update(layout={"height": 300}, annotations={0: "ok", 2: "missing"})
    assert view.figure == before  # nothing changed
    with pytest.raises(ValueError, match="decimals must be a whole number from 0 to 15"):
        plain(np.zeros(2), decimals=-1)
    assert plain(np.array([1.23456, np.nan])) == [1.2346, None]  # NaN is still a gap in a trace


def test_explorer_plumbing_refuses_wrong_kinds():
    e = ScheduleExplorer(n_points=500)
    with pytest.raises(TypeError, match="action must be a function"):
        e.guard("update")
    with pytest.raises(TypeError, match="put the one widget in a list"):
        e.observe(e.t, e._update_all)
    with pytest.raises(TypeError, match="each control must be an ipywidgets control"):
        e.observe(["t"], e._update_all)
    with pytest.raises(TypeError, match="message text must be a string or None"):
        e.show_message(3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(sample=MLP(hidden=8)),
            TypeError,
            "sample must be a function of the model .* you passed a network",
        ),
        (dict(sample="ddpm"), TypeError, "sample must be a function such as"),
        (dict(smooth=0), ValueError, "smooth .* must be a whole number >= 1"),
        (dict(smooth=2.5), ValueError, "smooth .* must be a whole number, got 2.5"),
        (dict(target=torch.zeros(5, 2)), ValueError, "target is the data drawn behind 2D samples"),
        (dict(sample=abs, target=torch.zeros(5, 2), images=True), ValueError, "target is the data drawn"),
        (dict(sample=abs, target=torch.zeros(5, 3)), ValueError, "target must have 2 columns"),
        (dict(sample=abs, target=torch.tensor([[0.0, float("inf")]])), ValueError, "target holds 1 NaN"),
        (dict(sample=abs, target=[[0.0, 0.0]]), TypeError, "target must be a torch tensor"),
        (dict(view=-7), ValueError, r"view .* must lie in \(0, inf\), got -7"),
        (dict(sample=abs, view=7, images=True), ValueError, "view sets the axes of 2D samples"),
        (dict(images="yes"), TypeError, "images must be True or False"),
        (dict(title=3), TypeError, "title must be a string or None"),
    ],
)
def test_training_monitor_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainingMonitor(**kwargs)


def test_training_monitor_refuses_bad_calls_and_names_bad_samples():
    net = torch.nn.Linear(2, 2)
    monitor = TrainingMonitor()
    with pytest.raises(ValueError, match="losses is empty"):
        monitor(1, net, [])
    with pytest.raises(TypeError, match="losses must be the list of losses so far, got float"):
        monitor(1, net, 0.5)
    with pytest.raises(TypeError, match="model must be a Module object"):
        monitor(1, "net", [1.0])
    with pytest.raises(ValueError, match="step must be a whole number >= 0"):
        monitor(-1, net, [1.0])
    wide = TrainingMonitor(sample=lambda m: torch.zeros(4, 3))
    wide(2, net, [1.0, 0.5])
    assert "must have 2 columns" in wide.message.value
    assert wide.view.data[0]["y"] == [1.0, 0.5]  # the losses are drawn all the same
    diverged = TrainingMonitor(sample=lambda m: torch.tensor([[0.0, float("nan")]]))
    diverged(1, net, [float("nan")])
    assert "holds 1 NaN or infinite value" in diverged.message.value
    assert "not finite" in diverged.status.value
    numbers = TrainingMonitor(sample=lambda m: [[0.0, 0.0]])
    numbers(1, net, [1.0])
    assert "must be a torch tensor, got list" in numbers.message.value


def _fake_guided_samples(scales=(0.0, 1.0), per_class=2):
    return {(d, s): torch.zeros(per_class, 1, 28, 28) for d in range(10) for s in scales}


def test_guidance_explorer_refuses_incomplete_samples_and_wrong_kinds():
    assert not GuidanceExplorer(_fake_guided_samples()).message.value
    missing = _fake_guided_samples()
    del missing[(7, 1.0)]
    with pytest.raises(ValueError, match=r"no samples of digit\(s\) \[7\] at scale 1.0"):
        GuidanceExplorer(missing)
    with pytest.raises(ValueError, match=r"keys must be \(digit 0-9, scale\) pairs.*got 12"):
        GuidanceExplorer({12: torch.zeros(2, 1, 28, 28)})
    with pytest.raises(ValueError, match=r"keys must be \(digit 0-9, scale\) pairs.*got \(10, 0.0\)"):
        GuidanceExplorer({**_fake_guided_samples(), (10, 0.0): torch.zeros(2, 1, 28, 28)})
    bad = _fake_guided_samples()
    bad[(3, 0.0)] = torch.zeros(2, 3, 28, 28)
    with pytest.raises(
        ValueError, match=r"samples\[\(3, 0.0\)\] must be grey images of shape \(N, 1, H, W\)"
    ):
        GuidanceExplorer(bad)
    bad[(3, 0.0)] = torch.full((2, 1, 28, 28), float("nan"))
    with pytest.raises(ValueError, match=r"samples\[\(3, 0.0\)\] holds 1568 NaN"):
        GuidanceExplorer(bad)
    with pytest.raises(TypeError, match=r"samples must be the dict .* got list"):
        GuidanceExplorer([torch.zeros(2, 1, 28, 28)])
    with pytest.raises(ValueError, match="zoom must be a whole number from 1 to 10"):
        GuidanceExplorer(_fake_guided_samples(), zoom=0)
    with pytest.raises(TypeError, match="classifier must be a DigitClassifier object"):
        GuidanceExplorer(_fake_guided_samples(), classifier=torch.nn.Linear(784, 10))
    with pytest.raises(
        ValueError, match=r"images must be grey images of shape \(N, 1, H, W\), got \(2, 28, 28, 1\)"
    ):
        png(torch.zeros(2, 28, 28, 1), 2)
    with pytest.raises(ValueError, match="images must have 4 dimensions"):
        png(torch.zeros(28, 28), 1)
    with pytest.raises(ValueError, match="nrow .* must be a whole number >= 1"):
        png(torch.zeros(2, 1, 28, 28), 0)


def test_precompute_guided_samples_refuses_bad_arguments_before_sampling():
    net = torch.nn.Linear(1, 1)  # never called: every check comes first
    with pytest.raises(TypeError, match="class Linear itself: call it"):
        precompute_guided_samples(torch.nn.Linear, [0.0])
    with pytest.raises(TypeError, match="model must be a Module object .* not the string 'unet'"):
        precompute_guided_samples("unet", [0.0])
    with pytest.raises(ValueError, match="scales is empty"):
        precompute_guided_samples(net, [])
    with pytest.raises(TypeError, match="scales must be a list of guidance scales"):
        precompute_guided_samples(net, 2.0)
    with pytest.raises(ValueError, match="each guidance scale w in scales must be a finite number"):
        precompute_guided_samples(net, [0.0, float("inf")])
    with pytest.raises(ValueError, match=r"each guidance scale w in scales must lie in \[0, inf\)"):
        precompute_guided_samples(net, [-1.0])
    with pytest.raises(ValueError, match="per_class .* must be a whole number >= 1"):
        precompute_guided_samples(net, [0.0], per_class=0)
    with pytest.raises(ValueError, match="nfe .* must be a whole number >= 1"):
        precompute_guided_samples(net, [0.0], nfe=0)
    with pytest.raises(ValueError, match="memory"):
        precompute_guided_samples(net, [0.0], per_class=10**9)


def test_check_whole_accepts_whole_floats_and_names_the_range():
    assert check_whole(10.0, "steps") == 10 and isinstance(check_whole(np.int64(3), "steps"), int)
    with pytest.raises(ValueError, match=r"steps must be a whole number from 1 to 4 \(why\), got 5"):
        check_whole(5, "steps", high=4, why=" (why)")
    with pytest.raises(TypeError, match="steps must be a whole number, got bool"):
        check_whole(True, "steps")
    with pytest.raises(ValueError, match="steps must be a whole number, got inf"):
        check_whole(float("inf"), "steps")


def test_panels_are_checked_against_the_figures_grid_and_titles_against_their_kind():
    fig = two_panels(("a", "b"))
    with pytest.raises(ValueError, match="titles must be two strings.*got 5"):
        two_panels(5)
    with pytest.raises(ValueError, match=r"col must be a whole number from 1 to 2 \(the figure has 2 column"):
        add_lines(fig, "x", {}, col=3)
    with pytest.raises(ValueError, match=r"row must be a whole number from 1 to 1 \(the figure has 1 row"):
        add_markers(fig, "x", {}, row=2)
    with pytest.raises(ValueError, match="col must be a whole number from 1 to 2"):
        target_backdrop(fig, (3,), 8.0, pixels=10)
    with pytest.raises(ValueError, match="fig has no grid of panels"):
        add_lines(go.Figure(), "x", {})
    assert len(fig.data) == 0  # refused before any trace was added
    target_backdrop(fig, (1, 2.0), 8.0, pixels=10)  # a whole float is a column, as before
    assert [trace.xaxis for trace in fig.data] == ["x", "x2"]


def test_noise_and_reference_refuses_what_memory_cannot_hold_before_drawing():
    with pytest.raises(ValueError, match="n_samples = 1,000,000,000,000 points would need about"):
        noise_and_reference(10**12, 0)
    noise, reference = noise_and_reference(10, 0)
    assert noise.shape == reference.shape == (10, 2)


def test_a_type_error_is_the_learners_mistake_shown_as_is():
    net = torch.nn.Linear(2, 2)
    words = TrainingMonitor(sample=lambda m: "x")
    words(1, net, [1.0])
    message = words.message.value
    assert message.startswith("Cannot show this setting:") and "went wrong" not in message
    assert "the samples of sample(model) must be a torch tensor, got str" in message
    assert words.view.data[0]["y"] == [1.0]  # the losses are drawn all the same
    e = ScheduleExplorer(n_points=500)

    def wrong_kind():
        raise TypeError("schedule must be a Schedule object, not the string 'vp'.")

    def bug():
        raise KeyError("internal")

    assert not e.guard(wrong_kind) and "Cannot show this setting: schedule must be" in e.message.value
    assert not e.guard(bug) and "Something went wrong (KeyError" in e.message.value


def test_check_callable_refuses_a_class():
    with pytest.raises(TypeError, match="got the class MLP itself"):
        TrainingMonitor(sample=MLP)
    e = ScheduleExplorer(n_points=500)
    with pytest.raises(TypeError, match="action must be a function such as self.update, got the class"):
        e.guard(ScheduleExplorer)


@pytest.fixture
def small_explorers(models):
    """A small one of each explorer that the screen tests below look at: the schedule, trajectory and sampler."""
    return [
        ScheduleExplorer(n_points=500),
        TrajectoryExplorer(models=models, n_samples=64, n_lines=16, precompute=False),
        SamplerExplorer(models=models, n_samples=64, n_lines=8),
    ]


def test_every_slider_is_valid_at_both_ends(small_explorers):
    for e in small_explorers:
        sliders = [c for c in vars(e).values() if isinstance(c, (w.IntSlider, w.FloatSlider))]
        assert sliders, type(e).__name__
        for slider in sliders:
            start = slider.value
            for end in (slider.min, slider.max):
                slider.value = end
                assert not e.message.value, (type(e).__name__, slider.description, end, e.message.value)
            slider.value = start


def test_explorers_fit_a_screen_with_readouts_above_the_plot_and_a_legend_per_panel(small_explorers):
    for e in small_explorers:
        kinds = [type(child).__name__ for child in e.widget.children]
        assert kinds[-1] == "PlotlyView" and "course-fit" in e.widget._dom_classes  # the plot last, stretched
        assert "height" not in e.view.layout  # plotly fills the frame's height
        readouts = [c for c in e.widget.children if "course-readout" in getattr(c, "_dom_classes", ())]
        readouts += [
            c
            for box in e.widget.children
            for c in getattr(box, "children", ())
            if "course-readout" in c._dom_classes
        ]
        assert readouts, type(e).__name__
    for e in small_explorers[
        1:
    ]:  # the two-panel explorers: each panel's traces are named in that panel's legend
        names = {1: set(), 2: set()}
        for trace in e.view.data:
            if trace.get("showlegend", True) and trace["type"] == "scatter":
                names[2 if trace.get("legend") == "legend2" else 1].add(trace["name"])
            panel = 2 if trace.get("xaxis") == "x2" else 1
            assert (trace.get("legend") == "legend2") == (panel == 2), trace["name"]
        assert "target density" in names[1] and "target density" in names[2]
        assert len(names[2]) >= 3, names  # more than the backdrop: what the right panel draws
    trajectories = small_explorers[1]
    legend = {(t["name"], t.get("legend", "legend")) for t in trajectories.view.data if t["x"] == [None]}
    for label in ("straight", "very curved / noisy"):  # every bend colour, even when no path has it
        assert (label, "legend") in legend and (label, "legend2") in legend


def test_frame_moves_the_plot_below_readouts_and_fits_only_stretchable_plots():
    e = ScheduleExplorer(n_points=500)
    frame = e._frame(e.message, e.view, e.readout)  # a plot given before a readout still ends up last
    assert frame.children[-1] is e.view and frame.children[-2] is e.readout
    fixed = PlotlyView(go.Figure(layout=dict(height=300)))
    assert "course-fit" not in e._frame(fixed)._dom_classes  # a plot of fixed height keeps it
    assert "course-fit" not in e._frame(e.message)._dom_classes
    row = controls_row(w.IntSlider(), w.Dropdown(options=["a"]))
    assert "course-controls" in row._dom_classes
    with pytest.raises(TypeError, match="each control must be a Widget object"):
        controls_row(w.IntSlider(), "steps")
    fig = two_panels(("a", "b"))
    add_legend_entry(fig, "target density", dict(color="grey"), col=2)
    side_by_side_squares(fig, 8.0)
    assert fig.data[0].legend == "legend2" and fig.data[0].x == (None,)
    with pytest.raises(ValueError, match="exactly one of marker or line"):
        add_legend_entry(fig, "both", dict(color="grey"), line=dict(color="grey"))
    with pytest.raises(ValueError, match="exactly one of marker or line"):
        add_legend_entry(fig, "neither")
    with pytest.raises(ValueError, match="col must be a whole number from 1 to 2"):
        add_legend_entry(fig, "third", dict(color="grey"), col=3)


class _TinyGuidedFlow(torch.nn.Module):
    """A class-conditional 'flow' whose velocity is a constant per class: its guided samples are known exactly."""

    def __init__(self):
        super().__init__()
        self.num_classes = 10  # class 10 is 'no class', as label dropout trains it
        self.level = torch.nn.Parameter(torch.linspace(-0.5, 0.5, 11))

    def forward(self, x, t, cond=None):
        level = self.level[cond if cond is not None else torch.full((x.shape[0],), 10)]
        return level.view(-1, 1, 1, 1).expand_as(x) - 0 * x


def test_guidance_explorer_adds_scales_in_the_background_with_the_same_noise():
    model = _TinyGuidedFlow()
    e = guidance_explorer(model, [2.0, 0.0, 1.0], per_class=3, nfe=2, seed=5)
    assert e.scale.options[0] == 0.0 and e.scale.value == 0.0  # the lowest scale is ready at once
    e.filling.join(timeout=60)
    assert not e.filling.is_alive() and e.pending == () and not e.message.value
    assert list(e.scale.options) == [0.0, 1.0, 2.0]
    reference = precompute_guided_samples(model, [0.0, 1.0, 2.0], per_class=3, nfe=2, seed=5)
    for key, images in reference.items():  # the same noise for every scale, as in one precompute call
        torch.testing.assert_close(e.samples[key], images)
    e.scale.value = 2.0
    assert "w = <b>2</b>" in e.readout.value and "still making" not in e.readout.value
    e.add_samples(precompute_guided_samples(model, [0.5], per_class=3, nfe=2, seed=5))
    assert list(e.scale.options) == [0.0, 0.5, 1.0, 2.0] and e.scale.value == 2.0  # the shown scale stays
    with pytest.raises(ValueError, match=r"has 2 images; the explorer shows 3 per digit"):
        e.add_samples(_fake_guided_samples(scales=(3.0,), per_class=2))
    with pytest.raises(ValueError, match="samples is empty"):
        e.add_samples({})
    with pytest.raises(TypeError, match="samples must be the dict .* got list"):
        e.add_samples([torch.zeros(3, 1, 28, 28)])
    with pytest.raises(ValueError, match=r"no samples of digit\(s\) \[1, 2"):
        e.add_samples({(0, 3.0): torch.zeros(3, 1, 28, 28)})
    with pytest.raises(TypeError, match="classifier must be a DigitClassifier object"):
        guidance_explorer(model, [0.0], classifier="clf")  # refused before any sample is made
    with pytest.raises(ValueError, match="scales is empty"):
        guidance_explorer(model, [])
    with pytest.raises(ValueError, match="zoom must be a whole number from 1 to 10"):
        guidance_explorer(model, [0.0], zoom=11)
