"""stn.solvers: Caffe's solvers on stn.Net.

Update values of every solver type against the formulas worked by hand on a one-weight net,
the lr policies, weight decay, gradient clipping, iter_size and lr_mult 0; a small net that
learns; test nets and their scores; display logging; snapshots that resume bit for bit
(Dropout included), that are written atomically, and whose corruption is caught and named."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import stn
from stn.config import parse_solver, read_solver
from stn.config_error import ConfigError
from stn.solvers import (AdamSolver, SGDSolver, SnapshotError, get_solver, SOLVERS)

# One weight w, no bias: p = w x, loss = (p - y)^2 / 2 (EuclideanLoss, N = 1), so
# dloss/dw = (w x - y) x.
ONE_WEIGHT = """
name: "one_weight"
input: "x" input_shape { dim: 1 dim: 1 }
input: "y" input_shape { dim: 1 dim: 1 }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" %(param)s
        inner_product_param { num_output: 1 bias_term: %(bias)s
                              weight_filler { type: "constant" value: 0.5 }
                              bias_filler { type: "constant" value: 0.25 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""
X, Y, W0, B0 = 2.0, 3.0, 0.5, 0.25


def make_solver(tmp_path, solver_text, net_text=None, *, name="solver.prototxt", **kwargs):
    """Writes net.prototxt and the solver (which names it) to tmp_path; returns get_solver's."""
    if net_text is not None:
        (tmp_path / "net.prototxt").write_text(net_text)
    path = tmp_path / name
    path.write_text('net: "net.prototxt"\n' + solver_text)
    return get_solver(str(path), **kwargs)


def one_weight(tmp_path, solver_text, param="", bias=False, **kwargs):
    solver = make_solver(tmp_path, solver_text,
                         ONE_WEIGHT % {"param": param, "bias": "true" if bias else "false"}, **kwargs)
    solver.net.blobs["x"].data[...] = X
    solver.net.blobs["y"].data[...] = Y
    return solver


def weight(solver):
    return float(solver.net.params["ip"][0].data.reshape(-1)[0])


def grad(w, b=0.0):
    return (w * X + b - Y) * X


# ---------------------------------------------------------------------------------------
# ComputeUpdateValue of each type, three steps worked out by hand

def expected_weights(kind, steps=3):
    w, h, h2 = W0, 0.0, 0.0
    out = []
    for i in range(steps):
        g = grad(w)
        if kind == "SGD":                         # lr 0.1, momentum 0.9
            h = 0.9 * h + 0.1 * g
            w -= h
        elif kind == "Nesterov":                  # lr 0.1, momentum 0.9
            new = 0.9 * h + 0.1 * g
            w -= 1.9 * new - 0.9 * h
            h = new
        elif kind == "AdaGrad":                   # lr 0.5, delta 1e-8
            h += g * g
            w -= 0.5 * g / (math.sqrt(h) + 1e-8)
        elif kind == "RMSProp":                   # lr 0.1, rms_decay 0.9, delta 1e-8
            h = 0.9 * h + 0.1 * g * g
            w -= 0.1 * g / (math.sqrt(h) + 1e-8)
        elif kind == "AdaDelta":                  # lr 1, momentum 0.95, delta 1e-6
            h = 0.95 * h + 0.05 * g * g
            u = g * math.sqrt((h2 + 1e-6) / (h + 1e-6))
            h2 = 0.95 * h2 + 0.05 * u * u
            w -= 1.0 * u
        elif kind == "Adam":                      # lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8
            h = 0.9 * h + 0.1 * g
            h2 = 0.999 * h2 + 0.001 * g * g
            t = i + 1
            w -= 0.1 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * h / (math.sqrt(h2) + 1e-8)
        out.append(w)
    return out, h, h2


HYPER = {
    "SGD": "base_lr: 0.1 momentum: 0.9",
    "Nesterov": "base_lr: 0.1 momentum: 0.9",
    "AdaGrad": "base_lr: 0.5 delta: 1e-8",
    "RMSProp": "base_lr: 0.1 rms_decay: 0.9 delta: 1e-8",
    "AdaDelta": "base_lr: 1.0 momentum: 0.95 delta: 1e-6",
    "Adam": "base_lr: 0.1 momentum: 0.9 momentum2: 0.999 delta: 1e-8",
}


@pytest.mark.parametrize("kind", sorted(HYPER))
def test_update_values_match_the_hand_computed_ones(tmp_path, kind):
    solver = one_weight(tmp_path, f'type: "{kind}" lr_policy: "fixed" {HYPER[kind]}')
    assert type(solver) is SOLVERS[kind] and solver.type == kind
    got = []
    for _ in range(3):
        solver.step(1)
        got.append(weight(solver))
    want, h, h2 = expected_weights(kind)
    np.testing.assert_allclose(got, want, rtol=2e-5)
    assert solver.iter == 3
    # Caffe's history layout: one blob per parameter, two for AdaDelta and Adam.
    histories = [float(a.reshape(-1)[0]) for a in solver.history]
    if kind in ("AdaDelta", "Adam"):
        np.testing.assert_allclose(histories, [h, h2], rtol=2e-5)
    else:
        np.testing.assert_allclose(histories, [h], rtol=2e-5)


def test_legacy_solver_type_enum_and_type_errors(tmp_path):
    solver = one_weight(tmp_path, 'solver_type: ADAM base_lr: 0.1 lr_policy: "fixed"')
    assert isinstance(solver, AdamSolver) and len(solver.history) == 2
    with pytest.raises(ConfigError, match="solver_type.*type cannot both"):
        one_weight(tmp_path, 'solver_type: ADAM type: "Adam" base_lr: 0.1 lr_policy: "fixed"')
    with pytest.raises(ConfigError, match=r"solver\.prototxt: unknown solver type 'Adamm'"):
        one_weight(tmp_path, 'type: "Adamm" base_lr: 0.1 lr_policy: "fixed"')
    with pytest.raises(ConfigError, match="momentum cannot be used with AdaGrad"):
        one_weight(tmp_path, 'type: "AdaGrad" momentum: 0.9 base_lr: 0.1 lr_policy: "fixed"')
    with pytest.raises(ConfigError, match="unknown lr_policy 'stepp'"):
        one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "stepp"')
    with pytest.raises(ConfigError, match="needs stepsize > 0"):
        one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "step" gamma: 0.5')
    with pytest.raises(ConfigError, match="must specify a train net"):
        get_solver(parse_solver('base_lr: 0.1 lr_policy: "fixed"', "s.prototxt"))
    # pycaffe's classes run their own type whatever the config says.
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" type: "Adam" base_lr: 0.1 lr_policy: "fixed"')
    assert SGDSolver(str(tmp_path / "solver.prototxt")).type == "SGD"
    assert type(get_solver(read_solver(tmp_path / "solver.prototxt"))) is AdamSolver


def test_inline_nets_states_and_solver_weights(tmp_path):
    # net_param inline, a test net per test_iter with its own test_state, initial `weights`.
    net = ONE_WEIGHT % {"param": "", "bias": "false"}
    staged = net + ('layer { name: "extra" type: "Power" bottom: "p" top: "q" '
                    'include { stage: "probe" } }')
    donor = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed"')
    donor.net.params["ip"][0].data[...] = 1.25
    donor.net.save(str(tmp_path / "start.caffemodel.h5"))
    text = (f'net_param {{ {staged} }} test_iter: 1 test_iter: 1 test_interval: 10 '
            'test_state { stage: "probe" } test_state { } '
            'train_state { stage: "probe" } weights: "start.caffemodel.h5" '
            'base_lr: 0.1 lr_policy: "fixed"')
    (tmp_path / "inline.prototxt").write_text(text)
    solver = get_solver(str(tmp_path / "inline.prototxt"))
    assert "q" in solver.net.blobs and "q" in solver.test_nets[0].blobs
    assert "q" not in solver.test_nets[1].blobs
    assert weight(solver) == 1.25
    assert float(solver.test_nets[1].params["ip"][0].data[0, 0]) == 1.25
    with pytest.raises(ConfigError, match="snapshot_prefix is not set"):
        get_solver(parse_solver(text.replace("start.caffemodel.h5", str(tmp_path / "start.caffemodel.h5")))).snapshot()


# ---------------------------------------------------------------------------------------
# Learning-rate policies

POLICY_CASES = {
    "fixed": ("", lambda it: 0.1),
    "step": ("gamma: 0.5 stepsize: 3", lambda it: 0.1 * 0.5 ** (it // 3)),
    "exp": ("gamma: 0.9", lambda it: 0.1 * 0.9 ** it),
    "inv": ("gamma: 0.01 power: 0.75", lambda it: 0.1 * (1 + 0.01 * it) ** -0.75),
    "poly": ("power: 2 max_iter: 20", lambda it: 0.1 * (1 - it / 20) ** 2),
    "sigmoid": ("gamma: 0.3 stepsize: 5", lambda it: 0.1 / (1 + math.exp(-0.3 * (it - 5)))),
    "multistep": ("gamma: 0.5 stepvalue: 2 stepvalue: 5 stepvalue: 6",
                  lambda it: 0.1 * 0.5 ** sum(it >= v for v in (2, 5, 6))),
}


@pytest.mark.parametrize("policy", sorted(POLICY_CASES))
def test_lr_policy_values(tmp_path, policy):
    extra, formula = POLICY_CASES[policy]
    solver = one_weight(tmp_path, f'base_lr: 0.1 lr_policy: "{policy}" {extra}')
    for it in range(12):  # in order: multistep advances its current_step as it goes
        solver.iter = it
        np.testing.assert_allclose(float(solver.learning_rate()), formula(it), rtol=1e-6,
                                   err_msg=f"{policy} at iteration {it}")
    if policy == "step":
        assert solver.current_step == 11 // 3
    if policy == "multistep":
        assert solver.current_step == 3


def test_training_uses_the_policy_rate(tmp_path):
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 1')
    w = W0
    for it in range(3):
        w -= 0.1 * 0.5 ** it * grad(w)
        solver.step(1)
    assert weight(solver) == pytest.approx(w, rel=1e-5)


# ---------------------------------------------------------------------------------------
# Regularize, ClipGradients, Normalize (iter_size), lr_mult 0

@pytest.mark.parametrize("kind", ["L2", "L1"])
def test_weight_decay_with_decay_mult(tmp_path, kind):
    solver = one_weight(tmp_path, f'base_lr: 0.1 lr_policy: "fixed" weight_decay: 0.05 '
                                  f'regularization_type: "{kind}"', param="param { decay_mult: 2 }")
    w = W0
    for _ in range(2):
        decay = w if kind == "L2" else math.copysign(1.0, w)
        w -= 0.1 * (grad(w) + 0.05 * 2 * decay)
        solver.step(1)
    assert weight(solver) == pytest.approx(w, rel=1e-5)


def test_clip_gradients_scales_the_global_norm(tmp_path, caplog):
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" clip_gradients: 1', bias=True)
    g_w, g_b = grad(W0, B0), grad(W0, B0) / X          # (p - y) x and (p - y)
    norm = math.hypot(g_w, g_b)
    assert norm > 1
    with caplog.at_level(logging.INFO, logger="stn"):
        solver.step(1)
    assert weight(solver) == pytest.approx(W0 - 0.1 * g_w / norm, rel=1e-5)
    assert float(solver.net.params["ip"][1].data[0]) == pytest.approx(B0 - 0.1 * g_b / norm, rel=1e-5)
    assert f"Gradient clipping: scaling down gradients (L2 norm {norm:g} > 1) by scale factor " \
           f"{1 / norm:g}" in caplog.text
    # A norm under the threshold is left alone.
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" clip_gradients: 100', bias=True)
    solver.step(1)
    assert weight(solver) == pytest.approx(W0 - 0.1 * g_w, rel=1e-6)


def test_iter_size_accumulates_and_normalizes(tmp_path):
    batches = [(2.0, 3.0), (1.0, -1.0), (3.0, 0.5)]   # (x, y) per forward pass

    def feed(index):
        x, y = batches[index % 3]
        return {"x": [[x]], "y": [[y]]}

    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" iter_size: 3', feed=feed)
    losses = solver.step(2)
    w = W0
    for it in range(2):
        assert losses[it] == pytest.approx(sum((w * x - y) ** 2 / 2 for x, y in batches) / 3, rel=1e-5)
        w -= 0.1 * sum((w * x - y) * x for x, y in batches) / 3
    assert weight(solver) == pytest.approx(w, rel=1e-5)


def test_clipping_happens_before_the_iter_size_normalization(tmp_path):
    # Caffe clips the accumulated (summed) diffs: with iter_size 2 and the same batch twice
    # the norm seen is 2 |g|.
    g = abs(grad(W0))
    solver = one_weight(tmp_path, f'base_lr: 0.1 lr_policy: "fixed" iter_size: 2 clip_gradients: {1.5 * g}')
    solver.step(1)
    assert weight(solver) == pytest.approx(W0 + 0.1 * (1.5 * g) / 2, rel=1e-5)


def test_lr_mult_zero_freezes_a_parameter(tmp_path):
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 '
                                  'weight_decay: 0.1 clip_gradients: 0.5',
                        param="param { lr_mult: 0 } param { lr_mult: 2 }", bias=True)
    solver.step(3)
    assert weight(solver) == W0
    # The frozen weight has no gradient, so only the bias counts in the clipping norm:
    # |g_b| = |(p - y)| = 2 > 0.5, scaled to 0.5; local rate 0.1 * 2.
    b, h = B0, 0.0
    for _ in range(3):
        g_b = W0 * X + b - Y
        g_b *= min(1.0, 0.5 / abs(g_b))
        h = 0.9 * h + 0.2 * (g_b + 0.1 * b)
        b -= h
    assert float(solver.net.params["ip"][1].data[0]) == pytest.approx(b, rel=1e-5)


# ---------------------------------------------------------------------------------------
# A net that learns; test nets and their scores; display

MLP = """
name: "mlp"
input: "data" input_shape { dim: 16 dim: 4 }
input: "label" input_shape { dim: 16 }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 16 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
%(dropout)s
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
        include { phase: TEST } }
"""
DROPOUT = 'layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.3 } }'
DIRECTION = np.array([1.0, -2.0, 0.5, 1.5])


def batch(index, n=16):
    """A separable batch: label = [x . DIRECTION > 0], drawn from the batch index alone."""
    x = np.random.default_rng(1000 + index).standard_normal((n, 4))
    return {"data": x, "label": (x @ DIRECTION > 0).astype(np.float32)}


def mlp_solver(tmp_path, extra="", dropout=False, name="solver.prototxt", seed=7, **kwargs):
    text = (f'base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" random_seed: {seed} '
            f'snapshot_prefix: "{tmp_path / "snap"}" ' + extra)
    return make_solver(tmp_path, text, MLP % {"dropout": DROPOUT if dropout else ""}, name=name,
                       feed=batch, test_feed=lambda k, i: batch(10_000 + 100 * k + i), **kwargs)


def test_mlp_training_loss_falls_and_test_accuracy_rises(tmp_path):
    solver = mlp_solver(tmp_path, "test_iter: 4 test_interval: 1000 test_initialization: false")
    before = solver.test()[0]
    losses = solver.step(60)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:5])
    after = solver.test()[0]
    assert list(after) == ["accuracy", "loss"]  # Caffe orders outputs by name (std::set)
    assert after["accuracy"] >= 0.9 and after["accuracy"] > before["accuracy"]
    assert after["loss"] < before["loss"]


def test_test_scores_are_means_over_test_iter_with_shared_weights(tmp_path, caplog):
    solver = mlp_solver(tmp_path, "test_iter: 3 test_iter: 2 test_interval: 2")
    assert len(solver.test_nets) == 2 and all(n.phase == "TEST" for n in solver.test_nets)
    # The test nets use the train net's parameter blobs themselves.
    assert solver.test_nets[1].params["ip1"][0] is solver.net.params["ip1"][0]
    with caplog.at_level(logging.INFO, logger="stn"):
        solver.step(3)                                   # tests at iterations 0 and 2
        scores = solver.test()
    assert "Iteration 0, Testing net (#0)" in caplog.text
    assert "Iteration 2, Testing net (#1)" in caplog.text
    assert "Iteration 1, Testing net" not in caplog.text
    assert "Iteration 3, Testing net (#1)" in caplog.text
    # Recompute by hand with a fresh TEST net carrying the trained weights.
    reference = stn.Net(solver.test_nets[0].config, stn.TEST)
    for layer in ("ip1", "ip2"):
        for mine, theirs in zip(reference.params[layer], solver.net.params[layer]):
            mine.data[...] = theirs.data
    for k, count in enumerate((3, 2)):
        outs = [{name: float(value) for name, value in
                 reference.forward(**batch(10_000 + 100 * k + i)).items()} for i in range(count)]
        for name in ("loss", "accuracy"):
            want = np.mean([o[name] for o in outs])
            assert scores[k][name] == pytest.approx(want, rel=1e-5)
    # Outputs are numbered in Caffe's order: by name.
    line = f"    Test net output #1: loss = {scores[1]['loss']:g} (* 1 = {scores[1]['loss']:g} loss)"
    assert line in caplog.text
    assert f"    Test net output #0: accuracy = {scores[1]['accuracy']:g}\n" in caplog.text + "\n"


def test_loss_weight_in_test_and_train_output_lines(tmp_path, caplog):
    net = (ONE_WEIGHT % {"param": "", "bias": "false"}).replace(
        'top: "loss" }', 'top: "loss" loss_weight: 2 }')
    solver = make_solver(tmp_path, 'base_lr: 0.01 lr_policy: "fixed" display: 1 '
                                   'test_iter: 2 test_interval: 100', net)
    for n in [solver.net] + solver.test_nets:
        n.blobs["x"].data[...] = X
        n.blobs["y"].data[...] = Y
    with caplog.at_level(logging.INFO, logger="stn"):
        solver.step(1)
    assert "    Test net output #0: loss = 2 (* 2 = 4 loss)" in caplog.text
    assert "Iteration 0, loss = 4\n" in caplog.text + "\n"         # loss_weight * loss
    assert "    Train net output #0: loss = 2 (* 2 = 4 loss)" in caplog.text
    assert "Iteration 0, lr = 0.01" in caplog.text


def test_display_smooths_the_loss_over_average_loss(tmp_path, caplog):
    solver = mlp_solver(tmp_path, "display: 2 average_loss: 3")
    with caplog.at_level(logging.INFO, logger="stn"):
        losses = solver.step(5)
    smoothed = {0: losses[0], 2: np.mean(losses[0:3]), 4: np.mean(losses[2:5])}
    for it, value in smoothed.items():
        assert f"Iteration {it}, loss = {value:g}\n" in caplog.text + "\n"
    assert "Iteration 1, loss" not in caplog.text
    assert solver.smoothed_loss == pytest.approx(np.mean(losses[2:5]))


def test_test_initialization_false_and_test_net_config_errors(tmp_path, caplog):
    solver = mlp_solver(tmp_path, "test_iter: 1 test_interval: 2 test_initialization: false")
    with caplog.at_level(logging.INFO, logger="stn"):
        solver.step(3)
    assert "Iteration 0, Testing" not in caplog.text and "Iteration 2, Testing net (#0)" in caplog.text
    with pytest.raises(ConfigError, match="test_interval must be > 0"):
        mlp_solver(tmp_path, "test_iter: 1")
    with pytest.raises(ConfigError, match="test_iter must be specified for each test network"):
        mlp_solver(tmp_path, 'test_net: "net.prototxt" test_interval: 5')


# ---------------------------------------------------------------------------------------
# Snapshots: exact resume, corruption, atomicity

def subfolder(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    return folder


def params_of(solver):
    return [blob.data.copy() for blob in solver.net.learnable]


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_restore_resumes_bit_for_bit_with_dropout(tmp_path, kind):
    extra = f'type: "{kind}" average_loss: 3 snapshot: 4 test_iter: 1 test_interval: 3'
    whole = mlp_solver(subfolder(tmp_path, "a"), extra, dropout=True)
    whole_losses = whole.step(9)

    first = mlp_solver(tmp_path, extra, dropout=True)
    first.step(6)                                        # snapshots at 4
    state = tmp_path / "snap_iter_4.solverstate.h5"
    assert state.exists() and (tmp_path / "snap_iter_4.caffemodel.h5").exists()
    with h5py.File(state, "r") as f:                     # Caffe's layout
        assert int(f["iter"][0]) == 4 and int(f["current_step"][0]) == 0
        assert f["learned_net"][()] == b"snap_iter_4.caffemodel.h5"
        assert sorted(f["history"], key=int) == [str(k) for k in range(4 * (2 if kind == "Adam" else 1))]

    # Another seed: restore must bring back the weights and the random generators alike.
    resumed = mlp_solver(tmp_path, extra.replace("snapshot: 4", ""), dropout=True,
                         name="other.prototxt", seed=99)
    resumed.restore(str(state))
    assert resumed.iter == 4
    resumed_losses = resumed.step(5)
    assert resumed_losses == whole_losses[4:]            # the same floats, not just close
    for a, b in zip(params_of(whole), params_of(resumed)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(whole.history, resumed.history):
        np.testing.assert_array_equal(a, b)
    assert resumed.smoothed_loss == whole.smoothed_loss
    assert resumed.test() == whole.test()


def test_request_stop_snapshots_and_solve_resumes(tmp_path, caplog):
    extra = "max_iter: 8 display: 1 average_loss: 2"
    whole = mlp_solver(subfolder(tmp_path, "a"), extra, dropout=True)
    whole.solve()
    assert (tmp_path / "a" / "snap_iter_8.solverstate.h5").exists()    # snapshot_after_train

    holder = {}

    def stopping_feed(index):
        if index == 3:
            holder["solver"].request_stop()              # as a SIGINT handler would
        return batch(index)

    stopped = mlp_solver(tmp_path, extra, dropout=True)
    stopped.feed = stopping_feed
    holder["solver"] = stopped
    with caplog.at_level(logging.INFO, logger="stn"):
        stopped.solve()
    assert stopped.iter == 4 and stopped.stopped_early
    assert "Optimization stopped early." in caplog.text
    state = tmp_path / "snap_iter_4.solverstate.h5"
    assert state.exists() and not (tmp_path / "snap_iter_8.solverstate.h5").exists()

    resumed = mlp_solver(tmp_path, extra, dropout=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stn"):
        resumed.solve(resume_file=str(state))
    assert resumed.iter == 8 and not resumed.stopped_early
    assert f"Restoring previous solver status from {state}" in caplog.text
    for a, b in zip(params_of(whole), params_of(resumed)):
        np.testing.assert_array_equal(a, b)
    assert resumed.smoothed_loss == whole.smoothed_loss


def _snapshot_pair(tmp_path):
    solver = mlp_solver(tmp_path, "")
    solver.step(2)
    weights, state = solver.snapshot()
    return solver, weights, state


def _history_offset(path):
    with h5py.File(path, "r") as f:
        dataset = f["history"]["0"]
        return dataset.id.get_offset(), dataset.nbytes


@pytest.mark.parametrize("damage", ["truncate weights", "flip weights", "truncate state",
                                    "flip state", "remove weights"])
def test_corrupt_snapshots_raise_errors_naming_the_file(tmp_path, damage):
    _, weights, state = _snapshot_pair(tmp_path)
    target = weights if "weights" in damage else state
    data = bytearray(Path(target).read_bytes())
    if damage.startswith("truncate"):
        data = data[: len(data) // 2]
    elif damage == "flip weights":
        data[len(data) // 2] ^= 0x40
    elif damage == "flip state":
        offset, size = _history_offset(state)        # a byte of the momentum history
        data[offset + size // 2] ^= 0x01
    if damage == "remove weights":
        os.remove(target)
    else:
        Path(target).write_bytes(bytes(data))
    fresh = mlp_solver(tmp_path, "")
    before = params_of(fresh)
    with pytest.raises(SnapshotError) as info:
        fresh.restore(state)
    assert str(info.value).startswith(target if damage != "remove weights" else state)
    assert fresh.iter == 0
    for a, b in zip(before, params_of(fresh)):
        np.testing.assert_array_equal(a, b)             # nothing half-restored


def test_restore_checks_solver_type_and_history(tmp_path):
    _, _, state = _snapshot_pair(tmp_path)
    with pytest.raises(SnapshotError, match="written by a SGD solver; this solver is Adam"):
        mlp_solver(tmp_path, 'type: "Adam"').restore(state)
    with pytest.raises(SnapshotError, match="no such solver state file"):
        mlp_solver(tmp_path, "").restore(str(tmp_path / "missing.solverstate.h5"))


def test_restore_reads_a_caffe_style_state_without_stn_datasets(tmp_path):
    solver, weights, state = _snapshot_pair(tmp_path)
    caffe_state = tmp_path / "caffe.solverstate.h5"
    with h5py.File(state, "r") as src, h5py.File(caffe_state, "w") as dst:
        for name in ("iter", "learned_net", "current_step"):
            src.copy(name, dst)
        src.copy("history", dst)
    fresh = mlp_solver(tmp_path, "")
    fresh.restore(str(caffe_state))
    assert fresh.iter == 2
    for a, b in zip(params_of(solver), params_of(fresh)):
        np.testing.assert_array_equal(a, b)


def test_restore_reads_caffe_binary_solverstate(tmp_path):
    from stn.proto import caffe_pb2
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9')
    solver.net.params["ip"][0].data[...] = 1.5
    solver.net.save(str(tmp_path / "c_iter_7.caffemodel"))          # binary NetParameter
    state = caffe_pb2.SolverState(iter=7, learned_net=str(tmp_path / "c_iter_7.caffemodel"),
                                  current_step=2)
    blob = state.history.add()
    blob.shape.dim.extend([1, 1])
    blob.data.append(-0.25)
    (tmp_path / "c_iter_7.solverstate").write_bytes(state.SerializeToString())
    fresh = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9')
    fresh.restore(str(tmp_path / "c_iter_7.solverstate"))
    assert (fresh.iter, fresh.current_step, weight(fresh)) == (7, 2, 1.5)
    fresh.step(1)                                   # momentum carries the restored history
    assert weight(fresh) == pytest.approx(1.5 - (0.9 * -0.25 + 0.1 * grad(1.5)), rel=1e-6)
    (tmp_path / "bad.solverstate").write_bytes(b"garbage\xff\xff")
    with pytest.raises(SnapshotError, match=r"bad\.solverstate: not a binary SolverState"):
        fresh.restore(str(tmp_path / "bad.solverstate"))


@pytest.mark.parametrize("fail_on", ["weights", "state"])
def test_snapshot_writes_are_atomic(tmp_path, monkeypatch, fail_on):
    solver = mlp_solver(tmp_path, "")
    solver.step(1)
    good_weights, good_state = solver.snapshot()
    good_bytes = Path(good_state).read_bytes()
    solver.step(1)

    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd):                                # the 1st write is the weights file
        calls.append(fd)
        if len(calls) == (1 if fail_on == "weights" else 2):
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(SnapshotError, match="No space left"):
        solver.snapshot()
    monkeypatch.setattr(os, "fsync", real_fsync)
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.endswith(".tmp")], names
    assert "snap_iter_2.solverstate.h5" not in names
    assert ("snap_iter_2.caffemodel.h5" in names) == (fail_on == "state")
    assert Path(good_state).read_bytes() == good_bytes
    fresh = mlp_solver(tmp_path, "")
    fresh.restore(good_state)                            # the previous snapshot still works
    assert fresh.iter == 1


def test_snapshot_prefix_defaults_to_the_solver_file(tmp_path):
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" max_iter: 2 snapshot: 1 '
                                  'snapshot_after_train: true')
    solver.solve()
    names = sorted(os.listdir(tmp_path))
    for it in (1, 2):   # every `snapshot` iterations; none extra after training (2 % 1 == 0)
        assert f"solver_iter_{it}.caffemodel.h5" in names and f"solver_iter_{it}.solverstate.h5" in names
    (tmp_path / "out").mkdir()
    solver = one_weight(tmp_path, 'base_lr: 0.1 lr_policy: "fixed" max_iter: 1 '
                                  'snapshot_prefix: "out/" snapshot_after_train: false')
    solver.solve()
    assert os.listdir(tmp_path / "out") == []
    solver.snapshot()
    assert sorted(os.listdir(tmp_path / "out")) == ["solver_iter_1.caffemodel.h5",
                                                    "solver_iter_1.solverstate.h5"]
