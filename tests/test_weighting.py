"""Weightings in log-SNR: eps-MSE factors, implied weightings, the weighted loss, and logit-normal times."""

import math

import numpy as np
import pytest
import torch
from model_helpers import gaussian_model
from scipy import integrate, stats

from lessons.conversions import PREDICTIONS, convert
from lessons.schedules import CosineSchedule, LinearSchedule, VPSchedule
from lessons.weighting import (
    d_log_snr,
    eps_mse_factor,
    fm_weighting,
    implied_weighting,
    logit_normal_density,
    logit_normal_times,
    weighted_eps_loss,
)

T = torch.linspace(0.03, 0.97, 33, dtype=torch.float64)


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule(), VPSchedule()], ids=repr)
def test_factor_is_the_ratio_of_squared_errors_per_sample(schedule):
    """Brute force: perturb eps, convert both to each kind, compare squared errors."""
    g = torch.Generator().manual_seed(0)
    t = torch.rand(50, generator=g, dtype=torch.float64) * 0.9 + 0.05
    coef = schedule(t)
    x_t = torch.randn(50, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(50, 3, generator=g, dtype=torch.float64)
    eps_hat = eps + 0.3 * torch.randn(50, 3, generator=g, dtype=torch.float64)
    eps_err = ((eps_hat - eps) ** 2).sum(1)
    for kind in PREDICTIONS:
        err = ((convert(eps_hat, "eps", kind, x_t, coef) - convert(eps, "eps", kind, x_t, coef)) ** 2).sum(1)
        assert torch.allclose(err, eps_mse_factor(kind, coef) * eps_err, rtol=1e-9), kind


def test_factors_against_the_closed_forms_in_log_snr():
    lin, cos = LinearSchedule(), CosineSchedule()
    for sched in (lin, cos):
        c, lam = sched(T), sched.log_snr(T)
        assert torch.allclose(eps_mse_factor("eps", c), torch.ones_like(T))
        assert torch.allclose(eps_mse_factor("data", c), torch.exp(-lam))
        assert torch.allclose(eps_mse_factor("v", c), c.alpha**2 * (torch.exp(-lam) + 1) ** 2)
        assert torch.allclose(eps_mse_factor("score", c), 1 / c.sigma**2)
    lam = lin.log_snr(T)  # flow matching: ||u_hat - u||^2 = (1 + e^(-lambda/2))^2 ||eps_hat - eps||^2
    assert torch.allclose(eps_mse_factor("velocity", lin(T)), (1 + torch.exp(-lam / 2)) ** 2)


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule(), VPSchedule()], ids=repr)
def test_d_log_snr_matches_finite_differences(schedule):
    h = 1e-6
    fd = (schedule.log_snr(T + h) - schedule.log_snr(T - h)) / (2 * h)
    assert torch.allclose(d_log_snr(schedule(T)), fd, rtol=1e-6)


def test_flow_matching_weighting_equals_v_mse_on_cosine_up_to_a_constant():
    lam = torch.linspace(-10, 10, 41, dtype=torch.float64)
    t_lin = torch.sigmoid(lam / 2)
    t_cos = 2 / math.pi * torch.atan(torch.exp(lam / 2))
    w_fm = implied_weighting("velocity", LinearSchedule(), t_lin)
    w_v = implied_weighting("v", CosineSchedule(), t_cos)
    assert torch.allclose(w_fm, fm_weighting(lam)) and torch.allclose(w_fm, 0.5 * torch.exp(-lam / 2))
    assert torch.allclose(w_v, torch.exp(-lam / 2) / math.pi)
    w_eps = implied_weighting(
        "eps", CosineSchedule(), t_cos
    )  # a different weighting: the ratio is not constant
    assert (w_fm / w_eps).max() / (w_fm / w_eps).min() > 10


def test_implied_weighting_integrates_to_the_time_average():
    """int_0^1 p(t) factor(t) dt = int w(lambda) d lambda, checked with scipy's quad in both variables."""
    cos = CosineSchedule()

    def w_of_lambda(lam):
        t = torch.tensor([2 / math.pi * math.atan(math.exp(lam / 2))], dtype=torch.float64)
        return implied_weighting("v", cos, t, lambda s: logit_normal_density(s, 0.3, 0.8)).item()

    def in_time(t):
        tt = torch.tensor([t], dtype=torch.float64)
        return (logit_normal_density(tt, 0.3, 0.8) * eps_mse_factor("v", cos(tt))).item()

    lo, hi = 0.1, 0.9
    lam_lo, lam_hi = (cos.log_snr(torch.tensor([v], dtype=torch.float64)).item() for v in (lo, hi))
    assert integrate.quad(w_of_lambda, lam_lo, lam_hi)[0] == pytest.approx(
        integrate.quad(in_time, lo, hi)[0], rel=1e-7
    )


