"""The shared input checks: each accepts good input unchanged and rejects bad input with ValueError."""

import pytest
import torch

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
