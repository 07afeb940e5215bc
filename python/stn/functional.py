"""The numpy API: affine grid, sampler, fused transformer, and their backward passes.

Semantics are those of torch.nn.functional.affine_grid and grid_sample on 4-D inputs:
  * input is (N, C, H, W); grid is (N, Ho, Wo, 2) with grid[..., 0] = x (the column, along W)
    and grid[..., 1] = y (the row, along H), both normalized to [-1, 1];
  * align_corners=True puts -1 and +1 at the centres of the corner pixels, False at their
    outer edges;
  * theta is (N, 2, 3) and maps output coordinates to input coordinates:
    (x_in, y_in) = theta @ (x_out, y_out, 1). transform="..." picks another family of maps
    (translation, rotation, similarity, projective, thin-plate spline, ...): see
    stn.transforms for each family's parameters.
A non-finite or huge coordinate counts as outside the image: with zeros padding it
contributes 0; border and reflection padding clamp +-Inf to the nearest edge (NaN reads 0).
(On a single-pixel axis with align_corners=True every finite value, 1e30 included, is that
pixel, as in PyTorch.)

Arrays are float32 or float64 (never mixed); outputs have the input's dtype. CUDA arrays
(CuPy, or anything with __cuda_array_interface__) run on the GPU and return CuPy arrays.
"""

from __future__ import annotations

import numpy as np

from . import _core, _cuda
from . import _validate as check
from . import transforms


def _host_arrays(function: str, **arrays):
    """float32/float64 numpy arrays of one dtype in native byte order, C-contiguous (copied
    only if needed)."""
    converted = {name: check.float_array(function, name, a) for name, a in arrays.items()}
    check.same_dtype(function, **converted)
    return [a if a.flags.c_contiguous and type(a) is np.ndarray else np.asarray(a, order="C")
            for a in converted.values()]


def _same_kind(result):
    return result


def _arrays(function: str, **arrays):
    """Returns (on_gpu, [arrays...] ready for the kernels, a function that turns results back
    into the caller's array type)."""
    if _cuda.any_on_gpu(function, **arrays):
        device_arrays, to_caller = _cuda.device_arrays(function, **arrays)
        return True, device_arrays, to_caller
    return False, _host_arrays(function, **arrays), _same_kind


def _options(function: str, mode, padding_mode, align_corners):
    return (
        check.mode_code(function, mode),
        check.padding_code(function, padding_mode),
        check.flag(function, "align_corners", align_corners),
    )


def _family(function, transform, params, fixed, tps_grid, batch, batch_source):
    """(Family, shared) for params of `transform`, checked against the batch."""
    family = transforms.resolve(function, transform, params, fixed, tps_grid)
    shared = transforms.params_layout(function, family, params, batch, batch_source)
    return family, shared


def _solution(family, like, on_gpu):
    solution = family.solution()
    if solution is None or not on_gpu:
        return solution
    return _cuda.to_device(solution, like)


def transform_grid(theta, size, transform="affine", align_corners=False, fixed=None,
                   tps_grid=None):
    """The grid generator of any family: params -> grid (N, H, W, 2) for an output of size
    (N, C, H, W). theta holds the family's parameters (see stn.transforms); without the
    leading N they are shared by the whole batch."""
    return _transform_grid("transform_grid", theta, size, transform, align_corners, fixed, tps_grid)


def _transform_grid(fn, theta, size, transform, align_corners, fixed, tps_grid):
    batch, _, height, width = check.positive_ints(fn, "size", size, 4, "(N, C, H, W)")
    align_corners = check.flag(fn, "align_corners", align_corners)
    on_gpu, (theta,), to_caller = _arrays(fn, theta=theta)
    family, shared = _family(fn, transform, theta, fixed, tps_grid, batch, "size[0]")
    solution = _solution(family, theta, on_gpu)
    if on_gpu:
        return to_caller(_cuda.transform_grid(theta, family, solution, shared, batch, height,
                                              width, align_corners))
    return _core.transform_grid(theta, family.core_args(), solution, shared, batch, height, width,
                                align_corners)


def transform_grid_backward(grad_grid, theta, size, transform="affine", align_corners=False,
                            fixed=None, tps_grid=None):
    """grad_grid (N, H, W, 2) -> grad_theta with theta's shape: the adjoint of transform_grid
    at theta (shared parameters sum over the batch)."""
    return _transform_grid_backward("transform_grid_backward", grad_grid, theta, size, transform,
                                    align_corners, fixed, tps_grid)


