"""Config fuzzing: mutated copies of the repository's example configs (prototxt/**/*.prototxt).

Mutations, on the file's bytes: truncation at a byte, bit flips, byte overwrites, random bytes
inserted; deleting, duplicating, swapping and inserting tokens (a vocabulary of the schema's
field and enum names, braces, colons, quotes, numbers such as 1e999 / nan / -0 / 0x10 / 2^64,
identifiers, unicode, NUL and bytes that are not UTF-8); deleting, duplicating and swapping
lines. Each mutated text goes through stn.config.parse_net / parse_solver (as bytes, as str
when it decodes, or from a file through read_net / read_solver); a few dozen of the nets that
parse are then built as stn.Net, with their data layers replaced by Input layers (or kept:
their list files do not exist, which must be a ConfigError too); the ones that set up with
Input layers also run forward and backward once.

Property: every failure is a stn.ConfigError whose message starts with the config's path and a
line number ("path:LINE:" or "path:LINE:COL:"); no other exception escapes the parser or a
net's set-up, and a net that set up runs forward and backward without any exception. (Allocation failures of nets a mutation made huge are not counted as failures:
builds run under an address-space limit, and a net asking for gigabytes is no parser bug.)

Two drivers: hypothesis (mutations it draws and shrinks) and a deterministic loop over fixed
seeds (MUTATIONS_PER_CONFIG per example config; parsing is cheap). Both take the settings of
tests/fuzz_settings.py; more with
    STN_FUZZ_EXAMPLES=2000 STN_FUZZ_REPORT=/tmp/fuzz.jsonl python -m pytest tests/test_fuzz_configs.py
(STN_FUZZ_EXAMPLES is then both the hypothesis examples and the mutations per config).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import warnings
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

import stn
from fuzz_settings import examples, fuzz_settings, report_examples, tick  # noqa: F401
from stn.config import parse_net, parse_solver, read_net, read_solver
from stn.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("prototxt/**/*.prototxt"))
SOLVERS = [path for path in CONFIGS if "solver" in path.name]
NETS = [path for path in CONFIGS if path not in SOLVERS]
MUTATIONS_PER_CONFIG = examples(300)
NET_BUILDS = examples(40)       # loop's builds per run (hypothesis: one example in four)
HYPOTHESIS_EXAMPLES = 150
BUILD_MEMORY = 1 << 30          # address space a build may add (RLIMIT_AS)
DATA_LAYERS = ("HDF5Data", "ImageData")
INPUT_SHAPES = ((2, 1, 28, 28), (2,))  # data, label; further tops get the label's shape


def test_the_example_configs_are_found():
    assert len(NETS) >= 4 and len(SOLVERS) >= 3, CONFIGS


# --------------------------------------------------------------------------------------------
# Mutations


def _schema_words() -> list:
    """Every field and enum value name reachable from NetParameter and SolverParameter."""
    words, seen = set(), set()
    todo = [caffe_pb2.NetParameter.DESCRIPTOR, caffe_pb2.SolverParameter.DESCRIPTOR]
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for field in message.fields:
            words.add(field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                todo.append(field.message_type)
            elif field.type == FieldDescriptor.TYPE_ENUM:
                words.update(value.name for value in field.enum_type.values)
    return sorted(words)


WORDS = [w.encode() for w in _schema_words()]
VOCABULARY = WORDS + [
    b"{", b"}", b"<", b">", b"[", b"]", b":", b",", b";", b'"', b"'", b'"x', b"''",
    b'"a\\"', b'"\\x"', b'"\\777"', b'"\\u12"', b"#", b"\\", b"\n", b"\r", b"\t", b"\r\n",
    b"1e999", b"-1e999", b"nan", b"-nan", b"inf", b"-inf", b"infinity", b"-0", b"0x10", b"0x",
    b"-0x8000000000000000", b"0777", b"08", b"1e", b"1.5e-400", b".5", b"5.", b"+1", b"--1",
    b"18446744073709551616", b"-9223372036854775809", b"2147483648", b"4294967296", b"-1",
    b"0", b"1", b"3", b"28", b"1.0f", b"1e30", b"true", b"false", b"True", b"t", b"f",
    b"layer", b"name", b"x", b"_", b"a.b", b"a-b", b"[x]", b"caffe.NetParameter",
    "é".encode(), "日本語".encode(), "\u202e".encode(), "\U0001f600".encode(),
    "\ufeff".encode(), b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\xef\xbb\xbf", b"\x1b[0m", b"\x7f", b"\x0b\x0c",
]
# Whole, valid fragments: inserted at a field boundary they parse, and reach net set-up.
VOCABULARY += [f'"{name}"'.encode() for name in sorted(stn.layers.LAYER_TYPES)] + [
    b'"affine"', b'"tps"', b'"projective"', b'"rotation"', b'"bicubic"', b'"nearest"',
    b'"reflection"', b'"border"', b'top: "theta"', b'bottom: "data"', b'bottom: "nowhere"',
    b'top: "data"', b'include { phase: TEST }', b'exclude { phase: TRAIN }',
    b'propagate_down: false', b'loss_weight: 2', b'loss_weight: 0', b'param { name: "shared" }',
    b'param { lr_mult: 0 }', b'force_backward: true', b'input: "x"', b'input_shape { dim: 2 }',
    b'input_dim: 1', b'tps_grid_h: 5', b'tps_grid_w: 1', b'output_H: 0', b'output_W: 3',
    b'theta_1_1: 0.5', b'align_corners: true', b'transform_type: "translation"',
    b'sampler_type: "bicubic"', b'kernel_size: 0', b'stride: 0', b'pad: 9', b'group: 3',
    b'num_output: 0', b'axis: -5', b'dim: 0', b'dim: -1', b'operation: MAX', b'coeff: 2',
    b'pool: AVE', b'global_pooling: true', b'bias_term: false', b'dropout_ratio: 1',
    b'type: "gaussian" std: 1e30', b'type: "file" file: "missing.txt"',
    b'layer { name: "extra" type: "ReLU" bottom: "data" top: "data" }',
    b'layer { name: "l" type: "Split" bottom: "theta" top: "a" top: "b" }',
]
NUMBERS = [b"1e999", b"-1e999", b"nan", b"-nan", b"inf", b"-inf", b"-0", b"0x10", b"0777", b"08",
           b"1e", b"1.5e-400", b".5", b"5.", b"+1", b"--1", b"18446744073709551616",
           b"-9223372036854775809", b"2147483648", b"4294967296", b"-1", b"0", b"1", b"3",
           b"1.0f", b"1e30", b"true", b'"3"']
TOKEN = re.compile(rb"""(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[A-Za-z0-9_.+-]+|\s+|\#[^\n]*|.)""",
                   re.DOTALL)
