#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The decoder benchmark, tessera against PyTorch in one run: builds bench_decoder (Release,
# native), runs it (random bf16 Qwen2.5-0.5B / 1.5B, prefill 512, decode at context 128 and 2048,
# DRAM roofline measured in the same run), then tools/bench/decoder_torch.py on the same shapes
# with the same thread count, and prints both side by side with their ratio.
# Needs a Python with the pinned torch / transformers of tools/requirements.txt. Run it on a
# quiet machine: the load average is printed before and after.
# Usage: scripts/bench_decoder.sh [--threads N] [--models "0.5B 1.5B"] [--out PATH]
#   environment: PYTHON (default .venv/bin/python, else python3), BUILD_DIR (default build-bench),
#                JOBS (build jobs, default 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

threads=2 models="0.5B 1.5B" out=""
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--models \"0.5B 1.5B\"] [--out PATH]" >&2; exit 2 ;;
  esac
done
source scripts/bench_common.sh
bench_build bench_decoder

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "load before: $(uptime)" >&2
torch_models=()
for m in $models; do
  OMP_PROC_BIND=close OMP_NUM_THREADS=$threads "$build/benchmarks/bench_decoder" --threads "$threads" \
    --filter "$m" --json "$tmp/tessera_$m.json"
  torch_models+=("Qwen2.5-$m")
done
# One tessera JSON with every model, for the side-by-side report.
"$python" - "$tmp" $models <<'EOF'
import json, sys
tmp, models = sys.argv[1], sys.argv[2:]
merged = None
for m in models:
    j = json.load(open(f"{tmp}/tessera_{m}.json"))
    if merged is None:
        merged = j
    else:
        merged["models"] += j["models"]
json.dump(merged, open(f"{tmp}/tessera.json", "w"), indent=2)
EOF
report_args=(--tessera-json "$tmp/tessera.json")
[ -n "$out" ] && report_args+=(--out "$out")
OMP_NUM_THREADS=$threads "$python" tools/bench/decoder_torch.py --threads "$threads" --models "${torch_models[@]}" \
  "${report_args[@]}"
echo "load after: $(uptime)" >&2
