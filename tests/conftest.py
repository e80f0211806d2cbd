"""Shared test settings: the fast budget, few threads, and a fixed seed per test."""

import os

import pytest
import torch

os.environ.setdefault("COURSE_BUDGET", "fast")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
