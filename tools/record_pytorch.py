#!/usr/bin/python3
"""Record BatchNorm, InstanceNorm, GroupNorm, LayerNorm and RMSNorm cases from real PyTorch in the bnparity-case/1 format.

RMSNorm (torch.nn.RMSNorm, PyTorch 2.4+) does not exist in PyTorch 1.13: its cases are recorded through PyTorch's
own composite definition of it (RMSNormComposite below: x * rsqrt(mean(x^2, normalized dims) + eps) * weight in the
input dtype, eps None = torch.finfo(dtype).eps, autograd for the gradients), which is what torch.rms_norm computes on
CPU. LayerNorm(bias=False) (PyTorch 2.1+) is 1.13's LayerNorm with its bias parameter removed, as 2.1's module does.

Every case is declared in CASES (committed output, fixtures/pytorch/) or HOLDOUT_CASES (never
committed; written with --holdout to check the replay tool on cases it has never seen).
Recording is deterministic: each case seeds torch with its own seed, draws its random loaded
state (if any), then for every step draws the input and (for gradient steps) the grad_output
after the forward.  Output is compact one-line JSON without a trailing newline.

    record_pytorch.py [--out DIR] [--only NAME ...] [--list] [--holdout] [--check DIR]
"""
import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch

FORMAT = "bnparity-case/1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "fixtures", "pytorch")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODULES = {"BatchNorm1d": torch.nn.BatchNorm1d, "BatchNorm2d": torch.nn.BatchNorm2d,
           "BatchNorm3d": torch.nn.BatchNorm3d, "InstanceNorm1d": torch.nn.InstanceNorm1d,
           "InstanceNorm2d": torch.nn.InstanceNorm2d, "InstanceNorm3d": torch.nn.InstanceNorm3d,
           "GroupNorm": torch.nn.GroupNorm, "LayerNorm": torch.nn.LayerNorm, "RMSNorm": None}
# the modules whose inputs have a channels_last form (by rank, see CL_FORMATS)
CL_MODULES = ("BatchNorm2d", "BatchNorm3d", "InstanceNorm2d", "InstanceNorm3d", "GroupNorm")
# accepted input ranks; InstanceNorm's lower rank is its unbatched (C, ...) form
RANKS = {"BatchNorm1d": (2, 3), "BatchNorm2d": (4,), "BatchNorm3d": (5,), "InstanceNorm1d": (2, 3),
         "InstanceNorm2d": (3, 4), "InstanceNorm3d": (4, 5), "GroupNorm": (2, 3, 4, 5)}


def is_instance_norm(module: str) -> bool:
    return module.startswith("InstanceNorm")
CF, CL = "channels_first", "channels_last"
LAYOUTS = (CF, CL)
# channels_last memory format by input rank (only BatchNorm2d/3d inputs have one)
CL_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


# --------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class Input:
    """std * randn(shape) + mean, optionally post-processed.

    round_to: round every value to a multiple of this (exact zeros and ties);
    const_channel: (c, value) sets channel c (dim 1) to a constant."""
    shape: Tuple[int, ...]
    mean: float = 0.0
    std: float = 1.0
    round_to: Optional[float] = None
    const_channel: Optional[Tuple[int, float]] = None
    # LayerNorm/RMSNorm: (r, value) sets set r (row r of the (M, D) view) to a constant
    const_set: Optional[Tuple[int, float]] = None


@dataclass(frozen=True)
class Step:
    training: bool
    input: Input
    grad: bool = False  # draw a grad_output and record expect_grad
    # CL: run the step on x (and grad_output) in channels_last(_3d) memory format; the JSON still
    # holds logical row-major values, plus "layout": "channels_last" (written only for CL steps)
    layout: str = CF


@dataclass(frozen=True)
class Case:
    name: str
    seed: int
    module: str
    num_features: int
    steps: Tuple[Step, ...]
    eps: float = 1e-5
    momentum: Optional[float] = 0.1
    affine: bool = True
    track_running_stats: bool = True
    dtype: str = "float32"
    # None: PyTorch's default init.  Otherwise load random weight/bias ~ N(0,1)+1 / N(0,1),
    # running_mean ~ N(0,1), running_var ~ U(0.5,2.5) and this num_batches_tracked.
    random_state_nbt: Optional[int] = None
    # GroupNorm only: num_groups (num_features is then num_channels; momentum and track_running_stats unused)
    num_groups: Optional[int] = None
    # LayerNorm/RMSNorm only: normalized_shape (num_features is then its product D, affine is elementwise_affine,
    # eps None is RMSNorm's default); bias is LayerNorm's bias argument
    normalized_shape: Optional[Tuple[int, ...]] = None
    bias: bool = True


def T(*steps):
    return tuple(steps)


def train(*shape, grad=False, layout=CF, **kw):
    return Step(True, Input(tuple(shape), **kw), grad, layout)


def evals(*shape, grad=False, layout=CF, **kw):
    return Step(False, Input(tuple(shape), **kw), grad, layout)


BN1, BN2, BN3 = "BatchNorm1d", "BatchNorm2d", "BatchNorm3d"
IN1, IN2, IN3, GN = "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "GroupNorm"


def InstanceCase(*args, **kw):
    """A case with PyTorch's InstanceNorm defaults (affine=False, track_running_stats=False) unless given."""
    return Case(*args, **{"affine": False, "track_running_stats": False, **kw})


def is_element_norm(module: str) -> bool:
    return module in ("LayerNorm", "RMSNorm")


def ElementCase(name, seed, module, normalized_shape, steps, **kw):
    """A LayerNorm or RMSNorm case: no running statistics, no momentum; num_features = prod(normalized_shape)."""
    return Case(name, seed, module, math.prod(normalized_shape), steps,
                **{"track_running_stats": False, "momentum": None, "normalized_shape": tuple(normalized_shape), **kw})


LN, RMS = "LayerNorm", "RMSNorm"


def GroupCase(*args, **kw):
    """A GroupNorm case: no running statistics, no momentum."""
    return Case(*args, **{"track_running_stats": False, "momentum": None, **kw})

