"""Langevin explorer: Langevin chains on the exact score of the 8-Gaussians, and the flow SDE at any noise level.

Left: x <- x + h score(x) + sqrt(2 h) z (lessons.langevin.langevin), or annealed Langevin on p_t for rising t
(lessons.langevin.annealed_langevin, VP path, step size by the signal-to-noise rule r). Right: the flow SDE
dX = [u + (g^2 / 2) score] dt + g dW with g = noise_level * sigma_t (lessons.flow_sde.flow_sde) of the exact
velocity field on the straight path. No network anywhere: the exact mixture model, so every move is instant.
"""

import math
from functools import partial

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch

from lessons.checks import (
    check_finite,
    check_instance,
    check_number,
    check_points,
    check_positive_int,
    check_seed,
    check_tensor,
    choose,
)
from lessons.data2d import sample_target, target_density
from lessons.evaluation import data_band
from lessons.flow_sde import flow_sde
from lessons.langevin import annealed_langevin, langevin
from lessons.metrics import energy_distance
from lessons.mixture import ExactMixtureModel, GaussianMixture
from lessons.schedules import LinearSchedule, VPSchedule
from widgets.base import (
    INK,
    METHOD_COLORS,
    MUTED,
    Explorer,
    add_lines,
    add_markers,
    control_style,
    noise_and_reference,
    paths_xy,
    readout,
    side_by_side_squares,
    target_backdrop,
    two_panels,
)
from widgets.checks import check_whole
from widgets.plotly_view import PlotlyView

VIEW = 8.0
MODES = ("plain", "annealed")
STARTS = ("one mode", "data")  # every chain at the centre of mode 0, or exact samples of the target
STEP_RANGE = (1e-3, 0.5)  # h: ULA on a mode of variance s0^2 ~ 0.32 is stable for h < 2 s0^2 ~ 0.63
SNR_RANGE = (0.01, 0.5)  # r: the corrector's h ~ 2 r^2 s0^2 on the last level, stable for r < 1
MAX_EVALS, EVALS_STEP = 500, 10  # score evaluations of the left panel (annealed: 10 per level)
PER_LEVEL, T_END = 10, 0.99  # annealed levels run on t in [0, 0.99] of the VP path, like lesson 02b
MAX_NOISE_LEVEL, MAX_FLOW_STEPS = 4.0, 64
MAX_SAMPLES = 2_000  # chains per panel: 500 annealed score evaluations of 2000 chains take a few seconds
SPREAD_SAMPLES = 100_000  # exact samples that give the target's own spread
PATH_POINTS = 120  # a chain's drawn path keeps at most this many of its states


