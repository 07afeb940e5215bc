"""`stn train` killed with SIGKILL at arbitrary moments, snapshots being written every
iteration: every snapshot left under its final name is complete and restores, and resuming
from the newest one (`stn train -snapshot`) ends with exactly the weights of a run that was
never interrupted."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import stn

pytest.importorskip("h5py")

NET = """
name: "crash"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 64 dim: 200 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 64 dim: 200 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 200 weight_filler { type: "gaussian" std: 0.01 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 200 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_sigkill_never_leaves_a_broken_snapshot(tmp_path, delay):
    (tmp_path / "net.prototxt").write_text(NET)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text('net: "net.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "fixed"\n'
                           'max_iter: 100000\ndisplay: 0\nsnapshot: 1\nsnapshot_prefix: "snap/crash"\n'
                           'random_seed: 5\n')
    process = subprocess.Popen([sys.executable, "-m", "stn", "train", "-solver", str(solver_path)],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snapshots = tmp_path / "snap"
    deadline = time.time() + 60
    while time.time() < deadline and not list(snapshots.glob("*.solverstate.h5")):
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    states = sorted(snapshots.glob("*.solverstate.h5"), key=lambda p: int(p.name.split("_iter_")[1].split(".")[0]))
    assert states, "training wrote no snapshot before it was killed"
    for state in states:  # every file under a final name is whole
        solver = stn.get_solver(str(solver_path))
        solver.restore(str(state))
        assert solver.iter == int(state.name.split("_iter_")[1].split(".")[0])


# A small net with Dropout, so that resuming exactly also needs the random state restored.
RESUME_NET = """
name: "resume"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 16 dim: 32 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 32 weight_filler { type: "gaussian" std: 0.1 }
                              bias_filler { type: "constant" value: 0.5 } } }
layer { name: "drop" type: "Dropout" bottom: "h" top: "h" dropout_param { dropout_ratio: 0.3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "x_sum" type: "InnerProduct" bottom: "x" top: "x_sum" param { lr_mult: 0 } param { lr_mult: 0 }
        inner_product_param { num_output: 1 weight_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "x_sum" top: "loss" }
"""
MAX_ITER = 60


def write_resume_solver(folder):
    folder.mkdir()
    (folder / "net.prototxt").write_text(RESUME_NET)
    path = folder / "solver.prototxt"
    path.write_text(f'net: "net.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "fixed"\n'
                    f'max_iter: {MAX_ITER}\ndisplay: 0\nsnapshot: 1\nsnapshot_prefix: "snap/r"\n'
                    'random_seed: 11\n')
    return path


def iteration_of(path):
    return int(path.name.split("_iter_")[1].split(".")[0])


def final_weights(folder, solver_path):
    solver = stn.get_solver(str(solver_path))
    solver.restore(str(folder / "snap" / f"r_iter_{MAX_ITER}.solverstate.h5"))
    return [blob.data.copy() for blob in solver.net.learnable]


def train_command(solver_path, *extra):
    return [sys.executable, "-m", "stn", "train", "-solver", str(solver_path), *extra]


def train_to_the_end(solver_path, *extra):
    result = subprocess.run(train_command(solver_path, *extra), cwd=solver_path.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kill_after", [1, 7, 23])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, kill_after):
    reference = write_resume_solver(tmp_path / "reference")
    train_to_the_end(reference)
    expected = final_weights(tmp_path / "reference", reference)

    solver_path = write_resume_solver(tmp_path / "killed")
    snapshots = tmp_path / "killed" / "snap"
    process = subprocess.Popen(train_command(solver_path), cwd=solver_path.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # Kill while it writes snapshot `kill_after` or the next ones: mid-write included.
    while time.time() < deadline and process.poll() is None and not any(
            iteration_of(p) >= kill_after for p in snapshots.glob("*.solverstate.h5*")):
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    states = sorted(snapshots.glob("*.solverstate.h5"), key=iteration_of)
    if not states:  # killed while writing the first snapshot: start over
        train_to_the_end(solver_path)
    elif iteration_of(states[-1]) < MAX_ITER:
        train_to_the_end(solver_path, "-snapshot", str(states[-1]))
    for a, b in zip(final_weights(tmp_path / "killed", solver_path), expected):
        np.testing.assert_array_equal(a, b)
