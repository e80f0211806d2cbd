"""lessons.exercises_01: each check passes lesson 01's solution and names the slip of a typical wrong answer."""

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises_01
from lessons.data2d import sample_target
from lessons.ddpm import DDPM
from lessons.elbo import gaussian_kl
from lessons.exercises import review, solution


def _marginal(data, noise, abar):  # abar (B,)
    return abar.sqrt()[:, None] * data + (1 - abar).sqrt()[:, None] * noise


def marginal_one_step_early(data, noise, betas, k):
    abars = torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, 0)])  # abar_0..abar_T
    return _marginal(data, noise, abars[k - 1])


def marginal_product_of_betas(data, noise, betas, k):
    return _marginal(data, noise, torch.cumprod(betas, 0)[k - 1])


def marginal_without_roots(data, noise, betas, k):
    abar = torch.cumprod(1 - betas, 0)[k - 1][:, None]
    return abar * data + (1 - abar) * noise


def marginal_summed_betas(data, noise, betas, k):
    abar = torch.cumprod(1 - betas, 0)[k - 1][:, None]
    return abar.sqrt() * data + torch.cumsum(betas, 0)[k - 1][:, None].sqrt() * noise


def marginal_indexed_by_k(data, noise, betas, k):
    return _marginal(data, noise, torch.cumprod(1 - betas, 0)[k])  # abar_{k+1}: fails at k = T


def marginal_one_row(data, noise, betas, k):
    return solution("ddpm_marginal")(data, noise, betas, k)[0]


def _step(x, eps_hat, z, beta, abar, abar_prev, root=True, divide=None, variance=None, as_std=False):
    scale = (1 - abar) ** 0.5 if root else 1 - abar
    mean = (x - beta / scale * eps_hat) / ((1 - beta) ** 0.5 if divide is None else divide)
    var = (1 - abar_prev) / (1 - abar) * beta if variance is None else variance
    return mean + (var if as_std else var**0.5) * z


def step_without_root(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, eps_hat, z, beta, abar, abar_prev, root=False)


def step_divided_by_root_abar(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, eps_hat, z, beta, abar, abar_prev, divide=abar**0.5)


def step_variance_as_std(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, eps_hat, z, beta, abar, abar_prev, as_std=True)


def step_plus_sign(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, -eps_hat, z, beta, abar, abar_prev)


def step_beta_variance(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, eps_hat, z, beta, abar, abar_prev, variance=beta)


def step_without_noise(x, eps_hat, z, beta, abar, abar_prev):
    return _step(x, eps_hat, z, beta, abar, abar_prev, variance=0.0)  # no slip it knows: the general hint


def _kl(data, x_k, eps_hat, beta, abar, abar_prev, over=None, factor=1.0, reduce=None):
    noise = (x_k - abar**0.5 * data) / (1 - abar) ** 0.5
    gap = factor * beta * (noise - eps_hat) / (1 - abar) ** 0.5  # posterior mean - model mean, times factor
    var = (1 - abar_prev) / (1 - abar) * beta
    return (gap**2).sum(1) / (1 - beta) / (2 * var if over is None else over(var))


def kl_without_half(data, x_k, eps_hat, beta, abar, abar_prev):
    return _kl(data, x_k, eps_hat, beta, abar, abar_prev, over=lambda var: var)


def kl_over_beta(data, x_k, eps_hat, beta, abar, abar_prev):
    return _kl(data, x_k, eps_hat, beta, abar, abar_prev, over=lambda var: 2 * beta)


def kl_over_std(data, x_k, eps_hat, beta, abar, abar_prev):
    return _kl(data, x_k, eps_hat, beta, abar, abar_prev, over=lambda var: 2 * var**0.5)


def kl_means_not_divided(data, x_k, eps_hat, beta, abar, abar_prev):
    return _kl(data, x_k, eps_hat, beta, abar, abar_prev, factor=(1 - beta) ** 0.5)


def kl_mean_over_coordinates(data, x_k, eps_hat, beta, abar, abar_prev):
    return _kl(data, x_k, eps_hat, beta, abar, abar_prev) / data.shape[1]


def kl_eps_error(data, x_k, eps_hat, beta, abar, abar_prev):
    noise = (x_k - abar**0.5 * data) / (1 - abar) ** 0.5
    return ((noise - eps_hat) ** 2).sum(1)  # the simple loss's term, unweighted: no slip it knows


