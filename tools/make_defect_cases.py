#!/usr/bin/python3
"""Write single-defect variants of recorded bnparity-case/1 cases (never committed).

Each variant is a true PyTorch recording with exactly ONE thing wrong, in the step the defect is
applied to; the steps after that one are dropped (so nothing downstream becomes inconsistent).
The variant is named <source>--<defect>.  A replay tool must reject every variant.

    make_defect_cases.py [--src DIR] [--out DIR]     (defaults: fixtures/pytorch, /tmp/defect-cases)
"""
import argparse
import copy
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_pytorch import DEFAULT_OUT, check_case, dumps  # noqa: E402

NP = {"float32": np.float32, "float64": np.float64}


# --------------------------------------------------------------------------- helpers

def arr(t):
    return np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])


def to_list(a, dtype):
    return [float(v) for v in np.asarray(a, dtype=np.float64).astype(NP[dtype]).reshape(-1)]


def batch_stats(x):
    """Per-channel mean, biased and unbiased variance (float64), and count n."""
    c = x.shape[1]
    v = np.moveaxis(x, 1, 0).reshape(c, -1)
    n = v.shape[1]
    mean = v.mean(axis=1)
    var_b = ((v - mean[:, None]) ** 2).mean(axis=1)
    return mean, var_b, var_b * n / (n - 1), n


def bshape(x, v):
    return np.asarray(v).reshape([1, -1] + [1] * (x.ndim - 2))


def affine_params(case):
    c = case["num_features"]
    if case["affine"]:
        return np.asarray(case["parameters"]["weight"], float), np.asarray(case["parameters"]["bias"], float)
    return np.ones(c), np.zeros(c)


def state_before(case, i):
    """(running_mean, running_var, num_batches_tracked) before step i."""
    for s in reversed(case["steps"][:i]):
        e = s["expect"]
        return np.asarray(e["running_mean"], float), np.asarray(e["running_var"], float), e["num_batches_tracked"]
    b = case["buffers"]
    return np.asarray(b["running_mean"], float), np.asarray(b["running_var"], float), b["num_batches_tracked"]


def factor(case, nbt_after):
    return 1.0 / nbt_after if case["momentum"] is None else case["momentum"]


def normalize(case, x, mean, var, eps):
    w, b = affine_params(case)
    return (x - bshape(x, mean)) / np.sqrt(bshape(x, var) + eps) * bshape(x, w) + bshape(x, b)


def set_output(case, step, y):
    step["expect"]["output"]["data"] = to_list(y, case["dtype"])


# --------------------------------------------------------------------------- defects
# Each: (defect name, source case, step index, function(case, step, i) mutating the step).

def running_var_biased(case, s, i):
    _, rv, nbt = state_before(case, i)
    _, var_b, _, _ = batch_stats(arr(s["input"]))
    m = factor(case, s["expect"]["num_batches_tracked"])
    s["expect"]["running_var"] = to_list((1 - m) * rv + m * var_b, case["dtype"])


def running_mean_momentum_swapped(case, s, i):
    rm, _, _ = state_before(case, i)
    mean, _, _, _ = batch_stats(arr(s["input"]))
    m = case["momentum"]
    s["expect"]["running_mean"] = to_list(m * rm + (1 - m) * mean, case["dtype"])


def cma_factor_off_by_one(case, s, i):
    rm, rv, nbt = state_before(case, i)
    mean, _, var_u, _ = batch_stats(arr(s["input"]))
    m = 1.0 / nbt  # should be 1/(nbt+1)
    s["expect"]["running_mean"] = to_list((1 - m) * rm + m * mean, case["dtype"])
    s["expect"]["running_var"] = to_list((1 - m) * rv + m * var_u, case["dtype"])


def nbt_bumped_in_eval(case, s, i):
    s["expect"]["num_batches_tracked"] += 1


def nbt_not_incremented(case, s, i):
    s["expect"]["num_batches_tracked"] -= 1


def output_rel_error_1e_4(case, s, i):
    d = s["expect"]["output"]["data"]
    k = int(np.argmax(np.abs(np.asarray(d, float))))
    d[k] = float(NP[case["dtype"]](d[k] * (1 + 1e-4)))


def eps_dropped(case, s, i):
    x = arr(s["input"])
    mean, var_b, _, _ = batch_stats(x)
    set_output(case, s, normalize(case, x, mean, var_b, 0.0))


def eval_uses_batch_stats(case, s, i):
    x = arr(s["input"])
    mean, var_b, _, _ = batch_stats(x)
    set_output(case, s, normalize(case, x, mean, var_b, case["eps"]))


