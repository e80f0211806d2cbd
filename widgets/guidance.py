"""Guidance explorer: pick a digit and a classifier-free guidance scale, see samples made with it.

Samples are precomputed once (same noise for every scale) so that moving the slider is instant,
even on a CPU in front of a class. guidance_explorer makes the first scale at once and the others in a
background thread, so that an app starts in seconds; each scale joins the slider when it is ready.
"""

import io
import threading

import ipywidgets as w
import matplotlib.pyplot as plt
import torch

from lessons.checks import check_finite, check_instance, check_memory, check_number, check_seed, check_tensor
from lessons.image_metrics import DigitClassifier, classify
from lessons.image_training import generate
from lessons.mnist import tile
from widgets.base import MUTED, Explorer, control_style, controls_row, readout
from widgets.checks import check_whole

MAX_ZOOM = 10  # pixels per image pixel: 10 already makes a row of 8 digits 2,320 pixels wide


def check_scales(scales) -> list:
    """The guidance scales as a list of numbers w >= 0 (at least one)."""
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__"):
        raise TypeError(f"scales must be a list of guidance scales such as [0.0, 1.0, 4.0], got {scales!r}.")
    scales = list(scales)
    if not scales:
        raise ValueError("scales is empty: give at least one guidance scale, such as [0.0, 1.0, 4.0].")
    for scale in scales:
        check_number(scale, "each guidance scale w in scales", low=0)
    return scales


def check_images(images, name: str) -> torch.Tensor:
    """Check that images is a finite float tensor of grey images (N, 1, H, W)."""
    check_tensor(images, name, ndim=4)
    if images.shape[1] != 1:
        raise ValueError(f"{name} must be grey images of shape (N, 1, H, W), got {tuple(images.shape)}.")
    return check_finite(images, name)


