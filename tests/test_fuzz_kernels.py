"""Property-based fuzzing (hypothesis) of every public kernel entry point.

Fuzzed: stn.affine_grid, affine_grid_backward, grid_sample, grid_sample_backward,
spatial_transform, spatial_transform_backward, transform_grid, transform_grid_backward (every
family of stn.transforms.FAMILIES, affine with fixed entries, TPS on small layouts) and
stn.transforms.to_matrix, with
  * random shapes up to 8 x 3 x 12 x 12, single-pixel and thin (1 x k, k x 1) ones included;
  * float32 / float64; memory layouts: C, Fortran, strided views, transposed-and-back views,
    negative strides, big-endian, zero strides (a shared theta broadcast over the batch);
  * grids and thetas holding NaN, +-Inf, +-1e30, the format's largest value, denormals
    (1e-40 in float32, 1e-310 in float64), signed zeros and exact (half-)integers;
  * random mode, padding_mode, align_corners, input_grad, deterministic and thread count;
  * one invalid argument at a time: an invalid dtype (ints, bool, float16, long double,
    complex, object), mixed dtypes, a 0-sized array, a mismatched shape, an unknown option,
    a (fake) CUDA array where no GPU is usable.

Properties:
  * nothing crashes; a valid call returns arrays of the documented shape and the input's dtype;
  * an invalid call raises the documented type, with a message starting 'stn.<function>:':
    TypeError for dtypes and flags, ValueError for shapes (0-sized included) and option names,
    RuntimeError for a CUDA array without a GPU; never another type;
  * neither the memory layout nor the thread count changes a result, bit for bit;
  * README's finiteness: with a finite input, a forward output is finite whatever the
    coordinates (NaN reads 0, +-Inf and huge points are outside or clamped, finite far points
    are padded); grid_sample_backward's gradients are finite for a finite input and
    grad_output; the transformer's are too with zeros padding, where every point that leaves
    the image gets zero gradient (with border/reflection a finite far-away point keeps its
    true, possibly overflowing, derivative: projective at 1e30, say), a NaN / +-Inf rotation
    or rigid angle included (test_nonfinite_angle_gets_zero_gradient checks it directly);
  * README's point rules: a NaN point reads 0 and gets no grid gradient; with zeros padding a
    point far outside (|g| >= 8, or +-Inf) reads 0 and gets none either; nearest gives none;
  * the fused path is the grid path, bit for bit and non-finite values included:
    spatial_transform == grid_sample(transform_grid) (== affine_grid for affine), the
    backward's grad_input likewise, and grad_theta == transform_grid_backward(grad_grid);
    transform_grid == affine_grid(to_matrix) for the matrix families; a shared theta reads as
    the same theta repeated; affine_grid_backward is affine_grid's adjoint.

The bugs the fuzzing found are fixed; tests at the end of the file guard them.

CI runs a fixed (derandomized) set of examples per test, settings in tests/fuzz_settings.py.
More examples, and how many each test ran (one JSON line per test):
    STN_FUZZ_EXAMPLES=2000 STN_FUZZ_REPORT=/tmp/fuzz.jsonl python -m pytest tests/test_fuzz_kernels.py
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import stn
from fuzz_settings import fuzz_settings, report_examples, tick  # noqa: F401  (autouse fixture)
from stn import transforms

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
FLOATS = (np.float32, np.float64)
BAD_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.complex64, np.complex128,
              object] + ([np.longdouble] if np.dtype(np.longdouble).itemsize not in (4, 8) else [])
LAYOUTS = ("C", "C", "F", "strided", "transposed", "reversed", "big-endian")
FAR = 8.0  # |g| >= FAR: every bicubic tap lies outside the image, at any size
CI_EXAMPLES = 100
fuzz = fuzz_settings(CI_EXAMPLES)


def specials(dtype) -> list:
    info = np.finfo(dtype)
    denormal = 1e-40 if dtype == np.float32 else 1e-310
    return [np.nan, np.inf, -np.inf, 1e30, -1e30, float(info.max), -float(info.max), denormal,
            -denormal, float(info.smallest_subnormal), 0.0, -0.0, 1.0, -1.0, 2.0, -3.0, 0.5]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny kernels run on one thread (waking OpenMP threads costs more than the work); the
    tests that fuzz the thread count set it themselves."""
    before = stn.get_num_threads()
    stn.set_num_threads(1)
    yield
    stn.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Strategies


extents = st.one_of(st.just(1), st.integers(1, 12))   # 1 often: single pixels, thin images
batches = st.one_of(st.integers(1, 3), st.just(8))
channels = st.integers(1, 3)
options = st.fixed_dictionaries({"mode": st.sampled_from(MODES),
                                 "padding_mode": st.sampled_from(PADDINGS),
                                 "align_corners": st.booleans()})


