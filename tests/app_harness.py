"""Serve the lecture app with Voila and drive it in headless Chromium (used by a test and a benchmark)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# JavaScript run in the page: the plotly graph divs, and a change of one trace's data.
PLOTS = "Array.from(document.querySelectorAll('.js-plotly-plot'))"
PLOTS_READY = f"(n) => {PLOTS}.length >= n && {PLOTS}.slice(0, n).every(g => g.data && g.data.length > 0 && g._fullLayout)"
SIGNATURE = f"""([plot, trace]) => {{
  const d = {PLOTS}[plot].data[trace];
  const x = Array.from(d.x || []), y = Array.from(d.y || []), z = d.z ? Array.from(d.z).flat() : [];
  let s = x.length + ':' + y.length + ':' + z.length;
  for (const v of [...x.slice(0, 50), ...y.slice(0, 50), ...z.slice(0, 400)]) s += ',' + (v === null ? 'n' : Number(v).toFixed(5));
  return s;
}}"""

# JavaScript run on one explorer: [top, bottom] of its visible title, controls, readouts and plot (plotly's
# drawing and its box, or an image), in viewport pixels
EXPLORER_BOXES = """(e) => {
  const spans = (selector) => Array.from(e.querySelectorAll(selector))
    .map((el) => el.getBoundingClientRect()).filter((r) => r.width > 0 && r.height > 0)
    .map((r) => [r.top, r.bottom]);
  return {
    title: spans('.course-title'),
    controls: spans('.widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-text'),
    readouts: spans('.course-readout'),
    plot: spans('.course-plot, .course-plot .main-svg, img'),
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the course's Voila template (share/jupyter/voila/templates/course): Voila's lab template without its CDN links
TEMPLATE_ROOT = ROOT / "share" / "jupyter"
LOCAL = (
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://localhost",
    "https://localhost",
    "data:",
    "blob:",
    "file:",
)


@contextlib.contextmanager
def voila_app(notebook: str = "notebooks/app.ipynb", timeout: float = 90.0):
    """Start Voila on a free localhost port, as `make app` does; yield the app's URL; stop it afterwards."""
    port = free_port()
    jupyter_path = os.pathsep.join(p for p in (str(TEMPLATE_ROOT), os.environ.get("JUPYTER_PATH", "")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", JUPYTER_PATH=jupyter_path)
    log = open(ROOT / "build" / f"voila-{port}.log", "w") if (ROOT / "build").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            notebook,
            "--template=course",
            "--Voila.ip=127.0.0.1",
            f"--port={port}",
            "--no-browser",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with code {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"voila did not answer on {url} within {timeout} s") from None
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def chromium_page(width: int = 1600, height: int = 1000):
    """A headless Chromium page; yields (page, errors, outside_requests) lists filled as the page runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors, outside = [], []
            page.on("pageerror", lambda err: errors.append(str(err)))
            # every request that would leave the machine is recorded
            page.on("request", lambda req: None if req.url.startswith(LOCAL) else outside.append(req.url))
            yield page, errors, outside
        finally:
            browser.close()


def open_app(page, url: str, plots: int = 3, timeout_ms: int = 120_000) -> None:
    """Load the app and wait until its plots have drawn."""
    page.goto(url, timeout=timeout_ms)
    page.wait_for_function(PLOTS_READY, arg=plots, timeout=timeout_ms, polling=200)


def slider_handles(page):
    """The handles of every ipywidgets slider on the page, in page order."""
    return page.locator(".widget-slider .noUi-handle")


def signature(page, plot: int, trace: int) -> str:
    return page.evaluate(SIGNATURE, [plot, trace])


def move_and_wait(
    page, handle, plot: int, trace: int, key: str = "ArrowRight", timeout_ms: int = 30_000
) -> float:
    """Press key on a slider handle; wait until the plot's trace changes; return the seconds it took."""
    before = signature(page, plot, trace)
    start = time.perf_counter()
    handle.press(key)
    page.wait_for_function(
        f"([p, t, b]) => ({SIGNATURE})([p, t]) !== b",
        arg=[plot, trace, before],
        timeout=timeout_ms,
        polling="raf",
    )
    return time.perf_counter() - start
