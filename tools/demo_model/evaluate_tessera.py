# SPDX-License-Identifier: Apache-2.0
"""The held-out accuracy of the bundled model as tessera runs it: the same 200 scenes and questions
as evaluate.py (one per category per scene, evaluate.pick_questions), each asked with
examples/chat (one process per question, greedy), in one or more weight formats (--weights: auto,
q8, q4 -- q8 / q4 quantize the LLM's linear layers on load). Answers are compared as exact strings
with the scene generator's truth, as evaluate.py compares PyTorch's. Prints a table and writes JSON
(--json); a developer's tool (docs/quantization.md quotes its numbers), never run by tests or CI.

    .venv/bin/python tools/demo_model/evaluate_tessera.py --chat build/examples/chat [--weights auto,q8,q4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
from evaluate import pick_questions  # noqa: E402
from train import HELDOUT_COUNT, HELDOUT_SEED0  # noqa: E402

CATEGORIES = ("count", "colour", "shape", "position")  # the four of the quality target (size: too few)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chat", required=True, help="the examples/chat executable")
    ap.add_argument("--model", default=os.path.join(REPO, "models", "shapes-tiny"))
    ap.add_argument("--weights", default="auto,q8,q4")
    ap.add_argument("--count", type=int, default=HELDOUT_COUNT)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="where to write the results")
    args = ap.parse_args()
    formats = args.weights.split(",")
    per = {w: OrderedDict((c, [0, 0]) for c in CATEGORIES) for w in formats}
    same = {w: 0 for w in formats}  # answers equal to the first format's
    asked = 0
    with tempfile.TemporaryDirectory(prefix="shapes_eval_") as tmp:
        for k in range(args.count):
            scene = scenes.make_scene(HELDOUT_SEED0 + k)
            png = os.path.join(tmp, f"{scene.seed}.png")
            scene.image.save(png)
            for cat, (q, truth) in pick_questions(scene).items():
                if cat not in CATEGORIES:
                    continue
                asked += 1
                first = None
                for w in formats:
                    out = subprocess.run([args.chat, "--model", args.model, "--image", png, "--prompt", q, "--weights", w,
                                          "--max-new-tokens", "8", "--threads", str(args.threads)],
                                         capture_output=True, text=True, check=True)
                    answer = out.stdout.strip()
                    per[w][cat][0] += answer == truth
                    per[w][cat][1] += 1
                    first = answer if first is None else first
                    same[w] += answer == first
    result = OrderedDict(model=os.path.relpath(args.model, REPO), scenes=OrderedDict(first_seed=HELDOUT_SEED0, count=args.count),
                         questions=asked, formats=OrderedDict())
    print(f"{'weights':8} " + " ".join(f"{c:>16}" for c in CATEGORIES) + f" {'all four':>16} {'same as ' + formats[0]:>14}")
    for w in formats:
        right = sum(a for a, _ in per[w].values())
        total = sum(n for _, n in per[w].values())
        cells = " ".join(f"{a:>4}/{n:<4} {100 * a / max(1, n):5.1f}%" for a, n in per[w].values())
        print(f"{w:8} {cells} {right:>4}/{total:<4} {100 * right / max(1, total):5.1f}% {same[w]:>8}/{asked}")
        result["formats"][w] = OrderedDict(
            [(c, OrderedDict(right=a, asked=n)) for c, (a, n) in per[w].items()] +
            [("all", OrderedDict(right=right, asked=total)), ("same_answer_as_" + formats[0], same[w])])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
