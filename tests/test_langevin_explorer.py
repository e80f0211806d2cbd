"""The Langevin explorer in a kernel: it draws the library's chains and SDE samples, its sliders move them, bad input is refused."""

import math

import pytest
import torch

import widgets.langevin_explorer as module
from lessons.data2d import sample_target, target_density
from lessons.flow_sde import flow_sde
from lessons.langevin import annealed_langevin, langevin
from lessons.metrics import energy_distance
from lessons.mixture import ExactMixtureModel
from lessons.schedules import LinearSchedule, VPSchedule
from widgets.langevin_explorer import LangevinExplorer, mode_occupancy, mode_spread

N, SEED = 120, 5
MIXTURE = target_density("8gaussians")


@pytest.fixture(scope="module")
def explorer():
    return LangevinExplorer(evaluations=50, flow_steps=3, n_samples=N, n_lines=4, seed=SEED)


def _points(trace) -> torch.Tensor:
    return torch.tensor([trace["x"], trace["y"]], dtype=torch.float32).T


def _bold(text: str, i: int) -> float:
    """The i-th bold number of a readout."""
    return float(text.split("<b>")[i + 1].split("</b>")[0])


def _occupancy_by_hand(x):
    nearest = ((x[:, None, :] - MIXTURE.means[None]) ** 2).sum(-1).argmin(1)
    return torch.tensor([(nearest == k).float().mean().item() for k in range(8)], dtype=torch.float64)


def test_the_explorer_draws_the_librarys_langevin_chains_and_their_numbers(explorer):
    e = explorer
    e.mode.value, e.start.value = "plain", "one mode"
    assert not e.message.value
    start = MIXTURE.means[:1].repeat(N, 1)
    run = langevin(MIXTURE.score, start, 0.05, 50, generator=torch.Generator().manual_seed(SEED + 3))
    torch.testing.assert_close(_points(e.view.data[3]), run.final, atol=1e-4, rtol=0)
    reference = sample_target("8gaussians", N, seed=SEED + 1)
    spread = (torch.cdist(run.final.double(), MIXTURE.means.double()).min(1).values ** 2).mean().item()
    tv = 0.5 * (_occupancy_by_hand(run.final) - 1 / 8).abs().sum().item()
    text = e.readouts[0].value
    assert _bold(text, 0) == pytest.approx(spread, abs=0.006)
    assert _bold(text, 1) == pytest.approx(tv, abs=0.006)
    assert _bold(text, 2) == pytest.approx(energy_distance(run.final, reference), abs=6e-4)
    shown = [float(s.rstrip("%")) / 100 for s in e.view.data[4]["text"]]
    assert shown == pytest.approx(_occupancy_by_hand(run.final).tolist(), abs=0.006)
    assert e.view.data[5]["x"] == [pytest.approx(5.0)]  # the start, marked
    assert "h = 0.05</b>" in e.view.layout["annotations"][0]["text"]


def test_the_annealed_chains_and_the_flow_sde_are_the_librarys(explorer):
    e = explorer
    e.mode.value = "annealed"
    assert not e.message.value and e.step_size.disabled and not e.snr.disabled
    start = MIXTURE.means[:1].repeat(N, 1)
    ts = torch.linspace(0, 0.99, 6)  # 50 evaluations: 5 levels of 10 steps
    model = ExactMixtureModel(MIXTURE, VPSchedule())
    run = annealed_langevin(
        model, start, VPSchedule(), ts, 10, 0.16, generator=torch.Generator().manual_seed(SEED + 3)
    )
    torch.testing.assert_close(_points(e.view.data[3]), run.final, atol=1e-4, rtol=0)
    assert "5 levels × 10 steps" in e.view.layout["annotations"][0]["text"]
    e.mode.value = "plain"
    assert not e.step_size.disabled and e.snr.disabled

    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(SEED))
    velocity = ExactMixtureModel(MIXTURE, LinearSchedule(), prediction="velocity")
    ts = torch.linspace(0, 1, 4)
    sde = flow_sde(
        velocity, noise, LinearSchedule(), ts, 1.0, generator=torch.Generator().manual_seed(SEED + 4)
    )
    ode = flow_sde(velocity, noise, LinearSchedule(), ts, 0.0)
    torch.testing.assert_close(_points(e.view.data[7]), sde.final, atol=1e-4, rtol=0)
    reference = sample_target("8gaussians", N, seed=SEED + 1)
    text = e.readouts[1].value
    assert _bold(text, 0) == pytest.approx(energy_distance(sde.final, reference), abs=6e-4)
    assert _bold(text, 1) == pytest.approx(energy_distance(ode.final, reference), abs=6e-4)


