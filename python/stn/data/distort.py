"""Distorted digits: the STN paper's distorted-MNIST variants, deterministic for a seed.

    images = stn.data.distort("RTS", digits, seed=0)     # digits (N, 28, 28) -> (N, 1, 42, 42)

Ranges, as in the STN paper's appendix (Jaderberg et al. 2015, "Distorted MNIST") and the
public reproductions that follow it:
  R          rotation uniform in +-90 degrees, 28 x 28
  RTS        rotation uniform in +-45 degrees, scale uniform in [0.7, 1.2], the digit placed
             uniformly at random on a 42 x 42 canvas (wholly inside it: its centre moves at
             most (42 - 28 s) / 2 pixels on each axis)
  P          projective: scale uniform in [0.75, 1], then each corner of the digit moved by
             a Gaussian of sigma = 5 pixels per axis, 28 x 28
  E          elastic (Simard et al. 2003): a per-pixel displacement field uniform in [-1, 1],
             smoothed by a Gaussian of sigma = 4 pixels and scaled by alpha = 34 pixels, 28 x 28
  cluttered  a 60 x 60 canvas with the digit at a random position and 4 pieces of 8 x 8
             clutter cut from other digits at random positions (the 60 x 60 cluttered MNIST
             of Mnih et al. 2014, which the STN paper and DeepMind's generator use), values
             clipped to [0, 1]
The warps run through stn's own kernels (bilinear, zeros padding): rotation and similarity
families for R and RTS, projective for P, a sampling grid for E.
"""

from __future__ import annotations

import numpy as np

from .. import functional
from .elastic import elastic_grid

VARIANTS = ("R", "RTS", "P", "E", "cluttered")
CANVAS = {"R": 28, "RTS": 42, "P": 28, "E": 28, "cluttered": 60}
DIGIT = 28  # MNIST digits are 28 x 28; one normalized unit is 14 pixels of the digit

RTS_ANGLE, RTS_SCALE = 45.0, (0.7, 1.2)
P_SCALE, P_CORNER_SIGMA = (0.75, 1.0), 5.0
CLUTTER_PIECES, CLUTTER_SIZE = 4, 8


