"""The vectorized row kernels (csrc/cpu/simd/) equal the generic kernel bodies bit for bit.

The CPU path sends float32 affine bilinear calls, and grid_sample and affine_grid, with zeros
or border padding to AVX2 or AVX-512 row kernels chosen at run time; everything else, and the
emulated device launch, runs the generic per-pixel bodies over stn/taps.h. Each test runs
every SIMD level this CPU offers (set_simd_level) and compares the CPU result with the
emulated launch, byte for byte: forward, grad_input and grad_theta (or grad_grid), at shapes
that exercise vector tails, the masked (clamped-pair and gather) corner fetches, the interior
pair loads and their bounds, image edges, row bands (N < threads) and non-finite values.
"""

import itertools

import numpy as np
import pytest

import stn
from stn import _core, transforms
from conftest import random_theta

LEVELS = [level for level in ("avx512", "avx2", "off") if _core.set_simd_level(level)]
_core.set_simd_level("best")
ZEROS, BORDER = 0, 1
BILINEAR = 0
AFFINE = transforms.resolve("test", "affine", np.zeros((1, 2, 3)), None, None).core_args()

# (N, C, H, W, Ho, Wo): tails of 1..15 lanes, one-pixel rows, tall and wide images,
# up- and downsampling, rows split into strips.
SHAPES = [
    (2, 3, 9, 11, 7, 13),
    (1, 1, 2, 2, 5, 33),
    (3, 2, 17, 40, 16, 16),
    (1, 4, 64, 64, 31, 47),
    (2, 1, 60, 60, 28, 28),
    (1, 2, 128, 9, 17, 100),
    (1, 1, 200, 200, 20, 20),
    (4, 3, 1, 7, 3, 18),
    (2, 2, 7, 1, 19, 3),
    (1, 3, 40, 300, 9, 530),  # strips of 256 columns and a short last one
]


@pytest.fixture(params=LEVELS)
def simd_level(request):
    assert _core.set_simd_level(request.param)
    yield request.param
    _core.set_simd_level("best")


def assert_same_bits(cpu, emulated):
    for a, b in zip(cpu if isinstance(cpu, tuple) else (cpu,),
                    emulated if isinstance(emulated, tuple) else (emulated,)):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        mismatch = np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
        assert mismatch.size == 0, f"{mismatch.size} elements differ, first at {mismatch[:5]}"


def check_fused(x, theta, out_size, padding, align, grad_output, shared=False):
    ho, wo = out_size
    args = (x, theta, AFFINE, None, shared, ho, wo, BILINEAR, padding, align)
    assert_same_bits(_core.spatial_transform(*args), _core.spatial_transform(*args, backend="emulated"))
    for input_grad in (True, False):
        back = (grad_output, x, theta, AFFINE, None, shared, BILINEAR, padding, align, input_grad)
        assert_same_bits(_core.spatial_transform_backward(*back),
                         _core.spatial_transform_backward(*back, backend="emulated"))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padding,align", list(itertools.product((ZEROS, BORDER), (False, True))))
def test_row_kernels_equal_generic_bodies(rng, simd_level, shape, padding, align):
    n, c, h, w, ho, wo = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(np.float32)
    theta = random_theta(rng, n, np.float32)
    check_fused(x, theta, (ho, wo), padding, align, grad_output)
    check_fused(x, np.ascontiguousarray(theta[0]), (ho, wo), padding, align, grad_output, shared=True)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 135.0, 180.0, 270.0])
@pytest.mark.parametrize("scale", [0.25, 1.0, 3.0])
def test_rotations_and_zooms(rng, simd_level, angle, scale):
    # Steep angles put 16 neighbouring pixels in many input rows (gathered); small scales
    # (zoom in) put them in one or two rows; whole-pixel steps land exactly on cell edges.
    n, c, h, w = 2, 2, 37, 45
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    a = np.radians(angle)
    theta = np.tile(np.array([[scale * np.cos(a), -scale * np.sin(a), 0.1],
                              [scale * np.sin(a), scale * np.cos(a), -0.05]], np.float32), (n, 1, 1))
    grad_output = rng.standard_normal((n, c, 40, 50)).astype(np.float32)
    for padding in (ZEROS, BORDER):
        check_fused(x, theta, (40, 50), padding, False, grad_output)


