// SPDX-License-Identifier: Apache-2.0
// BMP for io::decode_image, decoded by tessera itself with the rules of Pillow 11's
// BmpImagePlugin + convert('RGB'). Uncompressed BMP is a plain array, and stb_image's BMP reader
// cannot give Pillow's result: it scales 16-bit samples differently (bit replication instead of
// v * 255 / 31), reads uninitialized palette entries for indices past the palette, rejects the
// 52- and 64-byte headers, and returns zeros instead of an error for a file cut short.
//
// Supported as Pillow reads them: headers of 12, 40, 52, 56, 64, 108, 124 bytes; 1/4/8-bit
// palettes (black past the palette's end; a palette that is the identity gray ramp makes Pillow use
// the index as the gray value), 16-bit 5-5-5 and 5-6-5 (v * 255 / 31, v * 255 / 63), 24-bit, 32-bit
// with Pillow's list of BITFIELDS masks; bottom-up and top-down rows; alpha dropped. Refused:
// RLE4/RLE8/JPEG/PNG compression, other bit depths or masks (Pillow refuses those too), palettes of
// more than 256 entries (Pillow raises on them), and the two palette/depth combinations that
// Pillow misreads (a black/white 2-entry palette or an identity gray palette on a depth other than
// 1 or 8 bits).
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera::io::detail {

/// BMP -> RGB8 (see the top of this file).
[[nodiscard]] inline raw_rgb decode_bmp(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(n >= 18 && d[0] == 'B' && d[1] == 'M', label, ": not a BMP file (no 'BM' header)");
  std::uint32_t const data_offset = u32le(d + 10);
  std::uint32_t const header_size = u32le(d + 14);
  TESSERA_CHECK(header_size == 12 || header_size == 40 || header_size == 52 || header_size == 56 ||
                    header_size == 64 || header_size == 108 || header_size == 124,
                label, ": unsupported BMP header type (", header_size, " bytes)");
  TESSERA_CHECK(n - 14 >= header_size, label, ": BMP truncated inside its ", header_size, "-byte header");
  std::uint8_t const* hd = d + 18;  // the header after its size field
  std::uint64_t width = 0, height = 0;
  bool top_down = false;
  std::uint32_t bits = 0, compression = 0, colors = 0;
  std::size_t palette_entry = 4;  // bytes per palette entry: BGRX, or BGR for the 12-byte header
  std::size_t pos = 14 + header_size;
  std::array<std::uint32_t, 4> masks{};  // r, g, b, a
  if (header_size == 12) {
    width = u16le(hd);
    height = u16le(hd + 2);
    bits = u16le(hd + 6);
    palette_entry = 3;
  } else {
    width = u32le(hd);  // Pillow reads both as unsigned; a height whose top byte is 0xFF is negative
    top_down = hd[7] == 0xFF;
    height = top_down ? (std::uint64_t{1} << 32) - u32le(hd + 4) : u32le(hd + 4);
    bits = u16le(hd + 10);
    compression = u32le(hd + 12);
    colors = u32le(hd + 28);
    if (compression == 3) {  // BITFIELDS
      if (header_size >= 52) {
        for (std::size_t i = 0; i < (header_size >= 56 ? 4u : 3u); ++i) masks[i] = u32le(hd + 36 + 4 * i);
      } else {  // 40-byte header: three masks follow it
        TESSERA_CHECK(n - pos >= 12, label, ": BMP truncated inside its colour masks");
        for (std::size_t i = 0; i < 3; ++i) masks[i] = u32le(d + pos + 4 * i);
        pos += 12;
      }
    }
  }
  TESSERA_CHECK(bits == 1 || bits == 4 || bits == 8 || bits == 16 || bits == 24 || bits == 32, label,
                ": unsupported BMP pixel depth (", bits, " bits)");
  TESSERA_CHECK(compression == 0 || compression == 3, label, ": BMP compression ", compression,
                compression == 1 || compression == 2 ? " (RLE)" : "", " is not supported (uncompressed and BITFIELDS only)");
  TESSERA_CHECK(compression == 0 || bits >= 16, label, ": unsupported BMP bitfields layout for ", bits, " bits");
  check_budget(in, "BMP", width, height);

  // Where R, G, B sit in a 16/24/32-bit pixel.
  enum class layout { palette, gray, bilevel, bgr15, bgr16, bytes } kind = layout::bytes;
  std::array<int, 3> byte_of{2, 1, 0};  // byte index of R, G, B for layout::bytes
  if (bits <= 8) {
    kind = layout::palette;
  } else if (bits == 16) {
    kind = layout::bgr15;
    if (compression == 3) {
      bool const m565 = masks[0] == 0xF800 && masks[1] == 0x7E0 && masks[2] == 0x1F;
      bool const m555 = masks[0] == 0x7C00 && masks[1] == 0x3E0 && masks[2] == 0x1F;
      TESSERA_CHECK(m565 || m555, label, ": unsupported BMP bitfields layout for 16 bits");
      kind = m565 ? layout::bgr16 : layout::bgr15;
    }
  } else if (bits == 24) {
    TESSERA_CHECK(compression == 0 || (masks[0] == 0xFF0000 && masks[1] == 0xFF00 && masks[2] == 0xFF), label,
                  ": unsupported BMP bitfields layout for 24 bits");
  } else if (compression == 3) {  // 32 bits: Pillow's SUPPORTED list, each a byte permutation
    static constexpr std::array<std::array<std::uint32_t, 4>, 8> supported = {{
        {0xFF0000, 0xFF00, 0xFF, 0x0},
        {0xFF000000, 0xFF0000, 0xFF00, 0x0},
        {0xFF000000, 0xFF00, 0xFF, 0x0},
        {0xFF000000, 0xFF0000, 0xFF00, 0xFF},
        {0xFF, 0xFF00, 0xFF0000, 0xFF000000},
        {0xFF0000, 0xFF00, 0xFF, 0xFF000000},
        {0xFF000000, 0xFF00, 0xFF, 0xFF0000},
        {0x0, 0x0, 0x0, 0x0},
    }};
    bool ok = false;
    for (auto const& s : supported) ok = ok || s == masks;
    TESSERA_CHECK(ok, label, ": unsupported BMP bitfields layout for 32 bits");
    if (masks[0] != 0) {  // all-zero masks read as BGRA, the default below
      auto const byte_index = [](std::uint32_t m) {
        int b = 0;
        while ((m >> (8 * b)) != 0xFFu) ++b;
        return b;
      };
      byte_of = {byte_index(masks[0]), byte_index(masks[1]), byte_index(masks[2])};
    }
  }

  // Palette (1/4/8 bits): `colors` entries right after the header (2^bits when the header says 0).
  std::array<std::uint8_t, 768> lut{};
  std::size_t palette_skip = 0;
  if (kind == layout::palette) {
    std::uint64_t const entries = colors != 0 ? colors : (std::uint64_t{1} << bits);
    TESSERA_CHECK(entries <= 256, label, ": BMP palette of ", entries,
                  " entries (Pillow accepts at most 256 for an image of indices)");
    // Pillow reads as much of the palette as the file holds; missing entries stay black.
    std::size_t const have = pos < n ? std::min<std::size_t>(n - pos, entries * palette_entry) / palette_entry : 0;
    bool gray = true;  // Pillow: every entry i is (v, v, v) with v = i (or 0, 255 for 2 entries)
    for (std::size_t i = 0; i < entries; ++i) {
      auto const want = static_cast<std::uint8_t>(entries == 2 ? (i == 0 ? 0 : 255) : i);
      bool const present = i < have;
      std::uint8_t const* e = d + pos + i * palette_entry;
      if (!present || e[0] != want || e[1] != want || e[2] != want) gray = false;
      if (present) {
        lut[3 * i + 0] = e[2];
        lut[3 * i + 1] = e[1];
        lut[3 * i + 2] = e[0];
      }
    }
    if (gray) {
      kind = entries == 2 ? layout::bilevel : layout::gray;
      TESSERA_CHECK(entries == 2 ? bits == 1 : bits == 8, label, ": BMP with a ", bits, "-bit depth and a ",
                    entries == 2 ? "black/white 2-entry" : "identity gray", " palette (Pillow misreads such files)");
    }
    pos += have * palette_entry;
    // Pillow's repair of files whose data offset points at the palette instead of past it.
    if (data_offset == 14 + header_size) palette_skip = 4 * static_cast<std::size_t>(entries);
  }
  // Pixel data: at the header's data offset, or where the palette ended when that offset is 0.
  std::size_t const start = data_offset != 0 ? data_offset + palette_skip : pos;
  std::uint64_t const stride = ((width * bits + 31) >> 3) & ~std::uint64_t{3};
  TESSERA_CHECK(start <= n && (n - start) / stride >= height, label, ": BMP truncated: ", height, " rows of ", stride,
                " bytes from offset ", start, " need ", start + stride * height, " bytes, the file has ", n);

  auto const h = static_cast<index_t>(height), w = static_cast<index_t>(width);
  raw_rgb out = make_rgb(h, w);
  for (index_t y = 0; y < h; ++y) {
    std::uint8_t const* row = d + start + static_cast<std::size_t>(stride) * static_cast<std::size_t>(top_down ? y : h - 1 - y);
    std::uint8_t* o = out.pixels.data() + 3 * y * w;
    for (index_t x = 0; x < w; ++x, o += 3) {
      auto const xs = static_cast<std::size_t>(x);
      switch (kind) {
        case layout::palette: {
          unsigned idx = 0;
          if (bits == 8) idx = row[xs];
          else if (bits == 4) idx = (row[xs / 2] >> (xs % 2 == 0 ? 4 : 0)) & 0x0Fu;
          else idx = (row[xs / 8] >> (7 - xs % 8)) & 1u;
          o[0] = lut[3 * idx + 0];
          o[1] = lut[3 * idx + 1];
          o[2] = lut[3 * idx + 2];
          break;
        }
        case layout::gray: o[0] = o[1] = o[2] = row[xs]; break;
        case layout::bilevel: o[0] = o[1] = o[2] = ((row[xs / 8] >> (7 - xs % 8)) & 1u) ? 255 : 0; break;
        case layout::bgr15:
        case layout::bgr16: {
          std::uint32_t const v = u16le(row + 2 * xs);
          if (kind == layout::bgr15) {
            o[0] = static_cast<std::uint8_t>(((v >> 10) & 31u) * 255u / 31u);
            o[1] = static_cast<std::uint8_t>(((v >> 5) & 31u) * 255u / 31u);
          } else {
            o[0] = static_cast<std::uint8_t>(((v >> 11) & 31u) * 255u / 31u);
            o[1] = static_cast<std::uint8_t>(((v >> 5) & 63u) * 255u / 63u);
          }
          o[2] = static_cast<std::uint8_t>((v & 31u) * 255u / 31u);
          break;
        }
        case layout::bytes: {
          std::uint8_t const* p = row + xs * (bits / 8);
          o[0] = p[byte_of[0]];
          o[1] = p[byte_of[1]];
          o[2] = p[byte_of[2]];
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace tessera::io::detail
