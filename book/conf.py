"""Sphinx configuration of the course book (myst-nb renders the notebooks scripts/build_book.py executed).

Everything the pages load ships with the book: MathJax 2.7 from jupyter_server_mathjax (copied into
_static/mathjax), plotly.min.js from the installed plotly, the theme's own fonts and scripts.
"""

import shutil
from pathlib import Path

import jupyter_server_mathjax
import plotly

HERE = Path(__file__).resolve().parent
MATHJAX = Path(jupyter_server_mathjax.__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

project = "From diffusion to flow matching, interactively"
author = "the course authors"
copyright = "the course authors, MIT licence"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The notebooks ran before Sphinx sees them (scripts/build_book.py), with the course's budget switch.
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # widget outputs are static HTML already: no widget manager from a CDN

# $...$ and $$...$$ in markdown cells; \begin{align} blocks; MathJax typesets the whole page.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True  # $$...$$ inside a paragraph too, as Jupyter renders it
myst_update_mathjax = False
mathjax_path = "mathjax/MathJax.js"
# the TeX fonts named by the hidden MathML copy that MathJax keeps for screen readers
TEX_FONTS = list(
    enumerate(["MathJax_Caligraphic"] * 2 + ["MathJax_AMS", "MathJax_Script"] + ["MathJax_Fraktur"] * 2, 1)
)
mathjax2_config = {
    "config": ["TeX-AMS-MML_HTMLorMML-full.js"],
    "tex2jax": {"inlineMath": [["$", "$"], ["\\(", "\\)"]], "processEscapes": True},
    # jupyter_server_mathjax ships the STIX web fonts only: name them, and point the font rules that would
    # ask for files it lacks (or for about:blank) at local fonts, so that no request fails
    "HTML-CSS": {
        "availableFonts": [],
        "preferredFont": None,
        "webFont": "STIX-Web",
        "imageFont": None,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },
    "NativeMML": {"styles": {f"@font-face /*{i}*/": {"src": f"local('{name}')"} for i, name in TEX_FONTS}},
}

html_theme = "sphinx_book_theme"
html_title = "From diffusion to flow matching"
html_static_path = ["_static", str(PLOTLY_JS)]
html_css_files = ["course.css"]
html_js_files = ["plotly.min.js"]
html_context = {"default_mode": "light"}
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
html_last_updated_fmt = "%Y-%m-%d"
# search results without page snippets: those are fetched, which a book opened from disk (file://) refuses
html_show_search_summary = False


def copy_mathjax(app) -> None:
    """MathJax (a folder of files that load each other on demand) into _static/mathjax."""
    if app.builder.format == "html":
        shutil.copytree(MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    app.connect("builder-inited", copy_mathjax)
