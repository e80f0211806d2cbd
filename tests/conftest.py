"""Shared test settings: the fast budget, few threads, and a fixed seed per test."""

import os

import pytest
import torch

os.environ.setdefault("COURSE_BUDGET", "fast")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    # one thread unless told otherwise: the tests use tiny models, where more threads only cost
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    yield
