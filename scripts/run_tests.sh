#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite, as CI runs it (.ci/run). Installs missing dependencies first
# (scripts/setup.sh), then builds and tests, each in its own build directory:
#   default   build-ci/           portable x86-64-v3, Release at -O2, -Werror: everything -- unit tests,
#                                 header/ODR/compile-fail/docs/consumer checks, benchmarks smoke
#   native    build-ci-native/    -march=native (AVX-512 + BF16 where the CPU has them), -O1: the tests of
#                                 every block with SIMD code ($simd_tests below)
#   none      build-ci-none/      compiler baseline (SSE2), -O1: the same tests, proves the fallback paths
#   sanitize  build-ci-sanitize/  Debug (-O0), AddressSanitizer + UndefinedBehaviorSanitizer: unit tests
#   cuda      build-ci-cuda/      only when nvcc is found: CUDA tests (they SKIP without a GPU)
# Optimization levels: the whole suite is bound by compiling (on 2 cores the default step built for
# about 450 s and ran its 434 tests in 35 s), so each step compiles at the level its purpose needs:
# default -O2 (what distributions ship; about 20 % less compile time than -O3; the benchmarks and
# run_example.sh build at -O3 on their own), native and none -O1 (the AVX-512 kernels' and the
# scalar fallbacks' correctness; about 40 % less than -O3), sanitize -O0; compile-only checks (header check, ODR
# check, documentation snippets) build at -O0 in every step, the benchmarks, which CI only
# smoke-runs, at -O1 (TESSERA_SMOKE_FLAGS), and the examples, whose tests run tiny models, at -O0
# (TESSERA_EXAMPLE_FLAGS: 40 % less compile time than -O1, measured on chat.cpp).
# Usage: scripts/run_tests.sh [step...]   (default: all steps; e.g. `scripts/run_tests.sh default`)
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

jobs=$(nproc)
# As many compile jobs as cores (one more measured no faster: the default step's build 336 s
# against 338 s, the sanitizer build 260 s against 230 s).
build_jobs=$jobs
# ctest -j runs two test processes at once, each with an OpenMP team as large as the machine:
# spin-waiting threads would steal the core the other process needs (measured on 2 cores: the
# sanitize step's tests 149 s with the default wait policy, 139 s passive).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
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
simd_tests="core/;backend/;nn/;quant/;posemb/;pack/;attn/;pool/;vision/;io/test_image;golden/test_golden_nn"
simd_tests+=";golden/test_golden_image;golden/test_golden_attn;golden/test_golden_pool;golden/test_golden_rope"
simd_tests+=";golden/test_golden_vision"

# step_times / step_counts: what the summary prints for the step that just ran.
step_times=""
step_counts=""
skip_reasons=()

