"""Sampler explorer: the eta / churn dial from DDIM to DDPM, and a rescaling that DDIM ignores but Euler does not."""

from functools import partial

import ipywidgets as w
import plotly.graph_objects as go
import torch

from lessons.checks import check_instance, check_number, check_positive_int, check_seed, choose
from lessons.conversions import change_schedule
from lessons.ddim import ddim
from lessons.optimal_transport import w2
from lessons.schedules import LinearSchedule, RescaledSchedule
from lessons.solvers import solve_ode
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
from widgets.checks import check_explorer_sizes
from widgets.models2d import PretrainedModels, sample_method
from widgets.plotly_view import PlotlyView

VIEW = 8.0
MAX_STEPS = 40  # the steps slider's range is 1 to MAX_STEPS
MODES = ("eta", "churn")  # the dial: DDIM's eta or the churn of churn_sampler
LOWEST_STRENGTH = -0.9  # c(t) = 1 + s 4t(1 - t) > 0 needs s > -1: the slider stops one notch short


def bump(strength: float):
    """c(t) = 1 + strength * 4 t (1 - t) and dc/dt: equal to 1 at both ends, so samples stay comparable."""
    check_number(strength, "the rescaling strength s")
    if not strength > -1:
        raise ValueError(
            f"the rescaling c(t) = 1 + s 4t(1 - t) must stay positive, which needs s > -1; got s = {strength}."
        )
    return lambda t: (1 + strength * 4 * t * (1 - t), strength * 4 * (1 - 2 * t))


