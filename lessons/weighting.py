"""Every Gaussian-path loss is a weighted eps-MSE: weightings in log-SNR and time samplers.

With x_t = alpha data + sigma noise fixed, data_hat - data = -(sigma / alpha)(eps_hat - eps), so a prediction of
any kind errs by a factor times the eps error: ||pred_hat - pred||^2 = factor(t) ||eps_hat - eps||^2.
With t ~ p(t) and lambda = log(alpha^2 / sigma^2), the loss E_t[factor ||eps_hat - eps||^2] equals
int w(lambda) E||eps_hat - eps||^2 d lambda with w(lambda_t) = p(t) factor(t) / (d lambda / dt) (Kingma & Gao 2023).
"""

import math

import torch

from lessons.checks import check_positive_int, check_time, choose
from lessons.conversions import PREDICTIONS, from_data_and_noise
from lessons.schedules import Schedule, ScheduleOutput


def eps_mse_factor(kind: str, coef: ScheduleOutput) -> torch.Tensor:
    """factor(t), (B,), with ||pred_hat - pred||^2 = factor ||eps_hat - eps||^2 for a prediction of this kind.

    The error (data, noise) = (-sigma / alpha, 1) times the eps error maps linearly into every kind.
    """
    choose(kind, PREDICTIONS, "prediction type")
    return from_data_and_noise(-coef.sigma / coef.alpha, torch.ones_like(coef.alpha), kind, coef) ** 2


def d_log_snr(coef: ScheduleOutput) -> torch.Tensor:
    """d lambda / dt = 2 (d_alpha / alpha - d_sigma / sigma), (B,): positive, log-SNR grows towards data."""
    return 2 * (coef.d_alpha / coef.alpha - coef.d_sigma / coef.sigma)


def implied_weighting(kind: str, schedule: Schedule, t: torch.Tensor, time_density=None) -> torch.Tensor:
    """w(lambda_t) = p(t) factor(t) / (d lambda / dt), (B,): the log-SNR weighting of a kind-MSE loss.

    time_density(t) -> p(t) is the density training draws t from (None: uniform, p = 1).
    """
    coef = schedule(check_time(t))
    density = torch.ones_like(t) if time_density is None else time_density(t)
    return density * eps_mse_factor(kind, coef) / d_log_snr(coef)


def fm_weighting(log_snr: torch.Tensor) -> torch.Tensor:
    """Flow matching's weighting in log-SNR, w(lambda) = exp(-lambda / 2) / 2, (B,) (velocity MSE, linear path)."""
    return 0.5 * torch.exp(-0.5 * log_snr)


def weighted_eps_loss(
    eps_model,
    schedule: Schedule,
    weighting,
    data: torch.Tensor,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    cond=None,
) -> torch.Tensor:
    """Per-sample loss (B,): w(lambda_t) (d lambda / dt) mean_d (eps_hat - eps)^2, t ~ U[0, 1] unless given.

    Its mean over t ~ U[0, 1] is int w(lambda) E[mean_d (eps_hat - eps)^2] d lambda over the schedule's log-SNR range.
    """
    noise = torch.randn_like(data) if noise is None else noise
    t = torch.rand(data.shape[0], dtype=data.dtype, device=data.device) if t is None else t
    coef = schedule(check_time(t, batch=data.shape[0]))
    c = coef.expand_like(data)
    x_t = c.alpha * data + c.sigma * noise
    err = (eps_model(x=x_t, t=t, cond=cond) - noise).flatten(1).pow(2).mean(1)  # (B,)
    return weighting(coef.log_snr()) * d_log_snr(coef) * err


def logit_normal_times(
    batch: int, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """t = sigmoid(mean + std z), z ~ N(0, 1), (B,): Stable Diffusion 3's time sampler.

    SD3 writes t for the noise level (t = 1 noise); in the course's time (t = 1 data) its mean m is our -m.
    """
    check_positive_int(batch, "the batch size")
    if not std > 0:
        raise ValueError(f"the logit-normal std must be positive, got {std}.")
    t = torch.sigmoid(mean + std * torch.randn(batch, generator=generator))
    return t if device is None else t.to(device)


def logit_normal_density(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """p(t) = N(logit t; mean, std^2) / (t (1 - t)), (B,), for t in (0, 1)."""
    check_time(t)
    if not std > 0:
        raise ValueError(f"the logit-normal std must be positive, got {std}.")
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-0.5 * ((logit - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi) * t * (1 - t))
