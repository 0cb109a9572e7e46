// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the image loader (format sniffing, header checks against the pixel budget, the PNG /
// JPEG / GIF / BMP / TGA decoders, conversion to RGB) on arbitrary bytes; small images that decode
// also go through the POINTS1.5 preprocessing (smart_resize, bicubic resize, normalize, patchify).
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::span<std::byte const> const bytes(reinterpret_cast<std::byte const*>(data), size);
  tessera::io::image_limits limits;
  limits.max_pixels = std::int64_t{1} << 22;  // a budget a fuzzer can afford, enforced like the default one
  try {
    tessera::io::rgb_image const img = tessera::io::decode_image(bytes, limits);
    if (img.height() * img.width() <= 4096) {
      tessera::model::resize_limits const small{3136, 28 * 28 * 16};
      tessera::model::qwen2vl_pixels const px = tessera::model::preprocess_qwen2vl(img, small, {}, 1);
      if (px.n_patches() * px.n_features != static_cast<tessera::index_t>(px.pixel_values.size())) __builtin_trap();
    }
  } catch (tessera::error const&) {
    // Rejected with a message (corrupt, unsupported, over budget, aspect ratio > 200): expected.
  }
  return 0;
}
