"""stn: Spatial Transformer Networks with hand-written C++ and CUDA kernels.

    import numpy as np, stn
    theta = np.array([[0.5, 0.0, 0.2], [0.0, 0.5, -0.1]], np.float32)   # zoom x2, shift
    out = stn.spatial_transform(images, theta)                          # images (N, C, H, W)

See functional.py for the coordinate conventions (those of PyTorch's grid_sample).
"""

import os as _os

# OpenMP threads that spin after each parallel region steal the cores numpy's BLAS threads
# need (and the other way round): in a net, kernels ran 5x slower. Sleep instead, unless the
# user chose a policy. Must be set before the compiled core loads the OpenMP runtime.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .functional import (  # noqa: E402
    affine_grid,
    affine_grid_backward,
    build_info,
    cuda_available,
    get_num_threads,
    get_output_cache_bytes,
    grid_sample,
    grid_sample_backward,
    set_num_threads,
    set_output_cache_bytes,
    spatial_transform,
    spatial_transform_backward,
    transform_grid,
    transform_grid_backward,
)
from . import transforms  # noqa: E402

from .config_error import ConfigError
from .net import TEST, TRAIN, Net
from .solvers import get_solver

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Net",
    "TEST",
    "TRAIN",
    "get_solver",
    "affine_grid",
    "affine_grid_backward",
    "build_info",
    "cuda_available",
    "get_num_threads",
    "get_output_cache_bytes",
    "grid_sample",
    "grid_sample_backward",
    "set_num_threads",
    "set_output_cache_bytes",
    "spatial_transform",
    "spatial_transform_backward",
    "transform_grid",
    "transform_grid_backward",
    "transforms",
]
