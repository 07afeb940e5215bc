"""Caffe layers in numpy. Importing a layer module registers its types in LAYER_TYPES."""

from .base import LAYER_TYPES, Layer, register

from . import neuron
from . import eltwise
from . import shape
from . import loss
from . import inner_product
from . import vision
from . import spatial_transformer
from . import data

__all__ = ["LAYER_TYPES", "Layer", "register"]
