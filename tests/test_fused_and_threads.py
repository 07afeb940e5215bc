"""The fused transformer equals the grid path bit for bit, and every result is bit-identical
for any thread count (no races, no atomics, fixed reduction orders on the CPU)."""

import itertools

import numpy as np
import pytest

import stn
from conftest import DTYPES, MODES, PADDINGS, random_grid, random_theta

ALL_OPTIONS = list(itertools.product(MODES, PADDINGS, (False, True)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
@pytest.mark.parametrize("out_size", [None, (5, 11)])
def test_fused_equals_grid_path(rng, dtype, mode, padding, align, out_size):
    n, c, h, w = 3, 2, 7, 8
    ho, wo = out_size or (h, w)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    theta = random_theta(rng, n, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)

    grid = stn.affine_grid(theta, (n, c, ho, wo), align)
    expected = stn.grid_sample(x, grid, mode, padding, align)
    np.testing.assert_array_equal(stn.spatial_transform(x, theta, out_size, mode, padding, align), expected)

    grad_input, grad_grid = stn.grid_sample_backward(grad_output, x, grid, mode, padding, align)
    fused_input, fused_theta = stn.spatial_transform_backward(
        grad_output, x, theta, out_size, mode, padding, align)
    np.testing.assert_array_equal(fused_input, grad_input)
    np.testing.assert_array_equal(fused_theta, stn.affine_grid_backward(grad_grid, (n, c, ho, wo), align))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shared_theta_equals_repeated_theta(rng, dtype):
    n, c, h, w = 4, 2, 6, 5
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    theta = random_theta(rng, 1, dtype)[0]
    repeated = np.repeat(theta[None], n, axis=0)
    grad_output = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(stn.spatial_transform(x, theta), stn.spatial_transform(x, repeated))
    shared_input, shared_theta = stn.spatial_transform_backward(grad_output, x, theta)
    batched_input, batched_theta = stn.spatial_transform_backward(grad_output, x, repeated)
    np.testing.assert_array_equal(shared_input, batched_input)
    assert shared_theta.shape == (2, 3)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(shared_theta, batched_theta.sum(axis=0), rtol=rtol, atol=rtol)


@pytest.fixture
def restore_threads():
    before = stn.get_num_threads()
    yield
    stn.set_num_threads(before)


def run_everything(x, grid, theta, grad_output, mode, padding, align):
    out_size = grad_output.shape[2:]
    return [
        stn.affine_grid(theta, grad_output.shape, align),
        stn.affine_grid_backward(grid, grad_output.shape, align),
        stn.grid_sample(x, grid, mode, padding, align),
        *stn.grid_sample_backward(grad_output, x, grid, mode, padding, align),
        stn.spatial_transform(x, theta, out_size, mode, padding, align),
        *stn.spatial_transform_backward(grad_output, x, theta, out_size, mode, padding, align),
    ]


@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
@pytest.mark.parametrize("batch", (1, 3))
def test_bit_identical_across_thread_counts(rng, restore_threads, mode, padding, align, batch):
    # Upsampling (Ho > H) makes many output pixels add into each input pixel; Ho * N >= 64
    # rows, so every loop is split between threads (cpu_executor.h, kMinItemsToSplit).
    c, h, w, ho, wo = 3, 9, 7, 70, 19
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    grid = random_grid(rng, batch, ho, wo, h, w, align, np.float32)
    theta = random_theta(rng, batch, np.float32)
    grad_output = rng.standard_normal((batch, c, ho, wo)).astype(np.float32)
    results = {}
    for threads in (1, 2, 3, 5, 8):
        stn.set_num_threads(threads)
        assert stn.get_num_threads() == threads
        results[threads] = run_everything(x, grid, theta, grad_output, mode, padding, align)
    for threads, arrays in results.items():
        for single, multi in zip(results[1], arrays):
            assert single.tobytes() == multi.tobytes(), f"{threads} threads differ from 1"


def test_thread_count_changed_during_fused_backward(rng, restore_threads):
    # Another thread calling set_num_threads while the fused backward runs: each call reads
    # the count once, so its images stay whole bands and every image's theta partials are
    # summed (simd_scatter.cpp image_done). Results do not depend on the count, so every call
    # must give the single-threaded bits whatever the count it saw.
    import threading

    batch, h, w, ho, wo = 4, 20, 20, 12, 12
    x = rng.standard_normal((batch, 1, h, w)).astype(np.float32)
    theta = random_theta(rng, batch, np.float32)
    grad_output = rng.standard_normal((batch, 1, ho, wo)).astype(np.float32)
    stn.set_num_threads(1)
    expected = stn.spatial_transform_backward(grad_output, x, theta, (ho, wo))
    stop = threading.Event()

    def toggle():
        counts = itertools.cycle((2, 8, 3, 16))
        while not stop.is_set():
            stn.set_num_threads(next(counts))

    toggler = threading.Thread(target=toggle)
    toggler.start()
    results = []  # kept, so that no result is written over memory that held a right one
    try:
        for _ in range(300):
            results.append(stn.spatial_transform_backward(grad_output, x, theta, (ho, wo)))
    finally:
        stop.set()
        toggler.join()
    for grad_input, grad_theta in results:
        assert grad_input.tobytes() == expected[0].tobytes()
        assert grad_theta.tobytes() == expected[1].tobytes()
