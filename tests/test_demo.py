"""Tests for `stn demo` (python/stn/demo.py) through the `stn` command line entry point.

    PYTHONPATH=python python -m pytest tests/test_demo.py -q

Runs the demo into a temporary folder (a second or two) and checks its PNGs; skipped
when Pillow, the optional "demo" dependency, is missing.
"""

import itertools

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

import stn  # noqa: E402
from stn import demo  # noqa: E402
from stn.__main__ import main  # noqa: E402

ZOOMS = [f"zoom_translate_{i}.png" for i in range(9)]
OTHERS = ["rotate_30.png", "rotate_90.png", "rotate_180.png", "scale_1.5.png", "shear_0.5.png"]


def load(path):
    with Image.open(path) as image:
        return image.mode, image.size, np.asarray(image.convert("RGB"), np.int16)


def test_demo_writes_every_png(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert "contact_sheet.png" in capsys.readouterr().out

    expected = ["original.png", *ZOOMS, *OTHERS, "contact_sheet.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    images = {}
    for name in expected[:-1]:
        mode, size, images[name] = load(tmp_path / name)
        assert (mode, size) == ("RGB", (demo.SIZE, demo.SIZE)), name
    _, (width, height), _ = load(tmp_path / "contact_sheet.png")
    assert width > demo.COLUMNS * demo.SIZE and height > 3 * demo.SIZE

    for name in ZOOMS:
        assert np.abs(images[name] - images["original.png"]).mean() > 5, name
    for a, b in itertools.combinations(ZOOMS, 2):
        assert np.abs(images[a] - images[b]).mean() > 1, (a, b)


def test_demo_options_reach_the_kernels(tmp_path):
    written = demo.run_demo(tmp_path, mode="nearest", padding_mode="border",
                            align_corners=True, log=None)
    assert len(written) == 16 and all(p.is_file() for p in written.values())


def test_rotate_180_flips_the_card():
    # theta maps output to input: -(x, y) is pixel (W-1-j, H-1-i) for either align_corners.
    # Exact in float64; float32 coordinates are off by ~1e-7 * 226 px, which bilinear
    # turns into ~3e-5 at the card's sharp edges (PyTorch's grid_sample does the same).
    card = demo.make_test_card()
    flipped = np.flip(card, axis=(1, 2))
    theta = np.array([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    out64 = stn.spatial_transform(card[None].astype(np.float64), theta, align_corners=True)
    np.testing.assert_allclose(out64[0], flipped, rtol=0, atol=1e-5)
    out32 = stn.spatial_transform(card[None], theta.astype(np.float32), align_corners=True)
    np.testing.assert_allclose(out32[0], flipped, rtol=0, atol=1e-4)
    nearest = stn.spatial_transform(card[None], theta.astype(np.float32), mode="nearest",
                                    align_corners=True)
    np.testing.assert_array_equal(nearest[0], flipped)
