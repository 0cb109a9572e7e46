// SPDX-License-Identifier: Apache-2.0
// Images exactly as POINTS1.5 sees them (spec section 1): decoding PNG / JPEG / GIF / BMP / TGA to
// RGB8 as Pillow 11's Image.open(f).convert('RGB') does (JPEG through libjpeg-turbo, PNG through
// libpng), WePOINTS' smart_resize, Pillow's bicubic resize bit for bit, transformers' rescale +
// CLIP normalization in its float order, and the Qwen2VLImageProcessor pixel rows
// (pack::patchify) with image_grid_thw.
// How each format maps onto Pillow, and what is refused: docs/inputs.md and io/detail/image_*.hpp.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/detail/image_bmp.hpp>
#include <tessera/io/detail/image_common.hpp>
#include <tessera/io/detail/image_gif.hpp>
#include <tessera/io/detail/image_jpeg.hpp>
#include <tessera/io/detail/image_png.hpp>
#include <tessera/io/detail/image_resample_coeffs.hpp>
#include <tessera/io/detail/image_tga.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::io {

// ------------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------------

/// The formats decode_image reads.
enum class image_format { png, jpeg, gif, bmp, tga };

[[nodiscard]] constexpr std::string_view name_of(image_format f) noexcept {
  switch (f) {
    case image_format::png: return "PNG";
    case image_format::jpeg: return "JPEG";
    case image_format::gif: return "GIF";
    case image_format::bmp: return "BMP";
    case image_format::tga: return "TGA";
  }
  return "?";
}

/// What decoding may cost. Checked against the header before any pixel memory is allocated.
struct image_limits {
  /// Most pixels (width * height) accepted: by default Pillow's DecompressionBombError threshold,
  /// 2 * Image.MAX_IMAGE_PIXELS = 2 * 89,478,485 (Pillow refuses above it as well).
  std::int64_t max_pixels = 2 * std::int64_t{89'478'485};
  /// Longest side accepted (default: stb_image's own limit, 2^24).
  std::int64_t max_side = std::int64_t{1} << 24;
  /// Largest file load_image reads (decode_image ignores it).
  std::int64_t max_file_bytes = std::int64_t{1} << 30;
};

/// An owning 8-bit RGB image: height x width pixels, rows top to bottom, R G B interleaved (HWC).
class rgb_image {
 public:
  rgb_image() noexcept = default;
  /// height x width pixels, all zero.
  rgb_image(index_t height, index_t width) : height_(height), width_(width) {
    check_size(height, width);
    pixels_ = host_buffer<std::uint8_t>(height * width * 3, std::uint8_t{0});
  }
  /// Adopts `pixels` (height * width * 3 bytes, HWC).
  rgb_image(index_t height, index_t width, host_buffer<std::uint8_t> pixels)
      : height_(height), width_(width), pixels_(std::move(pixels)) {
    check_size(height, width);
    TESSERA_CHECK(pixels_.size() == height * width * 3, "io::rgb_image: ", height, " x ", width, " pixels need ",
                  height * width * 3, " bytes, got ", pixels_.size());
  }
  rgb_image(rgb_image&&) noexcept = default;
  rgb_image& operator=(rgb_image&&) noexcept = default;

  [[nodiscard]] index_t height() const noexcept { return height_; }
  [[nodiscard]] index_t width() const noexcept { return width_; }
  [[nodiscard]] bool empty() const noexcept { return height_ == 0 || width_ == 0; }
  [[nodiscard]] std::uint8_t* data() noexcept { return pixels_.data(); }
  [[nodiscard]] std::uint8_t const* data() const noexcept { return pixels_.data(); }
  /// All height * width * 3 bytes.
  [[nodiscard]] std::span<std::uint8_t> pixels() noexcept { return pixels_.span(); }
  [[nodiscard]] std::span<std::uint8_t const> pixels() const noexcept { return pixels_.span(); }
  /// [height, width, 3] view.
  [[nodiscard]] tensor_view<std::uint8_t, 3> view() noexcept { return {pixels_.data(), {height_, width_, 3}}; }
  [[nodiscard]] tensor_view<std::uint8_t const, 3> view() const noexcept {
    return {pixels_.data(), {height_, width_, 3}};
  }
  /// A deep copy (the type is move-only so that copies are visible).
  [[nodiscard]] rgb_image clone() const {
    rgb_image c(height_, width_);
    if (!pixels_.empty()) std::memcpy(c.data(), data(), static_cast<std::size_t>(pixels_.size()));
    return c;
  }

