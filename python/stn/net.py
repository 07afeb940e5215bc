"""Net: a Caffe network read from a prototxt, run on numpy blobs (pycaffe's caffe.Net).

    net = stn.Net("prototxt/st_zoom_translate.prototxt", stn.TEST)
    out = net.forward(data=images, theta=translations)     # {output blob: array}
    net.blobs["transformed"].data                          # numpy views, as in pycaffe
    grads = net.backward(transformed=np.ones_like(...))    # {input blob: diff}; inputs get a
                                                           # gradient only with force_backward

Set-up follows Caffe's Net::Init: phase filtering, implicit Split layers (net_graph.py),
in-place layers, parameter sharing through `param { name }`, and which layers need a
backward pass (parameters with lr_mult > 0, bottoms that need gradients, force_backward,
propagate_down), pruned to the layers that feed a loss.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from . import layers as layer_registry
from .blob import Blob
from .config import parse_net, read_caffemodel, read_net
from .config_error import ConfigError
from .net_graph import PHASES, filtered_layers, insert_splits, loss_weight_of

TRAIN, TEST = 0, 1  # pycaffe's caffe.TRAIN / caffe.TEST


def _has_v1_layers(message) -> bool:
    """Whether a NetParameter carries the V1 `layers` field (number 2), unknown to our schema."""
    from google.protobuf import unknown_fields
    return any(field.field_number == 2 for field in unknown_fields.UnknownFieldSet(message))


def phase_name(phase) -> str:
    if phase in (TRAIN, "TRAIN"):
        return "TRAIN"
    if phase in (TEST, "TEST"):
        return "TEST"
    raise ValueError(f"phase must be stn.TRAIN, stn.TEST, 'TRAIN' or 'TEST', got {phase!r}")


class Net:
    def __init__(self, model, phase=TEST, weights=None, *, level=0, stages=(), dtype=np.float32,
                 seed=0):
        """model: a prototxt path, or a NetConfig from stn.config.parse_net."""
        config = read_net(model) if isinstance(model, (str, os.PathLike)) else model
        self.config = config
        self.phase = phase_name(phase)
        self.dtype = np.dtype(dtype)
        self.name = config.param.name
        self.base_dir = os.path.dirname(os.path.abspath(config.path)) if config.path != "<string>" else os.getcwd()
        self._rng = np.random.default_rng(seed)
        graph = insert_splits(filtered_layers(config.param, PHASES[self.phase], level, set(stages),
                                              config.layer_locations, config.input_location))
        self.blobs = OrderedDict()
        self.layers, self._bottoms, self._tops, self._layer_params = [], [], [], []
        self._build(graph, force_backward=config.param.force_backward)
        if weights is not None:
            self.copy_from(weights)

    # ---------------------------------------------------------------- set-up
    def _build(self, graph, force_backward: bool):
        self.loss_weights = {}       # top blob name -> weight
        self.param_specs = []        # per learnable Blob: (lr_mult, decay_mult), in self.learnable order
        self.learnable = []          # unique learnable Blobs (shared ones once)
        shared = {}                  # param name -> (Blob, owner layer name)
        written_by = {}
        for layer_param, location in graph:
            cls = layer_registry.LAYER_TYPES.get(layer_param.type)
            if cls is None:
                raise ConfigError(f"layer '{layer_param.name}': unknown layer type '{layer_param.type}'"
                                  f" (known: {', '.join(sorted(layer_registry.LAYER_TYPES))})", location)
            layer = cls(layer_param, self.phase, location=location, dtype=self.dtype, rng=self._rng)
            layer.base_dir = self.base_dir
            self._check_counts(layer, layer_param)
            bottoms = [self.blobs[name] for name in layer_param.bottom]
            tops = []
            for name in layer_param.top:
                in_place = name in layer_param.bottom
                if name in written_by and not in_place:
                    raise layer.error(f"top '{name}' is already written by layer "
                                      f"'{written_by[name]}' and this layer is not in-place")
                written_by[name] = layer_param.name
                if not in_place:
                    self.blobs[name] = Blob((), self.dtype)
                tops.append(self.blobs[name])
            layer.setup(bottoms, tops)
            layer.reshape(bottoms, tops)
            self._share_params(layer, layer_param, shared)
            for j, name in enumerate(layer_param.top):
                weight = loss_weight_of(layer_param, j)
                if weight != 0:
                    self.loss_weights[name] = weight
            self.layers.append(layer)
            self._bottoms.append(bottoms)
            self._tops.append(tops)
        self._plan_backward(force_backward)

    def _check_counts(self, layer, layer_param):
        for what, count, (low, high) in (("bottom", len(layer_param.bottom), layer.bottom_count),
                                         ("top", len(layer_param.top), layer.top_count)):
            if count < low or (high is not None and count > high):
                wanted = f"{low}" if low == high else f"{low} to {high if high is not None else 'any'}"
                raise layer.error(f"takes {wanted} {what} blob(s), got {count}")

    def _share_params(self, layer, layer_param, shared):
        """Registers the layer's parameter blobs; a `param { name }` seen before makes this
        layer use the first owner's blob. As in Caffe, lr_mult / decay_mult come from the
        first layer that sets them explicitly, and two explicit values must agree."""
        specs = list(layer_param.param)
        for k, blob in enumerate(layer.blobs):
            spec = specs[k] if k < len(specs) else None
            name = spec.name if spec is not None and spec.name else ""
            explicit = {field: getattr(spec, field) for field in ("lr_mult", "decay_mult")
                        if spec is not None and spec.HasField(field)}
            if name and name in shared:
                owner_blob, owner, index, owner_explicit = shared[name]
                if owner_blob.shape != blob.shape:
                    raise layer.error(f"shared parameter '{name}' has shape {blob.shape} here but "
                                      f"{owner_blob.shape} in layer '{owner}'")
                layer.blobs[k] = owner_blob
                for field, value in explicit.items():
                    if field in owner_explicit and owner_explicit[field] != value:
                        raise layer.error(f"shared parameter '{name}' has {field} {value:g} here "
                                          f"but {owner_explicit[field]:g} in layer '{owner}'")
                    owner_explicit.setdefault(field, value)
                self.param_specs[index] = (owner_explicit.get("lr_mult", 1.0),
                                           owner_explicit.get("decay_mult", 1.0))
                continue
            if name:
                shared[name] = (blob, layer_param.name, len(self.learnable), explicit)
            self.learnable.append(blob)
            self.param_specs.append((explicit.get("lr_mult", 1.0), explicit.get("decay_mult", 1.0)))

    def _plan_backward(self, force_backward: bool):
        """Which layers run backward, and which of their bottoms get a gradient."""
        lr = {id(b): spec[0] for b, spec in zip(self.learnable, self.param_specs)}
        needs_grad = set()  # ids of blobs whose gradient is wanted
        self._propagate = []
        for layer, bottoms, tops in zip(self.layers, self._bottoms, self._tops):
            explicit = list(layer.param.propagate_down)
            down = []
            for j, bottom in enumerate(bottoms):
                forced = force_backward and layer.allow_force_backward(j)
                wanted = bool(explicit[j]) if j < len(explicit) else id(bottom) in needs_grad
                down.append(wanted or forced)  # Caffe: force_backward wins over propagate_down
            has_params = any(lr.get(id(b), 0) != 0 for b in layer.blobs)
            if any(down) or has_params:
                needs_grad.update(id(t) for t in tops)
            self._propagate.append(down)
        self._force_backward = force_backward
        self._diffs_from_outputs = False
        self._run_backward = self._layers_feeding(self.loss_weights)

    def _layers_feeding(self, sources) -> list:
        """Per layer: whether it runs backward when gradients start at the blobs named in
        `sources` (the loss tops, plus any output diffs given): it must lie on a path to one
        of them (or force_backward) and have a bottom or a parameter to send gradient to."""
        lr = {id(b): spec[0] for b, spec in zip(self.learnable, self.param_specs)}
        reached = {id(self.blobs[name]) for name in sources}
        run = [False] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            tops, bottoms, down = self._tops[i], self._bottoms[i], self._propagate[i]
            if not (self._force_backward or any(id(t) in reached for t in tops)):
                continue
            # The layer consumes its tops' gradient; an in-place bottom (the same blob) is
            # reached again only if this layer sends gradient through it.
            reached.difference_update(id(t) for t in tops)
            trains = any(lr.get(id(b), 0) != 0 for b in self.layers[i].blobs)
            run[i] = any(down) or trains
            if run[i]:
                reached.update(id(b) for b, d in zip(bottoms, down) if d)
        return run

    # ---------------------------------------------------------------- running
    @property
    def rng(self):
        """The numpy Generator every layer of this net draws from (Dropout masks, data
        shuffling, crops); solver snapshots save its state for an exact resume."""
        return self._rng

    @property
    def inputs(self) -> list:
        """Blobs no layer writes except Input layers: what forward(**inputs) can set."""
        return [name for layer, tops in zip(self.layers, self._tops) if layer.type_name == "Input"
                for name in layer.param.top]

    @property
    def outputs(self) -> list:
        """Blobs left unread after the last layer (Caffe's available blobs, sorted as Caffe's
        std::set): a layer's bottoms leave the set, its tops enter it, in-place ones included."""
        available = set()
        for layer in self.layers:
            available.difference_update(layer.param.bottom)
            available.update(layer.param.top)
        return sorted(available)

    @property
    def params(self) -> OrderedDict:
        """layer name -> list of its parameter Blobs (pycaffe's net.params)."""
        return OrderedDict((layer.name, layer.blobs) for layer in self.layers if layer.blobs)

    def reshape(self) -> None:
        for layer, bottoms, tops in zip(self.layers, self._bottoms, self._tops):
            layer.reshape(bottoms, tops)

    def forward(self, **inputs) -> dict:
        """Sets the named input blobs, runs every layer forward; returns {output: data}."""
        for name, value in inputs.items():
            if name not in self.blobs:
                raise KeyError(f"Net.forward: no blob named '{name}' (inputs: {self.inputs})")
            value = np.asarray(value, self.dtype)
            blob = self.blobs[name]
            blob.reshape(value.shape)
            blob.data[...] = value
        for layer, bottoms, tops in zip(self.layers, self._bottoms, self._tops):
            if layer.type_name != "Input":
                layer.reshape(bottoms, tops)
            layer.forward(bottoms, tops)
        return {name: self.blobs[name].data for name in self.outputs}

    def loss(self) -> float:
        """Sum of loss_weight * loss over the loss tops, after forward()."""
        return float(sum(w * self.blobs[name].data.sum() for name, w in self.loss_weights.items()))

    def backward(self, **diffs) -> dict:
        """Runs backward from the loss tops (their diff = loss_weight) and any output diffs
        given; returns {input blob: diff}."""
        if diffs or self._diffs_from_outputs:
            # Gradients started at outputs reach layers a loss-only pass skips; their diffs
            # must not leak into the next pass (a Split would sum a stale copy).
            for blob in self.blobs.values():
                blob.diff[...] = 0
        self._diffs_from_outputs = bool(diffs)
        for name, weight in self.loss_weights.items():
            self.blobs[name].diff[...] = weight
        for name, value in diffs.items():
            if name not in self.blobs:
                raise KeyError(f"Net.backward: no blob named '{name}' (outputs: {self.outputs})")
            self.blobs[name].diff[...] = value
        run = self._layers_feeding(list(self.loss_weights) + list(diffs)) if diffs else self._run_backward
        for i in reversed(range(len(self.layers))):
            if run[i]:
                self.layers[i].backward(self._tops[i], self._propagate[i], self._bottoms[i])
        return {name: self.blobs[name].diff for name in self.inputs}

    # ---------------------------------------------------------------- weights
    def copy_from(self, path) -> None:
        """Loads weights by layer name from a binary .caffemodel (or .h5, Caffe's HDF5 layout)."""
        path = os.fspath(path)
        if path.endswith((".h5", ".hdf5")):
            from .weights_hdf5 import read_weights_hdf5
            stored = read_weights_hdf5(path)
        else:
            message = read_caffemodel(path)
            if not message.layer and _has_v1_layers(message):
                raise ConfigError(f"{path}: no layers in the new format: a V1 caffemodel "
                                  "('layers' entries) must be upgraded with Caffe's "
                                  "upgrade_net_proto_binary first")
            stored = {layer.name: [_blob_array(path, layer.name, k, b) for k, b in enumerate(layer.blobs)]
                      for layer in message.layer if layer.blobs}
        for layer in self.layers:
            if layer.name not in stored:
                continue
            arrays = stored[layer.name]
            if len(arrays) != len(layer.blobs):
                raise ConfigError(f"{path}: layer '{layer.name}' has {len(arrays)} weight blobs, "
                                  f"the net expects {len(layer.blobs)}")
            for k, (blob, array) in enumerate(zip(layer.blobs, arrays)):
                if array.size != blob.data.size:
                    raise ConfigError(f"{path}: layer '{layer.name}' blob {k} has shape "
                                      f"{array.shape}, the net expects {blob.shape}")
                blob.data[...] = array.reshape(blob.shape)

    def save(self, path) -> None:
        """Writes the weights as a binary .caffemodel (or .h5 with h5py)."""
        path = os.fspath(path)
        if path.endswith((".h5", ".hdf5")):
            from .weights_hdf5 import write_weights_hdf5
            write_weights_hdf5(path, {layer.name: [b.data for b in layer.blobs] for layer in self.layers if layer.blobs})
            return
        from .proto import caffe_pb2
        message = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            if not layer.blobs:
                continue
            stored = message.layer.add(name=layer.name, type=layer.type_name)
            for blob in layer.blobs:
                proto = stored.blobs.add()
                proto.shape.dim.extend(blob.shape)
                proto.data.extend(blob.data.astype(np.float32).ravel().tolist())
        from .atomic_write import write_atomically
        write_atomically(path, message.SerializeToString())


def _blob_array(path, layer_name: str, index: int, blob) -> np.ndarray:
    """A BlobProto's values in its shape (or the legacy num/channels/height/width); a count
    that does not match the shape is an error naming the file."""
    shape = tuple(blob.shape.dim) or (blob.num, blob.channels, blob.height, blob.width)
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, np.float64)
    if any(d < 0 for d in shape) or values.size != int(np.prod(shape, dtype=np.int64)):
        raise ConfigError(f"{path}: layer '{layer_name}' blob {index} holds {values.size} "
                          f"values, its shape {list(shape)} says {int(np.prod(shape))}")
    return values.reshape(shape)
