"""The training loop: history, seeds, a safe stop on NaN that keeps the last good step's weights, bad input."""

import copy
import math

import pytest
import torch

from lessons.models import MLP
from lessons.training import EMA, TrainResult, random_batches, seed_everything, train, train_with_ema


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
def test_non_finite_loss_stops_warns_and_keeps_the_last_good_step(bad_value):
    model, loss_fn, next_batch = _setup()
    weights_before_step = []  # the weights at the start of each step, recorded independently
    bad_step = 13

    def flaky_loss(model, batch):
        weights_before_step.append(copy.deepcopy(model.state_dict()))
        loss = loss_fn(model, batch)
        return loss * bad_value if len(weights_before_step) == bad_step else loss

    with pytest.warns(RuntimeWarning, match="training stopped at step 13: the loss was"):
        result = train(model, flaky_loss, next_batch, steps=30, lr=1e-2, progress=False)
    assert result.steps_done == 12 and len(result.losses) == 12
    assert str(bad_value) in result.stopped_early and "gradient" not in result.stopped_early
    assert (
        "step 12, the last good one" in result.stopped_early
        and "smaller learning rate" in result.stopped_early
    )
    # the weights after step 12 are those at the start of step 13: the last good step's, not an older snapshot
    last_good, final = weights_before_step[12], model.state_dict()
    assert all(torch.equal(last_good[k], final[k]) for k in final)
    assert not all(torch.equal(weights_before_step[11][k], final[k]) for k in final)  # step 11's are not kept


def test_non_finite_gradient_stops_names_the_gradient_and_the_weights():
    model, loss_fn, next_batch = _setup()
    before_step = []
    calls = [0]

    def bad_gradient_loss(model, batch):
        calls[0] += 1
        before_step.append(copy.deepcopy(model.state_dict()))
        loss = loss_fn(model, batch)
        if calls[0] == 3:  # finite value, NaN gradient: sqrt at 0 (0 * inf)
            return loss + torch.sqrt(torch.zeros(()) * loss)
        return loss

    with pytest.warns(RuntimeWarning, match="step 3: the loss was finite but its gradient was not"):
        result = train(model, bad_gradient_loss, next_batch, steps=10, progress=False)
    assert result.steps_done == 2 and "net.0.weight" in result.stopped_early
    assert all(torch.equal(before_step[2][k], v) for k, v in model.state_dict().items())  # after step 2


def test_gradient_of_one_weight_named_and_no_clipping_hint():
    model, loss_fn, next_batch = _setup()

    def loss_with_bad_bias(model, batch):  # only the last layer's bias gets a NaN gradient: 0 * inf
        return loss_fn(model, batch) + (model.net[-1].bias.sum() * 0) ** 0.5

    with pytest.warns(RuntimeWarning, match="from the start") as record:
        result = train(model, loss_with_bad_bias, next_batch, steps=3, grad_clip=None, progress=False)
    message = str(record[0].message)
    assert result.steps_done == 0 and "net.4.bias" in message and "net.0.weight" not in message
    assert "grad_clip" in message


def test_failure_at_the_first_step_keeps_the_initial_weights():
    model, loss_fn, next_batch = _setup()
    initial = copy.deepcopy(model.state_dict())
    with pytest.warns(RuntimeWarning, match="step 1: the loss was nan"):
        result = train(model, lambda m, b: loss_fn(m, b) * float("nan"), next_batch, steps=5, progress=False)
    assert result.steps_done == 0 and result.losses == []
    assert all(torch.equal(initial[k], v) for k, v in model.state_dict().items())


def test_batchnorm_statistics_of_the_bad_step_are_undone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        batch = batch * float("inf") if calls[0] == 3 else batch  # poisons the running mean in forward
        return model(batch).pow(2).mean()

    with pytest.warns(RuntimeWarning, match="step 3"):
        train(model, loss_fn, lambda: torch.randn(8, 2), steps=5, progress=False)
    assert torch.isfinite(model[1].running_mean).all() and torch.isfinite(model[1].running_var).all()


def test_a_per_sample_loss_is_refused_and_its_mean_trains():
    from lessons.schedules import LinearSchedule
    from lessons.weighting import fm_weighting, weighted_eps_loss

    model, _, next_batch = _setup()
    schedule = LinearSchedule()

    def per_sample(model, batch):  # (B,), t kept away from the singular ends
        return weighted_eps_loss(
            model, schedule, fm_weighting, batch, t=torch.rand(batch.shape[0]) * 0.9 + 0.05
        )

    with pytest.raises(ValueError, match=r"shape \(32,\) at step 1: reduce it with \.mean\(\)"):
        train(model, per_sample, next_batch, steps=5, progress=False)
    result = train(model, lambda m, b: per_sample(m, b).mean(), next_batch, steps=5, progress=False)
    assert result.steps_done == 5 and all(math.isfinite(v) for v in result.losses)


