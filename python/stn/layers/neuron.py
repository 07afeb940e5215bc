"""Element-wise neuron layers: ReLU, Sigmoid, TanH, Dropout, Power.

One bottom, one top of the bottom's shape. Every layer here may run in place (the top is the
same Blob object as the bottom): backward then reads only what forward saved or the top's
data, never the bottom's data, which the forward pass has overwritten.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register


class _Neuron(Layer):
    """One bottom, one top of the same shape."""

    def reshape(self, bottoms, tops):
        tops[0].reshape(bottoms[0].shape)


@register("ReLU")
class ReLU(_Neuron):
    """y = max(x, 0) + negative_slope * min(x, 0)."""

    def setup(self, bottoms, tops):
        self.slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottoms, tops):
        x = bottoms[0].data
        self.positive = x > 0                      # saved: x is gone when in place
        if self.slope == 0:
            np.maximum(x, 0, out=tops[0].data)
        else:
            tops[0].data[...] = np.where(self.positive, x, x * self.slope)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        # Caffe: dy/dx = 1 where x > 0, negative_slope where x <= 0.
        if self.slope == 0:
            np.multiply(tops[0].diff, self.positive, out=bottoms[0].diff)
        else:
            scale = np.where(self.positive, 1.0, self.slope).astype(self.dtype)
            np.multiply(tops[0].diff, scale, out=bottoms[0].diff)


@register("Sigmoid")
class Sigmoid(_Neuron):
    """y = 1 / (1 + exp(-x)); backward from y: dy/dx = y (1 - y)."""

    def forward(self, bottoms, tops):
        # 0.5 * tanh(0.5 x) + 0.5 is the logistic function without overflow in exp.
        tops[0].data[...] = 0.5 * np.tanh(0.5 * bottoms[0].data) + 0.5

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            y = tops[0].data
            bottoms[0].diff[...] = tops[0].diff * y * (1 - y)


@register("TanH")
class TanH(_Neuron):
    """y = tanh(x); backward from y: dy/dx = 1 - y^2."""

    def forward(self, bottoms, tops):
        tops[0].data[...] = np.tanh(bottoms[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            y = tops[0].data
            bottoms[0].diff[...] = tops[0].diff * (1 - y * y)


@register("Dropout")
class Dropout(_Neuron):
    """TRAIN: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) from self.rng. TEST: y = x."""

    def setup(self, bottoms, tops):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self.mask = None

    def forward(self, bottoms, tops):
        x = bottoms[0].data
        if self.phase == "TRAIN":
            # Caffe keeps a unit when its uniform draw is above the ratio.
            self.mask = (self.rng.random(x.shape) >= self.ratio).astype(self.dtype)
            tops[0].data[...] = x * self.mask * self.dtype.type(self.scale)
        else:
            tops[0].data[...] = x

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            if self.phase == "TRAIN":
                bottoms[0].diff[...] = tops[0].diff * self.mask * self.dtype.type(self.scale)
            else:
                bottoms[0].diff[...] = tops[0].diff


@register("Power")
class Power(_Neuron):
    """y = (shift + scale * x) ^ power."""

    def setup(self, bottoms, tops):
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = self.power * self.scale      # Caffe's diff_scale_

    def forward(self, bottoms, tops):
        x = bottoms[0].data
        if self.diff_scale == 0:
            # power == 0 or scale == 0: a constant (Caffe: 1 when power == 0, else shift^power).
            value = 1.0 if self.power == 0 else self.shift ** self.power
            self.base = None
            tops[0].data[...] = value
            return
        self.base = self.shift + self.scale * x         # saved: x is gone when in place
        tops[0].data[...] = self.base if self.power == 1 else self.base ** self.power

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dy = tops[0].diff
        if self.diff_scale == 0:
            bottoms[0].diff[...] = 0
        elif self.power == 1:
            bottoms[0].diff[...] = dy * self.dtype.type(self.diff_scale)
        elif self.power == 2:
            # dy/dx = 2 * scale * (shift + scale * x)
            bottoms[0].diff[...] = dy * self.diff_scale * self.base
        else:
            # dy/dx = power * scale * (shift + scale * x)^(power - 1). Caffe computes this as
            # diff_scale * y / (shift + scale * x), which is the same except where the base is 0.
            bottoms[0].diff[...] = dy * self.diff_scale * self.base ** (self.power - 1)
