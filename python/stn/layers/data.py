"""Data layers: HDF5Data and ImageData, as Caffe's.

HDF5Data
    hdf5_data_param { source batch_size shuffle }. `source` is a text file listing .h5 files,
    one per line (blank lines are skipped). Each file holds one dataset per top, named after
    the top ("data", "label", ...), all with the same number of rows (axis 0), numeric, and
    with the same trailing shape in every file. A top gets shape (batch_size, *trailing) and
    the values as the net's float type. Batches run across file boundaries: row after row,
    file after file, and back to the first file. With `shuffle: true` the file order is
    permuted at set-up and at every pass over the list, and the rows of a file each time it
    is loaded (or, with a single file, each time it is finished), from the net's rng.
    Files are checked at set-up (through h5py's metadata, no data read); only one file's
    data is in memory at a time. Needs h5py: pip install "stn[hdf5]".

ImageData
    image_data_param { source root_folder batch_size shuffle rand_skip new_height new_width
    is_color } and transform_param. `source` lists `path label` lines (the label is the last
    whitespace-separated field, an integer; blank lines are skipped). Images are read with
    Pillow as 8-bit, in Caffe's (OpenCV's) layout: is_color (default) gives 3 channels in
    **BGR** order -- a grey image is replicated, alpha dropped; is_color: false gives 1
    channel (Pillow's ITU-R 601-2 luma). new_height and new_width (both or neither) resize
    with Pillow's bilinear filter (which, unlike OpenCV's INTER_LINEAR, antialiases when
    shrinking). Tops: data (batch_size, C, H, W), and label (batch_size,) when given. The
    batch takes its H, W from its first image (so with batch_size 1 images may differ in
    size); the others must match, unless crop_size makes the output size fixed. After the
    last line the list starts over, reshuffled when `shuffle: true`; rand_skip starts the
    first pass at a random line in [0, rand_skip).

File names: `source`, `root_folder` and mean_file are used as given when they exist relative
to the current directory (Caffe's rule), else relative to the prototxt's folder; files
named in a list likewise, else relative to the list's folder (for ImageData, `root_folder`
is prepended when set).

Exact resume: both layers have get_state() -> a small dict of plain ints and lists (the
position in the list and the current permutations) and set_state(state). Saved with a
solver snapshot -- together with the net rng's state (rng.bit_generator.state), which
draws the shuffles, crops and mirrors -- they make the resumed run read the same batches.
"""

from __future__ import annotations

import os

import numpy as np

from .base import Layer, register
from .transform import DataTransformer, resolve_path


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('the HDF5Data layer needs h5py: pip install "stn[hdf5]"') from None
    return h5py


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('the ImageData layer needs Pillow: pip install pillow') from None
    return Image


def _read_list(layer, source: str, what: str):
    """(resolved path, [(line number, stripped text)]) of the list file `source`."""
    if not source:
        raise layer.error(f"{what}.source is not set (a text file listing the inputs)")
    path = resolve_path(source, layer.base_dir)
    if path is None:
        raise layer.error(f"{what}.source '{source}' not found (looked in the current "
                          f"directory and {layer.base_dir})")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [(n, text.strip()) for n, text in enumerate(handle, 1)]
    except (OSError, UnicodeDecodeError) as error:
        raise layer.error(f"{what}.source '{path}': cannot read: {error}") from None
    lines = [(n, text) for n, text in lines if text]
    if not lines:
        raise layer.error(f"{what}.source '{path}' lists no files")
    return path, lines


def _permutation(rng, n: int) -> list:
    return [int(i) for i in rng.permutation(n)]


def _check_order(layer, state, key, n):
    order = state.get(key)
    if order is None:
        return None
    order = [int(i) for i in order]
    if sorted(order) != list(range(n)):
        raise ValueError(f"layer '{layer.name}': set_state: '{key}' is not a permutation of "
                         f"range({n}) -- was the state saved from another list?")
    return order


