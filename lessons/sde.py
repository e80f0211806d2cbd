"""The score-SDE view (Song et al. 2021) in the course's time: t = 0 is noise, t = 1 is data.

Noising runs backwards in course time, from t = 1 down to t = 0: dx = f_t x dt + g_t dW (dt < 0) with
  f_t = d log alpha / dt,   g_t^2 = 2 sigma^2 f_t - 2 sigma d sigma / dt = -2 alpha sigma d(sigma / alpha) / dt,
which keeps x_t = alpha_t data + sigma_t noise at every t (VP: f = beta / 2, g^2 = beta; VE: f = 0).
Generation runs forwards in t, from noise to data:
  reverse SDE            dx = (f x + g^2 score) dt + g dW,
  probability-flow ODE   dx/dt = f x + g^2 score / 2,
with score = grad log p_t(x) = -eps / sigma from an eps-prediction network.
"""

from dataclasses import dataclass

import torch

from lessons.checks import (
    check_generator,
    check_grid,
    check_instance,
    check_memory,
    check_model,
    check_model_output,
    check_number,
    check_positive_int,
    check_start,
    check_tensor,
    check_time,
    choose,
)
from lessons.conversions import PREDICTIONS, convert
from lessons.schedules import Schedule, ScheduleOutput
from lessons.solvers import walk_grid
from lessons.tensors import expand_like, normal_like, time_like
from lessons.trajectory import Trajectory

SCHEDULE_EXAMPLE = "VPSchedule() or DiscreteVPSchedule(DDPM())"


