"""Blob: a Caffe blob, an N-D array of values (`data`) with its gradient (`diff`).

Shapes follow Caffe: a list of ints, usually (N, C, H, W). `data` and `diff` are numpy arrays
that layers write in place; pycaffe users see them as `net.blobs[name].data`.
"""

from __future__ import annotations

import numpy as np


class Blob:
    def __init__(self, shape=(), dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.data = np.zeros(tuple(shape), self.dtype)
        self.diff = np.zeros(tuple(shape), self.dtype)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    def reshape(self, shape) -> None:
        """Gives the blob a new shape; values are kept only when the shape is unchanged."""
        shape = tuple(int(s) for s in shape)
        if shape != self.data.shape:
            self.data = np.zeros(shape, self.dtype)
            self.diff = np.zeros(shape, self.dtype)

    def count(self, start_axis: int = 0, end_axis: int | None = None) -> int:
        """Product of the extents of axes [start_axis, end_axis), as Caffe's Blob::count."""
        return int(np.prod(self.shape[start_axis:end_axis], dtype=np.int64))

    def canonical_axis(self, axis: int) -> int:
        """A possibly negative axis index as a non-negative one (Caffe's CanonicalAxisIndex)."""
        ndim = len(self.shape)
        if not -ndim <= axis < max(ndim, 1):
            raise ValueError(f"axis {axis} is out of range for a blob of shape {self.shape}")
        return axis % max(ndim, 1)

    def __repr__(self) -> str:
        return f"Blob(shape={self.shape}, dtype={self.dtype})"
