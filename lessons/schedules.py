"""Noise schedules: x_t = alpha(t) * data + sigma(t) * noise, with t = 0 noise and t = 1 data.

Each schedule returns alpha, sigma and their time derivatives; log-SNR is 2 log(alpha / sigma).
"""

import inspect
import math
from dataclasses import dataclass

import torch

from lessons.checks import check_instance, check_number, check_positive_int, check_time, choose
from lessons.tensors import expand_like

# VP's largest beta: far above DDPM's 20, alpha = exp(-int beta / 2) underflows to 0 on almost the whole path
MAX_RATE = 1e6
MAX_BISECTION_STEPS = 200  # 60 halvings of [0, 1] already reach float64's resolution


@dataclass
class ScheduleOutput:
    """alpha(t), sigma(t), d alpha / dt, d sigma / dt, each (B,) (or broadcast to a state's shape)."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor

    def __post_init__(self):
        for name in ("alpha", "sigma", "d_alpha", "d_sigma"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"ScheduleOutput.{name} must be a torch tensor (one value per time), got {type(value).__name__}."
                )
            if value.shape != self.alpha.shape:
                raise ValueError(
                    f"ScheduleOutput's fields must share one shape (one value per time); alpha has shape "
                    f"{tuple(self.alpha.shape)} but {name} has {tuple(value.shape)}."
                )

    def expand_like(self, x: torch.Tensor) -> "ScheduleOutput":
        """Reshape every (B,) field to (B, 1, ..., 1) so it broadcasts against x of shape (B, ...)."""
        return ScheduleOutput(
            *(expand_like(v, x) for v in (self.alpha, self.sigma, self.d_alpha, self.d_sigma))
        )

    def log_snr(self) -> torch.Tensor:
        """lambda = log(alpha^2 / sigma^2), the shape of alpha.

        Exactly -inf where alpha = 0 (pure noise) and +inf where sigma = 0 (clean data): the log-SNR's true value
        at those ends, never NaN; time_at_log_snr maps -inf and +inf back to t = 0 and t = 1.
        """
        return 2 * (torch.log(self.alpha) - torch.log(self.sigma))


class Schedule:
    """Base class: subclasses implement ``_coefficients(t)``; calling checks t first."""

    name = "schedule"
    variance_preserving = False  # alpha^2 + sigma^2 = 1 at every t (VP, cosine, DDPM's discrete VP)

    def __call__(self, t: torch.Tensor) -> ScheduleOutput:
        return self._coefficients(check_time(t))

    def _coefficients(self, t: torch.Tensor) -> ScheduleOutput:
        families = ", ".join(cls.__name__ + "()" for cls in SCHEDULES.values())
        if type(self) is Schedule:
            raise TypeError(f"Schedule is the base class, not a schedule: use one of {families}.")
        raise NotImplementedError(f"{type(self).__name__} must define _coefficients(t) -> ScheduleOutput.")

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2), (B,); increases from noise (t=0) to data (t=1).

        -inf at an end where alpha = 0 and +inf where sigma = 0 (see ScheduleOutput.log_snr).
        """
        return self(t).log_snr()

    def time_at_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """The time t (B,) where log_snr(t) = log_snr (B,), in log_snr's dtype.

        Targets below the schedule's range give t = 0, above it t = 1 (-inf and +inf included); NaN is refused.
        """
        target = _check_log_snr(log_snr).double()
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
        self.sigma_min = check_number(
            sigma_min, "sigma_min (the noise std left at t = 1)", low=0.0, high=1.0, high_open=True
        )

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
    With s > 0 the true d_sigma is -infinite at t = 1 (sigma -> 0); it is returned there as the large finite
    -alpha d_alpha / 1e-12, so that its product with a zero noise stays 0. Where a finite limit of sigma d_sigma is
    needed, use sigma d_sigma = -alpha d_alpha (variance preserving), as sde_coefficients and ExactMixtureModel do.
    """

    name = "cosine"
    variance_preserving = True

    def __init__(self, offset: float = 0.0):
        self.offset = check_number(
            offset,
            "the cosine schedule's offset s (Nichol & Dhariwal use 0.008)",
            low=0.0,
            high=1.0,
            high_open=True,
        )

    def _theta(self, t):
        return 0.5 * math.pi * (1 - t + self.offset) / (1 + self.offset)

    def _coefficients(self, t):
        if self.offset == 0:
            # sigma = cos(pi t / 2) written as sin(pi (1 - t) / 2): exactly 0 at t = 1 in any dtype (cos(pi / 2)
            # is 6e-17 in float64 and -4e-8 in float32, a NaN log-SNR), exactly 1 at t = 0
            a, s = torch.sin(0.5 * math.pi * t), torch.sin(0.5 * math.pi * (1 - t))
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
    T = 1000 steps are beta_min = 0.1, beta_max = 20. d_sigma diverges at t = 1 (sigma -> 0): it is returned there
    as the large finite -alpha d_alpha / 1e-12, so that its product with a zero noise stays 0; where a finite limit
    of sigma d_sigma is needed, use sigma d_sigma = -alpha d_alpha, as sde_coefficients and ExactMixtureModel do.
    Both rates must lie in (0, 1e6], beta_min <= beta_max.
    """

    name = "vp"
    variance_preserving = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        rate = "the noise rate at the {} end"
        beta_min = check_number(
            beta_min, f"beta_min ({rate.format('data')})", low=0.0, high=MAX_RATE, low_open=True
        )
        beta_max = check_number(
            beta_max, f"beta_max ({rate.format('noise')})", low=0.0, high=MAX_RATE, low_open=True
        )
        if beta_max < beta_min:
            raise ValueError(
                f"beta_max must be >= beta_min (beta grows from the data end, t = 1, to the noise end, t = 0); "
                f"got beta_min={beta_min:g}, beta_max={beta_max:g}."
            )
        self.beta_min, self.beta_max = beta_min, beta_max

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """beta at diffusion time s = 1 - t, (B,)."""
        check_time(t)
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
    which must dwarf the data's spread. 1e-12 <= sigma_min < sigma_max <= 1e12, so that sigma stays a normal
    float32 number at every t.
    """

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0):
        sigma_min = check_number(sigma_min, "sigma_min (the noise std at t = 1)", low=1e-12, high=1e12)
        sigma_max = check_number(sigma_max, "sigma_max (the noise std at t = 0)", low=1e-12, high=1e12)
        if not sigma_min < sigma_max:
            raise ValueError(
                f"sigma_max must be larger than sigma_min (the noise shrinks from t = 0 to t = 1); "
                f"got sigma_min={sigma_min:g}, sigma_max={sigma_max:g}."
            )
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
    if isinstance(name, Schedule):
        raise TypeError(
            f"make_schedule takes a name ({', '.join(SCHEDULES)}); {name!r} is already a schedule."
        )
    if not isinstance(name, str):
        raise TypeError(f"the schedule name must be a string, one of: {', '.join(SCHEDULES)}; got {name!r}.")
    cls = SCHEDULES[choose(name, SCHEDULES, "schedule")]
    allowed = list(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"the {name!r} schedule has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(allowed) or 'none'}."
        )
    return cls(**params)


def _check_schedule(schedule, name: str = "schedule") -> "Schedule":
    """schedule must be a Schedule object: a TypeError in words for a class, a name, a GaussianPath or another kind."""
    if not isinstance(schedule, Schedule) and isinstance(getattr(schedule, "schedule", None), Schedule):
        raise TypeError(
            f"{name} must be a Schedule, got a {type(schedule).__name__}; pass its schedule, e.g. path.schedule."
        )
    if isinstance(schedule, str) and schedule in SCHEDULES:
        raise TypeError(
            f"{name} must be a Schedule object, not the name {schedule!r}; make one with "
            f"make_schedule({schedule!r}) or {SCHEDULES[schedule].__name__}()."
        )
    return check_instance(schedule, Schedule, name, "LinearSchedule() or CosineSchedule()")


def _check_log_snr(log_snr) -> torch.Tensor:
    """log_snr must be a float tensor (B,) without NaN (-inf and +inf are the ends of every path)."""
    if not isinstance(log_snr, torch.Tensor):
        raise TypeError(f"log_snr must be a torch tensor of shape (B,), got {type(log_snr).__name__}.")
    if log_snr.ndim != 1:
        raise ValueError(
            f"log_snr must be a tensor of shape (B,): one log-SNR per sample; got shape {tuple(log_snr.shape)}."
        )
    if not torch.is_floating_point(log_snr):
        raise ValueError(
            f"log_snr must be a float tensor, got dtype {log_snr.dtype}; convert it with .double()."
        )
    if torch.isnan(log_snr).any():
        raise ValueError(
            f"log_snr holds {int(torch.isnan(log_snr).sum())} NaN value(s); a log-SNR is a number, or -inf (pure "
            "noise) or +inf (clean data)."
        )
    return log_snr


class RescaledSchedule(Schedule):
    """alpha' = c(t) alpha, sigma' = c(t) sigma: the same log-SNR as ``base``, x_t scaled by c(t).

    ``scale(t) -> (c, dc/dt)``, each (B,); by default c = 1 / sqrt(alpha^2 + sigma^2), the
    variance-preserving version of the base schedule (c = 1 at both ends of linear and cosine).
    """

    name = "rescaled"

    def __init__(self, base: Schedule, scale=None):
        _check_schedule(base, "base")
        if scale is not None and not callable(scale):
            raise TypeError(
                f"scale must be None or a function t -> (c, dc/dt), such as lambda t: (1 + t * (1 - t), 1 - 2 * t); "
                f"got {type(scale).__name__}."
            )
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
            c, dc = self._scale(t)
        return ScheduleOutput(
            c * b.alpha, c * b.sigma, dc * b.alpha + c * b.d_alpha, dc * b.sigma + c * b.d_sigma
        )

    def _scale(self, t):
        """c(t) and dc/dt from the user's scale, each (B,): c positive and both finite, or a ValueError in words."""
        out = self.scale(t)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(f"scale(t) must return a pair (c, dc/dt), got {type(out).__name__}.")
        c, dc = (torch.as_tensor(v, dtype=t.dtype, device=t.device) for v in out)
        if c.shape not in ((), (1,), t.shape) or dc.shape not in ((), (1,), t.shape):
            raise ValueError(
                f"scale(t) must return c and dc/dt of shape {tuple(t.shape)}, one value per time (or single "
                f"numbers); got shapes {tuple(c.shape)} and {tuple(dc.shape)}."
            )
        c, dc = c.expand(t.shape), dc.expand(t.shape)
        if not (torch.isfinite(c).all() and torch.isfinite(dc).all() and (c > 0).all()):
            raise ValueError(
                "scale(t) must return a positive, finite c(t) and a finite dc/dt at every t (c multiplies both "
                f"alpha and sigma); got c in [{c.min().item():.4g}, {c.max().item():.4g}]."
            )
        return c, dc

    def _time_at_log_snr(self, log_snr):
        return self.base.time_at_log_snr(log_snr)  # rescaling keeps the log-SNR


