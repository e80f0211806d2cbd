"""Stochastic sampling of a flow model: dX = [u_t(X) + (g_t^2 / 2) score_t(X)] dt + g_t dW keeps the ODE's marginals.

Fokker-Planck: the extra drift (g^2/2) grad log p_t moves p_t by -div(p_t (g^2/2) grad log p_t) = -(g^2/2) Laplacian p_t,
which the diffusion's +(g^2/2) Laplacian p_t cancels; so every g_t gives the marginals p_t of dx/dt = u_t(x).
From one velocity prediction u on a Gaussian path the score follows (lessons.conversions: velocity -> (data, noise)
-> -noise / sigma), so one network call per step gives both. Here g_t = noise_level * sigma_t: the noise fades at
the data end, where (g^2 / 2) score = -(noise_level^2 sigma_t / 2) E[noise | x] stays bounded.
"""

import torch

from lessons.checks import (
    check_generator,
    check_grid,
    check_instance,
    check_model,
    check_model_output,
    check_number,
    check_start,
    check_tensor,
    check_time,
    choose,
)
from lessons.conversions import PREDICTIONS, convert
from lessons.schedules import Schedule
from lessons.sde import _times
from lessons.solvers import walk_grid
from lessons.tensors import expand_like, normal_like, time_like
from lessons.trajectory import Trajectory

SCHEDULE_EXAMPLE = "LinearSchedule() (the OT path of flow matching)"


def _check_family(model, schedule, noise_level, prediction) -> float:
    check_model(model)
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    choose(prediction, PREDICTIONS, "prediction type")
    return check_number(noise_level, "the noise level (g_t = noise_level * sigma_t)", low=0.0)


def _drift(model, schedule, noise_level, prediction, x, t, cond):
    """(u + (g^2 / 2) score, g), each (B, ...) and (B,), from one model call at (x, t)."""
    c = schedule(t)
    if (c.sigma <= 0).any():
        raise ValueError(
            f"the score is undefined where sigma = 0, here at t = {_times(t, c.sigma <= 0)} (the data end); "
            "only the last time of a sampling grid may be there."
        )
    pred = check_model_output(model(x=x, t=t, cond=cond), x)
    u, s = convert(pred, prediction, "velocity", x, c), convert(pred, prediction, "score", x, c)
    g = noise_level * c.sigma
    return u + 0.5 * expand_like(g, x) ** 2 * s, g


def flow_sde_drift(model, schedule: Schedule, noise_level: float, prediction: str = "velocity"):
    """The drift field(x=..., t=..., cond=None) = u_t(x) + (g_t^2 / 2) score_t(x), (B, ...), g_t = noise_level sigma_t."""
    noise_level = _check_family(model, schedule, noise_level, prediction)

    def field(x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        check_tensor(x, "x")
        return _drift(model, schedule, noise_level, prediction, x, check_time(t, batch=x.shape[0]), cond)[0]

    return field


@torch.no_grad()
def flow_sde(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    noise_level: float = 1.0,
    prediction: str = "velocity",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Euler-Maruyama on dX = [u + (g^2/2) score] dt + g dW along the increasing grid ts; xs (len(ts), B, ...).

    noise is the state at ts[0]; noise_level 0 is the Euler ODE solver. One model call per step (nfe = steps),
    at the left end of each step, so ts may end at the data end t = 1.
    """
    noise_level = _check_family(model, schedule, noise_level, prediction)
    check_start(model, noise)
    check_grid(ts)
    check_generator(generator)
    starts = ts[:-1].to(noise.dtype)
    if (schedule(starts).sigma <= 0).any():
        raise ValueError(
            f"the score is undefined where sigma = 0, and the grid starts a step at t = "
            f"{_times(starts, schedule(starts).sigma <= 0)}; only the last time of ts may be the data end."
        )

    def advance(x, t, s):
        drift, g = _drift(model, schedule, noise_level, prediction, x, time_like(t, x), cond)
        x = x + (s - t) * drift
        if noise_level > 0:
            x = x + expand_like(g, x) * (s - t) ** 0.5 * normal_like(x, generator)
        return x

    return walk_grid(
        advance, noise, ts, what=f"the flow SDE (noise level {noise_level:g})", progress=progress
    )
