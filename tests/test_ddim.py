"""DDIM and churn: determinism, DDPM's posterior at eta = 1, flow Euler on the linear path, churn as DDIM plus renoising."""

import math

import pytest
import torch
from model_helpers import custom_scale, gaussian_model
from scipy.optimize import brentq

from lessons.data2d import target_density
from lessons.ddim import churn_ratio, churn_sampler, ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.mixture import ExactMixtureModel
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    RescaledSchedule,
    VPSchedule,
)


def test_eta_zero_is_deterministic_and_eta_one_is_not():
    sched = VPSchedule()
    model = gaussian_model(sched, torch.tensor([1.0, -1.0]), 0.5)
    noise, ts = torch.randn(64, 2), torch.linspace(0, 1, 11)
    torch.manual_seed(1)
    a = ddim(model, noise, sched, ts, eta=0.0)
    torch.manual_seed(2)
    b = ddim(model, noise, sched, ts, eta=0.0)
    assert torch.equal(a.xs, b.xs)
    torch.manual_seed(1)
    c = ddim(model, noise, sched, ts, eta=1.0)
    torch.manual_seed(2)
    d = ddim(model, noise, sched, ts, eta=1.0)
    assert not torch.allclose(c.final, d.final)
    seeded = [
        ddim(model, noise, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(5)).final
        for _ in range(2)
    ]
    assert torch.equal(*seeded)


def test_trajectory_shape_and_nfe():
    sched = CosineSchedule()
    ts = torch.linspace(0.01, 1, 8)
    traj = ddim(gaussian_model(sched, 0.0, 1.0), torch.randn(5, 2), sched, ts)
    assert traj.xs.shape == (8, 5, 2) and traj.nfe == 7 and torch.equal(traj.ts, ts)


@pytest.mark.parametrize(
    "schedule, prediction, steps, eta, bias",
    [
        (VPSchedule(), "eps", 100, 0.0, 0.01),
        (CosineSchedule(), "data", 100, 0.0, 0.01),
        (LinearSchedule(), "velocity", 100, 0.0, 0.01),
        # the stochastic sampler's std is a few percent low at 100 steps (like DDPM's), ~1% at 400
        (VPSchedule(), "eps", 400, 1.0, 0.015),
    ],
)
def test_exact_denoiser_lands_on_the_right_gaussian(schedule, prediction, steps, eta, bias):
    n, mean, std = 10_000, torch.tensor([2.0, -1.0]), 0.5
    g = torch.Generator().manual_seed(0)
    model = gaussian_model(schedule, mean, std, prediction)
    x = ddim(
        model,
        torch.randn(n, 2, generator=g),
        schedule,
        torch.linspace(0, 1, steps + 1),
        eta=eta,
        prediction=prediction,
        generator=g,
    ).final
    # tolerance: 5 standard errors plus the discretisation bias of the given number of steps
    assert (x.mean(0) - mean).abs().max() < 5 * std / n**0.5 + bias
    assert (x.std(0) / std - 1).abs().max() < 5 / (2 * n) ** 0.5 + bias


def test_ddim_on_the_linear_schedule_is_flow_euler():
    """x_s = x_t + (s - t) u(x_t, t) for the OT path, whatever the network predicts."""
    sched = LinearSchedule()
    model = gaussian_model(sched, torch.tensor([1.0, 3.0]), 0.7, "velocity")
    ts = torch.tensor([0.0, 0.1, 0.35, 0.6, 1.0])
    x = torch.randn(32, 2)
    traj = ddim(model, x, sched, ts, prediction="velocity")
    for i in range(len(ts) - 1):
        u = model(x=x, t=torch.full((32,), ts[i].item()))
        x = x + (ts[i + 1] - ts[i]) * u
        assert torch.allclose(traj.xs[i + 1], x, atol=1e-5)


