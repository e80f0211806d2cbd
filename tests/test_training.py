"""The training loop: history, seeds, a safe stop on NaN that restores the last good weights, bad input."""

import copy
import math

import pytest
import torch

from lessons.models import MLP
from lessons.training import EMA, TrainResult, random_batches, seed_everything, train


def _setup(seed=0):
    torch.manual_seed(seed)
    model = MLP(dim=2, hidden=16, depth=2, time_dim=8)

    def next_batch():
        return torch.randn(32, 2) * 2 + 1

    def loss_fn(model, batch):
        return ((model(x=batch, t=torch.full((batch.shape[0],), 0.5)) - batch) ** 2).mean()

    return model, loss_fn, next_batch


def test_history_length_and_progress():
    model, loss_fn, next_batch = _setup()
    result = train(model, loss_fn, next_batch, steps=60, lr=1e-2, progress=False)
    assert isinstance(result, TrainResult)
    assert len(result.losses) == result.steps_done == 60 and result.stopped_early is None
    assert result.seconds > 0 and all(math.isfinite(v) for v in result.losses)
    assert sum(result.losses[-10:]) < sum(result.losses[:10])  # it learns
    assert not model.training  # left in eval mode


def test_same_seed_same_losses_and_weights():
    runs = []
    for _ in range(2):
        model, loss_fn, next_batch = _setup(seed=0)
        runs.append(
            (train(model, loss_fn, next_batch, steps=25, seed=7, progress=False).losses, model.state_dict())
        )
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    model, loss_fn, next_batch = _setup(seed=0)
    assert train(model, loss_fn, next_batch, steps=25, seed=8, progress=False).losses != runs[0][0]


def test_seed_everything_repeats_torch_draws():
    seed_everything(3)
    first = torch.rand(3)
    seed_everything(3)
    assert torch.equal(first, torch.rand(3))


def test_batches_of_tuples_are_passed_through():
    model, _, _ = _setup()
    seen = []

    def loss_fn(model, batch):
        seen.append(type(batch))
        x, y = batch
        return ((model(x=x, t=torch.zeros(x.shape[0])) - y) ** 2).mean()

    train(model, loss_fn, lambda: (torch.randn(8, 2), torch.randn(8, 2)), steps=3, progress=False)
    assert seen == [tuple] * 3


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_warns_and_restores_the_last_snapshot(bad_value):
    model, loss_fn, next_batch = _setup()
    weights_before_step = []  # the weights at the start of each step, recorded independently
    bad_step = 13

    def flaky_loss(model, batch):
        weights_before_step.append(copy.deepcopy(model.state_dict()))
        loss = loss_fn(model, batch)
        return loss * bad_value if len(weights_before_step) == bad_step else loss

    with pytest.warns(RuntimeWarning, match="training stopped at step 13"):
        result = train(model, flaky_loss, next_batch, steps=30, lr=1e-2, snapshot_every=5, progress=False)
    assert result.steps_done == 12 and len(result.losses) == 12
    assert "step 10" in result.stopped_early and "smaller learning rate" in result.stopped_early
    # the last snapshot is the weights after step 10, i.e. at the start of step 11
    snapshot, final = weights_before_step[10], model.state_dict()
    assert all(torch.equal(snapshot[k], final[k]) for k in final)
    assert not all(torch.equal(weights_before_step[12][k], final[k]) for k in final)  # step 12's are not kept


def test_non_finite_gradient_also_stops():
    model, loss_fn, next_batch = _setup()
    initial = copy.deepcopy(model.state_dict())
    calls = [0]

    def bad_gradient_loss(model, batch):
        calls[0] += 1
        loss = loss_fn(model, batch)
        if calls[0] == 3:  # finite value, infinite gradient: sqrt at 0
            return loss + torch.sqrt(torch.zeros(()) * loss)
        return loss

    with pytest.warns(RuntimeWarning, match="step 3"):
        result = train(model, bad_gradient_loss, next_batch, steps=10, progress=False)
    assert result.steps_done == 2
    assert all(torch.equal(initial[k], v) for k, v in model.state_dict().items())  # no snapshot yet: step 0


