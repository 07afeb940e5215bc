"""The numpy Caffe layers of stn.layers (neuron, eltwise, shape, loss): forward values against
independent formulas (and torch.nn.functional where torch is installed), backward against the
central-difference checker, in-place use, and bad configurations."""

import math

import numpy as np
import pytest
from google.protobuf import text_format

from gradcheck import assert_gradient
from stn.blob import Blob
from stn.config_error import ConfigError
from stn.layers import LAYER_TYPES
from stn.proto import caffe_pb2

try:
    import torch
    import torch.nn.functional as F
except ImportError:      # the numpy formulas below still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

F64 = np.float64


def f32(v):
    """A float parameter as the layer sees it: caffe.proto stores it as a float32."""
    return float(np.float32(v))


def make(type_name, text="", phase="TRAIN", seed=0):
    """A float64 layer of `type_name` from the LayerParameter fields in `text`."""
    param = text_format.Parse(f'name: "the_layer" type: "{type_name}" {text}',
                              caffe_pb2.LayerParameter())
    return LAYER_TYPES[type_name](param, phase, dtype=F64, rng=np.random.default_rng(seed))


def blob(x):
    b = Blob(np.shape(x), dtype=F64)
    b.data[...] = x
    return b


def run(layer, xs, n_tops=1, in_place=False):
    """setup, reshape and forward on fresh blobs holding copies of `xs`; (bottoms, tops)."""
    bottoms = [blob(x) for x in xs]
    tops = [bottoms[0]] if in_place else [Blob(dtype=F64) for _ in range(n_tops)]
    layer.setup(bottoms, tops)
    layer.reshape(bottoms, tops)
    layer.forward(bottoms, tops)
    return bottoms, tops


def forward(type_name, text, xs, n_tops=1, **kw):
    return [t.data.copy() for t in run(make(type_name, text, **kw), xs, n_tops)[1]]


def check_gradients(type_name, text, xs, check=(0,), n_tops=1, in_place=False, weights=None,
                    phase="TRAIN", seed=0):
    """Backward of loss = sum_k sum(top_k * weights_k) against central differences, for each
    bottom in `check`. Every evaluation uses a new layer with the same seed (same dropout mask)."""
    factory = lambda: make(type_name, text, phase, seed)          # noqa: E731
    layer = factory()
    bottoms, tops = run(layer, xs, n_tops, in_place)
    rng = np.random.default_rng(123)
    if weights is None:
        weights = [rng.uniform(0.5, 1.5, t.shape) * rng.choice([-1, 1], t.shape) for t in tops]
    for t, w in zip(tops, weights):
        t.diff[...] = w
    layer.backward(tops, [i in check for i in range(len(xs))], bottoms)
    for i in check:
        def loss(v, i=i):
            _, ts = run(factory(), [v if j == i else x for j, x in enumerate(xs)], n_tops, in_place)
            return sum(float(np.sum(t.data * w)) for t, w in zip(ts, weights))
        assert_gradient(loss, np.array(xs[i], F64), bottoms[i].diff.copy())
    return layer, bottoms, tops


@pytest.fixture
def x():
    # (N, C, H, W), values kept away from 0 so that ReLU kinks never sit within a step.
    v = np.random.default_rng(7).uniform(0.1, 1.0, (2, 3, 4, 5))
    return v * np.random.default_rng(8).choice([-1, 1], v.shape)


# --------------------------------------------------------------------------- neuron layers

@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu(x, slope, in_place):
    text = f"relu_param {{ negative_slope: {slope} }}"
    (y,) = forward("ReLU", text, [x])
    np.testing.assert_array_equal(y, np.where(x > 0, x, f32(slope) * x))
    check_gradients("ReLU", text, [x], in_place=in_place)


def test_relu_negative_slope_in_place():
    # A negative slope flips signs; the saved mask keeps backward right in place.
    v = np.array([[-1.0, 2.0, -3.0, 0.5]])
    check_gradients("ReLU", "relu_param { negative_slope: -0.5 }", [v], in_place=True)


@needs_torch
def test_neurons_match_torch(x):
    t = torch.from_numpy(x)
    np.testing.assert_allclose(forward("ReLU", "", [x])[0], F.relu(t).numpy())
    np.testing.assert_allclose(forward("ReLU", "relu_param { negative_slope: 0.2 }", [x])[0],
                               F.leaky_relu(t, f32(0.2)).numpy())
    np.testing.assert_allclose(forward("Sigmoid", "", [x])[0], torch.sigmoid(t).numpy(),
                               rtol=1e-14)
    np.testing.assert_allclose(forward("TanH", "", [x])[0], torch.tanh(t).numpy(), rtol=1e-14)


