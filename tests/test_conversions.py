"""Conversions between eps, data, v, velocity and score: hand formulas, round trips, and the score by autograd."""

import itertools

import pytest
import torch
from model_helpers import custom_scale, gaussian_model

from lessons.conversions import PREDICTIONS, change_schedule, convert, from_data_and_noise, to_data_and_noise
from lessons.data2d import target_density
from lessons.schedules import (
    CosineSchedule,
    LinearSchedule,
    RescaledSchedule,
    ScheduleOutput,
    VPSchedule,
)

SCHEDULES = [LinearSchedule(), CosineSchedule(), VPSchedule()]


def _setting(schedule, seed=0, shape=(16, 3)):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.rand(shape[0], generator=g, dtype=torch.float64) * 0.9 + 0.05  # interior times
    coef = schedule(t)
    c = coef.expand_like(data)
    return data, noise, coef, c.alpha * data + c.sigma * noise, c


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_from_data_and_noise_against_hand_formulas(schedule):
    data, noise, coef, x_t, c = _setting(schedule)
    a, s, da, ds = c.alpha, c.sigma, c.d_alpha, c.d_sigma
    expected = {
        "eps": noise,
        "data": data,
        "v": a * noise - s * data,
        "velocity": da * data + ds * noise,
        "score": -(x_t - a * data) / s**2,  # grad of log N(x_t; a data, s^2 I)
    }
    for kind in PREDICTIONS:
        assert torch.allclose(from_data_and_noise(data, noise, kind, coef), expected[kind])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_every_prediction_recovers_data_and_noise(schedule):
    data, noise, coef, x_t, _ = _setting(schedule)
    for kind in PREDICTIONS:
        pred = from_data_and_noise(data, noise, kind, coef)
        data_back, noise_back = to_data_and_noise(pred, kind, x_t, coef)
        assert torch.allclose(data_back, data, atol=1e-9), kind
        assert torch.allclose(noise_back, noise, atol=1e-9), kind


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_round_trip_between_every_pair_on_random_x_t(schedule):
    _, _, coef, _, _ = _setting(schedule)
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(16, 3, generator=g, dtype=torch.float64) * 2  # x_t need not come from the pair
    for source, target in itertools.permutations(PREDICTIONS, 2):
        pred = torch.randn(16, 3, generator=g, dtype=torch.float64)
        there = convert(pred, source, target, x_t, coef)
        back = convert(there, target, source, x_t, coef)
        assert torch.allclose(back, pred, atol=1e-8), (source, target)
        # and both describe the same (data, noise) pair, which reproduces x_t
        data, noise = to_data_and_noise(there, target, x_t, coef)
        c = coef.expand_like(x_t)
        assert torch.allclose(c.alpha * data + c.sigma * noise, x_t, atol=1e-8)


def test_identity_conversion_is_exact():
    _, noise, coef, x_t, _ = _setting(CosineSchedule())
    assert torch.allclose(convert(noise, "eps", "eps", x_t, coef), noise)


def test_gaussian_score_by_autograd():
    """-noise / sigma is grad_x log N(x; alpha data, sigma^2 I) at x = x_t."""
    data, noise, coef, x_t, c = _setting(CosineSchedule())
    x = x_t.clone().requires_grad_(True)
    log_density = (-0.5 * ((x - c.alpha * data) ** 2 / c.sigma**2)).sum()
    (grad,) = torch.autograd.grad(log_density, x)
    assert torch.allclose(from_data_and_noise(data, noise, "score", coef), grad)


@pytest.mark.parametrize("t_value", [0.2, 0.5, 0.8])
def test_mixture_score_three_ways(t_value):
    """Noised 8-gaussians: autograd of log p_t == mixture.score == convert(exact eps -> score)."""
    mixture = target_density("8gaussians")
    schedule = CosineSchedule()
    t = torch.full((64,), t_value, dtype=torch.float64)
    coef = schedule(t)
    x = (
        torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 4
    ).requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, coef.alpha, coef.sigma).sum(), x)
    x = x.detach()
    score = mixture.score(x, coef.alpha, coef.sigma)
    data_hat = mixture.posterior_mean(x, coef.alpha, coef.sigma)
    eps = (x - coef.alpha[:, None] * data_hat) / coef.sigma[:, None]  # E[noise | x_t]
    assert torch.allclose(score, grad, atol=1e-6)
    assert torch.allclose(convert(eps, "eps", "score", x, coef), grad, atol=1e-6)


