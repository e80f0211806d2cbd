"""Euler-Maruyama for a time-homogeneous SDE dX = drift(X) ds + g dW; Brownian motion and the OU process.

The clock here is physical time s >= 0 (any duration), not the course's t in [0, 1] that indexes a noising path.
One step of size h: X <- X + drift(X) h + g sqrt(h) z, z ~ N(0, I).
Ornstein-Uhlenbeck: dX = -theta X ds + sigma dW has, from X_0 = c, the law N(c e^{-theta s}, v_s) with
v_s = sigma^2 (1 - e^{-2 theta s}) / (2 theta), hence the stationary law N(0, sigma^2 / (2 theta)).
"""

import math

import torch

from lessons.checks import (
    check_callable,
    check_finite,
    check_finite_step,
    check_generator,
    check_memory,
    check_model_output,
    check_not_meta,
    check_number,
    check_positive_int,
    check_tensor,
)
from lessons.solvers import trajectory_bytes
from lessons.tensors import normal_like
from lessons.trajectory import Trajectory


def _check_keep_path(keep_path) -> bool:
    if not isinstance(keep_path, bool):
        raise TypeError(
            f"keep_path must be True (keep every state) or False (the first and last), got {keep_path!r}."
        )
    return keep_path


def euler_maruyama(
    drift,
    x_start: torch.Tensor,
    step_size: float,
    steps: int,
    diffusion: float = 1.0,
    generator: torch.Generator | None = None,
    keep_path: bool = True,
    what: str = "Euler-Maruyama",
) -> Trajectory:
    """x <- x + h drift(x) + g sqrt(h) z for ``steps`` steps of size h; xs (steps+1, B, ...), or (2, B, ...).

    drift(x) -> (B, ...) is called once per step (nfe = steps); ts are the physical times h * i.
    keep_path=False keeps only the first and last states (long chains).
    """
    check_callable(drift, "drift", "a function drift(x) -> tensor shaped like x, such as lambda x: -x")
    check_finite(check_not_meta(check_tensor(x_start, "x_start"), "x_start"), "the starting state x_start")
    h = check_number(step_size, "the step size", low=0.0, low_open=True)
    check_positive_int(steps, "the number of steps")
    g = check_number(diffusion, "the diffusion coefficient g", low=0.0)
    check_generator(generator)
    _check_keep_path(keep_path)
    check_memory(trajectory_bytes(steps if keep_path else 1, x_start), f"{what}: {steps} steps")
    x, xs, root = x_start, [x_start], math.sqrt(h)
    for i in range(1, steps + 1):
        push = check_model_output(drift(x), x, "drift")
        x = x + h * push + g * root * normal_like(x, generator)
        check_finite_step(x, i, h * i, what)
        if keep_path or i == steps:
            xs.append(x)
    grid = torch.arange(steps + 1, dtype=torch.float64) * h if keep_path else torch.tensor([0.0, h * steps])
    return Trajectory(ts=grid.to(x_start.dtype), xs=torch.stack(xs), nfe=steps)


def brownian_motion(
    x_start: torch.Tensor,
    duration: float,
    steps: int,
    sigma: float = 1.0,
    generator: torch.Generator | None = None,
    keep_path: bool = True,
) -> Trajectory:
    """sigma W_s from x_start: dX = sigma dW on [0, duration], steps increments of variance sigma^2 h; xs (steps+1, B, ...)."""
    duration = check_number(duration, "the duration", low=0.0, low_open=True)
    check_positive_int(steps, "the number of steps")
    sigma = check_number(sigma, "sigma (the noise scale)", low=0.0)
    return euler_maruyama(
        lambda x: torch.zeros_like(x),
        x_start,
        duration / steps,
        steps,
        sigma,
        generator,
        keep_path,
        "Brownian motion",
    )


def ou_process(
    x_start: torch.Tensor,
    theta: float,
    sigma: float,
    duration: float,
    steps: int,
    generator: torch.Generator | None = None,
    keep_path: bool = True,
) -> Trajectory:
    """Euler-Maruyama on dX = -theta X ds + sigma dW over [0, duration]; xs (steps+1, B, ...)."""
    theta = check_number(theta, "theta (the pull towards 0)", low=0.0, low_open=True)
    sigma = check_number(sigma, "sigma (the noise scale)", low=0.0)
    duration = check_number(duration, "the duration", low=0.0, low_open=True)
    check_positive_int(steps, "the number of steps")
    return euler_maruyama(
        lambda x: -theta * x, x_start, duration / steps, steps, sigma, generator, keep_path, "the OU process"
    )


def ou_moments(x_start: torch.Tensor, theta: float, sigma: float, s: float):
    """Exact (mean, variance) of the OU process at time s from x_start (B, ...): c e^{-theta s}, v_s (a float)."""
    check_finite(check_tensor(x_start, "x_start"), "x_start")
    theta = check_number(theta, "theta (the pull towards 0)", low=0.0, low_open=True)
    sigma = check_number(sigma, "sigma (the noise scale)", low=0.0)
    s = check_number(s, "the time s", low=0.0)
    return x_start * math.exp(-theta * s), sigma**2 * -math.expm1(-2 * theta * s) / (2 * theta)


def ou_stationary_variance(theta: float, sigma: float, step_size: float | None = None) -> float:
    """sigma^2 / (2 theta), the OU law as s -> inf; with step_size h, the Euler-Maruyama chain's own limit
    sigma^2 / (theta (2 - theta h)), which exists for 0 < h < 2 / theta."""
    theta = check_number(theta, "theta (the pull towards 0)", low=0.0, low_open=True)
    sigma = check_number(sigma, "sigma (the noise scale)", low=0.0)
    if step_size is None:
        return sigma**2 / (2 * theta)
    h = check_number(step_size, "the step size", low=0.0, low_open=True)
    if theta * h >= 2:
        raise ValueError(
            f"the Euler-Maruyama chain of the OU process diverges for step sizes h >= 2 / theta = {2 / theta:g} "
            f"(each step multiplies x by 1 - theta h); got h = {h:g}."
        )
    return sigma**2 / (theta * (2 - theta * h))
