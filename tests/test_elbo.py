"""DDPM's variational bound: each KL against its closed form and Monte Carlo, the bound of the exact mixture model
against the mixture's exact NLL, and the simple loss as the bound reweighted per step."""

import math

import numpy as np
import pytest
import torch
from model_helpers import alpha_bars, gaussian_model, randomized
from torch.distributions import Independent, Normal, kl_divergence

from lessons.data2d import target_density
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.elbo import DDPMBound, ELBOWeights, ddpm_bound, elbo_weights, gaussian_kl, prior_kl
from lessons.mixture import ExactMixtureModel
from lessons.models import MLP

SHORT = DDPM(20, beta_start=1e-3, beta_end=0.3)  # few steps, a wide range of betas


def normal_log_density(x, mean, var):
    """log N(x; mean, var I), summed over the last axis (NumPy, float64)."""
    return -0.5 * (((x - mean) ** 2) / var + np.log(2 * np.pi * var)).sum(-1)


def mean_and_error(values):
    values = np.asarray(values, dtype=np.float64)
    return values.mean(), values.std() / math.sqrt(len(values))


def test_gaussian_kl_against_torch_distributions_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mean_q, mean_p = (
        torch.randn(6, 3, generator=g, dtype=torch.float64),
        torch.randn(6, 3, generator=g).double(),
    )
    var_q, var_p = torch.rand(6, generator=g, dtype=torch.float64) + 0.2, 0.7
    ours = gaussian_kl(mean_q, var_q, mean_p, var_p)
    q = Independent(Normal(mean_q, var_q.sqrt()[:, None].expand(6, 3)), 1)
    p = Independent(Normal(mean_p, math.sqrt(var_p)), 1)
    assert torch.allclose(ours, kl_divergence(q, p), rtol=1e-12)
    draws = q.sample((200_000,))  # (N, 6, 3)
    log_ratio = (q.log_prob(draws) - p.log_prob(draws)).numpy()
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(log_ratio))
    assert np.all(np.abs(mc - ours.numpy()) < 4 * se)


def test_prior_kl_closed_form_and_monte_carlo():
    data = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
    abar = SHORT.alpha_bars[-1].item()
    v = 1 - abar
    closed = 0.5 * (2 * (v - 1 - math.log(v)) + abar * (data**2).sum(1))
    assert torch.allclose(prior_kl(SHORT, data), closed, rtol=1e-12)
    rng = np.random.default_rng(1)
    x = data.numpy()
    x_T = math.sqrt(abar) * x + math.sqrt(v) * rng.standard_normal((200_000, *x.shape))
    log_ratio = normal_log_density(x_T, math.sqrt(abar) * x, v) - normal_log_density(x_T, 0.0, 1.0)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(log_ratio))
    assert np.all(np.abs(mc - closed.numpy()) < 4 * se)