@pytest.mark.parametrize("in_place", [False, True])
def test_sigmoid_and_tanh(x, in_place):
    np.testing.assert_allclose(forward("Sigmoid", "", [3 * x])[0], 1 / (1 + np.exp(-3 * x)),
                               rtol=1e-14)
    np.testing.assert_allclose(forward("TanH", "", [x])[0], np.tanh(x), rtol=1e-14)
    check_gradients("Sigmoid", "", [x], in_place=in_place)
    check_gradients("TanH", "", [x], in_place=in_place)
    assert forward("Sigmoid", "", [np.array([-1000.0, 1000.0])])[0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("in_place", [False, True])
def test_dropout_train(x, in_place):
    text = "dropout_param { dropout_ratio: 0.4 }"
    layer = make("Dropout", text, "TRAIN", seed=3)
    _, (top,) = run(layer, [x], in_place=in_place)
    mask = np.random.default_rng(3).random(x.shape) >= f32(0.4)  # the layer's rng draws it
    np.testing.assert_allclose(top.data, np.where(mask, x / (1 - f32(0.4)), 0), rtol=1e-15)
    assert 0 < mask.sum() < mask.size
    check_gradients("Dropout", text, [x], in_place=in_place, seed=3)


@pytest.mark.parametrize("in_place", [False, True])
def test_dropout_test_phase_is_identity(x, in_place):
    text = "dropout_param { dropout_ratio: 0.9 }"
    assert np.array_equal(forward("Dropout", text, [x], phase="TEST")[0], x)
    check_gradients("Dropout", text, [x], in_place=in_place, phase="TEST")


def test_dropout_mask_changes_between_passes(x):
    layer = make("Dropout", "", "TRAIN")
    bottoms, tops = run(layer, [x])
    first = tops[0].data.copy()
    layer.forward(bottoms, tops)
    assert not np.array_equal(first, tops[0].data)


POWER_CASES = [(1.0, 2.0, 0.5), (2.0, -1.5, 0.3), (3.0, 0.7, 0.0), (0.5, 0.8, 1.5),
               (-1.3, 1.1, 2.0), (0.0, 2.0, 1.0), (2.0, 0.0, 3.0)]


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("power,scale,shift", POWER_CASES)
def test_power(power, scale, shift, in_place):
    v = np.random.default_rng(1).uniform(0.2, 1.0, (2, 3, 2))    # shift + scale*v stays > 0
    if scale < 0:
        v = -v
    text = f"power_param {{ power: {power} scale: {scale} shift: {shift} }}"
    want = (f32(shift) + f32(scale) * v) ** f32(power)
    np.testing.assert_allclose(forward("Power", text, [v])[0], want, rtol=1e-14)
    check_gradients("Power", text, [v], in_place=in_place)


def test_power_defaults_are_identity(x):
    assert np.array_equal(forward("Power", "", [x])[0], x)


# --------------------------------------------------------------------------------- eltwise

def test_eltwise_sum_with_coeff(x):
    b, c = x[::-1].copy(), x ** 2
    text = "eltwise_param { operation: SUM coeff: 1.5 coeff: -2 coeff: 0.25 }"
    np.testing.assert_allclose(forward("Eltwise", text, [x, b, c])[0],
                               1.5 * x - 2 * b + 0.25 * c, rtol=1e-14)
    check_gradients("Eltwise", text, [x, b, c], check=(0, 1, 2))
    np.testing.assert_allclose(forward("Eltwise", "", [x, b])[0], x + b)   # SUM is the default


@pytest.mark.parametrize("stable", ["true", "false"])
def test_eltwise_prod(x, stable):
    b, c = x[::-1].copy(), x + 2
    text = f"eltwise_param {{ operation: PROD stable_prod_grad: {stable} }}"
    np.testing.assert_allclose(forward("Eltwise", text, [x, b, c])[0], x * b * c, rtol=1e-14)
    check_gradients("Eltwise", text, [x, b, c], check=(0, 1, 2))


def test_eltwise_max(x):
    b, c = x[::-1].copy(), -x
    text = "eltwise_param { operation: MAX }"
    np.testing.assert_array_equal(forward("Eltwise", text, [x, b, c])[0],
                                  np.maximum(np.maximum(x, b), c))
    check_gradients("Eltwise", text, [x, b, c], check=(0, 1, 2))


def test_eltwise_max_ties_follow_caffe():
    # Bottom 1 wins a tie with bottom 0; later bottoms must be strictly greater to win.
    a = np.array([1.0, 1.0, 2.0, 0.0])
    b = np.array([1.0, 1.0, 1.0, 3.0])
    c = np.array([1.0, 0.0, 2.0, 3.0])
    layer = make("Eltwise", "eltwise_param { operation: MAX }")
    bottoms, (top,) = run(layer, [a, b, c])
    top.diff[...] = [10.0, 20.0, 30.0, 40.0]
    layer.backward([top], [True, True, True], bottoms)
    assert bottoms[0].diff.tolist() == [0, 0, 30, 0]
    assert bottoms[1].diff.tolist() == [10, 20, 0, 40]
    assert bottoms[2].diff.tolist() == [0, 0, 0, 0]


# ---------------------------------------------------------------------------- shape layers

def test_input():
    layer = make("Input", "input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }")
    tops = [Blob(dtype=F64), Blob(dtype=F64)]
    layer.setup([], tops)
    layer.reshape([], tops)
    assert [t.shape for t in tops] == [(2, 3), (4,)]
    tops = [Blob(dtype=F64), Blob(dtype=F64)]
    make("Input", "input_param { shape { dim: 5 dim: 1 } }").setup([], tops)
    assert [t.shape for t in tops] == [(5, 1), (5, 1)]


@pytest.mark.parametrize("text,shape", [("", (2, 60)),
                                        ("flatten_param { axis: 2 }", (2, 3, 20)),
                                        ("flatten_param { axis: 0 end_axis: 1 }", (6, 4, 5)),
                                        ("flatten_param { axis: -3 end_axis: -2 }", (2, 12, 5))])
def test_flatten(x, text, shape):
    (y,) = forward("Flatten", text, [x])
    assert y.shape == shape and np.array_equal(y, x.reshape(shape))
    check_gradients("Flatten", text, [x])


@pytest.mark.parametrize("text,shape", [
    ("reshape_param { shape { dim: 0 dim: -1 } }", (2, 60)),
    ("reshape_param { shape { dim: -1 dim: 0 dim: 10 dim: 2 } }", (2, 3, 10, 2)),
    ("reshape_param { shape { dim: 6 dim: 20 } }", (6, 20)),
    ("reshape_param { shape { dim: 2 dim: -1 } axis: 2 }", (2, 3, 2, 10)),
    ("reshape_param { shape { dim: 12 } axis: 1 num_axes: 2 }", (2, 12, 5)),
    ("reshape_param { shape { dim: 1 dim: 1 } axis: -1 num_axes: 0 }", (2, 3, 4, 5, 1, 1)),
    ("reshape_param { shape { dim: 0 dim: 1 } axis: 2 num_axes: 1 }", (2, 3, 4, 1, 5)),
    ("reshape_param { shape { dim: 1 } axis: 0 num_axes: 0 }", (1, 2, 3, 4, 5)),
    ("reshape_param { shape { dim: 0 dim: 0 dim: -1 } }", (2, 3, 20)),
])
def test_reshape(x, text, shape):
    (y,) = forward("Reshape", text, [x])
    assert y.shape == shape and np.array_equal(y.reshape(-1), x.reshape(-1))
    check_gradients("Reshape", text, [x])


@pytest.mark.parametrize("text,axis", [("", 1), ("concat_param { axis: 0 }", 0),
                                       ("concat_param { axis: -1 }", 3),
                                       ("concat_param { concat_dim: 0 }", 0)])
def test_concat(text, axis):
    rng = np.random.default_rng(2)
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]
    sizes = (1, 2, 3)
    xs = []
    for s, k in zip(shapes, sizes):
        s = list(s)
        s[axis] = k
        xs.append(rng.standard_normal(s))
    np.testing.assert_array_equal(forward("Concat", text, xs)[0], np.concatenate(xs, axis))
    check_gradients("Concat", text, xs, check=(0, 1, 2))


