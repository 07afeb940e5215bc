"""How the OpenMP threads of stn's kernels wait between parallel regions.

The OpenMP runtime (GCC's libgomp) reads its waiting policy from the environment once, as it
loads, and every library of the process that uses OpenMP shares that one runtime: torch's
wheel loads the libgomp.so.1 already in the process. So the policy is set here, before the
compiled core loads, and only where the user set none:

- OMP_WAIT_POLICY=PASSIVE with GOMP_SPINCOUNT=10000: a thread spins about 0.1 ms after a
  parallel region (10,000 pause instructions, ~10 ns each on the Intel Xeon measured), then
  sleeps. libgomp's own default spins ~3 ms, which took the cores that numpy's BLAS threads
  needed in a net (an ST-CNN iteration: 100 ms against 62 ms sleeping at once). Sleeping at
  once costs a wake-up per region instead, ~70 us on the 2-core VM measured: cluttered MNIST's
  forward (256 x 1 x 60 x 60) took 0.37 ms sleeping, 0.24 ms with the short spin, and the
  training iteration 22.7 ms against 21.7 ms.

The benchmark commands compare stn with torch in one process, on the runtime they share. They
leave the runtime's own defaults in place, as torch has them without stn: a policy chosen for
stn would be imposed on its peer too (torch's forward on cluttered MNIST took 1.0 ms sleeping
at once against 0.55 ms with the default spin).
"""

from __future__ import annotations

import os
import sys

POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}

# Commands that time stn against peers sharing the runtime: `stn bench`, `python -m stn bench`
# and `python -m stn.bench_train`.
BENCHMARK_MODULES = ("stn.bench", "stn.bench_train")


def runs_benchmark(orig_argv) -> bool:
    """Whether the command line `orig_argv` (sys.orig_argv: the interpreter, its options, then
    -m MODULE or a script, and their arguments) runs one of stn's benchmark commands."""
    args = list(orig_argv)[1:]
    at = 0
    while at < len(args) and args[at].startswith("-") and args[at] not in ("-m", "-c", "-"):
        at += 2 if args[at] in ("-X", "-W") else 1  # the interpreter's options; these two take a value
    if at >= len(args) or args[at] in ("-c", "-"):
        return False
    if args[at] == "-m":
        module, rest = args[at + 1:at + 2], args[at + 2:at + 3]
        return module == ["stn"] and rest == ["bench"] or (module != [] and module[0] in BENCHMARK_MODULES)
    # A script: the `stn` console script, `stn bench ...`.
    return os.path.basename(args[at]) == "stn" and args[at + 1:at + 2] == ["bench"]


def choose(environ=os.environ, orig_argv=None) -> dict:
    """Sets POLICY in `environ` unless the user set any of its variables or the command is a
    benchmark (runs_benchmark); returns what it set."""
    if orig_argv is None:  # Python < 3.10 lacks orig_argv; its argv names no -m module
        orig_argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    if any(name in environ for name in POLICY) or runs_benchmark(orig_argv):
        return {}
    environ.update(POLICY)
    return dict(POLICY)


def in_effect(environ=os.environ) -> dict:
    """The policy variables in the environment (None: unset, the runtime's default). The
    runtime read them if it loaded after they were set: normally it loads with stn's core, just
    after choose(); where another library loaded it first, it kept what that one saw."""
    return {name: environ.get(name) for name in POLICY}
