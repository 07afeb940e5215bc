"""Caffe's command-line verbs, as `stn` subcommands (single- or double-dash flags):

    stn train -solver solver.prototxt [-snapshot STATE.solverstate.h5 | -weights W.caffemodel]
    stn test  -model train_val.prototxt -weights W.caffemodel -iterations 50
    stn time  -model train_val.prototxt -iterations 10

train logs like Caffe ("Iteration N, loss = ...") and shows a progress bar on an interactive
terminal (with tqdm installed: pip install "stn[progress]"); Ctrl-C (SIGINT) writes a snapshot before it exits.
"""

from __future__ import annotations

import logging
import signal
import sys

import numpy as np

from .config_error import ConfigError

LOG = logging.getLogger("stn")


def _flag(parser, name, **kwargs):
    """Caffe spells flags with one dash (-solver); accept both -solver and --solver."""
    parser.add_argument(f"-{name}", f"--{name}", dest=name, **kwargs)


def add_parser(subparsers):
    train = subparsers.add_parser("train", help="train a net from a Caffe solver prototxt")
    _flag(train, "solver", required=True, help="solver prototxt")
    _flag(train, "snapshot", help="resume from this .solverstate(.h5)")
    _flag(train, "weights", help="start from these weights (.caffemodel or .h5)")
    train.set_defaults(func=run_train)

    test = subparsers.add_parser("test", help="score a trained net on its TEST-phase data")
    _flag(test, "model", required=True, help="net prototxt")
    _flag(test, "weights", help="trained weights (.caffemodel or .h5)")
    _flag(test, "iterations", type=int, default=50, help="forward passes (default 50)")
    test.set_defaults(func=run_test)

    timing = subparsers.add_parser("time", help="per-layer forward/backward milliseconds")
    _flag(timing, "model", required=True, help="net prototxt")
    _flag(timing, "iterations", type=int, default=50, help="passes to time (default 50)")
    _flag(timing, "phase", default="TRAIN", choices=["TRAIN", "TEST"])
    timing.set_defaults(func=run_time)


def _configure_logging():
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)


def _reports_errors(run):
    """A config mistake ends the command with its file:line:column message, no traceback."""
    def wrapped(args):
        _configure_logging()
        try:
            return run(args)
        except ConfigError as error:
            LOG.error("%s", error)
            return 2
    return wrapped


@_reports_errors
def run_train(args) -> int:
    from .solver import get_solver
    if args.snapshot and args.weights:
        raise ConfigError("give either -snapshot or -weights, not both")
    solver = get_solver(args.solver)
    if args.weights:
        for weights in args.weights.split(","):
            solver.net.copy_from(weights)
    previous = signal.signal(signal.SIGINT, lambda *_: _stop(solver))
    bar = _progress_bar(solver)
    try:
        solver.solve(args.snapshot)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    return 0


def _progress_bar(solver):
    """A tqdm bar over max_iter on an interactive terminal (when tqdm is installed)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=solver.param.max_iter, initial=solver.iter, unit="iter", leave=False)

    def advance(current):
        bar.n = current.iter
        bar.set_postfix(loss=f"{current.smoothed_loss:.4g}", refresh=False)
        bar.refresh()
    solver.on_iteration = advance
    return bar


def _stop(solver):
    LOG.info("SIGINT received: snapshotting and stopping after this iteration")
    solver.request_stop()


@_reports_errors
def run_test(args) -> int:
    from .net import TEST, Net
    net = Net(args.model, TEST, weights=args.weights)
    totals = {}
    for batch in range(args.iterations):
        outputs = net.forward()
        for name, value in outputs.items():
            score = float(np.mean(value)) if np.size(value) else 0.0
            totals[name] = totals.get(name, 0.0) + score
            LOG.info("Batch %d, %s = %g", batch, name, score)
    for name, total in totals.items():
        weight = net.loss_weights.get(name, 0)
        suffix = f" (* {weight:g} = {weight * total / args.iterations:g} loss)" if weight else ""
        LOG.info("%s = %g%s", name, total / args.iterations, suffix)
    return 0


@_reports_errors
def run_time(args) -> int:
    from .net import Net
    from .timing import format_timing, time_layers
    net = Net(args.model, args.phase)
    rows, total = time_layers(net, args.iterations)
    print(format_timing(rows, total))
    return 0