def test_concat_skips_bottoms_without_propagate_down():
    xs = [np.ones((1, 2)), np.ones((1, 3))]
    layer = make("Concat")
    bottoms, (top,) = run(layer, xs)
    bottoms[0].diff[...] = 7
    top.diff[...] = 1
    layer.backward([top], [False, True], bottoms)
    assert bottoms[0].diff.tolist() == [[7, 7]] and bottoms[1].diff.tolist() == [[1, 1, 1]]


def test_split(x):
    layer = make("Split")
    bottoms, tops = run(layer, [x], n_tops=3)
    assert all(np.array_equal(t.data, x) for t in tops)
    diffs = [np.full(x.shape, 0.1), np.full(x.shape, 0.2), np.full(x.shape, 0.3)]
    for t, d in zip(tops, diffs):
        t.diff[...] = d
    layer.backward(tops, [True], bottoms)
    np.testing.assert_array_equal(bottoms[0].diff, (diffs[0] + diffs[1]) + diffs[2])
    check_gradients("Split", "", [x], n_tops=3)


# ------------------------------------------------------------------------ softmax and loss

@pytest.mark.parametrize("axis", [1, 0, -1, 2])
@pytest.mark.parametrize("in_place", [False, True])
def test_softmax(x, axis, in_place):
    text = f"softmax_param {{ axis: {axis} }}"
    e = np.exp(3 * x)
    np.testing.assert_allclose(forward("Softmax", text, [3 * x])[0],
                               e / e.sum(axis=axis, keepdims=True), rtol=1e-14)
    if torch is not None:
        np.testing.assert_allclose(forward("Softmax", text, [x])[0],
                                   F.softmax(torch.from_numpy(x), dim=axis).numpy(), rtol=1e-14)
    check_gradients("Softmax", text, [x], in_place=in_place)


