"""lessons.class_labels: the null class and the checks every class-conditional model applies."""

import pytest
import torch

from lessons.class_labels import check_labels, labels_or_null, null_labels


def test_null_labels_are_the_extra_index():
    null = null_labels(4, 10)
    assert null.dtype == torch.long and null.tolist() == [10, 10, 10, 10]


def test_check_labels_accepts_classes_and_the_null_class():
    for cond in (torch.tensor([0, 3, 10]), torch.tensor([1, 2, 9], dtype=torch.int32)):
        assert check_labels(cond, 10, 3) is cond


@pytest.mark.parametrize(
    "cond",
    [
        torch.tensor([0, 11, 2]),
        torch.tensor([-1, 0, 0]),
        torch.tensor([0.0, 1.0, 2.0]),
        torch.tensor([True, False, True]),
        torch.tensor([0, 1]),
        torch.zeros(3, 1).long(),
    ],
)
def test_check_labels_refuses_what_is_not_one_label_per_sample(cond):
    with pytest.raises(ValueError, match="class labels, one per sample"):
        check_labels(cond, 10, 3)


def test_labels_or_null():
    assert labels_or_null(None, 5, 2).tolist() == [5, 5]
    cond = torch.tensor([4, 0])
    assert labels_or_null(cond, 5, 2) is cond


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch": -1}, ValueError, "batch size"),
        ({"batch": "2"}, ValueError, "batch size"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"device": "gpu"}, ValueError, "unknown device 'gpu'.*cuda"),
        ({"device": 3}, TypeError, "device name"),
    ],
)
def test_null_labels_refuses_bad_sizes_and_devices(kwargs, error, match):
    with pytest.raises(error, match=match):
        null_labels(**{"batch": 2, "num_classes": 10, **kwargs})


@pytest.mark.parametrize(
    "cond, error, match",
    [
        ([0, 1, 2], TypeError, "torch.tensor"),
        ("0 1 2", TypeError, "torch.tensor"),
        (torch.tensor([0.0, 1.0, 2.0]), ValueError, r"cond\.long\(\)"),
        (torch.zeros(3, 1).long(), ValueError, r"shape \(3, 1\).*reshape"),
        (torch.tensor([0, 11, 2]), ValueError, "label 11, but this model knows only 10 classes"),
        (torch.tensor([0, -1, 2]), ValueError, "label -1: labels are never negative"),
    ],
)
def test_check_labels_says_what_is_wrong(cond, error, match):
    with pytest.raises(error, match=match):
        check_labels(cond, 10, 3)


def test_check_labels_refuses_labels_on_another_device_and_bad_counts():
    with pytest.raises(ValueError, match="cond is on cpu but the model is on meta"):
        check_labels(torch.tensor([0, 1]), 10, 2, device=torch.device("meta"))
    with pytest.raises(ValueError, match="num_classes"):
        check_labels(torch.tensor([0, 1]), 0, 2)
    with pytest.raises(ValueError, match="unknown device"):
        labels_or_null(None, 5, 2, device="gpu")
    with pytest.raises(ValueError, match="label 6"):
        labels_or_null(torch.tensor([6, 0]), 5, 2)
    assert check_labels(torch.zeros(0, dtype=torch.long), 10, 0).numel() == 0  # an empty batch is fine


def test_null_labels_checks_memory_before_allocating(monkeypatch):
    monkeypatch.setattr("lessons.checks.available_memory_bytes", lambda: 1000)
    with pytest.raises(ValueError, match="2000000 null labels would need"):
        null_labels(2_000_000, 10)
