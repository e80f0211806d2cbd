"""Bad input, generated: every main public function refuses it with a ValueError or TypeError naming the argument.

hypothesis draws the mistakes (non-finite numbers, wrong shapes, counts that are negative, zero, fractional or
huge, wrong dtypes, random names); each test asserts the error class and that the message names what was wrong,
with the same word matching as scripts/probe_bad_input.py. The last tests check that probe and run it: it must pass.
"""

import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons.checkpoints import load_checkpoint, save_checkpoint
from lessons.data2d import TARGETS, sample_target
from lessons.ddim import churn_sampler, ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.device import pick_device
from lessons.flow_matching import cfm_loss
from lessons.metrics import energy_distance, mean_pairwise_distance, normalized_path_energy
from lessons.models import MLP
from lessons.optimal_transport import ot_assignment, w2
from lessons.paths import GaussianPath
from lessons.schedules import SCHEDULES, CosineSchedule, LinearSchedule, VESchedule, VPSchedule, make_schedule
from lessons.solvers import ODE_METHODS, solve_ode
from lessons.training import random_batches, train
from lessons.weighting import weighted_eps_loss

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "scripts" / "probe_bad_input.py"
_spec = importlib.util.spec_from_file_location("probe_bad_input", PROBE)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FEW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- the mistakes ----------------------------------------------------------------------------------------

non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
negative = st.floats(-1e6, -1e-6)
not_whole = st.one_of(
    st.floats(-1e6, 1e6).filter(lambda v: not float(v).is_integer()),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
)
non_positive = st.integers(-(10**6), 0)
huge = st.integers(10**12, 10**15)  # a count whose memory no machine has
bad_count = st.one_of(non_positive, not_whole)
# a name for a choice: random printable text, each test filters out its valid names
names = st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=12)


def refused(call, *expect, kinds=(ValueError, TypeError)) -> str:
    """Run call(); assert it raises one of kinds with a message that has every group of expect; return it."""
    with pytest.raises(kinds) as info:
        call()
    message = str(info.value)
    assert probe.explains(message, expect), f"the message {message!r} does not say {expect}"
    assert "weights_only" not in message
    return message


def names_it(call, name, choices) -> None:
    """call() refuses the unknown name with a message that quotes it and lists at least one valid choice."""
    message = refused(call, probe.CHOICEW)
    assert repr(name) in message or str(name) in message, message
    assert any(str(c) in message for c in choices), message


def poked(x: torch.Tensor, index: int, value: float) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[index % x.numel()] = value
    return x


@pytest.fixture(scope="module")
def mlp():
    return MLP(dim=2, hidden=16, depth=2).eval()


# --- schedules and paths -------------------------------------------------------------------------------------

PARAMETERS = [
    (LinearSchedule, "sigma_min"),
    (CosineSchedule, "offset"),
    (VPSchedule, "beta_min"),
    (VPSchedule, "beta_max"),
    (VESchedule, "sigma_min"),
    (VESchedule, "sigma_max"),
]


@SETTINGS
@given(which=st.sampled_from(PARAMETERS), value=st.one_of(non_finite, negative, st.text(max_size=3)))
def test_schedules_refuse_bad_parameters(which, value):
    cls, name = which
    refused(lambda: cls(**{name: value}), name)


@SETTINGS
@given(
    cls=st.sampled_from([LinearSchedule, CosineSchedule, VPSchedule, VESchedule]),
    where=st.integers(0, 3),
    value=st.one_of(non_finite, st.floats(1.0001, 1e6), st.floats(-1e6, -1e-4)),
)
def test_schedules_refuse_times_outside_zero_one(cls, where, value):
    t = poked(torch.full((4,), 0.5), where, value)
    refused(lambda: cls()(t), "t", "[0, 1]|nan")


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3).filter(lambda s: len(s) != 1))
def test_schedules_refuse_times_of_the_wrong_shape(shape):
    refused(lambda: VPSchedule()(torch.full(shape, 0.5)), "t", probe.SHAPEW)


