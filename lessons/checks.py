"""Input checks shared by the library: each raises ValueError with a sentence a learner understands."""

import torch


def check_time(t: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Check that t is a float tensor of shape (B,) with values in [0, 1]; return it."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t must be a torch tensor of shape (B,), got {type(t).__name__}.")
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,): one time per sample; got shape {tuple(t.shape)}.")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(
            f"t has {t.shape[0]} times but the batch has {batch} samples; give one time per sample."
        )
    if not torch.is_floating_point(t):
        raise ValueError("t must be a float tensor (times are real numbers in [0, 1]).")
    if t.numel() and not ((t >= 0) & (t <= 1)).all():  # written so that NaN fails too
        raise ValueError(
            f"t must lie in [0, 1] (t = 0 is noise, t = 1 is data); got values in "
            f"[{t.min().item():.4g}, {t.max().item():.4g}]."
        )
    return t


def check_grid(ts: torch.Tensor) -> torch.Tensor:
    """Check that ts is an increasing grid of at least two times in [0, 1] (noise first); return it."""
    check_time(ts)
    if len(ts) < 2 or not (ts[1:] > ts[:-1]).all():
        raise ValueError(
            "ts must be an increasing grid of at least two times (noise at ts[0], data at ts[-1])."
        )
    return ts


def check_positive_int(value, name: str) -> int:
    """Check that value is a positive integer (a step count, a batch size); return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}.")
    return value


def check_points(x: torch.Tensor, name: str = "x", dim: int | None = None) -> torch.Tensor:
    """Check that x is a float tensor of shape (B, D) (or (B, dim) when dim is given)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (B, D): one row per point; got {shape}.")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (points in {dim}D), got {x.shape[1]}.")
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def choose(name: str, options, what: str) -> str:
    """Check that name is one of options (a learner's typo gets the list of valid names)."""
    if name not in options:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(sorted(options))}.")
    return name
