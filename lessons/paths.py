"""Gaussian probability paths: x_t = alpha(t) data + sigma(t) noise and their velocity targets."""

from dataclasses import dataclass

import torch

from lessons.checks import check_finite, check_same_shape, check_tensor, check_time
from lessons.schedules import Schedule, _check_schedule


@dataclass
class PathSample:
    """A point on the conditional path: t (B,), noise, data, x_t and velocity d x_t / dt, each (B, ...)."""

    t: torch.Tensor
    noise: torch.Tensor
    data: torch.Tensor
    x_t: torch.Tensor
    velocity: torch.Tensor


class GaussianPath:
    """The path of a schedule; ``sample`` gives x_t and the conditional velocity target u_t(x_t | data)."""

    def __init__(self, schedule: Schedule):
        self.schedule = _check_schedule(schedule)

    def sample(self, noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> PathSample:
        """x_t = alpha data + sigma noise; velocity = d_alpha data + d_sigma noise.

        noise and data: finite float tensors (B, ...) of one shape, on one device; t (B,) in [0, 1].
        Refused where the velocity target is infinite: sigma = 0 on a variance-preserving schedule whose
        d_sigma = -alpha d_alpha / sigma diverges there (VP's t = 1; plain cosine's d_sigma stays finite).
        """
        check_tensor(noise, "noise", min_batch=0)
        check_tensor(data, "data", min_batch=0)
        check_same_shape(noise, data, "noise", "data")
        check_time(t, batch=data.shape[0])
        for name, value in (("noise", noise), ("t", t)):
            if value.device != data.device:
                raise ValueError(
                    f"{name} is on {value.device} but data is on {data.device}; move it, e.g. "
                    f"{name}.to(data.device)."
                )
        check_finite(noise, "noise")
        check_finite(data, "data")
        coef = self.schedule(t)
        if self.schedule.variance_preserving:
            unbounded = (coef.sigma == 0) & (coef.alpha * coef.d_alpha != 0)
            if bool(unbounded.any()):
                raise ValueError(
                    f"the velocity target d_alpha data + d_sigma noise is infinite at t = "
                    f"{t[unbounded][0].item():.4g} on {self.schedule!r}: sigma(t) = 0 there while d sigma / dt "
                    "diverges; draw times in [0, 1), e.g. t = torch.rand(B)."
                )
        c = coef.expand_like(data)
        x_t = c.alpha * data + c.sigma * noise
        return PathSample(t, noise, data, x_t, c.d_alpha * data + c.d_sigma * noise)

    def __repr__(self) -> str:
        return f"GaussianPath({self.schedule!r})"
