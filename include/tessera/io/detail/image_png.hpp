// SPDX-License-Identifier: Apache-2.0
// PNG for io::decode_image through libpng (Debian's libpng16), converted to RGB8 exactly as
// Pillow 11's Image.open(f).convert('RGB') does:
//   - gray of 1, 2, 4 bits is scaled to 8 bits (x 255, 85, 17, as Pillow's "1", "L;2", "L;4");
//   - 16-bit gray opens as Pillow mode "I;16", and I;16 -> RGB clamps (v > 255 -> 255); every other
//     16-bit layout keeps the high byte of each sample (rawmodes "RGB;16B", "LA;16B", "RGBA;16B");
//   - palette images are looked up in PLTE; an index past its end gives black (Pillow's palette
//     is zero-filled), so libpng's check for such indices is turned off;
//   - alpha (tRNS, LA, RGBA) is dropped, never composited; gAMA, iCCP and the like are ignored.
// libpng checks the structure: chunk CRCs (ancillary chunks too, as Pillow does), IHDR, chunk
// order, the zlib stream and its Adler-32, unknown critical chunks (Apple's CgBI among them), a
// missing IEND. Its warnings are dropped (libpng prints them by default). Errors leave libpng with
// longjmp, as for JPEG (image_jpeg.hpp, guarded_call in image_common.hpp).
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>

#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include <png.h>

