"""Path energy and Tong et al.'s normalized path energy, against hand computations and closed forms."""

import math

import pytest
import torch

from lessons.metrics import normalized_path_energy, path_energy
from lessons.optimal_transport import w2
from lessons.solvers import solve_ode
from lessons.trajectory import Trajectory


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


def test_w2_emd_solver_agrees_with_assignment():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(150, 2, generator=g), torch.randn(150, 2, generator=g) * 2 + 1
    assert w2(a, b, solver="emd") == pytest.approx(w2(a, b), rel=1e-9)


def test_bad_input():
    traj = Trajectory(torch.tensor([0.0, 1.0]), torch.zeros(2, 3, 2), nfe=0)
    with pytest.raises(ValueError, match="w2_squared"):
        normalized_path_energy(traj, 0.0)
    with pytest.raises(ValueError, match="optimal transport solver"):
        w2(torch.zeros(3, 2), torch.zeros(3, 2), solver="sinkhorn")
