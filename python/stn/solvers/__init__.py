"""Caffe's solvers for stn.Net: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta and Adam.

    solver = stn.solvers.get_solver("solver.prototxt")
    solver.solve()                      # or solver.step(n); solver.test(); solver.snapshot()

solver.py (the training loop, tests, snapshots and restore), lr_policy.py (GetLearningRate),
updates.py (each type's ComputeUpdateValue), snapshot.py (the HDF5 snapshot files).
"""

from .lr_policy import POLICIES, learning_rate
from .snapshot import SnapshotError
from .solver import (SOLVERS, AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                     RMSPropSolver, SGDSolver, Solver, get_solver, solver_type_of)
from .updates import TYPES

__all__ = ["POLICIES", "SOLVERS", "TYPES", "AdaDeltaSolver", "AdaGradSolver", "AdamSolver",
           "NesterovSolver", "RMSPropSolver", "SGDSolver", "SnapshotError", "Solver",
           "get_solver", "learning_rate", "solver_type_of"]
