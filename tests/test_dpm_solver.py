"""DPM-Solver++(2M): diffusers' DPMSolverMultistepScheduler as the reference, second order on a Gaussian, DDIM as its first step."""

import math

import numpy as np
import pytest
import torch
from model_helpers import gaussian_model

try:
    from diffusers import DPMSolverMultistepScheduler
except ImportError as err:  # a clear word instead of a bare ImportError, as in test_references
    raise ImportError(
        f"diffusers is missing ({err}); run `make setup`, which installs it with --no-deps"
    ) from None

from lessons.data2d import eight_gaussians
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.dpm_solver import dpm_solver_2m, half_log_snr, log_snr_times
from lessons.mixture import ExactMixtureModel
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule, log_snr_bisection
from lessons.trajectory import CountingModel

F64 = torch.float64
MEAN, STD = torch.tensor([1.0, -0.5]), 0.5  # the single Gaussian target of the order tests


def _noise(n=256, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def exact_flow(schedule, x, t_a, t_b):
    """The probability-flow ODE's exact map from t_a to t_b for data ~ N(MEAN, STD^2 I): z = (x - alpha m) / r is kept."""
    c_a, c_b = (schedule(torch.tensor([t], dtype=F64)) for t in (t_a, t_b))
    r_a, r_b = ((c.alpha**2 * STD**2 + c.sigma**2).sqrt() for c in (c_a, c_b))
    return c_b.alpha * MEAN.double() + r_b * (x - c_a.alpha * MEAN.double()) / r_a


def rms(a, b):
    """Root mean square over samples of the distance between two states (B, D): each sample against its own."""
    return float((a - b).pow(2).sum(1).mean().sqrt())


def by_hand_2m(model, x, schedule, ts, coefficient):
    """2M written from the paper with D = D_t + coefficient(r) (D_t - D_prev), r = h_prev / h; the true one is 1 / (2 r)."""
    data_prev, h_prev = None, None
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        c_t, c_s = (schedule(torch.tensor([u], dtype=F64)) for u in (t, s))
        data = model.mixture.posterior_mean(x, c_t.alpha, c_t.sigma).double()
        h = 0.5 * (c_s.log_snr() - c_t.log_snr()).item()
        d = data if data_prev is None else data + coefficient(h_prev / h) * (data - data_prev)
        x = c_s.sigma / c_t.sigma * x + c_s.alpha * (1 - math.exp(-h)) * d
        data_prev, h_prev = data, h
    return x


def observed_order(steps, errors):
    """Minus the slope of log error against log steps (least squares): 1 for Euler / DDIM, 2 for a second-order method."""
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


def _diffusers_run(model, ddpm, noise, steps, final, lower_order_final):
    """diffusers' DPM-Solver++(2M) on DDPM's betas, 'trailing' steps (= ddim_times), each step's model call at our t."""
    sched = DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++",
        solver_order=2,
        timestep_spacing="trailing",
        final_sigmas_type=final,
        lower_order_final=lower_order_final,
    )
    assert torch.allclose(sched.alphas_cumprod.double(), ddpm.alpha_bars[1:], rtol=1e-5)
    sched.alphas_cumprod = ddpm.alpha_bars[
        1:
    ].clone()  # the float64 alpha-bars: sigmas rounded once, not cumulated
    sched.set_timesteps(steps)
    x = noise.float()  # diffusers steps in float32 whatever the input
    for step in sched.timesteps:  # diffusers' timestep j is DDPM's step k = j + 1
        eps = model(x=x.double(), t=ddpm.t_of(int(step) + 1, F64).expand(len(x)))
        x = sched.step(eps.float(), step, x).prev_sample
    return x.double()


def float32_band(noise, ddpm):
    """diffusers steps in float32: its data prediction (x - sigma eps) / alpha loses eps_32 |x| / alpha_T at the start."""
    return (
        torch.finfo(torch.float32).eps * noise.abs().max().item() / ddpm.alpha_bars[-1].sqrt().item()
    )  # 7e-5


@pytest.mark.parametrize(
    "steps, final, lower_order_final",
    [
        (2, "zero", True),
        (10, "zero", True),
        (20, "zero", True),
        (10, "sigma_min", True),
        (10, "sigma_min", False),
    ]
    + [(20, "sigma_min", True)],
)
def test_matches_diffusers_dpm_solver_pp_2m(steps, final, lower_order_final):
    """'zero' ends at the data (k = 0), 'sigma_min' one DDPM step short (k = 1), where the last step may be second order."""
    ddpm = DDPM()
    schedule = DiscreteVPSchedule(ddpm)
    model = ExactMixtureModel(eight_gaussians(), schedule, "eps")
    noise = _noise()
    ts = ddim_times(ddpm, steps, F64)
    if final == "sigma_min":
        ts[-1] = ddpm.t_of(1, F64)
    ours = dpm_solver_2m(model, noise, schedule, ts, lower_order_final=lower_order_final).final
    theirs = _diffusers_run(model, ddpm, noise, steps, final, lower_order_final)
    assert torch.allclose(ours, theirs, rtol=0, atol=float32_band(noise, ddpm)), (ours - theirs).abs().max()
    # control: the same band tells apart a run that differs from diffusers' only in its last step's order
    if final == "sigma_min" and steps < 15:
        other = dpm_solver_2m(model, noise, schedule, ts, lower_order_final=not lower_order_final).final
        assert not torch.allclose(other, theirs, rtol=0, atol=float32_band(noise, ddpm))


