"""Executed notebooks made static for the book: widgets as last drawn, plotly without a CDN, clean progress.

A static page has no kernel, so ipywidgets' JavaScript manager (which myst-nb would load from a CDN)
could only redraw what the saved state holds anyway. Here each widget output becomes plain HTML of that
state: boxes, HTML and label text, control values, images, plotly figures (drawn by the book's own
plotly.min.js) and tqdm bars in their final state. Text progress bars lose their carriage-return frames.
"""

import html
import json
import re

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BOXES = ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel")
PROGRESS = ("FloatProgressModel", "IntProgressModel")
NOTE = "Interactive in the notebook and the lecture app; shown here as last drawn."
# plotly's notebook renderer injects plotly.js into the page once; the book ships its own copy
PLOTLY_LOADER = re.compile(r"window\.PlotlyConfig|require\.undef\(\"plotly\"\)")


def plotly_div(figure: dict, number: int) -> str:
    """A div that the page's plotly.js draws once it has loaded (no network), for one figure."""
    div_id = f"book-plot-{number}"
    payload = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {})})
    payload = payload.replace("</", "<\\/")
    return (
        f"<div id='{div_id}' class='book-plot'></div><script>(function draw(){{"
        f"if (!window.Plotly) {{ setTimeout(draw, 30); return; }} var f = {payload};"
        f"Plotly.newPlot('{div_id}', f.data, f.layout, {{responsive: true, displaylogo: false}});}})();</script>"
    )


class StaticWidgets:
    """Draw a saved widget tree as static HTML; count the plotly figures so every div id is unique."""

    def __init__(self, state: dict):
        self.state, self.plots, self.progress = state, 0, False

    def _model(self, ref) -> dict:
        return self.state.get(str(ref).replace("IPY_MODEL_", ""), {})

    def plot(self, figure: dict) -> str:
        self.plots += 1
        return plotly_div(figure, self.plots)

    def render(self, model_id) -> str:
        """HTML of one widget and its children, as the saved state last showed them."""
        model = self._model(model_id)
        name, st = model.get("model_name", ""), model.get("state", {})
        if not model or self._model(st.get("layout", "")).get("state", {}).get("display") == "none":
            return ""
        label = html.escape(str(st.get("description", "")))
        if name in BOXES:
            kind = "book-row" if name == "HBoxModel" else "book-col"
            return f"<div class='{kind}'>{''.join(self.render(c) for c in st.get('children', []))}</div>"
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div>{st.get('value', '')}</div>"
        if name == "LabelModel":
            return f"<div>{html.escape(str(st.get('value', '')))}</div>"
        if name in PROGRESS:  # a tqdm.auto bar in the notebook: its final state
            self.progress = True
            return f"<progress max='{st.get('max', 100)}' value='{st.get('value', 0)}'></progress>"
        if isinstance(st.get("figure"), dict):  # widgets.plotly_view.PlotlyView
            return self.plot(st["figure"])
        if name == "ImageModel":  # the picture travels as a binary buffer beside the state
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"]:
                    return f"<img src='data:image/{st.get('format', 'png')};base64,{buf['data']}' style='max-width:100%'>"
        if "code" in st and "_esm" in st:  # widgets.plotly_view.PlotlyLibrary: the book ships plotly.js
            return ""
        if "index" in st and "_options_labels" in st:
            chosen, options = st["index"], st["_options_labels"]
            value = options[chosen] if isinstance(chosen, int) and 0 <= chosen < len(options) else ""
            return f"<span class='book-control'>{label} <b>{html.escape(str(value))}</b></span>"
        if isinstance(st.get("value"), (int, float, str, bool)):
            return f"<span class='book-control'>{label} <b>{html.escape(str(st['value']))}</b></span>"
        return "<span class='book-note'>(interactive widget: run the notebook to use it)</span>"

    def output(self, model_id) -> str | None:
        """The HTML that replaces one widget output; None when the widget was closed (drop the output)."""
        self.progress = False
        body = self.render(model_id)
        if not body:
            return None
        if self.progress:
            return f"<div class='book-progress'>{body}</div>"
        return f"<div class='book-widget'>{body}<div class='book-note'>{NOTE}</div></div>"


def final_frames(text: str) -> str:
    """Keep what a terminal would show: on each line, only the text after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def static_output(out: dict, widgets: StaticWidgets) -> dict | None:
    """One output made static (or None to drop it)."""
    if out.get("output_type") == "stream":
        out["text"] = final_frames(out.get("text", ""))
        return out if out["text"].strip() else None
    data = out.get("data", {})
    if PLOTLY_MIME in data:
        out["data"] = {"text/html": widgets.plot(data[PLOTLY_MIME])}
    elif WIDGET_MIME in data:
        body = widgets.output(data[WIDGET_MIME].get("model_id", ""))
        if body is None:
            return None
        out["data"] = {"text/html": body}
    elif PLOTLY_LOADER.search(str(data.get("text/html", ""))):
        return None
    return out


def make_static(nb) -> None:
    """Replace widget, plotly and progress outputs of an executed notebook in place; drop the widget state."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    widgets = StaticWidgets(state)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            kept = (static_output(out, widgets) for out in cell.get("outputs", []))
            cell["outputs"] = [out for out in kept if out is not None]
    nb.metadata.pop("widgets", None)