@dataclass
class SDECoefficients:
    """Drift rate f_t and diffusion g_t of the noising SDE dx = f_t x dt + g_t dW, each (B,)."""

    f: torch.Tensor
    g: torch.Tensor

    def __post_init__(self):
        for name in ("f", "g"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(
                    f"SDECoefficients.{name} must be a tensor (B,), one value per time, "
                    f"got {type(getattr(self, name)).__name__}."
                )
        if self.f.shape != self.g.shape:
            raise ValueError(
                f"SDECoefficients needs f and g of one shape (B,), got {tuple(self.f.shape)} and "
                f"{tuple(self.g.shape)}."
            )


def _times(t: torch.Tensor, where: torch.Tensor) -> str:
    """The first few times of t where the mask ``where`` holds, for a message."""
    bad = torch.unique(t[where])
    return ", ".join(f"{v:.4g}" for v in bad[:3].tolist()) + (" ..." if bad.numel() > 3 else "")


def sde_coefficients(schedule: Schedule, t: torch.Tensor) -> SDECoefficients:
    """f = d_alpha / alpha and g = sqrt(2 sigma^2 f - 2 sigma d_sigma), each (B,), from the schedule at t (B,).

    On a variance-preserving schedule (alpha^2 + sigma^2 = 1) sigma d_sigma = -alpha d_alpha, which stays finite
    where sigma = 0 and d_sigma is infinite (VP's data end), so VP's g(1) is its limit sqrt(beta_min), not 0.
    Where alpha = 0 (pure noise, t = 0 on the linear and cosine paths) f is infinite: refused, in words.
    """
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    c = schedule(t)
    if (c.alpha <= 0).any():
        raise ValueError(
            f"the noising SDE's drift f = d log alpha / dt is infinite where alpha(t) = 0 (pure noise), here "
            f"at t = {_times(t, c.alpha <= 0)}; start the time grid a little after 0, e.g. at 1e-3."
        )
    f = c.d_alpha / c.alpha
    sigma_d_sigma = -c.alpha * c.d_alpha if schedule.variance_preserving else c.sigma * c.d_sigma
    g2 = 2 * c.sigma**2 * f - 2 * sigma_d_sigma
    bad = ~(torch.isfinite(f) & torch.isfinite(g2))
    if bad.any():
        raise ValueError(
            f"this schedule's SDE coefficients are not finite at t = {_times(t, bad)} (its alpha, sigma or "
            "their derivatives are infinite there); keep the time grid away from that end."
        )
    return SDECoefficients(f=f, g=g2.clamp_min(0).sqrt())


def _score(
    model, schedule: Schedule, x: torch.Tensor, t: torch.Tensor, prediction: str, cond
) -> torch.Tensor:
    """score as below, with x, t and the names already checked (the samplers' inner call)."""
    c = schedule(t)
    if (c.sigma <= 0).any():
        raise ValueError(
            f"the score -eps / sigma is undefined where sigma = 0, here at t = {_times(t, c.sigma <= 0)} "
            "(t = 1 for VP); stop the time grid short of 1, e.g. at 1 - 1e-3."
        )
    return convert(check_model_output(model(x=x, t=t, cond=cond), x), prediction, "score", x, c)


def score(
    model, schedule: Schedule, x: torch.Tensor, t: torch.Tensor, prediction: str = "eps", cond=None
) -> torch.Tensor:
    """grad_x log p_t(x), (B, ...), from a network's prediction; for eps: score = -eps / sigma."""
    check_model(model)
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    check_tensor(x, "x")
    check_time(t, batch=x.shape[0])
    choose(prediction, PREDICTIONS, "prediction type")
    return _score(model, schedule, x, t, prediction, cond)


def probability_flow(model, schedule: Schedule, prediction: str = "eps"):
    """The probability-flow ODE's field(x=..., t=..., cond=None) = f x + g^2 score / 2, (B, ...), for solve_ode."""
    check_model(model)
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    choose(prediction, PREDICTIONS, "prediction type")

    def field(x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        check_tensor(x, "x")
        k = sde_coefficients(schedule, check_time(t, batch=x.shape[0]))
        drift = expand_like(k.f, x) * x
        return drift + 0.5 * expand_like(k.g, x) ** 2 * _score(model, schedule, x, t, prediction, cond)

    return field


@torch.no_grad()
def reverse_sde(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    prediction: str = "eps",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """Euler-Maruyama on dx = (f x + g^2 score) dt + g dW along the increasing grid ts; xs (len(ts), B, ...).

    noise is the state at ts[0] (standard noise for VP; for VE, multiply it by sigma(0)).
    Each step evaluates the network once, at the left end of the step, so ts may end at t = 1.
    progress: a tqdm bar (True), none (False), or one only when sampling runs long (None).
    """
    check_start(model, noise)
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    check_grid(ts)
    choose(prediction, PREDICTIONS, "prediction type")
    check_generator(generator)
    starts = ts[:-1].to(noise.dtype)  # where the network is called: refuse singular times before any call
    sde_coefficients(schedule, starts)
    if (schedule(starts).sigma <= 0).any():
        raise ValueError(
            f"the score -eps / sigma is undefined where sigma = 0, and the grid starts a step at t = "
            f"{_times(starts, schedule(starts).sigma <= 0)}; only the last time of ts may be such an end."
        )

    def advance(x, t, s):
        t_vec = time_like(t, x)
        k = sde_coefficients(schedule, t_vec)
        f, g = expand_like(k.f, x), expand_like(k.g, x)
        drift = f * x + g**2 * _score(model, schedule, x, t_vec, prediction, cond)
        z = normal_like(x, generator)
        return x + (s - t) * drift + g * (s - t) ** 0.5 * z

    return walk_grid(advance, noise, ts, what="reverse_sde", progress=progress)


# From the SDE description (f_t, g_t) back to the flow description (alpha_t, sigma_t):
#
# lessons.sde.sde_coefficients goes one way: f = d log alpha / dt, g^2 = 2 sigma^2 f - 2 sigma d sigma / dt.
# Solving these two equations from the data end (alpha(1) = 1, sigma(1) = sigma_end) goes the other way:
# log alpha(t) = -int_t^1 f(r) dr,    sigma(t)^2 = alpha(t)^2 (sigma_end^2 + int_t^1 g(r)^2 / alpha(r)^2 dr).


def _tail_integral(y: torch.Tensor, h: float) -> torch.Tensor:
    """int_{t_i}^1 y for every grid point t_i, (N,), by the trapezoid rule on a uniform grid of step h."""
    pieces = 0.5 * h * (y[1:] + y[:-1])  # (N-1,)
    return torch.cat([pieces.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=y.dtype)])


class SDESchedule(Schedule):
    """The schedule of the noising SDE with coefficients ``sde(t) -> SDECoefficients(f, g)``, each (B,).

    alpha and sigma are tabulated by the trapezoid rule on ``points`` times of [t_min, 1] and interpolated
    linearly (log alpha and sigma^2 / alpha^2); d_alpha = f alpha and d sigma = (2 sigma^2 f - g^2) / (2 sigma)
    use f and g at t itself. Use t_min > 0 when f is infinite at t = 0 (alpha(0) = 0, pure noise).
    """

    name = "sde"

    def __init__(self, sde, t_min: float = 0.0, sigma_end: float = 0.0, points: int = 20001):
        how = "a function t -> SDECoefficients(f, g), such as lambda t: sde_coefficients(schedule, t)"
        if isinstance(sde, Schedule):
            raise TypeError(f"sde must be {how}; you passed the schedule {sde!r} itself.")
        if isinstance(sde, type) or not callable(sde):
            raise TypeError(f"sde must be {how}; got {sde!r}.")
        t_min = check_number(t_min, "t_min", low=0.0, high=1.0, high_open=True)
        sigma_end = check_number(sigma_end, "sigma_end", low=0.0)
        check_positive_int(points, "the number of grid points")
        if points < 2:
            raise ValueError(f"the table needs at least 2 grid points (its two ends), got points={points}.")
        check_memory(10 * 8 * points, f"an SDE schedule tabulated on {points} points")
        self.sde, self.t_min, self.sigma_end = sde, t_min, sigma_end
        grid = torch.linspace(t_min, 1.0, points, dtype=torch.float64)
        self.h = (1.0 - t_min) / (points - 1)
        k = sde(grid)
        if not isinstance(k, SDECoefficients):
            raise TypeError(f"sde must be {how}; it returned {type(k).__name__}.")
        if k.f.shape != grid.shape:
            raise ValueError(
                f"sde(t) must return one f and one g per time, shape ({points},) here; got {tuple(k.f.shape)}."
            )
        bad = ~(torch.isfinite(k.f) & torch.isfinite(k.g))
        if bad.any():
            raise ValueError(
                f"sde returned NaN or inf at t = {_times(grid, bad)}; where f is infinite at t = 0 "
                "(alpha(0) = 0, pure noise), tabulate from a little later, e.g. t_min=1e-3."
            )
        self.log_alpha = -_tail_integral(k.f.double(), self.h)  # (N,)
        self.ratio = sigma_end**2 + _tail_integral(k.g.double() ** 2 * torch.exp(-2 * self.log_alpha), self.h)

    def _coefficients(self, t):
        if (t < self.t_min).any():
            raise ValueError(
                f"this SDE schedule was tabulated on [{self.t_min}, 1]; got t = {t.min().item():.4g}."
            )
        pos = (t.double() - self.t_min) / self.h
        lo = pos.floor().long().clamp(0, self.log_alpha.shape[0] - 2)
        w = pos - lo
        log_alpha = (1 - w) * self.log_alpha[lo] + w * self.log_alpha[lo + 1]
        ratio = (1 - w) * self.ratio[lo] + w * self.ratio[lo + 1]  # sigma^2 / alpha^2
        alpha = torch.exp(log_alpha)
        sigma = alpha * ratio.clamp_min(0).sqrt()
        k = self.sde(t)
        f, g2 = k.f.double(), k.g.double() ** 2
        d_sigma = (2 * sigma**2 * f - g2) / (2 * sigma.clamp_min(1e-12))
        return ScheduleOutput(*(v.to(t.dtype) for v in (alpha, sigma, f * alpha, d_sigma)))

    def time_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """As Schedule.time_at_log_snr, (B,), but targets below the tabulated range give t = t_min."""
        return super().time_at_log_snr(log_snr).clamp_min(self.t_min)

    def _time_at_log_snr(self, log_snr):
        # lambda = -log(sigma^2 / alpha^2) and that ratio is linear on each cell of the table: find the cell, solve
        ratio = torch.exp(-log_snr)  # (B,)
        table = -self.ratio.to(log_snr.device)  # (N,), non-decreasing in t
        lo = (torch.searchsorted(table, -ratio) - 1).clamp(0, table.shape[0] - 2)
        drop = table[lo + 1] - table[lo]
        beyond = (-ratio - table[lo]).double()  # >= 0 inside the cell
        w = torch.where(drop > 0, beyond / drop.clamp_min(1e-300), (beyond > 0).double())  # flat cell: an end
        return self.t_min + self.h * (lo + w)

    def __repr__(self) -> str:
        return (
            f"SDESchedule(t_min={self.t_min}, sigma_end={self.sigma_end}, points={self.log_alpha.shape[0]})"
        )
