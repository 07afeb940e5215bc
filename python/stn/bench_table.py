"""Text tables for `stn bench` (stn/bench.py): one block per case, the bandwidth bound, the
thread scaling. Every function takes the rows bench.py also writes to --json, so the printed
table and the JSON file always hold the same numbers.
"""

from __future__ import annotations

IMPLEMENTATIONS = ("stn fused", "stn grid", "torch", "opencv", "scipy")


def _number(value, width: int, digits: int = 2) -> str:
    return f"{'n/a':>{width}s}" if value is None else f"{value:{width}.{digits}f}"


def _copy_probe(machine: dict, copy_mb: int) -> str:
    if machine["device"] == "cpu":
        return f"np.copyto of {copy_mb} MB split over {machine['threads']} threads"
    return f"cupy.copyto of {copy_mb} MB on the GPU"


def _omp_policy(machine: dict) -> str:
    chosen = {name: value for name, value in machine.get("omp_policy", {}).items() if value is not None}
    if not chosen:
        return "the runtime's defaults"
    return ", ".join(f"{name}={value}" for name, value in chosen.items())


def _l2(info: dict) -> str:
    l2_bytes = info.get("l2_cache_bytes")
    return f"L2 {l2_bytes // 1024} KiB per core" if l2_bytes else "L2 size unknown"


def header(machine: dict, bandwidth_gbs: float, rounds: int, round_ms: float, copy_mb: int) -> str:
    info = machine["build_info"]
    versions = ", ".join(f"{name} {version or 'n/a'}" for name, version in machine["versions"].items())
    return "\n".join([
        f"stn bench on {machine['device']}: float32, {machine['threads']} threads for stn, torch "
        f"and OpenCV, median per call after a warm-up, over {rounds} interleaved rounds of about "
        f"{round_ms:g} ms for each implementation",
        f"  stn built with {info.get('compiler')} (baseline {info.get('simd')}), row kernels "
        f"{info.get('simd_kernels', 'n/a')} chosen at run time, {_l2(info)}; {versions}",
        f"  copy bandwidth ({_copy_probe(machine, copy_mb)}), at the start: {bandwidth_gbs:.1f} GB/s",
        f"  OpenMP waiting, shared by stn and torch: {_omp_policy(machine)}",
        "  ratio = implementation ms / stn fused ms (> 1: stn fused is faster); "
        "GB/s = (input + output bytes) / forward time",
        "",
    ])


def case_title(row: dict) -> str:
    out_height, out_width = row["out_size"]
    return (f"{row['case']}: {tuple(row['input_shape'])} -> {out_height}x{out_width}, "
            f"{row['padding_mode']} padding, align_corners={row['align_corners']}")


def case_block(row: dict) -> str:
    lines = [case_title(row),
             f"  {'implementation':14s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} {'fwd ratio':>10s} "
             f"{'fwd+bwd ratio':>14s} {'GB/s':>7s}"]
    for name in IMPLEMENTATIONS:
        times = row["times_ms"].get(name)
        if times is None:
            lines.append(f"  {name:14s} {'n/a':>9s} {'n/a':>11s} {'n/a':>10s} {'n/a':>14s} {'n/a':>7s}")
            continue
        lines.append(
            f"  {name:14s} {_number(times['forward'], 9)} {_number(times['forward_backward'], 11)} "
            f"{_number(row['forward_ratio'].get(name), 10)} "
            f"{_number(row['forward_backward_ratio'].get(name), 14)} {_number(row['gbs'][name], 7)}")
    lines.extend(f"  {warning}" for warning in row["warnings"])
    return "\n".join(lines) + "\n"


def bound_table(rows) -> str:
    lines = ["bandwidth bound: bound ms = (input + output bytes) / copy bandwidth, the copy probe "
             "timed in the case's rounds",
             f"  {'case':24s} {'MB moved':>9s} {'copy GB/s':>10s} {'bound ms':>9s} {'fused ms':>9s} "
             f"{'fused / bound':>14s}"]
    for row in rows:
        lines.append(f"  {row['case']:24s} {row['bytes_moved'] / 1e6:9.2f} {row['copy_bandwidth_gbs']:10.1f} "
                     f"{row['bound_ms']:9.3f} {row['times_ms']['stn fused']['forward']:9.3f} "
                     f"{row['fused_vs_bound']:14.2f}")
    return "\n".join(lines) + "\n"


def scaling_lines(scaling: dict) -> str:
    threads = scaling["threads"]
    return (f"thread scaling, stn fused forward, {scaling['case']} {tuple(scaling['input_shape'])}:\n"
            f"  1 thread {scaling['one_thread_ms']:.2f} ms, {threads} thread{'s' * (threads != 1)} "
            f"{scaling['threads_ms']:.2f} ms: speed-up {scaling['speedup']:.2f}\n")


def notes(peers) -> str:
    lines = [f"note: {peer.note}" for peer in peers if peer.note]
    lines.append("note: OpenCV and scipy warp each (H, W) plane in turn and have no backward; "
                 "fwd+bwd is the forward, then the backward to input and theta")
    return "\n".join(lines)
