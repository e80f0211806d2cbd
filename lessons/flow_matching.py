"""Conditional flow matching (Lipman et al. 2023) on any Gaussian path, and the exact marginal field.

CFM loss: E_{t, noise, data} || v_theta(x_t, t) - u_t(x_t | data, noise) ||^2, with
x_t = alpha_t data + sigma_t noise and u_t = d_alpha data + d_sigma noise.
"""

import torch
import torch.nn.functional as F

from lessons.checks import check_time
from lessons.mixture import GaussianMixture
from lessons.paths import GaussianPath


def sample_times(batch: int, device=None, t_max: float = 1.0) -> torch.Tensor:
    """t ~ Uniform[0, t_max), (B,). Use t_max < 1 for paths whose velocity diverges at t = 1 (VP)."""
    return torch.rand(batch, device=device) * t_max


def cfm_loss(model, path: GaussianPath, data: torch.Tensor, noise: torch.Tensor | None = None,
             t: torch.Tensor | None = None, cond=None) -> torch.Tensor:
    """Mean squared error (over batch and dimensions) between the model's velocity and u_t(x_t | data, noise)."""
    noise = torch.randn_like(data) if noise is None else noise
    t = sample_times(data.shape[0], data.device) if t is None else t
    ps = path.sample(noise, data, t)
    return F.mse_loss(model(x=ps.x_t, t=t, cond=cond), ps.velocity)


def marginal_velocity(mixture: GaussianMixture, path: GaussianPath, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact u_t(x) = E[u_t(x | data, noise) | x_t = x] = d_alpha E[data | x] + d_sigma E[noise | x], (B, D).

    For a Gaussian-mixture target the posterior over the data is closed form, so this is exact.
    """
    c = path.schedule(check_time(t, batch=x.shape[0]))
    data_hat = mixture.posterior_mean(x, c.alpha, c.sigma)
    noise_hat = (x - c.alpha[:, None] * data_hat) / c.sigma[:, None]
    return c.d_alpha[:, None] * data_hat + c.d_sigma[:, None] * noise_hat
