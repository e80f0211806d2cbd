"""lessons.checkpoints: weights and settings round-trip, load with weights_only, and a damaged file is refused."""

import hashlib
import json
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from lessons.checkpoints import (
    CHECKPOINTS_DIR,
    FORMAT,
    REMAKE,
    checkpoint_path,
    checksum,
    configured_builder,
    load_checkpoint,
    load_model,
    remake_command,
    save_checkpoint,
    save_configured_model,
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


# --- every load failure names the file, says what is wrong and how to remake it ---------------------------

SHIPPED = checkpoint_path("2d", "icfm.pt")
REMAKE_ICFM = "scripts/train_2d_checkpoints.py --methods icfm"


def _copy_shipped(tmp_path) -> Path:
    """A copy of the shipped I-CFM checkpoint at tmp_path/2d/icfm.pt (its remake command is known)."""
    path = tmp_path / "2d" / "icfm.pt"
    path.parent.mkdir()
    path.write_bytes(SHIPPED.read_bytes())
    return path


def _refused(path, match, load=load_checkpoint, **kwargs) -> str:
    """Load, expect our ValueError matching `match`, and check it names the file and never relays torch's advice."""
    with pytest.raises(ValueError, match=match) as info:
        load(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "To fix it" in message
    assert "weights_only" not in message
    assert info.value.__suppress_context__  # torch's own exception (and its advice) is not chained in
    return message


def _zip_entry_offset(raw: bytes, path: Path, suffix: str) -> int:
    """Where the bytes of the zip entry ending in suffix start inside a torch checkpoint."""
    info = next(i for i in zipfile.ZipFile(path).infolist() if i.filename.endswith(suffix))
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.999])
def test_a_truncated_checkpoint_names_the_file_and_the_command_that_remakes_it(tmp_path, keep):
    path = _copy_shipped(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(keep * len(raw))])
    message = _refused(path, "empty" if keep == 0 else "truncated")
    assert REMAKE_ICFM in message and f"--out {path.parent}" in message


def test_flipped_bytes_in_the_weights_fail_the_checksum(tmp_path):
    path = _copy_shipped(tmp_path)
    raw = bytearray(path.read_bytes())
    start = _zip_entry_offset(bytes(raw), path, "data/0")  # the first weight tensor's bytes
    raw[start + 100 : start + 104] = bytes(b ^ 0xFF for b in raw[start + 100 : start + 104])
    path.write_bytes(bytes(raw))
    assert REMAKE_ICFM in _refused(path, "checksum does not match")


def test_flipped_bytes_in_the_pickled_index_are_damage_not_torchs_words(tmp_path):
    path = _copy_shipped(tmp_path)
    raw = bytearray(path.read_bytes())
    start = _zip_entry_offset(bytes(raw), path, "data.pkl")
    raw[start : start + 40] = bytes(40)  # the head of the pickle zeroed
    path.write_bytes(bytes(raw))
    _refused(path, "damaged")


def test_files_that_are_not_course_checkpoints_say_what_they_are(tmp_path):
    path = tmp_path / "m.pt"
    path.write_text("hello, I am a text file\n")
    _refused(path, "not a torch checkpoint file")
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 92259\n")
    _refused(path, "git lfs pull")
    torch.save(MLP(hidden=4, depth=1), path)  # a whole pickled model: loading it would run code
    assert "lessons.models.MLP" in _refused(path, "pickled Python object")
    torch.save(MLP(hidden=4, depth=1).state_dict(), path)
    _refused(path, "bare weights")
    torch.save([1, 2, 3], path)
    _refused(path, "holds a list")
    torch.save({"epoch": 3}, path)
    _refused(path, "no 'format' entry")
    _refused(tmp_path, "folder, not a checkpoint file")


def _rewrite(path, **changes):
    blob = torch.load(path, weights_only=True)
    blob.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del blob[key]
    torch.save(blob, path)


def test_a_missing_or_malformed_checksum_or_format_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    _rewrite(path, sha256=None)
    _refused(path, "no checksum")
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    _rewrite(path, sha256="abc")
    _refused(path, "not a SHA-256 digest")
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    _rewrite(path, format="course-checkpoint-v0")
    _refused(path, "format 'course-checkpoint-v0'")
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    _rewrite(path, state=None)
    _refused(path, "no weights")
    save_checkpoint(path, MLP(hidden=8, depth=1).state_dict(), {"x": 1})
    _rewrite(path, state={"w": [1.0, 2.0]})
    _refused(path, "malformed")


