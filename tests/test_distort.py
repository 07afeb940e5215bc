"""The distortion generators: deterministic for a seed, within their ranges, and doing what
their parameters say, measured on the image through its moments (centroid and covariance)."""

import numpy as np
import pytest

from stn.data import CANVAS, VARIANTS, distort
from stn.data.distort import homography


def stroke_digits(count=6, seed=0):
    """Anisotropic 'digits': a thick slanted bar plus a blob, off-centre, uint8 (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64)
    images = []
    for _ in range(count):
        angle = rng.uniform(0, np.pi)
        u = (cols - 13.5) * np.cos(angle) + (rows - 13.5) * np.sin(angle)
        v = -(cols - 13.5) * np.sin(angle) + (rows - 13.5) * np.cos(angle)
        bar = np.exp(-(u / 7.0) ** 2 - (v / 1.8) ** 2)
        blob = np.exp(-((cols - 9) ** 2 + (rows - 17) ** 2) / 6.0)
        images.append(np.clip(255 * (bar + 0.7 * blob), 0, 255))
    return np.array(images, np.uint8)


def moments(image):
    """(centroid (x, y) in pixels from the image centre, 2x2 covariance) of an (S, S) image."""
    size = image.shape[0]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64) - (size - 1) / 2
    mass = image.sum()
    mean = np.array([(image * cols).sum(), (image * rows).sum()]) / mass
    dx, dy = cols - mean[0], rows - mean[1]
    cov = np.array([[(image * dx * dx).sum(), (image * dx * dy).sum()],
                    [(image * dx * dy).sum(), (image * dy * dy).sum()]]) / mass
    return mean, cov


def rotation(degrees):
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_ranges_and_determinism(variant):
    digits = stroke_digits()
    first = distort(variant, digits, seed=3)
    assert first.shape == (6, 1, CANVAS[variant], CANVAS[variant]) and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1 and first.max() > 0.5
    np.testing.assert_array_equal(first, distort(variant, digits, seed=3))
    assert not np.array_equal(first, distort(variant, digits, seed=4))
    floats = distort(variant, digits.astype(np.float32) / 255, seed=3)  # float input in [0, 1]
    np.testing.assert_allclose(floats, first, atol=1e-6)


def test_parameter_ranges():
    digits = np.zeros((2000, 28, 28), np.uint8)
    _, r = distort("R", digits, seed=0, return_params=True)
    assert -90 <= r["angle"].min() < -85 and 85 < r["angle"].max() <= 90
    _, rts = distort("RTS", digits, seed=0, return_params=True)
    assert -45 <= rts["angle"].min() < -43 and 43 < rts["angle"].max() <= 45
    assert 0.7 <= rts["scale"].min() < 0.72 and 1.18 < rts["scale"].max() <= 1.2
    room = (42 - 28 * rts["scale"]) / 2
    assert (np.abs(rts["shift"]) <= room[:, None] + 1e-12).all()
    _, p = distort("P", digits, seed=0, return_params=True)
    assert 0.75 <= p["scale"].min() and p["scale"].max() <= 1.0
    assert abs(p["corner_shift"].std() - 5.0) < 0.2 and abs(p["corner_shift"].mean()) < 0.2
    _, c = distort("cluttered", digits, seed=0, return_params=True)
    assert c["position"].min() >= 0 and c["position"].max() <= 60 - 28


def test_rotation_is_measured_in_the_moments():
    digits = stroke_digits()
    out, params = distort("R", digits, seed=1, return_params=True)
    for digit, image, angle in zip(digits, out[:, 0], params["angle"]):
        mean_in, cov_in = moments(digit.astype(np.float64))
        mean_out, cov_out = moments(image.astype(np.float64))
        r = rotation(angle)
        # content at digit offset q lands at R(angle) q: covariance R C R^T (bilinear
        # resampling blurs a little, hence the tolerance)
        np.testing.assert_allclose(cov_out, r @ cov_in @ r.T, atol=0.06 * np.trace(cov_in))
        np.testing.assert_allclose(mean_out, r @ mean_in, atol=0.3)
        wrong = rotation(-angle)
        if abs(angle) > 20:
            assert np.abs(cov_out - wrong @ cov_in @ wrong.T).max() > 0.06 * np.trace(cov_in)


def test_rts_rotation_scale_and_position_are_measured_in_the_moments():
    digits = stroke_digits()
    out, params = distort("RTS", digits, seed=2, return_params=True)
    for i, (digit, image) in enumerate(zip(digits, out[:, 0])):
        angle, scale, shift = params["angle"][i], params["scale"][i], params["shift"][i]
        mean_in, cov_in = moments(digit.astype(np.float64))
        mean_out, cov_out = moments(image.astype(np.float64))
        a = scale * rotation(angle)  # canvas offset from the digit's centre = s R(angle) q
        np.testing.assert_allclose(cov_out, a @ cov_in @ a.T, atol=0.06 * scale**2 * np.trace(cov_in))
        np.testing.assert_allclose(mean_out, shift + a @ mean_in, atol=0.4)
        measured_scale = np.sqrt(np.trace(cov_out) / np.trace(cov_in))
        assert abs(measured_scale - scale) < 0.04


def test_projective_maps_the_moved_corners_back_to_the_digit_corners():
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    moved = 0.8 * corners + np.array([[0.1, -0.05], [0.02, 0.1], [-0.1, 0.0], [0.05, 0.07]])
    h = homography(moved, corners)
    for (x, y), target in zip(moved, corners):
        w = h[6] * x + h[7] * y + 1
        np.testing.assert_allclose([(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w],
                                   target, atol=1e-12)


def test_elastic_displacements_are_smooth_and_a_few_pixels():
    from stn.data.elastic import elastic_grid
    grid = elastic_grid(np.random.default_rng(0), 50, 28)
    base = (2.0 * np.arange(28) + 1.0) / 28 - 1.0
    dx = (grid[..., 0] - base[None, None, :]) * 14   # pixels
    magnitude = np.abs(dx).mean()
    assert 0.5 < magnitude < 6
    # smooth: neighbouring pixels move almost together
    assert np.abs(np.diff(dx, axis=2)).mean() < 0.2 * magnitude


def test_cluttered_holds_the_digit_where_it_says():
    digits = stroke_digits(3)
    out, params = distort("cluttered", digits, seed=5, return_params=True)
    for digit, image, (r, c) in zip(digits, out[:, 0], params["position"]):
        window = image[r:r + 28, c:c + 28]
        expected = np.minimum(digit / 255.0, 1.0)
        assert (window >= expected - 1e-6).all()  # clutter only adds, then values clip at 1
        outside = image.copy()
        outside[r:r + 28, c:c + 28] = 0
        assert outside.max() > 0  # some clutter lies outside the digit's square


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant must be one of"):
        distort("RS", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"images must be \(N, 28, 28\), got shape \(1, 32, 32\)"):
        distort("R", np.zeros((1, 32, 32), np.uint8))
