"""Schedule explorer: a schedule family and its parameters; alpha, sigma, log-SNR, SNR over t; p_t at t."""

import inspect
import math

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons.checks import check_number, choose
from lessons.data2d import TARGETS, sample_target
from lessons.ddpm import DDPM, DiscreteVPSchedule
from lessons.schedules import SCHEDULES, make_schedule
from widgets.base import (
    LAYOUT,
    MUTED,
    Explorer,
    add_lines,
    add_markers,
    control_style,
    controls_row,
    density_image,
    readout,
    style_axes,
)
from widgets.checks import check_text, check_whole
from widgets.plotly_view import PlotlyView


def _defaults(cls, *names) -> list:
    """[(parameter, the library's default value)] for the named keyword parameters of cls."""
    params = inspect.signature(cls).parameters
    return [(name, params[name].default) for name in names]


# family -> (label, [(parameter, default)]); 'ddpm' is DDPM's discrete linear betas
FAMILIES = {
    "linear": ("linear / OT (alpha = t)", _defaults(SCHEDULES["linear"], "sigma_min")),
    "cosine": ("cosine (variance preserving)", []),
    "vp": ("VP, continuous DDPM (Song et al.)", _defaults(SCHEDULES["vp"], "beta_min", "beta_max")),
    "ve": ("VE (alpha = 1)", _defaults(SCHEDULES["ve"], "sigma_min", "sigma_max")),
    "ddpm": (f"DDPM discrete betas, T = {DDPM().num_steps}", _defaults(DDPM, "beta_start", "beta_end")),
}
GRID_T, PIXELS, LOG_SNR_VIEW = 201, 80, 14.0
MAX_POINTS = 1_000_000  # each move of t redraws a histogram of n_points samples: keep the slider quick


