"""ODE solvers for dx/dt = field(x=x, t=t, cond=cond) from t_start to t_end, returning a Trajectory.

Fixed-step methods are written out for teaching; 'dopri5' is torchdiffeq's adaptive solver.
NFE (network evaluations) per step: euler 1, midpoint 2, heun 2, rk4 4 (classical), rk4_38 4 (Kutta's 3/8
rule, which torchdiffeq calls 'rk4').
"""

import torch

from lessons.checks import (
    check_finite,
    check_finite_step,
    check_grid,
    check_matches_model,
    check_memory,
    check_model,
    check_model_output,
    check_nonnegative_int,
    check_not_meta,
    check_number,
    check_positive_int,
    check_tensor,
    choose,
)
from lessons.progress import Progress
from lessons.tensors import time_like
from lessons.trajectory import CountingModel, Trajectory, _call_field

NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "rk4_38": 4}
ODE_METHODS = tuple(NFE_PER_STEP) + ("dopri5",)  # the fixed-step methods and the adaptive one
TENSOR_OVERHEAD = 640  # bytes a recorded state costs beyond its values (measured: ~600 for a small tensor)
GRID_ROUNDOFF = 1e-9  # how far t + dt may stray past 0 or 1 by round-off of a grid's floats


def step(field, x: torch.Tensor, t: float, dt: float, method: str, cond=None) -> torch.Tensor:
    """One fixed step of size dt from (x, t), (B, ...); cond goes to every field call."""
    choose(method, NFE_PER_STEP, "fixed-step method")
    check_model(field, "the field")
    check_finite(check_tensor(x, "x"), "x")
    t = check_number(t, "the time t", low=0.0, high=1.0)
    dt = check_number(dt, "the step size dt")
    if not -GRID_ROUNDOFF <= t + dt <= 1 + GRID_ROUNDOFF:
        raise ValueError(
            f"the step must end inside [0, 1]: t + dt = {t:g} + {dt:g} = {t + dt:g}; take dt = {1 - t:g} or less "
            f"(or -{t:g} or more, backwards)."
        )
    return check_finite_step(_step(field, x, t, dt, method, cond), 1, t, f"the {method} step")


def _step(field, x, t, dt, method, cond):
    """step() without the checks of its arguments (solve_ode checks them once); the field's output is checked."""

    def at(x, t):
        t = min(max(t, 0.0), 1.0)  # t + dt can leave [0, 1] by round-off (1 + 2e-16) at the grid's ends
        return check_model_output(_call_field(field, x, time_like(t, x), cond=cond), x, "the field")

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
    k1 = at(x, t)  # rk4_38
    k2 = at(x + dt * k1 / 3, t + dt / 3)
    k3 = at(x + dt * (k2 - k1 / 3), t + 2 * dt / 3)
    k4 = at(x + dt * (k1 - k2 + k3), t + dt)
    return x + dt / 8 * (k1 + 3 * (k2 + k3) + k4)


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
    t_start > t_end (or a decreasing ts) integrates backwards, from data towards noise.

    For 'dopri5', ``ts`` (or the uniform grid) only says where states are recorded; the solver
    picks its own steps to meet rtol and atol, and nfe counts its real evaluations. Fixed-step
    methods check the state after every step; dopri5 checks the states it returns.
    """
    choose(method, ODE_METHODS, "ODE solver")
    check_model(field, "the field")
    check_matches_model(check_tensor(x_start, "x_start"), field, "x_start")
    check_finite(check_not_meta(x_start, "x_start"), "x_start")
    rtol = check_number(rtol, "rtol (the relative tolerance)", low=0.0, low_open=True)
    atol = check_number(atol, "atol (the absolute tolerance)", low=0.0, low_open=True)
    if ts is None:
        t_start = check_number(t_start, "t_start", low=0.0, high=1.0)
        t_end = check_number(t_end, "t_end", low=0.0, high=1.0)
        if t_start == t_end:
            raise ValueError(
                f"t_start and t_end must differ (the solve goes from one to the other), both are {t_end:g}."
            )
        n = check_positive_int(steps, "the number of steps")
        # before the grid is built: 10**9 steps would already take 8 GB for the times alone
        grid_bytes = (n + 1) * x_start.element_size()
        check_memory(grid_bytes + trajectory_bytes(n, x_start), f"a solve of {n} steps")
        # the grid in the state dtype: a float32 grid would cap float64 solutions at ~1e-7 accuracy
        ts = torch.linspace(t_start, t_end, n + 1, dtype=x_start.dtype)
    else:
        check_grid(ts, backward=True)
    if method == "dopri5":
        return _solve_adaptive(field, x_start, ts, rtol, atol, cond)
    return walk_grid(
        lambda x, t0, t1: _step(field, x, t0, t1 - t0, method, cond),
        x_start,
        ts,
        NFE_PER_STEP[method],
        what=f"the {method} solver",
    )


def walk_grid(
    advance,
    x_start: torch.Tensor,
    ts: torch.Tensor,
    nfe_per_step: int = 1,
    what: str = "the sampler",
    progress: bool | None = None,
) -> Trajectory:
    """x = advance(x, t, s) on each step [t, s] of the grid ts (floats), from x_start at ts[0]; xs (len(ts), B, ...).

    The state is checked for NaN and inf after every step (the message names the step and time, using
    ``what`` for the method); progress: a bar (True), none (False), or one once the loop has run long (None).
    """
    if not callable(advance):
        raise TypeError(f"advance must be a function advance(x, t, s) -> x, got {type(advance).__name__}.")
    check_finite(check_not_meta(check_tensor(x_start, "x_start"), "x_start"), "the starting state x_start")
    check_grid(ts, backward=True)
    check_positive_int(nfe_per_step, "nfe_per_step")
    n = ts.shape[0] - 1
    check_memory(trajectory_bytes(n, x_start), f"recording the {n + 1} states of {what}")
    xs, x = [x_start], x_start
    with Progress(n, what, progress) as bar:
        for i, (t, s) in enumerate(grid_steps(ts), start=1):
            x = check_finite_step(check_model_output(advance(x, t, s), x, "advance"), i, t, what)
            xs.append(x)
            bar.update()
    return Trajectory(ts=ts, xs=torch.stack(xs), nfe=nfe_per_step * n)


def trajectory_bytes(steps: int, x: torch.Tensor) -> int:
    """Memory to record steps + 1 states like x: each state, its copy in the stacked xs, and a tensor's overhead."""
    check_nonnegative_int(steps, "steps")
    check_tensor(x, "x", min_batch=0)
    return (steps + 1) * (2 * x.numel() * x.element_size() + TENSOR_OVERHEAD)


