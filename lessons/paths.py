"""Gaussian probability paths: x_t = alpha(t) data + sigma(t) noise and their velocity targets."""

from dataclasses import dataclass

import torch

from lessons.checks import check_same_shape, check_time
from lessons.schedules import Schedule


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
        self.schedule = schedule

    def sample(self, noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> PathSample:
        """x_t = alpha data + sigma noise; velocity = d_alpha data + d_sigma noise."""
        check_same_shape(noise, data, "noise", "data")
        check_time(t, batch=data.shape[0])
        c = self.schedule(t).expand_like(data)
        x_t = c.alpha * data + c.sigma * noise
        return PathSample(t, noise, data, x_t, c.d_alpha * data + c.d_sigma * noise)

    def __repr__(self) -> str:
        return f"GaussianPath({self.schedule!r})"