# ctest_run <build dir> [ctest args...]: runs the tests (an empty selection is an error), then
# records how many passed, failed and were skipped, and why each skipped test skipped (the
# message of Catch2's SKIP(), read from the JUnit report).
ctest_run() {
  local dir=$1; shift
  local log=$PWD/$dir/ctest.log junit=$PWD/$dir/ctest-junit.xml rc=0
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$jobs" --output-junit "$junit" "$@" 2>&1 |
    tee "$log" || rc=1  # pipefail: ctest's status
  local total failed skipped
  total=$(sed -n 's/.*tests failed out of \([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)
  failed=$(sed -n 's/.* \([0-9][0-9]*\) tests failed out of .*/\1/p' "$log" | tail -n1)
  skipped=$(grep -c '(Skipped)$' "$log" || true)
  total=${total:-0}; failed=${failed:-0}
  step_counts="$((total - failed - skipped)) passed, $failed failed, $skipped skipped of $total"
  if [ "$skipped" -gt 0 ] && [ -f "$junit" ]; then
    # Each skipped <testcase name="..."> and the line after "with message:" in its output,
    # grouped by reason: "N x reason (test, test, ...)".
    while IFS= read -r line; do skip_reasons+=("$line"); done < <(awk '
      /<testcase / { match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7); skipped = ($0 ~ /status="skipped"|status="notrun"/); want = 0 }
      skipped && /with message:/ { want = 1; next }
      skipped && want && NF { sub(/^[ \t]+/, ""); print $0 "\t" name; skipped = 0; want = 0 }
      /<\/testcase>/ { if (skipped) print "(no message)\t" name; skipped = 0 }' "$junit" |
      sed "s/&apos;/'/g; s/&quot;/\"/g; s/&lt;/</g; s/&gt;/>/g; s/&amp;/\\&/g" | sort |
      awk -F'\t' '$1 != r { if (n) print n " x " r " (" names ")"; r = $1; n = 0; names = "" }
                   { n++; names = names (names == "" ? "" : ", ") $2 }
                   END { if (n) print n " x " r " (" names ")" }')
  fi
  return $rc
}

# GCC collects its garbage less often with these (the same code; more memory per compiler, about
# 1-2 GB): about 9 % less compile CPU for the test files, measured on the decoder tests.
gcc_flags=()
if c++ --version 2>/dev/null | grep -q "Free Software Foundation"; then
  gcc_flags=(-DCMAKE_CXX_FLAGS="--param ggc-min-expand=400 --param ggc-min-heapsize=2097152")
fi

# configure_build_test <build dir> <cmake configure args...>: configure, build all, run every test.
configure_build_test() {
  local dir=$1; shift
  local t0=$SECONDS t1
  cmake -S . -B "$dir" "${gcc_flags[@]}" "$@" && cmake --build "$dir" -j"$build_jobs" || return 1
  t1=$SECONDS
  ctest_run "$dir"
  local rc=$?
  step_times="build $((t1 - t0))s, tests $((SECONDS - t1))s"
  return $rc
}

run_step() {
  case $1 in
    default)
      configure_build_test build-ci \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DTESSERA_SMOKE_FLAGS=-O1 \
        -DTESSERA_EXAMPLE_FLAGS=-O0 -DTESSERA_WERROR=ON ;;
    native)
      echo "run_tests: -march=native enables: $(g++ -march=native -Q --help=target 2>/dev/null |
        awk '$2 == "[enabled]" && $1 ~ /^-m(avx2|fma|avx512f|avx512bf16)$/ {printf "%s ", $1}')"
      configure_build_test build-ci-native \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DTESSERA_WERROR=ON \
        -DTESSERA_SIMD_ARCH=native "${unit_only[@]}" \
        -DTESSERA_TEST_ONLY="$simd_tests" ;;
    none)
      configure_build_test build-ci-none \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DTESSERA_WERROR=ON -DTESSERA_SIMD_ARCH=none \
        "${unit_only[@]}" \
        -DTESSERA_TEST_ONLY="$simd_tests" ;;
    sanitize)
      # allocator_may_return_null: tests ask for impossible sizes on purpose and expect a
      # tessera::error, which needs the allocation to fail instead of ASan aborting.
      # Debug (assertions on, no NDEBUG) at -O0: the tests run about 2.4x longer than at -O1
      # (108 s against 45 s on 2 cores), but the instrumented templates compile about 3x faster
      # (187 s against about 540 s for the whole step's build), which decides it. -g1 (line tables
      # only) keeps file:line in sanitizer reports and compiles about 9 % faster than -g.
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        configure_build_test build-ci-sanitize \
        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -O0" -DTESSERA_SANITIZE="address;undefined" \
        "${unit_only[@]}" ;;
    cuda)
      # Builds the CUDA tests only (the CPU tests are the same as in `default`).
      local t0=$SECONDS t1
      cmake -S . -B build-ci-cuda -DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON -DTESSERA_ENABLE_CUDA=ON \
          -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" "${unit_only[@]}" &&
        cmake --build build-ci-cuda -j"$build_jobs" --target tessera_cuda_tests || return 1
      t1=$SECONDS
      ctest_run build-ci-cuda -L cuda
      local rc=$?
      step_times="build $((t1 - t0))s, tests $((SECONDS - t1))s"
      return $rc ;;
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
  step_times=""
  step_counts="no tests ran"
  if run_step "$step"; then result=ok; else result=FAILED; failed=1; fi
  summary+=("$(printf '%-9s %-6s %5ss  (%s; %s)' "$step" "$result" "$((SECONDS - start))" "${step_times:-build failed}" "$step_counts")")
  echo "==== run_tests: step '$step' $result in $((SECONDS - start))s: $step_counts"
done

echo
echo "run_tests: summary (step, result, wall time, build / test time, tests)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#skip_reasons[@]} -gt 0 ]; then
  echo "run_tests: skipped tests (count x name: reason)"
  for line in "${skip_reasons[@]}"; do echo "  $line"; done
fi
echo "run_tests: $([ $failed -eq 0 ] && echo PASSED || echo FAILED) -- total $((SECONDS - start_all))s ($(( (SECONDS - start_all) / 60 )) min $(( (SECONDS - start_all) % 60 )) s)"
exit $failed
