"""The numpy API: affine grid, sampler, fused transformer, and their backward passes.

Semantics are those of torch.nn.functional.affine_grid and grid_sample on 4-D inputs:
  * input is (N, C, H, W); grid is (N, Ho, Wo, 2) with grid[..., 0] = x (the column, along W)
    and grid[..., 1] = y (the row, along H), both normalized to [-1, 1];
  * align_corners=True puts -1 and +1 at the centres of the corner pixels, False at their
    outer edges;
  * theta is (N, 2, 3) and maps output coordinates to input coordinates:
    (x_in, y_in) = theta @ (x_out, y_out, 1).
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


def _host_arrays(function: str, **arrays):
    """float32/float64 numpy arrays of one dtype in native byte order, C-contiguous (copied
    only if needed)."""
    converted = {name: check.float_array(function, name, a) for name, a in arrays.items()}
    check.same_dtype(function, **converted)
    return [np.asarray(a, order="C") for a in converted.values()]


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


def affine_grid(theta, size, align_corners=False):
    """theta (N, 2, 3) -> grid (N, H, W, 2) for an output of size (N, C, H, W).

    A (2, 3) theta is shared by the whole batch.
    """
    fn = "affine_grid"
    batch, _, height, width = check.positive_ints(fn, "size", size, 4, "(N, C, H, W)")
    align_corners = check.flag(fn, "align_corners", align_corners)
    on_gpu, (theta,), to_caller = _arrays(fn, theta=theta)
    check.theta_batch(fn, theta, batch, "size[0]")
    if on_gpu:
        return to_caller(_cuda.affine_grid(theta, batch, height, width, align_corners))
    return _core.affine_grid(theta, batch, height, width, align_corners)


def affine_grid_backward(grad_grid, size, align_corners=False):
    """grad_grid (N, H, W, 2) -> grad_theta (N, 2, 3): the adjoint of affine_grid."""
    fn = "affine_grid_backward"
    batch, _, height, width = check.positive_ints(fn, "size", size, 4, "(N, C, H, W)")
    align_corners = check.flag(fn, "align_corners", align_corners)
    on_gpu, (grad_grid,), to_caller = _arrays(fn, grad_grid=grad_grid)
    if tuple(grad_grid.shape) != (batch, height, width, 2):
        raise ValueError(
            f"stn.{fn}: grad_grid must be (N, H, W, 2) = {(batch, height, width, 2)} "
            f"for size {tuple(size)}, got {check.shape_text(grad_grid)}"
        )
    if on_gpu:
        return to_caller(_cuda.affine_grid_backward(grad_grid, align_corners))
    return _core.affine_grid_backward(grad_grid, align_corners, False)


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


def _fused_shapes(fn, input, theta, out_size):
    check.ndim(fn, "input", input, 4, "(N, C, H, W)")
    check.not_empty(fn, "input", input)
    check.theta_batch(fn, theta, input.shape[0], "the input batch")
    if out_size is None:
        return int(input.shape[2]), int(input.shape[3])
    return check.positive_ints(fn, "out_size", out_size, 2, "(Ho, Wo)")


def spatial_transform(input, theta, out_size=None, mode="bilinear", padding_mode="zeros",
                      align_corners=False):
    """Fused affine_grid + grid_sample: input (N, C, H, W), theta (N, 2, 3) or shared (2, 3)
    -> output (N, C, Ho, Wo), out_size = (Ho, Wo) defaulting to (H, W).

    The grid is never materialized: each output pixel computes its coordinates from theta.
    """
    fn = "spatial_transform"
    options = _options(fn, mode, padding_mode, align_corners)
    on_gpu, (input, theta), to_caller = _arrays(fn, input=input, theta=theta)
    out_height, out_width = _fused_shapes(fn, input, theta, out_size)
    if on_gpu:
        return to_caller(_cuda.spatial_transform(input, theta, out_height, out_width, *options))
    return _core.spatial_transform(input, theta, out_height, out_width, *options)


def spatial_transform_backward(grad_output, input, theta, out_size=None, mode="bilinear",
                               padding_mode="zeros", align_corners=False, input_grad=True,
                               deterministic=False):
    """Returns (grad_input or None, grad_theta) for spatial_transform.

    grad_theta has theta's shape; for a shared (2, 3) theta it sums over the batch. It is
    accumulated directly from the per-pixel gradients, with no grid-gradient array.
    """
    fn = "spatial_transform_backward"
    options = _options(fn, mode, padding_mode, align_corners)
    input_grad = check.flag(fn, "input_grad", input_grad)
    deterministic = check.flag(fn, "deterministic", deterministic)
    on_gpu, (grad_output, input, theta), to_caller = _arrays(
        fn, grad_output=grad_output, input=input, theta=theta)
    out_height, out_width = _fused_shapes(fn, input, theta, out_size)
    expected = (input.shape[0], input.shape[1], out_height, out_width)
    check.grad_output_matches(fn, grad_output, expected)
    if on_gpu:
        return to_caller(_cuda.spatial_transform_backward(
            grad_output, input, theta, *options, input_grad, deterministic))
    return _core.spatial_transform_backward(
        grad_output, input, theta, *options, input_grad, deterministic)


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


def build_info() -> dict:
    """Compiler, SIMD level, OpenMP threads and the CUDA architectures compiled in."""
    return dict(_core.build_info())


def cuda_available() -> bool:
    """True when the CUDA kernels were compiled in and a GPU is visible."""
    return bool(_core.cuda_compiled) and _core.cuda_device_count() > 0
