"""Regression tests for edge cases a review found: images wider than float32 can count,
reflection of points millions of periods away, and nearest-mode gradients next to Inf."""

from fractions import Fraction

import numpy as np
import pytest

import stn
from conftest import DTYPES, MODES


def test_bicubic_border_on_an_image_wider_than_float32_can_count():
    # float32(2^24 + 3) rounds up to 2^24 + 4 = W: a tap index computed through float would be
    # W, one past the end. Tap padding is integer arithmetic, so the edge pixel is read.
    width = 2**24 + 4
    x = np.ones((1, 1, 1, width), np.float32)
    grid = np.array([[[[1.0, 0.0]]]], np.float32)  # the right edge, align_corners=True
    assert stn.grid_sample(x, grid, "bicubic", "border", True)[0, 0, 0, 0] == 1.0
    grad_input, _ = stn.grid_sample_backward(np.ones((1, 1, 1, 1), np.float32), x, grid,
                                             "bicubic", "border", True)
    assert grad_input.sum() == 1.0 and grad_input[0, 0, 0, -1] == 1.0


def exact_reflection(pixel, size, align_corners):
    """Reflect a pixel coordinate into the image with rational arithmetic (no rounding)."""
    low, high = (Fraction(0), Fraction(size - 1)) if align_corners else (Fraction(-1, 2), Fraction(size) - Fraction(1, 2))
    span = high - low
    distance = abs(Fraction(float(pixel)) - low)
    flips, extra = divmod(distance, span)
    return low + extra if flips % 2 == 0 else high - extra


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("align_corners", (False, True))
def test_reflection_of_far_points_is_exact(dtype, align_corners):
    width = 100
    ramp = np.arange(width, dtype=dtype).reshape(1, 1, 1, width)  # value = column
    rng = np.random.default_rng(7)
    exponent_limit = 30 if dtype == np.float32 else 60
    pixels = np.ldexp(rng.uniform(1, 2, 300), rng.integers(20, exponent_limit, 300)).astype(dtype)
    pixels *= rng.choice([-1, 1], 300).astype(dtype)
    # The normalized grid value whose unnormalized coordinate is `pixels`, rounded to dtype;
    # recompute the pixel the kernel will see from that grid value, exactly as it does.
    grid_x = (pixels * 2 / (width - 1) - 1 if align_corners else (2 * pixels + 1) / width - 1).astype(dtype)
    seen = (((grid_x + 1) / 2) * (width - 1) if align_corners else ((grid_x + 1) * width - 1) / 2).astype(dtype)
    # Reflection about the outer edges can land in the half pixel beyond a centre: clip.
    expected = np.clip([float(exact_reflection(p, width, align_corners)) for p in seen], 0, width - 1)
    grid = np.zeros((1, 1, len(grid_x), 2), dtype)
    grid[0, 0, :, 0] = grid_x
    out = stn.grid_sample(ramp, grid, "bilinear", "reflection", align_corners)[0, 0, 0]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize("align_corners", (False, True))
def test_bicubic_reflection_of_far_points_matches_torch(align_corners):
    torch = pytest.importorskip("torch")
    width = 5
    x = np.random.default_rng(3).standard_normal((1, 1, 1, width))
    pixels = np.array([3e12 + 0.3, -1e15 - 0.7, 2.0**40 + 7.3, 123456.25])
    grid_x = pixels * 2 / (width - 1) - 1 if align_corners else (2 * pixels + 1) / width - 1
    grid = np.zeros((1, 1, len(pixels), 2))
    grid[0, 0, :, 0] = grid_x
    expected = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), mode="bicubic",
                                               padding_mode="reflection", align_corners=align_corners)
    np.testing.assert_allclose(stn.grid_sample(x, grid, "bicubic", "reflection", align_corners),
                               expected.numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nearest_gradients_are_zero_next_to_infinite_values(dtype):
    x = np.ones((1, 1, 3, 3), dtype)
    x[0, 0, 1, 1] = np.inf
    grid = np.array([[[[0.1, -0.05]]]], dtype)
    grad_output = np.array([[[[np.inf]]]], dtype)
    _, grad_grid = stn.grid_sample_backward(grad_output, x, grid, "nearest")
    assert (grad_grid == 0).all()
    theta = np.array([[[0.9, 0.1, 0.05], [-0.1, 1.1, 0.02]]], dtype)
    _, grad_theta = stn.spatial_transform_backward(np.ones((1, 1, 3, 3), dtype), x, theta, mode="nearest")
    assert (grad_theta == 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_finite_grid_values_that_overflow_to_infinite_pixels(mode):
    # float32 max times W / 2 overflows: the pixel coordinate is +-Inf though the grid value
    # is finite. Border and reflection read the edge, zeros reads 0, nothing is NaN.
    width = 1000
    x = np.linspace(1, 2, width, dtype=np.float32).reshape(1, 1, 1, width)
    big = np.finfo(np.float32).max
    grid = np.array([[[[big, 0.0], [-big, 0.0]]]], np.float32)
    for padding, expected in (("zeros", [0, 0]), ("border", [2, 1]), ("reflection", [2, 1])):
        out = stn.grid_sample(x, grid, mode, padding, True)[0, 0, 0]
        np.testing.assert_allclose(out, expected, rtol=1e-6)
