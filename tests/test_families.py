"""Transformation families beyond affine (stn.transforms): gradients, closed forms, oracles.

Every family is checked the same way: float64 central differences of grad_theta and
grad_input through the fused transformer, of transform_grid_backward against transform_grid,
and of shared parameters summing over the batch; then each family's own closed forms (exact
quarter turns and integer shifts, identity parameters), numpy oracles for the thin-plate
spline and the homography (and OpenCV's warpPerspective when cv2 is installed), to_matrix,
the emulated device against the CPU bit for bit, and the argument checks.

Parameters are drawn near each family's identity plus random perturbations, and for the
gradient checks redrawn until every sample point keeps KINK_GAP pixels from the kinks at
multiples of half a pixel (see conftest), so a step of 1e-6 never crosses one.
"""

import itertools
import math
import re

import numpy as np
import pytest

import stn
from stn import _core, transforms
from conftest import DTYPES
from gradcheck import assert_gradient
from test_device_emulation import assert_backends_agree, assert_same

N, C, H, W = 2, 2, 5, 6   # input
HO, WO = 4, 6             # output: even sizes, so no base point sits at 0 (a rotation centre)
GRAD_MODES = ("bilinear", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
MODE_CODE = {"bilinear": 0, "nearest": 1, "bicubic": 2}
PADDING_CODE = {"zeros": 0, "border": 1, "reflection": 2}
FIXED = {"theta_1_2": 0.0, "theta_2_1": 0.0}
FIXED_SHIFT = {"theta_1_3": 0.1, "theta_2_2": 0.9}
PROJECTIVE_IDENTITY = np.array([1.0, 0, 0, 0, 1, 0, 0, 0])


def _affine(rng, n):
    return np.eye(2, 3) + 0.15 * rng.standard_normal((n, 2, 3))


def _tps(grid_h, grid_w):
    rest = transforms.tps_control_points(grid_h, grid_w)
    return lambda rng, n: rest + 0.1 * rng.standard_normal((n, grid_h * grid_w, 2))


# id -> (transform, keyword arguments, params near the identity for a batch of n).
CASES = {
    "affine": ("affine", {}, _affine),
    "affine_fixed": ("affine", {"fixed": FIXED},
                     lambda rng, n: np.array([1.0, 0, 1, 0]) + 0.15 * rng.standard_normal((n, 4))),
    "affine_fixed_shift": ("affine", {"fixed": FIXED_SHIFT},
                           lambda rng, n: np.array([1.0, 0, 0, 0]) + 0.15 * rng.standard_normal((n, 4))),
    "translation": ("translation", {}, lambda rng, n: 0.3 * rng.standard_normal((n, 2))),
    "scale_translation": ("scale_translation", {},
                          lambda rng, n: np.array([1.0, 0, 0]) + rng.normal(0, [0.2, 0.3, 0.3], (n, 3))),
    "rotation1": ("rotation", {}, lambda rng, n: 0.2 * rng.standard_normal((n, 1))),
    "rotation3": ("rotation", {}, lambda rng, n: rng.normal(0, [0.2, 0.3, 0.3], (n, 3))),
    "rigid": ("rigid", {}, lambda rng, n: rng.normal(0, [0.5, 0.3, 0.3], (n, 3))),
    "similarity": ("similarity", {},
                   lambda rng, n: np.array([1.0, 0, 0, 0]) + 0.2 * rng.standard_normal((n, 4))),
    "projective": ("projective", {},
                   lambda rng, n: PROJECTIVE_IDENTITY + rng.normal(0, [0.15] * 6 + [0.1] * 2, (n, 8))),
    "tps3x3": ("tps", {}, _tps(3, 3)),
    "tps2x3": ("tps", {"tps_grid": (2, 3)}, _tps(2, 3)),
}
CASE_IDS = list(CASES)


def _horizon(rng, n):
    """A homography whose w = h6 x + h7 y + 1 is <= 0 on the left of the output (h6 ~ 2)."""
    h = PROJECTIVE_IDENTITY + rng.normal(0, 0.05, (n, 8))
    h[:, 6] = 2.0 + rng.uniform(-0.1, 0.1, n)
    return h


EMULATION_CASES = {**CASES, "projective_horizon": ("projective", {}, _horizon)}


def case(name, rng, n=N, dtype=np.float64):
    """(transform, kwargs, C-contiguous params of `dtype`)."""
    transform, kwargs, make = EMULATION_CASES[name]
    return transform, kwargs, np.ascontiguousarray(make(rng, n), dtype)


def input_pixels(grid, height, width, align_corners):
    """Normalized grid -> the input pixel coordinates it samples (x, y)."""
    sizes = np.array([width, height], np.float64)
    if align_corners:
        return (grid + 1) / 2 * (sizes - 1)
    return ((grid + 1) * sizes - 1) / 2


KINK_GAP = 1e-3  # pixels; a parameter step of 1e-6 moves a point far less than this


def clear_params(name, rng, align, n=N, height=H, width=W, out=(HO, WO), shared=False):
    """(transform, kwargs, params) drawn until every sample point is at least KINK_GAP pixels
    from any multiple of 0.5 (cell edges, border clamps, reflection edges, nearest rounding),
    as conftest.random_grid keeps its points: then central differences never straddle a kink.
    Points beyond the projective horizon (NaN) read 0 whatever the step, so they count as clear."""
    for _ in range(100):
        transform, kwargs, params = case(name, rng, 1 if shared else n)
        if shared:
            params = np.ascontiguousarray(params[0])
        grid = stn.transform_grid(params, (n, 1, *out), transform, align, **kwargs)
        fraction = np.mod(input_pixels(grid, height, width, align), 0.5)
        with np.errstate(invalid="ignore"):
            kinked = (fraction < KINK_GAP) | (fraction > 0.5 - KINK_GAP)
        if not kinked.any():
            return transform, kwargs, params
    raise AssertionError(f"no {name} params clear of kinks in 100 draws")


def weighted_sum(weights):
    return lambda output: float(np.sum(output * weights))


def base_coords(size, align_corners):
    """torch's affine_grid base coordinates along one axis, written out here."""
    i = np.arange(size, dtype=np.float64)
    if size == 1:
        return np.zeros(1)
    return -1.0 + 2.0 * i / (size - 1) if align_corners else (2.0 * i + 1.0) / size - 1.0


def base_points(height, width, align_corners):
    """(H, W, 2) base grid points (x, y)."""
    x, y = base_coords(width, align_corners), base_coords(height, align_corners)
    return np.stack(np.broadcast_arrays(x[None, :], y[:, None]), -1)


def identity_grid(n, height, width, align_corners, dtype=np.float64):
    theta = np.broadcast_to(np.eye(2, 3, dtype=dtype), (n, 2, 3)).copy()
    return stn.affine_grid(theta, (n, 1, height, width), align_corners)


# --------------------------------------------------------------------------------------------
# 1. Gradients, float64 central differences.


@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", GRAD_MODES)
@pytest.mark.parametrize("name", CASE_IDS)
def test_family_gradients(rng, name, mode, padding, align):
    transform, kwargs, params = clear_params(name, rng, align)
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((N, C, HO, WO))
    loss = weighted_sum(weights)

    def forward(v, p):
        return stn.spatial_transform(v, p, (HO, WO), mode, padding, align, transform=transform,
                                     **kwargs)

    grad_input, grad_theta = stn.spatial_transform_backward(
        weights, x, params, (HO, WO), mode, padding, align, transform=transform, **kwargs)
    assert grad_theta.shape == params.shape and grad_theta.dtype == params.dtype
    assert grad_input.shape == x.shape
    assert np.abs(grad_theta).max() > 1e-3  # the check below compares something
    assert_gradient(lambda p: loss(forward(x, p)), params, grad_theta)
    assert_gradient(lambda v: loss(forward(v, params)), x, grad_input)


@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
@pytest.mark.parametrize("name", CASE_IDS)
def test_shared_params_sum_over_the_batch(rng, name, align):
    transform, kwargs, shared = clear_params(name, rng, align, shared=True)
    batched = np.ascontiguousarray(np.broadcast_to(shared, (N, *shared.shape)))
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((N, C, HO, WO))
    options = dict(out_size=(HO, WO), padding_mode="border", align_corners=align,
                   transform=transform, **kwargs)

    np.testing.assert_array_equal(stn.spatial_transform(x, shared, **options),
                                  stn.spatial_transform(x, batched, **options))
    grad_input, grad_shared = stn.spatial_transform_backward(weights, x, shared, **options)
    grad_input_batched, grad_batched = stn.spatial_transform_backward(weights, x, batched, **options)
    assert grad_shared.shape == shared.shape
    np.testing.assert_array_equal(grad_input, grad_input_batched)
    np.testing.assert_allclose(grad_shared, grad_batched.sum(0), rtol=1e-12, atol=1e-12)
    assert not np.allclose(grad_batched[0], grad_batched[1])  # both images really contribute
    loss = weighted_sum(weights)
    assert_gradient(lambda p: loss(stn.spatial_transform(x, p, **options)), shared, grad_shared)

    size = (N, C, HO, WO)
    grid_options = dict(transform=transform, align_corners=align, **kwargs)
    np.testing.assert_array_equal(stn.transform_grid(shared, size, **grid_options),
                                  stn.transform_grid(batched, size, **grid_options))
    grad_grid = rng.standard_normal((N, HO, WO, 2))
    np.testing.assert_allclose(
        stn.transform_grid_backward(grad_grid, shared, size, **grid_options),
        stn.transform_grid_backward(grad_grid, batched, size, **grid_options).sum(0),
        rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared", (False, True), ids=("batched", "shared"))
@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
@pytest.mark.parametrize("name", CASE_IDS)
def test_transform_grid_backward_is_the_adjoint(rng, name, align, shared):
    transform, kwargs, params = case(name, rng)
    if shared:
        params = np.ascontiguousarray(params[0])
    size = (N, C, HO, WO)
    grad_grid = rng.standard_normal((N, HO, WO, 2))
    options = dict(transform=transform, align_corners=align, **kwargs)
    grad_theta = stn.transform_grid_backward(grad_grid, params, size, **options)
    assert grad_theta.shape == params.shape
    # <grad_grid, d grid / d theta . v> = <grad_theta, v>: central differences, entry by entry.
    assert_gradient(lambda p: float(np.sum(stn.transform_grid(p, size, **options) * grad_grid)),
                    params, grad_theta)


@pytest.mark.parametrize("name", CASE_IDS)
def test_fused_equals_grid_then_sample(rng, name):
    """The fused transformer computes each point as transform_grid does, bit for bit, and its
    backward agrees with grid_sample_backward followed by transform_grid_backward."""
    transform, kwargs, params = case(name, rng)
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((N, C, HO, WO))
    for mode, padding, align in itertools.product(MODE_CODE, PADDINGS, (False, True)):
        options = dict(transform=transform, align_corners=align, **kwargs)
        grid = stn.transform_grid(params, (N, C, HO, WO), **options)
        fused = stn.spatial_transform(x, params, (HO, WO), mode, padding, **options)
        np.testing.assert_array_equal(fused, stn.grid_sample(x, grid, mode, padding, align))
        grad_input, grad_theta = stn.spatial_transform_backward(weights, x, params, (HO, WO), mode,
                                                                padding, **options)
        grad_input_2, grad_grid = stn.grid_sample_backward(weights, x, grid, mode, padding, align)
        np.testing.assert_array_equal(grad_input, grad_input_2)
        no_input_grad = stn.spatial_transform_backward(weights, x, params, (HO, WO), mode, padding,
                                                       input_grad=False, **options)
        assert no_input_grad[0] is None
        np.testing.assert_array_equal(no_input_grad[1], grad_theta)
        np.testing.assert_allclose(
            grad_theta, stn.transform_grid_backward(grad_grid, params, (N, C, HO, WO), **options),
            rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------------------------
# 2. Closed forms.

# Sizes whose align_corners base coordinates -1 + 2 i / (S - 1) and their unnormalization
# (g + 1) / 2 * (S - 1) are exact in float32 and float64 (S - 1 a power of two): there a map
# onto whole pixels must reproduce them bit for bit with every interpolation mode. (On other
# sizes the base grid itself rounds, so bilinear is exact only to a few ulps, as in PyTorch;
# see test_quarter_turns_on_other_sizes.)
EXACT_SIZES = (3, 5, 9, 17)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ("bilinear", "nearest", "bicubic"))
@pytest.mark.parametrize("beta,k", [(0.5, 1), (1.0, 2), (-0.5, -1), (1.5, -1), (-1.0, 2), (2.0, 0)])
def test_quarter_turns_are_rot90(rng, dtype, mode, beta, k):
    for size in EXACT_SIZES:
        img = rng.standard_normal((2, 3, size, size)).astype(dtype)
        for params in (np.array([beta], dtype), np.array([beta, 0.0, 0.0], dtype)):
            out = stn.spatial_transform(img, params, mode=mode, align_corners=True,
                                        transform="rotation")
            np.testing.assert_array_equal(out, np.rot90(img, k=k, axes=(-2, -1)))
    # A non-square image: a quarter turn of (H, W) is (W, H).
    img = rng.standard_normal((1, 2, 5, 9)).astype(dtype)
    expected = np.rot90(img, k=k, axes=(-2, -1))
    out = stn.spatial_transform(img, np.array([beta], dtype), expected.shape[-2:], mode=mode,
                                align_corners=True, transform="rotation")
    np.testing.assert_array_equal(out, expected)


def test_quarter_turn_direction(rng):
    """theta = [[cos, -sin], [sin, cos]] maps output (x = column, y = row) to the input, so a
    quarter turn reads column j of output row i from input (row j, column S - 1 - i): rot90 k=1,
    counter-clockwise on screen, and not k=-1."""
    img = np.arange(25.0).reshape(1, 1, 5, 5)
    out = stn.spatial_transform(img, np.array([0.5]), align_corners=True, transform="rotation")
    assert out[0, 0, 0, 0] == img[0, 0, 0, 4] and out[0, 0, 4, 0] == img[0, 0, 0, 0]
    assert not np.array_equal(out, np.rot90(img, k=-1, axes=(-2, -1)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_quarter_turns_on_other_sizes(rng, dtype):
    """Nearest is exact on every size; bilinear is within a few ulps (the base grid rounds)."""
    for size in (2, 4, 6, 7, 12, 20):
        img = rng.standard_normal((1, 2, size, size)).astype(dtype)
        for beta, k in ((0.5, 1), (1.0, 2), (-0.5, -1)):
            params = np.array([beta], dtype)
            expected = np.rot90(img, k=k, axes=(-2, -1))
            out = stn.spatial_transform(img, params, mode="nearest", align_corners=True,
                                        transform="rotation")
            np.testing.assert_array_equal(out, expected)
            out = stn.spatial_transform(img, params, align_corners=True, transform="rotation")
            bound = 4 * size * np.finfo(dtype).eps * np.abs(img).max()
            np.testing.assert_allclose(out, expected, rtol=0, atol=bound)


def shifted(img, dy, dx):
    """out[..., r, c] = img[..., r + dy, c + dx], 0 where that is outside."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    rows, cols = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[..., rows, cols] = img[..., rows.start + dy:rows.stop + dy, cols.start + dx:cols.stop + dx]
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", ("bilinear", "nearest", "bicubic"))
@pytest.mark.parametrize("align,h,w", [(True, 5, 9), (False, 8, 16)], ids=("corners_in", "corners_out"))
def test_whole_pixel_translation_is_a_shift(rng, dtype, mode, align, h, w):
    img = rng.standard_normal((2, 2, h, w)).astype(dtype)
    # One pixel in normalized units: 2 / (S - 1) with align_corners, else 2 / S (exact here).
    step_x, step_y = (2 / (w - 1), 2 / (h - 1)) if align else (2 / w, 2 / h)
    for dy, dx in ((0, 1), (1, 0), (-2, 3), (1, -4), (0, 0), (h, 0)):
        tx, ty = dx * step_x, dy * step_y
        expected = shifted(img, dy, dx)
        for transform, params in (("translation", [tx, ty]),
                                  ("scale_translation", [1, tx, ty]),
                                  ("rotation", [0, tx, ty]),
                                  ("rigid", [0, tx, ty]),
                                  ("similarity", [1, 0, tx, ty]),
                                  ("affine", [[1, 0, tx], [0, 1, ty]]),
                                  ("projective", [1, 0, tx, 0, 1, ty, 0, 0])):
            out = stn.spatial_transform(img, np.array(params, dtype), mode=mode,
                                        align_corners=align, transform=transform)
            np.testing.assert_array_equal(out, expected, err_msg=f"{transform} by ({dy}, {dx})")


IDENTITY_FAMILIES = [("affine", {}), ("affine", {"fixed": FIXED}),
                     ("affine", {"fixed": {"theta_1_1": 1.0, "theta_2_3": 0.0}}),
                     ("translation", {}), ("scale_translation", {}), ("rotation", {}),
                     ("rotation", {"translation": False}), ("rigid", {}), ("similarity", {}),
                     ("projective", {}), ("tps", {"tps_grid": (3, 3)}), ("tps", {"tps_grid": (2, 3)}),
                     ("tps", {"tps_grid": (8, 8)})]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("transform,extra", IDENTITY_FAMILIES,
                         ids=[f"{t}{i}" for i, (t, _) in enumerate(IDENTITY_FAMILIES)])
def test_identity_params_reproduce_the_input(rng, dtype, transform, extra):
    fixed = extra.get("fixed")
    for align, h, w in ((True, 5, 9), (False, 8, 16)):
        img = rng.standard_normal((2, 3, h, w)).astype(dtype)
        for batch in (2, None):
            params = transforms.identity_params(transform, batch, dtype=dtype, **extra)
            assert params.dtype == dtype
            kwargs = {"fixed": fixed}
            if transform == "tps":
                kwargs["tps_grid"] = extra["tps_grid"]
            for mode in ("bilinear", "nearest", "bicubic"):
                out = stn.spatial_transform(img, params, mode=mode, align_corners=align,
                                            transform=transform, **kwargs)
                if transform == "tps" and mode != "nearest":
                    # float32 TPS coordinates carry up to ~3e-5 of rounding (8 x 8, see
                    # test_tps_at_rest_is_the_identity): that many pixels times the steepest step.
                    if dtype == np.float64:
                        tol = 1e-12 * np.abs(img).max()
                    else:
                        steepest = max(np.abs(np.diff(img, axis=a)).max() for a in (-1, -2))
                        tol = 5e-5 * max(h, w) / 2 * 2 * steepest
                    np.testing.assert_allclose(out, img, rtol=0, atol=tol)
                else:
                    np.testing.assert_array_equal(out, img)


# --------------------------------------------------------------------------------------------
# 3. Thin-plate splines against a numpy solution written here.


def radial(d2):
    """U = r^2 log r^2 from r^2, 0 at r = 0."""
    safe = np.where(d2 > 0, d2, 1.0)
    return np.where(d2 > 0, d2 * np.log(safe), 0.0)


def numpy_tps(targets, grid_h, grid_w, out_h, out_w, align_corners):
    """The spline through control points (rest layout -> targets (K, 2)) evaluated on the base
    grid: solve [[U, P], [P^T, 0]] [w; a] = [targets; 0], then sum_k w_k U(|p - c_k|) + a0 +
    ax x + ay y."""
    xs, ys = np.linspace(-1, 1, grid_w), np.linspace(-1, 1, grid_h)
    ctrl = np.array([(x, y) for y in ys for x in xs])
    k = len(ctrl)
    p = np.column_stack([np.ones(k), ctrl])
    system = np.block([[radial(((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)), p],
                       [p.T, np.zeros((3, 3))]])
    coefficients = np.linalg.solve(system, np.vstack([targets, np.zeros((3, 2))]))
    weights, affine = coefficients[:k], coefficients[k:]
    points = base_points(out_h, out_w, align_corners)
    u = radial(((points[:, :, None, :] - ctrl) ** 2).sum(-1))  # (Ho, Wo, K)
    return (u @ weights + affine[0] + points[..., :1] * affine[1] + points[..., 1:] * affine[2])


@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
@pytest.mark.parametrize("layout", [(2, 2), (3, 3), (2, 3), (4, 3), (8, 8)], ids=str)
def test_tps_at_rest_is_the_identity(align, layout):
    rest = transforms.tps_control_points(*layout)
    np.testing.assert_allclose(rest, numpy_tps(rest, *layout, *layout, True).reshape(-1, 2),
                               atol=1e-12)  # the layout of the docs: row-major (x, y)
    # float32 solves and stores the spline in float32: 64 radial terms round to ~3e-5.
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 5e-5)):
        grid = stn.transform_grid(rest.astype(dtype), (2, 1, 5, 7), "tps", align, tps_grid=layout)
        np.testing.assert_allclose(grid, identity_grid(2, 5, 7, align, dtype), rtol=0, atol=tol)


@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
@pytest.mark.parametrize("layout", [(3, 3), (2, 3), (3, 2), (4, 4), (5, 3), (8, 8)], ids=str)
def test_tps_matches_numpy(rng, align, layout):
    k = layout[0] * layout[1]
    targets = transforms.tps_control_points(*layout) + 0.2 * rng.standard_normal((N, k, 2))
    expected = np.stack([numpy_tps(t, *layout, 6, 7, align) for t in targets])
    # float32: the solution matrix stays float64; what is left is the float32 rounding of
    # the targets, the coefficients and the point.
    tol32 = 4e-6
    for dtype, tol in ((np.float64, 1e-11), (np.float32, tol32)):
        grid = stn.transform_grid(targets.astype(dtype), (N, 1, 6, 7), "tps", align,
                                  tps_grid=layout)
        assert grid.dtype == dtype
        np.testing.assert_allclose(grid, expected, rtol=0, atol=tol)
    shared = stn.transform_grid(targets[1], (N, 1, 6, 7), "tps", align, tps_grid=layout)
    np.testing.assert_allclose(shared, np.stack([expected[1]] * N), rtol=0, atol=1e-11)


@pytest.mark.parametrize("layout,out", [((3, 3), (5, 5)), ((2, 3), (5, 9)), ((4, 2), (7, 5))],
                         ids=str)
def test_tps_interpolates_its_control_points(rng, layout, out):
    """With align_corners an output pixel can sit exactly on a control point: the spline
    takes that control point to where it was displaced."""
    grid_h, grid_w = layout
    out_h, out_w = out
    targets = transforms.tps_control_points(*layout) + 0.3 * rng.standard_normal((1, grid_h * grid_w, 2))
    grid = stn.transform_grid(targets, (1, 1, out_h, out_w), "tps", True, tps_grid=layout)
    row_step, col_step = (out_h - 1) // (grid_h - 1), (out_w - 1) // (grid_w - 1)
    at_controls = grid[0, ::row_step, ::col_step].reshape(-1, 2)
    np.testing.assert_allclose(at_controls, targets[0], rtol=0, atol=1e-12)
    # ...and between them it does not just interpolate linearly: the spline bends.
    assert np.abs(grid - identity_grid(1, out_h, out_w, True)).max() > 0.05


# --------------------------------------------------------------------------------------------
# 4. Projective.


def numpy_homography(h, out_h, out_w, align_corners):
    """(N, 8) -> (N, Ho, Wo, 2): (h0 x + h1 y + h2, h3 x + h4 y + h5) / (h6 x + h7 y + 1)."""
    points = base_points(out_h, out_w, align_corners)
    x, y = points[..., 0], points[..., 1]
    out = []
    for m in np.asarray(h, np.float64):
        w = m[6] * x + m[7] * y + 1
        out.append(np.stack([(m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w], -1))
    return np.array(out)


@pytest.mark.parametrize("align", (False, True), ids=("corners_out", "corners_in"))
def test_projective_matches_numpy(rng, align):
    h = PROJECTIVE_IDENTITY + rng.normal(0, [0.2] * 6 + [0.3] * 2, (3, 8))
    expected = numpy_homography(h, 6, 7, align)
    np.testing.assert_allclose(stn.transform_grid(h, (3, 1, 6, 7), "projective", align),
                               expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(stn.transform_grid(h.astype(np.float32), (3, 1, 6, 7),
                                                  "projective", align),
                               expected, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(stn.transforms.to_matrix("projective", h)[:, 2, :2], h[:, 6:])


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ("bilinear", "nearest", "bicubic"))
def test_points_beyond_the_horizon_read_outside(rng, mode, padding):
    """w = 2 x + 1 <= 0 for x <= -0.5: those output columns are outside the image, 0 with
    every padding mode (border padding included), and send no gradient anywhere."""
    h = np.array([[1.0, 0, 0, 0, 1, 0, 2.0, 0]])
    out_h, out_w = 4, 8  # align_corners=False: x = -0.875, -0.625 (w < 0), then w > 0
    x = rng.uniform(0.5, 1.5, (1, 2, 5, 6))  # positive, so border padding would read non-zero
    grid = stn.transform_grid(h, (1, 2, out_h, out_w), "projective")
    assert np.isnan(grid[0, :, :2]).all() and np.isfinite(grid[0, :, 2:]).all()
    out = stn.spatial_transform(x, h, (out_h, out_w), mode, padding, transform="projective")
    assert not out[..., :2].any()
    # w = 0 exactly (align_corners, x = -0.5) and 0 < w <= 1e-6 are outside too.
    for h6, inside in ((2.0, False), (1.0 - 5e-7, False), (1.0 - 2e-6, True)):
        # Column 0 (x = -1 with align_corners) has w = 1 - h6; with border padding a point at
        # w = 2e-6 is far away yet inside the map, and reads an edge pixel.
        hh = np.array([[1.0, 0, 0, 0, 1, 0, h6, 0]])
        out = stn.spatial_transform(x, hh, (5, 5), mode, padding, True, transform="projective")
        if h6 == 2.0:
            assert not out[..., :2].any()  # x = -1 and x = -0.5 (w = 0)
        elif inside and padding != "zeros":
            assert (out[..., 0] != 0).all()
        else:
            assert not out[..., 0].any()
        assert np.isfinite(out).all()

    # Gradients: weights only on the outside pixels give exactly zero gradients.
    weights = np.zeros((1, 2, out_h, out_w))
    weights[..., :2] = rng.standard_normal((1, 2, out_h, 2))
    grad_input, grad_theta = stn.spatial_transform_backward(weights, x, h, (out_h, out_w), mode,
                                                            padding, transform="projective")
    assert not grad_input.any() and not grad_theta.any()
    grad_grid = np.zeros((1, out_h, out_w, 2))
    grad_grid[:, :, :2] = 1.0
    assert not stn.transform_grid_backward(grad_grid, h, (1, 2, out_h, out_w), "projective").any()


@pytest.mark.parametrize("padding", ("zeros", "border"))
@pytest.mark.parametrize("mode", GRAD_MODES)
def test_projective_gradients_across_the_horizon(rng, mode, padding):
    """Some pixels beyond the horizon, some near it: the gradients stay finite and exact."""
    _, _, h = clear_params("projective_horizon", rng, False, out=(HO, 8))
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((N, C, HO, 8))
    loss = weighted_sum(weights)

    def forward(v, p):
        return stn.spatial_transform(v, p, (HO, 8), mode, padding, transform="projective")

    assert not forward(x, h)[..., :2].any()
    grad_input, grad_theta = stn.spatial_transform_backward(weights, x, h, (HO, 8), mode, padding,
                                                            transform="projective")
    assert np.isfinite(grad_theta).all() and np.isfinite(grad_input).all()
    assert_gradient(lambda p: loss(forward(x, p)), h, grad_theta)
    assert_gradient(lambda v: loss(forward(v, h)), x, grad_input)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("index,value", [(6, np.nan), (6, np.inf), (7, -np.inf), (7, np.nan),
                                         (6, 1e300)])
def test_non_finite_denominator_params_read_outside(rng, index, value, padding):
    h = np.array([PROJECTIVE_IDENTITY, PROJECTIVE_IDENTITY])
    h[0, index] = value
    x = rng.uniform(0.5, 1.5, (2, 2, 5, 6))
    weights = rng.standard_normal((2, 2, 4, 6))
    for mode in MODE_CODE:
        out = stn.spatial_transform(x, h, (4, 6), mode, padding, transform="projective")
        if value == 1e300:  # finite but huge: w = +-1e300 x + 1, outside only where <= 1e-6
            assert not out[0, :, :, :3].any() and np.isfinite(out).all()
        else:
            assert not out[0].any()
        np.testing.assert_array_equal(out[1], stn.spatial_transform(x[1:], h[1], (4, 6), mode,
                                                                    padding, transform="projective")[0])
        grad_input, grad_theta = stn.spatial_transform_backward(
            weights, x, h, (4, 6), mode, padding, transform="projective")
        assert np.isfinite(grad_input).all() and np.isfinite(grad_theta).all()
        if value != 1e300:
            assert not grad_theta[0].any()


NON_FINITE_NUMERATORS = pytest.mark.parametrize(
    "params", [[1.0, 0, np.inf, 0, 1, 0, 0, 0], [np.nan, 0, 0, 0, 1, 0, 0, 0],
               [1.0, 0, 0, 0, -np.inf, 0, 0, 0], [1.7e308, 1.7e308, 0, 0, 1, 0, 0, 0]],
    ids=("inf_h2", "nan_h0", "inf_h4", "overflowing_numerator"))


@NON_FINITE_NUMERATORS
@pytest.mark.parametrize("padding", PADDINGS)
def test_projective_with_a_non_finite_numerator_reads_as_affine_does(rng, params, padding):
    """With h6 = h7 = 0 the homography is the affine map of its first two rows. A point whose
    denominator is fine but whose numerator is +-inf or NaN then follows the general rule
    (stn.functional): 0 with zeros padding, +-inf clamped to the edge by border and
    reflection, NaN reads 0; exactly as the affine family reads the same point."""
    x = rng.standard_normal((1, 2, 4, 5))
    weights = rng.standard_normal((1, 2, 4, 5))
    h = np.array([params])
    theta = np.array([[params[:3], params[3:6]]])
    for mode in MODE_CODE:
        out = stn.spatial_transform(x, h, None, mode, padding, transform="projective")
        np.testing.assert_allclose(out, stn.spatial_transform(x, theta, None, mode, padding),
                                   rtol=1e-13, atol=1e-13)
        assert np.isfinite(out).all()
        grad_input, _ = stn.spatial_transform_backward(weights, x, h, None, mode, padding,
                                                       transform="projective")
        grad_input_affine, grad_affine = stn.spatial_transform_backward(weights, x, theta, None,
                                                                        mode, padding)
        np.testing.assert_allclose(grad_input, grad_input_affine, rtol=1e-13, atol=1e-13)
        assert np.isfinite(grad_affine).all()


@NON_FINITE_NUMERATORS
def test_projective_gradient_is_finite_for_non_finite_points(rng, params):
    """Such a point gets sampler gradient 0 (it reads 0, or a clamped edge), and so must be its
    share of grad_theta, as for the matrix families."""
    x = rng.standard_normal((1, 1, 4, 4))
    weights = rng.standard_normal((1, 1, 4, 4))
    _, grad_theta = stn.spatial_transform_backward(weights, x, np.array([params]),
                                                   transform="projective")
    assert np.isfinite(grad_theta).all(), grad_theta


def normalized_to_pixel(size):
    """align_corners=False: pixel = ((g + 1) * S - 1) / 2 as a 3x3 on (x, y, 1)."""
    (h, w) = size
    return np.array([[w / 2, 0, (w - 1) / 2], [0, h / 2, (h - 1) / 2], [0, 0, 1.0]])


def test_projective_matches_opencv_warp_perspective():
    cv2 = pytest.importorskip("cv2")
    h, w = 32, 40
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    img = (np.sin(0.31 * cols + 0.17 * rows) + np.cos(0.23 * rows - 0.13 * cols)).astype(np.float32)
    params = np.array([0.9, 0.06, 0.03, -0.05, 0.95, -0.02, 0.08, -0.06], np.float32)
    ours = stn.spatial_transform(img[None, None], params, transform="projective")[0, 0]

    homography = np.append(params.astype(np.float64), 1.0).reshape(3, 3)
    to_pixel = normalized_to_pixel((h, w))
    pixel_map = to_pixel @ homography @ np.linalg.inv(to_pixel)  # output pixel -> input pixel
    theirs = cv2.warpPerspective(img, pixel_map, (w, h),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    # Where each output pixel samples, computed here: compare only points well inside.
    source = np.einsum("ij,hwj->hwi", pixel_map, np.stack([cols, rows, np.ones_like(rows)], -1))
    sx, sy = source[..., 0] / source[..., 2], source[..., 1] / source[..., 2]
    interior = (sx > 1) & (sx < w - 2) & (sy > 1) & (sy < h - 2)
    assert interior.sum() > 0.6 * h * w
    # OpenCV rounds each coordinate to 1/32 pixel (INTER_BITS = 5) before interpolating: the
    # results differ by at most 1/64 pixel per axis times the image's steepest slope.
    slope = np.abs(np.diff(img, axis=1)).max() + np.abs(np.diff(img, axis=0)).max()
    tolerance = slope / 32 + 1e-5
    error = np.abs(ours - theirs)[interior]
    assert error.max() <= tolerance, (error.max(), tolerance)
    assert np.median(error) < tolerance / 4
    # ...and a map off by half a pixel (the other pixel-centre convention) is far outside it.
    half_pixel = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    wrong = cv2.warpPerspective(img, half_pixel @ pixel_map, (w, h),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    assert np.abs(ours - wrong)[interior].max() > 4 * tolerance


# --------------------------------------------------------------------------------------------
# 5. to_matrix and invert_affine.


def expected_matrix(name, p):
    """The documented matrix of one image's parameters, written out here."""
    if name == "affine":
        return p.reshape(2, 3)
    if name in ("affine_fixed", "affine_fixed_shift"):
        fixed = FIXED if name == "affine_fixed" else FIXED_SHIFT
        free = iter(p)
        return np.array([fixed[e] if e in fixed else next(free)
                         for e in transforms.THETA_ENTRIES]).reshape(2, 3)
    if name == "translation":
        return np.array([[1, 0, p[0]], [0, 1, p[1]]])
    if name == "scale_translation":
        return np.array([[p[0], 0, p[1]], [0, p[0], p[2]]])
    if name in ("rotation1", "rotation3", "rigid"):
        a = math.pi * p[0] if name != "rigid" else p[0]
        tx, ty = (p[1], p[2]) if len(p) == 3 else (0, 0)
        return np.array([[math.cos(a), -math.sin(a), tx], [math.sin(a), math.cos(a), ty]])
    if name == "similarity":
        return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]]])
    if name == "projective":
        return np.append(p, 1.0).reshape(3, 3)
    raise AssertionError(name)


