"""Conversions between the five things a network may predict at (x_t, t).

With x_t = alpha data + sigma noise:
  'eps'      the noise;                   'data'   the clean data (x-prediction);
  'v'        alpha noise - sigma data;    'velocity'  d_alpha data + d_sigma noise (u, flow matching);
  'score'    grad log p_t(x_t) = -noise / sigma.
Each prediction determines the pair (data, noise) given x_t, so any one converts into any other.
"""

import torch

from lessons.checks import check_same_shape, choose
from lessons.schedules import ScheduleOutput

PREDICTIONS = ("eps", "data", "v", "velocity", "score")


def to_data_and_noise(pred: torch.Tensor, kind: str, x_t: torch.Tensor, coef: ScheduleOutput):
    """Solve for (data, noise), each (B, ...), from a prediction of the given kind at x_t."""
    choose(kind, PREDICTIONS, "prediction type")
    check_same_shape(pred, x_t, "the prediction", "x_t")
    c = coef.expand_like(x_t)
    if kind in ("eps", "score"):
        noise = pred if kind == "eps" else -c.sigma * pred
        return (x_t - c.sigma * noise) / c.alpha, noise
    if kind == "data":
        return pred, (x_t - c.alpha * pred) / c.sigma
    if kind == "v":  # [alpha sigma; -sigma alpha] [data; noise] = [x_t; v]
        det = c.alpha**2 + c.sigma**2
        return (c.alpha * x_t - c.sigma * pred) / det, (c.sigma * x_t + c.alpha * pred) / det
    det = c.alpha * c.d_sigma - c.sigma * c.d_alpha  # [alpha sigma; d_alpha d_sigma]
    return (c.d_sigma * x_t - c.sigma * pred) / det, (c.alpha * pred - c.d_alpha * x_t) / det


def from_data_and_noise(data: torch.Tensor, noise: torch.Tensor, kind: str, coef: ScheduleOutput) -> torch.Tensor:
    """The prediction of the given kind, (B, ...), that corresponds to (data, noise)."""
    choose(kind, PREDICTIONS, "prediction type")
    c = coef.expand_like(data)
    return {
        "eps": lambda: noise,
        "data": lambda: data,
        "v": lambda: c.alpha * noise - c.sigma * data,
        "velocity": lambda: c.d_alpha * data + c.d_sigma * noise,
        "score": lambda: -noise / c.sigma,
    }[kind]()


def convert(pred: torch.Tensor, source: str, target: str, x_t: torch.Tensor, coef: ScheduleOutput) -> torch.Tensor:
    """Convert a prediction of kind ``source`` at x_t into kind ``target``, (B, ...)."""
    data, noise = to_data_and_noise(pred, source, x_t, coef)
    return from_data_and_noise(data, noise, target, coef)
