"""Where the example configs (the repository's prototxt/ folder) are: inside the installed
package (CMake installs them as stn/prototxt), or beside the sources in a checkout."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_CANDIDATES = (os.path.join(_HERE, "prototxt"), os.path.join(_HERE, "..", "..", "prototxt"))


def example_path(relative: str) -> str:
    """The path of prototxt/<relative>, e.g. example_path("mnist_stn/solver.prototxt")."""
    for folder in _CANDIDATES:
        path = os.path.normpath(os.path.join(folder, relative))
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"example config prototxt/{relative} is not installed with stn "
                            f"(looked in {', '.join(os.path.normpath(f) for f in _CANDIDATES)})")
