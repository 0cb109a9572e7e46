# SPDX-License-Identifier: Apache-2.0
"""Does a 4-bit format with a per-group minimum measure better than tessera's q4 (scale only)?

Quantizes real and random weight matrices in numpy, independently of tessera, and prints the weight
NMSE (sum of squared errors / sum of squares) and the bytes per weight of four 4-bit layouts:

  q4 / 32      tessera's q4 (llama.cpp's Q4_0): d = -m / 8 (m the value of largest magnitude),
               w = d (q - 8), q in [0, 15]; one f16 scale per 32 weights       -> 0.5625 bytes
  q4 / 64      the same with one scale per 64                                  -> 0.53125
  q4+min / 32  scale and minimum (llama.cpp's Q4_1): d = (max - min) / 15,
               w = min + d q; f16 scale and f16 minimum per 32                 -> 0.625
  q4+min / 64  the same per 64, the bytes of q4 / 32                           -> 0.5625

Scales and minima are rounded to f16 before the weights are rounded against them, as tessera's
quantizer does. Decode reads the bytes, so a layout is only worth it if its NMSE is lower at equal
or fewer bytes.

    .venv/bin/python tools/bench/q4_minimum.py --checkpoint models/shapes-tiny [--checkpoint DIR ...]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np


def q4_scale_only(w: np.ndarray, group: int) -> np.ndarray:
    g = w.reshape(-1, group)
    idx = np.abs(g).argmax(axis=1)
    m = g[np.arange(g.shape[0]), idx]
    d = (-m / 8.0).astype(np.float16).astype(np.float32)
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0.0)
    q = np.clip(np.rint(g * inv[:, None]) + 8, 0, 15)
    return ((q - 8) * d[:, None]).reshape(w.shape)


def q4_with_minimum(w: np.ndarray, group: int) -> np.ndarray:
    g = w.reshape(-1, group)
    lo = g.min(axis=1).astype(np.float16).astype(np.float32)
    d = ((g.max(axis=1) - lo) / 15.0).astype(np.float16).astype(np.float32)
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0.0)
    q = np.clip(np.rint((g - lo[:, None]) * inv[:, None]), 0, 15)
    return (lo[:, None] + q * d[:, None]).reshape(w.shape)


LAYOUTS = [("q4 / 32", q4_scale_only, 32, 0.5 + 2 / 32), ("q4 / 64", q4_scale_only, 64, 0.5 + 2 / 64),
           ("q4+min / 32", q4_with_minimum, 32, 0.5 + 4 / 32), ("q4+min / 64", q4_with_minimum, 64, 0.5 + 4 / 64)]
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "query_key_value",
          "key_value_dense", "dense", "dense_h_to_4h", "dense_4h_to_h")


def linear_weights(directory: pathlib.Path):
    from safetensors import safe_open  # through torch: numpy has no bfloat16
    for f in sorted(directory.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                if name.endswith(".weight") and any(f".{k}." in name for k in LINEAR) and \
                        "vision" not in name and "visual" not in name:
                    t = st.get_tensor(name)
                    if t.ndim == 2 and t.shape[1] % 64 == 0:
                        yield name, t.float().numpy()


def nmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).sum() / (b ** 2).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=pathlib.Path, action="append", default=[],
                    help="a checkpoint directory whose LLM linear weights to quantize (repeatable)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()

    sets = []
    rng = np.random.default_rng(args.seed)
    sets.append(("random N(0, 0.02), 4864 x 896 (the benchmarks' weights)",
                 [rng.normal(0.0, 0.02, size=(4864, 896)).astype(np.float32)]))
    # Heavier tails, as trained weights have: Student-t with 5 degrees of freedom.
    sets.append(("random Student-t(5) x 0.02, 4864 x 896", [(rng.standard_t(5, size=(4864, 896)) * 0.02).astype(np.float32)]))
    for d in args.checkpoint:
        mats = [t for _, t in linear_weights(d)]
        if not mats:
            print(f"q4_minimum: no LLM linear weights with a width divisible by 64 in {d}", file=sys.stderr)
            return 1
        sets.append((f"{d.name}: its {len(mats)} LLM linear weights", mats))

    out = {"numpy": np.__version__, "sets": []}
    print("| weights | " + " | ".join(f"{n} ({b:.4g} B)" for n, _, _, b in LAYOUTS) + " |")
    print("|---|" + "---|" * len(LAYOUTS))
    for label, mats in sets:
        row = []
        for _, fn, group, _ in LAYOUTS:
            err = sum(float(((fn(m, group) - m) ** 2).sum()) for m in mats)
            ref = sum(float((m ** 2).sum()) for m in mats)
            row.append(err / ref)
        print(f"| {label} | " + " | ".join(f"{v:.3e}" for v in row) + " |")
        out["sets"].append({"weights": label, "nmse": dict(zip([n for n, _, _, _ in LAYOUTS], row))})
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