def softmax_loss_reference(scores, labels, ignore=None, norm="VALID"):
    """An independent loop over every (n, h, w) position: -log p[label], then normalised."""
    n, c = scores.shape[:2]
    flat = scores.reshape(n, c, -1)
    lab = labels.reshape(n, -1)
    total, valid = 0.0, 0
    for i in range(n):
        for j in range(flat.shape[2]):
            if ignore is not None and int(lab[i, j]) == ignore:
                continue
            s = flat[i, :, j]
            total -= s[int(lab[i, j])] - s.max() - math.log(np.exp(s - s.max()).sum())
            valid += 1
    denom = {"FULL": lab.size, "VALID": valid, "BATCH_SIZE": n, "NONE": 1}[norm]
    return total / max(1, denom)


@pytest.fixture
def scores_labels():
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((3, 4, 2, 3))                      # (N, C, H, W)
    labels = rng.integers(0, 4, (3, 1, 2, 3)).astype(F64)           # (N, 1, H, W)
    labels[0, 0, 0, 0] = labels[2, 0, 1, 2] = 2                     # some ignored with label 2
    return scores, labels


@pytest.mark.parametrize("norm", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_softmax_with_loss(scores_labels, norm, ignore):
    scores, labels = scores_labels
    text = f"loss_param {{ normalization: {norm} " + \
        (f"ignore_label: {ignore} }}" if ignore is not None else "}")
    (loss,) = forward("SoftmaxWithLoss", text, [scores, labels])
    assert loss.shape == ()
    np.testing.assert_allclose(loss, softmax_loss_reference(scores, labels, ignore, norm),
                               rtol=1e-13)
    layer, bottoms, _ = check_gradients("SoftmaxWithLoss", text, [scores, labels],
                                        weights=[np.array(0.7)])
    if ignore is not None:   # ignored positions get no gradient in any channel
        assert not bottoms[0].diff[0, :, 0, 0].any() and not bottoms[0].diff[2, :, 1, 2].any()


@needs_torch
def test_softmax_with_loss_matches_torch(scores_labels):
    scores, labels = scores_labels
    lab = torch.from_numpy(labels[:, 0]).long()
    for text, kwargs in [("", {}), ("loss_param { ignore_label: 2 }", {"ignore_index": 2}),
                         ("loss_param { normalization: NONE }", {"reduction": "sum"})]:
        want = F.cross_entropy(torch.from_numpy(scores), lab, **kwargs).item()
        np.testing.assert_allclose(forward("SoftmaxWithLoss", text, [scores, labels])[0], want,
                                   rtol=1e-13)


def test_softmax_with_loss_defaults_and_legacy_normalize(scores_labels):
    scores, labels = scores_labels
    text = "loss_param { ignore_label: 2 normalize: false }"        # legacy: BATCH_SIZE
    np.testing.assert_allclose(forward("SoftmaxWithLoss", text, [scores, labels])[0],
                               softmax_loss_reference(scores, labels, 2, "BATCH_SIZE"))
    text = "loss_param { ignore_label: 2 }"                         # default: VALID
    np.testing.assert_allclose(forward("SoftmaxWithLoss", text, [scores, labels])[0],
                               softmax_loss_reference(scores, labels, 2, "VALID"))


def test_softmax_with_loss_second_top_and_axis(scores_labels):
    scores, labels = scores_labels
    # Classes on the last axis: (N, H, W, C) with labels (N, H, W).
    moved = np.moveaxis(scores, 1, -1).copy()
    text = "softmax_param { axis: -1 }"
    loss, prob = forward("SoftmaxWithLoss", text, [moved, labels[:, 0]], n_tops=2)
    np.testing.assert_allclose(loss, softmax_loss_reference(scores, labels), rtol=1e-13)
    e = np.exp(moved)
    np.testing.assert_allclose(prob, e / e.sum(-1, keepdims=True), rtol=1e-14)
    check_gradients("SoftmaxWithLoss", text, [moved, labels[:, 0]], n_tops=2,
                    weights=[np.array(1.3), np.zeros(moved.shape)])


def test_softmax_with_loss_all_ignored_gives_zero(scores_labels):
    scores, _ = scores_labels
    labels = np.full((3, 1, 2, 3), 2.0)
    assert forward("SoftmaxWithLoss", "loss_param { ignore_label: 2 }", [scores, labels])[0] == 0


def test_euclidean_loss():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 4))
    (loss,) = forward("EuclideanLoss", "", [a, b])
    assert loss.shape == ()
    np.testing.assert_allclose(loss, ((a.reshape(3, 4) - b) ** 2).sum() / 6, rtol=1e-14)
    if torch is not None:
        want = F.mse_loss(torch.from_numpy(a.reshape(3, 4)), torch.from_numpy(b),
                          reduction="sum").item() / 6
        np.testing.assert_allclose(loss, want, rtol=1e-14)
    layer, bottoms, _ = check_gradients("EuclideanLoss", "", [a, b], check=(0, 1),
                                        weights=[np.array(0.5)])
    np.testing.assert_allclose(bottoms[1].diff, -bottoms[0].diff.reshape(3, 4))


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("ignore", [None, 1])
def test_accuracy(scores_labels, top_k, ignore):
    scores, labels = scores_labels
    scores = scores.copy()
    scores[1, :, 0, 0] = [0.5, 0.5, 0.5, 0.1]      # a tie: ties with the true class count as hits
    labels = labels.copy()
    labels[1, 0, 0, 0] = 2
    text = f"accuracy_param {{ top_k: {top_k} " + \
        (f"ignore_label: {ignore} }}" if ignore is not None else "}")
    acc, per_class = forward("Accuracy", text, [scores, labels], n_tops=2)
    s, lab = np.moveaxis(scores, 1, -1).reshape(-1, 4), labels.reshape(-1).astype(int)
    keep = lab != ignore if ignore is not None else np.ones(lab.size, bool)
    hits = np.array([(s[i] > s[i, lab[i]]).sum() < top_k for i in range(lab.size)])
    assert acc.shape == () and per_class.shape == (4,)
    np.testing.assert_allclose(acc, hits[keep].mean(), rtol=1e-14)
    for k in range(4):
        sel = keep & (lab == k)
        np.testing.assert_allclose(per_class[k], hits[sel].mean() if sel.any() else 0.0)