def test_lower_order_final_changes_only_the_last_step_of_a_short_grid():
    ddpm = DDPM()
    schedule = DiscreteVPSchedule(ddpm)
    model = ExactMixtureModel(eight_gaussians(), schedule, "eps")
    ts = ddim_times(ddpm, 10, F64)
    ts[-1] = ddpm.t_of(1, F64)
    a = dpm_solver_2m(model, _noise(), schedule, ts, lower_order_final=True).xs
    b = dpm_solver_2m(model, _noise(), schedule, ts, lower_order_final=False).xs
    assert torch.equal(a[:-1], b[:-1]) and not torch.allclose(a[-1], b[-1])
    ts = ddim_times(ddpm, 10, F64)  # into sigma = 0 the last step is first order either way (h is infinite)
    a = dpm_solver_2m(model, _noise(), schedule, ts, lower_order_final=True).xs
    b = dpm_solver_2m(model, _noise(), schedule, ts, lower_order_final=False).xs
    assert torch.equal(a, b)


def test_first_step_is_ddim_and_the_second_is_not():
    schedule = VPSchedule()
    model = gaussian_model(schedule, MEAN, STD)
    ts = torch.tensor([0.0, 0.3, 0.6, 0.9], dtype=F64)  # step 3, the last of a short grid, is first order
    ours, theirs = (f(model, _noise(), schedule, ts).xs for f in (dpm_solver_2m, ddim))
    assert torch.allclose(ours[1], theirs[1], atol=1e-12)
    assert not torch.allclose(ours[2], theirs[2], atol=1e-3)
    # by hand: x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^(-h)) D, D = (1 + 1/(2r)) D_t - 1/(2r) D_prev
    cs = [schedule(ts[i : i + 1]) for i in range(3)]
    lam = [math.log(c.alpha.item() / c.sigma.item()) for c in cs]
    data = [model.mixture.posterior_mean(ours[i], c.alpha, c.sigma).double() for i, c in enumerate(cs[:2])]
    h, r = lam[2] - lam[1], (lam[1] - lam[0]) / (lam[2] - lam[1])
    d = (1 + 1 / (2 * r)) * data[1] - 1 / (2 * r) * data[0]
    by_hand = cs[2].sigma / cs[1].sigma * ours[1] + cs[2].alpha * (1 - math.exp(-h)) * d
    assert torch.allclose(ours[2], by_hand, atol=1e-12)


@pytest.mark.parametrize("grid", ["log_snr", "time"])
def test_second_order_on_a_gaussian_where_ddim_is_first(grid):
    """RMS error against the exact flow of the same noise at 32, 64, 128 steps: fitted order near 2, DDIM's near 1."""
    schedule, t_end = VPSchedule(), 0.99  # short of sigma = 0, where any last step is first order
    model = gaussian_model(schedule, MEAN, STD)
    noise = _noise(512)
    reference = exact_flow(schedule, noise, 0.0, t_end)
    steps, errors = (32, 64, 128), {"2m": [], "ddim": []}
    for n in steps:
        ts = (
            log_snr_times(schedule, n, 0.0, t_end, F64)
            if grid == "log_snr"
            else torch.linspace(0, t_end, n + 1)
        )
        errors["2m"].append(rms(dpm_solver_2m(model, noise, schedule, ts.double()).final, reference))
        errors["ddim"].append(rms(ddim(model, noise, schedule, ts.double()).final, reference))
    second, first = observed_order(steps, errors["2m"]), observed_order(steps, errors["ddim"])
    assert abs(second - 2) < 0.15, errors  # measured 1.97 (log-SNR grid), 1.95 (time grid)
    assert abs(first - 1) < 0.15, errors  # measured 0.98
    assert abs(first - 2) > 0.15  # the same band rejects a first-order method
    assert all(a < b for a, b in zip(errors["2m"], errors["ddim"]))


def test_the_order_test_rejects_a_wrong_multistep_coefficient():
    """By hand, 1 / (2 r) reproduces the library to round-off; 1 / r (a line read at the step's end) is first order."""
    schedule, t_end = VPSchedule(), 0.99
    model = gaussian_model(schedule, MEAN, STD)
    noise = _noise(512)
    reference = exact_flow(schedule, noise, 0.0, t_end)
    steps, right, wrong = (32, 64, 128), [], []
    for n in steps:
        ts = log_snr_times(schedule, n, 0.0, t_end, F64)
        ours = dpm_solver_2m(model, noise, schedule, ts).final
        assert torch.allclose(by_hand_2m(model, noise, schedule, ts, lambda r: 1 / (2 * r)), ours, atol=1e-10)
        right.append(rms(ours, reference))
        wrong.append(rms(by_hand_2m(model, noise, schedule, ts, lambda r: 1 / r), reference))
    assert abs(observed_order(steps, right) - 2) < 0.15
    assert abs(observed_order(steps, wrong) - 2) > 0.15, wrong


