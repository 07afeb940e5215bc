"""Bad inputs every public entry point must reject, inputs it must accept, and the rules for
non-finite and huge sample coordinates.

Rejections (python/stn/_validate.py): shape errors raise ValueError, dtype and flag-type errors
TypeError, and every message names the function and the argument and prints the shapes
involved; the tests match those parts of each message.

Non-finite coordinate rules verified here (see functional.py's module docstring):
  * a NaN coordinate reads 0 and gets a zero grid gradient, under every padding;
  * zeros padding: a point with a NaN, +-Inf or huge (+-1e30) coordinate is outside the image:
    it reads exactly 0, its grid gradient is exactly 0, and it adds nothing to grad_input;
  * border / reflection padding clamp +-Inf to the edge the infinity points at: the point reads
    exactly what a point on that edge's pixel centre reads (x = +1 with align_corners=True is
    the right edge), and the clamped coordinate's gradient is exactly 0;
  * border padding also clamps a huge finite coordinate (+-1e30) to that edge, with gradient 0;
  * whatever the coordinates, outputs and all gradients stay finite for a finite input;
  * on an axis of a single pixel the same NaN / +-Inf rules hold (with align_corners=True every
    finite coordinate, 1e30 included, maps to that one pixel, as in PyTorch; that is not tested).
"""

import itertools
import re

import numpy as np
import pytest

import stn

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("float32", "float64")

# The default, valid arguments: input (N, C, H, W), grid (N, HO, WO, 2), theta (N, 2, 3).
N, C, H, W = 2, 3, 4, 5
HO, WO = 3, 4
SIZE = (N, C, H, W)

