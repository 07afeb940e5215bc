"""A SpatialTransformer net with fixed theta entries really trains: gradient descent on the
free translation recovers the shift between an image and its target. (Plain SGD written
here; the solvers are tested on their own.)"""

import numpy as np

import stn
from stn.config import parse_net

NET = """
name: "learn_shift"
force_backward: false
input: "image" input_shape { dim: 4 dim: 1 dim: 16 dim: 16 }
input: "one" input_shape { dim: 4 dim: 1 }
input: "target" input_shape { dim: 4 dim: 1 dim: 16 dim: 16 }
# theta's two free entries (the translation) come from the bias of an InnerProduct over a
# constant input; the weights start and stay at zero (lr_mult 0).
layer { name: "loc" type: "InnerProduct" bottom: "one" top: "theta"
        param { lr_mult: 0 } param { lr_mult: 1 }
        inner_product_param { num_output: 2 weight_filler { type: "constant" value: 0 }
                              bias_filler { type: "constant" value: 0 } } }
layer { name: "st" type: "SpatialTransformer" bottom: "image" bottom: "theta" top: "warped"
        st_param { theta_1_1: 1 theta_1_2: 0 theta_2_1: 0 theta_2_2: 1 to_compute_dU: false } }
layer { name: "loss" type: "EuclideanLoss" bottom: "warped" bottom: "target" top: "loss" }
"""


def blob_image(row, col, size=16, sigma=2.5):
    y, x = np.mgrid[0:size, 0:size]
    return np.exp(-((y - row) ** 2 + (x - col) ** 2) / (2 * sigma**2))


def test_translation_is_learned():
    net = stn.Net(parse_net(NET, "learn_shift.prototxt"), stn.TRAIN)
    image = np.stack([blob_image(9.0, 6.0)[None]] * 4).astype(np.float32)    # blob at (9, 6)
    target = np.stack([blob_image(7.0, 8.0)[None]] * 4).astype(np.float32)   # wanted at (7, 8)
    one = np.ones((4, 1), np.float32)
    losses = []
    for _ in range(300):
        net.forward(image=image, one=one, target=target)
        losses.append(net.loss())
        for blob in net.learnable:
            blob.diff[...] = 0
        net.backward()
        for blob, (lr_mult, _) in zip(net.learnable, net.param_specs):
            blob.data -= 0.004 * lr_mult * blob.diff
    assert losses[-1] < 0.01 * losses[0]
    # Forks' convention: output row i reads input row i + t_row * H / 2, so the target's
    # blob at row 7 reads the image's row 9: t_row = 2 * (9 - 7) / 16, t_col = 2 * (6 - 8) / 16.
    bias = net.params["loc"][1].data
    np.testing.assert_allclose(bias, [2 * 2 / 16, -2 * 2 / 16], atol=0.01)
    assert not net.params["loc"][0].data.any()  # lr_mult 0 kept the weights at zero
