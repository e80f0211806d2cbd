"""Training monitor: a live loss curve and samples while a model trains.

    monitor = TrainingMonitor(sample=lambda model: my_sampler(model), target=data)
    display(monitor)
    train(model, loss_fn, next_batch, steps, callback=monitor, callback_every=100)

The monitor only draws; sampling runs in the training callback, every callback_every steps.
"""

import math

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from widgets.base import LAYOUT, MUTED, Explorer, style_axes
from widgets.plotly_view import PlotlyView


class TrainingMonitor(Explorer):
    """Callable as train's callback(step, model, losses): redraws the loss (raw and smoothed) and fresh samples."""

    title = "Training"
    help = "Loss per step (thin) and its running mean (thick); samples of the model as it trains."

    def __init__(self, sample=None, target: torch.Tensor | None = None, smooth: int = 50, title: str | None = None,
                 view: float | None = None):
        super().__init__()
        if title:
            self.title = title
        self.sample, self.smooth = sample, max(int(smooth), 1)
        self.status = w.HTML("waiting for the first steps...")
        self.status.add_class("course-readout")
        cols = 2 if sample is not None else 1
        titles = ("loss", "samples") if cols == 2 else ("loss",)
        fig = go.Figure(make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.1))
        fig.add_scatter(x=[], y=[], mode="lines", name="loss", line=dict(width=1, color="#9aa5b1"), row=1, col=1)
        fig.add_scatter(x=[], y=[], mode="lines", name=f"mean of {self.smooth}", line=dict(width=3, color="#0072b2"),
                        row=1, col=1)
        if cols == 2:
            if target is not None:
                t = target.detach().cpu().numpy()
                fig.add_scatter(x=t[:, 0], y=t[:, 1], mode="markers", name="data", marker=dict(size=4, color="#cbd2d9"),
                                hoverinfo="skip", row=1, col=2)
            fig.add_scatter(x=[], y=[], mode="markers", name="samples", hoverinfo="skip",
                            marker=dict(size=5, color="#e4572e"), row=1, col=2)
            fig.update_yaxes(scaleanchor="x2", scaleratio=1, row=1, col=2)
            if view is not None:
                fig.update_xaxes(range=[-view, view], row=1, col=2)
                fig.update_yaxes(range=[-view, view], row=1, col=2)
        fig.update_layout(**LAYOUT, height=420)
        fig.update_layout(legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.18, yanchor="top"))
        style_axes(fig)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_yaxes(type="log", exponentformat="power", row=1, col=1)
        self.view = PlotlyView(fig)
        self.widget = self._frame(self.message, self.status, self.view)

    def __call__(self, step: int, model, losses: list) -> None:
        """The training callback: draw losses[0:step] and, when a sampler was given, the model's samples."""
        self.guard(self._draw, step, model, losses)

    def _draw(self, step, model, losses) -> None:
        y = np.asarray(losses, dtype=float)
        x = np.arange(1, len(y) + 1)
        kernel = np.ones(self.smooth) / self.smooth
        smooth = np.convolve(y, kernel, mode="valid") if len(y) >= self.smooth else y[:0]
        points = None
        if self.sample is not None:
            was_training = model.training
            model.eval()
            with torch.no_grad():
                points = self.sample(model).detach().cpu().numpy()
            model.train(was_training)
        traces = {0: {"x": x, "y": y}, 1: {"x": x[self.smooth - 1:], "y": smooth}}
        if points is not None:
            traces[len(self.view.data) - 1] = {"x": points[:, 0], "y": points[:, 1]}
        self.view.update(traces)
        last = smooth[-1] if len(smooth) else y[-1]
        self.status.value = (f"step <b>{step}</b> &nbsp; loss (mean of last {min(self.smooth, len(y))}) "
                             f"<b>{last:.4g}</b>" + ("" if math.isfinite(last) else
                                                      f" <span style='color:{MUTED}'>not finite</span>"))