MATRIX_CASES = [c for c in CASE_IDS if not c.startswith("tps")]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", MATRIX_CASES)
def test_to_matrix(rng, name, dtype):
    transform, kwargs, params = case(name, rng, n=3, dtype=dtype)
    matrices = transforms.to_matrix(transform, params, **kwargs)
    shape = (3, 3) if transform == "projective" else (2, 3)
    assert matrices.shape == (3, *shape) and matrices.dtype == dtype
    tol = 1e-15 if dtype == np.float64 else 1e-7
    for m, p in zip(matrices, params.astype(np.float64)):
        np.testing.assert_allclose(m, expected_matrix(name, p), rtol=0, atol=tol)
    if transform == "projective":
        assert (matrices[:, 2, 2] == 1).all()
    shared = transforms.to_matrix(transform, params[1], **kwargs)
    np.testing.assert_array_equal(shared, matrices[1])

    # The family's own transformer equals the affine transformer on its matrix, bit for bit.
    if transform != "projective":
        x = rng.standard_normal((3, 2, H, W)).astype(dtype)
        weights = rng.standard_normal((3, 2, HO, WO)).astype(dtype)
        for mode, padding, align in itertools.product(MODE_CODE, PADDINGS, (False, True)):
            ours = stn.spatial_transform(x, params, (HO, WO), mode, padding, align,
                                         transform=transform, **kwargs)
            np.testing.assert_array_equal(
                ours, stn.spatial_transform(x, matrices, (HO, WO), mode, padding, align))
            grad_input, _ = stn.spatial_transform_backward(weights, x, params, (HO, WO), mode,
                                                           padding, align, transform=transform,
                                                           **kwargs)
            np.testing.assert_array_equal(grad_input, stn.spatial_transform_backward(
                weights, x, matrices, (HO, WO), mode, padding, align)[0])
        np.testing.assert_array_equal(
            stn.transform_grid(params, (3, 1, HO, WO), transform, **kwargs),
            stn.affine_grid(matrices, (3, 1, HO, WO)))


