"""The solver's nets, as Caffe's Solver::InitTrainNet / InitTestNets build them.

Train net: exactly one of net, net_param, train_net, train_net_param; TRAIN phase, then the
net's own `state`, then the solver's train_state. Test nets: test_net_param entries, then
test_net files, then `net` / `net_param` once more for each remaining test_iter entry; TEST
phase, the net's state, then test_state[k]. Files are found with SolverConfig.resolve (as
given, else beside the solver file); an inline net reads its files beside the solver file.
Test nets then share the train net's parameter Blobs by layer name (ShareTrainedLayersWith).
"""

from __future__ import annotations

import logging

from ..config import NetConfig, read_net
from ..config_error import ConfigError
from ..net import Net
from ..proto import caffe_pb2

log = logging.getLogger("stn")

TRAIN_NET_FIELDS = ("net", "net_param", "train_net", "train_net_param")


def _net_config(solver_config, value) -> NetConfig:
    if isinstance(value, str):
        return read_net(solver_config.resolve(value))
    param = caffe_pb2.NetParameter()
    param.CopyFrom(value)
    return NetConfig(param, solver_config.path)


def _make_net(config: NetConfig, phase, override, seed, what: str) -> Net:
    state = caffe_pb2.NetState(phase=phase)
    state.MergeFrom(config.param.state)
    if override is not None:
        state.MergeFrom(override)
    log.info("Creating %s", what)
    return Net(config, state.phase, level=state.level, stages=tuple(state.stage), seed=seed)


def _source_name(field: str, value) -> str:
    return f"{field} file: {value}" if isinstance(value, str) else f"{field}"


def build_train_net(solver_config, seed) -> Net:
    p, path = solver_config.param, solver_config.path
    given = [name for name in TRAIN_NET_FIELDS if p.HasField(name)]
    if not given:
        raise ConfigError(f"{path}: the solver must specify a train net using one of these "
                          f"fields: {', '.join(TRAIN_NET_FIELDS)}")
    if len(given) > 1:
        raise ConfigError(f"{path}: the solver must not give more than one of the fields "
                          f"{', '.join(TRAIN_NET_FIELDS)} (found {', '.join(given)})")
    value = getattr(p, given[0])
    override = p.train_state if p.HasField("train_state") else None
    return _make_net(_net_config(solver_config, value), caffe_pb2.TRAIN, override, seed,
                     f"training net from {_source_name(given[0], value)}")


def build_test_nets(solver_config, seed) -> list:
    """One TEST net per test_iter entry; net k is seeded with seed + 1 + k."""
    p, path = solver_config.param, solver_config.path
    if p.HasField("net") and p.HasField("net_param"):
        raise ConfigError(f"{path}: both net and net_param are given; keep one")
    sources = [("test_net_param", value) for value in p.test_net_param]
    sources += [("test_net", value) for value in p.test_net]
    generic = "net" if p.HasField("net") else "net_param" if p.HasField("net_param") else None
    if len(p.test_iter) < len(sources) or (generic is None and len(p.test_iter) != len(sources)):
        raise ConfigError(f"{path}: test_iter must be specified for each test network: "
                          f"{len(p.test_iter)} test_iter for {len(sources)} test nets")
    if generic is not None:
        sources += [(generic, getattr(p, generic))] * (len(p.test_iter) - len(sources))
    if p.test_state and len(p.test_state) != len(sources):
        raise ConfigError(f"{path}: test_state must be unspecified or given once per test net "
                          f"({len(sources)}), got {len(p.test_state)}")
    if sources and p.test_interval <= 0:
        raise ConfigError(f"{path}: test_interval must be > 0 when there are test nets "
                          f"(test_iter has {len(p.test_iter)} entries)")
    return [_make_net(_net_config(solver_config, value), caffe_pb2.TEST,
                      p.test_state[k] if p.test_state else None,
                      None if seed is None else seed + 1 + k,
                      f"test net (#{k}) from {_source_name(field, value)}")
            for k, (field, value) in enumerate(sources)]


def share_trained_layers(train_net: Net, test_net: Net, k: int, path: str) -> None:
    """Each test layer named as a train layer takes the train layer's parameter Blobs."""
    mine = {layer.name: layer for layer in test_net.layers}
    replaced = {}
    for source in train_net.layers:
        target = mine.get(source.name)
        if target is None:
            continue
        if len(target.blobs) != len(source.blobs):
            raise ConfigError(f"{path}: test net #{k}: layer '{source.name}' has "
                              f"{len(target.blobs)} parameter blobs, the train net's has "
                              f"{len(source.blobs)}")
        for j, (blob, trained) in enumerate(zip(target.blobs, source.blobs)):
            if blob.shape != trained.shape:
                raise ConfigError(f"{path}: test net #{k}: cannot share parameter {j} of layer "
                                  f"'{source.name}': shape {blob.shape} in the test net, "
                                  f"{trained.shape} in the train net")
            replaced[id(blob)] = trained
            target.blobs[j] = trained
    test_net.learnable = [replaced.get(id(blob), blob) for blob in test_net.learnable]
