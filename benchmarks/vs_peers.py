"""The course's flow-matching recipe beside TorchCFM's and Meta flow_matching's, on identical work, in one run.

    make bench-peers                        # installs the peers (--no-deps) and runs this
    python benchmarks/vs_peers.py           # 3 seeds, the peers' own training lengths
    python benchmarks/vs_peers.py --quick   # a smoke test (about a minute)
    python benchmarks/vs_peers.py --help    # every setting

The work is TorchCFM's 2D tutorial task: 8 gaussians -> moons, batches drawn fresh each step by
TorchCFM's own samplers (torchcfm.utils.sample_8gaussians, sample_moons) for every recipe, so the
data, and the time spent drawing it, are the same for all. Recipes:
- TorchCFM OT-CFM and I-CFM: TorchCFM's MLP (3 x 64, SELU, t concatenated), its flow matchers
  (ExactOptimalTransportConditionalFlowMatcher, ConditionalFlowMatcher) with sigma = 0.01 as the
  tutorial's training loop uses, Adam at lr 1e-3, batch 256, 20,000 steps;
- Meta flow_matching's 2D example: its recipe (an MLP of 4 x 512 Swish layers, AffineProbPath with
  CondOTScheduler, independent pairs, Adam at lr 1e-3, batch 4096) on this task, fewer steps than its
  example's 20,000 because each of its steps costs about 30 of the others' here (--meta-steps);
- the course: the library's defaults, lessons.models.MLP() (3 x 128, SiLU, sinusoidal time embedding),
  lessons.couplings.couple, lessons.flow_matching.cfm_batch_loss on the straight path,
  lessons.training.train (AdamW at lr 5e-3, cosine decay, gradients clipped at norm 1) for 4,000 steps,
  the length its cosine schedule is set to (--course-steps); --course changes any of these settings.
Each recipe runs in its own thread, one at a time, in turns of --chunk steps (round robin), so a slow
spell of the machine falls on all of them alike; a recipe's seconds are its thread's CPU time
(torch on one thread), evaluations excluded. Every --eval-every steps: W2 of --n-eval Euler samples at
4 and at 100 steps (the same starting points for every recipe) against as many fresh moons points,
exact (POT). A comparison pairs a peer with the course recipe of its coupling: target_w2 is the peer's
final W2@4 (mean over seeds), peer_seconds its training time, course_seconds the course's time to its
first evaluation at or below the target (null when it never gets there), ratio their quotient.
Writes benchmarks/results/vs_peers[_quick].json and .md.
"""

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
from torch import nn

from lessons.couplings import couple
from lessons.flow_matching import cfm_batch_loss
from lessons.models import MLP
from lessons.optimal_transport import w2
from lessons.paths import GaussianPath
from lessons.progress import Progress
from lessons.schedules import LinearSchedule
from lessons.solvers import solve_ode
from lessons.training import train

RESULTS = Path(__file__).resolve().parent / "results"
PEERS_INSTALL = "pip install --no-deps torchcfm==1.0.7 flow-matching==1.0.10 torchdyn==1.0.6"
EVAL_STEPS = (4, 100)
LIBRARY_DEFAULTS = "the library's defaults (lessons.models.MLP(), lessons.training.train)"


def _import_peers():
    """The peers' modules, or a clear error saying how to install them without pulling another torch."""
    try:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )
        from torchcfm.models.models import MLP as TorchCFMMLP
        from torchcfm.utils import sample_8gaussians, sample_moons
    except ImportError as err:
        raise SystemExit(
            f"vs_peers needs the peer libraries ({err}). Install them with `{PEERS_INSTALL}` "
            "(--no-deps, so no other torch comes with them), or run `make bench-peers`."
        ) from err
    return dict(
        AffineProbPath=AffineProbPath,
        CondOTScheduler=CondOTScheduler,
        ConditionalFlowMatcher=ConditionalFlowMatcher,
        ExactOT=ExactOptimalTransportConditionalFlowMatcher,
        TorchCFMMLP=TorchCFMMLP,
        sample_8gaussians=sample_8gaussians,
        sample_moons=sample_moons,
    )


