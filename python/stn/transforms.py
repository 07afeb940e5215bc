"""Transformation families: what each family's parameters are, and helpers around them.

Every family maps normalized output coordinates (x = column, y = row, in [-1, 1]; see
stn.functional) to normalized input coordinates. Parameters per image, and their shapes
(N images; a parameter array without the leading N is shared by the whole batch):

  family             params (per image)   matrix
  affine             (2, 3)               theta; with `fixed` entries: (P,), P = 6 - fixed
  translation        (2,)  tx, ty         [[1, 0, tx], [0, 1, ty]]
  scale_translation  (3,)  s, tx, ty      [[s, 0, tx], [0, s, ty]]      (the "zoom" STN)
  rotation           (1,)  beta           [[cos a, -sin a, tx], [sin a, cos a, ty]],
                     (3,)  beta, tx, ty   a = pi * beta (180 * beta degrees; beta = 0.5 is
                                          exactly a quarter turn, see README on np.rot90)
  rigid              (3,)  a, tx, ty      the same matrix, a in radians
  similarity         (4,)  a, b, tx, ty   [[a, -b, tx], [b, a, ty]]   (a = s cos, b = s sin)
  projective         (8,)  h0..h7         [[h0, h1, h2], [h3, h4, h5], [h6, h7, 1]]; a point
                                          whose denominator h6 x + h7 y + 1 is <= 1e-6, or not
                                          finite, is outside the image
  tps                (K, 2)               where the K control points of a grid_h x grid_w
                                          layout over [-1, 1]^2 (row-major, (x, y)) land in
                                          the input: a thin-plate spline through them

`fixed` (affine only) fixes matrix entries by Caffe's names, e.g. {"theta_1_1": 0.5}; the
parameters then hold the other entries in row-major order, as Caffe's SpatialTransformer
theta bottom does. The TPS system is solved once per layout (tps_solution) and cached.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import _core
from . import _validate as check

# Codes shared with csrc/stn/families.h (enum class Family).
FAMILIES = ("affine", "translation", "scale_translation", "rotation", "rigid", "similarity",
            "projective", "tps")
MATRIX_FAMILIES = FAMILIES[:6]
THETA_ENTRIES = ("theta_1_1", "theta_1_2", "theta_1_3", "theta_2_1", "theta_2_2", "theta_2_3")
PARAM_COUNTS = {"translation": (2,), "scale_translation": (3,), "rotation": (1, 3),
                "rigid": (3,), "similarity": (4,), "projective": (8,)}
MAX_TPS_POINTS = 64  # csrc/stn/families.h kMaxTpsPoints


@dataclass(frozen=True)
class Family:
    """One family with everything the kernels need to know about it."""
    name: str
    params: int                       # parameters per image
    param_shape: tuple                # their shape per image
    fixed_mask: int = 0               # affine: bit i = row-major entry i of theta is fixed
    fixed_values: tuple = (0.0,) * 6
    tps_grid: tuple = (0, 0)

    def core_args(self) -> tuple:
        return (FAMILIES.index(self.name), self.params, self.fixed_mask, self.fixed_values,
                *self.tps_grid)

    def solution(self):
        """The TPS solution matrix (float64 whatever the data's dtype: float32 would move the
        rest positions by up to 1e-4), or None for the other families."""
        return None if self.name != "tps" else tps_solution(*self.tps_grid)


def _fixed_entries(function: str, transform: str, fixed) -> tuple:
    if fixed is None or (hasattr(fixed, "__len__") and len(fixed) == 0):
        return 0, (0.0,) * 6
    if transform != "affine":
        raise ValueError(f"stn.{function}: fixed entries apply to transform='affine' only, "
                         f"got transform={transform!r} with fixed={fixed!r}")
    if not hasattr(fixed, "items"):
        raise TypeError(f"stn.{function}: fixed must be a dict such as {{'theta_1_1': 0.5}}, "
                        f"got {type(fixed).__name__}")
    mask, values = 0, [0.0] * 6
    for name, value in fixed.items():
        if name not in THETA_ENTRIES:
            raise ValueError(f"stn.{function}: fixed keys must be among {THETA_ENTRIES}, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"stn.{function}: fixed[{name!r}] must be a finite number, got {value!r}")
        index = THETA_ENTRIES.index(name)
        mask |= 1 << index
        values[index] = float(value)
    return mask, tuple(values)


def _tps_layout(function: str, params, tps_grid) -> tuple:
    """(grid_h, grid_w) from tps_grid, or the square root of K for a square layout."""
    if params.ndim not in (2, 3) or params.shape[-1] != 2:
        raise ValueError(f"stn.{function}: theta for transform='tps' must be (N, K, 2) or a "
                         f"shared (K, 2): where the K control points land, got shape "
                         f"{check.shape_text(params)}")
    points = int(params.shape[-2])
    if tps_grid is None:
        side = math.isqrt(points)
        if side * side != points:
            raise ValueError(
                f"stn.{function}: tps params are (N, K, 2) with K = grid_h * grid_w; K = {points} "
                f"is not a square, so pass tps_grid=(grid_h, grid_w); params shape "
                f"{check.shape_text(params)}")
        tps_grid = (side, side)
    grid_h, grid_w = check.positive_ints(function, "tps_grid", tps_grid, 2, "(grid_h, grid_w)")
    if grid_h < 2 or grid_w < 2 or grid_h * grid_w > MAX_TPS_POINTS:
        raise ValueError(f"stn.{function}: tps_grid must be at least 2 x 2 and have at most "
                         f"{MAX_TPS_POINTS} points, got {(grid_h, grid_w)}")
    return grid_h, grid_w


_PLAIN_AFFINE = Family("affine", 6, (2, 3))  # no entry fixed: the common case, built once


def resolve(function: str, transform, params, fixed=None, tps_grid=None) -> Family:
    """The Family for `transform` whose parameters look like `params` (an array)."""
    if not isinstance(transform, str) or transform not in FAMILIES:
        raise ValueError(f"stn.{function}: transform must be one of {list(FAMILIES)}, got {transform!r}")
    mask, values = _fixed_entries(function, transform, fixed)
    if transform == "affine" and mask == 0:
        return _PLAIN_AFFINE
    if transform == "affine":
        free = 6 - bin(mask).count("1")
        return Family("affine", free, (free,), mask, values)
    if tps_grid is not None and transform != "tps":
        raise ValueError(f"stn.{function}: tps_grid applies to transform='tps' only, got "
                         f"transform={transform!r}")
    if transform == "tps":
        grid_h, grid_w = _tps_layout(function, params, tps_grid)
        points = grid_h * grid_w
        return Family("tps", 2 * points, (points, 2), tps_grid=(grid_h, grid_w))
    counts = PARAM_COUNTS[transform]
    count = counts[0]
    if len(counts) > 1 and params.ndim >= 1 and params.shape[-1] in counts:
        count = int(params.shape[-1])
    return Family(transform, count, (count,))


def _layouts(family: Family) -> str:
    per_image = ", ".join(str(s) for s in family.param_shape)
    shared = f"({per_image},)" if len(family.param_shape) == 1 else f"({per_image})"
    alternatives = ""
    if family.name == "rotation":
        alternatives = " (rotation takes (N, 1) or (N, 3): beta, or beta, tx, ty)"
    return f"(N, {per_image}) or a shared {shared}{alternatives}"


def params_layout(function: str, family: Family, params, batch: int, batch_source: str,
                  name: str = "theta") -> bool:
    """Checks params against the family's shape and the batch; returns True when shared."""
    if family.name == "affine" and family.fixed_mask == 0:
        check.theta_batch(function, params, batch, batch_source)
        return params.ndim == 2
    shape = tuple(int(s) for s in params.shape)
    per_image = tuple(family.param_shape)
    if shape == per_image:
        return True
    if len(shape) != len(per_image) + 1 or shape[1:] != per_image:
        fixed = ""
        if family.name == "affine":
            names = [e for i, e in enumerate(THETA_ENTRIES) if family.fixed_mask >> i & 1]
            fixed = f" ({len(names)} of the 6 entries are fixed: {', '.join(names)})"
        raise ValueError(f"stn.{function}: {name} for transform={family.name!r} must be "
                         f"{_layouts(family)}{fixed}, got shape {check.shape_text(params)}")
    if shape[0] != batch:
        raise ValueError(f"stn.{function}: {name} batch {shape[0]} must equal {batch_source} "
                         f"{batch}; got {name} {check.shape_text(params)}")
    return False


