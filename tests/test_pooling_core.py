"""stn._core pooling entry points (csrc/bindings/pooling_bindings.cpp): results go into the
caller's arrays, Caffe's MAX rule at its edges (-FLT_MAX, -inf, NaN, ties), and bad
arguments raise instead of writing out of bounds."""

import numpy as np
import pytest

from stn import _core

WINDOW = (2, 2, 2, 2, 0, 0)  # kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w


def max_pool(x, window=WINDOW, out_hw=None):
    out_hw = out_hw or (x.shape[2] // 2, x.shape[3] // 2)
    best = np.full(x.shape[:2] + out_hw, np.nan, x.dtype)
    argmax = np.full(best.shape, -7, np.int32)
    _core.max_pool(x, window, best, argmax)
    return best, argmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_keeps_the_first_strict_maximum_and_skips_what_never_beats_minus_flt_max(dtype):
    lowest = np.finfo(np.float32).min
    windows = [[1.0, 3.0, 3.0, 2.0],          # tie: the first 3 wins (offset 1)
               [np.nan, 0.5, np.nan, 0.5],    # NaN never wins; first 0.5 (offset 1)
               [-np.inf, -np.inf, -np.inf, -np.inf],
               [lowest, lowest, -np.inf, np.nan],
               [-0.0, 0.0, -1.0, -2.0]]       # 0.0 does not beat -0.0
    x = np.array(windows, dtype).reshape(1, len(windows), 2, 2)
    best, argmax = max_pool(x)
    assert argmax.ravel().tolist() == [1, 1, -1, -1, 0]
    assert best.ravel()[:2].tolist() == [3.0, 0.5]
    assert (best.ravel()[2:4] == dtype(lowest)).all()
    assert np.signbit(best.ravel()[4])


def test_backward_routes_each_gradient_to_its_argmax():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    best, argmax = max_pool(x)
    grad_out = rng.standard_normal(best.shape)
    grad_in = np.full(x.shape, np.nan)
    _core.max_pool_backward(grad_out, argmax, WINDOW, grad_in)
    expected = np.zeros_like(x)
    for (n, c, oh, ow), k in np.ndenumerate(argmax):
        expected[n, c, 2 * oh + k // 2, 2 * ow + k % 2] += grad_out[n, c, oh, ow]
    np.testing.assert_array_equal(grad_in, expected)


@pytest.mark.parametrize("bad", [4, -2, 2 ** 30])
def test_backward_rejects_an_argmax_outside_its_window(bad):
    x = np.zeros((1, 1, 4, 4))
    best, argmax = max_pool(x)
    argmax[0, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=f"argmax holds {bad} at output"):
        _core.max_pool_backward(best, argmax, WINDOW, np.zeros_like(x))


def test_backward_rejects_an_offset_in_the_padding():
    # 3x3 input, 2x2 windows, stride 2, ceil mode: the last window hangs over the edge, so
    # offset 3 (its bottom-right cell) lies outside the image.
    x = np.zeros((1, 1, 3, 3))
    best, argmax = max_pool(x, out_hw=(2, 2))
    assert argmax[0, 0, 1, 1] == 0
    argmax[0, 0, 1, 1] = 3
    with pytest.raises(ValueError, match="not -1 nor the offset of an input cell"):
        _core.max_pool_backward(best, argmax, WINDOW, np.zeros_like(x))


@pytest.mark.parametrize("output_shape,match", [
    ((1, 2, 2, 2), "the input's N and C"),
    ((1, 1, 3, 2), "windows past the padded input"),
    ((1, 1, 2), r"output must be \(N, C, OH, OW\)"),
])
def test_outputs_of_the_wrong_shape_raise(output_shape, match):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match=match):
        _core.ave_pool(x, WINDOW, np.zeros(output_shape))


def test_read_only_or_mismatched_outputs_raise():
    x = np.zeros((1, 1, 4, 4))
    best = np.zeros((1, 1, 2, 2))
    best.flags.writeable = False
    with pytest.raises(ValueError, match="output must be writeable"):
        _core.max_pool(x, WINDOW, best, np.zeros(best.shape, np.int32))
    with pytest.raises(ValueError, match="must have one shape"):
        _core.max_pool(x, WINDOW, np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 1), np.int32))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.max_pool(x, WINDOW, np.zeros((1, 1, 2, 2), np.float32), np.zeros(best.shape, np.int32))