@st.composite
def arrays(draw, shape, dtype, spread=1.0, special=True):
    """Ordinary values in [-spread, spread] (sometimes exact halves), then, when `special`,
    special values at positions hypothesis picks, or sprinkled over a random fraction."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.uniform(-spread, spread, shape)
    if draw(st.integers(0, 3)) == 0:
        values = np.round(values * 2) / 2
    values = values.astype(dtype)
    if special and values.size:
        pool = specials(dtype)
        flat = values.reshape(-1)
        for index, value in draw(st.lists(st.tuples(st.integers(0, values.size - 1),
                                                    st.sampled_from(pool)), max_size=6)):
            flat[index] = value
        if draw(st.integers(0, 4)) == 0:
            chosen = rng.random(values.size) < rng.uniform(0.05, 0.6)
            flat[chosen] = rng.choice(np.array(pool, dtype), int(chosen.sum()))
    return values


def relayout(array, layout):
    """The same values in another memory layout."""
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in array.shape), array.dtype)
        view = big[tuple(slice(1, None, 2) for _ in array.shape)]
        view[...] = array
        return view
    if layout == "transposed":
        order = np.roll(np.arange(array.ndim), 1)
        return np.ascontiguousarray(array.transpose(order)).transpose(np.argsort(order))
    if layout == "reversed":
        flip = tuple(slice(None, None, -1) for _ in array.shape)
        return np.ascontiguousarray(array[flip])[flip]
    if layout == "big-endian":
        return array.astype(array.dtype.newbyteorder(">"))
    return array


def plain(array):
    """A C-contiguous native-order copy: the reference the other layouts must match."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))


@st.composite
def laid_out(draw, named):
    """{name: array} in random layouts."""
    return {name: relayout(a, draw(st.sampled_from(LAYOUTS))) for name, a in named.items()}


def with_specials(draw, values):
    """A copy of `values` with 1 to 4 special values at positions hypothesis picks."""
    values = np.array(values)
    if values.size:
        flat = values.reshape(-1)
        pool = specials(values.dtype.type)
        for index, value in draw(st.lists(st.tuples(st.integers(0, values.size - 1),
                                                    st.sampled_from(pool)),
                                          min_size=1, max_size=4)):
            flat[index] = value
    return values


@st.composite
def family_params(draw, n, dtype, families=transforms.FAMILIES):
    """(theta, {transform, fixed, tps_grid}, finite) for a random family near its identity,
    shared (no leading N) sometimes, with special values sometimes."""
    family = draw(st.sampled_from(families))
    extra = {"transform": family}
    if family == "affine" and draw(st.integers(0, 3)) == 0:
        names = draw(st.lists(st.sampled_from(transforms.THETA_ENTRIES), unique=True,
                              min_size=1, max_size=5))
        extra["fixed"] = {name: draw(st.sampled_from((0.0, 1.0, 0.5, -0.25, 1e-3))) for name in names}
        identity = np.array([1.0, 0, 0, 0, 1, 0])
        base = identity[[i for i, e in enumerate(transforms.THETA_ENTRIES) if e not in names]]
    elif family == "tps":
        layout = draw(st.sampled_from(((2, 2), (3, 3), (2, 3), (3, 2), (4, 3))))
        if layout[0] != layout[1] or draw(st.booleans()):
            extra["tps_grid"] = layout
        base = transforms.tps_control_points(*layout)
    else:
        base = transforms.identity_params(family, translation=draw(st.booleans()))
    jitter = draw(st.sampled_from((0.3, 0.3, 2.0)))
    theta = np.broadcast_to(base, (n, *base.shape))
    theta = theta + draw(arrays(theta.shape, np.float64, jitter, special=False))
    if draw(st.integers(0, 3)) == 0:
        theta = theta[0]
    theta = theta.astype(dtype)
    if draw(st.integers(0, 2)) < 2:
        theta = with_specials(draw, theta)
    return theta, extra, bool(np.isfinite(theta).all())


def faults(kinds):
    """None (a valid call) most of the time, else one of `kinds`."""
    return st.sampled_from((None,) * 10 + tuple(kinds))


class FakeCudaArray:
    """An object that claims to live on a GPU; with no GPU usable, stn must say so."""

    def __init__(self, array):
        self.shape, self.dtype = array.shape, array.dtype

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False), "version": 3}


CUDA = () if stn.cuda_available() else ("cuda",)
ALL_FAULTS = ("dtype", "mixed", "empty", "shape", "option") + CUDA
ONE_ARRAY_FAULTS = ("dtype", "empty", "shape", "option") + CUDA
BAD_NAMES = {"mode": ("", "Bilinear", "linear", "cubic", "nearest "),
             "padding_mode": ("zero", "reflect", "Border", "constant"),
             "transform": ("", "Affine", "homography", "tps2", "rotation ")}


