"""matmul(a, b, out): out = a @ b for the layers' large GEMMs, cut into slices of `out` that
stn's threads (stn.set_num_threads) take one at a time, each slice one single-threaded BLAS
call (stn.blas_threads).

Why not the BLAS's own threads: OpenBLAS splits each GEMM statically and synchronises its
threads many times inside it, so on a busy machine a descheduled thread stalls every GEMM
(8x slower iterations on the 2-core test machine), and its idle threads spin on the cores the
OpenMP kernels need. Here a thread that is late simply takes fewer slices.

The slices depend only on the shapes, never on the thread count, and each output element is
computed by one BLAS call over the whole reduction: results are the same for any number of
threads. a is (R, K) or (G, R, K), b (K, C) or (G, K, C), out (R, C) or (G, R, C); any strides
numpy's matmul accepts. Small products (below MIN_FLOPS), and an out that overlaps an input,
are one plain numpy call.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _core
from . import blas_threads

MIN_FLOPS = 4_000_000      # below this, one call: waking a thread costs more than it saves
FLOPS_PER_SLICE = 4_000_000
MAX_SLICES = 8             # per matrix (per group for a stacked product)
ALIGN = 16                 # slice edges on multiples of 16 elements (64-byte lines in float32)

_pool = None               # (threads, ThreadPoolExecutor of threads - 1 helpers)
_pool_lock = threading.Lock()


def _helpers(threads: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != threads:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (threads, ThreadPoolExecutor(threads - 1, "stn-gemm",
                                                 initializer=blas_threads.set_this_thread_to_one))
        return _pool[1]


def _slices(rows: int, cols: int, depth: int) -> list:
    """(row slice, column slice) pieces of a (rows, cols) output with reduction `depth`:
    cut along the longer side, at most MAX_SLICES pieces of about FLOPS_PER_SLICE."""
    count = int(min(MAX_SLICES, max(1, 2 * rows * cols * depth // FLOPS_PER_SLICE)))
    along_cols = cols >= rows
    length = cols if along_cols else rows
    step = max(ALIGN, -(-length // count // ALIGN) * ALIGN)
    whole = slice(None)
    return [(whole, slice(s, s + step)) if along_cols else (slice(s, s + step), whole)
            for s in range(0, length, step)]


class _Job:
    """One call's pieces; whoever holds the GIL takes the next piece (itertools.count is
    atomic there), and the caller waits only for pieces someone else took."""

    def __init__(self, pieces):
        self.pieces = pieces
        self.next_piece = itertools.count()
        self.finished = 0
        self.error = None
        self.lock = threading.Lock()
        self.done = threading.Event()

    def work(self):
        while True:
            index = next(self.next_piece)
            if index >= len(self.pieces):
                return
            try:
                self.pieces[index]()
            except BaseException as exc:  # re-raised in the caller
                self.error = exc
            with self.lock:
                self.finished += 1
                if self.finished == len(self.pieces):
                    self.done.set()


def matmul(a, b, out):
    """out[...] = a @ b (see the module docstring for shapes); returns out."""
    if a.ndim != b.ndim or a.ndim not in (2, 3) or out.ndim != a.ndim:
        raise ValueError(f"stn.parallel_gemm.matmul: a, b and out must all be 2-D or all 3-D, "
                         f"got shapes {a.shape}, {b.shape} and {out.shape}")
    rows, depth = a.shape[-2:]
    if (b.shape[-2] != depth or out.shape[-2:] != (rows, b.shape[-1])
            or a.shape[:-2] != b.shape[:-2] or out.shape[:-2] != a.shape[:-2]):
        raise ValueError(f"stn.parallel_gemm.matmul: shapes {a.shape} @ {b.shape} do not "
                         f"give out {out.shape}")
    cols = b.shape[-1]
    groups = a.shape[0] if a.ndim == 3 else 1
    threads = _core.get_num_threads()
    if (2 * groups * rows * cols * depth < MIN_FLOPS or not blas_threads.available
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return np.matmul(a, b, out=out)  # (numpy buffers an out that overlaps an input)
    a3, b3, out3 = (x if x.ndim == 3 else x[None] for x in (a, b, out))

    def piece(g, r, c):
        return lambda: np.matmul(a3[g, r], b3[g, :, c], out=out3[g, r, c])

    job = _Job([piece(g, r, c) for g in range(groups) for r, c in _slices(rows, cols, depth)])
    with blas_threads.one_blas_thread():
        if threads > 1:
            helpers = _helpers(threads)
            for _ in range(min(threads - 1, len(job.pieces) - 1)):
                helpers.submit(job.work)
        job.work()
        job.done.wait()
    if job.error is not None:
        raise job.error
    return out
