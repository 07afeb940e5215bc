"""Writing image splits for the data layers: HDF5 shards (HDF5Data) and PNG files (ImageData).

    images = digits.train_images[:, None] / np.float32(255)     # float32 (N, 1, 28, 28) in [0, 1]
    source = write_hdf5_split("data", "train", images, digits.train_labels)
    # layer { type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "<source>" ... } }
    source = write_png_split("data", "train", images, digits.train_labels)
    # layer { type: "ImageData" ... image_data_param { source: "<source>" root_folder: "data/" is_color: false } }

Every file is renamed into place once complete, and each list file is written last, so a
crash never leaves a list that names a missing or partial file. HDF5 needs h5py
(pip install "stn[hdf5]"); PNG needs Pillow.
"""

from __future__ import annotations

import io
import os

import numpy as np

from ..atomic_write import write_atomically


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('HDF5 export needs h5py: pip install "stn[hdf5]"') from None
    return h5py


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("PNG export needs Pillow: pip install pillow") from None
    return Image


def _checked_name(function: str, name: str) -> None:
    if not name or name != os.path.basename(name) or name in (".", ".."):
        raise ValueError(f"{function}: name must be a plain file name prefix, got {name!r}")


def _checked_split(function: str, name: str, images, labels):
    """images as float32 (N, C, H, W) in [0, 1] and labels (N,), or a ValueError naming the rule."""
    _checked_name(function, name)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"{function}: images must be (N, C, H, W) with N > 0, got shape {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{function}: labels must be ({images.shape[0]},) to match images "
                         f"{images.shape}, got shape {labels.shape}")
    if images.dtype.kind != "f":
        raise ValueError(f"{function}: images must be floating point in [0, 1], got {images.dtype}")
    images = images.astype(np.float32, copy=False)
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(f"{function}: images must be finite and in [0, 1], "
                         f"got values in [{np.nanmin(images)}, {np.nanmax(images)}]")
    if labels.dtype.kind not in "iuf" or not np.isfinite(labels).all():
        raise ValueError(f"{function}: labels must be finite numbers, got {labels.dtype}")
    return images, labels


def write_hdf5_split(folder, name: str, images, labels, *, shard_size: int = 10000) -> str:
    """Writes images float32 (N, C, H, W) in [0, 1] and labels (N,) as HDF5 shards
    folder/{name}_000.h5, ... (datasets "data" and "label", both float32, as Caffe's HDF5Data
    reads them; at most shard_size rows each), then folder/{name}.txt listing their absolute
    paths one per line. Returns the path of that list (the layer's `source`)."""
    return _write_shards("write_hdf5_split", folder, name, [(images, labels)], shard_size)


def write_hdf5_chunks(folder, name: str, chunks, *, shard_size: int = 10000) -> str:
    """write_hdf5_split of the rows of several (images, labels) chunks, one after the other:
    the files are exactly those of write_hdf5_split on the chunks concatenated, but only about
    two chunks are in memory at a time. `chunks` may be a generator, so a large split (many
    distorted copies of a training set) need never be in memory whole."""
    return _write_shards("write_hdf5_chunks", folder, name, chunks, shard_size)


def _write_shards(function: str, folder, name: str, chunks, shard_size) -> str:
    _checked_name(function, name)
    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size <= 0:
        raise ValueError(f"{function}: shard_size must be a positive integer, got {shard_size!r}")
    h5py = _h5py()
    folder = os.path.abspath(os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    shards = []

    def write_shard(images, labels):
        buffer = io.BytesIO()   # built in memory so the file appears whole, by rename
        with h5py.File(buffer, "w") as handle:
            handle.create_dataset("data", data=images)
            handle.create_dataset("label", data=labels.astype(np.float32))
        path = os.path.join(folder, f"{name}_{len(shards):03d}.h5")
        write_atomically(path, buffer.getvalue())
        shards.append(path)

    # rows not yet written (fewer than shard_size after each chunk), so that shard
    # boundaries fall where they would in the concatenated split
    pending_images, pending_labels, trailing = [], [], None
    for images, labels in chunks:
        images, labels = _checked_split(function, name, images, labels)
        if trailing is not None and images.shape[1:] != trailing:
            raise ValueError(f"{function}: every chunk's images must be (N, {', '.join(map(str, trailing))}), "
                             f"got shape {images.shape}")
        trailing = images.shape[1:]
        pending_images.append(images)
        pending_labels.append(labels)
        if sum(len(part) for part in pending_images) >= shard_size:
            images, labels = np.concatenate(pending_images), np.concatenate(pending_labels)
            full = len(images) - len(images) % shard_size
            for begin in range(0, full, shard_size):
                write_shard(images[begin:begin + shard_size], labels[begin:begin + shard_size])
            pending_images, pending_labels = [images[full:]], [labels[full:]]
    if trailing is None:
        raise ValueError(f"{function}: no (images, labels) chunk given")
    rest = np.concatenate(pending_images)
    if len(rest):
        write_shard(rest, np.concatenate(pending_labels))
    list_path = os.path.join(folder, f"{name}.txt")
    write_atomically(list_path, "".join(f"{path}\n" for path in shards).encode("utf-8"))
    return list_path


def read_hdf5_split(list_file):
    """(images float32 (N, C, H, W), labels float32 (N,)) from a list written by write_hdf5_split;
    relative names in the list are taken from the list's folder."""
    h5py = _h5py()
    list_file = os.fspath(list_file)
    with open(list_file, encoding="utf-8") as stream:
        names = [line.strip() for line in stream if line.strip()]
    if not names:
        raise ValueError(f"{list_file}: lists no HDF5 files")
    images, labels = [], []
    for name in names:
        path = os.path.join(os.path.dirname(os.path.abspath(list_file)), name)
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("data", "label") if key not in handle]
            if missing:
                raise ValueError(f"{path} (listed in {list_file}): no dataset {', '.join(missing)}")
            images.append(np.asarray(handle["data"], np.float32))
            labels.append(np.asarray(handle["label"], np.float32))
    return np.concatenate(images), np.concatenate(labels)


def write_png_split(folder, name: str, images, labels) -> str:
    """Writes images float32 (N, 1, H, W) in [0, 1] as 8-bit grayscale PNGs folder/name/00000.png,
    ..., and folder/{name}_images.txt with lines "name/00000.png label" (relative to `folder`:
    the ImageData layer's root_folder). Labels must be whole numbers. Returns the list's path."""
    images, labels = _checked_split("write_png_split", name, images, labels)
    if images.shape[1] != 1:
        raise ValueError(f"write_png_split: images must have 1 channel (grayscale), got shape {images.shape}")
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError("write_png_split: labels must be whole numbers (the ImageData list holds integers)")
    Image = _pil_image()
    folder = os.path.abspath(os.fspath(folder))
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    digits = max(5, len(str(len(images) - 1)))
    pixels = np.round(images[:, 0] * 255).astype(np.uint8)   # (N, H, W)
    lines = []
    for index, (image, label) in enumerate(zip(pixels, labels)):
        relative = f"{name}/{index:0{digits}d}.png"
        path = os.path.join(folder, relative)
        # rename into place but skip write_atomically's fsync: one per file would make 60,000
        # PNGs take minutes, and the list below (fsynced, written last) is what makes them visible
        temporary = path + ".part"
        Image.fromarray(image).save(temporary, format="PNG")
        os.replace(temporary, path)
        lines.append(f"{relative} {int(label)}\n")
    list_path = os.path.join(folder, f"{name}_images.txt")
    write_atomically(list_path, "".join(lines).encode("utf-8"))
    return list_path
