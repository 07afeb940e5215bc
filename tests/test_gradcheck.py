"""Central-difference checks of every backward pass: grad_input, grad_grid, grad_theta."""

import itertools

import numpy as np
import pytest

import stn
from conftest import MODES, PADDINGS, random_grid, random_theta
from gradcheck import assert_gradient

ALL_OPTIONS = list(itertools.product(MODES, PADDINGS, (False, True)))


def weighted_sum(weights):
    """A scalar loss sum(output * weights), whose d loss / d output is `weights`."""
    return lambda output: float(np.sum(output * weights))


@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_grid_sample_gradients(rng, mode, padding, align):
    n, c, h, w, ho, wo = 2, 2, 4, 5, 3, 4
    x = rng.standard_normal((n, c, h, w))
    grid = random_grid(rng, n, ho, wo, h, w, align)
    weights = rng.standard_normal((n, c, ho, wo))
    loss = weighted_sum(weights)

    grad_input, grad_grid = stn.grid_sample_backward(weights, x, grid, mode, padding, align)
    assert_gradient(lambda v: loss(stn.grid_sample(v, grid, mode, padding, align)), x, grad_input)
    assert_gradient(lambda g: loss(stn.grid_sample(x, g, mode, padding, align)), grid, grad_grid)
    if mode == "nearest":
        assert not grad_grid.any()


@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
@pytest.mark.parametrize("shared", (False, True), ids=("theta_N23", "theta_23"))
def test_spatial_transform_gradients(rng, mode, padding, align, shared):
    n, c, h, w, ho, wo = 2, 2, 5, 4, 4, 3
    x = rng.standard_normal((n, c, h, w))
    theta = random_theta(rng, 1 if shared else n)
    theta = np.ascontiguousarray(theta[0]) if shared else theta
    weights = rng.standard_normal((n, c, ho, wo))
    loss = weighted_sum(weights)

    def forward(v, t):
        return stn.spatial_transform(v, t, (ho, wo), mode, padding, align)

    grad_input, grad_theta = stn.spatial_transform_backward(
        weights, x, theta, (ho, wo), mode, padding, align)
    assert grad_theta.shape == theta.shape
    assert_gradient(lambda v: loss(forward(v, theta)), x, grad_input)
    assert_gradient(lambda t: loss(forward(x, t)), theta, grad_theta)


@pytest.mark.parametrize("align", (False, True))
def test_affine_grid_gradient(rng, align):
    size = (2, 3, 4, 5)
    theta = random_theta(rng, 2)
    weights = rng.standard_normal((2, 4, 5, 2))
    grad_theta = stn.affine_grid_backward(weights, size, align)
    assert_gradient(lambda t: float(np.sum(stn.affine_grid(t, size, align) * weights)), theta, grad_theta)


def test_input_grad_false_skips_grad_input(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    theta = random_theta(rng, 1)
    weights = rng.standard_normal((1, 2, 4, 4))
    grad_input, grad_theta = stn.spatial_transform_backward(weights, x, theta, input_grad=False)
    assert grad_input is None
    np.testing.assert_array_equal(grad_theta, stn.spatial_transform_backward(weights, x, theta)[1])
    grid = stn.affine_grid(theta, x.shape)
    grad_input, grad_grid = stn.grid_sample_backward(weights, x, grid, input_grad=False)
    assert grad_input is None
    np.testing.assert_array_equal(grad_grid, stn.grid_sample_backward(weights, x, grid)[1])
