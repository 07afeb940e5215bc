"""The IDX file format of MNIST and Fashion-MNIST: read_idx and write_idx.

Layout (all big-endian): 4 magic bytes 0, 0, dtype code, ndim; then ndim uint32 dimension
sizes; then the values in C order. The files are usually gzip-compressed; read_idx tells by
the gzip magic (1f 8b), not by the name, and write_idx compresses when the name ends in .gz.
Arrays come back in native byte order. No pickle anywhere: the format is raw numbers.

    images = read_idx("train-images-idx3-ubyte.gz")   # uint8 (60000, 28, 28)
    write_idx("labels-idx1-ubyte.gz", labels)         # labels uint8 (N,)
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from ..atomic_write import write_atomically

# dtype code in the third magic byte -> the big-endian numpy type stored on disk
DTYPE_BY_CODE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODE_BY_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPE_BY_CODE.items()}
GZIP_MAGIC = b"\x1f\x8b"


def _file_bytes(path: str) -> bytes:
    """The file's contents, gunzipped when it starts with the gzip magic."""
    with open(path, "rb") as stream:
        raw = stream.read()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable gzip file ({error})") from None


def _supported_types() -> str:
    return ", ".join(f"0x{code:02X} {dtype.newbyteorder('=').name}" for code, dtype in DTYPE_BY_CODE.items())


def read_idx(path) -> np.ndarray:
    """The array stored in the IDX file `path` (plain or gzip), in native byte order."""
    path = os.fspath(path)
    raw = _file_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: holds {len(raw)} bytes, fewer than the 4-byte magic")
    zero_a, zero_b, code, ndim = raw[:4]
    if zero_a != 0 or zero_b != 0:
        raise ValueError(f"{path}: not an IDX file: bad magic {raw[:4].hex(' ')} "
                         f"(an IDX file starts with 00 00, then a dtype code and the number of dimensions)")
    if code not in DTYPE_BY_CODE:
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {_supported_types()})")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header: holds {len(raw)} bytes, "
                         f"header says {header_size} for {ndim} dimensions")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = DTYPE_BY_CODE[code]
    expected = header_size + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated IDX file" if len(raw) < expected else "IDX file has trailing bytes"
        raise ValueError(f"{path}: {what}: holds {len(raw)} bytes, header says {expected} "
                         f"(shape {shape} of {dtype.newbyteorder('=').name})")
    values = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))   # a writable copy in native order


def write_idx(path, array) -> None:
    """Writes `array` (uint8, int8, int16, int32, float32 or float64; 1 to 255 dimensions) to
    the IDX file `path`, gzip-compressed when the name ends in .gz, atomically."""
    path = os.fspath(path)
    array = np.asarray(array)
    code = CODE_BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"write_idx({path!r}): array of {array.dtype} has no IDX dtype code "
                         f"(supported: {_supported_types()})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx({path!r}): array has {array.ndim} dimensions; IDX stores 1 to 255")
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(f"write_idx({path!r}): shape {array.shape} has a size that does not fit in uint32")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array, DTYPE_BY_CODE[code]).tobytes()
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)   # mtime 0: the same array gives the same bytes
    write_atomically(path, data)