def test_bad_kind_and_shape_raise():
    data, noise, coef, x_t, _ = _setting(CosineSchedule())
    with pytest.raises(ValueError, match="unknown prediction type 'x0'"):
        convert(noise, "x0", "eps", x_t, coef)
    with pytest.raises(ValueError, match="unknown prediction type"):
        from_data_and_noise(data, noise, "noise", coef)
    with pytest.raises(ValueError, match="same shape"):
        to_data_and_noise(noise[:, :2], "eps", x_t, coef)


def test_noise_prediction_at_pure_noise_raises_instead_of_returning_nan():
    x = torch.randn(3, 2)
    coef = LinearSchedule()(torch.zeros(3))
    for kind in ("eps", "score"):
        with pytest.raises(ValueError, match="alpha"):
            to_data_and_noise(torch.randn(3, 2), kind, x, coef)
    data, _ = to_data_and_noise(torch.randn(3, 2), "velocity", x, coef)
    assert torch.isfinite(data).all()


@pytest.mark.parametrize("output", ["eps", "data", "velocity"])
def test_change_schedule_turns_the_ideal_model_of_one_schedule_into_the_other(output):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64) * 2
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.98 + 0.01
    source, target = CosineSchedule(), RescaledSchedule(LinearSchedule(), custom_scale)
    changed = change_schedule(gaussian_model(source), source, target, "eps", output)
    c = target(t)
    eps = gaussian_model(target)(x=x, t=t)  # the ideal model written directly for target
    data = (x - c.sigma[:, None] * eps) / c.alpha[:, None]
    expected = {"eps": eps, "data": data, "velocity": c.d_alpha[:, None] * data + c.d_sigma[:, None] * eps}[
        output
    ]
    assert torch.allclose(changed(x=x, t=t), expected, atol=1e-9)


def test_change_schedule_of_a_pure_rescaling_keeps_the_time():
    """On RescaledSchedule(base, c), the base's network is evaluated at (x / c(t), t): the log-SNR is unchanged."""
    seen = []

    def velocity_model(x, t, cond=None):
        seen.append((x, t))
        return torch.sin(x) * t[:, None]

    base, scaled = LinearSchedule(), RescaledSchedule(LinearSchedule(), custom_scale)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 16, dtype=torch.float64)
    changed = change_schedule(velocity_model, base, scaled, prediction="velocity", output="velocity")(
        x=x, t=t
    )
    c, dc = custom_scale(t)
    assert torch.allclose(seen[0][1], t, atol=1e-12)
    assert torch.allclose(seen[0][0], x / c[:, None], atol=1e-12)
    # x' = c x_base, so dx'/dt = c u + dc x_base
    expected = c[:, None] * velocity_model(x / c[:, None], t) + dc[:, None] * x / c[:, None]
    assert torch.allclose(changed, expected, atol=1e-10)


def test_change_schedule_bad_kind():
    with pytest.raises(ValueError, match="prediction type"):
        change_schedule(gaussian_model(LinearSchedule()), LinearSchedule(), CosineSchedule(), "noise")


