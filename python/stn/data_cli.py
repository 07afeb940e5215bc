"""`stn data VARIANT --source SOURCE --out DIR`: write distorted digits for the data layers.

    stn data RTS --source mnist5k --out rts            # rts/train.txt, rts/test.txt + .h5 shards
    stn data cluttered --source mnist --root ~/mnist --out cluttered --png

HDF5 shards (datasets `data` (N, 1, S, S) float32 in [0, 1] and `label`) with the list files
train.txt / test.txt that the HDF5Data layer reads; --png also writes 8-bit PNGs with
train_images.txt / test_images.txt for the ImageData layer (root_folder: DIR).
"""

from __future__ import annotations

import os

from . import data


def add_parser(subparsers):
    parser = subparsers.add_parser("data", help="write distorted digits (HDF5, optionally PNG)")
    parser.add_argument("variant", choices=data.VARIANTS, help="the distortion")
    parser.add_argument("--source", default="mnist5k", choices=data.SOURCES,
                        help="mnist5k (embedded, pip install 'stn[data]'), mnist or fashion")
    parser.add_argument("--root", help="folder of the source's files (mnist, fashion)")
    parser.add_argument("--url", help="mnist: base URL to download the IDX files from")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--copies", type=int, default=1,
                        help="distorted copies of each training digit (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", action="store_true", help="also write PNGs and ImageData lists")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.copies <= 0:
        raise SystemExit("stn data: --copies must be positive")
    digits = data.load_digits(args.source, root=args.root, url=args.url)
    train, train_labels, test, test_labels = data.distort_splits(
        args.variant, digits, copies=args.copies, seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    written = [data.write_hdf5_split(args.out, "train", train, train_labels),
               data.write_hdf5_split(args.out, "test", test, test_labels)]
    if args.png:
        written += [data.write_png_split(args.out, "train", train, train_labels),
                    data.write_png_split(args.out, "test", test, test_labels)]
    print(f"{args.variant} from {args.source}: {len(train)} training and {len(test)} test images "
          f"of {train.shape[-2]} x {train.shape[-1]}")
    for path in written:
        print(f"wrote {path}")
    return 0
