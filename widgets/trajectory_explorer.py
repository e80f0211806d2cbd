"""Trajectory explorer: straight vs curved paths from noise to data, two methods side by side."""

import threading

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch

from lessons.checks import check_instance, check_seed, choose
from lessons.data2d import sample_target
from lessons.metrics import straightness_per_sample
from lessons.optimal_transport import w2
from lessons.solvers import ODE_METHODS
from widgets.base import (
    BEND_COLORS,
    METHOD_COLORS,
    MUTED,
    Explorer,
    add_legend_entry,
    add_lines,
    add_markers,
    control_style,
    controls_row,
    noise_and_reference,
    paths_xy,
    readout,
    side_by_side_squares,
    target_backdrop,
    two_panels,
)
from widgets.checks import check_array, check_explorer_sizes, check_text
from widgets.models2d import METHOD_CHECKPOINTS, SAMPLERS, PretrainedModels, sample_method
from widgets.plotly_view import PlotlyView

# relative bend of a path: straightness of the path / squared length of its chord (0 = a straight line)
BEND_EDGES = (0.003, 0.02, 0.08, 0.3)
BEND_LABELS = ("straight", "slightly bent", "bent", "curved", "very curved / noisy")
VIEW = 8.0  # the 8-gaussians target sits on a circle of radius 5
MAX_STEPS = 64  # the steps slider's range is 1 to MAX_STEPS (dopri5: the states it records)


def bend_bins(xs: np.ndarray, relative_bend: np.ndarray):
    """Polylines of the paths in each bend bin: [(x, y)] with NaN between paths; xs (S+1, B, 2)."""
    xs = check_array(xs, "xs (the paths: times, samples, coordinates)", 3, "(S+1, B, 2)", last=2)
    relative_bend = check_array(relative_bend, "relative_bend (one per path)", 1, "(B,)")
    if len(relative_bend) != xs.shape[1]:
        raise ValueError(
            f"relative_bend has {len(relative_bend)} values for {xs.shape[1]} paths in xs; give one per path."
        )
    if (relative_bend < 0).any():
        raise ValueError("relative_bend must be >= 0: it is a squared distance from a straight line.")
    which = np.digitize(relative_bend, BEND_EDGES)
    return [paths_xy(xs[:, which == b]) for b in range(len(BEND_LABELS))]


