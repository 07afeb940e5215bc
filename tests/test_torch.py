"""Agreement with torch.nn.functional.affine_grid / grid_sample: values and autograd
gradients, every mode, padding, align_corners and dtype. Skipped when torch is absent;
.ci/run installs torch==2.13.0 (CPU) so these run in CI."""

import itertools

import numpy as np
import pytest

import stn
from conftest import DTYPES, MODES, PADDINGS, random_grid, random_theta

torch = pytest.importorskip("torch")
F = torch.nn.functional

ALL_OPTIONS = list(itertools.product(MODES, PADDINGS, (False, True)))
# Largest |stn - torch| allowed, relative to the largest magnitude compared.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def assert_matches(ours, theirs, dtype):
    theirs = theirs.detach().numpy()
    scale = max(1.0, float(np.abs(theirs).max()))
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_grid_sample_matches_torch(rng, dtype, mode, padding, align):
    n, c, h, w, ho, wo = 2, 3, 8, 9, 6, 7
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    grid = random_grid(rng, n, ho, wo, h, w, align, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)

    x_t = torch.from_numpy(x).requires_grad_()
    grid_t = torch.from_numpy(grid).requires_grad_()
    out_t = F.grid_sample(x_t, grid_t, mode=mode, padding_mode=padding, align_corners=align)
    out_t.backward(torch.from_numpy(grad_output))

    assert_matches(stn.grid_sample(x, grid, mode, padding, align), out_t, dtype)
    grad_input, grad_grid = stn.grid_sample_backward(grad_output, x, grid, mode, padding, align)
    assert_matches(grad_input, x_t.grad, dtype)
    assert_matches(grad_grid, grid_t.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_spatial_transform_matches_torch(rng, dtype, mode, padding, align):
    n, c, h, w, ho, wo = 2, 3, 9, 8, 7, 10
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    theta = random_theta(rng, n, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)

    x_t = torch.from_numpy(x).requires_grad_()
    theta_t = torch.from_numpy(theta).requires_grad_()
    grid_t = F.affine_grid(theta_t, (n, c, ho, wo), align_corners=align)
    out_t = F.grid_sample(x_t, grid_t, mode=mode, padding_mode=padding, align_corners=align)
    out_t.backward(torch.from_numpy(grad_output))

    out = stn.spatial_transform(x, theta, (ho, wo), mode, padding, align)
    grad_input, grad_theta = stn.spatial_transform_backward(
        grad_output, x, theta, (ho, wo), mode, padding, align)
    if mode == "nearest" and dtype == np.float32:
        # A float32 coordinate an ulp either side of a rounding boundary picks a different
        # pixel; compare only where both implementations computed the same grid point.
        same = np.all(stn.affine_grid(theta, (n, c, ho, wo), align) == grid_t.detach().numpy(), axis=-1)
        out, out_t = out * same[:, None], out_t * torch.from_numpy(same[:, None])
    assert_matches(out, out_t, dtype)
    if mode != "nearest":
        assert_matches(grad_input, x_t.grad, dtype)
        # grad_theta sums Ho * Wo * C terms; torch sums them in its own dtype.
        scale = c * ho * wo
        np.testing.assert_allclose(grad_theta, theta_t.grad.numpy(), rtol=0,
                                   atol=TOLERANCE[dtype] * scale * max(1.0, np.abs(grad_theta).max()))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("align", (False, True))
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (1, 1, 1, 1), (2, 1, 1, 6), (1, 2, 7, 1)])
def test_affine_grid_matches_torch(rng, dtype, align, size):
    theta = random_theta(rng, size[0], dtype)
    theta_t = torch.from_numpy(theta).requires_grad_()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about size-1 axes with align_corners
        grid_t = F.affine_grid(theta_t, size, align_corners=align)
    grad_grid = rng.standard_normal(tuple(grid_t.shape)).astype(dtype)
    grid_t.backward(torch.from_numpy(grad_grid))
    assert_matches(stn.affine_grid(theta, size, align), grid_t, dtype)
    np.testing.assert_allclose(stn.affine_grid_backward(grad_grid, size, align), theta_t.grad.numpy(),
                               rtol=0, atol=TOLERANCE[dtype] * size[2] * size[3] * 4)
