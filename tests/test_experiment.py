"""`stn data` and `stn experiment` end to end, on a small mnist_5k.csv.gz (conftest's
mnist5k_root): the data files, the configs as run, the table, and the three pictures."""

import json

import pytest

from stn.__main__ import main

h5py = pytest.importorskip("h5py")
PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")


def image_size(path):
    with PIL.open(path) as image:
        return image.size


def test_stn_data_writes_hdf5_and_png_lists(mnist5k_root, tmp_path, capsys):
    out = tmp_path / "rts"
    assert main(["data", "RTS", "--root", str(mnist5k_root), "--out", str(out), "--png"]) == 0
    assert "80 training and 20 test images of 42 x 42" in capsys.readouterr().out
    for name, count in (("train", 80), ("test", 20)):
        files = (out / f"{name}.txt").read_text().split()
        with h5py.File(files[0], "r") as f:
            assert f["data"].shape == (count, 1, 42, 42) and f["label"].shape == (count,)
        listed = (out / f"{name}_images.txt").read_text().splitlines()
        assert len(listed) == count
        path, label = listed[0].rsplit(" ", 1)
        assert image_size(out / path) == (42, 42) and 0 <= int(label) <= 9


def test_tiny_experiment_runs_end_to_end(mnist5k_root, tmp_path, capsys):
    out = tmp_path / "experiment"
    code = main(["experiment", "--variant", "RTS", "--root", str(mnist5k_root), "--out", str(out),
                 "--iterations", "20", "--test-interval", "10", "--copies", "2", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "CNN" in printed and "ST-CNN" in printed and "test error" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["train_digits"] == 160 and results["test_digits"] == 20
    for name in ("cnn", "st_cnn"):
        assert results["curves"][name]["iteration"] == [10, 20]
        assert 0 <= results["test_error"][name] <= 1
    assert image_size(out / "transformed.png")[0] > 200
    assert image_size(out / "curves.png")[0] > 400
    with PIL.open(out / "evolution.gif") as gif:
        assert gif.n_frames == 3  # before training and at each of the two tests
    # the configs as run are next to the pictures and train with `stn train`
    assert (out / "st_cnn.prototxt").exists() and (out / "st_cnn_solver.prototxt").exists()


def test_experiment_rejects_bad_counts(mnist5k_root, tmp_path):
    with pytest.raises(SystemExit, match="--iterations must be positive"):
        main(["experiment", "--root", str(mnist5k_root), "--out", str(tmp_path), "--iterations", "0"])
