"""The peers `stn bench` times stn against: PyTorch, OpenCV and scipy, each imported lazily.

Every peer is optional. peers(threads, device) returns one Peer per library; a missing
library is a Peer with version None, and the table prints "n/a" for it. A Peer's
prepare(case, host) returns Timed callables for one case, or None where the peer cannot do
exactly the same work (a padding it has no equivalent for, or a GPU run for a CPU-only
library).

Conventions, those of stn.spatial_transform: input is (N, C, H, W), theta (N, 2, 3) maps
normalized output coordinates (x = column, y = row, in [-1, 1]) to normalized input
coordinates. OpenCV and scipy work in pixels, so theta becomes a pixel-space matrix
(pixel_matrices) applied as an inverse map: output pixel -> input pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


@dataclass
class Timed:
    """One implementation's work on one case. forward() returns the output (N, C, Ho, Wo);
    forward_backward() runs the forward and the backward to input and theta; None: n/a."""
    forward: Callable
    forward_backward: Optional[Callable] = None


@dataclass
class Peer:
    name: str
    version: Optional[str]                  # None: not installed (or no GPU path)
    prepare: Optional[Callable] = None      # (case, host inputs) -> Timed or None
    note: str = ""                          # printed under the table, e.g. "single-threaded"
    # Timed in the rounds that interleave the contenders (bench_timing.py). A single-threaded
    # peer is timed on its own, after them: its long calls leave every core but one idle, and
    # whichever contender followed it in a round started on cores waking up (see bench.py).
    interleaved: bool = True


def _axis_maps(size: int, align_corners: bool):
    """((a, b): pixel -> normalized g = a*p + b, (c, d): normalized -> pixel p = c*g + d)
    along one axis of `size` pixels. align_corners=False: p = ((g + 1) * size - 1) / 2;
    True: p = (g + 1) * (size - 1) / 2."""
    if align_corners:
        if size == 1:  # a single pixel sits at g = 0, as in torch's affine_grid
            return (0.0, 0.0), (0.0, 0.0)
        return (2.0 / (size - 1), -1.0), ((size - 1) / 2.0, (size - 1) / 2.0)
    return (2.0 / size, 1.0 / size - 1.0), (size / 2.0, (size - 1) / 2.0)


def pixel_matrices(theta, in_hw, out_hw, align_corners: bool) -> np.ndarray:
    """theta (N, 2, 3), normalized -> (N, 2, 3) float64 in pixels: (x_in, y_in) = M @ (x_out,
    y_out, 1) with x the column and y the row, OpenCV's WARP_INVERSE_MAP convention."""
    (ax, bx), _ = _axis_maps(out_hw[1], align_corners)
    (ay, by), _ = _axis_maps(out_hw[0], align_corners)
    _, (cx, dx) = _axis_maps(in_hw[1], align_corners)
    _, (cy, dy) = _axis_maps(in_hw[0], align_corners)
    output_to_normalized = np.array([[ax, 0, bx], [0, ay, by], [0, 0, 1]])
    normalized_to_input = np.array([[cx, 0, dx], [0, cy, dy], [0, 0, 1]])
    theta3 = np.zeros((len(theta), 3, 3))
    theta3[:, :2] = theta
    theta3[:, 2, 2] = 1
    return (normalized_to_input @ theta3 @ output_to_normalized)[:, :2]


def _torch_peer(threads: int, device: str) -> Peer:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return Peer("torch", None, note="torch: not installed")
    if device == "cuda" and not torch.cuda.is_available():
        return Peer("torch", None, note="torch: no CUDA build or GPU")
    torch.set_num_threads(threads)

    def prepare(case, host):
        def tensor(array):
            return torch.from_numpy(array).to(device)
        x, theta, grad_output = tensor(host.input), tensor(host.theta), tensor(host.grad_output)
        size = (*case.input_shape[:2], *case.out_size)
        options = dict(mode="bilinear", padding_mode=case.padding_mode,
                       align_corners=case.align_corners)

        def forward():
            grid = F.affine_grid(theta, size, align_corners=case.align_corners)
            return F.grid_sample(x, grid, **options)

        x_grad, theta_grad = x.clone().requires_grad_(), theta.clone().requires_grad_()

        def forward_backward():
            x_grad.grad = theta_grad.grad = None
            grid = F.affine_grid(theta_grad, size, align_corners=case.align_corners)
            F.grid_sample(x_grad, grid, **options).backward(grad_output)

        return Timed(forward, forward_backward)

    return Peer("torch", torch.__version__, prepare)


