"""The configs `stn experiment` trains: the folder --configs names (prototxt/experiment by
default, prototxt/experiment_full for the full MNIST, or a path), and the copies of its
cnn.prototxt, st_cnn.prototxt and solver.prototxt written with the data, sizes and schedule
of one run."""

from __future__ import annotations

import os
import shutil

from google.protobuf import text_format

from . import data as stn_data
from .config import read_net, read_solver
from .examples import example_path
from .proto import caffe_pb2


def config_folder(configs: str) -> str:
    """The folder `--configs` names: a plain name is a folder under prototxt/ when one exists
    (experiment, experiment_full), else a path (./experiment reaches a local one)."""
    if not configs:
        raise ValueError("stn experiment: --configs must name a folder, got an empty string")
    if os.sep not in configs and configs not in (".", ".."):
        try:
            folder = example_path(configs)
        except FileNotFoundError:
            folder = None
        if folder is not None and os.path.isdir(folder):
            return folder
    if os.path.isdir(configs):
        return configs
    raise ValueError(f"stn experiment: --configs {configs!r} is neither a folder nor one of the "
                     f"example folders under prototxt/ (experiment, experiment_full)")


def config_file(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ValueError(f"stn experiment: --configs folder {folder} has no {name}")
    return path


def _hdf5_layers(net_param):
    return [layer for layer in net_param.layer if layer.type == "HDF5Data"]


def write_configs(settings, out: str, train_list: str, test_list: str, test_count: int):
    """Copies of the configs (settings.configs, an experiment.Settings) with the data, sizes
    and schedule of this run;
    returns {net name: solver path}. The other files of the folder (bias_init.txt, which the
    ST-CNN's filler reads) are copied beside them."""
    folder = config_folder(settings.configs)
    if os.path.abspath(folder) != os.path.abspath(out):
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith(".prototxt") and os.path.isfile(os.path.join(folder, entry)):
                shutil.copy(os.path.join(folder, entry), os.path.join(out, entry))
    template = read_solver(config_file(folder, "solver.prototxt")).param
    paths = {}
    for name in settings.nets:
        net_param = read_net(config_file(folder, f"{name}.prototxt")).param
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
        solver_param = caffe_pb2.SolverParameter()
        solver_param.CopyFrom(template)
        solver_param.net = f"{name}.prototxt"
        solver_param.max_iter = settings.iterations
        solver_param.test_interval = settings.test_interval
        _scale_steps(solver_param, template.max_iter, settings.iterations)
        solver_param.random_seed = settings.seed + 1
        del solver_param.test_iter[:]
        solver_param.test_iter.append(test_count // _test_batch(test_count))
        solver_path = os.path.join(out, f"{name}_solver.prototxt")
        with open(solver_path, "w") as handle:
            handle.write(text_format.MessageToString(solver_param))
        paths[name] = solver_path
    return paths


def _scale_steps(solver_param, planned: int, iterations: int) -> None:
    """The solver file's schedule stretched from its max_iter to the iterations run: each
    multistep stepvalue (and a step policy's stepsize) keeps its fraction of the run, so
    prototxt/experiment's 1125 of 1500 stays "the last quarter at a tenth" for any length."""
    if planned <= 0:
        raise ValueError(f"stn experiment: the configs' solver.prototxt must set a positive "
                         f"max_iter (the length its schedule is written for), got {planned}")
    steps = [max(1, value * iterations // planned) for value in solver_param.stepvalue]
    del solver_param.stepvalue[:]
    solver_param.stepvalue.extend(steps)
    if solver_param.HasField("stepsize"):
        solver_param.stepsize = max(1, solver_param.stepsize * iterations // planned)


def transformer_size(variant: str) -> int:
    """The ST-CNN's transformer output: two thirds of the canvas, at least the 28 x 28 of a
    digit (28 for R, P, E and RTS's 42 x 42; 40 for the 60 x 60 cluttered canvas), so the
    classifier reads a digit-sized view and the transformer learns where to look."""
    return max(28, round(2 * stn_data.CANVAS[variant] / 3))


def _test_batch(test_count: int) -> int:
    """The largest batch of at most 100 that divides the test set, so each digit counts once."""
    return next(b for b in range(min(100, test_count), 0, -1) if test_count % b == 0)