def _ddpm_posterior(abar_t, abar_s, x_t, data_hat):
    """q(x_s | x_t, data) of DDPM in alpha-bar form: mean and variance."""
    alpha_ts = abar_t / abar_s
    beta_ts = 1 - alpha_ts
    mean = abar_s**0.5 * beta_ts / (1 - abar_t) * data_hat + alpha_ts**0.5 * (1 - abar_s) / (1 - abar_t) * x_t
    return mean, (1 - abar_s) / (1 - abar_t) * beta_ts


@pytest.mark.parametrize("t, s", [(0.3, 0.32), (0.2, 0.6), (0.5, 0.9)])
def test_eta_one_step_draws_from_the_ddpm_posterior(t, s):
    sched = VPSchedule()
    mean_data, std = torch.tensor([1.0, -2.0]), 0.3
    model = gaussian_model(sched, mean_data, std)
    n = 40_000
    x_t = torch.tensor([[0.4, -0.2]], dtype=torch.float64).repeat(n, 1)
    out = ddim(
        model,
        x_t,
        sched,
        torch.tensor([t, s], dtype=torch.float64),
        eta=1.0,
        generator=torch.Generator().manual_seed(0),
    ).final
    c_t = sched(torch.tensor([t], dtype=torch.float64))
    c_s = sched(torch.tensor([s], dtype=torch.float64))
    noise_hat = model(x_t[:1], torch.tensor([t], dtype=torch.float64))
    data_hat = (x_t[:1] - c_t.sigma * noise_hat) / c_t.alpha
    mean, var = _ddpm_posterior(c_t.alpha.item() ** 2, c_s.alpha.item() ** 2, x_t[0], data_hat[0])
    assert (out.mean(0) - mean).abs().max() < 5 * (var / n) ** 0.5
    assert (out.var(0) / var - 1).abs().max() < 5 * (2 / n) ** 0.5
    # eta = 0.5 draws with a quarter of the posterior variance
    half = ddim(
        model,
        x_t,
        sched,
        torch.tensor([t, s], dtype=torch.float64),
        eta=0.5,
        generator=torch.Generator().manual_seed(1),
    ).final
    assert (half.var(0) / (0.25 * var) - 1).abs().max() < 5 * (2 / n) ** 0.5


def test_eta_one_on_ddpm_grid_is_ddpm_ancestral_sampling():
    """On DDPM's own grid, DDIM(eta=1) and DDPM's posterior-variance sampler are the same update.

    Both draw one standard normal per step except the last, so a shared seed gives the same samples.
    """
    ddpm = DDPM(num_steps=40, beta_start=1e-3, beta_end=0.3)
    sched = DiscreteVPSchedule(ddpm)
    model = gaussian_model(sched, torch.tensor([1.0, -1.0]), 0.5)
    noise = torch.randn(256, 2, dtype=torch.float64)
    ts = 1 - torch.arange(40, -1, -1, dtype=torch.float64) / 40
    via_ddim = ddim(model, noise, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(3))
    via_ddpm = ddpm.sample(model, noise, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(via_ddim.xs, via_ddpm.xs, atol=1e-12, rtol=0)
    # DDPM's own step -> t map gives the same grid exactly, so the library's DDIM grid agrees to float64 rounding
    grid = ddim_times(ddpm, 40, torch.float64)
    assert torch.equal(grid, ts)
    on_grid = ddim(model, noise, sched, grid, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(on_grid.xs, via_ddpm.xs, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "ts, eta, match",
    [
        (torch.tensor([0.5]), 0.0, "at least two"),
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), 0.0, "increasing"),
        (torch.tensor([1.0, 0.5, 0.0]), 0.0, "increasing"),
        (torch.tensor([0.0, 1.5]), 0.0, r"\[0, 1\]"),
        (torch.zeros(2, 2), 0.0, "shape"),
        (torch.tensor([0.0, 1.0]), -0.5, "eta"),
    ],
)
def test_bad_grids_raise(ts, eta, match):
    sched = VPSchedule()
    with pytest.raises(ValueError, match=match):
        ddim(gaussian_model(sched, 0.0, 1.0), torch.randn(3, 2), sched, ts, eta=eta)