@st.composite
def break_one(draw, fault, named, kwargs, empties, shapes):
    """Makes one argument invalid: returns (arrays, kwargs, the exception type expected).
    `empties` / `shapes`: lists of {argument: replacement}, 0-sized / badly shaped."""
    named, kwargs = dict(named), dict(kwargs)
    name = draw(st.sampled_from(sorted(named)))
    if fault == "dtype":
        named[name] = np.zeros(named[name].shape).astype(draw(st.sampled_from(BAD_DTYPES)))
        return named, kwargs, TypeError
    if fault == "mixed":
        other = np.float32 if named[name].dtype == np.float64 else np.float64
        with np.errstate(over="ignore"):  # float64's largest value is Inf in float32
            named[name] = named[name].astype(other)
        return named, kwargs, TypeError
    if fault == "cuda":
        if len(named) > 1 and draw(st.booleans()):
            named[name] = FakeCudaArray(named[name])
            return named, kwargs, ValueError    # host and CUDA arrays mixed
        return {n: FakeCudaArray(a) for n, a in named.items()}, kwargs, RuntimeError
    if fault == "option":
        which = draw(st.sampled_from(sorted(set(kwargs) & {"align_corners", *BAD_NAMES})))
        if which == "align_corners":
            kwargs[which] = draw(st.sampled_from((1, 0, "True", None, 1.0)))
            return named, kwargs, TypeError
        kwargs[which] = draw(st.sampled_from(BAD_NAMES[which]))
        return named, kwargs, ValueError
    for argument, value in draw(st.sampled_from(empties if fault == "empty" else shapes)).items():
        (named if argument in named else kwargs)[argument] = value
    return named, kwargs, ValueError


def expect_rejection(function, fn_name, expected, named, kwargs):
    """The call raises exactly `expected` (a subclass, e.g. a leaked numpy error, fails) and
    the message names the function."""
    event(f"rejected: {expected.__name__}")
    with pytest.raises(Exception) as info:
        function(**named, **kwargs)
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert str(info.value).startswith(f"stn.{fn_name}:"), str(info.value)


def reshaped(array, axis, extent):
    """Zeros of `array`'s dtype and shape, with `extent` along `axis`."""
    shape = list(array.shape)
    shape[axis] = extent
    return np.zeros(shape, array.dtype)


def assert_same(actual, expected, what):
    """Bit for bit (NaN == NaN), same dtype and shape."""
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)


def compare_layouts(function, laid, named, kwargs, result, threads=1):
    """`result` (from `laid`, run on `threads` threads) equals the call on plain C arrays on one
    thread."""
    values = np.concatenate([a.ravel().astype(np.float64) for a in named.values()])
    event("valid call, " + ("all finite" if np.isfinite(values).all() else "non-finite values"))
    if threads == 1 and all(a is named[n] for n, a in laid.items()):
        return
    reference = function(**{n: plain(a) for n, a in named.items()}, **kwargs)
    pairs = zip(result, reference) if isinstance(result, tuple) else [(result, reference)]
    for got, want in pairs:
        if want is not None:
            assert_same(got, want, f"layouts {[a.strides for a in laid.values()]}, {threads} threads")


def run_on(threads, function, *args, **kwargs):
    stn.set_num_threads(threads)
    try:
        return function(*args, **kwargs)
    finally:
        stn.set_num_threads(1)


def outside_points(grid, height, width, align_corners):
    """(N, Ho, Wo) points README says read 0 with zeros padding (and get no gradient): NaN,
    +-Inf, or |g| >= FAR on an axis -- except a finite value on a single-pixel axis with
    align_corners=True, which is that pixel."""
    outside = np.zeros(grid.shape[:-1], bool)
    for axis, size in ((0, width), (1, height)):
        g = grid[..., axis]
        with np.errstate(invalid="ignore"):
            far = np.isinf(g) if size == 1 and align_corners else np.abs(g) >= FAR
        outside |= far | np.isnan(g)
    return outside


def points(output):
    """(N, C, Ho, Wo) -> (N, Ho, Wo, C): indexable by a point mask."""
    return output.transpose(0, 2, 3, 1)


def finite(*arrays):
    return all(a is None or np.isfinite(a).all() for a in arrays)


# --------------------------------------------------------------------------------------------
# The sampler: grid_sample and its backward


@st.composite
def sampler_case(draw, backward):
    dtype = draw(st.sampled_from(FLOATS))
    n, c, h, w, ho, wo = (draw(batches), draw(channels), *(draw(extents) for _ in range(4)))
    finite_data = draw(st.integers(0, 3)) > 0   # input (and grad_output) finite
    named = {"input": draw(arrays((n, c, h, w), dtype, draw(st.sampled_from((1.0, 1e3))),
                                  special=not finite_data)),
             "grid": draw(arrays((n, ho, wo, 2), dtype, draw(st.sampled_from((1.2, 1.2, 3.0, 1e6)))))}
    if backward:
        named = {"grad_output": draw(arrays((n, c, ho, wo), dtype, special=not finite_data)), **named}
    return named, draw(options), finite_data


