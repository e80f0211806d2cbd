"""Conditional flow matching (Lipman et al. 2023) on any Gaussian path, and the marginal field of a data set.

CFM loss: E_{t, noise, data} || v_theta(x_t, t) - u_t(x_t | data, noise) ||^2, with
x_t = alpha_t data + sigma_t noise and u_t = d_alpha data + d_sigma noise.
FM loss:  E_{t, x_t} || v_theta(x_t, t) - u_t(x_t) ||^2 with the marginal field
u_t(x) = E[u_t(x | data) | x_t = x], exact for a Gaussian-mixture target (lessons.mixture.ExactMixtureModel
with prediction 'velocity'), estimated from samples by empirical_marginal_velocity.
"""

import torch
import torch.nn.functional as F

from lessons.checks import (
    check_finite,
    check_instance,
    check_matches_model,
    check_memory,
    check_model,
    check_model_output,
    check_number,
    check_point_set,
    check_positive_int,
    check_same_shape,
    check_tensor,
    check_time,
)
from lessons.conversions import _check_kind, from_data_and_noise
from lessons.device import pick_device
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.paths import GaussianPath
from lessons.trajectory import _call_field

# |d sigma / dt| at or beyond this where sigma = 0 is a schedule's finite stand-in for an infinite derivative
# (VP and offset-cosine paths clamp sigma at 1e-12 there, giving ~1e10); real values stay below ~1e4
UNBOUNDED_SPEED = 1e8


def sample_times(batch: int, device=None, t_max: float = 1.0) -> torch.Tensor:
    """t ~ Uniform[0, t_max), (B,). Use t_max < 1 for paths whose velocity diverges at t = 1 (VP)."""
    check_positive_int(batch, "the batch size")
    t_max = check_number(t_max, "t_max", low=0.0, high=1.0, low_open=True)
    check_memory(batch * 4, f"{batch} times")
    return torch.rand(batch, device=None if device is None else pick_device(device)) * t_max


def _check_path(path) -> GaussianPath:
    return check_instance(path, GaussianPath, "path", "GaussianPath(LinearSchedule())")


def _check_pair(data, noise, t):
    """data (B, ...) finite float, noise None or like data, t None or (B,) in [0, 1]."""
    check_finite(check_tensor(data, "data"), "data")
    if noise is not None:
        check_finite(check_tensor(noise, "noise"), "noise")
        check_same_shape(noise, data, "noise", "data")
    if t is not None:
        check_time(t, batch=data.shape[0])


def _check_ends(path: GaussianPath, t: torch.Tensor, what: str) -> None:
    """Refuse times where the path's velocity d_alpha data + d_sigma noise diverges (sigma = 0, d sigma unbounded)."""
    c = path.schedule(t)
    speed_ok = torch.isfinite(c.d_alpha) & torch.isfinite(c.d_sigma)
    bad = ~speed_ok | ((c.sigma <= 0) & ~(c.d_sigma.abs() < UNBOUNDED_SPEED))
    if bool(bad.any()):
        raise ValueError(
            f"{what} is undefined at t = {t[bad][0].item():g} on {path}: sigma(t) = 0 there and d sigma / dt "
            "is unbounded, so the velocity d_alpha data + d_sigma noise diverges. Keep t below 1, e.g. "
            "t = sample_times(B, t_max=0.999) or cfm_batch_loss(path, t_max=0.999)."
        )


def cfm_loss(
    model,
    path: GaussianPath,
    data: torch.Tensor,
    noise: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    cond=None,
    prediction: str = "velocity",
) -> torch.Tensor:
    """Mean squared error (over batch and dimensions) between the model's velocity and u_t(x_t | data, noise).

    Times where the path's velocity diverges (t = 1 on VP and offset-cosine paths, where sigma = 0) are refused.
    prediction: what the model outputs, 'velocity' (CFM) or another kind of lessons.conversions ('eps', 'data',
    'v', 'score'), regressed on that kind's target on the same path (the same pairs and times, so another
    weighting over log-SNR: lessons.weighting.implied_weighting).
    """
    check_model(model, "the model")
    _check_path(path)
    _check_kind(prediction, "prediction (what the model outputs)")
    _check_pair(data, noise, t)
    noise = torch.randn_like(data) if noise is None else noise
    t = sample_times(data.shape[0], data.device) if t is None else t
    if prediction == "velocity":
        _check_ends(path, t, "the CFM target u_t(x_t | data, noise)")
    ps = path.sample(noise, data, t)
    check_matches_model(ps.x_t, model, "noise" if noise.dtype == ps.x_t.dtype != data.dtype else "data")
    target = (
        ps.velocity
        if prediction == "velocity"
        else from_data_and_noise(data, noise, prediction, path.schedule(t))
    )
    return F.mse_loss(check_model_output(_call_field(model, ps.x_t, t, cond=cond), ps.x_t), target)


def cfm_batch_loss(path: GaussianPath, t_max: float = 1.0):
    """loss_fn(model, batch) for lessons.training.train: cfm_loss on a coupled batch = (noise, data), each (B, ...).

    t ~ Uniform[0, t_max) (sample_times); the batches of lessons.couplings.pair_batches have this form.
    """
    _check_path(path)
    t_max = check_number(t_max, "t_max", low=0.0, high=1.0, low_open=True)

    def loss_fn(model, batch):
        if not (isinstance(batch, tuple) and len(batch) == 2):
            raise ValueError(
                "cfm_batch_loss expects batches (noise, data), e.g. from lessons.couplings.pair_batches."
            )
        noise, data = batch
        _check_pair(data, noise, None)  # before data.shape is read for the times
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
    _check_path(path)
    check_point_set(x, "x")
    check_point_set(data, "data", x.shape[1])
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
    _check_path(path)
    check_point_set(data, "data")
    check_point_set(x, "x", data.shape[1])
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
    Both ends are fine where d sigma / dt stays finite (OT, cosine, VE); where it is unbounded at sigma = 0
    (t = 1 on VP and offset-cosine paths) the times are refused, as in cfm_loss.
    """
    check_model(model, "the model")
    _check_path(path)
    check_instance(mixture, GaussianMixture, "mixture", "target_density('8gaussians')")
    check_point_set(data, "data", mixture.dim)
    _check_pair(data, noise, t)
    noise = torch.randn_like(data) if noise is None else noise
    t = sample_times(data.shape[0], data.device) if t is None else t
    _check_ends(path, t, "the FM loss (its x_t and target u_t(x_t))")
    x_t = path.sample(noise, data, t).x_t
    check_matches_model(x_t, model, "noise" if noise.dtype == x_t.dtype != data.dtype else "data")
    exact = ExactMixtureModel(mixture, path.schedule, prediction="velocity")
    return F.mse_loss(check_model_output(_call_field(model, x_t, t), x_t), exact(x=x_t, t=t))
