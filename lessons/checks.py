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


# --- numbers, tensors and objects -----------------------------------------------------------------


def check_number(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that value is a finite real number, optionally in a range; return it as a float.

    low_open / high_open exclude the end itself (e.g. a step size must be > 0, not >= 0).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {value:g}.")
    return value


def check_nonnegative_int(value, name: str) -> int:
    """Check that value is a whole number >= 0 (an index, a count that may be zero); return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}.")
    return value


def check_tensor(x, name: str = "x", *, ndim: int | None = None, min_batch: int = 1) -> torch.Tensor:
    """Check that x is a float tensor (of ndim dimensions when given) with at least min_batch rows."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}.")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}.")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a batch dimension (B, ...), got a scalar.")
    if not torch.is_floating_point(x):
        raise ValueError(
            f"{name} must be a float tensor, got dtype {x.dtype}; convert it with {name}.float()."
        )
    if x.shape[0] < min_batch:
        raise ValueError(f"{name} must hold at least {min_batch} sample(s), got a batch of {x.shape[0]}.")
    return x


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that a tensor holds no NaN or inf; the message counts them."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} holds {bad} NaN or infinite value(s) out of {x.numel()}; every value must be finite."
        )
    return x


def check_model_output(out, x: torch.Tensor, name: str = "the model") -> torch.Tensor:
    """Check that a network's output is a finite tensor of the same shape as its input x."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a tensor shaped like its input, got {type(out).__name__}.")
    if out.shape != x.shape:
        raise ValueError(
            f"{name} returned shape {tuple(out.shape)} for an input of shape {tuple(x.shape)}; "
            "it must return one value per input coordinate (the same shape as its input)."
        )
    return out


def check_finite_step(state: torch.Tensor, step: int, t: float, what: str = "the sampler") -> torch.Tensor:
    """Check a sampler's or solver's state after a step; name the step and time where NaN or inf arose."""
    if not bool(torch.isfinite(state).all()):
        raise ValueError(
            f"{what} produced NaN or inf at step {step} (t = {t:.4g}): the model returned a non-finite "
            "value there, or the step size is too large for it."
        )
    return state


def check_instance(obj, cls, name: str, example: str | None = None):
    """Check that obj is an instance of cls (a TypeError in words for a class, a string or another kind)."""
    if isinstance(obj, cls):
        return obj
    kinds = cls if isinstance(cls, tuple) else (cls,)
    wanted = " or ".join(k.__name__ for k in kinds)
    how = f" such as {example}" if example else ""
    if isinstance(obj, type):
        raise TypeError(
            f"{name} must be a {wanted} object{how}; you passed the class {obj.__name__} itself: "
            f"call it, {obj.__name__}(), to make one."
        )
    if isinstance(obj, str):
        raise TypeError(f"{name} must be a {wanted} object{how}, not the string {obj!r}.")
    raise TypeError(f"{name} must be a {wanted} object{how}, got {type(obj).__name__}.")


def check_matches_model(x: torch.Tensor, model: torch.nn.Module, name: str = "x") -> torch.Tensor:
    """Check that x has the dtype and device of the model's parameters (say how to convert when not)."""
    param = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    if param is None:
        return x
    if x.dtype != param.dtype:
        raise ValueError(
            f"{name} has dtype {x.dtype} but the model's weights are {param.dtype}; convert one to the "
            f"other, e.g. {name}.to({param.dtype}) or model.to({x.dtype})."
        )
    if x.device != param.device:
        raise ValueError(
            f"{name} is on {x.device} but the model is on {param.device}; move one, e.g. "
            f"{name}.to('{param.device}')."
        )
    return x


def available_memory_bytes() -> int:
    """Memory this machine can still give (MemAvailable on Linux, else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_memory(n_bytes: int, what: str) -> int:
    """Refuse work whose memory (n_bytes) would not fit in what the machine has left; say how much."""
    free = available_memory_bytes()
    if n_bytes > free:
        raise ValueError(
            f"{what} would need about {n_bytes / 2**30:.1f} GiB of memory, more than the "
            f"{free / 2**30:.1f} GiB this machine has free; ask for fewer steps or samples."
        )
    return n_bytes
