"""Solver snapshots in Caffe's HDF5 layout, written atomically, checked on restore.

    {prefix}_iter_{N}.caffemodel.h5    the train net's weights (Net.save: group "data")
    {prefix}_iter_{N}.solverstate.h5   Caffe's datasets: iter, learned_net (the weights file's
                                       name), current_step, group history ("0", "1", ...),
                                       and stn's own (which Caffe ignores):
        weights_sha256     SHA-256 of the weights file, checked before it is loaded
        state_sha256       SHA-256 over every other dataset's name, dtype, shape and bytes
        solver_type        the solver's type (a state is restored into the same type only)
        rng_states         JSON: per net (train, test 0, ...) the numpy Generator states
        loss_window, smoothed_loss, loss_window_start   the average_loss smoothing
        layer_state/...    what layers with get_state()/set_state() hand over

The weights file is written first, then the state file, each to a temporary file that is
flushed to disk and renamed into place: a crash leaves the previous snapshot as it was and
never a partial file under a final name. Restoring also reads Caffe's own .solverstate
(binary SolverState) and .solverstate.h5 files, which carry none of stn's datasets.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..atomic_write import write_atomically
from ..config_error import ConfigError

FORMAT_VERSION = 1


class SnapshotError(ConfigError):
    """A snapshot that cannot be written or restored; the message starts with the file."""


@dataclass
class SolverStateData:
    """What a state file holds (the stn entries are None in a file Caffe wrote)."""
    iter: int
    learned_net: str
    current_step: int
    history: List[np.ndarray]
    weights_sha256: Optional[str] = None
    solver_type: Optional[str] = None
    rng_states: Optional[list] = None
    loss_window: Optional[np.ndarray] = None
    smoothed_loss: Optional[float] = None
    loss_window_start: Optional[int] = None
    layer_state: Dict[str, Dict[str, Dict[str, np.ndarray]]] = field(default_factory=dict)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('solver snapshots need h5py: pip install "stn[hdf5]"') from None
    return h5py


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _content_sha256(datasets: Dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(datasets):
        array = np.ascontiguousarray(np.asarray(datasets[name]))
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _text(value: str) -> np.ndarray:
    return np.array(value.encode("utf-8"))  # a fixed-length HDF5 string, as Caffe writes


# ---------------------------------------------------------------------------------------
# numpy Generator states <-> JSON

def _to_json(value):
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_json(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {key: _from_json(item) for key, item in value.items()}
    return value


def generators_of(net) -> list:
    """The distinct numpy Generators a net and its layers draw from, in a stable order."""
    found, seen = [], set()
    for owner in [net] + list(net.layers):
        for name in ("_rng", "rng"):
            rng = getattr(owner, name, None)
            if isinstance(rng, np.random.Generator) and id(rng) not in seen:
                seen.add(id(rng))
                found.append(rng)
    return found


def rng_states_of(nets) -> list:
    return [[_to_json(rng.bit_generator.state) for rng in generators_of(net)] for net in nets]


def check_rng_states(nets, states, path: str) -> None:
    """Raises SnapshotError unless `states` fit these nets' generators."""
    if len(states) != len(nets):
        raise SnapshotError(f"{path}: holds RNG states for {len(states)} nets, the solver has "
                            f"{len(nets)} (train net + test nets)")
    for k, (net, saved) in enumerate(zip(nets, states)):
        if len(saved) != len(generators_of(net)):
            raise SnapshotError(f"{path}: net #{k} had {len(saved)} random generators, this one "
                                f"has {len(generators_of(net))}: was it made with another net config?")


def set_rng_states(nets, states) -> None:
    for net, saved in zip(nets, states):
        for rng, state in zip(generators_of(net), saved):
            rng.bit_generator.state = _from_json(state)


# ---------------------------------------------------------------------------------------
# Writing