def sampler_faults(named):
    input, grid = named["input"], named["grid"]
    n = input.shape[0]
    empties = [{"input": reshaped(input, a, 0)} for a in (1, 2, 3)]
    empties += [{"grid": reshaped(grid, a, 0)} for a in (1, 2)]
    empties += [{"input": reshaped(input, 0, 0), "grid": reshaped(grid, 0, 0)}]
    shapes = [{"grid": reshaped(grid, 3, 1)}, {"grid": reshaped(grid, 3, 3)},
              {"grid": reshaped(grid, 0, n + 1)}, {"grid": grid[0]}, {"input": input[0]},
              {"input": input[None]}]
    if "grad_output" in named:
        go = named["grad_output"]
        shapes += [{"grad_output": reshaped(go, a, go.shape[a] + 1)} for a in range(4)]
        empties += [{"grad_output": reshaped(go, 2, 0)}]
    return empties, shapes


@fuzz
@given(case=sampler_case(backward=False), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_grid_sample(case, fault, data):
    tick()
    named, kwargs, finite_input = case
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *sampler_faults(named)))
        expect_rejection(stn.grid_sample, "grid_sample", expected, broken_named, broken_kwargs)
        return
    input, grid = named["input"], named["grid"]
    (n, c, h, w), (_, ho, wo, _) = input.shape, grid.shape
    laid = data.draw(laid_out(named))
    out = stn.grid_sample(**laid, **kwargs)
    assert type(out) is np.ndarray and out.shape == (n, c, ho, wo) and out.dtype == input.dtype
    compare_layouts(stn.grid_sample, laid, named, kwargs, out)
    if finite_input:
        assert np.isfinite(out).all(), "finite input, any grid: the output must be finite"
    nan = np.isnan(grid).any(axis=-1)
    assert (points(out)[nan] == 0).all(), "a NaN point reads 0"
    if kwargs["padding_mode"] == "zeros":
        outside = outside_points(grid, h, w, kwargs["align_corners"])
        assert (points(out)[outside] == 0).all(), "zeros padding: a point far outside reads 0"


@fuzz
@given(case=sampler_case(backward=True), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_grid_sample_backward(case, fault, data):
    tick()
    named, kwargs, finite_data = case
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *sampler_faults(named)))
        expect_rejection(stn.grid_sample_backward, "grid_sample_backward", expected,
                         broken_named, broken_kwargs)
        return
    grad_output, input, grid = named["grad_output"], named["input"], named["grid"]
    (n, c, h, w), (_, ho, wo, _) = input.shape, grid.shape
    flags = {"input_grad": data.draw(st.booleans()), "deterministic": data.draw(st.booleans())}
    threads = data.draw(st.sampled_from((1, 1, 2)))
    laid = data.draw(laid_out(named))
    grad_input, grad_grid = run_on(threads, stn.grid_sample_backward, **laid, **kwargs, **flags)
    if flags["input_grad"]:
        assert grad_input.shape == input.shape and grad_input.dtype == input.dtype
    else:
        assert grad_input is None
    assert grad_grid.shape == (n, ho, wo, 2) and grad_grid.dtype == input.dtype
    compare_layouts(stn.grid_sample_backward, laid, named, {**kwargs, **flags},
                    (grad_input, grad_grid), threads)
    if not flags["input_grad"]:  # no work on grad_input, the same grad_grid
        assert_same(grad_grid, stn.grid_sample_backward(**named, **kwargs)[1], "input_grad=False")
    if finite_data:
        assert finite(grad_input, grad_grid), "finite input and grad_output: finite gradients"
    nan = np.isnan(grid).any(axis=-1)
    assert (grad_grid[nan] == 0).all(), "a NaN point gets no grid gradient"
    if kwargs["mode"] == "nearest":
        assert (grad_grid == 0).all(), "nearest: zero grid gradient"
    if kwargs["padding_mode"] == "zeros":
        outside = outside_points(grid, h, w, kwargs["align_corners"])
        assert (grad_grid[outside] == 0).all(), "zeros padding: no gradient far outside"
    if finite_data and flags["input_grad"] and np.isfinite(grid).all():
        # grid_sample is linear in the input: grad_input is its adjoint.
        out = stn.grid_sample(input, grid, **kwargs).astype(np.float64)
        lhs = (out * grad_output).sum()
        rhs = (input.astype(np.float64) * grad_input).sum()
        scale = (np.abs(out * grad_output).sum() + np.abs(input * grad_input.astype(np.float64)).sum())
        eps = 1e-5 if input.dtype == np.float32 else 1e-12
        assert abs(lhs - rhs) <= eps * scale + 1e-300, (lhs, rhs)


# --------------------------------------------------------------------------------------------
# The fused transformer: spatial_transform and its backward, every family


@st.composite
def fused_case(draw, backward):
    dtype = draw(st.sampled_from(FLOATS))
    n, c, h, w = draw(batches), draw(channels), draw(extents), draw(extents)
    out_size = draw(st.one_of(st.none(), st.tuples(extents, extents)))
    ho, wo = out_size or (h, w)
    finite_data = draw(st.integers(0, 3)) > 0
    theta, extra, _ = draw(family_params(n, dtype))
    named = {"input": draw(arrays((n, c, h, w), dtype, draw(st.sampled_from((1.0, 1e3))),
                                  special=not finite_data)),
             "theta": theta}
    if backward:
        named = {"grad_output": draw(arrays((n, c, ho, wo), dtype, special=not finite_data)), **named}
    kwargs = {**draw(options), **extra, "out_size": out_size}
    return named, kwargs, finite_data