def grid_steps(ts: torch.Tensor, chunk: int = 4096):
    """The steps (t, s) of the grid ts as Python floats, read a chunk at a time (a whole list costs ~40 bytes a time)."""
    if not isinstance(ts, torch.Tensor) or ts.ndim != 1:
        raise TypeError(f"ts must be a 1-D torch tensor of times, got {type(ts).__name__}.")
    for start in range(0, ts.shape[0] - 1, chunk):
        part = ts[start : start + chunk + 1].tolist()
        yield from zip(part[:-1], part[1:])


def _solve_adaptive(field, x_start, ts, rtol, atol, cond):
    from torchdiffeq import odeint

    check_memory(trajectory_bytes(ts.shape[0] - 1, x_start), f"recording {ts.shape[0]} states")
    counted = CountingModel(field)
    lo, hi = float(ts.min()), float(ts.max())

    def rhs(t, x):
        t = float(t)
        if t != t:  # torchdiffeq sizes its steps from the field's values: NaN there leads it to t = NaN
            raise ValueError(
                "dopri5 could not go on: the field returned NaN or inf, which left the solver's time NaN."
            )
        # torchdiffeq probes one trial time to size its first step: keep that probe inside [ts[0], ts[-1]]
        out = _call_field(counted, x, time_like(min(max(t, lo), hi), x), cond=cond)
        return check_model_output(out, x, "the field")

    # step_t: the last step ends exactly at ts[-1]; without it dopri5 steps past the end and interpolates
    # back, calling the field at t > 1, outside the course's time range
    try:
        xs = odeint(
            rhs,
            x_start,
            ts.to(x_start.dtype),
            method="dopri5",
            rtol=rtol,
            atol=atol,
            options={"step_t": ts[-1:].to(x_start.dtype)},
        )
    except AssertionError as err:  # torchdiffeq's "underflow in dt": its step size shrank to nothing
        raise ValueError(
            f"dopri5 could not reach t = {ts[-1].item():g}: its step size shrank to zero ({err}). The field "
            "returned NaN or inf, or it changes too fast for rtol/atol; try a fixed-step method, which names "
            "the step where the state stops being finite."
        ) from err
    finite = torch.isfinite(xs.flatten(1)).all(1)  # (len(ts),): dopri5 is checked on the states it returns
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise ValueError(
            f"dopri5 returned NaN or inf at the recorded time ts[{first}] = {ts[first].item():.4g} (the adaptive "
            "solver is checked on its result, not step by step): the field returned a non-finite value."
        )
    return Trajectory(ts=ts, xs=xs, nfe=counted.calls)
