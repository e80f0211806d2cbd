"""Distances between point clouds and the shape of trajectories."""

import torch
from scipy.optimize import linear_sum_assignment

from lessons.checks import check_points
from lessons.trajectory import Trajectory


def w2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact 2-Wasserstein distance between two equal-size point sets (B, D), by optimal assignment.

    With equal uniform weights the optimal plan is a permutation, so scipy's assignment is exact:
    W2 = sqrt(min over permutations of mean ||a_i - b_perm(i)||^2).
    """
    check_points(a, "a")
    check_points(b, "b", a.shape[1])
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"W2 by assignment needs sets of equal size, got {a.shape[0]} and {b.shape[0]} points.")
    cost = torch.cdist(a.double().cpu(), b.double().cpu()) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return float(cost[rows, cols].mean().sqrt())


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2 E|A - B| - E|A - A'| - E|B - B'| (Szekely), >= 0, zero iff same law.

    The within-set means exclude the zero diagonal (U-statistics), so the estimate is unbiased.
    """
    check_points(a, "a")
    check_points(b, "b", a.shape[1])
    a, b = a.double().cpu(), b.double().cpu()

    def mean_offdiag(x):
        n = x.shape[0]
        return torch.cdist(x, x).sum() / (n * (n - 1))

    return float(2 * torch.cdist(a, b).mean() - mean_offdiag(a) - mean_offdiag(b))


def straightness(traj: Trajectory) -> float:
    """Liu et al.'s straightness: mean over samples of int_0^1 ||(x_1 - x_0) - dx/dt||^2 dt.

    Zero exactly when every path is a straight line run at constant speed. Computed from the
    recorded states, with dx/dt taken constant on each recorded step.
    """
    xs = traj.xs.flatten(2)  # (S+1, B, D)
    dt = (traj.ts[1:] - traj.ts[:-1]).to(xs.dtype)[:, None, None]  # (S, 1, 1)
    chord = (xs[-1] - xs[0])[None] / (traj.ts[-1] - traj.ts[0])  # (1, B, D)
    gap = (xs[1:] - xs[:-1]) - dt * chord  # (S, B, D)
    return float(((gap**2).sum(-1) / dt[..., 0]).sum(0).mean())
