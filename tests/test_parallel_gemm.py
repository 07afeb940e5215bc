"""stn.parallel_gemm.matmul against numpy's matmul: same products for 2-D and stacked 3-D
operands of any strides, the same bits for any thread count, overlapping outputs and bad
shapes handled; stn.blas_threads leaves the caller's BLAS thread count as it found it."""

import numpy as np
import pytest

import stn
from stn import blas_threads, parallel_gemm


@pytest.fixture(params=[1, 2, 3])
def threads(request):
    previous = stn.get_num_threads()
    stn.set_num_threads(request.param)
    yield request.param
    stn.set_num_threads(previous)


def operands(rng, a_shape, b_shape, dtype, transpose_a=False, transpose_b=False):
    """Random a and b of the given shapes; transposed views where asked (strided operands)."""
    def make(shape, transposed):
        if not transposed:
            return rng.standard_normal(shape).astype(dtype)
        swapped = shape[:-2] + (shape[-1], shape[-2])
        return np.swapaxes(rng.standard_normal(swapped).astype(dtype), -1, -2)
    return make(a_shape, transpose_a), make(b_shape, transpose_b)


CASES = [
    ((50, 500), (500, 4096)),      # the example's conv2 forward
    ((500, 50), (50, 1000)),       # a columns' gradient: more rows than columns
    ((20, 3000), (3000, 25)),      # a weight gradient: long reduction, narrow output
    ((3, 8, 200), (3, 200, 700)),  # grouped convolution
    ((4, 5), (5, 6)),              # below MIN_FLOPS: one plain call
]


@pytest.mark.parametrize("a_shape,b_shape", CASES)
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy(a_shape, b_shape, transpose_a, transpose_b, dtype, threads, rng):
    a, b = operands(rng, a_shape, b_shape, dtype, transpose_a, transpose_b)
    out = np.full(a_shape[:-1] + b_shape[-1:], np.nan, dtype)
    assert parallel_gemm.matmul(a, b, out) is out
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.matmul(a.astype(np.float64), b.astype(np.float64)),
                               rtol=tol, atol=tol * np.sqrt(a_shape[-1]))


def test_same_bits_for_any_thread_count(rng):
    a, b = operands(rng, (64, 800), (800, 500), np.float32)
    results = []
    for count in (1, 2, 3):
        stn.set_num_threads(count)
        results.append(parallel_gemm.matmul(a, b, np.empty((64, 500), np.float32)))
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_writes_into_a_strided_out(threads, rng):
    a, b = operands(rng, (40, 300), (300, 600), np.float64)
    target = np.zeros((600, 40)).T           # (40, 600), column-major
    parallel_gemm.matmul(a, b, target)
    # Entries that cancel to near 0 carry the sum's rounding, not their own: an absolute
    # tolerance scaled by the reduction length, as in test_matches_numpy.
    np.testing.assert_allclose(target, a @ b, rtol=1e-12, atol=1e-12 * np.sqrt(300))


def test_an_out_that_overlaps_an_input_gives_the_right_product(threads, rng):
    a = rng.standard_normal((300, 300))
    b = rng.standard_normal((300, 300))
    expected = a @ b
    parallel_gemm.matmul(a, b, a)            # out is a
    np.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-12 * np.sqrt(300))


@pytest.mark.parametrize("a_shape,b_shape,out_shape,match", [
    ((4, 5), (6, 7), (4, 7), "do not give out"),
    ((4, 5), (5, 7), (4, 6), "do not give out"),
    ((2, 4, 5), (3, 5, 7), (2, 4, 7), "do not give out"),
    ((4, 5), (1, 5, 7), (4, 7), "all be 2-D or all 3-D"),
    ((5,), (5,), (1,), "all be 2-D or all 3-D"),
])
def test_bad_shapes_raise(a_shape, b_shape, out_shape, match):
    with pytest.raises(ValueError, match=match):
        parallel_gemm.matmul(np.zeros(a_shape), np.zeros(b_shape), np.zeros(out_shape))


def test_an_error_inside_a_slice_reaches_the_caller(threads, rng):
    a, b = operands(rng, (64, 800), (800, 500), np.float64)
    out = np.empty((64, 500), np.int64)      # numpy refuses to cast float64 into it
    with pytest.raises(TypeError):
        parallel_gemm.matmul(a, b, out)


@pytest.mark.skipif(not blas_threads.available, reason="numpy's BLAS is not OpenBLAS >= 0.3.27")
def test_one_blas_thread_restores_the_previous_count():
    set_local = blas_threads._set_local_threads
    previous = set_local(3)
    try:
        with blas_threads.one_blas_thread():
            assert set_local(1) == 1
        assert set_local(3) == 3
    finally:
        set_local(previous)
