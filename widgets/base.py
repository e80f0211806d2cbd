"""What every explorer shares: a look that reads well on a projector, and errors shown as messages.

An explorer owns one figure (a widgets.plotly_view.PlotlyView, redrawn in place by one message per
move), its controls, and a message line. Its frame fits one screen (1280x720 as well as 1920x1080): title,
controls and readouts on top, the plot last, stretched to what they leave, so nothing is below the fold.
Control callbacks run through ``Explorer.guard``: a ValueError or TypeError from the library (an impossible
schedule, zero steps, an object of the wrong kind) becomes a sentence in the message line, never a traceback.
"""

import html
import time

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons.checks import check_instance, check_memory, check_number, check_seed
from lessons.data2d import sample_target, target_density
from widgets.checks import check_array, check_callable, check_text, check_whole
from widgets.plotly_view import PlotlyView

FONT = "Inter, 'Helvetica Neue', Helvetica, Arial, sans-serif"
INK, MUTED, GRID = "#1f2933", "#7b8794", "#e4e7eb"
# one colour per method, used by every explorer (colour-blind safe, Okabe-Ito)
METHOD_COLORS = {
    "DDPM": "#d55e00",
    "DDIM": "#0072b2",
    "PF-ODE": "#56b4e9",
    "I-CFM": "#e69f00",
    "OT-CFM": "#009e73",
    "reflow": "#cc79a7",
}
# straight -> bent, for trajectories coloured by how much they bend
BEND_COLORS = ("#1b9e77", "#66a61e", "#e6ab02", "#d95f02", "#a6361c")

LAYOUT = dict(
    font=dict(family=FONT, size=16, color=INK),
    paper_bgcolor="white",
    plot_bgcolor="white",
    margin=dict(l=60, r=20, t=60, b=50),
    legend=dict(font=dict(size=14), bgcolor="rgba(255,255,255,0.8)"),
    hoverlabel=dict(font=dict(size=14)),
)
AXIS = dict(
    showgrid=True,
    gridcolor=GRID,
    zeroline=False,
    linecolor=MUTED,
    ticks="outside",
    tickcolor=MUTED,
    title_font=dict(size=16),
    tickfont=dict(size=14),
)

CSS = """<style>
.course-explorer { font-family: FONT; color: INK; }
.course-explorer .widget-label, .course-explorer .widget-readout, .course-explorer select,
.course-explorer input, .course-explorer .widget-toggle-buttons button { font-size: 15px !important; }
.course-title { font-size: 22px; font-weight: 600; margin: 4px 0 2px 0; }
.course-help { font-size: 15px; color: #52606d; margin: 0 0 6px 0; }
.course-message { font-size: 16px; color: #8a1c1c; background: #fdecea; border-left: 5px solid #d64545;
                  padding: 6px 12px; border-radius: 4px; }
.course-readout { font-size: 16px; padding: 2px 4px; }
.course-readout b { font-weight: 600; }
.course-controls { flex-wrap: wrap; column-gap: 12px; row-gap: 2px; }
/* an explorer with a plot fills one screen and no more: in Voila the whole window, in Lab what its toolbars
   leave; the plot takes the height that title, controls and readouts leave (plotly sizes itself to its box) */
.course-fit { height: min(calc(100vh - 150px), 900px); min-height: 460px; }
body[data-voila] .course-fit { height: calc(100vh - 24px); max-height: 1000px; }
.course-fit > * { flex: 0 0 auto; }
.course-fit > .course-plot { flex: 1 1 0; min-height: 240px; overflow: hidden; }
</style>""".replace("FONT", FONT).replace("INK", INK)


def style_axes(fig: go.Figure) -> None:
    """Apply the course's axis style to every axis of fig."""
    check_instance(fig, go.Figure, "fig", "plotly.graph_objects.Figure()")
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    fig.update_annotations(font=dict(size=17, color=INK))


