// SPDX-License-Identifier: Apache-2.0
// preprocessor_config.json of a Qwen2-VL / POINTS1.5 checkpoint: what Qwen2VLImageProcessor
// (transformers 4.46.3, which POINTS1.5 pins) and WePOINTS' Qwen2ImageProcessorForPOINTSV15 read
// from it: the smart_resize pixel bounds, the rescale factor, mean / std and the patch geometry.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::model {

/// The image processor settings of a checkpoint. Member initializers are Qwen2VLImageProcessor's
/// defaults, which the processor uses for every field its file leaves out.
struct qwen2vl_preprocessor_config {
  std::string source;        ///< the file read; empty when the checkpoint has none
  resize_limits limits;      ///< min_pixels / max_pixels (56 * 56, 28 * 28 * 1280)
  io::image_normalization normalization;  ///< rescale_factor, image_mean, image_std (OpenAI CLIP)
  index_t patch_size = 14;
  index_t merge_size = 2;
  index_t temporal_patch_size = 2;
  /// The fields that took the default because the file (or the whole file) was absent, in the
  /// order above; shown by loaders so nobody mistakes a default for the checkpoint's choice.
  std::vector<std::string> defaulted;
};

namespace detail {

inline std::array<double, 3> read_triple(io::config_object const& c, char const* key, std::array<double, 3> fallback,
                                         double lo, bool lo_open) {
  nlohmann::json const* v = c.find_non_null(key);
  if (v == nullptr) return fallback;
  if (!v->is_array() || v->size() != 3) c.fail(key, "must be a list of 3 numbers (one per RGB channel)");
  std::array<double, 3> out{};
  for (std::size_t i = 0; i < 3; ++i) {
    nlohmann::json const& e = (*v)[i];
    double const x = e.is_number() ? e.get<double>() : -1.0;
    if (!e.is_number() || !std::isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)) || x > 1e6)
      c.fail(key, "element ", i, " is ", e.dump(), "; it must be a finite number ", lo_open ? "> " : ">= ", lo);
    out[i] = x;
  }
  return out;
}

}  // namespace detail

/// Parses the text of a preprocessor_config.json. Fields, as transformers 4.46.3 reads them:
/// min_pixels / max_pixels at the top level (the values the processor uses; a file that has them
/// only under "size" as min_pixels / max_pixels or shortest_edge / longest_edge, as newer
/// transformers writes it, is read from there), rescale_factor, image_mean, image_std, patch_size,
/// merge_size, temporal_patch_size. tessera's processor implements the path POINTS1.5 runs:
/// do_resize, do_rescale, do_normalize and do_convert_rgb true, resample 3 (bicubic), patch 14,
/// merge 2, temporal 2; any other value is a tessera::error naming the field.
[[nodiscard]] inline qwen2vl_preprocessor_config parse_qwen2vl_preprocessor_config(std::string_view json,
                                                                                 std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  io::config_object const c(root, src, "");
  qwen2vl_preprocessor_config p;
  p.source = src;
  auto note_default = [&](char const* key) {
    if (c.find_non_null(key) == nullptr) p.defaulted.emplace_back(key);
  };
  constexpr index_t max_px = index_t{1} << 40;
  // min / max pixels: top level first (4.46.3), then the size dict.
  auto bound = [&](char const* key, char const* size_key, char const* edge_key, std::int64_t fallback) -> std::int64_t {
    if (c.find_non_null(key)) return c.integer(key, fallback, 0, max_px);
    if (nlohmann::json const* s = c.find_non_null("size"); s != nullptr && s->is_object()) {
      io::config_object const size(*s, src, "size.");
      if (size.find_non_null(size_key)) return size.integer(size_key, fallback, 0, max_px);
      if (size.find_non_null(edge_key)) return size.integer(edge_key, fallback, 0, max_px);
    }
    p.defaulted.emplace_back(key);
    return fallback;
  };
  p.limits.min_pixels = bound("min_pixels", "min_pixels", "shortest_edge", p.limits.min_pixels);
  p.limits.max_pixels = bound("max_pixels", "max_pixels", "longest_edge", p.limits.max_pixels);
  if (p.limits.max_pixels < 1 || p.limits.min_pixels > p.limits.max_pixels)
    c.fail("min_pixels", p.limits.min_pixels, " and max_pixels ", p.limits.max_pixels,
           " must satisfy 0 <= min_pixels <= max_pixels, max_pixels >= 1");
  note_default("rescale_factor");
  p.normalization.rescale_factor = c.number("rescale_factor", p.normalization.rescale_factor, 0.0, 1.0, true);
  note_default("image_mean");
  p.normalization.mean = detail::read_triple(c, "image_mean", p.normalization.mean, -1e6, false);
  note_default("image_std");
  p.normalization.stddev = detail::read_triple(c, "image_std", p.normalization.stddev, 0.0, true);
  for (auto* field : {&p.patch_size, &p.merge_size, &p.temporal_patch_size}) {
    char const* key = field == &p.patch_size ? "patch_size" : field == &p.merge_size ? "merge_size" : "temporal_patch_size";
    note_default(key);
    index_t const expected = *field;
    *field = c.integer(key, expected, 1, 4096);
    if (*field != expected)
      c.fail(key, "is ", *field, "; tessera's Qwen2-VL processor implements ", key, " ", expected,
             " (the value of every Qwen2-VL / POINTS1.5 checkpoint)");
  }
  for (char const* key : {"do_resize", "do_rescale", "do_normalize", "do_convert_rgb"})
    if (!c.boolean(key, true))
      c.fail(key, "is false; tessera's processor runs the POINTS1.5 path, where it is true");
  if (c.integer("resample", 3, 0, 5) != 3)
    c.fail("resample", "is ", c.integer("resample", 3, 0, 5), "; tessera resizes with Pillow's bicubic filter (3) only");
  return p;
}

/// Reads `path` (a preprocessor_config.json, or a directory that may hold one) and parses it.
/// A directory without the file gives the processor defaults, every field listed in `defaulted`.
[[nodiscard]] inline qwen2vl_preprocessor_config read_qwen2vl_preprocessor_config(std::filesystem::path const& path) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path, ec)) {
    file = path / "preprocessor_config.json";
    if (!std::filesystem::exists(file, ec)) {
      qwen2vl_preprocessor_config p;
      p.defaulted = {"min_pixels", "max_pixels", "rescale_factor", "image_mean", "image_std",
                     "patch_size", "merge_size", "temporal_patch_size"};
      return p;
    }
  }
  auto const [text, name] = io::read_config_text(file);
  return parse_qwen2vl_preprocessor_config(text, name);
}

}  // namespace tessera::model
