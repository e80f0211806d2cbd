"""Judging results: the data-vs-data band of a metric, and the NFE at which a quality-vs-NFE curve crosses a target.

A metric between two finite samples of the *same* law is not zero: chance alone moves it. Its band over
independent pairs of draws of the target is the yardstick for "as close as the data is to itself".
A quality-vs-NFE curve is read off where it first crosses a target error, interpolating between grid points
linearly in log NFE and log error (where such curves are nearly straight).
"""

import math

import torch

from lessons.checks import check_memory, check_nonnegative_int, check_number, check_positive_int


def data_band(metric, draw, repeats: int = 20, first_seed: int = 0) -> torch.Tensor:
    """metric(draw(first_seed + 2 i), draw(first_seed + 2 i + 1)) for i < repeats, (repeats,).

    draw(seed) returns one sample of the law (the same seed, the same sample); metric(a, b) returns a number.
    The values are what chance alone gives between two independent samples of one law: a tolerance is read
    from them (twice their largest value, or their mean plus a few standard deviations).
    """
    if not callable(metric) or not callable(draw):
        raise ValueError(
            "metric must be a function metric(a, b) -> number and draw a function draw(seed) -> sample."
        )
    check_positive_int(repeats, "the number of repeats")
    check_nonnegative_int(first_seed, "first_seed")
    check_memory(2 * 32 * repeats, f"{repeats:,} repeats")  # a Python float per value, twice over
    seeds = range(first_seed, first_seed + 2 * repeats, 2)
    return torch.tensor([_metric_value(metric(draw(seed), draw(seed + 1)), seed) for seed in seeds])


def _metric_value(value, seed: int) -> float:
    """The metric's value as a finite float, or an error naming the pair of seeds."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"metric must return one number, got {type(value).__name__} for the draws of seeds {seed} and {seed + 1}."
        )
    if not math.isfinite(value):
        raise ValueError(
            f"metric returned {value} for the draws of seeds {seed} and {seed + 1}; a band needs finite values."
        )
    return float(value)


def _numbers(values, name: str) -> list:
    """A 1-D list, tuple, array or tensor of real numbers as a list of floats."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list or 1-D tensor of numbers, got {type(values).__name__}.")
    if getattr(values, "ndim", 1) != 1:
        raise ValueError(
            f"{name} must be one-dimensional (one number per grid point), got shape {tuple(values.shape)}."
        )
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold real numbers only, got {list(values)!r}.") from None


def nfe_to_reach(nfes, errors, target: float) -> float:
    """The NFE at which the error curve errors(nfes) first falls to target or below, interpolated in log-log.

    nfes positive, one error each, read in the order given (increasing NFE, or decreasing tolerance for an
    adaptive solver, whose NFEs need not be monotone). Returns nfes[0] when the first error already reaches the
    target, inf when none does, and the NFE of the first point that reaches it when the point before has no
    finite error (a solver that diverged there: its error is inf or NaN).
    """
    nfes, errors = _numbers(nfes, "nfes"), _numbers(errors, "errors")
    if len(nfes) != len(errors) or not nfes:
        raise ValueError(f"give one error per NFE, got {len(nfes)} NFEs and {len(errors)} errors.")
    if not all(0 < n < math.inf for n in nfes):
        raise ValueError(
            f"the NFEs must be positive finite numbers (they are read on a log scale), got {nfes}."
        )
    check_number(target, "the target error", low=0, low_open=True)
    if any(e < 0 for e in errors):  # NaN compares False: it stays allowed, as a diverged point
        raise ValueError(f"the errors must be >= 0 (distances, read on a log scale), got {errors}.")
    hits = [i for i, e in enumerate(errors) if e <= target]
    if not hits:
        return math.inf
    i = hits[0]
    if i == 0:
        return nfes[0]
    if not math.isfinite(errors[i - 1]):
        return nfes[i]
    above, below = math.log(errors[i - 1]), math.log(errors[i]) if errors[i] > 0 else -math.inf
    frac = (above - math.log(target)) / (above - below)
    return math.exp(math.log(nfes[i - 1]) + frac * (math.log(nfes[i]) - math.log(nfes[i - 1])))
