"""Exact optimal transport between two point sets of equal size: the optimal pairing and W2.

With B points on each side, uniform weights and cost ||a_i - b_j||^2, an optimal plan is a
permutation matrix / B (Birkhoff), so exact OT is an assignment problem:
  perm = argmin over permutations of sum_i ||a_i - b_perm(i)||^2,   W2 = sqrt(mean_i ||a_i - b_perm(i)||^2).
Minibatch OT couplings (lessons.couplings) and the W2 metric both come from here.
"""

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

from lessons.checks import check_points, check_same_shape, choose

SOLVERS = ("assignment", "emd")


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """The cost matrix C_ij = ||a_i - b_j||^2, (B, B), in float64 on the CPU."""
    return (torch.cdist(a.detach().double().cpu(), b.detach().double().cpu()) ** 2).numpy()


def optimal_permutation(a: torch.Tensor, b: torch.Tensor, solver: str = "emd") -> np.ndarray:
    """The permutation perm (B,) minimising sum_i ||a_i - b_perm(i)||^2, exactly.

    'emd' is POT's network simplex on uniform weights (a vertex of the plans: a permutation / B),
    about 2-3x faster than scipy's 'assignment' at a few hundred points; should its plan ever not
    be a permutation, the assignment solver is used instead.
    """
    choose(solver, SOLVERS, "optimal transport solver")
    check_points(a, "a")
    check_points(b, "b", a.shape[1])
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"exact OT by assignment needs sets of equal size, got {a.shape[0]} and {b.shape[0]} points."
        )
    if a.shape[0] == 0:
        raise ValueError("optimal transport needs at least one point in each set, got empty sets.")
    cost = squared_distances(a, b)
    if solver == "emd":
        cols = ot.emd(np.array([]), np.array([]), cost, numItermax=100_000_000).argmax(1)
        if np.unique(cols).size == cols.size:
            return cols
    return linear_sum_assignment(cost)[1]


def ot_assignment(noise: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """The optimal pairing of a minibatch: perm (B,) on data's device, data[perm] is noise's OT partner."""
    check_points(noise, "noise")
    check_same_shape(noise, data, "noise", "data")
    return torch.as_tensor(optimal_permutation(noise, data), device=data.device)


def w2(a: torch.Tensor, b: torch.Tensor, solver: str = "assignment") -> float:
    """Exact 2-Wasserstein distance between two equal-size point sets (B, D): sqrt(mean ||a_i - b_perm(i)||^2)."""
    cols = optimal_permutation(a, b, solver)
    cost = squared_distances(a, b)
    return float(np.sqrt(cost[np.arange(len(cols)), cols].mean()))
