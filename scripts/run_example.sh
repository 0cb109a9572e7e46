#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main example: installs missing dependencies (scripts/setup.sh), builds examples/chat in
# Release for this machine's CPU (-DTESSERA_SIMD_ARCH=native) into build/, and asks the bundled
# model, models/shapes-tiny (a tiny POINTS1.5 trained on pictures of shapes; see its README.md),
# about one of its bundled scenes. chat prints the answer, then the image as the model saw it
# (its size, resized size and token count) and the timings.
# Arguments are passed on to chat, with --model models/shapes-tiny added unless one is given:
#   bash scripts/run_example.sh --image picture.png --prompt "How many circles are there?"
#   bash scripts/run_example.sh --model DIR --image photo.jpg --prompt "Describe this image."
#                                           (DIR: a real POINTS1.5 checkpoint directory)
# With --image but no --prompt, chat is interactive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model=models/shapes-tiny
scene=$model/examples/wide_2000010.png
question="What is the colour of the square?"

bash scripts/setup.sh
echo "run_example: configuring build/ (Release, TESSERA_SIMD_ARCH=native)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTESSERA_SIMD_ARCH=native
cmake --build build -j"$(nproc)" --target chat

if [ $# -eq 0 ]; then
  set -- --image "$scene" --prompt "$question"
fi
has_model=0
for a in "$@"; do
  [ "$a" = --model ] && has_model=1
done
[ $has_model = 1 ] || set -- --model "$model" "$@"

shown=""
for a in "$@"; do
  case $a in *[[:space:]?*]*) shown+=" \"$a\"" ;; *) shown+=" $a" ;; esac
done
echo "run_example: ./build/examples/chat$shown"
for ((i = 1; i <= $#; ++i)); do
  [ "${!i}" = --prompt ] && { j=$((i + 1)); echo "user: ${!j-}"; }
done
./build/examples/chat "$@"
