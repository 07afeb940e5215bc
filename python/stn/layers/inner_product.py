"""InnerProduct: Caffe's fully connected layer (inner_product_param).

The bottom is read as a matrix (M, K): M = product of the axes before `axis` (default 1),
K = product of `axis` and the axes after it. Weights are (num_output, K) as Caffe stores
them, or (K, num_output) with transpose: true; the bias is (num_output,).
    top (M..., num_output) = bottom (M, K) @ W.T + b
"""

from __future__ import annotations

import numpy as np

from .. import parallel_gemm
from ..fillers import new_param_blob
from .base import Layer, register


@register("InnerProduct")
class InnerProduct(Layer):
    def __init__(self, param, phase, location=None, dtype=np.float32, rng=None):
        super().__init__(param, phase, location, dtype, rng)
        if not hasattr(self, "base_dir"):
            self.base_dir = "."

    def setup(self, bottoms, tops):
        p = self.param.inner_product_param
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error("inner_product_param.num_output must be given (a positive count)")
        self.bias_term = bool(p.bias_term)
        self.transpose = bool(p.transpose)
        bottom = bottoms[0]
        try:
            self.axis = bottom.canonical_axis(int(p.axis))
        except ValueError as exc:
            raise self.error(str(exc)) from None
        self.K = bottom.count(self.axis)
        if self.K == 0:
            raise self.error(f"the bottom of shape {list(bottom.shape)} has no inputs")
        w_shape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        self.blobs = [new_param_blob(self, w_shape, p.weight_filler, "weight_filler")]
        if self.bias_term:
            self.blobs.append(new_param_blob(self, (self.num_output,), p.bias_filler,
                                             "bias_filler"))

    def reshape(self, bottoms, tops):
        bottom = bottoms[0]
        k = bottom.count(self.axis) if len(bottom.shape) > self.axis else 0
        if k != self.K:
            raise self.error(f"input size incompatible with inner product parameters: the "
                             f"bottom of shape {list(bottom.shape)} gives {k} inputs from "
                             f"axis {self.axis}, the weights expect {self.K}")
        tops[0].reshape(tuple(bottom.shape[:self.axis]) + (self.num_output,))

    def _weight_nk(self):
        """The weights as (num_output, K), whatever their storage."""
        w = self.blobs[0].data
        return w.T if self.transpose else w

    def forward(self, bottoms, tops):
        x = bottoms[0].data.reshape(-1, self.K)                          # (M, K)
        y = _matrix(tops[0].data, self.num_output)                       # (M, N)
        parallel_gemm.matmul(x, self._weight_nk().T, y)
        if self.bias_term:
            y += self.blobs[1].data
        if not np.may_share_memory(y, tops[0].data):
            tops[0].data[...] = y.reshape(tops[0].shape)

    def backward(self, tops, propagate_down, bottoms):
        dy = tops[0].diff.reshape(-1, self.num_output)                   # (M, N)
        x = bottoms[0].data.reshape(-1, self.K)                          # (M, K)
        grad_w = self.__dict__.get("_grad_weight_buffer")
        if grad_w is None or grad_w.shape != self.blobs[0].shape:
            grad_w = self._grad_weight_buffer = np.empty(self.blobs[0].shape, self.dtype)
        if self.transpose:
            parallel_gemm.matmul(x.T, dy, grad_w)                        # (K, N)
        else:
            parallel_gemm.matmul(dy.T, x, grad_w)                        # (N, K)
        self.blobs[0].diff += grad_w
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)                         # (N,)
        if propagate_down[0]:
            dx = _matrix(bottoms[0].diff, self.K)                        # (M, K)
            parallel_gemm.matmul(dy, self._weight_nk(), dx)
            if not np.may_share_memory(dx, bottoms[0].diff):
                bottoms[0].diff[...] = dx.reshape(bottoms[0].shape)


def _matrix(array, cols):
    """array as (rows, cols): a view where it is C-contiguous (the result lands in place),
    else a new array the caller copies back."""
    if array.flags.c_contiguous and array.flags.writeable:
        return array.reshape(-1, cols)
    return np.empty((array.size // cols, cols), array.dtype)
