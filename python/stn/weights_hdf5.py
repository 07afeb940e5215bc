"""Weights in Caffe's HDF5 layout (snapshot_format: HDF5): group "data", one subgroup per
layer name, datasets "0", "1", ... for its parameter blobs. Needs h5py (pip install "stn[hdf5]")."""

from __future__ import annotations

import io

import numpy as np

from .atomic_write import write_atomically
from .config_error import ConfigError


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('HDF5 weights need h5py: pip install "stn[hdf5]"') from None
    return h5py


def read_weights_hdf5(path) -> dict:
    """{layer name: [arrays]} from a Caffe HDF5 weights file."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise ConfigError(f"{path}: not a Caffe HDF5 weights file (no 'data' group)")
            weights = {}
            _collect_layers(path, f["data"], "", weights)
            return weights
    except OSError as error:
        raise ConfigError(f"{path}: cannot read HDF5 weights: {error}") from None


def _numeric(path, layer: str, key: str, dataset) -> np.ndarray:
    """A weight blob as float64; a dataset of strings, compounds or objects is an error."""
    kind = getattr(dataset, "dtype", np.dtype("O")).kind
    if kind not in "fiub":
        raise ConfigError(f"{path}: layer '{layer}' blob {key} has dtype {dataset.dtype}, "
                          "expected numbers")
    return np.asarray(dataset, np.float64)


def _collect_layers(path, group, prefix: str, weights: dict) -> None:
    """A layer is a group of datasets "0", "1", ...; a layer name with "/" (e.g.
    inception_3a/1x1) is stored by h5py as nested groups, so walk them and join the names."""
    for name, item in group.items():
        full = f"{prefix}{name}"
        keys = list(item.keys())
        if keys and all(key.isdigit() for key in keys):
            keys.sort(key=int)
            if keys != [str(k) for k in range(len(keys))]:
                raise ConfigError(f"{path}: layer '{full}' has blobs {keys}, expected 0..{len(keys) - 1}")
            weights[full] = [_numeric(path, full, k, item[k]) for k in keys]
        else:
            _collect_layers(path, item, full + "/", weights)


def write_weights_hdf5(path, weights: dict) -> None:
    """Writes {layer name: [arrays]} atomically (built in memory, then renamed into place)."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        data = f.create_group("data")
        for name, arrays in weights.items():
            group = data.create_group(name)
            for k, array in enumerate(arrays):
                group.create_dataset(str(k), data=np.asarray(array))
    write_atomically(path, buffer.getvalue())
