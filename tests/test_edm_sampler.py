"""EDM's Heun sampler: Karras sigmas in closed form, EDM's Algorithms 1 and 2 by hand on a VE toy, second order."""

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

from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.edm_sampler import (
    ddpm_karras_times,
    edm_heun,
    edm_sigma,
    karras_sigmas,
    karras_times,
    times_at_sigmas,
)
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    Schedule,
    ScheduleOutput,
    VESchedule,
    VPSchedule,
    log_snr_bisection,
)
from lessons.trajectory import CountingModel

F64 = torch.float64
MEAN, STD = torch.tensor([1.0, -0.5], dtype=F64), 0.5  # the single Gaussian target
SIGMA_MAX = 80.0  # EDM's published sigma_max (sigma_min 0.002, rho 7)


class LinearVE(Schedule):
    """A VE toy that reaches the data: alpha = 1, sigma = 80 (1 - t), so the state is EDM's own x at sigma."""

    name = "linear_ve"

    def _coefficients(self, t):
        one = torch.ones_like(t)
        return ScheduleOutput(one, SIGMA_MAX * (1 - t), 0 * t, -SIGMA_MAX * one)

    def _time_at_log_snr(self, log_snr):
        return 1 - torch.exp(-0.5 * log_snr) / SIGMA_MAX  # sigma = exp(-lambda / 2)


