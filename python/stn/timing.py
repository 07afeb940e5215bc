"""Per-layer forward and backward times of a Net, like `caffe time`."""

from __future__ import annotations

import time

import numpy as np


def time_layers(net, iterations: int = 10):
    """Runs forward+backward `iterations` times (after one warm-up) and returns
    [(layer name, layer type, median forward ms, median backward ms)] plus the median total ms
    of one forward-backward pass."""
    layers = list(zip(net.layers, net._bottoms, net._tops, net._propagate, net._run_backward))
    forward = np.zeros((iterations, len(layers)))
    backward = np.zeros((iterations, len(layers)))
    totals = []
    for it in range(iterations + 1):
        start_all = time.perf_counter()
        for i, (layer, bottoms, tops, _, _) in enumerate(layers):
            start = time.perf_counter()
            if layer.type_name != "Input":
                layer.reshape(bottoms, tops)
            layer.forward(bottoms, tops)
            if it:
                forward[it - 1, i] = time.perf_counter() - start
        for name, weight in net.loss_weights.items():
            net.blobs[name].diff[...] = weight
        for i in reversed(range(len(layers))):
            layer, bottoms, tops, down, run = layers[i]
            start = time.perf_counter()
            if run:
                layer.backward(tops, down, bottoms)
            if it:
                backward[it - 1, i] = time.perf_counter() - start
        if it:
            totals.append(time.perf_counter() - start_all)
    rows = [(layer.name, layer.type_name, float(np.median(forward[:, i]) * 1e3),
             float(np.median(backward[:, i]) * 1e3)) for i, (layer, *_rest) in enumerate(layers)]
    return rows, float(np.median(totals) * 1e3)


def format_timing(rows, total_ms: float) -> str:
    width = max(len(name) for name, *_ in rows)
    lines = [f"{'layer':{width}s}  {'type':18s} {'forward ms':>11s} {'backward ms':>12s}"]
    for name, type_name, fwd, bwd in rows:
        lines.append(f"{name:{width}s}  {type_name:18s} {fwd:11.3f} {bwd:12.3f}")
    lines.append(f"{'total forward-backward':{width + 20}s} {total_ms:11.3f} ms")
    return "\n".join(lines)
