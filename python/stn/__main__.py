"""The `stn` command line: `stn COMMAND [options]`, also `python -m stn COMMAND`.

    stn experiment --variant RTS   # CNN vs ST-CNN on distorted digits (see stn/experiment.py)
    stn data RTS --out rts         # write distorted digits for the data layers (stn/data_cli.py)
    stn demo --out stn_demo        # warp a test card, write PNGs (see stn/demo.py)
    stn train -solver S            # Caffe's train / test / time verbs (see stn/caffe_cli.py)

Each module named in SUBCOMMANDS has add_parser(subparsers), which registers its
subcommand(s) and sets func(args) for each; add one by naming its module there.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

SUBCOMMANDS = (
    "experiment",
    "data_cli",   # data
    "demo",
    "caffe_cli",  # train, test, time
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stn", description="Spatial Transformer Networks: C++/CUDA kernels, numpy API.")
    parser.add_argument("--version", action="version", version=f"stn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __package__).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