def _noise(n=256, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def denoiser(x, sigma):
    """EDM's D(x; sigma) = E[data | data + sigma noise = x] for data ~ N(MEAN, STD^2 I), written from scratch."""
    return MEAN + STD**2 / (STD**2 + sigma**2) * (x - MEAN)


def exact_flow(schedule, x, t_a, t_b):
    """The probability-flow ODE's exact map from t_a to t_b for the Gaussian: z = (x - alpha m) / r is kept."""
    c_a, c_b = (schedule(torch.tensor([t], dtype=F64)) for t in (t_a, t_b))
    r_a, r_b = ((c.alpha**2 * STD**2 + c.sigma**2).sqrt() for c in (c_a, c_b))
    return c_b.alpha * MEAN + r_b * (x - c_a.alpha * MEAN) / r_a


def rms(a, b):
    return float((a - b).pow(2).sum(1).mean().sqrt())


def observed_order(steps, errors):
    """Minus the slope of log error against log steps (least squares): 1 for Euler / DDIM, 2 for Heun."""
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


def algorithm_2(x, sigmas, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0, generator=None):
    """Karras et al. 2022, Algorithms 1 (s_churn = 0) and 2, line by line in EDM's variables; every x_i (N+1, B, D)."""
    n = len(sigmas) - 1  # sigmas: t_0 > ... > t_(N-1) > t_N = 0
    xs = [x]
    for i in range(n):
        t, t_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= t <= s_tmax else 0.0
        t_hat = t + gamma * t
        if gamma > 0:
            eps = s_noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + math.sqrt(t_hat**2 - t**2) * eps
        d = (x - denoiser(x, t_hat)) / t_hat
        x_next = x + (t_next - t_hat) * d
        if t_next != 0:
            d_prime = (x_next - denoiser(x_next, t_next)) / t_next
            x_next = x + (t_next - t_hat) * (0.5 * d + 0.5 * d_prime)
        x = x_next
        xs.append(x)
    return torch.stack(xs)


@pytest.mark.parametrize("steps, rho", [(2, 7.0), (18, 7.0), (40, 7.0), (10, 1.0), (10, 3.0)])
def test_karras_sigmas_are_the_closed_form(steps, rho):
    lo, hi = (
        0.002,
        80.0,
    )  # the formula subtracts numbers of size hi^(1/rho): round-off 1e-16 hi at the small end
    ours = karras_sigmas(steps, lo, hi, rho)
    by_hand = [
        (hi ** (1 / rho) + i / (steps - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(steps)
    ]
    assert ours.dtype == F64 and torch.allclose(
        ours, torch.tensor(by_hand, dtype=F64), rtol=1e-12, atol=1e-15 * hi
    )
    assert ours[0] == hi and ours[-1] == lo  # the ends exactly
    assert bool((ours[1:] < ours[:-1]).all())
    if rho == 1.0:  # rho = 1 is the grid even in sigma
        assert torch.allclose(ours, torch.linspace(hi, lo, steps, dtype=F64), rtol=1e-12)


def test_karras_sigmas_match_diffusers():
    """diffusers' Karras levels (use_karras_sigmas, rho = 7, between its training sigmas' ends) as a second reference."""
    sched = DPMSolverMultistepScheduler(use_karras_sigmas=True)
    sched.set_timesteps(18)
    train = ((1 - sched.alphas_cumprod.double()) / sched.alphas_cumprod.double()).sqrt()  # float32 alpha-bars
    ours = karras_sigmas(18, train[0].item(), train[-1].item())
    assert torch.allclose(
        ours, sched.sigmas[:-1].double(), rtol=1e-6
    )  # diffusers keeps its levels in float32
    assert sched.sigmas[-1] == 0  # and then sigma = 0, as karras_times appends


@pytest.mark.parametrize(
    "schedule",
    [VPSchedule(), CosineSchedule(offset=0.008), DiscreteVPSchedule(DDPM()), LinearSchedule(), LinearVE()],
)
def test_times_at_sigmas_have_those_noise_levels(schedule):
    ts = karras_times(schedule, 12, dtype=F64)
    levels = torch.cat([karras_sigmas(12), torch.zeros(1, dtype=F64)])
    assert ts[-1] == 1.0 and bool((ts[1:] > ts[:-1]).all())
    assert torch.allclose(edm_sigma(schedule, ts), levels, rtol=1e-9, atol=1e-14)
    # the closed-form inverse against bisection, an independent computation
    assert torch.allclose(ts[:-1], log_snr_bisection(schedule, -2 * levels[:-1].log()), atol=1e-10)


def test_a_schedule_that_never_reaches_sigma_zero_ends_at_its_own_level():
    ve = VESchedule(sigma_min=0.01, sigma_max=80.0)
    with pytest.raises(ValueError, match="never reaches sigma = 0"):
        karras_times(ve, 10, sigma_min=0.01)
    levels = karras_sigmas(10, 0.01, 80.0)
    ts = times_at_sigmas(ve, levels, F64)
    by_hand = torch.log(80.0 / levels) / math.log(80.0 / 0.01)  # sigma = 80 (0.01 / 80)^t solved for t
    assert torch.allclose(ts, by_hand, atol=1e-12)


def test_deterministic_sampler_is_algorithm_1_on_a_ve_toy():
    """Same start x_0 = 80 z: every state agrees with EDM's Algorithm 1; its last step (into sigma = 0) is Euler's."""
    schedule, n = LinearVE(), 18
    x_start = SIGMA_MAX * _noise()
    ours = edm_heun(
        gaussian_model(schedule, MEAN, STD), x_start, schedule, karras_times(schedule, n, dtype=F64)
    )
    levels = karras_sigmas(n).tolist() + [0.0]
    theirs = algorithm_2(x_start, levels)
    assert torch.allclose(ours.xs, theirs, rtol=1e-9, atol=1e-9), (ours.xs - theirs).abs().max()
    assert torch.allclose(
        ours.final, denoiser(ours.xs[-2], levels[-2]), atol=1e-12
    )  # Euler into 0 is D itself
    assert ours.nfe == 2 * n - 1 == 35  # EDM's published CIFAR-10 setting: 18 levels, 35 NFE
    # control: the same check on Heun's first stage alone (Euler in y and sigma, which is DDIM) fails
    euler = ddim(gaussian_model(schedule, MEAN, STD), x_start, schedule, karras_times(schedule, n, dtype=F64))
    assert not torch.allclose(euler.xs, theirs, rtol=1e-9, atol=1e-9)


def test_churn_is_algorithm_2_with_edms_imagenet_settings():
    """S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003, the same generator draws: every state agrees."""
    schedule, n = LinearVE(), 16
    settings = dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)
    x_start = SIGMA_MAX * _noise()
    ts = karras_times(schedule, n, dtype=F64)
    model = gaussian_model(schedule, MEAN, STD)
    ours = edm_heun(model, x_start, schedule, ts, generator=torch.Generator().manual_seed(5), **settings)
    theirs = algorithm_2(
        x_start, karras_sigmas(n).tolist() + [0.0], generator=torch.Generator().manual_seed(5), **settings
    )
    assert torch.allclose(ours.xs, theirs, rtol=1e-9, atol=1e-9), (ours.xs - theirs).abs().max()
    deterministic = edm_heun(model, x_start, schedule, ts)
    assert not torch.allclose(ours.final, deterministic.final, atol=1e-2)  # the churn did change the samples


def test_second_order_on_a_gaussian_where_ddim_is_first():
    """Errors against the exact flow from the same start: Heun's fitted order near 2, DDIM's (EDM's Euler) near 1."""
    schedule = VPSchedule()
    model = gaussian_model(schedule, MEAN, STD)
    steps, errors = (32, 64, 128), {"heun": [], "ddim": []}
    for n in steps:
        ts = karras_times(schedule, n, dtype=F64)  # every grid starts at sigma = 80 and ends at 0.002, then 0
        x_start = schedule(ts[:1]).sigma * _noise()
        reference = exact_flow(schedule, x_start, ts[0].item(), 1.0)
        errors["heun"].append(rms(edm_heun(model, x_start, schedule, ts).final, reference))
        errors["ddim"].append(rms(ddim(model, x_start, schedule, ts).final, reference))
    heun, first = observed_order(steps, errors["heun"]), observed_order(steps, errors["ddim"])
    assert abs(heun - 2) < 0.15, errors  # measured 2.08
    assert abs(first - 1) < 0.15, errors  # measured 0.99
    assert abs(first - 2) > 0.15  # the same band rejects a first-order method
    assert all(a < b for a, b in zip(errors["heun"], errors["ddim"]))


def test_the_path_in_y_is_the_same_on_every_schedule():
    """EDM's ODE dy/dsigma = eps_hat has no schedule in it: y = x / alpha agrees across VP, DDPM's and cosine."""
    runs = []
    for schedule in (VPSchedule(), DiscreteVPSchedule(DDPM()), CosineSchedule(offset=0.008)):
        ts = karras_times(schedule, 10, dtype=F64)
        x_start = schedule(ts[:1]).alpha * SIGMA_MAX * _noise()  # y_0 = 80 z on each
        traj = edm_heun(gaussian_model(schedule, MEAN, STD), x_start, schedule, ts)
        runs.append(traj.xs / schedule(ts).alpha[:, None, None])
    for y in runs[1:]:
        assert torch.allclose(y, runs[0], rtol=1e-8, atol=1e-8)


def test_every_prediction_type_gives_the_same_trajectory():
    schedule = CosineSchedule(offset=0.008)
    ts = torch.linspace(0.02, 0.98, 9, dtype=F64)
    runs = {
        kind: edm_heun(gaussian_model(schedule, MEAN, STD, kind), _noise(), schedule, ts, prediction=kind)
        for kind in ("eps", "data", "v", "velocity", "score")
    }
    for kind, traj in runs.items():
        assert torch.allclose(traj.xs, runs["eps"].xs, atol=1e-9), kind


def test_nfe_counts_each_network_call():
    """2 steps - 1 on EDM's grid (its last step is Euler's), 2 steps on a grid that stops short of sigma = 0."""
    schedule = VPSchedule()
    counted = CountingModel(gaussian_model(schedule, MEAN, STD))
    for ts, expected in ((karras_times(schedule, 7), 13), (torch.linspace(0.1, 0.9, 8), 14)):
        counted.calls = 0
        traj = edm_heun(counted, torch.randn(5, 2, dtype=F64), schedule, ts.double())
        assert traj.nfe == counted.calls == expected and traj.xs.shape == (8, 5, 2)


def test_bad_input_is_refused_in_words():
    schedule = VPSchedule()
    model = gaussian_model(schedule, MEAN, STD)
    x, ts = _noise(4), karras_times(schedule, 4, dtype=F64)
    with pytest.raises(ValueError, match="increasing"):
        edm_heun(model, x, schedule, ts.flip(0))
    with pytest.raises(ValueError, match="alpha = 0"):
        edm_heun(model, x, LinearSchedule(), torch.linspace(0, 1, 5, dtype=F64), prediction="velocity")
    with pytest.raises(ValueError, match="s_churn"):
        edm_heun(model, x, schedule, ts, s_churn=-1.0)
    with pytest.raises(ValueError, match="s_tmax must be >= s_tmin"):
        edm_heun(model, x, schedule, ts, s_tmin=2.0, s_tmax=1.0)
    with pytest.raises(TypeError, match="generator"):
        edm_heun(model, x, schedule, ts, generator=3)
    with pytest.raises(ValueError, match="sigma_min must be smaller"):
        karras_sigmas(10, 80.0, 0.002)
    with pytest.raises(ValueError, match="rho"):
        karras_sigmas(10, rho=0.0)
    with pytest.raises(ValueError, match="steps"):
        karras_sigmas(0)
    with pytest.raises(ValueError, match="noisier than"):
        karras_times(schedule, 10, sigma_max=1e4)
    with pytest.raises(ValueError, match="strictly decreasing"):
        times_at_sigmas(schedule, torch.tensor([1.0, 2.0], dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        karras_times(schedule, 10, dtype=torch.int64)


# the course eps-network's DDPM (T = 1000), a shorter one, and the shortest that has a step before the data
DDPMS = [DDPM(), DDPM(200, 1e-4, 0.05), DDPM(2)]


@pytest.mark.parametrize("ddpm", DDPMS, ids=lambda d: f"T={d.num_steps}")
def test_ddpm_karras_times_is_the_grid_lesson_10_and_the_explorer_built(ddpm):
    """Bit for bit the grid both built by hand: edm_sigma at t = 0 and at DDIM's last time before the data."""
    schedule = DiscreteVPSchedule(ddpm)
    k1 = ddim_times(ddpm, ddpm.num_steps)[-2:-1]  # DDIM's last time before the data, k = 1
    lesson_max = edm_sigma(schedule, torch.zeros(1)).item()  # lesson 10's and the explorer's own lines
    lesson_min = edm_sigma(schedule, k1).item()
    # the explorer test's: sigma_t / alpha_t written out
    test_min = (schedule(k1).sigma / schedule(k1).alpha).item()
    test_max = (schedule(torch.zeros(1)).sigma / schedule(torch.zeros(1)).alpha).item()
    assert (test_min, test_max) == (lesson_min, lesson_max)
    for steps in (1, 2, 3, 10, 25):
        by_hand = karras_times(schedule, steps, sigma_min=lesson_min, sigma_max=lesson_max)
        ours = ddpm_karras_times(ddpm, steps)
        assert ours.dtype == by_hand.dtype == torch.get_default_dtype()
        assert torch.equal(ours, by_hand), steps
        by_hand_64 = karras_times(schedule, steps, sigma_min=lesson_min, sigma_max=lesson_max, dtype=F64)
        assert torch.equal(ddpm_karras_times(ddpm, steps, dtype=F64), by_hand_64)
    # control: a grid that ends one DDPM step further (k = 2) is one the same check tells apart
    if ddpm.num_steps > 2:
        k2 = edm_sigma(schedule, ddim_times(ddpm, ddpm.num_steps)[-3:-2]).item()
        assert not torch.equal(ddpm_karras_times(ddpm, 10), karras_times(schedule, 10, k2, lesson_max))


@pytest.mark.parametrize("ddpm", DDPMS, ids=lambda d: f"T={d.num_steps}")
def test_ddpm_karras_times_spans_the_closed_form_range_of_the_alpha_bars(ddpm):
    """Karras levels between sigma(k) = sqrt((1 - abar) / abar) at k = T and at the k of the time 1 - 1 / T."""
    betas = [ddpm.beta(k) for k in range(1, ddpm.num_steps + 1)]
    abar_top = math.prod(1 - b for b in betas)  # abar_T, in Python floats: not the library's cumprod
    # the low end is read at the time 1 - 1 / T in torch's float32, as ddim_times gives it: for T = 1000 that time
    # is the fractional step k = 0.99998713, where DDPM's log abar (linear between steps) is k log(1 - beta_1)
    k = (1 - torch.tensor(1 - 1 / ddpm.num_steps, dtype=torch.float32).item()) * ddpm.num_steps
    abar_low = (1 - betas[0]) ** k
    top, low = math.sqrt((1 - abar_top) / abar_top), math.sqrt((1 - abar_low) / abar_low)
    ts = ddpm_karras_times(ddpm, 12, dtype=F64)
    levels = edm_sigma(DiscreteVPSchedule(ddpm), ts)

    def karras(low, top, rho=7.0):
        """EDM's 12 levels from top down to low, written out, then 0."""
        lo, hi = low ** (1 / rho), top ** (1 / rho)
        return [(hi + i / 11 * (lo - hi)) ** rho for i in range(12)] + [0.0]

    # the ends are float32: sigma, alpha and their ratio each round by 6e-8 relative; the rest is float64
    assert torch.allclose(levels, torch.tensor(karras(low, top), dtype=F64), rtol=3e-7, atol=0)
    assert ts[-1] == 1.0 and bool((ts[1:] > ts[:-1]).all())
    assert ts[0].item() == pytest.approx(0.0, abs=1e-6)  # it starts at the noise, where DDIM starts
    assert ts[-2].item() == pytest.approx(1 - 1 / ddpm.num_steps, abs=1e-6)  # one DDPM step before the data
    assert len(ddpm_karras_times(ddpm, 1)) == 2  # one level (the top), then the data
    # control: the same check resolves the float32 time; at k = 1 exactly, T = 1000's low end is 6e-6 off
    if ddpm.num_steps == 1000:
        exact_k1 = math.sqrt(betas[0] / (1 - betas[0]))
        assert not torch.allclose(levels, torch.tensor(karras(exact_k1, top), dtype=F64), rtol=3e-7, atol=0)


def test_ddpm_karras_times_refuses_bad_input_in_words():
    with pytest.raises(TypeError, match="ddpm must be a DDPM"):
        ddpm_karras_times(DiscreteVPSchedule(DDPM()), 10)  # the schedule, not the DDPM
    with pytest.raises(TypeError, match="class DDPM itself"):
        ddpm_karras_times(DDPM, 10)
    with pytest.raises(ValueError, match="at least 2 steps"):
        ddpm_karras_times(DDPM(1), 10)
    for steps in (0, 2.5, "10"):
        with pytest.raises(ValueError, match="steps .*noise levels"):
            ddpm_karras_times(DDPM(), steps)
    with pytest.raises(ValueError, match="at most"):
        ddpm_karras_times(DDPM(), 10**9)
    with pytest.raises(ValueError, match="rho"):
        ddpm_karras_times(DDPM(), 10, rho=0.0)
    with pytest.raises(TypeError, match="dtype"):
        ddpm_karras_times(DDPM(), 10, dtype=torch.int64)
