"""DDIM (Song et al. 2021) on any schedule and any time grid, from any prediction type, and churn.

From x_t to a later (less noisy) time s, with (data_hat, noise_hat) recovered from the network:
  x_s = alpha_s data_hat + sqrt(sigma_s^2 - c^2) noise_hat + c z,
  c^2 = eta^2 (sigma_s^2 / sigma_t^2) (sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2),
so eta = 0 is deterministic and eta = 1 draws from DDPM's posterior q(x_s | x_t, data_hat).

Churn writes the same family another way: a deterministic DDIM step past s, to a time u with
log-SNR lambda_u = lambda_s + churn (lambda_s - lambda_t), then forward noising from u back to s.
churn = 0 is DDIM; churn = 1 is exactly DDPM's step (the DDIM step goes twice as far in log-SNR).
"""

import math

import torch

from lessons.checks import (
    check_generator,
    check_grid,
    check_instance,
    check_model_output,
    check_number,
    check_start,
    choose,
)
from lessons.conversions import PREDICTIONS, to_data_and_noise
from lessons.schedules import Schedule
from lessons.solvers import walk_grid
from lessons.tensors import normal_like, time_like
from lessons.trajectory import Trajectory


def _coefs(schedule: Schedule, t: float, like: torch.Tensor):
    """(alpha, sigma) of the schedule at the scalar time t, as Python floats."""
    c = schedule(torch.full((1,), t, dtype=like.dtype))
    return c.alpha[0].item(), c.sigma[0].item()


def _predict(model, schedule: Schedule, x: torch.Tensor, t: float, prediction: str, cond):
    """One network call at the scalar time t: data_hat and noise_hat, each (B, ...), then alpha_t and sigma_t as floats."""
    t_vec = time_like(t, x)
    c_t = schedule(t_vec)
    out = check_model_output(model(x=x, t=t_vec, cond=cond), x)
    data_hat, noise_hat = to_data_and_noise(out, prediction, x, c_t)
    return data_hat, noise_hat, c_t.alpha[0].item(), c_t.sigma[0].item()


def _check_sampler(model, noise, schedule, ts, prediction, generator) -> None:
    """The checks every sampler of this module makes before its first step."""
    check_start(model, noise)
    check_instance(schedule, Schedule, "schedule", "VPSchedule() or DiscreteVPSchedule(DDPM())")
    check_grid(ts)
    choose(prediction, PREDICTIONS, "prediction type")
    check_generator(generator)


@torch.no_grad()
def ddim(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    eta: float = 0.0,
    prediction: str = "eps",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Sample from x = noise at ts[0] along the increasing grid ts (noise -> data); (len(ts), B, ...).

    eta in [0, 1]: 0 is deterministic DDIM, 1 DDPM's posterior (for more noise, churn_sampler with churn > 1).
    progress: a tqdm bar (True), none (False), or one only when sampling runs long (None).
    """
    _check_sampler(model, noise, schedule, ts, prediction, generator)
    eta = check_number(eta, "eta")
    if not 0 <= eta <= 1:
        raise ValueError(
            f"eta must be in [0, 1] (0 is deterministic DDIM, 1 is DDPM), got {eta}; beyond 1 the step would "
            "need more noise than sigma_s. For more noise per step use churn_sampler with churn > 1."
        )

    def advance(x, t, s):
        data_hat, noise_hat, a_t, s_t = _predict(model, schedule, x, t, prediction, cond)
        c_s = schedule(time_like(s, x))
        a_s, s_s = c_s.alpha[0].item(), c_s.sigma[0].item()
        var = eta**2 * (s_s**2 / s_t**2) * max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0) if s_t > 0 else 0.0
        x = a_s * data_hat + max(s_s**2 - var, 0.0) ** 0.5 * noise_hat
        return x + var**0.5 * normal_like(x, generator) if var > 0 else x

    return walk_grid(advance, noise, ts, what="ddim", progress=progress)


def churn_ratio(rho_t: float, rho_s: float, churn: float) -> float:
    """rho_u = sigma_u / alpha_u of the further time u: rho_s (rho_s / rho_t) ** churn (lambda = -2 log rho).

    rho_t in (0, inf] (inf: pure noise, alpha_t = 0), rho_s >= 0 finite (0: clean data), churn >= 0.
    """
    rho_t = (
        math.inf
        if rho_t == math.inf
        else check_number(rho_t, "rho_t = sigma_t / alpha_t", low=0, low_open=True)
    )
    rho_s = check_number(rho_s, "rho_s = sigma_s / alpha_s", low=0)
    churn = check_number(churn, "churn", low=0)
    if rho_s == 0 or churn == 0:
        return rho_s
    return 0.0 if math.isinf(rho_t) else rho_s * (rho_s / rho_t) ** churn


@torch.no_grad()
def churn_sampler(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    churn: float = 1.0,
    prediction: str = "eps",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Each step t -> s: DDIM to u past s (rho_u from churn_ratio), then renoise u -> s; xs (len(ts), B, ...).

    With x_u / alpha_u = data_hat + rho_u noise_hat (the DDIM step to u) and the forward kernel
    q(x_s | x_u) = N((alpha_s / alpha_u) x_u, sigma_s^2 - (alpha_s rho_u)^2):
      x_s = alpha_s (data_hat + rho_u noise_hat) + sqrt(sigma_s^2 - (alpha_s rho_u)^2) z.
    Only rho_u = sigma_u / alpha_u matters, so u itself is never needed. One network call per step.
    progress: a tqdm bar (True), none (False), or one only when sampling runs long (None).
    """
    _check_sampler(model, noise, schedule, ts, prediction, generator)
    churn = check_number(churn, "churn")
    if churn < 0:
        raise ValueError(f"churn must be >= 0 (0 is deterministic DDIM, 1 is DDPM), got {churn}.")

    def advance(x, t, s):
        data_hat, noise_hat, a_t, s_t = _predict(model, schedule, x, t, prediction, cond)
        a_s, s_s = _coefs(schedule, s, x)
        rho_s = s_s / a_s
        rho_u = churn_ratio(s_t / a_t if a_t > 0 else math.inf, rho_s, churn)
        x = a_s * (data_hat + rho_u * noise_hat)  # DDIM to u, scaled back to the signal level of s
        var = s_s**2 * (1 - (rho_u / rho_s) ** 2) if rho_s > 0 else 0.0  # = sigma_s^2 - (alpha_s rho_u)^2
        return x + var**0.5 * normal_like(x, generator) if var > 0 else x

    return walk_grid(advance, noise, ts, what="churn_sampler", progress=progress)
