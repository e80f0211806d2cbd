"""The 2D toy targets of the course, each at the scale the standard 2D benchmarks use.

Scales follow TorchCFM / FFJORD: 8 gaussians on a circle of radius 5, moons as sklearn's
make_moons(noise=0.2) * 3 - 1, checkerboard on [-4, 4]^2, and so on.
"""

import math

import torch

from lessons.checks import check_memory, check_positive_int, check_seed, choose
from lessons.mixture import GaussianMixture


def eight_gaussians() -> GaussianMixture:
    """8 equal Gaussians on a circle of radius 5, std 0.1 ** 0.25 (TorchCFM's covariance sqrt(0.1) I)."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    means = 5.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(means, 0.1**0.25)


def skewed_mixture() -> GaussianMixture:
    """Three unequal Gaussians with unequal weights: a target with a closed-form density and entropy."""
    means = [[-2.0, -1.0], [2.0, -1.5], [0.5, 2.5]]
    return GaussianMixture(means, [0.6, 0.9, 0.4], [0.5, 0.3, 0.2])


def _moons(n, g):
    n_out = n // 2
    theta = torch.rand(n, generator=g) * math.pi
    outer = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    inner = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], 1)
    x = torch.where((torch.arange(n) < n_out)[:, None], outer, inner)
    return (x + 0.2 * torch.randn(n, 2, generator=g)) * 3 - 1


def _checkerboard(n, g):
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g) * 2.0
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1) * 2


def _swiss_roll(n, g):
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
    return (x + 1.0 * torch.randn(n, 2, generator=g)) / 5


def _s_curve(n, g):
    t = 3 * math.pi * (torch.rand(n, generator=g) - 0.5)
    x = torch.stack([torch.sin(t), torch.sign(t) * (torch.cos(t) - 1)], 1)
    return (x + 0.05 * torch.randn(n, 2, generator=g)) * 2


def _two_spirals(n, g):
    r = torch.sqrt(torch.rand(n, generator=g)) * 540 * (2 * math.pi) / 360
    sign = torch.where(torch.arange(n) < n // 2, 1.0, -1.0)[:, None]
    x = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], 1) + torch.rand(n, 2, generator=g) * 0.5
    return sign * x / 3 + 0.1 * torch.randn(n, 2, generator=g)


def _rings(n, g):
    radius = torch.tensor([3.0, 2.25, 1.5, 0.75])[torch.arange(n) % 4]
    theta = torch.rand(n, generator=g) * 2 * math.pi
    x = radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    return x + 0.08 * torch.randn(n, 2, generator=g)


_MIXTURES = {"8gaussians": eight_gaussians, "mixture": skewed_mixture}
_SAMPLERS = {
    "moons": _moons,
    "checkerboard": _checkerboard,
    "swissroll": _swiss_roll,
    "scurve": _s_curve,
    "2spirals": _two_spirals,
    "rings": _rings,
    "gaussian": lambda n, g: torch.randn(n, 2, generator=g),
}
TARGETS = tuple(_MIXTURES) + tuple(_SAMPLERS)


def sample_target(name: str, n: int, seed: int | None = 0) -> torch.Tensor:
    """Draw n points, (n, 2), from the named 2D target; the same seed gives the same points."""
    if not isinstance(name, str):
        raise TypeError(
            f"name must be the name of a 2D target, one of {', '.join(TARGETS)}; got {type(name).__name__}."
        )
    choose(name, TARGETS, "2D target")
    check_positive_int(n, "the number of points n")
    check_seed(seed, allow_none=True)
    if n > 1_000_000:  # a few float32 (n, 2) temporaries: refuse what this machine cannot hold
        check_memory(n * 2 * 4 * 8, f"drawing n = {n:,} points of {name!r}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    if name in _MIXTURES:
        x = _MIXTURES[name]().sample(n, generator=g)
    else:
        x = _SAMPLERS[name](n, g)
    perm = torch.randperm(n, generator=g)  # samplers above fill their parts in order
    return x[perm]


def target_density(name: str) -> GaussianMixture:
    """The closed-form mixture behind a target ('8gaussians' or 'mixture')."""
    if not isinstance(name, str):
        raise TypeError(f"name must be '8gaussians' or 'mixture', got {type(name).__name__}.")
    choose(name, _MIXTURES, "target with a closed-form density")
    return _MIXTURES[name]()
