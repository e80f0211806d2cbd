"""Input checks shared by the library: each raises ValueError with a sentence a learner understands."""

import numbers

import numpy
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


def check_grid(ts, name: str = "ts", backward: bool = False) -> torch.Tensor:
    """Check that ts is a float grid (steps+1,) of at least two times in [0, 1], strictly increasing (noise first);
    with backward=True strictly decreasing is allowed too (a solve from data back to noise)."""
    if not isinstance(ts, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch tensor of times (steps+1,), such as torch.linspace(0, 1, 11); "
            f"got {type(ts).__name__}."
        )
    if ts.ndim != 1:
        raise ValueError(
            f"{name} must have shape (steps+1,): one time per grid point; got {tuple(ts.shape)}."
        )
    if not ts.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor of times in [0, 1], got {ts.dtype}; use {name}.float()."
        )
    if ts.numel() and not ((ts >= 0) & (ts <= 1)).all():  # written so that NaN fails too
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 0 is noise, t = 1 is data); got values in "
            f"[{ts.min().item():.4g}, {ts.max().item():.4g}]."
        )
    if not backward:
        if len(ts) < 2 or not (ts[1:] > ts[:-1]).all():
            raise ValueError(
                f"{name} must be an increasing grid of at least two times (noise at {name}[0], data at {name}[-1])."
            )
        return ts
    if len(ts) < 2:
        raise ValueError(
            f"{name} must be a grid of at least two times, shape (steps+1,); got shape {tuple(ts.shape)}."
        )
    gaps = ts[1:] - ts[:-1]
    if not ((gaps > 0).all() or (gaps < 0).all()):
        wrong = gaps <= 0 if gaps[0] > 0 else gaps >= 0  # the steps that go against the first one
        bad = int(wrong.nonzero()[0]) if gaps[0] != 0 else 0
        raise ValueError(
            f"{name} must be strictly increasing (noise to data) or strictly decreasing (data back to noise); "
            f"it turns or repeats at {name}[{bad}] = {ts[bad].item():.4g}, {name}[{bad + 1}] = {ts[bad + 1].item():.4g}."
        )
    return ts


def check_point_set(x, name: str = "x", dim: int | None = None) -> torch.Tensor:
    """Check that x is a finite float point set (B, D) with B >= 1 and D >= 1 (D = dim when given); return it."""
    check_tensor(x, name)
    check_points(x, name, dim)
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one coordinate per point, got shape {tuple(x.shape)}.")
    return check_finite(x, name)


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
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.detach().item()
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
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
        raise ValueError(
            f"{name} must have {ndim} dimension{'' if ndim == 1 else 's'}, got shape {tuple(x.shape)}."
        )
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
            f"{what} would need about {_size(n_bytes)} of memory, more than the "
            f"{_size(free)} this machine has free; ask for fewer steps or samples."
        )
    return n_bytes


def _size(n_bytes: float) -> str:
    """A byte count in words: '3.2 GiB', '12.0 MiB', '800 bytes'."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def check_not_meta(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Refuse a tensor on the meta device (shapes without values)."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device, which holds shapes but no values; make it on 'cpu' or 'cuda'."
        )
    return x


def check_model(model, name: str = "model"):
    """A model is an object called as model(x=..., t=..., cond=...): refuse a class (not yet built) or a non-callable."""
    if isinstance(model, type):
        raise TypeError(
            f"{name} must be a built network, not the class {model.__name__} itself: call it, "
            f"{model.__name__}(...), to make one (or load a trained one)."
        )
    if not callable(model):
        raise TypeError(
            f"{name} must be a model or a function called as f(x=..., t=..., cond=...), "
            f"got {type(model).__name__} {model!r:.60}."
        )
    return model


def check_start(model, x: torch.Tensor, name: str = "noise") -> torch.Tensor:
    """The first state of a sampler (or a loss's data): a finite float tensor (B, ...) in the model's dtype and device."""
    check_model(model)
    check_tensor(x, name)
    check_not_meta(x, name)
    check_finite(x, name)
    return check_matches_model(x, model, name)


def check_generator(generator) -> None:
    """None or a CPU torch.Generator (draws are made on the CPU, then moved: the same numbers on every device)."""
    if generator is None:
        return
    check_instance(generator, torch.Generator, "generator", "torch.Generator().manual_seed(0)")
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU generator (draws are made on the CPU and then moved, so a seed gives the "
            f"same numbers on every device); got one on {generator.device}: use torch.Generator().manual_seed(...)."
        )


MAX_SEED = 2**32 - 1  # the largest seed NumPy accepts


def check_seed(seed, allow_none: bool = False):
    """Check that seed is a whole number in [0, 2^32 - 1] (what Python, NumPy and PyTorch all accept); return it."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        fresh = " (or None for fresh draws)" if allow_none else ""
        raise ValueError(f"the seed must be a whole number between 0 and {MAX_SEED}{fresh}, got {seed!r}.")
    return seed


def check_callable(value, name: str, what: str) -> None:
    """Check that value can be called (a function, a built network), not a class, a string or a number.

    what says what is expected, e.g. "a function log_snr -> w(lambda), such as fm_weighting".
    """
    if isinstance(value, type):  # callable, but calling it makes an object instead of doing the work
        raise TypeError(
            f"{name} must be {what}, got the class {value.__name__} itself (call it, {value.__name__}(...), "
            "to make one)."
        )
    if not callable(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}.")
