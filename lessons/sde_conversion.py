"""From the SDE description (f_t, g_t) back to the flow description (alpha_t, sigma_t).

lessons.sde.sde_coefficients goes one way: f = d log alpha / dt, g^2 = 2 sigma^2 f - 2 sigma d sigma / dt.
Solving these two equations from the data end (alpha(1) = 1, sigma(1) = sigma_end) goes the other way:
  log alpha(t) = -int_t^1 f(r) dr,    sigma(t)^2 = alpha(t)^2 (sigma_end^2 + int_t^1 g(r)^2 / alpha(r)^2 dr).
"""

import torch

from lessons.checks import check_positive_int
from lessons.schedules import Schedule, ScheduleOutput


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
        if not callable(sde):
            raise ValueError("sde must be a function t -> SDECoefficients(f, g), such as lambda t: sde_coefficients(s, t).")
        if not 0.0 <= t_min < 1.0 or sigma_end < 0:
            raise ValueError(f"need 0 <= t_min < 1 and sigma_end >= 0, got t_min={t_min}, sigma_end={sigma_end}.")
        check_positive_int(points - 1, "the number of grid points minus one")
        self.sde, self.t_min, self.sigma_end = sde, t_min, sigma_end
        grid = torch.linspace(t_min, 1.0, points, dtype=torch.float64)
        self.h = (1.0 - t_min) / (points - 1)
        k = sde(grid)
        self.log_alpha = -_tail_integral(k.f.double(), self.h)  # (N,)
        self.ratio = sigma_end**2 + _tail_integral(k.g.double() ** 2 * torch.exp(-2 * self.log_alpha), self.h)

    def _coefficients(self, t):
        if (t < self.t_min).any():
            raise ValueError(f"this SDE schedule was tabulated on [{self.t_min}, 1]; got t = {t.min().item():.4g}.")
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

    def __repr__(self) -> str:
        return f"SDESchedule(t_min={self.t_min}, sigma_end={self.sigma_end}, points={self.log_alpha.shape[0]})"
