"""Caffe's per-solver update rules (ComputeUpdateValue), one function per solver type.

Each takes the parameter's gradient g (its diff, already clipped, normalized by iter_size and
regularized), its history arrays and local_rate = rate * lr_mult, and returns the value that
Net::Update subtracts from the weights. Arithmetic is in the blob's dtype (float32, Caffe's
Dtype) and in Caffe's order, so rounding matches Caffe's CPU path step for step.

    SGD       h = momentum h + lr g                                  update = h
    Nesterov  h' = momentum h + lr g                                 update = (1 + momentum) h' - momentum h
    AdaGrad   h = h + g^2                                            update = lr g / (sqrt(h) + delta)
    RMSProp   h = rms_decay h + (1 - rms_decay) g^2                  update = lr g / (sqrt(h) + delta)
    AdaDelta  h = momentum h + (1 - momentum) g^2
              u = g sqrt((h2 + delta) / (h + delta))
              h2 = momentum h2 + (1 - momentum) u^2                   update = lr u
    Adam      m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2   (beta1 = momentum,
              t = iter + 1,  correction = sqrt(1 - beta2^t) / (1 - beta1^t)  beta2 = momentum2)
                                                                     update = lr correction m / (sqrt(v) + delta)
AdaDelta and Adam keep two histories per parameter: history[i] and history[n + i] (n = the
number of learnable blobs), Caffe's layout.
"""

from __future__ import annotations

import math

import numpy as np

from ..config_error import ConfigError

# Caffe's type names, and the legacy SolverParameter.SolverType enum values in order.
TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")


def history_count(solver_type: str) -> int:
    """History arrays per learnable blob."""
    return 2 if solver_type in ("AdaDelta", "Adam") else 1


def check_hyperparameters(solver_type: str, param, path: str) -> None:
    """The checks of Caffe's solver constructors, as ConfigError naming the solver file."""
    if solver_type in ("AdaGrad", "RMSProp") and param.momentum != 0:
        raise ConfigError(f"{path}: momentum cannot be used with {solver_type} "
                          f"(got momentum: {param.momentum:g})")
    if solver_type == "RMSProp" and not 0 <= param.rms_decay < 1:
        raise ConfigError(f"{path}: rms_decay should lie between 0 and 1, got {param.rms_decay:g}")


def compute_update(solver_type: str, param, g, histories, local_rate, iteration: int):
    """The update for one parameter blob; updates `histories` (its 1 or 2 arrays) in place."""
    dtype = g.dtype.type
    lr = dtype(local_rate)
    momentum = dtype(param.momentum)
    delta = dtype(param.delta)
    h = histories[0]
    if solver_type == "SGD":
        h *= momentum
        h += lr * g
        return h.copy()
    if solver_type == "Nesterov":
        previous = h.copy()
        h *= momentum
        h += lr * g
        return dtype(1 + momentum) * h - momentum * previous
    if solver_type == "AdaGrad":
        h += np.square(g)
        return lr * (g / (np.sqrt(h) + delta))
    if solver_type == "RMSProp":
        decay = dtype(param.rms_decay)
        h *= decay
        h += dtype(1 - decay) * np.square(g)
        return lr * (g / (np.sqrt(h) + delta))
    if solver_type == "AdaDelta":
        h2 = histories[1]
        keep = dtype(1 - momentum)
        h *= momentum
        h += keep * np.square(g)
        u = g * np.sqrt((h2 + delta) / (h + delta))
        h2 *= momentum
        h2 += keep * np.square(u)
        return lr * u
    if solver_type == "Adam":
        v = histories[1]
        beta1, beta2 = dtype(param.momentum), dtype(param.momentum2)
        t = iteration + 1
        correction = dtype(math.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t))
        h *= beta1
        h += dtype(1 - beta1) * g
        v *= beta2
        v += dtype(1 - beta2) * np.square(g)
        return dtype(lr * correction) * (h / (np.sqrt(v) + delta))
    raise ConfigError(f"unknown solver type {solver_type!r} (known: {', '.join(TYPES)})")
