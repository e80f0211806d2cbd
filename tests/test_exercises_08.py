"""lessons.exercises_08: each check passes lesson 08's solution and names the slip of a typical wrong answer."""

import math

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises, exercises_08
from lessons.exercises import review, solution
from lessons.guidance import ClassifierFreeGuidance
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """review and solution find lesson 08's exercises (as they will once LESSON_CHECKS lists exercises_08)."""
    for name, checker in exercises_08.CHECKS.items():
        monkeypatch.setitem(exercises.EXERCISES, name, (exercises_08.LESSON, checker))


def _guided(model, x, t, cond, w, null=None, mix=lambda w, c, u: (1 + w) * c - w * u):
    null = torch.full_like(cond, model.num_classes if null is None else null)
    v_cond, v_uncond = model(x=torch.cat([x, x]), t=torch.cat([t, t]), cond=torch.cat([cond, null])).chunk(2)
    return mix(w, v_cond, v_uncond)


def guided_swapped(model, x, t, cond, w):
    return _guided(model, x, t, cond, w, mix=lambda w, c, u: (1 + w) * u - w * c)


def guided_sign_flipped(model, x, t, cond, w):
    return _guided(model, x, t, cond, w, mix=lambda w, c, u: (1 - w) * c + w * u)


def guided_difference_only(model, x, t, cond, w):
    return _guided(model, x, t, cond, w, mix=lambda w, c, u: w * (c - u))


def guided_null_off_by_one(model, x, t, cond, w):
    return _guided(model, x, t, cond, w, null=model.num_classes - 1)


def guided_null_zero(model, x, t, cond, w):
    return _guided(model, x, t, cond, w, null=0)


def guided_conditional_only(model, x, t, cond, w):
    return model(x=x, t=t, cond=cond)  # no slip it knows: the general hint


def guided_two_calls(model, x, t, cond, w):  # the lesson's by-hand version: right values, two network calls
    return (1 + w) * model(x=x, t=t, cond=cond) - w * model(x=x, t=t, cond=None)


def _posterior(x, t, class_laws, priors, alpha, sigma, normalise=True, with_priors=True):
    log_joint = torch.stack(
        [
            math.log(p) * with_priors + law.log_prob(x, alpha(t), sigma(t))
            for law, p in zip(class_laws, priors)
        ],
        dim=1,
    )
    return torch.softmax(log_joint, dim=1) if normalise else log_joint.exp()


def posterior_of_the_data(x, t, class_laws, priors):
    return _posterior(x, t, class_laws, priors, lambda t: 1.0, lambda t: 0.0)


def posterior_ddpm_time(x, t, class_laws, priors):
    return _posterior(x, t, class_laws, priors, lambda t: 1 - t, lambda t: t)


def posterior_without_priors(x, t, class_laws, priors):
    return _posterior(x, t, class_laws, priors, lambda t: t, lambda t: 1 - t, with_priors=False)


def posterior_not_normalised(x, t, class_laws, priors):
    return _posterior(x, t, class_laws, priors, lambda t: t, lambda t: 1 - t, normalise=False)


def posterior_transposed(x, t, class_laws, priors):
    return solution("noised_class_posterior")(x, t, class_laws, priors).T


def _tilted(conditional, marginal, class_prior, w, n, power, normalise=True, prior=True):
    x = conditional.sample(n)
    p = torch.exp(math.log(class_prior) * prior + conditional.log_prob(x) - marginal.log_prob(x))
    weights = p ** power(w)
    return ((weights * p).sum() / (weights.sum() if normalise else n)).item()


def tilted_one_power_too_many(conditional, marginal, class_prior, w, n):
    return _tilted(conditional, marginal, class_prior, w, n, lambda w: 1 + w)


def tilted_without_weights(conditional, marginal, class_prior, w, n):
    return _tilted(conditional, marginal, class_prior, w, n, lambda w: 0)


def tilted_not_normalised(conditional, marginal, class_prior, w, n):
    return _tilted(conditional, marginal, class_prior, w, n, lambda w: w, normalise=False)


def tilted_without_prior(conditional, marginal, class_prior, w, n):
    return _tilted(conditional, marginal, class_prior, w, n, lambda w: w, prior=False)


def tilted_negative_power(conditional, marginal, class_prior, w, n):
    return _tilted(conditional, marginal, class_prior, w, n, lambda w: -w)  # no slip it knows


def tilted_as_a_batch(conditional, marginal, class_prior, w, n):
    return torch.full((n,), solution("tilted_confidence")(conditional, marginal, class_prior, w, n))


