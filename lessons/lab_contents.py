"""The contents manager `make lab` serves the lessons with, so that a lesson opens in JupyterLab unmodified.

About a second after a notebook's kernel starts, Lab writes the kernel's `language_info` (which holds the
Python version, e.g. 3.11.7) into the notebook's metadata, and the tab shows "unsaved changes" unless the
notebook already held exactly that. The course's files leave it out on purpose (the version differs on
every machine; jupytext.toml keeps it out of the .py header). This manager, jupytext's own with one step
added, fills it in when it reads a notebook whose kernel runs the server's own Python (then the version is
known), and leaves it out again when it writes one, so the files in the repository stay the same on every
machine. It is switched on by scripts/jupyter_server_config.json, which `make setup` copies into
.venv/etc/jupyter/ (the folder of config files that Jupyter reads first in this environment).
"""

import copy
import os
import sys

from ipykernel.ipkernel import IPythonKernel
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupytext import AsyncTextFileContentsManager

# the interpreter names jupyter_client replaces by the server's own Python when it launches a kernel
_THIS_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


def kernel_language_info() -> dict:
    """The `language_info` an IPython kernel on this Python reports in its kernel_info reply."""
    return copy.deepcopy(IPythonKernel.language_info)


def runs_this_python(argv: list) -> bool:
    """Whether a kernelspec's command line starts the Python this process runs (as jupyter_client resolves it)."""
    if not argv:
        return False
    program = argv[0]
    if program in _THIS_PYTHON_NAMES:
        return True
    return os.path.isfile(program) and os.path.samefile(program, sys.executable)


class LessonContentsManager(AsyncTextFileContentsManager):
    """jupytext's contents manager, which also fills in `language_info` on read and leaves it out on write."""

    def _kernel_runs_this_python(self, metadata: dict) -> bool:
        """Whether the kernel a notebook's metadata names is installed and runs the server's own Python."""
        kernel_name = (metadata.get("kernelspec") or {}).get("name")
        specs = getattr(self.parent, "kernel_spec_manager", None) or KernelSpecManager()
        try:
            spec = specs.get_kernel_spec(kernel_name) if kernel_name else None
        except NoSuchKernel:
            spec = None
        return spec is not None and spec.language.lower() == "python" and runs_this_python(spec.argv)

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "notebook" and model.get("content") is not None:
            metadata = model["content"]["metadata"]
            if self._kernel_runs_this_python(metadata):
                metadata["language_info"] = kernel_language_info()
        return model

    async def save(self, model, path=""):
        notebook = model.get("content") if model.get("type") == "notebook" else None
        if notebook and notebook.get("metadata", {}).get("language_info") == kernel_language_info():
            model = dict(model, content=dict(notebook, metadata=dict(notebook["metadata"])))
            del model["content"]["metadata"]["language_info"]
        return await super().save(model, path)
