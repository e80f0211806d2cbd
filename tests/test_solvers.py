"""ODE solvers: orders of convergence, dopri5 against its tolerance, and exact NFE counts."""

import math

import numpy as np
import pytest
import torch

from lessons.solvers import NFE_PER_STEP, ODE_METHODS, solve_ode, step, walk_grid

OMEGA = 2 * math.pi


class CountingField:
    """dx/dt = cos(2 pi t) x, solution x(t) = x(t0) exp((sin(2 pi t) - sin(2 pi t0)) / (2 pi)); counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, cond=None):
        self.calls += 1
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype  # called by keyword with t of shape (B,)
        return torch.cos(OMEGA * t)[:, None] * x


def exact(x0, t0, t1):
    return x0 * math.exp((math.sin(OMEGA * t1) - math.sin(OMEGA * t0)) / OMEGA)


X0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    "method, order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4), ("rk4_38", 4)]
)
def test_order_of_convergence(method, order):
    steps = np.array([32, 64, 128, 256])  # asymptotic for every method, far above round-off
    errors = [
        (
            solve_ode(CountingField(), X0, steps=int(n), method=method, t_start=0.1, t_end=0.9).final
            - exact(X0, 0.1, 0.9)
        )
        .abs()
        .max()
        .item()
        for n in steps
    ]
    slope = np.polyfit(np.log(1 / steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.2)


@pytest.mark.parametrize("method", list(NFE_PER_STEP))
def test_fixed_step_nfe_is_counted_exactly(method):
    for steps in (1, 7, 20):
        field = CountingField()
        traj = solve_ode(field, X0, steps=steps, method=method)
        assert field.calls == traj.nfe == NFE_PER_STEP[method] * steps
        assert traj.xs.shape == (steps + 1, 2, 2)
        assert torch.allclose(traj.ts, torch.linspace(0, 1, steps + 1, dtype=torch.float64))
        assert torch.equal(traj.xs[0], X0)


def test_step_by_hand_for_each_method():
    """One step of size h on dx/dt = cos(2 pi t) x, written out from the Butcher tableaux."""

    def f(x, t):
        return math.cos(OMEGA * t) * x

    x, t, h = 1.3, 0.2, 0.1
    k1 = f(x, t)
    expected = {
        "euler": x + h * k1,
        "midpoint": x + h * f(x + h / 2 * k1, t + h / 2),
        "heun": x + h / 2 * (k1 + f(x + h * k1, t + h)),
    }
    k2 = f(x + h / 2 * k1, t + h / 2)
    k3 = f(x + h / 2 * k2, t + h / 2)
    k4 = f(x + h * k3, t + h)
    expected["rk4"] = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    k2 = f(x + h / 3 * k1, t + h / 3)  # Kutta's 3/8 rule: c = (0, 1/3, 2/3, 1), b = (1, 3, 3, 1) / 8
    k3 = f(x + h * (k2 - k1 / 3), t + 2 * h / 3)
    k4 = f(x + h * (k1 - k2 + k3), t + h)
    expected["rk4_38"] = x + h / 8 * (k1 + 3 * k2 + 3 * k3 + k4)
    for method, value in expected.items():
        out = step(CountingField(), torch.tensor([[x]], dtype=torch.float64), t, h, method)
        assert out.item() == pytest.approx(value, rel=1e-12), method


@pytest.mark.parametrize("tol", [1e-4, 1e-7])
def test_dopri5_meets_its_tolerance_and_counts_calls(tol):
    field = CountingField()
    traj = solve_ode(field, X0, steps=4, method="dopri5", rtol=tol, atol=tol)
    assert traj.nfe == field.calls > 0
    assert traj.xs.shape == (5, 2, 2)
    for i, t in enumerate(traj.ts.tolist()):
        assert torch.allclose(traj.xs[i], exact(X0, 0.0, t), rtol=20 * tol, atol=20 * tol)


def test_dopri5_spends_more_calls_for_tighter_tolerance():
    loose, tight = CountingField(), CountingField()
    solve_ode(loose, X0, method="dopri5", rtol=1e-3, atol=1e-3)
    solve_ode(tight, X0, method="dopri5", rtol=1e-8, atol=1e-8)
    assert tight.calls > loose.calls


def test_custom_grid_and_backward_integration():
    ts = torch.tensor([0.0, 0.05, 0.3, 0.31, 1.0], dtype=torch.float64)
    traj = solve_ode(CountingField(), X0, method="rk4", ts=ts)
    assert torch.equal(traj.ts, ts) and traj.nfe == 16
    assert torch.allclose(traj.xs[2], exact(X0, 0.0, 0.3), rtol=1e-3)
    back = solve_ode(CountingField(), exact(X0, 0.0, 1.0), steps=200, method="rk4", t_start=1.0, t_end=0.0)
    assert torch.allclose(back.final, X0, rtol=1e-8)  # integrating from data time back to noise time


@pytest.mark.parametrize("method", list(ODE_METHODS))
def test_cond_reaches_every_field_call(method):
    """cond travels with x and t: the field is called as field(x=..., t=..., cond=cond) at every evaluation."""
    seen = []

    def field(x, t, cond=None):
        seen.append(cond)
        return cond[:, None] * x

    cond = torch.tensor([0.5, -1.0], dtype=torch.float64)
    traj = solve_ode(field, X0, steps=40, method=method, cond=cond)
    assert len(seen) == traj.nfe and all(c is cond for c in seen)
    assert torch.allclose(traj.final, X0 * torch.exp(cond)[:, None], rtol=2e-2)  # dx/dt = cond x, row by row
    assert torch.allclose(step(field, X0, 0.0, 0.1, "euler", cond=cond), X0 * (1 + 0.1 * cond[:, None]))


def test_walk_grid_applies_the_step_on_each_interval_and_records_every_state():
    ts = torch.tensor([0.0, 0.25, 0.5, 1.0])
    traj = walk_grid(lambda x, t, s: x * 2 + (s - t), torch.ones(3, 2), ts, nfe_per_step=4)
    expected, x = [torch.ones(3, 2)], torch.ones(3, 2)
    for t, s in [(0.0, 0.25), (0.25, 0.5), (0.5, 1.0)]:  # by hand
        x = x * 2 + (s - t)
        expected.append(x)
    assert torch.equal(traj.xs, torch.stack(expected)) and traj.ts is ts and traj.nfe == 12
    assert torch.allclose(traj.final, torch.full((3, 2), 8 + 0.25 * 4 + 0.25 * 2 + 0.5))


def test_every_method_is_listed():
    assert set(ODE_METHODS) == set(NFE_PER_STEP) | {"dopri5"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "rk45"}, "unknown ODE solver"),
        ({"steps": 0}, "number of steps"),
        ({"steps": 2.5}, "number of steps"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve_ode(CountingField(), X0, **kwargs)


def test_step_rejects_unknown_method():
    with pytest.raises(ValueError, match="fixed-step method"):
        step(CountingField(), X0, 0.0, 0.1, "dopri5")
