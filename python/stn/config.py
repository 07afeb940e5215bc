"""Reading Caffe configs: text nets and solvers (.prototxt), binary weights (.caffemodel, .binaryproto).

    net = read_net("lenet.prototxt")        # NetConfig: .param (NetParameter), .path,
    net.location_of_layer(3)                #   .layer_locations (where each `layer {` is)
    solver = read_solver("solver.prototxt") # SolverConfig: .param, .path, .resolve(...)
    weights = read_caffemodel("lenet.caffemodel")   # NetParameter with the blobs

The messages are Caffe's (stn.proto.caffe_pb2). Every mistake in a file -- unknown field, bad
enum or number, unterminated string, truncated file, missing or unreadable file -- raises
stn.config_error.ConfigError naming the file and, for text, the 1-based line and column;
no protobuf exception escapes.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Union

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from .config_error import ConfigError, Location
from .proto import caffe_pb2

__all__ = ["NetConfig", "SolverConfig", "read_net", "parse_net", "read_solver", "parse_solver",
           "read_caffemodel", "read_blobproto", "parse_message"]


@dataclass
class NetConfig:
    param: caffe_pb2.NetParameter
    path: str
    layer_locations: List[Location] = field(default_factory=list)  # one per param.layer
    input_location: Optional[Location] = None  # the first top-level `input`, if any

    def location_of_layer(self, index: int) -> Location:
        """Where the index-th layer's `layer` keyword is in the file."""
        return self.layer_locations[index]


@dataclass
class SolverConfig:
    param: caffe_pb2.SolverParameter
    path: str

    def resolve(self, path_in_config: str) -> str:
        """A file named in the solver (net, train_net, test_net, ...): as given when it exists
        relative to the current directory (Caffe's rule), else relative to the solver's folder."""
        if os.path.exists(path_in_config):
            return path_in_config
        folder = "" if self.path == "<string>" else os.path.dirname(self.path)
        return os.path.join(folder, path_in_config)


# ---------------------------------------------------------------------------------------
# Public readers

def read_net(path) -> NetConfig:
    path = os.fspath(path)
    return parse_net(_read_text(path), path)


def parse_net(text: Union[str, bytes], path: str = "<string>") -> NetConfig:
    if isinstance(text, bytes):
        text = _decode(text, path)
    param = parse_message(text, caffe_pb2.NetParameter, path)
    tokens = _scan(text)
    return NetConfig(param, path, _layer_locations(tokens, path), _input_location(tokens, path))


def read_solver(path) -> SolverConfig:
    path = os.fspath(path)
    return parse_solver(_read_text(path), path)


def parse_solver(text: Union[str, bytes], path: str = "<string>") -> SolverConfig:
    return SolverConfig(parse_message(text, caffe_pb2.SolverParameter, path), path)


def read_caffemodel(path) -> caffe_pb2.NetParameter:
    """A binary NetParameter: trained weights in each layer's `blobs`."""
    return _read_binary(os.fspath(path), caffe_pb2.NetParameter, "NetParameter (.caffemodel)")


def read_blobproto(path) -> caffe_pb2.BlobProto:
    """A binary BlobProto, e.g. a mean image (.binaryproto)."""
    return _read_binary(os.fspath(path), caffe_pb2.BlobProto, "BlobProto (.binaryproto)")


def parse_message(text: Union[str, bytes], message_class, path: str = "<string>"):
    """Parses protobuf text format into a new message_class; mistakes raise ConfigError."""
    if isinstance(text, bytes):
        text = _decode(text, path)
    message = message_class()
    try:
        with warnings.catch_warnings():
            # protobuf warns (DeprecationWarning) about an invalid escape such as "\q" and then
            # accepts it, or fails with no position when warnings are errors: make it an error
            # at its place either way.
            warnings.simplefilter("error", DeprecationWarning)
            text_format.Parse(text, message)
    except DeprecationWarning as warning:
        raise ConfigError(f"invalid escape in a string ({warning})", _bad_escape(text, path)) from None
    except text_format.ParseError as error:
        raise _explain(error, text, message.DESCRIPTOR, path) from None
    except Exception as error:  # anything else from inside protobuf
        cause = error.__cause__ or error.__context__
        if isinstance(cause, DeprecationWarning) or "DeprecationWarning" in str(error):
            raise ConfigError(f"invalid escape in a string ({error})", _bad_escape(text, path)) from None
        raise ConfigError(f"{path}: cannot parse as {message.DESCRIPTOR.name}: {error}") from None
    return message


