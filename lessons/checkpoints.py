"""Checkpoints that carry their settings and a SHA-256 checksum, verified when loaded.

The file holds {'state': tensors, 'settings': plain data, 'sha256': hex digest}; the digest covers
every tensor (name, dtype, shape, bytes) and the settings (as sorted JSON), and loading uses
torch.load(..., weights_only=True), so a checkpoint cannot run code and cannot be silently corrupted.
Every file that cannot be loaded is refused with what is wrong with it and the command that remakes it.
"""

import hashlib
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import torch

from lessons.checks import check_instance
from lessons.course_files import CHECKPOINTS_DIR

FORMAT = "course-checkpoint-v1"

# shipped checkpoint -> the command that remakes it (the Makefile's `checkpoints` target; tests keep them in step)
REMAKE = {
    **{
        f"2d/{m}.pt": f"python scripts/train_2d_checkpoints.py --methods {m}"
        for m in ("ddpm", "icfm", "otcfm", "reflow", "meanflow")
    },
    "mnist/classifier.pt": "python scripts/train_mnist_classifier.py --steps 600 --out checkpoints/mnist/classifier.pt",
    **{
        f"mnist/{m}_small.pt": f"python scripts/train_mnist.py --method {m} --classes --steps 6000 --batch-size 64 "
        f"--size small --device cpu --out checkpoints/mnist/{m}_small.pt"
        for m in ("cfm", "ddpm")
    },
    "mnist/eps_flow_small.pt": "python scripts/train_mnist.py --method cfm --classes --prediction eps --steps 6000 "
    "--batch-size 64 --size small --device cpu --out checkpoints/mnist/eps_flow_small.pt",
    "mnist/otcfm_small.pt": "python scripts/train_mnist.py --method cfm --classes --coupling ot --steps 6000 "
    "--batch-size 64 --size small --device cpu --out checkpoints/mnist/otcfm_small.pt",
    **dict.fromkeys(  # one run makes the reflow and its control (the same pairs, shuffled)
        ("mnist/reflow_small.pt", "mnist/reflow_shuffled_small.pt"),
        "python scripts/train_mnist.py --method cfm --classes --coupling reflow --init checkpoints/mnist/cfm_small.pt "
        "--reflow-pairs 8000 --steps 3000 --lr 1e-3 --batch-size 64 --size small --device cpu "
        "--out checkpoints/mnist/reflow_small.pt --control-out checkpoints/mnist/reflow_shuffled_small.pt",
    ),
    **{
        f"latent/{m}.pt": f"python scripts/train_latent.py --models {m}"
        for m in ("autoencoder", "unet", "dit")
    },
}


def _check_path(path, name: str = "path") -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (a str or pathlib.Path), got {type(path).__name__}.")
    return Path(path)


def checkpoint_path(*parts: str) -> Path:
    """The path of a shipped checkpoint or folder, e.g. checkpoint_path('mnist', 'cfm_small.pt')."""
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(
                f"checkpoint_path takes folder and file names as strings, got {type(part).__name__}."
            )
    return CHECKPOINTS_DIR.joinpath(*parts)


def remake_command(path) -> str:
    """How to remake the checkpoint at path: the project's own command for a shipped one, else how to save it again."""
    p = _check_path(path)
    key = f"{p.parent.name}/{p.name}"
    if key not in REMAKE:
        return (
            "write it again with the code that saved it (lessons.checkpoints.save_checkpoint, or save_image_model / "
            "save_classifier); the course's own checkpoints are remade with `make checkpoints` (scripts/train_*.py)"
        )
    command = REMAKE[key]
    if p.resolve() != (CHECKPOINTS_DIR / key).resolve():  # a copy elsewhere: write it where it is expected
        if key.startswith(("2d/", "latent/")):
            command += f" --out {p.parent}"
        else:
            command = command.replace(f" checkpoints/{key}", f" {p}")  # its --out (or --control-out)
    return (
        f"remake it from the repository root with `{command}` (or all shipped ones with `make checkpoints`)"
    )


def _refuse(path, problem: str, other_model: bool = False) -> NoReturn:
    """Raise our own sentence (never torch's, whose advice to load unsafely must not reach a learner)."""
    fix = remake_command(path)
    if other_model:  # the file may be fine, only given to the wrong loader
        fix = f"give the file made for this model, or load this one with its own; if this path should hold this model, {fix}"
    raise ValueError(f"cannot load the checkpoint {path}: {problem}. To fix it, {fix}.") from None


def _check_state(state, name: str = "model_state") -> dict:
    """Check that state maps names to tensors (a state_dict), not a model or anything else."""
    if isinstance(state, torch.nn.Module):
        raise TypeError(f"{name} must be the model's weights, model.state_dict(), not the model itself.")
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{name} must map names to tensors (e.g. model.state_dict()), got {type(state).__name__}."
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{name} must map names to tensors (e.g. model.state_dict()); entry {key!r} is a "
                f"{type(value).__name__}."
            )
    return dict(state)


