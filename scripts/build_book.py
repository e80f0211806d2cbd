"""Build the course book: execute every lesson notebook and write a static HTML site that works offline.

    python scripts/build_book.py [--budget fast|full] [--out _book] [notebooks ...]

Every notebooks/NN_*.ipynb (or the notebooks given) runs in a fresh kernel under COURSE_BUDGET; each
becomes one page, with an index page linking them. Plotly figures stay interactive: plotly.js is
shipped once, as assets/plotly.min.js, and no page loads anything from the network. Widgets are
drawn as they were last shown (figures, readouts and the values of their controls), since a static
page has no kernel to answer them. A lesson that fails still gets a page, with the error, and the
command exits with status 1.
"""

import argparse
import html
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
PLOTLY_MIME, WIDGET_MIME = "application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STYLE = """<style>
.book-nav { font-family: sans-serif; padding: 10px 24px; background: #f5f7fa; border-bottom: 1px solid #e4e7eb; }
.book-nav a { margin-right: 18px; color: #0b5394; text-decoration: none; }
.book-widget { border: 1px solid #e4e7eb; border-radius: 6px; padding: 10px; margin: 6px 0; }
.book-widget .book-note { color: #7b8794; font-size: 13px; }
.book-row { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; }
.book-col { display: flex; flex-direction: column; gap: 6px; }
.book-control { font-family: sans-serif; font-size: 14px; color: #1f2933; }
.book-failed { background: #fdecea; border-left: 5px solid #d64545; padding: 8px 14px; }
</style>"""


class StaticWidgets:
    """Draw a saved widget tree as static HTML: boxes, HTML and label text, control values, plotly figures."""

    def __init__(self, state: dict):
        self.state = state

    def _model(self, ref):
        return self.state.get(str(ref).replace("IPY_MODEL_", ""), {})

    def render(self, model_id: str) -> str:
        model = self._model(model_id)
        name, st = model.get("model_name", ""), model.get("state", {})
        if self._model(st.get("layout", "")).get("state", {}).get("display") == "none":
            return ""
        label = html.escape(str(st.get("description", "")))
        if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel"):
            kind = "book-row" if name == "HBoxModel" else "book-col"
            inner = "".join(self.render(child) for child in st.get("children", []))
            return f"<div class='{kind}'>{inner}</div>"
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div>{st.get('value', '')}</div>"
        if name == "LabelModel":
            return f"<div>{html.escape(str(st.get('value', '')))}</div>"
        if "figure" in st and isinstance(st["figure"], dict):  # widgets.plotly_view.PlotlyView
            return plotly_div(st["figure"].get("data", []), st["figure"].get("layout", {}))
        if name == "ImageModel":  # the picture travels as a binary buffer beside the state
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"]:
                    return f"<img src='data:image/{st.get('format', 'png')};base64,{buf['data']}' style='max-width:100%'>"
        if (
            "code" in st and "_esm" in st
        ):  # widgets.plotly_view.PlotlyLibrary: the book ships plotly.js itself
            return ""
        if "index" in st and "_options_labels" in st:
            chosen = st["index"] if isinstance(st["index"], int) else 0
            options = st["_options_labels"]
            value = options[chosen] if 0 <= chosen < len(options) else ""
            return f"<span class='book-control'>{label} <b>{html.escape(str(value))}</b></span>"
        if "value" in st and isinstance(st["value"], (int, float, str, bool)):
            return f"<span class='book-control'>{label} <b>{html.escape(str(st['value']))}</b></span>"
        return "<span class='book-note'>(interactive widget: run the notebook to use it)</span>"


def plotly_div(data, layout) -> str:
    """A div drawn by the page's plotly.js (no network), for one figure."""
    plotly_div.count = getattr(plotly_div, "count", 0) + 1
    div_id = f"book-plot-{plotly_div.count}"
    figure = json.dumps({"data": data, "layout": layout}).replace("</", "<\\/")
    return (
        f"<div id='{div_id}' style='width:100%'></div><script>(function(){{var f={figure};"
        f"Plotly.newPlot('{div_id}', f.data, f.layout, {{responsive: true, displaylogo: false}});}})();</script>"
    )


def make_static(nb) -> None:
    """Replace plotly and widget outputs by static HTML and drop the saved widget state."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    widgets = StaticWidgets(state)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                fig = data.pop(PLOTLY_MIME)
                out["data"] = {"text/html": plotly_div(fig.get("data", []), fig.get("layout", {}))}
            elif WIDGET_MIME in data:
                body = widgets.render(data[WIDGET_MIME]["model_id"])
                note = "<div class='book-note'>Interactive in the notebook and the lecture app; shown here as last drawn.</div>"
                out["data"] = {"text/html": f"<div class='book-widget'>{body}{note}</div>"}
    nb.metadata.pop("widgets", None)


def execute(path: Path, budget: str, timeout: int):
    """Run a notebook in a fresh kernel from its folder; return (notebook, error message or None, seconds)."""
    nb = nbformat.read(path, as_version=4)
    os.environ["COURSE_BUDGET"] = budget
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)[-3000:]
    except Exception as err:  # a dead kernel or a timeout: still write the page
        error = f"{type(err).__name__}: {err}"
    return nb, error, time.perf_counter() - start


def title_of(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return fallback


def write_page(nb, out: Path, name: str, title: str, nav: str, error: str | None) -> None:
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.mathjax_url = mathjax_url(out)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    head = f"<title>{html.escape(title)}</title>{STYLE}<script src='assets/plotly.min.js'></script>"
    body = re.sub(r"<title>.*?</title>", "", body, count=1, flags=re.S).replace(
        "</head>", head + "</head>", 1
    )
    # the template links require.js (unused here) from a CDN: the book loads nothing from the network
    body = re.sub(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", "", body)
    banner = f"<nav class='book-nav'>{nav}</nav>"
    if error:
        banner += (
            f"<div class='book-failed'><b>This lesson failed to run.</b><pre>{html.escape(error)}</pre></div>"
        )
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, body, count=1)
    (out / f"{name}.html").write_text(body, encoding="utf-8")


def mathjax_url(out: Path) -> str:
    """MathJax shipped with the book when jupyter_server_mathjax is installed; else none (LaTeX shows as source)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return ""
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (out / "assets" / "mathjax").exists():
        shutil.copytree(source, out / "assets" / "mathjax")
    return "assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--budget", choices=("fast", "full"), default="fast")
    parser.add_argument("--out", type=Path, default=ROOT / "_book")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(
        p for p in (ROOT / "notebooks").glob("*.ipynb") if re.match(r"\d\d_", p.name)
    )
    if not paths:
        parser.error("no lesson notebooks found (notebooks/NN_*.ipynb)")
    out = args.out
    (out / "assets").mkdir(parents=True, exist_ok=True)
    import plotly

    shutil.copyfile(
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js", out / "assets" / "plotly.min.js"
    )
    nav = "<a href='index.html'>Contents</a>" + "".join(
        f"<a href='{p.stem}.html'>{p.stem[:2]}</a>" for p in paths
    )
    rows, failed = [], 0
    for path in paths:
        print(f"running {path.name} ({args.budget} budget)...", flush=True)
        nb, error, seconds = execute(path.resolve(), args.budget, args.timeout)
        make_static(nb)
        title = title_of(nb, path.stem)
        write_page(nb, out, path.stem, title, nav, error)
        failed += error is not None
        status = "failed" if error else f"{seconds:.0f} s"
        print(f"  {'FAILED' if error else 'ok'} in {seconds:.0f} s", flush=True)
        rows.append(
            f"<li><a href='{path.stem}.html'>{html.escape(title)}</a> <span class='book-note'>({status})</span></li>"
        )
    index = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>From diffusion to flow matching</title>{STYLE}"
        "<style>body{font-family:sans-serif;max-width:860px;margin:40px auto;font-size:18px;line-height:1.6}</style>"
        f"</head><body><h1>From diffusion to flow matching, interactively</h1><p>Lessons, executed with the "
        f"<b>{args.budget}</b> budget on {time.strftime('%Y-%m-%d')}.</p><ol start='0'>{''.join(rows)}</ol></body></html>"
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    print(f"wrote {out / 'index.html'} ({len(paths) - failed} of {len(paths)} lessons ran)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