def test_to_matrix_rotation_is_exact_at_quarter_turns():
    betas = np.array([[0.0], [0.5], [1.0], [1.5], [-0.5], [2.0], [-3.5]])
    expected = [[[1, 0, 0], [0, 1, 0]], [[0, -1, 0], [1, 0, 0]], [[-1, 0, 0], [0, -1, 0]],
                [[0, 1, 0], [-1, 0, 0]], [[0, 1, 0], [-1, 0, 0]], [[1, 0, 0], [0, 1, 0]],
                [[0, -1, 0], [1, 0, 0]]]
    for dtype in DTYPES:
        np.testing.assert_array_equal(transforms.to_matrix("rotation", betas.astype(dtype)),
                                      np.array(expected, dtype))


def test_to_matrix_rotation_over_many_turns(rng):
    betas = np.concatenate([np.linspace(-5, 5, 101) + 0.003, rng.uniform(-40, 40, 50)])[:, None]
    matrices = transforms.to_matrix("rotation", betas)
    angle = np.pi * betas[:, 0]
    np.testing.assert_allclose(matrices[:, 0, 0], np.cos(angle), rtol=0, atol=1e-13)
    np.testing.assert_allclose(matrices[:, 1, 0], np.sin(angle), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(matrices[:, 0, 1], -matrices[:, 1, 0])
    np.testing.assert_array_equal(matrices[:, 1, 1], matrices[:, 0, 0])
    # An even whole number of half turns is the identity, however large.
    np.testing.assert_array_equal(transforms.to_matrix("rotation", np.array([1e20])), np.eye(2, 3))


@pytest.mark.parametrize("name", CASE_IDS)
def test_non_contiguous_params(rng, name):
    transform, kwargs, params = case(name, rng)
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((N, C, HO, WO))
    strided = np.empty((*params.shape, 2))[..., 0]
    strided[...] = params
    assert not strided.flags.c_contiguous
    for other in (np.asfortranarray(params), strided):
        np.testing.assert_array_equal(
            stn.spatial_transform(x, other, (HO, WO), transform=transform, **kwargs),
            stn.spatial_transform(x, params, (HO, WO), transform=transform, **kwargs))
        grad = stn.spatial_transform_backward(weights, x, other, (HO, WO), transform=transform,
                                              **kwargs)[1]
        assert grad.shape == params.shape
        np.testing.assert_array_equal(grad, stn.spatial_transform_backward(
            weights, x, params, (HO, WO), transform=transform, **kwargs)[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_invert_affine(rng, dtype):
    theta = _affine(rng, 6).reshape(2, 3, 2, 3).astype(dtype)
    inverse = transforms.invert_affine(theta)
    assert inverse.shape == theta.shape and inverse.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    linear, shift = theta[..., :2].astype(np.float64), theta[..., 2].astype(np.float64)
    inv_linear, inv_shift = inverse[..., :2].astype(np.float64), inverse[..., 2].astype(np.float64)
    for a, b, a_inv, b_inv in ((linear, shift, inv_linear, inv_shift),
                               (inv_linear, inv_shift, linear, shift)):
        # theta o inverse: A (A' p + b') + b = p for every p.
        np.testing.assert_allclose(a @ a_inv, np.broadcast_to(np.eye(2), a.shape), atol=tol)
        np.testing.assert_allclose((a @ b_inv[..., None])[..., 0] + b, 0, atol=tol)
    # Mapping the identity grid with theta, then with its inverse, gives the grid back.
    flat, flat_inverse = theta.reshape(6, 2, 3), inverse.reshape(6, 2, 3)
    there = stn.affine_grid(flat, (6, 1, 4, 5))
    back = np.einsum("nij,nhwj->nhwi", flat_inverse[..., :2].astype(np.float64), there) + \
        flat_inverse[:, None, None, :, 2]
    np.testing.assert_allclose(back, identity_grid(6, 4, 5, False), atol=10 * tol)
    np.testing.assert_allclose(transforms.invert_affine(inverse), theta, atol=10 * tol)


def test_invert_affine_rejects_singular_and_bad_theta():
    with pytest.raises(ValueError, match="singular"):
        transforms.invert_affine(np.array([[1.0, 2, 0], [2, 4, 1]]))
    batch = np.array([[[1.0, 0, 0], [0, 1, 0]], [[0.0, 0, 1], [0, 0, 1]]])
    with pytest.raises(ValueError, match=re.escape("theta[1] is singular")):
        transforms.invert_affine(batch)
    with pytest.raises(ValueError, match="singular or not finite"):
        transforms.invert_affine(np.array([[np.nan, 0, 0], [0, 1, 0]]))
    with pytest.raises(ValueError, match=re.escape("(..., 2, 3)")):
        transforms.invert_affine(np.zeros((3, 3)))


# --------------------------------------------------------------------------------------------
# 6. The emulated device equals the CPU, bit for bit.


@pytest.mark.parametrize("deterministic", (False, True), ids=("atomic", "sorted"))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(EMULATION_CASES))
def test_emulated_device_equals_cpu(rng, name, dtype, deterministic):
    transform, kwargs, make = EMULATION_CASES[name]
    n, c, h, w, ho, wo = 2, 2, 5, 6, 7, 4
    params = np.ascontiguousarray(make(rng, n), dtype)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)
    grad_grid = rng.standard_normal((n, ho, wo, 2)).astype(dtype)
    for shared in (False, True):
        p = np.ascontiguousarray(params[0]) if shared else params
        family = transforms.resolve("test", transform, p, kwargs.get("fixed"), kwargs.get("tps_grid"))
        args, solution = family.core_args(), family.solution()
        assert (solution is None) == (transform != "tps")
        for align in (False, True):
            grid = assert_backends_agree("transform_grid", p, args, solution, shared, n, ho, wo, align)
            assert grid.shape == (n, ho, wo, 2)
            grad_theta = assert_backends_agree("transform_grid_backward", grad_grid, p, args,
                                               solution, shared, align)
            assert grad_theta.shape == p.shape
            for mode, padding in itertools.product(MODE_CODE, PADDINGS):
                m, pad = MODE_CODE[mode], PADDING_CODE[padding]
                assert_backends_agree("spatial_transform", x, p, args, solution, shared, ho, wo, m,
                                      pad, align)
                for input_grad in (True, False):
                    assert_backends_agree("spatial_transform_backward", grad_output, x, p, args,
                                          solution, shared, m, pad, align, input_grad, deterministic)


# --------------------------------------------------------------------------------------------
# 7. Bad inputs.


def _x(n=N):
    return np.zeros((n, C, H, W))


BAD_PARAMS = [
    # (transform, params shape, kwargs, message regex)
    ("projective", (N, 6), {}, r"theta for transform='projective' must be \(N, 8\) or a shared \(8,\), "
                               r"got shape \(2, 6\)"),
    ("projective", (N, 8, 1), {}, r"\(N, 8\)"),
    ("translation", (N, 3), {}, r"\(N, 2\) or a shared \(2,\)"),
    ("scale_translation", (N, 2), {}, r"\(N, 3\)"),
    ("rotation", (N, 2), {}, r"\(N, 1\) or a shared \(1,\) \(rotation takes \(N, 1\) or \(N, 3\)"),
    ("rigid", (N, 1), {}, r"\(N, 3\)"),
    ("similarity", (N, 3), {}, r"\(N, 4\)"),
    ("affine", (N, 6), {}, r"theta must be \(N, 2, 3\) or \(2, 3\)"),
    ("affine", (N, 5), {"fixed": FIXED},
     r"must be \(N, 4\) or a shared \(4,\) \(2 of the 6 entries are fixed: theta_1_2, theta_2_1\)"),
    ("tps", (N, 8, 2), {}, r"K = 8 is not a square, so pass tps_grid=\(grid_h, grid_w\)"),
    ("tps", (N, 9, 2), {"tps_grid": (2, 3)}, r"transform='tps' must be \(N, 6, 2\) or a shared \(6, 2\)"),
    ("tps", (N, 9, 3), {}, r"must be \(N, K, 2\) or a shared \(K, 2\)"),
    ("tps", (N, 18), {}, r"must be \(N, K, 2\) or a shared \(K, 2\).*got shape \(2, 18\)"),
    ("tps", (N, 4, 2), {"tps_grid": (1, 4)}, r"tps_grid must be at least 2 x 2 and have at most 64 points, got \(1, 4\)"),
    ("tps", (N, 72, 2), {"tps_grid": (9, 8)}, r"at most 64 points, got \(9, 8\)"),
    ("tps", (N, 81, 2), {}, r"at most 64 points, got \(9, 9\)"),
    ("tps", (N, 1, 2), {}, r"at least 2 x 2"),
    ("homography", (N, 8), {}, r"transform must be one of \['affine', .*'tps'\], got 'homography'"),
    ("Affine", (N, 2, 3), {}, r"transform must be one of"),
    ("translation", (N, 2), {"fixed": {"theta_1_1": 1.0}},
     r"fixed entries apply to transform='affine' only, got transform='translation'"),
    ("affine", (N, 5), {"fixed": {"theta_3_1": 1.0}}, r"fixed keys must be among .*got 'theta_3_1'"),
    ("affine", (N, 5), {"fixed": {"theta_1_1": math.inf}}, r"fixed\['theta_1_1'\] must be a finite number"),
    ("affine", (N, 5), {"fixed": {"theta_1_1": True}}, r"must be a finite number, got True"),
    ("translation", (N, 2), {"tps_grid": (2, 2)}, r"tps_grid applies to transform='tps' only"),
    # batch mismatch
    ("translation", (N + 1, 2), {}, r"theta batch 3 must equal the input batch 2"),
    ("tps", (N + 1, 9, 2), {}, r"theta batch 3 must equal the input batch 2"),
    ("affine", (N + 1, 2, 3), {}, r"theta batch 3 must equal the input batch 2"),
    ("affine", (1, 4), {"fixed": FIXED}, r"theta batch 1 must equal the input batch 2"),
]


@pytest.mark.parametrize("transform,shape,kwargs,message", BAD_PARAMS,
                         ids=[f"{i}-{t}-{'x'.join(map(str, s))}" for i, (t, s, _, _) in enumerate(BAD_PARAMS)])
def test_bad_params_are_rejected(transform, shape, kwargs, message):
    params = np.zeros(shape)
    calls = {
        "spatial_transform": lambda: stn.spatial_transform(_x(), params, transform=transform, **kwargs),
        "spatial_transform_backward": lambda: stn.spatial_transform_backward(
            np.zeros((N, C, H, W)), _x(), params, transform=transform, **kwargs),
        "transform_grid": lambda: stn.transform_grid(params, (N, C, 4, 4), transform, **kwargs),
        "transform_grid_backward": lambda: stn.transform_grid_backward(
            np.zeros((N, 4, 4, 2)), params, (N, C, 4, 4), transform, **kwargs),
    }
    for fn, call in calls.items():
        expected = message.replace("the input batch", "size\\[0\\]") if fn.startswith("transform_grid") \
            else message
        with pytest.raises(ValueError, match=re.escape(f"stn.{fn}: ") + ".*" + expected):
            call()


def test_fixed_must_be_a_dict():
    with pytest.raises(TypeError, match=r"fixed must be a dict such as \{'theta_1_1': 0.5\}, got list"):
        stn.spatial_transform(_x(), np.zeros((N, 5)), fixed=[("theta_1_1", 1.0)])


def test_empty_fixed_is_plain_affine(rng):
    x = rng.standard_normal((N, C, H, W))
    theta = _affine(rng, N)
    np.testing.assert_array_equal(stn.spatial_transform(x, theta, fixed={}),
                                  stn.spatial_transform(x, theta))


def test_to_matrix_and_identity_params_reject_bad_families():
    with pytest.raises(ValueError, match=r"tps is not a matrix"):
        transforms.to_matrix("tps", np.zeros((9, 2)))
    with pytest.raises(ValueError, match=r"family must be one of"):
        transforms.to_matrix("shear", np.zeros((2,)))
    with pytest.raises(ValueError, match=r"params for transform='projective' must be \(N, 8\)"):
        transforms.to_matrix("projective", np.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"transform must be one of"):
        transforms.identity_params("shear", 2)
    with pytest.raises(ValueError, match=r"fixed keys must be among"):
        transforms.identity_params("affine", 2, fixed={"theta_9": 0.0})


def test_tps_solution_is_cached_and_read_only():
    solution = transforms.tps_solution(3, 3)
    assert solution.shape == (12, 9) and transforms.tps_solution(3, 3) is solution
    with pytest.raises(ValueError, match="read-only"):
        solution[0, 0] = 1.0
    # Its affine rows reproduce the control points: a_0 + a_x x + a_y y at c_k gives c_k.
    rest = transforms.tps_control_points(3, 3)
    coefficients = solution @ rest
    np.testing.assert_allclose(coefficients[:9], 0, atol=1e-13)  # no bending at rest
    np.testing.assert_allclose(coefficients[9:], [[0, 0], [1, 0], [0, 1]], atol=1e-13)