def test_sliders_move_the_samples_and_a_setting_seen_before_comes_from_the_cache(explorer):
    e = explorer
    e.mode.value, e.start.value, e.step_size.value = "plain", "one mode", 0.05
    before = list(e.view.data[3]["x"])
    e.step_size.value = 0.3
    assert e.view.data[3]["x"] != before and "h = 0.3</b>" in e.view.layout["annotations"][0]["text"]
    wide = _bold(e.readouts[0].value, 0)
    e.start.value = "data"
    assert e.view.data[5]["x"] == []  # no single start to mark
    e.step_size.value = 0.01
    assert _bold(e.readouts[0].value, 0) < wide  # a small step keeps the modes narrow
    e.evaluations.value = 100
    assert "100 steps" in e.view.layout["annotations"][0]["text"]
    flow = list(e.view.data[7]["x"])
    e.noise_level.value = 2.5
    assert e.view.data[7]["x"] != flow and "γ = 2.5" in e.view.layout["annotations"][1]["text"]
    e.flow_steps.value = 7
    assert "7 steps" in e.view.layout["annotations"][1]["text"]
    cached, shown = len(e._cache), e.view.data[3]["x"]
    e.evaluations.value = 50
    e.step_size.value = 0.3
    e.start.value = "one mode"  # (plain, one mode, h = 0.3, 50 steps): shown above
    assert len(e._cache) == cached and e.view.data[3]["x"] != shown
    assert _bold(e.readouts[0].value, 0) == wide and not e.message.value


def test_an_update_at_the_default_sizes_is_quick():
    e = LangevinExplorer()
    for control, value in ((e.step_size, 0.2), (e.mode, "annealed"), (e.noise_level, 2.0), (e.flow_steps, 8)):
        control.value = value
        assert not e.message.value
        assert e.last_update_seconds < 1.0, (control.description, e.last_update_seconds)


