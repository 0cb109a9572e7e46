// SPDX-License-Identifier: Apache-2.0
// TGA (Targa) for io::decode_image, decoded by tessera itself with the rules of Pillow 11's
// TgaImagePlugin + TgaRleDecode.c + convert('RGB'). stb_image's TGA reader cannot give Pillow's
// result: it ignores the right-to-left bit, offsets colour maps differently (Pillow prepends
// `first entry index` black entries), maps out-of-range indices to entry 0 instead of black, accepts
// RLE runs across rows that Pillow rejects, and returns zeros instead of an error for a file cut short.
//
// Supported as Pillow reads them: image types 1/9 (8-bit indices into a 16/24/32-bit colour map),
// 2/10 (16-bit 5-5-5 as v * 255 / 31, 24-bit, 32-bit), 3/11 (8-bit gray, 16-bit gray + alpha);
// raw and RLE (literal packets may continue on the next row, run packets may not); all four
// orientations; alpha dropped. Refused: other type/depth pairs, 1-bit images, colour maps of more
// than 256 entries or of another entry size, truncated data.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tessera::io::detail {

/// True when the 18-byte header could be a TGA header as Pillow validates it (TGA has no magic
/// number, so this is how a buffer that no other format claims is recognized).
[[nodiscard]] inline bool looks_like_tga(std::uint8_t const* d, std::size_t n) noexcept {
  if (n < 18) return false;
  int const type = d[2], depth = d[16];
  return (d[1] == 0 || d[1] == 1) && (type == 1 || type == 2 || type == 3 || type == 9 || type == 10 || type == 11) &&
         u16le(d + 12) > 0 && u16le(d + 14) > 0 &&
         (depth == 1 || depth == 8 || depth == 16 || depth == 24 || depth == 32);
}

