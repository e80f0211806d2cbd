"""Churn sampler: churn = 1 is DDPM's posterior step, any churn is DDIM to a further time plus renoising."""

import math

import pytest
import torch
from scipy.optimize import brentq

from lessons.data2d import target_density
from lessons.ddim import churn_ratio, churn_sampler, ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.mixture import ExactMixtureModel
from lessons.schedules import CosineSchedule, VPSchedule

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
