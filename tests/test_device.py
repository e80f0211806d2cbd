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


@pytest.mark.parametrize("name", ["gpu", "GPU0", "cuda:x", "cpu:0", "mps:1", ""])
def test_unknown_device_names_list_the_choices(name):
    with pytest.raises(ValueError, match="choose one of: cuda, mps, cpu"):
        pick_device(name)


@pytest.mark.parametrize("value", [0, 1.5, ["cpu"], torch.zeros(1)])
def test_a_device_of_the_wrong_kind_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"device must be a name \(choose one of: cuda, mps, cpu\)"):
        pick_device(value)
    with pytest.raises(TypeError, match="device must be a name"):
        describe_device(value)


def test_torch_devices_and_indexed_names_are_accepted(monkeypatch):
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    assert pick_device(" cpu ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="has 2 CUDA GPU"):
        pick_device("cuda:2")


def test_describe_device_refuses_unavailable_and_unknown_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        describe_device(torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        describe_device("gpu")
    assert describe_device("cpu") == f"cpu ({torch.get_num_threads()} threads)"


def test_describe_device_needs_a_device():
    with pytest.raises(TypeError, match=r"describe_device\(pick_device\(\)\)"):
        describe_device(None)
