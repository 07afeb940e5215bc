"""stn.config and stn.proto: Caffe's text format (every grammar feature), errors with file, line
and column, layer locations, binary .caffemodel / .binaryproto round trips, solvers, and the
field numbers and defaults that make Caffe's own files parse."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from stn.config import (ConfigError, parse_message, parse_net, parse_solver, read_blobproto,
                        read_caffemodel, read_net, read_solver)
from stn.config_error import Location
from stn.proto import caffe_pb2 as pb

SEED = Path(__file__).resolve().parents[1] / "prototxt" / "st_zoom_translate.prototxt"


def error_of(text: str, path: str = "net.prototxt") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_net(text, path)
    return info.value


# ---------------------------------------------------------------------------------------
# Grammar

def test_fields_blocks_colon_before_brace_and_angle_brackets():
    net = parse_net('name: "n"  layer { name: "a" }  layer: { name: "b" }  layer < name: "c" >').param
    assert net.name == "n"
    assert [layer.name for layer in net.layer] == ["a", "b", "c"]


def test_comments_anywhere_but_inside_strings():
    net = parse_net('# heading\nname: "a#b"  # trailing\nlayer {  # open\n  name: "x" # value\n}\n#end')
    assert net.param.name == "a#b"
    assert net.param.layer[0].name == "x"


def test_repeated_fields_and_lists():
    net = parse_net("""
        input: "a" input: 'b'
        input: ["c", 'd']
        input_shape { dim: 1 dim: [2, 3] }
        layer [ { name: "l1" }, { name: "l2" } ]
        layer { bottom: "x" bottom: "y" top: ["z"] loss_weight: [1, 0.5] propagate_down: [true, false] }
    """).param
    assert list(net.input) == ["a", "b", "c", "d"]
    assert list(net.input_shape[0].dim) == [1, 2, 3]
    assert [layer.name for layer in net.layer] == ["l1", "l2", ""]
    last = net.layer[2]
    assert list(last.bottom) == ["x", "y"] and list(last.top) == ["z"]
    assert list(last.loss_weight) == [1.0, 0.5] and list(last.propagate_down) == [True, False]


def test_strings_quotes_escapes_and_concatenation():
    net = parse_net(r"""name: 'it\'s' "a \"q\"" '\n\t\\' "\x41\101" layer { name: "" 'x' }""").param
    assert net.name == "it's" + 'a "q"' + "\n\t\\" + "AA"
    assert net.layer[0].name == "x"


def test_enums_as_identifiers_and_numbers():
    net = parse_net("""
        layer { pooling_param { pool: AVE round_mode: FLOOR } include { phase: TRAIN } }
        layer { pooling_param { pool: 2 } eltwise_param { operation: MAX } }
        layer { loss_param { normalization: BATCH_SIZE } phase: TEST }
    """).param
    assert net.layer[0].pooling_param.pool == pb.PoolingParameter.AVE
    assert net.layer[0].pooling_param.round_mode == pb.PoolingParameter.FLOOR
    assert net.layer[0].include[0].phase == pb.TRAIN
    assert net.layer[1].pooling_param.pool == pb.PoolingParameter.STOCHASTIC
    assert net.layer[1].eltwise_param.operation == pb.EltwiseParameter.MAX
    assert net.layer[2].loss_param.normalization == pb.LossParameter.BATCH_SIZE
    assert net.layer[2].phase == pb.TEST


def test_numbers_exponents_inf_nan_hex_and_booleans():
    net = parse_net("""
        force_backward: true  debug_info: False
        layer { power_param { power: 1e-3 scale: -2.5E+2 shift: .5 } }
        layer { power_param { power: inf scale: -inf shift: nan } }
        layer { power_param { power: 2 scale: 1.5f } inner_product_param { num_output: 0x10 } }
        layer { st_param { theta_1_1: 1e300 theta_1_3: -0.25 output_H: 28 } }
    """).param
    assert net.force_backward is True and net.debug_info is False
    p = net.layer[0].power_param
    assert p.power == pytest.approx(1e-3) and p.scale == -250.0 and p.shift == 0.5
    p = net.layer[1].power_param
    assert p.power == math.inf and p.scale == -math.inf and math.isnan(p.shift)
    assert net.layer[2].power_param.power == 2.0 and net.layer[2].power_param.scale == 1.5
    assert net.layer[2].inner_product_param.num_output == 16
    st = net.layer[3].st_param
    assert st.theta_1_1 == 1e300 and st.theta_1_3 == -0.25 and st.output_H == 28  # double fields


def test_field_separators_and_empty_text():
    assert parse_net('name: "a"; force_backward: true,').param.force_backward
    empty = parse_net("  # nothing\n")
    assert empty.param == pb.NetParameter() and empty.layer_locations == []


# ---------------------------------------------------------------------------------------
# Errors: file, line, column, and the offending field or value

def test_unknown_field_names_the_message_type():
    err = error_of('name: "n"\nlayer {\n  name: "ip"\n  inner_product_param {\n    foo: 3\n  }\n}\n')
    assert str(err) == "net.prototxt:5:5: unknown field 'foo' in InnerProductParameter"
    assert err.location == Location("net.prototxt", 5, 5)
    assert isinstance(err, ValueError)


def test_unknown_field_suggests_a_close_name_and_the_v1_format():
    assert "did you mean 'num_output'" in str(error_of("layer { inner_product_param { num_ouput: 3 } }"))
    err = error_of('layers { name: "old" }')
    assert str(err).startswith("net.prototxt:1:1: unknown field 'layers' in NetParameter")
    assert "V1" in str(err)


def test_bad_enum_lists_the_choices():
    err = error_of("layer {\n  pooling_param { pool: MAXIMUM }\n}")
    assert str(err) == ("net.prototxt:2:25: bad value MAXIMUM for 'pool' in PoolingParameter: "
                        "expected one of MAX, AVE, STOCHASTIC")
    assert "bad value 9 for 'pool'" in str(error_of("layer { pooling_param { pool: 9 } }"))
    assert "expected one of TRAIN, TEST" in str(error_of("layer { include { phase: TRAN } }"))


@pytest.mark.parametrize("text, column, message", [
    ("layer { inner_product_param { num_output: 12x } }", 43,
     "bad value 12x for 'num_output' in InnerProductParameter: expected a non-negative integer"),
    ("layer { inner_product_param { num_output: 1.5 } }", 43,
     "bad value 1.5 for 'num_output' in InnerProductParameter: expected a non-negative integer"),
    ("layer { inner_product_param { num_output: -1 } }", 43,
     "bad value -1 for 'num_output' in InnerProductParameter: out of range for uint32"),
    ("layer { dropout_param { dropout_ratio: half } }", 40,
     "bad value half for 'dropout_ratio' in DropoutParameter: expected a number"),
    ("layer { st_param { to_compute_dU: nope } }", 35,
     "bad value nope for 'to_compute_dU' in SpatialTransformerParameter: expected true or false"),
    ("layer { name: 3 }", 15, "bad value 3 for 'name' in LayerParameter: expected a quoted string"),
    ("input_shape { dim: [1, x] }", 24, "bad value x for 'dim' in BlobShape: expected an integer"),
])
def test_bad_values(text, column, message):
    assert str(error_of(text)) == f"net.prototxt:1:{column}: {message}"


def test_unterminated_string():
    err = error_of('name: "n"\nlayer {\n  name: "conv1\n}\n')
    assert err.location == Location("net.prototxt", 3, 9)
    assert "unterminated string" in err.message


def test_truncated_file_points_at_the_end_and_the_open_block():
    err = error_of('name: "n"\nlayer {\n  name: "a"\n  inner_product_param {\n    num_output: 3\n')
    assert err.location == Location("net.prototxt", 6, 1)
    assert err.message == ("unexpected end of file: the block 'inner_product_param' opened at "
                           "4:3 is not closed")
    err = error_of("layer {\n  name:")
    assert err.location == Location("net.prototxt", 2, 8)
    assert "unexpected end of file" in err.message


def test_structure_mistakes():
    err = error_of('name: "a"\nname: "b"')
    assert str(err) == ("net.prototxt:2:7: 'name' in NetParameter is given more than once "
                        "(it takes a single value)")
    assert "'layer' in NetParameter is a block" in str(error_of("layer: 3"))
    assert "'name' in NetParameter takes a value" in str(error_of("name { }"))
    assert str(error_of("layer { }\n}")) == "net.prototxt:2:1: unmatched '}': no block is open here"
    assert str(error_of("layer { param { lr_mult: } }")) == (
        "net.prototxt:1:26: missing value for 'lr_mult' in ParamSpec: expected a number, found }")
    assert str(error_of("input_shape { dim: [1 2] }")) == (
        "net.prototxt:1:23: expected ',' or ']' in the list of 'dim' in BlobShape, found 2")
    assert str(error_of('name: "a" ]')) == "net.prototxt:1:11: expected a field name, found ]"


def test_errors_hide_protobufs_exceptions():
    err = error_of("layer { foo: 1 }")
    assert err.__cause__ is None and err.__suppress_context__


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.prototxt"
    for reader in (read_net, read_solver, read_caffemodel, read_blobproto):
        with pytest.raises(ConfigError, match="cannot read .*nope.prototxt"):
            reader(missing)
    with pytest.raises(ConfigError, match="cannot read"):
        read_net(tmp_path)  # a folder


def test_binary_file_read_as_text(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b'name: "x"\n\x0a\x03abc\xff\x00')
    with pytest.raises(ConfigError) as info:
        read_net(path)
    assert info.value.location == Location(str(path), 3, 5)  # \x0a is a newline
    assert "binary data (byte 0xff)" in info.value.message
    with pytest.raises(ConfigError, match=r"^<string>:1:4: binary data \(byte 0x00\)"):
        parse_net(b"ab \0")
    assert parse_net(b"\xef\xbb\xbfname: \"\xc3\xa9\"").param.name == "\u00e9"


def test_binary_garbage_as_caffemodel(tmp_path):
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="garbage.caffemodel: not a binary NetParameter"):
        read_caffemodel(garbage)
    text = tmp_path / "net.caffemodel"
    text.write_text('name: "n"\nlayer { name: "a" }\n')
    with pytest.raises(ConfigError, match="looks like a text config"):
        read_caffemodel(text)
    empty = tmp_path / "empty.binaryproto"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match="empty.binaryproto: the file is empty"):
        read_blobproto(empty)


# ---------------------------------------------------------------------------------------
# Layer locations

def test_layer_locations_skip_comments_and_strings():
    text = (
        '# layer { in a comment }\n'                     # 1
        'name: "layer {"\n'                               # 2
        'input: "layer"\n'                                # 3
        'layer {\n'                                       # 4  <- layer 0
        '  name: "layer"  # layer {\n'                    # 5
        '  bottom: \'layer { }\'\n'                       # 6
        '}\n'                                             # 7
        '\tlayer{ name: "t" }  layer: { name: "u" }\n'    # 8  <- layers 1, 2
        '  layer <\n'                                     # 9  <- layer 3
        '    inner_product_param { num_output: 2 }\n'     # 10
        '  >\n'                                           # 11
        'layer [ { name: "v" }, { name: "w" } ]\n'        # 12 <- layers 4, 5
    )
    net = parse_net(text, "n.prototxt")
    assert len(net.param.layer) == 6
    assert [(loc.line, loc.column) for loc in net.layer_locations] == [
        (4, 1), (8, 2), (8, 22), (9, 3), (12, 1), (12, 24)]
    assert net.location_of_layer(3) == Location("n.prototxt", 9, 3)
    assert net.path == "n.prototxt"


def test_read_net_keeps_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.prototxt").write_text('layer { name: "x" }\n\nlayer { name: "y" }\n')
    net = read_net("a.prototxt")
    assert net.path == "a.prototxt"
    assert net.layer_locations == [Location("a.prototxt", 1, 1), Location("a.prototxt", 3, 1)]
    Path("b.prototxt").write_text('layer {\n  nme: "x"\n}\n')
    with pytest.raises(ConfigError, match=r"^b\.prototxt:2:3: unknown field 'nme' in LayerParameter"):
        read_net("b.prototxt")


def test_seed_config():
    net = read_net(SEED)
    p = net.param
    assert p.name == "stn"
    assert list(p.input) == ["data", "theta"]
    assert [list(s.dim) for s in p.input_shape] == [[1, 3, 227, 227], [1, 2]]
    (layer,) = p.layer
    assert (layer.name, layer.type) == ("st_1", "SpatialTransformer")
    assert list(layer.bottom) == ["data", "theta"] and list(layer.top) == ["transformed"]
    st = layer.st_param
    assert st.to_compute_dU is False
    assert (st.theta_1_1, st.theta_1_2, st.theta_2_1, st.theta_2_2) == (0.5, 0.0, 0.0, 0.5)
    assert not st.HasField("theta_1_3") and not st.HasField("theta_2_3")
    assert (st.transform_type, st.sampler_type) == ("affine", "bilinear")
    assert not st.HasField("output_H")
    line = next(i for i, s in enumerate(SEED.read_text().splitlines(), 1) if s.startswith("layer"))
    assert net.layer_locations == [Location(str(SEED), line, 1)]


# ---------------------------------------------------------------------------------------
# Binary files

NET_WITH_BLOBS = """
name: "tiny"
layer {
  name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 2 weight_filler { type: "file" file: "w.txt" } }
  blobs { shape { dim: 2 dim: 3 } data: [0.5, -1, 2, 3.25, 1e-3, -7] }
  blobs { num: 1 channels: 1 height: 1 width: 2 data: 0.1 data: 0.2 }
}
layer { name: "d" type: "Power" blobs { shape { dim: 2 } double_data: [0.1, 1e-300] } }
"""


def test_round_trip_text_binary_parse(tmp_path):
    original = parse_net(NET_WITH_BLOBS).param
    path = tmp_path / "tiny.caffemodel"
    path.write_bytes(original.SerializeToString())
    loaded = read_caffemodel(path)
    assert loaded == original
    weights = loaded.layer[0].blobs[0]
    np.testing.assert_array_equal(np.array(weights.data, np.float32).reshape(tuple(weights.shape.dim)),
                                  np.float32([[0.5, -1, 2], [3.25, 1e-3, -7]]))
    legacy = loaded.layer[0].blobs[1]
    assert (legacy.num, legacy.channels, legacy.height, legacy.width) == (1, 1, 1, 2)
    assert list(loaded.layer[1].blobs[0].double_data) == [0.1, 1e-300]
    assert loaded.layer[0].inner_product_param.weight_filler.file == "w.txt"

    mean = tmp_path / "mean.binaryproto"
    mean.write_bytes(original.layer[0].blobs[0].SerializeToString())
    assert read_blobproto(mean) == original.layer[0].blobs[0]


def test_caffemodel_keeps_fields_of_layers_it_does_not_know(tmp_path):
    layer = pb.LayerParameter(name="bn", type="BatchNorm")
    # batch_norm_param (139) { use_global_stats (1): true }, written by a full Caffe build
    data = layer.SerializeToString() + bytes([0xDA, 0x08, 0x02, 0x08, 0x01])
    net_bytes = bytes([0xA2, 0x06, len(data)]) + data  # NetParameter.layer = 100
    path = tmp_path / "bn.caffemodel"
    path.write_bytes(net_bytes)
    loaded = read_caffemodel(path)
    assert loaded.layer[0].name == "bn"
    assert loaded.SerializeToString() == net_bytes


def test_wire_format_matches_caffe_field_numbers():
    layer = pb.LayerParameter()
    layer.inner_product_param.num_output = 10
    assert layer.SerializeToString() == bytes([0xAA, 0x07, 0x02, 0x08, 0x0A])  # 117, then 1
    fields = {f.name: f.number for f in pb.LayerParameter.DESCRIPTOR.fields}
    assert {k: fields[k] for k in ("name", "type", "bottom", "top", "blobs", "include",
                                   "transform_param", "loss_param", "convolution_param",
                                   "pooling_param", "input_param", "st_param")} == {
        "name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7, "include": 8,
        "transform_param": 100, "loss_param": 101, "convolution_param": 106,
        "pooling_param": 121, "input_param": 143, "st_param": 148}
    assert pb.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
    assert pb.FillerParameter.DESCRIPTOR.fields_by_name["file"].number == 9
    assert pb.BlobProto.DESCRIPTOR.fields_by_name["double_data"].number == 8
    assert pb.DESCRIPTOR.name == "stn/proto/caffe.proto" and pb.DESCRIPTOR.package == "stn_caffe"


def test_caffe_defaults():
    assert pb.FillerParameter().type == "constant" and pb.FillerParameter().std == 1.0
    assert pb.FillerParameter().sparse == -1
    assert pb.FillerParameter().variance_norm == pb.FillerParameter.FAN_IN
    conv = pb.ConvolutionParameter()
    assert conv.bias_term and conv.group == 1 and conv.axis == 1 and not conv.force_nd_im2col
    pool = pb.PoolingParameter()
    assert pool.pool == pb.PoolingParameter.MAX and pool.stride == 1
    assert pool.round_mode == pb.PoolingParameter.CEIL
    assert pb.LossParameter().normalization == pb.LossParameter.VALID
    assert pb.DropoutParameter().dropout_ratio == 0.5
    assert pb.FlattenParameter().end_axis == -1 and pb.ReshapeParameter().num_axes == -1
    assert pb.NetState().phase == pb.TEST
    assert pb.ParamSpec().lr_mult == 1.0 and pb.ParamSpec().decay_mult == 1.0
    assert pb.ImageDataParameter().batch_size == 1 and pb.ImageDataParameter().is_color
    st = pb.SpatialTransformerParameter()
    assert (st.transform_type, st.sampler_type, st.to_compute_dU) == ("affine", "bilinear", True)
    s = pb.SolverParameter()
    assert s.type == "SGD" and s.regularization_type == "L2"
    assert s.snapshot_format == pb.SolverParameter.BINARYPROTO
    assert s.solver_mode == pb.SolverParameter.GPU and s.solver_type == pb.SolverParameter.SGD
    assert s.random_seed == -1 and s.clip_gradients == -1 and s.average_loss == 1
    assert s.iter_size == 1 and s.test_initialization and s.snapshot_after_train
    assert s.delta == pytest.approx(1e-8) and s.momentum2 == pytest.approx(0.999)
    assert s.rms_decay == pytest.approx(0.99)
    assert pb.SolverState().current_step == 0


# ---------------------------------------------------------------------------------------
# Solvers

SOLVER = """
net: "train.prototxt"
test_iter: 100  test_interval: 500
base_lr: 0.01  momentum: 0.9  weight_decay: 5e-4
lr_policy: "multistep"  gamma: 0.1  stepvalue: [1000, 2000]
display: 100  max_iter: 10000  snapshot: 5000  snapshot_prefix: "snap/lenet"
solver_mode: CPU  snapshot_format: HDF5  type: "Adam"  random_seed: 7
train_state { stage: "a" }
"""


def test_solver_fields():
    s = parse_solver(SOLVER).param
    assert s.net == "train.prototxt" and list(s.test_iter) == [100] and s.test_interval == 500
    assert s.base_lr == pytest.approx(0.01) and s.weight_decay == pytest.approx(5e-4)
    assert list(s.stepvalue) == [1000, 2000] and s.lr_policy == "multistep"
    assert s.solver_mode == pb.SolverParameter.CPU and s.snapshot_format == pb.SolverParameter.HDF5
    assert s.type == "Adam" and s.random_seed == 7 and list(s.train_state.stage) == ["a"]


def test_solver_errors_and_inline_nets():
    with pytest.raises(ConfigError, match=r"^s\.prototxt:2:14: bad value GPUU for 'solver_mode'"):
        parse_solver('base_lr: 1\nsolver_mode: GPUU\n', "s.prototxt")
    with pytest.raises(ConfigError, match=r"^<string>:1:43: unknown field 'bad' in InnerProductParameter"):
        parse_solver("net_param { layer { inner_product_param { bad: 1 } } }")
    s = parse_solver('net_param { name: "inline" layer { name: "a" } }').param
    assert s.net_param.layer[0].name == "a"


def test_solver_resolves_net_paths(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "train.prototxt").write_text('name: "t"')
    (folder / "solver.prototxt").write_text(SOLVER)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    solver = read_solver(folder / "solver.prototxt")
    assert solver.param.net == "train.prototxt"  # kept as written
    assert solver.resolve(solver.param.net) == os.path.join(str(folder), "train.prototxt")
    assert read_net(solver.resolve(solver.param.net)).param.name == "t"
    Path("train.prototxt").write_text('name: "cwd"')  # Caffe's rule: the current directory first
    assert solver.resolve("train.prototxt") == "train.prototxt"


def test_parse_message_for_other_messages():
    layer = parse_message('name: "a" type: "ReLU" relu_param { negative_slope: 0.1 }', pb.LayerParameter)
    assert layer.relu_param.negative_slope == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"^x:1:1: unknown field 'dim2' in BlobShape"):
        parse_message("dim2: 1", pb.BlobShape, "x")


def _normalized(file_proto):
    """protoc versions differ in json names (descriptor sets only) and float default spelling."""
    for message in file_proto.message_type:
        for f in message.field:
            f.ClearField("json_name")
            if f.type == f.TYPE_FLOAT and f.HasField("default_value"):
                f.default_value = repr(float(np.float32(f.default_value)))
    return file_proto


def test_generated_module_matches_caffe_proto(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    root = Path(__file__).resolve().parents[1] / "python"
    out = tmp_path / "caffe.desc"
    assert protoc.main(["protoc", f"-I{root}", f"--descriptor_set_out={out}",
                        str(root / "stn" / "proto" / "caffe.proto")]) == 0
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    shipped = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert _normalized(compiled) == _normalized(shipped), \
        "caffe_pb2.py is stale: regenerate it (see python/stn/proto/__init__.py)"
