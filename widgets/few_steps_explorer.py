"""Few-steps explorer: two samplers side by side on one budget of network calls (NFE), from the same noise.

Each panel picks a sampler of the course's 2D checkpoints (lesson 10): DDIM and DPM-Solver++(2M) on DDIM's grid of
the eps-network (one call per step), EDM's Heun sampler on EDM's grid over that network's range (two calls per step,
one on the last), the I-CFM and reflow velocity networks with Euler steps, and MeanFlow's jumps
x <- x + (t' - t) u(x, t, t') (one call each). A sampler's readout gives the calls it made, its W2 to the data, and
its solver error: the mean distance to the exact ODE solution of the network it approximates, from the same noise.
"""

from functools import lru_cache, partial

import ipywidgets as w
import plotly.graph_objects as go
import torch

from lessons.checks import (
    check_finite,
    check_instance,
    check_points,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.data2d import sample_target
from lessons.ddim import ddim
from lessons.ddpm import DDPM, DiscreteVPSchedule, ddim_times
from lessons.dpm_solver import dpm_solver_2m
from lessons.edm_sampler import ddpm_karras_times, edm_heun
from lessons.evaluation import data_band
from lessons.mean_flow import mean_flow_sample
from lessons.optimal_transport import w2
from lessons.solvers import solve_ode
from lessons.trajectory import Trajectory
from widgets.base import (
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
from widgets.checks import check_explorer_sizes, check_whole
from widgets.models2d import REMAKE, PretrainedModels
from widgets.plotly_view import PlotlyView

VIEW = 8.0
MAX_NFE = 20  # the NFE slider's range is 1 to MAX_NFE
# sampler -> the checkpoint it runs on
SAMPLERS = {
    "DDIM": "ddpm",
    "DPM-Solver++(2M)": "ddpm",
    "EDM Heun": "ddpm",
    "I-CFM (Euler)": "icfm",
    "reflow (Euler)": "reflow",
    "MeanFlow": "meanflow",
}
# checkpoint -> (the network whose exact ODE solution its samplers approximate, how the readout names it);
# MeanFlow learns the flow map of its I-CFM teacher
EXACT_OF = {
    "ddpm": ("ddpm", "the eps-network's"),
    "icfm": ("icfm", "the I-CFM network's"),
    "reflow": ("reflow", "the reflow network's"),
    "meanflow": ("icfm", "its I-CFM teacher's"),
}
EXACT_STEPS = 1000  # the eps-network's exact solution: DPM-Solver++(2M) on DDIM's 1000-step grid (lesson 10)
FLOW_EXACT_STEPS = 100  # a velocity network's: 100 RK4 steps
COLORS = {  # Okabe-Ito, distinct within this explorer
    "DDIM": METHOD_COLORS["DDIM"],
    "DPM-Solver++(2M)": METHOD_COLORS["PF-ODE"],
    "EDM Heun": "#009e73",
    "I-CFM (Euler)": METHOD_COLORS["I-CFM"],
    "reflow (Euler)": METHOD_COLORS["reflow"],
    "MeanFlow": "#d55e00",
}
SAMPLE_MARKER = dict(size=6, line=dict(width=0.5, color="white"))  # both panels' samples, colored by sampler


def edm_levels(budget: int) -> int:
    """The most noise levels N whose EDM Heun run on karras_times costs 2 N - 1 <= budget network calls."""
    check_positive_int(budget, "the budget of network calls (NFE)")
    return (budget + 1) // 2


@lru_cache(maxsize=64)
def _edm_times(
    num_steps: int, beta_start: float, beta_end: float, levels: int, dtype: torch.dtype
) -> torch.Tensor:
    """ddpm_karras_times (levels+1,) of one DDPM, built once per setting: the slider comes back to the same budgets."""
    return ddpm_karras_times(DDPM(num_steps, beta_start, beta_end), levels, dtype=dtype)


def few_step_sample(models: PretrainedModels, sampler: str, noise: torch.Tensor, budget: int) -> Trajectory:
    """Trajectory (S+1, B, 2) of one sampler from noise (B, 2) using at most ``budget`` network calls (its nfe).

    DDIM and DPM-Solver++(2M): budget steps on ddim_times. EDM Heun: edm_levels(budget) levels of ddpm_karras_times
    (from sigma_t / alpha_t at t = 0 down to one DDPM step before the data, then 0). I-CFM and reflow: budget Euler
    steps. MeanFlow: budget jumps of mean_flow_sample.
    """
    check_instance(models, PretrainedModels, "models", "PretrainedModels()")
    choose(sampler, SAMPLERS, "sampler")
    budget = check_whole(
        budget, "the budget of network calls (NFE)", high=MAX_NFE, why=" (the NFE slider's range)"
    )
    check_finite(check_points(check_tensor(noise, "noise"), "noise", dim=2), "noise")
    name = SAMPLERS[sampler]
    if not (models.directory / f"{name}.pt").is_file():
        raise ValueError(
            f"the {sampler} sampler needs the checkpoint {models.directory / name}.pt, which is not there; make "
            f"it with {REMAKE} --methods {name}."
        )
    model, settings = models.get(name)
    if name == "ddpm":
        ddpm = DDPM(settings["ddpm_steps"], settings["beta_start"], settings["beta_end"])
        schedule = DiscreteVPSchedule(ddpm)
        if sampler == "DDIM":
            return ddim(model, noise, schedule, ddim_times(ddpm, budget), progress=False)
        if sampler == "DPM-Solver++(2M)":
            return dpm_solver_2m(model, noise, schedule, ddim_times(ddpm, budget), progress=False)
        key = (ddpm.num_steps, settings["beta_start"], settings["beta_end"], edm_levels(budget))
        ts = _edm_times(*key, torch.get_default_dtype()).clone()  # a copy: the caller may write into traj.ts
        return edm_heun(model, noise, schedule, ts, progress=False)
    if name == "meanflow":
        return mean_flow_sample(model, noise, steps=budget)
    with torch.inference_mode():
        return solve_ode(model, noise, steps=budget, method="euler")


def _budget_note(sampler: str, budget: int) -> str:
    """What the readout adds to 'NFE n of budget': why a sampler used fewer calls, or why two samplers agree."""
    if sampler == "EDM Heun":
        levels = edm_levels(budget)
        if levels == 1:
            return " (one level: a single Euler step; a Heun step needs 2 calls)"
        return f" ({levels} levels: 2 calls a step, 1 on the last)"
    if sampler == "DPM-Solver++(2M)" and budget <= 2:
        return " (= DDIM here: its first step and its step into the data are DDIM's)"
    return ""


class FewStepsExplorer(Explorer):
    """Two samplers, one chosen per panel, on the same budget of network calls and the same noise."""

    title = "Few steps: which sampler makes the most of a budget of network calls?"
    help = (
        "Both panels start from the same noise and may call their network as often as the NFE slider says. "
        "DDIM and DPM-Solver++(2M) share the eps-network and its grid; EDM's Heun pays two calls a step; "
        "I-CFM and reflow take Euler steps; MeanFlow jumps along its teacher's flow."
    )

    def __init__(
        self,
        models: PretrainedModels | None = None,
        left: str = "DDIM",
        right: str = "DPM-Solver++(2M)",
        nfe: int = 4,
        n_samples: int = 500,
        n_lines: int = 30,
        seed: int = 0,
    ):
        super().__init__()
        if models is not None:
            check_instance(models, PretrainedModels, "models", "PretrainedModels()")
        choose(left, SAMPLERS, "sampler for the left panel")
        choose(right, SAMPLERS, "sampler for the right panel")
        nfe = check_whole(
            nfe, "nfe (the budget of network calls)", high=MAX_NFE, why=" (the NFE slider's range)"
        )
        _, n_samples, n_lines = check_explorer_sizes(nfe, n_samples, n_lines, MAX_NFE)
        self.seed = check_seed(seed)
        self.models = models if models is not None else PretrainedModels()
        self.noise, self.reference = noise_and_reference(n_samples, self.seed)
        self.band = data_band(
            lambda a, b: w2(a, b, solver="emd"),
            lambda s: sample_target("8gaussians", n_samples, seed=self.seed + 10 + s),
            5,
        )
        self.n_lines, self._cache, self._exact = n_lines, {}, {}
        pick = dict(options=list(SAMPLERS), **control_style("300px"))
        self.left = w.Dropdown(value=left, description="left", **pick)
        self.right = w.Dropdown(value=right, description="right", **pick)
        self.nfe = w.IntSlider(
            value=nfe, min=1, max=MAX_NFE, description="network calls (NFE)", **control_style("380px")
        )
        self.readouts = [readout(width="50%") for _ in range(2)]
        self.view = PlotlyView(self._make_figure())
        panels = (partial(self._panel_updates, 0), partial(self._panel_updates, 1))
        self.guard(self._redraw, *panels)
        self.observe([self.left], partial(self._redraw, panels[0]))
        self.observe([self.right], partial(self._redraw, panels[1]))
        self.observe([self.nfe], partial(self._redraw, *panels))
        controls = controls_row(self.left, self.right, self.nfe)
        self.widget = self._frame(controls, self.message, w.HBox(self.readouts), self.view)

    def _make_figure(self) -> go.Figure:
        fig = two_panels(("left", "right"))
        target_backdrop(fig, (1, 2), VIEW)
        for col in (1, 2):  # traces 2, 3 (left) and 4, 5 (right): paths, then samples
            add_lines(fig, "paths", dict(width=1.2, color=MUTED), col=col, opacity=0.6, hoverinfo="skip")
            add_markers(fig, "samples", dict(SAMPLE_MARKER, color=MUTED), col=col)
        for col in (1, 2):  # after the updated traces, so that their indices stay put
            add_legend_entry(fig, "target density", dict(size=12, symbol="square", color="#b5bec8"), col=col)
        return side_by_side_squares(fig, VIEW)

    def exact_solution(self, network: str) -> torch.Tensor:
        """The network's exact ODE solution (n_samples, 2) from the explorer's noise, computed once.

        'ddpm': DPM-Solver++(2M) on DDIM's 1000-step grid; 'icfm' or 'reflow': 100 RK4 steps.
        """
        choose(network, ("ddpm", "icfm", "reflow"), "network with an exact ODE solution")
        if network not in self._exact:
            model, settings = self.models.get(network)
            if network == "ddpm":
                ddpm = DDPM(settings["ddpm_steps"], settings["beta_start"], settings["beta_end"])
                ts = ddim_times(ddpm, EXACT_STEPS)
                exact = dpm_solver_2m(model, self.noise, DiscreteVPSchedule(ddpm), ts, progress=False)
            else:
                with torch.inference_mode():
                    exact = solve_ode(model, self.noise, steps=FLOW_EXACT_STEPS, method="rk4")
            self._exact[network] = exact.final
        return self._exact[network]

    def sampler_result(self, sampler: str, budget: int) -> dict:
        """Samples of one sampler on at most ``budget`` calls: final, paths of the first n_lines, nfe, w2, error."""
        choose(sampler, SAMPLERS, "sampler")
        budget = check_whole(
            budget, "the budget of network calls (NFE)", high=MAX_NFE, why=" (the NFE slider's range)"
        )
        key = (sampler, budget)
        if key not in self._cache:
            traj = few_step_sample(self.models, sampler, self.noise, budget)
            exact = self.exact_solution(EXACT_OF[SAMPLERS[sampler]][0])
            self._cache[key] = {
                "final": traj.final,
                "paths": paths_xy(traj.xs[:, : self.n_lines].numpy()),
                "nfe": traj.nfe,
                "w2": w2(traj.final, self.reference, solver="emd"),
                "error": float((traj.final - exact).norm(dim=1).mean()),
            }
        return self._cache[key]

    def _panel_updates(self, side: int):
        sampler = (self.left, self.right)[side].value
        budget = self.nfe.value
        res = self.sampler_result(sampler, budget)
        x, y = res["paths"]
        marker = dict(SAMPLE_MARKER, color=COLORS[sampler])
        final = res["final"]
        traces = {
            2 + 2 * side: {"x": x, "y": y},
            3 + 2 * side: {"x": final[:, 0], "y": final[:, 1], "name": sampler, "marker": marker},
        }
        note = _budget_note(sampler, budget)
        off = int((final.abs() > VIEW).any(dim=1).sum())
        if off:
            note += f" &nbsp; <b>{off}</b> of {len(final)} samples off the plot"
        band = f"<span style='color:{MUTED}'>(data vs data {self.band.min():.2f} to {self.band.max():.2f})</span>"
        whose = EXACT_OF[SAMPLERS[sampler]][1]
        self.readouts[side].value = (
            f"NFE <b>{res['nfe']}</b> of {budget}{note} &nbsp; W2 to data <b>{res['w2']:.2f}</b> {band}<br>"
            f"mean distance to {whose} exact ODE solution <b>{res['error']:.3f}</b>"
        )
        return traces, {side: f"<b>{sampler}</b> · NFE {res['nfe']}"}
