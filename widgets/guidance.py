"""Guidance explorer: pick a digit and a classifier-free guidance scale, see samples made with it.

Samples are precomputed once (same noise for every scale) so that moving the slider is instant,
even on a CPU in front of a class.
"""

import io

import ipywidgets as w
import matplotlib.pyplot as plt
import torch

from lessons.image_metrics import classify
from lessons.image_training import generate
from lessons.mnist import tile
from widgets.base import Explorer, control_style


def precompute_guided_samples(model, scales, per_class: int = 8, nfe: int = 8, seed: int = 0) -> dict:
    """{(digit, scale): images (per_class, 1, 28, 28)} from the flow model with Euler, the same noise for every scale."""
    noise = torch.randn(10 * per_class, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(10).repeat_interleave(per_class)
    out = {}
    for scale in scales:
        images = generate(model, "cfm", noise, nfe=nfe, cond=labels, guidance=scale).final
        for digit in range(10):
            out[(digit, scale)] = images[labels == digit]
    return out


def png(images: torch.Tensor, nrow: int) -> bytes:
    """A PNG of the tiled images (black digits on white), for an ipywidgets Image."""
    buffer = io.BytesIO()
    plt.imsave(buffer, tile(images, nrow).numpy(), cmap="gray_r", vmin=0, vmax=1, format="png")
    return buffer.getvalue()


class GuidanceExplorer(Explorer):
    """A class picker and a guidance-scale slider over precomputed samples; the classifier's verdict as a readout."""

    title = "Classifier-free guidance: accuracy against diversity"
    help = (
        "Pick a digit and a guidance scale w. The guided velocity is (1 + w) v(x, t, digit) - w v(x, t, none); "
        "larger w gives digits the classifier recognises more surely, and that look more alike."
    )

    def __init__(self, samples: dict, classifier=None, zoom: int = 4):
        super().__init__()
        if not samples:
            raise ValueError(
                "the explorer needs precomputed samples: use precompute_guided_samples(model, scales)."
            )
        self.samples, self.classifier = samples, classifier
        scales = sorted({scale for _, scale in samples})
        self.digit = w.ToggleButtons(options=list(range(10)), value=0, description="digit", **control_style())
        self.digit.style.button_width = "36px"
        self.scale = w.SelectionSlider(
            options=scales,
            value=scales[0],
            description="guidance scale w",
            continuous_update=True,
            **control_style("480px"),
        )
        per_class = next(iter(samples.values())).shape[0]
        self.nrow = min(per_class, 8)
        self.image = w.Image(format="png", width=zoom * 29 * self.nrow)
        self.readout = w.HTML()
        self.readout.add_class("course-readout")
        self.observe([self.digit, self.scale], self.update)
        self.widget = self._frame(w.HBox([self.digit]), self.scale, self.message, self.image, self.readout)
        self.update()

    def update(self) -> None:
        key = (self.digit.value, self.scale.value)
        if key not in self.samples:
            raise ValueError(f"no samples were precomputed for digit {key[0]} at scale {key[1]}.")
        images = self.samples[key]
        self.image.value = png(images, self.nrow)
        if self.classifier is not None:
            agree = int((classify(self.classifier, images)[1] == key[0]).sum())
            self.readout.value = (
                f"the classifier reads <b>{agree} of {images.shape[0]}</b> samples as a {key[0]}"
            )
