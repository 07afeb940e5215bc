"""SpatialTransformer: the Caffe STN forks' layer, built on the fused core kernels.

    layer { type: "SpatialTransformer" bottom: "U" bottom: "theta" top: "V"
            st_param { output_H: 28 output_W: 28 theta_1_1: 0.5 ... to_compute_dU: false } }

Bottoms: U (N, C, H, W) and theta (N, k): the k free entries of the 2x3 matrix in row-major
order; an entry given in st_param (theta_i_j) is fixed, and k + (number fixed) must be 6.
Top: V (N, C, output_H, output_W), output_H / output_W defaulting to H / W.

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

THETA_FIELDS = ("theta_1_1", "theta_1_2", "theta_1_3", "theta_2_1", "theta_2_2", "theta_2_3")
TRANSFORM_TYPES = ("affine",)
SAMPLER_TYPES = ("bilinear", "nearest", "bicubic")


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
        if st.transform_type not in TRANSFORM_TYPES:
            raise self.error(f"st_param.transform_type must be one of {TRANSFORM_TYPES}, "
                             f"got {st.transform_type!r}")
        if st.sampler_type not in SAMPLER_TYPES:
            raise self.error(f"st_param.sampler_type must be one of {SAMPLER_TYPES}, "
                             f"got {st.sampler_type!r}")
        u, theta = bottoms
        if len(u.shape) != 4:
            raise self.error(f"bottom U must be 4-D (N, C, H, W), got shape {u.shape}")
        # Fixed entries, in row-major order; the theta bottom fills the others.
        self.fixed = {i: getattr(st, f) for i, f in enumerate(THETA_FIELDS) if st.HasField(f)}
        self.free = [i for i in range(6) if i not in self.fixed]
        free_count = theta.count(1) if len(theta.shape) >= 1 else 0
        if len(theta.shape) < 1 or theta.shape[0] != u.shape[0] or free_count != len(self.free):
            raise self.error(
                f"bottom theta must be (N, {len(self.free)}) with N = {u.shape[0]}: "
                f"{len(self.fixed)} of the 6 entries are fixed in st_param "
                f"({', '.join(THETA_FIELDS[i] for i in sorted(self.fixed)) or 'none'}), "
                f"got theta of shape {theta.shape}")
        self.out_height = st.output_H if st.HasField("output_H") else u.shape[2]
        self.out_width = st.output_W if st.HasField("output_W") else u.shape[3]
        if self.out_height <= 0 or self.out_width <= 0:
            raise self.error(f"output_H and output_W must be positive, got "
                             f"{self.out_height} x {self.out_width}")

    def reshape(self, bottoms, tops):
        u, theta = bottoms
        if theta.shape[0] != u.shape[0] or theta.count(1) != len(self.free):
            raise self.error(f"bottom theta must be (N, {len(self.free)}) with N = {u.shape[0]}, "
                             f"got {theta.shape}")
        tops[0].reshape((u.shape[0], u.shape[1], self.out_height, self.out_width))

    def _full_theta(self, theta_blob):
        """(N, 2, 3) float64: the free entries from the bottom, the fixed ones from st_param."""
        n = theta_blob.shape[0]
        full = np.empty((n, 6))
        full[:, self.free] = theta_blob.data.reshape(n, -1)
        for index, value in self.fixed.items():
            full[:, index] = value
        return full.reshape(n, 2, 3)

    def _kernel_matrix(self, bottoms):
        u, theta = bottoms
        a = theta_to_kernel_matrix(self._full_theta(theta), u.shape[2], u.shape[3],
                                   self.out_height, self.out_width)
        return a.astype(u.dtype)

    def _options(self):
        return dict(out_size=(self.out_height, self.out_width),
                    mode=self.param.st_param.sampler_type, padding_mode="zeros",
                    align_corners=False)

    def forward(self, bottoms, tops):
        tops[0].data[...] = functional.spatial_transform(
            bottoms[0].data, self._kernel_matrix(bottoms), **self._options())

    def backward(self, tops, propagate_down, bottoms):
        u, theta = bottoms
        input_grad = bool(propagate_down[0]) and self.param.st_param.to_compute_dU
        grad_u, grad_a = functional.spatial_transform_backward(
            tops[0].diff, u.data, self._kernel_matrix(bottoms), input_grad=input_grad,
            **self._options())
        if propagate_down[0]:
            # to_compute_dU: false promises U needs no gradient; it then receives zeros.
            u.diff[...] = grad_u if grad_u is not None else 0
        if propagate_down[1]:
            grad_theta = kernel_matrix_grad_to_theta(grad_a, self.out_height, self.out_width)
            theta.diff[...] = grad_theta.reshape(theta.shape[0], 6)[:, self.free].reshape(theta.shape)
