"""The shared input checks: each accepts good input unchanged and rejects bad input with ValueError."""

import numpy as np
import pytest
import torch

from lessons import checks
from lessons.checks import check_points, check_positive_int, check_same_shape, check_time, choose


def test_check_time_accepts_and_returns_valid_times():
    t = torch.tensor([0.0, 0.25, 1.0])
    assert check_time(t) is t
    assert check_time(t, batch=3) is t
    assert check_time(torch.zeros(0)).numel() == 0  # an empty batch is not an error


@pytest.mark.parametrize(
    "bad, match",
    [
        (0.5, "torch tensor"),
        (torch.tensor(0.5), "shape"),
        (torch.zeros(2, 1), "shape"),
        (torch.tensor([0, 1]), "float"),
        (torch.tensor([-0.01, 0.5]), r"\[0, 1\]"),
        (torch.tensor([0.5, 1.01]), r"\[0, 1\]"),
        (torch.tensor([0.5, float("nan")]), r"\[0, 1\]"),
    ],
)
def test_check_time_rejects_bad_times(bad, match):
    with pytest.raises(ValueError, match=match):
        check_time(bad)


def test_check_time_rejects_wrong_batch():
    with pytest.raises(ValueError, match="one time per sample"):
        check_time(torch.zeros(3), batch=4)


def test_check_positive_int():
    assert check_positive_int(3, "steps") == 3
    for bad in (0, -2, 1.5, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="steps"):
            check_positive_int(bad, "steps")


def test_check_points():
    x = torch.zeros(5, 2)
    assert check_points(x) is x
    assert check_points(x, dim=2) is x
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        check_points(torch.zeros(5))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        check_points([[0.0, 1.0]])
    with pytest.raises(ValueError, match="3 columns"):
        check_points(x, dim=3)


def test_check_same_shape():
    check_same_shape(torch.zeros(2, 3), torch.ones(2, 3), "a", "b")
    with pytest.raises(ValueError, match="a and b"):
        check_same_shape(torch.zeros(2, 3), torch.zeros(3, 2), "a", "b")


def test_choose_lists_the_valid_names():
    assert choose("cat", ("cat", "dog"), "animal") == "cat"
    with pytest.raises(ValueError, match="unknown animal 'cow'; choose one of: cat, dog"):
        choose("cow", ("dog", "cat"), "animal")


# --- the validators added for bad input everywhere (issue 20) ---------------------------------------------


def test_check_number_accepts_real_numbers_of_every_kind_and_refuses_the_rest():
    assert checks.check_number(np.float32(0.5), "eta", low=0, high=1) == 0.5
    assert checks.check_number(torch.tensor(2.0, requires_grad=True), "w") == 2.0
    with pytest.raises(TypeError, match="eta must be a real number, got str"):
        checks.check_number("0.5", "eta")
    with pytest.raises(TypeError, match="eta must be a real number, got bool"):
        checks.check_number(True, "eta")
    with pytest.raises(ValueError, match="eta must be a finite number, got nan"):
        checks.check_number(float("nan"), "eta")
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\], got 1.5"):
        checks.check_number(1.5, "eta", low=0, high=1)
    with pytest.raises(ValueError, match=r"dt must lie in \(0, inf\), got 0"):
        checks.check_number(0.0, "dt", low=0, low_open=True)


def test_check_finite_counts_the_bad_values_and_passes_finite_ones():
    x = torch.ones(2, 3)
    assert checks.check_finite(x, "x") is x
    x[0, 1], x[1, 2] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="x holds 2 NaN or infinite value"):
        checks.check_finite(x, "x")


def test_check_model_output_names_both_shapes():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"returned shape \(4, 1\) for an input of shape \(4, 2\)"):
        checks.check_model_output(torch.zeros(4, 1), x)
    with pytest.raises(TypeError, match="must return a tensor"):
        checks.check_model_output([0.0], x)


def test_check_finite_step_names_the_step_and_the_time():
    with pytest.raises(ValueError, match=r"ddim produced NaN or inf at step 3 \(t = 0.25\)"):
        checks.check_finite_step(torch.tensor([float("nan")]), 3, 0.25, "ddim")


def test_check_instance_tells_a_class_a_string_and_another_kind_apart():
    from lessons.schedules import CosineSchedule, Schedule

    s = CosineSchedule()
    assert checks.check_instance(s, Schedule, "schedule") is s
    with pytest.raises(TypeError, match=r"the class CosineSchedule itself: call it, CosineSchedule\(\)"):
        checks.check_instance(CosineSchedule, Schedule, "schedule")
    with pytest.raises(TypeError, match="not the string 'cosine'"):
        checks.check_instance("cosine", Schedule, "schedule")
    with pytest.raises(TypeError, match="got int"):
        checks.check_instance(3, Schedule, "schedule")


def test_check_matches_model_says_how_to_convert():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(
        ValueError, match=r"x has dtype torch.float64 but the model's weights are torch.float32"
    ):
        checks.check_matches_model(torch.zeros(3, 2, dtype=torch.float64), net)
    assert checks.check_matches_model(torch.zeros(3, 2), lambda x: x).shape == (
        3,
        2,
    )  # a function: nothing to match


def test_check_memory_refuses_what_does_not_fit_in_readable_units(monkeypatch):
    monkeypatch.setattr(checks, "available_memory_bytes", lambda: 3 * 2**30)
    assert checks.check_memory(2**30, "a solve") == 2**30
    with pytest.raises(
        ValueError, match=r"a solve would need about 4.0 GiB of memory, more than the 3.0 GiB"
    ):
        checks.check_memory(4 * 2**30, "a solve")
    assert checks._size(800) == "800 bytes" and checks._size(3 * 2**20) == "3.0 MiB"


def test_check_grid_check_model_check_start_check_generator_check_seed_check_callable():
    ts = torch.linspace(0, 1, 5)
    assert checks.check_grid(ts) is ts
    with pytest.raises(ValueError, match="ts must be an increasing grid"):
        checks.check_grid(ts.flip(0))
    with pytest.raises(TypeError, match="ts must be a torch tensor"):
        checks.check_grid([0.0, 1.0])
    with pytest.raises(TypeError, match="not the class Linear itself"):
        checks.check_model(torch.nn.Linear)
    with pytest.raises(ValueError, match="noise holds 1 NaN"):
        checks.check_start(lambda x, t, cond=None: x, torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="meta device"):
        checks.check_not_meta(torch.zeros(2, device="meta"), "x")
    with pytest.raises(TypeError, match="generator must be a Generator"):
        checks.check_generator(0)
    assert checks.check_seed(None, allow_none=True) is None and checks.check_seed(7) == 7
    for bad in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="seed must be a whole number between 0 and 4294967295"):
            checks.check_seed(bad)
    with pytest.raises(TypeError, match="fn must be a function, got the class Linear itself"):
        checks.check_callable(torch.nn.Linear, "fn", "a function")
