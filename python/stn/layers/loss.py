"""Softmax and the loss and accuracy layers: SoftmaxWithLoss, EuclideanLoss, Accuracy.

Loss and accuracy tops are 0-axis blobs, shape () with one value, as Caffe's
`top[0]->Reshape(vector<int>(0))`. A loss layer's backward scales its gradients by the top's
diff, which the Net sets to the top's loss_weight (Caffe: `top[0]->cpu_diff()[0]`).
`default_loss_weights` says which tops weigh 1 when the config gives no loss_weight (Caffe's
LossLayer gives the first top 1, the others 0). `allow_force_backward(i)` is Caffe's
AllowForceBackward: whether force_backward may ask for bottom i's gradient.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, register

FLT_MIN = float(np.finfo(np.float32).tiny)    # Caffe's floor under a probability before log
_NORMALIZATION = {0: "FULL", 1: "VALID", 2: "BATCH_SIZE", 3: "NONE"}   # LossParameter enum


def _split_axis(layer, blob, axis):
    """(outer, channels, inner) counts of `blob` around a canonical `axis`."""
    try:
        a = blob.canonical_axis(int(axis))
    except ValueError:
        raise layer.error(f"axis {axis} is out of range for a bottom of shape {blob.shape}") \
            from None
    return a, blob.count(0, a), blob.shape[a], blob.count(a + 1)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _labels(layer, label_blob, outer, inner):
    """Label values as ints, shape (outer, inner); Caffe casts the float values to int."""
    if label_blob.count() != outer * inner:
        raise layer.error(
            f"number of labels must match number of predictions: label count "
            f"{label_blob.count()} (label shape {label_blob.shape}), expected {outer * inner}; "
            "with axis 1 and predictions (N, C, H, W) the label count must be N*H*W")
    return label_blob.data.reshape(outer, inner).astype(np.int64)


def _check_loss_bottoms(layer, bottoms):
    """Caffe's LossLayer::Reshape: data and label have the same first dimension."""
    a, b = bottoms[0].shape, bottoms[1].shape
    if a[:1] != b[:1]:
        raise layer.error(f"the data and label should have the same first dimension: "
                          f"bottom shapes {a} and {b}")


@register("Softmax")
class Softmax(Layer):
    """y = exp(x) / sum(exp(x)) along softmax_param.axis (default 1)."""

    def reshape(self, bottoms, tops):
        self.axis = _split_axis(self, bottoms[0], self.param.softmax_param.axis)[0]
        tops[0].reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        tops[0].data[...] = _softmax(bottoms[0].data, self.axis)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            # From the top only (safe in place): dx = (dy - sum(dy * y, axis)) * y.
            y, dy = tops[0].data, tops[0].diff
            bottoms[0].diff[...] = (dy - (dy * y).sum(axis=self.axis, keepdims=True)) * y


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(Layer):
    """Mean (by loss_param.normalization) of -log softmax(x)[label] over the non-ignored labels.

    Bottoms: predictions (.., C, ..) with the classes on softmax_param.axis, and labels with
    one integer-valued float per prediction. Tops: the loss (), and optionally the softmax.
    """
    bottom_count = (2, 2)
    top_count = (1, 2)
    default_loss_weights = (1.0, 0.0)

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1            # Caffe's LossLayer: never force to the labels

    def setup(self, bottoms, tops):
        lp = self.param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        if lp.HasField("normalize") and not lp.HasField("normalization"):
            self.normalization = "VALID" if lp.normalize else "BATCH_SIZE"   # legacy flag
        else:
            self.normalization = _NORMALIZATION.get(int(lp.normalization))
            if self.normalization is None:
                raise self.error(f"unknown normalization {lp.normalization}")

    def reshape(self, bottoms, tops):
        _check_loss_bottoms(self, bottoms)
        self.axis, self.outer, self.channels, self.inner = _split_axis(
            self, bottoms[0], self.param.softmax_param.axis)
        _labels(self, bottoms[1], self.outer, self.inner)       # checks the count
        tops[0].reshape(())
        if len(tops) > 1:
            tops[1].reshape(bottoms[0].shape)

    def _normalizer(self, valid_count):
        n = {"FULL": self.outer * self.inner, "VALID": valid_count,
             "BATCH_SIZE": self.outer, "NONE": 1}[self.normalization]
        return max(1.0, float(n))

    def forward(self, bottoms, tops):
        prob = _softmax(bottoms[0].data, self.axis)
        self.prob = prob.reshape(self.outer, self.channels, self.inner)     # (outer, C, inner)
        labels = _labels(self, bottoms[1], self.outer, self.inner)          # (outer, inner)
        self.valid = (np.ones_like(labels, bool) if self.ignore_label is None
                      else labels != self.ignore_label)
        bad = self.valid & ((labels < 0) | (labels >= self.channels))
        if bad.any():
            raise ValueError(f"layer '{self.name}' ({self.type_name}): label "
                             f"{labels[bad][0]} is outside [0, {self.channels})")
        self.labels = np.where(self.valid, labels, 0)
        picked = np.take_along_axis(self.prob, self.labels[:, None, :], axis=1)[:, 0, :]
        loss = -np.log(np.maximum(picked, FLT_MIN))[self.valid].sum()
        self.normalizer = self._normalizer(int(self.valid.sum()))
        tops[0].data[...] = loss / self.normalizer
        if len(tops) > 1:
            tops[1].data[...] = prob

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            bottoms[1].diff[...] = 0        # labels are piecewise constant: no gradient
        if not propagate_down[0]:
            return
        grad = self.prob.copy()                                             # (outer, C, inner)
        np.put_along_axis(grad, self.labels[:, None, :],
                          np.take_along_axis(grad, self.labels[:, None, :], axis=1) - 1, axis=1)
        grad *= self.valid[:, None, :]
        loss_weight = float(tops[0].diff.reshape(-1)[0])
        bottoms[0].diff[...] = (grad * (loss_weight / self.normalizer)).reshape(bottoms[0].shape)


