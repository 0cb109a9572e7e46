# SPDX-License-Identifier: Apache-2.0
"""Combines the JSON files of scripts/bench_image.sh (bench_image and image_pillow.py, run
alternately on the same JPEG) into one report: per run and stage (decode, preprocess, decode +
preprocess) the median and min times of both, the speedup of tessera over Pillow + transformers
(Pillow's time / tessera's: above 1 means tessera is faster), the medians over runs and the ranges,
the single-thread DRAM read bandwidth measured in each run, whether both produced the same decoded
bytes and the same pixel_values (FNV-1a 64), and the libjpeg-turbo versions on both sides.

  python tools/bench/image_report.py --tessera t1.json t2.json --pillow p1.json p2.json
      [--load "..."] [--system-libjpeg-turbo VERSION] [--cpu N] [--out report.json]
"""

import argparse
import json
import platform
import statistics
from pathlib import Path

STAGES = ("decode", "preprocess", "pipeline")
STAGE_NAMES = {"decode": "decode (bytes in memory -> RGB8)",
               "preprocess": "preprocess (smart_resize, bicubic resize, normalize, patchify) of the decoded image",
               "pipeline": "decode + preprocess"}


def span(vals):
    vals = [v for v in vals if v is not None]
    return {"min": min(vals), "max": max(vals)} if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tessera", type=Path, nargs="+", required=True)
    ap.add_argument("--pillow", type=Path, nargs="+", required=True)
    ap.add_argument("--load", action="append", default=[], help="uptime lines recorded during the run")
    ap.add_argument("--system-libjpeg-turbo", default=None, help="version of the system libjpeg-turbo package")
    ap.add_argument("--cpu", default=None, help="the CPU both sides were pinned to (taskset -c), if any")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    ts = [json.loads(p.read_text()) for p in args.tessera]
    ps = [json.loads(p.read_text()) for p in args.pillow]
    runs = []
    for t, p in zip(ts, ps):
        r = {}
        for s in STAGES:
            r[s] = {"tessera_median_ms": 1e3 * t[s]["median_s"], "pillow_median_ms": 1e3 * p[s]["median_s"],
                    "speedup_median": p[s]["median_s"] / t[s]["median_s"],
                    "tessera_min_ms": 1e3 * t[s]["min_s"], "pillow_min_ms": 1e3 * p[s]["min_s"],
                    "speedup_min": p[s]["min_s"] / t[s]["min_s"],
                    "tessera_mp_per_s_median": t[s]["mp_per_s_median"], "pillow_mp_per_s_median": p[s]["mp_per_s_median"],
                    "reps": {"tessera": t[s]["reps"], "pillow": p[s]["reps"]}}
        r["dram_read_gbps_1thread"] = t["dram_read_gbps"]["max"]
        r["same_decoded_rgb"] = t["decode"]["rgb_fnv1a64"] == p["decode"]["rgb_fnv1a64"]
        r["same_pixel_values"] = t["pipeline"]["pixel_values_fnv1a64"] == p["pipeline"]["pixel_values_fnv1a64"]
        r["hashes"] = {"tessera_rgb": t["decode"]["rgb_fnv1a64"], "pillow_rgb": p["decode"]["rgb_fnv1a64"],
                       "tessera_pixel_values": t["pipeline"]["pixel_values_fnv1a64"],
                       "pillow_pixel_values": p["pipeline"]["pixel_values_fnv1a64"]}
        r["load_average_1min_tessera"] = t["machine"]["load_average_1min"]
        runs.append(r)

    summary, ranges = {}, {}
    for s in STAGES:
        tm = statistics.median(r[s]["tessera_median_ms"] for r in runs)
        pm = statistics.median(r[s]["pillow_median_ms"] for r in runs)
        summary[s] = {"what": STAGE_NAMES[s], "tessera_ms": tm, "pillow_ms": pm, "speedup": pm / tm,
                      "tessera_mp_per_s": ts[0]["image"]["megapixels"] / (tm / 1e3),
                      "pillow_mp_per_s": ts[0]["image"]["megapixels"] / (pm / 1e3)}
        ranges[s] = {k: span([r[s][k] for r in runs])
                     for k in ("tessera_median_ms", "pillow_median_ms", "speedup_median", "speedup_min")}
    dram = [r["dram_read_gbps_1thread"] for r in runs]

    image_same = all(t["image"]["width"] == p["image"]["width"] and t["image"]["height"] == p["image"]["height"] and
                     t["image"]["file_bytes"] == p["image"]["file_bytes"] and t["n_patches"] == p["n_patches"] and
                     t["resized"] == p["resized"] for t, p in zip(ts, ps))
    report = {
        "benchmark": "POINTS1.5 image path, one thread: JPEG decode from memory, and decode + preprocessing "
                     "into pixel_values; tessera against Pillow + transformers (Qwen2VLImageProcessor with "
                     "WePOINTS' smart_resize)",
        "medians_over_runs": summary,
        "speedup": {s: summary[s]["speedup"] for s in STAGES},
        "same_decoded_rgb_all_runs": all(r["same_decoded_rgb"] for r in runs),
        "same_pixel_values_all_runs": all(r["same_pixel_values"] for r in runs),
        "dram_read_gbps_1thread": {"per_run": dram, "min": min(dram), "max": max(dram)},
        "range": ranges,
        "runs": runs,
        "image": {**{k: v for k, v in ps[0]["image"].items() if k != "path"},
                  "resized": ts[0]["resized"], "grid_thw": ts[0]["grid_thw"], "n_patches": ts[0]["n_patches"],
                  "same_sizes_on_both_sides": image_same},
        "machine": {"node": platform.node(), "processor": platform.processor() or platform.machine(),
                    "cpu_pinned": args.cpu, **{k: v for k, v in ts[0]["machine"].items()
                                               if k not in ("load_average_1min", "threads")}},
        "threads": {"tessera": ts[0]["machine"]["threads"], "pillow": ps[0]["threads"]},
        "libjpeg_turbo": {"tessera": {"system_package": args.system_libjpeg_turbo,
                                      "decoder_built_with": ts[0].get("jpeg_library")},
                          "pillow": ps[0]["versions"]["libjpeg_turbo"]},
        "pillow_versions": ps[0]["versions"],
        "quick": bool(ts[0]["machine"]["quick"] or ps[0]["quick"]),
        "load": args.load,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    ok = image_same and report["same_decoded_rgb_all_runs"] and report["same_pixel_values_all_runs"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
