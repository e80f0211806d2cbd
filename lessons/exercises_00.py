"""The check of lesson 00's exercise: a point of the straight path from noise to data, and its velocity."""

import torch

from lessons.exercise_checks import Feedback, _judge, _seeded, _tensor, _WrongKind
from lessons.paths import GaussianPath
from lessons.schedules import LinearSchedule

LESSON = "00_welcome"  # the lesson's file name, and that of its solutions file solutions/00_welcome.py


def _check_linear_path(answer) -> Feedback:
    gen = _seeded(0)
    data, noise = 2 * torch.randn(100, 2, generator=gen), torch.randn(100, 2, generator=gen)
    t = torch.cat([torch.tensor([0.0, 1.0]), torch.rand(98, generator=gen)])  # both ends, then random times
    got = answer(data.clone(), noise.clone(), t.clone())
    if not (isinstance(got, tuple | list) and len(got) == 2):
        raise _WrongKind(
            f"It returns {type(got).__name__}; return the pair (x_t, velocity), e.g. `return x_t, velocity`."
        )
    sample = GaussianPath(LinearSchedule()).sample(noise, data, t)  # the library's x_t and d x_t / dt
    cases = {
        "x_t": (_tensor(got[0], data.shape, "x_t"), sample.x_t.double()),
        "velocity": (_tensor(got[1], data.shape, "velocity"), sample.velocity.double()),
    }
    tc = t[:, None]  # (B, 1): one time per point, against its 2 coordinates
    x_t = tc * data + (1 - tc) * noise
    slips = {  # what each slip returns for (x_t, velocity); those with the right x_t are tried first
        "noise - data as the velocity": (x_t, noise - data),
        "data - x_t, the way left, as the velocity": (x_t, data - x_t),
        "the velocity data, the noise's part left out": (x_t, data),
        "t noise + (1 - t) data: t = 1 read as noise": (tc * noise + (1 - tc) * data, noise - data),
    }
    wrong = {case: {slip: pair[i] for slip, pair in slips.items()} for i, case in enumerate(cases)}
    hints = {
        "noise - data as the velocity": "generation runs from noise (t = 0) to data (t = 1): the velocity "
        "d x_t / dt points towards the data, data - noise.",
        "data - x_t, the way left, as the velocity": "data - x_t = (1 - t)(data - noise) is the way still to go, "
        "which shrinks as t grows; the speed along a straight line is the whole way per unit time, data - noise.",
        "the velocity data, the noise's part left out": "the noise's share (1 - t) changes with t too: "
        "d/dt of (1 - t) noise is -noise.",
        "t noise + (1 - t) data: t = 1 read as noise": "in this course t = 0 is noise and t = 1 is data: "
        "x_t = t data + (1 - t) noise (DDPM papers count the other way).",
    }
    return _judge(
        "linear_path",
        "At 100 points, at t = 0, t = 1 and 98 random times, against lessons.paths.GaussianPath(LinearSchedule())",
        cases,
        1e-6,
        hints,
        wrong,
        "x_t = t data + (1 - t) noise with t as a column t[:, None]; its derivative in t is data - noise.",
    )


# exercise name (the name of the lesson's stub and of its solution) -> its check
CHECKS = {"linear_path": _check_linear_path}
