"""The 2D benchmark (Tong et al.'s protocol): its datasets, losses and pairs against the runner's libraries,
and its --quick mode end to end, including a run interrupted and continued."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "flows_2d.py"


def _load():
    spec = importlib.util.spec_from_file_location("flows_2d", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load()
sys.modules.setdefault("flows_2d", bench)  # so that worker processes can find its functions by name


def test_gaussians_are_torchdyns_draw_for_draw():
    from torchdyn.datasets import ToyDataset  # installed by `make setup` (--no-deps)

    for seed in (42, 46):
        torch.manual_seed(seed)
        theirs, _ = ToyDataset().generate(
            1500, "gaussians", n_gaussians=8, radius=5, std_gaussians=1, noise=1e-4
        )  # the runner's gaussians.yaml
        assert torch.equal(bench.runner_dataset("gaussians", 12_000, seed), theirs)
    # control: another seed draws other points
    assert not torch.equal(bench.runner_dataset("gaussians", 12_000, 43), theirs)


def test_sklearn_sets_and_the_schroedinger_bridge_pair_have_the_runners_laws():
    from sklearn.datasets import make_moons

    moons = bench.runner_dataset("moons", 12_000, seed=0)
    ref, _ = make_moons(n_samples=12_000, noise=0.05, random_state=42)
    assert np.allclose(moons.numpy(), (ref * 2 - [1, 0]).astype(np.float32))
    assert torch.equal(moons, bench.runner_dataset("moons", 12_000, seed=5))  # fixed by random_state 42
    scurve = bench.runner_dataset("scurve", 12_000, seed=0)
    assert (
        scurve.abs().amax(0)[0] < 1.5 * 1.2 and scurve.abs().amax(0)[1] < 1.5 * 2.2
    )  # |x| <= 1, |z| <= 2 (+noise)
    # the bridge's moons are standardised over all entries and scaled by 7
    dsb = bench.runner_dataset("dsb-moons", 12_000, seed=42).double()
    assert abs(dsb.mean()) < 1e-5 and abs(dsb.std() - 7) < 1e-4
    # its 8 gaussians: centres at radius 12 (4 * 3), std 1.5 (0.5 * 3), each about 1/8 of the points
    g8 = bench.runner_dataset("dsb-8gaussians", 12_000, seed=42).double()
    angles = torch.arange(8) * math.pi / 4
    centres = 12 * torch.stack([torch.cos(angles), torch.sin(angles)], 1).double()
    nearest = torch.cdist(g8, centres).argmin(1)
    for k in range(8):
        part = g8[nearest == k]
        se = 1.5 / math.sqrt(len(part))
        assert abs(len(part) / 12_000 - 1 / 8) < 4 * math.sqrt(1 / 8 * 7 / 8 / 12_000)
        assert (part.mean(0) - centres[k]).abs().max() < 5 * se
        assert abs(part.std(0).mean() - 1.5) < 0.05
    with pytest.raises(ValueError, match="unknown dataset 'checkerboard'"):
        bench.runner_dataset("checkerboard", 10, 0)


def test_split_is_torchs_random_split():
    x = torch.arange(30.0)[:, None]
    ours = bench.split(x, (20, 5, 5), torch.Generator().manual_seed(42))
    theirs = torch.utils.data.random_split(x, [20, 5, 5], generator=torch.Generator().manual_seed(42))
    for a, b in zip(ours, theirs):
        assert torch.equal(a, x[b.indices])
    with pytest.raises(ValueError, match="do not add up"):
        bench.split(x, (20, 5, 4), torch.Generator())


def test_the_point_set_pair_is_split_with_one_generator_as_the_runner_does():
    cfg = bench.Config(n_train=800, n_val=100, n_test=100)
    data = bench.task_data(cfg, "moons -> 8gaussians", seed=42)
    generator = torch.Generator().manual_seed(
        42
    )  # the runner's partial(random_split, generator=...): one object
    for name, column in (("dsb-moons", 0), ("dsb-8gaussians", 1)):
        x = bench.runner_dataset(name, 1000, 42)
        parts = torch.utils.data.random_split(x, [800, 100, 100], generator=generator)
        for part, got in zip(parts, (data["train"], data["val"], data["test"])):
            assert torch.equal(x[part.indices], got[column])
    # control: a fresh generator for the second set would give the first set's permutation
    again = bench.split(torch.arange(1000.0), (800, 100, 100), torch.Generator().manual_seed(42))
    first = bench.split(torch.arange(1000.0), (800, 100, 100), torch.Generator().manual_seed(42))
    assert torch.equal(again[0], first[0])


def test_fit_tests_the_checkpoint_of_least_validation_loss():
    cfg = bench.Config(epochs=8, val_every=2, batch=64)
    data = bench.task_data(bench.Config(n_train=64, n_val=64, n_test=72), "N -> moons", seed=0)
    next_batch, per_epoch = bench.epoch_batches(cfg, data["train"], seed=0)
    values, states = iter([3.0, 1.0, 2.0, 5.0]), []

    def val_fn(model, x0, x1, g):  # validation losses made up: the second of four validations is the least
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return torch.tensor(next(values))

    loss_fn = lambda m, b: bench.smoothed_cfm_loss(m, *b, 0.1)  # noqa: E731
    model, epoch, steps = bench.fit(cfg, loss_fn, val_fn, next_batch, per_epoch, data["val"], seed=0)
    assert (epoch, steps, len(states)) == (4, 8 * per_epoch, 4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in states[1].items())
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in states[3].items())  # not the last one
    with pytest.raises(RuntimeError, match="no validation loss was finite"):
        bench.fit(cfg, loss_fn, lambda *a: torch.tensor(math.nan), next_batch, per_epoch, data["val"], seed=0)


class _Recorder(torch.nn.Module):
    """A field that returns zeros and keeps what it was called with."""

    def forward(self, x, t, cond=None):
        self.x, self.t = x, t
        return torch.zeros_like(x)


def test_losses_are_torchcfms_at_the_same_draws():
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, TargetConditionalFlowMatcher

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) * 2 + 3
    field = _Recorder()
    loss = bench.smoothed_cfm_loss(field, x0, x1, 0.1, torch.Generator().manual_seed(1))
    replay = torch.Generator().manual_seed(1)  # the same draws: t, then eps
    t = torch.rand(64, 1, generator=replay)
    eps = torch.randn(64, 2, generator=replay)
    icfm = ConditionalFlowMatcher(sigma=0.1)
    x_t = icfm.compute_mu_t(x0, x1, t) + icfm.compute_sigma_t(t) * eps
    assert torch.allclose(field.x, x_t, atol=1e-6) and torch.allclose(field.t, t[:, 0])
    u_t = icfm.compute_conditional_flow(x0, x1, t, x_t)
    assert math.isclose(float(loss), float((u_t**2).mean()), rel_tol=1e-6)  # the field is 0: loss = mean u^2
    # FM: Lipman et al.'s path with sigma_min, x0 in the role of the noise, as TorchCFM's target matcher
    fm = bench.path_loss(bench.GaussianPath(bench.LinearSchedule(sigma_min=0.1)))
    fm(field, x0, x1, torch.Generator().manual_seed(2))
    t = torch.rand(64, generator=torch.Generator().manual_seed(2))
    matcher = TargetConditionalFlowMatcher(sigma=0.1)
    mu = matcher.compute_mu_t(None, x1, t[:, None])
    assert torch.allclose(field.x, mu + matcher.compute_sigma_t(t[:, None]) * x0, atol=1e-6)
    u = matcher.compute_conditional_flow(None, x1, t[:, None], field.x)
    v = x1 - 0.9 * x0  # the course's velocity d_alpha x1 + d_sigma x0
    assert torch.allclose(u, v, atol=1e-5)


def test_ot_plan_pairs_come_from_the_exact_plan_with_replacement():
    from torchcfm.optimal_transport import OTPlanSampler

    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 4
    a, b = bench.ot_plan_pairs(x0, x1, torch.Generator().manual_seed(4))
    plan = torch.as_tensor(OTPlanSampler(method="exact").get_map(x0, x1))  # a permutation / 200
    rows = torch.cdist(a, x0).argmin(1)
    cols = torch.cdist(b, x1).argmin(1)
    assert bool((plan[rows, cols] > 0).all())  # every pair is a pair of the exact plan
    assert 0.5 < rows.unique().numel() / 200 < 0.75  # drawn with replacement: about 1 - 1/e distinct
    # control: independent pairs are almost never pairs of the plan
    assert float((plan[torch.arange(200), torch.randperm(200, generator=g)] > 0).float().mean()) < 0.05


def test_epoch_batches_cover_each_epoch_once():
    cfg = bench.Config(batch=4)
    target = torch.arange(10.0)[:, None].expand(10, 2)
    next_batch, per_epoch = bench.epoch_batches(cfg, (None, target), seed=0)
    assert per_epoch == 3  # 4 + 4 + 2: the last batch is smaller
    seen = torch.cat([next_batch()[1][:, 0] for _ in range(per_epoch)])
    assert sorted(seen.tolist()) == list(range(10))
    source = -target
    next_batch, per_epoch = bench.epoch_batches(cfg, (source, target), seed=0)
    assert per_epoch == 2  # a point-set source drops the incomplete batch, as the runner's TwoDimDataModule
    x0, x1 = next_batch()
    assert not torch.equal(x0, -x1)  # the two sets are shuffled apart
    next_batch, _ = bench.epoch_batches(cfg, (source, target), seed=0, paired=True)
    x0, x1 = next_batch()
    assert torch.equal(x0, -x1)  # reflow pairs stay together
    # the next epoch is shuffled anew, and each batch of a Gaussian source gets fresh noise
    next_batch, per_epoch = bench.epoch_batches(cfg, (None, target), seed=0)
    epochs = [[next_batch() for _ in range(per_epoch)] for _ in range(2)]
    order = [torch.cat([b[1][:, 0] for b in e]).tolist() for e in epochs]
    assert sorted(order[1]) == list(range(10)) and order[0] != order[1]
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0][: len(epochs[0][0][0])])


@pytest.mark.timeout(900)
def test_quick_benchmark_table_and_a_continued_run(tmp_path, monkeypatch):
    cfg, quick, name, fresh, only_report = bench.parse_config(["--quick"])
    assert quick and not fresh and not only_report and name == "flows_2d_quick"
    assert cfg == bench.Config(**{**vars(bench.Config()), **bench.QUICK})
    rows, text = bench.run(cfg, out_dir=tmp_path, name="quick")
    expected = [
        (task, m)
        for task, (source, _) in bench.TASKS.items()
        for m in bench.METHODS
        if source is None or m not in bench.GAUSSIAN_SOURCE_ONLY
    ]
    assert [(r["task"], r["method"]) for r in rows] == expected
    payload = json.loads((tmp_path / "quick.json").read_text())
    assert payload["complete"] and payload["jobs_done"] == payload["jobs_total"] == len(bench.jobs(cfg))
    assert not (tmp_path / "quick.partial.json").exists()
    assert payload["protocol"]["settings"]["epochs"] == cfg.epochs and payload["protocol"]["seeds"] == [
        42,
        43,
    ]
    for r in rows:
        assert r["seeds"] == cfg.seeds and r["in_paper"] == (r["method"] in bench.RUNNER_METHODS)
        for key in ("w2_mean", "w2_std", "npe_mean", "npe_std", "cpu_s_per_seed"):
            assert math.isfinite(r[key]) and r[key] >= 0, (r, key)
        assert set(r["w2_at"]) == {"1", "2", "4", "8"}
        steps = cfg.epochs * bench.steps_per_epoch(cfg.n_train, cfg.batch, r["task"] == "moons -> 8gaussians")
        reflow = cfg.epochs * bench.steps_per_epoch(
            cfg.n_train, cfg.batch, False
        )  # paired rows: none dropped
        assert r["train_steps"] == steps + (reflow if r["method"] == "2-RF (reflow)" else 0)
        if r["method"] != "DDPM":  # even briefly trained, every flow moves the source towards the target
            refs = [payload["raw"][r["task"]][r["method"]][s]["w2_sq_reference"] for s in ("42", "43")]
            assert r["w2_mean"] < math.sqrt(min(refs)), r
    table = [line for line in (tmp_path / "quick.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows) and all(line.count("|") == table[0].count("|") for line in table)

    # interrupted after 3 jobs: the partial file keeps them; the next run does only the rest, with the same result
    real, calls = bench.run_job, []

    def stops_after_three(*job):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(job[1:])
        return real(*job)

    monkeypatch.setattr(bench, "run_job", stops_after_three)
    with pytest.raises(KeyboardInterrupt):
        bench.run(cfg, out_dir=tmp_path, name="again")
    partial = json.loads((tmp_path / "again.partial.json").read_text())
    assert partial["jobs_done"] == 3 and not partial["complete"]
    calls.clear()
    monkeypatch.setattr(bench, "run_job", lambda *job: calls.append(job[1:]) or real(*job))
    again, _ = bench.run(cfg, out_dir=tmp_path, name="again")
    assert len(calls) == len(bench.jobs(cfg)) - 3
    assert [(r["task"], r["method"], r["w2_mean"], r["npe_mean"]) for r in again] == [
        (r["task"], r["method"], r["w2_mean"], r["npe_mean"]) for r in rows
    ]
    # --report writes the same table again from the recorded jobs, training nothing
    calls.clear()
    assert bench.report(out_dir=tmp_path, name="again")[1] == (tmp_path / "again.md").read_text().strip()
    assert not calls
    # two worker processes give the same table as one
    monkeypatch.setattr(bench, "run_job", real)
    two, _ = bench.run(bench.Config(**{**vars(cfg), "workers": 2}), out_dir=tmp_path, name="two_workers")
    assert [(r["w2_mean"], r["npe_mean"]) for r in two] == [(r["w2_mean"], r["npe_mean"]) for r in rows]
    # other settings do not continue the partial run of another protocol
    assert bench._load_partial(tmp_path / "quick.json", bench.Config(**{**vars(cfg), "epochs": 8}))[0] == {}


def test_command_line_options():
    cfg, quick, name, fresh, only_report = bench.parse_config(
        ["--seeds", "3", "--lr", "0.01", "--name", "trial", "--fresh"]
    )
    assert not only_report and bench.parse_config(["--report"])[4]
    assert (
        not quick and fresh and name == "trial" and cfg.seeds == 3 and cfg.lr == 0.01 and cfg.epochs == 1000
    )
    bad_options = [["--no-such-option"], ["--epochs", "15"], ["--seeds", "0"], ["--n-test", "1001"]]
    for bad in bad_options + [["--n-few", "20000"]]:
        with pytest.raises(SystemExit):
            bench.parse_config(bad)


def test_the_readme_shows_the_recorded_complete_run_of_the_protocol():
    root = SCRIPT.parents[1]
    readme = (root / "README.md").read_text()
    assert readme.count("<!-- flows 2d: start -->") == 1 and readme.count("<!-- flows 2d: end -->") == 1
    block = readme.split("<!-- flows 2d: start -->")[1].split("<!-- flows 2d: end -->")[0]
    assert block.strip() == (root / "benchmarks" / "results" / "flows_2d.md").read_text().strip()
    recorded = json.loads((root / "benchmarks" / "results" / "flows_2d.json").read_text())
    # the full protocol of this version of the script, every job finished, every seed in every row
    assert recorded["complete"] and recorded["jobs_done"] == recorded["jobs_total"] == len(
        bench.jobs(bench.Config())
    )
    assert recorded["protocol"]["version"] == bench.PROTOCOL_VERSION
    full = {k: v for k, v in vars(bench.Config()).items() if k != "workers"}
    assert recorded["protocol"]["settings"] == full
    expected = {(t, m) for t, (source, _) in bench.TASKS.items() for m in bench.METHODS}
    expected -= {
        (t, m) for t, (source, _) in bench.TASKS.items() if source for m in bench.GAUSSIAN_SOURCE_ONLY
    }
    assert {(r["task"], r["method"]) for r in recorded["rows"]} == expected
    assert all(r["seeds"] == full["seeds"] for r in recorded["rows"])
    assert not (root / "benchmarks" / "results" / "flows_2d.partial.json").exists()
