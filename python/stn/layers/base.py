"""The Layer base class and the registry from Caffe type strings to layer classes.

Every layer has Caffe's fixed entry points:
  setup(bottoms, tops)     once: check the parameters and bottom shapes, create `self.blobs`
                           (the learnable parameters) with their fillers;
  reshape(bottoms, tops)   every forward: give each top its shape;
  forward(bottoms, tops)   write tops[i].data from bottoms[j].data;
  backward(tops, propagate_down, bottoms)
                           from tops[i].diff, *write* bottoms[j].diff where propagate_down[j]
                           and *add* the parameter gradients into self.blobs[k].diff
                           (the solver zeroes them; iter_size accumulates).
bottoms and tops are lists of stn.blob.Blob. Parameters arrive as the LayerParameter
message of the config (Caffe's field names, see stn/proto/caffe.proto).

A layer reports a bad configuration with self.error("..."), which raises ConfigError naming
the file, the line of the layer and the layer's name.
"""

from __future__ import annotations

import abc

import numpy as np

from ..config_error import ConfigError

LAYER_TYPES: dict = {}


def register(type_name: str):
    """Class decorator: makes the layer available under its Caffe type string."""
    def decorate(cls):
        if type_name in LAYER_TYPES:
            raise ValueError(f"layer type {type_name!r} registered twice")
        cls.type_name = type_name
        LAYER_TYPES[type_name] = cls
        return cls
    return decorate


class Layer(abc.ABC):
    type_name = ""
    # Bottom and top counts this layer accepts: (minimum, maximum); None means unbounded.
    bottom_count = (1, 1)
    top_count = (1, 1)

    def __init__(self, param, phase: str, location=None, dtype=np.float32, rng=None):
        self.param = param            # the layer's LayerParameter message
        self.phase = phase            # "TRAIN" or "TEST"
        self.location = location      # stn.config_error.Location of the layer in its file
        self.dtype = np.dtype(dtype)  # float32, or float64 for gradient checks
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.blobs = []               # learnable parameters, list of Blob

    @property
    def name(self) -> str:
        return self.param.name

    def error(self, message: str) -> ConfigError:
        """A ConfigError that names this layer and where it is written."""
        return ConfigError(f"layer '{self.name}' ({self.type_name}): {message}", self.location)

    def setup(self, bottoms, tops) -> None:
        pass

    @abc.abstractmethod
    def reshape(self, bottoms, tops) -> None:
        """Sets every top's shape from the bottoms' shapes."""

    @abc.abstractmethod
    def forward(self, bottoms, tops) -> None:
        """Writes tops[i].data."""

    def allow_force_backward(self, bottom_index: int) -> bool:
        """Whether force_backward may ask for this bottom's gradient (False for labels)."""
        return True

    def backward(self, tops, propagate_down, bottoms) -> None:
        """Layers with no gradient to give (data, accuracy) leave this as it is."""
