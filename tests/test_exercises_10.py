"""lessons.exercises_10: each check passes lesson 10's solution and names the slip of a typical wrong answer."""

import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises_10
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.exercises import review, solution
from lessons.mean_flow import AverageVelocityMLP
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule


def _step_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev, sign=1, r=None, ratio=None, gain=None):
    r = h_prev / h if r is None else r
    d = (1 + sign / (2 * r)) * d_now - sign / (2 * r) * d_prev
    ratio = sigma_s / sigma_t if ratio is None else ratio
    return ratio * x + alpha_s * (1 - torch.exp(-h) if gain is None else gain) * d


def update_sign_flipped(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return _step_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev, sign=-1)


def update_r_inverted(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return _step_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev, r=h / h_prev)


def update_sigma_ratio_inverted(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return _step_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev, ratio=sigma_t / sigma_s)


def update_h_for_gain(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return _step_2m(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev, gain=h)


def update_ddim(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return (sigma_s / sigma_t) * x + alpha_s * (1 - torch.exp(-h)) * d_now


def update_identity(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return x  # no slip it knows: the general hint


def update_per_sample(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
    return solution("dpm_solver_2m_update")(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev).sum(1)


def _target(model, x, s, t, velocity, tangents, sign=1, with_v=True):
    _, du = torch.func.jvp(model, (x, s, t), tangents)
    return velocity * with_v + sign * (t - s)[:, None] * du


def target_s_minus_t(model, x, s, t, velocity):
    return _target(model, x, s, t, velocity, (velocity, torch.ones_like(s), torch.zeros_like(t)), sign=-1)


def target_no_ds(model, x, s, t, velocity):
    return _target(model, x, s, t, velocity, (velocity, torch.zeros_like(s), torch.zeros_like(t)))


def target_d_dt(model, x, s, t, velocity):
    return _target(model, x, s, t, velocity, (velocity, torch.zeros_like(s), torch.ones_like(t)))


def target_no_transport(model, x, s, t, velocity):
    return _target(model, x, s, t, velocity, (torch.zeros_like(x), torch.ones_like(s), torch.zeros_like(t)))


def target_without_v(model, x, s, t, velocity):
    return _target(
        model, x, s, t, velocity, (velocity, torch.ones_like(s), torch.zeros_like(t)), with_v=False
    )


def target_u_itself(model, x, s, t, velocity):
    return model(x, s, t)  # no slip it knows: the general hint


def _average(x, s, t, mean, std, ratio_of, keep_mean=True, over=None):
    s, t = s[:, None], t[:, None]
    centre = mean if keep_mean else torch.zeros_like(mean)
    x_t = t * centre + ratio_of(s, t) * (x - s * centre)
    return (x_t - x) / ((t - s) if over is None else over(s, t))


def _level(tau, std):
    return (tau**2 * std**2 + (1 - tau) ** 2).sqrt()


def average_ratio_inverted(x, s, t, mean, std):
    return _average(x, s, t, mean, std, lambda s, t: _level(s, std) / _level(t, std))


def average_without_mean(x, s, t, mean, std):
    return _average(x, s, t, mean, std, lambda s, t: _level(t, std) / _level(s, std), keep_mean=False)


def average_over_t(x, s, t, mean, std):
    return _average(x, s, t, mean, std, lambda s, t: _level(t, std) / _level(s, std), over=lambda s, t: t)


def average_linear_sigma(x, s, t, mean, std):
    return _average(x, s, t, mean, std, lambda s, t: (t * std + 1 - t) / (s * std + 1 - s))


def average_flow_map_itself(x, s, t, mean, std):
    s, t = s[:, None], t[:, None]
    return t * mean + _level(t, std) / _level(s, std) * (x - s * mean)  # x_t, not the average velocity


WRONG = [
    ("dpm_solver_2m_update", update_sign_flipped, "the correction's sign flipped", "away from D_prev"),
    ("dpm_solver_2m_update", update_r_inverted, "r = h / h_prev, inverted", "1/(2r) = h / (2 h_prev)"),
    (
        "dpm_solver_2m_update",
        update_sigma_ratio_inverted,
        "sigma_t / sigma_s where sigma_s / sigma_t belongs",
        "the new noise level over the old one",
    ),
    ("dpm_solver_2m_update", update_h_for_gain, "h where 1 - e^(-h) belongs", "first-order term"),
    ("dpm_solver_2m_update", update_ddim, "no correction (a DDIM step)", "this is DDIM"),
    ("dpm_solver_2m_update", update_identity, None, "D = (1 + 1/(2r)) d_now - 1/(2r) d_prev"),
    ("dpm_solver_2m_update", update_per_sample, None, "should have shape (200, 2)"),
    ("mean_flow_target", target_s_minus_t, "(s - t) where (t - s) belongs", "-u + (t - s) du/ds = -v"),
    (
        "mean_flow_target",
        target_no_ds,
        "the tangent (velocity, 0, 0): the d/ds term left out",
        "the tangent of s is 1",
    ),
    (
        "mean_flow_target",
        target_d_dt,
        "the tangent (velocity, 0, 1): d/dt where d/ds belongs",
        "t stays fixed",
    ),
    (
        "mean_flow_target",
        target_no_transport,
        "the tangent (0, 1, 0): the transport term left out",
        "dx/ds = v",
    ),
    ("mean_flow_target", target_without_v, "the target without v", "add the velocity"),
    ("mean_flow_target", target_u_itself, None, "torch.func.jvp(model, (x, s, t), (velocity, 1, 0))"),
    (
        "gaussian_average_velocity",
        average_ratio_inverted,
        "sigma_s / sigma_t where sigma_t / sigma_s belongs",
        "carries the spread sigma_s",
    ),
    ("gaussian_average_velocity", average_without_mean, "the mean term left out", "moves the centre"),
    (
        "gaussian_average_velocity",
        average_over_t,
        "divided by t where t - s belongs",
        "divide x_t - x_s by t - s",
    ),
    (
        "gaussian_average_velocity",
        average_linear_sigma,
        "sigma_tau = tau std + (1 - tau)",
        "add variances",
    ),
    ("gaussian_average_velocity", average_flow_map_itself, None, "u = (x_t - x_s) / (t - s)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_an_update_written_with_math_on_the_scalars_passes():
    def with_math(x, d_now, d_prev, alpha_s, sigma_s, sigma_t, h, h_prev):
        c = float(h) / (2 * float(h_prev))
        return float(sigma_s / sigma_t) * x + float(alpha_s) * (1 - math.exp(-h)) * (
            (1 + c) * d_now - c * d_prev
        )

    assert review("dpm_solver_2m_update", with_math).passed


def test_the_checks_sampler_with_a_ddim_update_is_lessons_ddim():
    """The check's own loop is the lesson's: with no correction it is DDIM, step for step (an independent sampler)."""
    ddpm = DDPM(num_steps=1000)
    schedule = DiscreteVPSchedule(ddpm)
    model = ExactMixtureModel(GaussianMixture([[1.0, 0.0], [-1.0, 0.5]], 0.3), schedule, prediction="eps")
    noise = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = ddim_times(ddpm, 20, dtype=torch.float64)
    mine = exercises_10._sample_2m(update_ddim, model, noise, schedule, ts)
    assert torch.allclose(mine, ddim(model, noise, schedule, ts).final, rtol=0, atol=1e-12)


def test_the_mean_flow_target_is_the_finite_difference_along_the_flow():
    """v + (t - s) d/ds u(x + (s' - s) v, s', t) at s' = s, by central differences (independent of torch.func)."""
    torch.manual_seed(0)
    model = AverageVelocityMLP(dim=2, hidden=32, depth=2, time_dim=8).double()
    g = torch.Generator().manual_seed(1)
    x, velocity = torch.randn(2, 64, 2, generator=g, dtype=torch.float64)
    a, b = 0.1 + 0.8 * torch.rand(2, 64, generator=g, dtype=torch.float64)
    s, t = torch.minimum(a, b) - 0.05, torch.maximum(a, b)
    eps = 1e-5
    with torch.no_grad():
        du = (model(x + eps * velocity, s + eps, t) - model(x - eps * velocity, s - eps, t)) / (2 * eps)
    target = solution("mean_flow_target")(model, x, s, t, velocity)
    assert torch.allclose(target, velocity + (t - s)[:, None] * du, rtol=0, atol=1e-8)


def test_the_gaussian_average_velocity_steps_exactly_and_tends_to_the_velocity():
    """x_s + (t - s) u is the RK4 reference's end; as t -> s, u tends to the exact marginal velocity at s."""
    mean, std, x, s, t, want = exercises_10._gaussian_references()[0]
    u = solution("gaussian_average_velocity")(x, s, t, mean, std)
    assert torch.allclose(u, want, rtol=0, atol=1e-8)
    exact = ExactMixtureModel(GaussianMixture(mean[None], std), LinearSchedule(), prediction="velocity")
    close = solution("gaussian_average_velocity")(x, s, s + 1e-7, mean, std)
    assert torch.allclose(close, exact(x=x, t=s), rtol=0, atol=1e-5)
