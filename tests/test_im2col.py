"""stn._core.im2col / col2im (csrc/cpu/im2col.cpp) against the plain loops of
im2col_reference.py: equal to the last bit, for any thread count, with bad arguments
rejected by a ValueError or TypeError instead of a crash."""

import numpy as np
import pytest

import im2col_reference as reference
import stn
from stn import _core

# (N, C, H, W), (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
GEOMETRIES = [
    ((2, 3, 6, 5), (3, 3, 1, 1, 0, 0, 1, 1)),
    ((1, 1, 7, 7), (5, 5, 1, 1, 0, 0, 1, 1)),          # the example's 1-channel conv
    ((2, 4, 7, 8), (3, 2, 2, 3, 1, 2, 1, 1)),          # strides and pads differ per axis
    ((1, 2, 9, 9), (3, 3, 1, 2, 2, 0, 2, 3)),          # dilation
    ((3, 2, 4, 5), (1, 1, 1, 1, 0, 0, 1, 1)),          # 1x1 kernel
    ((1, 1, 1, 1), (3, 3, 1, 1, 1, 1, 1, 1)),          # one pixel, all-padding taps
    ((2, 1, 3, 4), (2, 4, 3, 1, 3, 0, 1, 1)),          # pad larger than the stride
    ((1, 3, 5, 2), (5, 2, 1, 1, 0, 0, 1, 1)),          # kernel as large as the image
]


def random_geometries(count, seed=0):
    """More geometries, drawn until `count` of them fit their padded image."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        shape = tuple(int(v) for v in rng.integers(1, 4, 2)) + tuple(
            int(v) for v in rng.integers(1, 10, 2))
        k, s, p, d = (tuple(int(v) for v in rng.integers(lo, hi, 2))
                      for lo, hi in ((1, 5), (1, 4), (0, 4), (1, 3)))
        window = (*k, *s, *p, *d)
        if all(reference.out_size(shape[2 + a], k[a], s[a], p[a], d[a]) >= 1 for a in (0, 1)):
            found.append((shape, window))
    return found


@pytest.mark.parametrize("shape,window", GEOMETRIES + random_geometries(40))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_im2col_and_col2im_equal_the_reference(shape, window, dtype, threads, rng):
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        image = rng.standard_normal(shape).astype(dtype)
        columns = np.full(reference.columns_shape(shape, window), np.nan, dtype)
        _core.im2col(image, window, columns)
        np.testing.assert_array_equal(columns, reference.im2col(image, window))

        taps = rng.standard_normal(columns.shape).astype(dtype)
        summed = np.full(shape, np.nan, dtype)
        _core.col2im(taps, window, summed)
        np.testing.assert_array_equal(summed, reference.col2im(taps, shape, window))
    finally:
        stn.set_num_threads(previous)


def test_col2im_is_the_adjoint_of_im2col(rng):
    """<im2col(x), y> == <x, col2im(y)> for any x and y."""
    shape, window = (2, 3, 8, 7), (3, 2, 2, 1, 1, 2, 2, 1)
    image = rng.standard_normal(shape)
    columns = np.empty(reference.columns_shape(shape, window))
    _core.im2col(image, window, columns)
    taps = rng.standard_normal(columns.shape)
    summed = np.empty(shape)
    _core.col2im(taps, window, summed)
    assert np.isclose((columns * taps).sum(), (image * summed).sum(), rtol=1e-12)


WINDOW = (3, 3, 1, 1, 0, 0, 1, 1)


@pytest.mark.parametrize("image,window,columns,error,match", [
    (np.zeros((1, 1, 5, 5)), WINDOW, np.zeros((9, 8)), ValueError, r"columns must have shape \(9, 9\)"),
    (np.zeros((1, 5, 5)), WINDOW, np.zeros((9, 9)), ValueError, r"image must be \(N, C, H, W\)"),
    (np.zeros((1, 1, 2, 5)), WINDOW, np.zeros((9, 3)), ValueError, "kernel extent is larger"),
    (np.zeros((1, 1, 5, 5)), (3, 3, 0, 1, 0, 0, 1, 1), np.zeros((9, 9)), ValueError, "stride"),
    (np.zeros((1, 1, 5, 5)), (3, 3, 1, 1, -1, 0, 1, 1), np.zeros((9, 9)), ValueError, "pad"),
    (np.zeros((1, 1, 5, 5)), WINDOW, np.zeros((9, 9), np.float32), TypeError, "incompatible function arguments"),
    (np.zeros((1, 1, 5, 5)), WINDOW, np.zeros((9, 18))[:, ::2], TypeError, "incompatible function arguments"),
])
def test_bad_arguments_raise(image, window, columns, error, match):
    with pytest.raises(error, match=match):
        _core.im2col(image, window, columns)
    with pytest.raises(error, match=match):
        _core.col2im(columns, window, image)


def test_read_only_or_overlapping_outputs_raise():
    image = np.zeros((1, 1, 5, 5))
    columns = np.zeros((9, 9))
    columns.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.im2col(image, WINDOW, columns)
    shared = np.zeros(9 * 9 + 16)
    with pytest.raises(ValueError, match="share memory"):
        _core.im2col(shared[:25].reshape(1, 1, 5, 5), WINDOW, shared[16:97].reshape(9, 9))
