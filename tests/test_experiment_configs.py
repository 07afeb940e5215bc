"""`stn experiment --configs/--nets` and the full-MNIST configs (prototxt/experiment_full):
they parse and build with the net runner, the ST-CNN starts at the identity, the solver's
schedule scales to the iterations run, a tiny run trains only the nets asked for, and the
training copies are written one at a time into exactly the files of the whole array."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import stn
from stn import data as stn_data
from stn import experiment
from stn.__main__ import main
from stn.config import read_net, read_solver
from stn.examples import example_path

h5py = pytest.importorskip("h5py")
pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")


def write_split(folder, name, count, size, seed):
    rng = np.random.default_rng(seed)
    images = rng.random((count, 1, size, size), dtype=np.float32)
    return stn_data.write_hdf5_split(folder, name, images, rng.integers(0, 10, count))


@pytest.fixture
def full_configs(tmp_path):
    """prototxt/experiment_full written by write_configs for 42 x 42 RTS data (random)."""
    train_list = write_split(tmp_path / "data", "train", 128, 42, 0)
    test_list = write_split(tmp_path / "data", "test", 100, 42, 1)
    settings = experiment.resolved(experiment.Settings(configs="experiment_full", out=str(tmp_path)))
    return experiment.write_configs(settings, str(tmp_path), train_list, test_list, 100)


def classifier(net_param):
    """(type, num_output) of the layers after the transformer (all of the CNN's)."""
    layers = list(net_param.layer)
    names = [layer.name for layer in layers]
    start = names.index("st") + 1 if "st" in names else 0
    return [(layer.type, layer.convolution_param.num_output or layer.inner_product_param.num_output)
            for layer in layers[start:] if layer.type in ("Convolution", "InnerProduct", "Dropout")]


def test_full_configs_share_one_classifier_wider_than_the_defaults():
    full = {name: read_net(example_path(f"experiment_full/{name}.prototxt")).param
            for name in experiment.NETS}
    small = read_net(example_path("experiment/cnn.prototxt")).param
    assert classifier(full["cnn"]) == classifier(full["st_cnn"])
    widths = [n for kind, n in classifier(full["cnn"]) if kind != "Dropout"]
    assert len(widths) == len([n for _, n in classifier(small)])
    assert all(w >= s for w, s in zip(widths, [n for _, n in classifier(small)]))
    assert widths[-1] == 10


def test_full_configs_build_and_train(full_configs):
    solver = stn.get_solver(full_configs["st_cnn"])
    net = solver.net
    np.testing.assert_array_equal(net.params["loc_reg"][1].data, [1, 0, 0, 0, 1, 0])
    assert net.blobs["st_output"].shape == (64, 1, 28, 28)   # RTS: 28 x 28 from the 42 x 42 canvas
    losses = solver.step(2)
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert 0 <= solver.test()[0]["accuracy"] <= 1
    cnn = stn.get_solver(full_configs["cnn"])
    assert np.isfinite(cnn.step(1)).all()


def test_solver_schedule_scales_to_the_iterations_run(tmp_path):
    template = read_solver(example_path("experiment_full/solver.prototxt")).param
    assert template.max_iter > 0 and list(template.stepvalue)
    settings = experiment.resolved(experiment.Settings(configs="experiment_full"))
    assert settings.iterations == template.max_iter           # the default: the solver's length
    assert settings.test_interval == template.test_interval
    write_split(tmp_path / "data", "train", 10, 42, 0)
    lists = [str(tmp_path / "data" / f"{n}.txt") for n in ("train", "train")]
    for configs, iterations in (("experiment", 1000), ("experiment", 7), ("experiment_full", 2 * template.max_iter)):
        settings = experiment.resolved(experiment.Settings(configs=configs, iterations=iterations))
        paths = experiment.write_configs(settings, str(tmp_path), *lists, 10)
        written = read_solver(paths["st_cnn"]).param
        planned = read_solver(example_path(f"{configs}/solver.prototxt")).param
        assert written.max_iter == iterations
        assert list(written.stepvalue) == [max(1, v * iterations // planned.max_iter)
                                           for v in planned.stepvalue]
        if configs == "experiment":   # the defaults' "last quarter at a tenth", as before
            assert list(written.stepvalue) == [max(1, iterations * 3 // 4)]


def test_tiny_full_experiment_trains_only_the_st_cnn(mnist5k_root, tmp_path, capsys):
    out = tmp_path / "full"
    code = main(["experiment", "--variant", "RTS", "--root", str(mnist5k_root), "--out", str(out),
                 "--configs", "experiment_full", "--nets", "st_cnn", "--iterations", "6",
                 "--test-interval", "3", "--copies", "2", "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    assert "ST-CNN" in captured.out and "CNN " not in captured.out.replace("ST-CNN", "")
    assert "ST-CNN iteration 3: test error" in captured.err   # one line per test in the log
    results = json.loads((out / "results.json").read_text())
    assert results["nets"] == ["st_cnn"] and list(results["test_error"]) == ["st_cnn"]
    assert results["configs"] == "experiment_full" and results["copies"] == 2
    assert results["ratio_st_cnn_to_cnn"] is None and results["train_digits"] == 160
    assert results["curves"]["st_cnn"]["iteration"] == [3, 6]
    assert results["threads"] >= 1
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".gif", ".prototxt")) == \
        ["curves.png", "evolution.gif", "st_cnn.prototxt", "st_cnn_solver.prototxt", "transformed.png"]
    assert (out / "bias_init.txt").exists()   # the ST-CNN's filler file travels with it


def test_cnn_alone_writes_no_transformer_pictures(mnist5k_root, tmp_path):
    out = tmp_path / "cnn"
    assert main(["experiment", "--root", str(mnist5k_root), "--out", str(out), "--nets", "cnn",
                 "--iterations", "2", "--test-interval", "2", "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["test_error"]) == ["cnn"] and results["pictures"] == ["curves.png"]
    assert not (out / "transformed.png").exists() and not (out / "st_cnn.prototxt").exists()


def test_configs_from_a_folder_path(mnist5k_root, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("cnn.prototxt", "solver.prototxt"):
        shutil.copy(example_path(f"experiment/{name}"), folder / name)
    out = tmp_path / "out"
    assert main(["experiment", "--root", str(mnist5k_root), "--out", str(out), "--configs", str(folder),
                 "--nets", "cnn", "--iterations", "2", "--test-interval", "1", "--no-progress"]) == 0
    assert json.loads((out / "results.json").read_text())["curves"]["cnn"]["iteration"] == [1, 2]


@pytest.mark.parametrize("arguments, message", [
    (["--configs", "no_such_configs"], "--configs 'no_such_configs' is neither a folder"),
    (["--nets", "rnn"], None),                       # argparse: invalid choice
    (["--nets", "cnn", "cnn"], "nets must be distinct"),
    (["--train-limit", "0"], "--train-limit must be positive"),
])
def test_bad_experiment_options_are_named(mnist5k_root, tmp_path, arguments, message):
    with pytest.raises(SystemExit) as info:
        main(["experiment", "--root", str(mnist5k_root), "--out", str(tmp_path / "x")] + arguments)
    if message:
        assert message in str(info.value)
    assert not (tmp_path / "x").exists()


def test_configs_folder_missing_a_net(tmp_path):
    shutil.copy(example_path("experiment/solver.prototxt"), tmp_path / "solver.prototxt")
    settings = experiment.resolved(experiment.Settings(configs=str(tmp_path), nets=("st_cnn",)))
    with pytest.raises(ValueError, match="has no st_cnn.prototxt"):
        experiment.write_configs(settings, str(tmp_path), "train.txt", "test.txt", 10)


def test_copies_written_one_at_a_time_match_the_whole_array(mnist5k_root, tmp_path):
    digits = stn_data.load_digits("mnist5k", root=str(mnist5k_root))
    train, labels, _, _ = stn_data.distort_splits("RTS", digits, copies=3, seed=2)
    whole = stn_data.write_hdf5_split(tmp_path / "whole", "train", train, labels, shard_size=70)
    chunked = stn_data.write_hdf5_chunks(tmp_path / "chunks", "train", stn_data.distorted_copies(
        "RTS", digits, copies=3, seed=2), shard_size=70)
    whole, chunked = (Path(listing).read_text().split() for listing in (whole, chunked))
    names = [os.path.basename(p) for p in chunked]
    assert names == [os.path.basename(p) for p in whole]
    assert names == ["train_000.h5", "train_001.h5", "train_002.h5", "train_003.h5"]  # 240 = 3 x 70 + 30
    for a, b in zip(whole, chunked):
        with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
            np.testing.assert_array_equal(x["data"][...], y["data"][...])
            np.testing.assert_array_equal(x["label"][...], y["label"][...])


def test_chunk_errors(tmp_path):
    image = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="write_hdf5_chunks: no \\(images, labels\\) chunk given"):
        stn_data.write_hdf5_chunks(tmp_path, "a", [])
    with pytest.raises(ValueError, match="every chunk's images must be \\(N, 1, 4, 4\\)"):
        stn_data.write_hdf5_chunks(tmp_path, "a", [(image, np.zeros(2)),
                                                   (np.zeros((2, 1, 5, 5), np.float32), np.zeros(2))])
    with pytest.raises(ValueError, match="copies must be a positive integer"):
        list(stn_data.distorted_copies("RTS", None, copies=0))
