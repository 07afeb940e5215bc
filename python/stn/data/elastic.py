"""Elastic distortion fields (Simard, Steinkraus and Platt 2003), as sampling grids.

Each image gets a displacement field: every pixel's (dx, dy) uniform in [-1, 1], smoothed by
a Gaussian of `sigma` pixels (mirror padding at the edges) and scaled by `alpha` pixels. The
grid reads the input at (pixel + displacement), in stn's normalized coordinates
(align_corners=False: one pixel is 2 / size).
"""

from __future__ import annotations

import numpy as np

ALPHA, SIGMA = 34.0, 4.0  # Simard et al.'s values for 28 x 28 digits


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(np.ceil(4 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def smooth(fields: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (..., H, W) along the last two axes, separable, mirror-padded."""
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    out = fields
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=axis)
        out = windows @ kernel
    return out


def elastic_grid(rng, count: int, size: int, alpha: float = ALPHA, sigma: float = SIGMA):
    """(count, size, size, 2) float32 sampling grids, last axis (x, y)."""
    displacement = smooth(rng.uniform(-1.0, 1.0, (count, 2, size, size)), sigma) * alpha
    base = (2.0 * np.arange(size) + 1.0) / size - 1.0  # pixel centres, align_corners=False
    grid = np.empty((count, size, size, 2), np.float64)
    grid[..., 0] = base[None, None, :] + displacement[:, 0] * 2.0 / size
    grid[..., 1] = base[None, :, None] + displacement[:, 1] * 2.0 / size
    return grid.astype(np.float32)