CASES: List[Case] = [
    # --- the three shared samples (seeds 1, 2, 3 reproduce them byte for byte)
    Case("seed-example-two-steps", 1, BN2, 3,
         T(train(1, 3, 32, 32), train(1, 3, 32, 32, mean=1.0, std=2.0))),
    Case("cma-momentum-none-with-eval", 2, BN2, 4,
         T(train(2, 4, 5, 5), evals(2, 4, 5, 5), train(3, 4, 5, 5, mean=-1.0, std=3.0)),
         momentum=None),
    Case("bn1d-2d-input-error", 3, BN1, 5, T(train(4, 5), train(1, 5))),
    # --- PyTorch common_modules ModuleInfo inputs (BatchNorm1d/2d/3d)
    Case("bn1d-affine-2d-input", 10, BN1, 10, T(train(4, 10), evals(4, 10))),
    Case("bn1d-3d-input", 11, BN1, 5, T(train(4, 5, 3), evals(4, 5, 3))),
    Case("bn1d-momentum-none-simple-average", 12, BN1, 10,
         T(train(4, 10), train(4, 10, mean=0.5), train(4, 10, std=3.0)), eps=1e-3, momentum=None),
    Case("bn1d-not-affine", 13, BN1, 10, T(train(4, 10), evals(4, 10)),
         eps=1e-3, momentum=0.3, affine=False),
    Case("bn1d-3d-input-not-affine", 14, BN1, 5, T(train(4, 5, 3), evals(4, 5, 3)),
         eps=1e-3, momentum=0.3, affine=False),
    Case("bn1d-not-tracking-stats", 15, BN1, 10, T(train(4, 10), evals(4, 10)),
         eps=1e-3, momentum=0.3, track_running_stats=False),
    Case("bn1d-zero-batch", 16, BN1, 5, T(train(0, 5, 9), evals(0, 5, 9)),
         eps=1e-3, momentum=0.3, affine=False),
    Case("bn2d-default", 20, BN2, 3, T(train(2, 3, 6, 6), evals(2, 3, 6, 6))),
    Case("bn2d-momentum-0.8", 21, BN2, 3, T(train(2, 3, 6, 6), train(2, 3, 6, 6, mean=2.0)),
         eps=1e-3, momentum=0.8),
    Case("bn2d-momentum-none", 22, BN2, 3,
         T(train(2, 3, 6, 6), train(2, 3, 6, 6, mean=-1.0, std=0.5), evals(2, 3, 6, 6)),
         eps=1e-3, momentum=None),
    Case("bn2d-not-affine", 23, BN2, 3, T(train(2, 3, 6, 6), evals(2, 3, 6, 6)),
         eps=1e-3, momentum=0.8, affine=False),
    Case("bn2d-not-tracking-stats", 24, BN2, 3, T(train(2, 3, 6, 6), evals(2, 3, 6, 6)),
         eps=1e-3, momentum=0.8, track_running_stats=False),
    Case("bn2d-zero-batch", 25, BN2, 5, T(train(0, 5, 2, 2)),
         eps=1e-3, momentum=0.3, affine=False),
    Case("bn3d-default", 30, BN3, 3, T(train(2, 3, 4, 4, 4), evals(2, 3, 4, 4, 4))),
    Case("bn3d-momentum-0.7", 31, BN3, 3, T(train(2, 3, 4, 4, 4), train(2, 3, 4, 4, 4, std=2.0)),
         eps=1e-3, momentum=0.7),
    Case("bn3d-momentum-none", 32, BN3, 3,
         T(train(2, 3, 4, 4, 4), train(3, 3, 2, 4, 4, mean=1.0)), eps=1e-3, momentum=None),
    Case("bn3d-not-affine", 33, BN3, 3, T(train(2, 3, 4, 4, 4), evals(2, 3, 4, 4, 4)),
         eps=1e-3, momentum=0.7, affine=False),
    Case("bn3d-not-tracking-stats", 34, BN3, 3, T(train(2, 3, 4, 4, 4), evals(2, 3, 4, 4, 4)),
         eps=1e-3, momentum=0.7, track_running_stats=False),
    Case("bn3d-zero-batch", 35, BN3, 5, T(train(0, 5, 2, 2, 2)),
         eps=1e-3, momentum=0.3, affine=False),
    # --- running-statistics semantics
    Case("eval-after-train-mixed", 40, BN2, 4,
         T(train(3, 4, 3, 3), evals(2, 4, 3, 3), train(4, 4, 3, 3, mean=1.0, std=2.0),
           evals(1, 4, 3, 3), evals(2, 4, 3, 3, mean=5.0), train(2, 4, 3, 3))),
    Case("cma-four-steps-varying-batch", 41, BN1, 6,
         T(train(2, 6, 3), train(5, 6, 3, mean=1.0), train(3, 6, 3, std=0.25),
           train(7, 6, 3, mean=-2.0, std=3.0), evals(2, 6, 3)), momentum=None),
    Case("loaded-random-state", 42, BN2, 3,
         T(evals(2, 3, 4, 4), train(2, 3, 4, 4), train(3, 3, 4, 4, mean=1.0), evals(2, 3, 4, 4)),
         random_state_nbt=7),
    Case("loaded-random-state-cma", 43, BN1, 4,
         T(train(5, 4), train(3, 4, mean=2.0), evals(3, 4)), momentum=None, random_state_nbt=7),
    Case("momentum-negative-1.2", 44, BN1, 4, T(train(6, 4), train(6, 4, mean=1.0), evals(3, 4)),
         momentum=-1.2),
    Case("momentum-1.0", 45, BN2, 3, T(train(2, 3, 3, 3), train(2, 3, 3, 3, std=2.0), evals(2, 3, 3, 3)),
         momentum=1.0),
    Case("momentum-0.0", 46, BN2, 3, T(train(2, 3, 3, 3), evals(2, 3, 3, 3)),
         momentum=0.0, random_state_nbt=7),
    Case("eps-0.5", 47, BN2, 3, T(train(2, 3, 3, 3, std=0.3), evals(2, 3, 3, 3)), eps=0.5),
    Case("eps-1e-10", 48, BN1, 5, T(train(3, 5, 4, std=1e-3), evals(3, 5, 4, std=1e-3)), eps=1e-10),
    # --- numerics
    Case("ill-conditioned-1e4-offset", 50, BN1, 4,
         T(train(8, 4, 5, mean=1e4, std=0.01), evals(4, 4, 5, mean=1e4, std=0.01))),
    Case("ill-conditioned-neg-3e3-offset", 51, BN2, 3,
         T(train(4, 3, 3, 3, mean=-3e3, std=1e-3), train(4, 3, 3, 3, mean=-3e3, std=1e-3))),
    Case("constant-channel", 52, BN2, 3,
         T(train(2, 3, 4, 4, const_channel=(1, 0.75)), evals(2, 3, 4, 4, const_channel=(1, 0.75)))),
    Case("zeros-and-ties", 53, BN2, 3,
         T(train(3, 3, 4, 4, round_to=0.5), evals(3, 3, 4, 4, round_to=0.5))),
    Case("odd-sizes-bn2d", 54, BN2, 7, T(train(3, 7, 5, 3), evals(3, 7, 5, 3)), momentum=0.3),
    Case("odd-sizes-bn1d-3d-input", 55, BN1, 3, T(train(5, 3, 7), train(3, 3, 1), evals(1, 3, 7))),
    # --- errors and the one-value boundary
    Case("bn2d-one-value-per-channel-error", 60, BN2, 3, T(train(2, 3, 2, 2), train(1, 3, 1, 1))),
    Case("eval-single-value-no-error", 61, BN2, 3, T(train(2, 3, 2, 2), evals(1, 3, 1, 1))),
    Case("not-tracking-eval-single-value-error", 62, BN1, 4, T(evals(3, 4), evals(1, 4)),
         track_running_stats=False),
    # --- float64
    Case("f64-bn1d", 70, BN1, 5, T(train(4, 5), train(4, 5, 3), evals(2, 5)), dtype="float64"),
    Case("f64-bn2d-momentum-none", 71, BN2, 3,
         T(train(2, 3, 4, 4), train(3, 3, 4, 4, mean=1.0), evals(2, 3, 4, 4)),
         momentum=None, dtype="float64"),
    Case("f64-bn3d", 72, BN3, 3, T(train(2, 3, 3, 3, 3), evals(2, 3, 3, 3, 3)), dtype="float64"),
    Case("f64-ill-conditioned", 73, BN1, 4,
         T(train(8, 4, mean=1e8, std=1e-4), evals(4, 4, mean=1e8, std=1e-4)), dtype="float64"),
    # --- gradients
    Case("grad-bn2d-train", 80, BN2, 3, T(train(2, 3, 4, 4, grad=True)), random_state_nbt=0),
    Case("grad-bn2d-eval", 81, BN2, 3, T(evals(2, 3, 4, 4, grad=True)), random_state_nbt=7),
    Case("grad-bn1d-2d-input-train", 82, BN1, 6, T(train(5, 6, grad=True), evals(3, 6))),
    Case("grad-bn1d-not-affine", 83, BN1, 4, T(train(3, 4, 5, grad=True)), affine=False),
    Case("grad-bn3d-train", 84, BN3, 2, T(train(2, 2, 3, 3, 2, grad=True)), momentum=0.2),
    Case("grad-not-tracking-eval", 85, BN2, 3, T(evals(2, 3, 3, 3, grad=True)),
         track_running_stats=False, random_state_nbt=0),
    Case("grad-f64-bn2d", 86, BN2, 3, T(train(2, 3, 3, 3, grad=True), evals(2, 3, 3, 3, grad=True)),
         dtype="float64", random_state_nbt=0),
    Case("grad-cma-two-steps", 87, BN1, 4,
         T(train(4, 4, 3, grad=True), train(6, 4, 3, mean=1.0), evals(3, 4, 3, grad=True)),
         momentum=None),
    # --- channels-last input (NHWC / NDHWC): same logical tensors, different memory order
    Case("cl-bn2d-default", 90, BN2, 3,
         T(train(4, 3, 5, 6, layout=CL), evals(4, 3, 5, 6, layout=CL))),
    Case("cl-grad-bn2d-train", 91, BN2, 3, T(train(4, 3, 5, 6, grad=True, layout=CL)),
         random_state_nbt=0),
    Case("cl-grad-bn2d-eval", 92, BN2, 3, T(evals(4, 3, 5, 6, grad=True, layout=CL)),
         random_state_nbt=7),
    Case("cl-grad-bn3d-train", 93, BN3, 3, T(train(2, 3, 2, 3, 4, grad=True, layout=CL)),
         momentum=0.2),
    Case("cl-f64-bn2d", 94, BN2, 3,
         T(train(2, 3, 4, 5, layout=CL), train(3, 3, 4, 5, mean=1.0, grad=True, layout=CL),
           evals(2, 3, 4, 5, grad=True, layout=CL)), dtype="float64", random_state_nbt=0),
    Case("cl-momentum-none", 95, BN2, 3,
         T(train(2, 3, 4, 4, layout=CL), train(3, 3, 4, 4, mean=-1.0, std=0.5, layout=CL),
           evals(2, 3, 4, 4, layout=CL)), eps=1e-3, momentum=None),
    Case("cl-bn2d-not-tracking-stats", 96, BN2, 3,
         T(train(2, 3, 4, 5, layout=CL), evals(2, 3, 4, 5, layout=CL)),
         eps=1e-3, momentum=0.8, track_running_stats=False),
    Case("cl-bn3d-not-affine", 97, BN3, 3,
         T(train(2, 3, 3, 4, 2, layout=CL), evals(2, 3, 3, 4, 2, layout=CL)),
         eps=1e-3, momentum=0.7, affine=False),
    Case("cl-loaded-random-state", 98, BN2, 3,
         T(evals(2, 3, 4, 4, layout=CL), train(2, 3, 4, 4, layout=CL),
           train(3, 3, 4, 4, mean=1.0, layout=CL), evals(2, 3, 4, 4, layout=CL)),
         random_state_nbt=7),
    Case("cl-mixed-layouts", 99, BN2, 4,
         T(train(3, 4, 3, 5, layout=CL), train(2, 4, 3, 5, mean=1.0, std=2.0),
           evals(2, 4, 3, 5, layout=CL))),
    Case("cl-odd-sizes-bn2d", 100, BN2, 5,
         T(train(3, 5, 7, 3, grad=True, layout=CL), evals(3, 5, 7, 3, layout=CL)), momentum=0.3),
    Case("cl-spatial-1x1", 101, BN2, 3,
         T(train(4, 3, 1, 1, grad=True, layout=CL), evals(2, 3, 1, 1, layout=CL))),
    Case("cl-bn2d-one-value-per-channel-error", 102, BN2, 3,
         T(train(2, 3, 2, 2, layout=CL), train(1, 3, 1, 1, layout=CL))),
    # --- GroupNorm (num_features is num_channels; groups = 1 and = C; (N, C) input; channels-last; errors)
] + [
    GroupCase("gn-default-4d", 200, GN, 4, T(train(2, 4, 5, 5, grad=True), evals(2, 4, 5, 5, grad=True)), num_groups=2),
    GroupCase("gn-one-group", 201, GN, 6, T(train(3, 6, 4, 4, grad=True)), num_groups=1),
    GroupCase("gn-group-per-channel", 202, GN, 4, T(train(2, 4, 3, 3, grad=True)), num_groups=4),
    GroupCase("gn-2d-input", 203, GN, 6, T(train(5, 6, grad=True), evals(3, 6)), num_groups=2),
    GroupCase("gn-2d-one-value-per-group", 204, GN, 4, T(train(2, 4, grad=True), evals(2, 4)), num_groups=4,
         random_state_nbt=0),
    GroupCase("gn-error-one-value", 205, GN, 4, T(train(2, 4, 3), train(1, 4, 1, 1)), num_groups=4),
    GroupCase("gn-error-one-value-eval", 206, GN, 3, T(evals(1, 3)), num_groups=3),
    GroupCase("gn-3d-input", 207, GN, 6, T(train(4, 6, 10, grad=True)), num_groups=3),
    GroupCase("gn-5d-input", 208, GN, 4, T(train(2, 4, 3, 3, 3, grad=True)), num_groups=2),
    GroupCase("gn-f64", 209, GN, 4, T(train(3, 4, 5, 5, grad=True), evals(2, 4, 5, 5)), num_groups=2, dtype="float64"),
    GroupCase("gn-f64-one-group", 210, GN, 3, T(train(2, 3, 7, grad=True)), num_groups=1, dtype="float64"),
    GroupCase("gn-not-affine", 211, GN, 4, T(train(2, 4, 6, 6, grad=True)), num_groups=2, affine=False),
    GroupCase("gn-loaded-state", 212, GN, 6, T(train(3, 6, 4, 4, grad=True), evals(2, 6, 4, 4)), num_groups=3,
         random_state_nbt=0),
    GroupCase("gn-eps-0.1", 213, GN, 4, T(train(2, 4, 3, 3, grad=True)), num_groups=2, eps=0.1),
    GroupCase("gn-channels-last-4d", 214, GN, 4, T(train(2, 4, 5, 5, grad=True, layout=CL)), num_groups=2,
         random_state_nbt=0),
    GroupCase("gn-channels-last-5d", 215, GN, 6, T(train(2, 6, 2, 3, 4, grad=True, layout=CL)), num_groups=3),
    GroupCase("gn-channels-last-f64", 216, GN, 4, T(train(2, 4, 3, 5, grad=True, layout=CL)), num_groups=2,
         dtype="float64", random_state_nbt=0),
    GroupCase("gn-ill-conditioned", 217, GN, 4, T(train(3, 4, 3, 3, mean=5e3, std=0.02, grad=True)), num_groups=2),
    GroupCase("gn-ties-const-channel", 218, GN, 4,
         T(train(2, 4, 3, 3, round_to=1.0, const_channel=(0, -2.0), grad=True)), num_groups=2),
    GroupCase("gn-constant-group", 219, GN, 3, T(train(2, 3, 4, 4, const_channel=(1, 0.5), grad=True)), num_groups=3),
    GroupCase("gn-wide", 220, GN, 32, T(train(2, 32, 4, 4, grad=True)), num_groups=8, random_state_nbt=0),
    GroupCase("gn-large-spatial", 221, GN, 4, T(train(1, 4, 32, 32, grad=True)), num_groups=2),
    GroupCase("gn-error-channel-mismatch", 222, GN, 4, T(train(2, 4, 3), train(2, 6, 3)), num_groups=2),
    GroupCase("gn-error-not-divisible", 223, GN, 4, T(train(2, 5, 3)), num_groups=2, affine=False),
    GroupCase("gn-batch-1", 224, GN, 6, T(train(1, 6, 8, grad=True)), num_groups=2),
    GroupCase("gn-f64-channels-last-one-group", 225, GN, 3, T(train(2, 3, 4, 4, grad=True, layout=CL)), num_groups=1,
         dtype="float64"),
    GroupCase("gn-offset-data", 226, GN, 8, T(train(4, 8, 6, mean=100.0, std=3.0, grad=True)), num_groups=4),
] + [
    # --- InstanceNorm1d/2d/3d (unbatched input, running statistics, momentum None (recorded with 0.0),
    #     channels-last, the spatial-size error in eval, the 1.13 channel rule)
    InstanceCase("in1d-default", 300, IN1, 3, T(train(4, 3, 10, grad=True), evals(4, 3, 10))),
    InstanceCase("in1d-unbatched", 301, IN1, 3, T(train(3, 12, grad=True), evals(3, 12))),
    InstanceCase("in2d-default", 302, IN2, 4, T(train(2, 4, 5, 5, grad=True))),
    InstanceCase("in3d-default", 303, IN3, 3, T(train(2, 3, 3, 4, 4, grad=True))),
    InstanceCase("in2d-affine", 304, IN2, 4, T(train(2, 4, 5, 5, grad=True), evals(2, 4, 5, 5, grad=True)), affine=True,
         random_state_nbt=0),
    InstanceCase("in2d-track", 305, IN2, 3, T(train(2, 3, 4, 4, grad=True), train(3, 3, 4, 4, mean=1.0), evals(2, 3, 4, 4, grad=True)),
         track_running_stats=True),
    InstanceCase("in2d-track-affine-loaded", 306, IN2, 3, T(train(2, 3, 4, 4, grad=True), evals(2, 3, 4, 4)), affine=True,
         track_running_stats=True, random_state_nbt=5),
    InstanceCase("in1d-momentum-none-track", 307, IN1, 3, T(train(2, 3, 8), train(2, 3, 8, mean=2.0), evals(2, 3, 8)),
         momentum=None, track_running_stats=True, random_state_nbt=2),
    InstanceCase("in2d-momentum-0.7-track", 308, IN2, 2, T(train(3, 2, 3, 3), train(3, 2, 3, 3, std=2.0)), momentum=0.7,
         track_running_stats=True),
    InstanceCase("in2d-f64", 309, IN2, 3, T(train(2, 3, 4, 4, grad=True), evals(2, 3, 4, 4)), affine=True,
         track_running_stats=True, dtype="float64", random_state_nbt=1),
    InstanceCase("in3d-f64-not-affine", 310, IN3, 2, T(train(2, 2, 2, 3, 3, grad=True)), dtype="float64"),
    InstanceCase("in2d-channels-last", 311, IN2, 4, T(train(2, 4, 5, 5, grad=True, layout=CL)), affine=True,
         random_state_nbt=0),
    InstanceCase("in3d-channels-last-track", 312, IN3, 3, T(train(2, 3, 2, 3, 4, grad=True, layout=CL),
                                                    evals(2, 3, 2, 3, 4, layout=CL)), affine=True, track_running_stats=True),
    InstanceCase("in2d-channels-last-f64", 313, IN2, 3, T(train(2, 3, 4, 3, grad=True, layout=CL)), dtype="float64"),
    InstanceCase("in2d-eval-uses-running-stats", 314, IN2, 3, T(train(4, 3, 3, 3), evals(2, 3, 3, 3, grad=True)),
         track_running_stats=True, momentum=0.5),
    InstanceCase("in1d-eval-without-tracking", 315, IN1, 3, T(evals(3, 3, 9, grad=True)), affine=True),
    InstanceCase("in1d-error-one-spatial-train", 316, IN1, 3, T(train(2, 3, 5), train(2, 3, 1))),
    InstanceCase("in1d-error-one-spatial-eval", 317, IN1, 3, T(evals(2, 3, 1))),
    InstanceCase("in1d-eval-tracked-one-spatial", 318, IN1, 3, T(evals(2, 3, 1)), track_running_stats=True,
         random_state_nbt=3),
    InstanceCase("in2d-error-channels-affine", 319, IN2, 3, T(train(2, 4, 3, 3)), affine=True),
    InstanceCase("in2d-error-channels-tracked", 320, IN2, 3, T(train(2, 4, 3, 3)), track_running_stats=True),
    InstanceCase("in2d-error-channels-affine-tracked", 328, IN2, 3, T(train(2, 4, 3, 3)), affine=True,
                 track_running_stats=True),
    InstanceCase("in1d-empty-batch-tracked", 329, IN1, 2, T(train(3, 2, 4), train(0, 2, 4)), track_running_stats=True),
    InstanceCase("in1d-empty-batch-tracked-eval", 330, IN1, 2, T(evals(0, 2, 4), evals(2, 2, 4)), track_running_stats=True,
                 random_state_nbt=1),
    InstanceCase("in2d-empty-batch", 331, IN2, 2, T(train(0, 2, 3, 3), evals(0, 2, 3, 3))),
    InstanceCase("in2d-error-empty-batch-affine", 332, IN2, 2, T(train(2, 2, 3, 3), evals(0, 2, 3, 3)), affine=True),
    InstanceCase("in2d-other-channels-runs", 321, IN2, 3, T(train(2, 4, 3, 3, grad=True))),
    InstanceCase("in2d-unbatched", 322, IN2, 3, T(train(3, 4, 5, grad=True)), affine=True, random_state_nbt=0),
    InstanceCase("in2d-ill-conditioned", 323, IN2, 2, T(train(2, 2, 4, 4, mean=5e3, std=0.02, grad=True))),
    InstanceCase("in2d-ties-const-channel", 324, IN2, 3, T(train(2, 3, 3, 3, round_to=1.0, const_channel=(0, -2.0), grad=True)),
         affine=True),
    InstanceCase("in1d-eps-0.1", 325, IN1, 2, T(train(3, 2, 6, grad=True)), eps=0.1),
    InstanceCase("in3d-unbatched-track", 326, IN3, 3, T(train(3, 2, 3, 3), evals(3, 2, 3, 3)), track_running_stats=True),
    InstanceCase("in2d-batch-1-large", 327, IN2, 4, T(train(1, 4, 32, 32, grad=True))),
]

