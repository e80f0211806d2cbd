"""Every Gaussian-path loss is a weighted eps-MSE: weightings in log-SNR and time samplers.

With x_t = alpha data + sigma noise fixed, data_hat - data = -(sigma / alpha)(eps_hat - eps), so a prediction of
any kind errs by a factor times the eps error: ||pred_hat - pred||^2 = factor(t) ||eps_hat - eps||^2.
With t ~ p(t) and lambda = log(alpha^2 / sigma^2), the loss E_t[factor ||eps_hat - eps||^2] equals
int w(lambda) E||eps_hat - eps||^2 d lambda with w(lambda_t) = p(t) factor(t) / (d lambda / dt) (Kingma & Gao 2023).

The ends: where alpha = 0 (pure noise) or sigma = 0 (clean data) the log-SNR is -inf or +inf and d lambda / dt is
infinite, so d_log_snr, implied_weighting and weighted_eps_loss refuse such times in words (a weighting in log-SNR
lives on finite lambda). A factor or a density that stays finite there is returned (the eps factor 1, the
logit-normal density 0); one that is infinite is refused. Nothing here answers inf or NaN.
"""

import math

import torch

from lessons.checks import (
    check_callable,
    check_finite,
    check_generator,
    check_matches_model,
    check_memory,
    check_model_output,
    check_number,
    check_positive_int,
    check_same_shape,
    check_tensor,
    check_time,
)
from lessons.conversions import _check_coef, _check_kind, from_data_and_noise
from lessons.device import pick_device
from lessons.schedules import Schedule, ScheduleOutput, _check_log_snr, _check_schedule


def _refuse_infinite_log_snr(coef: ScheduleOutput, what: str) -> None:
    """Refuse coefficients where alpha = 0 or sigma = 0: lambda = -inf or +inf, d lambda / dt infinite."""
    how = "use times strictly inside the path, e.g. schedule.time_at_log_snr(lam) for a finite log-SNR lam"
    if bool((coef.alpha == 0).any()):
        raise ValueError(
            f"{what} is undefined where alpha(t) = 0 (pure noise, lambda = -inf; t = 0 on linear and cosine), "
            f"where d lambda / dt is infinite: {how}."
        )
    if bool((coef.sigma == 0).any()):
        raise ValueError(
            f"{what} is undefined where sigma(t) = 0 (clean data, lambda = +inf; t = 1 on most schedules), "
            f"where d lambda / dt is infinite: {how}."
        )


def eps_mse_factor(kind: str, coef: ScheduleOutput) -> torch.Tensor:
    """factor(t), (B,), with ||pred_hat - pred||^2 = factor ||eps_hat - eps||^2 for a prediction of this kind.

    The error (data, noise) = (-sigma / alpha, 1) times the eps error maps linearly into every kind. The factor is
    infinite, and refused, for 'data', 'v' and 'velocity' where alpha = 0 and for 'score' where sigma = 0; elsewhere
    it is finite ('eps' is 1 everywhere).
    """
    _check_kind(kind)
    coef = _check_coef(coef)
    if kind in ("data", "v", "velocity") and bool((coef.alpha == 0).any()):
        raise ValueError(
            f"the {kind} error is sigma / alpha times the eps error, infinitely larger where alpha(t) = 0 (pure noise, "
            "t = 0 on linear and cosine): use times after 0, or the 'eps' factor, which is 1 there."
        )
    if kind == "score" and bool((coef.sigma == 0).any()):
        raise ValueError(
            "the score error is the eps error divided by sigma, infinite where sigma(t) = 0 (clean data, t = 1): "
            "use times before 1."
        )
    ratio = -coef.sigma / coef.alpha  # -inf where alpha = 0, unused by the kinds allowed there
    return from_data_and_noise(ratio, torch.ones_like(coef.alpha), kind, coef) ** 2


def d_log_snr(coef: ScheduleOutput) -> torch.Tensor:
    """d lambda / dt = 2 (d_alpha / alpha - d_sigma / sigma), (B,): positive, log-SNR grows towards data.

    Refused where alpha = 0 or sigma = 0 (lambda = -inf or +inf), where it is infinite.
    """
    coef = _check_coef(coef)
    _refuse_infinite_log_snr(coef, "d lambda / dt")
    return 2 * (coef.d_alpha / coef.alpha - coef.d_sigma / coef.sigma)


def implied_weighting(kind: str, schedule: Schedule, t: torch.Tensor, time_density=None) -> torch.Tensor:
    """w(lambda_t) = p(t) factor(t) / (d lambda / dt), (B,): the log-SNR weighting of a kind-MSE loss.

    time_density(t) -> p(t) is the density training draws t from (None: uniform, p = 1). Times where alpha = 0 or
    sigma = 0 (lambda = -inf or +inf) are refused: w is a weighting over finite log-SNRs.
    """
    _check_kind(kind)
    _check_schedule(schedule)
    check_time(t)
    if time_density is not None:
        check_callable(
            time_density, "time_density", "None or a function t -> p(t), such as logit_normal_density"
        )
    coef = schedule(t)
    _refuse_infinite_log_snr(coef, "the weighting w(lambda)")
    density = torch.ones_like(t) if time_density is None else time_density(t)
    if not isinstance(density, torch.Tensor) or density.shape != t.shape:
        got = tuple(density.shape) if isinstance(density, torch.Tensor) else type(density).__name__
        raise ValueError(
            f"time_density(t) must return a tensor of shape {tuple(t.shape)}, one p(t) per time; got {got}."
        )
    if not bool((torch.isfinite(density) & (density >= 0)).all()):
        raise ValueError("time_density(t) must return finite densities >= 0 at every t.")
    w = density * eps_mse_factor(kind, coef) / d_log_snr(coef)
    if not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"w(lambda) overflows {t.dtype} at times this close to an end (t in [{t.min().item():.3g}, "
            f"{t.max().item():.3g}]): use times further inside (0, 1), or float64."
        )
    return w


