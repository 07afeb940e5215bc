"""SpatialTransformer: the Caffe STN forks' layer, built on the fused core kernels.

    layer { type: "SpatialTransformer" bottom: "U" bottom: "theta" top: "V"
            st_param { output_H: 28 output_W: 28 theta_1_1: 0.5 ... to_compute_dU: false } }

Bottoms: U (N, C, H, W) and theta (N, k). Top: V (N, C, output_H, output_W), output_H /
output_W defaulting to H / W. st_param also takes sampler_type ("bilinear", "nearest",
"bicubic") and padding ("zeros", Caffe's; "border", "reflection").

transform_type "affine" (the default): theta holds the k free entries of the 2x3 matrix in
row-major order; an entry given in st_param (theta_i_j) is fixed, and k + (number fixed)
must be 6. The other types ("translation", "scale_translation", "rotation", "rigid",
"similarity", "projective", "tps"; k for each is listed in caffe.proto and stn.transforms)
are stn's own: their theta is the family's parameters in stn's frame (PyTorch's grid:
x = column, y = row, align_corners from st_param, default false), and tps reads
tps_grid_h x tps_grid_w control points (default: a square layout of k / 2 points).

The forks' convention, kept exactly so that their nets behave the same:
  * the first theta row gives the *row* coordinate, the second the column;
  * output pixel (i, j) sits at normalized (2i/oH - 1, 2j/oW - 1);
  * input pixel m sits at normalized 2m/H - 1 (rows; 2n/W - 1 for columns);
  * bilinear sampling, points outside the image contribute zero.
That is PyTorch's align_corners=False grid_sample with x and y swapped and a half-pixel
change of the translation, so the layer re-parameterizes theta into the core's matrix A
(kernel convention: A maps (x = column, y = row, 1), see stn.functional) and maps dA back to
d theta with the transpose of that linear map:
  A = [[t11, t10, t12 + 1/W - t11/oW - t10/oH],
       [t01, t00, t02 + 1/H - t01/oW - t00/oH]]      (t = theta, 0-based indices)
Unlike the forks, d theta is exact at integer coordinates (one-sided, as the core kernels)
and respects fixed entries (their CPU backward wrote it with stride 6 regardless).
"""

from __future__ import annotations

import numpy as np

from .. import functional
from .base import Layer, register

from ..transforms import FAMILIES as TRANSFORM_TYPES
from ..transforms import PARAM_COUNTS, THETA_ENTRIES as THETA_FIELDS

SAMPLER_TYPES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")


def theta_to_kernel_matrix(theta, in_height, in_width, out_height, out_width):
    """theta (N, 2, 3) in the forks' convention -> A (N, 2, 3) for stn.spatial_transform."""
    t = np.asarray(theta, np.float64)
    a = np.empty_like(t)
    a[:, 0, 0], a[:, 0, 1] = t[:, 1, 1], t[:, 1, 0]
    a[:, 1, 0], a[:, 1, 1] = t[:, 0, 1], t[:, 0, 0]
    a[:, 0, 2] = t[:, 1, 2] + 1.0 / in_width - t[:, 1, 1] / out_width - t[:, 1, 0] / out_height
    a[:, 1, 2] = t[:, 0, 2] + 1.0 / in_height - t[:, 0, 1] / out_width - t[:, 0, 0] / out_height
    return a


def kernel_matrix_grad_to_theta(grad_a, out_height, out_width):
    """d loss / d A (N, 2, 3) -> d loss / d theta (N, 2, 3): the transpose of the map above."""
    g = np.asarray(grad_a, np.float64)
    t = np.empty_like(g)
    t[:, 0, 0] = g[:, 1, 1] - g[:, 1, 2] / out_height
    t[:, 0, 1] = g[:, 1, 0] - g[:, 1, 2] / out_width
    t[:, 0, 2] = g[:, 1, 2]
    t[:, 1, 0] = g[:, 0, 1] - g[:, 0, 2] / out_height
    t[:, 1, 1] = g[:, 0, 0] - g[:, 0, 2] / out_width
    t[:, 1, 2] = g[:, 0, 2]
    return t


