"""The CUDA code path, verified without a GPU.

stn._core's backend="emulated" runs the CUDA launch sequence (csrc/stn/device_ops.h) and the
very kernel bodies the .cu file launches (csrc/stn/kernel_bodies.h), with each kernel a
host loop over its thread-index space, atomicAdd a plain add and the GPU sort a stable sort.
It must equal the CPU path bit for bit, with and without the deterministic scatter. The
last tests need a real GPU and CuPy, and skip cleanly without them."""

import itertools

import numpy as np
import pytest

import stn
from stn import _core
from conftest import DTYPES, MODES, PADDINGS, random_grid, random_theta

ALL_OPTIONS = list(itertools.product(MODES, PADDINGS, (False, True)))
MODE_CODE = {m: i for i, m in enumerate(MODES)}
AFFINE = (0, 6, 0, (0.0,) * 6, 0, 0)  # stn.transforms.Family("affine", ...).core_args()
PADDING_CODE = {p: i for i, p in enumerate(PADDINGS)}


def assert_same(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def assert_backends_agree(function, *args):
    """stn._core.<function> on the emulated device equals the CPU path, bit for bit (the CPU
    ignores `deterministic`: it always is); returns the CPU's result."""
    emulated = getattr(_core, function)(*args, backend="emulated")
    cpu = getattr(_core, function)(*args)
    if isinstance(cpu, tuple):
        for a, b in zip(emulated, cpu):
            assert_same(a, b)
    else:
        assert_same(emulated, cpu)
    return cpu


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
@pytest.mark.parametrize("deterministic", (False, True), ids=("atomic", "sorted"))
def test_emulated_kernels_equal_cpu(rng, dtype, mode, padding, align, deterministic):
    n, c, h, w, ho, wo = 2, 3, 6, 7, 11, 9
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    grid = random_grid(rng, n, ho, wo, h, w, align, dtype)
    theta = random_theta(rng, n, dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)
    m, p = MODE_CODE[mode], PADDING_CODE[padding]

    for shared in (False, True):
        t = np.ascontiguousarray(theta[0]) if shared else theta
        assert_backends_agree("transform_grid", t, AFFINE, None, shared, n, ho, wo, align)
        assert_backends_agree("spatial_transform", x, t, AFFINE, None, shared, ho, wo, m, p, align)
        for input_grad in (True, False):
            assert_backends_agree("spatial_transform_backward", grad_output, x, t, AFFINE, None,
                                  shared, m, p, align, input_grad, deterministic)
        assert_backends_agree("transform_grid_backward", grid, t, AFFINE, None, shared, align)
    assert_backends_agree("grid_sample", x, grid, m, p, align)
    for input_grad in (True, False):
        assert_backends_agree("grid_sample_backward", grad_output, x, grid, m, p, align, input_grad,
                              deterministic)


def test_emulated_kernels_handle_non_finite_points(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    grid = random_grid(rng, 1, 4, 4, 5, 5, False)
    grid[0, 0, :, 0] = [np.nan, np.inf, -np.inf, 1e30]
    grad_output = rng.standard_normal((1, 2, 4, 4))
    for m, p in itertools.product(range(3), range(3)):
        for deterministic in (False, True):
            assert_backends_agree("grid_sample_backward", grad_output, x, grid, m, p, False, True,
                                  deterministic)


def test_cuda_kernels_are_compiled_in():
    info = stn.build_info()
    if not info["cuda"]:
        pytest.skip("built without a CUDA compiler")
    assert info["cuda_architectures"] == [75, 80, 86, 89, 90]
    assert _core.cuda_compiled


def gpu():
    if not stn.cuda_available():
        pytest.skip("no CUDA GPU on this machine")
    return pytest.importorskip("cupy")


@pytest.mark.cuda
@pytest.mark.parametrize("mode,padding,align", ALL_OPTIONS)
def test_cuda_matches_cpu(rng, mode, padding, align):
    cupy = gpu()
    n, c, h, w, ho, wo = 2, 3, 16, 15, 12, 13
    x = rng.standard_normal((n, c, h, w))
    theta = random_theta(rng, n)
    grad_output = rng.standard_normal((n, c, ho, wo))
    expected = stn.spatial_transform_backward(grad_output, x, theta, (ho, wo), mode, padding, align)
    for deterministic in (False, True):
        got = stn.spatial_transform_backward(cupy.asarray(grad_output), cupy.asarray(x),
                                             cupy.asarray(theta), (ho, wo), mode, padding, align,
                                             deterministic=deterministic)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(cupy.asnumpy(a), b, rtol=1e-10, atol=1e-10)
    out = stn.spatial_transform(cupy.asarray(x), cupy.asarray(theta), (ho, wo), mode, padding, align)
    np.testing.assert_allclose(cupy.asnumpy(out),
                               stn.spatial_transform(x, theta, (ho, wo), mode, padding, align),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.cuda
def test_cuda_deterministic_scatter_is_reproducible(rng):
    cupy = gpu()
    x = cupy.asarray(rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    grid = cupy.asarray(random_grid(rng, 1, 64, 64, 8, 8, False, np.float32))
    grad_output = cupy.asarray(rng.standard_normal((1, 4, 64, 64)).astype(np.float32))
    first = stn.grid_sample_backward(grad_output, x, grid, deterministic=True)[0]
    for _ in range(5):
        again = stn.grid_sample_backward(grad_output, x, grid, deterministic=True)[0]
        assert cupy.asnumpy(again).tobytes() == cupy.asnumpy(first).tobytes()