class SamplerExplorer(Explorer):
    """Left: DDIM (0) to DDPM (1) by eta or churn. Right: DDIM and flow Euler under a rescaling of (alpha, sigma)."""

    title = "Samplers: from DDIM to DDPM, and what a rescaling changes"
    help = (
        "Left: eta (or churn) = 0 is deterministic DDIM, 1 is DDPM; same noise, same network. "
        "Right: x<sub>t</sub> &rarr; c(t) x<sub>t</sub> leaves DDIM's samples unchanged but moves the flow Euler sampler."
    )

    def __init__(
        self,
        models: PretrainedModels | None = None,
        steps: int = 10,
        n_samples: int = 300,
        n_lines: int = 60,
        seed: int = 0,
    ):
        super().__init__()
        if models is not None:
            check_instance(models, PretrainedModels, "models", "PretrainedModels()")
        steps, n_samples, n_lines = check_explorer_sizes(steps, n_samples, n_lines, MAX_STEPS)
        seed = check_seed(seed)
        self.models = models if models is not None else PretrainedModels()
        self.noise, self.reference = noise_and_reference(n_samples, seed)
        self.n_lines, self._cache = n_lines, {}
        self.mode = w.ToggleButtons(
            options=list(MODES),
            value="eta",
            description="dial",
            style={"description_width": "initial", "button_width": "70px"},
        )
        self.amount = w.FloatSlider(
            value=0.0,
            min=0.0,
            max=1.0,
            step=0.05,
            description="DDIM ⟷ DDPM",
            readout_format=".2f",
            **control_style("360px"),
        )
        self.strength = w.FloatSlider(
            value=0.0,
            min=LOWEST_STRENGTH,
            max=3.0,
            step=0.1,
            description="rescaling s",
            readout_format=".1f",
            **control_style("360px"),
        )
        self.steps = w.IntSlider(
            value=steps, min=1, max=MAX_STEPS, description="steps", **control_style("300px")
        )
        self.readouts = [readout(width="50%") for _ in range(2)]
        self.view = PlotlyView(self._make_figure())
        self.guard(self._redraw, self._dial_updates, self._rescaling_updates)
        self.observe([self.mode, self.amount], partial(self._redraw, self._dial_updates))
        self.observe([self.strength], partial(self._redraw, self._rescaling_updates))
        self.observe([self.steps], partial(self._redraw, self._dial_updates, self._rescaling_updates))
        controls = controls_row(self.mode, self.amount, self.strength, self.steps)
        self.widget = self._frame(controls, self.message, w.HBox(self.readouts), self.view)

    def _make_figure(self) -> go.Figure:
        fig = two_panels(("eta = 0: DDIM", "rescaled schedule"))
        target_backdrop(fig, (1, 2), VIEW)
        add_lines(fig, "paths", dict(width=1.2, color="#7b8794"), opacity=0.6, hoverinfo="skip")
        dot = dict(size=6, line=dict(width=0.5, color="white"))
        add_markers(fig, "samples", dict(dot, color=METHOD_COLORS["DDPM"]))
        ring = dict(size=9, color=METHOD_COLORS["DDIM"], symbol="circle-open", line=dict(width=2))
        add_markers(fig, "DDIM, rescaled", ring, col=2)
        add_markers(fig, "flow Euler, rescaled", dict(dot, color=METHOD_COLORS["I-CFM"]), col=2)
        for col in (1, 2):  # after the updated traces, so that their indices stay put
            add_legend_entry(fig, "target density", dict(size=12, symbol="square", color="#b5bec8"), col=col)
        return side_by_side_squares(fig, VIEW)

    def dial_result(self, mode: str, amount: float, steps: int) -> dict:
        """Samples of the eps network with eta (or churn) = amount; paths of the first n_lines."""
        choose(mode, MODES, "dial")
        check_number(amount, f"the {mode} amount", low=0)
        check_positive_int(steps, "the number of steps")
        key = ("dial", mode, round(amount, 4), steps)
        if key not in self._cache:
            traj = sample_method(
                self.models, "DDIM", self.noise, steps, stochasticity=amount, use_churn=mode == "churn"
            )
            deterministic = self.dial_result(mode, 0.0, steps)["final"] if amount else traj.final
            self._cache[key] = {
                "final": traj.final,
                "paths": paths_xy(traj.xs[:, : self.n_lines].numpy()),
                "w2": w2(traj.final, self.reference, solver="emd"),
                "moved": float((traj.final - deterministic).norm(dim=1).mean()),
                "nfe": traj.nfe,
            }
        return self._cache[key]

    def rescaling_result(self, strength: float, steps: int) -> dict:
        """DDIM and flow Euler samples of the I-CFM network on the schedule c(t) (alpha, sigma) of the straight path."""
        bump(strength)
        check_positive_int(steps, "the number of steps")
        key = ("rescale", round(strength, 4), steps)
        if key not in self._cache:
            model, _ = self.models.get("icfm")
            base = LinearSchedule()
            scaled = RescaledSchedule(base, bump(strength))
            ts = torch.linspace(0, 1, steps + 1)
            with torch.inference_mode():
                # a pure rescaling keeps the log-SNR: the network is evaluated at (x / c(t), t)
                data_model = change_schedule(model, base, scaled, prediction="velocity", output="data")
                field = change_schedule(model, base, scaled, prediction="velocity", output="velocity")
                ddim_traj = ddim(data_model, self.noise, scaled, ts, prediction="data")
                euler_traj = solve_ode(field, self.noise, method="euler", ts=ts)
            ddim_final, euler_final = ddim_traj.final, euler_traj.final
            if strength:  # DDIM's samples do not move, so its W2 is the one of s = 0
                same = self.rescaling_result(0.0, steps)
                w2_ddim = same["w2_ddim"]
            else:
                same, w2_ddim = (
                    {"ddim": ddim_final, "euler": euler_final},
                    w2(ddim_final, self.reference, solver="emd"),
                )
            self._cache[key] = {
                "ddim": ddim_final,
                "euler": euler_final,
                "w2_ddim": w2_ddim,
                "ddim_moved": float((ddim_final - same["ddim"]).norm(dim=1).max()),
                "euler_moved": float((euler_final - same["euler"]).norm(dim=1).mean()),
                "w2_euler": w2(euler_final, self.reference, solver="emd"),
                "nfe": (ddim_traj.nfe, euler_traj.nfe),
            }
        return self._cache[key]

    def _dial_updates(self):
        res = self.dial_result(self.mode.value, self.amount.value, self.steps.value)
        x, y = res["paths"]
        traces = {2: {"x": x, "y": y}, 3: {"x": res["final"][:, 0], "y": res["final"][:, 1]}}
        which = {0.0: " (DDIM)", 1.0: " (DDPM)"}.get(self.amount.value, "")
        titles = {0: f"<b>{self.mode.value} = {self.amount.value:.2f}</b>{which} · NFE {res['nfe']}"}
        self.readouts[0].value = (
            f"W2 to data <b>{res['w2']:.2f}</b> &nbsp; mean move from DDIM's samples "
            f"<b>{res['moved']:.2f}</b> <span style='color:{MUTED}'>(same noise, same network)</span>"
        )
        return traces, titles

    def _rescaling_updates(self):
        res = self.rescaling_result(self.strength.value, self.steps.value)
        traces = {
            4: {"x": res["ddim"][:, 0], "y": res["ddim"][:, 1]},
            5: {"x": res["euler"][:, 0], "y": res["euler"][:, 1]},
        }
        ddim_nfe, euler_nfe = res["nfe"]
        nfe = f"NFE {ddim_nfe}" if ddim_nfe == euler_nfe else f"NFE {ddim_nfe} (DDIM), {euler_nfe} (Euler)"
        sign = "+" if self.strength.value >= 0 else "−"
        c_of_t = f"c(t) = 1 {sign} {abs(self.strength.value):.1f}·4t(1−t)"
        titles = {1: f"<b>{c_of_t}</b> · I-CFM net · {nfe}"}
        self.readouts[1].value = (
            f"moved: DDIM <b>{res['ddim_moved']:.0e}</b> (max), Euler <b>{res['euler_moved']:.2f}</b> "
            f"(mean) &nbsp; W2: DDIM <b>{res['w2_ddim']:.2f}</b>, Euler <b>{res['w2_euler']:.2f}</b>"
        )
        return traces, titles