ARRAY_ARGS = {
    "affine_grid": ("theta",),
    "affine_grid_backward": ("grad_grid",),
    "grid_sample": ("input", "grid"),
    "grid_sample_backward": ("grad_output", "input", "grid"),
    "spatial_transform": ("input", "theta"),
    "spatial_transform_backward": ("grad_output", "input", "theta"),
}
OTHER_ARGS = {
    "affine_grid": {"size": SIZE},
    "affine_grid_backward": {"size": SIZE},
    "spatial_transform": {"out_size": (HO, WO)},
    "spatial_transform_backward": {"out_size": (HO, WO)},
}
ENTRY_POINTS = tuple(ARRAY_ARGS)
SAMPLERS = ("grid_sample", "grid_sample_backward", "spatial_transform", "spatial_transform_backward")
BACKWARDS = ("grid_sample_backward", "spatial_transform_backward")
FUSED = ("spatial_transform", "spatial_transform_backward")
MULTI_ARRAY = tuple(fn for fn, args in ARRAY_ARGS.items() if len(args) > 1)
FN_ARG = [(fn, arg) for fn, args in ARRAY_ARGS.items() for arg in args]
MULTI_FN_ARG = [(fn, arg) for fn in MULTI_ARRAY for arg in ARRAY_ARGS[fn]]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Runs this file's many tiny kernels on one CPU thread: on a busy machine, waking OpenMP
    threads for a handful of pixels costs milliseconds per call. Results are documented to be
    identical for any thread count; test_nonfinite_results_do_not_depend_on_thread_count
    checks that for the non-finite cases."""
    before = stn.get_num_threads()
    stn.set_num_threads(1)
    yield
    stn.set_num_threads(before)


def _data(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return {
        "input": rng.standard_normal((N, C, H, W)).astype(dtype),
        "grid": rng.uniform(-1.2, 1.2, (N, HO, WO, 2)).astype(dtype),
        "theta": (identity + rng.uniform(-0.3, 0.3, (N, 2, 3))).astype(dtype),
        "grad_grid": rng.standard_normal((N, H, W, 2)).astype(dtype),
        "grad_output": rng.standard_normal((N, C, HO, WO)).astype(dtype),
    }


def kwargs_for(fn, dtype=np.float64, **overrides):
    data = _data(dtype)
    kwargs = {name: data[name] for name in ARRAY_ARGS[fn]}
    kwargs.update(OTHER_ARGS.get(fn, {}))
    kwargs.update(overrides)
    return kwargs


def call(fn, dtype=np.float64, **overrides):
    return getattr(stn, fn)(**kwargs_for(fn, dtype, **overrides))


def zeros(shape, dtype=np.float64):
    return np.zeros(shape, dtype)


def msg(fn, *parts):
    """Regex: 'stn.<fn>: ' followed by each part (argument names, shapes), in order."""
    return re.escape(f"stn.{fn}: ") + ".*".join(re.escape(str(p)) for p in parts)


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


# --------------------------------------------------------------------------------------------
# Sanity: the defaults are valid, so every rejection below is caused by its one bad argument.


@pytest.mark.parametrize("fn", ENTRY_POINTS)
def test_default_arguments_are_accepted(fn):
    results = as_tuple(call(fn))
    assert results and all(isinstance(r, np.ndarray) and np.isfinite(r).all() for r in results)


# --------------------------------------------------------------------------------------------
# Wrong number of dimensions.

NDIM_CASES = [
    ("grid_sample", "input", (C, H, W), "input must be 4-D (N, C, H, W)"),
    ("grid_sample", "input", (1, N, C, H, W), "input must be 4-D (N, C, H, W)"),
    ("grid_sample", "grid", (HO, WO, 2), "grid must be 4-D (N, Ho, Wo, 2)"),
    ("grid_sample", "grid", (N, 1, HO, WO, 2), "grid must be 4-D (N, Ho, Wo, 2)"),
    ("grid_sample_backward", "input", (C, H, W), "input must be 4-D (N, C, H, W)"),
    ("grid_sample_backward", "grid", (N, HO * WO, 2), "grid must be 4-D (N, Ho, Wo, 2)"),
    ("grid_sample_backward", "grad_output", (C, HO, WO), "grad_output must have the forward output's shape (2, 3, 3, 4)"),
    ("grid_sample_backward", "grad_output", (N, C, HO, WO, 1), "grad_output must have the forward output's shape (2, 3, 3, 4)"),
    ("spatial_transform", "input", (C, H, W), "input must be 4-D (N, C, H, W)"),
    ("spatial_transform", "input", (N, C, H, W, 1), "input must be 4-D (N, C, H, W)"),
    ("spatial_transform_backward", "input", (H, W), "input must be 4-D (N, C, H, W)"),
    ("spatial_transform_backward", "grad_output", (N * C, HO, WO), "grad_output must have the forward output's shape (2, 3, 3, 4)"),
    ("affine_grid", "theta", (6,), "theta must be (N, 2, 3) or (2, 3)"),
    ("affine_grid", "theta", (1, N, 2, 3), "theta must be (N, 2, 3) or (2, 3)"),
    ("spatial_transform", "theta", (N * 6,), "theta must be (N, 2, 3) or (2, 3)"),
    ("spatial_transform_backward", "theta", (1, N, 2, 3), "theta must be (N, 2, 3) or (2, 3)"),
    ("affine_grid_backward", "grad_grid", (H, W, 2), "grad_grid must be (N, H, W, 2) = (2, 4, 5, 2) for size (2, 3, 4, 5)"),
    ("affine_grid_backward", "grad_grid", (N, H, W, 2, 1), "grad_grid must be (N, H, W, 2) = (2, 4, 5, 2) for size (2, 3, 4, 5)"),
]


@pytest.mark.parametrize("fn,arg,shape,text", NDIM_CASES)
def test_wrong_ndim_is_rejected(fn, arg, shape, text):
    with pytest.raises(ValueError, match=msg(fn, text, shape)):
        call(fn, **{arg: zeros(shape)})


# --------------------------------------------------------------------------------------------
# Batch mismatches.


@pytest.mark.parametrize("fn", ["grid_sample", "grid_sample_backward"])
@pytest.mark.parametrize("grid_batch", [1, 3])
def test_grid_batch_must_match_input(fn, grid_batch):
    grid = zeros((grid_batch, HO, WO, 2))
    with pytest.raises(ValueError, match=msg(fn, "grid batch must equal input batch",
                                             (N, C, H, W), (grid_batch, HO, WO, 2))):
        call(fn, grid=grid)


@pytest.mark.parametrize("fn", ["affine_grid", "spatial_transform", "spatial_transform_backward"])
@pytest.mark.parametrize("theta_batch", [1, 3])
def test_theta_batch_must_match(fn, theta_batch):
    theta = zeros((theta_batch, 2, 3))
    source = "size[0]" if fn == "affine_grid" else "the input batch"
    with pytest.raises(ValueError, match=msg(fn, f"theta batch {theta_batch} must equal {source} {N}",
                                             (theta_batch, 2, 3))):
        call(fn, theta=theta)


@pytest.mark.parametrize("batch", [1, 3])
def test_affine_grid_backward_batch_must_match_size(batch):
    fn = "affine_grid_backward"
    with pytest.raises(ValueError, match=msg(fn, "grad_grid must be (N, H, W, 2)", (N, H, W, 2),
                                             SIZE, (batch, H, W, 2))):
        call(fn, grad_grid=zeros((batch, H, W, 2)))


# --------------------------------------------------------------------------------------------
# Grid / grad_grid last dimension, theta shape.


@pytest.mark.parametrize("fn", ["grid_sample", "grid_sample_backward"])
@pytest.mark.parametrize("last", [1, 3, 6])
def test_grid_last_dimension_must_be_2(fn, last):
    shape = (N, HO, WO, last)
    with pytest.raises(ValueError, match=msg(fn, "grid's last dimension must be 2", shape)):
        call(fn, grid=zeros(shape))


@pytest.mark.parametrize("last", [1, 3])
def test_grad_grid_last_dimension_must_be_2(last):
    fn = "affine_grid_backward"
    shape = (N, H, W, last)
    with pytest.raises(ValueError, match=msg(fn, "grad_grid must be (N, H, W, 2)", shape)):
        call(fn, grad_grid=zeros(shape))


BAD_THETA_SHAPES = [(3, 2), (2, 2), (3, 3), (2, 4), (N, 3, 2), (N, 2, 2), (N, 3, 3), (N, 6), (N, 2, 3, 1), (N, 1, 2, 3)]


@pytest.mark.parametrize("fn", ["affine_grid", "spatial_transform", "spatial_transform_backward"])
@pytest.mark.parametrize("shape", BAD_THETA_SHAPES, ids=str)
def test_theta_must_be_n23_or_23(fn, shape):
    with pytest.raises(ValueError, match=msg(fn, "theta must be (N, 2, 3) or (2, 3), got shape", shape)):
        call(fn, theta=zeros(shape))


# --------------------------------------------------------------------------------------------
# Zero-size and negative sizes, empty arrays.


@pytest.mark.parametrize("fn", ["affine_grid", "affine_grid_backward"])
@pytest.mark.parametrize("axis", range(4))
@pytest.mark.parametrize("bad", [0, -1, -7])
def test_size_entries_must_be_positive(fn, axis, bad):
    size = list(SIZE)
    size[axis] = bad
    with pytest.raises(ValueError, match=msg(fn, "every entry of size (N, C, H, W) must be positive",
                                             tuple(size))):
        call(fn, size=tuple(size))


@pytest.mark.parametrize("fn", FUSED)
@pytest.mark.parametrize("out_size", [(0, WO), (HO, 0), (0, 0), (-1, WO), (HO, -2)])
def test_out_size_entries_must_be_positive(fn, out_size):
    with pytest.raises(ValueError, match=msg(fn, "every entry of out_size (Ho, Wo) must be positive",
                                             out_size)):
        call(fn, out_size=out_size)


@pytest.mark.parametrize("fn,name,value,error,text", [
    ("affine_grid", "size", (N, C, H), ValueError, "size must be 4 ints (N, C, H, W)"),
    ("affine_grid", "size", (N, C, H, W, 1), ValueError, "size must be 4 ints (N, C, H, W)"),
    ("affine_grid", "size", (N, C, float(H), W), ValueError, "size must be 4 ints (N, C, H, W)"),
    ("affine_grid", "size", (True, C, H, W), ValueError, "size must be 4 ints (N, C, H, W)"),
    ("affine_grid", "size", 5, TypeError, "size must be a sequence of 4 ints (N, C, H, W)"),
    ("affine_grid_backward", "size", (N, C, H), ValueError, "size must be 4 ints (N, C, H, W)"),
    ("affine_grid_backward", "size", None, TypeError, "size must be a sequence of 4 ints (N, C, H, W)"),
    ("spatial_transform", "out_size", (HO,), ValueError, "out_size must be 2 ints (Ho, Wo)"),
    ("spatial_transform", "out_size", (HO, 2.5), ValueError, "out_size must be 2 ints (Ho, Wo)"),
    ("spatial_transform", "out_size", 3, TypeError, "out_size must be a sequence of 2 ints (Ho, Wo)"),
    ("spatial_transform_backward", "out_size", (HO, WO, 1), ValueError, "out_size must be 2 ints (Ho, Wo)"),
])
def test_size_must_be_a_sequence_of_ints(fn, name, value, error, text):
    with pytest.raises(error, match=msg(fn, text, repr(value))):
        call(fn, **{name: value})


EMPTY_INPUTS = [(0, C, H, W), (N, 0, H, W), (N, C, 0, W), (N, C, H, 0)]


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("shape", EMPTY_INPUTS, ids=str)
def test_empty_input_is_rejected(fn, shape):
    overrides = {"input": zeros(shape)}
    if "grid" in ARRAY_ARGS[fn]:  # keep the batches equal, so emptiness is the only fault
        overrides["grid"] = zeros((shape[0], HO, WO, 2))
    with pytest.raises(ValueError, match=msg(fn, "input must not be empty", shape)):
        call(fn, **overrides)


@pytest.mark.parametrize("fn", ["grid_sample", "grid_sample_backward"])
@pytest.mark.parametrize("shape", [(N, 0, WO, 2), (N, HO, 0, 2)], ids=str)
def test_empty_grid_is_rejected(fn, shape):
    with pytest.raises(ValueError, match=msg(fn, "grid must not be empty", shape)):
        call(fn, grid=zeros(shape))


def test_empty_theta_is_rejected():
    fn = "affine_grid"
    with pytest.raises(ValueError, match=msg(fn, "theta batch 0 must equal size[0] 2", (0, 2, 3))):
        call(fn, theta=zeros((0, 2, 3)))


@pytest.mark.parametrize("shape", [(0, H, W, 2), (N, 0, W, 2), (N, H, 0, 2)], ids=str)
def test_empty_grad_grid_is_rejected(shape):
    fn = "affine_grid_backward"
    with pytest.raises(ValueError, match=msg(fn, "grad_grid must be (N, H, W, 2)", (N, H, W, 2), shape)):
        call(fn, grad_grid=zeros(shape))


@pytest.mark.parametrize("fn", BACKWARDS)
def test_empty_grad_output_is_rejected(fn):
    shape = (N, C, 0, WO)
    with pytest.raises(ValueError, match=msg(fn, "grad_output must have the forward output's shape",
                                             (N, C, HO, WO), shape)):
        call(fn, grad_output=zeros(shape))


# --------------------------------------------------------------------------------------------
# Unknown mode / padding names.

MODE_LIST = "['bicubic', 'bilinear', 'nearest']"
PADDING_LIST = "['border', 'reflection', 'zeros']"


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("mode", ["linear", "Bilinear", "BICUBIC", "nearest ", "", "cubic", None, 0, 1.0])
def test_unknown_mode_is_rejected(fn, mode):
    with pytest.raises(ValueError, match=msg(fn, "mode must be one of " + MODE_LIST, "got " + repr(mode))):
        call(fn, mode=mode)


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("padding", ["zero", "Zeros", "reflect", "border ", "", "constant", None, 1])
def test_unknown_padding_is_rejected(fn, padding):
    with pytest.raises(ValueError, match=msg(fn, "padding_mode must be one of " + PADDING_LIST,
                                             "got " + repr(padding))):
        call(fn, padding_mode=padding)


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("name", ["mode", "padding_mode"])
def test_unhashable_mode_or_padding_names_the_argument(fn, name):
    # A list is no mode name either; the error must still say which argument is wrong.
    with pytest.raises((ValueError, TypeError), match=msg(fn, name)):
        call(fn, **{name: ["bilinear"]})


# --------------------------------------------------------------------------------------------
# grad_output must have the forward output's shape.


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("shape", [(N, C, WO, HO), (N, C + 1, HO, WO), (N + 1, C, HO, WO), (1, C, HO, WO),
                                   (N, C, HO, WO + 1), (N, C, H, W)], ids=str)
def test_grad_output_shape_must_match_forward_output(fn, shape):
    with pytest.raises(ValueError, match=msg(fn, "grad_output must have the forward output's shape",
                                             (N, C, HO, WO), "got", shape)):
        call(fn, grad_output=zeros(shape))


def test_grad_output_shape_follows_default_out_size():
    # out_size=None means (H, W): a grad_output of an explicit out_size no longer fits.
    fn = "spatial_transform_backward"
    with pytest.raises(ValueError, match=msg(fn, "grad_output must have the forward output's shape",
                                             (N, C, H, W), "got", (N, C, HO, WO))):
        call(fn, out_size=None)


# --------------------------------------------------------------------------------------------
# dtypes: integers (and other non-float32/64 dtypes) and mixed precisions.


@pytest.mark.parametrize("fn,arg", FN_ARG)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.complex64])
def test_non_float_dtypes_are_rejected(fn, arg, dtype):
    good = kwargs_for(fn)[arg]
    bad = good.astype(dtype)
    with pytest.raises(TypeError, match=msg(fn, f"{arg} must be float32 or float64, got dtype {np.dtype(dtype)}")):
        call(fn, **{arg: bad})


@pytest.mark.parametrize("fn,arg", FN_ARG)
def test_integer_nested_lists_are_rejected(fn, arg):
    as_list = np.zeros_like(kwargs_for(fn)[arg], dtype=np.int64).tolist()
    with pytest.raises(TypeError, match=msg(fn, f"{arg} must be float32 or float64, got dtype int64")):
        call(fn, **{arg: as_list})


@pytest.mark.parametrize("fn,arg", MULTI_FN_ARG)
@pytest.mark.parametrize("odd,rest", [(np.float32, np.float64), (np.float64, np.float32)], ids=["f32_in_f64", "f64_in_f32"])
def test_mixed_precisions_are_rejected(fn, arg, odd, rest):
    kwargs = kwargs_for(fn, rest)
    kwargs[arg] = kwargs[arg].astype(odd)
    listing = ", ".join(f"{name} {kwargs[name].dtype}" for name in ARRAY_ARGS[fn])
    assert f"{arg} {np.dtype(odd)}" in listing
    with pytest.raises(TypeError, match=msg(fn, "all arrays must have the same dtype, got " + listing)):
        getattr(stn, fn)(**kwargs)


# --------------------------------------------------------------------------------------------
# Flags must be bools.

NOT_BOOLS = [1, 0, None, "True", 1.0, np.int64(1), [True]]
FLAG_CASES = [(fn, "align_corners") for fn in ENTRY_POINTS] + [
    (fn, flag) for fn in BACKWARDS for flag in ("input_grad", "deterministic")]


@pytest.mark.parametrize("fn,flag", FLAG_CASES)
@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_flags_must_be_bools(fn, flag, value):
    with pytest.raises(TypeError, match=msg(fn, f"{flag} must be a bool, got {type(value).__name__}")):
        call(fn, **{flag: value})


@pytest.mark.parametrize("fn,flag", FLAG_CASES)
def test_numpy_bools_are_accepted_as_flags(fn, flag):
    for value in (np.True_, np.False_):
        expected = as_tuple(call(fn, **{flag: bool(value)}))
        got = as_tuple(call(fn, **{flag: value}))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert (g is None and e is None) or np.array_equal(g, e)


# --------------------------------------------------------------------------------------------
# set_num_threads.


@pytest.fixture
def restore_threads():
    before = stn.get_num_threads()
    yield before
    stn.set_num_threads(before)


@pytest.mark.parametrize("n", [0, -1, -(2**31), np.int64(0)])
def test_set_num_threads_rejects_non_positive(restore_threads, n):
    with pytest.raises(ValueError, match=msg("set_num_threads", "n must be an int", "got " + repr(n))):
        stn.set_num_threads(n)
    assert stn.get_num_threads() == restore_threads


@pytest.mark.parametrize("n", [1.5, 2.0, True, False, "2", None, np.float64(2.0), [2]], ids=repr)
def test_set_num_threads_rejects_non_ints(restore_threads, n):
    with pytest.raises((TypeError, ValueError), match=msg("set_num_threads", "n must be an int", "got " + repr(n))):
        stn.set_num_threads(n)
    assert stn.get_num_threads() == restore_threads


def test_set_num_threads_rejects_values_beyond_c_int(restore_threads):
    # 2**40 threads cannot be stored (the core takes a C int); the rejection must still come
    # from stn and say what n must be, not be pybind11's "incompatible function arguments".
    with pytest.raises((TypeError, ValueError), match=msg("set_num_threads", "n must be an int", "got " + repr(2**40))):
        stn.set_num_threads(2**40)
    assert stn.get_num_threads() == restore_threads


def test_set_num_threads_accepts_positive_ints(restore_threads):
    expected = stn.grid_sample(**kwargs_for("grid_sample"))
    for n in (1, np.int32(2), 3):
        stn.set_num_threads(n)
        assert stn.get_num_threads() == int(n)
        assert np.array_equal(stn.grid_sample(**kwargs_for("grid_sample")), expected)


# --------------------------------------------------------------------------------------------
# CUDA-like objects: on a machine without a GPU they raise RuntimeError; mixed with host
# arrays they raise ValueError (checked before anything needs a GPU).


class FakeCudaArray:
    """Claims to live on a CUDA device, through __cuda_array_interface__."""

    def __init__(self, shape, typestr="<f8"):
        self.shape = tuple(shape)
        self.typestr = typestr

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.typestr, "data": (0, False), "version": 3,
                "strides": None}


class FakeDlpackCudaArray:
    """Claims to live on a CUDA device, through __dlpack_device__ (kDLCUDA = 2)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None):
        raise AssertionError("must not be read without a GPU")


