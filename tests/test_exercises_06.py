"""lessons.exercises_06: each check passes lesson 06's solution and names the slip of a typical wrong answer."""

import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises_06
from lessons.conversions import change_schedule
from lessons.exercises import solution
from lessons.schedules import CosineSchedule, LinearSchedule, RescaledSchedule, VPSchedule
from lessons.sde import sde_coefficients
from lessons.weighting import fm_weighting, implied_weighting


def _source(schedule, t):
    """The source schedule's time of the linear path's log-SNR at t, and its (alpha, sigma) there, (B, 1)."""
    t_src = schedule.time_at_log_snr(LinearSchedule().log_snr(t))
    c = schedule(t_src)
    return t_src, c.alpha[:, None], c.sigma[:, None]


def velocity_unscaled(eps_model, schedule, x, t):
    t_src, a, s = _source(schedule, t)
    eps = eps_model(x=x, t=t_src)
    return (x - s * eps) / a - eps


def velocity_linear_time(eps_model, schedule, x, t):
    c = schedule(t)
    a, s = c.alpha[:, None], c.sigma[:, None]
    eps = eps_model(x=(a + s) * x, t=t)
    return ((a + s) * x - s * eps) / a - eps


def velocity_divided(eps_model, schedule, x, t):
    t_src, a, s = _source(schedule, t)
    eps = eps_model(x=x / (a + s), t=t_src)
    return (x / (a + s) - s * eps) / a - eps


def velocity_recovered_from_x(eps_model, schedule, x, t):
    t_src, a, s = _source(schedule, t)
    eps = eps_model(x=(a + s) * x, t=t_src)
    return (x - s * eps) / a - eps


def velocity_reversed(eps_model, schedule, x, t):
    return -solution("linear_velocity_from_eps")(eps_model, schedule, x, t)


def velocity_data_hat_only(eps_model, schedule, x, t):
    t_src, a, s = _source(schedule, t)
    eps = eps_model(x=(a + s) * x, t=t_src)
    return ((a + s) * x - s * eps) / a  # the data estimate, not the velocity: no slip it knows


def velocity_first_coordinate(eps_model, schedule, x, t):
    return solution("linear_velocity_from_eps")(eps_model, schedule, x, t)[:, 0]


def _rate(alpha, sigma, d_alpha, d_sigma):
    return 2 * (d_alpha / alpha - d_sigma / sigma)


def weighting_not_squared(alpha, sigma, d_alpha, d_sigma):
    return (d_sigma - d_alpha * sigma / alpha) / _rate(alpha, sigma, d_alpha, d_sigma)


def weighting_half_rate(alpha, sigma, d_alpha, d_sigma):
    return (d_sigma - d_alpha * sigma / alpha) ** 2 / (d_alpha / alpha - d_sigma / sigma)


def weighting_factor_only(alpha, sigma, d_alpha, d_sigma):
    return (d_sigma - d_alpha * sigma / alpha) ** 2


def weighting_sign_flipped(alpha, sigma, d_alpha, d_sigma):
    return (d_sigma + d_alpha * sigma / alpha) ** 2 / _rate(alpha, sigma, d_alpha, d_sigma)


def weighting_fm_everywhere(alpha, sigma, d_alpha, d_sigma):
    return 0.5 * torch.exp(-0.5 * 2 * torch.log(alpha / sigma))


def weighting_times_rate(alpha, sigma, d_alpha, d_sigma):
    return (d_sigma - d_alpha * sigma / alpha) ** 2 * _rate(alpha, sigma, d_alpha, d_sigma)


def weighting_as_number(alpha, sigma, d_alpha, d_sigma):
    return solution("velocity_loss_weighting")(alpha, sigma, d_alpha, d_sigma).mean().item()


def _trapezoid(y, ts, from_start=False):
    """int_{t_i}^1 y (or int_{ts[0]}^{t_i} y) at each grid point, written out with a loop as a learner might."""
    out, total = [0.0] * len(ts), 0.0
    order = range(1, len(ts)) if from_start else range(len(ts) - 2, -1, -1)
    for i in order:
        j = i - 1 if from_start else i + 1
        total += 0.5 * abs(ts[i] - ts[j]).item() * (y[i] + y[j]).item()
        out[i] = total
    return torch.tensor(out, dtype=torch.float64)