def two_panels(titles) -> go.Figure:
    """An empty figure of two panels side by side with these subplot titles (lay it out with side_by_side_squares)."""
    if (
        not isinstance(titles, (list, tuple))
        or len(titles) != 2
        or not all(isinstance(t, str) for t in titles)
    ):
        raise ValueError(
            f"titles must be two strings, one per panel, such as ('left', 'right'); got {titles!r}."
        )
    return go.Figure(make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=titles))


def add_lines(fig: go.Figure, name: str, line: dict, row: int = 1, col: int = 1, **kwargs) -> None:
    """An empty line trace in panel (row, col), for the explorer's updates to fill; kwargs go to add_scatter."""
    _check_trace_args(fig, name, line, "line", row, col)
    fig.add_scatter(x=[], y=[], mode="lines", name=name, line=line, row=row, col=col, **kwargs)


def add_markers(fig: go.Figure, name: str | None, marker: dict, row: int = 1, col: int = 1, **kwargs) -> None:
    """An empty marker trace without hover text in panel (row, col), for the explorer's updates to fill."""
    _check_trace_args(fig, name, marker, "marker", row, col)
    fig.add_scatter(
        x=[], y=[], mode="markers", name=name, hoverinfo="skip", marker=marker, row=row, col=col, **kwargs
    )


def add_legend_entry(
    fig: go.Figure, name: str, marker: dict | None = None, line: dict | None = None, col: int = 1, **kwargs
) -> None:
    """A legend entry without points for panel col (a marker or a line): it names a colour even while empty."""
    if (marker is None) == (line is None):
        raise ValueError(
            "give add_legend_entry exactly one of marker or line (a dict of plotly properties), such as "
            "marker=dict(color='grey')."
        )
    style, style_name = (marker, "marker") if line is None else (line, "line")
    _check_trace_args(fig, name, style, style_name, 1, col)
    fig.add_scatter(
        x=[None],
        y=[None],
        mode="markers" if line is None else "lines",
        name=name,
        hoverinfo="skip",
        row=1,
        col=col,
        **{style_name: style},
        **kwargs,
    )


def _check_trace_args(fig, name, style, style_name: str, row, col) -> None:
    check_instance(fig, go.Figure, "fig", "two_panels(('left', 'right'))")
    check_text(name, "the trace name", optional=True)
    if not isinstance(style, dict):
        raise TypeError(
            f"{style_name} must be a dict of plotly {style_name} properties, got {type(style).__name__}."
        )
    _check_cell(fig, row, col)


def _check_cell(fig: go.Figure, row, col) -> tuple[int, int]:
    """Check that (row, col) is a panel of fig's subplot grid (counted from 1); return them as ints."""
    grid = getattr(fig, "_grid_ref", ())  # plotly keeps make_subplots' grid here (None without one)
    if grid is None:
        raise ValueError(
            "fig has no grid of panels to put a trace in at (row, col): make it with two_panels(('left', "
            "'right')) or plotly.subplots.make_subplots."
        )
    rows, cols = (len(grid), len(grid[0])) if grid else (None, None)
    row = check_whole(row, "row", high=rows, why=f" (the figure has {rows} row(s) of panels)" if rows else "")
    col = check_whole(
        col, "col", high=cols, why=f" (the figure has {cols} column(s) of panels)" if cols else ""
    )
    return row, col


# two square panels in the middle, each panel's legend on its outer side (a wide screen has room there)
PANEL_DOMAINS = ((0.17, 0.495), (0.505, 0.83))