def _transform_grid_backward(fn, grad_grid, theta, size, transform, align_corners, fixed,
                             tps_grid):
    batch, _, height, width = check.positive_ints(fn, "size", size, 4, "(N, C, H, W)")
    align_corners = check.flag(fn, "align_corners", align_corners)
    on_gpu, (grad_grid, theta), to_caller = _arrays(fn, grad_grid=grad_grid, theta=theta)
    _grad_grid_matches(fn, grad_grid, batch, height, width, size)
    family, shared = _family(fn, transform, theta, fixed, tps_grid, batch, "size[0]")
    solution = _solution(family, theta, on_gpu)
    if on_gpu:
        return to_caller(_cuda.transform_grid_backward(grad_grid, theta, family, solution, shared,
                                                       align_corners))
    return _core.transform_grid_backward(grad_grid, theta, family.core_args(), solution, shared,
                                         align_corners)


def _grad_grid_matches(fn, grad_grid, batch, height, width, size):
    if tuple(grad_grid.shape) != (batch, height, width, 2):
        raise ValueError(
            f"stn.{fn}: grad_grid must be (N, H, W, 2) = {(batch, height, width, 2)} "
            f"for size {tuple(size)}, got {check.shape_text(grad_grid)}"
        )


def affine_grid(theta, size, align_corners=False):
    """theta (N, 2, 3) -> grid (N, H, W, 2) for an output of size (N, C, H, W).

    A (2, 3) theta is shared by the whole batch.
    """
    return _transform_grid("affine_grid", theta, size, "affine", align_corners, None, None)