def mode_occupancy(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Fraction of the points x (B, 2) whose nearest mixture mean is mode k, (K,) summing to 1."""
    check_instance(mixture, GaussianMixture, "mixture", "target_density('8gaussians')")
    check_finite(check_points(check_tensor(x, "x"), "x", mixture.dim), "x")
    nearest = torch.cdist(x.float(), mixture.means).argmin(1)
    return torch.bincount(nearest, minlength=len(mixture.means)).double() / len(x)


def mode_spread(x: torch.Tensor, mixture: GaussianMixture) -> float:
    """Mean squared distance of the points x (B, 2) to their nearest mixture mean: the width of the modes."""
    check_instance(mixture, GaussianMixture, "mixture", "target_density('8gaussians')")
    check_finite(check_points(check_tensor(x, "x"), "x", mixture.dim), "x")
    return float(torch.cdist(x.double(), mixture.means.double()).min(1).values.pow(2).mean())


def _log_slider(value, span, description, fmt):
    """A base-10 log slider over span (low, high), at value."""
    low, high = (math.log10(v) for v in span)
    return w.FloatLogSlider(
        value=value,
        base=10,
        min=low,
        max=high,
        step=0.05,
        description=description,
        readout_format=fmt,
        **control_style("300px"),
    )


def _thin(xs: torch.Tensor) -> np.ndarray:
    """At most PATH_POINTS states (the first and the last kept) of states xs (S+1, B, 2)."""
    keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), PATH_POINTS)).round().astype(int))
    return xs[keep].numpy()


class LangevinExplorer(Explorer):
    """Left: plain or annealed Langevin with the exact score. Right: the flow SDE of the exact velocity, any noise level."""

    title = "Sampling with a score: Langevin's step size, and the noise level of a flow SDE"
    help = (
        "Left: Langevin, x &larr; x + h &nabla;log p(x) + &radic;(2h) z, exact score: a large h widens the modes, "
        "a small one leaves chains started in one mode there; annealing through the noised p<sub>t</sub> reaches "
        "them all. Right: dX = [u + (g&sup2;/2) &nabla;log p<sub>t</sub>] dt + g dW, g = &gamma;&sigma;<sub>t</sub>: "
        "every &gamma; keeps the ODE's marginals, not its error at few steps."
    )

    def __init__(
        self,
        step_size: float = 0.05,
        snr: float = 0.16,
        evaluations: int = 200,
        noise_level: float = 1.0,
        flow_steps: int = 4,
        n_samples: int = 500,
        n_lines: int = 20,
        seed: int = 0,
    ):
        super().__init__()
        check_number(step_size, "step_size (h)", low=STEP_RANGE[0], high=STEP_RANGE[1])
        check_number(snr, "snr (r)", low=SNR_RANGE[0], high=SNR_RANGE[1])
        evaluations = check_whole(
            evaluations, "evaluations", low=EVALS_STEP, high=MAX_EVALS, why=" (the range of its slider)"
        )
        if evaluations % EVALS_STEP:
            raise ValueError(
                f"evaluations must be a multiple of {EVALS_STEP} (annealing runs {PER_LEVEL} per level), "
                f"got {evaluations}."
            )
        check_number(noise_level, "noise_level (gamma)", low=0.0, high=MAX_NOISE_LEVEL)
        flow_steps = check_whole(
            flow_steps, "flow_steps", high=MAX_FLOW_STEPS, why=" (the range of its slider)"
        )
        n_samples = check_whole(
            n_samples, "n_samples", high=MAX_SAMPLES, why=" (every move reruns that many chains)"
        )
        n_lines = check_whole(
            n_lines, "n_lines", high=n_samples, why=" (the paths drawn are some of the n_samples)"
        )
        self.seed = check_seed(seed)
        self.mixture = target_density("8gaussians")
        self.noise, self.reference = noise_and_reference(n_samples, self.seed)
        self.data_start = sample_target("8gaussians", n_samples, seed=self.seed + 2)
        exact = self.mixture.sample(SPREAD_SAMPLES, generator=torch.Generator().manual_seed(self.seed + 5))
        self.exact_spread = mode_spread(exact, self.mixture)
        self.band = data_band(
            energy_distance, lambda s: sample_target("8gaussians", n_samples, seed=self.seed + 10 + s), 5
        )
        self.eps_model = ExactMixtureModel(self.mixture, VPSchedule())
        self.velocity_model = ExactMixtureModel(self.mixture, LinearSchedule(), prediction="velocity")
        self.n_lines, self._cache = n_lines, {}
        buttons = {"style": {"description_width": "initial", "button_width": "96px"}}
        self.mode = w.ToggleButtons(options=list(MODES), value="plain", description="Langevin", **buttons)
        self.start = w.ToggleButtons(options=list(STARTS), value="one mode", description="start", **buttons)
        self.step_size = _log_slider(step_size, STEP_RANGE, "step size h", ".2g")
        self.snr = _log_slider(snr, SNR_RANGE, "annealed: snr r", ".2g")
        self.evaluations = w.IntSlider(
            value=evaluations,
            min=EVALS_STEP,
            max=MAX_EVALS,
            step=EVALS_STEP,
            description="score evaluations",
            **control_style("300px"),
        )
        self.noise_level = w.FloatSlider(
            value=noise_level,
            min=0.0,
            max=MAX_NOISE_LEVEL,
            step=0.1,
            description="noise level γ",
            readout_format=".1f",
            **control_style("300px"),
        )
        self.flow_steps = w.IntSlider(
            value=flow_steps,
            min=1,
            max=MAX_FLOW_STEPS,
            description="flow steps (NFE)",
            **control_style("300px"),
        )
        self.readouts = [readout(width="50%") for _ in range(2)]
        self.view = PlotlyView(self._make_figure())
        self.guard(self._redraw, self._langevin_updates, self._flow_updates)
        self.observe(
            [self.mode, self.start, self.step_size, self.snr, self.evaluations],
            partial(self._redraw, self._langevin_updates),
        )
        self.observe([self.noise_level, self.flow_steps], partial(self._redraw, self._flow_updates))
        wrap = {"flex_flow": "row wrap"}
        left = w.VBox(
            [
                w.HBox([self.mode, self.start], layout=wrap),
                w.HBox([self.step_size, self.snr], layout=wrap),
                self.evaluations,
            ],
            layout={"width": "55%"},
        )
        right = w.VBox([self.noise_level, self.flow_steps], layout={"width": "45%"})
        # the readouts above the plot: in view with the controls on one screen
        self.widget = self._frame(w.HBox([left, right]), self.message, w.HBox(self.readouts), self.view)

    def _make_figure(self) -> go.Figure:
        fig = two_panels(("Langevin", "flow SDE"))
        target_backdrop(fig, (1, 2), VIEW)
        dot = dict(size=5, line=dict(width=0.5, color="white"))
        add_lines(fig, "Langevin chains", dict(width=1, color=MUTED), opacity=0.5, hoverinfo="skip")
        add_markers(fig, "Langevin samples", dict(dot, color=METHOD_COLORS["DDPM"]))
        fig.add_scatter(  # the fraction of chains nearest to each mode, beside the mode
            x=(1.4 * self.mixture.means[:, 0]).tolist(),
            y=(1.4 * self.mixture.means[:, 1]).tolist(),
            mode="text",
            text=[""] * len(self.mixture.means),
            textfont=dict(size=14, color=INK),
            hoverinfo="skip",
            showlegend=False,
            row=1,
            col=1,
        )
        add_markers(fig, "start", dict(size=14, color=INK, symbol="x-thin", line=dict(width=3, color=INK)))
        add_lines(fig, "flow SDE paths", dict(width=1, color=MUTED), opacity=0.5, hoverinfo="skip", col=2)
        add_markers(fig, "flow SDE samples", dict(dot, color=METHOD_COLORS["I-CFM"]), col=2)
        return side_by_side_squares(fig, VIEW)

    def langevin_result(self, mode: str, start: str, amount: float, evaluations: int) -> dict:
        """Chains after ``evaluations`` score calls: plain with step size h = amount, or annealed with snr r = amount."""
        choose(mode, MODES, "Langevin mode")
        choose(start, STARTS, "start")
        what = "step size h" if mode == "plain" else "signal-to-noise ratio r"
        amount = check_number(amount, f"the {what}", low=0.0, low_open=True)
        check_positive_int(evaluations, "the number of score evaluations")
        if mode == "annealed" and evaluations % PER_LEVEL:
            raise ValueError(
                f"annealed Langevin runs {PER_LEVEL} steps per level: the number of score evaluations must be "
                f"a multiple of {PER_LEVEL}, got {evaluations}."
            )
        key = (mode, start, float(f"{amount:.4g}"), evaluations)
        if key not in self._cache:
            x_start = self.start_points(start)
            generator = torch.Generator().manual_seed(self.seed + 3)
            if mode == "plain":
                traj = langevin(self.mixture.score, x_start, amount, evaluations, generator=generator)
            else:
                ts = torch.linspace(0.0, T_END, evaluations // PER_LEVEL + 1)
                traj = annealed_langevin(
                    self.eps_model,
                    x_start,
                    VPSchedule(),
                    ts,
                    PER_LEVEL,
                    amount,
                    generator=generator,
                    progress=False,
                )
            occupancy = mode_occupancy(traj.final, self.mixture)
            spread = mode_spread(traj.final, self.mixture)
            self._cache[key] = {
                "final": traj.final,
                "paths": paths_xy(_thin(traj.xs[:, : self.n_lines])),
                "energy": energy_distance(traj.final, self.reference),
                "spread": spread,
                "occupancy": occupancy,
                "tv": 0.5 * float((occupancy - self.mixture.weights.double()).abs().sum()),
                "nfe": traj.nfe,
            }
        return self._cache[key]

    def flow_result(self, noise_level: float, steps: int) -> dict:
        """Samples of the flow SDE of the exact velocity with g_t = noise_level * sigma_t, ``steps`` Euler-Maruyama steps."""
        noise_level = check_number(noise_level, "the noise level gamma", low=0.0)
        check_positive_int(steps, "the number of flow steps")
        key = ("flow", float(f"{noise_level:.4g}"), steps)
        if key not in self._cache:
            generator = torch.Generator().manual_seed(self.seed + 4)
            ts = torch.linspace(0, 1, steps + 1)
            traj = flow_sde(
                self.velocity_model,
                self.noise,
                LinearSchedule(),
                ts,
                noise_level,
                generator=generator,
                progress=False,
            )
            self._cache[key] = {
                "final": traj.final,
                "paths": paths_xy(traj.xs[:, : self.n_lines].numpy()),
                "energy": energy_distance(traj.final, self.reference),
                "nfe": traj.nfe,
            }
        return self._cache[key]

    def start_points(self, start: str) -> torch.Tensor:
        """The chains' start, (n_samples, 2): all at the centre of mode 0, or exact samples of the target."""
        choose(start, STARTS, "start")
        if start == "data":
            return self.data_start
        return self.mixture.means[:1].repeat(len(self.noise), 1)

    def _scale(self) -> str:
        return f"<span style='color:{MUTED}'>(data vs data: up to {self.band.abs().max():.3f})</span>"

    def _langevin_updates(self):
        plain = self.mode.value == "plain"
        self.step_size.disabled, self.snr.disabled = not plain, plain
        amount = self.step_size.value if plain else self.snr.value
        res = self.langevin_result(self.mode.value, self.start.value, amount, self.evaluations.value)
        x, y = res["paths"]
        one_mode = self.start.value == "one mode"
        centre = self.mixture.means[0].tolist()
        traces = {
            2: {"x": x, "y": y},
            3: {"x": res["final"][:, 0], "y": res["final"][:, 1]},
            4: {"text": [f"{100 * v:.0f}%" for v in res["occupancy"].tolist()]},
            5: {"x": [centre[0]] if one_mode else [], "y": [centre[1]] if one_mode else []},
        }
        if plain:
            title = f"<b>plain, h = {amount:.2g}</b> · {res['nfe']} steps (physical time {amount * res['nfe']:.3g})"
        else:
            title = (
                f"<b>annealed, r = {amount:.2g}</b> · {res['nfe'] // PER_LEVEL} levels × {PER_LEVEL} steps"
            )
        self.readouts[0].value = (
            f"mode width <b>{res['spread']:.2f}</b> <span style='color:{MUTED}'>(exact "
            f"{self.exact_spread:.2f})</span> &nbsp; chains per mode vs 1/8: TV <b>{res['tv']:.2f}</b><br>"
            f"energy distance to data <b>{res['energy']:.3f}</b> {self._scale()}"
        )
        return traces, {0: title}

    def _flow_updates(self):
        gamma, steps = self.noise_level.value, self.flow_steps.value
        res = self.flow_result(gamma, steps)
        ode = self.flow_result(0.0, steps)
        x, y = res["paths"]
        traces = {6: {"x": x, "y": y}, 7: {"x": res["final"][:, 0], "y": res["final"][:, 1]}}
        which = " (the Euler ODE)" if gamma == 0 else ""
        title = f"<b>flow SDE, γ = {gamma:.1f}</b>{which} · {steps} steps"
        self.readouts[1].value = (
            f"energy distance to data <b>{res['energy']:.3f}</b> {self._scale()}<br>"
            f"the ODE (γ = 0) at {steps} steps: <b>{ode['energy']:.3f}</b>"
        )
        return traces, {1: title}
