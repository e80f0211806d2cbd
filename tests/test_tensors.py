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


def test_expand_like_refuses_non_tensors_in_words():
    with pytest.raises(TypeError, match="values must be a torch tensor"):
        expand_like([1.0, 2.0], torch.zeros(2, 3))
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        expand_like(torch.ones(2), [[0.0], [0.0]])
    with pytest.raises(ValueError, match="batch dimension"):
        expand_like(torch.ones(1), torch.tensor(0.0))
    assert expand_like(torch.ones(1), torch.zeros(4, 2)).shape == (1, 1)  # one value for every sample


@pytest.mark.parametrize(
    "t, x, error, match",
    [
        (1.5, torch.zeros(2), ValueError, r"t must lie in \[0, 1\], got 1.5"),
        (-0.1, torch.zeros(2), ValueError, r"t must lie in \[0, 1\]"),
        (float("nan"), torch.zeros(2), ValueError, "t must be a finite number"),
        ("0.5", torch.zeros(2), TypeError, "t must be a real number"),
        (0.5, torch.zeros(2, dtype=torch.long), ValueError, r"float tensor, got dtype torch.int64"),
        (0.5, [0.0, 0.0], TypeError, "x must be a torch tensor"),
        (0.5, torch.tensor(1.0), ValueError, "batch dimension"),
    ],
)
def test_time_like_refuses_bad_times_and_states(t, x, error, match):
    with pytest.raises(error, match=match):
        time_like(t, x)


def test_time_like_takes_a_one_element_tensor():
    assert time_like(torch.tensor(0.25), torch.zeros(3)).tolist() == [0.25] * 3


def test_normal_like_refuses_bad_states_and_generators():
    with pytest.raises(ValueError, match=r"convert it with x.float\(\)"):
        normal_like(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        normal_like((3, 2))
    with pytest.raises(TypeError, match="generator must be a Generator object"):
        normal_like(torch.zeros(3), generator=11)
    with pytest.raises(TypeError, match=r"call it, Generator\(\)"):
        normal_like(torch.zeros(3), generator=torch.Generator)
