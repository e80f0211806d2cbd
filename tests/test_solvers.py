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


# --- bad input, answered in words before any work ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t_start": -0.1}, r"t_start must lie in \[0, 1\]"),
        ({"t_end": 1.5}, r"t_end must lie in \[0, 1\]"),
        ({"t_start": 0.5, "t_end": 0.5}, "must differ"),
        ({"t_end": float("nan")}, "t_end must be a finite number"),
        ({"rtol": float("nan")}, "rtol .* finite"),
        ({"atol": -1e-3, "method": "dopri5"}, r"atol .* \(0, inf\)"),
        ({"rtol": 0.0, "method": "dopri5"}, r"rtol .* \(0, inf\)"),
        ({"ts": torch.tensor([0.0, 0.5, 0.3, 1.0], dtype=torch.float64)}, r"turns or repeats at ts\[1\]"),
        ({"ts": torch.tensor([0.0, 0.5, 0.5, 1.0], dtype=torch.float64)}, "strictly increasing"),
        ({"ts": torch.tensor([0.0, 1.5], dtype=torch.float64)}, r"ts must lie in \[0, 1\]"),
        (
            {"ts": torch.tensor([-0.5, 0.0], dtype=torch.float64), "method": "dopri5"},
            r"ts must lie in \[0, 1\]",
        ),
        ({"ts": torch.tensor([0.0, float("nan")], dtype=torch.float64)}, r"ts must lie in \[0, 1\]"),
        ({"ts": torch.tensor([0.5], dtype=torch.float64)}, "at least two times"),
        ({"ts": torch.tensor([0, 1])}, "float tensor"),
    ],
)
def test_solve_ode_refuses_bad_times_and_tolerances(kwargs, match):
    field = CountingField()
    with pytest.raises(ValueError, match=match):
        solve_ode(field, X0, **kwargs)
    assert field.calls == 0  # refused before any work


def test_solve_ode_refuses_objects_of_the_wrong_kind():
    with pytest.raises(TypeError, match="rtol"):
        solve_ode(CountingField(), X0, rtol="tight")
    with pytest.raises(TypeError, match="ts must be a torch tensor"):
        solve_ode(CountingField(), X0, ts=[0.0, 1.0])
    with pytest.raises(TypeError, match="class CountingField itself"):
        solve_ode(CountingField, X0)
    with pytest.raises(TypeError, match="model or a function"):
        solve_ode("euler", X0)
    with pytest.raises(TypeError, match="x_start must be a torch tensor"):
        solve_ode(CountingField(), [[1.0, 2.0]])


@pytest.mark.parametrize(
    "x_start, match",
    [
        (torch.tensor([[1.0, float("nan")]]), "x_start holds 1 NaN or infinite"),
        (torch.tensor([[1.0, float("inf")]]), "x_start holds 1 NaN or infinite"),
        (torch.ones(2, 2, dtype=torch.int64), r"float tensor.*x_start.float\(\)"),
        (torch.ones(0, 2), "at least 1 sample"),
        (torch.tensor(1.0), "batch dimension"),
    ],
)
def test_solve_ode_refuses_bad_states(x_start, match):
    with pytest.raises(ValueError, match=match):
        solve_ode(CountingField(), x_start)


def test_a_decreasing_grid_integrates_backwards_like_t_start_above_t_end():
    start = exact(X0, 0.0, 1.0)
    by_grid = solve_ode(
        CountingField(), start, method="rk4", ts=torch.linspace(1, 0, 51, dtype=torch.float64)
    )
    by_ends = solve_ode(CountingField(), start, steps=50, method="rk4", t_start=1.0, t_end=0.0)
    assert torch.equal(by_grid.xs, by_ends.xs)
    assert torch.allclose(by_grid.final, X0, rtol=1e-6)


@pytest.mark.parametrize("method", list(ODE_METHODS))
def test_a_field_whose_output_is_not_shaped_like_its_input_is_refused(method):
    def squashed(x, t, cond=None):  # (B, 1) for (B, 2): would broadcast silently
        return x.sum(1, keepdim=True)

    with pytest.raises(ValueError, match=r"the field returned shape \(2, 1\) for an input of shape \(2, 2\)"):
        solve_ode(squashed, X0, steps=4, method=method)
    with pytest.raises(TypeError, match="must return a tensor"):
        solve_ode(lambda x, t, cond=None: x.tolist(), X0, steps=4, method=method)


@pytest.mark.parametrize("method", list(NFE_PER_STEP))
def test_nan_is_caught_at_the_step_where_it_arises(method):
    def breaks_at_half(x, t, cond=None):  # NaN from t = 0.5 on
        return torch.where(t[:, None] >= 0.5, torch.nan, -x)

    # the first step with a stage at t >= 0.5: the one from 0.5, or for methods that probe t + dt the one before
    first_bad = 6 if method in ("euler", "midpoint") else 5
    with pytest.raises(
        ValueError, match=rf"the {method} solver produced NaN or inf at step {first_bad} \(t = "
    ):
        solve_ode(breaks_at_half, X0, steps=10, method=method)


def test_dopri5_checks_its_result_and_says_so():
    def blows_up(x, t, cond=None):
        return torch.where(t[:, None] > 0.5, torch.inf, -x)

    with pytest.raises(ValueError, match="dopri5"):
        solve_ode(blows_up, X0, steps=4, method="dopri5")
    with pytest.raises(ValueError, match="dopri5 could not go on: the field returned NaN"):
        solve_ode(lambda x, t, cond=None: x * torch.nan, X0, method="dopri5")


