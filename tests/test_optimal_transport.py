"""Exact optimal transport: the optimal pairing and W2 against brute force, both solvers, bad input."""

import itertools
import math

import numpy as np
import ot
import pytest
import torch
from model_helpers import two_clouds
from scipy.optimize import linear_sum_assignment

from lessons.couplings import couple, transport_cost
from lessons.optimal_transport import optimal_permutation, ot_assignment, squared_distances, w2


def _brute_force_w2(a, b):
    n = len(a)
    best = min(
        sum(((a[i] - b[p[i]]) ** 2).sum().item() for i in range(n)) for p in itertools.permutations(range(n))
    )
    return math.sqrt(best / n)


@pytest.mark.parametrize("n, dim, seed", [(1, 2, 0), (3, 2, 1), (5, 3, 2), (6, 2, 3)])
def test_w2_against_all_permutations(n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + 0.5
    assert w2(a, b) == pytest.approx(_brute_force_w2(a.double(), b.double()), rel=1e-10)


def test_w2_against_pot_on_a_medium_set():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 2, generator=g), torch.rand(300, 2, generator=g) * 4 - 2
    weights = np.full(300, 1 / 300)
    reference = ot.emd2(weights, weights, ot.dist(a.double().numpy(), b.double().numpy())) ** 0.5
    assert w2(a, b) == pytest.approx(reference, rel=1e-8)
    assert w2(a, b, solver="emd") == pytest.approx(reference, rel=1e-8)


def test_w2_of_a_shifted_copy_is_the_shift():
    a = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([1.5, -2.0], dtype=torch.float64)
    assert w2(a, a + shift) == pytest.approx(2.5, rel=1e-9)  # |shift| = sqrt(1.5^2 + 2^2)
    assert w2(a, a[torch.randperm(200)]) == pytest.approx(
        0.0, abs=1e-6
    )  # order does not matter (cdist rounding ~1e-8)


def test_w2_bad_input():
    with pytest.raises(ValueError, match="equal size"):
        w2(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="2 columns"):
        w2(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        w2(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="optimal transport solver"):
        w2(torch.zeros(3, 2), torch.zeros(3, 2), solver="sinkhorn")


def test_w2_emd_solver_agrees_with_assignment():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(150, 2, generator=g), torch.randn(150, 2, generator=g) * 2 + 1
    assert w2(a, b, solver="emd") == pytest.approx(w2(a, b), rel=1e-9)


def test_ot_assignment_is_a_permutation_that_lowers_the_cost():
    noise, data = two_clouds(256)
    perm = ot_assignment(noise, data)
    assert torch.equal(perm.sort().values, torch.arange(256))
    paired_noise, paired_data = couple(noise, data, "ot")
    assert torch.equal(paired_noise, noise) and torch.equal(paired_data, data[perm])
    assert transport_cost(paired_noise, paired_data) < 0.9 * transport_cost(noise, data)


def test_ot_assignment_matches_brute_force_and_scipy():
    noise, data = two_clouds(6, seed=1)
    best = min(transport_cost(noise, data[list(p)]) for p in itertools.permutations(range(6)))
    assert transport_cost(noise, data[ot_assignment(noise, data)]) == pytest.approx(best, rel=1e-12)
    noise, data = two_clouds(100, seed=2)
    cost = (torch.cdist(noise.double(), data.double()) ** 2).numpy()
    rows, cols = linear_sum_assignment(cost)
    assert transport_cost(noise, data[ot_assignment(noise, data)]) == pytest.approx(
        cost[rows, cols].mean(), rel=1e-10
    )


@pytest.mark.parametrize("solver", ["assignment", "emd"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_w2_of_a_set_with_nan_or_inf_is_refused_not_zero(solver, bad):
    a, b = torch.zeros(4, 2), torch.zeros(4, 2)
    a[2, 1] = bad
    with pytest.raises(ValueError, match="a holds 1 NaN or infinite value"):
        w2(a, b, solver=solver)
    with pytest.raises(ValueError, match="b holds 8 NaN or infinite"):
        w2(b, torch.full((4, 2), bad), solver=solver)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (torch.zeros(0, 2), torch.zeros(0, 2), "at least 1 sample"),  # an empty set used to reach POT
        (torch.zeros(3, 0), torch.zeros(3, 0), "at least one coordinate"),
        (torch.zeros(3, 2), torch.zeros(3, 3), "must have 2 columns|the same shape"),
        (torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 2), r"float tensor.*\.float\(\)"),
        (
            torch.zeros(2_000_000, 1),
            torch.zeros(2_000_000, 1),
            r"exact OT between 2000000 and 2000000 points .* GiB",
        ),
    ],
)
def test_ot_functions_refuse_bad_sets_before_reaching_pot(a, b, match):
    for solver in ("assignment", "emd"):
        with pytest.raises(ValueError, match=match):
            w2(a, b, solver=solver)
    with pytest.raises(ValueError, match=match):
        ot_assignment(a, b)
    with pytest.raises(ValueError, match=match):
        couple(a, b, "ot")


def test_ot_functions_refuse_other_kinds_of_objects():
    with pytest.raises(TypeError, match="a must be a torch tensor"):
        w2([[0.0, 1.0]], torch.zeros(1, 2))
    with pytest.raises(TypeError, match="noise must be a torch tensor"):
        ot_assignment(np.zeros((2, 2)), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown optimal transport solver 'sinkhorn'; choose one of"):
        optimal_permutation(torch.zeros(2, 2), torch.zeros(2, 2), solver="sinkhorn")
    with pytest.raises(ValueError, match="b holds"):
        squared_distances(torch.zeros(2, 2), torch.full((3, 2), float("nan")))
    assert squared_distances(torch.zeros(2, 2), torch.ones(3, 2)).shape == (2, 3)  # sizes may differ here
