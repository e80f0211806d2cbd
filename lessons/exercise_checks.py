"""What a checked exercise reports, and how a check compares a learner's answer with the reference.

A check runs the learner's function and the library on the same random inputs (lessons.exercises_NN), then
``_judge`` (deterministic answers: a relative error against a tolerance) or ``_z_judge`` (random answers: a
distance in standard errors) words the verdict. When the answer is off, each common slip is computed on the
same inputs too; the first one the answer matches names the mistake and gives its hint.
"""

import math
import numbers
from dataclasses import dataclass

import torch

STATUSES = ("passed", "not done yet", "not right yet")


@dataclass
class Feedback:
    """What a check found: the exercise, its status (one of STATUSES) and the words it prints."""

    exercise: str
    status: str
    text: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(
                f"a Feedback's status is one of {', '.join(map(repr, STATUSES))}, got {self.status!r}."
            )

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.text


class _WrongKind(Exception):
    """The answer returned something of the wrong kind (a shape, a type): the message says so in words."""


# --- comparing an answer with the reference, and naming the slip it matches --------------------------------


def _tensor(value, shape, what: str) -> torch.Tensor:
    """value as a detached float64 tensor of the given shape, or _WrongKind in words."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = torch.tensor(float(value), dtype=torch.float64)
    if not isinstance(value, torch.Tensor):
        raise _WrongKind(
            f"{what} should be a torch tensor of shape {tuple(shape)}, got {type(value).__name__}."
        )
    if tuple(value.shape) != tuple(shape):
        raise _WrongKind(f"{what} has shape {tuple(value.shape)}; it should have shape {tuple(shape)}.")
    return value.detach().to(torch.float64)


def _gap(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest |got - want| relative to the largest |want| (NaN counts as infinitely off)."""
    err = (got - want).abs().max().item()
    return math.inf if math.isnan(err) else err / max(want.abs().max().item(), 1e-12)


def _judge(name: str, against: str, cases: dict, tol: float, hints: dict, wrong: dict, hint: str) -> Feedback:
    """Passed when every gap <= tol. cases: case -> (got, want); hints: slip -> its hint, in the order tried;
    wrong: case -> slip -> what that slip returns; hint: the general hint, when the answer matches no slip."""
    gaps = {case: _gap(got, want) for case, (got, want) in cases.items()}
    worst = max(gaps.values())
    if worst <= tol:
        return Feedback(
            name,
            "passed",
            f"{name}: right. {against}: largest relative error {worst:.1e} (allowed {tol:.0e}).",
        )
    right = [case for case, gap in gaps.items() if gap <= tol]
    if right:
        off = "; ".join(f"{case}: relative error {gap:.2g}" for case, gap in gaps.items() if gap > tol)
        text = f"{name}: not right yet. {against}: right on {', '.join(right)}; off on {off}."
    else:
        text = f"{name}: not right yet. {against}: off on every case, by up to {worst:.2g} (relative error)."
    for slip, slip_hint in hints.items():
        if all(_gap(cases[case][0], wrong[case][slip]) <= tol for case in cases if gaps[case] > tol):
            return Feedback(
                name, "not right yet", f"{text} It matches a common slip, {slip}. Hint: {slip_hint}"
            )
    return Feedback(name, "not right yet", f"{text} Hint: {hint}")


def _z_judge(
    name: str, against: str, z: float, limit: float, hints: dict, slip_z: dict, hint: str
) -> Feedback:
    """A random answer: z = |answer - reference| in standard errors; hints: slip -> its hint, in the order tried;
    slip_z: slip -> the answer's z against what that slip returns; hint: the general hint."""
    if z <= limit:
        return Feedback(
            name, "passed", f"{name}: right. {against}: within {z:.2f} standard errors (allowed {limit})."
        )
    text = f"{name}: not right yet. {against}: {z:.1f} standard errors away (allowed {limit})."
    for slip, slip_hint in hints.items():
        if slip_z[slip] <= limit:
            return Feedback(
                name, "not right yet", f"{text} It matches a common slip, {slip}. Hint: {slip_hint}"
            )
    return Feedback(name, "not right yet", f"{text} Hint: {hint}")


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
