"""The SpatialTransformer layer's transform_type families, sampler_type and padding: the layer
equals stn.spatial_transform on the family's parameters, its gradients pass the checker, and
small rotation-only and TPS transformers really train through the net runner."""

import numpy as np
import pytest

import stn
from stn.config import parse_net
from gradcheck import assert_gradient
from test_spatial_transformer_layer import make_layer

# (st_param text, params per image near the identity, the functional's keyword arguments)
FAMILY_CASES = [
    ('transform_type: "translation"', [0.1, -0.2], {}),
    ('transform_type: "scale_translation"', [0.8, 0.1, -0.05], {}),
    ('transform_type: "rotation"', [0.1], {}),
    ('transform_type: "rotation" align_corners: true', [-0.2, 0.05, 0.1], {"align_corners": True}),
    ('transform_type: "rigid"', [0.3, 0.05, -0.1], {}),
    ('transform_type: "similarity"', [0.9, 0.2, 0.0, 0.1], {}),
    ('transform_type: "projective"', [1.0, 0.1, 0.05, -0.1, 0.9, 0.0, 0.1, -0.05], {}),
    ('transform_type: "tps"', list(stn.transforms.tps_control_points(2, 2).ravel() + 0.05), {"tps_grid": (2, 2)}),
    ('transform_type: "tps" tps_grid_h: 2 tps_grid_w: 3',
     list(stn.transforms.tps_control_points(2, 3).ravel() * 0.9), {"tps_grid": (2, 3)}),
]
IDS = [case[0].split('"')[1] + ("_aligned" if "align" in case[0] else "") +
       ("_2x3" if "tps_grid_w: 3" in case[0] else "") for case in FAMILY_CASES]


def family_of(st_text):
    return st_text.split('"')[1]


def layer_case(st_text, params, extra_text="", rng=None):
    rng = rng or np.random.default_rng(0)
    k = len(params)
    layer, bottoms, tops = make_layer(st_text + " output_H: 5 output_W: 6" + extra_text, (2, 2, 6, 7), (2, k))
    bottoms[0].data[...] = rng.standard_normal(bottoms[0].shape)
    bottoms[1].data[...] = np.array(params) + rng.uniform(-0.03, 0.03, (2, k))
    return layer, bottoms, tops


@pytest.mark.parametrize("st_text,params,kwargs", FAMILY_CASES, ids=IDS)
def test_layer_equals_the_functional_family(st_text, params, kwargs):
    layer, bottoms, tops = layer_case(st_text, params)
    layer.forward(bottoms, tops)
    family = family_of(st_text)
    theta = bottoms[1].data.reshape((2, -1, 2) if family == "tps" else (2, -1))
    expected = stn.spatial_transform(bottoms[0].data, theta, out_size=(5, 6), transform=family, **kwargs)
    np.testing.assert_array_equal(tops[0].data, expected)


@pytest.mark.parametrize("st_text,params,kwargs", FAMILY_CASES, ids=IDS)
@pytest.mark.parametrize("extra", ["", ' sampler_type: "bicubic" padding: "border"'], ids=["bilinear", "bicubic_border"])
def test_layer_gradients(st_text, params, kwargs, extra):
    layer, bottoms, tops = layer_case(st_text, params, extra, np.random.default_rng(3))
    u, theta = bottoms
    weights = np.random.default_rng(4).standard_normal((2, 2, 5, 6))

    def loss():
        layer.forward(bottoms, tops)
        return float(np.sum(tops[0].data * weights))

    loss()
    tops[0].diff[...] = weights
    layer.backward(tops, [True, True], bottoms)
    grad_u, grad_theta = u.diff.copy(), theta.diff.copy()
    assert grad_theta.any()
    assert_gradient(lambda _: loss(), u.data, grad_u)
    assert_gradient(lambda _: loss(), theta.data, grad_theta)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("sampler", ["bilinear", "nearest", "bicubic"])
