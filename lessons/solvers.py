"""ODE solvers for dx/dt = field(x=x, t=t, cond=cond) from t_start to t_end, returning a Trajectory.

Fixed-step methods are written out for teaching; 'dopri5' is torchdiffeq's adaptive solver.
NFE (network evaluations) per step: euler 1, midpoint 2, heun 2, rk4 4 (classical), rk4_38 4 (Kutta's 3/8
rule, which torchdiffeq calls 'rk4').
"""

import torch

from lessons.checks import check_positive_int, choose
from lessons.tensors import time_like
from lessons.trajectory import CountingModel, Trajectory

NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "rk4_38": 4}
ODE_METHODS = tuple(NFE_PER_STEP) + ("dopri5",)  # the fixed-step methods and the adaptive one


def step(field, x: torch.Tensor, t: float, dt: float, method: str, cond=None) -> torch.Tensor:
    """One fixed step of size dt from (x, t), (B, ...); cond goes to every field call."""

    def at(x, t):
        return field(x=x, t=time_like(t, x), cond=cond)

    if method == "euler":
        return x + dt * at(x, t)
    if method == "midpoint":
        k1 = at(x, t)
        return x + dt * at(x + 0.5 * dt * k1, t + 0.5 * dt)
    if method == "heun":
        k1 = at(x, t)
        k2 = at(x + dt * k1, t + dt)
        return x + 0.5 * dt * (k1 + k2)
    if method == "rk4":
        k1 = at(x, t)
        k2 = at(x + 0.5 * dt * k1, t + 0.5 * dt)
        k3 = at(x + 0.5 * dt * k2, t + 0.5 * dt)
        k4 = at(x + dt * k3, t + dt)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    if method == "rk4_38":
        k1 = at(x, t)
        k2 = at(x + dt * k1 / 3, t + dt / 3)
        k3 = at(x + dt * (k2 - k1 / 3), t + 2 * dt / 3)
        k4 = at(x + dt * (k1 - k2 + k3), t + dt)
        return x + dt / 8 * (k1 + 3 * (k2 + k3) + k4)
    raise ValueError(f"unknown fixed-step method {method!r}; choose one of: {', '.join(NFE_PER_STEP)}.")


@torch.no_grad()
def solve_ode(
    field,
    x_start: torch.Tensor,
    steps: int = 100,
    method: str = "euler",
    t_start: float = 0.0,
    t_end: float = 1.0,
    ts: torch.Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    cond=None,
) -> Trajectory:
    """Integrate from x_start at t_start to t_end on a uniform grid of ``steps`` steps (or on ``ts``).

    The field is called as field(x=..., t=..., cond=cond), like every model of the course.

    For 'dopri5', ``ts`` (or the uniform grid) only says where states are recorded; the solver
    picks its own steps to meet rtol and atol, and nfe counts its real evaluations.
    """
    choose(method, ODE_METHODS, "ODE solver")
    if ts is None:
        # the grid in the state dtype: a float32 grid would cap float64 solutions at ~1e-7 accuracy
        ts = torch.linspace(
            t_start, t_end, check_positive_int(steps, "the number of steps") + 1, dtype=x_start.dtype
        )
    if method == "dopri5":
        return _solve_adaptive(field, x_start, ts, rtol, atol, cond)
    return walk_grid(
        lambda x, t0, t1: step(field, x, t0, t1 - t0, method, cond), x_start, ts, NFE_PER_STEP[method]
    )


def walk_grid(advance, x_start: torch.Tensor, ts: torch.Tensor, nfe_per_step: int = 1) -> Trajectory:
    """x = advance(x, t, s) on each step [t, s] of the grid ts (floats), from x_start at ts[0]; xs (len(ts), B, ...)."""
    xs, x = [x_start], x_start
    for t, s in zip(ts[:-1].tolist(), ts[1:].tolist()):
        x = advance(x, t, s)
        xs.append(x)
    return Trajectory(ts=ts, xs=torch.stack(xs), nfe=nfe_per_step * (len(ts) - 1))


def _solve_adaptive(field, x_start, ts, rtol, atol, cond):
    from torchdiffeq import odeint

    counted = CountingModel(field)
    lo, hi = float(ts.min()), float(ts.max())

    def rhs(t, x):
        # torchdiffeq probes one trial time to size its first step: keep that probe inside [ts[0], ts[-1]]
        return counted(x=x, t=time_like(min(max(float(t), lo), hi), x), cond=cond)

    # step_t: the last step ends exactly at ts[-1]; without it dopri5 steps past the end and interpolates
    # back, calling the field at t > 1, outside the course's time range
    xs = odeint(
        rhs,
        x_start,
        ts.to(x_start.dtype),
        method="dopri5",
        rtol=rtol,
        atol=atol,
        options={"step_t": ts[-1:].to(x_start.dtype)},
    )
    return Trajectory(ts=ts, xs=xs, nfe=counted.calls)
