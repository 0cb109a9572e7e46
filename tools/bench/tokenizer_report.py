# SPDX-License-Identifier: Apache-2.0
"""Combines the JSON files of scripts/bench_tokenizer.sh (bench_tokenizer and tokenizer_hf.py, run
alternately on the same corpus) into one report: per-run MB/s of both, the ratio, their ranges,
and whether both produced the same ids (FNV-1a of all ids).

  python tools/bench/tokenizer_report.py --tessera t1.json t2.json --hf h1.json h2.json [--load "..."] [--out report.json]
"""

import argparse
import json
import platform
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tessera", type=Path, nargs="+", required=True)
    ap.add_argument("--hf", type=Path, nargs="+", required=True)
    ap.add_argument("--load", action="append", default=[], help="uptime lines recorded during the run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    ts = [json.loads(p.read_text()) for p in args.tessera]
    hs = [json.loads(p.read_text()) for p in args.hf]
    runs = []
    for t, h in zip(ts, hs):
        runs.append({
            "tessera_mb_per_s": t["encode"]["mb_per_s"], "hf_mb_per_s": h["encode"]["mb_per_s"],
            "ratio": t["encode"]["mb_per_s"] / h["encode"]["mb_per_s"],
            "tessera_mb_per_s_median": t["encode"]["mb_per_s_median"], "hf_mb_per_s_median": h["encode"]["mb_per_s_median"],
            "same_ids": t["encode"]["ids_fnv1a64"] == h["encode"]["ids_fnv1a64"],
            "split_scanner_mb_per_s": t["split_scanner"]["mb_per_s"],
            "split_pcre2_mb_per_s": (t.get("split_pcre2") or {}).get("mb_per_s"),
            "decode_mb_per_s": t["decode"]["mb_per_s"],
        })

    def span(key):
        vals = [r[key] for r in runs if r[key] is not None]
        return {"min": min(vals), "max": max(vals)} if vals else None

    report = {
        "benchmark": "tokenizer encode, single thread, one call per document (Qwen2 vocabulary)",
        "machine": {"node": platform.node(), "processor": platform.processor() or platform.machine(),
                    "simd_arch": ts[0]["machine"]["simd_arch"]},
        "corpus": ts[0]["corpus"],
        "hf_versions": hs[0]["versions"],
        "hf_threads": hs[0]["threads"],
        "tessera_load_ms": [t["load_ms"] for t in ts],
        "runs": runs,
        "range": {k: span(k) for k in ["tessera_mb_per_s", "hf_mb_per_s", "ratio", "split_scanner_mb_per_s",
                                       "split_pcre2_mb_per_s", "decode_mb_per_s"]},
        "same_ids_all_runs": all(r["same_ids"] for r in runs),
        "target": {"tessera / HF encode >= 1": min(r["ratio"] for r in runs) >= 1.0},
        "load": args.load,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if report["same_ids_all_runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