def fused_faults(named, kwargs):
    input, theta = named["input"], named["theta"]
    n = input.shape[0]
    empties = [{"input": reshaped(input, a, 0)} for a in range(4)]
    empties += [{"out_size": (0, 3)}, {"out_size": (2, 0)}]
    shapes = [{"input": input[0]}, {"theta": reshaped(theta, -1, theta.shape[-1] + 1)},
              {"theta": np.zeros((n + 1,) + theta.shape[-family_rank(kwargs):], theta.dtype)}]
    if "grad_output" in named:
        go = named["grad_output"]
        shapes += [{"grad_output": reshaped(go, a, go.shape[a] + 1)} for a in range(4)]
    return empties, shapes


def family_rank(kwargs):
    """How many trailing axes of theta are one image's parameters."""
    return 2 if kwargs["transform"] == "tps" or (kwargs["transform"] == "affine" and
                                                 "fixed" not in kwargs) else 1


def moderate(*arrays):
    """Finite and at most 1e3 in magnitude: sums and products of a few cannot overflow."""
    return all(np.isfinite(a).all() and (a.size == 0 or np.abs(a).max() <= 1e3) for a in arrays)


def generator_kwargs(kwargs):
    return {k: kwargs[k] for k in ("transform", "fixed", "tps_grid") if k in kwargs}


def unfused_grid(theta, size, kwargs):
    """The grid path's grid for the fused call's theta; for plain affine also affine_grid's."""
    grid = stn.transform_grid(theta, size, align_corners=kwargs["align_corners"],
                              **generator_kwargs(kwargs))
    if kwargs["transform"] == "affine" and "fixed" not in kwargs:
        assert_same(grid, stn.affine_grid(theta, size, kwargs["align_corners"]), "affine_grid")
    return grid


SAMPLER_OPTIONS = ("mode", "padding_mode", "align_corners")


@fuzz
@given(case=fused_case(backward=False), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_spatial_transform(case, fault, data):
    tick()
    named, kwargs, finite_input = case
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *fused_faults(named, kwargs)))
        expect_rejection(stn.spatial_transform, "spatial_transform", expected, broken_named,
                         broken_kwargs)
        return
    input, theta = named["input"], named["theta"]
    n, c, h, w = input.shape
    ho, wo = kwargs["out_size"] or (h, w)
    laid = data.draw(laid_out(named))
    out = stn.spatial_transform(**laid, **kwargs)
    assert type(out) is np.ndarray and out.shape == (n, c, ho, wo) and out.dtype == input.dtype
    compare_layouts(stn.spatial_transform, laid, named, kwargs, out)
    if finite_input:
        assert np.isfinite(out).all(), "finite input, any theta: the output must be finite"
    grid = unfused_grid(theta, (n, c, ho, wo), kwargs)
    sampler = {k: kwargs[k] for k in SAMPLER_OPTIONS}
    assert_same(out, stn.grid_sample(input, grid, **sampler), "fused != grid path")
    if theta.ndim == family_rank(kwargs):  # shared: the same as repeated (zero strides)
        repeated = np.broadcast_to(theta, (n, *theta.shape))
        assert_same(stn.spatial_transform(input, repeated, **kwargs), out, "shared != repeated")


@fuzz
@given(case=fused_case(backward=True), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_spatial_transform_backward(case, fault, data):
    tick()
    named, kwargs, finite_data = case
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *fused_faults(named, kwargs)))
        expect_rejection(stn.spatial_transform_backward, "spatial_transform_backward", expected,
                         broken_named, broken_kwargs)
        return
    grad_output, input, theta = named["grad_output"], named["input"], named["theta"]
    n, c, h, w = input.shape
    size = (n, c, *(kwargs["out_size"] or (h, w)))
    flags = {"input_grad": data.draw(st.booleans()), "deterministic": data.draw(st.booleans())}
    threads = data.draw(st.sampled_from((1, 1, 2)))
    laid = data.draw(laid_out(named))
    grad_input, grad_theta = run_on(threads, stn.spatial_transform_backward, **laid, **kwargs,
                                    **flags)
    if flags["input_grad"]:
        assert grad_input.shape == input.shape and grad_input.dtype == input.dtype
    else:
        assert grad_input is None
    assert grad_theta.shape == theta.shape and grad_theta.dtype == input.dtype
    compare_layouts(stn.spatial_transform_backward, laid, named, {**kwargs, **flags},
                    (grad_input, grad_theta), threads)
    if finite_data:
        assert finite(grad_input), "finite input and grad_output: finite grad_input"
        if kwargs["padding_mode"] == "zeros":
            assert finite(grad_theta), "zeros padding, finite data, any theta: finite grad_theta"
    # The grid path, step by step.
    grid = unfused_grid(theta, size, kwargs)
    sampler = {k: kwargs[k] for k in SAMPLER_OPTIONS}
    unfused_input, grad_grid = stn.grid_sample_backward(grad_output, input, grid, **sampler)
    if flags["input_grad"]:
        assert_same(grad_input, unfused_input, "fused grad_input != grid path")
    unfused_theta = stn.transform_grid_backward(grad_grid, theta, size,
                                                align_corners=kwargs["align_corners"],
                                                **generator_kwargs(kwargs))
    assert_same(grad_theta, unfused_theta, "fused grad_theta != transform_grid_backward(grad_grid)")
    if kwargs["transform"] == "affine" and "fixed" not in kwargs and theta.ndim == 3:
        assert_same(grad_theta, stn.affine_grid_backward(grad_grid, size, kwargs["align_corners"]),
                    "fused grad_theta != affine_grid_backward(grad_grid)")