_ESCAPE = re.compile(r"""\\(?:[abfnrtv\\'"?]|x[0-9A-Fa-f]{1,2}|[0-3][0-7]{0,2}|[4-7][0-7]?|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})""")


def _bad_escape(text: str, path: str) -> Location:
    """Where the first escape that protobuf rejects is, scanning the quoted strings (the
    string's own place when no single escape stands out)."""
    tokens = _scan(text)
    for token in tokens:
        if token.text[:1] not in "\"'" or "\\" not in token.text:
            continue
        i = 1
        while i < len(token.text):
            if token.text[i] == "\\":
                match = _ESCAPE.match(token.text, i)
                if match is None:
                    return Location(path, token.line, token.column + i)
                i = match.end()
            else:
                i += 1
    first = next((t for t in tokens if t.text[:1] in "\"'" and "\\" in t.text), None)
    return Location(path, first.line, first.column) if first else Location(path, 1, 1)


# ---------------------------------------------------------------------------------------
# Files

def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None


def _read_text(path: str) -> str:
    return _decode(_read_bytes(path), path)


def _decode(data: bytes, path: str) -> str:
    """UTF-8 text (a leading BOM dropped); binary data is an error at its line and column."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    bad = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = error.start if bad < 0 else min(bad, error.start)
    if bad >= 0:
        line = data.count(b"\n", 0, bad) + 1
        column = len(data[data.rfind(b"\n", 0, bad) + 1:bad].decode("utf-8", "replace")) + 1
        raise ConfigError(f"binary data (byte 0x{data[bad]:02x}) in a text config "
                          "(binary weights are read with read_caffemodel)",
                          Location(path, line, column))
    return text


def _read_binary(path: str, message_class, what: str):
    data = _read_bytes(path)
    if not data:
        raise ConfigError(f"{path}: the file is empty, expected a binary {what}")
    message = message_class()
    try:
        message.ParseFromString(data)
    except Exception as error:  # DecodeError, or anything else protobuf raises
        hint = ""
        if re.match(rb"\s*(#|[A-Za-z_]\w*\s*[:{<])", data[:200]):
            hint = " -- it looks like a text config (read_net / read_solver read those)"
        raise ConfigError(f"{path}: not a binary {what}: {error}{hint}") from None
    return message


# ---------------------------------------------------------------------------------------
# A small scanner of protobuf text format: tokens with 1-based positions. It is run on text
# protobuf has parsed (or failed to parse), to find layers and to name fields in errors.

class _Token(NamedTuple):
    text: str
    line: int
    column: int


_TOKEN = re.compile(r"""
      (?P<skip> [ \t\r\f\v]+ | \#[^\n]* )
    | (?P<newline> \n )
    | (?P<token> "(?:[^"\\\n]|\\.)*"? | '(?:[^'\\\n]|\\.)*'? | [A-Za-z0-9_.+-]+ | . )
    """, re.VERBOSE)


def _scan(text: str) -> List[_Token]:
    tokens, line, line_start = [], 1, 0
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "newline":
            line, line_start = line + 1, match.end()
        elif match.lastgroup == "token":
            tokens.append(_Token(match.group(), line, match.start() - line_start + 1))
    return tokens


def _is_name(tokens: List[_Token], i: int) -> bool:
    """Whether tokens[i] is a field name (followed by ':', '{' or '<', not a value)."""
    return (re.match(r"[A-Za-z_]\w*$", tokens[i].text) is not None
            and i + 1 < len(tokens) and tokens[i + 1].text in (":", "{", "<")
            and (i == 0 or tokens[i - 1].text != ":"))


def _walk(tokens: List[_Token], stop: int, root):
    """Follows the blocks of tokens[:stop]: returns the stack of (message descriptor or None,
    opening name token) still open there, and the `layer` tokens seen at the top level."""
    stack, layers, list_name = [(root, None)], [], None
    for i in range(stop):
        text = tokens[i].text
        if text == "[":  # `name: [` or `name [` opens a list
            j = i - 2 if i >= 1 and tokens[i - 1].text == ":" else i - 1
            list_name = tokens[j] if j >= 0 and re.match(r"[A-Za-z_]\w*$", tokens[j].text) else None
        elif text == "]":
            list_name = None
        elif text in ("{", "<"):
            if i >= 1 and tokens[i - 1].text in ("[", ","):  # an element of `name: [{..}, {..}]`
                name = list_name
                anchor = list_name if tokens[i - 1].text == "[" else tokens[i]
            else:
                j = i - 2 if i >= 1 and tokens[i - 1].text == ":" else i - 1
                name = anchor = tokens[j] if j >= 0 and _is_name(tokens, j) else None
            message = stack[-1][0]
            fd = message.fields_by_name.get(name.text) if message and name else None
            if len(stack) == 1 and name is not None and name.text == "layer":
                layers.append(anchor)
            stack.append((fd.message_type if fd else None, name))
        elif text in ("}", ">") and len(stack) > 1:
            stack.pop()
    return stack, layers


def _input_location(tokens: List[_Token], path: str) -> Optional[Location]:
    depth = 0
    for i, token in enumerate(tokens):
        if token.text in ("{", "<"):
            depth += 1
        elif token.text in ("}", ">"):
            depth = max(0, depth - 1)
        elif depth == 0 and token.text in ("input", "input_shape", "input_dim") and _is_name(tokens, i):
            return Location(path, token.line, token.column)
    return None


def _layer_locations(tokens: List[_Token], path: str) -> List[Location]:
    _, layers = _walk(tokens, len(tokens), caffe_pb2.NetParameter.DESCRIPTOR)
    return [Location(path, t.line, t.column) for t in layers]


# ---------------------------------------------------------------------------------------
# Turning protobuf's ParseError into a ConfigError that names the field

_KIND = {  # field type -> (what a value must be, type name)
    FieldDescriptor.TYPE_INT32: ("an integer", "int32"),
    FieldDescriptor.TYPE_INT64: ("an integer", "int64"),
    FieldDescriptor.TYPE_UINT32: ("a non-negative integer", "uint32"),
    FieldDescriptor.TYPE_UINT64: ("a non-negative integer", "uint64"),
    FieldDescriptor.TYPE_FLOAT: ("a number", "float"),
    FieldDescriptor.TYPE_DOUBLE: ("a number", "double"),
    FieldDescriptor.TYPE_BOOL: ("true or false", "bool"),
    FieldDescriptor.TYPE_STRING: ("a quoted string", "string"),
    FieldDescriptor.TYPE_BYTES: ("a quoted string", "bytes"),
}


def _explain(error, text: str, root, path: str) -> ConfigError:
    raw = re.sub(r"^\d+:\d+ : ", "", str(error))
    line, column = error.GetLine(), error.GetColumn()
    if line is None:
        return ConfigError(f"{path}: {raw}")
    try:
        return _explain_at(raw, Location(path, line, column), text, root)
    except Exception:  # a message we could not analyse: protobuf's own words
        return ConfigError(re.sub(r"^'.*?': ", "", raw), Location(path, line, column))


def _explain_at(raw: str, location: Location, text: str, root) -> ConfigError:
    tokens = _scan(text)
    position = (location.line, location.column)
    here = next((i for i, t in enumerate(tokens) if (t.line, t.column) >= position), None)
    last = len(tokens) - 1 if here is None else here
    value = tokens[here].text if here is not None else ""
    at_end = here is None or (here == len(tokens) - 1 and tokens[here][1:] == position)
    # The field the error is about: for a missing ':' or '{', the name just before the error;
    # otherwise the nearest field name at or before it.
    if re.search(r'Expected "[{:]"', raw):
        i = last - 1 if here is not None else last
        i -= 1 if i >= 0 and tokens[i].text == ":" else 0
    else:
        i = last
        while i >= 0 and not _is_name(tokens, i) and (i == last or tokens[i].text not in "}>"):
            i -= 1
    name = tokens[i] if i >= 0 and re.match(r"[A-Za-z_]\w*$", tokens[i].text) else None
    message = _walk(tokens, i if name else len(tokens), root)[0][-1][0]
    fd = message.fields_by_name.get(name.text) if message and name else None
    where = f"{name.text!r} in {message.name}" if fd else "a field"

    def error(words: str, at: Location = location) -> ConfigError:
        return ConfigError(words, at)

    match = re.search(r'Message type "([\w.]+)" has no field named "([^"]+)"', raw)
    if match:
        owner = root.file.pool.FindMessageTypeByName(match.group(1))
        hint = difflib.get_close_matches(match.group(2), list(owner.fields_by_name), 1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        if owner is caffe_pb2.NetParameter.DESCRIPTOR and match.group(2) == "layers":
            extra = (" ('layers' is Caffe's old V1 format; upgrade the file with Caffe's "
                     "upgrade_net_proto_text)")
        return error(f"unknown field {match.group(2)!r} in {owner.name}{extra}")
    match = re.search(r'Enum type "([\w.]+)" has no value (?:named|with number) (.+?)\.?$', raw)
    if match:
        names = [v.name for v in root.file.pool.FindEnumTypeByName(match.group(1)).values]
        return error(f"bad value {match.group(2)} for {where}: expected one of {', '.join(names)}")
    if "missing ending quote" in raw:
        return error("unterminated string: the closing quote is missing on this line")
    if at_end and (raw.startswith("'': ") or re.match(r'Expected "[}>]"', raw)):
        end = Location(location.path, text.count("\n") + 1, len(text) - text.rfind("\n"))
        opened = _walk(tokens, len(tokens), root)[0][-1][1]
        if opened is not None:
            return error(f"unexpected end of file: the block '{opened.text}' opened at "
                         f"{opened.line}:{opened.column} is not closed", end)
        return error("unexpected end of file", end)
    if fd and "should not have multiple" in raw:
        return error(f"{where} is given more than once (it takes a single value)")
    if fd and re.search(r"Couldn.t parse|out of range|Invalid|Expected \"true\"|Expected string", raw):
        kind, type_name = _KIND.get(fd.type, ("a value", "this field"))
        if value in ("", "{", "}", "<", ">", "[", "]", ",", ";", ":"):
            return error(f"missing value for {where}: expected {kind}, found {value or 'nothing'}")
        problem = f"out of range for {type_name}" if "out of range" in raw else f"expected {kind}"
        return error(f"bad value {value} for {where}: {problem}")
    if fd and 'Expected "{"' in raw:
        return error(f"{where} is a block: write {name.text} {{ ... }}")
    if fd and 'Expected ":"' in raw:
        return error(f"{where} takes a value: write {name.text}: ...")
    if value in ("}", ">") and "Expected identifier" in raw:
        return error(f"unmatched '{value}': no block is open here")
    if "Expected identifier" in raw or "does not have extensions" in raw:
        return error(f"expected a field name, found {value}")
    if fd and 'Expected ","' in raw:
        return error(f"expected ',' or ']' in the list of {where}, found {value}")
    return error(re.sub(r"^'.*?': ", "", raw))
