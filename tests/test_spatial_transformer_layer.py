"""The SpatialTransformer layer: the Caffe STN forks' coordinate convention (checked against
a direct implementation of their formulas), fixed theta entries, gradients, and errors."""

import math

import numpy as np
import pytest
from google.protobuf import text_format

from stn.blob import Blob
from stn.config_error import ConfigError
from stn.layers.spatial_transformer import SpatialTransformerLayer
from stn.proto import caffe_pb2
from gradcheck import assert_gradient


def fork_forward(u, theta, out_height, out_width):
    """The forks' forward, written from their formulas: rows first, grid point s at
    s/oH*2-1, input pixel m at 2m/H-1, bilinear with zero outside. theta (N, 2, 3)."""
    n_images, channels, height, width = u.shape
    v = np.zeros((n_images, channels, out_height, out_width))
    for n in range(n_images):
        for i in range(out_height):
            for j in range(out_width):
                r, c = i / out_height * 2 - 1, j / out_width * 2 - 1
                x = (theta[n, 0, 0] * r + theta[n, 0, 1] * c + theta[n, 0, 2] + 1) / 2 * height
                y = (theta[n, 1, 0] * r + theta[n, 1, 1] * c + theta[n, 1, 2] + 1) / 2 * width
                for m in (math.floor(x), math.floor(x) + 1):
                    for k in (math.floor(y), math.floor(y) + 1):
                        if 0 <= m < height and 0 <= k < width:
                            weight = max(0, 1 - abs(x - m)) * max(0, 1 - abs(y - k))
                            v[n, :, i, j] += u[n, :, m, k] * weight
    return v


def make_layer(st_text, u_shape, theta_shape, dtype=np.float64):
    param = text_format.Parse(f'name: "st" type: "SpatialTransformer" st_param {{ {st_text} }}',
                              caffe_pb2.LayerParameter())
    layer = SpatialTransformerLayer(param, "TRAIN", dtype=dtype)
    bottoms = [Blob(u_shape, dtype), Blob(theta_shape, dtype)]
    tops = [Blob((), dtype)]
    layer.setup(bottoms, tops)
    layer.reshape(bottoms, tops)
    return layer, bottoms, tops


FIXED_CASES = [
    ("", list(range(6))),
    ("theta_1_1: 0.5 theta_1_2: 0.0 theta_2_1: 0.0 theta_2_2: 0.5", [2, 5]),  # the seed's zoom
    ("theta_1_3: 0.1 theta_2_3: -0.2", [0, 1, 3, 4]),
]


@pytest.mark.parametrize("st_text,free", FIXED_CASES, ids=("all_free", "zoom_fixed", "shift_fixed"))
@pytest.mark.parametrize("out_size", [(7, 9), (5, 4)])
def test_forward_follows_the_forks_convention(st_text, free, out_size):
    rng = np.random.default_rng(0)
    out_text = f" output_H: {out_size[0]} output_W: {out_size[1]}"
    layer, bottoms, tops = make_layer(st_text + out_text, (2, 3, 6, 8), (2, len(free)))
    bottoms[0].data[...] = rng.standard_normal((2, 3, 6, 8))
    full = np.tile(np.array([[0.9, 0.2, 0.1], [-0.15, 1.1, -0.05]]), (2, 1, 1))
    full += rng.uniform(-0.1, 0.1, full.shape)
    for index, value in layer.fixed.items():
        full[:, index // 3, index % 3] = value
    bottoms[1].data[...] = full.reshape(2, 6)[:, free]
    layer.forward(bottoms, tops)
    assert tops[0].shape == (2, 3) + out_size
    np.testing.assert_allclose(tops[0].data, fork_forward(bottoms[0].data, full, *out_size),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("st_text,free", FIXED_CASES, ids=("all_free", "zoom_fixed", "shift_fixed"))
def test_gradients_of_u_and_free_theta(st_text, free):
    rng = np.random.default_rng(1)
    layer, bottoms, tops = make_layer(st_text + " output_H: 5 output_W: 6", (2, 2, 5, 7), (2, len(free)))
    u, theta = bottoms
    u.data[...] = rng.standard_normal(u.shape)
    theta.data[...] = (np.array([0.8, 0.1, 0.05, -0.1, 0.9, 0.02])[free] + rng.uniform(-0.05, 0.05, (2, len(free))))
    weights = rng.standard_normal((2, 2, 5, 6))

    def loss():
        layer.forward(bottoms, tops)
        return float(np.sum(tops[0].data * weights))

    loss()
    tops[0].diff[...] = weights
    layer.backward(tops, [True, True], bottoms)
    grad_u, grad_theta = u.diff.copy(), theta.diff.copy()
    assert_gradient(lambda _: loss(), u.data, grad_u)
    assert_gradient(lambda _: loss(), theta.data, grad_theta)


def test_to_compute_du_false_gives_no_input_gradient():
    layer, bottoms, tops = make_layer("to_compute_dU: false", (1, 1, 4, 4), (1, 6))
    bottoms[1].data[...] = [[1, 0, 0, 0, 1, 0]]
    bottoms[0].data[...] = 1
    layer.forward(bottoms, tops)
    tops[0].diff[...] = 1
    bottoms[0].diff[...] = 7
    layer.backward(tops, [True, True], bottoms)
    assert not bottoms[0].diff.any() and bottoms[1].diff.any()


def test_identity_theta_reproduces_the_input_up_to_the_forks_half_pixel():
    # Identity in the forks' convention maps output pixel i to input pixel i exactly.
    layer, bottoms, tops = make_layer("", (1, 2, 5, 6), (1, 6))
    bottoms[0].data[...] = np.arange(60).reshape(1, 2, 5, 6)
    bottoms[1].data[...] = [[1, 0, 0, 0, 1, 0]]
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, bottoms[0].data, atol=1e-12)


@pytest.mark.parametrize("st_text,theta_shape,message", [
    ("theta_1_1: 0.5", (2, 6), r"theta must be \(N, 5\).*1 of the 6 entries are fixed.*theta_1_1"),
    ("", (2, 4), r"theta must be \(N, 6\)"),
    ("", (3, 6), r"theta must be \(N, 6\) with N = 2"),
    ('transform_type: "perspective"', (2, 6), r"transform_type must be one of"),
    ('transform_type: "projective"', (2, 6), r"theta must be \(N, 8\) with N = 2"),
    ('transform_type: "rotation"', (2, 2), r"theta must be \(N, 1\) or \(N, 3\)"),
    ('transform_type: "tps"', (2, 6), r"theta must be \(N, 8\).*2 x 2 TPS control points"),
    ('transform_type: "tps" tps_grid_h: 3 tps_grid_w: 4', (2, 18), r"theta must be \(N, 24\)"),
    ('transform_type: "tps" tps_grid_h: 3', (2, 18), r"both tps_grid_h and tps_grid_w"),
    ('transform_type: "rigid" theta_1_1: 1', (2, 3), r"theta_1_1 fix entries of transform_type 'affine' only"),
    ('padding: "wrap"', (2, 6), r"padding must be one of"),
    ("align_corners: true", (2, 6), r"align_corners applies to the transform_types other than"),
    ('sampler_type: "lanczos"', (2, 6), r"sampler_type must be one of"),
])
def test_configuration_errors_name_the_rule(st_text, theta_shape, message):
    with pytest.raises(ConfigError, match=message):
        make_layer(st_text, (2, 1, 4, 4), theta_shape)
