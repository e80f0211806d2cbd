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
