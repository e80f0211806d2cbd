"""Input checks the widgets need beyond lessons.checks: bounded whole numbers, arrays to plot, callables.

Each raises before any widget is built, in a learner's words (seeds and callables are checked by lessons.checks).
"""

import numbers

import numpy as np
import torch

import lessons.checks as lessons_checks


def check_whole(value, name: str, low: int = 1, high: int | None = None, why: str = "") -> int:
    """Check that value is a whole number in [low, high] (a count, a step number, a seed); return it as an int.

    A whole float (10.0) is accepted, as ipywidgets' integer sliders accept it.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a whole number, got {type(value).__name__} {value!r}.")
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    value = int(value)
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number {span}{why}, got {value}.")
    return value


def check_array(value, name: str, ndim: int, shape: str, last: int | None = None) -> np.ndarray:
    """Check that value (a numpy array or a torch tensor) has ndim dimensions, the last of size last,
    and only finite real numbers; return it as a numpy array. shape ('(S+1, B, 2)') goes in the messages."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor of shape {shape}, got {type(value).__name__}."
        )
    if value.ndim != ndim or (last is not None and value.shape[-1] != last):
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}.")
    if value.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {value.dtype}.")
    finite = np.isfinite(value)
    if not finite.all():
        raise ValueError(
            f"{name} holds {int((~finite).sum())} NaN or infinite value(s) out of {value.size}; "
            "only finite values can be drawn."
        )
    return value


def check_callable(value, name: str, example: str) -> None:
    """Check that value is a function (not None, a string, a number, or a class); example shows a good one."""
    lessons_checks.check_callable(value, name, f"a function such as {example}")


def check_text(value, name: str, optional: bool = False) -> None:
    """Check that value is a string (or None when optional)."""
    if optional and value is None:
        return
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}.")


MAX_SAMPLES = 5_000  # each setting solves an exact transport problem (W2) between n_samples points


def check_explorer_sizes(steps, n_samples: int, n_lines: int, max_steps: int) -> tuple:
    """(steps, n_samples, n_lines) of a 2D explorer as ints, each within what its controls and W2 readout allow."""
    steps = check_whole(steps, "steps", high=max_steps, why=" (the range of the steps slider)")
    n_samples = check_whole(
        n_samples, "n_samples", high=MAX_SAMPLES, why=" (W2 solves an exact transport problem between them)"
    )
    n_lines = check_whole(
        n_lines, "n_lines", high=n_samples, why=" (the paths drawn are some of the n_samples)"
    )
    return steps, n_samples, n_lines
