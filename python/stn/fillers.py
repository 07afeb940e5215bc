"""Fillers: initial values for learnable blobs, as Caffe's filler.hpp (FillerParameter).

    fill(blob, filler_param, rng, base_dir, location)

writes blob.data in place. Types, with the FillerParameter fields each one reads:
  constant           value (default 0)
  uniform            min, max (defaults 0, 1)
  gaussian           mean, std (defaults 0, 1); sparse >= 0 keeps each value with
                     probability sparse / shape[0] (Caffe's sparse Gaussian)
  positive_unitball  U(0, 1), then every row (count / shape[0] values) scaled to sum 1
  xavier             U(-a, a), a = sqrt(3 / n)
  msra               N(0, s^2), s = sqrt(2 / n)
  bilinear           the bilinear upsampling kernel (4-D square filters)
  file               the whitespace-separated numbers of the text file `file`, a path
                     relative to base_dir (the prototxt's folder); exactly blob.count values
For xavier and msra, n follows variance_norm as Caffe computes it:
  fan_in = count / shape[0], fan_out = count / shape[1] (count for a 1-D blob),
  FAN_IN (default) -> fan_in, FAN_OUT -> fan_out, AVERAGE -> (fan_in + fan_out) / 2.
Every mistake raises ConfigError at `location`.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .config_error import ConfigError

# FillerParameter.VarianceNorm values (caffe.proto).
FAN_IN, FAN_OUT, AVERAGE = 0, 1, 2


def _field(param, name, default):
    """param.name, or `default` where the schema has no such field."""
    if param is None or name not in param.DESCRIPTOR.fields_by_name:
        return default
    return getattr(param, name)


def _fans(shape, count):
    fan_in = count // shape[0] if shape else count
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _variance_n(param, shape, count, location, kind):
    fan_in, fan_out = _fans(shape, count)
    norm = _field(param, "variance_norm", FAN_IN)
    if norm == AVERAGE:
        n = (fan_in + fan_out) / 2.0
    elif norm == FAN_OUT:
        n = float(fan_out)
    elif norm == FAN_IN:
        n = float(fan_in)
    else:
        raise ConfigError(f"{kind} filler: unknown variance_norm {norm}", location)
    if n <= 0:
        raise ConfigError(f"{kind} filler: a blob of shape {list(shape)} has no fan", location)
    return n


def _read_file(param, count, base_dir, location):
    name = _field(param, "file", "")
    if not name:
        raise ConfigError("file filler: the 'file' field (a path to a text file) is missing",
                          location)
    path = os.path.join(base_dir or ".", name)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            tokens = handle.read().split()
    except OSError as exc:
        raise ConfigError(f"file filler: cannot read '{path}': {exc.strerror or exc}",
                          location) from None
    try:
        values = np.array([float(t) for t in tokens], np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise ConfigError(f"file filler: '{path}' holds {bad!r}, which is not a number",
                          location) from None
    if values.size != count:
        raise ConfigError(f"file filler: '{path}' holds {values.size} numbers, "
                          f"expected {count} (the blob's count)", location)
    return values


def _is_number(token):
    try:
        float(token)
        return True
    except ValueError:
        return False


def fill(blob, filler_param, rng, base_dir=".", location=None) -> None:
    """Fills blob.data as the FillerParameter `filler_param` says (None: constant 0)."""
    kind = _field(filler_param, "type", "constant") or "constant"
    shape = tuple(blob.shape)
    count = blob.count()
    if count == 0:
        raise ConfigError(f"{kind} filler: the blob of shape {list(shape)} is empty", location)
    sparse = int(_field(filler_param, "sparse", -1))
    if sparse != -1 and kind != "gaussian":
        raise ConfigError(f"{kind} filler: sparsity is supported by the gaussian filler only",
                          location)

    if kind == "constant":
        values = np.full(shape, _field(filler_param, "value", 0.0))
    elif kind == "uniform":
        low, high = _field(filler_param, "min", 0.0), _field(filler_param, "max", 1.0)
        if low > high:
            raise ConfigError(f"uniform filler: min {low} is greater than max {high}", location)
        values = rng.uniform(low, high, shape)
    elif kind == "gaussian":
        mean, std = _field(filler_param, "mean", 0.0), _field(filler_param, "std", 1.0)
        if not std > 0:
            raise ConfigError(f"gaussian filler: std must be positive, got {std}", location)
        values = rng.normal(mean, std, shape)
        if sparse < -1:
            raise ConfigError(f"gaussian filler: sparse must be >= -1, got {sparse}", location)
        if sparse >= 0:
            # Each of the shape[0] outputs keeps on average `sparse` nonzero inputs.
            keep = rng.random(shape) < sparse / float(shape[0] if shape else 1)
            values = values * keep
    elif kind == "positive_unitball":
        rows = shape[0] if shape else 1
        values = rng.uniform(0.0, 1.0, (rows, count // rows))          # (num, dim)
        values = (values / values.sum(axis=1, keepdims=True)).reshape(shape)
    elif kind == "xavier":
        scale = math.sqrt(3.0 / _variance_n(filler_param, shape, count, location, kind))
        values = rng.uniform(-scale, scale, shape)
    elif kind == "msra":
        std = math.sqrt(2.0 / _variance_n(filler_param, shape, count, location, kind))
        values = rng.normal(0.0, std, shape)
    elif kind == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise ConfigError(f"bilinear filler: needs a 4-D blob with square filters, "
                              f"got shape {list(shape)}", location)
        k = shape[3]
        f = math.ceil(k / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        ramp = 1.0 - np.abs(np.arange(k) / f - c)                       # (k,)
        values = np.broadcast_to(ramp[:, None] * ramp[None, :], shape)  # (.., .., k, k)
    elif kind == "file":
        values = _read_file(filler_param, count, base_dir, location).reshape(shape)
    else:
        raise ConfigError(f"unknown filler type '{kind}' (known: constant, uniform, gaussian, "
                          "positive_unitball, xavier, msra, bilinear, file)", location)
    blob.data[...] = values


def new_param_blob(layer, shape, filler_param, what):
    """A Blob of `shape` in the layer's dtype, filled by `filler_param`; a filler mistake is
    reported as the layer's ConfigError ("layer 'conv1' (Convolution): weight_filler: ...")."""
    from .blob import Blob
    blob = Blob(shape, dtype=layer.dtype)
    try:
        fill(blob, filler_param, layer.rng, getattr(layer, "base_dir", "."), layer.location)
    except ConfigError as exc:
        raise layer.error(f"{what}: {exc.message}") from None
    return blob
