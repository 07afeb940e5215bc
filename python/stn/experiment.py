"""`stn experiment`: train a CNN and an ST-CNN on distorted digits and show what the
transformer learned — the main job.

    stn experiment --variant RTS                 # embedded 5,000 MNIST digits, a few minutes
    stn experiment --variant cluttered --source mnist --root ~/mnist --iterations 6000

    stn experiment --variant RTS --source mnist --root ~/mnist --configs experiment_full \
                   --nets st_cnn --copies 16       # full MNIST: 0.76% in 75 min on one core

Steps: generate the data (stn.data.distort), write it as HDF5 (the nets' HDF5Data layers
read it), train prototxt/experiment/cnn.prototxt and st_cnn.prototxt with solver.prototxt
through the net runner, print the test errors, and write into --out:
  transformed.png   test inputs and the ST-CNN's transformer outputs, side by side
  curves.png        training loss and test error of both nets over the iterations
  evolution.gif     the transformer's output for fixed test digits, during training
  results.json      the numbers; cnn.prototxt, st_cnn.prototxt and *_solver.prototxt as run

--configs names another folder of such configs (a folder under prototxt/, or a path): its
solver.prototxt gives the default --iterations (max_iter) and --test-interval, and its
stepvalues are scaled to the iterations run. --nets trains only some of the nets.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
from google.protobuf import text_format

from . import data as stn_data
from .config import parse_net, read_net, read_solver
from .experiment_configs import config_file, config_folder, write_configs
from .net import TEST, Net
from .solvers import get_solver

NETS = ("cnn", "st_cnn")
CONFIGS = "experiment"  # the default configs: prototxt/experiment
TITLES = {"cnn": "CNN", "st_cnn": "ST-CNN"}
PROBE_DIGITS = 16  # test digits shown in transformed.png and evolution.gif


@dataclass
class Settings:
    variant: str = "RTS"
    source: str = "mnist5k"
    root: str = None
    out: str = "stn_experiment"
    iterations: int = None     # default: the solver's max_iter (1500 in prototxt/experiment)
    test_interval: int = None  # default: the solver's test_interval (100)
    copies: int = None         # distorted copies of each training digit (copies_of)
    train_limit: int = None    # use only this many training digits (tests, quick runs)
    test_limit: int = None
    seed: int = 0
    progress: bool = True
    configs: str = CONFIGS     # folder of cnn.prototxt, st_cnn.prototxt, solver.prototxt
    nets: tuple = NETS         # which of NETS to train


@dataclass
class Run:
    name: str
    iterations: list = field(default_factory=list)   # where the test errors were measured
    test_error: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)   # one per iteration
    frames: list = field(default_factory=list)       # ST outputs of the probe digits
    seconds: float = 0.0


# ------------------------------------------------------------------------------ data

def copies_of(settings: Settings) -> int:
    """Distorted copies of each training digit: --copies, else 3 for the 4,000 digits of
    mnist5k and 1 for the 60,000 of the others."""
    return settings.copies or (3 if settings.source == "mnist5k" else 1)


def make_data(settings: Settings, folder: str):
    """Distorted train/test sets written as HDF5; returns (train list, test list, probe images,
    train count, test count). The training copies are drawn and written one at a time, so
    many copies of the 60,000 MNIST digits (0.42 GB each) need not fit in memory together;
    the files are those of stn.data.distort_splits' arrays written whole."""
    digits = stn_data.load_digits(settings.source, root=settings.root)
    if settings.train_limit or settings.test_limit:
        digits = stn_data.Digits(digits.train_images[:settings.train_limit],
                                 digits.train_labels[:settings.train_limit],
                                 digits.test_images[:settings.test_limit],
                                 digits.test_labels[:settings.test_limit], digits.name)
    copies = copies_of(settings)
    os.makedirs(folder, exist_ok=True)
    train_list = stn_data.write_hdf5_chunks(folder, "train", stn_data.distorted_copies(
        settings.variant, digits, copies=copies, seed=settings.seed))
    test = stn_data.distort(settings.variant, digits.test_images, seed=settings.seed * 1000)
    test_list = stn_data.write_hdf5_split(folder, "test", test, digits.test_labels)
    return train_list, test_list, test[:PROBE_DIGITS], copies * len(digits.train_images), len(test)


# ------------------------------------------------------------------------------ configs
# (the folders and the files written: experiment_configs.py)