class TruncatedSchedule(Schedule):
    """The base schedule run on [t_start, t_end] only, stretched to [0, 1]: t -> t_start + (t_end - t_start) t."""

    name = "truncated"

    def __init__(self, base: Schedule, t_start: float = 0.0, t_end: float = 1.0):
        _check_schedule(base, "base")
        t_start = check_number(t_start, "t_start", low=0.0, high=1.0)
        t_end = check_number(t_end, "t_end", low=0.0, high=1.0)
        if not t_start < t_end:
            raise ValueError(
                f"t_start must be smaller than t_end (the kept piece [t_start, t_end] of the base schedule); "
                f"got t_start={t_start:g}, t_end={t_end:g}."
            )
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
    reference its closed forms are tested against. Below the range t = 0, above it t = 1; NaN is refused.
    """
    _check_schedule(schedule)
    _check_log_snr(log_snr)
    check_positive_int(iters, "the number of bisection steps iters")
    if iters > MAX_BISECTION_STEPS:
        raise ValueError(
            f"iters must be at most {MAX_BISECTION_STEPS}, got {iters}: 60 halvings of [0, 1] already reach "
            "float64's resolution, more only repeat work."
        )
    target = log_snr.double()
    lo, hi = torch.zeros_like(target), torch.ones_like(target)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = schedule.log_snr(mid.to(log_snr.dtype)).double() < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    t = 0.5 * (lo + hi)
    t = torch.where(target == -math.inf, 0.0, torch.where(target == math.inf, 1.0, t))
    return t.to(log_snr.dtype)