def _as_unit_float(images) -> np.ndarray:
    """(N, 28, 28) uint8 in [0, 255] or float in [0, 1] -> (N, 1, 28, 28) float32."""
    array = np.asarray(images)
    if array.ndim != 3 or array.shape[1:] != (DIGIT, DIGIT):
        raise ValueError(f"stn.data.distort: images must be (N, 28, 28), got shape {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    return np.ascontiguousarray(array, np.float32)[:, None]


def distort(variant: str, images, seed: int = 0, *, return_params: bool = False):
    """Returns float32 (N, 1, S, S) in [0, 1], S = CANVAS[variant]; with return_params also
    a dict of the per-image parameters drawn: angle (degrees; the content at offset q from
    the digit's centre lands at R(angle) q, x = column, y = row), scale, shift (pixels of the
    digit's centre from the canvas centre, (x, y)), P's corner_shift, cluttered's position
    ((row, col) of the digit's top-left corner)."""
    if variant not in VARIANTS:
        raise ValueError(f"stn.data.distort: variant must be one of {VARIANTS}, got {variant!r}")
    digits = _as_unit_float(images)
    rng = np.random.default_rng(seed)
    output, params = _GENERATORS[variant](digits, rng)
    output = np.clip(output, 0.0, 1.0).astype(np.float32)
    return (output, params) if return_params else output


def _rotated(digits, rng):
    n = len(digits)
    angle = rng.uniform(-90.0, 90.0, n)
    # theta maps output to input, so the content turns by -beta: beta = -angle / 180 turns
    # it by `angle` (as RTS's angle: digit offset q lands at R(angle) q, x = column, y = row)
    beta = (-angle / 180.0).astype(np.float32)[:, None]
    return functional.spatial_transform(digits, beta, transform="rotation"), {"angle": angle}


def _rotated_translated_scaled(digits, rng):
    """Similarity map from the canvas to the digit: canvas pixel offset p from the digit's
    centre c reads digit offset R(-angle) (p - c) / scale."""
    n, canvas = len(digits), CANVAS["RTS"]
    angle = rng.uniform(-RTS_ANGLE, RTS_ANGLE, n)
    scale = rng.uniform(*RTS_SCALE, n)
    room = (canvas - DIGIT * scale) / 2
    shift = rng.uniform(-1, 1, (n, 2)) * room[:, None]  # (x, y) pixels from the canvas centre
    radians = np.deg2rad(angle)
    # normalized canvas u (half-width canvas/2 px) -> normalized digit (half-width 14 px)
    k = (canvas / 2) / (DIGIT / 2 * scale)
    a, b = k * np.cos(radians), -k * np.sin(radians)
    cos, sin = np.cos(radians), np.sin(radians)
    tx = -(cos * shift[:, 0] + sin * shift[:, 1]) / (DIGIT / 2 * scale)
    ty = -(-sin * shift[:, 0] + cos * shift[:, 1]) / (DIGIT / 2 * scale)
    params = np.stack([a, b, tx, ty], 1).astype(np.float32)
    out = functional.spatial_transform(digits, params, out_size=(canvas, canvas), transform="similarity")
    return out, {"angle": angle, "scale": scale, "shift": shift}


def homography(source, target) -> np.ndarray:
    """The 8 projective parameters h mapping each source point (x, y) to its target (4 point
    pairs, (4, 2) each), with h33 = 1."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64))


def _projective(digits, rng):
    """The digit's corners go to scale * corner + N(0, 5 px); the sampler needs the inverse
    map, from the moved corners (output) back to the digit's corners (input)."""
    n = len(digits)
    scale = rng.uniform(*P_SCALE, n)
    noise = rng.normal(0.0, P_CORNER_SIGMA / (DIGIT / 2), (n, 4, 2))  # normalized units
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    params = np.stack([homography(scale[i] * corners + noise[i], corners) for i in range(n)])
    out = functional.spatial_transform(digits, params.astype(np.float32), transform="projective")
    return out, {"scale": scale, "corner_shift": noise * (DIGIT / 2)}


def _elastic(digits, rng):
    grid = elastic_grid(rng, len(digits), DIGIT)
    return functional.grid_sample(digits, grid), {}


def _cluttered(digits, rng):
    """Clutter first, then the digit, added; the caller clips to [0, 1]."""
    n, canvas = len(digits), CANVAS["cluttered"]
    out = np.zeros((n, 1, canvas, canvas), np.float32)
    for i in range(n):
        for _ in range(CLUTTER_PIECES):
            other = digits[rng.integers(n)][0]
            r, c = rng.integers(0, DIGIT - CLUTTER_SIZE + 1, 2)
            piece = other[r:r + CLUTTER_SIZE, c:c + CLUTTER_SIZE]
            pr, pc = rng.integers(0, canvas - CLUTTER_SIZE + 1, 2)
            out[i, 0, pr:pr + CLUTTER_SIZE, pc:pc + CLUTTER_SIZE] += piece
    position = rng.integers(0, canvas - DIGIT + 1, (n, 2))  # (row, col) of the top-left corner
    for i, (r, c) in enumerate(position):
        out[i, 0, r:r + DIGIT, c:c + DIGIT] += digits[i, 0]
    return out, {"position": position}


_GENERATORS = {"R": _rotated, "RTS": _rotated_translated_scaled, "P": _projective,
               "E": _elastic, "cluttered": _cluttered}


def distort_splits(variant: str, digits, *, copies: int = 1, seed: int = 0):
    """(train images, train labels, test images, test labels) of a stn.data.Digits set: each
    training digit distorted `copies` times (seeds seed*1000+1, +2, ...), the test digits once
    (seed*1000), so train and test never share a draw."""
    train = np.concatenate([images for images, _ in
                            distorted_copies(variant, digits, copies=copies, seed=seed)])
    train_labels = np.tile(digits.train_labels, copies)
    test = distort(variant, digits.test_images, seed=seed * 1000)
    return train, train_labels, test, digits.test_labels


def distorted_copies(variant: str, digits, *, copies: int = 1, seed: int = 0):
    """The training half of distort_splits one copy at a time: yields (images, labels) for
    each of the `copies` fresh draws of every training digit, so that many copies of a large
    set can be written without holding them all (stn.data.write_hdf5_chunks)."""
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies <= 0:
        raise ValueError(f"stn.data.distorted_copies: copies must be a positive integer, got {copies!r}")
    for k in range(copies):
        yield distort(variant, digits.train_images, seed=seed * 1000 + 1 + k), digits.train_labels
