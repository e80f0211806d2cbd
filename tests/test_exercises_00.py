"""lessons.exercises_00: the check passes lesson 00's solution and names the slip of a typical wrong answer."""

import pytest
import torch
from exercise_helpers import assert_rejected_with_hint, wrong_answer_ids

from lessons import exercises, exercises_00
from lessons.exercises import review, solution


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """review and solution find lesson 00's exercise (as they will once LESSON_CHECKS lists exercises_00)."""
    for name, checker in exercises_00.CHECKS.items():
        monkeypatch.setitem(exercises.EXERCISES, name, (exercises_00.LESSON, checker))


def _path(data, noise, t, velocity):
    x_t = t[:, None] * data + (1 - t[:, None]) * noise
    return x_t, velocity(data, noise, x_t)


def path_reversed_velocity(data, noise, t):
    return _path(data, noise, t, lambda data, noise, x_t: noise - data)


def path_way_left(data, noise, t):
    return _path(data, noise, t, lambda data, noise, x_t: data - x_t)


def path_velocity_data(data, noise, t):
    return _path(data, noise, t, lambda data, noise, x_t: data)


def path_ddpm_time(data, noise, t):
    return _path(noise, data, t, lambda noise, data, x_t: noise - data)  # the roles of data and noise swapped


def path_x_t_only(data, noise, t):
    return _path(data, noise, t, lambda data, noise, x_t: None)[0]


def path_as_a_stack(data, noise, t):
    return torch.stack(solution("linear_path")(data, noise, t))


def path_t_unbroadcast(data, noise, t):
    return t * data + (1 - t) * noise, data - noise  # (B,) times (B, 2): torch refuses to broadcast


def path_half_way(data, noise, t):
    return _path(data, noise, 0.5 * t, lambda data, noise, x_t: data - noise)  # no slip it knows


WRONG = [
    ("linear_path", path_reversed_velocity, "noise - data as the velocity", "points towards the data"),
    ("linear_path", path_way_left, "data - x_t, the way left, as the velocity", "the way still to go"),
    ("linear_path", path_velocity_data, "the velocity data, the noise's part left out", "is -noise"),
    ("linear_path", path_ddpm_time, "t noise + (1 - t) data: t = 1 read as noise", "t = 1 is data"),
    ("linear_path", path_x_t_only, None, "return the pair (x_t, velocity)"),
    ("linear_path", path_as_a_stack, None, "return the pair (x_t, velocity)"),
    ("linear_path", path_t_unbroadcast, None, "It raised RuntimeError"),
    ("linear_path", path_half_way, None, "t as a column t[:, None]"),
]


@pytest.mark.parametrize("name, answer, slip, hint", WRONG, ids=wrong_answer_ids(WRONG))
def test_a_typical_wrong_answer_is_rejected_with_its_hint(name, answer, slip, hint):
    assert_rejected_with_hint(name, answer, slip, hint)


def test_the_solution_passes_the_same_way_twice_and_a_stub_is_not_done_yet():
    first = review("linear_path", solution("linear_path"))
    assert first.passed, first.text
    assert review("linear_path", solution("linear_path")).text == first.text

    def stub(data, noise, t):
        raise NotImplementedError("hint: t = 0 is noise")

    feedback = review("linear_path", stub)
    assert feedback.status == "not done yet" and "hint: t = 0 is noise" in feedback.text


def test_the_velocity_is_the_time_derivative_of_the_point():
    """Independent of the library: central differences in t of the solution's own x_t give its velocity."""
    g = torch.Generator().manual_seed(1)
    data, noise = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    t, h = 0.1 + 0.8 * torch.rand(50, generator=g, dtype=torch.float64), 1e-6
    path = solution("linear_path")
    x_t, velocity = path(data, noise, t)
    derivative = (path(data, noise, t + h)[0] - path(data, noise, t - h)[0]) / (2 * h)
    assert torch.allclose(derivative, velocity, rtol=0, atol=1e-8)
    assert torch.equal(path(data, noise, torch.zeros(50, dtype=torch.float64))[0], noise)  # t = 0 is noise
    assert torch.equal(path(data, noise, torch.ones(50, dtype=torch.float64))[0], data)  # t = 1 is data