OPERATIONS = ("truncate", "flip", "byte", "bytes", "delete", "duplicate", "swap", "insert",
              "insert", "number", "delete_line", "duplicate_line", "swap_lines")


def tokens_of(data: bytes) -> list:
    tokens = TOKEN.findall(data)
    assert b"".join(tokens) == data
    return tokens


def mutate(data: bytes, operations) -> bytes:
    """Applies (operation, a, b, word) tuples in turn; a and b pick places (mod the length)."""
    for operation, a, b, word in operations:
        if operation == "truncate":
            data = data[:a % (len(data) + 1)]
        elif operation in ("flip", "byte") and data:
            i = a % len(data)
            value = data[i] ^ (1 << b % 8) if operation == "flip" else b % 256
            data = data[:i] + bytes([value]) + data[i + 1:]
        elif operation == "bytes":
            i = a % (len(data) + 1)
            data = data[:i] + random.Random(b).randbytes(1 + b % 4) + data[i:]
        elif operation.endswith("line") or operation.endswith("lines"):
            lines = data.split(b"\n")
            i, j = a % len(lines), b % len(lines)
            if operation == "delete_line":
                del lines[i]
            elif operation == "duplicate_line":
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        else:
            tokens = tokens_of(data)
            solid = [k for k, t in enumerate(tokens) if not t.isspace()]
            if operation == "insert" or not solid:
                i = a % (len(tokens) + 1)
                tokens.insert(i, word if b % 3 == 0 else b" " + word + b" ")
            else:
                i, j = solid[a % len(solid)], solid[b % len(solid)]
                if operation == "delete":
                    tokens[i] = b""
                elif operation == "duplicate":
                    tokens[i] = tokens[i] + (b" " if b % 2 else b"") + tokens[i]
                elif operation == "swap":
                    tokens[i], tokens[j] = tokens[j], tokens[i]
                elif operation == "number":
                    numeric = [k for k in solid if re.fullmatch(rb"-?[0-9.]+(e-?[0-9]+)?", tokens[k])]
                    k = numeric[a % len(numeric)] if numeric else i
                    tokens[k] = NUMBERS[b % len(NUMBERS)]
            data = b"".join(tokens)
    return data


def random_operations(rng: random.Random) -> list:
    return [(rng.choice(OPERATIONS), rng.randrange(1 << 16), rng.randrange(1 << 16),
             rng.choice(VOCABULARY)) for _ in range(rng.choice((1, 1, 2, 3, 5)))]


operations = st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 1 << 16),
                                st.integers(0, 1 << 16), st.sampled_from(VOCABULARY)),
                      min_size=1, max_size=5)


# --------------------------------------------------------------------------------------------
# The property


def located(path: str):
    """ConfigError messages must start with 'path:LINE:' (and usually 'COL:')."""
    return re.compile(re.escape(path) + r":\d+:(\d+:)? ")