def side_by_side_squares(fig: go.Figure, view: float) -> go.Figure:
    """Lay out two square 2D panels, [-view, view]^2 each, each with its own legend beside it; returns fig.

    The figure has no fixed height: it fills the box it is drawn in (an explorer's frame, see Explorer._frame).
    """
    check_instance(fig, go.Figure, "fig", "two_panels(('left', 'right'))")
    check_number(view, "view (half the width of each panel)", low=0, low_open=True)
    fig.update_layout(**LAYOUT)
    side = dict(font=dict(size=14), bgcolor="rgba(255,255,255,0)", yanchor="top", y=1.0, tracegroupgap=4)
    fig.update_layout(
        autosize=True,
        legend=dict(side, x=PANEL_DOMAINS[0][0] - 0.01, xanchor="right"),
        legend2=dict(side, x=PANEL_DOMAINS[1][1] + 0.01, xanchor="left"),
        margin=dict(l=10, r=10, t=40, b=10),
    )
    for trace in fig.data:  # the right panel's traces are explained by the right panel's legend
        if trace.xaxis == "x2":
            trace.legend = "legend2"
    for annotation, (low, high) in zip(fig.layout.annotations, PANEL_DOMAINS):
        annotation.x = (low + high) / 2  # the panel titles stay centred over the moved panels
    style_axes(fig)
    fig.update_xaxes(domain=PANEL_DOMAINS[0], row=1, col=1)
    fig.update_xaxes(domain=PANEL_DOMAINS[1], row=1, col=2)
    fig.update_xaxes(range=[-view, view], constrain="domain", showticklabels=False)
    # squares hug the top, under their titles, when the box is taller than wide
    fig.update_yaxes(range=[-view, view], constrain="domain", constraintoward="top", showticklabels=False)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", scaleratio=1, row=1, col=2)
    return fig


def control_style(width: str = "auto") -> dict:
    """Keyword arguments that give a control a readable label width."""
    check_text(width, "width (a CSS width such as '300px' or 'auto')")
    return dict(style={"description_width": "initial"}, layout=w.Layout(width=width))


def controls_row(*controls) -> w.HBox:
    """Controls side by side, wrapping onto a second line where the screen is too narrow for them."""
    for control in controls:
        check_instance(control, w.Widget, "each control", "w.IntSlider()")
    row = w.HBox(list(controls))
    row.add_class("course-controls")
    return row


def readout(value: str = "", width: str | None = None) -> w.HTML:
    """An HTML line for numbers in the course's readout style (width='50%' for one of two side by side)."""
    check_text(value, "value (the readout's HTML)")
    check_text(width, "width (a CSS width such as '50%')", optional=True)
    box = w.HTML(value, layout=w.Layout(width=width))
    box.add_class("course-readout")
    return box


def noise_and_reference(n_samples: int, seed: int):
    """The fixed noise (n_samples, 2) a 2D explorer samples from, and an 8-gaussians sample (seed + 1) to measure W2 against."""
    n_samples = check_whole(n_samples, "n_samples")
    seed = check_seed(seed)
    # the noise, and sample_target's few (n, 2) float32 temporaries: refused before either is drawn
    check_memory(n_samples * 2 * 4 * 9, f"the noise and reference of n_samples = {n_samples:,} points")
    noise = torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(seed))
    return noise, sample_target("8gaussians", n_samples, seed=seed + 1)


