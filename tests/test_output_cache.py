"""Large outputs live in memory stn recycles (csrc/cpu/buffer_cache.h): freed arrays give
their memory back, the next call of a similar size reuses it, and the budget bounds what
idle memory is kept. Results never depend on it: a recycled block is written in full."""

import gc

import numpy as np
import pytest

import stn
from stn import _core

MB = 2**20


@pytest.fixture
def budget():
    # Starts from an empty cache: idle blocks left by earlier tests (two of the same size
    # make the best fit alternate between them) must not decide which block a test gets.
    previous = stn.get_output_cache_bytes()
    stn.set_output_cache_bytes(0)
    yield
    stn.set_output_cache_bytes(previous)


def warp(x):
    theta = np.tile(np.float32([[0.9, -0.2, 0.05], [0.2, 0.9, -0.1]]), (len(x), 1, 1))
    return stn.spatial_transform(x, theta)


def test_recycled_outputs_are_fresh_writable_arrays(rng, budget):
    stn.set_output_cache_bytes(64 * MB)
    x = rng.random((2, 3, 256, 256), dtype=np.float32)   # 1.5 MiB out: cached
    expected = warp(x).copy()
    first = warp(x)
    address = first.__array_interface__["data"][0]
    del first
    gc.collect()
    assert _core.output_cache_idle_bytes() >= x.nbytes
    second = warp(x)            # the same memory again, written in full
    assert second.__array_interface__["data"][0] == address
    assert second.flags.writeable and second.flags.c_contiguous
    np.testing.assert_array_equal(second, expected)
    second[...] = 7             # the caller owns it
    third = warp(x)             # a live array's memory is never handed out twice
    assert third.__array_interface__["data"][0] != address
    np.testing.assert_array_equal(third, expected)
    assert (second == 7).all()


def test_backward_outputs_reuse_memory_with_the_same_results(rng, budget):
    stn.set_output_cache_bytes(64 * MB)
    x = rng.random((2, 4, 200, 200), dtype=np.float32)
    theta = np.tile(np.float32([[0.8, 0.1, 0.0], [-0.1, 0.8, 0.1]]), (2, 1, 1))
    g = rng.standard_normal(x.shape, dtype=np.float32)
    reference = stn.spatial_transform_backward(g, x, theta)
    for _ in range(3):
        grad_input, grad_theta = stn.spatial_transform_backward(g, x, theta)
        np.testing.assert_array_equal(grad_input, reference[0])
        np.testing.assert_array_equal(grad_theta, reference[1])
        del grad_input


def test_budget_bounds_idle_memory(rng, budget):
    x = rng.random((1, 4, 256, 256), dtype=np.float32)  # 1 MiB outputs
    stn.set_output_cache_bytes(0)
    assert _core.output_cache_idle_bytes() == 0
    outputs = [warp(x) for _ in range(4)]
    del outputs
    gc.collect()
    assert _core.output_cache_idle_bytes() == 0        # 0: nothing kept
    stn.set_output_cache_bytes(2 * MB + 1)
    outputs = [warp(x) for _ in range(4)]
    del outputs
    gc.collect()
    assert 0 < _core.output_cache_idle_bytes() <= 2 * MB + 1
    stn.set_output_cache_bytes(0)                      # lowering the budget frees at once
    assert _core.output_cache_idle_bytes() == 0


@pytest.mark.parametrize("value,error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_budget(value, error, budget):
    with pytest.raises(error, match="set_output_cache_bytes: n must be"):
        stn.set_output_cache_bytes(value)