class Violation(AssertionError):
    pass


# Violations pinned by a test of their own: message pattern -> that test. The fuzz drivers
# count them apart and keep looking for new ones. (Empty: the bugs the fuzzing found are
# fixed, and their tests below now guard them.)
KNOWN_BUGS: dict = {}
known_hits: dict = {}


def check_error(error: BaseException, path: str, what: str):
    """Raises Violation unless `error` is a ConfigError that starts with path:LINE: (or is
    a known, pinned bug: counted in known_hits)."""
    if type(error) is not stn.ConfigError:
        raise Violation(f"{what}: {type(error).__name__} escaped: {error}") from error
    if not located(path).match(str(error)):
        violation(f"{what}: ConfigError without '{path}:LINE:': {error}", str(error))


def violation(message: str, detail: str):
    """Raises Violation(message), unless `detail` is a known, pinned bug (counted apart)."""
    for pattern, test in KNOWN_BUGS.items():
        if re.search(pattern, detail):
            known_hits[test] = known_hits.get(test, 0) + 1
            return
    raise Violation(message)


def parse(data: bytes, path: Path, how: str, tmp_dir: Path | None = None):
    """The parsed NetConfig / SolverConfig, or None after a well-formed ConfigError."""
    solver = path in SOLVERS
    name = str(path)
    try:
        if how == "file":
            copy = tmp_dir / path.name
            copy.write_bytes(data)
            name = str(copy)
            return (read_solver if solver else read_net)(name), name
        text = data
        if how == "str":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return (parse_solver if solver else parse_net)(text, name), name
    except Exception as error:  # noqa: BLE001 -- the property is about every exception
        check_error(error, name, f"parsing ({how})")
        return None, name


def with_data_replaced(config):
    """The config with every data layer an Input layer of INPUT_SHAPES (its locations kept)."""
    for layer in config.param.layer:
        if layer.type in DATA_LAYERS:
            layer.type = "Input"
            for field in ("hdf5_data_param", "image_data_param", "transform_param"):
                layer.ClearField(field)
            for k in range(len(layer.top)):
                layer.input_param.shape.add().dim.extend(INPUT_SHAPES[min(k, 1)])
    return config


