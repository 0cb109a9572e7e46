#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The POINTS1.5 benchmark, tessera against PyTorch in one run: builds bench_points (Release,
# native), runs it (model::points15 with random bf16 weights at the POINTS1.5 shapes: one 448 x 448
# image and four mixed-size images, preprocessing, the vision tower against the FMA peak, the 0.5B
# and 7B projectors, time to first token, a 32-token answer against the DRAM roofline; roofs
# measured in the same run), then tools/bench/points_torch.py: transformers' Qwen2-VL vision tower
# in f32 and bf16 on the same pixel_values with the same thread count, and prints both side by side
# with the ratios. The whole run takes 6 to 7 minutes on 2 cores (the large case is timed once on
# each side; --reps / --big-reps change that).
# Needs a Python with the pinned torch / transformers of tools/requirements.txt. Run it on a
# quiet machine: the load average is printed before and after, and recorded in the JSON.
# Usage: scripts/bench_points.sh [--threads N] [--reps N] [--big-reps N] [--attn auto|eager|sdpa] [--quick] [--out PATH]
#   environment: PYTHON (default .venv/bin/python, else python3), BUILD_DIR (default build-bench),
#                JOBS (build jobs, default 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=2 out="" attn=auto
bench_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --reps) bench_args+=(--reps "$2"); shift 2 ;;
    --big-reps) bench_args+=(--big-reps "$2"); shift 2 ;;
    --attn) attn=$2; shift 2 ;;
    --quick) bench_args+=(--quick); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--reps N] [--big-reps N] [--attn auto|eager|sdpa] [--quick] [--out PATH]" >&2; exit 2 ;;
  esac
done
source scripts/bench_common.sh
bench_build bench_points

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load_before="before: $(uptime)"
echo "load $load_before" >&2
OMP_PROC_BIND=close OMP_NUM_THREADS=$threads "$build/benchmarks/bench_points" --threads "$threads" "${bench_args[@]}" \
  --json "$tmp/tessera.json" --dump-pixels "$tmp"
report_args=(--tessera-json "$tmp/tessera.json" --pixels "$tmp" --attn "$attn" --load "$load_before")
[ -n "$out" ] && mkdir -p "$(dirname "$out")" && report_args+=(--out "$out")
OMP_NUM_THREADS=$threads "$python" tools/bench/points_torch.py --threads "$threads" "${report_args[@]}"
echo "load after: $(uptime)" >&2
