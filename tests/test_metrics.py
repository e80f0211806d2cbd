"""Metrics: W2 against brute force and POT, energy distance against a double loop, straightness."""

import math

import numpy as np
import pytest
import torch

from lessons.metrics import (
    energy_distance,
    normalized_path_energy,
    path_energy,
    straightness,
    straightness_per_sample,
)
from lessons.optimal_transport import w2
from lessons.solvers import solve_ode
from lessons.trajectory import Trajectory


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


def test_straight_constant_speed_path_energy_is_squared_length():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(20, 2, generator=g, dtype=torch.float64)
    data = torch.randn(20, 2, generator=g, dtype=torch.float64) + 3
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    xs = noise[None] + ts[:, None, None] * (data - noise)[None]
    expected = ((data - noise) ** 2).sum(1).mean().item()
    assert path_energy(Trajectory(ts, xs, nfe=0)) == pytest.approx(expected, rel=1e-10)


def test_path_energy_by_hand_with_uneven_speed():
    # one point moves from 0 to 1 during [0, 0.5] (speed 2) and rests during [0.5, 1]: energy 2^2 * 0.5 = 2
    traj = Trajectory(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([[[0.0]], [[1.0]], [[1.0]]]), nfe=0)
    assert path_energy(traj) == pytest.approx(2.0)
    # normalized against the straight, constant-speed cost W2^2 = 1: |2 - 1| / 1 = 1
    assert normalized_path_energy(traj, 1.0) == pytest.approx(1.0)
    assert normalized_path_energy(traj, 4.0) == pytest.approx(0.5)


def test_path_energy_of_an_ode_matches_the_integral():
    # dx/dt = -x: x(t) = x0 e^{-t}, int_0^1 ||x||^2 dt = ||x0||^2 (1 - e^{-2}) / 2
    x0 = torch.randn(30, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    traj = solve_ode(lambda x, t, cond=None: -x, x0, steps=400, method="rk4")
    expected = (x0**2).sum(1).mean().item() * (1 - math.exp(-2)) / 2
    assert path_energy(traj) == pytest.approx(expected, rel=1e-3)


def test_path_energy_bounds_the_transport_cost():
    # Cauchy-Schwarz and the optimality of W2: any recorded path costs at least W2^2(start, end)
    g = torch.Generator().manual_seed(2)
    xs = torch.cumsum(torch.randn(9, 40, 2, generator=g), dim=0)
    traj = Trajectory(torch.linspace(0, 1, 9), xs, nfe=0)
    assert path_energy(traj) >= w2(xs[0], xs[-1]) ** 2
    assert normalized_path_energy(traj, w2(xs[0], xs[-1]) ** 2) > 0


def test_bad_input():
    traj = Trajectory(torch.tensor([0.0, 1.0]), torch.zeros(2, 3, 2), nfe=0)
    with pytest.raises(ValueError, match="w2_squared"):
        normalized_path_energy(traj, 0.0)
    with pytest.raises(ValueError, match="optimal transport solver"):
        w2(torch.zeros(3, 2), torch.zeros(3, 2), solver="sinkhorn")


NAN_SET = torch.tensor([[0.0, 0.0], [float("nan"), 1.0], [1.0, 1.0]])


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        (NAN_SET, NAN_SET, ValueError, "a holds 1 NaN or infinite value"),
        (torch.zeros(3, 2), NAN_SET * float("inf"), ValueError, "b holds"),
        (torch.zeros(0, 2), torch.zeros(3, 2), ValueError, "at least 2 points"),
        (torch.zeros(3, 0), torch.zeros(3, 0), ValueError, "no coordinates"),
        (torch.zeros(3), torch.zeros(3), ValueError, r"shape \(B, D\)"),
        ([[0.0, 1.0]], torch.zeros(3, 2), ValueError, r"shape \(B, D\)"),
    ],
)
def test_energy_distance_refuses_non_finite_empty_or_misshapen_sets(a, b, error, match):
    with pytest.raises(error, match=match):
        energy_distance(a, b)


def _line(steps=4, batch=2):
    ts = torch.linspace(0, 1, steps + 1)
    return Trajectory(ts, ts[:, None, None] * torch.ones(steps + 1, batch, 2), nfe=steps)


@pytest.mark.parametrize(
    "traj, error, match",
    [
        ("traj", TypeError, "traj must be a Trajectory object"),
        (
            Trajectory(torch.tensor([0.0, 1.0]), torch.tensor([[[0.0]], [[float("nan")]]]), 1),
            ValueError,
            "traj.xs holds 1 NaN",
        ),
        (Trajectory(torch.tensor([0.0, float("inf")]), torch.zeros(2, 1, 1), 1), ValueError, "traj.ts holds"),
        (Trajectory(torch.tensor([1.0, 0.0]), torch.zeros(2, 1, 1), 1), ValueError, "increase strictly"),
        (Trajectory(torch.tensor([0.0, 0.0]), torch.zeros(2, 1, 1), 1), ValueError, "increase strictly"),
        (Trajectory(torch.tensor([0.0]), torch.zeros(1, 1, 1), 0), ValueError, "at least two times"),
        (
            Trajectory(torch.tensor([0.0, 1.0]), torch.zeros(2, 0, 1), 1),
            ValueError,
            "at least 1 sample, got 0",
        ),
    ],
)
def test_path_metrics_refuse_bad_trajectories(traj, error, match):
    for metric in (straightness, straightness_per_sample, path_energy):
        with pytest.raises(error, match=match):
            metric(traj)


def test_path_metrics_refuse_a_trajectory_changed_after_it_was_made():
    traj = _line()
    traj.xs = traj.xs[:-1]  # one state fewer than times
    with pytest.raises(ValueError, match=r"shape \(5, B, \.\.\.\)"):
        path_energy(traj)


def test_path_metrics_of_scalar_states():
    traj = _line()
    flat = Trajectory(traj.ts, traj.xs[..., 0], traj.nfe)  # (S+1, B): one number per sample
    assert path_energy(flat) == pytest.approx(path_energy(traj) / 2)
    assert straightness(flat) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "value, error",
    [(float("nan"), ValueError), (float("inf"), ValueError), (-1.0, ValueError), ("1", TypeError)],
)
def test_normalized_path_energy_refuses_bad_w2(value, error):
    with pytest.raises(error, match="w2_squared"):
        normalized_path_energy(_line(), value)
