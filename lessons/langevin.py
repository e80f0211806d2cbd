"""Langevin dynamics: sampling a law from its score alone; annealed Langevin and predictor-corrector sampling.

Unadjusted Langevin (ULA): x <- x + h score(x) + sqrt(2 h) z, the Euler-Maruyama step of dX = score(X) ds + sqrt(2) dW,
whose stationary law is p itself; the chain's own stationary law is off by a bias of order h.
Annealed Langevin (Song & Ermon 2019): Langevin steps on p_t at times of rising t (falling noise), each level
starting where the last one ended. Predictor-corrector (Song et al. 2021): on each step [t, s] of the grid, Langevin
corrector steps on p_t, then one reverse-SDE predictor step t -> s (lessons.sde.reverse_sde).
The step size on p_t follows Song et al.'s signal-to-noise rule h = 2 (r ||z|| / ||score||)^2, norms averaged
over the batch: r (snr) sets how far one step moves against the noise it adds.
"""

import math

import torch

from lessons.checks import (
    check_callable,
    check_finite_step,
    check_generator,
    check_grid,
    check_instance,
    check_model_output,
    check_number,
    check_positive_int,
    check_start,
    check_tensor,
    choose,
)
from lessons.conversions import PREDICTIONS
from lessons.euler_maruyama import euler_maruyama
from lessons.schedules import Schedule
from lessons.sde import _times, reverse_sde, score
from lessons.solvers import walk_grid
from lessons.tensors import normal_like, time_like
from lessons.trajectory import Trajectory

SCHEDULE_EXAMPLE = "VPSchedule() or VESchedule()"


def langevin(
    score_fn,
    x_start: torch.Tensor,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
    keep_path: bool = True,
) -> Trajectory:
    """ULA on a fixed law: x <- x + h score_fn(x) + sqrt(2 h) z, ``steps`` times; xs (steps+1, B, ...) (or 2 states).

    score_fn(x) -> grad log p(x), shaped like x (for a mixture: mixture.score). nfe = steps.
    """
    check_callable(score_fn, "score_fn", "a function x -> grad log p(x), such as mixture.score")
    return euler_maruyama(
        score_fn, x_start, step_size, steps, math.sqrt(2.0), generator, keep_path, "Langevin"
    )


def snr_step_size(score_value: torch.Tensor, noise: torch.Tensor, snr: float) -> float:
    """h = 2 (snr * mean ||noise|| / mean ||score||)^2 for score and noise (B, ...): Song et al.'s corrector step."""
    check_tensor(score_value, "score_value")
    check_tensor(noise, "noise")
    if score_value.shape != noise.shape:
        raise ValueError(
            f"score_value and noise must have one shape, got {tuple(score_value.shape)} and {tuple(noise.shape)}."
        )
    snr = check_number(snr, "snr (the signal-to-noise ratio r)", low=0.0, low_open=True)
    score_norm = score_value.flatten(1).norm(dim=1).mean().item()
    noise_norm = noise.flatten(1).norm(dim=1).mean().item()
    if not score_norm > 0:
        raise ValueError(
            "the score is 0 (or not finite) at every sample, so the signal-to-noise rule has no scale: "
            "the chains sit at a mode, or the model returned zeros; give a fixed step size instead."
        )
    return 2 * (snr * noise_norm / score_norm) ** 2


def _corrector(model, schedule, x, t: float, snr, steps, prediction, cond, generator):
    """``steps`` Langevin steps on p_t with the signal-to-noise step size, (B, ...)."""
    t_vec = time_like(t, x)
    for k in range(1, steps + 1):
        s = check_model_output(score(model, schedule, x, t_vec, prediction, cond), x, "the model's score")
        check_finite_step(s, k, t, "the score of a Langevin step")
        z = normal_like(x, generator)
        h = snr_step_size(s, z, snr)
        x = x + h * s + math.sqrt(2 * h) * z
    return x


def _check_langevin_sampler(model, x_start, schedule, ts, steps, snr, prediction, generator, first):
    """The checks of the two samplers below, before any model call; refuse sigma = 0 where the score is needed."""
    check_start(model, x_start, "x_start")
    check_instance(schedule, Schedule, "schedule", SCHEDULE_EXAMPLE)
    check_grid(ts)
    check_positive_int(steps, "the number of Langevin steps")
    check_number(snr, "snr (the signal-to-noise ratio r)", low=0.0, low_open=True)
    choose(prediction, PREDICTIONS, "prediction type")
    check_generator(generator)
    where = ts[1:] if not first else ts[:-1]
    sigma = schedule(where.to(x_start.dtype)).sigma
    if (sigma <= 0).any():
        raise ValueError(
            f"Langevin steps need the score of p_t, undefined where sigma = 0, here at t = {_times(where, sigma <= 0)}; "
            "stop the grid short of the data end, e.g. at 1 - 1e-3."
        )


@torch.no_grad()
def annealed_langevin(
    model,
    x_start: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    steps_per_level: int = 10,
    snr: float = 0.16,
    prediction: str = "eps",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """At each time of ts after the first (falling noise), steps_per_level Langevin steps on p_t; xs (len(ts), B, ...).

    x_start is the state at ts[0], spread like a draw of p_{ts[0]}: chains piled on one point where the score is
    small get a huge signal-to-noise step. The score comes from the model's prediction (lessons.sde.score);
    nfe = steps_per_level per level.
    """
    _check_langevin_sampler(model, x_start, schedule, ts, steps_per_level, snr, prediction, generator, False)

    def advance(x, t, s):
        return _corrector(model, schedule, x, s, snr, steps_per_level, prediction, cond, generator)

    return walk_grid(advance, x_start, ts, steps_per_level, what="annealed Langevin", progress=progress)


@torch.no_grad()
def predictor_corrector(
    model,
    noise: torch.Tensor,
    schedule: Schedule,
    ts: torch.Tensor,
    corrector_steps: int = 1,
    snr: float = 0.16,
    prediction: str = "eps",
    cond=None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> Trajectory:
    """On each step [t, s]: corrector_steps Langevin steps on p_t, then a reverse-SDE step t -> s; xs (len(ts), B, ...).

    The predictor is lessons.sde.reverse_sde's Euler-Maruyama step, so corrector_steps = 0 would be reverse_sde
    itself (use it directly). nfe = corrector_steps + 1 per step.
    """
    _check_langevin_sampler(model, noise, schedule, ts, corrector_steps, snr, prediction, generator, True)

    def advance(x, t, s):
        x = _corrector(model, schedule, x, t, snr, corrector_steps, prediction, cond, generator)
        pair = torch.tensor([t, s], dtype=x.dtype)
        return reverse_sde(model, x, schedule, pair, prediction, cond, generator, progress=False).final

    return walk_grid(advance, noise, ts, corrector_steps + 1, what="predictor-corrector", progress=progress)