def sde_from_noise_end(ts, f, g):
    alpha = torch.exp(-_trapezoid(f, ts, from_start=True))
    return alpha, alpha * _trapezoid(g**2 / alpha**2, ts, from_start=True).sqrt()


def sde_plus_exponent(ts, f, g):
    alpha = torch.exp(_trapezoid(f, ts))
    return alpha, alpha * _trapezoid(g**2 / alpha**2, ts).sqrt()


def sde_g_not_squared(ts, f, g):
    alpha = torch.exp(-_trapezoid(f, ts))
    return alpha, alpha * _trapezoid(g / alpha**2, ts).sqrt()


def sde_without_alpha(ts, f, g):
    return torch.exp(-_trapezoid(f, ts)), _trapezoid(g**2, ts).sqrt()


def sde_variance(ts, f, g):
    alpha = torch.exp(-_trapezoid(f, ts))
    return alpha, alpha**2 * _trapezoid(g**2 / alpha**2, ts)


def sde_rectangle_rule(ts, f, g):
    def tail(y):  # left end points: first order
        pieces = (ts[1:] - ts[:-1]) * y[:-1]
        return torch.cat([pieces.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=y.dtype)])

    alpha = torch.exp(-tail(f))
    return alpha, alpha * tail(g**2 / alpha**2).sqrt()


def sde_stacked(ts, f, g):
    return torch.stack(solution("schedule_from_sde")(ts, f, g))


