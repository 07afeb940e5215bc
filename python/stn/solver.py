"""stn.solver: the solvers under the name pycaffe users look for; they live in stn.solvers."""

from .solvers import *  # noqa: F401,F403
from .solvers import __all__  # noqa: F401
