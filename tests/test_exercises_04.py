"""lessons.exercises_04: each check passes lesson 04's solution and names the slip of a typical wrong answer."""

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons.exercises import review, solution
from lessons.mixture import ExactMixtureModel


def velocity_control(x, data, alpha, sigma, d_alpha, d_sigma):  # the lesson's control for C12
    return d_alpha * data + d_alpha / alpha * (x - alpha * data)


def velocity_ot_only(x, data, alpha, sigma, d_alpha, d_sigma):
    return data - (x - alpha * data) / sigma


def velocity_no_sigma(x, data, alpha, sigma, d_alpha, d_sigma):
    return d_alpha * data + d_sigma * (x - alpha * data)


def cfm_reversed_target(model, data, noise, t):
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    return ((model(x=x_t, t=t) - (noise - data)) ** 2).mean()


def cfm_summed(model, data, noise, t):
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    return ((model(x=x_t, t=t) - (data - noise)) ** 2).sum(1).mean()


def cfm_as_number(model, data, noise, t):
    return solution("ot_cfm_loss")(model, data, noise, t).item()


def _constant(mixture, path, t, n, reduce):
    tt = torch.full((n,), t)
    sample = path.sample(torch.randn(n, 2), mixture.sample(n), tt)
    marginal = ExactMixtureModel(mixture, path.schedule, prediction="velocity")(x=sample.x_t, t=tt)
    return reduce(sample.velocity, marginal).mean().item()


def constant_mean_over_coordinates(mixture, path, t, n):
    return _constant(mixture, path, t, n, lambda u, m: ((u - m) ** 2).mean(1))


def constant_without_marginal(mixture, path, t, n):
    return _constant(mixture, path, t, n, lambda u, m: (u**2).sum(1))


def constant_not_squared(mixture, path, t, n):
    return _constant(mixture, path, t, n, lambda u, m: (u - m).norm(dim=1))


WRONG = [
    (
        "gaussian_path_velocity",
        velocity_control,
        "d_alpha / alpha where d_sigma / sigma belongs",
        "d_sigma / sigma",
    ),
    ("gaussian_path_velocity", velocity_ot_only, "OT's data - noise on every path", "OT only"),
    ("gaussian_path_velocity", velocity_no_sigma, "(x - alpha data) not divided by sigma", "is the noise"),
    ("ot_cfm_loss", cfm_reversed_target, "noise - data as the target", "t = 0 is noise and t = 1 is data"),
    ("ot_cfm_loss", cfm_summed, "a sum over the 2 coordinates, not a mean", "mean over the batch and the"),
    ("ot_cfm_loss", cfm_as_number, None, "without a graph"),
    ("cfm_fm_constant", constant_mean_over_coordinates, "a mean over the coordinates, not a sum", "sums the"),
    (
        "cfm_fm_constant",
        constant_without_marginal,
        "E||u_t(x_t | data)||^2, without the marginal field",
        "subtract",
    ),
    (
        "cfm_fm_constant",
        constant_not_squared,
        "E||u_t(x_t | data) - u_t(x_t)|| without the square",
        "squared",
    ),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_the_tolerance_of_a_random_answer_comes_from_standard_errors():
    text = review("cfm_fm_constant", solution("cfm_fm_constant")).text
    assert "standard errors (allowed 4.5)" in text and "n = 10000" in text


def test_a_nan_for_the_constant_is_not_right():
    """max(0, nan) is 0: a NaN answer once slipped through as 'within 0 standard errors'."""
    feedback = review("cfm_fm_constant", lambda mixture, path, t, n: torch.tensor(float("nan")))
    assert feedback.status == "not right yet", feedback.text
