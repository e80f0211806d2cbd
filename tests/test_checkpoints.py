"""lessons.checkpoints: weights and settings round-trip, load with weights_only, and a damaged file is refused."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from lessons.checkpoints import (
    CHECKPOINTS_DIR,
    checkpoint_path,
    checksum,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from lessons.models import MLP


def test_round_trip_keeps_weights_and_settings(tmp_path):
    model = MLP(hidden=16, depth=2)
    settings = {"model": {"hidden": 16, "depth": 2}, "note": "tiny", "steps": 3}
    digest = save_checkpoint(tmp_path / "m.pt", model.state_dict(), settings)
    state, loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded == settings
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # plain data only: no code can run on load
    assert raw["sha256"] == digest


def test_load_model_rebuilds_the_network_from_its_settings_in_eval_mode(tmp_path):
    torch.manual_seed(0)
    model = MLP(hidden=16, depth=2).train()
    settings = {"model": {"hidden": 16, "depth": 2}}
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), settings)
    loaded, loaded_settings = load_model(tmp_path / "m.pt", lambda s: MLP(**s["model"]))
    assert loaded_settings == settings and not loaded.training
    x, t = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(loaded(x=x, t=t), model(x=x, t=t))


def test_checksum_is_sha256_of_settings_and_tensor_bytes():
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    settings = {"a": 1}
    reference = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    reference.update(b"w|torch.float32|(2, 3)")
    reference.update(state["w"].numpy().tobytes())
    assert checksum(state, settings) == reference.hexdigest()


def test_a_damaged_or_missing_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    raw = torch.load(path, weights_only=True)
    raw["state"]["net.0.weight"][0, 0] += 1.0  # one weight changed
    torch.save(raw, path)
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="plain data"):
        save_checkpoint(tmp_path / "bad.pt", {"w": torch.zeros(1)}, {"f": object()})


def test_checkpoint_path_points_into_the_shipped_folder():
    assert CHECKPOINTS_DIR == Path(__file__).resolve().parents[1] / "checkpoints"
    assert checkpoint_path("mnist", "classifier.pt") == CHECKPOINTS_DIR / "mnist" / "classifier.pt"
    assert checkpoint_path("2d", "icfm.pt").is_file() and checkpoint_path("mnist", "cfm_small.pt").is_file()
