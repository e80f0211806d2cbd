"""Gaussian paths: x_t and the velocity target against the schedule and against finite differences."""

import pytest
import torch

from lessons.paths import GaussianPath, PathSample
from lessons.schedules import CosineSchedule, LinearSchedule, VESchedule, VPSchedule

SCHEDULES = [LinearSchedule(), LinearSchedule(sigma_min=0.1), CosineSchedule(), VPSchedule(), VESchedule()]


def _batch(shape=(6, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    data = 3 * torch.randn(shape, generator=g, dtype=torch.float64) + 1
    t = torch.rand(shape[0], generator=g, dtype=torch.float64) * 0.9 + 0.05
    return noise, data, t


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_x_t_and_velocity_against_the_schedule(schedule):
    noise, data, t = _batch()
    ps = GaussianPath(schedule).sample(noise, data, t)
    assert isinstance(ps, PathSample)
    c = schedule(t)
    for i in range(len(t)):  # row by row, no broadcasting helper involved
        assert torch.allclose(ps.x_t[i], c.alpha[i] * data[i] + c.sigma[i] * noise[i])
        assert torch.allclose(ps.velocity[i], c.d_alpha[i] * data[i] + c.d_sigma[i] * noise[i])
    assert ps.t is t and ps.noise is noise and ps.data is data


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_velocity_is_the_time_derivative_of_the_path(schedule):
    noise, data, t = _batch((5, 3, 2))
    path = GaussianPath(schedule)
    h = 1e-6
    fd = (path.sample(noise, data, t + h).x_t - path.sample(noise, data, t - h).x_t) / (2 * h)
    velocity = path.sample(noise, data, t).velocity
    assert velocity.shape == (5, 3, 2)
    assert torch.allclose(velocity, fd, rtol=1e-6, atol=1e-6)


def test_end_points_of_the_linear_path():
    noise, data, _ = _batch()
    path = GaussianPath(LinearSchedule())
    assert torch.equal(path.sample(noise, data, torch.zeros(6, dtype=torch.float64)).x_t, noise)
    assert torch.equal(path.sample(noise, data, torch.ones(6, dtype=torch.float64)).x_t, data)
    # the OT path's velocity is data - noise, the same at every t
    v = path.sample(noise, data, torch.full((6,), 0.3, dtype=torch.float64)).velocity
    assert torch.allclose(v, data - noise)


def test_shape_and_time_errors():
    noise, data, t = _batch()
    path = GaussianPath(CosineSchedule())
    with pytest.raises(ValueError, match="same shape"):
        path.sample(noise[:, :1], data, t)
    with pytest.raises(ValueError, match="one time per sample"):
        path.sample(noise, data, t[:3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(noise, data, t + 1)
    with pytest.raises(ValueError, match="shape"):
        path.sample(noise, data, t[:, None])


def test_repr_names_the_schedule():
    assert repr(GaussianPath(CosineSchedule())) == "GaussianPath(CosineSchedule(offset=0.0))"


@pytest.mark.parametrize(
    "schedule, match",
    [
        (CosineSchedule, r"you passed the class CosineSchedule itself: call it, CosineSchedule\(\)"),
        ("linear", r"not the name 'linear'; make one with make_schedule\('linear'\)"),
        (GaussianPath(LinearSchedule()), "pass its schedule, e.g. path.schedule"),
        (None, "schedule must be a Schedule object"),
    ],
)
def test_a_path_needs_a_schedule_object(schedule, match):
    with pytest.raises(TypeError, match=match):
        GaussianPath(schedule)


def test_sample_refuses_non_finite_and_non_float_input():
    noise, data, t = _batch()
    path = GaussianPath(LinearSchedule())
    bad = data.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="data holds 1 NaN or infinite"):
        path.sample(noise, bad, t)
    infinite = noise.clone()
    infinite[2, 1] = float("inf")
    with pytest.raises(ValueError, match="noise holds 1 NaN or infinite"):
        path.sample(infinite, data, t)
    with pytest.raises(
        ValueError, match=r"float tensor, got dtype torch.int64; convert it with data.float\(\)"
    ):
        path.sample(noise, data.long(), t)
    with pytest.raises(TypeError, match="noise must be a torch tensor"):
        path.sample(noise.tolist(), data, t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        path.sample(noise, data, torch.full_like(t, float("nan")))


def test_an_empty_batch_gives_an_empty_sample():
    empty = torch.zeros(0, 2)
    ps = GaussianPath(CosineSchedule()).sample(empty, empty, torch.zeros(0))
    assert ps.x_t.shape == (0, 2) and ps.velocity.shape == (0, 2)


def test_the_infinite_velocity_at_vp_data_end_is_refused():
    noise, data, _ = _batch()
    t = torch.full((6,), 0.5, dtype=torch.float64)
    t[3] = 1.0
    with pytest.raises(ValueError, match=r"velocity target .* is infinite at t = 1 on VPSchedule"):
        GaussianPath(VPSchedule()).sample(noise, data, t)
    with pytest.raises(ValueError, match="infinite"):
        GaussianPath(CosineSchedule(offset=0.008)).sample(noise, data, t)
    for schedule in (CosineSchedule(), LinearSchedule()):  # d_sigma stays finite where sigma = 0
        for dtype in (torch.float32, torch.float64):
            ps = GaussianPath(schedule).sample(noise.to(dtype), data.to(dtype), t.to(dtype))
            assert torch.isfinite(ps.velocity).all()
