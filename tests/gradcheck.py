"""The one central-difference gradient checker every differentiable kernel is tested with.

Float64 only. Callers choose sample points away from the kinks at integer (and half-integer)
pixel coordinates (conftest.random_grid), so a step of `eps` never crosses one.
"""

import numpy as np


def numerical_gradient(loss, x, eps=1e-6):
    """d loss(x) / dx by central differences; `x` is perturbed in place and restored."""
    assert x.dtype == np.float64 and x.flags.c_contiguous
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + eps
        above = loss(x)
        flat_x[i] = original - eps
        below = loss(x)
        flat_x[i] = original
        flat_grad[i] = (above - below) / (2 * eps)
    return grad


def assert_gradient(loss, x, analytic, eps=1e-6, rtol=1e-6, atol=1e-7):
    """The analytic gradient equals the numerical one, entry by entry."""
    numeric = numerical_gradient(loss, x, eps)
    assert analytic.shape == x.shape, (analytic.shape, x.shape)
    scale = max(1.0, float(np.abs(numeric).max()))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol * scale)
