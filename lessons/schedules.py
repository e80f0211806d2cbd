"""Noise schedules: x_t = alpha(t) * data + sigma(t) * noise, with t = 0 noise and t = 1 data.

Each schedule returns alpha, sigma and their time derivatives; log-SNR is 2 log(alpha / sigma).
"""

import math
from dataclasses import dataclass

import torch

from lessons.checks import check_positive_int, check_time, choose
from lessons.tensors import expand_like


@dataclass
class ScheduleOutput:
    """alpha(t), sigma(t), d alpha / dt, d sigma / dt, each (B,) (or broadcast to a state's shape)."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor

    def expand_like(self, x: torch.Tensor) -> "ScheduleOutput":
        """Reshape every (B,) field to (B, 1, ..., 1) so it broadcasts against x of shape (B, ...)."""
        return ScheduleOutput(
            *(expand_like(v, x) for v in (self.alpha, self.sigma, self.d_alpha, self.d_sigma))
        )

    def log_snr(self) -> torch.Tensor:
        """lambda = log(alpha^2 / sigma^2), the shape of alpha."""
        return 2 * (torch.log(self.alpha) - torch.log(self.sigma))


class Schedule:
    """Base class: subclasses implement ``_coefficients(t)``; calling checks t first."""

    name = "schedule"
    variance_preserving = False  # alpha^2 + sigma^2 = 1 at every t (VP, cosine, DDPM's discrete VP)

    def __call__(self, t: torch.Tensor) -> ScheduleOutput:
        return self._coefficients(check_time(t))

    def _coefficients(self, t: torch.Tensor) -> ScheduleOutput:
        raise NotImplementedError

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2), (B,); increases from noise (t=0) to data (t=1)."""
        return self(t).log_snr()

    def time_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """The time t (B,) where log_snr(t) = log_snr (B,), in log_snr's dtype.

        Targets below the schedule's range give t = 0, above it t = 1 (-inf and +inf included).
        """
        if not isinstance(log_snr, torch.Tensor) or log_snr.ndim != 1:
            raise ValueError("log_snr must be a tensor of shape (B,): one log-SNR per sample.")
        target = log_snr.double()
        t = self._time_at_log_snr(target).clamp(0.0, 1.0)
        t = torch.where(target == -math.inf, 0.0, torch.where(target == math.inf, 1.0, t))
        return t.to(log_snr.dtype)

    def _time_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """Invert the log-SNR of float64 targets (B,); subclasses with a closed form override this."""
        return log_snr_bisection(self, log_snr)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class LinearSchedule(Schedule):
    """The OT / rectified-flow path: alpha = t, sigma = 1 - (1 - sigma_min) t."""

    name = "linear"

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}.")
        self.sigma_min = sigma_min

    def _coefficients(self, t):
        one = torch.ones_like(t)
        return ScheduleOutput(t, 1 - (1 - self.sigma_min) * t, one, -(1 - self.sigma_min) * one)

    def _time_at_log_snr(self, log_snr):
        # t / (1 - (1 - sigma_min) t) = exp(lambda / 2); written so that -inf gives 0 (sigmoid when sigma_min = 0)
        return 1 / (torch.exp(-0.5 * log_snr) + 1 - self.sigma_min)