def train_uses_unbiased_var(case, s, i):
    x = arr(s["input"])
    mean, _, var_u, _ = batch_stats(x)
    set_output(case, s, normalize(case, x, mean, var_u, case["eps"]))


def weight_grad_off_0_1pct(case, s, i):
    g = s["expect_grad"]["weight"]
    g[0] = float(NP[case["dtype"]](g[0] * 1.001))


def input_grad_without_stat_terms(case, s, i):
    x, go = arr(s["input"]), arr(s["grad_output"])
    _, var_b, _, _ = batch_stats(x)
    w, _ = affine_params(case)
    s["expect_grad"]["input"]["data"] = to_list(go * bshape(x, w) / np.sqrt(bshape(x, var_b) + case["eps"]),
                                                case["dtype"])


def bias_grad_missing_sum(case, s, i):
    g = s["expect_grad"]["bias"]
    go = arr(s["grad_output"])
    g[:] = to_list(np.moveaxis(go, 1, 0).reshape(go.shape[1], -1).mean(axis=1), case["dtype"])  # mean, not sum


DEFECTS = [
    ("running-var-biased", "bn1d-affine-2d-input", 0, running_var_biased, ["running_var"]),
    ("running-mean-momentum-swapped", "bn2d-momentum-0.8", 0, running_mean_momentum_swapped, ["running_mean"]),
    ("cma-factor-off-by-one", "loaded-random-state-cma", 0, cma_factor_off_by_one, ["running_mean", "running_var"]),
    ("nbt-bumped-in-eval", "bn1d-affine-2d-input", 1, nbt_bumped_in_eval, ["num_batches_tracked"]),
    ("nbt-not-incremented", "bn2d-default", 0, nbt_not_incremented, ["num_batches_tracked"]),
    ("zero-batch-nbt-not-incremented", "bn1d-zero-batch", 0, nbt_not_incremented, ["num_batches_tracked"]),
    ("output-rel-error-1e-4", "bn2d-default", 0, output_rel_error_1e_4, ["output"]),
    ("output-rel-error-1e-4", "f64-bn1d", 1, output_rel_error_1e_4, ["output"]),
    ("eps-dropped", "eps-0.5", 0, eps_dropped, ["output"]),
    ("eval-uses-batch-stats", "loaded-random-state", 0, eval_uses_batch_stats, ["output"]),
    ("train-output-uses-unbiased-var", "bn1d-affine-2d-input", 0, train_uses_unbiased_var, ["output"]),
    ("weight-grad-off-0.1pct", "grad-bn2d-train", 0, weight_grad_off_0_1pct, ["grad.weight"]),
    ("weight-grad-off-0.1pct", "grad-f64-bn2d", 0, weight_grad_off_0_1pct, ["grad.weight"]),
    ("input-grad-without-stat-terms", "grad-bn1d-2d-input-train", 0, input_grad_without_stat_terms, ["grad.input"]),
    ("bias-grad-mean-not-sum", "grad-bn3d-train", 0, bias_grad_missing_sum, ["grad.bias"]),
]


def changed_fields(a, b):
    """Names of the expectation fields that differ between two steps."""
    out = []
    for k in ("output", "running_mean", "running_var", "num_batches_tracked"):
        if a["expect"].get(k) != b["expect"].get(k):
            out.append(k)
    for k in ("input", "weight", "bias"):
        if a.get("expect_grad", {}).get(k) != b.get("expect_grad", {}).get(k):
            out.append("grad." + k)
    if a["input"] != b["input"] or a.get("grad_output") != b.get("grad_output") or a["training"] != b["training"]:
        out.append("<step inputs>")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=DEFAULT_OUT)
    ap.add_argument("--out", default="/tmp/defect-cases")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for defect, src, i, fn, expected in DEFECTS:
        with open(os.path.join(args.src, src + ".json"), encoding="utf-8") as fh:
            truth = json.load(fh)
        truth["steps"] = truth["steps"][: i + 1]
        case = copy.deepcopy(truth)
        fn(case, case["steps"][i], i)
        case["name"] = f"{src}--{defect}"
        diffs = changed_fields(truth["steps"][i], case["steps"][i])
        if diffs != expected or case["steps"][:i] != truth["steps"][:i]:
            raise SystemExit(f"{case['name']}: changed {diffs}, expected exactly {expected}")
        errs = check_case(case, case["name"] + ".json")
        if errs:
            raise SystemExit("\n".join(errs))
        with open(os.path.join(args.out, case["name"] + ".json"), "w", encoding="utf-8") as fh:
            fh.write(dumps(case))
        print(f"{case['name']}: step {i} {', '.join(diffs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
