"""Checkpoints that carry their settings and a SHA-256 checksum, verified when loaded.

The file holds {'state': tensors, 'settings': plain data, 'sha256': hex digest}; the digest covers
every tensor (name, dtype, shape, bytes) and the settings (as sorted JSON), and loading uses
torch.load(..., weights_only=True), so a checkpoint cannot run code and cannot be silently corrupted.
"""

import hashlib
import json
import os
from pathlib import Path

import torch

FORMAT = "course-checkpoint-v1"
CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"  # the models shipped with the course


def checkpoint_path(*parts: str) -> Path:
    """The path of a shipped checkpoint or folder, e.g. checkpoint_path('mnist', 'cfm_small.pt')."""
    return CHECKPOINTS_DIR.joinpath(*parts)


def checksum(state: dict, settings: dict) -> str:
    """SHA-256 hex digest of a state dict (names, dtypes, shapes, bytes) and the settings (sorted JSON)."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True).encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model_state: dict, settings: dict) -> str:
    """Write the tensors of model_state and the plain-data settings to path; return the checksum."""
    if not all(isinstance(v, torch.Tensor) for v in model_state.values()):
        raise ValueError("model_state must map names to tensors (e.g. model.state_dict()).")
    try:
        json.dumps(settings)
    except TypeError as err:
        raise ValueError(
            f"settings must be plain data (dict, list, str, number, bool, None): {err}"
        ) from None
    state = {k: v.detach().cpu().clone() for k, v in model_state.items()}
    digest = checksum(state, settings)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "state": state, "settings": settings, "sha256": digest}, path)
    return digest


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read (model_state, settings) from path after checking the stored SHA-256 checksum."""
    if not Path(path).exists():
        raise ValueError(f"no checkpoint at {path}; train one first (see scripts/) or check the path.")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a course checkpoint (expected format {FORMAT!r}).")
    if checksum(blob["state"], blob["settings"]) != blob["sha256"]:
        raise ValueError(
            f"the checksum of {path} does not match its contents: the file is corrupted or was edited."
        )
    return blob["state"], blob["settings"]


def load_model(path: str | os.PathLike, build) -> tuple:
    """(model in eval mode, settings) from path: build(settings) makes the network, then its checked weights load."""
    state, settings = load_checkpoint(path)
    model = build(settings)
    model.load_state_dict(state)
    return model.eval(), settings
