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

from lessons.checks import (
    check_memory,
    check_point_set,
    check_same_shape,
    choose,
)

SOLVERS = ("assignment", "emd")


def _check_sets(a, b, name_a: str, name_b: str, equal_size: bool = True) -> None:
    """Two point sets of the same dimension (and size), checked before anything reaches POT or scipy."""
    check_point_set(a, name_a)
    check_point_set(b, name_b, a.shape[1])
    if equal_size and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"exact OT by assignment needs sets of equal size, got {a.shape[0]} and {b.shape[0]} points "
            f"in {name_a} and {name_b}."
        )
    # the float64 cost matrix, its square and POT's plan, each (B, B)
    check_memory(3 * 8 * a.shape[0] * b.shape[0], f"exact OT between {a.shape[0]} and {b.shape[0]} points")


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """The cost matrix C_ij = ||a_i - b_j||^2, (B, B), in float64 on the CPU."""
    _check_sets(a, b, "a", "b", equal_size=False)
    return _squared_distances(a, b)


def _squared_distances(a, b):
    return (torch.cdist(a.detach().double().cpu(), b.detach().double().cpu()) ** 2).numpy()


def optimal_permutation(a: torch.Tensor, b: torch.Tensor, solver: str = "emd") -> np.ndarray:
    """The permutation perm (B,) minimising sum_i ||a_i - b_perm(i)||^2, exactly.

    'emd' is POT's network simplex on uniform weights (a vertex of the plans: a permutation / B),
    about 2-3x faster than scipy's 'assignment' at a few hundred points; should its plan ever not
    be a permutation, the assignment solver is used instead.
    """
    choose(solver, SOLVERS, "optimal transport solver")
    _check_sets(a, b, "a", "b")
    return _optimal_permutation(_squared_distances(a, b), solver)


def _optimal_permutation(cost: np.ndarray, solver: str) -> np.ndarray:
    """The assignment of a finite (B, B) cost matrix, B >= 1 (checked by the callers)."""
    if solver == "emd":
        cols = ot.emd(np.array([]), np.array([]), cost, numItermax=100_000_000).argmax(1)
        if np.unique(cols).size == cols.size:
            return cols
    return linear_sum_assignment(cost)[1]


def ot_assignment(noise: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """The optimal pairing of a minibatch: perm (B,) on data's device, data[perm] is noise's OT partner."""
    check_point_set(noise, "noise")
    check_same_shape(noise, data, "noise", "data")
    _check_sets(noise, data, "noise", "data")
    return torch.as_tensor(_optimal_permutation(_squared_distances(noise, data), "emd"), device=data.device)


def w2(a: torch.Tensor, b: torch.Tensor, solver: str = "assignment") -> float:
    """Exact 2-Wasserstein distance between two equal-size point sets (B, D): sqrt(mean ||a_i - b_perm(i)||^2)."""
    choose(solver, SOLVERS, "optimal transport solver")
    _check_sets(a, b, "a", "b")
    cost = _squared_distances(a, b)
    cols = _optimal_permutation(cost, solver)
    return float(np.sqrt(cost[np.arange(len(cols)), cols].mean()))