@dataclass
class Config:
    seeds: int = 3
    peer_steps: int = 20_000  # TorchCFM's tutorial
    meta_steps: int = 1_000
    course_steps: int = 4_000  # the course's recipe: its cosine schedule runs over these steps
    batch: int = 256
    meta_batch: int = 4096
    chunk: int = 250  # steps per turn
    eval_every: int = 500
    n_eval: int = 2000
    meta: bool = True  # run Meta flow_matching's recipe


QUICK = dict(seeds=1, peer_steps=300, meta_steps=20, course_steps=300, chunk=50, eval_every=100, n_eval=300)


class TimeConcat(nn.Module):
    """A network net(cat([x, t])) of the peers, called as the course's fields are: field(x=..., t=...)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, cond=None):
        return self.net(torch.cat([x, t.to(x.dtype)[:, None]], dim=1))


def meta_mlp(hidden=512, layers=4):
    """Meta flow_matching's 2D example network: [x, t] -> layers x (Linear, Swish) -> Linear to 2."""
    sizes = [3] + [hidden] * layers
    blocks = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
    return nn.Sequential(*blocks, nn.Linear(hidden, 2))


class Turns:
    """One thread per recipe; the main thread hands the turn round; a recipe calls pause() every chunk."""

    def __init__(self, name, evaluate, eval_every, total):
        self.name, self.evaluate, self.eval_every, self.total = name, evaluate, eval_every, total
        self.go, self.yielded = threading.Event(), threading.Event()
        self.seconds, self.records, self.finished, self.error = 0.0, [], False, None
        self._since = None

    def pause(self, step, model):
        """Called by the recipe after `step` steps: stop its clock, evaluate when due, give the turn back."""
        self.seconds += time.thread_time() - self._since
        if step % self.eval_every == 0 or step == self.total:
            was_training = model.training
            model.eval()
            self.records.append({"step": step, "seconds": self.seconds, **self.evaluate(model)})
            model.train(was_training)
        if step < self.total:
            self._hand_back()
            self._since = time.thread_time()

    def _hand_back(self):
        self.yielded.set()
        self.go.wait()
        self.go.clear()

    def run_in_thread(self, body):
        def main():
            self.go.wait()
            self.go.clear()
            self._since = time.thread_time()
            try:
                torch.set_num_threads(1)
                body(self)
            except BaseException as err:  # reported by the main thread
                self.error = err
            self.finished = True
            self.yielded.set()

        thread = threading.Thread(target=main, name=self.name, daemon=True)
        thread.start()
        return thread

    def take_turn(self):
        self.go.set()
        self.yielded.wait()
        self.yielded.clear()
        if self.error is not None:
            raise RuntimeError(f"the recipe {self.name} failed") from self.error


def _peer_loop(model, opt, batch_fn, loss_fn, steps, chunk):
    def body(turns):
        model.train()
        for step in range(1, steps + 1):
            opt.zero_grad()
            loss_fn(*batch_fn()).backward()
            opt.step()
            if step % chunk == 0 or step == steps:
                turns.pause(step, model)

    return body


def torchcfm_recipe(peers, cfg, coupling, seed):
    """TorchCFM's tutorial loop with its classes: (field for evaluation, body for the thread)."""
    torch.manual_seed(seed)
    net = peers["TorchCFMMLP"](dim=2, time_varying=True)
    field = TimeConcat(net)
    matcher = (peers["ExactOT"] if coupling == "ot" else peers["ConditionalFlowMatcher"])(sigma=0.01)
    opt = torch.optim.Adam(net.parameters())

    def batch():
        return peers["sample_8gaussians"](cfg.batch), peers["sample_moons"](cfg.batch)

    def loss(x0, x1):
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        return torch.mean((net(torch.cat([xt, t[:, None]], dim=-1)) - ut) ** 2)

    return field, _peer_loop(field, opt, batch, loss, cfg.peer_steps, cfg.chunk)