def test_float64_states_for_a_float32_network_get_words_not_torch_internals():
    from lessons.models import MLP

    net = MLP(dim=2, hidden=8, depth=1)
    with pytest.raises(
        ValueError, match=r"x_start has dtype torch.float64 but the model's weights are torch.float32"
    ):
        solve_ode(net, X0, steps=2)
    layer = torch.nn.Linear(2, 2)  # a network inside a plain function: the check happens at the first call

    def field(x, t, cond=None):
        return layer(x)

    with pytest.raises(ValueError, match=r"dtype torch.float64.*x.float\(\).*net.double\(\)"):
        solve_ode(field, X0, steps=2)


@pytest.mark.parametrize("steps", [10**7, 10**9])
def test_step_counts_whose_trajectory_would_not_fit_are_refused_with_the_memory_needed(steps):
    x = torch.zeros(10_000, 2)
    field = CountingField()
    with pytest.raises(ValueError, match=r"a solve of \d+ steps would need about [\d.]+ [KMGT]iB"):
        solve_ode(field, x, steps=steps)
    assert field.calls == 0


def test_long_fixed_step_loops_show_progress_and_short_ones_stay_quiet(capsys, monkeypatch):
    solve_ode(CountingField(), X0, steps=20)
    assert capsys.readouterr().err == ""  # the notebooks' short solves gain no output
    monkeypatch.setattr("lessons.progress.QUIET_SECONDS", 0.0)  # every loop counts as long
    traj = solve_ode(CountingField(), X0, steps=60)
    err = capsys.readouterr().err
    assert "the euler solver" in err and "60/60" in err
    assert torch.equal(traj.final, solve_ode(CountingField(), X0, steps=60).final)  # the same numbers


def test_step_refuses_bad_arguments():
    with pytest.raises(ValueError, match="unknown fixed-step method 'rk45'; choose one of"):
        step(CountingField(), X0, 0.0, 0.1, "rk45")
    with pytest.raises(ValueError, match=r"the time t must lie in \[0, 1\]"):
        step(CountingField(), X0, 1.5, 0.1, "euler")
    with pytest.raises(ValueError, match="dt must be a finite number"):
        step(CountingField(), X0, 0.0, float("inf"), "euler")
    with pytest.raises(ValueError, match="x holds 1 NaN"):
        step(CountingField(), torch.tensor([[torch.nan, 1.0]]), 0.0, 0.1, "euler")
    with pytest.raises(TypeError, match="class CountingField itself"):
        step(CountingField, X0, 0.0, 0.1, "euler")
    with pytest.raises(ValueError, match="returned shape"):
        step(lambda x, t, cond=None: x[:, :1], X0, 0.0, 0.1, "heun")


def test_walk_grid_checks_every_state_and_its_arguments():
    ts = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"the sampler produced NaN or inf at step 3 \(t = 0.5\)"):
        walk_grid(lambda x, t, s: x / 0 if t >= 0.5 else x, torch.zeros(2, 2), ts)
    with pytest.raises(ValueError, match="advance returned shape"):
        walk_grid(lambda x, t, s: x[:1], torch.zeros(2, 2), ts)
    with pytest.raises(TypeError, match="advance must be a function"):
        walk_grid(None, torch.zeros(2, 2), ts)
    with pytest.raises(ValueError, match="turns or repeats"):
        walk_grid(lambda x, t, s: x, torch.zeros(2, 2), torch.tensor([0.0, 0.6, 0.4]))
    with pytest.raises(ValueError, match="starting state x_start holds"):
        walk_grid(lambda x, t, s: x, torch.full((2, 2), torch.nan), ts)


def test_step_refuses_a_step_that_ends_outside_the_time_range():
    with pytest.raises(ValueError, match=r"the step must end inside \[0, 1\]: t \+ dt = 0.9 \+ 0.5"):
        step(CountingField(), X0, 0.9, 0.5, "euler")
    with pytest.raises(ValueError, match="must end inside"):
        step(CountingField(), X0, 0.2, -0.5, "heun")
    step(CountingField(), X0, 1.0, -1.0, "rk4")  # a whole backward step is fine


def test_grid_steps_reads_the_grid_in_chunks_without_changing_a_time():
    from lessons.solvers import grid_steps

    ts = torch.rand(1000, dtype=torch.float64).sort().values
    expected = list(zip(ts[:-1].tolist(), ts[1:].tolist()))
    assert list(grid_steps(ts, chunk=7)) == expected == list(grid_steps(ts))


def test_fields_of_the_wrong_form_and_meta_states_get_words():
    from lessons.schedules import LinearSchedule

    with pytest.raises(TypeError, match=r"called as field\(x=\.\.\., t=\.\.\., cond=\.\.\.\)"):
        solve_ode(LinearSchedule(), X0, steps=2)  # a schedule is callable, but not a field
    with pytest.raises(TypeError, match=r"def field\(x, t, cond=None\)"):
        solve_ode(lambda x, t: -x, X0, steps=2)  # no cond argument
    with pytest.raises(ValueError, match="meta device"):
        solve_ode(CountingField(), X0.to("meta"), steps=2)
    with pytest.raises(ValueError, match=r"the euler step produced NaN or inf at step 1 \(t = 0.2\)"):
        step(lambda x, t, cond=None: x * torch.nan, X0, 0.2, 0.1, "euler")
