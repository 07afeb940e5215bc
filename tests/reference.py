"""Slow, plain numpy reference for affine_grid / grid_sample (4-D, NCHW).

This is the test oracle for the fast `stn` kernels.  It is written from the
formulas, favours clarity over speed, loops in Python over (n, ho, wo, tap) and
vectorizes only over channels.  Every public function accepts float32/float64
arrays, computes in float64 and returns float64 arrays.  Semantics match
PyTorch's torch.nn.functional.affine_grid / grid_sample (checked against
torch 2.13 in float64, agreement ~1e-13).

Conventions
-----------
* Layouts: input (N, C, H, W); theta (N, 2, 3); grid (N, Ho, Wo, 2) with
  grid[..., 0] = x (column / width axis) and grid[..., 1] = y (row / height
  axis), both normalized so that -1 / +1 are the two edges of the image.
* affine_grid base coordinates along an axis of length S, index i:
    align_corners=True : -1 + 2*i/(S-1)   (exactly 0 when S == 1)
    align_corners=False: (2*i + 1)/S - 1  (pixel centres; 0 when S == 1)
  grid[n, h, w] = theta[n] @ (x_w, y_h, 1).
* grid_sample unnormalize, normalized g -> pixel coordinate along size S:
    align_corners=True : (g + 1)/2 * (S - 1)   (multiplier 0 when S == 1,
                                                so every g maps to pixel 0)
    align_corners=False: ((g + 1)*S - 1)/2
* Padding applied to a coordinate c (used by bilinear and nearest on the
  unnormalized coordinate, and by bicubic on each integer tap index):
    zeros     : c unchanged; taps outside [0, S-1] read as 0 / get no grad.
    border    : clip c to [0, S-1].
    reflection: reflect about [0, S-1] (align_corners=True) or about
                [-0.5, S-0.5] (align_corners=False), then clip to [0, S-1].
                With align_corners=True and S == 1 the result is 0.
  Derivative conventions (same as torch): clip has derivative 0 when
  c <= 0 or c >= S-1 (the borders count as outside), 1 strictly inside;
  each reflection flips the derivative's sign.
* nearest : pixel index = round-half-to-even(padded coordinate); grad_grid = 0.
* bilinear: 4 taps at floor(c), floor(c)+1 of the padded coordinate.
* bicubic : cubic convolution, A = -0.75, 4x4 taps floor(c)-1 .. floor(c)+2
  where c is the UNPADDED unnormalized coordinate.  Padding is applied per tap
  index (border/reflection map the integer index, zeros drops it), so the
  gradient w.r.t. the grid flows only through the cubic weights and its
  multiplier is just the unnormalize factor (no padding factor).
"""
import math

import numpy as np

