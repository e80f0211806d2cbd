"""An isotropic Gaussian mixture: a 2D target whose density, score and noised marginals are exact.

For a Gaussian path x_t = alpha * data + sigma * noise with data from the mixture, x_t is again a
mixture (means alpha * mu_k, variances alpha^2 s_k^2 + sigma^2), so the posterior over the data
given x_t, and with it the ideal model of every prediction type (the denoiser, the noise, flow
matching's marginal velocity field, the score), are known in closed form: ExactMixtureModel.
"""

import math

import torch

from lessons.checks import check_points, check_positive_int, check_time, choose
from lessons.conversions import PREDICTIONS, from_data_and_noise
from lessons.schedules import Schedule
from lessons.tensors import normal_like


class GaussianMixture:
    """Mixture of K isotropic Gaussians: means (K, D), stds (K,), weights (K,) summing to 1."""

    def __init__(self, means, stds, weights=None):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        k = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float32).expand(k).clone()
        w = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if self.means.ndim != 2 or w.shape != (k,):
            raise ValueError("means must be (K, D) and weights (K,): one weight per component.")
        if (self.stds <= 0).any() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("component stds must be positive and weights non-negative, not all zero.")
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points, (n, D)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.stds[comp, None] * noise

    def _noised(self, x_t, alpha, sigma):
        """Per-sample component log-likelihoods of x_t under alpha * data + sigma * noise, (B, K)."""
        check_points(x_t, "x", self.dim)
        alpha = torch.as_tensor(alpha, dtype=x_t.dtype).reshape(-1, 1).expand(x_t.shape[0], 1)
        sigma = torch.as_tensor(sigma, dtype=x_t.dtype).reshape(-1, 1).expand(x_t.shape[0], 1)
        var = alpha**2 * self.stds[None] ** 2 + sigma**2  # (B, K)
        diff = x_t[:, None, :] - alpha[:, :, None] * self.means[None]  # (B, K, D)
        log_comp = -0.5 * (diff**2).sum(-1) / var - 0.5 * self.dim * torch.log(2 * math.pi * var)
        return log_comp + torch.log(self.weights)[None], var, diff, alpha, sigma

    def log_prob(self, x: torch.Tensor, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """log p(x), (B,); with alpha, sigma: the density of alpha * data + sigma * noise."""
        log_joint = self._noised(x, alpha, sigma)[0]
        return torch.logsumexp(log_joint, dim=1)

    def posterior_weights(self, x_t, alpha, sigma) -> torch.Tensor:
        """p(component k | x_t), (B, K)."""
        return torch.softmax(self._noised(x_t, alpha, sigma)[0], dim=1)

    def score(self, x: torch.Tensor, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """grad_x log p(x), (B, D), of the (noised) mixture: sum_k w_k(x) * (-(x - alpha mu_k) / var_k)."""
        log_joint, var, diff, _, _ = self._noised(x, alpha, sigma)
        w = torch.softmax(log_joint, dim=1)
        return -(w[:, :, None] * diff / var[:, :, None]).sum(1)

    def posterior_mean(self, x_t, alpha, sigma) -> torch.Tensor:
        """E[data | x_t] for x_t = alpha * data + sigma * noise, (B, D): the ideal denoiser."""
        return self.posterior_data_and_noise(x_t, alpha, sigma)[0]

    def posterior_data_and_noise(self, x_t, alpha, sigma):
        """(E[data | x_t], E[noise | x_t]), each (B, D), for x_t = alpha * data + sigma * noise.

        Given component k both are affine in x_t: mu_k + alpha s_k^2 r_k and sigma r_k, with
        r_k = (x_t - alpha mu_k) / var_k, so both stay finite at alpha = 0 (pure noise) and sigma = 0 (clean data).
        """
        log_joint, var, diff, alpha, sigma = self._noised(x_t, alpha, sigma)
        w = torch.softmax(log_joint, dim=1)
        gain = alpha * self.stds[None] ** 2 / var  # (B, K)
        comp_mean = self.means[None] + gain[:, :, None] * diff  # (B, K, D)
        noise = sigma * (w[:, :, None] * diff / var[:, :, None]).sum(1)  # = -sigma * score
        return (w[:, :, None] * comp_mean).sum(1), noise

    def sample_noised(
        self,
        n: int,
        alpha,
        sigma,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draw n points of p_t, (n, D): x_t = alpha * data + sigma * noise, the data drawn first, then the noise.

        alpha and sigma are numbers or tensors of shape (1,) or (n,), for instance the fields of schedule(t).
        """
        check_positive_int(n, "the number of points n")
        alpha, sigma = (torch.as_tensor(v, dtype=dtype).reshape(-1, 1) for v in (alpha, sigma))
        if alpha.shape[0] not in (1, n) or sigma.shape[0] not in (1, n):
            raise ValueError(
                f"alpha and sigma must be numbers or hold one value per point ({n}), "
                f"got {alpha.shape[0]} and {sigma.shape[0]} values."
            )
        data = self.sample(n, generator=generator).to(dtype)
        return alpha * data + sigma * normal_like(data, generator)


class ExactMixtureModel:
    """The ideal model of a mixture target on a schedule: E[prediction | x_t = x], (B, D), of one kind.

    Called like a network, model(x=..., t=..., cond=None); it has no error, so what a sampler does with it
    shows the sampler alone. prediction is one of lessons.conversions.PREDICTIONS: 'eps' is E[noise | x_t]
    = -sigma_t * score; 'velocity' is flow matching's exact marginal field
    u_t(x) = d_alpha E[data | x] + d_sigma E[noise | x].
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule, prediction: str = "eps"):
        self.mixture, self.schedule = mixture, schedule
        self.prediction = choose(prediction, PREDICTIONS, "prediction type")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        check_points(x, "x", self.mixture.dim)
        if cond is not None:
            raise ValueError("the exact mixture model is unconditional; call it with cond=None.")
        c = self.schedule(check_time(t, batch=x.shape[0]))
        if self.prediction == "score" and (c.sigma <= 0).any():
            raise ValueError(
                "the score -E[noise | x_t] / sigma is undefined where sigma(t) = 0 (clean data, t = 1 "
                "on this schedule): stop the time grid short of 1, or ask for a 'data' or 'velocity' "
                "prediction."
            )
        data, noise = self.mixture.posterior_data_and_noise(x, c.alpha, c.sigma)
        return from_data_and_noise(data, noise, self.prediction, c)