@pytest.mark.skipif(stn.cuda_available(), reason="a CUDA GPU is visible: CUDA arrays are accepted")
@pytest.mark.parametrize("fn", ENTRY_POINTS)
@pytest.mark.parametrize("kind", [FakeCudaArray, FakeDlpackCudaArray])
def test_cuda_arrays_without_gpu_raise_runtime_error(fn, kind):
    kwargs = kwargs_for(fn)
    for arg in ARRAY_ARGS[fn]:
        kwargs[arg] = kind(kwargs[arg].shape)
    with pytest.raises(RuntimeError, match=msg(fn, "got a CUDA array")):
        getattr(stn, fn)(**kwargs)


@pytest.mark.parametrize("fn,arg", MULTI_FN_ARG)
@pytest.mark.parametrize("cuda_side", ["one_on_cuda", "one_on_host"])
def test_mixing_cuda_and_host_arrays_is_rejected(fn, arg, cuda_side):
    kwargs = kwargs_for(fn)
    on_cuda = {a: (a == arg) == (cuda_side == "one_on_cuda") for a in ARRAY_ARGS[fn]}
    for a, cuda in on_cuda.items():
        if cuda:
            kwargs[a] = FakeCudaArray(kwargs[a].shape)
    where = ", ".join(f"{a} on {'CUDA' if cuda else 'host'}" for a, cuda in on_cuda.items())
    with pytest.raises(ValueError, match=msg(fn, "arrays must all be on the host or all on CUDA; got " + where)):
        getattr(stn, fn)(**kwargs)


