"""`stn demo`: warps a procedurally drawn test card and writes the results as PNGs.

    stn demo --out stn_demo                      # or: python -m stn demo --out stn_demo
    stn demo --mode bicubic --padding reflection --align-corners

Draws a 227x227 RGB test card (coloured quadrants, a grid, circles, "STN"), then sends a
batch of 14 thetas through one stn.spatial_transform call: a zoom x2 whose translation
sweeps the diagonal (t = -0.5 ... 0.3) and a few rotations, a scale and a shear. Writes
each warp, the original and a labelled contact sheet, then runs the backward on the
batch (d mean(output) / d theta) and checks it against central differences.
Needs Pillow: pip install "stn[demo]".
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ._validate import MODES, PADDINGS
from .functional import spatial_transform, spatial_transform_backward

SIZE = 227          # the card is SIZE x SIZE, the input size of the seed blog's network
COLUMNS = 5         # tiles per row of the contact sheet


def _pillow():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as error:
        raise ImportError(
            'stn demo needs Pillow, an optional dependency: pip install "stn[demo]"'
        ) from error
    return Image, ImageDraw, ImageFont


def _font(size: int):
    ImageFont = _pillow()[2]
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def make_test_card(size: int = SIZE) -> np.ndarray:
    """The demo's sample image: float32 (3, size, size) in [0, 1]."""
    Image, ImageDraw, _ = _pillow()
    half = size // 2
    quadrants = np.empty((size, size, 3), np.float32)
    quadrants[:half, :half] = (230, 60, 60)      # red    | green
    quadrants[:half, half:] = (60, 180, 80)      # -------+-------
    quadrants[half:, :half] = (60, 100, 230)     # blue   | yellow
    quadrants[half:, half:] = (235, 200, 50)
    ramp = np.linspace(1.0, 0.55, size, dtype=np.float32)
    shade = (ramp[:, None] + ramp[None, :]) / 2   # bright top-left, dark bottom-right
    image = Image.fromarray((quadrants * shade[..., None]).astype(np.uint8))

    draw = ImageDraw.Draw(image)
    step = size / 8
    for i in range(1, 8):                          # grid of thin lines
        p = round(i * step)
        draw.line([(p, 0), (p, size - 1)], fill=(20, 20, 20))
        draw.line([(0, p), (size - 1, p)], fill=(20, 20, 20))
    draw.rectangle([0, 0, size - 1, size - 1], outline=(255, 255, 255), width=3)
    centre = size / 2 - 0.5
    for radius, colour in ((100, (255, 255, 255)), (75, (20, 20, 20)), (50, (255, 255, 255))):
        draw.ellipse([centre - radius, centre - radius, centre + radius, centre + radius],
                     outline=colour, width=3)
    draw.ellipse([14, 14, 42, 42], fill=(255, 255, 255), outline=(0, 0, 0), width=2)  # marker
    font = _font(56)
    left, top, right, bottom = draw.textbbox((0, 0), "STN", font=font)
    draw.text((centre - (left + right) / 2, centre - (top + bottom) / 2), "STN", font=font,
              fill=(255, 255, 255), stroke_width=3, stroke_fill=(0, 0, 0))
    return (np.asarray(image, np.float32) / 255).transpose(2, 0, 1).copy()


def _rotation(degrees: float) -> np.ndarray:
    r = math.radians(degrees)
    c, s = round(math.cos(r), 7), round(math.sin(r), 7)
    return np.array([[c, -s, 0], [s, c, 0]])


def demo_thetas() -> dict:
    """name -> (label, theta (2, 3)); theta maps output (x, y, 1) to input coordinates."""
    thetas = {}
    for i in range(9):
        t = round(-0.5 + 0.1 * i, 1)
        thetas[f"zoom_translate_{i}"] = (f"zoom x2, t={t:+.1f}", np.array([[0.5, 0, t], [0, 0.5, t]]))
    for degrees in (30, 90, 180):
        thetas[f"rotate_{degrees}"] = (f"rotate {degrees} deg ccw", _rotation(degrees))
    thetas["scale_1.5"] = ("scale 1.5 (zoom out)", np.array([[1.5, 0, 0], [0, 1.5, 0]]))
    thetas["shear_0.5"] = ("shear x by 0.5 y", np.array([[1, 0.5, 0], [0, 1, 0]]))
    return thetas


