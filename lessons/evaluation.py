"""Judging results: the data-vs-data band of a metric, and the NFE at which a quality-vs-NFE curve crosses a target.

A metric between two finite samples of the *same* law is not zero: chance alone moves it. Its band over
independent pairs of draws of the target is the yardstick for "as close as the data is to itself".
A quality-vs-NFE curve is read off where it first crosses a target error, interpolating between grid points
linearly in log NFE and log error (where such curves are nearly straight).
"""

import math

import torch

from lessons.checks import check_positive_int


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
    seeds = range(first_seed, first_seed + 2 * repeats, 2)
    return torch.tensor([float(metric(draw(seed), draw(seed + 1))) for seed in seeds])


def nfe_to_reach(nfes, errors, target: float) -> float:
    """The NFE at which the error curve errors(nfes) first falls to target or below, interpolated in log-log.

    nfes positive, one error each, read in the order given (increasing NFE, or decreasing tolerance for an
    adaptive solver, whose NFEs need not be monotone). Returns nfes[0] when the first error already reaches the
    target, inf when none does, and the NFE of the first point that reaches it when the point before has no
    finite error (a solver that diverged there).
    """
    nfes, errors = [float(n) for n in nfes], [float(e) for e in errors]
    if len(nfes) != len(errors) or not nfes:
        raise ValueError(f"give one error per NFE, got {len(nfes)} NFEs and {len(errors)} errors.")
    if min(nfes) <= 0:
        raise ValueError(f"the NFEs must be positive (they are read on a log scale), got {nfes}.")
    if not target > 0:
        raise ValueError(f"the target error must be positive (errors are read on a log scale), got {target}.")
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
