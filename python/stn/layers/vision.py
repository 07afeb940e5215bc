"""Convolution and Pooling, as Caffe's conv_layer / pooling_layer, in numpy.

Convolution is the compiled core's im2col + one GEMM per group over the whole batch; its
backward is one GEMM for the weights' gradient and one for the columns', then col2im.
Pooling is the compiled core's (csrc/cpu/pooling.cpp).
"""

from __future__ import annotations

import numpy as np

from ..fillers import new_param_blob
from .. import _core, parallel_gemm
from .base import Layer, register



def _has(msg, name):
    """Whether the optional field `name` is set (False where the schema lacks it)."""
    if name not in msg.DESCRIPTOR.fields_by_name:
        return False
    try:
        return msg.HasField(name)
    except ValueError:          # repeated field
        return len(getattr(msg, name)) > 0


def _values(msg, name):
    """A field's values as a list, whether the schema makes it scalar or repeated."""
    if name not in msg.DESCRIPTOR.fields_by_name:
        return []
    value = getattr(msg, name)
    if isinstance(value, (int, float)):
        return [int(value)] if _has(msg, name) else []
    return [int(v) for v in value]


def _pair(layer, msg, name, default, hw=True, together=True):
    """(h, w) of a kernel/stride/pad/dilation setting with Caffe's rules: `name_size` or
    `name` given once or once per spatial axis, OR `name_h` and `name_w` (both of them
    where `together`; else the missing one takes its schema default, as Caffe's conv pad)."""
    many = name + "_size" if name == "kernel" else name
    values = _values(msg, many)
    if hw and (_has(msg, name + "_h") or _has(msg, name + "_w")):
        if together and not (_has(msg, name + "_h") and _has(msg, name + "_w")):
            raise layer.error(f"{name}_h and {name}_w must be given together")
        if values:
            raise layer.error(f"either {many} or {name}_h/{name}_w should be given; not both")
        return int(getattr(msg, name + "_h")), int(getattr(msg, name + "_w"))
    if not values:
        if default is None:
            raise layer.error(f"{many} (or {name}_h and {name}_w) is required")
        return default, default
    if len(values) in (1, 2):
        return values[0], values[-1]
    raise layer.error(f"{many} must be given once, or once per spatial dimension (2); "
                      f"got {len(values)} values")


def _workspace(layer, name, shape, dtype):
    """A buffer of `layer` kept between iterations (reallocated when the shape changes):
    fresh large arrays cost a page fault per 4 KiB on every pass."""
    buffer = layer.__dict__.get(name)
    if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
        buffer = np.empty(shape, dtype)
        setattr(layer, name, buffer)
    return buffer


def _write_into(target, dtype, compute):
    """compute(out) writes a result into out; out is `target` itself where the core can
    write there (C-contiguous, writeable, of the layer's dtype), else a copy goes in after."""
    if target.flags.c_contiguous and target.flags.writeable and target.dtype == dtype:
        compute(target)
    else:
        result = np.empty(target.shape, dtype)
        compute(result)
        target[...] = result


