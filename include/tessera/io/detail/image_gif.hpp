// SPDX-License-Identifier: Apache-2.0
// GIF (first frame) for io::decode_image, converted to RGB8 as Pillow 11 does for
// Image.open(f).convert('RGB'): Pillow keeps frame 0 as palette indices on a canvas the size of the
// logical screen, pre-filled with the frame's transparent index (or 0 without transparency), and
// convert('RGB') looks every index up in the frame's colour table (local, else global), with black
// past its end. A colour table that is the identity gray ramp, or no table at all, makes Pillow
// open the frame as mode "L": the index itself is the gray value.
//
// stb_image composites instead (transparent pixels keep its zero background, pixels outside the
// frame get the background colour), so tessera lets stb do only the LZW decoding and
// de-interlacing: it hands stb a copy of the frame with an identity gray colour table and no
// transparency, reads the indices back, and applies Pillow's rules itself. Refused: a first frame
// reaching outside the logical screen (Pillow would enlarge the image; stb refuses), LZW code sizes
// above 8, a file without an image.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>
#include <tessera/io/detail/image_stb.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tessera::io::detail {

/// What the block walk learned about a GIF file and its first image.
struct gif_layout {
  std::uint32_t screen_w = 0, screen_h = 0;
  std::uint32_t x = 0, y = 0, w = 0, h = 0;  // the first frame's rectangle on the screen
  bool interlaced = false;
  std::array<std::uint8_t, 768> table{};     // the frame's colour table (local, else global)
  int table_entries = 0;                     // 0: no colour table at all
  int transparency = -1;                     // transparent index from a graphic control extension
  std::size_t lzw_begin = 0, lzw_end = 0;    // LZW code size byte .. end of the block terminator
};

/// Skips a chain of data sub-blocks starting at `pos` (each: length byte, data; a 0 ends it).
/// Returns the offset after the terminator. `first` receives the first sub-block, if any.
inline std::size_t gif_skip_sub_blocks(image_input const& in, std::size_t pos, std::uint8_t const** first = nullptr,
                                       std::size_t* first_len = nullptr) {
  bool is_first = true;
  for (;;) {
    TESSERA_CHECK(pos < in.size, *in.label, ": GIF truncated inside a data block at offset ", pos);
    std::size_t const len = in.data[pos];
    if (len == 0) return pos + 1;
    TESSERA_CHECK(in.size - pos - 1 >= len, *in.label, ": GIF truncated: a data block of ", len, " bytes at offset ",
                  pos, " runs past the end of the file");
    if (is_first && first != nullptr) {
      *first = in.data + pos + 1;
      *first_len = len;
    }
    is_first = false;
    pos += 1 + len;
  }
}

/// Reads the header, the colour tables and the blocks up to the end of the first image's data.
[[nodiscard]] inline gif_layout parse_gif(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(n >= 13 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0), label,
                ": not a GIF file (no GIF87a/GIF89a header and screen descriptor)");
  gif_layout g;
  g.screen_w = u16le(d + 6);
  g.screen_h = u16le(d + 8);
  check_budget(in, "GIF", g.screen_w, g.screen_h);
  std::uint8_t const flags = d[10];
  std::size_t pos = 13;
  std::array<std::uint8_t, 768> global{};
  int global_entries = 0;
  if (flags & 0x80) {
    global_entries = 2 << (flags & 7);
    std::size_t const bytes = 3 * static_cast<std::size_t>(global_entries);
    TESSERA_CHECK(n - pos >= bytes, label, ": GIF truncated inside the global colour table");
    std::memcpy(global.data(), d + pos, bytes);
    pos += bytes;
  }
  for (;;) {
    TESSERA_CHECK(pos < n, label, ": GIF truncated before its first image");
    std::uint8_t const block = d[pos++];
    if (block == 0x21) {  // extension: label, data sub-blocks
      TESSERA_CHECK(pos < n, label, ": GIF truncated inside an extension");
      std::uint8_t const kind = d[pos++];
      std::uint8_t const* first = nullptr;
      std::size_t first_len = 0;
      pos = gif_skip_sub_blocks(in, pos, &first, &first_len);
      if (kind == 0xF9 && first != nullptr) {  // graphic control extension
        TESSERA_CHECK(first_len >= 4, label, ": corrupt GIF: graphic control extension of ", first_len,
                      " bytes (needs 4)");
        if (first[0] & 1) g.transparency = first[3];  // as Pillow: a later GCE without the flag keeps it
      }
    } else if (block == 0x2C) {  // image descriptor
      TESSERA_CHECK(n - pos >= 9, label, ": GIF truncated inside the image descriptor");
      g.x = u16le(d + pos);
      g.y = u16le(d + pos + 2);
      g.w = u16le(d + pos + 4);
      g.h = u16le(d + pos + 6);
      std::uint8_t const iflags = d[pos + 8];
      pos += 9;
      g.interlaced = (iflags & 0x40) != 0;
      TESSERA_CHECK(g.w > 0 && g.h > 0, label, ": corrupt GIF: the first frame is empty (", g.w, " x ", g.h, ")");
      TESSERA_CHECK(g.x + g.w <= g.screen_w && g.y + g.h <= g.screen_h, label, ": GIF first frame ", g.w, " x ", g.h,
                    " at (", g.x, ", ", g.y, ") reaches outside the ", g.screen_w, " x ", g.screen_h,
                    " logical screen (Pillow would enlarge the image, stb_image refuses)");
      if (iflags & 0x80) {
        g.table_entries = 2 << (iflags & 7);
        std::size_t const bytes = 3 * static_cast<std::size_t>(g.table_entries);
        TESSERA_CHECK(n - pos >= bytes, label, ": GIF truncated inside the local colour table");
        std::memcpy(g.table.data(), d + pos, bytes);
        pos += bytes;
      } else {
        g.table = global;
        g.table_entries = global_entries;
      }
      TESSERA_CHECK(pos < n, label, ": GIF truncated before the image data");
      TESSERA_CHECK(d[pos] <= 8, label, ": corrupt GIF: LZW minimum code size ", int{d[pos]}, " (at most 8)");
      g.lzw_begin = pos;
      g.lzw_end = gif_skip_sub_blocks(in, pos + 1);
      return g;
    } else if (block == 0x3B) {
      TESSERA_FAIL(label, ": GIF has no image (trailer before any image descriptor)");
    } else {
      TESSERA_FAIL(label, ": corrupt GIF: unknown block type 0x", std::string(1, "0123456789ABCDEF"[block >> 4]),
                   std::string(1, "0123456789ABCDEF"[block & 0xF]), " at offset ", pos - 1);
    }
  }
}