@SETTINGS
@given(name=names.filter(lambda n: n not in SCHEDULES))
def test_make_schedule_names_the_unknown_family(name):
    names_it(lambda: make_schedule(name), name, SCHEDULES)


@SETTINGS
@given(
    noise_shape=st.tuples(st.integers(1, 5), st.integers(1, 4)),
    data_shape=st.tuples(st.integers(1, 5), st.integers(1, 4)),
)
def test_path_refuses_noise_and_data_of_different_shapes(noise_shape, data_shape):
    if noise_shape == data_shape:
        return
    path = GaussianPath(LinearSchedule())
    noise, data = torch.zeros(noise_shape), torch.zeros(data_shape)
    refused(lambda: path.sample(noise, data, torch.full((data_shape[0],), 0.5)), "noise|data")


@SETTINGS
@given(schedule=st.sampled_from(["linear", 3, None, LinearSchedule, GaussianPath(LinearSchedule())]))
def test_path_refuses_what_is_not_a_schedule(schedule):
    refused(lambda: GaussianPath(schedule), "schedule")


# --- samplers and solvers ----------------------------------------------------------------------------------


@SETTINGS
@given(sampler=st.sampled_from([ddim, churn_sampler]), amount=st.one_of(non_finite, negative))
def test_samplers_refuse_a_bad_eta_or_churn(mlp, sampler, amount):
    knob = "eta" if sampler is ddim else "churn"
    schedule = DiscreteVPSchedule(DDPM(10))
    call = lambda: sampler(mlp, torch.randn(4, 2), schedule, torch.linspace(0, 1, 5), **{knob: amount})  # noqa: E731
    refused(call, knob)


@SETTINGS
@given(
    ts=st.lists(st.floats(0, 1), min_size=2, max_size=6).filter(
        lambda v: any(b <= a for a, b in zip(v, v[1:]))
    )
)
def test_samplers_refuse_grids_that_do_not_increase(mlp, ts):
    schedule = DiscreteVPSchedule(DDPM(10))
    refused(lambda: ddim(mlp, torch.randn(4, 2), schedule, torch.tensor(ts)), "ts", probe.INCW)


@SETTINGS
@given(where=st.integers(0, 7), value=non_finite)
def test_samplers_refuse_non_finite_noise(mlp, where, value):
    noise = poked(torch.randn(4, 2), where, value)
    refused(lambda: DDPM(5).sample(mlp, noise), "noise", probe.NANW)


@SETTINGS
@given(steps=st.one_of(bad_count, huge))
def test_solve_ode_refuses_bad_step_counts(mlp, steps):
    want = probe.MEMW if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else "steps"
    refused(lambda: solve_ode(mlp, torch.randn(4, 2), steps=steps), want)


@SETTINGS
@given(name=names.filter(lambda n: n not in ODE_METHODS))
def test_solve_ode_names_the_unknown_method(mlp, name):
    names_it(lambda: solve_ode(mlp, torch.randn(4, 2), steps=2, method=name), name, ODE_METHODS)


@SETTINGS
@given(where=st.integers(0, 7), value=non_finite)
def test_solve_ode_refuses_a_non_finite_start(mlp, where, value):
    x = poked(torch.randn(4, 2), where, value)
    refused(lambda: solve_ode(mlp, x, steps=2), "x_start", probe.NANW)


@SETTINGS
@given(dtype=st.sampled_from([torch.float64, torch.float16, torch.bfloat16]))
def test_solve_ode_says_how_to_convert_the_dtype(mlp, dtype):
    refused(lambda: solve_ode(mlp, torch.randn(4, 2, dtype=dtype), steps=2), *probe.DTYPEW)


@SETTINGS
@given(width=st.integers(1, 4).filter(lambda w: w != 2))
def test_solve_ode_refuses_a_model_of_the_wrong_output_shape(width):
    def model(x, t, cond=None):
        return torch.zeros(x.shape[0], width)

    refused(lambda: solve_ode(model, torch.randn(4, 2), steps=2), probe.MODELW, probe.SHAPEW)


