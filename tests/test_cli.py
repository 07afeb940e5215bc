"""The `stn` command line: Caffe's verbs with single- or double-dash flags, run as real
processes where the behaviour is process-level (exit codes, messages)."""

import os
import subprocess
import sys

import pytest

from stn.__main__ import main

SEED_NET = os.path.join(os.path.dirname(__file__), "..", "prototxt", "st_zoom_translate.prototxt")

SMALL_NET = """
name: "small"
input: "x" input_shape { dim: 4 dim: 3 }
input: "label" input_shape { dim: 4 }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def run_stn(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "stn", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("dash", ["-", "--"])
def test_time_prints_every_layer(capsys, dash):
    assert main(["time", f"{dash}model", SEED_NET, f"{dash}iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert "st_1" in out and "SpatialTransformer" in out and "total forward-backward" in out


def test_test_reports_the_averaged_outputs(tmp_path, caplog):
    model = tmp_path / "small.prototxt"
    model.write_text(SMALL_NET)
    with caplog.at_level("INFO", logger="stn"):
        assert main(["test", "-model", str(model), "-iterations", "3"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Batch ") for m in messages) == 3
    # Zero inputs give uniform softmax over 5 classes: loss = log(5).
    assert any(m.startswith("loss = 1.60944") and "(* 1 = 1.60944 loss)" in m for m in messages)


def test_config_errors_exit_2_with_the_location(tmp_path):
    model = tmp_path / "broken.prototxt"
    model.write_text(SMALL_NET.replace("num_output: 5", "num_outputs: 5"))
    result = run_stn("time", "--model", str(model))
    assert result.returncode == 2
    assert f"{model}:6:31: unknown field 'num_outputs' in InnerProductParameter" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_required_flag_is_a_usage_error():
    result = run_stn("test")
    assert result.returncode == 2 and "-model" in result.stderr


TRAIN_NET = """
name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 8 dim: 3 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 8 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 }
                              bias_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
"""


def write_solver(folder, max_iter, snapshot=0):
    (folder / "net.prototxt").write_text(TRAIN_NET)
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: {max_iter}\n'
        f'display: 1\nsnapshot: {snapshot}\nsnapshot_prefix: "snap/tiny"\nrandom_seed: 3\n')
    return folder / "solver.prototxt"


def test_train_runs_logs_like_caffe_and_snapshots(tmp_path):
    solver = write_solver(tmp_path, max_iter=4, snapshot=2)
    result = run_stn("train", "-solver", str(solver), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Iteration 0, loss = " in result.stderr and "Optimization Done." in result.stderr
    snapshots = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert snapshots == ["tiny_iter_2.caffemodel.h5", "tiny_iter_2.solverstate.h5",
                         "tiny_iter_4.caffemodel.h5", "tiny_iter_4.solverstate.h5"]
    resumed = run_stn("train", "--solver", str(solver), "--snapshot",
                      str(tmp_path / "snap" / "tiny_iter_2.solverstate.h5"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_sigint_writes_a_snapshot_before_exiting(tmp_path):
    import signal
    import time
    solver = write_solver(tmp_path, max_iter=10**7)
    process = subprocess.Popen([sys.executable, "-m", "stn", "train", "-solver", str(solver)],
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training is under way
        line = process.stderr.readline()
        if "Iteration 5," in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    states = list((tmp_path / "snap").glob("tiny_iter_*.solverstate.h5"))
    assert len(states) == 1 and "Snapshotting" in rest