def affine_grid_backward(grad_grid, size, align_corners=False):
    """grad_grid (N, H, W, 2) -> grad_theta (N, 2, 3): the adjoint of affine_grid."""
    fn = "affine_grid_backward"
    batch, _, height, width = check.positive_ints(fn, "size", size, 4, "(N, C, H, W)")
    align_corners = check.flag(fn, "align_corners", align_corners)
    on_gpu, (grad_grid,), _ = _arrays(fn, grad_grid=grad_grid)
    _grad_grid_matches(fn, grad_grid, batch, height, width, size)
    # The affine adjoint does not depend on theta: any theta of the right shape will do.
    zeros = _cuda.zeros_like_shape(grad_grid, (batch, 2, 3)) if on_gpu else np.zeros(
        (batch, 2, 3), grad_grid.dtype)
    return _transform_grid_backward(fn, grad_grid, zeros, size, "affine", align_corners, None, None)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Samples input (N, C, H, W) at grid (N, Ho, Wo, 2) -> output (N, C, Ho, Wo)."""
    fn = "grid_sample"
    options = _options(fn, mode, padding_mode, align_corners)
    on_gpu, (input, grid), to_caller = _arrays(fn, input=input, grid=grid)
    check.grid_matches_input(fn, input, grid)
    if on_gpu:
        return to_caller(_cuda.grid_sample(input, grid, *options))
    return _core.grid_sample(input, grid, *options)


def grid_sample_backward(grad_output, input, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False, input_grad=True, deterministic=False):
    """Returns (grad_input or None, grad_grid) for grid_sample.

    input_grad=False spends no work at all on grad_input (Caffe's to_compute_dU: false).
    deterministic=True makes the GPU's grad_input free of atomics and reproducible; the CPU
    is always deterministic, bit for bit, for any thread count.
    """
    fn = "grid_sample_backward"
    options = _options(fn, mode, padding_mode, align_corners)
    input_grad = check.flag(fn, "input_grad", input_grad)
    deterministic = check.flag(fn, "deterministic", deterministic)
    on_gpu, (grad_output, input, grid), to_caller = _arrays(
        fn, grad_output=grad_output, input=input, grid=grid)
    check.grid_matches_input(fn, input, grid)
    expected = (input.shape[0], input.shape[1], grid.shape[1], grid.shape[2])
    check.grad_output_matches(fn, grad_output, expected)
    if on_gpu:
        return to_caller(_cuda.grid_sample_backward(grad_output, input, grid, *options, input_grad, deterministic))
    return _core.grid_sample_backward(grad_output, input, grid, *options, input_grad, deterministic)


def _fused_shapes(fn, input, out_size):
    check.ndim(fn, "input", input, 4, "(N, C, H, W)")
    check.not_empty(fn, "input", input)
    if out_size is None:
        return int(input.shape[2]), int(input.shape[3])
    return check.positive_ints(fn, "out_size", out_size, 2, "(Ho, Wo)")


def spatial_transform(input, theta, out_size=None, mode="bilinear", padding_mode="zeros",
                      align_corners=False, transform="affine", fixed=None, tps_grid=None):
    """Fused grid generator + sampler: input (N, C, H, W) -> output (N, C, Ho, Wo), out_size =
    (Ho, Wo) defaulting to (H, W).

    theta is (N, 2, 3) or a shared (2, 3) for the default transform="affine"; other families
    ("translation", "scale_translation", "rotation", "rigid", "similarity", "projective",
    "tps") take their own parameters, listed in stn.transforms. fixed={"theta_1_1": 0.5, ...}
    fixes affine entries (theta then holds the others); tps_grid=(grid_h, grid_w) gives the
    TPS control-point layout when K is not a square. The grid is never materialized: each
    output pixel computes its coordinates from the parameters.
    """
    fn = "spatial_transform"
    options = _options(fn, mode, padding_mode, align_corners)
    on_gpu, (input, theta), to_caller = _arrays(fn, input=input, theta=theta)
    out_height, out_width = _fused_shapes(fn, input, out_size)
    family, shared = _family(fn, transform, theta, fixed, tps_grid, input.shape[0], "the input batch")
    solution = _solution(family, theta, on_gpu)
    if on_gpu:
        return to_caller(_cuda.spatial_transform(input, theta, family, solution, shared,
                                                 out_height, out_width, *options))
    return _core.spatial_transform(input, theta, family.core_args(), solution, shared, out_height,
                                   out_width, *options)


def spatial_transform_backward(grad_output, input, theta, out_size=None, mode="bilinear",
                               padding_mode="zeros", align_corners=False, input_grad=True,
                               deterministic=False, transform="affine", fixed=None,
                               tps_grid=None):
    """Returns (grad_input or None, grad_theta) for spatial_transform.

    grad_theta has theta's shape, for every family; shared parameters sum over the batch.
    It is accumulated directly from the per-pixel gradients, with no grid-gradient array.
    """
    fn = "spatial_transform_backward"
    options = _options(fn, mode, padding_mode, align_corners)
    input_grad = check.flag(fn, "input_grad", input_grad)
    deterministic = check.flag(fn, "deterministic", deterministic)
    on_gpu, (grad_output, input, theta), to_caller = _arrays(
        fn, grad_output=grad_output, input=input, theta=theta)
    out_height, out_width = _fused_shapes(fn, input, out_size)
    family, shared = _family(fn, transform, theta, fixed, tps_grid, input.shape[0], "the input batch")
    expected = (input.shape[0], input.shape[1], out_height, out_width)
    check.grad_output_matches(fn, grad_output, expected)
    solution = _solution(family, theta, on_gpu)
    if on_gpu:
        return to_caller(_cuda.spatial_transform_backward(
            grad_output, input, theta, family, solution, shared, *options, input_grad,
            deterministic))
    return _core.spatial_transform_backward(
        grad_output, input, theta, family.core_args(), solution, shared, *options, input_grad,
        deterministic)


MAX_THREADS = 4096  # far beyond any machine; keeps the value inside a C int


def set_num_threads(n: int) -> None:
    """Sets the number of CPU threads every kernel uses (results do not depend on it)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"stn.set_num_threads: n must be an int, got {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"stn.set_num_threads: n must be an int in [1, {MAX_THREADS}], got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_output_cache_bytes(n: int) -> None:
    """Sets how many bytes of freed output arrays stn keeps for its next calls (default
    256 MiB; 0 keeps none). Outputs of 1 MiB and more (the warp, grad_input, grids) live in
    memory stn recycles: a fresh allocation of that size costs the kernel's zeroing of every
    page, a third of a large warp's time. Only idle memory counts against the limit."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"stn.set_output_cache_bytes: n must be an int, got {n!r}")
    if n < 0:
        raise ValueError(f"stn.set_output_cache_bytes: n must be >= 0, got {n!r}")
    _core.set_output_cache_bytes(int(n))


def get_output_cache_bytes() -> int:
    return _core.output_cache_bytes()


def build_info() -> dict:
    """Compiler, SIMD level, OpenMP threads and the CUDA architectures compiled in."""
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when the CUDA kernels were compiled in and a GPU is visible."""
    return bool(_core.cuda_compiled) and _core.cuda_device_count() > 0
