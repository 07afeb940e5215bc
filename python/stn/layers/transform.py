"""Caffe's DataTransformer for one image: `transform_param { crop_size mirror mean_value
mean_file scale }`, shared by the data layers.

The order is Caffe's (DataTransformer::Transform):
  1. crop to crop_size x crop_size: a random offset in TRAIN (each offset in
     [0, H - crop_size] equally likely), the centre ((H - crop_size) // 2, likewise W) in TEST;
  2. mirror (flip left-right) with probability 1/2, in TRAIN only -- note: BVLC Caffe also
     mirrors at random in TEST when `mirror: true`; here a TEST net is deterministic;
  3. subtract the mean: mean_value (one value for all channels, or one per channel, in the
     channel order of the data -- BGR for colour images) or mean_file (a .binaryproto
     mean image of the uncropped size, taken over the same crop window, unmirrored);
  4. multiply by scale.
Random draws come from the layer's rng, in Caffe's order: the mirror coin, then the crop's
row offset, then its column offset (only the draws that apply are made).
"""

from __future__ import annotations

import os

import numpy as np


def resolve_path(path: str, *folders) -> str | None:
    """`path` as given when it exists (relative to the current directory, as Caffe uses it),
    else the first folder/path that exists; None when none does."""
    if os.path.exists(path):
        return path
    if not os.path.isabs(path):
        for folder in folders:
            if folder:
                candidate = os.path.join(folder, path)
                if os.path.exists(candidate):
                    return candidate
    return None


class DataTransformer:
    """transform_param of `layer` (a Layer: its phase, rng, base_dir and error())."""

    def __init__(self, layer, param):
        self.layer = layer
        self.param = param
        self.scale = float(param.scale)
        self.mirror = bool(param.mirror)
        self.crop_size = int(param.crop_size)
        self.mean_values = [float(v) for v in param.mean_value]
        self.mean_image = None
        if param.HasField("mean_file") and self.mean_values:
            raise layer.error("transform_param: give mean_file or mean_value, not both")
        if param.HasField("mean_file"):
            self.mean_image = self._read_mean_file(param.mean_file)

    def _read_mean_file(self, name: str) -> np.ndarray:
        from ..config import read_blobproto
        from ..config_error import ConfigError
        path = resolve_path(name, getattr(self.layer, "base_dir", None))
        if path is None:
            raise self.layer.error(f"transform_param: mean_file '{name}' not found")
        try:
            blob = read_blobproto(path)
        except ConfigError as error:
            raise self.layer.error(f"transform_param: mean_file: {error}") from None
        shape = tuple(blob.shape.dim) if blob.HasField("shape") else \
            (blob.num, blob.channels, blob.height, blob.width)
        values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, np.float64)
        if len(shape) == 4 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 3 or int(np.prod(shape)) != values.size:
            raise self.layer.error(f"transform_param: mean_file '{name}' holds {values.size} "
                                   f"values of shape {list(shape)}; expected a (1, C, H, W) mean image")
        return values.reshape(shape)

    def output_shape(self, channels: int, height: int, width: int) -> tuple:
        """(C, H, W) of a transformed image of this size (Caffe's InferBlobShape)."""
        if self.crop_size:
            return (channels, self.crop_size, self.crop_size)
        return (channels, height, width)

    def check(self, channels: int, height: int, width: int, what: str) -> None:
        """Raises the layer's ConfigError when an image of this size cannot be transformed."""
        if self.mean_values and len(self.mean_values) not in (1, channels):
            raise self.layer.error(f"transform_param: give 1 mean_value or one per channel "
                                   f"({channels}), got {len(self.mean_values)}")
        if self.crop_size and (height < self.crop_size or width < self.crop_size):
            raise self.layer.error(f"{what} is {height}x{width} (HxW), smaller than "
                                   f"crop_size {self.crop_size}")
        if self.mean_image is not None and self.mean_image.shape != (channels, height, width):
            raise self.layer.error(f"transform_param: the mean_file image has shape "
                                   f"{list(self.mean_image.shape)} but {what} has "
                                   f"{[channels, height, width]} (C, H, W)")

    def transform(self, image: np.ndarray, what: str = "the image") -> np.ndarray:
        """image: (C, H, W) pixel values -> the transformed (C, h, w) array in the layer's dtype."""
        dtype = self.layer.dtype
        channels, height, width = image.shape
        self.check(channels, height, width, what)
        train = self.layer.phase == "TRAIN"
        rng = self.layer.rng
        do_mirror = self.mirror and train and bool(rng.integers(2))
        h_off = w_off = 0
        h_size, w_size = height, width
        if self.crop_size:
            h_size = w_size = self.crop_size
            if train:
                h_off = int(rng.integers(height - self.crop_size + 1))
                w_off = int(rng.integers(width - self.crop_size + 1))
            else:
                h_off = (height - self.crop_size) // 2
                w_off = (width - self.crop_size) // 2
        window = (slice(None), slice(h_off, h_off + h_size), slice(w_off, w_off + w_size))
        out = image[window].astype(dtype)
        if self.mean_image is not None:
            out -= self.mean_image[window].astype(dtype)
        elif self.mean_values:
            means = self.mean_values * (channels if len(self.mean_values) == 1 else 1)
            out -= np.asarray(means, dtype)[:, None, None]
        if self.scale != 1.0:
            out *= dtype.type(self.scale)
        if do_mirror:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)
