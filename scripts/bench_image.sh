#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The POINTS1.5 image path on one thread, tessera against Pillow + transformers in one run on the
# same JPEG: builds bench_image (Release, native), writes a deterministic 12-megapixel photo-like
# JPEG with Pillow (4000 x 3000, quality 90, 4:2:0, optimize=False; --quick: 1000 x 750), then runs
# bench_image and tools/bench/image_pillow.py alternately (--runs times), both with
# OMP_NUM_THREADS=1 and pinned to the same CPU when taskset works, and prints one JSON report
# (tools/bench/image_report.py): decode and decode + preprocessing times of both, the speedups,
# their ranges, whether the decoded bytes and pixel_values are identical, the DRAM bandwidth
# measured in the run, and the libjpeg-turbo of both sides.
# Needs a Python with the pinned Pillow / transformers / torch of tools/requirements.txt. Run it on
# a quiet machine: the load average is recorded before and after.
# Usage: scripts/bench_image.sh [--runs N] [--reps N] [--quick] [--out PATH]
#   environment: PYTHON (default .venv/bin/python, else python3), BUILD_DIR (default build-bench),
#                JOBS (build jobs, default 2), CPU (the CPU to pin both sides to; default the last
#                one this process may use; CPU=none: no pinning)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=3 reps=10 out="" size=4000x3000
bench_args=() pillow_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --quick) runs=1 reps=2 size=1000x750; bench_args+=(--quick); pillow_args+=(--quick); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--reps N] [--quick] [--out PATH]" >&2; exit 2 ;;
  esac
done
source scripts/bench_common.sh

bench_build bench_image

# Both sides on one CPU: the last one in this process's affinity list unless CPU says otherwise.
cpu=${CPU:-}
if [ -z "$cpu" ] && command -v taskset >/dev/null; then
  cpu=$(taskset -pc $$ 2>/dev/null | sed 's/.*: *//' | tr ',' '\n' | tail -n 1 | sed 's/.*-//') || cpu=""
fi
pin=()
if [ -n "$cpu" ] && [ "$cpu" != none ] && taskset -c "$cpu" true 2>/dev/null; then
  pin=(taskset -c "$cpu")
else
  cpu=""
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
image="$tmp/photo.jpg"
"$python" tools/bench/image_pillow.py --make-jpeg "$image" --size "$size" >&2

loads=(--load "before: $(uptime)")
tessera_json=() pillow_json=()
for r in $(seq 1 "$runs"); do
  OMP_NUM_THREADS=1 "${pin[@]}" "$build/benchmarks/bench_image" "${bench_args[@]}" --image "$image" --reps "$reps" \
    --json "$tmp/tessera_$r.json" >&2
  OMP_NUM_THREADS=1 "${pin[@]}" "$python" tools/bench/image_pillow.py "${pillow_args[@]}" --image "$image" \
    --reps "$reps" --json "$tmp/pillow_$r.json" >&2
  tessera_json+=("$tmp/tessera_$r.json")
  pillow_json+=("$tmp/pillow_$r.json")
done
loads+=(--load "after: $(uptime)")
system_jpeg=$(dpkg-query -W -f='${Version}' libjpeg62-turbo 2>/dev/null || echo unknown)
report_args=(--tessera "${tessera_json[@]}" --pillow "${pillow_json[@]}" "${loads[@]}"
             --system-libjpeg-turbo "$system_jpeg")
[ -n "$cpu" ] && report_args+=(--cpu "$cpu")
[ -n "$out" ] && report_args+=(--out "$out")
"$python" tools/bench/image_report.py "${report_args[@]}"