def precompute_guided_samples(model, scales, per_class: int = 8, nfe: int = 8, seed: int = 0) -> dict:
    """{(digit, scale): images (per_class, 1, 28, 28)} from the flow model with Euler, the same noise for every scale."""
    if isinstance(model, type) or not callable(model):
        check_instance(model, torch.nn.Module, "model", "the class-conditional U-Net of lesson 07")
    scales = check_scales(scales)
    per_class = check_whole(per_class, "per_class (samples per digit)")
    nfe = check_whole(nfe, "nfe (the number of network evaluations)")
    seed = check_seed(seed)
    check_memory(
        len(scales) * 10 * per_class * 28 * 28 * 4,
        f"keeping {per_class} samples per digit at {len(scales)} scales",
    )
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
    check_images(images, "images")
    nrow = check_whole(nrow, "nrow (images per row)")
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
        if not isinstance(samples, dict):
            raise TypeError(
                "samples must be the dict {(digit, scale): images} made by precompute_guided_samples(model, "
                f"scales), got {type(samples).__name__}."
            )
        if not samples:
            raise ValueError(
                "the explorer needs precomputed samples: use precompute_guided_samples(model, scales)."
            )
        self._check_samples(samples)
        if classifier is not None:
            check_instance(classifier, DigitClassifier, "classifier", "load_classifier()")
        zoom = check_whole(zoom, "zoom", high=MAX_ZOOM, why=" (screen pixels per image pixel)")
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
        self.per_class, self.pending = next(iter(samples.values())).shape[0], ()
        self.filling = None  # guidance_explorer's background thread, when it makes the samples
        self.nrow = min(self.per_class, 8)
        self.image = w.Image(format="png", width=zoom * 29 * self.nrow)
        self.readout = readout()
        self.observe([self.digit, self.scale], self.update)
        controls = controls_row(self.digit, self.scale)
        self.widget = self._frame(controls, self.message, self.readout, self.image)
        self.update()

    def add_samples(self, samples: dict) -> None:
        """Add samples at more scales ({(digit, scale): images}, as many per digit as before); the slider gains them."""
        if not isinstance(samples, dict):
            raise TypeError(
                "samples must be the dict {(digit, scale): images} made by precompute_guided_samples(model, "
                f"scales), got {type(samples).__name__}."
            )
        if not samples:
            raise ValueError("samples is empty: give the samples of at least one more scale.")
        self._check_samples(samples)
        for key, images in samples.items():
            if images.shape[0] != self.per_class:
                raise ValueError(
                    f"samples[{key!r}] has {images.shape[0]} images; the explorer shows {self.per_class} per "
                    "digit: make them with the same per_class."
                )
        merged = {**self.samples, **samples}
        added = {scale for _, scale in samples}
        self.samples, self.pending = merged, tuple(s for s in self.pending if s not in added)
        value = self.scale.value
        self.scale.options = sorted({scale for _, scale in merged})
        self.scale.value = value  # a new option may move the slider's index: keep the scale shown
        self.guard(self.update)

    @staticmethod
    def _check_samples(samples: dict) -> None:
        """Every key a (digit 0-9, scale) pair, every digit at every scale, every value a batch of grey images."""
        for key, images in samples.items():
            if not (isinstance(key, tuple) and len(key) == 2 and key[0] in range(10)):
                raise ValueError(
                    f"the samples' keys must be (digit 0-9, scale) pairs, as precompute_guided_samples makes; got {key!r}."
                )
            check_number(key[1], f"the scale of key {key!r}")
            check_images(images, f"samples[{key!r}]")
        scales = sorted({scale for _, scale in samples})
        for scale in scales:
            missing = [digit for digit in range(10) if (digit, scale) not in samples]
            if missing:
                raise ValueError(
                    f"no samples of digit(s) {missing} at scale {scale}: every digit needs samples at every "
                    "scale; make them with precompute_guided_samples(model, scales)."
                )

    def update(self) -> None:
        key = (self.digit.value, self.scale.value)
        if key not in self.samples:
            raise ValueError(f"no samples were precomputed for digit {key[0]} at scale {key[1]}.")
        images = self.samples[key]
        self.image.value = png(images, self.nrow)
        text = f"digit <b>{key[0]}</b>, guidance scale w = <b>{key[1]:g}</b>"
        if self.classifier is not None:
            agree = int((classify(self.classifier, images)[1] == key[0]).sum())
            text += f" &nbsp; the classifier reads <b>{agree} of {images.shape[0]}</b> samples as a {key[0]}"
        if self.pending:
            still = ", ".join(f"{scale:g}" for scale in self.pending)
            text += f" &nbsp; <span style='color:{MUTED}'>(still making w = {still})</span>"
        self.readout.value = text


def guidance_explorer(
    model, scales, classifier=None, per_class: int = 8, nfe: int = 8, seed: int = 0, zoom: int = 4
) -> GuidanceExplorer:
    """A GuidanceExplorer over model's samples: the lowest scale made now, the others in a background thread.

    Each scale joins the slider when it is ready (the same noise for every scale); ``explorer.filling`` is the
    thread (join it to wait for all of them).
    """
    scales = sorted(set(check_scales(scales)))
    check_memory(
        len(scales) * 10 * check_whole(per_class, "per_class (samples per digit)") * 28 * 28 * 4,
        f"keeping {per_class} samples per digit at {len(scales)} scales",
    )
    if classifier is not None:  # refused before the first samples are made, not after
        check_instance(classifier, DigitClassifier, "classifier", "load_classifier()")
    check_whole(zoom, "zoom", high=MAX_ZOOM, why=" (screen pixels per image pixel)")
    settings = dict(per_class=per_class, nfe=nfe, seed=seed)
    explorer = GuidanceExplorer(precompute_guided_samples(model, scales[:1], **settings), classifier, zoom)
    explorer.pending = tuple(scales[1:])
    explorer.guard(explorer.update)

    def add_scale(scale: float) -> None:
        explorer.add_samples(precompute_guided_samples(model, [scale], **settings))

    def fill():  # guarded: a failure becomes the explorer's message, not a traceback lost in a thread
        for scale in explorer.pending:
            if not explorer.guard(add_scale, scale):
                return

    explorer.filling = threading.Thread(target=fill, daemon=True)
    explorer.filling.start()
    return explorer
