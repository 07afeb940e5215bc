"""Solver: trains a Caffe net from a solver prototxt, as Caffe's Solver / SGDSolver do.

    solver = stn.solvers.get_solver("solver.prototxt")     # the configured `type`
    solver.net, solver.test_nets, solver.iter               # pycaffe's attributes
    solver.step(100)                                        # 100 iterations
    solver.solve()                                          # up to max_iter, then snapshot
    solver.solve(resume_file="x_iter_500.solverstate.h5")   # continue a snapshot exactly

One iteration (Solver::Step, SGDSolver::ApplyUpdate): zero the parameter diffs; test when
iter % test_interval == 0 (at iter 0 only with test_initialization); forward + backward
iter_size times (diffs accumulate); smooth the loss over average_loss iterations and log it
every `display` iterations; then rate = the lr_policy's value, ClipGradients (the global L2
norm of all diffs scaled down to clip_gradients), and per parameter Normalize (diff /=
iter_size), Regularize (diff += weight_decay * decay_mult * data, or * sign(data) for L1),
the type's update (updates.py, local_rate = rate * lr_mult) and data -= update. A parameter
with lr_mult 0 gets no gradient (as in Caffe, where its backward is skipped).

Data: a net's Input blobs keep what was put in them (pycaffe style: fill
solver.net.blobs["data"].data, then step), or give feed / test_feed callables:
feed(index) -> {input blob: array} for the index-th training batch (index = iter * iter_size
+ pass), test_feed(test_net_id, i) -> {...} for the i-th batch of a test pass. Data layers
that keep a position can hand it to snapshots with get_state() / set_state(dict).

Test nets share the train net's parameter Blobs (by layer name, as Caffe's
ShareTrainedLayersWith), so they always see the current weights.

Snapshots (snapshot.py) are Caffe's HDF5 files plus what an exact resume needs (the nets'
random generator states, the loss smoothing window): a run stopped and resumed gives the same
losses and weights, bit for bit, as one that never stopped. request_stop() (e.g. from a
SIGINT handler) makes solve() / step() snapshot and return after the current iteration.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections import OrderedDict

import numpy as np

from ..config import SolverConfig, read_solver
from ..config_error import ConfigError
from ..net import Net
from ..proto import caffe_pb2
from . import lr_policy, updates
from .nets import build_test_nets, build_train_net, share_trained_layers
from .snapshot import (SnapshotError, SolverStateData, check_rng_states, file_sha256, read_state,
                       resolve_weights, rng_states_of, set_rng_states, snapshot_prefix,
                       write_state_hdf5)

log = logging.getLogger("stn")


def _g(value) -> str:
    """A number as Caffe's LOG prints a float (6 significant digits)."""
    return format(float(value), "g")


def _solver_config(solver) -> SolverConfig:
    if isinstance(solver, SolverConfig):
        config = solver
    elif isinstance(solver, caffe_pb2.SolverParameter):
        config = SolverConfig(solver, "<string>")
    elif isinstance(solver, (str, os.PathLike)):
        config = read_solver(solver)
    else:
        raise TypeError(f"a solver is made from a solver prototxt path, a SolverConfig or a "
                        f"SolverParameter, not {type(solver).__name__}")
    param = caffe_pb2.SolverParameter()
    param.CopyFrom(config.param)
    return SolverConfig(param, config.path)


def solver_type_of(param, path: str = "<string>") -> str:
    """`type`, or the legacy `solver_type` enum (Caffe's UpgradeSolverType)."""
    if param.HasField("solver_type"):
        if param.HasField("type"):
            raise ConfigError(f"{path}: the legacy solver_type field and type cannot both be "
                              f"given; keep type")
        return updates.TYPES[param.solver_type]
    if param.type not in updates.TYPES:
        raise ConfigError(f"{path}: unknown solver type {param.type!r} "
                          f"(known: {', '.join(updates.TYPES)})")
    return param.type


