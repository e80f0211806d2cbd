"""Small tensor helpers: broadcast a per-sample (B,) tensor against x, a time or a seeded normal draw like x."""

import torch

from lessons.checks import check_generator, check_number


def _check_batched(x, name: str = "x") -> torch.Tensor:
    """x must be a tensor with a batch dimension (B, ...): a TypeError or ValueError in words otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of shape (B, ...), got {type(x).__name__}.")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a batch dimension (B, ...), got a scalar tensor.")
    return x


def _check_float(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not torch.is_floating_point(x):
        raise ValueError(
            f"{name} must be a float tensor, got dtype {x.dtype}; convert it with {name}.float()."
        )
    return x


def expand_like(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values (B,) reshaped to (B, 1, ..., 1), so that it broadcasts against x of shape (B, ...).

    A single value, shape (1,), broadcasts against every sample.
    """
    _check_batched(x, "x")
    if not isinstance(values, torch.Tensor):
        raise TypeError(
            f"values must be a torch tensor of shape ({x.shape[0]},), one value per sample; "
            f"got {type(values).__name__}."
        )
    if values.ndim != 1 or values.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"expected one value per sample, shape ({x.shape[0]},), to broadcast against x "
            f"{tuple(x.shape)}; got shape {tuple(values.shape)}."
        )
    return values.reshape((-1,) + (1,) * (x.ndim - 1))


def time_like(t: float, x: torch.Tensor) -> torch.Tensor:
    """The time t in [0, 1] repeated once per sample of x (B, ...): a (B,) tensor in x's dtype, on x's device."""
    t = check_number(t, "t", low=0.0, high=1.0)
    _check_float(_check_batched(x, "x"), "x")
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def normal_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal draws shaped like x, in x's dtype and on x's device, drawn by a (CPU) generator.

    Drawing on the CPU and then moving gives the same numbers for the same seed on every device.
    """
    _check_float(_check_batched(x, "x"), "x")
    check_generator(generator)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