@register("EuclideanLoss")
class EuclideanLoss(Layer):
    """loss = sum((a - b)^2) / (2 N), N the first dimension of a."""
    bottom_count = (2, 2)
    default_loss_weights = (1.0,)

    def reshape(self, bottoms, tops):
        _check_loss_bottoms(self, bottoms)
        if bottoms[0].count(1) != bottoms[1].count(1):
            raise self.error(f"inputs must have the same dimension: bottom shapes "
                             f"{bottoms[0].shape} and {bottoms[1].shape}")
        tops[0].reshape(())

    def forward(self, bottoms, tops):
        self.delta = bottoms[0].data - bottoms[1].data.reshape(bottoms[0].shape)
        self.num = bottoms[0].shape[0] if bottoms[0].shape else 1
        tops[0].data[...] = (self.delta * self.delta).sum() / self.num / 2

    def backward(self, tops, propagate_down, bottoms):
        loss_weight = float(tops[0].diff.reshape(-1)[0])
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * loss_weight / self.num
                bottoms[i].diff[...] = (alpha * self.delta).reshape(bottoms[i].shape)


@register("Accuracy")
class Accuracy(Layer):
    """Fraction of the non-ignored labels whose class is among the top_k scores.

    A label counts as hit when fewer than top_k classes score strictly higher than it.
    The optional second top has one accuracy per class, shape (C,). No backward.
    """
    bottom_count = (2, 2)
    top_count = (1, 2)

    def allow_force_backward(self, bottom_index):
        return False

    def setup(self, bottoms, tops):
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None
        if self.top_k < 1:
            raise self.error(f"top_k must be at least 1, got {self.top_k}")

    def reshape(self, bottoms, tops):
        self.axis, self.outer, self.channels, self.inner = _split_axis(
            self, bottoms[0], self.param.accuracy_param.axis)
        if self.top_k > self.channels:
            raise self.error(f"top_k {self.top_k} must be less than or equal to the number "
                             f"of classes {self.channels}")
        _labels(self, bottoms[1], self.outer, self.inner)
        tops[0].reshape(())
        if len(tops) > 1:
            tops[1].reshape((self.channels,))

    def forward(self, bottoms, tops):
        scores = bottoms[0].data.reshape(self.outer, self.channels, self.inner)
        labels = _labels(self, bottoms[1], self.outer, self.inner)          # (outer, inner)
        valid = (np.ones_like(labels, bool) if self.ignore_label is None
                 else labels != self.ignore_label)
        bad = valid & ((labels < 0) | (labels >= self.channels))
        if bad.any():
            raise ValueError(f"layer '{self.name}' ({self.type_name}): label "
                             f"{labels[bad][0]} is outside [0, {self.channels})")
        safe = np.where(valid, labels, 0)
        true_score = np.take_along_axis(scores, safe[:, None, :], axis=1)   # (outer, 1, inner)
        better = (scores > true_score).sum(axis=1)                          # (outer, inner)
        hit = valid & (better < self.top_k)
        count = int(valid.sum())
        tops[0].data[...] = hit.sum() / count if count else 0.0
        if len(tops) > 1:
            per_label = np.bincount(safe[valid], minlength=self.channels)
            per_hit = np.bincount(safe[hit], minlength=self.channels)
            tops[1].data[...] = np.where(per_label > 0, per_hit / np.maximum(per_label, 1), 0)

    def backward(self, tops, propagate_down, bottoms):
        # Caffe has no backward here; accuracy is piecewise constant, so a gradient asked
        # for (force_backward) is zero.
        for down, b in zip(propagate_down, bottoms):
            if down:
                b.diff[...] = 0
