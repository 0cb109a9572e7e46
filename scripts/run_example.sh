#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main example: installs missing dependencies (scripts/setup.sh), builds prepare_inputs in
# Release for this machine's CPU (-DTESSERA_SIMD_ARCH=native) into build/, and runs it: images ->
# POINTS1.5 pixel_values and grid_thw, and the chat prompt -> Qwen2 token ids.
# Arguments are passed to prepare_inputs (e.g. --image FILE, --tokenizer DIR, --model DIR); with
# none it uses ../shared/data (an image and the Qwen2 tokenizer) when that folder is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
echo "run_example: configuring build/ (Release, TESSERA_SIMD_ARCH=native)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTESSERA_SIMD_ARCH=native
cmake --build build -j"$(nproc)" --target prepare_inputs
if [ $# -eq 0 ] && [ -d ../shared/data/images ]; then
  set -- --image ../shared/data/images/skimage_coffee.png --image ../shared/data/images/donut_cord_receipt_00004.jpg
fi
echo "run_example: running ./build/examples/prepare_inputs $*"
./build/examples/prepare_inputs "$@"
