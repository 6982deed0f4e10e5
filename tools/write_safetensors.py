#!/usr/bin/python3
"""Writes the safetensors fixtures of fixtures/safetensors/ from real PyTorch modules.

Debian's python3-torch (PyTorch 1.13) has no safetensors package, so the files are written by hand
exactly as the format specifies (and as safetensors.torch.save_file lays them out): an 8-byte
little-endian header length, a JSON header sorted by key with dtype, shape and data_offsets, padded
with spaces to a multiple of 8 bytes, then the raw little-endian tensors in header order.

Each file comes with <name>.expected.json holding every tensor's dtype, shape and values as
PyTorch's state_dict() has them, so the C# tests compare what they read with what PyTorch saved.

    /usr/bin/python3 tools/write_safetensors.py            # -> fixtures/safetensors/
    /usr/bin/python3 tools/write_safetensors.py --out DIR
"""
import argparse
import json
import os
import struct

import torch
import torch.nn as nn

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors):
    """tensors: dict name -> tensor. Writes the file in sorted key order."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()  # little-endian on x86-64
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def expected(tensors):
    return {name: {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}
            for name, t in sorted(tensors.items())}


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, momentum=None)


class SmallNet(nn.Module):
    """A ResNet-like key layout: bn1, layer1.0.bn1, layer1.0.bn2, layer1.1.bn1, ... plus an untracked head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(Block(4), Block(4))
        self.head = nn.BatchNorm1d(4, affine=False)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for block in self.layer1:
            x = torch.relu(block.bn1(block.conv1(x)))
            x = block.bn2(block.conv2(x))
        return self.head(x.mean(dim=(2, 3)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "safetensors"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    files = {}

    torch.manual_seed(1501)
    net = SmallNet()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    net.train()
    for _ in range(3):
        net(torch.randn(6, 3, 5, 5) * 2 + 0.5)
    files["pytorch-smallnet-f32"] = net.state_dict()

    torch.manual_seed(1502)
    bn = nn.BatchNorm2d(3, momentum=0.3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn.train()
    for _ in range(2):
        bn(torch.randn(4, 3, 3, 3, dtype=torch.float64) - 1)
    files["pytorch-bn2d-f64"] = bn.state_dict()

    # num_batches_tracked of shape [1]: PyTorch 0.3-era checkpoints, and what some writers still emit.
    torch.manual_seed(1503)
    bn = nn.BatchNorm1d(5)
    bn.train()
    bn(torch.randn(8, 5))
    legacy = dict(bn.state_dict())
    legacy["num_batches_tracked"] = legacy["num_batches_tracked"].reshape(1)
    files["pytorch-bn1d-legacy-count-shape1"] = legacy

    for name, tensors in files.items():
        write_safetensors(os.path.join(args.out, name + ".safetensors"), tensors)
        with open(os.path.join(args.out, name + ".expected.json"), "w") as f:
            json.dump({"torch": torch.__version__, "tensors": expected(tensors)}, f, separators=(",", ":"))
        print(name, len(tensors), "tensors")


if __name__ == "__main__":
    main()