def test_callback_runs_on_schedule():
    model, loss_fn, next_batch = _setup()
    calls = []
    train(
        model,
        loss_fn,
        next_batch,
        steps=25,
        progress=False,
        callback_every=10,
        callback=lambda step, m, losses: calls.append((step, len(losses))),
    )
    assert calls == [(10, 10), (20, 20), (25, 25)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "training steps"),
        ({"steps": -5}, "training steps"),
        ({"steps": 2.5}, "training steps"),
        ({"steps": 5, "lr": 0.0}, "learning rate"),
        ({"steps": 5, "lr": -1e-3}, "learning rate"),
        ({"steps": 5, "lr": float("nan")}, "learning rate"),
    ],
)
def test_bad_steps_or_lr_raise(kwargs, match):
    model, loss_fn, next_batch = _setup()
    with pytest.raises(ValueError, match=match):
        train(model, loss_fn, next_batch, progress=False, **kwargs)


class _Scalar(torch.nn.Module):
    """One weight w with loss = w: Adam's bias-corrected step is then exactly lr (gradient 1 at every step)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))


@pytest.mark.parametrize(
    "schedule, steps, total",
    [
        ("constant", 10, 10.0),
        # sum over n = 0..9 of (1 + cos(pi n / 10)) / 2: the cosines cancel in pairs except n = 0 and n = 5
        ("cosine", 10, 5.5),
        ("cosine", 7, 3.5 + 0.5 * sum(math.cos(math.pi * n / 7) for n in range(7))),
    ],
)
def test_learning_rate_schedule_moves_the_weight_by_the_summed_rates(schedule, steps, total):
    model, lr = _Scalar(), 1e-3
    train(
        model,
        lambda m, batch: m.w + 0 * batch.sum(),
        lambda: torch.zeros(1),
        steps=steps,
        lr=lr,
        grad_clip=None,
        progress=False,
        lr_schedule=schedule,
    )
    assert model.w.item() == pytest.approx(-lr * total, rel=1e-6)


def test_unknown_learning_rate_schedule_is_named_in_the_error():
    model, loss_fn, next_batch = _setup()
    with pytest.raises(ValueError, match="learning-rate schedule"):
        train(model, loss_fn, next_batch, steps=5, progress=False, lr_schedule="step")


def test_random_batches_draws_the_rows_torch_randint_picks():
    data, labels = torch.randn(50, 3), torch.arange(50)
    batches = random_batches(data, 8, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    for _ in range(3):  # the same rows as an independent draw of indices from the same seed
        assert torch.equal(batches(), data[torch.randint(0, 50, (8,), generator=g)])
    rows, ids = random_batches((data, labels), 16, torch.Generator().manual_seed(5))()
    assert rows.shape == (16, 3) and torch.equal(rows, data[ids])  # a tuple keeps its rows together
    torch.manual_seed(6)
    first = random_batches(data, 4)()
    torch.manual_seed(6)
    assert torch.equal(first, random_batches(data, 4)())  # no generator: torch's global one


@pytest.mark.parametrize(
    "data, size",
    [
        (torch.zeros(0, 2), 4),
        ((torch.zeros(3, 2), torch.zeros(4)), 2),
        (torch.zeros(3, 2), 0),
        ([1, 2, 3], 2),
    ],
)
def test_random_batches_refuses_bad_input(data, size):
    with pytest.raises(ValueError):
        random_batches(data, size)


def test_ema_matches_recursion():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    expected = model.weight.detach().clone()
    for n in range(1, 6):
        with torch.no_grad():
            model.weight.add_(1.0)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model.weight.detach()
        ema.update(model)
    assert torch.allclose(ema.model.weight, expected)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)