# --- losses ----------------------------------------------------------------------------------------------------


@SETTINGS
@given(where=st.integers(0, 7), value=non_finite)
def test_losses_refuse_non_finite_data(mlp, where, value):
    data = poked(torch.randn(4, 2), where, value)
    refused(lambda: cfm_loss(mlp, GaussianPath(LinearSchedule()), data), "data", probe.NANW)
    refused(lambda: DDPM(10).loss(mlp, data), "data", probe.NANW)
    refused(lambda: weighted_eps_loss(mlp, VPSchedule(), lambda log_snr: log_snr, data), "data", probe.NANW)


@SETTINGS
@given(width=st.integers(1, 4).filter(lambda w: w != 2), loss=st.sampled_from(["cfm", "ddpm"]))
def test_losses_refuse_a_model_of_the_wrong_output_shape(width, loss):
    def model(x, t, cond=None):
        return torch.zeros(x.shape[0], width)

    data = torch.randn(4, 2)
    if loss == "cfm":
        call = lambda: cfm_loss(model, GaussianPath(LinearSchedule()), data)  # noqa: E731
    else:
        call = lambda: DDPM(10).loss(model, data)  # noqa: E731
    refused(call, probe.MODELW, probe.SHAPEW)


@SETTINGS
@given(path=st.sampled_from([LinearSchedule(), "linear", GaussianPath, None]))
def test_cfm_loss_refuses_what_is_not_a_path(mlp, path):
    refused(lambda: cfm_loss(mlp, path, torch.randn(4, 2)), "path")


# --- optimal transport and metrics ------------------------------------------------------------------------------


@SETTINGS
@given(where=st.integers(0, 9), value=non_finite, solver=st.sampled_from(["emd", "assignment"]))
def test_optimal_transport_refuses_non_finite_points(where, value, solver):
    a, b = poked(torch.randn(5, 2), where, value), torch.randn(5, 2)
    refused(lambda: w2(a, b, solver), "a", probe.NANW)
    refused(lambda: w2(b, a, solver), "b", probe.NANW)
    refused(lambda: ot_assignment(a, b), "noise", probe.NANW)


@SETTINGS
@given(n=st.integers(0, 3), m=st.integers(0, 3))
def test_optimal_transport_refuses_empty_or_unequal_sets(n, m):
    if n == m and n > 0:
        return
    refused(lambda: w2(torch.zeros(n, 2), torch.zeros(m, 2), "emd"), "point|points|set|size|empty|at least")


@SETTINGS
@given(where=st.integers(0, 9), value=non_finite)
def test_metrics_refuse_non_finite_samples(where, value):
    a = poked(torch.randn(5, 2), where, value)
    refused(lambda: energy_distance(a, torch.randn(5, 2)), "a", probe.NANW)
    refused(lambda: mean_pairwise_distance(a), "x", probe.NANW)


@SETTINGS
@given(w2_squared=st.one_of(non_finite, negative, st.just(0.0)))
def test_normalized_path_energy_refuses_a_bad_w2(mlp, w2_squared):
    traj = solve_ode(mlp, torch.randn(4, 2), steps=2)
    refused(lambda: normalized_path_energy(traj, w2_squared), "w2_squared")


# --- training --------------------------------------------------------------------------------------------------

TRAIN_MISTAKES = st.one_of(
    st.tuples(st.just("lr"), st.one_of(non_finite, negative, st.just(0.0))),
    st.tuples(st.just("grad_clip"), st.one_of(non_finite, negative, st.just(0.0))),
    st.tuples(st.just("steps"), bad_count),
    st.tuples(
        st.just("seed"),
        st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.text(max_size=3)),
    ),
    st.tuples(st.just("device"), names.filter(lambda n: n.strip() not in ("cpu", ""))),
    st.tuples(st.just("callback_every"), non_positive),
    st.tuples(st.just("lr_schedule"), names.filter(lambda n: n not in ("cosine", "constant"))),
)


