// SPDX-License-Identifier: Apache-2.0
// The Qwen2-VL / POINTS1.5 image processor: WePOINTS' smart_resize (Qwen2ImageProcessorForPOINTSV15,
// wepoints/utils/images/qwen2vl_image_processor.py), then Pillow's bicubic resize, CLIP
// normalization and patchify in 2 x 2 merge-window-major order (spec sections 1.2 - 1.5): an RGB
// image in, pixel_values and image_grid_thw out, value for value as the reference computes them.
#pragma once

#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/image.hpp>
#include <tessera/pack/patchify.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tessera::model {

// ------------------------------------------------------------------------------------------------
// smart_resize
// ------------------------------------------------------------------------------------------------

/// Pixel-count bounds of smart_resize. Defaults: Qwen2VLImageProcessor's (56 * 56, 28 * 28 * 1280),
/// which POINTS1.5 uses unless its preprocessor_config.json says otherwise (spec section 1.7).
struct resize_limits {
  std::int64_t min_pixels = 56 * 56;
  std::int64_t max_pixels = 28 * 28 * 1280;
};


namespace detail {
/// Python's round() on a float: to nearest, ties to even, whatever the FPU rounding mode is.
[[nodiscard]] inline double round_half_even(double x) noexcept {
  double const f = std::floor(x);
  double const d = x - f;  // exact
  if (d > 0.5) return f + 1.0;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}
}  // namespace detail

/// The size POINTS1.5 resizes an image to: WePOINTS' smart_resize (wepoints/utils/images/
/// qwen2vl_image_processor.py), in float64 like the Python original:
///   h' = round(h / factor) * factor, w' likewise (round = Python's, ties to even);
///   if h' * w' > max_pixels: beta = sqrt(h * w / max_pixels), h' = floor(h / beta / factor) * factor, ...
///   elif h' * w' < min_pixels: beta = sqrt(min_pixels / (h * w)), h' = ceil(h * beta / factor) * factor, ...
/// Unlike transformers' version, sides below `factor` are accepted (WePOINTS' change); the aspect
/// ratio max/min must be <= 200 when both sides are >= factor. Throws tessera::error for
/// non-positive sizes, sides above 2^26, limits with min_pixels > max_pixels, an aspect ratio above
/// 200, and results with a zero side (possible for extreme sizes; the reference would fail in Pillow).
[[nodiscard]] inline image_size smart_resize(index_t height, index_t width, resize_limits limits = {},
                                             index_t factor = 28) {
  constexpr index_t max_side = index_t{1} << 26;  // keeps h * w exact in float64, as Python's ints are
  TESSERA_CHECK(height >= 1 && width >= 1 && height <= max_side && width <= max_side, "model::smart_resize: size ",
                height, " x ", width, " must have sides in [1, 2^26]");
  TESSERA_CHECK(factor >= 1 && factor <= 4096, "model::smart_resize: factor ", factor, " must be in [1, 4096]");
  TESSERA_CHECK(limits.min_pixels >= 0 && limits.max_pixels >= 1 && limits.min_pixels <= limits.max_pixels &&
                    limits.max_pixels <= (std::int64_t{1} << 52),
                "model::smart_resize: need 0 <= min_pixels <= max_pixels <= 2^52, got min_pixels ", limits.min_pixels,
                ", max_pixels ", limits.max_pixels);
  auto const h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  if (height >= factor && width >= factor) {
    double const ratio = static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
    TESSERA_CHECK(!(ratio > 200.0), "model::smart_resize: absolute aspect ratio must be smaller than 200, got ", ratio,
                  " for ", height, " x ", width);
  }
  auto h_bar = static_cast<index_t>(detail::round_half_even(h / f)) * factor;
  auto w_bar = static_cast<index_t>(detail::round_half_even(w / f)) * factor;
  if (h_bar * w_bar > limits.max_pixels) {
    double const beta = std::sqrt(static_cast<double>(height * width) / static_cast<double>(limits.max_pixels));
    h_bar = static_cast<index_t>(std::floor(h / beta / f)) * factor;
    w_bar = static_cast<index_t>(std::floor(w / beta / f)) * factor;
  } else if (h_bar * w_bar < limits.min_pixels) {
    double const beta = std::sqrt(static_cast<double>(limits.min_pixels) / static_cast<double>(height * width));
    h_bar = static_cast<index_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<index_t>(std::ceil(w * beta / f)) * factor;
  }
  TESSERA_CHECK(h_bar > 0 && w_bar > 0, "model::smart_resize: ", height, " x ", width, " resizes to ", h_bar, " x ",
                w_bar, " (a zero side; Pillow would refuse to resize to it)");
  return {h_bar, w_bar};
}

