#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite, as CI runs it (.ci/run). Installs missing dependencies first
# (scripts/setup.sh), then builds and tests, each in its own build directory:
#   default   build-ci/           portable x86-64-v3, Release, -Werror: everything -- unit tests,
#                                 header/ODR/compile-fail/docs/consumer checks, benchmarks smoke
#   native    build-ci-native/    -march=native (AVX-512 + BF16 where the CPU has them): the tests of
#                                 every block with SIMD code ($simd_tests below)
#   none      build-ci-none/      compiler baseline (SSE2): the same tests, proves the fallback paths
#   sanitize  build-ci-sanitize/  Debug (-O0), AddressSanitizer + UndefinedBehaviorSanitizer: unit tests
#   cuda      build-ci-cuda/      only when nvcc is found: CUDA tests (they SKIP without a GPU)
# Usage: scripts/run_tests.sh [step...]   (default: all steps; e.g. `scripts/run_tests.sh default`)
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

jobs=$(nproc)
steps=("$@")
if [ ${#steps[@]} -eq 0 ]; then
  steps=(default native none sanitize)
  if command -v nvcc >/dev/null 2>&1; then steps+=(cuda); fi
fi

# Options shared by the builds that only rerun the unit tests.
unit_only=(-DTESSERA_BUILD_BENCHMARKS=OFF -DTESSERA_BUILD_EXAMPLES=OFF -DTESSERA_BUILD_CHECKS=OFF)
# The native and none builds exist for the SIMD paths: they build the test files of the blocks
# with a cpu backend (kernels, image resampling, packing, attention, pooling, encoders) and their
# goldens, not the parsers and the tokenizer, which have no architecture-dependent code.
simd_tests="core/;backend/;nn/;posemb/;pack/;attn/;pool/;vision/;io/test_image;golden/test_golden_nn"
simd_tests+=";golden/test_golden_image;golden/test_golden_attn;golden/test_golden_pool;golden/test_golden_rope"
simd_tests+=";golden/test_golden_vision"

# configure_build_test <build dir> <cmake configure args...>: configure, build all, run every test.
configure_build_test() {
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" &&
    cmake --build "$dir" -j"$jobs" &&
    ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

run_step() {
  case $1 in
    default)
      configure_build_test build-ci \
        -DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON ;;
    native)
      echo "run_tests: -march=native enables: $(g++ -march=native -Q --help=target 2>/dev/null |
        awk '$2 == "[enabled]" && $1 ~ /^-m(avx2|fma|avx512f|avx512bf16)$/ {printf "%s ", $1}')"
      configure_build_test build-ci-native \
        -DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON -DTESSERA_SIMD_ARCH=native "${unit_only[@]}" \
        -DTESSERA_TEST_ONLY="$simd_tests" ;;
    none)
      configure_build_test build-ci-none \
        -DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON -DTESSERA_SIMD_ARCH=none "${unit_only[@]}" \
        -DTESSERA_TEST_ONLY="$simd_tests" ;;
    sanitize)
      # allocator_may_return_null: tests ask for impossible sizes on purpose and expect a
      # tessera::error, which needs the allocation to fail instead of ASan aborting.
      # Debug (assertions on, no NDEBUG) at -O0: the tests run about 2.4x longer than at -O1
      # (108 s against 45 s on 2 cores), but the instrumented templates compile about 3x faster
      # (187 s against about 540 s for the whole step's build), which decides it.
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        configure_build_test build-ci-sanitize \
        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O0" -DTESSERA_SANITIZE="address;undefined" \
        "${unit_only[@]}" ;;
    cuda)
      # Builds the CUDA tests only (the CPU tests are the same as in `default`).
      cmake -S . -B build-ci-cuda -DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON -DTESSERA_ENABLE_CUDA=ON \
          -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" "${unit_only[@]}" &&
        cmake --build build-ci-cuda -j"$jobs" --target tessera_cuda_tests &&
        ctest --test-dir build-ci-cuda --output-on-failure -j"$jobs" -L cuda ;;
    *)
      echo "run_tests: unknown step '$1' (steps: default native none sanitize cuda)" >&2
      return 2 ;;
  esac
}

summary=()
failed=0
start_all=$SECONDS
for step in "${steps[@]}"; do
  echo
  echo "==== run_tests: step '$step' ===================================================="
  start=$SECONDS
  if run_step "$step"; then result=ok; else result=FAILED; failed=1; fi
  summary+=("$step $result ($((SECONDS - start))s)")
  echo "==== run_tests: step '$step' $result in $((SECONDS - start))s"
done

echo
line=$(IFS=,; echo "${summary[*]}")
echo "run_tests: $([ $failed -eq 0 ] && echo PASSED || echo FAILED): ${line//,/, } -- total $((SECONDS - start_all))s"
exit $failed
