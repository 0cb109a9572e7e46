#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tokenizer encode throughput, tessera against HF tokenizers, in one run on the same corpus:
# builds bench_tokenizer (Release, native), then runs it and tools/bench/tokenizer_hf.py
# alternately (--runs times), both single-threaded with one encode per document of the corpus
# that bench_tokenizer generates (English prose, code, Chinese; deterministic), and prints one JSON
# report with both MB/s, their ratio and ranges, and whether the ids are identical.
# Needs the shared Qwen2 tokenizer (../shared/data/qwen2-tokenizer) and a Python with the pinned
# tokenizers / transformers of tools/requirements.txt. Run it on a quiet machine: the load average
# is recorded before and after.
# Usage: scripts/bench_tokenizer.sh [--runs N] [--mb N] [--reps N] [--quick] [--out PATH]
#   environment: PYTHON (default .venv/bin/python, else python3), BUILD_DIR (default build-bench),
#                DATA (default ../shared/data/qwen2-tokenizer), JOBS (build jobs, default 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=3 mb=4 reps=5 out=""
bench_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --mb) mb=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --quick) runs=1 mb=0.25 reps=2; bench_args+=(--quick); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--mb N] [--reps N] [--quick] [--out PATH]" >&2; exit 2 ;;
  esac
done
source scripts/bench_common.sh
data=${DATA:-../shared/data/qwen2-tokenizer}
[ -f "$data/vocab.json" ] || { echo "bench_tokenizer.sh: no Qwen2 tokenizer at $data (set DATA)" >&2; exit 1; }

bench_build bench_tokenizer

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
loads=(--load "before: $(uptime)")
tessera_json=() hf_json=()
for r in $(seq 1 "$runs"); do
  "$build/benchmarks/bench_tokenizer" "${bench_args[@]}" --mb "$mb" --reps "$reps" --data "$data" \
    --json "$tmp/tessera_$r.json" --corpus-out "$tmp/corpus.bin" >&2
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$python" tools/bench/tokenizer_hf.py --corpus "$tmp/corpus.bin" \
    --data "$data" --reps "$reps" --json "$tmp/hf_$r.json" >&2
  tessera_json+=("$tmp/tessera_$r.json")
  hf_json+=("$tmp/hf_$r.json")
done
loads+=(--load "after: $(uptime)")
report_args=(--tessera "${tessera_json[@]}" --hf "${hf_json[@]}" "${loads[@]}")
[ -n "$out" ] && report_args+=(--out "$out")
"$python" tools/bench/tokenizer_report.py "${report_args[@]}"
