"""Serve the lecture app with Voila, or the lessons with JupyterLab, and drive them in headless Chromium (used by
tests and a benchmark)."""

import contextlib
import os
import secrets
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
def _serve(args: list, port: int, env: dict, cwd: Path, timeout: float):
    """Run a server command until it answers on port; yield; stop it afterwards (its log goes to build/)."""
    log = (
        open(ROOT / "build" / f"server-{port}.log", "w") if (ROOT / "build").is_dir() else subprocess.DEVNULL
    )
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[2]} exited with code {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{args[2]} did not answer on port {port} within {timeout} s"
                    ) from None
                time.sleep(0.25)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def voila_app(notebook: str = "notebooks/app.ipynb", timeout: float = 90.0):
    """Start Voila on a free localhost port, as `make app` does; yield the app's URL; stop it afterwards."""
    port = free_port()
    jupyter_path = os.pathsep.join(p for p in (str(TEMPLATE_ROOT), os.environ.get("JUPYTER_PATH", "")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", JUPYTER_PATH=jupyter_path)
    args = [
        sys.executable,
        "-m",
        "voila",
        notebook,
        "--template=course",
        "--Voila.ip=127.0.0.1",
        f"--port={port}",
        "--no-browser",
    ]
    with _serve(args, port, env, ROOT, timeout):
        yield f"http://127.0.0.1:{port}/"


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, timeout: float = 90.0):
    """Start JupyterLab on root_dir as `make lab` does (this environment's settings and server config), with
    its user settings and workspaces kept in root_dir's parent; yield a function path -> URL that opens it."""
    port, token = free_port(), secrets.token_hex(16)
    state = root_dir.parent / "lab-state"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
    )
    args = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
    ]
    args += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}"]
    args += ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with _serve(args, port, env, root_dir, timeout):
        yield lambda path: f"http://127.0.0.1:{port}/lab/tree/{path}?token={token}&reset"


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
