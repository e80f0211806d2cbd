"""SavedTensorMeter: the bytes autograd saves for backward, counted once per storage, released with the graph."""

import gc

import torch

from lessons.autograd_memory import SavedTensorMeter


def test_counts_the_tensors_an_operation_saves():
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    with SavedTensorMeter() as meter:
        y = torch.exp(x)  # exp saves its output: 1000 doubles
        assert meter.live_bytes == 8000
        z = (y * x).sum()  # mul saves both factors: y (already counted) and x
        assert meter.live_bytes == 16000
        z.backward()
    assert meter.peak_bytes == 16000 and meter.peak_megabytes == 16000 / 2**20
    assert meter.live_bytes == 0  # the graph was freed by backward
    assert torch.allclose(x.grad, torch.exp(x) * (1 + x))


def test_retained_graphs_are_released_when_dropped():
    w = torch.randn(50, 50, requires_grad=True)
    with SavedTensorMeter() as meter:
        x = torch.randn(20, 50, requires_grad=True)
        h = torch.tanh(x @ w)
        (g,) = torch.autograd.grad(h.sum(), x, create_graph=True)
        g.pow(2).sum().backward(retain_graph=True)
        assert meter.live_bytes > 0
        del h, g
        gc.collect()
    assert meter.live_bytes == 0


def test_a_longer_chain_holds_proportionally_more():
    x = torch.randn(256, requires_grad=True)

    def peak(n):
        with SavedTensorMeter() as meter:
            y = x
            for _ in range(n):
                y = torch.sin(y)  # each sin saves its input: 256 floats
            y.sum().backward()
        return meter.peak_bytes

    assert peak(10) == 10 * 256 * 4
    assert peak(40) == 4 * peak(10)


def test_a_meter_cannot_be_nested_in_itself_but_can_be_used_again():
    import pytest

    x = torch.randn(100, requires_grad=True)
    meter = SavedTensorMeter()
    with meter:
        with pytest.raises(ValueError, match="already measuring"):
            meter.__enter__()
        torch.exp(x).sum().backward()
    with meter:  # a second block goes on counting: the same peak, as nothing is held between them
        torch.exp(x).sum().backward()
    assert meter.peak_bytes == 400 and meter.live_bytes == 0
    with pytest.raises(ValueError, match="exited without being entered"):
        SavedTensorMeter().__exit__(None, None, None)
