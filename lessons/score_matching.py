"""Denoising score matching (Vincent 2011): E || s_theta(x_t, t) + noise / sigma_t ||^2, x_t = alpha data + sigma noise.

Its minimiser is the score of p_t, since E[-noise / sigma | x_t] = grad log p_t(x_t) (Tweedie), and it differs from
the explicit score-matching loss E || s_theta - grad log p_t ||^2 by a constant free of s_theta. With
s_theta = -eps_theta / sigma the error per sample is ||eps_theta - noise||^2 / sigma^2: weighted by Song et al.'s
lambda_t = sigma_t^2 it is the eps-MSE of DDPM.
"""

import torch

from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_model,
    check_model_output,
    check_number,
    check_same_shape,
    check_tensor,
    check_time,
    choose,
)
from lessons.conversions import PREDICTIONS, convert
from lessons.schedules import Schedule

SCHEDULE_EXAMPLE = "VPSchedule()"


def _check_weighted(weighted) -> bool:
    if not isinstance(weighted, bool):
        raise TypeError(
            f"weighted must be True (lambda_t = sigma_t^2, the eps-MSE) or False (lambda = 1), got {weighted!r}."
        )
    return weighted


def _check_range(t_min, t_max) -> tuple[float, float]:
    t_min = check_number(t_min, "t_min", low=0.0, high=1.0)
    t_max = check_number(t_max, "t_max", low=0.0, high=1.0)
    if not t_min < t_max:
        raise ValueError(
            f"t_min must be below t_max (times are drawn from [t_min, t_max)), got {t_min} and {t_max}."
        )
    return t_min, t_max


def dsm_loss(
    model,
    schedule: Schedule,
    data: torch.Tensor,
    prediction: str = "eps",
    weighted: bool = True,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    t_min: float = 1e-3,
    t_max: float = 0.999,
    cond=None,
) -> torch.Tensor:
    """Per-sample DSM loss (B,): lambda_t mean_d (s_theta(x_t) + noise / sigma_t)^2, lambda_t = sigma_t^2 or 1.

    t ~ U[t_min, t_max) unless given; times with sigma = 0 (clean data, where the target -noise / sigma is
    infinite) are refused. The model's prediction of any kind is converted to the score by lessons.conversions.
    """
    check_model(model)
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    check_finite(check_tensor(data, "data"), "data")
    check_matches_model(data, model, "data")
    choose(prediction, PREDICTIONS, "prediction type")
    _check_weighted(weighted)
    t_min, t_max = _check_range(t_min, t_max)
    if noise is None:
        noise = torch.randn_like(data)
    else:
        check_finite(check_tensor(noise, "noise"), "noise")
        check_same_shape(noise, data, "noise", "data")
    if t is None:
        t = t_min + (t_max - t_min) * torch.rand(data.shape[0], dtype=data.dtype, device=data.device)
    c = schedule(check_time(t, batch=data.shape[0]))
    if (c.sigma <= 0).any():
        raise ValueError(
            "the DSM target -noise / sigma is infinite where sigma(t) = 0 (clean data, t = 1 on most schedules); "
            "draw times below 1, e.g. t_max=0.999."
        )
    ce = c.expand_like(data)
    x_t = ce.alpha * data + ce.sigma * noise
    pred = check_model_output(model(x=x_t, t=t, cond=cond), x_t)
    if prediction in ("eps", "score"):  # no division by alpha: these two hold at pure noise too
        noise_hat = pred if prediction == "eps" else -ce.sigma * pred
    else:
        noise_hat = convert(pred, prediction, "eps", x_t, c)
    err = (noise_hat - noise).flatten(1).pow(2).mean(1)  # (B,) = sigma^2 mean_d (s_theta + noise / sigma)^2
    return err if weighted else err / c.sigma**2


def dsm_batch_loss(
    schedule: Schedule,
    prediction: str = "eps",
    weighted: bool = True,
    t_min: float = 1e-3,
    t_max: float = 0.999,
):
    """loss_fn(model, data) for lessons.training.train: the mean of dsm_loss over a batch of data (B, ...)."""
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    choose(prediction, PREDICTIONS, "prediction type")
    _check_weighted(weighted)
    t_min, t_max = _check_range(t_min, t_max)

    def loss_fn(model, data):
        return dsm_loss(model, schedule, data, prediction, weighted, t_min=t_min, t_max=t_max).mean()

    return loss_fn