# --------------------------------------------------------------------------------------------
# Accepted inputs: non-contiguous layouts, dtype preservation, shared theta.

VIEW_KINDS = ("transposed", "stepped", "negative_strides", "fortran")


def non_contiguous(array, kind):
    """A non-C-contiguous view with exactly `array`'s values."""
    if kind == "transposed":  # a view of a transposed copy, with an extra permuted axis order
        view = np.ascontiguousarray(np.moveaxis(array, 0, -1)).transpose(
            (array.ndim - 1,) + tuple(range(array.ndim - 1)))
    elif kind == "stepped":
        big = np.full(tuple(2 * s + 1 for s in array.shape), np.nan, array.dtype)
        every = tuple(slice(1, None, 2) for _ in array.shape)
        big[every] = array
        view = big[every]
    elif kind == "negative_strides":
        flip = tuple(slice(None, None, -1) for _ in array.shape)
        view = array[flip].copy()[flip]
    else:
        view = np.asfortranarray(array)
    assert np.array_equal(view, array) and not view.flags.c_contiguous
    return view


def assert_same_results(got, expected):
    got, expected = as_tuple(got), as_tuple(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("fn", ENTRY_POINTS)
@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_non_contiguous_inputs_match_contiguous_copies(fn, kind, dtype):
    options = {} if fn.startswith("affine") else {"mode": "bicubic", "padding_mode": "reflection"}
    kwargs = kwargs_for(fn, dtype, align_corners=True, **options)
    expected = getattr(stn, fn)(**kwargs)
    for arg in ARRAY_ARGS[fn]:  # one argument at a time, then all of them
        single = dict(kwargs, **{arg: non_contiguous(kwargs[arg], kind)})
        assert_same_results(getattr(stn, fn)(**single), expected)
    every = dict(kwargs, **{arg: non_contiguous(kwargs[arg], kind) for arg in ARRAY_ARGS[fn]})
    assert_same_results(getattr(stn, fn)(**every), expected)


@pytest.mark.parametrize("fn", ["affine_grid", "spatial_transform", "spatial_transform_backward"])
def test_broadcast_theta_view_matches_copy(fn):
    theta = _data()["theta"][:1]
    view = np.broadcast_to(theta, (N, 2, 3))  # stride 0 along the batch, read-only
    assert view.strides[0] == 0
    assert_same_results(call(fn, theta=view), call(fn, theta=np.ascontiguousarray(view)))


@pytest.mark.parametrize("fn", ENTRY_POINTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_output_dtype_follows_input_dtype(fn, dtype):
    expected_shapes = {
        "affine_grid": [(N, H, W, 2)],
        "affine_grid_backward": [(N, 2, 3)],
        "grid_sample": [(N, C, HO, WO)],
        "grid_sample_backward": [(N, C, H, W), (N, HO, WO, 2)],
        "spatial_transform": [(N, C, HO, WO)],
        "spatial_transform_backward": [(N, C, H, W), (N, 2, 3)],
    }[fn]
    results = as_tuple(call(fn, dtype))
    assert [r.shape for r in results] == expected_shapes
    assert all(r.dtype == np.dtype(dtype) and r.flags.c_contiguous for r in results)
    if fn in BACKWARDS:
        grad_input, other = call(fn, dtype, input_grad=False)
        assert grad_input is None and other.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(other, results[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_shared_theta_equals_repeated_theta(mode, padding, align_corners, dtype):
    data = _data(dtype, seed=3)
    input, grad_output = data["input"], data["grad_output"]
    shared = data["theta"][0]
    repeated = np.repeat(shared[None], N, axis=0)
    options = dict(mode=mode, padding_mode=padding, align_corners=align_corners)

    np.testing.assert_array_equal(stn.affine_grid(shared, SIZE, align_corners),
                                  stn.affine_grid(repeated, SIZE, align_corners))
    out_shared = stn.spatial_transform(input, shared, (HO, WO), **options)
    np.testing.assert_array_equal(out_shared, stn.spatial_transform(input, repeated, (HO, WO), **options))

    gin_shared, gtheta_shared = stn.spatial_transform_backward(grad_output, input, shared, (HO, WO), **options)
    gin_rep, gtheta_rep = stn.spatial_transform_backward(grad_output, input, repeated, (HO, WO), **options)
    assert gtheta_shared.shape == (2, 3) and gtheta_rep.shape == (N, 2, 3)
    assert gtheta_shared.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(gin_shared, gin_rep)
    # grad_theta of a shared theta is the batch sum of the per-image ones.
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    total = gtheta_rep.astype(np.float64).sum(axis=0)
    scale = np.abs(gtheta_rep.astype(np.float64)).sum(axis=0)  # guards entries that cancel
    np.testing.assert_allclose(gtheta_shared, total, rtol=rtol, atol=rtol * scale.max())


# --------------------------------------------------------------------------------------------
# Non-finite and huge coordinates.

NAN, INF = np.nan, np.inf
BAD_VALUES = (NAN, INF, -INF, 1e30, -1e30)
NORMAL_VALUES = (0.3, -0.7)
HUGE = 1e20  # |coordinate| above this (or non-finite) counts as a bad point


def bad_points(grid):
    """(N, Ho, Wo) mask of points with a non-finite or huge coordinate."""
    with np.errstate(invalid="ignore"):
        return (~np.isfinite(grid) | (np.abs(grid) > HUGE)).any(axis=-1)


def points(array):
    """(N, C, Ho, Wo) -> (N, Ho, Wo, C) view, to index with a point mask."""
    return array.transpose(0, 2, 3, 1)


def silence(grad_output, mask):
    """grad_output with the points in `mask` set to zero."""
    quiet = grad_output.copy()
    points(quiet)[mask] = 0
    return quiet


def nonfinite_grid(rng, dtype, n=2, ho=5, wo=6):
    """Every (x, y) pair of bad and normal values with at least one bad, at random points,
    between normal random points."""
    values = BAD_VALUES + NORMAL_VALUES
    pairs = [(x, y) for x in values for y in values if not (x in NORMAL_VALUES and y in NORMAL_VALUES)]
    grid = rng.uniform(-1.3, 1.3, (n * ho * wo, 2))
    where = rng.permutation(n * ho * wo)[: len(pairs)]
    grid[where] = pairs
    return grid.reshape(n, ho, wo, 2).astype(dtype)


def edge_coordinate(sign, size, mode, align_corners):
    """A finite normalized coordinate whose sample reads the edge pixel centre on `sign`'s
    side (for border / reflection padding). Exact except for bicubic without align_corners."""
    if align_corners or mode != "bicubic":
        return sign * 1.0  # the edge pixel centre, or its outer edge clamped to the centre
    return sign * (1.0 - 1.0 / size)


def assert_edge_equal(actual, expected, mode, align_corners, dtype):
    if align_corners or mode != "bicubic":
        np.testing.assert_array_equal(actual, expected)
    else:  # the edge coordinate 1 - 1/size is itself rounded
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_grid_sample_nonfinite_coordinates(mode, padding, align_corners, dtype):
    rng = np.random.default_rng(11)
    n, c, h, w = 2, 3, 4, 5
    input = rng.standard_normal((n, c, h, w)).astype(dtype)
    grid = nonfinite_grid(rng, dtype, n)
    grad_output = rng.standard_normal((n, c) + grid.shape[1:3]).astype(dtype)
    options = dict(mode=mode, padding_mode=padding, align_corners=align_corners)

    out = stn.grid_sample(input, grid, **options)
    grad_input, grad_grid = stn.grid_sample_backward(grad_output, input, grid, **options)
    for array in (out, grad_input, grad_grid):
        assert array.dtype == np.dtype(dtype)
        assert np.isfinite(array).all()

    bad = bad_points(grid)
    nan = np.isnan(grid).any(axis=-1)
    assert bad.sum() == 45 and nan.sum() == 13  # the pairs nonfinite_grid placed

    # Points are independent: the finite points read and differentiate as if the bad ones
    # were not there.
    clean = grid.copy()
    clean[bad] = 0
    out_clean = stn.grid_sample(input, clean, **options)
    _, grad_grid_clean = stn.grid_sample_backward(grad_output, input, clean, **options)
    np.testing.assert_array_equal(points(out)[~bad], points(out_clean)[~bad])
    np.testing.assert_array_equal(grad_grid[~bad], grad_grid_clean[~bad])

    # NaN reads 0, has no grid gradient and no share of grad_input, under every padding.
    assert (points(out)[nan] == 0).all()
    assert (grad_grid[nan] == 0).all()
    np.testing.assert_array_equal(
        grad_input, stn.grid_sample_backward(silence(grad_output, nan), input, grid, **options)[0])

    if padding == "zeros":
        # Outside the image: output 0, grid gradient 0, nothing scattered into grad_input.
        assert (points(out)[bad] == 0).all()
        assert (grad_grid[bad] == 0).all()
        np.testing.assert_array_equal(
            grad_input, stn.grid_sample_backward(silence(grad_output, bad), input, grid, **options)[0])
        return

    # Border / reflection: +-Inf (and, under border, +-1e30) clamp to the edge they point at.
    clamped = np.isinf(grid)
    if padding == "border":
        with np.errstate(invalid="ignore"):
            clamped |= np.abs(grid) > HUGE
    edged = grid.copy()
    for axis, size in ((0, w), (1, h)):
        for sign in (1.0, -1.0):
            edged[..., axis][clamped[..., axis] & (np.sign(grid[..., axis]) == sign)] = \
                edge_coordinate(sign, size, mode, align_corners)
    out_edged = stn.grid_sample(input, edged, **options)
    selected = clamped.any(axis=-1) & ~nan
    assert selected.sum() >= 8
    assert_edge_equal(points(out)[selected], points(out_edged)[selected], mode, align_corners, dtype)
    # A clamped coordinate has derivative 0.
    assert (grad_grid[clamped & ~nan[..., None]] == 0).all()


def test_nonfinite_results_do_not_depend_on_thread_count(restore_threads):
    rng = np.random.default_rng(29)
    input64 = rng.standard_normal((2, 2, 6, 7))
    grid64 = nonfinite_grid(rng, np.float64, 2)
    grad_output64 = rng.standard_normal((2, 2) + grid64.shape[1:3])
    for dtype, mode, padding, align_corners in itertools.product(DTYPES, MODES, PADDINGS, (False, True)):
        args = [a.astype(dtype) for a in (grad_output64, input64, grid64)]
        results = []
        for threads in (1, 3):
            stn.set_num_threads(threads)
            results.append((stn.grid_sample(*args[1:], mode, padding, align_corners),)
                           + stn.grid_sample_backward(*args, mode, padding, align_corners))
        for single, multi in zip(*results):
            np.testing.assert_array_equal(multi, single, err_msg=f"{mode} {padding} {align_corners}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode", MODES)
def test_border_plus_inf_reads_like_right_edge_with_align_corners(mode, dtype):
    # The rule, stated on its own: with border padding and align_corners=True, x = +Inf reads
    # exactly what x = +1 (the centre of the rightmost column) reads; likewise y = +Inf / +1,
    # and -Inf / -1.
    rng = np.random.default_rng(5)
    input = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    grid = rng.uniform(-1, 1, (2, 3, 4, 2)).astype(dtype)
    for axis, value, edge in [(0, INF, 1.0), (1, INF, 1.0), (0, -INF, -1.0), (1, -INF, -1.0)]:
        infinite, finite = grid.copy(), grid.copy()
        infinite[..., axis] = value
        finite[..., axis] = edge
        out = stn.grid_sample(input, infinite, mode, "border", True)
        np.testing.assert_array_equal(out, stn.grid_sample(input, finite, mode, "border", True))
        assert np.isfinite(out).all() and (out != 0).any()


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
def test_nonfinite_rules_on_single_pixel_axis(padding, align_corners):
    """A 1-pixel-wide (or -high) input: the documented rules must hold there too. With
    align_corners=True every finite coordinate on that axis maps to pixel 0, but NaN must still
    read 0 and +-Inf must still read the edge pixel (border / reflection) or 0 (zeros)."""
    problems = []
    for dtype, mode, (h, w) in itertools.product(DTYPES, MODES, [(3, 1), (1, 3), (1, 1)]):
        input = np.repeat((np.arange(h * w) + 1.0).reshape(1, 1, h, w), 2, axis=1).astype(dtype)
        for axis in [a for a, size in ((0, w), (1, h)) if size == 1]:
            grid = np.zeros((1, 1, 4, 2))  # +Inf, -Inf, NaN, and the centre (0, 0) last
            grid[0, 0, :3, axis] = [INF, -INF, NAN]
            grid = grid.astype(dtype)
            # Channel 0 back-propagates ones everywhere, channel 1 only at the NaN point.
            grad_output = np.zeros((1, 2, 1, 4), dtype)
            grad_output[0, 0] = 1
            grad_output[0, 1, 0, 2] = 1
            out = stn.grid_sample(input, grid, mode, padding, align_corners)[0, 0, 0]
            grad_input, grad_grid = stn.grid_sample_backward(
                grad_output, input, grid, mode, padding, align_corners)
            # Along a 1-pixel axis the edge pixel is pixel 0, which the centre point reads.
            want_inf = 0.0 if padding == "zeros" else out[3]
            where = f"{mode} {np.dtype(dtype).name} input {h}x{w} axis {'xy'[axis]}"
            if not (out[0] == want_inf and out[1] == want_inf):
                problems.append(f"{where}: +Inf read {out[0]}, -Inf read {out[1]}, expected {want_inf}")
            if out[2] != 0:
                problems.append(f"{where}: NaN read {out[2]}, expected 0")
            if not (np.isfinite(grad_input).all() and np.isfinite(grad_grid).all()):
                problems.append(f"{where}: non-finite gradient")
            if grad_grid[0, 0, 2].any():
                problems.append(f"{where}: NaN point has grid gradient {grad_grid[0, 0, 2]}")
            if grad_input[0, 1].any():
                problems.append(f"{where}: NaN point scatters {grad_input[0, 1].ravel()} into grad_input")
    assert not problems, "\n".join(problems)


BASE_THETA = np.array([[0.9, -0.2, 0.1], [0.25, 1.1, -0.05]])


def nonfinite_thetas(dtype):
    """(31, 2, 3): image 0 keeps a normal theta; image 1 + 6 * v + p has BAD_VALUES[v] at
    entry p, and also the next bad value at entry p + 3 (mod 6) when p is odd."""
    thetas = [BASE_THETA]
    for v, value in enumerate(BAD_VALUES):
        for position in range(6):
            theta = BASE_THETA.copy()
            theta.flat[position] = value
            if position % 2:
                theta.flat[(position + 3) % 6] = BAD_VALUES[(v + 1) % len(BAD_VALUES)]
            thetas.append(theta)
    return np.array(thetas).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_spatial_transform_nonfinite_theta(mode, padding, align_corners, dtype):
    rng = np.random.default_rng(17)
    theta = nonfinite_thetas(dtype)
    n, c, h, w, ho, wo = len(theta), 2, 4, 5, 3, 4  # odd Ho: a zero base coordinate gives Inf * 0 = NaN
    input = rng.standard_normal((n, c, h, w)).astype(dtype)
    grad_output = rng.standard_normal((n, c, ho, wo)).astype(dtype)
    options = dict(mode=mode, padding_mode=padding, align_corners=align_corners)

    out = stn.spatial_transform(input, theta, (ho, wo), **options)
    grad_input, grad_theta = stn.spatial_transform_backward(grad_output, input, theta, (ho, wo), **options)
    for array in (out, grad_input, grad_theta):
        assert array.dtype == np.dtype(dtype)
        assert np.isfinite(array).all()

    # The fused path reads exactly what affine_grid + grid_sample read, and its grad_theta is
    # affine_grid_backward of grid_sample_backward's grad_grid.
    grid = stn.affine_grid(theta, (n, c, ho, wo), align_corners)
    np.testing.assert_array_equal(out, stn.grid_sample(input, grid, **options))
    _, grad_grid = stn.grid_sample_backward(grad_output, input, grid, **options)
    unfused = stn.affine_grid_backward(grad_grid, (n, c, ho, wo), align_corners)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grad_theta, unfused, rtol=tol, atol=tol)

    bad = bad_points(grid)
    nan = np.isnan(grid).any(axis=-1)
    assert not bad[0].any() and bad[1:].any(axis=(1, 2)).all()  # every bad theta has bad points
    assert nan.any() and (bad & ~nan).any()
    assert (points(out)[nan] == 0).all()
    silenced = nan
    if padding == "zeros":
        assert (points(out)[bad] == 0).all()
        silenced = bad
    quiet_input, quiet_theta = stn.spatial_transform_backward(
        silence(grad_output, silenced), input, theta, (ho, wo), **options)
    np.testing.assert_array_equal(grad_input, quiet_input)
    np.testing.assert_array_equal(grad_theta, quiet_theta)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_shared_nonfinite_theta_equals_repeated(dtype):
    rng = np.random.default_rng(23)
    input = rng.standard_normal((2, 2, 4, 5)).astype(dtype)
    grad_output = rng.standard_normal((2, 2, 3, 4)).astype(dtype)
    options = list(itertools.product(MODES, PADDINGS))
    for i, shared in enumerate(nonfinite_thetas(dtype)[1:]):
        mode, padding = options[i % len(options)]
        repeated = np.repeat(shared[None], 2, axis=0)
        out = stn.spatial_transform(input, shared, (3, 4), mode, padding)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, stn.spatial_transform(input, repeated, (3, 4), mode, padding))
        grad_input, grad_theta = stn.spatial_transform_backward(grad_output, input, shared, (3, 4), mode, padding)
        assert grad_theta.shape == (2, 3) and np.isfinite(grad_theta).all() and np.isfinite(grad_input).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_huge_coordinates_on_a_wide_input(mode, padding, align_corners, dtype):
    # 70000 columns: pixel coordinates far past int32 once multiplied out; nothing may wrap.
    width = 70000
    input = np.linspace(1.0, 2.0, width).reshape(1, 1, 1, width).astype(dtype)
    xs = np.array([1e30, -1e30, INF, -INF, NAN, 1e9, -1e9, 1e15, -1e15, 3e4, -3e4,
                   np.finfo(dtype).max, -np.finfo(dtype).max, 0.999999, -0.999999])
    grid = np.zeros((1, 1, len(xs), 2))
    grid[0, 0, :, 0] = xs
    grid = grid.astype(dtype)
    options = dict(mode=mode, padding_mode=padding, align_corners=align_corners)
    out = stn.grid_sample(input, grid, **options)[0, 0, 0]
    grad_input, grad_grid = stn.grid_sample_backward(np.ones((1, 1, 1, len(xs)), dtype), input, grid, **options)
    assert np.isfinite(out).all() and np.isfinite(grad_input).all() and np.isfinite(grad_grid).all()
    outside = np.abs(xs) > 2  # everything but NaN and the +-0.999999 points
    if padding == "zeros":
        assert (out[outside] == 0).all() and (grad_grid[0, 0, outside] == 0).all()
        assert (out[:-2] == 0).all() and (out[-2:] != 0).all()
        # Only the two in-range points scatter into grad_input.
        quiet = np.zeros((1, 1, 1, len(xs)), dtype)
        quiet[..., -2:] = 1
        np.testing.assert_array_equal(
            grad_input, stn.grid_sample_backward(quiet, input, grid, **options)[0])
    elif padding == "border":
        # Any huge coordinate, finite or not, reads the edge column exactly.
        assert (out[outside & (xs > 0)] == input[0, 0, 0, -1]).all()
        assert (out[outside & (xs < 0)] == input[0, 0, 0, 0]).all()
        assert (grad_grid[0, 0, outside, 0] == 0).all()
    else:
        assert (out[np.isinf(xs)] == input[0, 0, 0, [-1, 0]]).all()
        assert ((out[outside] > 0.9) & (out[outside] < 2.1)).all()  # a reflected read of [1, 2]
    assert out[4] == 0  # NaN


# --------------------------------------------------------------------------------------------
# Arrays numpy can hold but the kernels cannot read as they are.


def test_big_endian_arrays_are_converted_not_rejected():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    grid = np.random.default_rng(1).uniform(-1, 1, (1, 3, 3, 2))
    expected = stn.grid_sample(x, grid)
    got = stn.grid_sample(x.astype(">f8"), grid.astype(">f8"))
    assert got.dtype == np.float64 and np.array_equal(got, expected)


def test_masked_arrays_are_rejected_naming_the_argument():
    x = np.ma.masked_array(np.ones((1, 1, 3, 3)), mask=np.eye(3, dtype=bool)[None, None])
    with pytest.raises(TypeError, match=r"stn\.grid_sample: input is a masked array"):
        stn.grid_sample(x, np.zeros((1, 2, 2, 2)))


def test_zero_dimensional_input_reports_its_real_shape():
    with pytest.raises(ValueError, match=r"stn\.grid_sample: input must be 4-D .* got shape \(\)"):
        stn.grid_sample(np.float64(1.0), np.zeros((1, 2, 2, 2)))


@pytest.mark.parametrize("out_size", [(2**63, 3), (3, 2**41)], ids=str)
def test_absurd_sizes_get_an_stn_error(out_size):
    with pytest.raises(ValueError, match=r"stn\.spatial_transform: every entry of out_size .* at most 2\*\*40"):
        stn.spatial_transform(np.ones((1, 1, 3, 3)), np.eye(2, 3), out_size=out_size)