@register("SpatialTransformer")
class SpatialTransformerLayer(Layer):
    bottom_count = (2, 2)
    top_count = (1, 1)

    def setup(self, bottoms, tops):
        st = self.param.st_param
        for field, allowed in (("transform_type", TRANSFORM_TYPES), ("sampler_type", SAMPLER_TYPES),
                               ("padding", PADDINGS)):
            if getattr(st, field) not in allowed:
                raise self.error(f"st_param.{field} must be one of {tuple(allowed)}, "
                                 f"got {getattr(st, field)!r}")
        u, theta = bottoms
        self._check_u(u)
        self.transform = st.transform_type
        # Fixed entries, in row-major order; the theta bottom fills the others.
        self.fixed = {i: getattr(st, f) for i, f in enumerate(THETA_FIELDS) if st.HasField(f)}
        if self.transform != "affine":
            self._check_family_fields(st)
        elif st.HasField("align_corners"):
            raise self.error("st_param.align_corners applies to the transform_types other than "
                             "'affine', whose frame is the STN forks' own")
        self.free = [i for i in range(6) if i not in self.fixed]
        self.tps_grid = None
        self._check_theta(u, theta)
        self.out_height = st.output_H if st.HasField("output_H") else u.shape[2]
        self.out_width = st.output_W if st.HasField("output_W") else u.shape[3]
        if self.out_height <= 0 or self.out_width <= 0:
            raise self.error(f"output_H and output_W must be positive, got "
                             f"{self.out_height} x {self.out_width}")

    def _check_u(self, u):
        if len(u.shape) != 4:
            raise self.error(f"bottom U must be 4-D (N, C, H, W), got shape {u.shape}")
        if 0 in u.shape:
            raise self.error(f"bottom U must not be empty (every size positive), got shape {u.shape}")

    def _check_family_fields(self, st):
        named = [f for f in THETA_FIELDS if st.HasField(f)]
        if named:
            raise self.error(f"st_param {', '.join(named)} fix entries of transform_type 'affine' "
                             f"only, but transform_type is {self.transform!r}")
        if self.transform != "tps" and (st.HasField("tps_grid_h") or st.HasField("tps_grid_w")):
            raise self.error(f"st_param tps_grid_h / tps_grid_w apply to transform_type 'tps' "
                             f"only, got {self.transform!r}")

    def _expected_sizes(self, count: int):
        """The theta sizes k this layer accepts (as a tuple), given the bottom's k."""
        if self.transform == "affine":
            return (len(self.free),)
        if self.transform == "tps":
            grid_h, grid_w = self._tps_layout(count)
            return (2 * grid_h * grid_w,)
        return PARAM_COUNTS[self.transform]

    def _tps_layout(self, count: int):
        st = self.param.st_param
        if st.HasField("tps_grid_h") or st.HasField("tps_grid_w"):
            if not (st.HasField("tps_grid_h") and st.HasField("tps_grid_w")):
                raise self.error("st_param needs both tps_grid_h and tps_grid_w, or neither")
            grid = (st.tps_grid_h, st.tps_grid_w)
        else:
            side = int(round((count / 2) ** 0.5)) if count > 0 else 0
            grid = (max(side, 2), max(side, 2))
        if grid[0] < 2 or grid[1] < 2 or grid[0] * grid[1] > 64:
            raise self.error(f"the TPS grid must be at least 2 x 2 and at most 64 points, got "
                             f"tps_grid_h x tps_grid_w = {grid[0]} x {grid[1]}")
        return grid

    def _check_theta(self, u, theta):
        count = theta.count(1) if len(theta.shape) >= 1 else 0
        expected = self._expected_sizes(count)
        if len(theta.shape) < 1 or theta.shape[0] != u.shape[0] or count not in expected:
            sizes = " or ".join(f"(N, {k})" for k in expected)
            if self.transform == "affine":
                why = (f"{len(self.fixed)} of the 6 entries are fixed in st_param "
                       f"({', '.join(THETA_FIELDS[i] for i in sorted(self.fixed)) or 'none'})")
            elif self.transform == "tps":
                grid = self._tps_layout(count)
                why = f"2 values for each of the {grid[0]} x {grid[1]} TPS control points"
            else:
                why = f"the parameters of transform_type {self.transform!r}"
            raise self.error(f"bottom theta must be {sizes} with N = {u.shape[0]}: {why}, "
                             f"got theta of shape {theta.shape}")
        if self.transform == "tps":
            self.tps_grid = self._tps_layout(count)

    def reshape(self, bottoms, tops):
        u, theta = bottoms
        self._check_u(u)
        if len(theta.shape) < 1 or theta.shape[0] != u.shape[0] or theta.count(1) != self._params_per_image(theta):
            self._check_theta(u, theta)
        tops[0].reshape((u.shape[0], u.shape[1], self.out_height, self.out_width))

    def _params_per_image(self, theta):
        if self.transform == "affine":
            return len(self.free)
        if self.transform == "tps":
            return 2 * self.tps_grid[0] * self.tps_grid[1]
        return theta.count(1) if theta.count(1) in PARAM_COUNTS[self.transform] else -1

    def _full_theta(self, theta_blob):
        """(N, 2, 3) float64: the free entries from the bottom, the fixed ones from st_param."""
        n = theta_blob.shape[0]
        full = np.empty((n, 6))
        full[:, self.free] = theta_blob.data.reshape(n, -1)
        for index, value in self.fixed.items():
            full[:, index] = value
        return full.reshape(n, 2, 3)

    def _kernel_params(self, bottoms):
        """What stn.spatial_transform takes: the forks' affine theta turned into the kernels'
        matrix, or the family's parameters as they are (tps as (N, K, 2))."""
        u, theta = bottoms
        if self.transform == "affine":
            a = theta_to_kernel_matrix(self._full_theta(theta), u.shape[2], u.shape[3],
                                       self.out_height, self.out_width)
            return a.astype(u.dtype)
        n = theta.shape[0]
        shape = (n, -1, 2) if self.transform == "tps" else (n, -1)
        return np.ascontiguousarray(theta.data.reshape(shape), dtype=u.dtype)

    def _options(self):
        st = self.param.st_param
        options = dict(out_size=(self.out_height, self.out_width), mode=st.sampler_type,
                       padding_mode=st.padding, align_corners=False)
        if self.transform != "affine":
            options.update(transform=self.transform, align_corners=st.align_corners,
                           tps_grid=self.tps_grid)
        return options

    def forward(self, bottoms, tops):
        tops[0].data[...] = functional.spatial_transform(
            bottoms[0].data, self._kernel_params(bottoms), **self._options())

    def backward(self, tops, propagate_down, bottoms):
        u, theta = bottoms
        input_grad = bool(propagate_down[0]) and self.param.st_param.to_compute_dU
        grad_u, grad_params = functional.spatial_transform_backward(
            tops[0].diff, u.data, self._kernel_params(bottoms), input_grad=input_grad,
            **self._options())
        if propagate_down[0]:
            # to_compute_dU: false promises U needs no gradient; it then receives zeros.
            u.diff[...] = grad_u if grad_u is not None else 0
        if not propagate_down[1]:
            return
        if self.transform != "affine":
            theta.diff[...] = grad_params.reshape(theta.shape)
            return
        grad_theta = kernel_matrix_grad_to_theta(grad_params, self.out_height, self.out_width)
        theta.diff[...] = grad_theta.reshape(theta.shape[0], 6)[:, self.free].reshape(theta.shape)