def test_weighted_loss_under_linear_is_the_flow_matching_loss():
    g = torch.Generator().manual_seed(1)
    lin, s = LinearSchedule(), 1.5
    data = s * torch.randn(200, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(200, 2, generator=g, dtype=torch.float64)
    t = torch.rand(200, generator=g, dtype=torch.float64) * 0.98 + 0.01
    model = gaussian_model(lin, std=s)
    loss = weighted_eps_loss(model, lin, fm_weighting, data, t=t, noise=noise)
    c = lin(t).expand_like(data)
    x_t = c.alpha * data + c.sigma * noise
    eps_hat = model(x=x_t, t=t)
    u_hat = (x_t - c.sigma * eps_hat) / c.alpha - eps_hat  # d_alpha data_hat + d_sigma eps_hat
    assert torch.allclose(loss, ((u_hat - (data - noise)) ** 2).mean(1), rtol=1e-9)


def test_weighted_loss_depends_only_on_the_log_snr_end_points():
    """For data N(0, s^2 I) the ideal eps-MSE per dimension is sigmoid(lambda + 2 log s): integrate it with quad."""
    s, n = 1.5, 100_000
    exact = integrate.quad(
        lambda lam: 0.5 * math.exp(-lam / 2) / (1 + math.exp(-lam - 2 * math.log(s))), -60, 60
    )[0]
    g = torch.Generator().manual_seed(2)
    for sched in (LinearSchedule(), CosineSchedule()):
        data = s * torch.randn(n, 2, generator=g, dtype=torch.float64)
        loss = weighted_eps_loss(
            gaussian_model(sched, std=s),
            sched,
            fm_weighting,
            data,
            t=torch.rand(n, generator=g, dtype=torch.float64),
            noise=torch.randn(n, 2, generator=g, dtype=torch.float64),
        )
        assert abs(loss.mean().item() - exact) < 4 * loss.std().item() / n**0.5, repr(sched)


def test_logit_normal_times_follow_their_law():
    t = logit_normal_times(20_000, mean=-0.5, std=1.3, generator=torch.Generator().manual_seed(3))
    assert t.shape == (20_000,) and 0 < t.min() and t.max() < 1
    logit = torch.log(t) - torch.log1p(-t)
    assert stats.kstest(logit.double().numpy(), stats.norm(loc=-0.5, scale=1.3).cdf).pvalue > 1e-3
    mass = integrate.quad(
        lambda u: logit_normal_density(torch.tensor([u], dtype=torch.float64), -0.5, 1.3).item(), 0, 1
    )[0]
    assert mass == pytest.approx(1.0, abs=1e-7)
    edges = np.linspace(0.0, 1.0, 11)
    hist = np.histogram(t.numpy(), bins=edges)[0] / t.numel()
    probs = [
        integrate.quad(
            lambda u: logit_normal_density(torch.tensor([u], dtype=torch.float64), -0.5, 1.3).item(), a, b
        )[0]
        for a, b in zip(edges[:-1], edges[1:])
    ]
    assert np.abs(hist - probs).max() < 0.01  # about 4 standard errors of a bin frequency at n = 20000


def test_bad_input_raises():
    with pytest.raises(ValueError, match="std"):
        logit_normal_times(10, std=0.0)
    with pytest.raises(ValueError, match="batch"):
        logit_normal_times(0)
    with pytest.raises(ValueError, match="std"):
        logit_normal_density(torch.tensor([0.5]), std=-1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        implied_weighting("eps", LinearSchedule(), torch.tensor([1.5]))
    with pytest.raises(ValueError, match="prediction type"):
        eps_mse_factor("x0", LinearSchedule()(torch.tensor([0.5])))


def test_factors_at_the_ends_are_finite_or_refused():
    noise_end = LinearSchedule()(torch.zeros(2, dtype=torch.float64))  # alpha = 0
    data_end = LinearSchedule()(torch.ones(2, dtype=torch.float64))  # sigma = 0
    assert eps_mse_factor("eps", noise_end).tolist() == [1.0, 1.0]
    assert eps_mse_factor("data", data_end).tolist() == [0.0, 0.0]  # sigma / alpha = 0
    assert eps_mse_factor("v", data_end).tolist() == [1.0, 1.0]  # (alpha^2 + sigma^2)^2 / alpha^2
    for kind in ("data", "v", "velocity"):
        with pytest.raises(ValueError, match=rf"the {kind} error is sigma / alpha times the eps error"):
            eps_mse_factor(kind, noise_end)
    with pytest.raises(ValueError, match=r"score error .* infinite where sigma\(t\) = 0"):
        eps_mse_factor("score", data_end)
    with pytest.raises(ValueError, match=r"d lambda / dt is undefined where alpha\(t\) = 0"):
        d_log_snr(noise_end)
    with pytest.raises(ValueError, match=r"d lambda / dt is undefined where sigma\(t\) = 0"):
        d_log_snr(data_end)
    with pytest.raises(TypeError, match=r"coefficients at the times, schedule\(t\)"):
        d_log_snr(LinearSchedule())


@pytest.mark.parametrize("t_end", [0.0, 1.0])
def test_implied_weighting_refuses_the_infinite_log_snr_ends(t_end):
    t = torch.tensor([0.5, t_end], dtype=torch.float64)
    for kind in PREDICTIONS:
        with pytest.raises(
            ValueError, match=r"the weighting w\(lambda\) is undefined where (alpha|sigma)\(t\) = 0"
        ):
            implied_weighting(kind, LinearSchedule(), t)
        with pytest.raises(ValueError, match=r"the weighting w\(lambda\) is undefined"):
            implied_weighting(kind, CosineSchedule(), t.float())  # in float64 cos(pi / 2) = 6e-17, not 0
    with pytest.raises(ValueError, match="undefined"):
        implied_weighting("velocity", LinearSchedule(), t, logit_normal_density)


def test_implied_weighting_is_finite_where_the_log_snr_is():
    """VP's log-SNR is finite at t = 0 (alpha(0) > 0): its weighting is an ordinary number there."""
    w = implied_weighting("eps", VPSchedule(), torch.tensor([0.0, 0.5], dtype=torch.float64))
    assert torch.isfinite(w).all() and (w > 0).all()
    with pytest.raises(ValueError, match="overflows torch.float64"):
        implied_weighting("velocity", LinearSchedule(), torch.tensor([1e-300], dtype=torch.float64))


def test_implied_weighting_refuses_bad_objects_and_densities():
    t = torch.full((3,), 0.5)
    with pytest.raises(TypeError, match=r"call it, CosineSchedule\(\)"):
        implied_weighting("v", CosineSchedule, t)
    with pytest.raises(TypeError, match="time_density must be None or a function"):
        implied_weighting("v", CosineSchedule(), t, time_density=0.5)
    with pytest.raises(ValueError, match=r"time_density\(t\) must return a tensor of shape \(3,\)"):
        implied_weighting("v", CosineSchedule(), t, time_density=lambda s: 1.0)
    with pytest.raises(ValueError, match="finite densities >= 0"):
        implied_weighting("v", CosineSchedule(), t, time_density=lambda s: -s)
    with pytest.raises(TypeError, match="prediction type must be a name"):
        implied_weighting(None, CosineSchedule(), t)


def test_fm_weighting_refuses_what_it_cannot_weigh():
    assert fm_weighting(torch.tensor([math.inf])).tolist() == [0.0]  # its limit at clean data
    with pytest.raises(ValueError, match=r"infinite at lambda = -inf \(pure noise\)"):
        fm_weighting(torch.tensor([0.0, -math.inf]))
    with pytest.raises(ValueError, match="overflows torch.float32 below lambda = -177"):
        fm_weighting(torch.tensor([-200.0]))
    assert torch.isfinite(fm_weighting(torch.tensor([-200.0], dtype=torch.float64))).all()
    with pytest.raises(ValueError, match="NaN"):
        fm_weighting(torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="float tensor"):
        fm_weighting(torch.tensor([1, 2]))


def test_weighted_loss_refuses_bad_input():
    lin, data = LinearSchedule(), torch.randn(4, 2, dtype=torch.float64)
    model = gaussian_model(lin)
    with pytest.raises(ValueError, match=r"weighted eps loss is undefined where alpha\(t\) = 0"):
        weighted_eps_loss(
            model, lin, fm_weighting, data, t=torch.tensor([0.0, 0.2, 0.4, 0.6], dtype=torch.float64)
        )
    with pytest.raises(ValueError, match=r"undefined where sigma\(t\) = 0"):
        weighted_eps_loss(model, lin, fm_weighting, data, t=torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"call it, LinearSchedule\(\)"):
        weighted_eps_loss(model, LinearSchedule, fm_weighting, data)
    with pytest.raises(TypeError, match="weighting must be a function"):
        weighted_eps_loss(model, lin, "fm", data)
    with pytest.raises(TypeError, match="eps_model must be a network"):
        weighted_eps_loss(None, lin, fm_weighting, data)
    bad = data.clone()
    bad[1, 1] = math.nan
    with pytest.raises(ValueError, match="data holds 1 NaN"):
        weighted_eps_loss(model, lin, fm_weighting, bad)
    with pytest.raises(ValueError, match="noise and data must have the same shape"):
        weighted_eps_loss(model, lin, fm_weighting, data, noise=torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"the model eps_model returned shape \(4, 1\)"):
        weighted_eps_loss(lambda x, t, cond=None: x[:, :1], lin, fm_weighting, data)
    with pytest.raises(ValueError, match=r"weighting\(log_snr\) must return a tensor of shape \(4,\)"):
        weighted_eps_loss(model, lin, lambda lam: 1.0, data)
    with pytest.raises(ValueError, match="dtype torch.float64 but the model's weights are torch.float32"):
        weighted_eps_loss(torch.nn.Linear(2, 2), lin, fm_weighting, data)
    with pytest.raises(ValueError, match=r"data must have shape \(B, ...\)"):
        weighted_eps_loss(model, lin, fm_weighting, data[:, 0])
    loss = weighted_eps_loss(model, lin, fm_weighting, data)  # t drawn in (0, 1): finite
    assert loss.shape == (4,) and torch.isfinite(loss).all()


def test_logit_normal_refuses_bad_parameters_and_is_zero_at_the_ends():
    ends = logit_normal_density(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), 0.3, 0.8)
    assert ends[0] == 0.0 and ends[2] == 0.0 and ends[1] > 0  # the limit, not 0 / 0 = NaN
    assert logit_normal_density(torch.tensor([0.0, 1.0])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="mean must be a finite number"):
        logit_normal_density(torch.tensor([0.5]), mean=math.nan)
    with pytest.raises(ValueError, match="std must be a finite number"):
        logit_normal_times(10, std=math.inf)
    with pytest.raises(TypeError, match="mean must be a real number"):
        logit_normal_times(10, mean="0")
    with pytest.raises(TypeError, match="generator must be a Generator object"):
        logit_normal_times(10, generator=0)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        logit_normal_times(10, device="gpu")
    with pytest.raises(ValueError, match="[GT]iB of memory"):
        logit_normal_times(10**13)
    with pytest.raises(ValueError, match="positive whole number"):
        logit_normal_times(2.5)


def test_logit_normal_density_refuses_an_overflow_instead_of_inf():
    t = torch.tensor([1e-45, 0.5])  # a subnormal t, with the mean far out on its side: p ~ 1e41 > float32
    with pytest.raises(ValueError, match="density overflows torch.float32.*float64"):
        logit_normal_density(t, mean=-100.0)
    wide = logit_normal_density(t.double(), mean=-100.0)
    assert torch.isfinite(wide).all() and wide[0] > 1e40
    assert logit_normal_density(torch.full((4,), 0.0)).tolist() == [0.0] * 4  # the limit at t = 0, exactly


def test_callables_are_refused_when_a_class_or_a_value_is_given():
    lin, data = LinearSchedule(), torch.randn(4, 2)
    with pytest.raises(TypeError, match=r"eps_model must be .*got the class MLP itself \(call it"):
        from lessons.models import MLP

        weighted_eps_loss(MLP, lin, fm_weighting, data)
    with pytest.raises(TypeError, match="weighting must be a function log_snr"):
        weighted_eps_loss(torch.nn.Linear(2, 2), lin, "fm", data)