CASES += [
    # --- LayerNorm (normalized_shape of 1-3 dims, 1-D to 5-D input, bias=False, not affine, offsets, constant sets, errors)
    ElementCase("ln-default", 400, LN, (8,), T(train(4, 8, grad=True), evals(3, 8, grad=True))),
    ElementCase("ln-3d-input", 401, LN, (16,), T(train(2, 3, 16, grad=True))),
    ElementCase("ln-two-dims", 402, LN, (5, 7), T(train(3, 5, 7, grad=True))),
    ElementCase("ln-three-dims", 403, LN, (2, 3, 4), T(train(2, 2, 3, 4, grad=True))),
    ElementCase("ln-1d-input", 404, LN, (6,), T(train(6, grad=True))),
    ElementCase("ln-5d-input", 405, LN, (4,), T(train(2, 2, 2, 2, 4, grad=True))),
    ElementCase("ln-no-bias", 406, LN, (12,), T(train(5, 12, grad=True)), bias=False, random_state_nbt=0),
    ElementCase("ln-not-affine", 407, LN, (10,), T(train(4, 10, grad=True), evals(2, 10))), 
    ElementCase("ln-loaded-state", 408, LN, (3, 4), T(train(4, 3, 4, grad=True), evals(2, 3, 4, grad=True)), random_state_nbt=0),
    ElementCase("ln-f64", 409, LN, (9,), T(train(5, 9, grad=True), evals(2, 9)), dtype="float64", random_state_nbt=0),
    ElementCase("ln-f64-two-dims-no-bias", 410, LN, (3, 5), T(train(2, 3, 5, grad=True)), dtype="float64", bias=False,
                random_state_nbt=0),
    ElementCase("ln-eps-0.1", 411, LN, (8,), T(train(4, 8, std=0.3, grad=True)), eps=0.1),
    ElementCase("ln-eps-1e-10", 412, LN, (8,), T(train(4, 8, std=1e-3, grad=True)), eps=1e-10),
    ElementCase("ln-offset-1e4", 413, LN, (32,), T(train(6, 32, mean=1e4, grad=True)), random_state_nbt=0),
    ElementCase("ln-ill-conditioned", 414, LN, (24,), T(train(4, 24, mean=5e3, std=0.02, grad=True))),
    ElementCase("ln-f64-ill-conditioned", 415, LN, (16,), T(train(4, 16, mean=1e8, std=1e-4, grad=True)), dtype="float64"),
    ElementCase("ln-constant-set", 416, LN, (8,), T(train(4, 8, const_set=(2, 0.75), grad=True)), random_state_nbt=0),
    ElementCase("ln-ties", 417, LN, (10,), T(train(6, 10, round_to=1.0, grad=True))),
    ElementCase("ln-single-element", 418, LN, (1,), T(train(5, 1, grad=True)), random_state_nbt=0),
    ElementCase("ln-width-768", 419, LN, (768,), T(train(4, 768, grad=True)), random_state_nbt=0),
    ElementCase("ln-width-4096", 420, LN, (4096,), T(train(2, 4096, mean=0.5, std=2.0, grad=True))),
    ElementCase("ln-empty-batch", 421, LN, (8,), T(train(0, 8), evals(2, 0, 8))),
    ElementCase("ln-error-last-dim", 422, LN, (8,), T(train(4, 8), train(4, 7))),
    ElementCase("ln-error-too-few-dims", 423, LN, (3, 4), T(train(4,))),
    ElementCase("ln-error-order", 424, LN, (3, 4), T(train(2, 4, 3))),
    ElementCase("ln-train-eval-steps", 425, LN, (6,), T(train(3, 6), evals(3, 6, mean=2.0), train(2, 6, std=3.0), evals(1, 6))),
    ElementCase("ln-set-of-two", 426, LN, (2,), T(train(7, 2, grad=True)), random_state_nbt=0),
    ElementCase("ln-eps-0-constant-set", 427, LN, (8,), T(train(4, 8, const_set=(1, 0.75), grad=True)), eps=0.0),
    # --- RMSNorm through PyTorch's composite (eps None and given, dims, not affine, zero and constant sets, errors)
    ElementCase("rms-default", 500, RMS, (8,), T(train(4, 8, grad=True), evals(3, 8, grad=True)), eps=None),
    ElementCase("rms-eps-1e-5", 501, RMS, (8,), T(train(4, 8, grad=True)), eps=1e-5, random_state_nbt=0),
    ElementCase("rms-3d-input", 502, RMS, (16,), T(train(2, 3, 16, grad=True)), eps=None),
    ElementCase("rms-two-dims", 503, RMS, (5, 7), T(train(3, 5, 7, grad=True)), eps=None, random_state_nbt=0),
    ElementCase("rms-three-dims", 504, RMS, (2, 3, 4), T(train(2, 2, 3, 4, grad=True)), eps=1e-6),
    ElementCase("rms-1d-input", 505, RMS, (6,), T(train(6, grad=True)), eps=None),
    ElementCase("rms-5d-input", 506, RMS, (4,), T(train(2, 2, 2, 2, 4, grad=True)), eps=None),
    ElementCase("rms-not-affine", 507, RMS, (10,), T(train(4, 10, grad=True)), eps=None, affine=False),
    ElementCase("rms-loaded-weight", 508, RMS, (3, 4), T(train(4, 3, 4, grad=True), evals(2, 3, 4)), eps=1e-5,
                random_state_nbt=0),
    ElementCase("rms-f64", 509, RMS, (9,), T(train(5, 9, grad=True)), eps=None, dtype="float64", random_state_nbt=0),
    ElementCase("rms-f64-eps", 510, RMS, (3, 5), T(train(2, 3, 5, grad=True)), eps=1e-6, dtype="float64"),
    ElementCase("rms-eps-0.1", 511, RMS, (8,), T(train(4, 8, std=0.3, grad=True)), eps=0.1),
    ElementCase("rms-small-values-default-eps", 512, RMS, (8,), T(train(4, 8, std=1e-3, grad=True)), eps=None),
    ElementCase("rms-offset-data", 513, RMS, (32,), T(train(6, 32, mean=100.0, std=3.0, grad=True)), eps=None,
                random_state_nbt=0),
    ElementCase("rms-zero-set", 514, RMS, (8,), T(train(4, 8, const_set=(1, 0.0), grad=True)), eps=None),
    ElementCase("rms-constant-set", 515, RMS, (8,), T(train(4, 8, const_set=(3, -1.5), grad=True)), eps=1e-5,
                random_state_nbt=0),
    ElementCase("rms-ties", 516, RMS, (10,), T(train(6, 10, round_to=1.0, grad=True)), eps=None),
    ElementCase("rms-single-element", 517, RMS, (1,), T(train(5, 1, grad=True)), eps=1e-5, random_state_nbt=0),
    ElementCase("rms-width-768", 518, RMS, (768,), T(train(4, 768, grad=True)), eps=1e-6, random_state_nbt=0),
    ElementCase("rms-width-4096", 519, RMS, (4096,), T(train(2, 4096, mean=0.5, std=2.0, grad=True)), eps=None),
    ElementCase("rms-empty-batch", 520, RMS, (8,), T(train(0, 8), evals(2, 0, 8)), eps=None),
    ElementCase("rms-error-last-dim", 521, RMS, (8,), T(train(4, 8), train(4, 7)), eps=None),
    ElementCase("rms-error-too-few-dims", 522, RMS, (3, 4), T(train(4,)), eps=None),
    ElementCase("rms-train-eval-steps", 523, RMS, (6,), T(train(3, 6), evals(3, 6, mean=2.0), train(2, 6, std=3.0)),
                eps=None),
    ElementCase("rms-large-values", 524, RMS, (16,), T(train(3, 16, std=1e3, grad=True)), eps=None),
    ElementCase("rms-f64-offset", 525, RMS, (12,), T(train(3, 12, mean=1e6, std=1.0, grad=True)), eps=None,
                dtype="float64"),
    ElementCase("rms-set-of-two", 526, RMS, (2,), T(train(7, 2, grad=True)), eps=None),
    ElementCase("rms-eps-0-zero-set", 527, RMS, (8,), T(train(4, 8, const_set=(2, 0.0), grad=True)), eps=0.0),
]

