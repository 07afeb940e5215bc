"""Layers that only move values around: Input, Flatten, Reshape, Concat, Split."""

from __future__ import annotations

import numpy as np

from .base import Layer, register


def _canonical_axis(layer, blob, axis, what="axis"):
    """Caffe's CanonicalAxisIndex, reporting an out-of-range axis as this layer's ConfigError."""
    try:
        return blob.canonical_axis(int(axis))
    except ValueError:
        raise layer.error(f"{what} {axis} is out of range for a bottom of shape {blob.shape}") \
            from None


def _not_in_place(layer, bottoms, tops):
    for top in tops:
        if any(top is b for b in bottoms):
            raise layer.error("does not allow in-place computation")


@register("Input")
class Input(Layer):
    """No bottoms; each top gets input_param.shape (one shape for all tops, or one per top).

    As in Caffe the shapes are given once, in setup; reshape leaves the tops alone, so a user
    may reshape an input blob and fill its data before a forward pass.
    """
    bottom_count = (0, 0)
    top_count = (1, None)

    def setup(self, bottoms, tops):
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        if len(shapes) not in (0, 1, len(tops)):
            raise self.error(f"input_param must give 'shape' once, or once per top: "
                             f"{len(shapes)} shapes for {len(tops)} tops")
        for shape in shapes:
            if any(d < 0 for d in shape):
                raise self.error(f"shape {list(shape)} has a negative dimension")
        for i, top in enumerate(tops):
            if shapes:
                top.reshape(shapes[0] if len(shapes) == 1 else shapes[i])

    def reshape(self, bottoms, tops):
        pass

    def forward(self, bottoms, tops):
        pass


class _SameValuesNewShape(Layer):
    """Flatten and Reshape: the top holds the bottom's values in a new shape."""

    def forward(self, bottoms, tops):
        tops[0].data[...] = bottoms[0].data.reshape(tops[0].shape)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            bottoms[0].diff[...] = tops[0].diff.reshape(bottoms[0].shape)


@register("Flatten")
class Flatten(_SameValuesNewShape):
    """Merges the axes [axis, end_axis] into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def setup(self, bottoms, tops):
        _not_in_place(self, bottoms, tops)

    def reshape(self, bottoms, tops):
        b = bottoms[0]
        p = self.param.flatten_param
        start = _canonical_axis(self, b, p.axis)
        end = _canonical_axis(self, b, p.end_axis, "end_axis")
        if end < start:
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis} "
                             f"for a bottom of shape {b.shape}")
        shape = b.shape[:start] + (b.count(start, end + 1),) + b.shape[end + 1:]
        tops[0].reshape(shape)



@register("Reshape")
class Reshape(_SameValuesNewShape):
    """Replaces the bottom axes [axis, axis + num_axes) by reshape_param.shape.

    In the shape, 0 copies the bottom's dimension at the same place and -1 (at most once) is
    inferred from the count.
    """

    def setup(self, bottoms, tops):
        _not_in_place(self, bottoms, tops)
        p = self.param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        if self.dims.count(-1) > 1:
            raise self.error(f"shape {self.dims} has more than one -1 (inferred) dimension")
        if any(d < -1 for d in self.dims):
            raise self.error(f"shape {self.dims} has a dimension below -1")
        if p.num_axes < -1:
            raise self.error(f"num_axes must be >= -1, got {p.num_axes}")

    def reshape(self, bottoms, tops):
        b = bottoms[0]
        p = self.param.reshape_param
        ndim = len(b.shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"axis {p.axis} is out of range for a bottom of shape {b.shape}")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise self.error(f"axis {p.axis} + num_axes {p.num_axes} is beyond the "
                             f"{ndim} axes of the bottom {b.shape}")
        middle = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= ndim:
                    raise self.error(f"shape dimension {i} is 0 (copy) but the bottom "
                                     f"{b.shape} has no axis {start + i}")
                d = b.shape[start + i]
            middle.append(d)
        shape = list(b.shape[:start]) + middle + list(b.shape[end:])
        if -1 in middle:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known == 0 or b.count() % known:
                raise self.error(f"cannot infer the -1 dimension of {self.dims}: "
                                 f"bottom count {b.count()} for bottom shape {b.shape}")
            shape[shape.index(-1)] = b.count() // known
        if int(np.prod(shape, dtype=np.int64)) != b.count():
            raise self.error(f"output count {int(np.prod(shape))} of shape {shape} differs "
                             f"from bottom count {b.count()} (bottom shape {b.shape})")
        tops[0].reshape(shape)



@register("Concat")
class Concat(Layer):
    """Joins the bottoms along concat_param.axis (or the legacy concat_dim)."""
    bottom_count = (1, None)

    def setup(self, bottoms, tops):
        _not_in_place(self, bottoms, tops)
        p = self.param.concat_param
        if p.HasField("concat_dim") and p.HasField("axis"):
            raise self.error("give either axis or concat_dim, not both")

    def reshape(self, bottoms, tops):
        p = self.param.concat_param
        first = bottoms[0]
        if p.HasField("concat_dim"):
            self.axis = int(p.concat_dim)
            if self.axis >= max(len(first.shape), 1):
                raise self.error(f"concat_dim {self.axis} is out of range for a bottom "
                                 f"of shape {first.shape}")
        else:
            self.axis = _canonical_axis(self, first, p.axis)
        shape = list(first.shape)
        for i, b in enumerate(bottoms[1:], 1):
            same = len(b.shape) == len(shape) and all(
                b.shape[a] == shape[a] for a in range(len(shape)) if a != self.axis)
            if not same:
                raise self.error(f"bottom {i} has shape {b.shape}, bottom 0 has "
                                 f"{first.shape}: all axes but the concat axis {self.axis} "
                                 "must match")
            shape[self.axis] += b.shape[self.axis]
        tops[0].reshape(shape)

    def forward(self, bottoms, tops):
        tops[0].data[...] = np.concatenate([b.data for b in bottoms], axis=self.axis)

    def backward(self, tops, propagate_down, bottoms):
        offset = 0
        for i, b in enumerate(bottoms):
            n = b.shape[self.axis]
            if propagate_down[i]:
                index = (slice(None),) * self.axis + (slice(offset, offset + n),)
                b.diff[...] = tops[0].diff[index]
            offset += n


@register("Split")
class Split(Layer):
    """Copies one bottom to every top; backward sums the top diffs (in top order)."""
    top_count = (1, None)

    def setup(self, bottoms, tops):
        _not_in_place(self, bottoms, tops)

    def reshape(self, bottoms, tops):
        for top in tops:
            top.reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        for top in tops:
            top.data[...] = bottoms[0].data

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            total = tops[0].diff.copy()
            for top in tops[1:]:
                total += top.diff
            bottoms[0].diff[...] = total