# ------------------------------------------------------------------------------------------
# Thin-plate splines


def tps_control_points(grid_h: int, grid_w: int) -> np.ndarray:
    """(K, 2) control points (x, y) of a grid_h x grid_w layout over [-1, 1]^2, row-major:
    the rest positions, where the spline is the identity."""
    xs = [-1.0 + 2.0 * j / (grid_w - 1) for j in range(grid_w)]  # as the kernels compute them
    ys = [-1.0 + 2.0 * i / (grid_h - 1) for i in range(grid_h)]
    return np.array([(x, y) for y in ys for x in xs], np.float64)


def tps_radial(squared_distance):
    """U = r^2 log r^2, 0 at r = 0 (csrc/stn/point_maps.h TpsCoords uses the same)."""
    d2 = np.asarray(squared_distance, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, d2 * np.log(np.where(d2 > 0, d2, 1.0)), 0.0)


@functools.lru_cache(maxsize=64)
def tps_solution(grid_h: int, grid_w: int) -> np.ndarray:
    """(K + 3, K) float64, read-only: spline coefficients (w_0..w_{K-1}, a_0, a_x, a_y) =
    solution @ (where the control points land). Solved once per layout:
        [[U(|c_i - c_j|), 1, c_i], [1 / c_j^T, 0]] [w; a] = [targets; 0]."""
    points = tps_control_points(grid_h, grid_w)
    k = len(points)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = tps_radial(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    system[:k, k] = system[k, :k] = 1.0
    system[:k, k + 1:] = points
    system[k + 1:, :k] = points.T
    rhs = np.zeros((k + 3, k))
    rhs[:k] = np.eye(k)
    solution = np.linalg.solve(system, rhs)
    solution.flags.writeable = False
    return solution


# ------------------------------------------------------------------------------------------
# Helpers


def identity_params(transform: str, batch=None, *, fixed=None, tps_grid=(3, 3),
                    translation=True, dtype=np.float64) -> np.ndarray:
    """Parameters of the identity map (per image when batch is given, else shared).

    rotation gives (beta, tx, ty) = 0 with translation=True, (beta,) otherwise; with
    fixed entries, affine gives the free entries of the identity matrix."""
    identity = np.array([1.0, 0, 0, 0, 1, 0])
    if transform == "affine":
        mask, values = _fixed_entries("identity_params", transform, fixed)
        moved = [THETA_ENTRIES[i] for i in range(6) if mask >> i & 1 and values[i] != identity[i]]
        if moved:
            raise ValueError(f"stn.identity_params: no parameters give the identity when "
                             f"{', '.join(moved)} are fixed away from it (fixed={fixed!r})")
        free = [identity[i] for i in range(6) if not mask >> i & 1]
        one = identity.reshape(2, 3) if mask == 0 else np.array(free)
    elif transform == "tps":
        grid_h, grid_w = check.positive_ints("identity_params", "tps_grid", tps_grid, 2,
                                             "(grid_h, grid_w)")
        one = tps_control_points(grid_h, grid_w)
    else:
        table = {"translation": [0, 0], "scale_translation": [1, 0, 0],
                 "rotation": [0, 0, 0] if translation else [0], "rigid": [0, 0, 0],
                 "similarity": [1, 0, 0, 0], "projective": [1, 0, 0, 0, 1, 0, 0, 0]}
        if transform not in table:
            raise ValueError(f"stn.identity_params: transform must be one of {list(FAMILIES)}, "
                             f"got {transform!r}")
        one = np.array(table[transform], np.float64)
    if batch is not None:
        one = np.broadcast_to(one, (int(batch), *one.shape))
    return np.array(one, dtype=dtype)


def to_matrix(family: str, params, *, fixed=None) -> np.ndarray:
    """The matrix of each image's map: (N, 2, 3) for the matrix families, (N, 3, 3) for
    projective; shared params give one matrix. Computed by the kernels' own code."""
    fn = "transforms.to_matrix"
    params = check.float_array(fn, "params", params)
    check.not_empty(fn, "params", params)
    if family not in FAMILIES or family == "tps":
        raise ValueError(f"stn.{fn}: family must be one of {list(FAMILIES[:7])} (tps is not a "
                         f"matrix), got {family!r}")
    spec = resolve(fn, family, params, fixed)
    shared = params_layout(fn, spec, params, params.shape[0] if params.ndim > len(spec.param_shape) else 1,
                           "the batch", name="params")
    images = 1 if shared else int(params.shape[0])
    flat = np.ascontiguousarray(params).reshape(images, spec.params)
    coefficients = _core.transform_coefficients(flat, spec.core_args(), None, images)
    if family == "projective":
        matrices = np.concatenate([coefficients, np.ones((images, 1), coefficients.dtype)], 1)
        matrices = matrices.reshape(images, 3, 3)
    else:
        matrices = coefficients.reshape(images, 2, 3)
    return matrices[0] if shared else matrices


def invert_affine(theta) -> np.ndarray:
    """The inverse map of each affine theta (..., 2, 3): maps input coordinates back to the
    output frame, e.g. to draw where a predicted crop came from. Raises for a singular one."""
    fn = "transforms.invert_affine"
    theta = check.float_array(fn, "theta", theta)
    if theta.ndim < 2 or theta.shape[-2:] != (2, 3):
        raise ValueError(f"stn.{fn}: theta must be (..., 2, 3), got shape {check.shape_text(theta)}")
    linear, shift = theta[..., :2].astype(np.float64), theta[..., 2:].astype(np.float64)
    det = linear[..., 0, 0] * linear[..., 1, 1] - linear[..., 0, 1] * linear[..., 1, 0]
    bad = ~np.isfinite(det) | (det == 0) | ~np.isfinite(theta).all(axis=(-2, -1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(np.atleast_1d(bad))[0]) if bad.ndim else ()
        raise ValueError(f"stn.{fn}: theta{list(where) if where else ''} is singular or not "
                         f"finite (determinant {float(np.atleast_1d(det)[where] if where else det)}); "
                         "it has no inverse")
    inverse_linear = np.stack([
        np.stack([linear[..., 1, 1], -linear[..., 0, 1]], -1),
        np.stack([-linear[..., 1, 0], linear[..., 0, 0]], -1)], -2) / det[..., None, None]
    inverse_shift = -inverse_linear @ shift
    return np.concatenate([inverse_linear, inverse_shift], -1).astype(theta.dtype)