class CosineSchedule(Schedule):
    """Nichol & Dhariwal's cosine schedule in course time: alpha(t) = cos(theta(t)) / cos(theta(1)), sigma = sqrt(1 - alpha^2).

    theta(t) = (pi / 2) (1 - t + s) / (1 + s) with offset s (they use s = 0.008, and clip the discrete betas at
    0.999). The default s = 0 is the plain cosine path alpha = sin(pi t / 2), sigma = cos(pi t / 2).
    """

    name = "cosine"
    variance_preserving = True

    def __init__(self, offset: float = 0.0):
        if not 0.0 <= offset < 1.0:
            raise ValueError(
                f"the cosine schedule's offset s must be in [0, 1) (Nichol & Dhariwal use 0.008), got {offset}."
            )
        self.offset = offset

    def _theta(self, t):
        return 0.5 * math.pi * (1 - t + self.offset) / (1 + self.offset)

    def _coefficients(self, t):
        if self.offset == 0:
            # clamp: in float32 cos(pi / 2) is -4e-8, a negative sigma (and a NaN log-SNR) at t = 1
            a, s = torch.sin(0.5 * math.pi * t), torch.cos(0.5 * math.pi * t).clamp_min(0.0)
            return ScheduleOutput(a, s, 0.5 * math.pi * s, -0.5 * math.pi * a)
        end = math.cos(self._theta(1.0))  # cos(theta) at the data end, so alpha(1) = 1
        a = (torch.cos(self._theta(t)) / end).clamp(0.0, 1.0)
        s = ((1 - a) * (1 + a)).clamp_min(0.0).sqrt()
        d_a = torch.sin(self._theta(t)) * 0.5 * math.pi / (1 + self.offset) / end
        return ScheduleOutput(a, s, d_a, -a * d_a / s.clamp_min(1e-12))

    def _time_at_log_snr(self, log_snr):
        if self.offset == 0:
            return 2 / math.pi * torch.atan(torch.exp(0.5 * log_snr))  # lambda = 2 log tan(pi t / 2)
        alpha = torch.sigmoid(log_snr).sqrt()  # alpha^2 = sigmoid(lambda) on a VP path
        theta = torch.acos((alpha * math.cos(self._theta(1.0))).clamp(-1.0, 1.0))
        return 1 + self.offset - theta * 2 * (1 + self.offset) / math.pi


class VPSchedule(Schedule):
    """Variance preserving path of DDPM's linear betas in continuous time (Song et al.).

    With s = 1 - t (diffusion time), beta(s) = beta_min + (beta_max - beta_min) s,
    alpha = exp(-0.5 * int_0^s beta), sigma = sqrt(1 - alpha^2). DDPM's betas 1e-4..0.02 over
    T = 1000 steps are beta_min = 0.1, beta_max = 20. d_sigma diverges at t = 1 (sigma -> 0).
    """

    name = "vp"
    variance_preserving = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}.")
        self.beta_min, self.beta_max = beta_min, beta_max

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta at diffusion time s = 1 - t, (B,)."""
        return self.beta_min + (self.beta_max - self.beta_min) * (1 - t)

    def _coefficients(self, t):
        s = 1 - t
        integral = self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2
        alpha = torch.exp(-0.5 * integral)
        sigma = torch.sqrt(-torch.expm1(-integral))
        d_alpha = 0.5 * self.beta(t) * alpha
        d_sigma = -alpha * d_alpha / sigma.clamp_min(1e-12)
        return ScheduleOutput(alpha, sigma, d_alpha, d_sigma)

    def _time_at_log_snr(self, log_snr):
        # lambda = -log(e^I - 1) gives I = softplus(-lambda); beyond I(s = 1) the target is below the range
        integral = torch.logaddexp(torch.zeros_like(log_snr), -log_snr)
        top = self.beta_min + 0.5 * (self.beta_max - self.beta_min)
        # the root s of beta_min s + (beta_max - beta_min) s^2 / 2 = I, written without cancellation
        root = torch.sqrt(self.beta_min**2 + 2 * (self.beta_max - self.beta_min) * integral.clamp(max=top))
        return torch.where(integral < top, 1 - 2 * integral / (self.beta_min + root), 0.0)


class VESchedule(Schedule):
    """Variance exploding path: alpha = 1, sigma = sigma_max (sigma_min / sigma_max) ** t.

    Unlike the others, alpha(0) = 1: 'noise' at t = 0 is the data plus noise of std sigma_max,
    which must dwarf the data's spread.
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def _coefficients(self, t):
        sigma = self.sigma_max * (self.sigma_min / self.sigma_max) ** t
        one = torch.ones_like(t)
        return ScheduleOutput(one, sigma, 0 * t, sigma * math.log(self.sigma_min / self.sigma_max))

    def _time_at_log_snr(self, log_snr):
        # lambda = -2 log sigma_max + 2 t log(sigma_max / sigma_min), linear in t
        return (0.5 * log_snr + math.log(self.sigma_max)) / math.log(self.sigma_max / self.sigma_min)