def _to_pil(chw: np.ndarray):
    Image = _pillow()[0]
    return Image.fromarray((np.clip(chw, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0))


def _contact_sheet(tiles, title: str):
    """tiles: [(label, PIL image)] -> one labelled grid image."""
    Image, ImageDraw, _ = _pillow()
    gap, strip, header = 6, 18, 26
    w, h = tiles[0][1].size
    rows = -(-len(tiles) // COLUMNS)
    sheet = Image.new("RGB", (gap + COLUMNS * (w + gap), header + rows * (h + strip + gap)),
                      (35, 35, 35))
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    draw.text((gap, 6), title, font=font, fill=(255, 255, 255))
    for k, (label, tile) in enumerate(tiles):
        x = gap + (k % COLUMNS) * (w + gap)
        y = header + (k // COLUMNS) * (h + strip + gap)
        sheet.paste(tile, (x, y))
        draw.text((x, y + h + 2), label, font=font, fill=(230, 230, 230))
    return sheet


def _fmt(theta) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v + 0.0:.4g}" for v in row) + "]" for row in theta) + "]"


def _gradient_check(card, theta, options, eps=1e-9) -> float:
    """Max |analytic - central difference| of d mean(output) / d theta, in float64.

    Bilinear has kinks where a coordinate is an integer; the demo's round thetas land some
    pixels exactly there, so the check nudges theta to a random point first, and a tiny eps
    makes crossing a kink unlikely.
    """
    image = card[None].astype(np.float64)
    theta = theta.astype(np.float64) + np.random.default_rng(0).uniform(-0.02, 0.02, (2, 3))
    grad_output = np.full(image.shape, 1.0 / image.size)
    _, analytic = spatial_transform_backward(grad_output, image, theta, input_grad=False,
                                             **options)
    numeric = np.zeros((2, 3))
    for k in np.ndindex(2, 3):
        bump = np.zeros((2, 3))
        bump[k] = eps
        numeric[k] = (spatial_transform(image, theta + bump, **options).mean()
                      - spatial_transform(image, theta - bump, **options).mean()) / (2 * eps)
    return float(np.abs(analytic - numeric).max())


def run_demo(out_dir="stn_demo", mode="bilinear", padding_mode="zeros", align_corners=False,
             log=print) -> dict:
    """Runs the demo, writes PNGs into out_dir and returns {file name: path}."""
    options = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    log = log or (lambda *_: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    card = make_test_card()
    thetas = demo_thetas()
    names = list(thetas)
    theta = np.stack([thetas[n][1] for n in names]).astype(np.float32)      # (14, 2, 3)
    batch = np.repeat(card[None], len(names), axis=0)                      # (14, 3, H, W)
    start = time.perf_counter()
    warped = spatial_transform(batch, theta, **options)
    elapsed_ms = (time.perf_counter() - start) * 1e3

    written = {}

    def save(name, image):
        written[name] = out_dir / name
        image.save(written[name])

    original = _to_pil(card)
    save("original.png", original)
    tiles = [("original", original)]
    option_text = f"mode={mode}, padding={padding_mode}, align_corners={align_corners}"
    log(f"stn demo: {SIZE}x{SIZE} test card, {len(names)} warps in one spatial_transform call "
        f"({option_text}): {elapsed_ms:.2f} ms")
    for name, image in zip(names, warped):
        label, th = thetas[name]
        tile = _to_pil(image)
        save(f"{name}.png", tile)
        tiles.append((label, tile))
        log(f"  {name + '.png':22s} {label:22s} theta {_fmt(th)}")
    save("contact_sheet.png", _contact_sheet(tiles, f"stn.spatial_transform: {option_text}"))
    log(f"  {'contact_sheet.png':22s} original + {len(names)} warps")

    # Backward: per image, loss = mean(output[i]), so grad_output = 1 / (C * H * W).
    grad_output = np.full_like(warped, 1.0 / warped[0].size)
    _, grad_theta = spatial_transform_backward(grad_output, batch, theta, input_grad=False,
                                               **options)
    log(f"backward: d mean(output) / d theta for {names[0]}: {_fmt(grad_theta[0])}")
    if mode != "nearest":  # nearest sampling is piecewise constant: its gradient is 0
        log(f"  check at a nearby random theta, float64, vs central differences: max |error| "
            f"{_gradient_check(card, theta[0], options):.2g}")
    log(f"wrote {len(written)} PNG files to {out_dir}")
    return written


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="warp a test card and write PNGs (needs Pillow)",
        description="Warp a procedurally drawn test card with a zoom/translate sweep, "
                    "rotations, a scale and a shear; write PNGs and a contact sheet.")
    parser.add_argument("--out", default="stn_demo", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--mode", default="bilinear", choices=list(MODES),
                        help="sampling mode (default: %(default)s)")
    parser.add_argument("--padding", default="zeros", choices=list(PADDINGS),
                        help="what samples outside the image read (default: %(default)s)")
    parser.add_argument("--align-corners", action="store_true",
                        help="put -1 and +1 at the corner pixels' centres, not their edges")
    parser.set_defaults(func=main)
    return parser


def main(args) -> int:
    try:
        _pillow()
    except ImportError as error:
        raise SystemExit(str(error)) from None
    run_demo(args.out, mode=args.mode, padding_mode=args.padding,
             align_corners=args.align_corners)
    return 0
