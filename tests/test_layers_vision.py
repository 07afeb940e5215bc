"""Caffe vision layers in numpy: Convolution, Pooling, InnerProduct and the fillers.

Forward passes are checked against torch.nn.functional (the oracle) or, where Caffe's rules
differ from torch's, against direct loops written here from Caffe's definitions; backward
passes against central differences in float64.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import text_format

from gradcheck import assert_gradient
from stn.blob import Blob
from stn.config_error import ConfigError, Location
from stn.fillers import fill
from stn.layers import inner_product, vision
from stn.proto import caffe_pb2


def layer_param(text):
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def build(cls, text, shapes, n_tops=1, dtype=np.float64, seed=0, base_dir=None):
    """A set-up and reshaped layer with random bottoms: (layer, bottoms, tops)."""
    rng = np.random.default_rng(seed)
    layer = cls(layer_param(text), "TRAIN", Location("net.prototxt", 3, 1), dtype=dtype,
                rng=np.random.default_rng(seed + 1))
    if base_dir is not None:
        layer.base_dir = base_dir
    bottoms = [Blob(s, dtype=dtype) for s in shapes]
    for b in bottoms:
        b.data[...] = rng.standard_normal(b.shape)
    tops = [Blob(dtype=dtype) for _ in range(n_tops)]
    layer.setup(bottoms, tops)
    layer.reshape(bottoms, tops)
    return layer, bottoms, tops


def check_backward(layer, bottoms, tops, seed=5):
    """Analytic gradients of loss = sum(top * R) vs central differences, for every bottom
    and every parameter blob; parameter diffs must accumulate (not overwrite)."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(t.shape) for t in tops]

    def loss(_):
        layer.reshape(bottoms, tops)
        layer.forward(bottoms, tops)
        return sum(float((t.data * r).sum()) for t, r in zip(tops, weights))

    loss(None)
    for t, r in zip(tops, weights):
        t.diff[...] = r
    for blob in layer.blobs:
        blob.diff[...] = 1.0                      # accumulation: the analytic part adds to it
    layer.backward(tops, [True] * len(bottoms), bottoms)
    analytic_bottoms = [b.diff.copy() for b in bottoms]
    analytic_params = [blob.diff - 1.0 for blob in layer.blobs]
    for b, g in zip(bottoms, analytic_bottoms):
        assert_gradient(loss, b.data, g, rtol=1e-5, atol=1e-7)
    for blob, g in zip(layer.blobs, analytic_params):
        assert_gradient(loss, blob.data, g, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- Convolution

CONV_CASES = [
    # (N, C, H, W), proto text, torch kwargs
    ((2, 3, 9, 8), "num_output: 4 kernel_size: 3", {}),
    ((2, 4, 10, 9), "num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2",
     dict(stride=2, padding=1, groups=2)),
    ((1, 2, 11, 12), "num_output: 3 kernel_size: 3 dilation: 2 pad: 2",
     dict(dilation=2, padding=2)),
    ((2, 6, 9, 10), "num_output: 6 kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 "
     "pad_h: 1 pad_w: 2 group: 3 bias_term: false", dict(stride=(1, 3), padding=(1, 2), groups=3)),
    ((3, 1, 12, 12), "num_output: 5 kernel_size: 5", {}),
    ((1, 2, 6, 7), "num_output: 2 kernel_size: 3 pad_h: 2", dict(padding=(2, 0))),
    ((1, 4, 7, 9), "num_output: 4 kernel_size: 3 kernel_size: 2 stride: 2 stride: 1 "
     "pad: 0 pad: 1 dilation: 1 dilation: 3 group: 4",
     dict(stride=(2, 1), padding=(0, 1), dilation=(1, 3), groups=4)),
]

FILLERS = (" weight_filler { type: 'gaussian' std: 0.5 }"
           " bias_filler { type: 'uniform' min: -1 max: 1 }")


def conv_text(body):
    return f"name: 'conv' type: 'Convolution' convolution_param {{ {body}{FILLERS} }}"


@pytest.mark.parametrize("shape,body,kwargs", CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolution_forward_matches_torch(shape, body, kwargs, dtype):
    layer, bottoms, tops = build(vision.Convolution, conv_text(body), [shape], dtype=dtype)
    layer.forward(bottoms, tops)
    w = torch.from_numpy(layer.blobs[0].data.astype(np.float64))
    b = torch.from_numpy(layer.blobs[1].data.astype(np.float64)) if len(layer.blobs) > 1 else None
    expected = F.conv2d(torch.from_numpy(bottoms[0].data.astype(np.float64)), w, b, **kwargs)
    assert tops[0].data.dtype == dtype and tops[0].shape == tuple(expected.shape)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(tops[0].data, expected.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,body,kwargs", CONV_CASES)
def test_convolution_backward_numerical(shape, body, kwargs):
    shape = (min(shape[0], 2),) + shape[1:]
    check_backward(*build(vision.Convolution, conv_text(body), [shape]))


def test_convolution_two_bottoms_share_weights_and_accumulate():
    text = conv_text("num_output: 2 kernel_size: 3 pad: 1")
    layer, bottoms, tops = build(vision.Convolution, text, [(1, 2, 5, 6), (1, 2, 5, 6)], n_tops=2)
    layer.forward(bottoms, tops)
    single, b1, t1 = build(vision.Convolution, text, [(1, 2, 5, 6)])
    single.blobs = layer.blobs
    b1[0].data[...] = bottoms[1].data
    single.forward(b1, t1)
    np.testing.assert_allclose(tops[1].data, t1[0].data)
    check_backward(layer, bottoms, tops)


def test_convolution_axis_and_propagate_down():
    text = conv_text("num_output: 3 kernel_size: 2 axis: 0")
    layer, bottoms, tops = build(vision.Convolution, text, [(2, 5, 4)])
    assert tops[0].shape == (3, 4, 3)
    check_backward(layer, bottoms, tops)
    bottoms[0].diff[...] = 7.0
    layer.backward(tops, [False], bottoms)
    assert (bottoms[0].diff == 7.0).all()


# --------------------------------------------------------------------------------- Pooling

def caffe_pool_reference(x, method, k, s, p, round_mode="CEIL"):
    """Caffe's pooling_layer.cpp loops, one window at a time: (top, argmax mask)."""
    n, c, h, w = x.shape
    out = []
    for size, kk, ss, pp in zip((h, w), k, s, p):
        span = size + 2 * pp - kk
        o = (int(np.ceil(span / ss)) if round_mode == "CEIL" else span // ss) + 1
        if pp and (o - 1) * ss >= size + pp:
            o -= 1
        out.append(o)
    top = np.zeros((n, c, out[0], out[1]))
    mask = np.full((n, c, out[0], out[1]), -1)
    for i in range(out[0]):
        for j in range(out[1]):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            pool_size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            for a in range(n):
                for b in range(c):
                    if method == "MAX":
                        best = -np.finfo(np.float32).max
                        for y in range(hs, he):
                            for z in range(ws, we):
                                if x[a, b, y, z] > best:
                                    best, mask[a, b, i, j] = x[a, b, y, z], y * w + z
                        top[a, b, i, j] = best
                    else:
                        window = x[a, b, hs:he, ws:we]
                        top[a, b, i, j] = window.sum() / pool_size if window.size else 0
    return top, mask


POOL_CASES = [
    # (N, C, H, W), kernel, stride, pad; torch agrees with Caffe on all of these
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),
    ((2, 2, 7, 9), (3, 3), (2, 2), (0, 0)),
    ((1, 3, 7, 7), (3, 3), (2, 2), (1, 1)),
    ((2, 2, 6, 5), (3, 2), (2, 1), (1, 1)),
    ((1, 2, 10, 11), (4, 3), (3, 2), (2, 1)),
    ((1, 1, 5, 5), (2, 2), (3, 3), (1, 1)),   # a window dropped for starting in the padding
]


def pool_text(method, k, s, p, extra=""):
    return (f"name: 'pool' type: 'Pooling' pooling_param {{ pool: {method} kernel_h: {k[0]} "
            f"kernel_w: {k[1]} stride_h: {s[0]} stride_w: {s[1]} pad_h: {p[0]} pad_w: {p[1]} "
            f"{extra} }}")


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_max_pooling_forward_matches_torch_and_loops(shape, k, s, p):
    layer, bottoms, tops = build(vision.Pooling, pool_text("MAX", k, s, p), [shape], n_tops=2)
    layer.forward(bottoms, tops)
    expected = F.max_pool2d(torch.from_numpy(bottoms[0].data), k, s, p, ceil_mode=True)
    np.testing.assert_array_equal(tops[0].data, expected.numpy())
    ref, mask = caffe_pool_reference(bottoms[0].data, "MAX", k, s, p)
    np.testing.assert_array_equal(tops[0].data, ref)
    np.testing.assert_array_equal(tops[1].data, mask)


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_ave_pooling_forward_matches_caffe_loops(shape, k, s, p):
    layer, bottoms, tops = build(vision.Pooling, pool_text("AVE", k, s, p), [shape])
    layer.forward(bottoms, tops)
    ref, _ = caffe_pool_reference(bottoms[0].data, "AVE", k, s, p)
    np.testing.assert_allclose(tops[0].data, ref, rtol=1e-12, atol=1e-14)
    # On these cases (pad > 0, or no window past the input) torch's count_include_pad
    # divisor is Caffe's: the window clipped to the padded input.
    expected = F.avg_pool2d(torch.from_numpy(bottoms[0].data), k, s, p, ceil_mode=True,
                            count_include_pad=True).numpy()
    assert expected.shape == ref.shape
    np.testing.assert_allclose(tops[0].data, expected, rtol=1e-12, atol=1e-14)


def test_ave_pooling_clipped_window_divides_by_padded_extent():
    # H = 6, k = 3, s = 2, pad = 1: windows start at -1, 1, 3, 5; the last covers rows 5..7,
    # clipped to the padded image (rows -1..6) it holds 2 rows: one real, one padding.
    layer, bottoms, tops = build(vision.Pooling, pool_text("AVE", (3, 3), (2, 2), (1, 1)),
                                 [(1, 1, 6, 6)])
    bottoms[0].data[...] = 1.0
    layer.forward(bottoms, tops)
    assert tops[0].shape == (1, 1, 4, 4)
    np.testing.assert_allclose(tops[0].data[0, 0, 3, 3], 1.0 / 4.0)   # 1 cell of 2 x 2
    np.testing.assert_allclose(tops[0].data[0, 0, 0, 0], 4.0 / 9.0)   # 4 cells of 3 x 3


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_without_pad_keeps_caffe_windows_torch_drops(method):
    # pad 0, stride > kernel: Caffe's rule keeps a last window past the input (torch drops
    # it); MAX gives -FLT_MAX there, AVE 0.
    layer, bottoms, tops = build(vision.Pooling, pool_text(method, (1, 1), (3, 3), (0, 0)),
                                 [(1, 2, 7, 7)], n_tops=2 if method == "MAX" else 1)
    layer.forward(bottoms, tops)
    ref, mask = caffe_pool_reference(bottoms[0].data, method, (1, 1), (3, 3), (0, 0))
    assert tops[0].shape == ref.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(tops[0].data, ref)
    if method == "MAX":
        np.testing.assert_array_equal(tops[1].data, mask)
    check_backward(layer, bottoms, tops[:1])


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_pooling_backward_numerical(method, shape, k, s, p):
    layer, bottoms, tops = build(vision.Pooling, pool_text(method, k, s, p), [shape])
    check_backward(layer, bottoms, tops)


def test_max_pooling_ties_route_to_first_in_window_order():
    layer, bottoms, tops = build(vision.Pooling, pool_text("MAX", (2, 2), (1, 1), (0, 0)),
                                 [(1, 1, 3, 3)], n_tops=2)
    bottoms[0].data[...] = 1.0
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[1].data[0, 0], [[0, 1], [3, 4]])
    tops[0].diff[...] = 1.0
    layer.backward(tops[:1], [True], bottoms)
    np.testing.assert_array_equal(bottoms[0].diff[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_max_pooling_skips_nan_as_caffe():
    # Caffe compares with `>`, so a NaN never becomes the max of its window.
    layer, bottoms, tops = build(vision.Pooling, pool_text("MAX", (2, 2), (2, 2), (0, 0)),
                                 [(1, 1, 2, 4)], n_tops=2)
    bottoms[0].data[0, 0] = [[np.nan, 1.0, 2.0, np.nan], [0.5, -1.0, np.nan, np.nan]]
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[0].data[0, 0], [[1.0, 2.0]])
    np.testing.assert_array_equal(tops[1].data[0, 0], [[1, 2]])


def test_global_and_floor_pooling():
    text = "name: 'g' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }"
    layer, bottoms, tops = build(vision.Pooling, text, [(2, 3, 5, 4)])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, bottoms[0].data.mean(axis=(2, 3), keepdims=True))
    text = pool_text("MAX", (3, 3), (2, 2), (0, 0), "round_mode: FLOOR")
    layer, bottoms, tops = build(vision.Pooling, text, [(1, 1, 8, 8)])
    layer.forward(bottoms, tops)
    expected = F.max_pool2d(torch.from_numpy(bottoms[0].data), 3, 2)
    np.testing.assert_array_equal(tops[0].data, expected.numpy())


# ---------------------------------------------------------------------------- InnerProduct

@pytest.mark.parametrize("extra,shape", [("", (4, 3, 2, 2)), ("transpose: true", (5, 7)),
                                         ("axis: 2 bias_term: false", (2, 3, 4)),
                                         ("axis: -1", (3, 2, 6))])
def test_inner_product_forward_and_backward(extra, shape):
    text = (f"name: 'ip' type: 'InnerProduct' inner_product_param {{ num_output: 3 {extra}"
            f"{FILLERS} }}")
    layer, bottoms, tops = build(inner_product.InnerProduct, text, [shape])
    layer.forward(bottoms, tops)
    axis = layer.axis
    x = bottoms[0].data.reshape(int(np.prod(shape[:axis])), -1)
    w = layer.blobs[0].data.T if "transpose" in extra else layer.blobs[0].data
    assert w.shape == (3, x.shape[1])
    b = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = F.linear(torch.from_numpy(x), torch.from_numpy(w),
                        None if b is None else torch.from_numpy(b)).numpy()
    assert tops[0].shape == tuple(shape[:axis]) + (3,)
    np.testing.assert_allclose(tops[0].data.reshape(expected.shape), expected, rtol=1e-12)
    check_backward(layer, bottoms, tops)


# --------------------------------------------------------------------------------- Fillers

def filler(text):
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def filled(text, shape, base_dir=".", seed=0):
    blob = Blob(shape, dtype=np.float64)
    fill(blob, filler(text), np.random.default_rng(seed), base_dir, Location("n.prototxt", 4, 2))
    return blob.data


def test_constant_uniform_gaussian():
    assert (filled("type: 'constant' value: 2.5", (3, 4)) == 2.5).all()
    assert (filled("", (3,)) == 0).all()                      # Caffe's default: constant 0
    u = filled("type: 'uniform' min: -2 max: 3", (200, 100))
    assert u.min() >= -2 and u.max() <= 3 and u.min() < -1.9 and u.max() > 2.9
    g = filled("type: 'gaussian' mean: 1 std: 0.5", (200, 100))
    assert abs(g.mean() - 1) < 0.02 and abs(g.std() - 0.5) < 0.02
    s = filled("type: 'gaussian' sparse: 5", (50, 400))     # keeps 5 / 50 on average
    assert abs((s != 0).mean() - 0.1) < 0.01


@pytest.mark.parametrize("kind,factor", [("xavier", 3.0), ("msra", 2.0)])
@pytest.mark.parametrize("norm", ["", "variance_norm: FAN_IN", "variance_norm: FAN_OUT",
                                  "variance_norm: AVERAGE"])
def test_xavier_and_msra_scales(kind, factor, norm):
    shape = (64, 16, 5, 5)                      # fan_in = 16 * 25, fan_out = 64 * 25
    fan_in, fan_out = 16 * 25, 64 * 25
    n = {"": fan_in, "variance_norm: FAN_IN": fan_in, "variance_norm: FAN_OUT": fan_out,
         "variance_norm: AVERAGE": (fan_in + fan_out) / 2}[norm]
    values = filled(f"type: '{kind}' {norm}", shape)
    if kind == "xavier":                        # U(-a, a), a = sqrt(3 / n): std a / sqrt(3)
        bound = np.sqrt(factor / n)
        assert np.abs(values).max() <= bound
        np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.03)
    else:
        np.testing.assert_allclose(values.std(), np.sqrt(factor / n), rtol=0.03)
    assert abs(values.mean()) < 0.05 * values.std()


def test_bilinear_filler():
    values = filled("type: 'bilinear'", (2, 1, 4, 4))
    ramp = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(values[1, 0], np.outer(ramp, ramp))


def test_file_filler(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "theta.txt").write_text("1 0 0\n0 1\t0\n")
    values = filled("type: 'file' file: 'weights/theta.txt'", (6,), base_dir=str(tmp_path))
    np.testing.assert_array_equal(values, [1, 0, 0, 0, 1, 0])
    with pytest.raises(ConfigError) as err:
        filled("type: 'file' file: 'weights/theta.txt'", (2, 4), base_dir=str(tmp_path))
    message = str(err.value)
    assert "theta.txt" in message and "6" in message and "8" in message
    assert err.value.location == Location("n.prototxt", 4, 2)
    with pytest.raises(ConfigError, match="missing.txt"):
        filled("type: 'file' file: 'missing.txt'", (6,), base_dir=str(tmp_path))
    (tmp_path / "bad.txt").write_text("1 2 x")
    with pytest.raises(ConfigError, match="'x'"):
        filled("type: 'file' file: 'bad.txt'", (3,), base_dir=str(tmp_path))


def test_file_filler_in_a_layer_reads_relative_to_base_dir(tmp_path):
    np.savetxt(tmp_path / "b.txt", [0.5, -0.5])
    text = ("name: 'loc' type: 'InnerProduct' inner_product_param { num_output: 2 "
            "bias_filler { type: 'file' file: 'b.txt' } }")
    layer, _, _ = build(inner_product.InnerProduct, text, [(1, 3)], base_dir=str(tmp_path))
    np.testing.assert_array_equal(layer.blobs[1].data, [0.5, -0.5])
    with pytest.raises(ConfigError, match=r"net.prototxt:3:1: layer 'loc'.*bias_filler.*b.txt"):
        build(inner_product.InnerProduct, text, [(1, 3)], base_dir=os.path.dirname(tmp_path))


def test_filler_errors():
    with pytest.raises(ConfigError, match="unknown filler type 'zeros'"):
        filled("type: 'zeros'", (2,))
    with pytest.raises(ConfigError, match="min"):
        filled("type: 'uniform' min: 2 max: 1", (2,))
    with pytest.raises(ConfigError, match="sparsity"):
        filled("type: 'xavier' sparse: 3", (2, 2))


# ----------------------------------------------------------------------------- ConfigError

@pytest.mark.parametrize("cls,text,shape,match", [
    (vision.Convolution, conv_text("num_output: 2 kernel_size: 0"), (1, 1, 5, 5),
     "kernel size must be at least 1"),
    (vision.Convolution, conv_text("num_output: 2"), (1, 1, 5, 5), "kernel_size"),
    (vision.Convolution, conv_text("num_output: 2 kernel_size: 3 group: 2"), (1, 3, 5, 5),
     "group 2 does not divide the 3 input channels"),
    (vision.Convolution, conv_text("num_output: 3 kernel_size: 1 group: 2"), (1, 2, 5, 5),
     "does not divide num_output"),
    (vision.Convolution, conv_text("kernel_size: 3"), (1, 1, 5, 5), "num_output"),
    (vision.Convolution, conv_text("num_output: 1 kernel_size: 3 kernel_h: 3 kernel_w: 3"),
     (1, 1, 5, 5), "not both"),
    (vision.Convolution, conv_text("num_output: 1 kernel_size: 3"), (1, 1, 5, 5, 5),
     "only 2-D"),
    (vision.Convolution, conv_text("num_output: 1 kernel_size: 4 dilation: 2"), (1, 1, 6, 6),
     "larger than the padded input"),
    (inner_product.InnerProduct, "name: 'ip' type: 'InnerProduct' inner_product_param { }",
     (2, 3), "num_output"),
    (vision.Pooling, pool_text("MAX", (5, 5), (1, 1), (1, 1)), (1, 1, 2, 2),
     "larger than the padded input"),
    (vision.Pooling, pool_text("STOCHASTIC", (2, 2), (2, 2), (0, 0)), (1, 1, 4, 4),
     "not supported"),
    (vision.Pooling, pool_text("MAX", (2, 2), (1, 1), (2, 2)), (1, 1, 4, 4),
     "smaller than the kernel"),
    (vision.Pooling, "name: 'p' type: 'Pooling' pooling_param { kernel_h: 2 }", (1, 1, 4, 4),
     "kernel_size OR kernel_h and kernel_w"),
    (vision.Pooling, "name: 'p' type: 'Pooling' pooling_param { global_pooling: true "
     "kernel_size: 2 }", (1, 1, 4, 4), "global_pooling"),
    (vision.Pooling, "name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 }", (4, 4),
     "4 axes"),
    (vision.Pooling, "name: 'p' type: 'Pooling' pooling_param { kernel_size: 2 pad_h: 1 }",
     (1, 1, 4, 4), "pad_h and pad_w must be given together"),
    (vision.Convolution, conv_text("num_output: 1 kernel_size: 2 stride_h: 2"), (1, 1, 4, 4),
     "stride_h and stride_w"),
])
def test_config_errors(cls, text, shape, match):
    with pytest.raises(ConfigError, match=match) as err:
        build(cls, text, [shape])
    assert str(err.value).startswith("net.prototxt:3:1: layer '")
