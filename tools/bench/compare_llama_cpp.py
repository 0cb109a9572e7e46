# SPDX-License-Identifier: Apache-2.0
"""tessera's bench_decoder next to llama.cpp's llama-bench on the same weights, in interleaved rounds.

The weights: a checkpoint directory (tools/bench/random_qwen2_checkpoint.py writes a random one) that
bench_decoder loads with --model (quantizing on load), and GGUF files that llama.cpp's
convert_hf_to_gguf.py and llama-quantize made from the same directory. llama.cpp is built outside this
repository; nothing of it is part of tessera.

Each round runs, for every format pair, bench_decoder (prefill 512, decode at context 128 and 2048:
median step time) and then llama-bench (pp512 at depth 0; tg32 at depths 128 and 2048: llama-bench's
mean over -r repetitions), so both sides of a pair see the same minutes of the machine's drifting
memory bandwidth. The table gives, per pair and case, the median over rounds of each side's figure and
the ratio tessera / llama.cpp of those medians; the JSON keeps every round.

    .venv/bin/python tools/bench/compare_llama_cpp.py --bench-decoder build/benchmarks/bench_decoder \\
        --llama-bench /path/to/llama.cpp/build/bin/llama-bench --model /tmp/qwen2.5-0.5B-random \\
        --pair bf16=/tmp/q05-bf16.gguf --pair q8=/tmp/q05-Q8_0.gguf --pair q4=/tmp/q05-Q4_0.gguf \\
        --rounds 3 --out compare.json

A pair is TESSERA_WEIGHTS=GGUF: bf16, q8 or q4 (tessera's quantized formats run with --lm-head q8,
the LM head llama.cpp keeps at 8 bits in Q8_0 and, at these widths, in Q4_0), or tessera's format
with a label, e.g. q4:Q4_K_M=/tmp/q05-Q4_K_M.gguf.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time


def run_tessera(args, weights: str, tmp: pathlib.Path) -> dict:
    out = tmp / f"tessera-{weights}.json"
    cmd = [args.bench_decoder, "--model", str(args.model), "--weights", weights, "--threads", str(args.threads),
           "--json", str(out)]
    if weights != "bf16":
        cmd += ["--lm-head", "q8"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())["models"][0]
    got = {"prefill_512": r["prefill"]["tokens_per_s"], "weight_bytes_per_token": r["weight_bytes_per_token"]}
    for d in r["decode"]:
        got[f"decode_{d['context']}"] = d["tokens_per_s"]
        got[f"decode_{d['context']}_fraction_of_roofline"] = d["fraction_of_roofline_weights"]
        got[f"decode_{d['context']}_dram_gbps"] = max(d["dram_read_gbps_before"], d["dram_read_gbps_after"])
    return got


def run_llama(args, gguf: str) -> dict:
    base = [args.llama_bench, "-m", gguf, "-t", str(args.threads), "-r", str(args.repetitions), "-o", "json"]
    got = {}
    for extra in (["-p", "512", "-n", "0"], ["-p", "0", "-n", "32", "-d", "128,2048"]):
        res = subprocess.run(base + extra, check=True, capture_output=True, text=True)
        for t in json.loads(res.stdout):
            if t["n_prompt"] > 0:
                got["prefill_512"] = t["avg_ts"]
            else:
                got[f"decode_{t['n_depth']}"] = t["avg_ts"]
            got["model_size_bytes"] = t["model_size"]
            got["build"] = t.get("build_commit", "")
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-decoder", required=True)
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--model", type=pathlib.Path, required=True, help="the checkpoint directory the GGUFs came from")
    ap.add_argument("--pair", action="append", required=True, help="TESSERA_WEIGHTS[:LABEL]=GGUF")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repetitions", type=int, default=3, help="llama-bench -r")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("compare_llama_cpp.json"))
    args = ap.parse_args()

    pairs = []
    for p in args.pair:
        left, gguf = p.split("=", 1)
        weights, _, label = left.partition(":")
        if weights not in ("bf16", "q8", "q4"):
            ap.error(f"--pair {p}: tessera's weights are bf16, q8 or q4")
        pairs.append({"weights": weights, "label": label or pathlib.Path(gguf).stem, "gguf": gguf})

    rounds = []
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        for r in range(args.rounds):
            this = []
            for p in pairs:
                t0 = time.time()
                tes = run_tessera(args, p["weights"], tmp)
                lla = run_llama(args, p["gguf"])
                this.append({"pair": p, "tessera": tes, "llama_cpp": lla})
                print(f"round {r + 1}/{args.rounds} {p['weights']} vs {p['label']}: decode@128 {tes['decode_128']:.1f} / "
                      f"{lla['decode_128']:.1f} tok/s ({time.time() - t0:.0f} s)", file=sys.stderr)
            rounds.append(this)

    cases = ["prefill_512", "decode_128", "decode_2048"]
    table = []
    for i, p in enumerate(pairs):
        row = {"tessera": p["weights"], "llama_cpp": p["label"]}
        for c in cases:
            tv = statistics.median(rd[i]["tessera"][c] for rd in rounds)
            lv = statistics.median(rd[i]["llama_cpp"][c] for rd in rounds)
            row[c] = {"tessera": tv, "llama_cpp": lv, "ratio": tv / lv}
        row["decode_128_fraction_of_roofline"] = statistics.median(
            rd[i]["tessera"]["decode_128_fraction_of_roofline"] for rd in rounds)
        row["tessera_weight_bytes_per_token"] = rounds[0][i]["tessera"]["weight_bytes_per_token"]
        row["llama_cpp_file_bytes"] = rounds[0][i]["llama_cpp"]["model_size_bytes"]
        table.append(row)

    print(f"\n{args.model.name}, {args.threads} threads, {args.rounds} interleaved rounds: median over rounds of "
          f"tessera's median and llama-bench's mean (-r {args.repetitions}), tokens/s")
    print("| tessera | llama.cpp | prefill 512 | decode @128 | decode @2048 | tessera decode @128 / roofline |")
    print("|---|---|---|---|---|---|")
    for row in table:
        cells = [f"{row[c]['tessera']:.1f} / {row[c]['llama_cpp']:.1f} = **{row[c]['ratio']:.2f}x**" for c in cases]
        print(f"| {row['tessera']} | {row['llama_cpp']} | " + " | ".join(cells) +
              f" | {100 * row['decode_128_fraction_of_roofline']:.0f} % |")
    args.out.write_text(json.dumps({"model": str(args.model), "threads": args.threads, "rounds": rounds,
                                    "table": table, "host": os.uname().nodename}, indent=2) + "\n")
    print(f"\nJSON written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
