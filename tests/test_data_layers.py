"""HDF5Data and ImageData layers: batching across files and passes, shuffling from the net's
rng, labels, transform_param (crop, mirror, mean, scale) against hand-computed arrays, BGR
order, resizing, exact resume through get_state/set_state, and the set-up errors that name
the file, the dataset and the prototxt line."""

import os
import sys

import numpy as np
import pytest

import stn
from stn.config import parse_net
from stn.config_error import ConfigError

h5py = pytest.importorskip("h5py")
Image = pytest.importorskip("PIL.Image")

LINE = "net.prototxt:2:"   # every layer below is written on line 2 of its prototxt


def make_net(tmp_path, layer, phase=stn.TRAIN, seed=0):
    text = f'name: "data"\nlayer {{ {layer} }}\n'
    return stn.Net(parse_net(text, str(tmp_path / "net.prototxt")), phase, seed=seed)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as handle:
        for name, value in datasets.items():
            handle[name] = value


def write_list(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def hdf5_layer(source="list.txt", batch_size=2, shuffle=False, tops=("data", "label")):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "h5" type: "HDF5Data" {top_text} hdf5_data_param {{ source: "{source}" '
            f'batch_size: {batch_size} shuffle: {"true" if shuffle else "false"} }}')


def rows_file(tmp_path, name, ids):
    """An .h5 whose row r has data [id, 10 * id] and label id, for the given ids."""
    ids = np.asarray(ids, np.float64)
    write_h5(tmp_path / name, data=np.stack([ids, 10 * ids], 1), label=ids)


def two_files(tmp_path):
    rows_file(tmp_path, "a.h5", [0, 1, 2])
    rows_file(tmp_path, "b.h5", [3, 4])
    write_list(tmp_path / "list.txt", ["a.h5", str(tmp_path / "b.h5")])  # relative and absolute


def batches(net, count, top="label"):
    return [net.forward()[top].copy() for _ in range(count)]


# ------------------------------------------------------------------------------------ HDF5Data

def test_hdf5_batches_cross_files_and_passes(tmp_path):
    two_files(tmp_path)
    net = make_net(tmp_path, hdf5_layer(batch_size=4))
    assert net.blobs["data"].shape == (4, 2) and net.blobs["label"].shape == (4,)
    got = batches(net, 3)
    np.testing.assert_array_equal(got, [[0, 1, 2, 3], [4, 0, 1, 2], [3, 4, 0, 1]])
    np.testing.assert_array_equal(net.blobs["data"].data, [[3, 30], [4, 40], [0, 0], [1, 10]])
    assert net.blobs["data"].data.dtype == np.float32


def test_hdf5_paths_relative_to_cwd_first(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    rows_file(tmp_path / "sub", "a.h5", [7, 8])
    write_list(tmp_path / "list.txt", ["sub/a.h5"])
    monkeypatch.chdir(tmp_path / "sub")
    # "sub/a.h5" does not exist relative to the cwd (tmp/sub): read from the list's folder
    net = make_net(tmp_path, hdf5_layer(source=str(tmp_path / "list.txt")))
    np.testing.assert_array_equal(net.forward()["label"], [7, 8])
    # the source itself, relative to the prototxt folder when not found from the cwd
    net = make_net(tmp_path, hdf5_layer(source="list.txt"))
    np.testing.assert_array_equal(net.forward()["label"], [7, 8])
    # a path that exists relative to the cwd wins (Caffe's rule)
    os.makedirs(tmp_path / "sub" / "sub")
    rows_file(tmp_path / "sub" / "sub", "a.h5", [5, 6])
    net = make_net(tmp_path, hdf5_layer(source="list.txt"))
    np.testing.assert_array_equal(net.forward()["label"], [5, 6])


def test_hdf5_multi_dim_data_and_integer_dtype(tmp_path):
    data = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    write_h5(tmp_path / "x.h5", data=data, label=np.array([[1], [0]], np.int32))
    write_list(tmp_path / "list.txt", ["x.h5"])
    net = make_net(tmp_path, hdf5_layer(batch_size=3))
    out = net.forward()
    assert out["data"].shape == (3, 3, 2, 2) and out["label"].shape == (3, 1)
    np.testing.assert_array_equal(out["data"], data[[0, 1, 0]].astype(np.float32))
    np.testing.assert_array_equal(out["label"], [[1], [0], [1]])


def test_hdf5_shuffle_deterministic_per_seed_and_complete_per_pass(tmp_path):
    rows_file(tmp_path, "a.h5", [0, 1, 2])
    rows_file(tmp_path, "b.h5", [3, 4])
    rows_file(tmp_path, "c.h5", [5, 6, 7, 8])
    write_list(tmp_path / "list.txt", ["a.h5", "b.h5", "c.h5"])
    layer = hdf5_layer(batch_size=9, shuffle=True)
    first = batches(make_net(tmp_path, layer, seed=3), 6)
    again = batches(make_net(tmp_path, layer, seed=3), 6)
    other = batches(make_net(tmp_path, layer, seed=4), 6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    groups = {0: (0, 1, 2), 1: (3, 4), 2: (5, 6, 7, 8)}
    which = {i: g for g, members in groups.items() for i in members}
    for batch in first:                       # a pass reads each row once, file after file
        assert sorted(batch) == list(range(9))
        files = [which[int(i)] for i in batch]
        assert len([k for k in range(1, 9) if files[k] != files[k - 1]]) == 2
    assert len({tuple(b) for b in first}) > 1  # reshuffled between passes
    unshuffled = batches(make_net(tmp_path, hdf5_layer(batch_size=9)), 1)[0]
    np.testing.assert_array_equal(unshuffled, range(9))


def test_hdf5_state_resume(tmp_path):
    two_files(tmp_path)
    rows_file(tmp_path, "c.h5", [5, 6, 7, 8])
    write_list(tmp_path / "list.txt", ["a.h5", "b.h5", "c.h5"])
    layer = hdf5_layer(batch_size=4, shuffle=True)
    net = make_net(tmp_path, layer, seed=1)
    batches(net, 2)
    state = net.layers[0].get_state()
    rng_state = net.layers[0].rng.bit_generator.state
    assert set(state) == {"file_order", "file_cursor", "row_order", "row_cursor"}
    assert all(isinstance(i, int) for i in state["file_order"] + state["row_order"])
    expected = batches(net, 5, "data")
    resumed = make_net(tmp_path, layer, seed=99)
    resumed.layers[0].set_state(state)
    resumed.layers[0].rng.bit_generator.state = rng_state
    np.testing.assert_array_equal(batches(resumed, 5, "data"), expected)
    with pytest.raises(ValueError, match="not a permutation"):
        resumed.layers[0].set_state(dict(state, file_order=[0, 1]))


def test_hdf5_end_to_end_training_net(tmp_path):
    rng = np.random.default_rng(0)
    write_h5(tmp_path / "train.h5", data=rng.normal(size=(6, 4)), label=np.array([0, 1, 2, 0, 1, 2]))
    write_list(tmp_path / "train.txt", ["train.h5"])
    text = """name: "e2e"
layer { name: "h5" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "train.txt" batch_size: 4 shuffle: true } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
    net = stn.Net(parse_net(text, str(tmp_path / "net.prototxt")), stn.TRAIN)
    for _ in range(3):
        net.forward()
        assert np.isfinite(net.loss()) and net.loss() > 0
        for blob in net.params["ip"]:
            blob.diff[...] = 0
        net.backward()
        weights, bias = net.params["ip"]
        expected = net.blobs["ip"].diff.T @ net.blobs["data"].data
        np.testing.assert_allclose(weights.diff, expected, rtol=1e-5, atol=1e-7)
        assert np.abs(weights.diff).sum() > 0


@pytest.mark.parametrize("case, message", [
    ("no_source", "hdf5_data_param.source is not set"),
    ("source_missing", "'nowhere.txt' not found"),
    ("h5_missing", "HDF5 file 'missing.h5' (line 2 of"),
    ("dataset_missing", "has no dataset 'label'"),
    ("rows_differ", "different row counts: 'data' 3, 'label' 2"),
    ("strings", "not a numeric type"),
    ("empty", "have 0 rows"),
    ("trailing", "dataset 'data' has rows of shape [3]"),
    ("empty_list", "lists no files"),
    ("not_hdf5", "cannot open HDF5 file"),
    ("batch_size", "batch_size must be set and positive"),
    ("transform", "does not transform data"),
])
def test_hdf5_errors_name_file_dataset_and_line(tmp_path, case, message):
    good = tmp_path / "good.h5"
    rows_file(tmp_path, "good.h5", [0, 1, 2])
    bad = tmp_path / "bad.h5"
    entries = ["good.h5", "bad.h5"]
    layer = hdf5_layer()
    if case == "no_source":
        layer = 'name: "h5" type: "HDF5Data" top: "data" hdf5_data_param { batch_size: 2 }'
    elif case == "source_missing":
        layer = hdf5_layer(source="nowhere.txt")
    elif case == "h5_missing":
        entries = ["good.h5", "missing.h5"]
    elif case == "dataset_missing":
        write_h5(bad, data=np.zeros((3, 2)))
    elif case == "rows_differ":
        write_h5(bad, data=np.zeros((3, 2)), label=np.zeros(2))
    elif case == "strings":
        write_h5(bad, data=np.zeros((2, 2)), label=np.array([b"a", b"b"]))
    elif case == "empty":
        write_h5(bad, data=np.zeros((0, 2)), label=np.zeros(0))
    elif case == "trailing":
        write_h5(bad, data=np.zeros((2, 3)), label=np.zeros(2))
    elif case == "empty_list":
        entries = ["", "  "]
    elif case == "not_hdf5":
        bad.write_text("not hdf5")
    elif case == "batch_size":
        layer = hdf5_layer(batch_size=0)
    elif case == "transform":
        layer = hdf5_layer() + " transform_param { scale: 2 }"
    write_list(tmp_path / "list.txt", entries)
    with pytest.raises(ConfigError) as info:
        make_net(tmp_path, layer)
    text = str(info.value)
    assert text.startswith(str(tmp_path / LINE)), text
    assert "layer 'h5' (HDF5Data)" in text and message in text, text
    if case in ("dataset_missing", "rows_differ", "strings", "empty", "trailing", "not_hdf5"):
        assert str(bad) in text
    assert good.exists()


def test_hdf5_needs_h5py_message(tmp_path, monkeypatch):
    two_files(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "stn\[hdf5\]"'):
        make_net(tmp_path, hdf5_layer())


# ------------------------------------------------------------------------------------ ImageData

def write_png(path, pixels):
    """pixels: (H, W, 3) RGB or (H, W) grey uint8."""
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)


def image_layer(params="", transform="", tops=("data", "label"), source="images.txt"):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "img" type: "ImageData" {top_text} image_data_param {{ source: "{source}" '
            f'{params} }} transform_param {{ {transform} }}')


def rgb_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def bgr_chw(rgb):
    return rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)


def test_image_bgr_order_and_labels(tmp_path):
    a, b = rgb_image(3, 4, 1), rgb_image(3, 4, 2)
    a[0, 0] = (255, 128, 0)                           # R, G, B
    write_png(tmp_path / "a.png", a)
    (tmp_path / "sub dir").mkdir()
    write_png(tmp_path / "sub dir" / "b.png", b)
    write_list(tmp_path / "images.txt", ["a.png 7", "", "sub dir/b.png\t-2"])
    net = make_net(tmp_path, image_layer("batch_size: 3"))
    out = net.forward()
    assert out["data"].shape == (3, 3, 3, 4) and out["label"].shape == (3,)
    np.testing.assert_array_equal(out["data"][0, :, 0, 0], [0, 128, 255])   # B, G, R
    np.testing.assert_array_equal(out["data"], [bgr_chw(a), bgr_chw(b), bgr_chw(a)])
    np.testing.assert_array_equal(out["label"], [7, -2, 7])


def test_image_grey_and_root_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    colour = rgb_image(2, 3)
    write_png(tmp_path / "imgs" / "c.png", colour)
    write_png(tmp_path / "imgs" / "g.png", [[0, 50, 100], [150, 200, 250]])
    write_list(tmp_path / "images.txt", ["c.png 0", "g.png 1"])
    net = make_net(tmp_path, image_layer('batch_size: 2 is_color: false root_folder: "imgs/"'))
    out = net.forward()["data"]
    assert out.shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(out[1, 0], [[0, 50, 100], [150, 200, 250]])
    luma = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(out[0, 0], luma)
    # a grey image read in colour: three equal channels
    net = make_net(tmp_path, image_layer('batch_size: 2 root_folder: "imgs"'))
    out = net.forward()["data"]
    np.testing.assert_array_equal(out[1], np.repeat([[[0, 50, 100], [150, 200, 250]]], 3, 0))


def test_image_resize_bilinear(tmp_path):
    write_png(tmp_path / "g.png", [[0, 160], [80, 240]])
    write_list(tmp_path / "images.txt", ["g.png 0"])
    net = make_net(tmp_path, image_layer("new_height: 4 new_width: 4 is_color: false"))
    out = net.forward()["data"]
    assert out.shape == (1, 1, 4, 4)
    # pixel centres at -0.25, 0.25, 0.75, 1.25 of the input, clamped at the borders
    np.testing.assert_array_equal(out[0, 0], [[0, 40, 120, 160],
                                              [20, 60, 140, 180],
                                              [60, 100, 180, 220],
                                              [80, 120, 200, 240]])
    net = make_net(tmp_path, image_layer("new_height: 3 new_width: 5"))
    assert net.forward()["data"].shape == (1, 3, 3, 5)


def test_transform_test_phase_centre_crop_no_mirror_mean_scale(tmp_path):
    write_png(tmp_path / "g.png", np.arange(25).reshape(5, 5) * 10)
    rgb = rgb_image(5, 6)
    write_png(tmp_path / "c.png", rgb)
    write_list(tmp_path / "images.txt", ["g.png 0"])
    write_list(tmp_path / "colour.txt", ["c.png 0"])
    layer = image_layer("is_color: false", "crop_size: 3 mirror: true mean_value: 10 scale: 0.5")
    net = make_net(tmp_path, layer, stn.TEST)
    for _ in range(3):    # TEST: always the centre, never mirrored
        np.testing.assert_array_equal(net.forward()["data"][0, 0],
                                      [[25, 30, 35], [50, 55, 60], [75, 80, 85]])
    layer = image_layer("", "crop_size: 3 mean_value: 10 mean_value: 20 mean_value: 30 scale: 0.5",
                        source="colour.txt")
    out = make_net(tmp_path, layer, stn.TEST).forward()["data"][0]
    expected = (bgr_chw(rgb)[:, 1:4, 1:4] - np.array([10, 20, 30], np.float32)[:, None, None]) * 0.5
    np.testing.assert_array_equal(out, expected)
    # one mean_value for every channel, no crop
    layer = image_layer("", "mean_value: 100", source="colour.txt")
    np.testing.assert_array_equal(make_net(tmp_path, layer, stn.TEST).forward()["data"][0],
                                  bgr_chw(rgb) - 100)


def test_transform_train_random_crop_and_mirror(tmp_path):
    rgb = rgb_image(5, 6)
    write_png(tmp_path / "c.png", rgb)
    write_list(tmp_path / "images.txt", ["c.png 4"] * 8)
    layer = image_layer("batch_size: 8", "crop_size: 3 mirror: true mean_value: 1 mean_value: 2 "
                        "mean_value: 3 scale: 0.25")
    out = make_net(tmp_path, layer, stn.TRAIN, seed=5).forward()["data"]
    draws = np.random.default_rng(5)          # the same draws in Caffe's order
    mean = np.array([1, 2, 3], np.float32)[:, None, None]
    seen = set()
    for k in range(8):
        mirror = bool(draws.integers(2))
        h, w = int(draws.integers(5 - 3 + 1)), int(draws.integers(6 - 3 + 1))
        expected = (bgr_chw(rgb)[:, h:h + 3, w:w + 3] - mean) * np.float32(0.25)
        if mirror:
            expected = expected[:, :, ::-1]
        np.testing.assert_array_equal(out[k], expected)
        seen.add((mirror, h, w))
    assert {m for m, _, _ in seen} == {True, False} and len(seen) > 3


def test_image_shuffle_passes_and_determinism(tmp_path):
    for i in range(5):
        write_png(tmp_path / f"{i}.png", np.full((2, 2), i * 40))
    write_list(tmp_path / "images.txt", [f"{i}.png {i}" for i in range(5)])
    layer = image_layer("batch_size: 5 shuffle: true is_color: false")
    first = batches(make_net(tmp_path, layer, seed=2), 4)
    np.testing.assert_array_equal(first, batches(make_net(tmp_path, layer, seed=2), 4))
    assert not np.array_equal(first, batches(make_net(tmp_path, layer, seed=3), 4))
    for labels in first:
        assert sorted(labels) == list(range(5))
    assert len({tuple(b) for b in first}) > 1
    net = make_net(tmp_path, image_layer("batch_size: 3 is_color: false"))
    np.testing.assert_array_equal(batches(net, 3), [[0, 1, 2], [3, 4, 0], [1, 2, 3]])
    np.testing.assert_array_equal(net.blobs["data"].data[:, 0, 0, 0], [40, 80, 120])


def test_image_state_resume(tmp_path):
    for i in range(5):
        write_png(tmp_path / f"{i}.png", rgb_image(4, 5, i))
    write_list(tmp_path / "images.txt", [f"{i}.png {i}" for i in range(5)])
    layer = image_layer("batch_size: 3 shuffle: true", "crop_size: 3 mirror: true")
    net = make_net(tmp_path, layer, seed=7)
    batches(net, 2)
    state, rng_state = net.layers[0].get_state(), net.layers[0].rng.bit_generator.state
    assert set(state) == {"order", "cursor"}
    expected = batches(net, 4, "data")
    resumed = make_net(tmp_path, layer, seed=0)
    resumed.layers[0].set_state(state)
    resumed.layers[0].rng.bit_generator.state = rng_state
    np.testing.assert_array_equal(batches(resumed, 4, "data"), expected)
    with pytest.raises(ValueError, match="cursor 9"):
        resumed.layers[0].set_state({"order": None, "cursor": 9})


def test_image_rand_skip_and_single_top(tmp_path):
    for i in range(4):
        write_png(tmp_path / f"{i}.png", np.full((1, 1), i))
    write_list(tmp_path / "images.txt", [f"{i}.png {i}" for i in range(4)])
    net = make_net(tmp_path, image_layer("rand_skip: 4 is_color: false", tops=("data",)), seed=11)
    skip = int(np.random.default_rng(11).integers(4))
    assert net.forward()["data"][0, 0, 0, 0] == skip


def test_image_batch_shape_follows_first_image(tmp_path):
    write_png(tmp_path / "small.png", rgb_image(2, 3))
    write_png(tmp_path / "big.png", rgb_image(4, 5))
    write_list(tmp_path / "images.txt", ["small.png 0", "big.png 1"])
    net = make_net(tmp_path, image_layer("batch_size: 1"))
    assert net.forward()["data"].shape == (1, 3, 2, 3)
    assert net.forward()["data"].shape == (1, 3, 4, 5)
    net = make_net(tmp_path, image_layer("batch_size: 2"))
    with pytest.raises(ConfigError, match=r"image 'big.png' \(.*images.txt line 2\) has shape"):
        net.forward()


@pytest.mark.parametrize("case, message", [
    ("missing_image", "image 'gone.png' ({list} line 2) not found"),
    ("bad_label", "{list} line 2: expected 'path label' with an integer label, got 'a.png x'"),
    ("no_label", "{list} line 3: expected 'path label'"),
    ("no_source", "image_data_param.source is not set"),
    ("source_missing", "image_data_param.source 'nowhere.txt' not found"),
    ("empty_list", "lists no files"),
    ("one_size", "set new_height and new_width together"),
    ("mean_count", "give 1 mean_value or one per channel (3), got 2"),
    ("crop_too_big", "is 3x4 (HxW), smaller than crop_size 4"),
    ("root_missing", "root_folder 'nope' is not a folder"),
    ("legacy", "image_data_param.scale is deprecated"),
    ("not_image", "cannot read image 'a.png'"),
])
def test_image_errors_name_path_list_line_and_layer(tmp_path, case, message):
    write_png(tmp_path / "a.png", rgb_image(3, 4))
    listing = tmp_path / "images.txt"
    entries = ["a.png 0", "a.png 1"]
    params, transform = "", ""
    if case == "missing_image":
        entries = ["a.png 0", "gone.png 1"]
        params = "batch_size: 2"
    elif case == "bad_label":
        entries = ["a.png 0", "a.png x"]
    elif case == "no_label":
        entries = ["a.png 0", "", "a.png"]
    elif case == "empty_list":
        entries = []
    elif case == "one_size":
        params = "new_height: 4"
    elif case == "mean_count":
        transform = "mean_value: 1 mean_value: 2"
    elif case == "crop_too_big":
        transform = "crop_size: 4"
    elif case == "root_missing":
        params = 'root_folder: "nope"'
    elif case == "legacy":
        params = "scale: 0.5"
    elif case == "not_image":
        (tmp_path / "a.png").write_text("not a png")
    write_list(listing, entries)
    layer = image_layer(params, transform)
    if case == "no_source":
        layer = 'name: "img" type: "ImageData" top: "data" top: "label"'
    elif case == "source_missing":
        layer = image_layer(source="nowhere.txt")
    with pytest.raises(ConfigError) as info:
        make_net(tmp_path, layer).forward()
    text = str(info.value)
    assert text.startswith(str(tmp_path / LINE)), text
    assert "layer 'img' (ImageData)" in text, text
    assert message.format(list=listing) in text, text
