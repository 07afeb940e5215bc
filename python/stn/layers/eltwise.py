"""Eltwise: element-wise SUM (with coefficients), PROD or MAX of two or more same-shaped bottoms."""

from __future__ import annotations

import numpy as np

from .base import Layer, register

_OPS = {0: "PROD", 1: "SUM", 2: "MAX"}       # Caffe's EltwiseParameter.EltwiseOp numbers


@register("Eltwise")
class Eltwise(Layer):
    bottom_count = (2, None)
    top_count = (1, 1)

    def setup(self, bottoms, tops):
        p = self.param.eltwise_param
        self.op = _OPS.get(int(p.operation))
        if self.op is None:
            raise self.error(f"unknown operation {p.operation}")
        coeff = list(p.coeff)
        if coeff and self.op != "SUM":
            raise self.error("only takes coefficients (coeff) for operation SUM, "
                             f"not {self.op}")
        if coeff and len(coeff) != len(bottoms):
            raise self.error(f"takes one coeff per bottom: {len(bottoms)} bottoms, "
                             f"{len(coeff)} coeff")
        self.coeffs = coeff or [1.0] * len(bottoms)
        self.stable_prod_grad = bool(p.stable_prod_grad)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        for i, b in enumerate(bottoms[1:], 1):
            if b.shape != shape:
                raise self.error(f"bottom {i} has shape {b.shape}, bottom 0 has {shape}; "
                                 "all bottoms must have the same shape")
        tops[0].reshape(shape)

    def forward(self, bottoms, tops):
        xs = [b.data for b in bottoms]
        if self.op == "SUM":
            out = self.coeffs[0] * xs[0]
            for c, x in zip(self.coeffs[1:], xs[1:]):
                out = out + c * x
        elif self.op == "PROD":
            out = xs[0].copy()
            for x in xs[1:]:
                out = out * x
        else:
            # Caffe's tie rule: bottom 1 wins a tie with bottom 0 (0 only when strictly
            # greater); every later bottom must be strictly greater than the running max.
            self.argmax = np.where(xs[0] > xs[1], 0, 1)      # (shape of the bottoms)
            out = np.where(self.argmax == 0, xs[0], xs[1])
            for i, x in enumerate(xs[2:], 2):
                better = x > out
                self.argmax = np.where(better, i, self.argmax)
                out = np.where(better, x, out)
        tops[0].data[...] = out

    def backward(self, tops, propagate_down, bottoms):
        dy = tops[0].diff
        for i, b in enumerate(bottoms):
            if not propagate_down[i]:
                continue
            if self.op == "SUM":
                b.diff[...] = dy * self.dtype.type(self.coeffs[i])
            elif self.op == "MAX":
                b.diff[...] = np.where(self.argmax == i, dy, 0)
            elif self.stable_prod_grad:
                # d(prod)/dx_i = product of the other bottoms.
                others = np.ones_like(b.data)
                for j, other in enumerate(bottoms):
                    if j != i:
                        others = others * other.data
                b.diff[...] = dy * others
            else:
                b.diff[...] = dy * tops[0].data / b.data
