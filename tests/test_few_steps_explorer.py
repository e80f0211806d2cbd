"""The few-steps explorer in a kernel: each panel draws the library's sampler on the shared budget of network calls,
from the same noise; the calls are counted independently; controls move the traces; bad input is refused in words."""

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from lessons.checkpoints import load_checkpoint
from lessons.data2d import sample_target
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.dpm_solver import dpm_solver_2m
from lessons.edm_sampler import ddpm_karras_times, edm_heun, karras_sigmas, karras_times
from lessons.mean_flow import AverageVelocityMLP, mean_flow_sample
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.solvers import solve_ode
from widgets import few_steps_explorer
from widgets.few_steps_explorer import SAMPLERS, FewStepsExplorer, edm_levels, few_step_sample
from widgets.models2d import CHECKPOINT_DIR, PretrainedModels, build_network

N, SEED = 200, 5
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_2d_checkpoints.py"


class CallCounter(torch.nn.Module):
    """A network that counts its own calls in counts[name], then answers as the network inside."""

    def __init__(self, net, counts: Counter, name: str):
        super().__init__()
        self.net, self.counts, self.name = net, counts, name

    def forward(self, *args, **kwargs):
        self.counts[self.name] += 1
        return self.net(*args, **kwargs)


class CountingModels(PretrainedModels):
    """The shipped checkpoints, each network wrapped in a CallCounter: every sampler's calls are seen here."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def get(self, name):
        model, settings = super().get(name)
        return CallCounter(model, self.counts, name), settings


@pytest.fixture(scope="module")
def models():
    return PretrainedModels()


@pytest.fixture(scope="module")
def explorer(models):
    return FewStepsExplorer(models=models, nfe=4, n_samples=N, n_lines=4, seed=SEED)


def _points(trace) -> torch.Tensor:
    return torch.tensor([trace["x"], trace["y"]], dtype=torch.float32).T


def _bold(text: str, i: int) -> float:
    """The i-th bold number of a readout."""
    return float(text.split("<b>")[i + 1].split("</b>")[0])


def _eps_setup(models):
    settings = models.get("ddpm")[1]
    ddpm = DDPM(settings["ddpm_steps"], settings["beta_start"], settings["beta_end"])
    return models.get("ddpm")[0], ddpm, DiscreteVPSchedule(ddpm)


def test_both_panels_draw_the_librarys_samplers_from_the_same_noise(explorer, models):
    e = explorer
    e.left.value, e.right.value, e.nfe.value = "DDIM", "DPM-Solver++(2M)", 4
    assert not e.message.value
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(SEED))
    torch.testing.assert_close(e.noise, noise)
    eps, ddpm, schedule = _eps_setup(models)
    left = ddim(eps, noise, schedule, ddim_times(ddpm, 4)).final
    right = dpm_solver_2m(eps, noise, schedule, ddim_times(ddpm, 4)).final
    torch.testing.assert_close(_points(e.view.data[3]), left, atol=1e-4, rtol=0)
    torch.testing.assert_close(_points(e.view.data[5]), right, atol=1e-4, rtol=0)
    reference = sample_target("8gaussians", N, seed=SEED + 1)
    exact = dpm_solver_2m(eps, noise, schedule, ddim_times(ddpm, 1000)).final
    for side, final in ((0, left), (1, right)):
        text = e.readouts[side].value
        assert _bold(text, 0) == 4  # NFE 4 of 4
        assert _bold(text, 1) == pytest.approx(w2(final, reference, solver="emd"), abs=0.006)
        assert _bold(text, 2) == pytest.approx((final - exact).norm(dim=1).mean().item(), abs=6e-4)
    assert e.view.layout["annotations"][0]["text"] == "<b>DDIM</b> · NFE 4"
    assert e.view.layout["annotations"][1]["text"] == "<b>DPM-Solver++(2M)</b> · NFE 4"


def test_the_exact_solution_agrees_with_another_method_far_better_than_any_few_step_sampler(explorer, models):
    eps, ddpm, schedule = _eps_setup(models)
    exact = explorer.exact_solution("ddpm")
    by_ddim = ddim(eps, explorer.noise, schedule, ddim_times(ddpm, 1000)).final  # first order, not 2M
    gap = (exact - by_ddim).norm(dim=1).mean().item()
    assert gap < 0.1 * explorer.sampler_result("DPM-Solver++(2M)", 20)["error"]
    with torch.inference_mode():  # the velocity networks' exact solution: RK4 at 4x the steps moves it little
        finer = solve_ode(models.get("icfm")[0], explorer.noise, steps=400, method="rk4").final
    assert (explorer.exact_solution("icfm") - finer).norm(dim=1).mean().item() < 0.01
    # MeanFlow is measured against its I-CFM teacher's flow, which it learned
    assert explorer.sampler_result("MeanFlow", 4)["error"] == pytest.approx(
        (
            mean_flow_sample(models.get("meanflow")[0], explorer.noise, 4).final
            - explorer.exact_solution("icfm")
        )
        .norm(dim=1)
        .mean()
        .item(),
        abs=1e-5,
    )


def test_every_sampler_stays_within_the_budget_counted_by_a_wrapper():
    models = CountingModels()
    e = FewStepsExplorer(models=models, nfe=20, n_samples=32, n_lines=2, seed=SEED)  # 1, 2, 4: not drawn yet
    for network in ("ddpm", "icfm", "reflow"):  # the exact solutions first: their calls are not a sampler's
        e.exact_solution(network)
    for sampler, checkpoint in SAMPLERS.items():
        for budget in (1, 2, 4):
            before = models.counts[checkpoint]
            res = e.sampler_result(sampler, budget)
            calls = models.counts[checkpoint] - before
            expected = 2 * edm_levels(budget) - 1 if sampler == "EDM Heun" else budget
            assert calls == res["nfe"] == expected <= budget, (sampler, budget, calls, res["nfe"])
            assert torch.isfinite(res["final"]).all() and res["final"].shape == (32, 2)
    e.left.value, e.nfe.value = "EDM Heun", 4
    assert _bold(e.readouts[0].value, 0) == 3 and "2 levels" in e.readouts[0].value
    e.nfe.value = 1
    assert _bold(e.readouts[0].value, 0) == 1 and "single Euler step" in e.readouts[0].value
    assert not e.message.value


def test_edm_levels_are_the_most_a_budget_pays_for_and_match_the_library_grid(models):
    assert [edm_levels(b) for b in (1, 2, 3, 4, 5, 20)] == [1, 1, 2, 2, 3, 10]
    eps, ddpm, schedule = _eps_setup(models)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    run = few_step_sample(models, "EDM Heun", noise, 6)
    assert run.nfe == 5 and len(run.ts) == 4  # 3 levels, then sigma = 0
    sigma_max = (schedule(torch.zeros(1)).sigma / schedule(torch.zeros(1)).alpha).item()
    k1 = ddim_times(ddpm, ddpm.num_steps)[-2:-1]
    sigma_min = (schedule(k1).sigma / schedule(k1).alpha).item()
    ts = karras_times(schedule, 3, sigma_min=sigma_min, sigma_max=sigma_max)
    torch.testing.assert_close(run.xs, edm_heun(eps, noise, schedule, ts).xs)
    assert karras_sigmas(3, sigma_min, sigma_max)[0].item() == pytest.approx(sigma_max)
    assert ts[0].item() == pytest.approx(0.0, abs=1e-6)  # EDM starts where DDIM starts, at the noise
    assert torch.equal(run.ts, ddpm_karras_times(ddpm, 3))  # the library's grid, bit for bit
    with pytest.raises(ValueError, match="budget of network calls"):
        edm_levels(0)


def test_the_edm_grid_is_built_once_per_setting_and_a_caller_cannot_spoil_it(models):
    cache = few_steps_explorer._edm_times
    cache.cache_clear()
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    first = few_step_sample(models, "EDM Heun", noise, 5)
    first.ts.fill_(0.5)  # a learner writes into the trajectory's times
    again = few_step_sample(models, "EDM Heun", noise, 5)  # the same 3 levels: the cached grid
    few_step_sample(models, "EDM Heun", noise, 6)  # 3 levels again (6 calls buy 2 Heun steps and 1 Euler)
    assert cache.cache_info().misses == 1 and cache.cache_info().hits == 2
    _, ddpm, _ = _eps_setup(models)
    assert torch.equal(again.ts, ddpm_karras_times(ddpm, 3))
    few_step_sample(models, "EDM Heun", noise, 7)  # 4 levels: a new grid
    assert cache.cache_info().misses == 2


def test_controls_move_the_traces_and_a_setting_seen_before_comes_from_the_cache(explorer):
    e = explorer
    e.left.value, e.right.value, e.nfe.value = "DDIM", "DPM-Solver++(2M)", 4
    left, right = list(e.view.data[3]["x"]), list(e.view.data[5]["x"])
    e.nfe.value = 8
    assert e.view.data[3]["x"] != left and e.view.data[5]["x"] != right
    assert e.view.layout["annotations"][0]["text"].endswith("NFE 8")
    e.left.value = "MeanFlow"
    assert e.view.data[3]["x"] != left and e.view.data[3]["name"] == "MeanFlow"
    assert e.view.data[3]["marker"]["color"] != e.view.data[5]["marker"]["color"]
    assert "I-CFM teacher" in e.readouts[0].value
    shown, cached = e.view.data[5]["x"], len(e._cache)
    e.right.value = "reflow (Euler)"
    assert e.view.data[5]["x"] != shown
    e.right.value = "DPM-Solver++(2M)"  # (2M, 8) was drawn above
    assert e.view.data[5]["x"] == shown and len(e._cache) == cached + 1
    assert e.last_update_seconds < 1.0 and not e.message.value


def test_the_same_sampler_in_both_panels_gives_the_same_points(explorer):
    e = explorer
    e.left.value, e.right.value, e.nfe.value = "reflow (Euler)", "reflow (Euler)", 3
    assert e.view.data[3]["x"] == e.view.data[5]["x"] and e.view.data[3]["y"] == e.view.data[5]["y"]
    # two samplers from the same noise: at 2 steps DPM-Solver++(2M) takes DDIM's first-order steps only. The
    # two update formulas are equal in exact arithmetic, not in float32: their rounding, amplified through the
    # network, reached 1.0e-4 (3.6e-5 relative) on an AMD EPYC where it stayed below 1e-4 elsewhere, so the
    # tolerance is 1e-4 relative to each point as well; the third step below moves every point by more than 1e-3
    e.left.value, e.right.value, e.nfe.value = "DDIM", "DPM-Solver++(2M)", 2
    torch.testing.assert_close(_points(e.view.data[3]), _points(e.view.data[5]), atol=1e-4, rtol=1e-4)
    assert "= DDIM here" in e.readouts[1].value
    e.nfe.value = 3  # from the third step on, its line through two predictions moves every point
    assert (_points(e.view.data[3]) - _points(e.view.data[5])).norm(dim=1).min() > 1e-3


def test_second_order_and_one_step_models_beat_their_first_order_baselines(explorer):
    e = explorer
    for budget in (10, 20):  # the solver's order: 2M is closer to the network's exact solution than DDIM
        ddim_error = e.sampler_result("DDIM", budget)["error"]
        assert e.sampler_result("DPM-Solver++(2M)", budget)["error"] < 0.7 * ddim_error, budget
    assert e.sampler_result("DPM-Solver++(2M)", 10)["w2"] < e.sampler_result("DDIM", 2)["w2"]
    # one call: the I-CFM teacher's Euler step collapses towards the data mean; its student and reflow do not
    teacher = e.sampler_result("I-CFM (Euler)", 1)["w2"]
    for sampler in ("MeanFlow", "reflow (Euler)"):
        assert e.sampler_result(sampler, 1)["w2"] < min(e.band.max().item() * 1.5, 0.25 * teacher), sampler


def test_bad_input_is_refused_in_words(explorer, models, tmp_path):
    with pytest.raises(ValueError, match="nfe .*from 1 to 20"):
        FewStepsExplorer(models=models, nfe=0)
    with pytest.raises(ValueError, match="unknown sampler for the left panel 'Euler'"):
        FewStepsExplorer(models=models, left="Euler")  # not a sampler's name
    with pytest.raises(TypeError, match="models must be a PretrainedModels"):
        FewStepsExplorer(models="models")
    with pytest.raises(ValueError, match="n_samples"):
        FewStepsExplorer(models=models, n_samples=0)
    with pytest.raises(ValueError, match="sampler"):
        explorer.sampler_result("DDPM", 2)
    with pytest.raises(ValueError, match="budget of network calls"):
        explorer.sampler_result("DDIM", 0)
    with pytest.raises(ValueError, match="budget of network calls"):
        few_step_sample(models, "DDIM", explorer.noise, 21)
    with pytest.raises(ValueError, match="noise"):
        few_step_sample(models, "DDIM", torch.zeros(4, 3), 2)
    with pytest.raises(TypeError, match="PretrainedModels"):
        few_step_sample(PretrainedModels, "DDIM", explorer.noise, 2)
    explorer.nfe.value = 0  # the slider clamps a value below its range
    assert explorer.nfe.value == 1 and not explorer.message.value
    folder = tmp_path / "2d"  # a checkpoint folder from before MeanFlow: its choice says how to make it
    folder.mkdir()
    for name in ("icfm", "reflow"):
        shutil.copy(CHECKPOINT_DIR / f"{name}.pt", folder)
    old = FewStepsExplorer(
        PretrainedModels(folder), left="I-CFM (Euler)", right="reflow (Euler)", n_samples=32
    )
    assert not old.message.value
    shown = old.view.data[3]["x"]
    old.left.value = "MeanFlow"
    assert "--methods meanflow" in old.message.value and old.view.data[3]["x"] == shown
    old.left.value = "I-CFM (Euler)"
    assert not old.message.value


def test_the_meanflow_checkpoint_is_an_average_velocity_network_that_the_script_describes(models):
    script = _script()
    assert "meanflow" in script.CHECKPOINT_METHODS
    assert script.CHECKPOINT_METHODS.index("meanflow") > script.CHECKPOINT_METHODS.index("icfm")
    state, settings = load_checkpoint(CHECKPOINT_DIR / "meanflow.pt")
    assert settings["method"] == "meanflow" and settings["architecture"] == "average_velocity"
    assert settings["model"] == script.AVERAGE_MODEL and settings["teacher"]["method"] == "icfm"
    AverageVelocityMLP(**settings["model"]).load_state_dict(state)  # strict: every tensor, right shapes
    model, _ = models.get("meanflow")
    assert isinstance(model, AverageVelocityMLP) and isinstance(models.get("icfm")[0], MLP)
    # the script's quality readout samples MeanFlow by its one jump, not by Euler steps of a velocity
    noise = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    quality = script.sample(model, settings, 50, seed=3)
    torch.testing.assert_close(quality, noise + model(noise, torch.zeros(50), torch.ones(50)).detach())


def test_build_network_follows_the_settings_and_refuses_what_it_cannot_build():
    assert type(build_network({"model": {"dim": 2, "hidden": 8, "depth": 1}})) is MLP
    net = build_network({"architecture": "average_velocity", "model": {"dim": 2, "hidden": 8, "depth": 1}})
    assert type(net) is AverageVelocityMLP
    with pytest.raises(ValueError, match="unet"):
        build_network({"architecture": "unet", "model": {}})
    with pytest.raises(ValueError, match="'model'"):
        build_network({"method": "icfm"})
    with pytest.raises(TypeError, match="dict"):
        build_network("icfm")


def test_the_scripts_meanflow_recipe_trains_and_finds_its_teacher(tmp_path):
    script = _script()
    data = sample_target("8gaussians", 512, seed=1)
    teacher, record = script.icfm_teacher({}, {}, tmp_path, 2, data)  # no icfm.pt: trains one
    assert isinstance(teacher, MLP) and record["source"] == "trained for this checkpoint"
    shutil.copy(CHECKPOINT_DIR / "icfm.pt", tmp_path)
    loaded, record = script.icfm_teacher({}, {}, tmp_path, 2, data)
    assert (
        record["source"] == "icfm.pt"
        and record["sha256"] == torch.load(tmp_path / "icfm.pt", weights_only=True)["sha256"]
    )
    assert script.icfm_teacher({"icfm": teacher}, {"icfm": "abc"}, tmp_path, 2, data)[0] is teacher
    student, info = script.train_meanflow(3, loaded, data)
    assert isinstance(student, AverageVelocityMLP) and info["architecture"] == "average_velocity"
    assert torch.isfinite(script.sample(student, info, 8)).all()


def _script():
    spec = importlib.util.spec_from_file_location("train_2d_checkpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_update_at_the_default_sizes_is_quick(models):
    e = FewStepsExplorer(models=models)
    for control, value in ((e.nfe, 7), (e.left, "EDM Heun"), (e.right, "MeanFlow"), (e.nfe, 20), (e.nfe, 1)):
        control.value = value
        assert not e.message.value
        assert e.last_update_seconds < 1.0, (control.description, value, e.last_update_seconds)


def test_the_slider_is_valid_at_both_ends_and_the_frame_fits_a_screen(explorer):
    e = explorer
    e.left.value, e.right.value = "EDM Heun", "MeanFlow"
    for end in (e.nfe.min, e.nfe.max):
        e.nfe.value = end
        assert not e.message.value, (end, e.message.value)
    kinds = [type(child).__name__ for child in e.widget.children]
    assert kinds[-1] == "PlotlyView" and "course-fit" in e.widget._dom_classes  # the plot last, stretched
    assert "height" not in e.view.layout
    readouts = [c for box in e.widget.children for c in getattr(box, "children", ())]
    assert sum("course-readout" in c._dom_classes for c in readouts) == 2  # one per panel, above the plot
    names = {1: set(), 2: set()}
    for trace in e.view.data:
        panel = 2 if trace.get("xaxis") == "x2" else 1
        assert (trace.get("legend") == "legend2") == (panel == 2), trace["name"]
        if trace.get("showlegend", True) and trace["type"] == "scatter":
            names[panel].add(trace["name"])
    assert names == {1: {"target density", "paths", "EDM Heun"}, 2: {"target density", "paths", "MeanFlow"}}