// ------------------------------------------------------------------------------------------------
// The whole POINTS1.5 / Qwen2-VL image path
// ------------------------------------------------------------------------------------------------

/// pixel_values and image_grid_thw of one image, as Qwen2ImageProcessorForPOINTSV15 returns them.
struct qwen2vl_pixels {
  host_buffer<float> pixel_values;  ///< [grid.h * grid.w, 1176], float32
  patch_grid grid;                 ///< (1, h' / 14, w' / 14)
  image_size resized;               ///< (h', w') from smart_resize
  index_t n_features = 0;           ///< 3 * 2 * 14 * 14 = 1176

  [[nodiscard]] index_t n_patches() const noexcept { return grid.n_patches(); }
  /// [n_patches, n_features] view of pixel_values.
  [[nodiscard]] tensor_view<float const, 2> rows() const { return pixel_values.view(n_patches(), n_features); }
  /// Tokens after the 2 x 2 patch merger (LLM image pads): n_patches / 4.
  [[nodiscard]] index_t n_merged_tokens() const noexcept { return n_patches() / 4; }
};

/// The POINTS1.5 preprocessing of an RGB image (spec sections 1.2 - 1.5): smart_resize (factor 28)
/// -> Pillow bicubic resize to (h', w') -> rescale + normalize -> the still image repeated over 2
/// frames -> 14 x 14 patches in 2 x 2 merge-window-major order with (c, t, py, px) features.
/// Equal, value for value, to the reference's pixel_values and image_grid_thw (tests/golden).
/// `threads` = 0 takes OpenMP's default.
[[nodiscard]] inline qwen2vl_pixels preprocess_qwen2vl(io::rgb_image const& image, resize_limits limits = {},
                                                      io::image_normalization const& norm = {}, int threads = 0) {
  TESSERA_CHECK(!image.empty(), "model::preprocess_qwen2vl: the image is empty");
  pack::patch_layout const layout = pack::qwen2vl_layout;
  qwen2vl_pixels out;
  out.resized = smart_resize(image.height(), image.width(), limits, layout.side_multiple());
  io::rgb_image const resized = io::resize_bicubic(image, out.resized.height, out.resized.width, threads);
  out.grid = pack::grid_for(layout, out.resized.height, out.resized.width);
  out.n_features = layout.n_features(3);
  out.pixel_values = host_buffer<float>(out.grid.n_patches() * out.n_features);
  // Normalization is an elementwise function of (sample, channel) and patchify a permutation:
  // read the resized bytes through the table instead of materializing the float image.
  auto const table = io::normalization_table(norm);
  std::uint8_t const* px = resized.data();
  index_t const w = resized.width();
  auto const src = [&](index_t c, index_t y, index_t x) {
    return table[static_cast<std::size_t>(c)][px[(y * w + x) * 3 + c]];
  };
  pack::detail::patchify_rows(src, 3, layout.patch, layout.temporal, layout.merge, true, true, out.grid.h,
                              out.grid.w, out.pixel_values.data(), out.n_features,
                              threads > 0 ? threads : backend::default_threads());
  return out;
}

}  // namespace tessera::model