# --------------------------------------------------------------------------------------------
# Grid generators: affine_grid, transform_grid and their backward passes


@st.composite
def generator_case(draw, backward, families=transforms.FAMILIES):
    dtype = draw(st.sampled_from(FLOATS))
    size = (draw(batches), draw(channels), draw(extents), draw(extents))
    theta, extra, finite_theta = draw(family_params(size[0], dtype, families))
    named = {"theta": theta}
    if backward:
        named = {"grad_grid": draw(arrays((size[0], *size[2:], 2), dtype,
                                          special=draw(st.booleans()))), **named}
    kwargs = {"size": size, "align_corners": draw(st.booleans()), **extra}
    return named, kwargs, finite_theta


def generator_faults(named, kwargs):
    theta, size = named["theta"], kwargs["size"]
    empties = [{"theta": reshaped(theta, -1, 0)}]
    empties += [{"size": tuple(0 if i == a else s for i, s in enumerate(size))} for a in range(4)]
    shapes = [{"theta": reshaped(theta, -1, theta.shape[-1] + 1)}, {"size": size[:3]},
              {"size": (*size, 1)}]
    if theta.ndim > family_rank(kwargs):  # batched: the batch must match size[0]
        shapes += [{"size": (size[0] + 1, *size[1:])}]
    if "grad_grid" in named:
        grad_grid = named["grad_grid"]
        empties += [{"grad_grid": reshaped(grad_grid, a, 0)} for a in range(3)]
        shapes += [{"grad_grid": reshaped(grad_grid, a, grad_grid.shape[a] + 1)} for a in range(4)]
    return empties, shapes


def matrices_of(theta, kwargs):
    return transforms.to_matrix(kwargs["transform"], theta, fixed=kwargs.get("fixed"))


@fuzz
@given(case=generator_case(backward=False), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_transform_grid(case, fault, data):
    tick()
    named, kwargs, finite_theta = case
    if fault:
        fault = "dtype" if fault == "mixed" else fault   # one array: nothing to mix
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *generator_faults(named, kwargs)))
        expect_rejection(stn.transform_grid, "transform_grid", expected, broken_named, broken_kwargs)
        return
    theta, (n, _, h, w), family = named["theta"], kwargs["size"], kwargs["transform"]
    laid = data.draw(laid_out(named))
    grid = stn.transform_grid(**laid, **kwargs)
    assert type(grid) is np.ndarray and grid.shape == (n, h, w, 2) and grid.dtype == theta.dtype
    compare_layouts(stn.transform_grid, laid, named, kwargs, grid)
    if moderate(theta) and family != "projective":  # projective: points at infinity
        assert np.isfinite(grid).all(), "moderate parameters: a finite grid"
    if family in transforms.MATRIX_FAMILIES:
        assert_same(grid, stn.affine_grid(matrices_of(theta, kwargs), kwargs["size"],
                                          kwargs["align_corners"]),
                    "transform_grid != affine_grid(to_matrix)")


@fuzz
@given(case=generator_case(backward=True), fault=faults(ALL_FAULTS), data=st.data())
def test_fuzz_transform_grid_backward(case, fault, data):
    tick()
    named, kwargs, finite_theta = case
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *generator_faults(named, kwargs)))
        expect_rejection(stn.transform_grid_backward, "transform_grid_backward", expected,
                         broken_named, broken_kwargs)
        return
    grad_grid, theta, family = named["grad_grid"], named["theta"], kwargs["transform"]
    laid = data.draw(laid_out(named))
    grad_theta = stn.transform_grid_backward(**laid, **kwargs)
    assert type(grad_theta) is np.ndarray
    assert grad_theta.shape == theta.shape and grad_theta.dtype == theta.dtype
    compare_layouts(stn.transform_grid_backward, laid, named, kwargs, grad_theta)
    if moderate(theta, grad_grid) and family != "projective":
        assert np.isfinite(grad_theta).all(), "moderate grad_grid and parameters: finite grad_theta"
    if family == "affine":  # the affine adjoint does not depend on theta
        zeros = np.zeros_like(theta)
        assert_same(grad_theta, stn.transform_grid_backward(grad_grid, zeros, **kwargs),
                    "affine: grad_theta depends on theta")
        if "fixed" not in kwargs and theta.ndim == 3:
            assert_same(grad_theta, stn.affine_grid_backward(grad_grid, kwargs["size"],
                                                             kwargs["align_corners"]),
                        "transform_grid_backward != affine_grid_backward")


