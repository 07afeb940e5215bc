"""Times one training iteration of the example ST-CNN (prototxt/mnist_stn/train_val.prototxt):
stn's net runner against the same network written in PyTorch, same batch, same threads.

    python -m stn.bench_train [--batch 64] [--size 28] [--iterations 10] [--threads 2]

A benchmark, not a test: it prints milliseconds per iteration (median after warm-up, stn and
torch timed in alternating blocks so that load changes reach both) and the
ratio torch / stn (> 1 means stn is faster). The PyTorch side needs torch installed.

torch shares stn's OpenMP runtime, so this command runs both under the runtime's default
waiting policy, as torch runs without stn (stn/omp_policy.py); stn's own short spin made its
iteration ~10% faster than this default on the 2-core machine measured.
"""

from __future__ import annotations

import argparse

import numpy as np

from . import functional
from .bench_timing import interleaved_medians_ms, median_ms
from .config import read_net
from .examples import example_path
from .net import TRAIN, Net
from .proto import caffe_pb2

EXAMPLE = "mnist_stn/train_val.prototxt"  # inside the example configs (stn.examples)


def example_net(path, batch: int, size: int, seed: int = 0) -> Net:
    """The example net with its HDF5Data layers replaced by inputs of the given shape."""
    config = read_net(path)
    kept = [(layer, where) for layer, where in zip(config.param.layer, config.layer_locations)
            if layer.type != "HDF5Data"]
    param = caffe_pb2.NetParameter(name=config.param.name, input=["data", "label"])
    param.input_shape.add().dim.extend([batch, 1, size, size])
    param.input_shape.add().dim.extend([batch])
    for layer, _ in kept:
        param.layer.add().CopyFrom(layer)
    config.param = param
    config.layer_locations = [where for _, where in kept]
    return Net(config, TRAIN, seed=seed)


def sgd_step(net: Net, lr: float = 0.01) -> None:
    for blob, (lr_mult, _) in zip(net.learnable, net.param_specs):
        blob.data -= lr * lr_mult * blob.diff
        blob.diff[...] = 0


def torch_model(torch, size: int):
    nn, F = torch.nn, torch.nn.functional
    pooled = ((size // 2 - 4) + 1) // 2  # loc_pool0, 5x5 conv, ceil-mode 2x2 pool

    class STCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.loc_conv1 = nn.Conv2d(1, 20, 5)
            self.loc_ip1 = nn.Linear(20 * pooled * pooled, 20)
            self.loc_reg = nn.Linear(20, 6)
            nn.init.zeros_(self.loc_reg.weight)
            self.loc_reg.bias.data = torch.tensor([1.0, 0, 0, 0, 1, 0])
            self.conv1, self.conv2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
            self.ip1, self.ip2 = nn.Linear(50 * 4 * 4, 500), nn.Linear(500, 10)

        def forward(self, x):
            loc = F.max_pool2d(x, 2, 2)
            loc = F.relu(F.max_pool2d(self.loc_conv1(loc), 2, 2, ceil_mode=True))
            theta = self.loc_reg(F.relu(self.loc_ip1(loc.flatten(1)))).view(-1, 2, 3)
            grid = F.affine_grid(theta, (x.shape[0], 1, 28, 28), align_corners=False)
            v = F.grid_sample(x, grid, align_corners=False)
            v = F.max_pool2d(self.conv1(v), 2, 2)
            v = F.max_pool2d(self.conv2(v), 2, 2)
            return self.ip2(F.relu(self.ip1(v.flatten(1))))

    return STCNN()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=f"prototxt (default: the example {EXAMPLE})")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28, help="input digits are size x size")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    functional.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, 1, args.size, args.size), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch).astype(np.float32)
    net = example_net(args.model or example_path(EXAMPLE), args.batch, args.size)

    def stn_step():
        net.forward(data=images, label=labels)
        net.backward()
        sgd_step(net)

    print(f"one training iteration, ST-CNN, batch {args.batch}, {args.size}x{args.size} digits, "
          f"{args.threads} threads")
    try:
        import torch
    except ImportError:
        print(f"  stn    {median_ms(stn_step, args.iterations):8.2f} ms")
        print("  torch  not installed: no comparison")
        return 0
    torch.set_num_threads(args.threads)
    model = torch_model(torch, args.size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(images), torch.from_numpy(labels).long()

    def torch_step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    medians = interleaved_medians_ms({"stn": stn_step, "torch": torch_step}, args.iterations, block=5)
    ours, theirs = medians["stn"], medians["torch"]
    print(f"  stn    {ours:8.2f} ms")
    print(f"  torch  {theirs:8.2f} ms  (timed in alternating blocks of 5 iterations)")
    print(f"  ratio torch / stn = {theirs / ours:.2f} (> 1: stn faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