def _loss(model, batch):
    return model(x=batch, t=torch.full((batch.shape[0],), 0.5)).pow(2).mean()


@SETTINGS
@given(mistake=TRAIN_MISTAKES)
def test_train_refuses_bad_settings_before_training(mistake):
    name, value = mistake
    model = MLP(dim=2, hidden=8, depth=1)
    before = [p.detach().clone() for p in model.parameters()]
    kwargs = {"steps": 2, "progress": False, "callback": lambda *a: None, name: value}
    steps = kwargs.pop("steps")
    want = {"lr": "lr|learning rate", "grad_clip": "grad_clip|clip", "lr_schedule": probe.CHOICEW}.get(
        name, name
    )
    refused(lambda: train(model, _loss, random_batches(torch.randn(16, 2), 4), steps, **kwargs), want)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "train changed the weights"


@SETTINGS
@given(batch_size=st.one_of(bad_count))
def test_random_batches_refuses_bad_batch_sizes(batch_size):
    refused(lambda: random_batches(torch.randn(16, 2), batch_size), "batch")


# --- checkpoints -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    save_checkpoint(path, MLP(dim=2, hidden=8, depth=1).state_dict(), {"model": {"hidden": 8, "depth": 1}})
    return path.read_bytes()


def _tensor_bytes(raw: bytes) -> range:
    """Where the first tensor's bytes lie inside a torch.save zip file."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        info = next(
            i for i in archive.infolist() if "/data/" in i.filename and not i.filename.endswith(".pkl")
        )
    head = info.header_offset
    start = (
        head
        + 30
        + int.from_bytes(raw[head + 26 : head + 28], "little")
        + int.from_bytes(raw[head + 28 : head + 30], "little")
    )
    return range(start, start + info.compress_size)


@FEW
@given(data=st.data())
def test_load_checkpoint_names_a_corrupt_or_truncated_file(tmp_path, checkpoint_bytes, data):
    how = data.draw(st.sampled_from(["random", "truncated", "flipped"]))
    if how == "random":
        raw = data.draw(st.binary(min_size=0, max_size=400))
    elif how == "truncated":
        raw = checkpoint_bytes[: data.draw(st.integers(0, len(checkpoint_bytes) - 1))]
    else:  # one byte of a weight changed: the checksum must catch it
        i = data.draw(st.sampled_from(_tensor_bytes(checkpoint_bytes)))
        raw = checkpoint_bytes[:i] + bytes([checkpoint_bytes[i] ^ 0xFF]) + checkpoint_bytes[i + 1 :]
    path = tmp_path / f"broken_{how}.pt"
    path.write_bytes(raw)
    refused(lambda: load_checkpoint(path), path.name, kinds=(ValueError,))


# --- names, devices, data -----------------------------------------------------------------------------------------


@SETTINGS
@given(name=names.filter(lambda n: n not in TARGETS))
def test_sample_target_names_the_unknown_target(name):
    names_it(lambda: sample_target(name, 10), name, TARGETS)


@SETTINGS
@given(n=st.one_of(bad_count, huge))
def test_sample_target_refuses_bad_counts(n):
    want = probe.MEMW if isinstance(n, int) and not isinstance(n, bool) and n > 0 else "n"
    refused(lambda: sample_target("moons", n), want)


@SETTINGS
@given(name=names.filter(lambda n: n.strip() != "cpu" and not n.strip().startswith(("cuda", "mps"))))
def test_pick_device_names_the_unknown_device(name):
    refused(lambda: pick_device(name), "device")


# --- widgets -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models2d():
    from widgets.models2d import PretrainedModels

    return PretrainedModels()


@FEW
@given(which=st.sampled_from(["family", "target"]), name=names)
def test_schedule_explorer_names_unknown_choices(which, name):
    from widgets.schedule_explorer import FAMILIES, ScheduleExplorer

    choices = FAMILIES if which == "family" else TARGETS
    if name in choices:
        return
    names_it(lambda: ScheduleExplorer(n_points=100, **{which: name}), name, choices)


@FEW
@given(
    which=st.sampled_from(["steps", "n_samples", "n_lines"]),
    value=st.one_of(
        non_positive, st.integers(10**6, 10**9), st.floats(0.1, 9.9).filter(lambda v: not v.is_integer())
    ),
)
def test_trajectory_explorer_refuses_bad_sizes(models2d, which, value):
    from widgets.trajectory_explorer import TrajectoryExplorer

    kwargs = {
        "models": models2d,
        "steps": 2,
        "n_samples": 20,
        "n_lines": 5,
        "precompute": False,
        which: value,
    }
    refused(lambda: TrajectoryExplorer(**kwargs), which)


@FEW
@given(
    which=st.sampled_from(["steps", "n_samples", "n_lines"]),
    value=st.one_of(non_positive, st.integers(10**6, 10**9)),
)
def test_sampler_explorer_refuses_bad_sizes(models2d, which, value):
    from widgets.sampler_explorer import SamplerExplorer

    kwargs = {"models": models2d, "steps": 2, "n_samples": 20, "n_lines": 5, which: value}
    refused(lambda: SamplerExplorer(**kwargs), which)


@FEW
@given(smooth=st.one_of(non_positive, not_whole))
def test_training_monitor_refuses_a_bad_window(smooth):
    from widgets.training_monitor import TrainingMonitor

    refused(lambda: TrainingMonitor(smooth=smooth), "smooth")


# --- the probe itself ---------------------------------------------------------------------------------------------


def test_the_probe_tells_clear_from_obscure_messages():
    """The instrument: the argument and key words must appear; torch's own messages do not pass for clear ones."""
    assert probe.explains("the NFEs must be positive", "nfe")
    assert probe.explains("first_seed must be a whole number", "seed")
    assert not probe.explains("t_start must be below t_end", "t")
    assert probe.explains("x has dtype torch.float64 but the model's weights are torch.float32", probe.DTYPEW)
    assert not probe.explains(
        "mat1 and mat2 must have the same dtype, but got Double and Float", probe.DTYPEW
    )
    assert not probe.explains("t must lie in [0, 1]; got values in [nan, nan]", ("ts", "[0, 1]"))