def _opencv_peer(threads: int, device: str) -> Peer:
    try:
        import cv2
    except ImportError:
        return Peer("opencv", None, note="opencv: not installed")
    if device != "cpu":
        return Peer("opencv", None, note="opencv: CPU only")
    cv2.setNumThreads(threads)
    # torch's border padding clamps the coordinate to [0, S-1]; bilinear taps on an image
    # extended by replicating its edge read the same values, so the two are equivalent.
    borders = {"zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE}
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # theta maps output -> input

    def prepare(case, host):
        if case.padding_mode not in borders:
            return None
        n_batch, channels, height, width = case.input_shape
        out_height, out_width = case.out_size
        matrices = pixel_matrices(host.theta, (height, width), case.out_size, case.align_corners)
        border = borders[case.padding_mode]

        def forward():  # one warpAffine per (H, W) plane: OpenCV has no NCHW batch
            output = np.empty((n_batch, channels, out_height, out_width), np.float32)
            for n in range(n_batch):
                for c in range(channels):
                    cv2.warpAffine(host.input[n, c], matrices[n], (out_width, out_height),
                                   dst=output[n, c], flags=flags, borderMode=border,
                                   borderValue=0)
            return output

        return Timed(forward)

    return Peer("opencv", cv2.__version__, prepare)


def _scipy_peer(threads: int, device: str) -> Peer:
    try:
        import scipy
        from scipy import ndimage
    except ImportError:
        return Peer("scipy", None, note="scipy: not installed")
    if device != "cpu":
        return Peer("scipy", None, note="scipy: CPU only")
    # "grid-constant", not "constant": scipy's "constant" returns cval for any point outside
    # [0, S-1] instead of interpolating with zero taps, which differs from zeros padding in
    # the outermost half pixel. "nearest" replicates the edge, like border padding.
    modes = {"zeros": "grid-constant", "border": "nearest"}

    def prepare(case, host):
        if case.padding_mode not in modes:
            return None
        n_batch, channels, height, width = case.input_shape
        matrices = pixel_matrices(host.theta, (height, width), case.out_size, case.align_corners)
        # scipy indexes (row, col): swap x and y in the matrix and the offset.
        row_col = [(np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]]), np.array([m[1, 2], m[0, 2]]))
                   for m in matrices]
        mode = modes[case.padding_mode]

        def forward():
            output = np.empty((n_batch, channels, *case.out_size), np.float32)
            for n, (matrix, offset) in enumerate(row_col):
                for c in range(channels):
                    ndimage.affine_transform(host.input[n, c], matrix, offset,
                                             output_shape=case.out_size, output=output[n, c],
                                             order=1, mode=mode, cval=0.0, prefilter=False)
            return output

        return Timed(forward)

    return Peer("scipy", scipy.__version__, prepare, note="scipy: single-threaded, timed after the others",
                interleaved=False)


def peers(threads: int, device: str = "cpu") -> list:
    """[Peer] for torch, OpenCV and scipy, their thread counts set to `threads`."""
    return [make(threads, device) for make in (_torch_peer, _opencv_peer, _scipy_peer)]


def set_peer_threads(threads: dict) -> dict:
    """Sets {"torch": n, "opencv": n} for the libraries that are installed and returns the
    counts they had, so a caller can put them back."""
    previous = {}
    try:
        import torch
        previous["torch"] = torch.get_num_threads()
        if "torch" in threads:
            torch.set_num_threads(threads["torch"])
    except ImportError:
        pass
    try:
        import cv2
        previous["opencv"] = cv2.getNumThreads()
        if "opencv" in threads:
            cv2.setNumThreads(threads["opencv"])
    except ImportError:
        pass
    return previous
