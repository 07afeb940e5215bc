"""GPU dispatch: arrays exposing __cuda_array_interface__ (CuPy, Numba, PyTorch CUDA tensors)
or a CUDA __dlpack__ run the CUDA kernels; results come back as arrays of the input's kind.

The kernels take raw device pointers (stn._core.cuda_*); this module checks that a GPU and
CuPy exist, makes arrays contiguous, allocates outputs with CuPy and passes the pointers.
Shape and dtype validation is the same as on the CPU (functional.py calls _validate first).
"""

from __future__ import annotations

import sys

import numpy as np

from . import _core

_DLPACK_CUDA_DEVICES = (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


def is_cuda_array(value) -> bool:
    if type(value) is np.ndarray:  # the common case, answered without attribute lookups
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    device = getattr(value, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        return device()[0] in _DLPACK_CUDA_DEVICES
    except Exception:  # a __dlpack_device__ that fails is not a CUDA array
        return False


def any_on_gpu(function: str, **arrays) -> bool:
    flags = [is_cuda_array(a) for a in arrays.values()]
    if not any(flags):
        return False
    if not all(flags):
        where = ", ".join(f"{n} on {'CUDA' if f else 'host'}" for n, f in zip(arrays, flags))
        raise ValueError(f"stn.{function}: arrays must all be on the host or all on CUDA; got {where}")
    return True


def _require_gpu(function: str):
    if not _core.cuda_compiled:
        raise RuntimeError(
            f"stn.{function}: got a CUDA array, but this build of stn has no CUDA kernels "
            "(no CUDA compiler was found when it was built)")
    if _core.cuda_device_count() == 0:
        raise RuntimeError(f"stn.{function}: got a CUDA array, but no CUDA GPU is available")
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"stn.{function}: CUDA arrays need CuPy (pip install cupy)") from None
    return cupy


def device_arrays(function: str, **arrays):
    """Returns (CuPy arrays, C-contiguous, one dtype and one device; a function that turns
    results back into the caller's array type)."""
    cupy = _require_gpu(function)
    converted = []
    for name, value in arrays.items():
        array = cupy.asarray(value) if hasattr(value, "__cuda_array_interface__") else cupy.from_dlpack(value)
        if array.dtype not in (cupy.float32, cupy.float64):
            raise TypeError(f"stn.{function}: {name} must be float32 or float64, got dtype {array.dtype}")
        converted.append(array)
    if len({a.dtype for a in converted}) > 1:
        listing = ", ".join(f"{n} {a.dtype}" for n, a in zip(arrays, converted))
        raise TypeError(f"stn.{function}: all arrays must have the same dtype, got {listing}")
    if len({a.device.id for a in converted}) > 1:
        listing = ", ".join(f"{n} on device {a.device.id}" for n, a in zip(arrays, converted))
        raise ValueError(f"stn.{function}: all arrays must be on one GPU, got {listing}")
    with converted[0].device:
        contiguous = [cupy.ascontiguousarray(a) for a in converted]
    return contiguous, _caller_kind(next(iter(arrays.values())))


def _caller_kind(original):
    """Results go back as the caller's array type when that type can read DLPack (e.g. torch);
    CuPy arrays and types without from_dlpack get CuPy arrays."""
    root = type(original).__module__.split(".")[0]
    module = None if root == "cupy" else sys.modules.get(root)
    if module is None or not hasattr(module, "from_dlpack"):
        return lambda result: result

    def convert(result):
        if isinstance(result, tuple):
            return tuple(convert(r) for r in result)
        return None if result is None else module.from_dlpack(result)
    return convert


def _run(entry_point: str, like, *args):
    """Calls stn._core.cuda_<entry_point> on `like`'s GPU and CuPy's current stream there."""
    import cupy
    with like.device:
        getattr(_core, "cuda_" + entry_point)(like.dtype.name, cupy.cuda.get_current_stream().ptr, *args)


def _empty(like, shape):
    import cupy
    with like.device:
        return cupy.empty(shape, dtype=like.dtype)


def _ptr(array) -> int:
    return 0 if array is None else int(array.data.ptr)


def to_device(host_array, like):
    """A host array copied to `like`'s GPU (the TPS solution matrix)."""
    import cupy
    with like.device:
        return cupy.asarray(host_array)


def zeros_like_shape(like, shape):
    import cupy
    with like.device:
        return cupy.zeros(shape, dtype=like.dtype)


def _shape6(input, out_height, out_width):
    n, c, h, w = (int(s) for s in input.shape)
    return (n, c, h, w, int(out_height), int(out_width))


def transform_grid(params, family, solution, shared, batch, height, width, align_corners):
    grid = _empty(params, (batch, height, width, 2))
    _run("transform_grid", params, _ptr(params), family.core_args(), _ptr(solution), shared, batch,
         height, width, align_corners, _ptr(grid))
    return grid


def transform_grid_backward(grad_grid, params, family, solution, shared, align_corners):
    batch, height, width, _ = grad_grid.shape
    grad_params = _empty(params, params.shape)
    _run("transform_grid_backward", grad_grid, _ptr(grad_grid), _ptr(params), family.core_args(),
         _ptr(solution), shared, batch, height, width, align_corners, _ptr(grad_params))
    return grad_params


def grid_sample(input, grid, mode, padding, align_corners):
    shape = _shape6(input, grid.shape[1], grid.shape[2])
    output = _empty(input, (shape[0], shape[1], shape[4], shape[5]))
    _run("grid_sample", input, _ptr(input), _ptr(grid), shape, mode, padding, align_corners,
         _ptr(output))
    return output


def grid_sample_backward(grad_output, input, grid, mode, padding, align_corners, input_grad,
                         deterministic):
    shape = _shape6(input, grid.shape[1], grid.shape[2])
    grad_input = _empty(input, input.shape) if input_grad else None
    grad_grid = _empty(grid, grid.shape)
    _run("grid_sample_backward", input, _ptr(grad_output), _ptr(input), _ptr(grid), shape, mode,
         padding, align_corners, deterministic, _ptr(grad_input), _ptr(grad_grid))
    return grad_input, grad_grid


def spatial_transform(input, params, family, solution, shared, out_height, out_width, mode,
                      padding, align_corners):
    shape = _shape6(input, out_height, out_width)
    output = _empty(input, (shape[0], shape[1], shape[4], shape[5]))
    _run("spatial_transform", input, _ptr(input), _ptr(params), family.core_args(), _ptr(solution),
         shared, shape, mode, padding, align_corners, _ptr(output))
    return output


def spatial_transform_backward(grad_output, input, params, family, solution, shared, mode,
                               padding, align_corners, input_grad, deterministic):
    shape = _shape6(input, grad_output.shape[2], grad_output.shape[3])
    grad_input = _empty(input, input.shape) if input_grad else None
    grad_params = _empty(params, params.shape)
    _run("spatial_transform_backward", input, _ptr(grad_output), _ptr(input), _ptr(params),
         family.core_args(), _ptr(solution), shared, shape, mode, padding, align_corners,
         deterministic, _ptr(grad_input), _ptr(grad_params))
    return grad_input, grad_params
