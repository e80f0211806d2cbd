"""An isotropic Gaussian mixture: a 2D target whose density, score and noised marginals are exact.

For a Gaussian path x_t = alpha * data + sigma * noise with data from the mixture, x_t is again a
mixture (means alpha * mu_k, variances alpha^2 s_k^2 + sigma^2), so the posterior over the data
given x_t, and with it the ideal denoiser and the marginal velocity field, are known in closed form.
"""

import math

import torch

from lessons.checks import check_points


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
        log_joint, var, diff, alpha, _ = self._noised(x_t, alpha, sigma)
        w = torch.softmax(log_joint, dim=1)
        gain = alpha * self.stds[None] ** 2 / var  # (B, K)
        comp_mean = self.means[None] + gain[:, :, None] * diff  # (B, K, D)
        return (w[:, :, None] * comp_mean).sum(1)