# NOT COMMITTED: holdout cases, written only with --holdout (e.g. to /tmp/holdout-cases) to check
# the replay CLI on cases that are never part of the repository's fixtures.
HOLDOUT_CASES: List[Case] = [
    Case("holdout-bn1d-train-eval", 1001, BN1, 7, T(train(6, 7), evals(2, 7), train(3, 7, mean=1.0))),
    Case("holdout-bn1d-3d-cma", 1002, BN1, 3,
         T(train(2, 3, 5), train(4, 3, 2, std=2.0), train(3, 3, 3, mean=-1.0), evals(1, 3, 4)),
         momentum=None),
    Case("holdout-bn2d-grad-train", 1003, BN2, 5, T(train(3, 5, 2, 3, grad=True)), random_state_nbt=3),
    Case("holdout-bn2d-grad-eval-after-train", 1004, BN2, 2,
         T(train(4, 2, 3, 3), evals(2, 2, 3, 3, grad=True)), momentum=0.25),
    Case("holdout-bn3d-cma-f64", 1005, BN3, 2, T(train(2, 2, 2, 3, 3), train(3, 2, 2, 2, 2, mean=2.0)),
         momentum=None, dtype="float64"),
    Case("holdout-bn3d-grad-not-affine", 1006, BN3, 3, T(train(2, 3, 2, 2, 3, grad=True)), affine=False),
    Case("holdout-f64-grad-cma", 1007, BN1, 3,
         T(train(5, 3, grad=True), train(4, 3, grad=True), evals(2, 3)), momentum=None, dtype="float64"),
    Case("holdout-not-tracking-bn2d", 1008, BN2, 4, T(train(2, 4, 3, 2), evals(3, 4, 2, 2, grad=True)),
         track_running_stats=False, eps=1e-3),
    Case("holdout-loaded-cma-nbt7", 1009, BN2, 3, T(train(2, 3, 2, 2), train(2, 3, 2, 2), evals(2, 3, 2, 2)),
         momentum=None, random_state_nbt=7),
    Case("holdout-ill-conditioned", 1010, BN2, 2,
         T(train(4, 2, 3, 3, mean=5e3, std=0.02), evals(2, 2, 3, 3, mean=5e3, std=0.02))),
    Case("holdout-error-bn3d", 1011, BN3, 2, T(train(2, 2, 1, 1, 1), train(1, 2, 1, 1, 1))),
    Case("holdout-zero-batch-affine", 1012, BN1, 3, T(train(0, 3), evals(0, 3)), random_state_nbt=2),
    Case("holdout-momentum-0.9-eps-0.1", 1013, BN1, 4, T(train(3, 4, 2), train(3, 4, 2), evals(3, 4, 2)),
         momentum=0.9, eps=0.1),
    Case("holdout-ties-const", 1014, BN2, 3,
         T(train(2, 3, 3, 3, round_to=1.0, const_channel=(0, -2.0)), evals(2, 3, 3, 3, round_to=1.0))),
    Case("holdout-f64-bn2d-eval-mixed", 1015, BN2, 3,
         T(train(2, 3, 2, 2), evals(2, 3, 2, 2), train(2, 3, 2, 2, std=3.0), evals(1, 3, 2, 2)),
         dtype="float64"),
    Case("holdout-grad-bn1d-momentum-none-loaded", 1016, BN1, 5,
         T(train(4, 5, 2, grad=True), evals(2, 5, 2, grad=True)), momentum=None, random_state_nbt=4),
]


