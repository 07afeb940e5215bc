"""The pictures of `stn experiment`: transformed.png and evolution.gif (Pillow), curves.png
(matplotlib). Images are (K, H, W) arrays in [0, 1]."""

from __future__ import annotations

import numpy as np

SCALE = 3          # screen pixels per image pixel
COLUMNS = 4        # probe digits per row
GAP = 4            # pixels between tiles


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('stn experiment writes its pictures with Pillow: pip install "stn[data]"') from None
    return Image


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    """One image as uint8, scaled to size x size screen pixels (nearest neighbour)."""
    image = np.clip(image, 0.0, 1.0)
    rows = (np.arange(size) * image.shape[0] // size)
    cols = (np.arange(size) * image.shape[1] // size)
    return (image[rows][:, cols] * 255 + 0.5).astype(np.uint8)


def _sheet(groups, size: int) -> np.ndarray:
    """A grid of COLUMNS cells per row; each cell is a horizontal group of images."""
    cell_width = len(groups[0]) * (size + GAP) + GAP
    rows = -(-len(groups) // COLUMNS)
    sheet = np.full((rows * (size + GAP) + GAP, COLUMNS * cell_width + GAP), 40, np.uint8)
    for index, group in enumerate(groups):
        top = GAP + (index // COLUMNS) * (size + GAP)
        left = GAP + (index % COLUMNS) * cell_width
        for k, image in enumerate(group):
            x = left + k * (size + GAP)
            sheet[top:top + size, x:x + size] = _tile(image, size)
    return sheet


def transformed_png(path: str, inputs: np.ndarray, outputs: np.ndarray) -> None:
    """Each probe digit's input beside the transformer's output."""
    size = SCALE * max(inputs.shape[-1], outputs.shape[-1])
    _pil().fromarray(_sheet(list(zip(inputs, outputs)), size)).save(path)


def evolution_gif(path: str, run) -> None:
    """One frame per test interval: the transformer's outputs for the probe digits."""
    Image = _pil()
    size = SCALE * run.frames[0].shape[-1]
    frames = [Image.fromarray(_sheet([[image] for image in frame], size)) for frame in run.frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0)


def curves_png(path: str, runs: dict, titles: dict, settings) -> None:
    """Training loss (smoothed over 50 iterations) and test error of each net."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('stn experiment draws curves.png with matplotlib: pip install "stn[data]"') from None
    figure, (loss_axes, error_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for name, run in runs.items():
        loss = np.asarray(run.train_loss, np.float64)
        window = min(50, len(loss))
        smoothed = np.convolve(loss, np.ones(window) / window, mode="valid")
        loss_axes.plot(np.arange(window, len(loss) + 1), smoothed, label=titles[name])
        error_axes.plot(run.iterations, 100 * np.asarray(run.test_error), marker="o", label=titles[name])
    loss_axes.set(xlabel="iteration", ylabel="training loss", yscale="log",
                  title=f"training loss ({settings.variant}, {settings.source})")
    error_axes.set(xlabel="iteration", ylabel="test error (%)", title="test error")
    for axes in (loss_axes, error_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
