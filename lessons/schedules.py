"""Noise schedules: x_t = alpha(t) * data + sigma(t) * noise, with t = 0 noise and t = 1 data.

Each schedule returns alpha, sigma and their time derivatives; log-SNR is 2 log(alpha / sigma).
"""

import math
from dataclasses import dataclass

import torch

from lessons.checks import check_positive_int, check_time, choose


@dataclass
class ScheduleOutput:
    """alpha(t), sigma(t), d alpha / dt, d sigma / dt, each (B,) (or broadcast to a state's shape)."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor

    def expand_like(self, x: torch.Tensor) -> "ScheduleOutput":
        """Reshape every (B,) field to (B, 1, ..., 1) so it broadcasts against x of shape (B, ...)."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        return ScheduleOutput(*(v.reshape(shape) for v in (self.alpha, self.sigma, self.d_alpha, self.d_sigma)))


class Schedule:
    """Base class: subclasses implement ``_coefficients(t)``; calling checks t first."""

    name = "schedule"

    def __call__(self, t: torch.Tensor) -> ScheduleOutput:
        return self._coefficients(check_time(t))

    def _coefficients(self, t: torch.Tensor) -> ScheduleOutput:
        raise NotImplementedError

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2), (B,); increases from noise (t=0) to data (t=1)."""
        out = self(t)
        return 2 * (torch.log(out.alpha) - torch.log(out.sigma))

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


class CosineSchedule(Schedule):
    """Variance preserving cosine path: alpha = sin(pi t / 2), sigma = cos(pi t / 2)."""

    name = "cosine"

    def _coefficients(self, t):
        a, s = torch.sin(0.5 * math.pi * t), torch.cos(0.5 * math.pi * t)
        return ScheduleOutput(a, s, 0.5 * math.pi * s, -0.5 * math.pi * a)


class VPSchedule(Schedule):
    """Variance preserving path of DDPM's linear betas in continuous time (Song et al.).

    With s = 1 - t (diffusion time), beta(s) = beta_min + (beta_max - beta_min) s,
    alpha = exp(-0.5 * int_0^s beta), sigma = sqrt(1 - alpha^2). DDPM's betas 1e-4..0.02 over
    T = 1000 steps are beta_min = 0.1, beta_max = 20. d_sigma diverges at t = 1 (sigma -> 0).
    """

    name = "vp"

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


SCHEDULES = {cls.name: cls for cls in (LinearSchedule, CosineSchedule, VPSchedule, VESchedule)}


def make_schedule(name: str, **params) -> Schedule:
    """Build a schedule by name: 'linear', 'cosine', 'vp' or 've', with its keyword parameters."""
    return SCHEDULES[choose(name, SCHEDULES, "schedule")](**params)


def ddpm_step_to_t(k, num_steps: int) -> torch.Tensor:
    """Map DDPM's integer step k in {0, ..., T} (k = T is noise) to t = 1 - k / T (t = 0 is noise)."""
    check_positive_int(num_steps, "the number of DDPM steps T")
    k = torch.as_tensor(k)
    if k.is_floating_point() or (k < 0).any() or (k > num_steps).any():
        raise ValueError(f"DDPM steps must be whole numbers in 0..{num_steps}, got {k.tolist()}.")
    return 1.0 - k.float() / num_steps