class Explorer:
    """Base of the explorers: ``widget`` (a VBox) holds a title, the controls, a message line and the figure."""

    title, help = "", ""

    def __init__(self):
        self.message = w.HTML(layout=w.Layout(display="none"))
        self.message.add_class("course-message")
        self.last_update_seconds = 0.0
        self.updates = 0

    def _frame(self, *children) -> w.VBox:
        """The explorer's box: title and help, then children, with any plot (PlotlyView) moved last.

        Readouts given after the plot thus stay above it, in view on a projector. A plot without a fixed
        height stretches to fill one screen (the frame's .course-fit class).
        """
        head = w.HTML(
            f"{CSS}<div class='course-title'>{self.title}</div><div class='course-help'>{self.help}</div>"
        )
        plots = [child for child in children if isinstance(child, PlotlyView)]
        rest = [child for child in children if not isinstance(child, PlotlyView)]
        box = w.VBox([head, *rest, *plots])
        box.add_class("course-explorer")
        if plots and all("height" not in plot.layout for plot in plots):
            box.add_class("course-fit")
        return box

    def show_message(self, text: str | None) -> None:
        """Show text in the message line (None hides it)."""
        check_text(text, "the message text", optional=True)
        if text:
            self.message.value = html.escape(text)
            self.message.layout.display = "block"
        else:
            self.message.value = ""
            self.message.layout.display = "none"

    def guard(self, action, *args) -> bool:
        """Run action(*args); on bad input show the reason as a message and return False."""
        check_callable(action, "action", "self.update")
        start = time.perf_counter()
        try:
            action(*args)
        except (
            ValueError,
            TypeError,
        ) as err:  # the learner's input (a value, or an object of the wrong kind)
            self.show_message(f"Cannot show this setting: {err}")
            return False
        except Exception as err:  # never a traceback in front of a class
            self.show_message(f"Something went wrong ({type(err).__name__}: {err}). Try another setting.")
            return False
        else:
            self.show_message(None)
            return True
        finally:
            self.last_update_seconds = time.perf_counter() - start
            self.updates += 1

    def observe(self, controls, action) -> None:
        """Call action (guarded) whenever one of the controls changes value."""
        check_callable(action, "action", "self.update")
        if isinstance(controls, w.Widget):
            raise TypeError(
                "controls must be a list of widgets, such as [self.t]; put the one widget in a list."
            )
        for control in controls:
            if not (isinstance(control, w.Widget) and control.has_trait("value")):
                raise TypeError(
                    f"each control must be an ipywidgets control with a value (a slider, a dropdown), "
                    f"got {type(control).__name__}."
                )
        for control in controls:
            control.observe(lambda _change: self.guard(action), names="value")

    def _redraw(self, *panels) -> None:
        """Redraw the given panels in one update of self.view: each is a method returning (traces, titles)."""
        traces, titles = {}, {}
        for panel in panels:
            panel_traces, panel_titles = panel()
            traces.update(panel_traces)
            titles.update(panel_titles)
        self.view.update(traces, annotations=titles)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def paths_xy(xs: np.ndarray):
    """(x, y) of the polylines of xs (S+1, B, 2), NaN between paths, for one plotly trace."""
    xs = check_array(xs, "xs (the paths: times, samples, coordinates)", 3, "(S+1, B, 2)", last=2)
    paths = xs.transpose(1, 0, 2)
    flat = np.concatenate([paths, np.full((paths.shape[0], 1, 2), np.nan)], axis=1).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def density_image(name: str, centers: np.ndarray, alpha: float = 1.0, sigma: float = 0.0) -> np.ndarray:
    """The density of alpha * data + sigma * noise for target ``name`` on the square grid centers x centers."""
    mixture = target_density(name)
    centers = check_array(centers, "centers (the pixel centres along one axis)", 1, "(P,)")
    alpha = check_number(alpha, "alpha")
    sigma = check_number(sigma, "sigma", low=0)
    if alpha == 0 and sigma == 0:
        raise ValueError(
            "alpha and sigma cannot both be 0: x_t would be the single point 0, which has no density."
        )
    gx, gy = np.meshgrid(centers, centers)
    grid = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    return mixture.log_prob(grid, alpha, sigma).exp().reshape(len(centers), len(centers)).numpy()


def target_backdrop(fig, cols, view: float, pixels: int = 90) -> None:
    """The 8-gaussians density as a light grey image behind each panel: cheap to redraw, unlike points."""
    check_instance(fig, go.Figure, "fig", "two_panels(('left', 'right'))")
    if not isinstance(cols, (list, tuple, range)):
        raise TypeError(f"cols must be a list of panel columns such as (1, 2), got {type(cols).__name__}.")
    cols = [_check_cell(fig, 1, col)[1] for col in cols]
    check_number(view, "view (half the width of each panel)", low=0, low_open=True)
    check_whole(pixels, "pixels", low=2, high=1000, why=" (the image is pixels x pixels)")
    centers = np.linspace(-view, view, pixels)
    density = density_image("8gaussians", centers)
    z = np.round(density / density.max(), 3)
    for col in cols:
        fig.add_heatmap(
            x=centers.round(3),
            y=centers.round(3),
            z=z,
            showscale=False,
            hoverinfo="skip",
            name="target",
            colorscale=[[0, "rgba(255,255,255,0)"], [0.3, "#d5dbe1"], [1, "#8896a4"]],
            row=1,
            col=col,
        )