def test_weights_with_nan_are_refused_on_save_and_on_load(tmp_path):
    state = MLP(hidden=8, depth=1).state_dict()
    state["net.0.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="net.0.weight"):
        save_checkpoint(tmp_path / "nan.pt", state, {})
    assert not (tmp_path / "nan.pt").exists()
    path = tmp_path / "old.pt"  # written by hand with a valid checksum, as an older version could have
    torch.save({"format": FORMAT, "state": state, "settings": {}, "sha256": checksum(state, {})}, path)
    _refused(path, "NaN or inf")


def test_a_missing_shipped_checkpoint_gets_its_own_make_line(tmp_path):
    message = _refused(tmp_path / "mnist" / "classifier.pt", "no checkpoint")
    assert "scripts/train_mnist_classifier.py --steps 600" in message
    assert f"--out {tmp_path / 'mnist' / 'classifier.pt'}" in message
    assert "save_checkpoint" in _refused(tmp_path / "mine.pt", "no checkpoint")  # not a shipped name


def test_remake_commands_are_the_makefiles():
    makefile = (CHECKPOINTS_DIR.parent / "Makefile").read_text().replace("$(PY)", "python")
    target = makefile.split("\ncheckpoints:")[1].split("\n\n")[0]
    for key, command in REMAKE.items():
        assert command.split(" --methods")[0].split(" --models")[0] in target, key
        assert checkpoint_path(*key.split("/")).is_file(), key
        assert remake_command(checkpoint_path(*key.split("/"))).count(command) == 1
    script = (CHECKPOINTS_DIR.parent / "scripts" / "train_2d_checkpoints.py").read_text()
    assert '"--methods"' in script


def _builder_that_checks(settings):
    raise ValueError("a builder's own check of the settings failed.")


def test_a_checkpoint_of_another_model_or_architecture_is_refused(tmp_path):
    path = _copy_shipped(tmp_path)
    message = _refused(path, r"do not fit the MLP", load_model, build=lambda s: MLP(hidden=8))
    assert "net.0.weight (96, 34) vs (8, 34)" in message and "'method': 'icfm'" in message
    assert "give the file made for this model" in message
    _refused(path, "no 'width'.*another model", load_model, build=lambda s: MLP(s["width"]))
    _refused(path, "no 'unet'.*another model", load_model, build=lambda s: MLP(**s["unet"]))
    _refused(path, "do not fit this model .a builder's own check", load_model, build=_builder_that_checks)
    _refused(path, "settings do not fit", load_model, build=lambda s: MLP(**s["model"], colour=1))
    _refused(
        path,
        "missing: net.8.weight, net.8.bias",
        load_model,
        build=lambda s: MLP(**{**s["model"], "depth": 4}),
    )


def test_bad_arguments_to_save_and_load_are_refused(tmp_path):
    model = MLP(hidden=8, depth=1)
    with pytest.raises(TypeError, match=r"model.state_dict\(\), not the model"):
        save_checkpoint(tmp_path / "m.pt", model, {})
    with pytest.raises(TypeError, match="map names to tensors"):
        save_checkpoint(tmp_path / "m.pt", [1, 2], {})
    with pytest.raises(ValueError, match="entry 'w' is a list"):
        save_checkpoint(tmp_path / "m.pt", {"w": [1.0]}, {})
    with pytest.raises(TypeError, match="path must be a file path"):
        save_checkpoint(3, model.state_dict(), {})
    with pytest.raises(TypeError, match="path must be a file path"):
        load_checkpoint(None)
    with pytest.raises(TypeError, match="not a network"):
        load_model(SHIPPED, MLP(**torch.load(SHIPPED, weights_only=True)["settings"]["model"]))
    with pytest.raises(TypeError, match="build must be a function"):
        load_model(SHIPPED, "MLP")
    with pytest.raises(TypeError, match="build.settings. must be a Module"):
        load_model(SHIPPED, lambda s: s)
    with pytest.raises(TypeError, match="strings"):
        checkpoint_path("mnist", 3)


def test_settings_must_be_a_dict_of_plain_values(tmp_path):
    with pytest.raises(ValueError, match="settings must be plain data.*not JSON serializable.*convert"):
        checksum({}, {"a": object()})
    with pytest.raises(ValueError, match="settings must be plain data"):
        checksum({}, {"lr": torch.tensor(0.1)})
    with pytest.raises(TypeError, match="settings must be a dict of plain values.*got str 'cfm'"):
        save_checkpoint(tmp_path / "d.pt", {}, "cfm")
    with pytest.raises(TypeError, match="settings must be a dict"):
        checksum({}, ["cfm"])
    assert not (tmp_path / "d.pt").exists()  # refused before anything is written


def test_a_folder_or_an_unwritable_path_is_refused_in_words(tmp_path):
    with pytest.raises(ValueError, match="is a folder; give the checkpoint file to write inside it"):
        save_checkpoint(tmp_path, {}, {})
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder is wanted")
    with pytest.raises(ValueError, match=r"cannot write the checkpoint .*notes\.txt is a file, not a folder"):
        save_checkpoint(blocker / "sub" / "m.pt", {"w": torch.ones(1)}, {})


def test_a_configured_model_saves_its_config_and_loads_back_with_tuples(tmp_path):
    from lessons.unet import UNet, UNetConfig

    net = UNet(UNetConfig(channels=(8, 16)))
    path = tmp_path / "unet.pt"
    save_configured_model(path, net, UNet, "unet", {"method": "cfm"}, "UNet(unet_config('tiny'))")
    build = configured_builder(UNet, UNetConfig, "unet", "remake it with scripts/train_mnist.py")
    loaded, settings = load_model(path, build)
    assert (
        settings["unet"]["channels"] == [8, 16] and loaded.config == net.config
    )  # the list is a tuple again
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(TypeError, match="model must be a UNet"):
        save_configured_model(path, MLP(), UNet, "unet", {}, "UNet(unet_config('tiny'))")
    with pytest.raises(TypeError, match="settings must be a dict"):
        save_configured_model(path, net, UNet, "unet", "cfm", "UNet(unet_config('tiny'))")
    with pytest.raises(ValueError, match="holds no UNet configuration.*train_mnist"):
        build({"method": "cfm"})