# ---------------------------------------------------------------------- bad configurations

def setup_error(type_name, text, xs, n_tops=1, in_place=False):
    with pytest.raises(ConfigError) as info:
        run(make(type_name, text), xs, n_tops, in_place)
    message = str(info.value)
    assert "the_layer" in message and type_name in message, message
    return message


@pytest.mark.parametrize("type_name,text,shapes,fragment", [
    ("Concat", "", [(2, 3, 4), (2, 3, 5)], "bottom 1 has shape"),
    ("Concat", "concat_param { axis: 0 }", [(2, 3), (2, 3, 1)], "concat axis"),
    ("Concat", "concat_param { axis: 3 }", [(2, 3), (2, 3)], "out of range"),
    ("Concat", "concat_param { axis: 1 concat_dim: 1 }", [(2, 3), (2, 3)], "not both"),
    ("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }", [(2, 3)], "more than one -1"),
    ("Reshape", "reshape_param { shape { dim: 4 dim: 2 } }", [(2, 3)], "differs"),
    ("Reshape", "reshape_param { shape { dim: -1 dim: 4 } }", [(2, 3)], "cannot infer"),
    ("Reshape", "reshape_param { shape { dim: 0 dim: 0 dim: 0 } }", [(2, 3)], "no axis"),
    ("Reshape", "reshape_param { shape { dim: 6 } axis: 1 num_axes: 2 }", [(2, 3)], "beyond"),
    ("Eltwise", "eltwise_param { operation: PROD coeff: 1 coeff: 2 }", [(2,), (2,)],
     "coeff"),
    ("Eltwise", "eltwise_param { coeff: 1 }", [(2,), (2,)], "one coeff per bottom"),
    ("Eltwise", "", [(2, 3), (3, 2)], "same shape"),
    ("EuclideanLoss", "", [(2, 3), (2, 4)], "same dimension"),
    ("EuclideanLoss", "", [(2, 3), (3, 2)], "first dimension"),
    ("SoftmaxWithLoss", "", [(2, 3, 4), (2, 3)], "number of labels"),
    ("Accuracy", "", [(2, 3, 4), (2, 5)], "number of labels"),
    ("Accuracy", "accuracy_param { top_k: 4 }", [(2, 3), (2,)], "top_k"),
    ("Softmax", "softmax_param { axis: 2 }", [(2, 3)], "out of range"),
    ("Flatten", "flatten_param { axis: 2 end_axis: 1 }", [(2, 3, 4)], "before"),
    ("Dropout", "dropout_param { dropout_ratio: 1.0 }", [(2,)], "dropout_ratio"),
    ("Input", "input_param { shape { dim: 1 } shape { dim: 2 } }", [], "once per top"),
])
def test_bad_configurations(type_name, text, shapes, fragment):
    n_tops = 3 if type_name == "Input" else 1
    message = setup_error(type_name, text, [np.ones(s) for s in shapes], n_tops)
    assert fragment in message, message