@fuzz
@given(case=generator_case(backward=False, families=("affine",)), fault=faults(ONE_ARRAY_FAULTS),
       data=st.data())
def test_fuzz_affine_grid(case, fault, data):
    tick()
    named, kwargs, finite_theta = case
    kwargs.pop("transform")
    if "fixed" in kwargs:  # affine_grid has no fixed entries: the full theta
        kwargs.pop("fixed")
        named = {"theta": data.draw(arrays((kwargs["size"][0], 2, 3), named["theta"].dtype))}
        finite_theta = bool(np.isfinite(named["theta"]).all())
    if fault:
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, *generator_faults(named, {**kwargs, "transform": "affine"})))
        expect_rejection(stn.affine_grid, "affine_grid", expected, broken_named, broken_kwargs)
        return
    theta, size = named["theta"], kwargs["size"]
    n, _, h, w = size
    laid = data.draw(laid_out(named))
    grid = stn.affine_grid(**laid, **kwargs)
    assert type(grid) is np.ndarray and grid.shape == (n, h, w, 2) and grid.dtype == theta.dtype
    compare_layouts(stn.affine_grid, laid, named, kwargs, grid)
    assert_same(grid, stn.transform_grid(theta, **kwargs), "affine_grid != transform_grid")
    if theta.ndim == 2:
        assert_same(stn.affine_grid(np.broadcast_to(theta, (n, 2, 3)), **kwargs), grid,
                    "shared theta != repeated")
    if moderate(theta):
        assert np.isfinite(grid).all(), "moderate theta: a finite grid"
    if moderate(theta) and theta.dtype == np.float64:
        # affine_grid is linear in theta; affine_grid_backward is its adjoint.
        grad_grid = np.random.default_rng(n * h * w).standard_normal(grid.shape)
        batched = np.broadcast_to(theta, (n, 2, 3))
        lhs = (grid * grad_grid).sum()
        rhs = (batched * stn.affine_grid_backward(grad_grid, size, kwargs["align_corners"])).sum()
        assert abs(lhs - rhs) <= 1e-12 * (np.abs(grid * grad_grid).sum() + 1), (lhs, rhs)


@fuzz
@given(case=generator_case(backward=True, families=("affine",)), fault=faults(ONE_ARRAY_FAULTS),
       data=st.data())
def test_fuzz_affine_grid_backward(case, fault, data):
    tick()
    named, kwargs, _ = case
    named = {"grad_grid": named["grad_grid"]}
    kwargs = {"size": kwargs["size"], "align_corners": kwargs["align_corners"]}
    if fault:
        grad_grid, size = named["grad_grid"], kwargs["size"]
        empties = [{"grad_grid": reshaped(grad_grid, a, 0)} for a in range(3)]
        empties += [{"size": tuple(0 if i == a else s for i, s in enumerate(size))} for a in range(4)]
        shapes = [{"grad_grid": reshaped(grad_grid, a, grad_grid.shape[a] + 1)} for a in range(4)]
        shapes += [{"size": size[:3]}, {"size": (size[0] + 1, *size[1:])}]
        broken_named, broken_kwargs, expected = data.draw(
            break_one(fault, named, kwargs, empties, shapes))
        expect_rejection(stn.affine_grid_backward, "affine_grid_backward", expected,
                         broken_named, broken_kwargs)
        return
    grad_grid, n = named["grad_grid"], kwargs["size"][0]
    laid = data.draw(laid_out(named))
    grad_theta = stn.affine_grid_backward(**laid, **kwargs)
    assert type(grad_theta) is np.ndarray
    assert grad_theta.shape == (n, 2, 3) and grad_theta.dtype == grad_grid.dtype
    compare_layouts(stn.affine_grid_backward, laid, named, kwargs, grad_theta)
    if moderate(grad_grid):
        assert np.isfinite(grad_theta).all(), "moderate grad_grid: a finite grad_theta"
    theta = data.draw(arrays((n, 2, 3), grad_grid.dtype))   # any theta: the adjoint ignores it
    assert_same(grad_theta, stn.transform_grid_backward(grad_grid, theta, **kwargs),
                "affine_grid_backward != transform_grid_backward")


# --------------------------------------------------------------------------------------------
# stn.transforms.to_matrix