/// The frame re-packed for stb: same size and LZW data, a 256-entry identity gray global table, no
/// local table, no extensions (so no transparency), background index 0.
[[nodiscard]] inline std::vector<std::uint8_t> gif_indices_as_gray(image_input const& in, gif_layout const& g) {
  // Built from the header rather than insert()ed into a reserved vector: GCC 12 at -O3 reports a
  // false stringop-overflow for the latter when this function is inlined into a large caller.
  std::vector<std::uint8_t> out(in.data, in.data + 10);  // signature, screen width and height
  out.reserve(13 + 768 + 10 + (g.lzw_end - g.lzw_begin) + 1);
  out.push_back(0xF7);                           // global table of 256 entries, 8-bit colour resolution
  out.push_back(0);                              // background index
  out.push_back(0);                              // pixel aspect ratio
  for (int i = 0; i < 256; ++i)
    for (int c = 0; c < 3; ++c) out.push_back(static_cast<std::uint8_t>(i));
  out.push_back(0x2C);
  auto const put16 = [&](std::uint32_t v) {
    out.push_back(static_cast<std::uint8_t>(v & 0xFF));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
  };
  put16(g.x);
  put16(g.y);
  put16(g.w);
  put16(g.h);
  out.push_back(g.interlaced ? 0x40 : 0x00);
  out.insert(out.end(), in.data + g.lzw_begin, in.data + g.lzw_end);
  out.push_back(0x3B);
  return out;
}

/// GIF (first frame) -> RGB8 with Pillow's rules (see the top of this file).
[[nodiscard]] inline raw_rgb decode_gif(image_input const& in) {
  gif_layout const g = parse_gif(in);
  auto const h = static_cast<index_t>(g.screen_h), w = static_cast<index_t>(g.screen_w);
  std::vector<std::uint8_t> const gray = gif_indices_as_gray(in, g);
  stb_cross_check(in, gray.data(), gray.size(), "GIF", h, w);
  auto const px = stb_load_8(in, gray.data(), gray.size(), 4, "GIF", h, w);

  // Pillow's lookup table: mode "L" (no table, or the identity ramp) maps an index to its own gray
  // value; mode "P" maps it to the table entry, black past the end of the table.
  bool identity = true;
  for (int i = 0; i < g.table_entries && identity; ++i)
    for (int c = 0; c < 3; ++c) identity = identity && g.table[static_cast<std::size_t>(3 * i + c)] == i;
  std::array<std::uint8_t, 768> lut{};
  for (int i = 0; i < 256; ++i)
    for (int c = 0; c < 3; ++c) {
      auto const k = static_cast<std::size_t>(3 * i + c);
      lut[k] = identity ? static_cast<std::uint8_t>(i) : (i < g.table_entries ? g.table[k] : std::uint8_t{0});
    }
  std::uint8_t const fill = g.transparency >= 0 ? static_cast<std::uint8_t>(g.transparency) : std::uint8_t{0};

  raw_rgb out = make_rgb(h, w);
  std::uint8_t const* src = px.data.get();  // RGBA: R = index, A = 255 where the frame drew a pixel
  std::uint8_t* dst = out.pixels.data();
  for (index_t yy = 0; yy < h; ++yy)
    for (index_t xx = 0; xx < w; ++xx) {
      auto const i = static_cast<std::size_t>(yy * w + xx);
      bool const inside = xx >= g.x && xx < g.x + g.w && yy >= g.y && yy < g.y + g.h;
      // Inside the frame a pixel the LZW data never reached (a stream that ends early) keeps the
      // canvas value, as on Pillow's pre-filled canvas.
      std::size_t const idx = (inside && src[4 * i + 3] == 255) ? src[4 * i] : fill;
      dst[3 * i + 0] = lut[3 * idx + 0];
      dst[3 * i + 1] = lut[3 * idx + 1];
      dst[3 * i + 2] = lut[3 * idx + 2];
    }
  return out;
}

}  // namespace tessera::io::detail