def resolved(settings: Settings) -> Settings:
    """settings with --iterations and --test-interval taken from the configs' solver where
    not given, and every choice checked (a ValueError names the bad one)."""
    nets = tuple(settings.nets)
    if not nets or any(name not in NETS for name in nets) or len(set(nets)) != len(nets):
        raise ValueError(f"stn experiment: nets must be distinct names among {NETS}, got {nets!r}")
    folder = config_folder(settings.configs)
    solver = read_solver(config_file(folder, "solver.prototxt")).param
    iterations = settings.iterations if settings.iterations is not None else solver.max_iter
    interval = settings.test_interval if settings.test_interval is not None else solver.test_interval
    for name, value in (("iterations", iterations), ("test_interval", interval)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"stn experiment: {name} must be a positive integer, got {value!r}")
    # the reordering keeps NETS' order: the CNN first, as in the table and the pictures
    return replace(settings, iterations=int(iterations), test_interval=int(interval),
                   nets=tuple(name for name in NETS if name in nets))


def probe_net(st_cnn_path: str, probe: np.ndarray) -> Net:
    """The ST-CNN up to its transformer, on an Input blob holding the probe digits."""
    net_param = read_net(st_cnn_path).param
    keep = []
    for layer in net_param.layer:
        if layer.type == "HDF5Data":
            continue
        keep.append(layer)
        if layer.type == "SpatialTransformer":
            break
    del net_param.layer[:]
    net_param.layer.extend(keep)
    net_param.input.append("data")
    net_param.input_shape.add().dim.extend(probe.shape)
    return Net(parse_net(text_format.MessageToString(net_param), st_cnn_path), TEST)


def transformer_output(probe: Net, trained: Net, images: np.ndarray) -> np.ndarray:
    for name, blobs in probe.params.items():
        for mine, theirs in zip(blobs, trained.params[name]):
            mine.data[...] = theirs.data
    probe.forward(data=images)
    return probe.blobs["st_output"].data[:, 0].copy()


# ------------------------------------------------------------------------------ training

def train(name: str, solver_path: str, settings: Settings, probe_images, bar) -> Run:
    run = Run(name)
    start = time.perf_counter()
    solver = get_solver(solver_path)
    probe = probe_net(os.path.join(os.path.dirname(solver_path), "st_cnn.prototxt"),
                      probe_images) if name == "st_cnn" else None
    if probe is not None:
        run.frames.append(transformer_output(probe, solver.net, probe_images))
    while solver.iter < settings.iterations:
        chunk = min(settings.test_interval, settings.iterations - solver.iter)
        for _ in range(chunk):
            run.train_loss.extend(solver.step(1))
            bar.update(1)
            bar.set_postfix_str(f"{TITLES[name]} loss {np.mean(run.train_loss[-20:]):.3f}")
        accuracy = solver.test()[0]["accuracy"]
        run.iterations.append(solver.iter)
        run.test_error.append(1.0 - float(accuracy))
        bar.tested(f"{TITLES[name]} iteration {solver.iter}: test error "
                   f"{100 * run.test_error[-1]:.2f}%, {time.perf_counter() - start:.0f} s")
        if probe is not None:
            run.frames.append(transformer_output(probe, solver.net, probe_images))
    run.seconds = time.perf_counter() - start
    return run


class _NoBar:
    """Without a progress bar (--no-progress, or no tqdm) each test prints one line to
    stderr, so a long run in the background leaves its learning curve in its log."""
    def update(self, n): pass
    def set_postfix_str(self, text): pass
    def close(self): pass

    def tested(self, line):
        print(line, file=sys.stderr, flush=True)


class _Bar:
    """The tqdm bar, showing the last test's line after the running loss."""

    def __init__(self, tqdm_bar):
        self.bar, self.last_test = tqdm_bar, ""

    def update(self, n):
        self.bar.update(n)

    def set_postfix_str(self, text):
        self.bar.set_postfix_str(f"{text}; {self.last_test}" if self.last_test else text)

    def close(self):
        self.bar.close()

    def tested(self, line):
        self.last_test = line


def _progress_bar(settings: Settings, total: int):
    if not settings.progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return _Bar(tqdm(total=total, unit="it", desc=f"stn experiment {settings.variant}"))