def expected_matrices(family, params, fixed):
    """What to_matrix must give, written out for the families whose entries are exact."""
    p = np.moveaxis(np.asarray(params, np.float64), -1, 0)
    one, zero = np.ones(p.shape[1:]), np.zeros(p.shape[1:])
    if family == "affine":
        if not fixed:
            return np.asarray(params, np.float64)
        entries, free = [], iter(p)
        for name in transforms.THETA_ENTRIES:
            entries.append(one * fixed[name] if name in fixed else next(free))
        rows = [entries[:3], entries[3:]]
    elif family == "translation":
        rows = [[one, zero, p[0]], [zero, one, p[1]]]
    elif family == "scale_translation":
        rows = [[p[0], zero, p[1]], [zero, p[0], p[2]]]
    elif family == "similarity":
        rows = [[p[0], -p[1], p[2]], [p[1], p[0], p[3]]]
    elif family == "projective":
        rows = [p[0:3], p[3:6], [p[6], p[7], one]]
    else:
        return None
    return np.moveaxis(np.array([[np.asarray(e) for e in row] for row in rows]), (0, 1), (-2, -1))


@fuzz
@given(dtype=st.sampled_from(FLOATS), n=batches, fault=faults(("dtype", "empty", "shape", "tps")),
       data=st.data())
def test_fuzz_to_matrix(dtype, n, fault, data):
    tick()
    families = tuple(f for f in transforms.FAMILIES if f != "tps")
    params, extra, _ = data.draw(family_params(n, dtype, families))
    family, fixed = extra["transform"], extra.get("fixed")
    call = {"family": family, "params": params, "fixed": fixed}
    fn = "transforms.to_matrix"
    if fault == "tps":  # no matrix
        tps = transforms.identity_params("tps", n, tps_grid=(3, 3), dtype=dtype)
        expect_rejection(transforms.to_matrix, fn, ValueError, {"params": tps},
                         {"family": "tps"})
        return
    if fault:
        broken_named, broken_kwargs, expected = data.draw(break_one(
            fault, {"params": params}, {"family": family, "fixed": fixed},
            [{"params": reshaped(params, -1, 0)}],
            [{"params": reshaped(params, -1, params.shape[-1] + 1)},
             {"params": params.reshape(-1)[:params.size - 1]} if params.ndim == 1 else
             {"params": params[None, None]}]))
        expect_rejection(transforms.to_matrix, fn, expected, broken_named, broken_kwargs)
        return
    laid = data.draw(laid_out({"params": params}))
    matrices = transforms.to_matrix(family, laid["params"], fixed=fixed)
    batched = params.ndim > family_rank({"transform": family, **extra})
    rows = 3 if family == "projective" else 2
    assert type(matrices) is np.ndarray and matrices.dtype == params.dtype
    assert matrices.shape == ((n,) if batched else ()) + (rows, 3)
    assert_same(matrices, transforms.to_matrix(**call), "layout changed to_matrix")
    expected = expected_matrices(family, params, fixed)
    if expected is not None:
        assert_same(matrices, expected.astype(params.dtype), f"{family} matrix entries")
    elif np.isfinite(params).all():  # rotation, rigid: a rotation matrix and the shift
        assert_same(matrices[..., 0, 0], matrices[..., 1, 1], "cos")
        assert_same(matrices[..., 0, 1], -matrices[..., 1, 0], "sin")
        shift = params[..., 1:] if params.shape[-1] == 3 else np.zeros(params.shape[:-1] + (2,), dtype)
        assert_same(matrices[..., :, 2], shift, "shift")
    if family != "projective":
        size = (n, 1, 3, 2)
        assert_same(stn.affine_grid(matrices, size),
                    stn.transform_grid(params, size, transform=family, fixed=fixed),
                    "affine_grid(to_matrix) != transform_grid")


@pytest.mark.parametrize("family,shape", [("affine", (0, 2, 3)), ("similarity", (0, 4)),
                                          ("projective", (0, 8))])
def test_to_matrix_rejects_an_empty_batch_like_the_kernels(family, shape):
    with pytest.raises(ValueError, match=r"^stn\.transforms\.to_matrix: "):
        transforms.to_matrix(family, np.zeros(shape))


# --------------------------------------------------------------------------------------------
# Bugs the fuzzing found, fixed: these keep them fixed


@pytest.mark.parametrize("dtype", FLOATS, ids=("float32", "float64"))
@pytest.mark.parametrize("angle", (np.nan, np.inf, -np.inf), ids=("nan", "inf", "-inf"))
@pytest.mark.parametrize("family", ("rotation", "rigid"))
def test_nonfinite_angle_gets_zero_gradient(family, angle, dtype):
    input = np.ones((1, 1, 3, 3), dtype)
    theta = np.array([[angle, 0.0, 0.0]], dtype)
    assert (stn.spatial_transform(input, theta, transform=family) == 0).all()  # NaN points read 0
    _, grad_theta = stn.spatial_transform_backward(np.ones_like(input), input, theta,
                                                   transform=family)
    assert_same(grad_theta, np.zeros_like(theta), "README: a NaN point gets zero gradient")
