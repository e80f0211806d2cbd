"""How fast do the explorers answer? Time from setting a control to the figure updated.

    python benchmarks/widget_latency.py [--moves 40] [--no-browser]

In the kernel: each explorer runs inside a real Jupyter kernel (so widget messages are serialised
and sent), a control is set many times, and the time until its observers have sent the new figure
is recorded; 'cold' is the first time a setting is seen, 'warm' a setting already computed.
In the browser: the lecture app is served by Voila and driven in headless Chromium; the time runs
from the key press on a slider to the plot's data changing in the page.
Targets: under 50 ms (kernel, median) and under 300 ms (browser, 95th percentile).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

KERNEL_CODE = r"""
import json, time, resource, torch
torch.set_num_threads(1)
from lessons.data2d import sample_target
from widgets.few_steps_explorer import FewStepsExplorer
from widgets.models2d import PretrainedModels
from widgets.sampler_explorer import SamplerExplorer
from widgets.schedule_explorer import ScheduleExplorer
from widgets.trajectory_explorer import TrajectoryExplorer
from widgets.training_monitor import TrainingMonitor

MOVES = {moves}
def timed(control, values):
    out = []
    for v in values:
        start = time.perf_counter()
        control.value = v
        out.append(time.perf_counter() - start)
    return out

models, rows = PretrainedModels(), {{}}
cpu0 = time.process_time()
s = ScheduleExplorer()
rows["schedule: t slider"] = timed(s.t, [round((i % 100) / 100 + 0.005, 3) for i in range(MOVES)])
s.family.value = "vp"
rows["schedule: t slider (VP)"] = timed(s.t, [round((i % 100) / 100 + 0.005, 3) for i in range(MOVES)])
t = TrajectoryExplorer(models=models, left="DDIM", right="OT-CFM", precompute=False)
steps = [1 + i % 16 for i in range(MOVES)]
rows["trajectories: steps, cold"] = timed(t.steps, steps[:16])
rows["trajectories: steps, warm"] = timed(t.steps, steps)
p = SamplerExplorer(models=models)
dial = [round(0.05 * (i % 21), 2) for i in range(MOVES)]
rows["samplers: eta dial, cold"] = timed(p.amount, dial[1:21])
rows["samplers: eta dial, warm"] = timed(p.amount, dial)
scale = [round(-0.5 + 0.1 * (i % 20), 1) for i in range(MOVES)]
rows["samplers: rescaling, cold"] = timed(p.strength, [v for v in scale[:20] if v != 0.0])
rows["samplers: rescaling, warm"] = timed(p.strength, scale)
f = FewStepsExplorer(models=models, left="EDM Heun", right="MeanFlow")
nfes = [1 + i % 20 for i in range(MOVES)]
rows["few steps: NFE, cold"] = timed(f.nfe, [n for n in nfes[:20] if n != f.nfe.value])
rows["few steps: NFE, warm"] = timed(f.nfe, nfes)
points = sample_target("moons", 300, seed=0)
m = TrainingMonitor(sample=lambda model: points, target=points)
net = torch.nn.Linear(2, 2)
losses = []
mon = []
for i in range(MOVES):
    losses.extend([1.0 / (1 + len(losses) + k) for k in range(100)])
    start = time.perf_counter()
    m(len(losses), net, losses)
    mon.append(time.perf_counter() - start)
rows["training monitor: one callback"] = mon
print(json.dumps({{"rows": rows, "cpu_seconds": time.process_time() - cpu0}}))
"""


def summary(times):
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times) * 1e3, p95 * 1e3, len(times)


def kernel_benchmark(moves: int) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_CODE.format(moves=moves))]
    NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
    return json.loads(text.strip().splitlines()[-1])


def browser_benchmark(moves: int) -> dict:
    from app_harness import chromium_page, move_and_wait, open_app, slider_handles, voila_app

    rows = {}
    with voila_app() as url, chromium_page() as (page, errors, _):
        start = time.perf_counter()
        open_app(page, url, plots=4)
        rows["app: page load to plots drawn (s)"] = [time.perf_counter() - start]
        handles = slider_handles(page)
        page.wait_for_timeout(3000)  # let the trajectory explorer precompute its step counts
        for label, index, plot, trace in [
            ("schedule: t slider", 0, 0, 5),
            ("trajectories: steps", 1, 1, 7),
            ("samplers: eta dial", 2, 2, 3),
            ("few steps: NFE", 5, 3, 5),
        ]:
            times = []
            for i in range(moves):
                key = "ArrowRight" if (i // 5) % 2 == 0 else "ArrowLeft"
                times.append(move_and_wait(page, handles.nth(index), plot, trace, key=key))
            rows[label] = times
        if errors:
            raise RuntimeError(f"page errors during the benchmark: {errors}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "widgets.md")
    args = parser.parse_args()
    cpu_start = time.process_time()
    kernel = kernel_benchmark(args.moves)
    lines = ["| where | control | median (ms) | 95th pct (ms) | moves |", "|---|---|---|---|---|"]
    for name, times in kernel["rows"].items():
        med, p95, n = summary(times)
        lines.append(f"| kernel | {name} | {med:.1f} | {p95:.1f} | {n} |")
    if not args.no_browser:
        for name, times in browser_benchmark(args.moves).items():
            if name.endswith("(s)"):
                lines.append(f"| browser | {name} | {times[0]:.1f} s | | 1 |")
                continue
            med, p95, n = summary(times)
            lines.append(f"| browser | {name} | {med:.1f} | {p95:.1f} | {n} |")
    note = (
        f"\nKernel CPU time {kernel['cpu_seconds']:.1f} s; benchmark process CPU {time.process_time() - cpu_start:.1f} s; "
        f"{time.strftime('%Y-%m-%d %H:%M')}."
    )
    table = "\n".join(lines) + "\n" + note + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