 private:
  static void check_size(index_t height, index_t width) {
    TESSERA_CHECK(height >= 0 && width >= 0 && height <= (index_t{1} << 31) && width <= (index_t{1} << 31),
                  "io::rgb_image: size ", height, " x ", width, " is negative or absurd");
  }
  index_t height_ = 0;
  index_t width_ = 0;
  host_buffer<std::uint8_t> pixels_;
};

namespace detail {

/// Identifies the format from the first bytes; names well-known unsupported formats.
[[nodiscard]] inline image_format sniff_format(image_input const& in) {
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  auto const starts = [&](char const* magic, std::size_t len) { return n >= len && std::memcmp(d, magic, len) == 0; };
  if (n >= 8 && std::memcmp(d, png_signature.data(), 8) == 0) return image_format::png;
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return image_format::jpeg;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return image_format::gif;
  if (starts("BM", 2)) return image_format::bmp;
  char const* other = nullptr;
  if (starts("RIFF", 4) && n >= 12 && std::memcmp(d + 8, "WEBP", 4) == 0) other = "WebP";
  else if (starts("II*\0", 4) || starts("MM\0*", 4)) other = "TIFF";
  else if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) other = "HEIF/AVIF (ISO base media)";
  else if (starts("\0\0\0\x0CjP  ", 8) || starts("\xFF\x4F\xFF\x51", 4)) other = "JPEG 2000";
  else if (starts("8BPS", 4)) other = "PSD";
  else if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) other = "Radiance HDR";
  else if (starts("qoif", 4)) other = "QOI";
  else if (starts("\0\0\1\0", 4)) other = "ICO";
  else if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') other = "PNM";
  TESSERA_CHECK(other == nullptr, *in.label, ": ", other,
                " images are not supported (tessera reads PNG, JPEG, GIF, BMP and TGA)");
  TESSERA_CHECK(looks_like_tga(d, n), *in.label, ": unknown image format (", n,
                " bytes; tessera reads PNG, JPEG, GIF, BMP and TGA)");
  return image_format::tga;
}

[[nodiscard]] inline image_budget budget_of(image_limits const& limits) {
  TESSERA_CHECK(limits.max_pixels > 0 && limits.max_side > 0 && limits.max_file_bytes >= 0,
                "io: image_limits must be positive (max_pixels ", limits.max_pixels, ", max_side ", limits.max_side,
                ", max_file_bytes ", limits.max_file_bytes, ")");
  return {static_cast<std::uint64_t>(limits.max_pixels), static_cast<std::uint64_t>(limits.max_side)};
}

[[nodiscard]] inline rgb_image decode_labeled(std::span<std::byte const> bytes, image_limits const& limits,
                                              std::string const& label) {
  image_input in;
  in.data = reinterpret_cast<std::uint8_t const*>(bytes.data());
  in.size = bytes.size();
  in.label = &label;
  in.budget = budget_of(limits);
  raw_rgb px;
  switch (sniff_format(in)) {
    case image_format::png: px = decode_png(in); break;
    case image_format::jpeg: px = decode_jpeg(in); break;
    case image_format::gif: px = decode_gif(in); break;
    case image_format::bmp: px = decode_bmp(in); break;
    case image_format::tga: px = decode_tga(in); break;
  }
  return rgb_image(px.height, px.width, std::move(px.pixels));
}

}  // namespace detail

