"""`stn experiment`: train a CNN and an ST-CNN on distorted digits and show what the
transformer learned — the main job.

    stn experiment --variant RTS                 # embedded 5,000 MNIST digits, a few minutes
    stn experiment --variant cluttered --source mnist --root ~/mnist --iterations 6000

Steps: generate the data (stn.data.distort), write it as HDF5 (the nets' HDF5Data layers
read it), train prototxt/experiment/cnn.prototxt and st_cnn.prototxt with solver.prototxt
through the net runner, print the test errors, and write into --out:
  transformed.png   test inputs and the ST-CNN's transformer outputs, side by side
  curves.png        training loss and test error of both nets over the iterations
  evolution.gif     the transformer's output for fixed test digits, during training
  results.json      the numbers; cnn.prototxt, st_cnn.prototxt and *_solver.prototxt as run
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import text_format

from . import data as stn_data
from .config import parse_net, read_net, read_solver
from .examples import example_path
from .net import TEST, Net
from .proto import caffe_pb2
from .solvers import get_solver

NETS = ("cnn", "st_cnn")
TITLES = {"cnn": "CNN", "st_cnn": "ST-CNN"}
PROBE_DIGITS = 16  # test digits shown in transformed.png and evolution.gif


@dataclass
class Settings:
    variant: str = "RTS"
    source: str = "mnist5k"
    root: str = None
    out: str = "stn_experiment"
    iterations: int = 1500
    test_interval: int = 100
    copies: int = None         # distorted copies of each training digit (default: 3 for
                               # the 4,000 digits of mnist5k, 1 for the 60,000 of the others)
    train_limit: int = None    # use only this many training digits (tests, quick runs)
    test_limit: int = None
    seed: int = 0
    progress: bool = True


@dataclass
class Run:
    name: str
    iterations: list = field(default_factory=list)   # where the test errors were measured
    test_error: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)   # one per iteration
    frames: list = field(default_factory=list)       # ST outputs of the probe digits
    seconds: float = 0.0


# ------------------------------------------------------------------------------ data

def make_data(settings: Settings, folder: str):
    """Distorted train/test sets written as HDF5; returns (train list, test list, probe images)."""
    digits = stn_data.load_digits(settings.source, root=settings.root)
    if settings.train_limit or settings.test_limit:
        digits = stn_data.Digits(digits.train_images[:settings.train_limit],
                                 digits.train_labels[:settings.train_limit],
                                 digits.test_images[:settings.test_limit],
                                 digits.test_labels[:settings.test_limit], digits.name)
    copies = settings.copies or (3 if settings.source == "mnist5k" else 1)
    train, labels, test, test_labels = stn_data.distort_splits(
        settings.variant, digits, copies=copies, seed=settings.seed)
    os.makedirs(folder, exist_ok=True)
    train_list = stn_data.write_hdf5_split(folder, "train", train, labels)
    test_list = stn_data.write_hdf5_split(folder, "test", test, test_labels)
    return train_list, test_list, test[:PROBE_DIGITS], len(train), len(test)


# ------------------------------------------------------------------------------ configs

def _hdf5_layers(net_param):
    return [layer for layer in net_param.layer if layer.type == "HDF5Data"]


def write_configs(settings: Settings, out: str, train_list: str, test_list: str, test_count: int):
    """Copies of the example configs with the data, sizes and schedule of this run."""
    paths = {}
    shutil.copy(example_path("experiment/bias_init.txt"), os.path.join(out, "bias_init.txt"))
    for name in NETS:
        net_param = read_net(example_path(f"experiment/{name}.prototxt")).param
        for layer in _hdf5_layers(net_param):
            train_phase = any(rule.phase == caffe_pb2.TRAIN for rule in layer.include)
            layer.hdf5_data_param.source = train_list if train_phase else test_list
            if not train_phase:
                layer.hdf5_data_param.batch_size = _test_batch(test_count)
        for layer in net_param.layer:
            if layer.type == "SpatialTransformer":
                layer.st_param.output_H = layer.st_param.output_W = transformer_size(settings.variant)
        net_path = os.path.join(out, f"{name}.prototxt")
        with open(net_path, "w") as handle:
            handle.write(text_format.MessageToString(net_param))
        solver_param = read_solver(example_path("experiment/solver.prototxt")).param
        solver_param.net = f"{name}.prototxt"
        solver_param.max_iter = settings.iterations
        solver_param.test_interval = settings.test_interval
        del solver_param.stepvalue[:]
        solver_param.stepvalue.append(max(1, settings.iterations * 3 // 4))
        solver_param.random_seed = settings.seed + 1
        del solver_param.test_iter[:]
        solver_param.test_iter.append(test_count // _test_batch(test_count))
        solver_path = os.path.join(out, f"{name}_solver.prototxt")
        with open(solver_path, "w") as handle:
            handle.write(text_format.MessageToString(solver_param))
        paths[name] = solver_path
    return paths


def transformer_size(variant: str) -> int:
    """The ST-CNN's transformer output: two thirds of the canvas, at least the 28 x 28 of a
    digit (28 for R, P, E and RTS's 42 x 42; 40 for the 60 x 60 cluttered canvas), so the
    classifier reads a digit-sized view and the transformer learns where to look."""
    return max(28, round(2 * stn_data.CANVAS[variant] / 3))


def _test_batch(test_count: int) -> int:
    """The largest batch of at most 100 that divides the test set, so each digit counts once."""
    return next(b for b in range(min(100, test_count), 0, -1) if test_count % b == 0)


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
        if probe is not None:
            run.frames.append(transformer_output(probe, solver.net, probe_images))
    run.seconds = time.perf_counter() - start
    return run


class _NoBar:
    def update(self, n): pass
    def set_postfix_str(self, text): pass
    def close(self): pass


def _progress_bar(settings: Settings, total: int):
    if not settings.progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="it", desc=f"stn experiment {settings.variant}")


def run_experiment(settings: Settings) -> dict:
    """Runs everything; returns the results dict also written to results.json."""
    from . import experiment_plots  # matplotlib and Pillow: only needed here

    out = settings.out
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    train_list, test_list, probe_images, train_count, test_count = make_data(
        settings, os.path.join(out, "data"))
    solvers = write_configs(settings, out, train_list, test_list, test_count)
    bar = _progress_bar(settings, settings.iterations * len(NETS))
    quiet = logging.getLogger("stn")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        runs = {name: train(name, solvers[name], settings, probe_images, bar) for name in NETS}
    finally:
        quiet.setLevel(level)
        bar.close()
    experiment_plots.transformed_png(os.path.join(out, "transformed.png"), probe_images[:, 0],
                                     runs["st_cnn"].frames[-1])
    experiment_plots.curves_png(os.path.join(out, "curves.png"), runs, TITLES, settings)
    experiment_plots.evolution_gif(os.path.join(out, "evolution.gif"), runs["st_cnn"])
    results = {
        "variant": settings.variant, "source": settings.source, "iterations": settings.iterations,
        "train_digits": train_count, "test_digits": test_count, "seed": settings.seed,
        "test_error": {name: round(runs[name].test_error[-1], 4) for name in NETS},
        "ratio_st_cnn_to_cnn": _ratio(runs["st_cnn"].test_error[-1], runs["cnn"].test_error[-1]),
        "train_seconds": {name: round(runs[name].seconds, 1) for name in NETS},
        "total_seconds": round(time.perf_counter() - started, 1),
        "curves": {name: {"iteration": runs[name].iterations,
                          "test_error": [round(e, 4) for e in runs[name].test_error]}
                   for name in NETS},
    }
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results


def _ratio(a: float, b: float):
    return None if b == 0 else round(a / b, 3)


def format_table(results: dict) -> str:
    lines = [f"variant {results['variant']} on {results['source']}: {results['train_digits']} "
             f"training images, {results['test_digits']} test digits, "
             f"{results['iterations']} iterations per net",
             f"{'net':<8} {'test error':>10} {'train time':>11}"]
    for name in NETS:
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
    parser.add_argument("--iterations", type=int, default=Settings.iterations,
                        help=f"training iterations per net (default {Settings.iterations})")
    parser.add_argument("--test-interval", type=int, default=Settings.test_interval)
    parser.add_argument("--copies", type=int,
                        help="distorted copies of each training digit (default 3 for mnist5k, "
                             "else 1)")
    parser.add_argument("--train-limit", type=int, help="use only this many training digits")
    parser.add_argument("--test-limit", type=int, help="use only this many test digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    for name in ("iterations", "test_interval", "copies"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise SystemExit(f"stn experiment: --{name.replace('_', '-')} must be positive")
    settings = Settings(variant=args.variant, source=args.source, root=args.root,
                        out=args.out or f"stn_experiment_{args.variant}",
                        iterations=args.iterations, test_interval=args.test_interval,
                        copies=args.copies, train_limit=args.train_limit,
                        test_limit=args.test_limit, seed=args.seed,
                        progress=not args.no_progress)
    results = run_experiment(settings)
    print(format_table(results))
    print(f"wrote {', '.join(('transformed.png', 'curves.png', 'evolution.gif', 'results.json'))} "
          f"to {os.path.abspath(settings.out)}")
    return 0
