"""lessons.exercises_02: each check passes lesson 02's solution and names the slip of a typical wrong answer."""

import pytest
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons.exercises import review


def ddim_alpha_t(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_t * (x - sigma_t * eps_hat) / alpha_t + sigma_s * eps_hat


def ddim_plus_sign(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x + sigma_t * eps_hat) / alpha_t + sigma_s * eps_hat


def ddim_sigma_t(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x - sigma_t * eps_hat) / alpha_t + sigma_t * eps_hat


def ddim_identity(x, eps_hat, alpha_t, sigma_t, alpha_s, sigma_s):
    return x  # no slip it knows: the general hint


def posterior_variance(alpha_t, sigma_t, alpha_s, sigma_s):
    return sigma_s**2 / sigma_t**2 * (sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2)


def posterior_no_factor(alpha_t, sigma_t, alpha_s, sigma_s):
    return max(sigma_t**2 - (alpha_t / alpha_s) ** 2 * sigma_s**2, 0.0) ** 0.5


def sde_f_without_alpha(alpha, sigma, d_alpha, d_sigma):
    return d_alpha, (2 * sigma**2 * d_alpha - 2 * sigma * d_sigma).clamp_min(0).sqrt()


def sde_g_squared(alpha, sigma, d_alpha, d_sigma):
    f = d_alpha / alpha
    return f, 2 * sigma**2 * f - 2 * sigma * d_sigma


def sde_vp_only(alpha, sigma, d_alpha, d_sigma):
    return d_alpha / alpha, (2 * d_alpha / alpha).sqrt()


def sde_not_a_pair(alpha, sigma, d_alpha, d_sigma):
    return d_alpha / alpha


WRONG = [
    ("ddim_step", ddim_alpha_t, "alpha_t where alpha_s belongs", ("multiply it by alpha_s", "alpha_s x_hat")),
    ("ddim_step", ddim_plus_sign, "a plus sign in the data guess", "(x - sigma_t eps_hat) / alpha_t"),
    ("ddim_step", ddim_sigma_t, "sigma_t where sigma_s belongs", "sigma_s eps_hat"),
    ("ddim_step", ddim_identity, None, "x_s = alpha_s x_hat + sigma_s eps_hat"),
    (
        "ddpm_posterior_std",
        posterior_variance,
        "the variance c^2 instead of the standard deviation c",
        "square root",
    ),
    (
        "ddpm_posterior_std",
        posterior_no_factor,
        "the factor sigma_s^2 / sigma_t^2 missing",
        "keep the first factor",
    ),
    (
        "sde_drift_and_diffusion",
        sde_f_without_alpha,
        "f = d_alpha without dividing by alpha",
        "d_alpha / alpha",
    ),
    ("sde_drift_and_diffusion", sde_g_squared, "g^2 returned in place of g", "square root of g^2"),
    ("sde_drift_and_diffusion", sde_vp_only, "g^2 = 2 f, VP's beta", "alpha^2 + sigma^2 = 1"),
    ("sde_drift_and_diffusion", sde_not_a_pair, None, "should return a pair (f, g)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_a_formula_right_on_vp_only_is_reported_right_there_and_off_on_ve():
    text = review("sde_drift_and_diffusion", sde_vp_only).text
    assert "right on VP, cosine; off on VE: relative error 1" in text