# --------------------------------------------------------------------------- tensor -> JSON

def number(v: float):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v  # Python float: repr is the shortest exact decimal of the float32/float64 value


def values(t: torch.Tensor) -> list:
    return [number(float(v)) for v in t.detach().contiguous().reshape(-1).tolist()]


def tensor_json(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": values(t)}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- recording

def make_input(spec: Input, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(*spec.shape, dtype=dtype) * spec.std + spec.mean
    if spec.round_to is not None:
        x = torch.round(x / spec.round_to) * spec.round_to
    if spec.const_channel is not None:
        c, v = spec.const_channel
        x[:, c] = v
    if spec.const_set is not None:
        r, v = spec.const_set
        x.view(spec.shape[0], -1)[r] = v
    return x.contiguous()


class RMSNormComposite(torch.nn.Module):
    """torch.nn.RMSNorm (2.4+) as PyTorch defines it (aten rms_norm's composite): not in PyTorch 1.13."""

    def __init__(self, normalized_shape, eps, elementwise_affine, dtype):
        super().__init__()
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            self.weight = torch.nn.Parameter(torch.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, x):
        n = len(self.normalized_shape)
        if x.dim() < n or tuple(x.shape[-n:]) != self.normalized_shape:
            shape = ", ".join(str(d) for d in self.normalized_shape)
            raise RuntimeError(f"Given normalized_shape=[{shape}], expected input with shape [*, {shape}], "
                               f"but got input of size[{', '.join(str(d) for d in x.shape)}]")
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        y = x * torch.rsqrt(x.pow(2).mean(tuple(range(-n, 0)), keepdim=True) + eps)
        return y * self.weight if self.weight is not None else y


def build_module(case: Case) -> torch.nn.Module:
    """Construct the module and load the state recorded as parameters/buffers.

    InstanceNorm with momentum None: PyTorch 2.x passes 0.0 to instance_norm (the running statistics stay); 1.13
    raises a TypeError, so the module is built with 0.0 and the file says null."""
    dtype = DTYPES[case.dtype]
    if case.module == "LayerNorm":
        m = torch.nn.LayerNorm(case.normalized_shape, eps=case.eps, elementwise_affine=case.affine)
        if case.affine and not case.bias:
            m.register_parameter("bias", None)  # PyTorch 2.1's LayerNorm(bias=False)
    elif case.module == "RMSNorm":
        m = RMSNormComposite(case.normalized_shape, case.eps, case.affine, dtype)
    elif case.module == "GroupNorm":
        m = torch.nn.GroupNorm(case.num_groups, case.num_features, eps=case.eps, affine=case.affine)
    else:
        momentum = case.momentum
        if momentum is None and is_instance_norm(case.module):
            momentum = 0.0
        m = MODULES[case.module](case.num_features, eps=case.eps, momentum=momentum,
                                 affine=case.affine, track_running_stats=case.track_running_stats)
    m = m.to(dtype)
    if case.random_state_nbt is not None:
        c = case.num_features
        weight = torch.randn(c, dtype=dtype) + 1.0
        bias = torch.randn(c, dtype=dtype)
        running_mean = torch.randn(c, dtype=dtype)
        running_var = torch.rand(c, dtype=dtype) * 2.0 + 0.5
        with torch.no_grad():
            if case.affine:
                m.weight.copy_(weight.view(m.weight.shape))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(bias.view(m.bias.shape))
            if case.track_running_stats:
                m.running_mean.copy_(running_mean)
                m.running_var.copy_(running_var)
                m.num_batches_tracked.fill_(case.random_state_nbt)
    return m


def state_json(m: torch.nn.Module, case: Case) -> dict:
    out = {}
    if case.affine:
        out["parameters"] = {"weight": values(m.weight)}
        if getattr(m, "bias", None) is not None:
            out["parameters"]["bias"] = values(m.bias)
    if case.track_running_stats:
        out["buffers"] = {"running_mean": values(m.running_mean), "running_var": values(m.running_var),
                          "num_batches_tracked": int(m.num_batches_tracked.item())}
    return out


def error_prefix(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return text.split(", got")[0]


def run_step(m: torch.nn.Module, case: Case, step: Step) -> Tuple[dict, bool]:
    """Run one step; return its JSON and whether it raised."""
    dtype = DTYPES[case.dtype]
    m.train(step.training)
    x = make_input(step.input, dtype)
    rec = {"training": step.training}
    mf = torch.contiguous_format
    if step.layout == CL:
        if x.dim() not in CL_FORMATS or case.module not in CL_MODULES:
            raise SystemExit(f"{case.name}: channels_last needs a 4D/5D input of {CL_MODULES}, not {case.module} {tuple(x.shape)}")
        mf = CL_FORMATS[x.dim()]
        rec["layout"] = CL
    elif step.layout != CF:
        raise SystemExit(f"{case.name}: layout {step.layout!r}")
    x = x.contiguous(memory_format=mf)  # values() below writes the logical (row-major) order
    rec["input"] = tensor_json(x)
    if step.grad:
        for p in m.parameters():
            p.grad = None  # each step's expect_grad is that step's gradient only
        x = x.clone().requires_grad_(True)
    assert x.is_contiguous(memory_format=mf), f"{case.name}: input not in {step.layout}"
    try:
        y = m(x)
    except RuntimeError as exc:  # PyTorch's ValueError/RuntimeError -> recorded error
        rec["expect"] = {"error": error_prefix(exc)}
        return rec, True
    except (ValueError, IndexError) as exc:  # IndexError: InstanceNorm with weights on an empty batch
        rec["expect"] = {"error": error_prefix(exc)}
        return rec, True
    if is_instance_norm(case.module):
        pass  # PyTorch 1.13's instance_norm returns a channels-first output for any input; the values are logical
    elif not y.is_contiguous(memory_format=mf):
        raise SystemExit(f"{case.name}: PyTorch's output is not contiguous in {step.layout} (strides {y.stride()})")
    expect = {"output": tensor_json(y.detach())}
    if case.track_running_stats:
        expect["running_mean"] = values(m.running_mean)
        expect["running_var"] = values(m.running_var)
        expect["num_batches_tracked"] = int(m.num_batches_tracked.item())
    rec["expect"] = expect
    if step.grad:
        g = torch.randn(*y.shape, dtype=dtype).contiguous(memory_format=mf)
        y.backward(g)
        if not x.grad.is_contiguous(memory_format=mf):
            print(f"WARNING: {case.name}: x.grad is not contiguous in {step.layout} "
                  f"(strides {x.grad.stride()}); recorded anyway", file=sys.stderr)
        rec["grad_output"] = tensor_json(g)
        eg = {"input": tensor_json(x.grad)}
        if case.affine:
            eg["weight"] = values(m.weight.grad)
            if getattr(m, "bias", None) is not None:
                eg["bias"] = values(m.bias.grad)
        rec["expect_grad"] = eg
    return rec, False


def record(case: Case) -> dict:
    torch.manual_seed(case.seed)
    m = build_module(case)
    if case.module == "LayerNorm":
        doc = {"format": FORMAT, "name": case.name, "module": case.module,
               "normalized_shape": list(case.normalized_shape), "eps": case.eps,
               "elementwise_affine": case.affine, "bias": case.bias, "dtype": case.dtype}
    elif case.module == "RMSNorm":
        doc = {"format": FORMAT, "name": case.name, "module": case.module,
               "normalized_shape": list(case.normalized_shape), "eps": case.eps,
               "elementwise_affine": case.affine, "dtype": case.dtype}
    elif case.module == "GroupNorm":
        assert not case.track_running_stats, f"{case.name}: GroupNorm has no running statistics"
        doc = {"format": FORMAT, "name": case.name, "module": case.module, "num_groups": case.num_groups,
               "num_channels": case.num_features, "eps": case.eps, "affine": case.affine, "dtype": case.dtype}
    else:
        doc = {"format": FORMAT, "name": case.name, "module": case.module,
               "num_features": case.num_features, "eps": case.eps, "momentum": case.momentum,
               "affine": case.affine, "track_running_stats": case.track_running_stats,
               "dtype": case.dtype}
    doc.update(state_json(m, case))
    steps = []
    for i, step in enumerate(case.steps):
        rec, raised = run_step(m, case, step)
        steps.append(rec)
        if raised:
            if i != len(case.steps) - 1:
                raise SystemExit(f"{case.name}: step {i} raised but is not the last step")
            break
    doc["steps"] = steps
    return doc


# --------------------------------------------------------------------------- validation

def _is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ("NaN", "Infinity", "-Infinity")


def check_element_case(doc: dict, fname: str) -> List[str]:
    """A LayerNorm/RMSNorm case: normalized_shape, flat parameters of prod(normalized_shape), no buffers."""
    errs = []

    def bad(msg):
        errs.append(f"{fname}: {msg}")

    ln = doc.get("module") == "LayerNorm"
    top = ["format", "name", "module", "normalized_shape", "eps", "elementwise_affine"] + (["bias"] if ln else []) + ["dtype"]
    shape = doc.get("normalized_shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        return [f"{fname}: normalized_shape must be a non-empty list of positive integers"]
    D = math.prod(shape)
    if doc.get("format") != FORMAT or doc.get("name") + ".json" != os.path.basename(fname) or doc.get("dtype") not in DTYPES:
        bad("format, name or dtype")
    if not (_is_num(doc.get("eps")) or (not ln and doc.get("eps") is None)):
        bad("eps")
    affine = doc.get("elementwise_affine")
    has_bias = ln and affine and doc.get("bias") is True
    if not isinstance(affine, bool) or (ln and not isinstance(doc.get("bias"), bool)):
        bad("elementwise_affine/bias")
    expected_keys = top + (["parameters"] if affine else []) + ["steps"]
    if list(doc.keys()) != expected_keys:
        bad(f"top-level keys {list(doc.keys())} != {expected_keys}")
    pk = ["weight"] + (["bias"] if has_bias else [])

    def flat(v, what):
        if not isinstance(v, list) or len(v) != D or not all(_is_num(a) for a in v):
            bad(f"{what}: expected {D} numbers")

    def tens(t, what, want=None):
        if not isinstance(t, dict) or list(t.keys()) != ["shape", "data"]:
            bad(f"{what}: tensor must be {{shape, data}}")
            return None
        if want is not None and t["shape"] != want:
            bad(f"{what}: shape {t['shape']} != {want}")
        if len(t["data"]) != math.prod(t["shape"]) or not all(_is_num(a) for a in t["data"]):
            bad(f"{what}: data")
        return t["shape"]

    if affine:
        if list(doc.get("parameters", {}).keys()) != pk:
            bad("parameters keys")
        for k in pk:
            flat(doc["parameters"].get(k), f"parameters.{k}")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        return errs + [f"{fname}: steps must be a non-empty array"]
    for i, st in enumerate(steps):
        w = f"steps[{i}]"
        sh = tens(st.get("input"), f"{w}.input")
        e = st.get("expect", {})
        grad = "grad_output" in st
        if list(st.keys()) != ["training", "input", "expect"] + (["grad_output", "expect_grad"] if grad else []):
            bad(f"{w}: keys {list(st.keys())}")
        if "error" in e:
            if list(e.keys()) != ["error"] or i != len(steps) - 1 or grad:
                bad(f"{w}: an error step is alone, last and without gradients")
            continue
        if sh is None or len(sh) < len(shape) or sh[len(sh) - len(shape):] != shape:
            bad(f"{w}.input: shape {sh} does not end in {shape}")
        if list(e.keys()) != ["output"]:
            bad(f"{w}.expect keys {list(e.keys())}")
        tens(e.get("output"), f"{w}.expect.output", sh)
        if grad:
            tens(st["grad_output"], f"{w}.grad_output", sh)
            g = st.get("expect_grad", {})
            if list(g.keys()) != ["input"] + (pk if affine else []):
                bad(f"{w}.expect_grad keys {list(g.keys())}")
            tens(g.get("input"), f"{w}.expect_grad.input", sh)
            for k in (pk if affine else []):
                flat(g.get(k), f"{w}.expect_grad.{k}")
    return errs


def check_case(doc: dict, fname: str) -> List[str]:
    if is_element_norm(doc.get("module", "")):
        return check_element_case(doc, fname)
    errs = []

    def bad(msg):
        errs.append(f"{fname}: {msg}")

    group_norm = doc.get("module") == "GroupNorm"
    if group_norm:
        top = ["format", "name", "module", "num_groups", "num_channels", "eps", "affine", "dtype"]
    else:
        top = ["format", "name", "module", "num_features", "eps", "momentum", "affine",
               "track_running_stats", "dtype"]
    if doc.get("format") != FORMAT:
        bad("format")
    if doc.get("name") + ".json" != os.path.basename(fname):
        bad("name does not match file name")
    if doc.get("module") not in MODULES:
        bad("module")
    C = doc.get("num_channels" if group_norm else "num_features")
    if not isinstance(C, int) or isinstance(C, bool) or C < 1:
        bad("num_channels" if group_norm else "num_features")
        return errs
    if group_norm:
        G = doc.get("num_groups")
        if not isinstance(G, int) or isinstance(G, bool) or G < 1 or C % G:
            bad("num_groups must be a positive divisor of num_channels")
    if not _is_num(doc.get("eps")):
        bad("eps")
    if doc.get("momentum") is not None and not _is_num(doc["momentum"]):
        bad("momentum")
    if doc.get("dtype") not in DTYPES:
        bad("dtype")
    affine, track = doc.get("affine"), False if group_norm else doc.get("track_running_stats")
    if not isinstance(affine, bool) or not isinstance(track, bool):
        bad("affine/track_running_stats")
    expected_keys = top + (["parameters"] if affine else []) + (["buffers"] if track else []) + ["steps"]
    if list(doc.keys()) != expected_keys:
        bad(f"top-level keys {list(doc.keys())} != {expected_keys}")
    ndim = RANKS.get(doc.get("module"), ())
    # the channel dimension: 0 for an unbatched InstanceNorm input, else 1
    channel_dim = (lambda sh: 0 if is_instance_norm(doc.get("module")) and len(sh) == ndim[0] else 1)
    f32 = doc.get("dtype") == "float32"

    def vec(v, what):
        if not isinstance(v, list) or len(v) != C or not all(_is_num(a) for a in v):
            bad(f"{what}: expected {C} numbers")
        elif f32:
            import struct
            for a in v:
                if isinstance(a, float) and math.isfinite(a) and \
                        struct.unpack("f", struct.pack("f", a))[0] != a:
                    bad(f"{what}: {a!r} is not a float32 value")
                    break

    def tens(t, what, shape=None):
        if not isinstance(t, dict) or list(t.keys()) != ["shape", "data"]:
            bad(f"{what}: tensor must be {{shape, data}}")
            return None
        sh = t["shape"]
        if not isinstance(sh, list) or not all(isinstance(d, int) and d >= 0 for d in sh):
            bad(f"{what}: shape")
            return None
        if shape is not None and sh != shape:
            bad(f"{what}: shape {sh} != {shape}")
        n = math.prod(sh)
        if not isinstance(t["data"], list) or len(t["data"]) != n or not all(_is_num(a) for a in t["data"]):
            bad(f"{what}: data length {len(t['data'])} != {n} or non-number")
        elif f32:
            import struct
            for a in t["data"]:
                if isinstance(a, float) and math.isfinite(a) and \
                        struct.unpack("f", struct.pack("f", a))[0] != a:
                    bad(f"{what}: {a!r} is not a float32 value")
                    break
        return sh

    if affine:
        p = doc.get("parameters", {})
        if list(p.keys()) != ["weight", "bias"]:
            bad("parameters keys")
        for k in ("weight", "bias"):
            vec(p.get(k), f"parameters.{k}")
    if track:
        b = doc.get("buffers", {})
        if list(b.keys()) != ["running_mean", "running_var", "num_batches_tracked"]:
            bad("buffers keys")
        vec(b.get("running_mean"), "buffers.running_mean")
        vec(b.get("running_var"), "buffers.running_var")
        if not isinstance(b.get("num_batches_tracked"), int):
            bad("buffers.num_batches_tracked")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        bad("steps must be a non-empty array")
        return errs
    for i, s in enumerate(steps):
        w = f"steps[{i}]"
        if not isinstance(s.get("training"), bool):
            bad(f"{w}.training")
        has_layout = "layout" in s
        if has_layout and s["layout"] not in LAYOUTS:
            bad(f"{w}.layout must be \"channels_first\" or \"channels_last\"")
        if has_layout and s["layout"] == CL and doc.get("module") not in CL_MODULES:
            bad(f"{w}.layout: channels_last only for {CL_MODULES}")
        sh = tens(s.get("input"), f"{w}.input")
        error_step = "error" in s.get("expect", {})
        if sh is not None and (len(sh) not in ndim or (sh[channel_dim(sh)] != C and not error_step
                                                       and (affine or track or not is_instance_norm(doc.get("module"))))):
            bad(f"{w}.input: shape {sh} invalid for {doc.get('module')}({C})")
        e = s.get("expect", {})
        grad = "grad_output" in s
        keys = ["training"] + (["layout"] if has_layout else []) + ["input", "expect"] + \
            (["grad_output", "expect_grad"] if grad else [])
        if list(s.keys()) != keys:
            bad(f"{w}: keys {list(s.keys())} != {keys}")
        if "error" in e:
            if list(e.keys()) != ["error"] or not isinstance(e["error"], str) or not e["error"]:
                bad(f"{w}.expect: error must be alone and a non-empty string")
            if i != len(steps) - 1:
                bad(f"{w}: error step is not the last step")
            if grad:
                bad(f"{w}: error step with grad_output")
            continue
        ek = ["output"] + (["running_mean", "running_var", "num_batches_tracked"] if track else [])
        if list(e.keys()) != ek:
            bad(f"{w}.expect keys {list(e.keys())} != {ek}")
        tens(e.get("output"), f"{w}.expect.output", sh)
        if track:
            vec(e.get("running_mean"), f"{w}.expect.running_mean")
            vec(e.get("running_var"), f"{w}.expect.running_var")
            if not isinstance(e.get("num_batches_tracked"), int):
                bad(f"{w}.expect.num_batches_tracked")
        if grad:
            tens(s["grad_output"], f"{w}.grad_output", sh)
            g = s.get("expect_grad", {})
            gk = ["input"] + (["weight", "bias"] if affine else [])
            if list(g.keys()) != gk:
                bad(f"{w}.expect_grad keys {list(g.keys())} != {gk}")
            tens(g.get("input"), f"{w}.expect_grad.input", sh)
            if affine:
                vec(g.get("weight"), f"{w}.expect_grad.weight")
                vec(g.get("bias"), f"{w}.expect_grad.bias")
    return errs


def check_dir(d: str) -> int:
    files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
    errs, total = [], 0
    for f in files:
        path = os.path.join(d, f)
        total += os.path.getsize(path)
        with open(path, encoding="utf-8") as fh:
            try:
                doc = json.load(fh)
            except ValueError as exc:
                errs.append(f"{f}: invalid JSON: {exc}")
                continue
        errs += check_case(doc, f)
    for e in errs:
        print(e, file=sys.stderr)
    print(f"checked {len(files)} files, {total} bytes, {len(errs)} problems")
    return 1 if errs else 0


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="output directory (default: fixtures/pytorch)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="record only these cases")
    ap.add_argument("--list", action="store_true", help="list case names and exit")
    ap.add_argument("--holdout", action="store_true",
                    help="use the holdout cases (never committed) instead of the fixtures")
    ap.add_argument("--check", metavar="DIR", help="validate every case file in DIR and exit")
    args = ap.parse_args(argv)
    if args.check:
        return check_dir(args.check)
    cases = HOLDOUT_CASES if args.holdout else CASES
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    assert len({c.seed for c in CASES + HOLDOUT_CASES}) == len(CASES + HOLDOUT_CASES), "duplicate seeds"
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            ap.error("unknown case(s): " + ", ".join(unknown))
        cases = [c for c in cases if c.name in args.only]
    out = args.out or (None if args.holdout else DEFAULT_OUT)
    if out is None:
        ap.error("--holdout needs --out (holdout cases are not written into the repository)")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)  # deterministic reduction order
    for case in cases:
        doc = record(case)
        errs = check_case(doc, case.name + ".json")
        if errs:
            raise SystemExit("\n".join(errs))
        with open(os.path.join(out, case.name + ".json"), "w", encoding="utf-8") as fh:
            fh.write(dumps(doc))
    print(f"wrote {len(cases)} case(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