/// Decodes a PNG, JPEG, GIF (first frame), BMP or TGA image held in memory to RGB8, with the
/// pixels Pillow 11 gives for Image.open(f).convert('RGB'), bit for bit: gray replicated, alpha
/// dropped (never composited), palettes looked up, 16-bit PNG as Pillow reduces it, CMYK / YCCK
/// JPEG as Pillow converts it. EXIF orientation and colour profiles are ignored, as Image.open
/// ignores them.
/// Who decodes what (docs/inputs.md): JPEG libjpeg-turbo, with Pillow's settings; PNG libpng; GIF
/// stb_image (its LZW decoding only, behind tessera's structure checks); BMP and TGA tessera itself.
/// Safe on arbitrary bytes: the format is identified from magic numbers (TGA, which has none, from
/// a valid header), the declared size is checked against `limits` before anything is allocated for
/// pixels, and every problem (corrupt, truncated, unsupported) is a tessera::error naming the input
/// and the reason, the decoding library's reason included. Stricter than Pillow where Pillow would
/// return damaged pixels silently (corrupt JPEG entropy-coded data). Thread-safe.
[[nodiscard]] inline rgb_image decode_image(std::span<std::byte const> bytes, image_limits const& limits = {}) {
  std::string const label = "io::decode_image: image in memory (" + std::to_string(bytes.size()) + " bytes)";
  return detail::decode_labeled(bytes, limits, label);
}

/// Reads the file at `path` (a regular file of at most limits.max_file_bytes, read with its size
/// checked first) and decodes it as decode_image does; errors name the file.
[[nodiscard]] inline rgb_image load_image(std::filesystem::path const& path, image_limits const& limits = {}) {
  (void)detail::budget_of(limits);
  std::vector<std::byte> const bytes =
      detail::read_file_bounded(path, static_cast<std::uint64_t>(limits.max_file_bytes));
  return detail::decode_labeled(bytes, limits, "io::load_image: '" + path.string() + "'");
}

// ------------------------------------------------------------------------------------------------
// Pillow bicubic resize
// ------------------------------------------------------------------------------------------------

namespace detail {
template <class Backend>
struct resize_bicubic_impl {  // specialized in detail/image_resample_ref.hpp, detail/image_resample_cpu.hpp
  static_assert(always_false<Backend>,
                "io::resize_bicubic has implementations for backend::reference and backend::cpu only");
};
}  // namespace detail

/// Pillow 11's Image.resize((out_w, out_h), Image.BICUBIC) on an RGB image, byte for byte
/// (libImaging/Resample.c: Keys cubic a = -0.5, support widened by the scale when downsampling,
/// 22-bit fixed-point weights, horizontal pass over the rows the vertical pass needs, then the
/// vertical pass, clip to 0..255 after each; a side that does not change skips its pass).
///   in:  [in_h, in_w, 3] uint8; pixels contiguous within a row (strides [s, 3, 1], s >= 3 * in_w).
///   out: [out_h, out_w, 3] uint8, same layout, not overlapping `in`.
/// Sizes up to 2^24 per side. Workspace: the exec_ctx scratch arena (the intermediate image, and for
/// the cpu backend one int32 tile of 8 * in_w * 3 and one row of out_w * 3 accumulators per thread).
/// Deterministic and independent of the thread count (integer arithmetic).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void resize_bicubic(tensor_view<std::uint8_t const, 3> in, tensor_view<std::uint8_t, 3> out, exec_ctx<Backend>& ctx) {
  auto const pixel_rows = [](auto const& v) {
    return v.extent(2) == 3 && v.stride(2) == 1 && v.stride(1) == 3 && v.stride(0) >= 3 * v.extent(1);
  };
  TESSERA_CHECK(pixel_rows(in) && pixel_rows(out), "io::resize_bicubic: in and out must be [h, w, 3] with strides [>= 3w, 3, 1]");
  constexpr index_t max_side = index_t{1} << 24;
  TESSERA_CHECK(in.extent(0) >= 1 && in.extent(1) >= 1 && out.extent(0) >= 1 && out.extent(1) >= 1 &&
                    in.extent(0) <= max_side && in.extent(1) <= max_side && out.extent(0) <= max_side &&
                    out.extent(1) <= max_side,
                "io::resize_bicubic: ", in.extent(0), " x ", in.extent(1), " -> ", out.extent(0), " x ", out.extent(1),
                ": sides must be in [1, 2^24]");
  auto const* ib = in.data();
  auto const* ie = ib + (in.extent(0) - 1) * in.stride(0) + 3 * in.extent(1);
  auto const* ob = out.data();
  auto const* oe = ob + (out.extent(0) - 1) * out.stride(0) + 3 * out.extent(1);
  TESSERA_CHECK(oe <= ib || ie <= ob, "io::resize_bicubic: out overlaps in");
  detail::resize_bicubic_impl<Backend>::run(in, out, ctx);
}