def test_whole_interior_chunks(rng, simd_level):
    # A zoom into the middle of a wide image keeps every pixel interior: the forward then takes
    # whole chunks of 16 vectors (128 pixels with AVX2, 256 with AVX-512, a strip) through its
    # plain loop; 600 columns end in a short strip with a partial vector.
    x = rng.standard_normal((2, 3, 40, 300)).astype(np.float32)
    grad_output = rng.standard_normal((2, 3, 6, 600)).astype(np.float32)
    for angle in (0.0, 3.0):
        a = np.radians(angle)
        theta = np.tile(np.array([[0.5 * np.cos(a), -0.5 * np.sin(a), 0.05],
                                  [0.5 * np.sin(a), 0.5 * np.cos(a), -0.1]], np.float32), (2, 1, 1))
        for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
            check_fused(x, theta, (6, 600), padding, align, grad_output)


def test_plain_chunks_leave_at_any_vector(rng, simd_level):
    # A chunk of 16 whole vectors computes its taps on the plain path first and leaves it, for
    # the masked one, once a vector has a lane off the interior (checked every 4 vectors).
    # Sliding the image's left and right edges across 512-pixel rows puts that first vector at
    # every position of a chunk (16 vectors: 128 pixels with AVX2, 256 with AVX-512); a NaN
    # theta sends every vector of its image off the plain path.
    x = rng.standard_normal((2, 2, 6, 200)).astype(np.float32)
    grad_output = rng.standard_normal((2, 2, 3, 512)).astype(np.float32)
    for step, shift in enumerate(np.linspace(-1.2, 1.2, 25)):
        theta = np.tile(np.array([[1.3, 0.0, shift], [0.0, 0.5, 0.0]], np.float32), (2, 1, 1))
        if step == 12:
            theta[1, 0, 0] = np.nan
        for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
            check_fused(x, theta, (3, 512), padding, align, grad_output)


def test_streamed_output(rng, simd_level):
    # An output of 8 MiB or more is written with non-temporal stores wherever a plain chunk
    # starts on a 64-byte line: 1000-float rows put every other row's chunks on one.
    x = rng.standard_normal((1, 2, 64, 300)).astype(np.float32)
    grad_output = rng.standard_normal((1, 2, 1100, 1000)).astype(np.float32)
    assert 2 * 1100 * 1000 * 4 >= 8 << 20
    theta = np.array([[[0.5, -0.02, 0.05], [0.03, 0.5, -0.1]]], np.float32)
    check_fused(x, theta, (1100, 1000), ZEROS, False, grad_output)


def test_identity_and_integer_shifts_hit_cell_edges(rng, simd_level):
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    grad_output = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    for shift in (0.0, 0.125, 0.5, 1.0, -2.0):
        theta = np.tile(np.array([[1, 0, shift], [0, 1, -shift]], np.float32), (2, 1, 1))
        for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
            check_fused(x, theta, (16, 16), padding, align, grad_output)


@pytest.mark.parametrize("channels", [1, 2])  # one channel: the grid gradient's own loop
def test_interior_bounds_at_every_lane(rng, simd_level, channels):
    # The AVX2 kernels read a vector's corners as pairs, without masks, only when every lane is
    # interior (0 <= x < W - 1, 0 <= y < H - 1; 0 < x, y with border padding). Slide the image
    # edges across the lanes, landing points exactly on x = 0 and x = W - 1 and just inside.
    x = rng.standard_normal((1, channels, 12, 21)).astype(np.float32)
    grad_output = rng.standard_normal((1, channels, 6, 40)).astype(np.float32)
    for step in range(-9, 10):
        shift = np.float32(step / 20.0)
        for scale in (np.float32(1.0), np.float32(0.55), np.nextafter(np.float32(1.0), np.float32(2.0))):
            theta = np.array([[[scale, 0, shift], [0, 1, shift / 3]]], np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, theta, (6, 40), padding, align, grad_output)