namespace tessera::io::detail {

inline constexpr std::array<std::uint8_t, 8> png_signature = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

/// Largest ancillary chunk libpng may allocate (text, ICC profiles, ...).
inline constexpr png_alloc_size_t png_max_chunk_bytes = png_alloc_size_t{8} << 20;

/// One decode's libpng state; the callbacks find it through libpng's error and io pointers.
struct png_session {
  png_structp png = nullptr;
  png_infop info = nullptr;
  image_input const* in = nullptr;
  std::size_t pos = 0;  // next byte to hand to libpng
  std::jmp_buf jump{};
  char reason[256] = {};
  bool truncated = false;
};

extern "C" {
inline void tessera_png_error(png_structp png, png_const_charp message) {
  auto* s = static_cast<png_session*>(png_get_error_ptr(png));
  std::snprintf(s->reason, sizeof s->reason, "%s", message != nullptr ? message : "no reason given");
  std::longjmp(s->jump, 1);
}
inline void tessera_png_warning(png_structp, png_const_charp) {}
inline void tessera_png_read(png_structp png, png_bytep out, std::size_t n) {
  auto* s = static_cast<png_session*>(png_get_io_ptr(png));
  if (n > s->in->size - s->pos) {
    s->truncated = true;
    png_error(png, "the file ends before the data libpng needs");
  }
  std::memcpy(out, s->in->data + s->pos, n);
  s->pos += n;
}
}

/// The size IHDR declares, read from the first chunk before libpng runs, so that the budget is
/// checked from the header alone. Deflate expands at most 1032:1, so a file of n bytes cannot hold
/// more than about 1032 n bytes of image data: a header claiming more is refused here too.
inline void check_png_header(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  TESSERA_CHECK(in.size >= 8 + 8 + 13 + 4 && std::memcmp(d, png_signature.data(), 8) == 0 &&
                    std::memcmp(d + 12, "IHDR", 4) == 0 && u32be(d + 8) == 13,
                label, ": not a PNG file (no signature and IHDR chunk in the first 33 bytes)");
  std::uint32_t const width = u32be(d + 16), height = u32be(d + 20);
  TESSERA_CHECK(width <= 0x7FFFFFFFu && height <= 0x7FFFFFFFu, label, ": corrupt PNG: IHDR size ", width, " x ",
                height, " exceeds 2^31 - 1");
  check_budget(in, "PNG", width, height);
  std::uint64_t const depth = d[24], color = d[25];
  std::uint64_t const channels = color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 1;  // libpng checks the rest
  std::uint64_t const need = std::uint64_t{height} * (1 + (std::uint64_t{width} * channels * depth + 7) / 8);
  TESSERA_CHECK(need <= 1032 * static_cast<std::uint64_t>(in.size) + 1032, label, ": PNG truncated: ", in.size,
                " bytes cannot inflate to the ", need, " bytes of a ", width, " x ", height, " image");
}

/// PNG -> RGB8 with Pillow's conversion rules (see the top of this file).
[[nodiscard]] inline raw_rgb decode_png(image_input const& in) {
  std::string const& label = *in.label;
  check_png_header(in);
  png_session s;
  s.in = &in;
  struct destroy_guard {
    png_session& s;
    ~destroy_guard() {
      if (s.png != nullptr) png_destroy_read_struct(&s.png, s.info != nullptr ? &s.info : nullptr, nullptr);
    }
  } const guard{s};
  auto const fail = [&](char const* when) {
    if (s.truncated) TESSERA_FAIL(label, ": PNG truncated ", when, " (libpng: ", s.reason, ")");
    TESSERA_FAIL(label, ": corrupt PNG ", when, " (libpng: ", s.reason, ")");
  };

  // 1. The chunks up to the image data.
  auto const side = static_cast<png_uint_32>(std::min<std::uint64_t>(in.budget.max_side, 0x7FFFFFFFu));
  if (!guarded_call(s.jump, [&s, side] {
        s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, tessera_png_error, tessera_png_warning);
        if (s.png == nullptr) return;
        s.info = png_create_info_struct(s.png);
        if (s.info == nullptr) return;
        png_set_read_fn(s.png, &s, tessera_png_read);
        png_set_user_limits(s.png, side, side);
        png_set_chunk_malloc_max(s.png, png_max_chunk_bytes);
        png_set_crc_action(s.png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
        png_set_check_for_invalid_index(s.png, 0);
        png_read_info(s.png, s.info);
      }))
    fail("(reading the chunks before the image data)");
  TESSERA_CHECK(s.png != nullptr && s.info != nullptr, label, ": libpng could not allocate its state");
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0;
  png_get_IHDR(s.png, s.info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  check_budget(in, "PNG", width, height);
  auto const h = static_cast<index_t>(height), w = static_cast<index_t>(width);
  std::size_t const channels = png_get_channels(s.png, s.info);

  // 2. The image data, then the chunks up to IEND.
  bool const direct = color == PNG_COLOR_TYPE_RGB && depth == 8;  // libpng's rows are the RGB8 rows
  raw_rgb out = make_rgb(h, w);
  // After the transforms below every sample takes one byte (two at 16 bits).
  std::size_t const stride = static_cast<std::size_t>(w) * channels * (depth == 16 ? 2 : 1);
  host_buffer<std::uint8_t> raw(direct ? 0 : static_cast<index_t>(stride) * h);
  std::uint8_t* const target = direct ? out.pixels.data() : raw.data();
  int passes = 1;  // 7 for Adam7, each over every row
  if (!guarded_call(s.jump, [&s, &passes, color, depth] {
        if (depth < 8 && color == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(s.png);
        if (depth < 8 && color == PNG_COLOR_TYPE_PALETTE) png_set_packing(s.png);  // one index a byte
        passes = png_set_interlace_handling(s.png);
        png_read_update_info(s.png, s.info);
      }))
    fail("(setting up the decoder)");
  TESSERA_CHECK(png_get_rowbytes(s.png, s.info) == stride, label, ": libpng's rows are ",
                png_get_rowbytes(s.png, s.info), " bytes, tessera expected ", stride);  // before any row is written
  png_uint_32 const n_rows = height;
  if (!guarded_call(s.jump, [&s, passes, target, stride, n_rows] {
        for (int pass = 0; pass < passes; ++pass)
          for (png_uint_32 y = 0; y < n_rows; ++y) png_read_row(s.png, target + y * stride, nullptr);
        png_read_end(s.png, nullptr);
      }))
    fail("(decoding the image data)");
  if (direct) return out;

  std::uint8_t* dst = out.pixels.data();
  auto const n = static_cast<std::size_t>(w);
  for (std::size_t y = 0; y < n_rows; ++y) {
    std::uint8_t const* src = target + y * stride;
    std::uint8_t* o = dst + y * n * 3;
    auto const put = [&](std::size_t x, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
      o[3 * x] = r;
      o[3 * x + 1] = g;
      o[3 * x + 2] = b;
    };
    switch (color) {
      case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) {
          for (std::size_t x = 0; x < n; ++x) {
            unsigned const v = (unsigned{src[2 * x]} << 8) | src[2 * x + 1];
            auto const g = static_cast<std::uint8_t>(v > 255 ? 255 : v);  // I;16 -> RGB
            put(x, g, g, g);
          }
        } else {
          for (std::size_t x = 0; x < n; ++x) put(x, src[x], src[x], src[x]);
        }
        break;
      case PNG_COLOR_TYPE_GRAY_ALPHA: {
        std::size_t const step = depth == 16 ? 4 : 2;
        for (std::size_t x = 0; x < n; ++x) put(x, src[step * x], src[step * x], src[step * x]);
        break;
      }
      case PNG_COLOR_TYPE_RGB:  // 16-bit: the high bytes
        for (std::size_t x = 0; x < n; ++x) put(x, src[6 * x], src[6 * x + 2], src[6 * x + 4]);
        break;
      case PNG_COLOR_TYPE_RGB_ALPHA: {
        std::size_t const step = depth == 16 ? 8 : 4, b = depth == 16 ? 2 : 1;
        for (std::size_t x = 0; x < n; ++x) put(x, src[step * x], src[step * x + b], src[step * x + 2 * b]);
        break;
      }
      default:
        break;
    }
  }
  if (color == PNG_COLOR_TYPE_PALETTE) {
    std::array<std::uint8_t, 768> lut{};  // Pillow's palette: the PLTE entries, then zeros
    png_colorp plte = nullptr;
    int entries = 0;
    if (png_get_PLTE(s.png, s.info, &plte, &entries) != 0)
      for (int i = 0; i < entries && i < 256; ++i) {
        lut[static_cast<std::size_t>(3 * i)] = plte[i].red;
        lut[static_cast<std::size_t>(3 * i + 1)] = plte[i].green;
        lut[static_cast<std::size_t>(3 * i + 2)] = plte[i].blue;
      }
    for (std::size_t y = 0; y < n_rows; ++y) {
      std::uint8_t const* src = target + y * stride;
      std::uint8_t* o = dst + y * n * 3;
      for (std::size_t x = 0; x < n; ++x) std::memcpy(o + 3 * x, lut.data() + 3 * std::size_t{src[x]}, 3);
    }
  }
  return out;
}

}  // namespace tessera::io::detail