WRONG = [
    (
        "guided_velocity",
        guided_swapped,
        "(1 + w) v_uncond - w v_cond, the two swapped",
        "gets the weight 1 + w",
    ),
    (
        "guided_velocity",
        guided_sign_flipped,
        "(1 - w) v_cond + w v_uncond, the sign of w flipped",
        "extrapolates away from it",
    ),
    (
        "guided_velocity",
        guided_difference_only,
        "w (v_cond - v_uncond), the plain conditional term left out",
        "w = 0 must give the plain conditional model",
    ),
    (
        "guided_velocity",
        guided_null_off_by_one,
        "num_classes - 1 as the 'no class' label",
        "the extra index num_classes",
    ),
    ("guided_velocity", guided_null_zero, "class 0 as the 'no class' label", "0 is a real class"),
    ("guided_velocity", guided_conditional_only, None, "split with .chunk(2)"),
    ("guided_velocity", guided_two_calls, None, "make it one batched call"),
    (
        "noised_class_posterior",
        posterior_of_the_data,
        "p(x | c) of the data at every t (alpha = 1, sigma = 0)",
        "x is a noisy point x_t",
    ),
    (
        "noised_class_posterior",
        posterior_ddpm_time,
        "alpha = 1 - t, sigma = t: t = 1 read as noise",
        "t = 0 is noise and t = 1 is data",
    ),
    (
        "noised_class_posterior",
        posterior_without_priors,
        "the priors p(c) left out",
        "weighs each class's likelihood by its prior",
    ),
    (
        "noised_class_posterior",
        posterior_not_normalised,
        "p(c) p_t(x | c), not divided by p_t(x)",
        "each row sums to 1",
    ),
    ("noised_class_posterior", posterior_transposed, None, "it should have shape (200, 2)"),
    (
        "tilted_confidence",
        tilted_one_power_too_many,
        "weights p(c | x)^(1 + w) on draws of p(x | c)",
        "already carry one factor p(c | x)",
    ),
    (
        "tilted_confidence",
        tilted_without_weights,
        "no weights: the mean under p(x | c)",
        "that is the w = 0 law",
    ),
    (
        "tilted_confidence",
        tilted_not_normalised,
        "weights not normalised: the mean of p(c | x)^w p(c | x)",
        "divide the weighted sum by the sum of the weights",
    ),
    (
        "tilted_confidence",
        tilted_without_prior,
        "the prior p(c) left out of p(c | x)",
        "it is not a probability",
    ),
    ("tilted_confidence", tilted_negative_power, None, "return sum(p^w p) / sum(p^w)"),
    ("tilted_confidence", tilted_as_a_batch, None, "it should have shape ()"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_the_library_itself_and_a_weighted_draw_of_the_marginal_pass_too():
    """Other right answers: ClassifierFreeGuidance (one batched call), and draws of p(x) weighted by p(c | x)^(1+w)."""
    assert review(
        "guided_velocity", lambda model, x, t, cond, w: ClassifierFreeGuidance(model, w)(x, t, cond)
    ).passed

    def from_the_marginal(conditional, marginal, class_prior, w, n):
        x = marginal.sample(n)
        p = torch.exp(math.log(class_prior) + conditional.log_prob(x) - marginal.log_prob(x))
        return ((p ** (1 + w) * p).sum() / (p ** (1 + w)).sum()).item()

    assert review("tilted_confidence", from_the_marginal).passed


def test_the_noised_posterior_times_b_t_is_the_gap_between_the_exact_velocities():
    """Independent of Bayes' rule as coded: on the straight path v = x / t + (1 - t) / t score, so
    (1 - t) / t grad log p_t(c | x) = u_t(x | c) - u_t(x); the gradient by central differences."""
    laws, priors = exercises_08._class_cases()["the lesson's two classes"]
    everything = GaussianMixture(exercises_08.LESSON_MEANS[0] + exercises_08.LESSON_MEANS[1], 0.6)
    g = torch.Generator().manual_seed(3)
    x = 1.5 * torch.randn(50, 2, generator=g, dtype=torch.float64)
    t = 0.2 + 0.7 * torch.rand(50, generator=g, dtype=torch.float64)
    posterior = solution("noised_class_posterior")
    eps, grad = 1e-5, torch.zeros(50, 2, dtype=torch.float64)
    for d in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[d] = eps
        up, down = (posterior(x + s * step, t, laws, priors)[:, 0].log() for s in (1, -1))
        grad[:, d] = (up - down) / (2 * eps)
    u_cond = ExactMixtureModel(laws[0], LinearSchedule(), prediction="velocity")(x=x, t=t)
    u_all = ExactMixtureModel(everything, LinearSchedule(), prediction="velocity")(x=x, t=t)
    assert torch.allclose(((1 - t) / t)[:, None] * grad, u_cond - u_all, rtol=0, atol=1e-5)


def test_the_standard_error_of_the_tilted_check_is_the_spread_of_right_answers():
    """The check's per-draw std (delta method) predicts the spread of the solution over independent seeds."""
    conditional, marginal = exercises_08._lesson_laws()
    w, n, repeats = 1.0, 2000, 40
    _, spread, _ = exercises_08._tilted_references()[w][None]
    torch.manual_seed(0)
    estimates = torch.tensor(
        [solution("tilted_confidence")(conditional, marginal, 0.5, w, n) for _ in range(repeats)]
    )
    ratio = estimates.std().item() / (spread / n**0.5)
    assert 0.7 < ratio < 1.3, (
        ratio
    )  # the std of a std from 40 draws is about 11%: this band is about 3 of them