@pytest.mark.parametrize("c", [1, 2])  # one channel: the grid gradient's own loop
def test_non_finite_values(rng, simd_level, c):
    # NaN/Inf/huge theta entries (points outside, or clamped to the border), and NaN/Inf in
    # the input and in grad_output, which a skipped corner must not pick up (0 * Inf).
    n, h, w = 6, 8, 9
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x[0, 0, 0, 0] = np.inf
    x[1, c - 1, 3, 4] = np.nan
    x[2, :, -1, -1] = -np.inf
    theta = random_theta(rng, n, np.float32)
    theta[3, 0, 2] = np.nan
    theta[4, 1, 1] = np.inf
    theta[5, 0, 0] = 1e30
    grad_output = rng.standard_normal((n, c, 10, 17)).astype(np.float32)
    grad_output[0, 0, 0, :] = np.inf
    grad_output[2, c - 1, 5, 3] = np.nan
    for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
        check_fused(x, theta, (10, 17), padding, align, grad_output)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_any_thread_count(rng, simd_level, threads):
    # N = 1 with several threads splits grad_input into bands of input rows.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        for n in (1, 3):
            x = rng.standard_normal((n, 3, 23, 19)).astype(np.float32)
            grad_output = rng.standard_normal((n, 3, 21, 29)).astype(np.float32)
            check_fused(x, random_theta(rng, n, np.float32), (21, 29), ZEROS, False, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_bands_skip_only_columns_out_of_reach(rng, simd_level, threads):
    # With N < threads each band of input rows computes corners only for the output columns
    # whose samples may reach it (AffineRows::band_columns, from the row's sample rows in
    # double with a margin). Maps that put band edges at every kind of place: shallow and
    # steep rows, rows along a band edge (slope 0), points just outside the image, huge and
    # tiny entries, align_corners both ways.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        h, w, ho, wo = 37, 29, 23, 150
        x = rng.standard_normal((1, 2, h, w)).astype(np.float32)
        grad_output = rng.standard_normal((1, 2, ho, wo)).astype(np.float32)
        thetas = [random_theta(rng, 1, np.float32)[0] for _ in range(4)]
        thetas += [np.array([[1, 0, 0], [s, 1, t]], np.float32) for s in (1e-4, 0.03, -0.5, 3.0)
                   for t in (0.0, 1 / h, -1 + 1e-6)]
        thetas += [np.array([[0.5, 0, 0], [0, 0, y]], np.float32) for y in (-1.0, -0.5, 0.0, 1.0, 1.03)]
        thetas += [np.array([[1e-3, 2e5, 0], [1e5, 1e-3, 3e4]], np.float32),
                   np.array([[1, 0, 0], [1e-30, 1, 0]], np.float32)]
        for theta, align in itertools.product(thetas, (False, True)):
            check_fused(x, theta[None].copy(), (ho, wo), ZEROS, align, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_band_interior_at_band_edges(rng, simd_level, threads):
    # With N < threads the vectors whose corners all lie in a band's rows take the short way
    # (InteriorRowKernels::corners_row with band_rows), the others the masked corners. With
    # align_corners and as many rows out as in, an identity map samples every input row
    # exactly, so each band's first and last rows; shifts of a hair and of half a row either
    # way, and a slight rotation, put samples just inside and just outside each band edge
    # and cross the edges within a vector. Zeros and border padding; the fused backward and
    # grid_sample's, whose bands compute every vector of every row.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        h, w = 29, 40
        x = rng.standard_normal((1, 2, h, w)).astype(np.float32)
        grad_output = rng.standard_normal((1, 2, h, w)).astype(np.float32)
        for dy, rot in itertools.product((0.0, 1e-6, -1e-6, 1 / (h - 1), -1 / (h - 1)), (0.0, 0.01)):
            theta = np.array([[[1, -rot, 0], [rot, 1, dy]]], np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, theta, (h, w), padding, align, grad_output)
            grid = affine_grid(theta.astype(np.float64), (h, w))
            check_grid_sample(x, grid, ZEROS, True, grad_output)
            check_grid_sample(x, grid, BORDER, True, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("channels", [1, 2, 4, 5, 8, 9, 16, 17, 33])
@pytest.mark.parametrize("threads", [1, 3])
def test_grad_input_channel_groups(rng, simd_level, channels, threads):
    # The scatter takes channels as vector lanes, 4 at a time for up to 4 channels, more with
    # the wider levels (8 with AVX2, 16 with AVX-512; a partial group at the end), one channel
    # straight into its plane; with N = 1 and several threads, in bands of rows.
    # The AVX2 row kernels sweep 8 channels at a time across chunks of 16 vectors: rows of
    # 140 pixels are a chunk and a part.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        x = rng.standard_normal((1, channels, 30, 26)).astype(np.float32)
        x[0, -1, 7, 9] = np.inf
        for out_size in ((33, 35), (9, 140)):
            grad_output = rng.standard_normal((1, channels, *out_size)).astype(np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, random_theta(rng, 1, np.float32), out_size, padding, align, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 3, 8])
def test_one_channel_grad_input_of_many_images(rng, simd_level, threads):
    # One channel, 1 MiB of grad_input or more in planes of at most 256 KiB (shapes an earlier
    # round scattered through a per-thread buffer; now straight into the planes). 8 threads
    # split each of 5 images into 2 bands of rows; the fused backward, the grid gradient and
    # scatter, and grid_sample's backward all take them.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        for (n, h, w), out_size in [((80, 60, 60), (28, 28)), ((5, 240, 256), (101, 123))]:
            assert n * h * w * 4 >= 1 << 20 and h * w * 4 <= 256 << 10
            x = rng.standard_normal((n, 1, h, w)).astype(np.float32)
            x[1, 0, 7, 9] = np.inf
            theta = random_theta(rng, n, np.float32)
            theta[2, 1, 2] = np.nan
            grad_output = rng.standard_normal((n, 1, *out_size)).astype(np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, theta, out_size, padding, align, grad_output)
            grid = affine_grid(random_theta(rng, n, np.float32).astype(np.float64), out_size)
            check_grid_sample(x, grid, ZEROS, False, grad_output)
    finally:
        stn.set_num_threads(previous)


def test_scatter_buffers_reused_across_calls(rng, simd_level):
    # A thread keeps its scatter buffers (corners, products, lanes) from call to call. Calls of
    # other sizes, larger and smaller, one channel and several, in turn: each must start from
    # zeros and read only its own corners. One thread, so that every call reuses the same
    # buffers.
    previous = stn.get_num_threads()
    stn.set_num_threads(1)
    try:
        calls = [(80, 1, 60, 60, 28, 28), (20, 1, 128, 128, 50, 50), (80, 1, 60, 60, 28, 28),
                 (2, 5, 60, 60, 28, 28), (80, 1, 60, 60, 28, 28), (300, 1, 30, 30, 20, 20),
                 (20, 1, 128, 128, 50, 50)]
        for n, c, h, w, ho, wo in calls:
            x = rng.standard_normal((n, c, h, w)).astype(np.float32)
            grad_output = rng.standard_normal((n, c, ho, wo)).astype(np.float32)
            check_fused(x, random_theta(rng, n, np.float32), (ho, wo), ZEROS, False, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("channels,padded", [(1, 1), (3, 4), (12, 16)])
def test_backward_on_either_side_of_the_cache_rule(rng, simd_level, channels, padded):
    # With N >= threads, the backward takes one pass (grid gradient and scatter together) while
    # an image's scatter buffer (channels rounded up to whole lanes, times the plane) fits in
    # the L2 cache that build_info reports, and two passes beyond: both give the same bits.
    l2_floats = stn.build_info()["l2_cache_bytes"] // 4
    width = 128
    rows_within = l2_floats // padded // width  # rows * width * padded <= the L2's floats
    previous = stn.get_num_threads()
    stn.set_num_threads(2)
    try:
        for height in (rows_within, rows_within + 1):
            x = rng.standard_normal((2, channels, height, width)).astype(np.float32)
            x[1, -1, 5, 7] = np.nan
            grad_output = rng.standard_normal((2, channels, 40, 50)).astype(np.float32)
            check_fused(x, random_theta(rng, 2, np.float32), (40, 50), ZEROS, False, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("channels", [1, 5, 12, 20])
def test_grad_input_of_strong_magnification(rng, simd_level, channels):
    # Below a step of 1/8 input pixel between neighbouring output pixels the scatter holds
    # each 2x2 cell's sums in registers (HeldCell), moving them to the neighbouring cell;
    # above it, every pixel adds to memory. Both must give the generic scatter's bits.
    x = rng.standard_normal((2, channels, 6, 7)).astype(np.float32)
    for scale in (3.0, 0.3):  # steps of ~0.4 and ~0.04 input pixels
        a = np.radians(25.0)
        theta = np.tile(np.array([[scale * np.cos(a), -scale * np.sin(a), 0.2],
                                  [scale * np.sin(a), scale * np.cos(a), -0.1]], np.float32), (2, 1, 1))
        theta[1, :, 2] = [-0.9, 0.95]  # the second image's view reaches the edges
        grad_output = rng.standard_normal((2, channels, 31, 45)).astype(np.float32)
        for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
            check_fused(x, theta, (31, 45), padding, align, grad_output)


@pytest.mark.parametrize("threads", [1, 3])
def test_short_rows_as_flat_runs(rng, simd_level, threads):
    # Rows narrower than 64 pixels, in planes of at most 2^16, reach the AVX2 forward and
    # theta-gradient kernels as flat runs of whole rows (each pixel with its own base y), so
    # a vector may hold the end of one row and the start of the next. Widths from 1 to 70
    # cross that limit, a 1100 x 60 plane crosses the plane limit, N = 1 splits the rows into
    # runs per thread, and a NaN theta and an image edge send vectors down the masked path.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        for n, (ho, wo) in [(2, (7, 1)), (2, (5, 3)), (1, (9, 9)), (3, (11, 21)), (1, (40, 63)),
                            (2, (4, 64)), (1, (6, 70)), (1, (1100, 60))]:
            x = rng.standard_normal((n, 2, 17, 23)).astype(np.float32)
            x[0, 1, 4, 5] = np.inf
            theta = random_theta(rng, n, np.float32)
            theta[-1, 1, 2] += np.float32(0.6)  # the last image's view crosses its lower edge
            if n > 1:
                theta[0, 0, 1] = np.nan
            grad_output = rng.standard_normal((n, 2, ho, wo)).astype(np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, theta, (ho, wo), padding, align, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("channels", [8, 9, 16, 17, 32, 33])
@pytest.mark.parametrize("threads", [1, 3])
def test_forward_from_channels_last_copies(rng, simd_level, channels, threads):
    # With 8 or more channels, at least one image per thread, and an input no larger than
    # twice the output, the forward reads a channels-last copy of each image (channels
    # padded to a multiple of 8 for the AVX2 kernel, of 16 for the AVX-512 one, which takes
    # 16 channels and 16 pixels at a time; a pixel count that is not a multiple of 8 leaves
    # a tail to copy). Rows of 140 pixels are a chunk of 16 vectors and a part; the rotations put
    # vectors across every image edge, and a NaN theta sends a whole image down the masked path.
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        n = 4
        for (h, w), out_size in [((13, 11), (12, 13)), ((30, 26), (9, 140)), ((24, 40), (33, 35))]:
            x = rng.standard_normal((n, channels, h, w)).astype(np.float32)
            x[0, -1, 5, 6] = np.inf
            x[1, 0, 2, 3] = np.nan
            theta = random_theta(rng, n, np.float32)
            theta[2, 0, 2] = np.nan
            grad_output = rng.standard_normal((n, channels, *out_size)).astype(np.float32)
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_fused(x, theta, out_size, padding, align, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("plane_share", [16, 12])
def test_forward_from_channels_last_groups(rng, simd_level, plane_share):
    # An image whose channels-last copy would not fit in half the L2 cache is copied a group
    # of channels at a time: at most 16 channels whose copy fits in half the L2, or one block
    # of the kernels' (8 or 16) that fits in all of it, or none (the plane kernels). Planes of
    # 1/16 and 1/12 of the L2 take groups of 8 channels with AVX2, one block of 16 and the
    # plane kernels with AVX-512; 20 channels leave a partial last group.
    l2_floats = stn.build_info()["l2_cache_bytes"] // 4
    width = 128
    height = l2_floats // plane_share // width
    x = rng.standard_normal((2, 20, height, width)).astype(np.float32)
    x[1, 19, 5, 6] = np.inf
    theta = random_theta(rng, 2, np.float32)
    args = (x, theta, AFFINE, None, False, height - 3, width + 5, BILINEAR, ZEROS, False)
    assert_same_bits(_core.spatial_transform(*args), _core.spatial_transform(*args, backend="emulated"))


def test_families_through_the_public_api(rng, simd_level):
    # Every matrix family reaches the row kernels as an affine map; results equal the generic
    # bodies (the emulated launch) through the Python API too.
    x = rng.standard_normal((3, 2, 12, 14)).astype(np.float32)
    for transform, params in [("rotation", rng.uniform(-1, 1, (3, 1))),
                              ("similarity", rng.uniform(-0.5, 0.5, (3, 4)) + [1, 0, 0, 0]),
                              ("translation", rng.uniform(-0.5, 0.5, (3, 2)))]:
        params = params.astype(np.float32)
        out = stn.spatial_transform(x, params, (9, 11), transform=transform)
        family = transforms.resolve("test", transform, params, None, None)
        emulated = _core.spatial_transform(x, params, family.core_args(), None, False, 9, 11,
                                           BILINEAR, ZEROS, False, backend="emulated")
        assert_same_bits(out, emulated)


def check_grid_sample(x, grid, padding, align, grad_output):
    args = (x, grid, BILINEAR, padding, align)
    assert_same_bits(_core.grid_sample(*args), _core.grid_sample(*args, backend="emulated"))
    for input_grad in (True, False):
        back = (grad_output, x, grid, BILINEAR, padding, align, input_grad)
        assert_same_bits(_core.grid_sample_backward(*back), _core.grid_sample_backward(*back, backend="emulated"))


def affine_grid(theta, out_size):
    """A smooth grid of a random affine map, (N, Ho, Wo, 2) float32."""
    ho, wo = out_size
    ys, xs = np.meshgrid(np.linspace(-1, 1, ho), np.linspace(-1, 1, wo), indexing="ij")
    base = np.stack([xs, ys, np.ones_like(xs)], -1)  # (Ho, Wo, 3)
    return np.einsum("hwk,nik->nhwi", base, theta).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_grid_sample_path(rng, simd_level, shape):
    # grid_sample reads each pixel's point from the grid into the same kernels
    # (AffineRow::grid) for its forward, grad_grid and grad_input: smooth grids (mostly
    # interior vectors) and scattered ones (mostly masked), rows short (runs of whole rows)
    # and long, every padding.
    n, c, h, w, ho, wo = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(np.float32)
    smooth = affine_grid(random_theta(rng, n, np.float32).astype(np.float64), (ho, wo))
    scattered = rng.uniform(-1.3, 1.3, (n, ho, wo, 2)).astype(np.float32)
    for grid in (smooth, scattered):
        for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
            check_grid_sample(x, grid, padding, align, grad_output)


@pytest.mark.parametrize("threads", [1, 3])
def test_grid_sample_special_points(rng, simd_level, threads):
    # Points on the image's edges and cell boundaries, just inside and outside them, NaN,
    # +-Inf, huge and -0 coordinates, one per lane position; 12 channels (channel blocks).
    previous = stn.get_num_threads()
    stn.set_num_threads(threads)
    try:
        x = rng.standard_normal((2, 12, 9, 13)).astype(np.float32)
        x[0, 3, 4, 5] = np.inf
        special = np.array([-1, 1, -1 - 1 / 13, 1 + 1 / 9, 0, -0.0, np.nan, np.inf, -np.inf, 1e30, -1e30,
                            np.nextafter(np.float32(1), np.float32(0)), np.nextafter(np.float32(-1), np.float32(0)),
                            0.5, -0.75], np.float32)
        for ho, wo in ((7, 150), (40, 17)):
            grid = rng.uniform(-1, 1, (2, ho, wo, 2)).astype(np.float32)
            picks = rng.integers(0, special.size, grid.shape)
            use = rng.random(grid.shape) < 0.3
            grid[use] = special[picks[use]]
            grad_output = rng.standard_normal((2, 12, ho, wo)).astype(np.float32)
            grad_output[1, 2, 3, :5] = np.inf
            for padding, align in itertools.product((ZEROS, BORDER), (False, True)):
                check_grid_sample(x, grid, padding, align, grad_output)
    finally:
        stn.set_num_threads(previous)


@pytest.mark.parametrize("shared", [False, True])
def test_affine_grid_points(rng, simd_level, shared):
    # affine_grid's points come from the kernels (grid_points), rows one by one or, when
    # short, as runs of whole rows: tails, 1-pixel sides, non-finite and huge theta entries;
    # its theta gradient from the kernels' theta sums.
    theta = random_theta(rng, 4, np.float32)
    theta[1, 0, 1] = np.nan
    theta[2, 1, 2] = np.inf
    theta[3, 0, 0] = 1e30
    for height, width in ((1, 1), (7, 13), (28, 28), (5, 130), (64, 1)):
        for align in (False, True):
            params = theta[0] if shared else theta
            args = (params, AFFINE, None, shared, 4, height, width, align)
            assert_same_bits(_core.transform_grid(*args), _core.transform_grid(*args, backend="emulated"))
            # Its backward: the theta sums over each row of grad_grid (theta_partials).
            grad_grid = rng.standard_normal((4, height, width, 2)).astype(np.float32)
            grad_grid[0, 0, 0, 1] = np.inf
            back = (grad_grid, params, AFFINE, None, shared, align)
            assert_same_bits(_core.transform_grid_backward(*back),
                             _core.transform_grid_backward(*back, backend="emulated"))


def test_level_selection():
    assert _core.set_simd_level("off")
    assert _core.simd_level() == "off"
    assert stn.build_info()["simd_kernels"] == "off"
    assert not _core.set_simd_level("sse9")
    assert _core.simd_level() == "off"  # unchanged by a refused request
    assert _core.set_simd_level("best")
    assert _core.simd_level() in ("AVX-512", "AVX2", "off")


def _cpuinfo():
    """(vendor, family, flags) of the first CPU in /proc/cpuinfo; None where it is absent."""
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return None
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if "vendor_id" not in fields or "cpu family" not in fields:
        return None
    return fields["vendor_id"], int(fields["cpu family"]), set(fields.get("flags", "").split())


@pytest.mark.skipif(_cpuinfo() is None or "avx2" not in _cpuinfo()[2] or "avx2" not in LEVELS,
                    reason="needs /proc/cpuinfo and an AVX2 x86 CPU")
def test_best_level_follows_the_cpu():
    # The widest level, except AVX2 on AMD family 19h (Zen 4 halves 512-bit work).
    vendor, family, flags = _cpuinfo()
    assert _core.set_simd_level("best")
    if vendor == "AuthenticAMD" and family == 0x19:
        expected = "AVX2"
    else:
        expected = "AVX-512" if "avx512f" in flags and "avx512" in LEVELS else "AVX2"
    assert _core.simd_level() == expected