def test_the_probe_classifies_each_outcome():
    def case(fn, kind="bad"):
        return probe.run_case(probe.Case("m", "f", "label", fn, ("steps",), kind), None)["outcome"]

    def refuse(error):
        def fn(fx):
            raise error

        return fn

    assert case(refuse(ValueError("steps must be positive"))) == "clear"
    assert case(refuse(TypeError("steps must be a whole number"))) == "clear"
    assert case(refuse(ValueError("the number must be positive"))) == "obscure"
    assert case(refuse(RuntimeError("steps must be positive"))) == "obscure"
    assert case(refuse(ValueError("steps: load it with weights_only=False"))) == "obscure"
    assert case(lambda fx: 1.0) == "silent"
    assert case(lambda fx: 1.0, "good") == "ok"
    assert case(refuse(ValueError("steps")), "good") == "failed"


@pytest.mark.timeout(90)
def test_the_probe_records_a_crash_and_a_hang_and_goes_on(tmp_path):
    """--module selftest: a segfault, a sleep, an internal error and a silent return, each told apart."""
    out = tmp_path / "selftest.json"
    cmd = [
        sys.executable,
        str(PROBE),
        "--module",
        "selftest",
        "--timeout",
        "3",
        "--quiet",
        "--json",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert done.returncode == 1, done.stdout + done.stderr
    outcomes = [c["outcome"] for c in json.loads(out.read_text())["cases"]]
    assert outcomes == ["crash", "clear", "hang", "clear", "obscure", "silent", "ok"]


@pytest.mark.timeout(150)
def test_the_probe_finds_every_case_clear(tmp_path):
    """scripts/probe_bad_input.py: no crash, no hang, nothing silent, >= 98% clear, every good input accepted."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "probe.json"
    cmd = [sys.executable, str(PROBE), "--timeout", "5", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=140)
    report = done.stdout[-8000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
