"""Conditional flow matching (Lipman et al. 2023) on any Gaussian path, and the marginal field of a data set.

CFM loss: E_{t, noise, data} || v_theta(x_t, t) - u_t(x_t | data, noise) ||^2, with
x_t = alpha_t data + sigma_t noise and u_t = d_alpha data + d_sigma noise.
FM loss:  E_{t, x_t} || v_theta(x_t, t) - u_t(x_t) ||^2 with the marginal field
u_t(x) = E[u_t(x | data) | x_t = x], exact for a Gaussian-mixture target (lessons.mixture.ExactMixtureModel
with prediction 'velocity'), estimated from samples by empirical_marginal_velocity.
"""

import torch
import torch.nn.functional as F

from lessons.checks import check_points, check_time
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.paths import GaussianPath


def sample_times(batch: int, device=None, t_max: float = 1.0) -> torch.Tensor:
    """t ~ Uniform[0, t_max), (B,). Use t_max < 1 for paths whose velocity diverges at t = 1 (VP)."""
    return torch.rand(batch, device=device) * t_max


def cfm_loss(
    model,
    path: GaussianPath,
    data: torch.Tensor,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    cond=None,
) -> torch.Tensor:
    """Mean squared error (over batch and dimensions) between the model's velocity and u_t(x_t | data, noise)."""
    noise = torch.randn_like(data) if noise is None else noise
    t = sample_times(data.shape[0], data.device) if t is None else t
    ps = path.sample(noise, data, t)
    return F.mse_loss(model(x=ps.x_t, t=t, cond=cond), ps.velocity)


def cfm_batch_loss(path: GaussianPath, t_max: float = 1.0):
    """loss_fn(model, batch) for lessons.training.train: cfm_loss on a coupled batch = (noise, data), each (B, ...).

    t ~ Uniform[0, t_max) (sample_times); the batches of lessons.couplings.pair_batches have this form.
    """
    if not 0 < t_max <= 1:
        raise ValueError(f"t_max must be in (0, 1], got {t_max}.")

    def loss_fn(model, batch):
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ValueError(
                "cfm_batch_loss expects batches (noise, data), e.g. from lessons.couplings.pair_batches."
            )
        noise, data = batch
        return cfm_loss(model, path, data, noise=noise, t=sample_times(data.shape[0], data.device, t_max))

    return loss_fn


def _field_at(c, x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """d_alpha data + (d_sigma / sigma) (x - alpha data), (B, D), for schedule coefficients c (B,)."""
    alpha, sigma, d_alpha, d_sigma = (
        v[:, None].to(x.dtype) for v in (c.alpha, c.sigma, c.d_alpha, c.d_sigma)
    )
    return d_alpha * data + d_sigma / sigma * (x - alpha * data)


def conditional_velocity(
    path: GaussianPath, x: torch.Tensor, data: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """u_t(x | data) = d_alpha data + (d_sigma / sigma) (x - alpha data), (B, D): Lipman et al.'s Theorem 3.

    It is the velocity of the flow map noise -> alpha data + sigma noise, written at the point x.
    """
    check_points(x, "x")
    check_points(data, "data", x.shape[1])
    if data.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"data must have one row per point of x (or a single row), "
            f"got {data.shape[0]} rows for {x.shape[0]} points."
        )
    c = path.schedule(check_time(t, batch=x.shape[0]))
    if (c.sigma <= 0).any():
        raise ValueError(
            "u_t(x | data) needs sigma(t) > 0: at sigma = 0 the path is a single point "
            "(use sigma_min > 0 or t < 1)."
        )
    return _field_at(c, x, data)


def empirical_marginal_velocity(
    path: GaussianPath, data: torch.Tensor, x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Marginal field of the data set data (N, D) at x (B, D): sum_i w_i(x) u_t(x | data_i), (B, D).

    w_i(x) = N(x; alpha data_i, sigma^2 I) / sum_j N(x; alpha data_j, sigma^2 I), the posterior of data_i
    given x_t = x. Exact for the empirical target; a Monte Carlo estimate of the marginal field when
    data are samples of a continuous target (self-normalised importance sampling).
    """
    check_points(data, "data")
    check_points(x, "x", data.shape[1])
    c = path.schedule(check_time(t, batch=x.shape[0]))
    alpha, sigma = c.alpha[:, None].to(x.dtype), c.sigma[:, None].to(x.dtype)
    if (sigma <= 0).any():
        raise ValueError("the marginal field of a data set needs sigma(t) > 0 (t < 1 or sigma_min > 0).")
    data = data.to(x.dtype)
    # ||x - alpha data_i||^2 expanded, so no (B, N, D) tensor is built
    sq_dist = (
        (x**2).sum(1, keepdim=True) - 2 * alpha * (x @ data.T) + alpha**2 * (data**2).sum(1)[None]
    )  # (B, N)
    weights = torch.softmax(-sq_dist / (2 * sigma**2), dim=1)  # (B, N), posterior of data_i given x
    return _field_at(c, x, weights @ data)


def fm_loss(
    model,
    path: GaussianPath,
    mixture: GaussianMixture,
    data: torch.Tensor,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """FM loss: mean squared error between the model's velocity and the exact marginal u_t(x_t).

    x_t = alpha data + sigma noise is drawn as in cfm_loss (same data, noise, t give the same x_t);
    only the target differs: the marginal field of the mixture instead of u_t(x_t | data).
    """
    noise = torch.randn_like(data) if noise is None else noise
    t = sample_times(data.shape[0], data.device) if t is None else t
    x_t = path.sample(noise, data, t).x_t
    exact = ExactMixtureModel(mixture, path.schedule, prediction="velocity")
    return F.mse_loss(model(x=x_t, t=t), exact(x=x_t, t=t))