@pytest.mark.parametrize(
    "loss_fn, error, match",
    [
        (lambda m, b: 1.0, TypeError, "scalar torch tensor"),
        (lambda m, b: torch.tensor(1.0), ValueError, "does not depend on the model"),
        (lambda m, b: m(x=b, t=torch.rand(b.shape[0])), ValueError, "reduce it with .mean()"),
    ],
)
def test_bad_losses_are_refused_in_words(loss_fn, error, match):
    model, _, next_batch = _setup()
    with pytest.raises(error, match=match):
        train(model, loss_fn, next_batch, steps=3, progress=False)


def test_bad_batches_are_refused_in_words():
    model, loss_fn, _ = _setup()
    with pytest.raises(
        TypeError, match=r"next_batch\(\) must return a tensor or a tuple of tensors, got list"
    ):
        train(model, loss_fn, lambda: [[0.0, 1.0]], steps=3, progress=False)


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
        ({"steps": 5, "lr": float("inf")}, "learning rate"),
        ({"steps": 5, "grad_clip": 0.0}, "grad_clip"),
        ({"steps": 5, "grad_clip": -1.0}, "grad_clip"),
        ({"steps": 5, "grad_clip": float("inf")}, "grad_clip"),
        ({"steps": 5, "grad_clip": float("nan")}, "grad_clip"),
        ({"steps": 5, "callback_every": 0}, "callback_every"),
        ({"steps": 5, "callback_every": -3}, "callback_every"),
        ({"steps": 5, "weight_decay": -0.1}, "weight_decay"),
        ({"steps": 5, "seed": -1}, "seed"),
        ({"steps": 5, "seed": 1.5}, "seed"),
        ({"steps": 5, "seed": 2**32}, "seed"),
        ({"steps": 5, "seed": True}, "seed"),
        ({"steps": 5, "device": "gpu"}, "unknown device 'gpu'; choose one of: cuda, mps, cpu"),
        ({"steps": 5, "device": "cuda:x"}, "unknown device"),
    ],
)
def test_bad_arguments_raise_before_any_work(kwargs, match):
    model, loss_fn, next_batch = _setup()
    before = copy.deepcopy(model.state_dict())
    calls = []
    with pytest.raises(ValueError, match=match):
        train(model, loss_fn, lambda: calls.append(1) or next_batch(), progress=False, **kwargs)
    assert calls == [] and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("model",), {}, "model must be a Module object"),
        ((MLP,), {}, "you passed the class MLP itself"),
        ((None, "loss", None), {}, "loss_fn must be a function"),
        ((None, None, torch.zeros(3)), {}, "next_batch must be a function"),
        ((), {"lr": "0.1"}, "learning rate lr must be a real number"),
        ((), {"device": 0}, r"device must be a name \(choose one of: cuda, mps, cpu\)"),
        ((), {"callback": "plot"}, "callback must be a function"),
    ],
)
def test_wrong_kinds_of_objects_raise_type_errors(args, kwargs, match):
    model, loss_fn, next_batch = _setup()
    full = [model, loss_fn, next_batch]
    for i, value in enumerate(args):
        if value is not None:
            full[i] = value
    with pytest.raises(TypeError, match=match):
        train(*full, steps=3, progress=False, **kwargs)


def test_a_model_without_trainable_weights_is_refused():
    model, loss_fn, next_batch = _setup()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable weights"):
        train(model, loss_fn, next_batch, steps=3, progress=False)


def test_the_device_is_accepted_as_a_name_or_a_torch_device():
    for device in ("cpu", torch.device("cpu")):
        model, loss_fn, next_batch = _setup()
        assert train(model, loss_fn, next_batch, steps=2, device=device, progress=False).steps_done == 2


@pytest.mark.parametrize("seed", [-1, 2.0, "0", 2**32])
def test_seed_everything_refuses_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a whole number between 0 and 4294967295"):
        seed_everything(seed)


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


def test_ema_refuses_bad_decay_and_another_model():
    model = torch.nn.Linear(2, 1)
    for decay in (float("nan"), -0.1, 1.5):
        with pytest.raises(ValueError, match="EMA decay"):
            EMA(model, decay)
    with pytest.raises(TypeError, match="model must be a Module"):
        EMA("model")
    with pytest.raises(ValueError, match="the same weight shapes"):
        EMA(model).update(torch.nn.Linear(3, 1))


