# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/bench_*.sh from the repository root: $python, the Python that runs the
# reference side (PYTHON, else the project's .venv, else python3); $build, the build folder
# (BUILD_DIR, default build-bench); bench_build TARGET, which builds one benchmark there (Release,
# TESSERA_SIMD_ARCH=native, JOBS parallel jobs, default 2).
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
build=${BUILD_DIR:-build-bench}

bench_build() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTESSERA_SIMD_ARCH=native -DTESSERA_BUILD_TESTS=OFF \
    -DTESSERA_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build" --target "$1" -j"${JOBS:-2}" >/dev/null
}