def meta_recipe(peers, cfg, seed):
    """Meta flow_matching's 2D example recipe on the tutorial's task."""
    torch.manual_seed(seed)
    field = TimeConcat(meta_mlp())
    path = peers["AffineProbPath"](scheduler=peers["CondOTScheduler"]())
    opt = torch.optim.Adam(field.parameters(), lr=1e-3)

    def batch():
        return peers["sample_8gaussians"](cfg.meta_batch), peers["sample_moons"](cfg.meta_batch)

    def loss(x0, x1):
        sample = path.sample(t=torch.rand(x1.shape[0]), x_0=x0, x_1=x1)
        return torch.pow(field(sample.x_t, sample.t) - sample.dx_t, 2).mean()

    return field, _peer_loop(field, opt, batch, loss, cfg.meta_steps, cfg.chunk)


def course_recipe(peers, cfg, coupling, seed, **train_settings):
    """The course's library with its defaults; settings override lessons.models.MLP's and lessons.training.train's."""
    torch.manual_seed(seed)
    net_settings = {k: train_settings.pop(k) for k in NET_SETTINGS.keys() & train_settings.keys()}
    model = MLP(**net_settings)
    loss_fn = cfm_batch_loss(GaussianPath(LinearSchedule()))

    def next_batch():
        return couple(peers["sample_8gaussians"](cfg.batch), peers["sample_moons"](cfg.batch), coupling)

    def body(turns):
        train(
            model,
            loss_fn,
            next_batch,
            steps=cfg.course_steps,
            seed=seed,
            device="cpu",
            progress=False,
            callback=lambda step, m, losses: turns.pause(step, m),
            callback_every=cfg.chunk,
            **train_settings,
        )

    return model, body


def evaluator(peers, cfg, seed):
    """evaluate(field) -> W2 at 4 and 100 Euler steps, from the same source points for every recipe."""
    torch.manual_seed(10_000 + seed)
    np.random.seed(10_000 + seed)
    start = peers["sample_8gaussians"](cfg.n_eval)
    target = peers["sample_moons"](cfg.n_eval)

    def evaluate(field):
        with torch.no_grad():
            return {
                f"W2@{n}": w2(solve_ode(field, start, steps=n, method="euler").final, target, solver="emd")
                for n in EVAL_STEPS
            }

    return evaluate, start, target


RECIPES = ("TorchCFM OT-CFM", "TorchCFM I-CFM", "Meta FM", "course OT-CFM", "course I-CFM")
COMPARISONS = (  # (peer, the course recipe doing the same work)
    ("TorchCFM OT-CFM", "course OT-CFM"),
    ("TorchCFM I-CFM", "course I-CFM"),
    ("Meta FM", "course I-CFM"),
)


def run_seed(peers, cfg, seed, course_settings, bar=None):
    """Train every recipe once, interleaved; return {recipe: {"records": [...], "steps": n}} and the floor."""
    evaluate, _, target = evaluator(peers, cfg, seed)
    torch.manual_seed(20_000 + seed)
    np.random.seed(20_000 + seed)
    floor = w2(peers["sample_moons"](cfg.n_eval), target, solver="emd")  # two samples of the same law
    torch.manual_seed(seed)
    np.random.seed(seed)
    recipes = {
        "TorchCFM OT-CFM": (torchcfm_recipe(peers, cfg, "ot", seed), cfg.peer_steps),
        "TorchCFM I-CFM": (torchcfm_recipe(peers, cfg, "independent", seed), cfg.peer_steps),
        "course OT-CFM": (course_recipe(peers, cfg, "ot", seed, **course_settings), cfg.course_steps),
        "course I-CFM": (course_recipe(peers, cfg, "independent", seed, **course_settings), cfg.course_steps),
    }
    if cfg.meta:
        recipes["Meta FM"] = (meta_recipe(peers, cfg, seed), cfg.meta_steps)
    turns = {}
    for name, ((_, body), steps) in recipes.items():
        turns[name] = Turns(name, evaluate, cfg.eval_every, steps)
        turns[name].run_in_thread(body)
    while not all(t.finished for t in turns.values()):
        for t in turns.values():
            if not t.finished:
                t.take_turn()
                if bar is not None:
                    bar.update()
    return {name: {"records": t.records, "steps": t.total} for name, t in turns.items()}, floor


