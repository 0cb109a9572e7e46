#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main example: installs missing dependencies (scripts/setup.sh), builds bench_kernels in
# Release for this machine's CPU (-DTESSERA_SIMD_ARCH=native) into build/, and runs it.
# Arguments are passed to bench_kernels (e.g. --quick for a short run, --threads N).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
echo "run_example: configuring build/ (Release, TESSERA_SIMD_ARCH=native)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTESSERA_SIMD_ARCH=native
cmake --build build -j"$(nproc)" --target bench_kernels
echo "run_example: running ./build/benchmarks/bench_kernels $*"
./build/benchmarks/bench_kernels "$@"