def write_state_hdf5(path: str, state: SolverStateData) -> None:
    """Writes the state file atomically (built in memory, then renamed into place)."""
    h5py = _h5py()
    datasets = {
        "iter": np.array([state.iter], np.int32),
        "learned_net": _text(state.learned_net),
        "current_step": np.array([state.current_step], np.int32),
        "stn_format_version": np.array([FORMAT_VERSION], np.int32),
        "weights_sha256": _text(state.weights_sha256),
        "solver_type": _text(state.solver_type),
        "rng_states": _text(json.dumps(state.rng_states)),
        "loss_window": np.asarray(state.loss_window, np.float64).reshape(-1),
        "smoothed_loss": np.float64(state.smoothed_loss),
        "loss_window_start": np.array([state.loss_window_start], np.int64),
    }
    for k, array in enumerate(state.history):
        datasets[f"history/{k}"] = np.asarray(array)
    for net_key, layers in state.layer_state.items():
        for layer_key, values in layers.items():
            for key, value in values.items():
                datasets[f"layer_state/{net_key}/{layer_key}/{key}"] = np.asarray(value)
    datasets["state_sha256"] = _text(_content_sha256(datasets))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("history")  # present even when the net has no learnable blobs
        for name, array in datasets.items():
            f.create_dataset(name, data=array)
    write_atomically(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------
# Reading

def read_state(path: str) -> SolverStateData:
    """A .solverstate.h5 (stn's or Caffe's) or a binary .solverstate (Caffe's)."""
    if not os.path.isfile(path):
        raise SnapshotError(f"{path}: no such solver state file")
    if path.endswith(".h5"):
        return _read_state_hdf5(path)
    return _read_state_binaryproto(path)


def _read_state_hdf5(path: str) -> SolverStateData:
    h5py = _h5py()
    datasets = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name, item):
                if isinstance(item, h5py.Dataset):
                    datasets[name] = np.asarray(item[()])
            f.visititems(visit)
    except SnapshotError:
        raise
    except Exception as error:  # OSError for a truncated or corrupt file, and anything else h5py raises
        raise SnapshotError(f"{path}: cannot read the solver state (truncated or corrupt HDF5 "
                            f"file?): {error}") from None
    for name in ("iter", "learned_net"):
        if name not in datasets:
            raise SnapshotError(f"{path}: not a solver state file (no '{name}' dataset)")
    if "state_sha256" in datasets:
        stored = _string(datasets.pop("state_sha256"))
        if stored != _content_sha256(datasets):
            raise SnapshotError(f"{path}: the solver state is corrupt (its checksum does not "
                                f"match its contents)")
    keys = sorted((name for name in datasets if name.startswith("history/")),
                  key=lambda name: int(name.split("/", 1)[1]) if name.split("/", 1)[1].isdigit() else -1)
    if [name.split("/", 1)[1] for name in keys] != [str(k) for k in range(len(keys))]:
        raise SnapshotError(f"{path}: history datasets {keys} are not numbered 0..{len(keys) - 1}")
    try:
        state = SolverStateData(
            iter=int(datasets["iter"].reshape(-1)[0]),
            learned_net=_string(datasets["learned_net"]),
            current_step=int(datasets["current_step"].reshape(-1)[0]) if "current_step" in datasets else 0,
            history=[datasets[name] for name in keys])
        if "weights_sha256" in datasets:
            state.weights_sha256 = _string(datasets["weights_sha256"])
            state.solver_type = _string(datasets["solver_type"])
            state.rng_states = json.loads(_string(datasets["rng_states"]))
            state.loss_window = datasets["loss_window"].astype(np.float64)
            state.smoothed_loss = float(datasets["smoothed_loss"])
            state.loss_window_start = int(datasets["loss_window_start"].reshape(-1)[0])
        for name, value in datasets.items():
            if name.startswith("layer_state/"):
                _, net_key, layer_key, key = name.split("/", 3)
                state.layer_state.setdefault(net_key, {}).setdefault(layer_key, {})[key] = value
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise SnapshotError(f"{path}: malformed solver state: {error!r}") from None
    return state


def _read_state_binaryproto(path: str) -> SolverStateData:
    from ..proto import caffe_pb2
    with open(path, "rb") as stream:
        data = stream.read()
    message = caffe_pb2.SolverState()
    try:
        message.ParseFromString(data)
    except Exception as error:
        raise SnapshotError(f"{path}: not a binary SolverState (.solverstate): {error}") from None
    if not message.HasField("learned_net"):
        raise SnapshotError(f"{path}: not a solver state (no learned_net)")
    history = []
    for blob in message.history:
        shape = tuple(blob.shape.dim) if blob.HasField("shape") else \
            (blob.num, blob.channels, blob.height, blob.width)
        values = blob.double_data if len(blob.double_data) else blob.data
        history.append(np.asarray(values, np.float64).reshape(shape))
    return SolverStateData(iter=message.iter, learned_net=message.learned_net,
                           current_step=message.current_step, history=history)


def _string(value) -> str:
    value = value.item() if isinstance(value, np.ndarray) else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def resolve_weights(state_path: str, learned_net: str) -> str:
    """The weights file a state names: relative to the state file's folder (stn writes the
    bare file name), else as given (Caffe writes the prefix path, relative to its cwd), else
    its base name beside the state file (a snapshot folder that was moved)."""
    folder = os.path.dirname(os.path.abspath(state_path))
    candidates = [learned_net] if os.path.isabs(learned_net) else \
        [os.path.join(folder, learned_net), learned_net]
    candidates.append(os.path.join(folder, os.path.basename(learned_net)))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise SnapshotError(f"{state_path}: names the weights file '{learned_net}', which is "
                        f"missing (looked in {folder} and the current folder)")


def snapshot_prefix(param, solver_path: str) -> str:
    """snapshot_prefix as Caffe 1.0 reads it: unset, the solver file without its extension; a
    folder, that folder / the solver file's stem. A relative prefix whose folder is missing
    from the current folder but exists beside the solver file is taken there; otherwise it
    is relative to the current folder (Caffe's rule), its folder created when missing."""
    prefix = param.snapshot_prefix
    stem = "solver" if solver_path == "<string>" else \
        os.path.splitext(os.path.basename(solver_path))[0]
    if not prefix:
        if solver_path == "<string>":
            raise ConfigError("snapshot_prefix is not set (and there is no solver file to name "
                              "the snapshots after)")
        prefix = os.path.splitext(solver_path)[0]
    elif prefix.endswith(("/", os.sep)) or os.path.isdir(prefix):
        prefix = os.path.join(prefix, stem)
    folder = os.path.dirname(prefix)
    if folder and not os.path.isabs(folder) and not os.path.isdir(folder) \
            and solver_path != "<string>":
        if os.path.isdir(os.path.join(os.path.dirname(solver_path), folder)):
            prefix = os.path.join(os.path.dirname(solver_path), prefix)
    return prefix