def test_unknown_prediction_raises():
    sched = VPSchedule()
    with pytest.raises(ValueError, match="prediction type"):
        ddim(
            gaussian_model(sched, 0.0, 1.0),
            torch.randn(3, 2),
            sched,
            torch.linspace(0, 1, 3),
            prediction="x0",
        )


MIXTURE = target_density("mixture")


def _coef(schedule, t):
    c = schedule(torch.tensor([t], dtype=torch.float64))
    return c.alpha.item(), c.sigma.item()


@pytest.mark.parametrize("schedule", [VPSchedule(), CosineSchedule(), DiscreteVPSchedule(DDPM())])
def test_churn_one_draws_from_the_ddpm_posterior(schedule):
    """x_s ~ q(x_s | x_t, data_hat): mean (a_ts s_s^2 / s_t^2) x_t + (a_s s_ts^2 / s_t^2) data_hat, var s_ts^2 s_s^2 / s_t^2."""
    t, s = 0.4, 0.55
    x_t, seed = torch.randn(512, 2) * 2, 11
    model = ExactMixtureModel(MIXTURE, schedule)
    out = churn_sampler(
        model, x_t, schedule, torch.tensor([t, s]), churn=1.0, generator=torch.Generator().manual_seed(seed)
    ).final
    (a_t, s_t), (a_s, s_s) = _coef(schedule, t), _coef(schedule, s)
    data_hat = MIXTURE.posterior_mean(x_t, a_t, s_t)
    a_ts = a_t / a_s  # the forward kernel q(x_t | x_s) = N(a_ts x_s, s_ts^2)
    s_ts2 = s_t**2 - a_ts**2 * s_s**2
    mean = (a_ts * s_s**2 / s_t**2) * x_t + (a_s * s_ts2 / s_t**2) * data_hat
    std = math.sqrt(s_ts2 * s_s**2 / s_t**2)
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(out, mean + std * z, atol=2e-4)


@pytest.mark.parametrize("churn", [0.5, 1.0, 2.0])
def test_churn_step_is_a_ddim_step_to_a_further_time_then_forward_noising(churn):
    """Find u with lambda_u = lambda_s + churn (lambda_s - lambda_t), run DDIM t -> u, then noise u -> s."""
    schedule, t, s, seed = CosineSchedule(), 0.3, 0.5, 4
    model = ExactMixtureModel(MIXTURE, schedule)
    x_t = torch.randn(256, 2, dtype=torch.float64)

    def lam(v):
        return schedule.log_snr(torch.tensor([v], dtype=torch.float64)).item()

    u = brentq(lambda v: lam(v) - (lam(s) + churn * (lam(s) - lam(t))), s, 1 - 1e-12, xtol=1e-14)
    x_u = ddim(model, x_t, schedule, torch.tensor([t, u], dtype=torch.float64), eta=0.0).final
    (a_u, s_u), (a_s, s_s) = _coef(schedule, u), _coef(schedule, s)
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    expected = (a_s / a_u) * x_u + math.sqrt(s_s**2 - (a_s / a_u) ** 2 * s_u**2) * z
    out = churn_sampler(
        model,
        x_t,
        schedule,
        torch.tensor([t, s], dtype=torch.float64),
        churn=churn,
        generator=torch.Generator().manual_seed(seed),
    ).final
    assert torch.allclose(out, expected, atol=1e-6)


def test_churn_ratio_moves_log_snr_by_churn_times_the_step():
    rho_t, rho_s = 2.0, 0.5  # lambda = -2 log rho
    for churn in (0.0, 0.3, 1.0, 3.0):
        lam_u = -2 * math.log(churn_ratio(rho_t, rho_s, churn))
        lam_s, lam_t = -2 * math.log(rho_s), -2 * math.log(rho_t)
        assert lam_u == pytest.approx(lam_s + churn * (lam_s - lam_t), rel=1e-12)
    assert churn_ratio(math.inf, 0.5, 1.0) == 0.0  # from pure noise: renoise the prediction fully
    assert churn_ratio(math.inf, 0.5, 0.0) == 0.5
    assert churn_ratio(2.0, 0.0, 1.0) == 0.0  # to clean data: no noise left to add


