"""DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep sampler of the probability-flow ODE.

In the half log-SNR l = log(alpha / sigma) (the course's log-SNR lambda is 2 l) the ODE is solved exactly for
its linear part; only the data prediction D(x, t) is approximated, by a line through the last two values:
  x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^(-h)) D,  h = l_s - l_t,
  D = (1 + 1 / (2 r)) D_t - 1 / (2 r) D_prev,  r = h_prev / h  (h_prev: the step before, from t_prev to t).
With D = D_t alone (the first step, and the last one into sigma = 0) this is DDIM. One network call per step.
"""

import math

import torch

from lessons.checks import check_number, check_positive_int, check_time
from lessons.ddim import _check_sampler, _coefs, _predict
from lessons.schedules import Schedule, _check_schedule
from lessons.solvers import walk_grid
from lessons.trajectory import Trajectory

FEW_STEPS = 15  # below this many steps diffusers takes the last step at first order (lower_order_final)


def half_log_snr(alpha: float, sigma: float) -> float:
    """l = log(alpha / sigma) = lambda / 2 of one time: -inf where alpha = 0 (pure noise), +inf where sigma = 0."""
    alpha = check_number(alpha, "alpha", low=0.0)
    sigma = check_number(sigma, "sigma", low=0.0)
    if alpha == 0 and sigma == 0:
        raise ValueError("alpha and sigma cannot both be 0: x_t would be 0 whatever the data and the noise.")
    if alpha == 0:
        return -math.inf
    return math.inf if sigma == 0 else math.log(alpha) - math.log(sigma)


@torch.no_grad()
def dpm_solver_2m(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    prediction: str = "eps",
    lower_order_final: bool = True,
    cond=None,
    progress: bool | None = None,
) -> Trajectory:
    """Sample from x = noise at ts[0] along the increasing grid ts (noise -> data); xs (len(ts), B, ...), nfe = steps.

    Any schedule, any prediction type (turned into a data prediction by lessons.conversions), any grid: the
    course's default is the grid DDIM uses (ddim_times on DDPM's schedule, uniform in time), so that a comparison
    at equal steps differs only by the update; log_snr_times gives the grid uniform in log-SNR.
    The first step is first order (no earlier D yet), and so is a step into sigma = 0, where h is infinite;
    lower_order_final also takes the last step at first order on grids of fewer than 15 steps, as diffusers does.
    """
    _check_sampler(model, noise, schedule, ts, prediction, None)
    if not isinstance(lower_order_final, bool):
        raise TypeError(
            f"lower_order_final must be True or False (take the last step of a short grid at first order), "
            f"got {type(lower_order_final).__name__} {lower_order_final!r}."
        )
    steps, t_last = ts.shape[0] - 1, float(ts[-1])
    short_final = lower_order_final and steps < FEW_STEPS
    history = {}  # the previous step's data prediction D_prev and its h_prev

    def advance(x, t, s):
        data_hat, _, a_t, s_t = _predict(model, schedule, x, t, prediction, cond)
        a_s, s_s = _coefs(schedule, s, x)
        h = half_log_snr(a_s, s_s) - half_log_snr(a_t, s_t)
        # into sigma = 0 (or a sigma below x's rounding, as cosine's 6e-17 at t = 1 in float64) h is infinite and the
        # line through D_prev and D_t would be read infinitely far out: that step is first order
        into_data = s_s <= torch.finfo(x.dtype).eps * a_s
        d = data_hat
        if "data" in history and history["h"] > 0 and not into_data and not (s == t_last and short_final):
            c = 0.5 * h / history["h"]  # = 1 / (2 r); 0 after a first step out of alpha = 0 (h_prev infinite)
            d = (1 + c) * data_hat - c * history["data"]
        history.update(data=data_hat, h=h)
        # sigma_s / sigma_t = 0 into sigma = 0; -expm1(-h) = 1 - e^(-h) is 1 there and out of alpha = 0
        return (s_s / s_t) * x + a_s * -math.expm1(-h) * d

    return walk_grid(advance, noise, ts, what="dpm_solver_2m", progress=progress)


def log_snr_times(
    schedule: Schedule,
    steps: int,
    t_start: float = 0.0,
    t_end: float = 1.0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """steps + 1 times (steps+1,) from t_start to t_end, evenly spaced in log-SNR: t_i = t(lambda_i), lambda_i linear in i.

    lambda is infinite where alpha = 0 (t = 0 on linear and cosine) and where sigma = 0 (t = 1 on DDPM's and VP's
    schedules): there pick a finite end, e.g. t_end = ddpm.t_of(1) (one DDPM step short of the data), and append 1.
    Computed in float64 through the schedule's closed-form inverse, then cast to dtype (default: torch's).
    """
    _check_schedule(schedule)
    check_positive_int(steps, "the number of steps")
    if steps > 100_000:
        raise ValueError(f"steps must be at most 100000 (a grid, not a table), got {steps}.")
    t_start = check_number(t_start, "t_start", low=0.0, high=1.0)
    t_end = check_number(t_end, "t_end", low=0.0, high=1.0)
    if not t_start < t_end:
        raise ValueError(f"t_start must be smaller than t_end (noise first), got {t_start:g} and {t_end:g}.")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a float dtype such as torch.float64, got {dtype!r}.")
    ends = schedule.log_snr(check_time(torch.tensor([t_start, t_end], dtype=torch.float64)))
    for end, t, where in ((ends[0], t_start, "t_start"), (ends[1], t_end, "t_end")):
        if not math.isfinite(end.item()):
            raise ValueError(
                f"the log-SNR at {where} = {t:g} is {end.item()} on {schedule!r} (alpha or sigma is 0 there), so "
                f"no grid can be even in it up to that end; move {where} inside, e.g. 0.001 from the end."
            )
    lam = torch.linspace(ends[0].item(), ends[1].item(), steps + 1, dtype=torch.float64)
    ts = schedule.time_at_log_snr(lam)
    ts[0], ts[-1] = t_start, t_end  # exactly the ends asked for, not their round trip through lambda
    ts = ts.to(dtype or torch.get_default_dtype())
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(
            f"in {ts.dtype} two of the {steps + 1} times coincide (the log-SNR moves fast there); ask for "
            "dtype=torch.float64 or fewer steps."
        )
    return ts