def test_affine_sampler_and_padding_fields(padding, sampler):
    """The forks' affine frame with each sampler and padding: equal to the functional with the
    re-parameterized matrix and the same options."""
    from stn.layers.spatial_transformer import theta_to_kernel_matrix
    rng = np.random.default_rng(5)
    layer, bottoms, tops = make_layer(f'sampler_type: "{sampler}" padding: "{padding}"', (2, 1, 6, 6), (2, 6))
    bottoms[0].data[...] = rng.standard_normal((2, 1, 6, 6))
    bottoms[1].data[...] = [[1.3, 0.2, 0.3, -0.1, 1.2, -0.2]] * 2
    layer.forward(bottoms, tops)
    a = theta_to_kernel_matrix(bottoms[1].data.reshape(2, 2, 3), 6, 6, 6, 6)
    expected = stn.spatial_transform(bottoms[0].data, a, mode=sampler, padding_mode=padding)
    np.testing.assert_array_equal(tops[0].data, expected)
    if padding != "zeros":  # a zoom-out reaches outside: border/reflection differ from zeros
        zeros = stn.spatial_transform(bottoms[0].data, a, mode=sampler)
        assert not np.array_equal(tops[0].data, zeros)


# --------------------------------------------------------------------------------------------
# Training through the net runner: the transformer's parameters come from the bias of an
# InnerProduct over a constant input (weights fixed at zero), so SGD on the bias recovers the
# transformation between an image and its target.

def training_net(num_output, st_text, bias_text):
    return f"""
name: "learn_warp"
input: "image" input_shape {{ dim: 2 dim: 1 dim: 20 dim: 20 }}
input: "one" input_shape {{ dim: 2 dim: 1 }}
input: "target" input_shape {{ dim: 2 dim: 1 dim: 20 dim: 20 }}
layer {{ name: "loc" type: "InnerProduct" bottom: "one" top: "theta"
        param {{ lr_mult: 0 }} param {{ lr_mult: 1 }}
        inner_product_param {{ num_output: {num_output} weight_filler {{ type: "constant" value: 0 }}
                              {bias_text} }} }}
layer {{ name: "st" type: "SpatialTransformer" bottom: "image" bottom: "theta" top: "warped"
        st_param {{ {st_text} to_compute_dU: false }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "warped" bottom: "target" top: "loss" }}
"""


def blobs_image(size=20):
    """Two blobs of different sizes: no rotation maps the picture onto itself."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    picture = np.exp(-((x + 0.35) ** 2 + (y + 0.25) ** 2) / 0.05) + 0.6 * np.exp(-((x - 0.3) ** 2 + (y - 0.35) ** 2) / 0.02)
    return np.stack([picture[None]] * 2).astype(np.float32)


def train(net, image, target, steps, lr):
    one = np.ones((2, 1), np.float32)
    losses = []
    for _ in range(steps):
        net.forward(image=image, one=one, target=target)
        losses.append(net.loss())
        for blob in net.learnable:
            blob.diff[...] = 0
        net.backward()
        for blob, (lr_mult, _) in zip(net.learnable, net.param_specs):
            blob.data -= lr * lr_mult * blob.diff
    return losses


def test_rotation_only_transformer_trains():
    image = blobs_image()
    beta = 25.0 / 180.0
    target = stn.spatial_transform(image, np.array([beta], np.float32), transform="rotation")
    net = stn.Net(parse_net(training_net(1, 'transform_type: "rotation"',
                                         'bias_filler { type: "constant" value: 0 }'), "rot.prototxt"), stn.TRAIN)
    losses = train(net, image, target, 60, 0.002)
    assert losses[-1] < 1e-4 * losses[0]
    np.testing.assert_allclose(net.params["loc"][1].data, [beta], atol=1e-4)


def test_tps_transformer_trains():
    image = blobs_image()
    rest = stn.transforms.tps_control_points(3, 3)
    moved = rest + np.random.default_rng(7).uniform(-0.12, 0.12, rest.shape)
    target = stn.spatial_transform(image, moved.astype(np.float32), transform="tps")
    net = stn.Net(parse_net(training_net(18, 'transform_type: "tps"', "bias_filler { type: \"constant\" value: 0 }"),
                            "tps.prototxt"), stn.TRAIN)
    net.params["loc"][1].data[...] = rest.ravel()  # start at the identity spline
    losses = train(net, image, target, 200, 0.02)
    assert losses[-1] < 0.05 * losses[0]
