"""EDM's Heun sampler and its noise levels (Karras et al. 2022), on the course's schedules and time convention.

EDM writes every Gaussian path as x_t = alpha_t (data + sigma noise) with sigma = sigma_t / alpha_t, the
VE-equivalent noise level (log-SNR lambda = -2 log sigma). In the scaled variable y = x / alpha the
probability-flow ODE is dy/dsigma = (y - D(y; sigma)) / sigma, which is the network's noise prediction.
Its noise levels: sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
then sigma_N = 0; each sigma maps to the course's t through the schedule's log-SNR inverse (closed form).
Heun's step from sigma_i to sigma_(i+1): Euler y' = y + (sigma_(i+1) - sigma_i) d_i, then the trapezoid
y_(i+1) = y + (sigma_(i+1) - sigma_i) (d_i + d') / 2, except into sigma = 0 (where d' is undefined), which
stays Euler's: on EDM's grid of N levels and then 0 that is the last step alone, so NFE = 2 N - 1.
On a DDPM-trained eps-network, ddpm_karras_times spans the network's own range instead of EDM's [0.002, 80].
"""

import math

import torch

from lessons.checks import check_instance, check_number, check_positive_int, check_tensor, check_time
from lessons.ddim import _check_sampler, _coefs, _predict
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.schedules import Schedule, _check_schedule
from lessons.solvers import walk_grid
from lessons.tensors import normal_like
from lessons.trajectory import Trajectory

MAX_STEPS = 100_000  # a grid, not a table
# relative: a level read off the schedule in float32 (round-off 6e-8) is inside its range
RANGE_TOLERANCE = 1e-6


