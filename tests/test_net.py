"""stn.Net: building Caffe nets from prototxt (phases, implicit splits, in-place layers,
shared parameters), forward/backward against numerical gradients, weights I/O, and the
set-up errors that name the file, line and layer."""

import os

import numpy as np
import pytest

import stn
from stn.config import parse_net
from stn.config_error import ConfigError
from stn.layers.spatial_transformer import theta_to_kernel_matrix
from gradcheck import numerical_gradient

SEED_NET = os.path.join(os.path.dirname(__file__), "..", "prototxt", "st_zoom_translate.prototxt")


def net_from(text, phase=stn.TRAIN, **kwargs):
    return stn.Net(parse_net(text, "test.prototxt"), phase, **kwargs)


def test_seed_play_with_theta_net():
    net = stn.Net(SEED_NET, stn.TEST)
    assert net.blobs["data"].shape == (1, 3, 227, 227)
    assert net.blobs["theta"].shape == (1, 2)
    assert net.blobs["transformed"].shape == (1, 3, 227, 227)
    image = np.random.default_rng(0).random((1, 3, 227, 227), dtype=np.float32)
    for t in (-0.5, 0.0, 0.3):
        out = net.forward(data=image, theta=np.array([[t, t]], np.float32))["transformed"]
        full = np.array([[[0.5, 0.0, t], [0.0, 0.5, t]]])
        expected = stn.spatial_transform(image, theta_to_kernel_matrix(full, 227, 227, 227, 227).astype(np.float32))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


BRANCHY = """
name: "branchy"
force_backward: true
input: "x" input_shape { dim: 2 dim: 3 }
input: "label" input_shape { dim: 2 dim: 4 }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "b" type: "InnerProduct" bottom: "x" top: "b"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: -0.2 } } }
layer { name: "c" type: "InnerProduct" bottom: "b" top: "c"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "label" top: "loss" }
"""


def test_blob_read_by_several_layers_gets_summed_gradients():
    # "x" feeds two layers and "b" two more: implicit splits must sum their gradients.
    net = net_from(BRANCHY, dtype=np.float64)
    assert sum(layer.type_name == "Split" for layer in net.layers) == 2
    rng = np.random.default_rng(0)
    x, label = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    net.forward(x=x, label=label)
    grad_x = net.backward()["x"].copy()

    def loss(value):
        net.forward(x=value, label=label)
        return net.loss()

    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x.copy()), rtol=1e-6, atol=1e-8)
    # Parameter gradients through the split of "b" (read by "c" and "sum").
    for name in ("b", "c"):
        weights = net.params[name][0]
        for blob in net.learnable:
            blob.diff[...] = 0
        net.forward(x=x, label=label)
        net.backward()
        analytic = weights.diff.copy()

        def loss_of_weights(value):
            weights.data[...] = value
            net.forward(x=x, label=label)
            return net.loss()

        np.testing.assert_allclose(analytic, numerical_gradient(loss_of_weights, weights.data.copy()),
                                   rtol=1e-6, atol=1e-8)


def test_phases_select_layers():
    text = """
    input: "x" input_shape { dim: 2 dim: 3 }
    layer { name: "train_only" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }
    layer { name: "test_only" type: "Sigmoid" bottom: "x" top: "y" include { phase: TEST } }
    layer { name: "not_in_test" type: "TanH" bottom: "y" top: "z" exclude { phase: TEST } }
    """
    assert [layer.name for layer in net_from(text, stn.TRAIN).layers] == ["input", "train_only", "not_in_test"]
    assert [layer.name for layer in net_from(text, stn.TEST).layers] == ["input", "test_only"]


def test_shared_parameters_are_one_blob():
    text = """
    input: "x" input_shape { dim: 2 dim: 3 }
    layer { name: "p" type: "InnerProduct" bottom: "x" top: "p" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "q" type: "InnerProduct" bottom: "p" top: "q" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    """
    net = net_from(text)
    assert net.params["p"][0] is net.params["q"][0]
    assert len(net.learnable) == 2


