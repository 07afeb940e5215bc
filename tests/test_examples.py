"""The example configs in prototxt/ build and run: the seed's play-with-theta net and the
MNIST ST-CNN (on small synthetic HDF5 data written here)."""

import os
import shutil

import numpy as np
import pytest

import stn
from stn.examples import example_path

h5py = pytest.importorskip("h5py")


def write_digits(folder, name, count, size, seed):
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, f"{name}.h5")
    with h5py.File(path, "w") as f:
        f["data"] = rng.random((count, 1, size, size), dtype=np.float32)
        f["label"] = rng.integers(0, 10, count).astype(np.float32)
    with open(os.path.join(folder, f"{name}.txt"), "w") as listing:
        listing.write(path + "\n")


@pytest.fixture
def mnist_stn(tmp_path):
    folder = tmp_path / "mnist_stn"
    shutil.copytree(os.path.dirname(example_path("mnist_stn/train_val.prototxt")), folder)
    write_digits(str(folder), "train", 96, 28, 0)
    write_digits(str(folder), "test", 100, 28, 1)
    return folder


def test_mnist_stn_starts_at_the_identity_transform(mnist_stn, monkeypatch):
    monkeypatch.chdir(mnist_stn)
    net = stn.Net(str(mnist_stn / "train_val.prototxt"), stn.TRAIN)
    np.testing.assert_array_equal(net.params["loc_reg"][1].data, [1, 0, 0, 0, 1, 0])
    net.forward()
    # bias_init.txt puts theta at the identity: the transformer passes the digits through.
    # (up to float32 rounding of the sample coordinates)
    np.testing.assert_allclose(net.blobs["st_output"].data, net.blobs["data"].data, atol=1e-5)
    assert np.isfinite(net.loss())
    net.backward()
    assert net.params["loc_reg"][1].diff.any()  # the localisation net receives gradient
    assert net.params["conv1"][0].diff.any()


def test_mnist_stn_test_phase_has_accuracy(mnist_stn, monkeypatch):
    monkeypatch.chdir(mnist_stn)
    net = stn.Net(str(mnist_stn / "train_val.prototxt"), stn.TEST)
    outputs = net.forward()
    assert set(outputs) == {"accuracy", "loss"}
    assert net.blobs["data"].shape == (100, 1, 28, 28)
    assert 0 <= float(outputs["accuracy"]) <= 1


def test_mnist_stn_solver_trains_a_few_iterations(mnist_stn, monkeypatch):
    monkeypatch.chdir(mnist_stn)
    solver = stn.get_solver(str(mnist_stn / "solver.prototxt"))
    losses = solver.step(3)
    assert solver.iter == 3 and len(losses) == 3 and all(np.isfinite(losses))
    # The localisation net's last layer moved away from the identity it started at.
    assert not np.array_equal(solver.net.params["loc_reg"][1].data, [1, 0, 0, 0, 1, 0])
    assert solver.test_nets[0].params["conv1"][0] is solver.net.params["conv1"][0]


def copy_example(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(os.path.dirname(example_path(f"{name}/train_val.prototxt")), folder)
    write_digits(str(folder), "train", 96, 28, 0)
    write_digits(str(folder), "test", 100, 28, 1)
    return folder


# The rotation-only and TPS ST-CNNs: theta of the size their transform_type expects, the
# identity at the start, and a solver that trains them.
@pytest.mark.parametrize("name,theta_size", [("rotation_stn", 1), ("tps_stn", 18)])
def test_family_examples_start_at_the_identity_and_train(tmp_path, monkeypatch, name, theta_size):
    folder = copy_example(tmp_path, name)
    monkeypatch.chdir(folder)
    net = stn.Net(str(folder / "train_val.prototxt"), stn.TRAIN)
    net.forward()
    assert net.blobs["theta"].shape == (64, theta_size)
    np.testing.assert_allclose(net.blobs["st_output"].data, net.blobs["data"].data, atol=1e-5)
    solver = stn.get_solver(str(folder / "solver.prototxt"))
    start = solver.net.params["loc_reg"][0].data.copy()
    losses = solver.step(3)
    assert all(np.isfinite(losses))
    assert not np.array_equal(solver.net.params["loc_reg"][0].data, start)  # the loc net learns
