"""Caffe's learning-rate policies (SGDSolver::GetLearningRate), iter = the current iteration:

    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)        (sets current_step)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ (-power)
    multistep  base_lr * gamma ^ current_step, where current_step goes up by one (at most
               one per call, as in Caffe) once iter reaches stepvalue[current_step]
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))

The rate is computed in double precision and returned as float32, Caffe's Dtype.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..config_error import ConfigError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

log = logging.getLogger("stn")


def check_lr_policy(param, path: str) -> None:
    """Raises ConfigError (naming the solver file) for a policy Caffe would reject."""
    policy = param.lr_policy

    def fail(words):
        raise ConfigError(f"{path}: {words}")

    if policy not in POLICIES:
        fail(f"unknown lr_policy {policy!r} (known: {', '.join(POLICIES)})" if policy else
             f"lr_policy is not set (one of: {', '.join(POLICIES)})")
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        fail(f"lr_policy {policy!r} needs gamma >= 0, got {param.gamma:g}")
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        fail(f"lr_policy {policy!r} needs stepsize > 0, got {param.stepsize}")
    if policy == "poly" and param.max_iter <= 0:
        fail(f"lr_policy 'poly' needs max_iter > 0, got {param.max_iter}")
    values = list(param.stepvalue)
    if policy == "multistep" and any(b < a for a, b in zip(values, values[1:])):
        fail(f"lr_policy 'multistep' needs increasing stepvalue entries, got {values}")


def learning_rate(param, iteration: int, current_step: int):
    """(rate as np.float32, the new current_step) at `iteration`."""
    policy, base_lr, gamma = param.lr_policy, param.base_lr, param.gamma
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        current_step = iteration // param.stepsize
        rate = base_lr * gamma ** current_step
    elif policy == "exp":
        rate = base_lr * gamma ** iteration
    elif policy == "inv":
        rate = base_lr * _pow(1.0 + gamma * iteration, -param.power)
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and iteration >= param.stepvalue[current_step]:
            current_step += 1
            log.info("MultiStep Status: Iteration %d, step = %d", iteration, current_step)
        rate = base_lr * gamma ** current_step
    elif policy == "poly":
        rate = base_lr * _pow(1.0 - iteration / param.max_iter, param.power)
    elif policy == "sigmoid":
        exponent = -gamma * (iteration - param.stepsize)
        rate = 0.0 if exponent > 700 else base_lr / (1.0 + math.exp(exponent))
    else:
        raise ConfigError(f"unknown lr_policy {policy!r} (known: {', '.join(POLICIES)})")
    return np.float32(rate), current_step


def _pow(base: float, exponent: float) -> float:
    """C's pow: NaN (not a complex number) for a negative base and a fractional exponent."""
    try:
        return math.pow(base, exponent)
    except (ValueError, OverflowError):
        return math.nan if base < 0 else math.inf