def test_random_batches_refuses_empty_data_bad_generators_and_giant_batches():
    with pytest.raises(ValueError, match="data holds no rows"):
        random_batches(torch.zeros(0, 2), 4)
    with pytest.raises(ValueError, match=r"same number of rows N, got \[3, 4\]"):
        random_batches((torch.zeros(3, 2), torch.zeros(4)), 2)
    with pytest.raises(TypeError, match="generator must be a Generator object"):
        random_batches(torch.zeros(3, 2), 2, "seed 0")
    with pytest.raises(ValueError, match="[KMGT]iB of memory"):
        random_batches(torch.zeros(3, 2), 10**12)


def test_a_step_count_whose_loss_history_cannot_fit_is_refused_at_once():
    model, loss_fn, next_batch = _setup()
    with pytest.raises(ValueError, match="[KMGT]iB of memory"):
        train(model, loss_fn, next_batch, steps=10**12, progress=False)


def test_a_gradient_whose_norm_overflows_is_named_as_too_large():
    model = _Scalar().float()  # float32 weights w and v, each with gradient 3e38: finite, their norm is not
    model.v = torch.nn.Parameter(torch.zeros(()))

    def loss_fn(m, batch):
        return m.w * 3e38 + m.v * 3e38 + 0 * batch.sum()

    with pytest.warns(RuntimeWarning, match="gradient was too large"):
        result = train(model, loss_fn, lambda: torch.zeros(1), steps=2, progress=False)
    assert result.steps_done == 0 and model.w.item() == 0.0


def test_training_shows_its_bar_with_the_running_loss_only_when_asked_or_slow(capsys, monkeypatch):
    model, loss_fn, next_batch = _setup()
    train(model, loss_fn, next_batch, steps=60, progress=True)
    err = capsys.readouterr().err
    assert "training" in err and "loss=" in err
    train(model, loss_fn, next_batch, steps=20)  # the default: a short run stays quiet
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("lessons.progress.QUIET_SECONDS", 0.0)  # every run counts as slow
    train(model, loss_fn, next_batch, steps=20)
    assert "training" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress"):
        train(model, loss_fn, next_batch, steps=5, progress="yes")


def test_step_flops_counts_matrix_products_in_closed_form_and_leaves_no_gradients():
    from lessons.training import step_flops

    def loss(model, batch):
        return model(batch).pow(2).mean()

    batch = torch.randn(7, 5)
    one = torch.nn.Linear(5, 3)
    # forward x W^T: 2 B i o; backward: only the weight's gradient (the input needs none), 2 B i o
    assert step_flops(one, loss, batch) == 4 * 7 * 5 * 3
    assert all(p.grad is None for p in one.parameters())
    two = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    # forward of both layers, both weights' gradients, and the hidden activation's gradient (second layer only)
    expected = 2 * 7 * (5 * 4 + 4 * 3) * 2 + 2 * 7 * 4 * 3
    assert step_flops(two, loss, batch) == expected
    wrong = 2 * 7 * (5 * 4 + 4 * 3) * 3  # the rule of thumb "backward = 2 x forward" overcounts here
    assert step_flops(two, loss, batch) != wrong


def test_train_with_ema_averages_every_step_and_calls_back_with_the_average():
    model, loss_fn, next_batch = _setup()
    start = [p.detach().clone() for p in model.parameters()]
    seen = []
    ema_model, result = train_with_ema(
        model,
        loss_fn,
        next_batch,
        7,
        ema_decay=0.5,
        callback=lambda s, m, losses: seen.append((s, m)),
        callback_every=3,
        seed=0,
    )
    assert result.steps_done == 7 and [s for s, _ in seen] == [3, 6, 7]
    assert all(m is ema_model for _, m in seen) and ema_model is not model
    # the same run by hand: EMA updated after each of train's steps, with its warm-up decay min(d, (1+n)/(10+n))
    hand_model, _, _ = _setup()
    hand = EMA(hand_model, 0.5)
    train(
        hand_model,
        loss_fn,
        next_batch,
        7,
        seed=0,
        callback=lambda s, m, losses: hand.update(m),
        callback_every=1,
    )
    for a, b in zip(ema_model.parameters(), hand.model.parameters()):
        assert torch.equal(a, b)
    # control: the average is not the last weights, nor the first
    last = list(model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(ema_model.parameters(), last))
    assert not all(torch.equal(a, b) for a, b in zip(ema_model.parameters(), start))
    with pytest.raises(TypeError, match="callback must be a function"):
        train_with_ema(model, loss_fn, next_batch, 2, callback="plot")
    with pytest.raises(ValueError, match="ema_decay"):
        train_with_ema(model, loss_fn, next_batch, 2, ema_decay=1.0)
