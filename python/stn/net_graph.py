"""Turning a NetParameter into the list of layers a Net runs, as Caffe's Net::Init does:
phase filtering (include / exclude rules), top-level inputs, and implicit Split layers.

A blob read by several layers gets a Split layer after its producer, one copy per reader,
so each reader writes its own bottom diff and the Split sums them (Caffe's insert_splits).
Loss tops (loss_weight != 0) count as one more reader. An in-place layer (top named as its
bottom) rewrites the blob's name: readers after it read its output.
"""

from __future__ import annotations

import copy

from .config_error import ConfigError
from .proto import caffe_pb2

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def state_matches_rule(rule, phase: int, level: int, stages) -> bool:
    """Caffe's StateMeetsRule: phase, min/max level, required and forbidden stages."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(stage not in stages for stage in rule.stage):
        return False
    if any(stage in stages for stage in rule.not_stage):
        return False
    return True


def layer_included(layer, phase: int, level: int, stages) -> bool:
    """A layer with include rules runs when one matches; with exclude rules, when none does."""
    if layer.include:
        return any(state_matches_rule(r, phase, level, stages) for r in layer.include)
    return not any(state_matches_rule(r, phase, level, stages) for r in layer.exclude)


def loss_weight_of(layer, top_index: int) -> float:
    """Caffe: an explicit loss_weight, else 1 for the first top of a *Loss layer, else 0."""
    if top_index < len(layer.loss_weight):
        return layer.loss_weight[top_index]
    return 1.0 if top_index == 0 and layer.type.endswith("Loss") else 0.0


def filtered_layers(net_param, phase: int, level: int, stages, locations, input_location=None):
    """[(LayerParameter copy, Location)] of the layers that run in this state, with the
    top-level `input` blobs turned into a leading Input layer (located at the first `input`)."""
    kept = []
    inputs = list(net_param.input)
    if inputs:
        shapes = [list(s.dim) for s in net_param.input_shape]
        if not shapes and net_param.input_dim:
            dims = list(net_param.input_dim)
            if len(dims) != 4 * len(inputs):
                raise ConfigError(f"input_dim must give 4 dims for each of the {len(inputs)} "
                                  f"inputs, got {len(dims)}", input_location)
            shapes = [dims[4 * i: 4 * i + 4] for i in range(len(inputs))]
        if len(shapes) != len(inputs):
            raise ConfigError(f"each of the {len(inputs)} top-level inputs needs an input_shape "
                              f"(or 4 input_dim values), got {len(shapes)}", input_location)
        layer = caffe_pb2.LayerParameter(name="input", type="Input", top=inputs)
        for dims in shapes:
            layer.input_param.shape.add().dim.extend(dims)
        kept.append((layer, input_location))
    for index, layer in enumerate(net_param.layer):
        if layer_included(layer, phase, level, stages):
            kept.append((copy.deepcopy(layer), locations[index] if index < len(locations) else None))
    return kept


def insert_splits(layers):
    """Adds Split layers after every top read more than once; returns the new list."""
    producer = {}   # blob name -> (layer index, top index) of its latest writer
    readers = {}    # (layer index, top index) -> number of readers, loss included
    reader_of = {}  # (layer index, bottom index) -> (producer layer index, top index)
    for i, (layer, location) in enumerate(layers):
        for j, name in enumerate(layer.bottom):
            if name not in producer:
                raise ConfigError(f"layer '{layer.name}' ({layer.type}): bottom '{name}' is not "
                                  f"produced by any earlier layer (missing bottom)", location)
            source = producer[name]
            reader_of[(i, j)] = source
            readers[source] = readers.get(source, 0) + 1
        for j, name in enumerate(layer.top):
            producer[name] = (i, j)
            if loss_weight_of(layer, j) != 0:
                readers[(i, j)] = readers.get((i, j), 0) + 1

    result, copies_used = [], {}
    for i, (layer, location) in enumerate(layers):
        for j in range(len(layer.bottom)):
            source = reader_of[(i, j)]
            if readers[source] > 1:
                k = copies_used.get(source, 0)
                copies_used[source] = k + 1
                layer.bottom[j] = split_blob_name(layers, source, k)
        result.append((layer, location))
        for j, name in enumerate(layer.top):
            count = readers.get((i, j), 0)
            if count > 1:
                split = caffe_pb2.LayerParameter(
                    name=f"{name}_{layer.name}_{j}_split", type="Split", bottom=[name],
                    top=[split_blob_name(layers, (i, j), k) for k in range(count)])
                if loss_weight_of(layer, j) != 0:
                    # The loss reader is the last copy, which carries the loss weight onwards.
                    split.loss_weight.extend([0.0] * (count - 1) + [loss_weight_of(layer, j)])
                    weights = [0.0 if t == j else loss_weight_of(layer, t)
                               for t in range(len(layer.top))]
                    del layer.loss_weight[:]
                    layer.loss_weight.extend(weights)
                result.append((split, location))
    return result


def split_blob_name(layers, source, k: int) -> str:
    layer = layers[source[0]][0]
    return f"{layer.top[source[1]]}_{layer.name}_{source[1]}_split_{k}"
