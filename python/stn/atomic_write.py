"""Writing a file so that a crash never leaves a partial file under its final name."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path, data: bytes) -> None:
    """Writes to a temporary file in the same folder, flushes it to disk, then renames it
    over `path` (an atomic replace on POSIX and Windows)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
