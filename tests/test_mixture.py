"""Gaussian mixture: density (grid integral, scipy), score (autograd), posterior mean (grid integral), moments;
the ideal model of every prediction type (closed form for one Gaussian, Monte Carlo for a mixture) and p_t's sampler."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from lessons.conversions import PREDICTIONS
from lessons.data2d import eight_gaussians, skewed_mixture
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.paths import GaussianPath
from lessons.schedules import CosineSchedule, LinearSchedule, VESchedule, VPSchedule

SCHEDULES = [LinearSchedule(), CosineSchedule(), VPSchedule(), VESchedule(sigma_min=0.01, sigma_max=10.0)]


def _grid(lo, hi, n):
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), (axis[1] - axis[0]).item() ** 2


def _scipy_log_prob(mixture, x, alpha=1.0, sigma=0.0):
    """log sum_k w_k N(x; alpha mu_k, (alpha^2 s_k^2 + sigma^2) I) with scipy."""
    dens = sum(
        w * multivariate_normal(mean=alpha * mu, cov=(alpha**2 * s**2 + sigma**2) * np.eye(len(mu))).pdf(x)
        for w, mu, s in zip(
            mixture.weights.double().numpy(), mixture.means.double().numpy(), mixture.stds.double().numpy()
        )
    )
    return np.log(dens)


@pytest.mark.parametrize(
    "build, alpha, sigma, lo, hi",
    [
        (skewed_mixture, 1.0, 0.0, -7.0, 7.0),
        (eight_gaussians, 1.0, 0.0, -9.0, 9.0),
        (eight_gaussians, 0.6, 0.8, -9.0, 9.0),
    ],
)
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
    single = torch.stack(
        [mixture.log_prob(x[i : i + 1], alpha[i].item(), sigma[i].item())[0] for i in range(4)]
    )
    assert torch.allclose(batched, single)


@pytest.mark.parametrize("alpha, sigma", [(1.0, 0.0), (0.3, 0.9)])
def test_score_against_autograd(alpha, sigma):
    mixture = skewed_mixture()
    x = (
        torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    ).requires_grad_(True)
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
    joint = np.stack(
        [
            w * multivariate_normal(alpha * mu, (alpha**2 * s**2 + sigma**2) * np.eye(2)).pdf(x)
            for w, mu, s in zip(
                mixture.weights.double().numpy(),
                mixture.means.double().numpy(),
                mixture.stds.double().numpy(),
            )
        ],
        1,
    )
    ours = mixture.posterior_weights(torch.from_numpy(x), alpha, sigma).numpy()
    assert np.allclose(ours, joint / joint.sum(1, keepdims=True), atol=1e-6)


def test_sample_moments():
    mixture = skewed_mixture()
    n = 200_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(3)).double()
    w, mu, s = mixture.weights.double(), mixture.means.double(), mixture.stds.double()
    mean = w @ mu
    second = sum(
        w[k] * (s[k] ** 2 * torch.eye(2, dtype=torch.float64) + torch.outer(mu[k], mu[k])) for k in range(3)
    )
    cov = second - torch.outer(mean, mean)
    assert x.shape == (n, 2)
    se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)


def test_weights_are_probabilities_and_stds_broadcast():
    mixture = GaussianMixture([[0.0, 0.0], [1.0, 1.0]], 0.5, [0.25, 0.75])
    assert torch.allclose(mixture.weights, torch.tensor([0.25, 0.75]))
    assert torch.equal(mixture.stds, torch.tensor([0.5, 0.5]))
    assert mixture.dim == 2
    assert torch.equal(GaussianMixture([[0.0], [1.0]], [1.0, 2.0]).weights, torch.tensor([0.5, 0.5]))


def test_seeded_sampling_is_reproducible():
    mixture = eight_gaussians()
    a = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    b = mixture.sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


TWO = [[0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    "means, stds, weights, match",
    [
        ([[0.0, 0.0]], [0.0], None, "stds must be positive"),
        (TWO, [1.0, -1.0], None, "stds must be positive"),
        (TWO, [1.0, float("inf")], None, "stds must be finite"),
        (TWO, float("nan"), None, "stds must be finite"),
        (TWO, [1.0, 1.0, 1.0], None, r"stds must be one number or 2 numbers"),
        (TWO, 1.0, [1.0, -1.0], "must be >= 0"),
        (TWO, 1.0, [0.0, 0.0], "must sum to 1"),
        (TWO, 1.0, [1.0, 3.0], r"must sum to 1, got \[1.0, 3.0\] \(sum 4\); divide them by their sum"),
        (TWO, 1.0, [0.5, float("nan")], "weights must be finite"),
        (TWO, 1.0, [1.0, 1.0, 1.0], r"weights must hold 2 numbers"),
        ([0.0, 1.0], 1.0, None, r"means must have shape \(K, D\)"),
        ([[0.0, float("nan")]], 1.0, None, "means must be finite"),
        (torch.zeros(0, 2), 1.0, None, r"at least one component"),
    ],
)
def test_bad_mixtures_raise(means, stds, weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(means, stds, weights)


@pytest.mark.parametrize(
    "means, stds, weights, match",
    [
        ([[0.0, 0.0], [1.0]], 1.0, None, "means must be a .K, D. array of numbers"),
        ("eight gaussians", 1.0, None, "means must be"),
        (TWO, "wide", None, "stds must be a number or 2 numbers"),
        (TWO, 1.0, "equal", "weights must be 2 numbers"),
    ],
)
def test_mixtures_of_things_that_are_not_numbers_raise_type_errors(means, stds, weights, match):
    with pytest.raises(TypeError, match=match):
        GaussianMixture(means, stds, weights)


def test_sampling_refuses_bad_sizes_and_generators():
    mixture = eight_gaussians()
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="the number of points n must be a positive whole number"):
            mixture.sample(n)
    with pytest.raises(TypeError, match="generator must be a Generator object"):
        mixture.sample(5, generator=5)
    with pytest.raises(ValueError, match="[KMGT]iB of memory"):
        mixture.sample(10**13)
    with pytest.raises(TypeError, match="dtype must be a float torch dtype"):
        mixture.sample_noised(5, 1.0, 0.0, dtype=torch.long)
    with pytest.raises(ValueError, match="sigma must be finite"):
        mixture.sample_noised(5, 1.0, float("nan"))
    with pytest.raises(ValueError, match="sigma is a noise level"):
        mixture.sample_noised(5, 1.0, -0.5)


def test_densities_and_posteriors_refuse_bad_points_and_coefficients():
    mixture, x = eight_gaussians(), torch.zeros(3, 2)
    bad = x.clone()
    bad[1, 0] = float("inf")
    with pytest.raises(ValueError, match="x holds 1 NaN or infinite"):
        mixture.log_prob(bad)
    with pytest.raises(ValueError, match="float tensor, got dtype torch.int64"):
        mixture.score(x.long())
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        mixture.log_prob([[0.0, 0.0]])
    with pytest.raises(ValueError, match="alpha must be finite"):
        mixture.posterior_mean(x, float("nan"), 0.5)
    with pytest.raises(ValueError, match="sigma is a noise level"):
        mixture.posterior_weights(x, 1.0, -0.1)
    with pytest.raises(ValueError, match="alpha and sigma cannot both be 0"):
        mixture.log_prob(x, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"one value per point \(3\), got 2 values"):
        mixture.posterior_data_and_noise(x, torch.ones(2), 0.5)
    with pytest.raises(TypeError, match="alpha must be a number or a tensor"):
        mixture.log_prob(x, "1", 0.0)
    assert mixture.log_prob(torch.zeros(0, 2)).shape == (0,)  # an empty batch has an empty answer


def test_ideal_model_refuses_wrong_objects():
    mixture = eight_gaussians()
    with pytest.raises(TypeError, match=r"call it, CosineSchedule\(\)"):
        ExactMixtureModel(mixture, CosineSchedule)
    with pytest.raises(TypeError, match="pass its schedule, e.g. path.schedule"):
        ExactMixtureModel(mixture, GaussianPath(LinearSchedule()))
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture object"):
        ExactMixtureModel("8gaussians", LinearSchedule())
    with pytest.raises(TypeError, match="prediction type must be a name"):
        ExactMixtureModel(mixture, LinearSchedule(), prediction=None)


@pytest.mark.parametrize("schedule", [VPSchedule(), CosineSchedule(offset=0.008)], ids=repr)
def test_ideal_velocity_at_the_data_end_is_its_limit(schedule):
    """VP's d_sigma is infinite at t = 1, but d_sigma E[noise | x] = -alpha d_alpha r stays finite: the limit t -> 1."""
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = ExactMixtureModel(skewed_mixture(), schedule, "velocity")
    at_one = model(x=x, t=torch.ones(4, dtype=torch.float64))
    near_one = model(x=x, t=torch.full((4,), 1 - 1e-12, dtype=torch.float64))
    assert torch.allclose(at_one, near_one, atol=1e-6)
    # control: the naive d_alpha E[data] + d_sigma E[noise] with sigma = 0 drops the noise term and misses it
    c = schedule(torch.ones(4, dtype=torch.float64))
    naive = c.d_alpha[:, None] * skewed_mixture().posterior_mean(x, c.alpha, c.sigma)
    assert (naive - near_one).abs().max() > 1e-2


