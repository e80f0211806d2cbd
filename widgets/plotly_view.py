"""A light plotly widget: the figure is one synced dict, redrawn in the browser with Plotly.react.

plotly's own FigureWidget ships its 5 MB bundle with every figure and gives anywidget 2 seconds to
load it, which a busy laptop misses (the figure then stays blank). Here plotly.js travels once per
kernel, in one PlotlyLibrary widget, and every PlotlyView is a few lines of JavaScript that waits
for it. Each update replaces the figure dict in one message (our batch update), and the saved
widget state always holds the figure as last drawn, so static exports show it too.
"""

import json
import numbers
from pathlib import Path

import anywidget
import numpy as np
import plotly
import plotly.graph_objects as go
import plotly.io as pio
import traitlets
from ipywidgets import widget_serialization

from lessons.checks import check_instance
from widgets.checks import check_whole

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


class PlotlyLibrary(anywidget.AnyWidget):
    """Carries plotly.js to the page once and installs it as window.Plotly (hidden from AMD loaders)."""

    _esm = """
    export default {
      initialize({ model }) {
        if (window.Plotly) return;
        const amd = window.define;
        window.define = undefined;  // plotly.min.js is UMD: make it set window.Plotly
        const script = document.createElement("script");
        script.textContent = model.get("code");
        document.head.appendChild(script);
        window.define = amd;
      },
    };
    """
    code = traitlets.Unicode().tag(sync=True)


_LIBRARY = None


def plotly_library() -> PlotlyLibrary:
    """The kernel's one PlotlyLibrary widget."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = PlotlyLibrary(code=PLOTLY_JS.read_text(encoding="utf-8"))
    return _LIBRARY


class PlotlyView(anywidget.AnyWidget):
    """Shows ``figure`` ({'data': [...], 'layout': {...}}); ``update`` changes traces and layout in one message."""

    _esm = """
    function plotlyReady() {
      return new Promise((resolve) => {
        const poll = () => (window.Plotly ? resolve(window.Plotly) : setTimeout(poll, 25));
        poll();
      });
    }
    export default {
      async render({ model, el }) {
        el.classList.add("course-plot");
        const Plotly = await plotlyReady();
        let shown = { data: [], revisions: [] };
        const draw = () => {
          const figure = model.get("figure");
          const revisions = figure.revisions || [];
          // a trace whose revision did not change keeps its old object, so Plotly.react skips redrawing it
          const data = (figure.data || []).map((trace, i) =>
            revisions[i] !== undefined && shown.revisions[i] === revisions[i] ? shown.data[i] : trace);
          shown = { data, revisions };
          Plotly.react(el, data, figure.layout || {}, model.get("config"));
        };
        el.style.width = "100%";
        draw();
        model.on("change:figure", draw);
        const resize = new ResizeObserver(() => { if (el.offsetWidth > 0) Plotly.Plots.resize(el); });
        resize.observe(el);
        return () => { resize.disconnect(); model.off("change:figure", draw); Plotly.purge(el); };
      },
    };
    """
    _css = ".course-plot { width: 100%; min-height: 200px; }"
    figure = traitlets.Dict().tag(sync=True)
    config = traitlets.Dict(CONFIG).tag(sync=True)
    library = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widget_serialization)

    def __init__(self, figure: go.Figure, **kwargs):
        check_instance(figure, (go.Figure, dict), "figure", "plotly.graph_objects.Figure()")
        plain_figure = json.loads(pio.to_json(figure, validate=False))
        plain_figure["revisions"] = [0] * len(plain_figure.get("data", []))
        super().__init__(figure=plain_figure, library=plotly_library(), **kwargs)

    @property
    def data(self) -> list:
        """The traces as plain dicts (read them; change them with ``update``)."""
        return self.figure["data"]

    @property
    def layout(self) -> dict:
        return self.figure["layout"]

    def update(
        self, traces: dict | None = None, layout: dict | None = None, annotations: dict | None = None
    ) -> None:
        """Set trace properties {index: {prop: value}}, top-level layout keys, and annotation texts {index: text}."""
        self._check_update(traces, layout, annotations)
        data, revisions = list(self.figure["data"]), list(self.figure["revisions"])
        for index, props in (traces or {}).items():
            data[index] = {**data[index], **{key: plain(value) for key, value in props.items()}}
            revisions[index] += 1
        new_layout = {**self.figure["layout"], **(layout or {})}
        if annotations:
            notes = [dict(a) for a in new_layout.get("annotations", [])]
            for index, text in annotations.items():
                notes[index]["text"] = text
            new_layout["annotations"] = notes
        self.figure = {"data": data, "layout": new_layout, "revisions": revisions}

    def _check_update(self, traces, layout, annotations) -> None:
        """Refuse, before anything changes, a trace or annotation that does not exist or props that are not dicts."""
        for what, given in (("traces", traces), ("layout", layout), ("annotations", annotations)):
            if given is not None and not isinstance(given, dict):
                raise TypeError(f"{what} must be a dict (or None), got {type(given).__name__}.")
        n_traces = len(self.figure["data"])
        for index, props in (traces or {}).items():
            _check_index(index, n_traces, "trace")
            if not isinstance(props, dict):
                raise TypeError(
                    f"the properties of trace {index} must be a dict such as {{'x': [...]}}, got {props!r}."
                )
        n_notes = len(self.figure["layout"].get("annotations", []))
        for index, text in (annotations or {}).items():
            _check_index(index, n_notes, "annotation")
            if not isinstance(text, str):
                raise TypeError(
                    f"annotation {index} must be given a text (a string), got {type(text).__name__}."
                )


def _check_index(index, count: int, what: str) -> None:
    """Check that index names one of count traces or annotations."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < count:
        have = f"indices 0 to {count - 1}" if count else f"no {what}s"
        raise ValueError(f"there is no {what} {index!r}: the figure has {count} {what}(s), {have}.")


def plain(value, decimals: int = 4):
    """numpy / torch arrays -> nested lists of floats rounded to decimals (NaN -> None, a gap in plotly)."""
    check_whole(decimals, "decimals", low=0, high=15)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            rounded = np.round(value.astype(np.float64), decimals)
            return np.where(np.isfinite(rounded), rounded, None).tolist()
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v, decimals) for k, v in value.items()}
    return value
