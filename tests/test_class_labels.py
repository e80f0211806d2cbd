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
        [0, 1, 2],
    ],
)
def test_check_labels_refuses_what_is_not_one_label_per_sample(cond):
    with pytest.raises(ValueError, match="class labels, one per sample"):
        check_labels(cond, 10, 3)


def test_labels_or_null():
    assert labels_or_null(None, 5, 2).tolist() == [5, 5]
    cond = torch.tensor([4, 0])
    assert labels_or_null(cond, 5, 2) is cond