def expected_terms_gaussian(x0, m, s, variance):
    """E over x_k of each KL term (k = 2..T) and of the decoder for data N(m, s^2 I) with its exact eps model.

    The exact eps is linear in x_k, eps_hat = g (x_k - alpha m), g = sigma / (alpha^2 s^2 + sigma^2), so every mean
    difference is affine in the Gaussian x_k and its squared norm has a closed expectation (NumPy, float64).
    """
    betas, abars = alpha_bars(20, 1e-3, 0.3)
    D = x0.shape[-1]
    kls = []
    for k in range(2, 21):
        beta, abar, prev = betas[k - 1], abars[k], abars[k - 1]
        a, alpha, sigma = 1 - beta, math.sqrt(abar), math.sqrt(1 - abar)
        g = sigma / (alpha**2 * s**2 + sigma**2)
        c0, c1 = math.sqrt(prev) * beta / (1 - abar), math.sqrt(a) * (1 - prev) / (1 - abar)
        A = c1 - (1 - beta * g / sigma) / math.sqrt(a)  # coefficient of x_k in posterior mean - model mean
        offset = (c0 + A * alpha) * x0 - beta * g / sigma * alpha * m / math.sqrt(a)
        sq = (offset**2).sum(-1) + D * A**2 * sigma**2  # E || posterior mean - model mean ||^2
        post = (1 - prev) / (1 - abar) * beta
        var_p = post if variance == "posterior" else beta
        r = post / var_p
        kls.append(0.5 * D * (r - 1 - math.log(r)) + sq / (2 * var_p))
    alpha, sigma = math.sqrt(abars[1]), math.sqrt(1 - abars[1])
    g = sigma / (alpha**2 * s**2 + sigma**2)
    sq = sigma**2 * g**2 * ((x0 - m) ** 2).sum(-1) + D * (1 - sigma * g) ** 2 * sigma**2 / alpha**2
    v = sigma**2 / alpha**2
    return np.stack(kls, -1), 0.5 * D * math.log(2 * math.pi * v) + sq / (2 * v)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_each_kl_and_the_decoder_match_their_closed_forms_for_a_gaussian(variance):
    m, s, n = 0.4, 1.5, 20_000
    model = gaussian_model(DiscreteVPSchedule(SHORT), mean=m, std=s)
    points = torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=torch.float64)
    data = points.repeat_interleave(n, 0)  # each point n times: the columns average over x_k
    bound = ddpm_bound(model, SHORT, data, variance=variance, generator=torch.Generator().manual_seed(2))
    kl_closed, decoder_closed = expected_terms_gaussian(points.numpy(), m, s, variance)
    for i in range(2):
        rows = slice(i * n, (i + 1) * n)
        kl, decoder = bound.kl[rows].numpy(), bound.decoder[rows].numpy()
        se = kl.std(0) / math.sqrt(n)
        assert np.all(np.abs(kl.mean(0) - kl_closed[i]) < 4 * se + 1e-12)
        assert abs(decoder.mean() - decoder_closed[i]) < 4 * decoder.std() / math.sqrt(n)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_each_kl_matches_a_monte_carlo_estimate_from_the_forward_chain_alone(variance):
    """L_{k-1} = E[log q(x_{k-1} | x_k, x_0) - log p(x_{k-1} | x_k)] over the chain, with q's posterior by Bayes:
    q(x_k | x_{k-1}) q(x_{k-1} | x_0) / q(x_k | x_0), so no posterior formula of the library enters."""
    model = randomized(MLP(dim=2, hidden=16, depth=2).double(), seed=3)
    n, x0 = 20_000, np.array([0.5, -1.0])
    data = torch.tensor(x0).expand(n, 2).contiguous()
    bound = ddpm_bound(model, SHORT, data, variance=variance, generator=torch.Generator().manual_seed(4))
    betas, abars = alpha_bars(20, 1e-3, 0.3)
    rng = np.random.default_rng(5)
    for k in range(2, 21):
        beta, abar, prev = betas[k - 1], abars[k], abars[k - 1]
        x_prev = math.sqrt(prev) * x0 + math.sqrt(1 - prev) * rng.standard_normal((n, 2))
        x_k = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * rng.standard_normal((n, 2))
        log_q = (
            normal_log_density(x_k, math.sqrt(1 - beta) * x_prev, beta)
            + normal_log_density(x_prev, math.sqrt(prev) * x0, 1 - prev)
            - normal_log_density(x_k, math.sqrt(abar) * x0, 1 - abar)
        )
        with torch.no_grad():
            eps = model(x=torch.tensor(x_k), t=torch.full((n,), 1 - k / 20, dtype=torch.float64)).numpy()
        mu = (x_k - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
        var_p = (1 - prev) / (1 - abar) * beta if variance == "posterior" else beta
        mc, mc_se = mean_and_error(log_q - normal_log_density(x_prev, mu, var_p))
        ours, ours_se = mean_and_error(bound.kl[:, k - 2].numpy())
        assert abs(mc - ours) < 4 * math.hypot(mc_se, ours_se), k


def test_the_exact_mixture_models_bound_is_above_the_exact_nll_and_close_with_many_steps():
    mixture = target_density("mixture")
    data = mixture.sample(1000, generator=torch.Generator().manual_seed(6)).double()
    nll = -mixture.log_prob(data).double()
    gaps = {}
    for steps, variance in ((1000, "beta"), (1000, "posterior"), (100, "beta")):
        ddpm = DDPM(steps)
        exact = ExactMixtureModel(mixture, DiscreteVPSchedule(ddpm), "eps")
        bound = ddpm_bound(exact, ddpm, data, variance=variance, generator=torch.Generator().manual_seed(7))
        gaps[steps, variance] = mean_and_error((bound.total - nll).numpy())
    for gap, se in gaps.values():
        assert gap > -3 * se  # a bound on -log p: never below the exact NLL, beyond noise
    gap, se = gaps[1000, "beta"]
    assert gap < 0.1  # nats: with the ideal eps and 1000 steps the bound is tight
    assert gaps[100, "beta"][0] > gap + 3 * math.hypot(se, gaps[100, "beta"][1])  # fewer steps, looser bound


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_weights_against_their_direct_formulas(variance):
    betas, abars = alpha_bars(1000)
    w = elbo_weights(DDPM(1000), dim=3, variance=variance)
    a, prev, cur = 1 - betas[1:], abars[1:-1], abars[2:]
    direct = betas[1:] / (2 * a * (1 - (prev if variance == "posterior" else cur)))
    np.testing.assert_allclose(w.elbo.numpy(), np.concatenate([[0.5], direct]), rtol=1e-9)
    r = (1 - prev) / (1 - cur)
    extra = 1.5 * (r - 1 - np.log(r)) if variance == "beta" else np.zeros_like(r)
    decoder = 1.5 * math.log(2 * math.pi * (1 - abars[1]) / abars[1])
    np.testing.assert_allclose(w.constant.numpy(), np.concatenate([[decoder], extra]), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(w.log_snr.numpy(), np.log(abars[1:] / (1 - abars[1:])), rtol=1e-12)
    np.testing.assert_allclose(w.per_step.numpy(), w.elbo.numpy() * 1000 * 3, rtol=1e-12)


def test_continuous_ratio_is_the_per_step_weight_in_the_limit():
    w = elbo_weights(DDPM(1000), dim=2)
    step = (w.log_snr[:-1] - w.log_snr[1:]).numpy()  # d lambda of steps k = 2..T
    deviation = np.abs(w.continuous[1:].numpy() / w.per_step[1:].numpy() - 1)
    assert np.all(deviation <= step)  # expm1(d lambda) / d lambda - 1 is about d lambda / 2
    finer = elbo_weights(
        DDPM(10_000, 1e-5, 0.002), dim=2
    )  # the same continuous schedule, ten times the steps
    assert (finer.continuous[1000:] / finer.per_step[1000:] - 1).abs().max() < 0.01


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_the_bound_is_the_simple_loss_reweighted_per_step(variance):
    model = randomized(MLP(dim=2, hidden=16, depth=2), seed=8)
    data = torch.randn(500, 2, generator=torch.Generator().manual_seed(9))
    bound = ddpm_bound(model, SHORT, data, variance=variance, generator=torch.Generator().manual_seed(10))
    w = elbo_weights(SHORT, dim=2, variance=variance)
    simple_terms = (
        w.simple * bound.eps_error
    )  # (B, T): step k's share of the simple loss, (1 / T) mean_d err^2
    reweighted = w.per_step * simple_terms + w.constant  # (B, T): c_k ||eps - eps_hat||^2 + b_k
    assert torch.allclose(reweighted[:, 1:], bound.kl, rtol=1e-9, atol=1e-12)
    assert torch.allclose(reweighted[:, 0], bound.decoder, rtol=1e-9)
    assert torch.allclose(bound.prior + reweighted.sum(1), bound.total, rtol=1e-9)


def test_eps_error_is_what_the_simple_loss_measures():
    model = randomized(MLP(dim=2, hidden=16, depth=2), seed=11)
    data = torch.randn(2000, 2, generator=torch.Generator().manual_seed(12))
    bound = ddpm_bound(model, SHORT, data, generator=torch.Generator().manual_seed(13))
    torch.manual_seed(14)
    with torch.no_grad():
        losses = [SHORT.loss(model, data).item() for _ in range(40)]
    simple, se = mean_and_error(losses)
    ours, ours_se = mean_and_error((bound.eps_error.mean(1) / 2).numpy())
    assert abs(simple - ours) < 4 * math.hypot(se, ours_se)


def test_bad_input_is_refused_in_words():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="variance"):
        gaussian_kl(x, -1.0, x, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        gaussian_kl(x, 1.0, torch.zeros(4, 3), 1.0)
    with pytest.raises(TypeError, match="DDPM"):
        prior_kl("ddpm", x)
    with pytest.raises(ValueError, match="variance"):
        ddpm_bound(MLP(), SHORT, x, variance="small")
    with pytest.raises(ValueError, match="dim"):
        elbo_weights(SHORT, 0)
    with pytest.raises(ValueError, match="kl"):
        DDPMBound(torch.zeros(4), torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 20), 0.1)
    with pytest.raises(ValueError, match="elbo"):
        ELBOWeights(torch.zeros(5), torch.zeros(4), torch.zeros(5), torch.zeros(5), torch.zeros(5))
    with pytest.raises(ValueError, match="0 columns"):
        DDPMBound(torch.zeros(4), torch.zeros(4, 0), torch.zeros(4), torch.zeros(4, 0), 0.1)
    with pytest.raises(ValueError, match="decoder_variance"):
        DDPMBound(torch.zeros(4), torch.zeros(4, 1), torch.zeros(4), torch.zeros(4, 2), float("nan"))
    with pytest.raises(ValueError, match="one per sample"):
        gaussian_kl(x, torch.ones(3), x, 1.0)
    with pytest.raises(TypeError, match="positive number"):
        gaussian_kl(x, "1", x, 1.0)


def test_a_model_that_returns_nan_is_refused_at_the_step_where_it_does():
    def nan_late(x, t, cond=None):  # finite for the first, least noisy steps; NaN from t < 0.5 on
        return torch.where(t[:, None] < 0.5, float("nan"), torch.zeros_like(x))

    with pytest.raises(ValueError, match=r"k = 11 \(t = 0.45"):
        ddpm_bound(nan_late, SHORT, torch.zeros(4, 2))


def test_the_two_variances_share_their_draws_and_eps_errors_for_one_seed():
    """The notebook compares the two variances on the same chains: same seed, same x_k, same eps errors."""
    model = randomized(MLP(dim=2, hidden=16, depth=2), seed=15)
    data = torch.randn(50, 2, generator=torch.Generator().manual_seed(16))
    a, b = (
        ddpm_bound(model, SHORT, data, v, generator=torch.Generator().manual_seed(17))
        for v in ("posterior", "beta")
    )
    assert torch.equal(a.eps_error, b.eps_error) and torch.equal(a.decoder, b.decoder)
    assert bool((b.total != a.total).all())