WRONG = [
    ("ddpm_marginal", marginal_one_step_early, "abar_{k-1}: the product stops one step early", "cumprod"),
    ("ddpm_marginal", marginal_product_of_betas, "the product of the betas, not of 1 - beta", "1 - beta_i"),
    (
        "ddpm_marginal",
        marginal_without_roots,
        "abar_k and 1 - abar_k without their square roots",
        "are variances",
    ),
    ("ddpm_marginal", marginal_summed_betas, "the noise variance sum_i beta_i", "shrinks the noise"),
    ("ddpm_marginal", marginal_indexed_by_k, None, "raised IndexError"),
    ("ddpm_marginal", marginal_one_row, None, "should have shape (200, 2)"),
    (
        "ddpm_ancestral_step",
        step_without_root,
        "beta_k / (1 - abar_k): the square root missing",
        "scaled like the noise",
    ),
    (
        "ddpm_ancestral_step",
        step_divided_by_root_abar,
        "sqrt(abar_k) where sqrt(1 - beta_k) belongs",
        "undoes one forward step",
    ),
    (
        "ddpm_ancestral_step",
        step_variance_as_std,
        "the variance used as the standard deviation",
        "add sqrt(tilde beta_k) z",
    ),
    (
        "ddpm_ancestral_step",
        step_plus_sign,
        "a plus sign on the eps_hat term",
        "takes some of it out",
    ),
    (
        "ddpm_ancestral_step",
        step_beta_variance,
        "beta_k as the variance, DDPM's other choice",
        "no noise at the last step",
    ),
    ("ddpm_ancestral_step", step_without_noise, None, "tilde beta_k = (1 - abar_{k-1})"),
    ("ddpm_step_kl", kl_without_half, "the factor 1/2 missing", "keep the 2"),
    ("ddpm_step_kl", kl_over_beta, "divided by beta_k, the other variance", "divide by 2 tilde beta_k"),
    (
        "ddpm_step_kl",
        kl_over_std,
        "divided by the standard deviation sqrt(tilde beta_k)",
        "the variance tilde beta_k itself",
    ),
    (
        "ddpm_step_kl",
        kl_means_not_divided,
        "both means left without the factor 1 / sqrt(1 - beta_k)",
        "divide by sqrt(1 - beta_k)",
    ),
    (
        "ddpm_step_kl",
        kl_mean_over_coordinates,
        "a mean over the coordinates, not a sum",
        "sums the squares",
    ),
    ("ddpm_step_kl", kl_eps_error, None, "KL = ||posterior mean - mu_k||^2 / (2 tilde beta_k)"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_a_marginal_right_on_one_schedule_only_is_reported_right_there():
    def ddpm_default_only(data, noise, betas, k):
        return _marginal(data, noise, DDPM().alpha_bars[k])  # DDPM()'s schedule whatever the betas

    text = review("ddpm_marginal", ddpm_default_only).text
    assert "right on T = 1000, betas 1e-4..0.02; off on T = 100" in text


def test_the_marginal_is_the_step_by_step_chain_in_distribution():
    """The closed form's residual x_k - sqrt(abar_k) data has the chain's variance 1 - abar_k (C1's check)."""
    ddpm, data, k = (
        DDPM(num_steps=10, beta_start=0.05, beta_end=0.5),
        sample_target("moons", 20_000, seed=0),
        6,
    )
    chain = ddpm.forward_chain(data.double(), [k], generator=torch.Generator().manual_seed(1))[0]
    noise = torch.randn(data.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    steps = torch.full((data.shape[0],), k)
    closed = solution("ddpm_marginal")(data.double(), noise, ddpm.betas, steps)
    abar = ddpm.alpha_bars[k]
    for x in (chain, closed):
        resid = x - abar.sqrt() * data.double()
        var, se = resid.var(), (1 - abar) * (2 / resid.numel()) ** 0.5
        assert abs(var - (1 - abar)) < 5 * se and abs(resid.mean()) < 5 * ((1 - abar) / resid.numel()) ** 0.5


def test_the_step_kl_is_the_gaussian_kl_of_the_posterior_and_the_model_step():
    """Independent of c_k: the posterior q(x_{k-1} | x_k, data) from Bayes' rule, the model's mean from section 4."""
    ddpm, g = DDPM(), torch.Generator().manual_seed(5)
    for k in (2, 17, 700):
        beta, abar, abar_prev = (
            v.item() for v in (ddpm.betas[k - 1], ddpm.alpha_bars[k], ddpm.alpha_bars[k - 1])
        )
        data, noise, eps_hat = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
        x_k = abar**0.5 * data + (1 - abar) ** 0.5 * noise
        post_mean = (abar_prev**0.5 * beta * data + (1 - beta) ** 0.5 * (1 - abar_prev) * x_k) / (1 - abar)
        model_mean = (x_k - beta / (1 - abar) ** 0.5 * eps_hat) / (1 - beta) ** 0.5
        var = (1 - abar_prev) / (1 - abar) * beta
        want = gaussian_kl(post_mean, var, model_mean, var)
        got = solution("ddpm_step_kl")(data, x_k, eps_hat, beta, abar, abar_prev)
        assert torch.allclose(got, want, rtol=1e-9, atol=0)


def test_the_checks_sampler_with_the_solution_is_ddpm_sample():
    """The check's own loop, with the shipped step, is lessons.ddpm.DDPM.sample draw for draw."""
    ddpm = DDPM(num_steps=20, beta_start=1e-3, beta_end=0.3)
    noise = torch.randn(30, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    mine = exercises_01._sample(solution("ddpm_ancestral_step"), ddpm, exercises_01._eps_field, noise, gen)
    want = ddpm.sample(exercises_01._eps_field, noise, generator=torch.Generator().manual_seed(7)).final
    assert torch.allclose(mine, want, rtol=0, atol=1e-12)