def test_save_and_load_caffemodel(tmp_path):
    text = BRANCHY
    net = net_from(text)
    path = tmp_path / "w.caffemodel"
    net.save(path)
    other = net_from(text.replace("std: 0.5", "std: 2.0"))
    other.copy_from(path)
    for name, blobs in net.params.items():
        for mine, theirs in zip(blobs, other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_save_and_load_hdf5(tmp_path):
    pytest.importorskip("h5py")
    text = BRANCHY
    net = net_from(text)
    net.save(tmp_path / "w.h5")
    other = net_from(text.replace("std: 0.5", "std: 2.0"), weights=str(tmp_path / "w.h5"))
    np.testing.assert_array_equal(other.params["a"][0].data, net.params["a"][0].data)


@pytest.mark.parametrize("text,message", [
    ('input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "l" type: "Frobnicate" bottom: "x" top: "y" }',
     r"test.prototxt:2:1: layer 'l': unknown layer type 'Frobnicate'"),
    ('input: "x" input_shape { dim: 1 dim: 2 }\n\nlayer { name: "r" type: "ReLU" bottom: "nope" top: "y" }',
     r"test.prototxt:3:1: layer 'r' \(ReLU\): bottom 'nope' is not produced by any earlier layer \(missing bottom\)"),
    ('input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "r1" type: "ReLU" bottom: "x" top: "y" }\n'
     'layer { name: "r2" type: "Sigmoid" bottom: "x" top: "y" }',
     r"test.prototxt:3:1: layer 'r2' \(Sigmoid\): top 'y' is already written by layer 'r1'"),
    ('input: "u" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 }\ninput: "t" input_shape { dim: 1 dim: 5 }\n'
     'layer { name: "st" type: "SpatialTransformer" bottom: "u" bottom: "t" top: "v" }',
     r"test.prototxt:3:1: layer 'st' \(SpatialTransformer\): bottom theta must be \(N, 6\)"),
])
def test_setup_errors_name_file_line_and_layer(text, message):
    with pytest.raises(ConfigError, match=message):
        net_from(text)


# ---- regressions from a review against Caffe's Net::Init ------------------------------

FC_RELU = """
input: "x" input_shape { dim: 2 dim: 3 }
input: "t" input_shape { dim: 2 dim: 4 }
layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" %s }
layer { name: "fc2" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def test_blob_last_written_in_place_is_an_output():
    text = 'input: "x" input_shape { dim: 2 dim: 3 }\n' \
           'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" inner_product_param { num_output: 4 } }\n' \
           'layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }'
    net = net_from(text)
    assert net.outputs == ["fc"] and set(net.forward(x=np.ones((2, 3)))) == {"fc"}


def test_propagate_down_false_on_an_in_place_layer_cuts_the_layers_below():
    net = net_from(FC_RELU % "propagate_down: false", dtype=np.float64)
    net.forward(x=np.ones((2, 3)), t=np.zeros((2, 4)))
    net.backward()
    assert not net.params["fc1"][0].diff.any() and net.params["fc2"][0].diff.any()


def test_gradients_from_an_output_do_not_leak_into_the_next_loss_pass():
    text = FC_RELU % "" + \
        'layer { name: "probe" type: "TanH" bottom: "y" top: "probe" }'
    net = net_from(text, dtype=np.float64)
    inputs = dict(x=np.linspace(-1, 1, 6).reshape(2, 3), t=np.zeros((2, 4)))

    def loss_grad():
        for blob in net.learnable:
            blob.diff[...] = 0
        net.forward(**inputs)
        net.backward()
        return net.params["fc2"][0].diff.copy()

    before = loss_grad()
    net.forward(**inputs)
    net.backward(probe=np.ones((2, 4)))
    np.testing.assert_array_equal(loss_grad(), before)


def test_shared_parameter_takes_the_explicit_lr_mult_of_a_sharing_layer():
    text = """
    input: "x" input_shape { dim: 2 dim: 3 }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }
            inner_product_param { num_output: 3 bias_term: false } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" lr_mult: 0 }
            inner_product_param { num_output: 3 bias_term: false } }
    """
    assert net_from(text).param_specs == [(0.0, 1.0)]
    conflicting = text.replace('param { name: "w" }', 'param { name: "w" lr_mult: 2 }')
    with pytest.raises(ConfigError, match=r"layer 'b' .*shared parameter 'w' has lr_mult 0 here but 2 in layer 'a'"):
        net_from(conflicting)


def test_hdf5_weights_of_layers_with_slashes_in_their_names(tmp_path):
    pytest.importorskip("h5py")
    text = 'input: "x" input_shape { dim: 2 dim: 3 }\n' \
           'layer { name: "inception_3a/1x1" type: "InnerProduct" bottom: "x" top: "y" ' \
           'inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }'
    net = net_from(text)
    net.save(tmp_path / "w.h5")
    other = net_from(text.replace("std: 1", "std: 5"), weights=str(tmp_path / "w.h5"))
    np.testing.assert_array_equal(other.params["inception_3a/1x1"][0].data,
                                  net.params["inception_3a/1x1"][0].data)


def test_untrusted_weight_files_are_config_errors_naming_the_file(tmp_path):
    """A .caffemodel whose blob holds fewer values than its shape says, and an HDF5 weights
    file with a string dataset, are rejected with the file named (no numpy error escapes)."""
    from stn.proto import caffe_pb2
    net = net_from(BRANCHY)
    layer = next(layer for layer in net.layers if layer.blobs)
    message = caffe_pb2.NetParameter(name="bad")
    stored = message.layer.add(name=layer.name, type=layer.type_name)
    blob = stored.blobs.add()
    blob.shape.dim.extend(layer.blobs[0].shape)
    blob.data.extend([0.0] * 3)
    path = tmp_path / "short.caffemodel"
    path.write_bytes(message.SerializeToString())
    with pytest.raises(stn.ConfigError, match=rf"^{path}: layer '{layer.name}' blob 0 holds 3 values"):
        net.copy_from(path)
    h5py = pytest.importorskip("h5py")
    h5_path = tmp_path / "strings.h5"
    with h5py.File(h5_path, "w") as f:
        f.create_dataset(f"data/{layer.name}/0", data=np.array([b"not", b"numbers"]))
    with pytest.raises(stn.ConfigError, match=rf"^{h5_path}: layer '{layer.name}' blob 0 has dtype"):
        net.copy_from(h5_path)