@register("Convolution")
class Convolution(Layer):
    """Weights (num_output, C / group, kh, kw), bias (num_output,). Every bottom gives the
    top at the same position, all through the same weights (Caffe's shared convolution)."""
    bottom_count = (1, None)
    top_count = (1, None)

    def __init__(self, param, phase, location=None, dtype=np.float32, rng=None):
        super().__init__(param, phase, location, dtype, rng)
        if not hasattr(self, "base_dir"):
            self.base_dir = "."

    def setup(self, bottoms, tops):
        if len(bottoms) != len(tops):
            raise self.error(f"needs as many tops as bottoms, got {len(bottoms)} bottoms and "
                             f"{len(tops)} tops")
        p = self.param.convolution_param
        shape = bottoms[0].shape
        try:
            self.axis = bottoms[0].canonical_axis(int(p.axis))
        except ValueError as exc:
            raise self.error(str(exc)) from None
        spatial = len(shape) - self.axis - 1
        if spatial != 2:
            raise self.error(f"only 2-D convolution is supported: the bottom of shape "
                             f"{list(shape)} has {spatial} spatial axes after axis {self.axis}")
        self.kernel = _pair(self, p, "kernel", None)
        self.stride = _pair(self, p, "stride", 1)
        self.pad = _pair(self, p, "pad", 0, together=False)
        self.dilation = _pair(self, p, "dilation", 1, hw=False)
        for what, values, low in (("kernel size", self.kernel, 1), ("stride", self.stride, 1),
                                  ("pad", self.pad, 0), ("dilation", self.dilation, 1)):
            if min(values) < low:
                raise self.error(f"{what} must be at least {low}, got {list(values)}")
        self.channels = shape[self.axis]
        self.num_output = int(p.num_output)
        self.group = int(p.group)
        if self.num_output <= 0:
            raise self.error("convolution_param.num_output must be given (a positive count)")
        if self.group <= 0 or self.channels % self.group:
            raise self.error(f"group {self.group} does not divide the {self.channels} input "
                             "channels")
        if self.num_output % self.group:
            raise self.error(f"group {self.group} does not divide num_output {self.num_output}")
        self.bias_term = bool(p.bias_term)
        w_shape = (self.num_output, self.channels // self.group) + tuple(self.kernel)
        self.blobs = [new_param_blob(self, w_shape, p.weight_filler, "weight_filler")]
        if self.bias_term:
            self.blobs.append(new_param_blob(self, (self.num_output,), p.bias_filler,
                                             "bias_filler"))

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        for i, b in enumerate(bottoms[1:], 1):
            if b.shape != shape:
                raise self.error(f"all bottoms need one shape: bottom 0 is {list(shape)}, "
                                 f"bottom {i} is {list(b.shape)}")
        if len(shape) != self.axis + 3 or shape[self.axis] != self.channels:
            raise self.error(f"the bottom of shape {list(shape)} does not have the "
                             f"{self.channels} channels at axis {self.axis} and 2 spatial axes "
                             "the layer was set up with")
        out = []
        for size, k, s, p, d in zip(shape[-2:], self.kernel, self.stride, self.pad,
                                    self.dilation):
            extent = d * (k - 1) + 1
            if size + 2 * p < extent:
                raise self.error(f"the kernel extent {extent} is larger than the padded input "
                                 f"{size} + 2*{p} (bottom shape {list(shape)})")
            out.append((size + 2 * p - extent) // s + 1)
        self.out_hw = tuple(out)
        for top in tops:
            top.reshape(tuple(shape[:self.axis]) + (self.num_output,) + self.out_hw)

    # --- im2col / col2im (the compiled core's, csrc/cpu/im2col.h) ------------------------
    def _window(self):
        """(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)."""
        return (*self.kernel, *self.stride, *self.pad, *self.dilation)

    def _columns(self, x):
        """x (N, C, H, W) -> columns (G, C/G*kh*kw, N*OH*OW), rows in weight order; the
        buffer is the layer's, rewritten by the next call."""
        n = x.shape[0]
        rows = self.channels * self.kernel[0] * self.kernel[1]
        length = n * self.out_hw[0] * self.out_hw[1]
        columns = _workspace(self, "_columns_buffer", (rows, length), self.dtype)
        _core.im2col(np.ascontiguousarray(x, self.dtype), self._window(), columns)
        return columns.reshape(self.group, rows // self.group, length)

    def _as_nchw(self, array):
        return array.reshape((-1,) + tuple(array.shape[self.axis:]))  # (N, C, H, W)

    def forward(self, bottoms, tops):
        g, m = self.group, self.num_output
        w = self.blobs[0].data.reshape(g, m // g, -1)                    # (G, M/G, C/G*kh*kw)
        for bottom, top in zip(bottoms, tops):
            x = self._as_nchw(bottom.data)
            n = x.shape[0]
            columns = self._columns(x)                                   # (G, CKK/G, N*OH*OW)
            y = _workspace(self, "_product_buffer", (g, m // g, columns.shape[2]), self.dtype)
            parallel_gemm.matmul(w, columns, y)                          # (G, M/G, N*OH*OW)
            y = y.reshape(m, n, -1).transpose(1, 0, 2)                   # (N, M, OH*OW) view
            out = top.data.reshape(n, m, -1)                             # top, same memory
            if self.bias_term:  # one pass: transpose, add the bias, write the top
                np.add(y, self.blobs[1].data[None, :, None], out=out)
            else:
                out[...] = y

    def backward(self, tops, propagate_down, bottoms):
        g, m = self.group, self.num_output
        w = self.blobs[0].data.reshape(g, m // g, -1)                    # (G, M/G, CKK/G)
        for i, (bottom, top) in enumerate(zip(bottoms, tops)):
            x = self._as_nchw(bottom.data)
            n = x.shape[0]
            # The top's gradient in the columns' order: (M, N, OH*OW), one transposing copy.
            dy = _workspace(self, "_grad_top_buffer", (m, n, self.out_hw[0] * self.out_hw[1]),
                            self.dtype)
            np.copyto(dy, top.diff.reshape(n, m, -1).transpose(1, 0, 2))
            if self.bias_term:
                self.blobs[1].diff += dy.reshape(m, -1).sum(axis=1)
            dy = dy.reshape(g, m // g, -1)                               # (G, M/G, N*OH*OW)
            columns = self._columns(x)                                   # (G, CKK/G, N*OH*OW)
            grad_w = _workspace(self, "_grad_weight_buffer", w.shape, self.dtype)
            parallel_gemm.matmul(dy, columns.transpose(0, 2, 1), grad_w)  # (G, M/G, CKK/G)
            self.blobs[0].diff += grad_w.reshape(self.blobs[0].shape)
            if propagate_down[i]:
                # The columns are spent: their buffer receives the columns' gradient.
                parallel_gemm.matmul(w.transpose(0, 2, 1), dy, columns)  # (G, CKK/G, N*OHOW)
                _write_into(self._as_nchw(bottom.diff), self.dtype, lambda grad: _core.col2im(
                    columns.reshape(-1, columns.shape[2]), self._window(), grad))


MAX, AVE, STOCHASTIC = 0, 1, 2     # PoolingParameter.PoolMethod
CEIL, FLOOR = 0, 1                 # PoolingParameter.RoundMode


@register("Pooling")
class Pooling(Layer):
    """MAX or AVE pooling of a (N, C, H, W) bottom, with Caffe's output size and window
    rules. A second top (MAX only) receives Caffe's mask: the argmax as h * W + w."""
    top_count = (1, 2)

    def setup(self, bottoms, tops):
        p = self.param.pooling_param
        self.method = int(p.pool)
        if self.method == STOCHASTIC:
            raise self.error("pool: STOCHASTIC pooling is not supported")
        if self.method not in (MAX, AVE):
            raise self.error(f"pool: unknown pooling method {self.method}")
        if len(tops) == 2 and self.method != MAX:
            raise self.error("a second top (the argmax mask) needs pool: MAX")
        self.global_pooling = bool(p.global_pooling)
        if self.global_pooling:
            if _has(p, "kernel_size") or _has(p, "kernel_h") or _has(p, "kernel_w"):
                raise self.error("with global_pooling: true the kernel size cannot be given")
            self.kernel = None
        else:
            if _has(p, "kernel_size") == (_has(p, "kernel_h") and _has(p, "kernel_w")):
                raise self.error("the kernel is kernel_size OR kernel_h and kernel_w "
                                 "(both of them for non-square kernels)")
            self.kernel = _pair(self, p, "kernel", None)
            if min(self.kernel) <= 0:
                raise self.error(f"kernel size must be positive, got {list(self.kernel)}")
        self.stride = _pair(self, p, "stride", 1)
        self.pad = _pair(self, p, "pad", 0)
        if min(self.stride) <= 0:
            raise self.error(f"stride must be positive, got {list(self.stride)}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling: true only pad = 0 and stride = 1 are allowed")
        if self.kernel and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            raise self.error(f"pad {list(self.pad)} must be smaller than the kernel "
                             f"{list(self.kernel)}")
        self.round_mode = int(p.round_mode) if "round_mode" in p.DESCRIPTOR.fields_by_name \
            else CEIL

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if len(shape) != 4:
            raise self.error(f"the bottom must have 4 axes (num, channels, height, width), "
                             f"got shape {list(shape)}")
        kernel = tuple(shape[2:]) if self.global_pooling else self.kernel
        out = []
        for size, k, s, p in zip(shape[2:], kernel, self.stride, self.pad):
            if size + 2 * p < k:
                raise self.error(f"the kernel {k} is larger than the padded input {size} + 2*{p}"
                                 f" (bottom shape {list(shape)})")
            span = size + 2 * p - k
            o = (-(-span // s) if self.round_mode == CEIL else span // s) + 1
            if p > 0 and (o - 1) * s >= size + p:
                o -= 1                       # the last window would start inside the padding
            out.append(o)
        self.cur_kernel, self.out_hw = kernel, tuple(out)
        for top in tops:
            top.reshape(tuple(shape[:2]) + self.out_hw)

    def _window(self):
        """(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w) for the core kernels."""
        return (*self.cur_kernel, *self.stride, *self.pad)

    def forward(self, bottoms, tops):
        # The window maths is the compiled core's (csrc/cpu/pooling.cpp).
        x = np.ascontiguousarray(bottoms[0].data, self.dtype)           # (N, C, H, W)
        h, w = x.shape[2:]
        if self.method == MAX:
            self.argmax = _workspace(self, "argmax", tops[0].shape, np.int32)  # (N, C, OH, OW)
            _write_into(tops[0].data, self.dtype,
                        lambda best: _core.max_pool(x, self._window(), best, self.argmax))
            if len(tops) == 2:  # Caffe's mask: the argmax as h * W + w
                kw = self.cur_kernel[1]
                rows = (np.arange(self.out_hw[0]) * self.stride[0] - self.pad[0])[:, None]
                cols = (np.arange(self.out_hw[1]) * self.stride[1] - self.pad[1])[None, :]
                mask = (rows + self.argmax // kw) * w + cols + self.argmax % kw
                tops[1].data[...] = np.where(self.argmax >= 0, mask, -1)
        else:
            _write_into(tops[0].data, self.dtype,
                        lambda out: _core.ave_pool(x, self._window(), out))

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dy = np.ascontiguousarray(tops[0].diff, self.dtype)              # (N, C, OH, OW)
        if self.method == MAX:
            _write_into(bottoms[0].diff, self.dtype, lambda grad: _core.max_pool_backward(
                dy, self.argmax, self._window(), grad))
        else:
            _write_into(bottoms[0].diff, self.dtype,
                        lambda grad: _core.ave_pool_backward(dy, self._window(), grad))