SCHEDULES = {cls.name: cls for cls in (LinearSchedule, CosineSchedule, VPSchedule, VESchedule)}


def make_schedule(name: str, **params) -> Schedule:
    """Build a schedule by name: 'linear', 'cosine', 'vp' or 've', with its keyword parameters."""
    return SCHEDULES[choose(name, SCHEDULES, "schedule")](**params)


class RescaledSchedule(Schedule):
    """alpha' = c(t) alpha, sigma' = c(t) sigma: the same log-SNR as ``base``, x_t scaled by c(t).

    ``scale(t) -> (c, dc/dt)``, each (B,); by default c = 1 / sqrt(alpha^2 + sigma^2), the
    variance-preserving version of the base schedule (c = 1 at both ends of linear and cosine).
    """

    name = "rescaled"

    def __init__(self, base: Schedule, scale=None):
        if not isinstance(base, Schedule):
            raise ValueError(f"base must be a Schedule, got {type(base).__name__}.")
        self.base, self.scale = base, scale

    @property
    def variance_preserving(self) -> bool:
        """The default c = 1 / sqrt(alpha^2 + sigma^2) makes any base variance preserving."""
        return self.scale is None

    def _coefficients(self, t):
        b = self.base(t)
        if self.scale is None:  # c = (a^2 + s^2)^(-1/2), dc = -(a da + s ds) c^3
            c = torch.rsqrt(b.alpha**2 + b.sigma**2)
            dc = -(b.alpha * b.d_alpha + b.sigma * b.d_sigma) * c**3
        else:
            c, dc = self.scale(t)
        return ScheduleOutput(
            c * b.alpha, c * b.sigma, dc * b.alpha + c * b.d_alpha, dc * b.sigma + c * b.d_sigma
        )

    def _time_at_log_snr(self, log_snr):
        return self.base.time_at_log_snr(log_snr)  # rescaling keeps the log-SNR


class TruncatedSchedule(Schedule):
    """The base schedule run on [t_start, t_end] only, stretched to [0, 1]: t -> t_start + (t_end - t_start) t."""

    name = "truncated"

    def __init__(self, base: Schedule, t_start: float = 0.0, t_end: float = 1.0):
        if not isinstance(base, Schedule):
            raise ValueError(f"base must be a Schedule, got {type(base).__name__}.")
        if not 0.0 <= t_start < t_end <= 1.0:
            raise ValueError(f"need 0 <= t_start < t_end <= 1, got t_start={t_start}, t_end={t_end}.")
        self.base, self.t_start, self.t_end = base, t_start, t_end

    @property
    def variance_preserving(self) -> bool:
        return self.base.variance_preserving

    def _coefficients(self, t):
        span = self.t_end - self.t_start
        b = self.base((self.t_start + span * t).clamp(0.0, 1.0))
        return ScheduleOutput(b.alpha, b.sigma, span * b.d_alpha, span * b.d_sigma)

    def _time_at_log_snr(self, log_snr):
        # outside [t_start, t_end] the base time maps below 0 or above 1, which the caller clamps
        return (self.base.time_at_log_snr(log_snr) - self.t_start) / (self.t_end - self.t_start)


def log_snr_bisection(schedule: Schedule, log_snr: torch.Tensor, iters: int = 60) -> torch.Tensor:
    """The time t (B,) where schedule.log_snr(t) = log_snr (B,), by bisection (log-SNR increases with t).

    The fallback of Schedule.time_at_log_snr for schedules with no closed-form inverse, and the
    reference its closed forms are tested against. Below the range t = 0, above it t = 1.
    """
    if not isinstance(log_snr, torch.Tensor) or log_snr.ndim != 1:
        raise ValueError("log_snr must be a tensor of shape (B,): one log-SNR per sample.")
    check_positive_int(iters, "the number of bisection steps")
    target = log_snr.double()
    lo, hi = torch.zeros_like(target), torch.ones_like(target)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = schedule.log_snr(mid.to(log_snr.dtype)).double() < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    t = 0.5 * (lo + hi)
    t = torch.where(target == -math.inf, 0.0, torch.where(target == math.inf, 1.0, t))
    return t.to(log_snr.dtype)
