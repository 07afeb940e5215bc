"""Slow, plain reference for the Convolution layer's im2col and col2im (csrc/cpu/im2col.h),
written from the definition with one Python loop per index. Test oracle only.

image is (N, C, H, W); columns is (C * kh * kw, N * OH * OW), row (c * kh + i) * kw + j,
column (n * OH + oy) * OW + ox, holding image[n, c, oy * sh - ph + i * dh, ox * sw - pw + j * dw]
(0 in the padding). col2im is its adjoint: every column entry is added back to the pixel it
was read from, in the loop order below, so for each pixel the taps arrive in (i, j) order.
"""

import itertools

import numpy as np


def out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _taps(shape, window):
    """Yields (column row, column index, (n, c, h, w) or None in the padding)."""
    n_images, channels, height, width = shape
    kh, kw, sh, sw, ph, pw, dh, dw = window
    oh, ow = out_size(height, kh, sh, ph, dh), out_size(width, kw, sw, pw, dw)
    for c, i, j, n, oy, ox in itertools.product(range(channels), range(kh), range(kw),
                                                range(n_images), range(oh), range(ow)):
        h, w = oy * sh - ph + i * dh, ox * sw - pw + j * dw
        inside = 0 <= h < height and 0 <= w < width
        yield (c * kh + i) * kw + j, (n * oh + oy) * ow + ox, (n, c, h, w) if inside else None


def columns_shape(shape, window):
    n_images, channels, height, width = shape
    kh, kw, sh, sw, ph, pw, dh, dw = window
    return (channels * kh * kw,
            n_images * out_size(height, kh, sh, ph, dh) * out_size(width, kw, sw, pw, dw))


def im2col(image, window):
    columns = np.zeros(columns_shape(image.shape, window), image.dtype)
    for row, column, pixel in _taps(image.shape, window):
        if pixel is not None:
            columns[row, column] = image[pixel]
    return columns


def col2im(columns, image_shape, window):
    image = np.zeros(image_shape, columns.dtype)
    for row, column, pixel in _taps(image_shape, window):
        if pixel is not None:
            image[pixel] += columns[row, column]
    return image
