// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the config.json readers (Qwen2 / Qwen2.5, Qwen2-VL vision, POINTS1.5) on arbitrary
// bytes. The first byte picks the reader, the rest is the JSON text.
#include <tessera/model/points15/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view const json(reinterpret_cast<char const*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: (void)tessera::model::parse_model_config(json, "fuzz"); break;
      case 1: (void)tessera::model::parse_qwen2_config(json, "fuzz"); break;
      case 2: (void)tessera::model::parse_qwen2_vl_vision_config(json, "fuzz"); break;
      default: (void)tessera::model::parse_custom_llama_config(json, "fuzz"); break;
    }
  } catch (tessera::error const&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