def test_every_prediction_type_gives_the_same_trajectory():
    """The sampler only sees the data prediction, so eps, data, v, velocity and score models agree (short of t = 1)."""
    schedule = CosineSchedule(offset=0.008)
    ts = torch.linspace(0.02, 0.98, 9, dtype=F64)
    runs = {
        kind: dpm_solver_2m(
            gaussian_model(schedule, MEAN, STD, kind), _noise(), schedule, ts, prediction=kind
        )
        for kind in ("eps", "data", "v", "velocity", "score")
    }
    for kind, traj in runs.items():
        assert torch.allclose(traj.xs, runs["eps"].xs, atol=1e-9), kind


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule()])
def test_from_pure_noise_to_the_data_it_beats_ddim_at_twice_the_steps(schedule):
    """alpha = 0 at t = 0 and sigma = 0 (cosine: 6e-17 in float64) at t = 1: both end steps are first order,
    and 2M with n steps is still closer to the exact flow than DDIM with 2 n (a velocity model, flow matching's)."""
    model = gaussian_model(schedule, MEAN, STD, "velocity")
    noise = _noise(512)
    reference = exact_flow(schedule, noise, 0.0, 1.0)
    for n in (10, 20, 40):
        ours = dpm_solver_2m(
            model, noise, schedule, torch.linspace(0, 1, n + 1, dtype=F64), prediction="velocity"
        )
        ddim_2n = ddim(
            model, noise, schedule, torch.linspace(0, 1, 2 * n + 1, dtype=F64), prediction="velocity"
        )
        assert rms(ours.final, reference) < rms(ddim_2n.final, reference), n


def test_trajectory_records_every_state_and_counts_each_network_call():
    schedule = DiscreteVPSchedule(DDPM())
    counted = CountingModel(ExactMixtureModel(eight_gaussians(), schedule, "eps"))
    ts = ddim_times(DDPM(), 7)
    traj = dpm_solver_2m(counted, torch.randn(5, 2), schedule, ts)
    assert traj.xs.shape == (8, 5, 2) and torch.equal(traj.ts, ts)
    assert traj.nfe == counted.calls == 7


def test_half_log_snr_is_half_the_schedules_log_snr():
    schedule, t = VPSchedule(), torch.linspace(0.05, 0.95, 7, dtype=F64)
    c = schedule(t)
    ours = [half_log_snr(a, s) for a, s in zip(c.alpha.tolist(), c.sigma.tolist())]
    assert torch.allclose(torch.tensor(ours, dtype=F64), schedule.log_snr(t) / 2, atol=1e-12)
    assert half_log_snr(0.0, 1.0) == -math.inf and half_log_snr(1.0, 0.0) == math.inf


@pytest.mark.parametrize(
    "schedule", [VPSchedule(), CosineSchedule(), LinearSchedule(), DiscreteVPSchedule(DDPM())]
)
def test_log_snr_times_are_even_in_log_snr(schedule):
    ts = log_snr_times(schedule, 12, 0.01, 0.99, F64)
    lam = schedule.log_snr(ts)
    assert ts[0] == 0.01 and ts[-1] == 0.99 and bool((ts[1:] > ts[:-1]).all())
    gaps = lam[1:] - lam[:-1]
    assert torch.allclose(gaps, gaps.mean().expand(12), rtol=1e-8)
    # the closed-form inverse against bisection, an independent computation
    assert torch.allclose(ts[1:-1], log_snr_bisection(schedule, lam[1:-1]), atol=1e-10)


def test_bad_input_is_refused_in_words():
    schedule = VPSchedule()
    model = gaussian_model(schedule, MEAN, STD)
    x, ts = torch.randn(4, 2), torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="increasing"):
        dpm_solver_2m(model, x, schedule, ts.flip(0))
    with pytest.raises(ValueError, match="prediction type"):
        dpm_solver_2m(model, x, schedule, ts, prediction="x0")
    with pytest.raises(TypeError, match="lower_order_final"):
        dpm_solver_2m(model, x, schedule, ts, lower_order_final="yes")
    with pytest.raises(TypeError, match="Schedule"):
        dpm_solver_2m(model, x, "vp", ts)
    with pytest.raises(ValueError, match="alpha"):  # an eps prediction at alpha = 0
        dpm_solver_2m(gaussian_model(LinearSchedule(), MEAN, STD), x, LinearSchedule(), ts)
    with pytest.raises(ValueError, match="log-SNR at t_end"):
        log_snr_times(schedule, 10, 0.0, 1.0)
    with pytest.raises(ValueError, match="t_start must be smaller"):
        log_snr_times(schedule, 10, 0.5, 0.2)
    with pytest.raises(ValueError, match="steps"):
        log_snr_times(schedule, 0)
    with pytest.raises(ValueError, match="both be 0"):
        half_log_snr(0.0, 0.0)