def _not_finite(state: dict) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _settings_json(settings, name: str = "settings") -> str:
    """The settings as sorted JSON: a dict of plain values (dict, list, str, number, bool, None), else refused."""
    if not isinstance(settings, dict):
        raise TypeError(
            f"{name} must be a dict of plain values, such as {{'method': 'cfm', 'steps': 800}}; got "
            f"{type(settings).__name__} {settings!r:.60}."
        )
    try:
        return json.dumps(settings, sort_keys=True)
    except (TypeError, ValueError) as err:  # json's words name the type only: ours say what to do
        raise ValueError(
            f"{name} must be plain data (dict, list, str, number, bool, None) so that a checkpoint can carry "
            f"them: {str(err).rstrip('.')}; convert it first (a tensor with .tolist(), a numpy number with "
            "float(), an object by the numbers that make it)."
        ) from None


def checksum(state: dict, settings: dict) -> str:
    """SHA-256 hex digest of a state dict (names, dtypes, shapes, bytes) and the settings (sorted JSON)."""
    state = _check_state(state, "state")
    text = _settings_json(settings)
    h = hashlib.sha256()
    h.update(text.encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model_state: dict, settings: dict) -> str:
    """Write the tensors of model_state and the plain-data settings to path; return the checksum."""
    path = _check_path(path)
    if path.is_dir():
        raise ValueError(
            f"path {path} is a folder; give the checkpoint file to write inside it, such as {path / 'model.pt'}."
        )
    model_state = _check_state(model_state)
    _settings_json(settings)
    bad = _not_finite(model_state)
    if bad:
        raise ValueError(
            f"model_state holds NaN or inf in {', '.join(bad[:3])}: the training diverged; a checkpoint of "
            "these weights would only give NaN samples, so it is not written."
        )
    state = {k: v.detach().cpu().clone() for k, v in model_state.items()}
    digest = checksum(state, settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT, "state": state, "settings": settings, "sha256": digest}, path)
    except (OSError, RuntimeError) as err:  # torch's writer reports the OS error inside its own words
        found = re.search(r"strerror: (.+)", str(err))
        reason = getattr(err, "strerror", None) or (found.group(1) if found else type(err).__name__)
        blocking = next((p for p in path.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            reason = f"{blocking} is a file, not a folder"
        raise ValueError(
            f"cannot write the checkpoint {path} ({reason}): check that its folder can be created and written to."
        ) from None
    return digest


def _read(path: Path):
    """torch.load(weights_only=True) of path, every failure turned into a sentence about the file."""
    if not path.exists():
        _refuse(path, "there is no checkpoint at this path (no such file); check the path")
    if path.is_dir():
        _refuse(path, "it is a folder, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        _refuse(path, "the file is empty (0 bytes): a download, copy or save was interrupted")
    if head.startswith(b"version https://git-lfs"):
        _refuse(path, "it is a Git LFS pointer, not the checkpoint itself (run `git lfs pull` to fetch it)")
    torch_file = (
        head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"
    )  # torch's zip archive, or its legacy pickle
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # torch's text advises unsafe loading: never shown
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            _refuse(
                path,
                f"it holds a pickled Python object ({found.group(1)}), not only tensors and plain data: it was "
                "written by torch.save(model) or another program, and the course never loads code from a file",
            )
        problem = (
            "it is damaged: its bytes do not decode (changed bytes or a partial copy)"
            if torch_file
            else "it is not a torch checkpoint file"
        )
        _refuse(path, problem)
    except (
        Exception
    ):  # EOFError, RuntimeError, OSError, KeyError...: torch's internal words, replaced by ours
        if torch_file:
            _refuse(
                path,
                "it is truncated or damaged: its torch archive cannot be read (an interrupted "
                "download, copy or save, or changed bytes)",
            )
        _refuse(path, f"it is not a torch checkpoint file (it starts with {head[:12]!r})")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read (model_state, settings) from path after checking the stored SHA-256 checksum."""
    path = _check_path(path)
    blob = _read(path)
    if not isinstance(blob, dict):
        _refuse(
            path, f"it holds a {type(blob).__name__}, not a course checkpoint (a dict with format {FORMAT!r})"
        )
    if "format" not in blob:
        if blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            _refuse(
                path, "it holds bare weights (a state_dict saved by torch.save) without settings or checksum"
            )
        _refuse(
            path,
            f"it is not a course checkpoint (no 'format' entry; its keys are {sorted(map(str, blob))[:6]})",
        )
    if blob["format"] != FORMAT:
        _refuse(path, f"it is in format {blob['format']!r}, and this course reads {FORMAT!r}")
    for key, what in (("state", "weights"), ("settings", "settings"), ("sha256", "checksum")):
        if key not in blob:
            _refuse(path, f"it has no {what} (no {key!r} entry), so it cannot be verified and used")
    digest = blob["sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        _refuse(path, f"its checksum is not a SHA-256 digest (64 hex digits), got {digest!r}")
    try:
        state = _check_state(blob["state"], "its state")
        actual = checksum(state, blob["settings"])
    except (TypeError, ValueError) as err:
        _refuse(path, f"its contents are malformed ({err})")
    if actual != digest:
        _refuse(path, "the checksum does not match its contents: the file is corrupted or was edited")
    bad = _not_finite(state)
    if bad:
        _refuse(
            path, f"its weights hold NaN or inf ({', '.join(bad[:3])}): the training that wrote it diverged"
        )
    return state, blob["settings"]


def _summary(settings) -> str:
    if not isinstance(settings, dict):
        return f"its settings are a {type(settings).__name__}"
    said = {k: settings[k] for k in ("method", "prediction", "target") if k in settings}
    return f"its settings have keys {sorted(settings)[:8]}" + (f" and say {said}" if said else "")


def _fit(path, model: torch.nn.Module, state: dict, settings) -> None:
    """Refuse weights whose names or shapes differ from the network's (a checkpoint of another architecture)."""
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    extra = [k for k in state if k not in wanted]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in wanted.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or extra or shapes:
        parts = [
            f"{label}: {', '.join(items[:3])}" + (" ..." if len(items) > 3 else "")
            for label, items in (
                ("missing", missing),
                ("unexpected", extra),
                ("shape file vs network", shapes),
            )
            if items
        ]
        _refuse(
            path,
            f"its weights do not fit the {type(model).__name__} that build made ({'; '.join(parts)}): it is a "
            f"checkpoint of another model or architecture ({_summary(settings)})",
            other_model=True,
        )


def load_model(path: str | os.PathLike, build) -> tuple:
    """(model in eval mode, settings) from path: build(settings) makes the network, then its checked weights load."""
    if isinstance(build, torch.nn.Module):
        raise TypeError(
            "build must be a function that makes the network from the settings, not a network; "
            "to fill a model you already have, pass lambda settings: model."
        )
    if not callable(build):
        raise TypeError(
            f"build must be a function settings -> network, e.g. lambda s: MLP(**s['model']); got {type(build).__name__}."
        )
    state, settings = load_checkpoint(path)
    try:
        model = build(settings)
    except KeyError as err:
        _refuse(
            path,
            f"its settings have no {err.args[0]!r}, which this model needs: it is a checkpoint of another "
            f"model ({_summary(settings)})",
            other_model=True,
        )
    except (TypeError, ValueError) as err:  # a builder's own check of the settings, or a bad keyword
        _refuse(
            path,
            f"its settings do not fit this model ({str(err).rstrip('.')}): it is a checkpoint of another model "
            f"({_summary(settings)})",
            other_model=True,
        )
    check_instance(model, torch.nn.Module, "build(settings)", "MLP(**settings['model'])")
    _fit(path, model, state, settings)
    model.load_state_dict(state)
    return model.eval(), settings


def save_configured_model(path, model, model_class, key: str, settings: dict, example: str) -> str:
    """Save a model that has a .config (a dataclass with to_dict) and the given settings, the configuration
    under settings[key]; return the checksum. example: how to make such a model, for the error message."""
    check_instance(model, model_class, "model", example)
    if not isinstance(settings, dict):
        raise TypeError(
            f"settings must be a dict such as {{'method': 'cfm'}}, got {type(settings).__name__}."
        )
    return save_checkpoint(path, model.state_dict(), {**settings, key: model.config.to_dict()})


def configured_builder(model_class, config_class, key: str, not_this_kind: str, what: str | None = None):
    """build(settings) for load_model: model_class(config_class(**settings[key])), JSON lists back to tuples.

    not_this_kind: what to say when the settings hold no such configuration (which saver, which remake);
    what: the model's name in that message (the class name by default)."""
    for cls, name in ((model_class, "model_class"), (config_class, "config_class")):
        if not isinstance(cls, type):
            raise TypeError(f"{name} must be a class (such as UNet, UNetConfig), got {type(cls).__name__}.")
    if not issubclass(model_class, torch.nn.Module):
        raise TypeError(
            f"model_class must be a torch.nn.Module class such as UNet, got {model_class.__name__}."
        )
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"key must name the settings entry of the configuration, such as 'unet'; got {key!r}."
        )
    what = what or model_class.__name__

    def build(settings: dict):
        if not isinstance(settings.get(key), dict):
            raise ValueError(f"this checkpoint holds no {what} configuration ({not_this_kind})")
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in settings[key].items()}
        return model_class(config_class(**config))

    return build