/// TGA -> RGB8 (see the top of this file).
[[nodiscard]] inline raw_rgb decode_tga(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(looks_like_tga(d, n), label, ": not a TGA file (invalid 18-byte header)");
  int const id_len = d[0], cmap_type = d[1], type = d[2], cmap_depth = d[7], depth = d[16], flags = d[17];
  std::uint32_t const cmap_start = u16le(d + 3), cmap_len = u16le(d + 5);
  std::uint32_t const width = u16le(d + 12), height = u16le(d + 14);
  int const base = type & 7;
  bool const rle = (type & 8) != 0;
  TESSERA_CHECK(depth != 1, label, ": 1-bit TGA is not supported");
  bool const known = (base == 1 && depth == 8) || (base == 3 && (depth == 8 || depth == 16)) ||
                     (base == 2 && (depth == 16 || depth == 24 || depth == 32));
  TESSERA_CHECK(known, label, ": TGA image type ", type, " with ", depth, " bits per pixel cannot be decoded");
  TESSERA_CHECK(base != 1 || cmap_type == 1, label, ": colour-mapped TGA without a colour map");
  check_budget(in, "TGA", width, height);

  std::size_t pos = 18 + static_cast<std::size_t>(id_len);
  TESSERA_CHECK(pos <= n, label, ": TGA truncated inside its image ID");
  // Pillow's palette: cmap_start black entries, then the file's entries, then black.
  std::array<std::uint8_t, 768> lut{};
  if (cmap_type == 1) {
    TESSERA_CHECK(cmap_depth == 16 || cmap_depth == 24 || cmap_depth == 32, label, ": unknown TGA colour map depth ",
                  cmap_depth);
    std::size_t const entry = static_cast<std::size_t>(cmap_depth / 8);
    std::size_t const bytes = entry * cmap_len;
    TESSERA_CHECK(n - pos >= bytes, label, ": TGA truncated inside its colour map");
    if (base == 1) {
      TESSERA_CHECK(cmap_start + cmap_len <= 256, label, ": TGA colour map of ", cmap_start + cmap_len,
                    " entries (Pillow accepts at most 256)");
      for (std::uint32_t i = 0; i < cmap_len; ++i) {
        std::uint8_t const* e = d + pos + entry * i;
        std::uint8_t* o = lut.data() + 3 * (cmap_start + i);
        if (cmap_depth == 16) {  // "BGRA;15Z"
          std::uint32_t const v = u16le(e);
          o[0] = static_cast<std::uint8_t>(((v >> 10) & 31u) * 255u / 31u);
          o[1] = static_cast<std::uint8_t>(((v >> 5) & 31u) * 255u / 31u);
          o[2] = static_cast<std::uint8_t>((v & 31u) * 255u / 31u);
        } else {  // "BGR", "BGRA"
          o[0] = e[2];
          o[1] = e[1];
          o[2] = e[0];
        }
      }
    }
    pos += bytes;
  }

  std::size_t const bpp = static_cast<std::size_t>((depth + 7) / 8);
  std::size_t const row_bytes = bpp * width;
  auto const h = static_cast<index_t>(height), w = static_cast<index_t>(width);
  bool const top_down = (flags & 0x20) != 0, right_to_left = (flags & 0x10) != 0;
  std::uint64_t const pixels = std::uint64_t{width} * height;
  // Enough data for the declared size, checked before the pixels are allocated: raw rows exactly; RLE
  // at most 128 pixels per packet of 1 + bpp bytes.
  if (!rle)
    TESSERA_CHECK((n - pos) / row_bytes >= height, label, ": TGA truncated: ", height, " rows of ", row_bytes,
                  " bytes need ", pos + row_bytes * height, " bytes, the file has ", n);
  else
    TESSERA_CHECK(static_cast<std::uint64_t>(n - pos) / (1 + bpp) * 128 >= pixels, label, ": TGA truncated: ",
                  n - pos, " bytes of RLE data cannot hold ", pixels, " pixels");
  raw_rgb out = make_rgb(h, w);

  // Unpacks one row of raw pixels into output row `r` (in file order).
  auto const emit = [&](std::uint8_t const* row, index_t r) {
    index_t const y = top_down ? r : h - 1 - r;
    std::uint8_t* o = out.pixels.data() + 3 * y * w;
    for (index_t x = 0; x < w; ++x) {
      std::uint8_t const* p = row + bpp * static_cast<std::size_t>(x);
      std::uint8_t* q = o + 3 * (right_to_left ? w - 1 - x : x);
      if (base == 1) {
        std::memcpy(q, lut.data() + 3 * static_cast<std::size_t>(p[0]), 3);
      } else if (base == 3) {  // "L" / "LA": the gray byte
        q[0] = q[1] = q[2] = p[0];
      } else if (depth == 16) {  // "BGRA;15Z"
        std::uint32_t const v = u16le(p);
        q[0] = static_cast<std::uint8_t>(((v >> 10) & 31u) * 255u / 31u);
        q[1] = static_cast<std::uint8_t>(((v >> 5) & 31u) * 255u / 31u);
        q[2] = static_cast<std::uint8_t>((v & 31u) * 255u / 31u);
      } else {  // "BGR", "BGRA"
        q[0] = p[2];
        q[1] = p[1];
        q[2] = p[0];
      }
    }
  };

  if (!rle) {
    for (index_t r = 0; r < h; ++r) emit(d + pos + row_bytes * static_cast<std::size_t>(r), r);
    return out;
  }

  // RLE as TgaRleDecode.c: packets fill a row buffer; a literal packet may spill into the next rows,
  // a run packet must end within its row.
  std::vector<std::uint8_t> row(row_bytes);
  std::size_t x = 0;  // bytes of the current row filled
  index_t r = 0;      // rows emitted
  while (r < h) {
    TESSERA_CHECK(pos < n, label, ": TGA truncated: RLE data ends after ", r, " of ", h, " rows");
    std::uint8_t const c = d[pos];
    std::size_t const count = bpp * (static_cast<std::size_t>(c & 0x7F) + 1);
    if (c & 0x80) {
      TESSERA_CHECK(n - pos >= 1 + bpp, label, ": TGA truncated inside an RLE packet at offset ", pos);
      TESSERA_CHECK(x + count <= row_bytes, label, ": corrupt TGA: an RLE run at offset ", pos,
                    " crosses the end of a row (Pillow rejects it)");
      for (std::size_t i = 0; i < count; i += bpp) std::memcpy(row.data() + x + i, d + pos + 1, bpp);
      pos += 1 + bpp;
      x += count;
      if (x == row_bytes) {
        emit(row.data(), r++);
        x = 0;
      }
    } else {
      TESSERA_CHECK(n - pos >= 1 + count, label, ": TGA truncated inside an RLE packet at offset ", pos);
      std::uint8_t const* src = d + pos + 1;
      std::size_t left = count;
      pos += 1 + count;
      while (left > 0 && r < h) {
        std::size_t const take = std::min(left, row_bytes - x);
        std::memcpy(row.data() + x, src, take);
        src += take;
        left -= take;
        x += take;
        if (x == row_bytes) {
          emit(row.data(), r++);
          x = 0;
        }
      }
    }
  }
  return out;
}

}  // namespace tessera::io::detail