class Solver:
    type = None  # the subclasses' Caffe type name; get_solver picks by the config

    def __init__(self, solver, *, feed=None, test_feed=None):
        self.config = _solver_config(solver)
        self.param = p = self.config.param
        self.path = self.config.path
        if self.type is None:
            self.type = solver_type_of(p, self.path)
        self.feed, self.test_feed = feed, test_feed
        self._check_param()
        seed = p.random_seed if p.random_seed >= 0 else None
        self.net = build_train_net(self.config, seed)
        self.test_nets = build_test_nets(self.config, seed)
        for k, test_net in enumerate(self.test_nets):
            share_trained_layers(self.net, test_net, k, self.path)
        for entry in p.weights:
            for path in entry.split(","):
                self.load_weights(self.config.resolve(path))
        self.iter = 0
        self.current_step = 0
        n = len(self.net.learnable)
        self.history = [np.zeros_like(blob.data) for _ in range(updates.history_count(self.type))
                        for blob in self.net.learnable]
        self._history_sets = [self.history[i::n] for i in range(n)]
        self.smoothed_loss = 0.0
        self._losses, self._loss_start, self._keep_loss_window = [], 0, False
        self._stop_requested = False
        self.stopped_early = False
        self._last_snapshot_iter = None
        self.last_snapshot = None          # (weights path, state path) of the latest snapshot
        self.test_scores = [None] * len(self.test_nets)
        log.info("Solver scaffolding done.")

    # ------------------------------------------------------------------ set-up
    def _error(self, words: str) -> ConfigError:
        return ConfigError(f"{self.path}: {words}")

    def _check_param(self):
        p = self.param
        if p.average_loss < 1:
            raise self._error(f"average_loss should be at least 1, got {p.average_loss}")
        if p.iter_size < 1:
            raise self._error(f"iter_size should be at least 1, got {p.iter_size}")
        if p.regularization_type not in ("L1", "L2"):
            raise self._error(f"unknown regularization_type {p.regularization_type!r} (L1 or L2)")
        lr_policy.check_lr_policy(p, self.path)
        updates.check_hyperparameters(self.type, p, self.path)
        if p.snapshot_format == caffe_pb2.SolverParameter.BINARYPROTO and p.HasField("snapshot_format"):
            log.info("snapshot_format BINARYPROTO: snapshots are written in HDF5 all the same")

    @property
    def nets(self) -> list:
        """The train net, then the test nets."""
        return [self.net] + list(self.test_nets)

    # ------------------------------------------------------------------ training
    def load_weights(self, path) -> None:
        """Loads trained weights by layer name into the train net and every test net (as
        Caffe does: a layer that only a test net has gets its weights too)."""
        log.info("Loading weights from %s", path)
        for net in [self.net, *self.test_nets]:
            net.copy_from(path)

    # Called as on_iteration(solver) after every iteration (the CLI's progress bar).
    on_iteration = None

    def request_stop(self) -> None:
        """Asks solve() / step() to snapshot and return after the current iteration (the
        flag is checked once per iteration and once per test batch); safe from a signal handler."""
        self._stop_requested = True

    def learning_rate(self):
        """Caffe's GetLearningRate at the current iteration (multistep advances current_step)."""
        rate, self.current_step = lr_policy.learning_rate(self.param, self.iter, self.current_step)
        return rate

    def step(self, iters: int) -> list:
        """Runs `iters` iterations (fewer after request_stop); returns their losses."""
        p = self.param
        stop_iter = self.iter + int(iters)
        if not self._keep_loss_window:  # Caffe restarts the smoothing at every Step call
            self._losses, self.smoothed_loss, self._loss_start = [], 0.0, self.iter
        self._keep_loss_window = False
        losses = []
        while self.iter < stop_iter and not self._stop_requested:
            self._clear_param_diffs()
            if p.test_interval and self.iter % p.test_interval == 0 and \
                    (self.iter > 0 or p.test_initialization):
                self.test()
                if self._stop_requested:
                    break
            display = p.display and self.iter % p.display == 0
            loss = 0.0
            for i in range(p.iter_size):
                self._forward(self.net, self.feed(self.iter * p.iter_size + i) if self.feed else {})
                loss += self.net.loss()
                self.net.backward()
            loss /= p.iter_size
            self._update_smoothed_loss(loss)
            if display:
                self._log_outputs()
            self.apply_update()
            self.iter += 1
            losses.append(loss)
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()
            if self.on_iteration is not None:
                self.on_iteration(self)
        if self._stop_requested:
            self._stop_requested = False
            self.stopped_early = True
            if self._last_snapshot_iter != self.iter:
                self.snapshot()
        return losses

    def solve(self, resume_file=None) -> None:
        """Caffe's Solve: (restore,) step to max_iter, snapshot, a last display and test."""
        p = self.param
        log.info("Solving %s", self.net.name)
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self.stopped_early = False
        if resume_file is not None:
            log.info("Restoring previous solver status from %s", os.fspath(resume_file))
            self.restore(resume_file)
        self.step(p.max_iter - self.iter)
        if self.stopped_early:
            log.info("Optimization stopped early.")
            return
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0:
            self._forward(self.net, self.feed(self.iter * p.iter_size) if self.feed else {})
            self._update_smoothed_loss(self.net.loss())
            log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test()
        log.info("Optimization Done.")

    def _forward(self, net: Net, inputs) -> None:
        net.forward(**(inputs or {}))

    def _clear_param_diffs(self) -> None:
        for blob in self.net.learnable:
            blob.diff[...] = 0

    def _update_smoothed_loss(self, loss: float) -> None:
        average = self.param.average_loss
        if len(self._losses) < average:
            self._losses.append(loss)
            size = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (size - 1) + loss) / size
        else:
            index = (self.iter - self._loss_start) % average
            self.smoothed_loss += (loss - self._losses[index]) / average
            self._losses[index] = loss

    def _log_outputs(self) -> None:
        log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
        index = 0
        for name in self.net.outputs:
            weight = self.net.loss_weights.get(name, 0.0)
            for value in np.asarray(self.net.blobs[name].data).reshape(-1):
                extra = f" (* {_g(weight)} = {_g(np.float32(weight) * value)} loss)" if weight else ""
                log.info("    Train net output #%d: %s = %s%s", index, name, _g(value), extra)
                index += 1

    def apply_update(self) -> None:
        """SGDSolver::ApplyUpdate on the diffs the last forward/backward passes left."""
        p = self.param
        rate = self.learning_rate()
        if p.display and self.iter % p.display == 0:
            log.info("Iteration %d, lr = %s", self.iter, _g(rate))
        blobs, specs = self.net.learnable, self.net.param_specs
        for blob, (lr_mult, _) in zip(blobs, specs):
            if lr_mult == 0:  # Caffe never computes these gradients
                blob.diff[...] = 0
        self._clip_gradients()
        for i, (blob, (lr_mult, decay_mult)) in enumerate(zip(blobs, specs)):
            dtype = blob.diff.dtype.type
            if p.iter_size != 1:                                   # Normalize
                blob.diff *= dtype(1) / dtype(p.iter_size)
            local_decay = dtype(p.weight_decay) * dtype(decay_mult)  # Regularize
            if local_decay:
                blob.diff += local_decay * (blob.data if p.regularization_type == "L2"
                                            else np.sign(blob.data))
            local_rate = rate * dtype(lr_mult)
            blob.diff[...] = updates.compute_update(self.type, p, blob.diff, self._history_sets[i],
                                                    local_rate, self.iter)
        for blob in blobs:                                         # Net::Update
            blob.data -= blob.diff

    def _clip_gradients(self) -> None:
        clip = self.param.clip_gradients
        if clip < 0 or not self.net.learnable:
            return
        dtype = self.net.learnable[0].diff.dtype.type
        sumsq = sum(float(np.dot(b.diff.reshape(-1).astype(np.float64), b.diff.reshape(-1)))
                    for b in self.net.learnable)
        norm = dtype(np.sqrt(sumsq))
        if norm > clip:
            scale = dtype(clip) / norm
            log.info("Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale "
                     "factor %s", _g(norm), _g(clip), _g(scale))
            for blob in self.net.learnable:
                blob.diff *= scale

    # ------------------------------------------------------------------ testing
    def test(self, test_net_id=None):
        """Caffe's TestAll (or Test(test_net_id)): runs test_iter batches through each test
        net and logs and returns the mean of every output, {output name: value} per net (a
        float for a single value, else an array). None for a test a stop request cut short."""
        if test_net_id is not None:
            return self._test(test_net_id)
        results = []
        for k in range(len(self.test_nets)):
            if self._stop_requested:
                break
            results.append(self._test(k))
        return results

    def _test(self, k: int):
        log.info("Iteration %d, Testing net (#%d)", self.iter, k)
        net, count = self.test_nets[k], self.param.test_iter[k]
        totals, loss = None, 0.0
        for i in range(count):
            if self._stop_requested:
                log.info("Test interrupted.")
                return None
            self._forward(net, self.test_feed(k, i) if self.test_feed else {})
            if self.param.test_compute_loss:
                loss += net.loss()
            values = [np.array(net.blobs[name].data).reshape(-1) for name in net.outputs]
            if totals is None:
                totals = values
            else:
                for total, value in zip(totals, values):
                    total += value
        if self.param.test_compute_loss and count:
            log.info("Test loss: %s", _g(loss / count))
        scores = OrderedDict()
        index = 0
        for name, total in zip(net.outputs, totals or []):
            mean = total / total.dtype.type(count)
            weight = net.loss_weights.get(name, 0.0)
            for value in mean:
                extra = f" (* {_g(weight)} = {_g(np.float32(weight) * value)} loss)" if weight else ""
                log.info("    Test net output #%d: %s = %s%s", index, name, _g(value), extra)
                index += 1
            scores[name] = float(mean[0]) if mean.size == 1 else mean.reshape(net.blobs[name].shape)
        self.test_scores[k] = scores
        return scores

    # ------------------------------------------------------------------ snapshots
    def snapshot_prefix(self) -> str:
        """The snapshot files' prefix (see snapshot.snapshot_prefix)."""
        return snapshot_prefix(self.param, self.path)

    def snapshot(self):
        """Writes {prefix}_iter_{iter}.caffemodel.h5, then .solverstate.h5 (each atomically);
        returns their paths."""
        prefix = self.snapshot_prefix()
        weights = f"{prefix}_iter_{self.iter}.caffemodel.h5"
        state_path = f"{prefix}_iter_{self.iter}.solverstate.h5"
        if os.path.dirname(prefix):
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
        log.info("Snapshotting to HDF5 file %s", weights)
        try:
            self.net.save(weights)
            digest = file_sha256(weights)
        except OSError as error:
            raise SnapshotError(f"{weights}: cannot write the snapshot: {error}") from error
        state = SolverStateData(
            iter=self.iter, learned_net=os.path.basename(weights), current_step=self.current_step,
            history=self.history, weights_sha256=digest, solver_type=self.type,
            rng_states=rng_states_of(self.nets), loss_window=np.array(self._losses, np.float64),
            smoothed_loss=self.smoothed_loss, loss_window_start=self._loss_start,
            layer_state=self._layer_states())
        log.info("Snapshotting solver state to HDF5 file %s", state_path)
        try:
            write_state_hdf5(state_path, state)
        except OSError as error:
            raise SnapshotError(f"{state_path}: cannot write the snapshot: {error}") from error
        self._last_snapshot_iter = self.iter
        self.last_snapshot = (weights, state_path)
        return self.last_snapshot

    def _layer_states(self) -> dict:
        states = {}
        for k, net in enumerate(self.nets):
            for j, layer in enumerate(net.layers):
                get_state = getattr(layer, "get_state", None)
                if callable(get_state):
                    states.setdefault(str(k), {})[str(j)] = {
                        urllib.parse.quote(key, safe=""): np.asarray(value)
                        for key, value in get_state().items()}
        return states

    def restore(self, state_path) -> None:
        """Loads a solver state and the weights file it names; training continues at its iter."""
        state_path = os.fspath(state_path)
        state = read_state(state_path)
        if state.solver_type is not None and state.solver_type != self.type:
            raise SnapshotError(f"{state_path}: was written by a {state.solver_type} solver; "
                                f"this solver is {self.type}")
        if len(state.history) != len(self.history):
            raise SnapshotError(f"{state_path}: holds {len(state.history)} history blobs; the "
                                f"{self.type} solver of this net has {len(self.history)}")
        for k, (mine, saved) in enumerate(zip(self.history, state.history)):
            if saved.size != mine.size:
                raise SnapshotError(f"{state_path}: history blob {k} has shape {saved.shape}, "
                                    f"this net's parameter has {mine.shape}")
        weights = resolve_weights(state_path, state.learned_net)
        if state.weights_sha256 is not None:
            if file_sha256(weights) != state.weights_sha256:
                raise SnapshotError(f"{weights}: the weights file does not match the checksum "
                                    f"kept in {state_path} (truncated, corrupt or replaced)")
        layer_states = []
        for net_key, layers in state.layer_state.items():
            for layer_key, values in layers.items():
                net_index, layer_index = int(net_key), int(layer_key)
                layer = self.nets[net_index].layers[layer_index] if net_index < len(self.nets) \
                    and layer_index < len(self.nets[net_index].layers) else None
                if not callable(getattr(layer, "set_state", None)):
                    raise SnapshotError(f"{state_path}: holds the state of layer #{layer_index} "
                                        f"of net #{net_index}, which has no set_state here: was "
                                        f"it made with another net config?")
                layer_states.append((layer, {urllib.parse.unquote(key): value
                                             for key, value in values.items()}))
        if state.rng_states is not None:
            check_rng_states(self.nets, state.rng_states, state_path)
        try:
            self.net.copy_from(weights)
        except SnapshotError:
            raise
        except Exception as error:  # ConfigError, h5py's errors
            raise SnapshotError(f"{weights}: cannot load the weights: {error}") from None
        self.iter, self.current_step = state.iter, state.current_step
        if state.rng_states is not None:
            set_rng_states(self.nets, state.rng_states)
        else:
            log.info("%s has no random generator states (written by Caffe?): the nets' "
                     "generators are not restored", state_path)
        for mine, saved in zip(self.history, state.history):
            mine[...] = saved.reshape(mine.shape)
        if state.loss_window is not None and len(state.loss_window) <= self.param.average_loss:
            self._losses = [float(x) for x in state.loss_window]
            self.smoothed_loss = state.smoothed_loss
            self._loss_start = state.loss_window_start
            self._keep_loss_window = True
        for layer, values in layer_states:
            layer.set_state(values)
        self._last_snapshot_iter = self.iter


class SGDSolver(Solver):
    type = "SGD"


class NesterovSolver(Solver):
    type = "Nesterov"


class AdaGradSolver(Solver):
    type = "AdaGrad"


class RMSPropSolver(Solver):
    type = "RMSProp"


class AdaDeltaSolver(Solver):
    type = "AdaDelta"


class AdamSolver(Solver):
    type = "Adam"


SOLVERS = {cls.type: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,
                                     AdaDeltaSolver, AdamSolver)}


def get_solver(solver, *, feed=None, test_feed=None) -> Solver:
    """A Solver of the configured type from a solver prototxt path, a SolverConfig (from
    stn.config.read_solver / parse_solver) or a SolverParameter."""
    config = _solver_config(solver)
    return SOLVERS[solver_type_of(config.param, config.path)](config, feed=feed, test_feed=test_feed)
