"""lessons.trajectory: the Trajectory record and the NFE counter every solver and notebook uses."""

import pytest
import torch

from lessons.models import MLP
from lessons.trajectory import CountingModel, Trajectory


def test_trajectory_final_and_steps():
    traj = Trajectory(ts=torch.linspace(0, 1, 5), xs=torch.arange(10.0).reshape(5, 2, 1), nfe=4)
    assert traj.steps == 4 and torch.equal(traj.final, traj.xs[-1])


def test_counting_model_counts_calls_and_passes_everything_through():
    seen = []

    def field(x, t, cond=None):
        seen.append(cond)
        return x * t[:, None]

    counted = CountingModel(field)
    x, t = torch.ones(3, 2), torch.full((3,), 0.5)
    for _ in range(4):
        assert torch.equal(counted(x=x, t=t), field(x=x, t=t))  # the direct call is not counted
    counted(x=x, t=t, cond="labels")
    assert counted.calls == 5 and seen == [None, None] * 4 + ["labels"]
    counted.calls = 0
    counted(x, t)
    assert counted.calls == 1


def test_counting_model_keeps_the_parameters_of_a_network():
    net = MLP(hidden=8, depth=1)
    assert [p for p in CountingModel(net).parameters()] == list(net.parameters())
    with pytest.raises(TypeError, match="model or a function"):
        CountingModel(3)
    with pytest.raises(TypeError, match="class MLP itself"):
        CountingModel(MLP)


@pytest.mark.parametrize(
    "ts, xs, nfe, match",
    [
        (torch.zeros(3, 1), torch.zeros(3, 2, 2), 0, r"ts must be a tensor of shape \(steps\+1,\)"),
        ([0.0, 1.0], torch.zeros(2, 2, 2), 0, "ts must be a tensor"),
        (torch.linspace(0, 1, 3), torch.zeros(3), 0, r"xs must be a tensor of shape \(steps\+1, B, \.\.\.\)"),
        (torch.linspace(0, 1, 3), torch.zeros(4, 2, 2), 0, "one state per time"),
        (torch.linspace(0, 1, 3), torch.zeros(3, 2, 2), -1, "nfe"),
        (torch.linspace(0, 1, 3), torch.zeros(3, 2, 2), 2.0, "nfe"),
    ],
)
def test_trajectory_refuses_inconsistent_records(ts, xs, nfe, match):
    with pytest.raises(ValueError, match=match):
        Trajectory(ts=ts, xs=xs, nfe=nfe)