def build_schedule(family: str, **params):
    """The library schedule of a family ('ddpm' wraps lessons.ddpm.DDPM's alpha-bars)."""
    check_text(family, "family")
    choose(family, FAMILIES, "schedule family")
    cls = DDPM if family == "ddpm" else SCHEDULES[family]
    allowed = [name for name in inspect.signature(cls).parameters if name != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes no parameters"
        raise ValueError(f"the {family!r} schedule {takes}; got unknown parameter(s) {', '.join(unknown)}.")
    for name, value in params.items():
        check_number(value, name)
    if family == "ddpm":
        return DiscreteVPSchedule(DDPM(**params))
    return make_schedule(family, **params)


def _finite(values: torch.Tensor) -> list:
    """Plotly-ready list with infinities and NaN as gaps (None)."""
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


class ScheduleExplorer(Explorer):
    """Pick a schedule; see its curves and the marginal p_t of a 2D target at the chosen t."""

    title = "Noise schedules"
    help = (
        "x<sub>t</sub> = &alpha;(t) data + &sigma;(t) noise, t = 0 noise, t = 1 data. "
        "The white dot on each curve is the chosen t: move it to watch the target dissolve into noise; "
        "try an impossible schedule (beta_min > beta_max)."
    )

    def __init__(
        self, family: str = "cosine", target: str = "8gaussians", t: float = 0.5, n_points: int = 20_000
    ):
        super().__init__()
        check_text(family, "family")
        choose(family, FAMILIES, "schedule family")
        check_text(target, "target")
        choose(target, TARGETS, "2D target")
        check_number(t, "t", low=0, high=1)
        n_points = check_whole(n_points, "n_points", high=MAX_POINTS, why=" (each move of t redraws them)")
        self.n_points = n_points
        self._samples = {}
        self.family = w.Dropdown(
            options=[(v[0], k) for k, v in FAMILIES.items()],
            value=family,
            description="schedule",
            **control_style("340px"),
        )
        self.params = [w.FloatText(description="", **control_style("190px")) for _ in range(2)]
        self.target = w.Dropdown(
            options=list(TARGETS), value=target, description="target", **control_style("220px")
        )
        self.t = w.FloatSlider(
            value=t,
            min=0.0,
            max=1.0,
            step=0.01,
            description="t",
            readout_format=".2f",
            continuous_update=True,
            **control_style("420px"),
        )
        self.readout = readout()
        self.view = PlotlyView(self._make_figure())
        self._set_param_boxes(family)
        self.schedule, self._muted = None, False
        self.guard(self._update_all)
        self.family.observe(self._on_family, names="value")
        self.observe(self.params, self._update_all)
        self.observe([self.target], self._update_marginal)
        self.observe([self.t], self._update_marginal)
        controls = w.VBox([controls_row(self.family, *self.params), controls_row(self.t, self.target)])
        self.widget = self._frame(controls, self.message, self.readout, self.view)

    def _make_figure(self) -> go.Figure:
        fig = make_subplots(
            rows=2,
            cols=3,
            specs=[[{}, {}, {"rowspan": 2}], [{}, {}, None]],
            column_widths=[0.3, 0.3, 0.4],
            horizontal_spacing=0.08,
            vertical_spacing=0.16,
            subplot_titles=(
                "alpha(t) and sigma(t)",
                "log-SNR = log(alpha²/sigma²)",
                "marginal p<sub>t</sub>(x)",
                "SNR = alpha²/sigma²",
                "alpha² + sigma²",
            ),
        )
        for name, color, row, col in [
            ("alpha", "#0072b2", 1, 1),
            ("sigma", "#d55e00", 1, 1),
            ("log-SNR", "#009e73", 1, 2),
            ("SNR", "#cc79a7", 2, 1),
            ("alpha² + sigma²", "#56b4e9", 2, 2),
        ]:
            add_lines(fig, name, dict(color=color, width=3), row, col, showlegend=name in ("alpha", "sigma"))
        dot = dict(size=12, color="white", line=dict(width=3, color="#1f2933"))
        for row, col in [(1, 1), (1, 1), (1, 2), (2, 1), (2, 2)]:  # the current t on each curve
            add_markers(fig, None, dot, row, col, showlegend=False)
        fig.add_heatmap(
            z=[[0]],
            colorscale="Blues",
            showscale=False,
            hovertemplate="density / max = %{z:.2f}<extra></extra>",
            row=1,
            col=3,
        )
        fig.update_layout(**LAYOUT, autosize=True)  # no height: it fills the explorer's frame
        fig.update_layout(legend=dict(x=0.01, y=0.99, xanchor="left", yanchor="top"))
        style_axes(fig)
        for row, col in [(1, 1), (1, 2), (2, 1), (2, 2)]:
            fig.update_xaxes(range=[0, 1], row=row, col=col)
        fig.update_xaxes(title_text="t (0 = noise, 1 = data)", row=2, col=1)
        fig.update_xaxes(title_text="t (0 = noise, 1 = data)", row=2, col=2)
        # fixed ranges, so that schedules can be compared by eye
        fig.update_yaxes(range=[-0.05, 1.55], row=1, col=1)
        fig.update_yaxes(range=[-LOG_SNR_VIEW, LOG_SNR_VIEW], row=1, col=2)
        fig.update_yaxes(type="log", exponentformat="power", range=[-6, 6], row=2, col=1)
        fig.update_yaxes(range=[0, 1.6], row=2, col=2)
        fig.update_yaxes(scaleanchor="x3", scaleratio=1, row=1, col=3)
        fig.update_xaxes(constrain="domain", row=1, col=3)
        fig.update_yaxes(constrain="domain", constraintoward="top", row=1, col=3)
        return fig

    def _set_param_boxes(self, family: str) -> None:
        params = FAMILIES[family][1]
        for box, spec in zip(self.params, params + [None] * (2 - len(params))):
            box.layout.display = "none" if spec is None else "flex"
            if spec is not None:
                box.description, box.value = spec

    def _on_family(self, change) -> None:
        self._muted = True  # the parameter boxes change below: draw once, at the end
        try:
            self._set_param_boxes(change["new"])
        finally:
            self._muted = False
        self.guard(self._update_all)

    def current_params(self) -> dict:
        """The family's parameters as typed in the boxes."""
        return {box.description: box.value for box in self.params[: len(FAMILIES[self.family.value][1])]}

    def _update_all(self) -> None:
        if self._muted:
            return
        self.schedule = None
        schedule = build_schedule(self.family.value, **self.current_params())
        ts = torch.linspace(0, 1, GRID_T, dtype=torch.float64)
        c = schedule(ts)
        log_snr = c.log_snr()
        if not (torch.isfinite(c.alpha).all() and (c.sigma >= 0).all()):
            raise ValueError("this schedule gives alpha or sigma that are not finite numbers.")
        self.schedule = schedule
        x = ts.tolist()
        curves = [c.alpha, c.sigma, log_snr, torch.exp(log_snr), c.alpha**2 + c.sigma**2]
        self._update_marginal({i: {"x": x, "y": _finite(values)} for i, values in enumerate(curves)})

    def _target_points(self, name: str):
        if name not in self._samples:
            data = sample_target(name, self.n_points, seed=0)
            noise = torch.randn(self.n_points, 2, generator=torch.Generator().manual_seed(1))
            self._samples[name] = (data.double(), noise.double(), float(data.abs().max()))
        return self._samples[name]

    def _update_marginal(self, traces: dict | None = None) -> None:
        if self.schedule is None:
            raise ValueError("fix the schedule's parameters first.")
        t = torch.tensor([self.t.value], dtype=torch.float64)
        c = self.schedule(t)
        alpha, sigma = float(c.alpha), float(c.sigma)
        if alpha > 0 and sigma > 0:
            log_snr = 2 * (math.log(alpha) - math.log(sigma))
        else:
            log_snr = -math.inf if alpha <= 0 else math.inf
        data, noise, reach = self._target_points(self.target.value)
        half = alpha * reach + 3.2 * sigma + 1e-3
        edges = np.linspace(-half, half, PIXELS + 1)
        centers = 0.5 * (edges[1:] + edges[:-1])
        if self.target.value in ("8gaussians", "mixture") and sigma > 0:
            z, how = density_image(self.target.value, centers, alpha, sigma), "exact density"
        else:
            x_t = (alpha * data + sigma * noise).numpy()
            z, _, _ = np.histogram2d(x_t[:, 1], x_t[:, 0], bins=[edges, edges], density=True)
            how = f"histogram of {self.n_points:,} samples"
        snr_text = "∞" if log_snr == math.inf else f"{math.exp(log_snr):.3g}" if log_snr > -math.inf else "0"
        self.readout.value = (
            f"t = <b>{self.t.value:.2f}</b> &nbsp; alpha = <b>{alpha:.3f}</b> &nbsp; "
            f"sigma = <b>{sigma:.3f}</b> &nbsp; log-SNR = <b>{log_snr:.2f}</b> &nbsp; "
            f"SNR = <b>{snr_text}</b> &nbsp; <span style='color:{MUTED}'>p<sub>t</sub>: {how}</span>"
        )
        point_values = [
            alpha,
            sigma,
            log_snr,
            math.exp(log_snr) if log_snr < 700 else None,
            alpha**2 + sigma**2,
        ]
        traces = dict(traces or {})
        for i, value in enumerate(point_values):
            ok = value is not None and math.isfinite(value) and value > (0 if i == 3 else -math.inf)
            traces[5 + i] = {"x": [self.t.value], "y": [value]} if ok else {"x": [], "y": []}
        traces[10] = {"x": centers, "y": centers, "z": z / max(z.max(), 1e-12)}
        self.view.update(traces)
