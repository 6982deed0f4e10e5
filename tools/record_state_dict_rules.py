#!/usr/bin/python3
"""Records how PyTorch loads and returns state dicts, for the two loading rows of docs/divergence-ledger.md.

Writes fixtures/ledger/state-dict-rules.json (compact, deterministic):
- count_after_load_without_num_batches_tracked: a BatchNorm2d with num_batches_tracked = 5 loads a state dict
  without that key (strict and non-strict). PyTorch <= 2.1 resets the count to 0 (pytorch/pytorch#110361, fixed by
  PR #110850 in 2.2, which keeps it).
- state_dict_aliases_module_storage: whether writing into state_dict()['running_mean'] changes the module.

    /usr/bin/python3 tools/record_state_dict_rules.py
"""
import json
import os

import torch
import torch.nn as nn


def count_after_load(strict):
    bn = nn.BatchNorm2d(3)
    bn.num_batches_tracked.fill_(5)
    state = {k: v.clone() for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    bn.load_state_dict(state, strict=strict)
    return int(bn.num_batches_tracked.item())


def aliases():
    bn = nn.BatchNorm2d(3)
    bn.state_dict()["running_mean"].fill_(7.0)
    return bool(bn.running_mean[0].item() == 7.0)


def main():
    out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ledger", "state-dict-rules.json")
    record = {
        "torch": torch.__version__,
        "count_before_load": 5,
        "count_after_strict_load_without_num_batches_tracked": count_after_load(True),
        "count_after_non_strict_load_without_num_batches_tracked": count_after_load(False),
        "state_dict_aliases_module_storage": aliases(),
    }
    with open(out, "w") as f:
        json.dump(record, f, separators=(",", ":"))
    print(record)


if __name__ == "__main__":
    main()