def fm_weighting(log_snr: torch.Tensor) -> torch.Tensor:
    """Flow matching's weighting in log-SNR, w(lambda) = exp(-lambda / 2) / 2, (B,) (velocity MSE, linear path).

    w(+inf) = 0, its limit; lambda = -inf (pure noise), where w is infinite, and lambdas so low that w overflows
    the dtype are refused.
    """
    _check_log_snr(log_snr)
    lowest = -2 * math.log(torch.finfo(log_snr.dtype).max)  # below it, exp(-lambda / 2) overflows
    if bool((log_snr < lowest).any()):
        raise ValueError(
            f"fm_weighting(lambda) = exp(-lambda / 2) / 2 is infinite at lambda = -inf (pure noise) and overflows "
            f"{log_snr.dtype} below lambda = {lowest:.1f}; got a lowest lambda of {log_snr.min().item():.4g}."
        )
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
    """Per-sample loss (B,): w(lambda_t) (d lambda / dt) mean_d (eps_hat - eps)^2, t ~ U(0, 1) unless given.

    Its mean over t ~ U[0, 1] is int w(lambda) E[mean_d (eps_hat - eps)^2] d lambda over the schedule's log-SNR range.
    Given times where alpha = 0 or sigma = 0 are refused (d lambda / dt is infinite there); a drawn t of exactly 0
    becomes the smallest positive draw of torch.rand instead.
    """
    check_callable(eps_model, "eps_model", "a network called as eps_model(x=..., t=..., cond=...)")
    _check_schedule(schedule)
    check_callable(weighting, "weighting", "a function log_snr -> w(lambda), such as fm_weighting")
    check_tensor(data, "data")
    if data.ndim < 2:
        raise ValueError(
            f"data must have shape (B, ...): a batch of samples with at least one coordinate each, got shape "
            f"{tuple(data.shape)}; for one number per sample use data[:, None]."
        )
    check_finite(data, "data")
    check_matches_model(data, eps_model, "data")
    if noise is None:
        noise = torch.randn_like(data)
    else:
        check_tensor(noise, "noise")
        check_same_shape(noise, data, "noise", "data")
        check_finite(noise, "noise")
    if t is None:
        t = torch.rand(data.shape[0], dtype=data.dtype, device=data.device)
        t = torch.where(t > 0, t, 0.5 * torch.finfo(data.dtype).eps)  # 0 has alpha = 0 on linear and cosine
    coef = schedule(check_time(t, batch=data.shape[0]))
    _refuse_infinite_log_snr(coef, "the weighted eps loss")
    c = coef.expand_like(data)
    x_t = c.alpha * data + c.sigma * noise
    eps_hat = check_model_output(eps_model(x=x_t, t=t, cond=cond), x_t, "the model eps_model")
    err = (eps_hat - noise).flatten(1).pow(2).mean(1)  # (B,)
    w = weighting(coef.log_snr())
    if not isinstance(w, torch.Tensor) or w.shape != t.shape:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(
            f"weighting(log_snr) must return a tensor of shape {tuple(t.shape)}, one weight per sample; got {got}."
        )
    return w * d_log_snr(coef) * err


def logit_normal_times(
    batch: int, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """t = sigmoid(mean + std z), z ~ N(0, 1), (B,): Stable Diffusion 3's time sampler.

    SD3 writes t for the noise level (t = 1 noise); in the course's time (t = 1 data) its mean m is our -m.
    In float32, draws with |mean + std z| above about 17 round to t = 0 or t = 1 exactly.
    """
    check_positive_int(batch, "the batch size")
    mean = check_number(mean, "the logit-normal mean")
    std = check_number(std, "the logit-normal std", low=0.0, low_open=True)
    check_generator(generator)
    device = None if device is None else pick_device(device)
    check_memory(8 * batch, f"drawing {batch} logit-normal times")
    t = torch.sigmoid(mean + std * torch.randn(batch, generator=generator))
    return t if device is None else t.to(device)


def logit_normal_density(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """p(t) = N(logit t; mean, std^2) / (t (1 - t)), (B,); p(0) = p(1) = 0, its limit at both ends.

    (The Gaussian in logit t vanishes faster than 1 / (t (1 - t)) grows.) A density too large for t's dtype
    (a t within a few float32 ulps of an end, with the mean far out on that side) is refused, never inf.
    """
    check_time(t)
    mean = check_number(mean, "the logit-normal mean")
    std = check_number(std, "the logit-normal std", low=0.0, low_open=True)
    inside = (t > 0) & (t < 1)
    u = torch.where(inside, t, 0.5)  # the ends get their limit 0 below, without computing 0 / 0
    logit = torch.log(u) - torch.log1p(-u)
    p = torch.exp(-0.5 * ((logit - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi) * u * (1 - u))
    p = torch.where(inside, p, 0.0)
    if not bool(torch.isfinite(p).all()):
        raise ValueError(
            f"the logit-normal density overflows {t.dtype} at times this close to an end (t in "
            f"[{t.min().item():.3g}, {t.max().item():.3g}], mean {mean:g}, std {std:g}): use float64 times, "
            "or times further inside (0, 1)."
        )
    return p