def _mean(values):
    return statistics.fmean(values) if values else math.nan


def _std(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(cfg, raw):
    """Per recipe: per-step cost and W2 at each evaluation (mean ± std over seeds); per comparison: the ratio."""
    recipes = {}
    for name in RECIPES:
        runs = [raw[s][name] for s in sorted(raw) if name in raw[s]]
        if not runs:
            continue
        curve = []
        for i, rec in enumerate(runs[0]["records"]):
            at = [r["records"][i] for r in runs]
            point = {"step": rec["step"], "seconds": _mean([a["seconds"] for a in at])}
            for key in (f"W2@{n}" for n in EVAL_STEPS):
                point[key] = _mean([a[key] for a in at])
                point[key + " std"] = _std([a[key] for a in at])
            curve.append(point)
        final = curve[-1]
        recipes[name] = {
            "steps": runs[0]["steps"],
            "ms_per_step": 1000 * final["seconds"] / runs[0]["steps"],
            "seconds": final["seconds"],
            "curve": curve,
            "final": {k: v for k, v in final.items() if k.startswith("W2")},
        }
    comparisons = []
    for peer, course in COMPARISONS:
        if peer not in recipes or course not in recipes:
            continue
        target = recipes[peer]["final"]["W2@4"]
        reached = [p for p in recipes[course]["curve"] if p["W2@4"] <= target]
        course_seconds = reached[0]["seconds"] if reached else None
        peer_seconds = recipes[peer]["seconds"]
        comparisons.append(
            {
                "peer": peer,
                "course": course,
                "target_w2": target,
                "peer_seconds": peer_seconds,
                "course_seconds": course_seconds,
                "course_steps": reached[0]["step"] if reached else None,
                "ratio": None if course_seconds is None else course_seconds / peer_seconds,
            }
        )
    return recipes, comparisons


def markdown(cfg, recipes, comparisons, floor, course_settings, wall_s):
    lines = [
        f"8 gaussians -> moons (TorchCFM's tutorial task and samplers), {cfg.seeds} seed(s); W2 of {cfg.n_eval} "
        f"Euler samples against {cfg.n_eval} fresh points, exact; mean ± std over seeds. Seconds: CPU time of "
        f"one thread, training only, interleaved in turns of {cfg.chunk} steps. Two samples of the target "
        f"are W2 {_mean(floor):.3f} ± {_std(floor):.3f} apart (the floor). Course settings: "
        f"{course_settings or LIBRARY_DEFAULTS}.",
        "",
        "| recipe | steps | batch | ms / step | seconds | W2@4 | W2@100 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in recipes.items():
        batch = cfg.meta_batch if name == "Meta FM" else cfg.batch
        f = r["final"]
        lines.append(
            f"| {name} | {r['steps']} | {batch} | {r['ms_per_step']:.2f} | {r['seconds']:.0f} | "
            f"{f['W2@4']:.3f} ± {f['W2@4 std']:.3f} | {f['W2@100']:.3f} ± {f['W2@100 std']:.3f} |"
        )
    lines += [
        "",
        "| peer | target W2@4 | peer seconds | course recipe | course seconds (steps) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        reached = "not reached" if c["ratio"] is None else f"{c['course_seconds']:.0f} ({c['course_steps']})"
        ratio = "n/a" if c["ratio"] is None else f"{c['ratio']:.2f}"
        lines.append(
            f"| {c['peer']} | {c['target_w2']:.3f} | {c['peer_seconds']:.0f} | {c['course']} | {reached} | {ratio} |"
        )
    lines += ["", f"Wall time {wall_s:.0f} s, torch {torch.__version__}, {os.cpu_count()} CPU core(s)."]
    return "\n".join(lines)


def run(cfg, course_settings=None, out_dir=RESULTS, name="vs_peers"):
    """Run every seed, write name.json and name.md into out_dir; return (recipes, comparisons, markdown)."""
    if cfg.eval_every % cfg.chunk:
        raise SystemExit(f"--eval-every ({cfg.eval_every}) must be a multiple of --chunk ({cfg.chunk}).")
    peers = _import_peers()
    course_settings = dict(course_settings or {})
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    longest = max(cfg.peer_steps, cfg.course_steps, cfg.meta_steps if cfg.meta else 0)
    turns_per_seed = sum(
        math.ceil(s / cfg.chunk)
        for s in (cfg.peer_steps, cfg.peer_steps, cfg.course_steps, cfg.course_steps)
        + ((cfg.meta_steps,) if cfg.meta else ())
    )
    raw, floor = {}, []
    with Progress(turns_per_seed * cfg.seeds, f"vs_peers ({longest} steps, {cfg.seeds} seeds)", None) as bar:
        for seed in range(cfg.seeds):
            raw[seed], f = run_seed(peers, cfg, seed, course_settings, bar)
            floor.append(f)
            # written after every seed, so an interrupted run keeps the seeds it finished
            recipes, comparisons, text = _write(cfg, course_settings, raw, floor, start, out_dir, name)
    return recipes, comparisons, text


def _write(cfg, course_settings, raw, floor, start, out_dir, name):
    recipes, comparisons = summarize(cfg, raw)
    wall = time.perf_counter() - start
    text = markdown(cfg, recipes, comparisons, floor, course_settings, wall)
    if len(raw) < cfg.seeds:
        text += f"\n\n(partial: {len(raw)} of {cfg.seeds} seeds done)"
    payload = {
        "protocol": {
            **asdict(cfg),
            "task": "8gaussians -> moons, torchcfm.utils.sample_8gaussians / sample_moons, fresh each step",
            "w2": f"exact (POT ot.emd2), {cfg.n_eval} Euler samples vs {cfg.n_eval} fresh target points",
            "seconds": "thread CPU time, torch.set_num_threads(1), training only",
            "course_settings": course_settings,
            "torch": torch.__version__,
        },
        "floor_w2": floor,
        "recipes": recipes,
        "comparisons": comparisons,
        "raw": raw,
        "wall_s": wall,
        "complete": len(raw) == cfg.seeds,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=1))
    (out_dir / f"{name}.md").write_text(text + "\n")
    return recipes, comparisons, text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (a smoke test)")
    parser.add_argument("--name", help="base name of the result files (default vs_peers, or vs_peers_quick)")
    parser.add_argument(
        "--course",
        default="",
        help="settings of lessons.models.MLP and lessons.training.train for the course's recipe, "
        "e.g. 'hidden=64,activation=selu,lr=1e-3' (TorchCFM's network at the old default rate)",
    )
    for key, default in asdict(Config()).items():
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, help=f"default {default}")
    args = parser.parse_args(argv)
    values = {**asdict(Config()), **(QUICK if args.quick else {})}
    values.update({k: v for k, v in vars(args).items() if k in values and v is not None})
    return (
        Config(**values),
        _course_settings(args.course),
        args.name or ("vs_peers_quick" if args.quick else "vs_peers"),
    )


# the settings --course takes, each with the type of its value: lessons.training.train's, then lessons.models.MLP's
COURSE_SETTINGS = {"lr": float, "grad_clip": float, "lr_schedule": str, "weight_decay": float}
NET_SETTINGS = {"hidden": int, "depth": int, "activation": str, "time_scale": float}
COURSE_SETTINGS.update(NET_SETTINGS)


def _course_settings(text):
    """'lr=3e-3,grad_clip=none,hidden=64' -> {'lr': 0.003, 'grad_clip': None, 'hidden': 64}."""
    settings = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = (part.strip() for part in item.partition("="))
        if key not in COURSE_SETTINGS:
            raise SystemExit(f"--course takes {', '.join(COURSE_SETTINGS)}; got {key!r}.")
        kind = COURSE_SETTINGS[key]
        try:
            settings[key] = None if value.lower() == "none" else kind(value)
        except ValueError:
            words = "a whole number" if kind is int else "a number"
            raise SystemExit(f"--course {key}= needs {words}, got {value!r}.") from None
    return settings


def main(argv=None):
    cfg, course_settings, name = parse_args(argv)
    _, _, text = run(cfg, course_settings, name=name)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
