"""Argument checks shared by every public entry point, forward and backward.

Validation happens here, once, before any kernel runs; past this module the kernels trust
their inputs. Every message names the function, the argument and the shapes involved, and
states the rule that was broken. Shape errors raise ValueError, dtype errors TypeError.
"""

from __future__ import annotations

import numbers

import numpy as np

MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}
MAX_EXTENT = 2**40  # per axis; far past any real image, well inside the kernels' int64 offsets


def shape_text(array) -> str:
    return str(tuple(int(s) for s in array.shape))


# float32 and float64 in native byte order: the dtypes numpy gives arrays it creates.
_NATIVE_FLOAT32, _NATIVE_FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def float_array(function: str, name: str, value):
    """Returns `value` as a numpy array of float32 or float64 in native byte order, else
    raises TypeError."""
    if type(value) is np.ndarray and (value.dtype is _NATIVE_FLOAT32 or value.dtype is _NATIVE_FLOAT64):
        return value  # the common case, answered without the checks below
    if type(value) is not np.ndarray and isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"stn.{function}: {name} is a masked array; the kernels would ignore its mask. "
            "Pass np.ma.filled(array, fill_value) or array.data"
        )
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"stn.{function}: {name} must be float32 or float64, got dtype {array.dtype}"
        )
    if not array.dtype.isnative:  # e.g. big-endian '>f4' read from a file
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def same_dtype(function: str, **arrays) -> np.dtype:
    """All arrays must share one dtype: the kernels never mix precisions."""
    dtypes = [a.dtype for a in arrays.values()]
    if dtypes.count(dtypes[0]) != len(dtypes):  # (any() over a generator cost a microsecond a call)
        listing = ", ".join(f"{name} {dtype}" for name, dtype in zip(arrays, dtypes))
        raise TypeError(f"stn.{function}: all arrays must have the same dtype, got {listing}")
    return dtypes[0]


def ndim(function: str, name: str, array, expected: int, layout: str) -> None:
    if array.ndim != expected:
        raise ValueError(
            f"stn.{function}: {name} must be {expected}-D {layout}, got shape {shape_text(array)}"
        )


def not_empty(function: str, name: str, array) -> None:
    if array.size == 0:
        raise ValueError(
            f"stn.{function}: {name} must not be empty (every size must be positive), "
            f"got shape {shape_text(array)}"
        )


def mode_code(function: str, mode) -> int:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(
            f"stn.{function}: mode must be one of {sorted(MODES)}, got {mode!r}"
        )
    return MODES[mode]


def padding_code(function: str, padding_mode) -> int:
    if not isinstance(padding_mode, str) or padding_mode not in PADDINGS:
        raise ValueError(
            f"stn.{function}: padding_mode must be one of {sorted(PADDINGS)}, got {padding_mode!r}"
        )
    return PADDINGS[padding_mode]


def flag(function: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"stn.{function}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _is_index(value) -> bool:
    """An int or an integral number type (numpy's), but not a bool."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def positive_ints(function: str, name: str, value, count: int, meaning: str) -> tuple:
    """A tuple of `count` positive integers, e.g. size=(N, C, H, W) or out_size=(Ho, Wo)."""
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"stn.{function}: {name} must be a sequence of {count} ints {meaning}, got {value!r}"
        ) from None
    # (Lists, not generators, in the checks: this runs on every call of most entry points.)
    if len(items) != count or not all([_is_index(v) for v in items]):
        raise ValueError(
            f"stn.{function}: {name} must be {count} ints {meaning}, got {value!r}"
        )
    items = tuple([int(v) for v in items])
    if items and min(items) <= 0:
        raise ValueError(
            f"stn.{function}: every entry of {name} {meaning} must be positive, got {items}"
        )
    if items and max(items) > MAX_EXTENT:
        raise ValueError(
            f"stn.{function}: every entry of {name} {meaning} must be at most 2**40, got {items}"
        )
    return items


def theta_batch(function: str, theta, batch: int, batch_source: str) -> None:
    """theta is (N, 2, 3), or (2, 3) shared by the whole batch; N must equal `batch`, which
    comes from `batch_source` (e.g. "the input batch", "size[0]")."""
    shared = theta.ndim == 2 and theta.shape == (2, 3)
    batched = theta.ndim == 3 and theta.shape[1:] == (2, 3)
    if not (shared or batched):
        raise ValueError(
            f"stn.{function}: theta must be (N, 2, 3) or (2, 3), got shape {shape_text(theta)}"
        )
    if batched and theta.shape[0] != batch:
        raise ValueError(
            f"stn.{function}: theta batch {theta.shape[0]} must equal {batch_source} {batch}; "
            f"got theta {shape_text(theta)}"
        )


def grid_matches_input(function: str, input, grid) -> None:
    ndim(function, "input", input, 4, "(N, C, H, W)")
    ndim(function, "grid", grid, 4, "(N, Ho, Wo, 2)")
    if grid.shape[3] != 2:
        raise ValueError(
            f"stn.{function}: grid's last dimension must be 2 (x, y), got grid {shape_text(grid)}"
        )
    if grid.shape[0] != input.shape[0]:
        raise ValueError(
            f"stn.{function}: grid batch must equal input batch; got input {shape_text(input)} "
            f"and grid {shape_text(grid)}"
        )
    not_empty(function, "input", input)
    not_empty(function, "grid", grid)


def grad_output_matches(function: str, grad_output, expected: tuple) -> None:
    if tuple(grad_output.shape) != tuple(expected):
        raise ValueError(
            f"stn.{function}: grad_output must have the forward output's shape {tuple(expected)}, "
            f"got {shape_text(grad_output)}"
        )
