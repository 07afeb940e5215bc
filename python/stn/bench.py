"""`stn bench`: times the affine spatial transformer against its peers on identical inputs, in
one process, with one thread count, and prints a table of ratios.

    stn bench [--threads N] [--repeats 6] [--quick] [--json FILE] [--device cpu|cuda]
    python -m stn.bench --threads 2

For each shape it times stn's fused kernels (spatial_transform and its backward, which
computes grad_input and grad_theta), stn's grid path (affine_grid + grid_sample and their
backwards), PyTorch's affine_grid + grid_sample, OpenCV's warpAffine and scipy's
affine_transform (peers that are not installed print "n/a"; see stn/bench_peers.py). Times
are medians per call over --repeats interleaved rounds after a warm-up (stn/bench_timing.py):
each round times every implementation in turn for about 20 ms, as many calls as fit (at least
one), so that a shared machine's slow spells reach all of them alike, and reach a contender
of short calls no harder than one of long calls. Each turn starts with an untimed call, so
that no timed call pays for the contender before it (torch's OpenMP threads spin on the cores
for a few milliseconds after its calls: OpenCV's warp of the large image took 7.4 ms right after
torch's backward, 5.2 ms after its own). scipy, single-threaded, is timed on its
own after the rounds: its calls (tenths of a second) left the other cores idle, and the
contender after it in a round, always stn's fused path, started on waking cores (measured on
the 2-core VM: stn's forward of the large image took 1.3x its time on the first call after a
10 ms idle spell and 1.05-1.2x on the next two). Ratios are peer_ms / stn_fused_ms, so > 1 means stn is faster.
Before timing, each case checks that every implementation computes the same output, so the
comparison is of equal work. A copy probe measured in the same run gives the memory-bandwidth
bound of each shape; the probe is also timed in each case's rounds, beside the contenders, and
the bound uses that bandwidth, measured in the same moments as the times it is compared
with. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import abc
import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import bench_peers, bench_table, functional, omp_policy
from .bench_peers import Timed
from .bench_timing import interleaved_medians_ms, median_ms


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple           # (N, C, H, W)
    out_size: tuple              # (Ho, Wo)
    align_corners: bool = False
    padding_mode: str = "zeros"

    @property
    def bytes_moved(self) -> int:
        """float32 input read once + output written once: the least any warp can move."""
        n_batch, channels, height, width = self.input_shape
        return 4 * n_batch * channels * (height * width + self.out_size[0] * self.out_size[1])


CASES = (
    Case("seed ST-CNN input", (64, 3, 227, 227), (227, 227)),
    Case("cluttered MNIST", (256, 1, 60, 60), (28, 28)),
    Case("feature maps", (32, 32, 64, 64), (64, 64)),
    Case("deep feature maps", (8, 64, 128, 128), (128, 128)),
    Case("one large image", (1, 3, 1024, 1024), (1024, 1024)),
    Case("feature maps, border", (32, 32, 64, 64), (64, 64), True, "border"),
)
SCALING_CASE = "one large image"   # thread scaling is measured on this one (N = 1)
QUICK_BATCH, QUICK_SIDE = 2, 64    # --quick: every case shrunk to milliseconds
COPY_MB, QUICK_COPY_MB = 256, 32   # size of the copy probe's array
# Each interleaved round times each implementation for about this long: as many calls as fit
# (at least one), after an untimed one. The timed calls then follow a call of the same step
# (warm caches, threads awake), as in a training loop, while the rounds still spread a drift
# of the machine's speed over every implementation. Rounds of 3 calls had let a spell of tens
# of milliseconds cover a whole round of stn's short calls and move their median, where
# PyTorch's long calls averaged it out.
ROUND_MS, QUICK_ROUND_MS = 20.0, 2.0
ROUNDS, QUICK_ROUNDS = 6, 2        # default --repeats
COPY_KEY = ("copy probe", "copy")  # the probe's step among a case's timed steps
# Float32 coordinates carry a relative error of ~1e-7, i.e. an absolute error in pixels that
# grows with the image side: two correct float32 warps of a 1024-pixel image differ by ~1e-4.
TOLERANCE, TOLERANCE_SIDE = 1e-4, 256
# OpenCV 4 rounds source coordinates to 1/32 pixel (INTER_BITS), moving a sample of data in
# [0, 1) by up to ~1/32; a wrong pixel convention (half a pixel) moves it by ~0.5.
OPENCV_TOLERANCE = 0.05


def quick_case(case: Case) -> Case:
    n_batch, channels, height, width = case.input_shape
    small = (min(n_batch, QUICK_BATCH), channels, min(height, QUICK_SIDE), min(width, QUICK_SIDE))
    out_size = tuple(min(side, QUICK_SIDE) for side in case.out_size)
    return Case(case.name, small, out_size, case.align_corners, case.padding_mode)


@dataclass
class Arrays:
    input: object        # (N, C, H, W) float32, uniform in [0, 1)
    theta: object        # (N, 2, 3) float32
    grad_output: object  # (N, C, Ho, Wo) float32


def make_arrays(case: Case, seed: int = 0) -> Arrays:
    """A rotation of ~20 degrees (jittered per sample), scale 0.9 and shift (0.1, -0.1)."""
    rng = np.random.default_rng(seed)
    n_batch = case.input_shape[0]
    angle = np.radians(20.0 + rng.uniform(-5.0, 5.0, n_batch))
    scale, shift = 0.9, (0.1, -0.1)
    theta = np.empty((n_batch, 2, 3), np.float32)
    theta[:, 0] = np.stack([scale * np.cos(angle), -scale * np.sin(angle), np.full(n_batch, shift[0])], 1)
    theta[:, 1] = np.stack([scale * np.sin(angle), scale * np.cos(angle), np.full(n_batch, shift[1])], 1)
    input = rng.random(case.input_shape, dtype=np.float32)
    grad_output = rng.standard_normal((*case.input_shape[:2], *case.out_size), dtype=np.float32)
    return Arrays(input, theta, grad_output)


@dataclass
class Backend:
    """Where stn runs: "cpu" on numpy arrays, "cuda" on CuPy arrays."""
    device: str
    to_device: object    # numpy array -> the array stn is timed on
    to_host: object      # any result -> numpy array
    sync: object         # waits for queued work before and after each timed step
    copy_probe: object   # (threads, megabytes) -> a CopyProbe


class CopyProbe(abc.ABC):
    """A step that copies `megabytes` of float32 (the bandwidth probe); bytes_moved counts a
    read and a write per byte. A context manager: leaving it frees the arrays (and threads)."""
    bytes_moved: int

    @abc.abstractmethod
    def __call__(self):
        """One copy of the whole array."""

    def gbs(self, ms: float) -> float:
        """The copy bandwidth, in GB/s, of a copy that took `ms` milliseconds."""
        return self.bytes_moved / (ms / 1e3) / 1e9

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass


class HostCopy(CopyProbe):
    """np.copyto of a float32 array, split over `threads` threads (numpy releases the GIL in
    the copy)."""

    def __init__(self, threads: int, megabytes: int):
        self.source = np.ones(megabytes * 2**20 // 4, np.float32)
        self.target = np.empty_like(self.source)
        self.bytes_moved = 2 * self.source.nbytes
        bounds = np.linspace(0, self.source.size, threads + 1).astype(int)
        self.pieces = [(self.target[a:b], self.source[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        self.pool = ThreadPoolExecutor(threads)

    def __call__(self):
        list(self.pool.map(lambda piece: np.copyto(*piece), self.pieces))

    def close(self):
        self.pool.shutdown()
        self.source = self.target = self.pieces = None


def _host_array(result):
    if hasattr(result, "detach"):   # a torch tensor, maybe on the GPU
        return result.detach().cpu().numpy()
    if hasattr(result, "get"):      # a CuPy array
        return result.get()
    return np.asarray(result)


def host_backend() -> Backend:
    return Backend("cpu", lambda array: array, _host_array, lambda: None, HostCopy)


def cuda_backend():
    """(Backend, None) on a machine with a GPU and CuPy, else (None, why not)."""
    if not functional.cuda_available():
        return None, "stn bench --device cuda: no CUDA GPU here (or stn was built without CUDA)"
    try:
        import cupy
    except ImportError:
        return None, "stn bench --device cuda: needs CuPy (pip install cupy)"
    sync = cupy.cuda.Device().synchronize   # the whole device: CuPy's and torch's streams

    class DeviceCopy(CopyProbe):
        """cupy.copyto of a float32 array on the GPU."""

        def __init__(self, threads, megabytes):
            self.source = cupy.ones(megabytes * 2**20 // 4, cupy.float32)
            self.target = cupy.empty_like(self.source)
            self.bytes_moved = 2 * self.source.nbytes

        def __call__(self):
            cupy.copyto(self.target, self.source)

        def close(self):
            self.source = self.target = None

    return Backend("cuda", cupy.asarray, _host_array, sync, DeviceCopy), None


def stn_timed(case: Case, arrays: Arrays) -> dict:
    """{"stn fused": Timed, "stn grid": Timed} on `arrays` (numpy or CuPy)."""
    x, theta, grad_output = arrays.input, arrays.theta, arrays.grad_output
    options = dict(padding_mode=case.padding_mode, align_corners=case.align_corners)
    size = (*case.input_shape[:2], *case.out_size)

    def fused():
        return functional.spatial_transform(x, theta, case.out_size, **options)

    def fused_backward():
        fused()
        return functional.spatial_transform_backward(grad_output, x, theta, case.out_size, **options)

    def grid():
        return functional.grid_sample(x, functional.affine_grid(theta, size, case.align_corners),
                                      **options)

    def grid_backward():
        sampling_grid = functional.affine_grid(theta, size, case.align_corners)
        functional.grid_sample(x, sampling_grid, **options)
        grad_input, grad_grid = functional.grid_sample_backward(grad_output, x, sampling_grid,
                                                                **options)
        return grad_input, functional.affine_grid_backward(grad_grid, size, case.align_corners)

    return {"stn fused": Timed(fused, fused_backward), "stn grid": Timed(grid, grid_backward)}


def tolerance(name: str, case: Case) -> float:
    if name == "stn grid":
        return 0.0  # the same per-pixel math, so the same bits
    if name == "opencv":
        return OPENCV_TOLERANCE
    return TOLERANCE * max(1.0, max(case.input_shape[2:]) / TOLERANCE_SIDE)


def check_outputs(case: Case, timed: dict, backend: Backend):
    """({name: max |output - stn fused output|}, [warning lines]) for every implementation."""
    reference = backend.to_host(timed["stn fused"].forward())
    differences, warnings = {}, []
    for name, implementation in timed.items():
        if name == "stn fused":
            continue
        output = backend.to_host(implementation.forward())
        difference = float(np.max(np.abs(output - reference)))
        differences[name] = difference
        if not difference <= tolerance(name, case):
            warnings.append(f"WARNING: {name}'s output differs from stn fused by {difference:.3g} "
                            f"(tolerance {tolerance(name, case):.3g}): not the same work")
    return differences, warnings


def bench_case(case: Case, peers, backend: Backend, repeats: int, copy: CopyProbe,
               round_ms: float = ROUND_MS) -> dict:
    """Checks, then times, every implementation on one case, with the copy probe `copy` in the
    same rounds; returns the row."""
    host = make_arrays(case)
    timed = stn_timed(case, Arrays(*(backend.to_device(a) for a in vars(host).values())))
    for peer in peers:
        prepared = peer.prepare(case, host) if peer.version else None
        if prepared is not None:
            timed[peer.name] = prepared
    differences, warnings = check_outputs(case, timed, backend)
    on_their_own = {peer.name for peer in peers if not peer.interleaved}
    steps, own_steps = {}, {}
    for name, implementation in timed.items():
        chosen = own_steps if name in on_their_own else steps
        chosen[name, "forward"] = implementation.forward
        if implementation.forward_backward is not None:
            chosen[name, "forward_backward"] = implementation.forward_backward
    steps[COPY_KEY] = copy
    medians = interleaved_medians_ms(steps, repeats, sync=backend.sync, round_ms=round_ms, settle=True)
    for key, step in own_steps.items():
        medians[key] = median_ms(step, repeats, backend.sync)
    bandwidth_gbs = copy.gbs(medians[COPY_KEY])
    times = {name: {"forward": medians[name, "forward"],
                    "forward_backward": medians.get((name, "forward_backward"))} for name in timed}
    ours = times["stn fused"]
    bound_ms = case.bytes_moved / (bandwidth_gbs * 1e9) * 1e3
    return {
        "case": case.name, "input_shape": list(case.input_shape), "out_size": list(case.out_size),
        "padding_mode": case.padding_mode, "align_corners": case.align_corners,
        "bytes_moved": case.bytes_moved, "copy_bandwidth_gbs": bandwidth_gbs,
        "times_ms": {name: times.get(name) for name in bench_table.IMPLEMENTATIONS},
        "forward_ratio": {name: t["forward"] / ours["forward"] for name, t in times.items()},
        "forward_backward_ratio": {
            name: t["forward_backward"] / ours["forward_backward"]
            for name, t in times.items() if t["forward_backward"] is not None},
        "gbs": {name: case.bytes_moved / (t["forward"] / 1e3) / 1e9 for name, t in times.items()},
        "bound_ms": bound_ms, "fused_vs_bound": ours["forward"] / bound_ms,
        "max_abs_diff": differences, "warnings": warnings,
    }


def thread_scaling(case: Case, backend: Backend, threads: int, repeats: int, round_ms: float = ROUND_MS) -> dict:
    """stn's fused forward on `case` at 1 thread and at `threads` threads, in interleaved rounds."""
    forward = stn_timed(case, make_arrays(case))["stn fused"].forward

    def on(count):
        def step():
            functional.set_num_threads(count)  # microseconds; the calls take milliseconds
            forward()
        return step

    try:
        medians = interleaved_medians_ms({1: on(1), threads: on(threads)}, repeats, sync=backend.sync,
                                         round_ms=round_ms, settle=True)
    finally:
        functional.set_num_threads(threads)
    one, many = medians[1], medians[threads]
    return {"case": case.name, "input_shape": list(case.input_shape), "threads": threads,
            "one_thread_ms": one, "threads_ms": many, "speedup": one / many}


