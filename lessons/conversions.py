"""Conversions between the five things a network may predict at (x_t, t).

With x_t = alpha data + sigma noise:
  'eps'      the noise;                   'data'   the clean data (x-prediction);
  'v'        alpha noise - sigma data;    'velocity'  d_alpha data + d_sigma noise (u, flow matching);
  'score'    grad log p_t(x_t) = -noise / sigma.
Each prediction determines the pair (data, noise) given x_t, so any one converts into any other.
"""

import torch

from lessons.checks import check_same_shape, check_time, choose
from lessons.schedules import Schedule, ScheduleOutput
from lessons.tensors import expand_like

PREDICTIONS = ("eps", "data", "v", "velocity", "score")


def to_data_and_noise(pred: torch.Tensor, kind: str, x_t: torch.Tensor, coef: ScheduleOutput):
    """Solve for (data, noise), each (B, ...), from a prediction of the given kind at x_t."""
    choose(kind, PREDICTIONS, "prediction type")
    check_same_shape(pred, x_t, "the prediction", "x_t")
    c = coef.expand_like(x_t)
    if kind in ("eps", "score"):
        if (c.alpha == 0).any():
            raise ValueError(
                f"a {kind} prediction says nothing about the data where alpha(t) = 0 (pure noise, t = 0 on "
                "this schedule): start the time grid a little after 0, or use a 'data' or 'velocity' prediction."
            )
        noise = pred if kind == "eps" else -c.sigma * pred
        return (x_t - c.sigma * noise) / c.alpha, noise
    if kind == "data":
        return pred, (x_t - c.alpha * pred) / c.sigma
    if kind == "v":  # [alpha sigma; -sigma alpha] [data; noise] = [x_t; v]
        det = c.alpha**2 + c.sigma**2
        return (c.alpha * x_t - c.sigma * pred) / det, (c.sigma * x_t + c.alpha * pred) / det
    det = c.alpha * c.d_sigma - c.sigma * c.d_alpha  # [alpha sigma; d_alpha d_sigma]
    return (c.d_sigma * x_t - c.sigma * pred) / det, (c.alpha * pred - c.d_alpha * x_t) / det


def from_data_and_noise(
    data: torch.Tensor, noise: torch.Tensor, kind: str, coef: ScheduleOutput
) -> torch.Tensor:
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


def convert(
    pred: torch.Tensor, source: str, target: str, x_t: torch.Tensor, coef: ScheduleOutput
) -> torch.Tensor:
    """Convert a prediction of kind ``source`` at x_t into kind ``target``, (B, ...)."""
    data, noise = to_data_and_noise(pred, source, x_t, coef)
    return from_data_and_noise(data, noise, target, coef)


def change_schedule(
    model, source: Schedule, target: Schedule, prediction: str = "eps", output: str | None = None
):
    """Use on ``target`` a model made for ``source``: the change of variables between two schedules.

    At (x, t) on target: t' has the same log-SNR on source, x' = k x with k = (alpha' + sigma') / (alpha + sigma)
    (so alpha' = k alpha, sigma' = k sigma); the model's (data, noise) at (x', t') is returned as kind ``output``.
    Where the source's log-SNR range does not reach the target's, the nearest end of the source is used.
    """
    choose(prediction, PREDICTIONS, "prediction type")
    output = choose(prediction if output is None else output, PREDICTIONS, "prediction type")

    def changed(x, t, cond=None):
        c = target(check_time(t, batch=x.shape[0]))
        t_src = source.time_at_log_snr(c.log_snr())  # closed form on every library schedule
        c_src = source(t_src)
        k = expand_like((c_src.alpha + c_src.sigma) / (c.alpha + c.sigma), x)
        data, noise = to_data_and_noise(model(x=k * x, t=t_src, cond=cond), prediction, k * x, c_src)
        return from_data_and_noise(data, noise, output, c)

    return changed