def too_big(message, limit=1024) -> bool:
    """Whether an integer anywhere in the message exceeds `limit` (a size a mutation made
    huge: building would only measure the allocator)."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if too_big(item, limit):
                    return True
            elif field.cpp_type in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
                                    FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64):
                if abs(item) > limit:
                    return True
    return False


def build(config, name: str, phase, replace_data: bool) -> str:
    """Builds stn.Net; returns 'built', 'rejected', 'skipped' (too big) or raises Violation."""
    if too_big(config.param):
        return "skipped"
    if replace_data:
        config = with_data_replaced(config)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    limit = in_use + BUILD_MEMORY
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    try:
        net = stn.Net(config, phase)
    except MemoryError:
        return "skipped"
    except Exception as error:  # noqa: BLE001
        check_error(error, name, f"building the net ({'data replaced' if replace_data else 'data kept'})")
        return "rejected"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if replace_data:
        run_once(net, name)
    return "built"


def run_once(net, name):
    """A net that set up runs forward and backward on inputs of its declared shapes (labels
    0, valid for any number of classes): any exception then is a Violation."""
    rng = np.random.default_rng(0)
    inputs = {blob: (np.zeros if blob == "label" else rng.random)(net.blobs[blob].data.shape)
              for blob in net.inputs}
    try:
        with np.errstate(all="ignore"):  # mutated weights (std: 1e30) may overflow
            net.forward(**inputs)
            net.backward()
    except Exception as error:  # noqa: BLE001
        message = f"the net set up, then forward/backward raised {type(error).__name__}: {error}"
        violation(f"{name}: {message}", message)


# --------------------------------------------------------------------------------------------
# Sanity: the unmutated examples parse, and build once their data layers are replaced


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_unmutated_examples_parse_and_build(path):
    config, name = parse(path.read_bytes(), path, "bytes")
    assert config is not None
    if path in NETS:
        for phase in (stn.TRAIN, stn.TEST):
            assert build(parse(path.read_bytes(), path, "bytes")[0], name, phase, True) == "built"


@pytest.mark.parametrize("path", [p for p in NETS if b"HDF5Data" in p.read_bytes()],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_missing_data_files_are_a_config_error_naming_the_file(path):
    config, name = parse(path.read_bytes(), path, "bytes")
    with pytest.raises(stn.ConfigError) as info:
        stn.Net(config, stn.TRAIN)
    assert located(name).match(str(info.value)), str(info.value)
    assert "train.txt" in str(info.value)


# --------------------------------------------------------------------------------------------
# Drivers


def run_mutation(data, path, how, tmp_dir, net_build):
    """Parses `data`; then, when net_build = (phase, replace_data) is given and the text parsed
    as a net, builds it. Returns the config, or None."""
    config, name = parse(data, path, how, tmp_dir)
    if config is None or path in SOLVERS or net_build is None:
        return config
    outcome = build(config, name, *net_build)
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1
    return config


OUTCOMES: dict = {}   # net builds: built / rejected / skipped, over the whole module


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory):
    """A folder for the configs read from files; at the end, with STN_FUZZ_REPORT set, one more
    JSON line: the net builds' outcomes and the known bugs' hits."""
    yield tmp_path_factory.mktemp("fuzz_configs")
    path = os.environ.get("STN_FUZZ_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"test_fuzz_configs.py": {"net builds": OUTCOMES,
                                                              "known bugs hit": known_hits}}) + "\n")


# One example in four builds its net, if it parses as one (a draw, not a running budget, so
# that hypothesis replays a failing example exactly while it shrinks it).
net_builds = st.one_of(st.none(), st.none(), st.none(),
                       st.tuples(st.sampled_from((stn.TRAIN, stn.TEST)),
                                 st.sampled_from((True, True, True, False))))


@fuzz_settings(HYPOTHESIS_EXAMPLES)
@given(path=st.sampled_from(CONFIGS), ops=operations,
       how=st.sampled_from(("bytes", "str", "str", "file")), net_build=net_builds)
def test_fuzz_mutated_configs(tmp_dir, path, ops, how, net_build):
    tick()
    run_mutation(mutate(path.read_bytes(), ops), path, how, tmp_dir, net_build)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_fixed_seed_mutations(tmp_dir, path):
    """MUTATIONS_PER_CONFIG mutations of one example, from fixed seeds; every violation is
    collected, then reported with a reproducer (seed and operations)."""
    original = path.read_bytes()
    builds_left = NET_BUILDS // len(NETS) + 1
    violations = {}
    for seed in range(MUTATIONS_PER_CONFIG):
        tick()
        rng = random.Random(f"{path.name}:{seed}")
        ops = random_operations(rng)
        how = rng.choice(("bytes", "str", "str", "file" if seed % 10 == 0 else "str"))
        net_build = (rng.choice((stn.TRAIN, stn.TEST)), rng.random() < 0.75) if builds_left else None
        try:
            config = run_mutation(mutate(original, ops), path, how, tmp_dir, net_build)
        except Violation as found:
            kind = re.sub(r"'[^']*'|\d+", "#", str(found))[:120]  # one reproducer per kind
            violations.setdefault(kind, (seed, ops, how, str(found)))
            continue
        if net_build and config is not None and path in NETS:
            builds_left -= 1
    assert not violations, "\n".join(
        f"seed {seed} ({how}) {ops}:\n    {message}" for seed, ops, how, message in violations.values())


# --------------------------------------------------------------------------------------------
# Bugs the fuzzing found, fixed: these tests keep them fixed


def located_error(call, path):
    with pytest.raises(stn.ConfigError) as info:
        call()
    assert located(path).match(str(info.value)), str(info.value)


@pytest.mark.parametrize("text", ['name: "a\\;"', 'layer { name: "x\\q" }', 'name: "\\777"'])
def test_bad_escape_is_a_located_config_error_with_warnings_as_errors(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        located_error(lambda: parse_net(text, "net.prototxt"), "net.prototxt")


@pytest.mark.parametrize("text", ['input: "data" input_shape { dim: 1 } input_shape { dim: 2 }',
                                  'input: "data" input: "theta" input_shape { dim: 1 }',
                                  'input: "data" input_dim: 1 input_dim: 3'])
def test_top_level_input_count_mismatch_names_file_and_line(text):
    config = parse_net(text, "net.prototxt")
    located_error(lambda: stn.Net(config, stn.TEST), "net.prototxt")


def test_bad_top_level_input_shape_names_file_and_line():
    config = parse_net('input: "data"\ninput_shape { dim: 1 dim: -1 }', "net.prototxt")
    located_error(lambda: stn.Net(config, stn.TEST), "net.prototxt")


@pytest.mark.parametrize("shape,theta", [((1, 0, 4, 4), (1, 6)), ((0, 1, 4, 4), (0, 6))], ids=str)
def test_spatial_transformer_rejects_an_empty_bottom_at_set_up(shape, theta):
    dims = " ".join(f"dim: {d}" for d in shape)
    text = (f'input: "data" input_shape {{ {dims} }}\n'
            f'input: "theta" input_shape {{ dim: {theta[0]} dim: {theta[1]} }}\n'
            'layer { name: "st" type: "SpatialTransformer" bottom: "data" bottom: "theta" top: "out" }')
    located_error(lambda: stn.Net(parse_net(text, "net.prototxt"), stn.TEST), "net.prototxt")