def test_the_singular_ends_are_refused_in_words_or_finite():
    """alpha = 0 (t = 0) and sigma = 0 (t = 1): what stays determined is finite, what would divide by 0 is refused."""
    x, pred = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    ends = {"noise end": LinearSchedule()(torch.zeros(3, dtype=torch.float64))}
    ends["data end"] = LinearSchedule()(torch.ones(3, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"data prediction says nothing about the noise where sigma\(t\) = 0"
    ):
        to_data_and_noise(pred, "data", x, ends["data end"])
    with pytest.raises(ValueError, match=r"score -noise / sigma is infinite where sigma\(t\) = 0"):
        from_data_and_noise(pred, x, "score", ends["data end"])
    with pytest.raises(ValueError, match="sigma"):
        convert(pred, "velocity", "score", x, ends["data end"])
    for kind in ("eps", "v", "velocity", "score"):  # sigma = 0: data = x_t / alpha is determined
        data, noise = to_data_and_noise(pred, kind, x, ends["data end"])
        assert torch.isfinite(data).all() and torch.isfinite(noise).all(), kind
        assert torch.allclose(data, x), kind
    for kind in ("data", "v", "velocity"):  # alpha = 0: noise = x_t is determined
        data, noise = to_data_and_noise(pred, kind, x, ends["noise end"])
        assert torch.isfinite(data).all() and torch.equal(noise, x), kind


def test_a_path_that_stands_still_cannot_invert_a_velocity():
    still = ScheduleOutput(*(torch.full((2,), v) for v in (0.5, 0.5, 0.0, 0.0)))
    with pytest.raises(ValueError, match="velocity prediction does not determine"):
        to_data_and_noise(torch.zeros(2, 3), "velocity", torch.zeros(2, 3), still)
    nothing = ScheduleOutput(*(torch.zeros(2) for _ in range(4)))
    with pytest.raises(ValueError, match="v prediction cannot be inverted"):
        to_data_and_noise(torch.zeros(2, 3), "v", torch.zeros(2, 3), nothing)


def test_conversions_refuse_wrong_objects_and_tensors():
    data, noise, coef, x_t, _ = _setting(CosineSchedule())
    with pytest.raises(TypeError, match=r"schedule's coefficients at the times, schedule\(t\)"):
        to_data_and_noise(noise, "eps", x_t, CosineSchedule())
    with pytest.raises(TypeError, match="coef must be a ScheduleOutput object"):
        from_data_and_noise(data, noise, "eps", coef.alpha)
    with pytest.raises(
        TypeError, match="prediction type must be a name, one of: eps, data, v, velocity, score"
    ):
        to_data_and_noise(noise, coef, x_t, "eps")
    with pytest.raises(ValueError, match="choose one of: data, eps, score, v, velocity"):
        convert(noise, "eps", "x0", x_t, coef)
    bad = x_t.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x_t \(the state x\) holds 1 NaN"):
        to_data_and_noise(noise, "eps", bad, coef)
    with pytest.raises(ValueError, match="float tensor, got dtype torch.int64"):
        to_data_and_noise(noise.long(), "eps", x_t, coef)
    with pytest.raises(TypeError, match="data must be a torch tensor"):
        from_data_and_noise(data.tolist(), noise, "v", coef)
    with pytest.raises(ValueError, match="one value per sample"):
        to_data_and_noise(noise[:4], "eps", x_t[:4], coef)


def test_change_schedule_refuses_wrong_objects():
    model = gaussian_model(LinearSchedule())
    with pytest.raises(TypeError, match="model must be a network"):
        change_schedule("model", LinearSchedule(), CosineSchedule())
    with pytest.raises(TypeError, match=r"call it, CosineSchedule\(\)"):
        change_schedule(model, LinearSchedule(), CosineSchedule)
    with pytest.raises(TypeError, match="source must be a Schedule object, not the name 'linear'"):
        change_schedule(model, "linear", CosineSchedule())
    with pytest.raises(ValueError, match="unknown output prediction type 'x'"):
        change_schedule(model, LinearSchedule(), CosineSchedule(), "eps", "x")
    changed = change_schedule(
        lambda x, t, cond=None: x[:, :1], LinearSchedule(), CosineSchedule(), "velocity"
    )
    with pytest.raises(ValueError, match=r"returned shape \(4, 1\) for an input of shape \(4, 2\)"):
        changed(x=torch.randn(4, 2), t=torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="one time per sample"):
        changed(x=torch.randn(4, 2), t=torch.full((3,), 0.5))