class _DataLayer(Layer):
    bottom_count = (0, 0)

    def __init__(self, param, phase, location=None, dtype=np.float32, rng=None):
        super().__init__(param, phase, location, dtype, rng)
        if not hasattr(self, "base_dir"):
            self.base_dir = "."

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False


@register("HDF5Data")
class HDF5Data(_DataLayer):
    top_count = (1, None)

    def setup(self, bottoms, tops):
        p = self.param.hdf5_data_param
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data: remove transform_param")
        if p.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be set and positive")
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.source, lines = _read_list(self, p.source, "hdf5_data_param")
        folder = os.path.dirname(self.source)
        self.files = []
        for number, name in lines:
            path = resolve_path(name, folder)
            if path is None:
                raise self.error(f"HDF5 file '{name}' (line {number} of {self.source}) not found "
                                 f"(looked in the current directory and {os.path.abspath(folder or '.')})")
            self.files.append(path)
        self.names = list(self.param.top)
        self.rows, self.trailing = self._check_files()
        for top, shape in zip(tops, self.trailing):
            top.reshape((self.batch_size,) + shape)
        self.file_order = _permutation(self.rng, len(self.files)) if self.shuffle \
            else list(range(len(self.files)))
        self.file_cursor = 0
        self._load(self.file_order[0])
        self.row_order = _permutation(self.rng, self.rows[self.loaded]) if self.shuffle else None
        self.row_cursor = 0

    def _check_files(self):
        """Opens every file once (metadata only): rows per file, trailing shape per top."""
        h5py = _h5py()
        rows, trailing = [], None
        for path in self.files:
            try:
                handle = h5py.File(path, "r")
            except OSError as error:
                raise self.error(f"cannot open HDF5 file '{path}': {error}") from None
            with handle:
                shapes = []
                for name in self.names:
                    dataset = handle.get(name)
                    if dataset is None:
                        raise self.error(f"HDF5 file '{path}' has no dataset '{name}' (one per "
                                         f"top: {self.names}; it has {sorted(handle.keys())})")
                    if not isinstance(dataset, h5py.Dataset):
                        raise self.error(f"'{name}' in HDF5 file '{path}' is a group, not a dataset")
                    if dataset.dtype.kind not in "biuf":
                        raise self.error(f"dataset '{name}' in HDF5 file '{path}' has dtype "
                                         f"{dataset.dtype}, not a numeric type")
                    if dataset.ndim == 0:
                        raise self.error(f"dataset '{name}' in HDF5 file '{path}' is a scalar; "
                                         "rows run along axis 0")
                    shapes.append(tuple(int(d) for d in dataset.shape))
            counts = {s[0] for s in shapes}
            if len(counts) > 1:
                listed = ", ".join(f"'{n}' {s[0]}" for n, s in zip(self.names, shapes))
                raise self.error(f"datasets in HDF5 file '{path}' have different row counts: {listed}")
            if shapes[0][0] == 0:
                raise self.error(f"HDF5 file '{path}': datasets {self.names} have 0 rows")
            tails = [s[1:] for s in shapes]
            if trailing is None:
                trailing, first = tails, path
            elif tails != trailing:
                for n, a, b in zip(self.names, trailing, tails):
                    if a != b:
                        raise self.error(f"dataset '{n}' has rows of shape {list(b)} in '{path}' "
                                         f"but {list(a)} in '{first}'")
            rows.append(shapes[0][0])
        return rows, trailing

    def _load(self, index: int):
        h5py = _h5py()
        path = self.files[index]
        try:
            with h5py.File(path, "r") as handle:
                self.arrays = [np.asarray(handle[name][()], self.dtype) for name in self.names]
        except (OSError, KeyError) as error:
            raise self.error(f"cannot read HDF5 file '{path}': {error}") from None
        if any(a.shape != (self.rows[index],) + t for a, t in zip(self.arrays, self.trailing)):
            raise self.error(f"HDF5 file '{path}' changed since set-up")
        self.loaded = index

    def _next_row(self):
        """Caffe's HDF5DataLayer::Next: on to the next row, file and pass."""
        self.row_cursor += 1
        if self.row_cursor < self.rows[self.loaded]:
            return
        self.row_cursor = 0
        if len(self.files) > 1:
            self.file_cursor += 1
            if self.file_cursor == len(self.files):
                self.file_cursor = 0
                if self.shuffle:
                    self.file_order = _permutation(self.rng, len(self.files))
            if self.loaded != self.file_order[self.file_cursor]:
                self._load(self.file_order[self.file_cursor])
        if self.shuffle:
            self.row_order = _permutation(self.rng, self.rows[self.loaded])

    def reshape(self, bottoms, tops):
        for top, shape in zip(tops, self.trailing):
            top.reshape((self.batch_size,) + shape)

    def forward(self, bottoms, tops):
        for i in range(self.batch_size):
            row = self.row_order[self.row_cursor] if self.row_order is not None else self.row_cursor
            for top, array in zip(tops, self.arrays):
                top.data[i] = array[row]
            self._next_row()

    def get_state(self) -> dict:
        """Where the next batch starts: {'file_order', 'file_cursor', 'row_order' (None when
        rows are read in order), 'row_cursor'}; plain ints and lists."""
        return {"file_order": list(self.file_order), "file_cursor": self.file_cursor,
                "row_order": None if self.row_order is None else list(self.row_order),
                "row_cursor": self.row_cursor}

    def set_state(self, state: dict) -> None:
        """Resumes at a position from get_state() (of a layer reading the same list)."""
        file_order = _check_order(self, state, "file_order", len(self.files))
        file_cursor = int(state["file_cursor"])
        if file_order is None or not 0 <= file_cursor < len(self.files):
            raise ValueError(f"layer '{self.name}': set_state: bad file_order/file_cursor")
        rows = self.rows[file_order[file_cursor]]
        row_order = _check_order(self, state, "row_order", rows)
        row_cursor = int(state["row_cursor"])
        if not 0 <= row_cursor < rows:
            raise ValueError(f"layer '{self.name}': set_state: row_cursor {row_cursor} is "
                             f"outside the {rows} rows of the file")
        if self.loaded != file_order[file_cursor]:
            self._load(file_order[file_cursor])
        self.file_order, self.file_cursor = file_order, file_cursor
        self.row_order, self.row_cursor = row_order, row_cursor