@pytest.mark.parametrize("type_name", ["Split", "Concat", "Flatten", "Reshape"])
def test_in_place_refused(type_name):
    text = "reshape_param { shape { dim: -1 } }" if type_name == "Reshape" else ""
    assert "in-place" in setup_error(type_name, text, [np.ones((2, 3))], in_place=True)


def test_out_of_range_label_raises(scores_labels):
    scores, labels = scores_labels
    labels = labels.copy()
    labels[0, 0, 0, 1] = 4
    with pytest.raises(ValueError, match="outside"):
        forward("SoftmaxWithLoss", "", [scores, labels])


def test_every_type_registered():
    for name in ("ReLU", "Sigmoid", "TanH", "Dropout", "Power", "Eltwise", "Input", "Flatten",
                 "Reshape", "Concat", "Split", "Softmax", "SoftmaxWithLoss", "EuclideanLoss",
                 "Accuracy"):
        assert LAYER_TYPES[name].type_name == name


@pytest.mark.parametrize("type_name,text,n_bottoms", [
    ("ReLU", "relu_param { negative_slope: 0.1 }", 1), ("Sigmoid", "", 1), ("TanH", "", 1),
    ("Dropout", "", 1), ("Power", "power_param { power: 2 shift: 1 }", 1),
    ("Eltwise", "eltwise_param { operation: MAX }", 2), ("Eltwise", "", 2),
    ("Flatten", "", 1), ("Concat", "", 2), ("Split", "", 1), ("Softmax", "", 1),
    ("SoftmaxWithLoss", "", 2), ("EuclideanLoss", "", 2)])
def test_float32_stays_float32(type_name, text, n_bottoms):
    param = text_format.Parse(f'name: "l" type: "{type_name}" {text}', caffe_pb2.LayerParameter())
    layer = LAYER_TYPES[type_name](param, "TRAIN")                    # float32 by default
    xs = [np.random.default_rng(0).random((2, 3, 2, 2)).astype(np.float32)]
    if n_bottoms == 2:
        xs.append(np.zeros((2, 1, 2, 2), np.float32) if "Softmax" in type_name else xs[0] + 1)
    bottoms = [Blob(x.shape) for x in xs]
    for b, v in zip(bottoms, xs):
        b.data[...] = v
    tops = [Blob()]
    layer.setup(bottoms, tops)
    layer.reshape(bottoms, tops)
    layer.forward(bottoms, tops)
    tops[0].diff[...] = 1
    layer.backward(tops, [True] + [type_name == "EuclideanLoss"] * (n_bottoms - 1), bottoms)
    assert tops[0].data.dtype == np.float32 and bottoms[0].diff.dtype == np.float32
    assert np.isfinite(tops[0].data).all() and np.isfinite(bottoms[0].diff).all()