/// resize_bicubic into a new image, cpu backend with `threads` threads (0 = OpenMP's default).
[[nodiscard]] inline rgb_image resize_bicubic(rgb_image const& image, index_t out_h, index_t out_w, int threads = 0) {
  TESSERA_CHECK(!image.empty(), "io::resize_bicubic: the image is empty");
  TESSERA_CHECK(out_h >= 1 && out_w >= 1 && out_h <= (index_t{1} << 24) && out_w <= (index_t{1} << 24),
                "io::resize_bicubic: output size ", out_h, " x ", out_w, " must have sides in [1, 2^24]");
  rgb_image out(out_h, out_w);
  exec_ctx<backend::cpu> ctx(threads);
  resize_bicubic<backend::cpu>(image.view(), out.view(), ctx);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Rescale + normalize
// ------------------------------------------------------------------------------------------------

/// Rescale and per-channel normalization of Qwen2VLImageProcessor (defaults: OPENAI_CLIP_MEAN / STD
/// and rescale_factor 1/255, as POINTS1.5 uses them).
struct image_normalization {
  std::array<double, 3> mean = {0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> stddev = {0.26862954, 0.26130258, 0.27577711};
  double rescale_factor = 1.0 / 255.0;  // 0.00392156862745098, Python's 1 / 255
};

/// The 3 x 256 normalized values: table[c][v] for uint8 sample v in channel c, computed in the
/// reference's float order (transformers 4.46 image_transforms):
///   rescale:   x = float32(float64(v) * rescale_factor)
///   normalize: float32 arithmetic, (x - float32(mean[c])) / float32(stddev[c]).
/// Every pixel_values entry of the processor is one of these values (spec section 1.3).
[[nodiscard]] inline std::array<std::array<float, 256>, 3> normalization_table(image_normalization const& n = {}) {
  std::array<std::array<float, 256>, 3> t{};
  for (std::size_t c = 0; c < 3; ++c) {
    float const mean = static_cast<float>(n.mean[c]), sd = static_cast<float>(n.stddev[c]);
    TESSERA_CHECK(std::isfinite(mean) && std::isfinite(sd) && sd != 0.0f && std::isfinite(n.rescale_factor),
                  "io::normalization_table: channel ", c, " has mean ", n.mean[c], ", stddev ", n.stddev[c],
                  ", rescale ", n.rescale_factor, " (need finite values and a non-zero stddev)");
    for (int v = 0; v < 256; ++v) {
      auto const x = static_cast<float>(static_cast<double>(v) * n.rescale_factor);
      float const d = x - mean;  // two separate float32 operations, as numpy does them
      t[c][static_cast<std::size_t>(v)] = d / sd;
    }
  }
  return t;
}

/// Rescale + normalize an RGB8 image into a channels-first float image.
///   in:  [h, w, 3] uint8 (pixels contiguous within a row); out: [3, h, w] float32, last dimension contiguous.
inline void normalize_image(tensor_view<std::uint8_t const, 3> in, tensor_view<float, 3> out,
                            image_normalization const& n = {}) {
  TESSERA_CHECK(in.extent(2) == 3 && in.stride(2) == 1 && in.stride(1) == 3, "io::normalize_image: in must be [h, w, 3] with pixels contiguous in a row");
  TESSERA_CHECK(out.extent(0) == 3 && out.extent(1) == in.extent(0) && out.extent(2) == in.extent(1) &&
                    out.is_row_contiguous(),
                "io::normalize_image: out must be [3, ", in.extent(0), ", ", in.extent(1),
                "] with a contiguous last dimension");
  auto const table = normalization_table(n);
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < in.extent(0); ++y) {
      std::uint8_t const* s = in.data() + y * in.stride(0) + c;
      float* o = out.data() + c * out.stride(0) + y * out.stride(1);
      auto const& tc = table[static_cast<std::size_t>(c)];
      for (index_t x = 0; x < in.extent(1); ++x) o[x] = tc[s[3 * x]];
    }
}

}  // namespace tessera::io

#include <tessera/io/detail/image_resample_cpu.hpp>
#include <tessera/io/detail/image_resample_ref.hpp>
