"""Small tensor helpers: broadcast a per-sample (B,) tensor against x, a time or a seeded normal draw like x."""

import torch


def expand_like(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values (B,) reshaped to (B, 1, ..., 1), so that it broadcasts against x of shape (B, ...)."""
    if values.ndim != 1 or values.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"expected one value per sample, shape ({x.shape[0]},), to broadcast against x "
            f"{tuple(x.shape)}; got shape {tuple(values.shape)}."
        )
    return values.reshape((-1,) + (1,) * (x.ndim - 1))


def time_like(t: float, x: torch.Tensor) -> torch.Tensor:
    """The time t repeated once per sample of x (B, ...): a (B,) tensor in x's dtype, on x's device."""
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


def normal_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal draws shaped like x, in x's dtype and on x's device, drawn by a (CPU) generator.

    Drawing on the CPU and then moving gives the same numbers for the same seed on every device.
    """
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
