"""Distances between point clouds and the shape of trajectories."""

import torch

from lessons.checks import check_points, check_positive_int
from lessons.trajectory import Trajectory


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct rows of x (B, ...): sum_{i != j} |x_i - x_j| / (B (B - 1))."""
    check_positive_int(x.shape[0] - 1, "the number of samples minus one")
    flat = x.flatten(1).double()
    return float(torch.cdist(flat, flat).sum() / (flat.shape[0] * (flat.shape[0] - 1)))


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2 E|A - B| - E|A - A'| - E|B - B'| (Szekely), >= 0, zero iff same law.

    The within-set means exclude the zero diagonal (U-statistics), so the estimate is unbiased.
    """
    check_points(a, "a")
    check_points(b, "b", a.shape[1])
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError("the energy distance needs at least 2 points in each set (it averages over pairs).")
    a, b = a.double().cpu(), b.double().cpu()
    return float(2 * torch.cdist(a, b).mean() - mean_pairwise_distance(a) - mean_pairwise_distance(b))


def straightness(traj: Trajectory) -> float:
    """Liu et al.'s straightness: mean over samples of int_0^1 ||(x_1 - x_0) - dx/dt||^2 dt.

    Zero exactly when every path is a straight line run at constant speed. Computed from the
    recorded states, with dx/dt taken constant on each recorded step.
    """
    return float(straightness_per_sample(traj).mean())


def straightness_per_sample(traj: Trajectory) -> torch.Tensor:
    """int_0^1 ||(x_1 - x_0) - dx/dt||^2 dt for each path, (B,); its mean is ``straightness``."""
    xs = traj.xs.flatten(2)  # (S+1, B, D)
    dt = (traj.ts[1:] - traj.ts[:-1]).to(xs.dtype)[:, None, None]  # (S, 1, 1)
    chord = (xs[-1] - xs[0])[None] / (traj.ts[-1] - traj.ts[0])  # (1, B, D)
    gap = (xs[1:] - xs[:-1]) - dt * chord  # (S, B, D)
    return ((gap**2).sum(-1) / dt[..., 0]).sum(0)


def path_energy(traj: Trajectory) -> float:
    """Kinetic energy of the paths: mean over samples of int_0^1 ||dx/dt||^2 dt.

    From the recorded states, with dx/dt constant on each step: sum_k ||x_{k+1} - x_k||^2 / dt_k.
    """
    xs = traj.xs.flatten(2).double()  # (S+1, B, D)
    dt = (traj.ts[1:] - traj.ts[:-1]).double()[:, None]  # (S, 1)
    return float((((xs[1:] - xs[:-1]) ** 2).sum(-1) / dt).sum(0).mean())


def normalized_path_energy(traj: Trajectory, w2_squared: float) -> float:
    """Tong et al.'s NPE = |PE - W2^2(source, target)| / W2^2(source, target), PE = path_energy(traj).

    The dynamic (Benamou-Brenier) form of OT says PE >= W2^2 for any flow between the two laws,
    with equality only for the OT flow, so NPE = 0 means the flow moves mass as cheaply as possible.
    """
    if not w2_squared > 0:
        raise ValueError(
            f"w2_squared (the squared W2 between source and target) must be positive, got {w2_squared}."
        )
    return abs(path_energy(traj) - w2_squared) / w2_squared