@register("ImageData")
class ImageData(_DataLayer):
    top_count = (1, 2)

    def setup(self, bottoms, tops):
        p = self.param.image_data_param
        for legacy in ("scale", "mean_file", "crop_size", "mirror"):
            if p.HasField(legacy):
                raise self.error(f"image_data_param.{legacy} is deprecated and ignored by Caffe: "
                                 f"write it as transform_param {{ {legacy}: ... }}")
        t = self.param.transform_param
        if t.force_color or t.force_gray:
            raise self.error("transform_param.force_color/force_gray do not apply to ImageData: "
                             "use image_data_param.is_color")
        if p.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be positive")
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("image_data_param: set new_height and new_width together "
                             f"(got {p.new_height} and {p.new_width})")
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.is_color = bool(p.is_color)
        self.new_size = (int(p.new_height), int(p.new_width))
        self.root = ""
        if p.root_folder:
            root = resolve_path(p.root_folder, self.base_dir)
            if root is None or not os.path.isdir(root):
                raise self.error(f"image_data_param.root_folder '{p.root_folder}' is not a folder "
                                 f"(looked in the current directory and {self.base_dir})")
            self.root = root
        self.source, lines = _read_list(self, p.source, "image_data_param")
        self.folder = os.path.dirname(self.source)
        self.lines = []    # (path as written, label, line number)
        for number, text in lines:
            fields = text.rsplit(None, 1)
            label = None
            if len(fields) == 2:
                try:
                    label = int(fields[1])
                except ValueError:
                    pass
            if label is None:
                raise self.error(f"{self.source} line {number}: expected 'path label' with an "
                                 f"integer label, got {text!r}")
            self.lines.append((fields[0], label, number))
        self.transformer = DataTransformer(self, t)
        self.order = _permutation(self.rng, len(self.lines)) if self.shuffle else None
        self.cursor = 0
        if p.rand_skip:
            if p.rand_skip > len(self.lines):
                raise self.error(f"image_data_param.rand_skip {p.rand_skip} exceeds the "
                                 f"{len(self.lines)} lines of {self.source}")
            self.cursor = int(self.rng.integers(p.rand_skip))
        first = self._read(self._line(self.cursor))
        self.transformer.check(*first.shape, self._what(self._line(self.cursor)))
        self._set_shapes(tops, first.shape)

    # -------------------------------------------------------------- reading
    def _line(self, cursor):
        return self.lines[self.order[cursor] if self.order is not None else cursor]

    def _what(self, line):
        return f"image '{line[0]}' ({self.source} line {line[2]})"

    def _read(self, line) -> np.ndarray:
        """The image of a list line as (C, H, W) uint8, BGR (or 1 channel), resized if asked."""
        Image = _pil_image()
        name = line[0]
        path = os.path.join(self.root, name) if self.root else resolve_path(name, self.folder)
        if path is None or not os.path.isfile(path):
            raise self.error(f"{self._what(line)} not found"
                             + (f" in root_folder '{self.root}'" if self.root else
                                f" (looked in the current directory and {os.path.abspath(self.folder or '.')})"))
        try:
            with Image.open(path) as image:
                image = image.convert("RGB" if self.is_color else "L")
                if self.new_size[0] > 0:
                    bilinear = getattr(Image, "Resampling", Image).BILINEAR
                    image = image.resize((self.new_size[1], self.new_size[0]), bilinear)
                pixels = np.asarray(image, np.uint8)
        except OSError as error:
            raise self.error(f"cannot read {self._what(line)} at '{path}': {error}") from None
        if self.is_color:
            return np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1))   # RGB -> BGR
        return pixels[None]

    def _set_shapes(self, tops, image_shape):
        tops[0].reshape((self.batch_size,) + self.transformer.output_shape(*image_shape))
        if len(tops) > 1:
            tops[1].reshape((self.batch_size,))

    def reshape(self, bottoms, tops):
        pass   # forward gives the tops the batch's shape (Caffe's prefetching layers do too)

    def forward(self, bottoms, tops):
        images, labels, first = [], [], None
        for i in range(self.batch_size):
            line = self._line(self.cursor)
            image = self._read(line)
            if first is None:
                first = image.shape, line
            elif image.shape != first[0] and not self.transformer.crop_size:
                raise self.error(f"{self._what(line)} has shape {list(image.shape)} (C, H, W) but "
                                 f"the batch's first, {self._what(first[1])}, has "
                                 f"{list(first[0])}: set new_height/new_width, crop_size or "
                                 "batch_size: 1")
            images.append(self.transformer.transform(image, self._what(line)))
            labels.append(line[1])
            self.cursor += 1
            if self.cursor == len(self.lines):
                self.cursor = 0
                if self.shuffle:
                    self.order = _permutation(self.rng, len(self.lines))
        self._set_shapes(tops, first[0])
        tops[0].data[...] = np.stack(images)
        if len(tops) > 1:
            tops[1].data[...] = labels

    def get_state(self) -> dict:
        """Where the next batch starts: {'order' (the line permutation, None without
        shuffle), 'cursor' (position in it)}; plain ints and lists."""
        return {"order": None if self.order is None else list(self.order), "cursor": self.cursor}

    def set_state(self, state: dict) -> None:
        """Resumes at a position from get_state() (of a layer reading the same list)."""
        order = _check_order(self, state, "order", len(self.lines))
        cursor = int(state["cursor"])
        if not 0 <= cursor < len(self.lines):
            raise ValueError(f"layer '{self.name}': set_state: cursor {cursor} is outside the "
                             f"{len(self.lines)} lines of {self.source}")
        self.order, self.cursor = order, cursor