def test_every_slider_is_valid_from_its_first_to_its_last_value():
    e = LangevinExplorer(evaluations=10, n_samples=60, n_lines=2)
    for mode, control in (("plain", e.step_size), ("annealed", e.snr)):
        e.mode.value = mode
        for exponent in (control.min, control.max):
            control.value = 10**exponent
            assert not e.message.value, (control.description, control.value, e.message.value)
    for control in (e.evaluations, e.noise_level, e.flow_steps):
        for value in (control.min, control.max):
            control.value = value
            assert not e.message.value, (control.description, value, e.message.value)
            assert all(math.isfinite(v) for v in e.view.data[3]["x"] + e.view.data[7]["x"])
    assert 10**e.step_size.min > 0 and 10**e.snr.min > 0 and e.evaluations.min >= 10
    assert e.noise_level.min == 0 and e.flow_steps.min == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(step_size=0), ValueError, r"step_size \(h\) must lie in \[0.001, 0.5\], got 0"),
        (dict(step_size=1.0), ValueError, r"step_size \(h\) must lie in \[0.001, 0.5\]"),
        (dict(step_size="0.1"), TypeError, "step_size .* must be a real number"),
        (dict(snr=float("nan")), ValueError, r"snr \(r\) must be a finite number"),
        (dict(evaluations=5), ValueError, "evaluations must be a whole number from 10 to 500"),
        (dict(evaluations=55), ValueError, "multiple of 10"),
        (dict(evaluations=2.5), ValueError, "evaluations must be a whole number, got 2.5"),
        (dict(noise_level=-0.5), ValueError, r"noise_level \(gamma\) must lie in \[0, 4\]"),
        (dict(flow_steps=0), ValueError, "flow_steps must be a whole number from 1 to 64"),
        (dict(n_samples=10_000), ValueError, "n_samples must be a whole number from 1 to 2000 .*reruns"),
        (dict(n_samples=10, n_lines=20), ValueError, "n_lines must be a whole number from 1 to 10"),
        (dict(seed=-1), ValueError, "seed must be a whole number between 0 and"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(monkeypatch, kwargs, error, match):
    def no_work(*args, **kw):
        raise AssertionError("the explorer started work before checking its arguments")

    monkeypatch.setattr(module, "target_density", no_work)
    monkeypatch.setattr(module, "noise_and_reference", no_work)
    with pytest.raises(error, match=match):
        LangevinExplorer(**kwargs)


def test_the_result_helpers_refuse_bad_settings_before_sampling():
    e = LangevinExplorer.__new__(LangevinExplorer)  # the checks come before any use of the explorer's state
    with pytest.raises(ValueError, match="unknown Langevin mode 'mala'; choose one of: annealed, plain"):
        e.langevin_result("mala", "data", 0.1, 10)
    with pytest.raises(ValueError, match="unknown start 'noise'"):
        e.langevin_result("plain", "noise", 0.1, 10)
    with pytest.raises(ValueError, match=r"step size h must lie in \(0, inf\)"):
        e.langevin_result("plain", "data", 0.0, 10)
    with pytest.raises(ValueError, match="signal-to-noise ratio r must be a finite number"):
        e.langevin_result("annealed", "data", float("inf"), 10)
    with pytest.raises(ValueError, match="number of score evaluations must be a positive whole number"):
        e.langevin_result("plain", "data", 0.1, 0)
    with pytest.raises(ValueError, match="must be a multiple of 10, got 15"):
        e.langevin_result("annealed", "data", 0.1, 15)
    with pytest.raises(ValueError, match=r"noise level gamma must lie in \[0, inf\)"):
        e.flow_result(-1.0, 4)
    with pytest.raises(ValueError, match="number of flow steps must be a positive whole number"):
        e.flow_result(1.0, 0)


def test_a_library_refusal_is_a_message_not_a_traceback(explorer):
    assert not explorer.guard(explorer.langevin_result, "plain", "data", -0.1, 10)
    assert "Cannot show this setting" in explorer.message.value and "step size h" in explorer.message.value
    explorer.step_size.value = 0.02  # the next good move clears it
    assert not explorer.message.value


def test_mode_occupancy_and_spread_match_a_computation_by_hand():
    x = MIXTURE.sample(400, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mode_occupancy(x, MIXTURE), _occupancy_by_hand(x))
    assert mode_occupancy(MIXTURE.means[2:3].repeat(7, 1), MIXTURE).tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    min_sq = ((x[:, None, :] - MIXTURE.means[None]) ** 2).sum(-1).min(1).values
    assert mode_spread(x, MIXTURE) == pytest.approx(min_sq.mean().item(), rel=1e-5)
    assert mode_spread(MIXTURE.means, MIXTURE) == pytest.approx(0.0, abs=1e-12)
    # 2 s0^2 for a Gaussian mode (a little less: a far point is nearer to another centre)
    big = MIXTURE.sample(200_000, generator=torch.Generator().manual_seed(2))
    assert mode_spread(big, MIXTURE) == pytest.approx(2 * MIXTURE.stds[0].item() ** 2, rel=0.03)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        mode_occupancy(torch.zeros(3, 3), MIXTURE)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, D\)"):
        mode_spread(torch.zeros(3), MIXTURE)
    with pytest.raises(ValueError, match="x holds 6 NaN or infinite"):
        mode_spread(torch.full((3, 2), float("nan")), MIXTURE)
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture object"):
        mode_occupancy(x, "8gaussians")