def karras_sigmas(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """EDM's noise levels (steps,) in float64: (sigma_max^(1/rho) + i/(steps-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    check_positive_int(steps, "steps (the number of noise levels)")
    if steps > MAX_STEPS:
        raise ValueError(f"steps must be at most {MAX_STEPS} (a grid, not a table), got {steps}.")
    sigma_min = check_number(sigma_min, "sigma_min", low=0.0, low_open=True)
    sigma_max = check_number(sigma_max, "sigma_max", low=0.0, low_open=True)
    rho = check_number(rho, "rho (EDM uses 7)", low=0.0, low_open=True)
    if not sigma_min < sigma_max:
        raise ValueError(
            f"sigma_min must be smaller than sigma_max (the noise falls from sigma_max to sigma_min), got "
            f"sigma_min={sigma_min:g}, sigma_max={sigma_max:g}."
        )
    if steps == 1:  # one level: the start, the formula's i = 0
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    # exactly the ends asked for, not their round trip through the power 1 / rho
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    return sigmas


def edm_sigma(schedule: Schedule, t: torch.Tensor) -> torch.Tensor:
    """EDM's noise level sigma = sigma_t / alpha_t at times t (B,): inf where alpha = 0, 0 where sigma_t = 0."""
    _check_schedule(schedule)
    c = schedule(check_time(t))
    return torch.where(c.alpha > 0, c.sigma / c.alpha, math.inf)


def times_at_sigmas(
    schedule: Schedule, sigmas: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The course times t (N,) where sigma_t / alpha_t = sigmas (N,), decreasing, >= 0: t = t(lambda = -2 log sigma).

    sigma = 0 maps to t = 1 (the data) on schedules that reach it; levels beyond the range are refused, not clamped.
    Computed in float64 through the schedule's closed-form log-SNR inverse, then cast to dtype (default: torch's).
    """
    _check_schedule(schedule)
    check_tensor(sigmas, "sigmas", ndim=1)
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas < 0).any()):
        raise ValueError(f"sigmas must be finite noise levels >= 0, got {sigmas[:6].tolist()}.")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing (from the noisiest level down to the data).")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a float dtype such as torch.float64, got {dtype!r}.")
    noisiest, cleanest = edm_sigma(schedule, torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()
    top, positive = sigmas[0].item(), sigmas[sigmas > 0]
    low = positive.min().item() if positive.numel() else None
    if top > noisiest * (1 + RANGE_TOLERANCE):
        raise ValueError(
            f"sigma = {top:g} is noisier than {schedule!r} ever gets (sigma_t / alpha_t = {noisiest:.6g} at "
            f"t = 0); take sigma_max = {noisiest:.6g} or less."
        )
    if low is not None and low < cleanest * (1 - RANGE_TOLERANCE):
        raise ValueError(
            f"sigma = {low:g} is cleaner than {schedule!r} gets before the data (sigma_t / alpha_t = "
            f"{cleanest:.6g} at t = 1); take sigma_min = {cleanest:.6g} or more."
        )
    if sigmas[-1].item() == 0 and cleanest > 0:
        raise ValueError(
            f"{schedule!r} never reaches sigma = 0 (sigma_t / alpha_t = {cleanest:.6g} at t = 1, the data end), so "
            f"no time has the level 0; end the levels there instead, e.g. karras_sigmas(steps, sigma_min={cleanest:.6g})."
        )
    log_snr = -2 * torch.log(sigmas.double())  # +inf at sigma = 0: t = 1
    ts = schedule.time_at_log_snr(log_snr).to(dtype or torch.get_default_dtype())
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(
            f"in {ts.dtype} two of the {len(ts)} noise levels fall on the same time; ask for dtype=torch.float64."
        )
    return ts


def karras_times(
    schedule: Schedule,
    steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """EDM's grid as course times (steps+1,): the steps levels of karras_sigmas, then sigma = 0 (t = 1).

    On a schedule that never reaches sigma = 0 (VE), map karras_sigmas ending at its sigma(1) with times_at_sigmas.
    """
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho)
    return times_at_sigmas(schedule, torch.cat([sigmas, sigmas.new_zeros(1)]), dtype)


def ddpm_karras_times(
    ddpm: DDPM, steps: int, rho: float = 7.0, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """EDM's grid (steps+1,) over a DDPM eps-network's range, on DiscreteVPSchedule(ddpm): karras_times from
    sigma_max = sigma_t / alpha_t at t = 0 down to sigma_min = sigma_t / alpha_t one DDPM step before the data
    (k = 1, t = 1 - 1 / T), then sigma = 0 (t = 1).

    Why those ends: at t = 0 the grid starts where DDIM and DPM-Solver start, so every sampler maps the same noise
    (its top, not EDM's image top of 80: a level above it has no time); k = 1 is the cleanest noise level the network
    was trained at (k = 0 is sigma = 0, which a Karras grid cannot take as its sigma_min). The ends are read in
    torch's default dtype, as ddim_times' times are; the times come back as dtype (default: torch's).
    """
    check_instance(ddpm, DDPM, "ddpm", "DDPM() or DDPM(num_steps=1000)")
    if ddpm.num_steps < 2:
        raise ValueError(
            f"ddpm_karras_times needs a DDPM of at least 2 steps (its grid runs from k = T down to k = 1, then "
            f"the data), got T = {ddpm.num_steps}."
        )
    check_positive_int(steps, "steps (the number of noise levels before sigma = 0)")
    schedule = DiscreteVPSchedule(ddpm)
    sigma_max, sigma_min = edm_sigma(schedule, ddpm.t_of([ddpm.num_steps, 1])).tolist()  # k = T, k = 1
    return karras_times(schedule, steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, dtype=dtype)


@torch.no_grad()
def edm_heun(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    prediction: str = "eps",
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """EDM's Heun sampler from x = noise at ts[0] along the increasing grid ts; xs (len(ts), B, ...).

    Deterministic with s_churn = 0 (EDM's Algorithm 1). With s_churn > 0 (Algorithm 2), a level sigma_i in
    [s_tmin, s_tmax] is first raised to sigma_hat = (1 + gamma) sigma_i, gamma = min(s_churn / steps, sqrt(2) - 1),
    by adding noise of std s_noise sqrt(sigma_hat^2 - sigma_i^2) to y (at most to the schedule's t = 0).
    Every step is Heun's but one into sigma = 0, which is Euler's: nfe = 2 steps - 1 on karras_times' grid,
    2 steps on a grid that stops short of sigma = 0.
    """
    _check_sampler(model, noise, schedule, ts, prediction, generator)
    s_churn = check_number(s_churn, "s_churn (the churn; 0 is deterministic)", low=0.0)
    s_tmin = check_number(s_tmin, "s_tmin (the lowest sigma that churns)", low=0.0)
    if s_tmax != math.inf:
        s_tmax = check_number(s_tmax, "s_tmax (the highest sigma that churns)")
    if s_tmax < s_tmin:
        raise ValueError(
            f"s_tmax must be >= s_tmin (the window of sigmas that churn), got {s_tmin:g} and {s_tmax:g}."
        )
    s_noise = check_number(s_noise, "s_noise (the churn's noise scale, EDM uses 1 to 1.007)", low=0.0)
    if edm_sigma(schedule, ts[:1].double()).item() == math.inf:
        raise ValueError(
            f"EDM's sampler works with y = x / alpha, and alpha = 0 at ts[0] = {ts[0].item():g} on {schedule!r} (pure "
            "noise, sigma infinite): start the grid where alpha > 0, e.g. with karras_times(schedule, steps)."
        )
    gamma = min(s_churn / (ts.shape[0] - 1), math.sqrt(2) - 1)
    calls = [0]

    def noise_hat(y, t):
        """The slope dy/dsigma = (y - D) / sigma at (y, t), (B, ...): the network's noise prediction at x = alpha y."""
        calls[0] += 1
        a_t = _coefs(schedule, t, y)[0]
        return _predict(model, schedule, a_t * y, t, prediction, cond)[1]

    def advance(x, t, s):
        a_t, s_t = _coefs(schedule, t, x)
        a_s, s_s = _coefs(schedule, s, x)
        y, sig, sig_next = x / a_t, s_t / a_t, s_s / a_s
        if gamma > 0 and s_tmin <= sig <= s_tmax:
            t = schedule.time_at_log_snr(
                torch.tensor([-2 * math.log(sig * (1 + gamma))], dtype=torch.float64)
            ).item()
            a_hat, s_hat = _coefs(schedule, t, x)
            sig_hat = s_hat / a_hat  # the level the schedule really has at t (less at its t = 0 end)
            y = y + s_noise * max(sig_hat**2 - sig**2, 0.0) ** 0.5 * normal_like(y, generator)
            sig = sig_hat
        d = noise_hat(y, t)
        y_next = y + (sig_next - sig) * d  # Euler
        # Heun's correction (the slope at the end, then the trapezoid) except into sigma = 0, or a sigma below
        # x's rounding (cosine's 6e-17 at t = 1 in float64), where the slope is not defined; a non-finite
        # predictor is returned as it is, for walk_grid to name the step where the model gave NaN
        if sig_next > torch.finfo(x.dtype).eps and bool(torch.isfinite(y_next).all()):
            y_next = y + (sig_next - sig) * 0.5 * (d + noise_hat(y_next, s))
        return a_s * y_next

    traj = walk_grid(advance, noise, ts, what="edm_heun", progress=progress)
    return Trajectory(ts=traj.ts, xs=traj.xs, nfe=calls[0])
