"""The budget switch: COURSE_BUDGET picks fast or full, full by default, anything else is an error."""

import pytest

from lessons.budget import budget, by_budget


def test_default_is_full(monkeypatch):
    monkeypatch.delenv("COURSE_BUDGET", raising=False)
    assert budget() == "full"
    assert by_budget(fast=10, full=1000) == 1000


def test_empty_value_means_full(monkeypatch):
    monkeypatch.setenv("COURSE_BUDGET", "")
    assert budget() == "full"


@pytest.mark.parametrize("value, expected", [("fast", 10), ("full", 1000), (" FAST ", 10), ("Full", 1000)])
def test_fast_and_full(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_BUDGET", value)
    assert by_budget(fast=10, full=1000) == expected


def test_by_budget_returns_objects_unchanged(monkeypatch):
    fast, full = {"steps": 1}, {"steps": 2}
    monkeypatch.setenv("COURSE_BUDGET", "fast")
    assert by_budget(fast, full) is fast


@pytest.mark.parametrize("value", ["quick", "medium", "0", "fastest"])
def test_bad_value_raises(monkeypatch, value):
    monkeypatch.setenv("COURSE_BUDGET", value)
    with pytest.raises(ValueError, match=f"unknown COURSE_BUDGET '{value}'; choose one of: fast, full"):
        budget()
    with pytest.raises(ValueError, match="COURSE_BUDGET"):
        by_budget(fast=1, full=2)