WRONG = [
    (
        "linear_velocity_from_eps",
        velocity_unscaled,
        "x not rescaled: the model fed x, not (alpha' + sigma') x",
        "feed the model x'",
    ),
    (
        "linear_velocity_from_eps",
        velocity_linear_time,
        "the linear path's t given to the model, not the time of equal log-SNR",
        "schedule.time_at_log_snr(lambda)",
    ),
    (
        "linear_velocity_from_eps",
        velocity_divided,
        "x divided by (alpha' + sigma'), not multiplied",
        "x' = (alpha' + sigma') x",
    ),
    (
        "linear_velocity_from_eps",
        velocity_recovered_from_x,
        "the data recovered from x, not from the x' the model saw",
        "eps_hat belongs to x'",
    ),
    (
        "linear_velocity_from_eps",
        velocity_reversed,
        "noise - data, the blog's direction",
        "from noise (t = 0)",
    ),
    ("linear_velocity_from_eps", velocity_data_hat_only, None, "return data_hat - eps_hat"),
    ("linear_velocity_from_eps", velocity_first_coordinate, None, "should have shape (200, 2)"),
    ("velocity_loss_weighting", weighting_not_squared, "the error factor not squared", "a squared norm"),
    (
        "velocity_loss_weighting",
        weighting_half_rate,
        "d lambda / dt without its factor 2",
        "2 log(alpha / sigma)",
    ),
    (
        "velocity_loss_weighting",
        weighting_factor_only,
        "the factor not divided by d lambda / dt",
        "a density in lambda",
    ),
    (
        "velocity_loss_weighting",
        weighting_sign_flipped,
        "the sign of the d_alpha sigma / alpha term flipped",
        "-(sigma / alpha)(eps_hat",
    ),
    (
        "velocity_loss_weighting",
        weighting_fm_everywhere,
        "flow matching's e^(-lambda / 2) / 2 on every schedule",
        "the linear path's weighting",
    ),
    ("velocity_loss_weighting", weighting_times_rate, None, "w = factor / (d lambda / dt)"),
    ("velocity_loss_weighting", weighting_as_number, None, "it should have shape (19,)"),
    (
        "schedule_from_sde",
        sde_from_noise_end,
        "integrated from the noise end ts[0], not from the data end t = 1",
        "integrate from t to 1",
    ),
    (
        "schedule_from_sde",
        sde_plus_exponent,
        "exp(+int f): the sign of the exponent flipped",
        "log alpha(t) = -int_t^1 f",
    ),
    ("schedule_from_sde", sde_g_not_squared, "g where g^2 belongs", "the square of the diffusion"),
    (
        "schedule_from_sde",
        sde_without_alpha,
        "sigma^2 = int g^2, without the alpha factors",
        "shrunk by the signal's growth",
    ),
    (
        "schedule_from_sde",
        sde_variance,
        "sigma^2 returned in place of sigma",
        "return sigma, the square root",
    ),
    ("schedule_from_sde", sde_rectangle_rule, None, "a rectangle rule errs"),
    ("schedule_from_sde", sde_stacked, None, "should return a pair (alpha, sigma)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_every_named_slip_has_a_wrong_answer_here():
    named = {slip for _, _, slip, _ in WRONG if slip}
    tables = (
        exercises_06._linear_velocities(
            exercises_06._eps_net,
            VPSchedule(),
            torch.ones(1, 2, dtype=torch.float64),
            torch.full((1,), 0.5, dtype=torch.float64),
        ),
        exercises_06._weightings(*(torch.ones(1, dtype=torch.float64) * v for v in (0.5, 0.5, 1.0, -1.0))),
        exercises_06._schedules_from_sde(*(torch.linspace(0.5, 1, 3, dtype=torch.float64) for _ in range(3))),
    )
    assert named == {slip for table in tables for slip in table if slip is not None}


def test_the_slip_tables_right_entries_are_the_references():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    t = 0.05 + 0.9 * torch.rand(50, generator=gen, dtype=torch.float64)
    vp, lin = VPSchedule(), LinearSchedule()
    changed = change_schedule(exercises_06._eps_net, vp, lin, "eps", "velocity")(x=x, t=t)
    assert torch.allclose(exercises_06._linear_velocities(exercises_06._eps_net, vp, x, t)[None], changed)
    c = CosineSchedule()(t)
    w = exercises_06._weightings(c.alpha, c.sigma, c.d_alpha, c.d_sigma)[None]
    assert torch.allclose(w, implied_weighting("velocity", CosineSchedule(), t))
    ts = torch.linspace(0.1, 1, 101, dtype=torch.float64)
    k = sde_coefficients(vp, ts)
    alpha, sigma = solution("schedule_from_sde")(ts, k.f, k.g)
    assert torch.allclose(exercises_06._schedules_from_sde(ts, k.f, k.g)[None], torch.cat([alpha, sigma]))


def test_the_velocity_weighting_matches_closed_forms_and_finite_differences():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    weighting = solution("velocity_loss_weighting")
    lin, cos = LinearSchedule(), CosineSchedule()
    # linear: flow matching's e^(-lambda / 2) / 2; cosine: u = -(pi / 2) v, so (pi^2 / 4) times v-MSE's e^(-lambda / 2) / pi
    for schedule, constant in ((lin, 0.5), (cos, math.pi / 4)):
        c, lam = schedule(t), schedule.log_snr(t)
        got = weighting(c.alpha, c.sigma, c.d_alpha, c.d_sigma)
        assert torch.allclose(got, 2 * constant * fm_weighting(lam), rtol=1e-12)
    # any schedule: factor / (d lambda / dt), with d lambda / dt by central differences of log_snr
    h = 1e-5
    for schedule in (VPSchedule(), RescaledSchedule(lin, scale=lambda t: (1 + t * (1 - t), 1 - 2 * t))):
        c = schedule(t)
        rate = (schedule.log_snr(t + h) - schedule.log_snr(t - h)) / (2 * h)
        factor = (c.d_sigma - c.d_alpha * c.sigma / c.alpha) ** 2
        got = weighting(c.alpha, c.sigma, c.d_alpha, c.d_sigma)
        assert torch.allclose(got, factor / rate, rtol=1e-7)


def test_the_sde_tolerance_is_five_times_the_trapezoid_rules_own_error():
    for schedule, t_min in (
        (VPSchedule(), 0.0),
        (CosineSchedule(), 0.1),
        (RescaledSchedule(LinearSchedule()), 0.1),
    ):
        errors = []
        for points in (1001, 2001):
            ts = torch.linspace(t_min, 1.0, points, dtype=torch.float64)
            k = sde_coefficients(schedule, ts)
            alpha, sigma = solution("schedule_from_sde")(ts, k.f, k.g)
            c = schedule(ts)
            errors.append(max((alpha - c.alpha).abs().max().item(), (sigma - c.sigma).abs().max().item()))
        assert errors[0] < 2e-5 * 1.1  # allowed 1e-4: five times the rule's own error at 1001 points
        assert 3.5 < errors[0] / errors[1] < 4.5  # second order: halving the step divides the error by 4