class TrajectoryExplorer(Explorer):
    """Two methods side by side: their trajectories coloured by bend, with W2 to the data and straightness."""

    title = "Straight vs curved: trajectories from noise to data"
    help = (
        "Each line carries one noise sample (black dot) to a sample (coloured dot); grey: the 8-gaussians target density. "
        "Colour says how much a path bends. Fewer steps hurt curved methods first."
    )

    def __init__(
        self,
        models: PretrainedModels | None = None,
        left: str = "I-CFM",
        right: str = "OT-CFM",
        solver: str = "euler",
        steps: int = 8,
        n_samples: int = 500,
        n_lines: int = 150,
        seed: int = 0,
        precompute: bool = True,
    ):
        super().__init__()
        if models is not None:
            check_instance(models, PretrainedModels, "models", "PretrainedModels()")
        for name, value in (("left", left), ("right", right)):
            check_text(value, name)
            choose(value, METHOD_CHECKPOINTS, f"method for the {name} panel")
        check_text(solver, "solver")
        choose(solver, ODE_METHODS, "ODE solver")
        steps, n_samples, n_lines = check_explorer_sizes(steps, n_samples, n_lines, MAX_STEPS)
        seed = check_seed(seed)
        if not isinstance(precompute, bool):
            raise TypeError(
                f"precompute must be True or False, got {type(precompute).__name__} {precompute!r}."
            )
        self.models = models if models is not None else PretrainedModels()
        self.noise, self.reference = noise_and_reference(n_samples, seed)
        self.baseline = w2(
            sample_target("8gaussians", n_samples, seed=seed + 2), self.reference, solver="emd"
        )
        self.n_lines, self.precompute, self.n_shown = n_lines, precompute, min(n_samples, 300)
        self._cache, self._warm_key = {}, None
        methods = list(METHOD_CHECKPOINTS)
        self.left = w.Dropdown(options=methods, value=left, description="left", **control_style("200px"))
        self.right = w.Dropdown(options=methods, value=right, description="right", **control_style("200px"))
        self.solver = w.Dropdown(
            options=list(ODE_METHODS), value=solver, description="ODE solver", **control_style("220px")
        )
        self.steps = w.IntSlider(
            value=steps,
            min=1,
            max=MAX_STEPS,
            description="steps",
            continuous_update=True,
            **control_style("380px"),
        )
        self.readouts = [readout(width="50%") for _ in range(2)]
        self.view = PlotlyView(self._make_figure())
        self.guard(self._update)
        self.observe([self.left, self.right, self.solver, self.steps], self._update)
        controls = controls_row(self.left, self.right, self.solver, self.steps)
        self.widget = self._frame(controls, self.message, w.HBox(self.readouts), self.view)

    def _make_figure(self) -> go.Figure:
        fig = two_panels(("left", "right"))
        for col in (1, 2):
            target_backdrop(fig, [col], VIEW)
            for label, color in zip(BEND_LABELS, BEND_COLORS):
                line = dict(width=1.6, color=color)
                group = dict(legendgroup=f"{label} {col}", showlegend=False)
                add_lines(fig, label, line, col=col, opacity=0.75, hoverinfo="skip", **group)
            add_markers(fig, "noise", dict(size=5, color="#1f2933"), col=col)
            add_markers(
                fig, "samples", dict(size=6, color="#e4572e", line=dict(width=0.5, color="white")), col=col
            )
        # after the updated traces: every bend colour stays in each panel's legend, even when no path has it
        for col in (1, 2):
            for label, color in zip(BEND_LABELS, BEND_COLORS):
                add_legend_entry(
                    fig, label, line=dict(width=3, color=color), col=col, legendgroup=f"{label} {col}"
                )
            add_legend_entry(fig, "target density", dict(size=12, symbol="square", color="#b5bec8"), col=col)
        return side_by_side_squares(fig, VIEW)

    def result(self, method: str, solver: str, steps: int) -> dict:
        """Trajectories and numbers for one setting, computed once and cached."""
        key = (method, "sampler" if method in SAMPLERS else solver, steps)
        if key not in self._cache:
            traj = sample_method(self.models, method, self.noise, steps, solver)
            xs = traj.xs.double()
            per_path = straightness_per_sample(traj)
            relative = (per_path.double() / ((xs[-1] - xs[0]) ** 2).sum(-1).clamp_min(1e-9)).numpy()
            finals = traj.final
            quality = (
                w2(finals, self.reference, solver="emd") if torch.isfinite(finals).all() else float("nan")
            )
            lines = bend_bins(xs[:, : self.n_lines].numpy(), relative[: self.n_lines])
            self._cache[key] = {
                "lines": lines,
                "start": xs[0, : self.n_lines].numpy(),
                "end": xs[-1].numpy(),
                "w2": quality,
                "straightness": float(per_path.mean()),
                "nfe": traj.nfe,
                "solver": key[1],
            }
        return self._cache[key]

    def warm_up(self) -> None:
        """Precompute every step count of the current methods and solver in a background thread."""
        key = (self.left.value, self.right.value, self.solver.value)
        if not self.precompute or key == self._warm_key:
            return
        self._warm_key = key

        def work():
            for steps in range(1, self.steps.max + 1):
                for method in key[:2]:
                    if self._warm_key != key:
                        return
                    try:
                        self.result(method, key[2], steps)
                    except Exception:  # a bad setting is reported when the user picks it
                        return

        threading.Thread(target=work, daemon=True).start()

    def _describe(self, method: str, res: dict) -> str:
        """The steps of a result as its panel title says them, with the network evaluations really made."""
        if res["solver"] == "dopri5":  # adaptive: the slider only sets how many states are recorded
            return f"dopri5, adaptive · NFE {res['nfe']}"
        how = f"{method} sampler" if res["solver"] == "sampler" else res["solver"]
        return f"{self.steps.value} steps of {how} · NFE {res['nfe']}"

    def _update(self) -> None:
        results = [self.result(m.value, self.solver.value, self.steps.value) for m in (self.left, self.right)]
        traces, titles = {}, {}
        for side, (res, control) in enumerate(zip(results, (self.left, self.right))):
            base = side * (len(BEND_LABELS) + 3)
            for b, (x, y) in enumerate(res["lines"]):
                traces[base + 1 + b] = {"x": x, "y": y}
            end = base + 2 + len(BEND_LABELS)
            traces[end - 1] = {"x": res["start"][:, 0], "y": res["start"][:, 1]}
            marker = {**self.view.data[end]["marker"], "color": METHOD_COLORS[control.value]}
            traces[end] = {
                "x": res["end"][: self.n_shown, 0],
                "y": res["end"][: self.n_shown, 1],
                "marker": marker,
            }
            titles[side] = f"<b>{control.value}</b> · {self._describe(control.value, res)}"
        self.view.update(traces, annotations=titles)
        for res, control, line in zip(results, (self.left, self.right), self.readouts):
            color = METHOD_COLORS[control.value]
            line.value = (
                f"<span style='color:{color}'>&#9679;</span> <b>{control.value}</b>: "
                f"W2 to data <b>{res['w2']:.2f}</b> <span style='color:{MUTED}'>(data vs data "
                f"{self.baseline:.2f})</span> &nbsp; straightness <b>{res['straightness']:.2f}</b> "
                f"&nbsp; NFE <b>{res['nfe']}</b>"
            )
        self.warm_up()