__all__ = ["affine_grid", "affine_grid_backward", "grid_sample", "grid_sample_backward"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")
_A = -0.75  # cubic convolution parameter used by PyTorch


# ----------------------------------------------------------------------------
# affine_grid
# ----------------------------------------------------------------------------
def _base_coords(size, align_corners):
    """Normalized coordinates of the `size` pixels along one axis -> (size,)."""
    if size == 1:
        return np.zeros(1)
    i = np.arange(size, dtype=np.float64)
    if align_corners:
        return -1.0 + 2.0 * i / (size - 1)
    return (2.0 * i + 1.0) / size - 1.0


def _base_grid(H, W, align_corners):
    """Homogeneous base grid -> (H, W, 3) holding (x_w, y_h, 1)."""
    base = np.ones((H, W, 3))
    base[:, :, 0] = _base_coords(W, align_corners)[None, :]  # x varies along W
    base[:, :, 1] = _base_coords(H, align_corners)[:, None]  # y varies along H
    return base


def affine_grid(theta, size, align_corners=False):
    """theta (N, 2, 3), size = (N, C, H, W) -> grid (N, H, W, 2)."""
    theta = np.asarray(theta, dtype=np.float64)  # (N, 2, 3)
    N, _, H, W = (int(s) for s in size)
    assert theta.shape == (N, 2, 3), theta.shape
    base = _base_grid(H, W, align_corners)  # (H, W, 3)
    # grid[n, h, w, i] = sum_j theta[n, i, j] * base[h, w, j]
    return np.einsum("nij,hwj->nhwi", theta, base)  # (N, H, W, 2)


def affine_grid_backward(grad_grid, size, align_corners=False):
    """grad_grid (N, H, W, 2), size = (N, C, H, W) -> grad_theta (N, 2, 3)."""
    grad_grid = np.asarray(grad_grid, dtype=np.float64)  # (N, H, W, 2)
    N, _, H, W = (int(s) for s in size)
    assert grad_grid.shape == (N, H, W, 2), grad_grid.shape
    base = _base_grid(H, W, align_corners)  # (H, W, 3)
    # d grid[n,h,w,i] / d theta[n,i,j] = base[h,w,j]
    return np.einsum("nhwi,hwj->nij", grad_grid, base)  # (N, 2, 3)


# ----------------------------------------------------------------------------
# scalar helpers for grid_sample; each returns (value, d value / d input)
# ----------------------------------------------------------------------------
def _unnormalize(g, size, align_corners):
    """Normalized coordinate g (scalar) -> pixel coordinate along `size`."""
    if align_corners:
        f = (size - 1) / 2.0  # 0 when size == 1
        return (g + 1.0) * f, f
    f = size / 2.0
    return ((g + 1.0) * size - 1.0) / 2.0, f


def _clip(c, size):
    """Clip c to [0, size-1]; derivative 0 at and beyond both borders."""
    if c <= 0.0:
        return 0.0, 0.0
    if c >= size - 1:
        return float(size - 1), 0.0
    return c, 1.0


def _reflect(c, lo, hi):
    """Reflect c into [lo, hi] by repeated mirroring at lo and hi."""
    if lo == hi:
        return 0.0, 0.0
    span = hi - lo
    d, sign = c - lo, 1.0
    if d < 0.0:
        d, sign = -d, -1.0
    flips = math.floor(d / span)
    extra = math.fmod(d, span)
    if flips % 2 == 0:
        return lo + extra, sign
    return hi - extra, -sign


def _pad(c, size, padding_mode, align_corners):
    """Apply padding_mode to coordinate c along an axis of length `size`."""
    if padding_mode == "zeros":
        return c, 1.0
    mult = 1.0
    if padding_mode == "reflection":
        if align_corners:
            c, mult = _reflect(c, 0.0, size - 1.0)
        else:
            c, mult = _reflect(c, -0.5, size - 0.5)
    c, m2 = _clip(c, size)
    return c, mult * m2


def _cubic(s):
    """Cubic convolution kernel k(s) (A = -0.75) and its derivative k'(s)."""
    a, sg = abs(s), (1.0 if s >= 0 else -1.0)
    if a <= 1.0:
        return ((_A + 2) * a - (_A + 3)) * a * a + 1.0, sg * (3 * (_A + 2) * a - 2 * (_A + 3)) * a
    if a < 2.0:
        return ((_A * a - 5 * _A) * a + 8 * _A) * a - 4 * _A, sg * ((3 * _A * a - 10 * _A) * a + 8 * _A)
    return 0.0, 0.0


def _taps(gx, gy, H, W, mode, padding_mode, align_corners):
    """Interpolation taps for one grid point.

    Returns (taps, mx, my) where taps is a list of (xi, yi, w, dw_dx, dw_dy):
    integer pixel indices (possibly out of bounds -> treated as zero), the
    weight, and the weight's derivative w.r.t. the pixel coordinates x, y.
    mx = d x / d gx and my = d y / d gy (chain factors to the normalized grid).
    """
    x, mx = _unnormalize(gx, W, align_corners)
    y, my = _unnormalize(gy, H, align_corners)
    if mode == "bicubic":
        x0, y0 = math.floor(x), math.floor(y)
        tx, ty = x - x0, y - y0
        kx = [_cubic(tx - (i - 1)) for i in range(4)]  # weights for x0-1 .. x0+2
        ky = [_cubic(ty - (j - 1)) for j in range(4)]
        taps = []
        for j in range(4):
            yi = int(_pad(float(y0 - 1 + j), H, padding_mode, align_corners)[0])
            for i in range(4):
                xi = int(_pad(float(x0 - 1 + i), W, padding_mode, align_corners)[0])
                (wx, dwx), (wy, dwy) = kx[i], ky[j]
                taps.append((xi, yi, wx * wy, dwx * wy, wx * dwy))
        return taps, mx, my
    x, px = _pad(x, W, padding_mode, align_corners)
    y, py = _pad(y, H, padding_mode, align_corners)
    if mode == "nearest":
        # np.rint rounds half to even, like nearbyint in torch.
        return [(int(np.rint(x)), int(np.rint(y)), 1.0, 0.0, 0.0)], mx * px, my * py
    x0, y0 = math.floor(x), math.floor(y)
    tx, ty = x - x0, y - y0
    taps = [
        (x0, y0, (1 - tx) * (1 - ty), -(1 - ty), -(1 - tx)),
        (x0 + 1, y0, tx * (1 - ty), (1 - ty), -tx),
        (x0, y0 + 1, (1 - tx) * ty, -ty, (1 - tx)),
        (x0 + 1, y0 + 1, tx * ty, ty, tx),
    ]
    return taps, mx * px, my * py


def _check(input, grid, mode, padding_mode):
    input = np.asarray(input, dtype=np.float64)  # (N, C, H, W)
    grid = np.asarray(grid, dtype=np.float64)  # (N, Ho, Wo, 2)
    assert mode in _MODES, mode
    assert padding_mode in _PADDINGS, padding_mode
    assert input.ndim == 4 and grid.ndim == 4 and grid.shape[3] == 2
    assert input.shape[0] == grid.shape[0]
    return input, grid


# ----------------------------------------------------------------------------
# grid_sample forward / backward
# ----------------------------------------------------------------------------
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """input (N, C, H, W), grid (N, Ho, Wo, 2) -> output (N, C, Ho, Wo)."""
    input, grid = _check(input, grid, mode, padding_mode)
    N, C, H, W = input.shape
    _, Ho, Wo, _ = grid.shape
    out = np.zeros((N, C, Ho, Wo))  # (N, C, Ho, Wo)
    for n in range(N):
        for ho in range(Ho):
            for wo in range(Wo):
                gx, gy = grid[n, ho, wo]
                taps, _, _ = _taps(gx, gy, H, W, mode, padding_mode, align_corners)
                acc = np.zeros(C)  # (C,)
                for xi, yi, w, _, _ in taps:
                    if 0 <= xi < W and 0 <= yi < H:
                        acc += w * input[n, :, yi, xi]  # (C,)
                out[n, :, ho, wo] = acc
    return out


def grid_sample_backward(grad_output, input, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False):
    """grad_output (N, C, Ho, Wo), input (N, C, H, W), grid (N, Ho, Wo, 2)
    -> (grad_input (N, C, H, W), grad_grid (N, Ho, Wo, 2))."""
    input, grid = _check(input, grid, mode, padding_mode)
    grad_output = np.asarray(grad_output, dtype=np.float64)  # (N, C, Ho, Wo)
    N, C, H, W = input.shape
    _, Ho, Wo, _ = grid.shape
    assert grad_output.shape == (N, C, Ho, Wo), grad_output.shape
    grad_input = np.zeros((N, C, H, W))  # (N, C, H, W)
    grad_grid = np.zeros((N, Ho, Wo, 2))  # (N, Ho, Wo, 2)
    for n in range(N):
        for ho in range(Ho):
            for wo in range(Wo):
                gx, gy = grid[n, ho, wo]
                go = grad_output[n, :, ho, wo]  # (C,)
                taps, mx, my = _taps(gx, gy, H, W, mode, padding_mode, align_corners)
                dx = dy = 0.0  # d loss / d pixel coordinate x, y
                for xi, yi, w, dw_dx, dw_dy in taps:
                    if 0 <= xi < W and 0 <= yi < H:
                        grad_input[n, :, yi, xi] += w * go  # (C,)
                        v = float(np.dot(input[n, :, yi, xi], go))  # sum over C
                        dx += dw_dx * v
                        dy += dw_dy * v
                grad_grid[n, ho, wo, 0] = dx * mx
                grad_grid[n, ho, wo, 1] = dy * my
    return grad_input, grad_grid
