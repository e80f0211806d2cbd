"""Gaussian mixture: density (grid integral, scipy), score (autograd), posterior mean (grid integral), moments."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from lessons.data2d import eight_gaussians, skewed_mixture
from lessons.mixture import GaussianMixture


def _grid(lo, hi, n):
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), (axis[1] - axis[0]).item() ** 2


def _scipy_log_prob(mixture, x, alpha=1.0, sigma=0.0):
    """log sum_k w_k N(x; alpha mu_k, (alpha^2 s_k^2 + sigma^2) I) with scipy."""
    dens = sum(
        w * multivariate_normal(mean=alpha * mu, cov=(alpha**2 * s**2 + sigma**2) * np.eye(len(mu))).pdf(x)
        for w, mu, s in zip(mixture.weights.double().numpy(), mixture.means.double().numpy(),
                            mixture.stds.double().numpy())
    )
    return np.log(dens)


@pytest.mark.parametrize("build, alpha, sigma, lo, hi", [
    (skewed_mixture, 1.0, 0.0, -7.0, 7.0),
    (eight_gaussians, 1.0, 0.0, -9.0, 9.0),
    (eight_gaussians, 0.6, 0.8, -9.0, 9.0),
])
def test_density_integrates_to_one(build, alpha, sigma, lo, hi):
    x, cell = _grid(lo, hi, 181)  # spacing <= 0.1: the sum of a smooth Gaussian converges fast
    total = build().log_prob(x, alpha, sigma).exp().sum().item() * cell
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("alpha, sigma", [(1.0, 0.0), (0.5, 0.7), (0.0, 1.0)])
def test_log_prob_against_scipy(alpha, sigma):
    mixture = skewed_mixture()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    ours = mixture.log_prob(x, alpha, sigma).numpy()
    assert np.allclose(ours, _scipy_log_prob(mixture, x.numpy(), alpha, sigma), atol=1e-6)


def test_per_sample_alpha_sigma_match_scalar_calls():
    mixture = eight_gaussians()
    x = torch.randn(4, 2, dtype=torch.float64)
    alpha, sigma = torch.tensor([0.1, 0.4, 0.7, 1.0]), torch.tensor([0.9, 0.6, 0.3, 0.05])
    batched = mixture.log_prob(x, alpha, sigma)
    single = torch.stack([mixture.log_prob(x[i:i + 1], alpha[i].item(), sigma[i].item())[0] for i in range(4)])
    assert torch.allclose(batched, single)


@pytest.mark.parametrize("alpha, sigma", [(1.0, 0.0), (0.3, 0.9)])
def test_score_against_autograd(alpha, sigma):
    mixture = skewed_mixture()
    x = (torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, alpha, sigma).sum(), x)
    assert torch.allclose(mixture.score(x.detach(), alpha, sigma), grad, atol=1e-8)


@pytest.mark.parametrize("alpha, sigma", [(0.8, 0.5), (0.4, 0.9)])
def test_posterior_mean_against_a_grid_integral(alpha, sigma):
    """E[data | x_t] = int d p(d) N(x_t; alpha d, sigma^2) dd / int p(d) N(x_t; alpha d, sigma^2) dd."""
    mixture = skewed_mixture()
    grid, _ = _grid(-8.0, 8.0, 321)
    prior = mixture.log_prob(grid)  # (G,)
    x_t = torch.tensor([[0.0, 0.0], [1.5, -1.0], [-1.0, 1.2], [0.3, 2.0]], dtype=torch.float64)
    log_lik = -0.5 * ((x_t[:, None, :] - alpha * grid[None]) ** 2).sum(-1) / sigma**2  # (B, G)
    w = torch.softmax(prior[None] + log_lik, dim=1)
    expected = w @ grid
    assert torch.allclose(mixture.posterior_mean(x_t, alpha, sigma), expected, atol=1e-5)
    # posterior_weights are Bayes' rule over components
    comp_w = mixture.posterior_weights(x_t, alpha, sigma)
    assert torch.allclose(comp_w.sum(1), torch.ones(4, dtype=torch.float64))


def test_posterior_weights_by_bayes_rule():
    mixture = skewed_mixture()
    x = np.array([[0.5, 0.5], [-2.0, -1.0]])
    alpha, sigma = 0.7, 0.6
    joint = np.stack([
        w * multivariate_normal(alpha * mu, (alpha**2 * s**2 + sigma**2) * np.eye(2)).pdf(x)
        for w, mu, s in zip(mixture.weights.double().numpy(), mixture.means.double().numpy(),
                            mixture.stds.double().numpy())
    ], 1)
    ours = mixture.posterior_weights(torch.from_numpy(x), alpha, sigma).numpy()
    assert np.allclose(ours, joint / joint.sum(1, keepdims=True), atol=1e-6)


def test_sample_moments():
    mixture = skewed_mixture()
    n = 200_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(3)).double()
    w, mu, s = mixture.weights.double(), mixture.means.double(), mixture.stds.double()
    mean = w @ mu
    second = sum(w[k] * (s[k] ** 2 * torch.eye(2, dtype=torch.float64) + torch.outer(mu[k], mu[k])) for k in range(3))
    cov = second - torch.outer(mean, mean)
    assert x.shape == (n, 2)
    se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)


def test_weights_are_normalised_and_stds_broadcast():
    mixture = GaussianMixture([[0.0, 0.0], [1.0, 1.0]], 0.5, [1.0, 3.0])
    assert torch.allclose(mixture.weights, torch.tensor([0.25, 0.75]))
    assert torch.equal(mixture.stds, torch.tensor([0.5, 0.5]))
    assert mixture.dim == 2


def test_seeded_sampling_is_reproducible():
    mixture = eight_gaussians()
    a = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    b = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("means, stds, weights", [
    ([[0.0, 0.0]], [0.0], None),
    ([[0.0, 0.0], [1.0, 1.0]], 1.0, [1.0, -1.0]),
    ([[0.0, 0.0], [1.0, 1.0]], 1.0, [0.0, 0.0]),
    ([[0.0, 0.0], [1.0, 1.0]], 1.0, [1.0, 1.0, 1.0]),
    ([0.0, 1.0], 1.0, None),
])
def test_bad_mixtures_raise(means, stds, weights):
    with pytest.raises(ValueError):
        GaussianMixture(means, stds, weights)


def test_bad_points_raise():
    with pytest.raises(ValueError, match="2 columns"):
        eight_gaussians().log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        eight_gaussians().score(torch.zeros(3))