def test_bad_points_raise():
    with pytest.raises(ValueError, match="2 columns"):
        eight_gaussians().log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        eight_gaussians().score(torch.zeros(3))


def _by_hand(kind, data, noise, c):
    """The prediction of one kind written out from (data, noise) and the coefficients, each (B, 1)."""
    return {
        "eps": noise,
        "data": data,
        "v": c["a"] * noise - c["s"] * data,
        "velocity": c["da"] * data + c["ds"] * noise,
        "score": -noise / c["s"],
    }[kind]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ideal_model_of_one_gaussian_is_its_closed_form(schedule, prediction):
    """data ~ N(m, s^2 I): (data, x_t) is jointly Gaussian, x_t ~ N(a m, var I) with var = a^2 s^2 + sigma^2."""
    m, s = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.75
    model = ExactMixtureModel(GaussianMixture(m[None], s), schedule, prediction)
    t = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
    t = t[1:-1] if prediction == "score" else t  # the score needs sigma > 0
    x = torch.randn(len(t), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    out = schedule(t)
    c = {
        "a": out.alpha[:, None],
        "s": out.sigma[:, None],
        "da": out.d_alpha[:, None],
        "ds": out.d_sigma[:, None],
    }
    var = c["a"] ** 2 * s**2 + c["s"] ** 2
    data = m + c["a"] * s**2 * (x - c["a"] * m) / var  # E[data | x_t]: the Gaussian regression of data on x_t
    noise = c["s"] * (x - c["a"] * m) / var  # E[noise | x_t]
    expected = -(x - c["a"] * m) / var if prediction == "score" else _by_hand(prediction, data, noise, c)
    if prediction == "velocity" and schedule.variance_preserving:
        # d_sigma noise = (sigma d_sigma)(x - a m) / var with sigma d_sigma = -alpha d_alpha: finite at sigma = 0 too
        expected = c["da"] * data - c["a"] * c["da"] * (x - c["a"] * m) / var
    assert torch.allclose(model(x=x, t=t), expected, rtol=1e-6, atol=1e-6)


def _snis(mixture, x, a, s, n=200_000, seed=0):
    """Self-normalised importance sampling of E[. | x_t = x], x (D,): data_i ~ mixture, weights N(x; a data_i, s^2)."""
    data = mixture.sample(n, generator=torch.Generator().manual_seed(seed)).double()
    w = torch.softmax(-((x[None] - a * data) ** 2).sum(1) / (2 * s**2), 0)  # (n,)
    noise = (x[None] - a * data) / s  # the noise that puts data_i at x
    assert 1 / (w**2).sum() > 200  # effective sample size: enough for the standard error to mean something
    return data, noise, w


@pytest.mark.parametrize("schedule", SCHEDULES[:3], ids=repr)
@pytest.mark.parametrize("t", [0.3, 0.6, 0.85])
def test_ideal_model_of_a_mixture_against_monte_carlo(schedule, t):
    """Every prediction is affine in (data, noise), so the ideal one is its posterior average: estimate it by SNIS."""
    mixture, g = eight_gaussians(), torch.Generator().manual_seed(1)
    times = torch.full((3,), t, dtype=torch.float64)
    out = schedule(times[:1])
    c = {"a": out.alpha.item(), "s": out.sigma.item(), "da": out.d_alpha.item(), "ds": out.d_sigma.item()}
    xs = c["a"] * mixture.sample(3, generator=g).double() + c["s"] * torch.randn(
        3, 2, generator=g, dtype=torch.float64
    )
    for prediction in PREDICTIONS:
        exact = ExactMixtureModel(mixture, schedule, prediction)(x=xs, t=times)
        for i, x in enumerate(xs):
            data, noise, w = _snis(mixture, x, c["a"], c["s"])
            values = _by_hand(prediction, data, noise, c)  # (n, D)
            estimate = w @ values
            se = ((w[:, None] ** 2) * (values - estimate) ** 2).sum(0).sqrt()
            assert ((exact[i] - estimate).abs() < 5 * se + 1e-4).all(), (
                prediction,
                x,
                exact[i],
                estimate,
                se,
            )


@pytest.mark.parametrize("schedule", [SCHEDULES[0], SCHEDULES[2], SCHEDULES[3]], ids=repr)
def test_ideal_velocity_is_the_posterior_average_of_the_component_fields(schedule):
    """Given component k, x_t ~ N(a mu_k, S_k^2 I), a Gaussian path with field da mu_k + dS_k / S_k (x - a mu_k)."""
    mixture = skewed_mixture()
    t = torch.rand(64, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.9
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    c = schedule(t)
    a, s, da, ds = (v[:, None] for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma))  # (B, 1)
    s_k, mu = mixture.stds.double()[None], mixture.means.double()[None]  # (1, K), (1, K, D)
    std2 = a**2 * s_k**2 + s**2  # (B, K)
    d_std_over_std = (a * da * s_k**2 + s * ds) / std2
    field_k = da[:, :, None] * mu + d_std_over_std[:, :, None] * (
        x[:, None] - a[:, :, None] * mu
    )  # (B, K, D)
    log_w = (
        torch.log(mixture.weights.double())[None]
        - ((x[:, None] - a[:, :, None] * mu) ** 2).sum(-1) / (2 * std2)
        - torch.log(std2)
    )
    expected = (torch.softmax(log_w, 1)[:, :, None] * field_k).sum(1)
    got = ExactMixtureModel(mixture, schedule, "velocity")(x=x, t=t)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_ideal_model_at_the_ends_of_the_path():
    """t = 0 on the linear path (alpha = 0): E[data] and eps = x; t = 1 (sigma = 0): data = x, no noise, velocity x."""
    mixture, lin = skewed_mixture(), LinearSchedule()
    x = torch.randn(5, 2, dtype=torch.float64)
    zero, one = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    mean = (mixture.weights[:, None] * mixture.means).sum(0).double()
    assert torch.allclose(ExactMixtureModel(mixture, lin, "data")(x=x, t=zero), mean.expand(5, 2), atol=1e-6)
    assert torch.allclose(ExactMixtureModel(mixture, lin, "eps")(x=x, t=zero), x)
    assert torch.allclose(ExactMixtureModel(mixture, lin, "data")(x=x, t=one), x, atol=1e-6)
    assert torch.equal(
        ExactMixtureModel(mixture, lin, "eps")(x=x, t=one), torch.zeros(5, 2, dtype=torch.float64)
    )
    assert torch.allclose(ExactMixtureModel(mixture, lin, "velocity")(x=x, t=one), x, atol=1e-6)
    # eps is -sigma times the score of p_t, the density's own gradient
    t = torch.full((5,), 0.4, dtype=torch.float64)
    c = lin(t)
    score = mixture.score(x, c.alpha, c.sigma)
    assert torch.allclose(ExactMixtureModel(mixture, lin)(x=x, t=t), -c.sigma[:, None] * score)


@pytest.mark.parametrize("alpha, sigma", [(0.6, 0.8), (1.0, 0.0), (0.0, 1.0)])
def test_noised_sample_moments(alpha, sigma):
    """x_t = alpha data + sigma noise: mean alpha E[data], covariance alpha^2 Cov(data) + sigma^2 I."""
    mixture, n = skewed_mixture(), 200_000
    x = mixture.sample_noised(
        n, alpha, sigma, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    w, mu, s = mixture.weights.double(), mixture.means.double(), mixture.stds.double()
    mean = w @ mu
    second = sum(
        w[k] * (s[k] ** 2 * torch.eye(2, dtype=torch.float64) + torch.outer(mu[k], mu[k])) for k in range(3)
    )
    cov = alpha**2 * (second - torch.outer(mean, mean)) + sigma**2 * torch.eye(2, dtype=torch.float64)
    assert x.shape == (n, 2) and x.dtype == torch.float64
    se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - alpha * mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)


def test_noised_sample_draws_the_data_then_the_noise():
    mixture = eight_gaussians()
    g = torch.Generator().manual_seed(6)
    by_hand = 0.3 * mixture.sample(50, generator=g) + 0.9 * torch.randn(50, 2, generator=g)
    per_point = torch.full((50,), 0.3), torch.full((50,), 0.9)
    assert torch.equal(
        mixture.sample_noised(50, 0.3, 0.9, generator=torch.Generator().manual_seed(6)), by_hand
    )
    assert torch.equal(
        mixture.sample_noised(50, *per_point, generator=torch.Generator().manual_seed(6)), by_hand
    )


def test_ideal_model_and_noised_sampler_reject_bad_input():
    mixture, vp = eight_gaussians(), VPSchedule()
    model = ExactMixtureModel(mixture, vp)
    with pytest.raises(ValueError, match="prediction type"):
        ExactMixtureModel(mixture, vp, "noise")
    with pytest.raises(ValueError, match="one time per sample"):
        model(x=torch.zeros(3, 2), t=torch.full((2,), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x=torch.zeros(3, 2), t=torch.full((3,), 1.5))
    with pytest.raises(ValueError, match="2 columns"):
        model(x=torch.zeros(3, 3), t=torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="cond=None"):
        model(x=torch.zeros(3, 2), t=torch.full((3,), 0.5), cond=torch.zeros(3))
    with pytest.raises(ValueError, match="sigma"):
        ExactMixtureModel(mixture, vp, "score")(x=torch.zeros(3, 2), t=torch.ones(3))
    with pytest.raises(ValueError, match="one value per point"):
        mixture.sample_noised(10, torch.ones(3), 0.5)
    with pytest.raises(ValueError, match="positive whole number"):
        mixture.sample_noised(0, 1.0, 0.0)