def run_experiment(settings: Settings) -> dict:
    """Runs everything; returns the results dict also written to results.json."""
    from . import experiment_plots  # matplotlib and Pillow: only needed here

    settings = resolved(settings)
    nets = settings.nets
    out = settings.out
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    train_list, test_list, probe_images, train_count, test_count = make_data(
        settings, os.path.join(out, "data"))
    solvers = write_configs(settings, out, train_list, test_list, test_count)
    bar = _progress_bar(settings, settings.iterations * len(nets))
    quiet = logging.getLogger("stn")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        runs = {name: train(name, solvers[name], settings, probe_images, bar) for name in nets}
    finally:
        quiet.setLevel(level)
        bar.close()
    pictures = ["curves.png"]
    experiment_plots.curves_png(os.path.join(out, "curves.png"), runs, TITLES, settings)
    if "st_cnn" in runs:
        experiment_plots.transformed_png(os.path.join(out, "transformed.png"), probe_images[:, 0],
                                         runs["st_cnn"].frames[-1])
        experiment_plots.evolution_gif(os.path.join(out, "evolution.gif"), runs["st_cnn"])
        pictures = ["transformed.png", "curves.png", "evolution.gif"]
    both = all(name in runs for name in NETS)
    results = {
        "variant": settings.variant, "source": settings.source, "iterations": settings.iterations,
        "train_digits": train_count, "test_digits": test_count, "seed": settings.seed,
        "configs": settings.configs, "nets": list(nets),
        "copies": copies_of(settings),
        "threads": stn_threads(),
        "test_error": {name: round(runs[name].test_error[-1], 4) for name in nets},
        "ratio_st_cnn_to_cnn": _ratio(runs["st_cnn"].test_error[-1], runs["cnn"].test_error[-1])
                               if both else None,
        "train_seconds": {name: round(runs[name].seconds, 1) for name in nets},
        "total_seconds": round(time.perf_counter() - started, 1),
        "curves": {name: {"iteration": runs[name].iterations,
                          "test_error": [round(e, 4) for e in runs[name].test_error]}
                   for name in nets},
        "pictures": pictures,
    }
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results


def stn_threads() -> int:
    from .functional import get_num_threads
    return get_num_threads()


def _ratio(a: float, b: float):
    return None if b == 0 else round(a / b, 3)


def format_table(results: dict) -> str:
    nets = [name for name in NETS if name in results["test_error"]]
    lines = [f"variant {results['variant']} on {results['source']}: {results['train_digits']} "
             f"training images, {results['test_digits']} test digits, "
             f"{results['iterations']} iterations per net",
             f"{'net':<8} {'test error':>10} {'train time':>11}"]
    for name in nets:
        lines.append(f"{TITLES[name]:<8} {100 * results['test_error'][name]:>9.2f}% "
                     f"{results['train_seconds'][name]:>10.0f}s")
    ratio = results["ratio_st_cnn_to_cnn"]
    if ratio is not None:
        lines.append(f"ST-CNN error / CNN error = {ratio:.2f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line

def add_parser(subparsers):
    parser = subparsers.add_parser(
        "experiment", help="train a CNN and an ST-CNN on distorted digits; write pictures")
    parser.add_argument("--variant", default="RTS", choices=stn_data.VARIANTS)
    parser.add_argument("--source", default="mnist5k", choices=stn_data.SOURCES)
    parser.add_argument("--root", help="folder of the source's files (mnist, fashion)")
    parser.add_argument("--out", help="output folder (default stn_experiment_<variant>)")
    parser.add_argument("--configs", default=CONFIGS,
                        help="folder of cnn.prototxt, st_cnn.prototxt and solver.prototxt: a "
                             "folder under prototxt/ (experiment, the default; experiment_full, "
                             "the wider classifier for the 60,000 MNIST digits) or a path")
    parser.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS),
                        help="which nets to train (default: both)")
    parser.add_argument("--iterations", type=int,
                        help="training iterations per net (default: the solver's max_iter, "
                             "1500 for prototxt/experiment)")
    parser.add_argument("--test-interval", type=int,
                        help="iterations between tests (default: the solver's test_interval, 100)")
    parser.add_argument("--copies", type=int,
                        help="distorted copies of each training digit (default 3 for mnist5k, "
                             "else 1)")
    parser.add_argument("--train-limit", type=int, help="use only this many training digits")
    parser.add_argument("--test-limit", type=int, help="use only this many test digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (each test still prints a line to stderr)")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    for name in ("iterations", "test_interval", "copies", "train_limit", "test_limit"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise SystemExit(f"stn experiment: --{name.replace('_', '-')} must be positive")
    settings = Settings(variant=args.variant, source=args.source, root=args.root,
                        out=args.out or f"stn_experiment_{args.variant}",
                        iterations=args.iterations, test_interval=args.test_interval,
                        copies=args.copies, train_limit=args.train_limit,
                        test_limit=args.test_limit, seed=args.seed,
                        progress=not args.no_progress, configs=args.configs,
                        nets=tuple(args.nets))
    try:
        settings = resolved(settings)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    results = run_experiment(settings)
    print(format_table(results))
    print(f"wrote {', '.join(results['pictures'] + ['results.json'])} "
          f"to {os.path.abspath(settings.out)}")
    return 0