def machine_info(backend: Backend, threads: int, peers) -> dict:
    versions = {"python": sys.version.split()[0], "numpy": np.__version__}
    versions.update({peer.name: peer.version for peer in peers})
    # The OpenMP waiting policy every implementation ran under (None: the runtime's default;
    # see omp_policy.py).
    return {"device": backend.device, "threads": threads, "build_info": functional.build_info(),
            "versions": versions, "omp_policy": omp_policy.in_effect()}


def run(args) -> int:
    if args.device == "cuda":
        backend, why_not = cuda_backend()
        if backend is None:
            print(why_not, file=sys.stderr)
            return 2
    else:
        backend = host_backend()
    threads = args.threads or functional.get_num_threads()
    repeats = args.repeats or (QUICK_ROUNDS if args.quick else ROUNDS)
    round_ms = QUICK_ROUND_MS if args.quick else ROUND_MS
    copy_mb = QUICK_COPY_MB if args.quick else COPY_MB
    cases = [quick_case(c) for c in CASES] if args.quick else list(CASES)
    if args.case:
        cases = [case for case in cases if any(case.name.lower().startswith(p.lower()) for p in args.case)]
        if not cases:
            names = ", ".join(repr(case.name) for case in CASES)
            print(f"stn bench: --case {' '.join(args.case)!r} matches none of the shapes: {names}",
                  file=sys.stderr)
            return 2
    previous_threads = functional.get_num_threads()
    previous_peer_threads = bench_peers.set_peer_threads({})
    functional.set_num_threads(threads)
    try:
        peers = bench_peers.peers(threads, backend.device)
        rows = []
        with backend.copy_probe(threads, copy_mb) as copy:
            bandwidth = copy.gbs(median_ms(copy, max(repeats, 3), backend.sync))
            machine = machine_info(backend, threads, peers)
            print(bench_table.header(machine, bandwidth, repeats, round_ms, copy_mb))
            for case in cases:
                rows.append(bench_case(case, peers, backend, repeats, copy, round_ms))
                print(bench_table.case_block(rows[-1]), flush=True)
        print(bench_table.bound_table(rows))
        scaling = None
        scaling_case = next((c for c in cases if c.name == SCALING_CASE), None)
        if backend.device == "cpu" and scaling_case is not None:
            scaling = thread_scaling(scaling_case, backend, threads, repeats, round_ms)
            print(bench_table.scaling_lines(scaling))
        print(bench_table.notes(peers))
    finally:
        functional.set_num_threads(previous_threads)
        bench_peers.set_peer_threads(previous_peer_threads)
    if args.json:
        result = {"machine": machine, "copy_bandwidth_gbs": bandwidth, "repeats": repeats, "round_ms": round_ms,
                  "quick": bool(args.quick), "rows": rows, "thread_scaling": scaling}
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)
        print(f"wrote {args.json}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="threads for stn, torch and OpenCV (default: stn.get_num_threads())")
    parser.add_argument("--repeats", type=_positive_int, default=None, metavar="R",
                        help=f"interleaved rounds after a warm-up, each timing every implementation "
                             f"for about {ROUND_MS:g} ms (default: {ROUNDS}, --quick {QUICK_ROUNDS})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes (batch <= 2, sides <= 64): a smoke run, not a benchmark")
    parser.add_argument("--case", action="append", default=None, metavar="NAME",
                        help="only the shapes whose name starts with NAME (any case; repeat for "
                             "more), e.g. --case cluttered")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers here")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: stn's CUDA kernels on CuPy arrays, beside torch's (needs a GPU)")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "bench", help="time stn's kernels against torch, OpenCV and scipy",
        description=__doc__.splitlines()[0])
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stn.bench", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
