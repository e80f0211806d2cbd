"""Conversions between the five things a network may predict at (x_t, t).

With x_t = alpha data + sigma noise:
  'eps'      the noise;                   'data'   the clean data (x-prediction);
  'v'        alpha noise - sigma data;    'velocity'  d_alpha data + d_sigma noise (u, flow matching);
  'score'    grad log p_t(x_t) = -noise / sigma.
Each prediction determines the pair (data, noise) given x_t, so any one converts into any other.

At the ends of a path one coefficient vanishes and some conversions divide by it. The rule everywhere: a value
that stays finite and determined is returned (e.g. an eps prediction at sigma = 0), and a conversion that would
divide by zero is refused with a ValueError naming the end (alpha = 0: pure noise, t = 0 on linear and cosine;
sigma = 0: clean data, t = 1), never answered with inf or NaN.
"""

import torch

from lessons.checks import (
    check_finite,
    check_instance,
    check_model_output,
    check_same_shape,
    check_tensor,
    check_time,
    choose,
)
from lessons.schedules import Schedule, ScheduleOutput, _check_schedule
from lessons.tensors import expand_like

PREDICTIONS = ("eps", "data", "v", "velocity", "score")


def _check_kind(kind, what: str = "prediction type") -> str:
    """kind must be one of PREDICTIONS (a TypeError for a non-string, the list of choices for a typo)."""
    if not isinstance(kind, str):
        raise TypeError(f"the {what} must be a name, one of: {', '.join(PREDICTIONS)}; got {kind!r}.")
    return choose(kind, PREDICTIONS, what)


def _check_coef(coef) -> ScheduleOutput:
    """coef must be a ScheduleOutput, the schedule evaluated at the times: schedule(t)."""
    if isinstance(coef, Schedule):
        raise TypeError(
            "coef must be the schedule's coefficients at the times, schedule(t) (a ScheduleOutput), "
            f"not the schedule {coef!r} itself."
        )
    return check_instance(coef, ScheduleOutput, "coef", "schedule(t)")


def _check_pair(a, b, name_a: str, name_b: str) -> None:
    """a and b: float tensors (B, ...) of one shape, on one device."""
    check_tensor(a, name_a, min_batch=0)
    check_tensor(b, name_b, min_batch=0)
    check_same_shape(a, b, name_a, name_b)
    if a.device != b.device:
        raise ValueError(
            f"{name_a} is on {a.device} but {name_b} is on {b.device}; move one to the other's device."
        )


def _refuse_where(zero: torch.Tensor, message: str) -> None:
    if bool(zero.any()):
        raise ValueError(message)


def to_data_and_noise(pred: torch.Tensor, kind: str, x_t: torch.Tensor, coef: ScheduleOutput):
    """Solve for (data, noise), each (B, ...), from a prediction of the given kind at x_t.

    Refused where it would divide by zero: an 'eps' or 'score' prediction where alpha = 0, a 'data' prediction
    where sigma = 0 (see the module docstring); every other end point gives finite values. x_t must be finite;
    a non-finite prediction is passed through, so that a sampler can name the step where its model returned it.
    """
    _check_kind(kind)
    _check_pair(pred, x_t, "the prediction", "x_t")
    check_finite(x_t, "x_t (the state x)")
    c = _check_coef(coef).expand_like(x_t)
    if kind in ("eps", "score"):
        _refuse_where(
            c.alpha == 0,
            f"{'an' if kind == 'eps' else 'a'} {kind} prediction says nothing about the data where alpha(t) = 0 "
            "(pure noise, t = 0 on this schedule): start the time grid a little after 0, or use a 'data' or "
            "'velocity' prediction.",
        )
        noise = pred if kind == "eps" else -c.sigma * pred
        return (x_t - c.sigma * noise) / c.alpha, noise
    if kind == "data":
        _refuse_where(
            c.sigma == 0,
            "a data prediction says nothing about the noise where sigma(t) = 0 (clean data, t = 1 on this "
            "schedule): stop the time grid a little before 1, or use an 'eps' or 'velocity' prediction.",
        )
        return pred, (x_t - c.alpha * pred) / c.sigma
    if kind == "v":  # [alpha sigma; -sigma alpha] [data; noise] = [x_t; v]
        det = c.alpha**2 + c.sigma**2
        _refuse_where(
            det == 0, "a v prediction cannot be inverted where alpha = sigma = 0 (x_t is always 0)."
        )
        return (c.alpha * x_t - c.sigma * pred) / det, (c.sigma * x_t + c.alpha * pred) / det
    det = c.alpha * c.d_sigma - c.sigma * c.d_alpha  # [alpha sigma; d_alpha d_sigma]
    _refuse_where(
        det == 0,
        "a velocity prediction does not determine (data, noise) where alpha d_sigma - sigma d_alpha = 0 "
        "(the path's log-SNR stands still there); use another prediction type or another schedule.",
    )
    return (c.d_sigma * x_t - c.sigma * pred) / det, (c.alpha * pred - c.d_alpha * x_t) / det


def from_data_and_noise(
    data: torch.Tensor, noise: torch.Tensor, kind: str, coef: ScheduleOutput
) -> torch.Tensor:
    """The prediction of the given kind, (B, ...), that corresponds to (data, noise).

    The score -noise / sigma is refused where sigma = 0 (clean data), where it is infinite. Non-finite data or
    noise (from a model's prediction) are passed through, for the sampler's per-step check to name the step.
    """
    _check_kind(kind)
    _check_pair(data, noise, "data", "noise")
    c = _check_coef(coef).expand_like(data)
    if kind == "score":
        _refuse_where(
            c.sigma == 0,
            "the score -noise / sigma is infinite where sigma(t) = 0 (clean data, t = 1 on this schedule): "
            "stop the time grid a little before 1, or ask for an 'eps', 'data' or 'velocity' prediction.",
        )
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
    _check_kind(source)
    _check_kind(target)
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
    if isinstance(model, type) or not callable(model):
        raise TypeError(
            "model must be a network (or function) called as model(x=..., t=..., cond=...), "
            f"got {model.__name__ if isinstance(model, type) else type(model).__name__}"
            f"{'; call the class to make one' if isinstance(model, type) else ''}."
        )
    _check_schedule(source, "source")
    _check_schedule(target, "target")
    _check_kind(prediction)
    output = _check_kind(prediction if output is None else output, "output prediction type")

    def changed(x, t, cond=None):
        check_tensor(x, "x")
        c = target(check_time(t, batch=x.shape[0]))
        t_src = source.time_at_log_snr(c.log_snr())  # closed form on every library schedule
        c_src = source(t_src)
        k = expand_like((c_src.alpha + c_src.sigma) / (c.alpha + c.sigma), x)
        pred = check_model_output(model(x=k * x, t=t_src, cond=cond), x)
        data, noise = to_data_and_noise(pred, prediction, k * x, c_src)
        return from_data_and_noise(data, noise, output, c)

    return changed
