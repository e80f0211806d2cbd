"""Device choice: the CPU on this CPU-only machine; unknown or unavailable devices are errors."""

import pytest
import torch

from lessons.device import describe_device, pick_device


def test_pick_device_matches_what_torch_sees():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device().type == expected


def test_pick_device_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


def test_pick_device_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


def test_prefer_cpu_always_works():
    assert pick_device("cpu") == torch.device("cpu")


def test_unknown_device_raises():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        pick_device("gpu")


def test_unavailable_device_raises():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="no Apple GPU"):
            pick_device("mps")


def test_describe_device_names_the_cpu_threads():
    assert describe_device(torch.device("cpu")) == f"cpu ({torch.get_num_threads()} threads)"
