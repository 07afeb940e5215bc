"""`stn train` killed with SIGKILL at arbitrary moments, snapshots being written every
iteration: every snapshot left under its final name is complete and restores."""

import signal
import subprocess
import sys
import time

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