def test_churn_zero_is_ddim_and_churn_one_is_ddim_with_eta_one():
    ddpm = DDPM()
    schedule = DiscreteVPSchedule(ddpm)
    model = ExactMixtureModel(MIXTURE, schedule)
    noise, ts = torch.randn(300, 2), ddpm.t_of(torch.arange(1000, -1, -50))
    det = churn_sampler(model, noise, schedule, ts, churn=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(det.xs, ddim(model, noise, schedule, ts, eta=0.0).xs, atol=1e-4)
    again = churn_sampler(model, noise, schedule, ts, churn=0.0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(det.xs, again.xs)  # churn 0 uses no random numbers at all
    sto = churn_sampler(model, noise, schedule, ts, churn=1.0, generator=torch.Generator().manual_seed(2))
    ref = ddim(model, noise, schedule, ts, eta=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(sto.xs, ref.xs, atol=1e-3)


def test_churn_sampler_reproducible_from_a_seed_counts_evaluations_and_keeps_the_path():
    schedule = VPSchedule()
    calls = []

    def model(x, t, cond=None):
        calls.append(t[0].item())
        return ExactMixtureModel(MIXTURE, schedule)(x=x, t=t)

    noise, ts = torch.randn(64, 2), torch.linspace(0.0, 1.0, 9)
    a = churn_sampler(model, noise, schedule, ts, churn=1.5, generator=torch.Generator().manual_seed(3))
    b = churn_sampler(model, noise, schedule, ts, churn=1.5, generator=torch.Generator().manual_seed(3))
    c = churn_sampler(model, noise, schedule, ts, churn=1.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.xs, b.xs) and not torch.allclose(a.final, c.final)
    assert a.nfe == 8 and calls[:8] == pytest.approx(ts[:-1].tolist())
    assert a.xs.shape == (9, 64, 2) and torch.equal(a.xs[0], noise) and torch.isfinite(a.xs).all()


def test_bad_inputs_raise_value_errors():
    schedule = VPSchedule()
    model, x = ExactMixtureModel(MIXTURE, schedule), torch.randn(4, 2)
    with pytest.raises(ValueError, match="churn must be >= 0"):
        churn_sampler(model, x, schedule, torch.tensor([0.0, 1.0]), churn=-0.5)
    with pytest.raises(ValueError, match="increasing"):
        churn_sampler(model, x, schedule, torch.tensor([0.6, 0.6, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        churn_sampler(model, x, schedule, torch.tensor([-0.1, 1.0]))


def test_ddim_is_invariant_to_rescaling():
    """DDIM's final samples do not depend on the scale of (alpha, sigma); its path scales by c(t)."""
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = torch.linspace(0.02, 1, 9, dtype=torch.float64)
    base, rescaled = CosineSchedule(), RescaledSchedule(CosineSchedule(), custom_scale)
    a = ddim(gaussian_model(base), noise, base, ts)
    b = ddim(gaussian_model(rescaled), noise * custom_scale(ts[:1])[0], rescaled, ts)
    assert torch.allclose(b.xs, a.xs * custom_scale(ts)[0][:, None, None], atol=1e-10)


def _nan_after(t_bad):
    """An eps-model that returns NaN from time t_bad on (zeros before)."""

    def model(x, t, cond=None):
        return torch.full_like(x, float("nan")) if t[0] >= t_bad - 1e-9 else torch.zeros_like(x)

    return model


@pytest.mark.parametrize("sampler", [ddim, churn_sampler])
def test_samplers_refuse_bad_models_schedules_and_noise(sampler):
    sched, ts, x = VPSchedule(), torch.linspace(0, 1, 5), torch.randn(4, 2)
    model = gaussian_model(sched, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"returned shape \(4, 1\) for an input of shape \(4, 2\)"):
        sampler(lambda x, t, cond=None: x[:, :1], x, sched, ts)
    with pytest.raises(ValueError, match=r"produced NaN or inf at step 3 \(t = 0\.5\)"):
        sampler(_nan_after(0.5), x, sched, ts)
    with pytest.raises(TypeError, match=r"class VPSchedule itself: call it, VPSchedule\(\)"):
        sampler(model, x, VPSchedule, ts)
    with pytest.raises(TypeError, match="not the string 'vp'"):
        sampler(model, x, "vp", ts)
    with pytest.raises(TypeError, match="class ExactMixtureModel itself"):
        sampler(ExactMixtureModel, x, sched, ts)
    with pytest.raises(ValueError, match="noise holds 1 NaN"):
        sampler(model, torch.tensor([[0.0, float("nan")]]), sched, ts)
    with pytest.raises(ValueError, match="prediction type 'x0'"):
        sampler(model, x, sched, ts, prediction="x0")
    with pytest.raises(TypeError, match="generator"):
        sampler(model, x, sched, ts, generator=1)


@pytest.mark.parametrize(
    "eta, error, match",
    [
        (float("nan"), ValueError, "eta must be a finite number"),
        (float("inf"), ValueError, "eta must be a finite number"),
        (1.5, ValueError, r"eta must be in \[0, 1\]"),
        ("0", TypeError, "eta must be a real number"),
    ],
)
def test_bad_eta_is_refused(eta, error, match):
    sched = VPSchedule()
    with pytest.raises(error, match=match):
        ddim(gaussian_model(sched), torch.randn(3, 2), sched, torch.linspace(0, 1, 3), eta=eta)


@pytest.mark.parametrize("churn", [float("nan"), float("inf"), -1.0, None])
def test_bad_churn_is_refused(churn):
    sched = VPSchedule()
    with pytest.raises((ValueError, TypeError), match="churn must"):
        churn_sampler(gaussian_model(sched), torch.randn(3, 2), sched, torch.linspace(0, 1, 3), churn=churn)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0.0, 0.5, 1.0), "rho_t"),
        ((-1.0, 0.5, 1.0), "rho_t"),
        ((2.0, float("inf"), 1.0), "rho_s"),
        ((2.0, -0.1, 1.0), "rho_s"),
        ((2.0, 0.5, float("nan")), "churn"),
        ((2.0, 0.5, -1.0), "churn"),
    ],
)
def test_churn_ratio_refuses_bad_ratios(args, match):
    with pytest.raises(ValueError, match=match):
        churn_ratio(*args)


def test_sampler_memory_and_progress(monkeypatch, capsys):
    sched = VPSchedule()
    model, x = gaussian_model(sched), torch.randn(50, 2)
    ddim(model, x, sched, torch.linspace(0, 1, 5))
    assert capsys.readouterr().err == ""  # quiet by default
    churn_sampler(model, x, sched, torch.linspace(0, 1, 5), progress=True)
    assert "churn_sampler" in capsys.readouterr().err
    monkeypatch.setattr("lessons.checks.available_memory_bytes", lambda: 10_000)
    with pytest.raises(ValueError, match=r"recording the 101 states of ddim would need"):
        ddim(model, x, sched, torch.linspace(0, 1, 101))


def test_grids_and_states_are_named_in_the_message():
    sched = VPSchedule()
    model, x = gaussian_model(sched), torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1\]"):
        ddim(model, x, sched, torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="ts must be a float tensor"):
        churn_sampler(model, x, sched, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="ts must be a torch tensor"):
        ddim(model, x, sched, [0.0, 1.0])
    with pytest.raises(ValueError, match="meta device"):
        ddim(model, torch.empty(3, 2, device="meta"), sched, torch.linspace(0, 1, 3))
