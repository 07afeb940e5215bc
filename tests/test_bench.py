"""`stn bench --quick --json FILE` runs end to end and writes the documented JSON.

    PYTHONPATH=python python -m pytest tests/test_bench.py -q

A smoke test of the benchmark program (stn/bench.py), in-process through the `stn` entry
point: tiny shapes, a few seconds. It asserts no speed; timings belong in the printed table.
"""

import json

import pytest

from stn import bench
from stn.__main__ import main


def test_quick_bench_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bandwidth bound" in out
    assert "KiB per core" in out  # the L2 size the cache rules of the CPU kernels read

    result = json.loads(path.read_text())
    assert {"machine", "copy_bandwidth_gbs", "rows"} <= result.keys()
    assert {"build_info", "threads", "versions", "omp_policy"} <= result["machine"].keys()
    assert result["machine"]["threads"] == 1
    assert result["machine"]["build_info"]["l2_cache_bytes"] > 0
    assert result["copy_bandwidth_gbs"] > 0

    assert [row["case"] for row in result["rows"]] == [case.name for case in bench.CASES]
    for row in result["rows"]:
        for name in ("stn fused", "stn grid"):
            times = row["times_ms"][name]
            assert times["forward"] > 0 and times["forward_backward"] > 0, (row["case"], name)
        assert row["bound_ms"] > 0 and row["forward_ratio"]["stn fused"] == 1.0
        assert row["copy_bandwidth_gbs"] > 0  # the probe, timed in the case's rounds


def test_case_option_picks_shapes_by_name(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--threads", "1", "--case", "CLUTTERED", "--case", "feature maps,",
                 "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert [row["case"] for row in result["rows"]] == ["cluttered MNIST", "feature maps, border"]
    assert result["thread_scaling"] is None  # its shape was not chosen

    assert main(["bench", "--quick", "--case", "mnist"]) == 2
    error = capsys.readouterr().err
    assert "'mnist'" in error and "'cluttered MNIST'" in error


def test_interleaved_rounds_time_every_step_in_turn():
    from stn.bench_timing import interleaved_medians_ms

    calls = []
    medians = interleaved_medians_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                     repeats=3)
    assert set(medians) == {"a", "b"} and all(ms >= 0 for ms in medians.values())
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-ups, then one call of each per round


def test_rounds_of_a_duration_give_short_steps_more_calls():
    # With round_ms, each round gives a step as many calls as its warm-up's time fits in it:
    # here "short" (about 1 ms) about 20 per round, "long" (about 30 ms) one.
    import time

    from stn.bench_timing import calls_in, interleaved_medians_ms

    calls = []

    def step(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)
        return run

    medians = interleaved_medians_ms({"short": step("short", 0.001), "long": step("long", 0.03)},
                                     repeats=2, round_ms=20.0)
    assert medians["long"] > medians["short"] > 0
    assert calls[:2] == ["short", "long"]  # warm-ups
    rounds = calls[2:]
    short_per_round = rounds.index("long")
    assert 2 <= short_per_round <= 20  # sleep() oversleeps: fewer calls, never more than fit
    assert rounds == (["short"] * short_per_round + ["long"]) * 2
    assert calls_in(20.0, 0.03) == 1 and calls_in(20.0, 0.001) == 20 and calls_in(20.0, 0.0) == 1000
    assert calls_in(0.0, 0.001) == 1


def test_settling_calls_are_not_timed():
    # settle=True: each turn begins with an untimed call; the medians come from the others.
    import time

    from stn.bench_timing import interleaved_medians_ms

    calls = []

    def step(name, slow_after_other):
        def run():
            # The first call after another step's is slow (as torch's spinning threads make it).
            slow = slow_after_other and calls and calls[-1] != name
            calls.append(name)
            time.sleep(0.02 if slow else 0.001)
        return run

    medians = interleaved_medians_ms({"a": step("a", True), "b": step("b", True)}, repeats=2, block=2,
                                     settle=True)
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3  # warm-ups, then 1 untimed + 2 timed each
    assert medians["a"] < 10 and medians["b"] < 10  # the slow first calls were not timed


def test_training_benchmark_times_both_in_alternating_blocks(capsys):
    from stn import bench_train

    calls = []
    medians = bench_train.interleaved_medians_ms(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, block=2)
    assert set(medians) == {"a", "b"} and all(ms >= 0 for ms in medians.values())
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2  # warm-ups, then alternating blocks

    assert bench_train.main(["--batch", "2", "--iterations", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "stn" in out and "ratio torch / stn" in out


def test_single_threaded_peer_is_timed_after_the_rounds():
    # A peer marked interleaved=False (scipy: single-threaded) is timed on its own once the
    # interleaved rounds are done, so that no contender follows its idle-core spells.
    from stn import functional
    from stn.bench_peers import Peer, Timed

    calls = []

    def peer(name, interleaved):
        def prepare(case, host):
            def forward():
                calls.append(name)
                return functional.spatial_transform(host.input, host.theta, case.out_size)
            return Timed(forward)
        return Peer(name, "1.0", prepare, interleaved=interleaved)

    case = bench.quick_case(bench.CASES[1])
    with bench.HostCopy(threads=1, megabytes=1) as copy:
        row = bench.bench_case(case, [peer("alone", False), peer("with", True)], bench.host_backend(),
                               repeats=3, copy=copy, round_ms=0.0)
    assert row["max_abs_diff"] == {"stn grid": 0.0, "alone": 0.0, "with": 0.0}
    timing = calls[2:]  # after check_outputs' call of each
    assert timing == ["with"] * timing.count("with") + ["alone"] * timing.count("alone")
    assert timing.count("with") >= 4 and timing.count("alone") >= 4  # warm-up + 3 repeats
    assert row["forward_ratio"]["alone"] > 0 and row["forward_ratio"]["with"] > 0
    assert row["copy_bandwidth_gbs"] > 0
    assert row["bound_ms"] == pytest.approx(case.bytes_moved / (row["copy_bandwidth_gbs"] * 1e6))
