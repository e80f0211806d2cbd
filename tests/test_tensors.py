"""lessons.tensors: per-sample broadcasting, time vectors and seeded normal draws shaped like a state."""

import pytest
import torch

from lessons.tensors import expand_like, normal_like, time_like


def test_expand_like_scales_each_sample_by_its_own_value():
    x = torch.randn(3, 2, 4, 5)
    values = torch.tensor([1.0, -2.0, 0.5])
    out = expand_like(values, x) * x
    assert expand_like(values, x).shape == (3, 1, 1, 1)
    for i in range(3):  # sample by sample, without broadcasting
        assert torch.equal(out[i], values[i] * x[i])
    assert expand_like(values, torch.zeros(3)).shape == (3,)


def test_expand_like_refuses_a_value_count_that_is_not_the_batch():
    with pytest.raises(ValueError, match="one value per sample"):
        expand_like(torch.ones(2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="one value per sample"):
        expand_like(torch.ones(3, 1), torch.zeros(3, 2))


def test_time_like_repeats_t_in_the_dtype_and_device_of_x():
    x = torch.zeros(4, 2, dtype=torch.float64)
    t = time_like(0.3, x)
    assert t.shape == (4,) and t.dtype == torch.float64 and t.device == x.device
    assert t.tolist() == [0.3] * 4


def test_normal_like_is_the_seeded_draw_of_torch_randn():
    x = torch.zeros(5, 3, dtype=torch.float64)
    z = normal_like(x, torch.Generator().manual_seed(11))
    expected = torch.randn(5, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    assert z.dtype == torch.float64 and torch.equal(z, expected)
    assert not torch.equal(z, normal_like(x, torch.Generator().manual_seed(12)))
