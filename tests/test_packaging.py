"""The project's own files agree: pyproject.toml vs environment.yml, notebook pairs, CI entry point."""

import json
import pathlib
import re

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {CONDA_NAMES.get(_name(r), _name(r)): r for r in reqs}


def _conda_requirements():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    deps = [
        ln.strip()[2:] for ln in lines if ln.strip().startswith("- ") and not ln.startswith("  - conda-forge")
    ]
    deps = [d for d in deps if _name(d) not in ("python", "conda-forge")]
    return {_name(d): d for d in deps}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    pip, conda = _pyproject_requirements(), _conda_requirements()
    assert set(pip) == set(conda), (
        f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    )


def test_environment_yml_pins_the_same_lower_bounds():
    pip, conda = _pyproject_requirements(), _conda_requirements()
    for name, req in pip.items():
        bound = re.search(r">=\s*([\w.]+)", req)
        conda_bound = re.search(r">=\s*([\w.]+)", conda[name])
        assert (bound and bound.group(1)) == (conda_bound and conda_bound.group(1)), (
            f"{name}: {req} vs {conda[name]}"
        )


def test_every_notebook_is_paired_and_committed_without_outputs():
    nb_dir = ROOT / "notebooks"
    pys = {p.stem for p in nb_dir.glob("*.py")}
    ipynbs = {p.stem for p in nb_dir.glob("*.ipynb")}
    assert pys, "no notebooks found"
    assert pys == ipynbs, f"unpaired: {sorted(pys ^ ipynbs)}"
    from jupyter_client.kernelspec import KernelSpecManager

    # the name Lab writes on opening (the kernel's own): any other marks the lesson as changed (tests/test_lab_browser.py)
    kernel_display_name = KernelSpecManager().get_kernel_spec("python3").display_name
    for stem in sorted(ipynbs):
        nb = json.loads((nb_dir / f"{stem}.ipynb").read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", stem
        assert nb["metadata"]["kernelspec"]["display_name"] == kernel_display_name, stem
        assert "language_info" not in nb["metadata"], f"{stem}.ipynb carries this machine's Python version"
        with_outputs = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
        assert not with_outputs, (
            f"{stem}.ipynb has outputs in cells {with_outputs}: commit it without outputs"
        )


def test_notebook_pairs_are_in_sync():
    import jupytext

    for py in sorted((ROOT / "notebooks").glob("*.py")):
        from_py = jupytext.read(py)
        from_ipynb = jupytext.read(py.with_suffix(".ipynb"))
        src_py = [(c.cell_type, c.source.strip()) for c in from_py.cells]
        src_nb = [(c.cell_type, c.source.strip()) for c in from_ipynb.cells]
        assert src_py == src_nb, f"{py.name} and its .ipynb differ: run `make sync`"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0], "the README's top must give the test command"
    assert re.search(r"^timeout \d+ make test$", ci, re.M), ".ci/run must call `make test` under a timeout"


def test_the_version_number_lives_in_pyproject_only():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for package in ("lessons", "widgets"):
        assert "__version__" not in (ROOT / package / "__init__.py").read_text(), (
            f"{package} restates the version"
        )


def test_every_library_module_has_its_test_file():
    """Tests mirror modules: lessons/<module>.py is tested in tests/test_<module>.py."""
    modules = {p.stem for p in (ROOT / "lessons").glob("*.py") if p.stem != "__init__"}
    missing = sorted(m for m in modules if not (ROOT / "tests" / f"test_{m}.py").exists())
    assert not missing, f"library modules without tests/test_<module>.py: {missing}"


def _hiding(folder: pathlib.Path, packages: set) -> list:
    return sorted(p.name for p in folder.glob("*.py") if p.stem in packages)


def test_no_script_hides_a_package_of_the_course(tmp_path):
    """`python benchmarks/x.py` puts benchmarks/ first on sys.path: a benchmarks/lessons.py there would be
    imported for `lessons`, and every script beside it would fail on `from lessons.... import ...`."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {"lessons", "widgets"} <= packages
    for folder in ("benchmarks", "scripts"):
        assert not _hiding(ROOT / folder, packages), f"{folder}/ would hide the course's packages"
    (tmp_path / "lessons.py").write_text("")  # control: such a file is seen
    assert _hiding(tmp_path, packages) == ["lessons.py"]


def test_a_benchmark_script_runs_as_the_readme_shows():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "benchmarks/flows_2d.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "--quick" in out.stdout, out.stderr[-2000:]
