// SPDX-License-Identifier: Apache-2.0
// quantize: writes a copy of a Qwen2 / Qwen2.5 or POINTS1.5 checkpoint directory with the decoder's
// linear layers stored in 8 or 4 bits (docs/quantization.md), once, so that later runs load it
// mmapped instead of quantizing on every load. The copy loads as it is: generate --model OUT,
// chat --model OUT.
//
// Usage: quantize --model DIR --out DIR --weights q8|q4 [--group N] [--lm-head q8|q4]
// --group: weights per scale (a multiple of 32 dividing every layer's width; default 32).
// --lm-head: quantize an untied LM head too, to this format (default: as stored; --weights q4
//            --lm-head q8 is the mix llama.cpp's 4-bit files use).
#include <tessera/model/quantized_checkpoint.hpp>

#include "common/sampling_flags.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace fs = std::filesystem;
using tessera::index_t;

int main(int argc, char** argv) {
  fs::path src, dst;
  std::string weights, head;
  tessera::lm::quantize_options q;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) examples::usage("missing value after " + std::string(a));
      return argv[++i];
    };
    if (a == "--model") src = value();
    else if (a == "--out") dst = value();
    else if (a == "--weights") weights = value();
    else if (a == "--group") q.group = examples::parse_number<index_t>(a, value());
    else if (a == "--lm-head") head = value();
    else if (a == "--help" || a == "-h") examples::usage("a quantized copy of a checkpoint directory");
    else examples::usage("unknown argument '" + std::string(a) + "'");
  }
  if (src.empty() || dst.empty()) examples::usage("--model DIR and --out DIR are required");
  if (weights != "q8" && weights != "q4") examples::usage("--weights takes q8 or q4");
  if (!head.empty() && head != "q8" && head != "q4") examples::usage("--lm-head takes q8 or q4");
  q.format = *tessera::quant::parse_weight_format(weights);
  if (!head.empty()) q.lm_head = *tessera::quant::parse_weight_format(head);
  try {
    auto const t0 = std::chrono::steady_clock::now();
    auto const r = tessera::model::write_quantized_checkpoint(src, dst, q);
    double const s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s -> %s: %zu matrices quantized to %s (groups of %ld%s), %zu tensors and %zu files copied; tensors "
                "%.1f MB -> %.1f MB; %.1f s\n",
                src.string().c_str(), (dst / "model.safetensors").string().c_str(), r.quantized, weights.c_str(),
                static_cast<long>(q.group), head.empty() ? "" : (", the LM head in " + head).c_str(), r.copied, r.files,
                r.bytes_before * 1e-6, r.bytes_after * 1e-6, s);
    return 0;
  } catch (tessera::error const& e) {
    std::fprintf(stderr, "quantize: %s\n", e.what());
    return 1;
  }
}

void examples::usage(std::string const& why) {
  std::fprintf(stderr,
               "quantize: %s\n"
               "usage: quantize --model DIR --out DIR --weights q8|q4 [--group N] [--lm-head q8|q4]\n",
               why.c_str());
  std::exit(2);
}
