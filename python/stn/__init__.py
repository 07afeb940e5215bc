"""stn: Spatial Transformer Networks with hand-written C++ and CUDA kernels.

    import numpy as np, stn
    theta = np.array([[0.5, 0.0, 0.2], [0.0, 0.5, -0.1]], np.float32)   # zoom x2, shift
    out = stn.spatial_transform(images, theta)                          # images (N, C, H, W)

See functional.py for the coordinate conventions (those of PyTorch's grid_sample).
"""

# How OpenMP threads wait between parallel regions (a short spin, then sleep), unless the
# user chose: set before the compiled core loads the OpenMP runtime (see omp_policy.py).
from . import omp_policy as _omp_policy

_omp_policy.choose()

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
