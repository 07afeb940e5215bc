"""numpy's OpenBLAS, one thread at a time: the per-thread thread count of OpenBLAS >= 0.3.27
(openblas_set_num_threads_local), found among the libraries this process has loaded.

stn.parallel_gemm splits a GEMM into slices and hands them to its own threads; each slice
must then run on one BLAS thread. OpenBLAS's own threads split statically and synchronise
many times per GEMM, so one descheduled thread (a busy 2-core machine) stalls the call: a
training iteration went from 25 ms to 200 ms that way.

    with one_blas_thread():   # this thread's BLAS calls use 1 thread; the old count after
        np.matmul(a, b)

Without such an OpenBLAS (another BLAS, another OS, an older OpenBLAS) `available` is False,
one_blas_thread() changes nothing, and stn.parallel_gemm leaves the threading to the BLAS.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import numpy as np

SETTER = "openblas_set_num_threads_local"  # int (int threads): sets this thread's, returns the old


def _loaded_openblas() -> list:
    """Paths of the OpenBLAS libraries mapped into this process, numpy's first (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return []
    numpy_root = os.path.dirname(os.path.dirname(np.__file__))
    # numpy's wheels keep it in site-packages/numpy.libs or the scipy_openblas package.
    return sorted((p for p in paths if p.endswith(".so") or ".so." in p),
                  key=lambda p: (not p.startswith(numpy_root) or "scipy.libs" in p, p))


def _find_setter():
    for path in _loaded_openblas():
        try:
            setter = getattr(ctypes.CDLL(path), SETTER)
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


_set_local_threads = _find_setter()
available = _set_local_threads is not None


def set_this_thread_to_one() -> None:
    """For threads stn owns: every later BLAS call of this thread uses one BLAS thread."""
    if available:
        _set_local_threads(1)


@contextlib.contextmanager
def one_blas_thread():
    """This thread's BLAS calls inside the block use one BLAS thread."""
    if not available:
        yield
        return
    previous = _set_local_threads(1)
    try:
        yield
    finally:
        _set_local_threads(previous)
