"""Metrics: W2 against brute force and POT, energy distance against a double loop, straightness."""

import itertools
import math

import numpy as np
import ot
import pytest
import torch

from lessons.metrics import energy_distance, straightness, straightness_per_sample
from lessons.optimal_transport import w2
from lessons.trajectory import Trajectory


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


def test_energy_distance_against_a_double_loop():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 2, generator=g).double(), (torch.randn(4, 2, generator=g) + 1).double()

    def mean_dist(x, y, skip_diagonal):
        pairs = [(i, j) for i in range(len(x)) for j in range(len(y)) if not (skip_diagonal and i == j)]
        return sum((x[i] - y[j]).norm().item() for i, j in pairs) / len(pairs)

    expected = 2 * mean_dist(a, b, False) - mean_dist(a, a, True) - mean_dist(b, b, True)
    assert energy_distance(a, b) == pytest.approx(expected, rel=1e-10)
    assert energy_distance(a, b) == pytest.approx(energy_distance(b, a), rel=1e-12)


def test_energy_distance_bad_input():
    with pytest.raises(ValueError, match="at least 2 points"):
        energy_distance(torch.zeros(1, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="2 columns"):
        energy_distance(torch.zeros(3, 2), torch.ones(3, 1))


def test_energy_distance_same_and_different_laws():
    g = torch.Generator().manual_seed(1)
    n = 1000
    same = [energy_distance(torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)) for _ in range(5)]
    different = energy_distance(torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) * 1.3 + 0.3)
    # unbiased: same-law values scatter around zero, both signs allowed, far below the different-law value
    assert abs(np.mean(same)) < 0.01 and max(abs(v) for v in same) < 0.02
    assert different > 0.1


def _trajectory(fn, steps, batch=1):
    ts = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    return Trajectory(ts=ts, xs=torch.stack([fn(t) for t in ts]).reshape(steps + 1, batch, -1), nfe=steps)


def test_straightness_zero_for_a_straight_constant_speed_path():
    start, end = (
        torch.tensor([[1.0, -2.0], [0.0, 3.0]], dtype=torch.float64),
        torch.tensor([[4.0, 2.0], [-1.0, 0.5]], dtype=torch.float64),
    )
    traj = _trajectory(lambda t: start + t * (end - start), 10, batch=2)
    assert straightness(traj) == pytest.approx(0.0, abs=1e-20)


def test_straightness_positive_for_a_straight_path_at_varying_speed():
    # x(t) = t^2 e: straight but not constant speed; int_0^1 (1 - 2t)^2 dt = 1/3 per unit length
    traj = _trajectory(lambda t: torch.tensor([t**2, 0.0], dtype=torch.float64), 2000)
    assert straightness(traj) == pytest.approx(1 / 3, rel=1e-5)


@pytest.mark.parametrize("theta", [math.pi / 2, math.pi, 1.5 * math.pi])
def test_straightness_of_a_circular_arc(theta):
    """x(t) = (cos theta t, sin theta t): int ||chord - x'||^2 dt = theta^2 - |chord|^2 = theta^2 - 2 + 2 cos theta."""
    traj = _trajectory(lambda t: torch.stack([torch.cos(theta * t), torch.sin(theta * t)]), 1000)
    assert straightness(traj) == pytest.approx(theta**2 - 2 + 2 * math.cos(theta), rel=1e-5)


def test_straightness_per_sample_and_uneven_grid():
    ts = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    straight = ts[:, None] * torch.tensor([2.0, 1.0], dtype=torch.float64)  # (4, 2)
    bent = torch.stack([ts, ts**2], 1)  # chord (1, 1), speed (1, 2t)
    traj = Trajectory(ts=ts, xs=torch.stack([straight, bent], 1), nfe=3)
    per = straightness_per_sample(traj)
    # bent path, piecewise constant speed: sum_k dt_k (1 - (t_k + t_{k+1}))^2 in the second coordinate
    expected_bent = sum((b - a) * (1 - (a + b)) ** 2 for a, b in zip(ts[:-1].tolist(), ts[1:].tolist()))
    assert per[0].item() == pytest.approx(0.0, abs=1e-20)
    assert per[1].item() == pytest.approx(expected_bent, rel=1e-12)
    assert straightness(traj) == pytest.approx(per.mean().item())


def test_trajectory_record():
    traj = Trajectory(ts=torch.linspace(0, 1, 5), xs=torch.arange(30.0).reshape(5, 3, 2), nfe=8)
    assert traj.steps == 4 and torch.equal(traj.final, traj.xs[-1])
