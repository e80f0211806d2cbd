"""Training monitor: a live loss curve and samples while a model trains.

    monitor = TrainingMonitor(sample=lambda model: my_sampler(model), target=data)
    display(monitor)
    train(model, loss_fn, next_batch, steps, callback=monitor, callback_every=100, progress=False)

Sampling runs in the training callback, every callback_every steps, on a fork of torch's random
state: whatever the sampler draws, training goes on with the very numbers it would have drawn unmonitored.
The monitor shows the step and the loss, so the tqdm bar (progress) can stay off.
"""

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lessons.checks import check_finite, check_instance, check_number, check_points, check_tensor
from lessons.mnist import tile
from widgets.base import LAYOUT, MUTED, Explorer, add_lines, add_markers, readout, style_axes
from widgets.checks import check_callable, check_text, check_whole
from widgets.plotly_view import PlotlyView

SAMPLE_EXAMPLE = "lambda model: solve_ode(model, noise, steps=20).final"


class TrainingMonitor(Explorer):
    """Callable as train's callback(step, model, losses): redraws the loss (raw and smoothed) and fresh samples."""

    title = "Training"
    help = "Loss per step (thin) and its running mean (thick); samples of the model as it trains."

    def __init__(
        self,
        sample=None,
        target: torch.Tensor | None = None,
        smooth: int = 50,
        title: str | None = None,
        view: float | None = None,
        images: bool = False,
    ):
        """sample(model) gives points (N, 2), drawn over target (M, 2), or images (N, 1, H, W) if images."""
        super().__init__()
        self._check_settings(sample, target, title, view, images)
        smooth = check_whole(smooth, "smooth (the window of the running mean, in steps)")
        if title:
            self.title = title
        self.sample, self.smooth, self.images = sample, smooth, images
        self.status = readout("waiting for the first steps...")
        cols = 2 if sample is not None else 1
        titles = ("loss", "samples") if cols == 2 else ("loss",)
        fig = go.Figure(make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.1))
        add_lines(fig, "loss", dict(width=1, color="#9aa5b1"))
        add_lines(fig, f"mean of {self.smooth}", dict(width=3, color="#0072b2"))
        if cols == 2 and images:  # one tiled grid of digits, ink dark as in the lessons' figures
            ink = [[0, "white"], [1, "black"]]
            fig.add_heatmap(
                z=[[0.0]],
                zmin=0,
                zmax=1,
                colorscale=ink,
                showscale=False,
                name="samples",
                hoverinfo="skip",
                row=1,
                col=2,
            )
            fig.update_xaxes(showticklabels=False, showgrid=False, row=1, col=2)
            fig.update_yaxes(
                autorange="reversed", scaleanchor="x2", showticklabels=False, showgrid=False, row=1, col=2
            )
        elif cols == 2:
            if target is not None:
                t = target.detach().cpu().numpy()
                fig.add_scatter(
                    x=t[:, 0],
                    y=t[:, 1],
                    mode="markers",
                    name="data",
                    marker=dict(size=4, color="#cbd2d9"),
                    hoverinfo="skip",
                    row=1,
                    col=2,
                )
            add_markers(fig, "samples", dict(size=5, color="#e4572e"), col=2)
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

    @staticmethod
    def _check_settings(sample, target, title, view, images) -> None:
        """Refuse settings that cannot be drawn, or that would be ignored without a word."""
        if sample is not None:
            if isinstance(sample, torch.nn.Module):
                raise TypeError(
                    f"sample must be a function of the model that returns samples, such as {SAMPLE_EXAMPLE}; "
                    "you passed a network: the monitor gets the model being trained from train()."
                )
            check_callable(sample, "sample", SAMPLE_EXAMPLE)
        if not isinstance(images, bool):
            raise TypeError(f"images must be True or False, got {type(images).__name__} {images!r}.")
        if target is not None:
            if sample is None or images:
                raise ValueError(
                    "target is the data drawn behind 2D samples: give it with sample= and images=False, or leave it out."
                )
            check_tensor(target, "target")
            check_points(target, "target", dim=2)
            check_finite(target, "target")
        check_text(title, "title", optional=True)
        if view is not None:
            if images:
                raise ValueError(
                    "view sets the axes of 2D samples; it has no use with images=True, leave it out."
                )
            check_number(view, "view (half the width of the samples panel)", low=0, low_open=True)

    def __call__(self, step: int, model, losses: list) -> None:
        """The training callback: draw losses[0:step] and, when a sampler was given, the model's samples."""
        check_whole(step, "step", low=0)
        check_instance(model, torch.nn.Module, "model", "the network being trained")
        if isinstance(losses, (str, bytes)) or not hasattr(losses, "__len__"):
            raise TypeError(f"losses must be the list of losses so far, got {type(losses).__name__}.")
        if len(losses) == 0:
            raise ValueError("losses is empty: the monitor draws the losses after at least one step.")
        self.guard(self._draw, step, model, losses)

    def _draw(self, step, model, losses) -> None:
        y = np.asarray(losses, dtype=float)
        x = np.arange(1, len(y) + 1)
        kernel = np.ones(self.smooth) / self.smooth
        smooth = np.convolve(y, kernel, mode="valid") if len(y) >= self.smooth else y[:0]
        traces = {0: {"x": x, "y": y}, 1: {"x": x[self.smooth - 1 :], "y": smooth}}
        problem = None
        try:
            if self.sample is not None and self.images:
                traces[len(self.view.data) - 1] = {"z": tile(self._sample(model), nrow=10)}
            elif self.sample is not None:
                points = check_points(self._sample(model), "the samples of sample(model)", dim=2).numpy()
                traces[len(self.view.data) - 1] = {"x": points[:, 0], "y": points[:, 1]}
        except (ValueError, TypeError) as err:
            problem = err  # the losses are still drawn; the message says what is wrong with the samples
        self.view.update(traces)
        last = smooth[-1] if len(smooth) else y[-1]
        self.status.value = (
            f"step <b>{step}</b> &nbsp; loss (mean of last {min(self.smooth, len(y))}) "
            f"<b>{last:.4g}</b>"
            + ("" if math.isfinite(last) else f" <span style='color:{MUTED}'>not finite</span>")
        )
        if problem is not None:
            raise problem

    def _sample(self, model) -> torch.Tensor:
        """self.sample(model) in eval mode, without gradients, drawing on a fork of torch's random state."""
        was_training = model.training
        gpus = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})
        model.eval()
        try:
            with torch.random.fork_rng(devices=gpus), torch.no_grad():
                out = self.sample(model)
        finally:
            model.train(was_training)
        check_tensor(out, "the samples of sample(model)")
        return check_finite(out.detach().float().cpu(), "the samples of sample(model)")
