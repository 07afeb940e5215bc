"""The fast kernels against the slow numpy reference (tests/reference.py), every mode,
padding, align_corners and dtype, on odd shapes: forward, grad_input and grad_grid."""

import itertools

import numpy as np
import pytest

import reference
import stn
from conftest import DTYPES, MODES, PADDINGS, SHAPES, random_grid, random_theta, tolerance

ALL_OPTIONS = list(itertools.product(MODES, PADDINGS, (False, True)))


def assert_close(actual, expected, dtype, scale=1.0):
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_grid_sample_matches_reference(rng, shape, dtype, mode, padding, align):
    n, c, h, w, ho, wo = shape
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    grid = random_grid(rng, n, ho, wo, h, w, align, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)

    out = stn.grid_sample(x, grid, mode, padding, align)
    assert out.dtype == dtype and out.shape == (n, c, ho, wo)
    assert_close(out, reference.grid_sample(x, grid, mode, padding, align), dtype)

    grad_input, grad_grid = stn.grid_sample_backward(grad_output, x, grid, mode, padding, align)
    ref_input, ref_grid = reference.grid_sample_backward(grad_output, x, grid, mode, padding, align)
    assert grad_input.dtype == dtype and grad_grid.dtype == dtype
    assert_close(grad_input, ref_input, dtype)
    # grad_grid sums over channels and taps, scaled by up to size/2 from unnormalize.
    assert_close(grad_grid, ref_grid, dtype, scale=c * max(h, w))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("align", (False, True))
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 2, 1, 4), (1, 1, 6, 1)])
def test_affine_grid_matches_reference(rng, dtype, align, size):
    theta = random_theta(rng, size[0], dtype)
    grid = stn.affine_grid(theta, size, align)
    assert grid.dtype == dtype and grid.shape == (size[0], size[2], size[3], 2)
    assert_close(grid, reference.affine_grid(theta, size, align), dtype)

    grad_grid = rng.standard_normal(grid.shape).astype(dtype)
    grad_theta = stn.affine_grid_backward(grad_grid, size, align)
    assert grad_theta.dtype == dtype and grad_theta.shape == theta.shape
    assert_close(grad_theta, reference.affine_grid_backward(grad_grid, size, align), dtype,
                 scale=size[2] * size[3])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_spatial_transform_matches_reference(rng, dtype, mode, padding, align):
    n, c, h, w, ho, wo = 2, 3, 6, 7, 5, 4
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    theta = random_theta(rng, n, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)
    # The oracle samples where the fused kernel does: at stn.affine_grid's points (checked
    # against the oracle above), so a float32 ulp cannot move a point across a kink.
    ref_grid = stn.affine_grid(theta, (n, c, ho, wo), align)

    out = stn.spatial_transform(x, theta, (ho, wo), mode, padding, align)
    assert_close(out, reference.grid_sample(x, ref_grid, mode, padding, align), dtype)

    grad_input, grad_theta = stn.spatial_transform_backward(
        grad_output, x, theta, (ho, wo), mode, padding, align)
    ref_input, ref_grad_grid = reference.grid_sample_backward(
        grad_output, x, ref_grid, mode, padding, align)
    ref_theta = reference.affine_grid_backward(ref_grad_grid, (n, c, ho, wo), align)
    assert_close(grad_input, ref_input, dtype)
    assert_close(grad_theta, ref_theta, dtype, scale=c * ho * wo * max(h, w))
