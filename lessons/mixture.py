"""An isotropic Gaussian mixture: a 2D target whose density, score and noised marginals are exact.

For a Gaussian path x_t = alpha * data + sigma * noise with data from the mixture, x_t is again a
mixture (means alpha * mu_k, variances alpha^2 s_k^2 + sigma^2), so the posterior over the data
given x_t, and with it the ideal model of every prediction type (the denoiser, the noise, flow
matching's marginal velocity field, the score), are known in closed form: ExactMixtureModel.
"""

import math

import torch

from lessons.checks import (
    check_finite,
    check_generator,
    check_instance,
    check_memory,
    check_points,
    check_positive_int,
    check_tensor,
    check_time,
)
from lessons.conversions import _check_kind, from_data_and_noise
from lessons.schedules import Schedule, _check_schedule
from lessons.tensors import normal_like

WEIGHT_SUM_TOLERANCE = 1e-5  # float32 rounding of weights written by hand, such as [0.5, 0.3, 0.2]


def _numbers(value, name: str, what: str) -> torch.Tensor:
    """value as a float32 tensor: a TypeError in words when it is not an array of numbers, ValueError if not finite."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be {what}, got {value!r}.")
    try:
        out = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}.") from None
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite numbers, got {value!r}.")
    return out


def _coefficient(value, name: str, batch: int, like: torch.Tensor) -> torch.Tensor:
    """alpha or sigma: a finite number or one per sample (1 or batch values), as a (batch, 1) column like ``like``."""
    if isinstance(value, (str, bytes, bool, type)) or value is None:
        raise TypeError(
            f"{name} must be a number or a tensor of {batch} values (one per point), got {value!r}."
        )
    try:
        value = torch.as_tensor(value, dtype=like.dtype)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name} must be a number or a tensor of {batch} values (one per point), got {type(value).__name__}."
        ) from None
    if value.numel() not in (1, batch):
        raise ValueError(
            f"{name} must be a number or hold one value per point ({batch}), got {value.numel()} values."
        )
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values.")
    return value.reshape(-1, 1).expand(batch, 1)


class GaussianMixture:
    """Mixture of K isotropic Gaussians: means (K, D), stds (K,), weights (K,) summing to 1."""

    def __init__(self, means, stds, weights=None):
        self.means = _numbers(means, "means", "a (K, D) array of numbers: one mean per component")
        if self.means.ndim != 2 or self.means.shape[0] == 0 or self.means.shape[1] == 0:
            raise ValueError(
                f"means must have shape (K, D): at least one component (K >= 1) in D >= 1 dimensions, got shape "
                f"{tuple(self.means.shape)}; e.g. [[0.0, 0.0], [1.0, 1.0]] for two components in 2D."
            )
        k = self.means.shape[0]
        stds = _numbers(stds, "stds", f"a number or {k} numbers: one std per component")
        if stds.shape not in ((), (1,), (k,)):
            raise ValueError(
                f"stds must be one number or {k} numbers (one per component), got shape {tuple(stds.shape)}."
            )
        if bool((stds <= 0).any()):
            raise ValueError(f"component stds must be positive, got {stds.tolist()}.")
        self.stds = stds.expand(k).clone()
        w = (
            torch.ones(k)
            if weights is None
            else _numbers(weights, "weights", f"{k} numbers: one per component")
        )
        if w.shape != (k,):
            raise ValueError(
                f"weights must hold {k} numbers (one per component, like means), got shape {tuple(w.shape)}."
            )
        if bool((w < 0).any()):
            raise ValueError(f"weights are probabilities and must be >= 0, got {w.tolist()}.")
        if weights is not None and abs(w.sum().item() - 1) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(
                f"weights are the components' probabilities and must sum to 1, got {w.tolist()} (sum "
                f"{w.sum().item():.6g}); divide them by their sum if they are relative sizes."
            )
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points, (n, D)."""
        check_positive_int(n, "the number of points n")
        check_generator(generator)
        check_memory(n * (8 + 12 * self.dim), f"drawing {n} points of the mixture")
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.stds[comp, None] * noise

    def _noised(self, x_t, alpha, sigma):
        """Per-sample component log-likelihoods of x_t under alpha * data + sigma * noise, (B, K)."""
        check_tensor(x_t, "x", min_batch=0)
        check_points(x_t, "x", self.dim)
        if x_t.device.type != "cpu":
            raise ValueError(
                f"the mixture's parameters live on the CPU but x is on {x_t.device}; pass x.cpu()."
            )
        check_finite(x_t, "x")
        alpha = _coefficient(alpha, "alpha", x_t.shape[0], x_t)
        sigma = _coefficient(sigma, "sigma", x_t.shape[0], x_t)
        if bool((sigma < 0).any()):
            raise ValueError("sigma is a noise level (a standard deviation) and must be >= 0.")
        if bool(((alpha == 0) & (sigma == 0)).any()):
            raise ValueError(
                "alpha and sigma cannot both be 0: x_t would be the single point 0, which has no density or posterior."
            )
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
        data, resid, sigma = self._posterior(x_t, alpha, sigma)
        return data, sigma * resid  # = -sigma * score

    def _posterior(self, x_t, alpha, sigma):
        """E[data | x_t], (B, D), the posterior average of r_k (B, D) (E[noise | x_t] = sigma r), and sigma (B, 1)."""
        log_joint, var, diff, alpha, sigma = self._noised(x_t, alpha, sigma)
        w = torch.softmax(log_joint, dim=1)
        gain = alpha * self.stds[None] ** 2 / var  # (B, K)
        comp_mean = self.means[None] + gain[:, :, None] * diff  # (B, K, D)
        return (w[:, :, None] * comp_mean).sum(1), (w[:, :, None] * diff / var[:, :, None]).sum(1), sigma

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
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(
                f"dtype must be a float torch dtype such as torch.float32 or torch.float64, got {dtype!r}."
            )
        like = torch.empty(0, dtype=dtype)
        alpha, sigma = _coefficient(alpha, "alpha", n, like), _coefficient(sigma, "sigma", n, like)  # (n, 1)
        if bool((sigma < 0).any()):
            raise ValueError("sigma is a noise level (a standard deviation) and must be >= 0.")
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
        check_instance(mixture, GaussianMixture, "mixture", "GaussianMixture(means, stds)")
        self.mixture, self.schedule = mixture, _check_schedule(schedule)
        self.prediction = _check_kind(prediction)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """E[prediction | x_t = x], (B, D), at times t (B,).

        'score' is refused where sigma = 0 (it is infinite there). 'velocity' where sigma = 0 on a variance-preserving
        schedule (VP's t = 1, where d_sigma is infinite) is its finite limit: d_sigma E[noise | x] = (sigma d_sigma) r
        with sigma d_sigma = -alpha d_alpha.
        """
        check_tensor(x, "x", min_batch=0)
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
        data, resid, sigma = self.mixture._posterior(x, c.alpha, c.sigma)
        out = from_data_and_noise(data, sigma * resid, self.prediction, c)
        at_end = c.sigma == 0
        if self.prediction == "velocity" and self.schedule.variance_preserving and bool(at_end.any()):
            limit = c.d_alpha[:, None] * data - (c.alpha * c.d_alpha)[:, None] * resid
            out = torch.where(at_end[:, None], limit, out)
        return out
