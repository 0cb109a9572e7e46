// SPDX-License-Identifier: Apache-2.0
// PNG for io::decode_image: tessera walks the chunk structure itself (CRCs, IHDR fields, chunk
// order, budget, and the size the zlib stream inflates to) before stb_image decodes, then converts
// to RGB8 exactly as Pillow 11's Image.open(f).convert('RGB') does:
//   - 16-bit grayscale opens as Pillow mode "I;16" and I;16 -> RGB clamps (v > 255 -> 255); every
//     other 16-bit layout keeps the high byte (rawmodes "RGB;16B", "LA;16B", "RGBA;16B"), as stb does;
//   - palette images are looked up in PLTE; an index past the end of PLTE gives black (Pillow's
//     palette is zero-filled). stb would read uninitialized palette entries there, so tessera has stb
//     decode the indices (the IHDR colour type rewritten to grayscale) and does the lookup itself;
//   - alpha (tRNS, LA, RGBA) is dropped, never composited.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>
#include <tessera/io/detail/image_stb.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tessera::io::detail {

inline constexpr std::array<std::uint8_t, 8> png_signature = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

/// What the structure walk learned about a PNG file.
struct png_layout {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  std::size_t ihdr_chunk = 0;                              // offset of the IHDR chunk (its length field)
  std::vector<std::pair<std::size_t, std::size_t>> idat;   // [offset, length) of each IDAT chunk's data
  std::size_t idat_chunks_begin = 0, idat_chunks_end = 0;  // the run of IDAT chunks, whole chunks
  std::size_t idat_bytes = 0;                              // total compressed image data
  std::array<std::uint8_t, 768> palette{};                 // PLTE entries, RGB
  int palette_size = 0;
};

[[nodiscard]] inline int png_channels(int color_type) noexcept {
  switch (color_type) {
    case 0: return 1;
    case 2: return 3;
    case 3: return 1;
    case 4: return 2;
    case 6: return 4;
    default: return 0;
  }
}

/// Bytes of filtered image data the zlib stream must produce: per row one filter byte plus the
/// packed samples, summed over the 7 Adam7 passes for interlaced images.
[[nodiscard]] inline std::uint64_t png_raw_bytes(png_layout const& p) noexcept {
  std::uint64_t const bpp = static_cast<std::uint64_t>(png_channels(p.color_type)) * static_cast<std::uint64_t>(p.bit_depth);
  auto const rows = [&](std::uint64_t w, std::uint64_t h) -> std::uint64_t {
    if (w == 0 || h == 0) return 0;
    return h * (1 + (w * bpp + 7) / 8);
  };
  if (p.interlace == 0) return rows(p.width, p.height);
  // Adam7 passes: first column / row and step of each.
  static constexpr std::uint64_t x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
  static constexpr std::uint64_t dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
  std::uint64_t total = 0;
  for (int i = 0; i < 7; ++i) {
    std::uint64_t const w = p.width > x0[i] ? (p.width - x0[i] + dx[i] - 1) / dx[i] : 0;
    std::uint64_t const h = p.height > y0[i] ? (p.height - y0[i] + dy[i] - 1) / dy[i] : 0;
    total += rows(w, h);
  }
  return total;
}

/// Walks every chunk up to IEND: lengths inside the file, chunk types made of letters, CRC-32 of
/// every chunk (stricter than Pillow, which skips the CRC of IDAT chunks), IHDR first and valid,
/// PLTE before the image data, consecutive IDAT chunks, IEND present (a file cut short has none).
/// Unknown critical chunks and Apple's CgBI variant are refused (stb_image and Pillow cannot read
/// them). The pixel budget is checked as soon as IHDR is read.
[[nodiscard]] inline png_layout parse_png(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(n >= 8 + 25 && std::memcmp(d, png_signature.data(), 8) == 0, label,
                ": not a PNG file (no signature and IHDR chunk in the first 33 bytes)");
  png_layout p;
  bool seen_ihdr = false, seen_iend = false, seen_plte = false;
  std::size_t pos = 8;
  while (pos < n) {
    TESSERA_CHECK(n - pos >= 12, label, ": PNG truncated: ", n - pos, " bytes left at offset ", pos,
                  ", a chunk needs at least 12");
    std::uint32_t const len = u32be(d + pos);
    std::uint8_t const* type = d + pos + 4;
    std::string const name(reinterpret_cast<char const*>(type), 4);
    TESSERA_CHECK(len <= 0x7FFFFFFFu, label, ": PNG chunk at offset ", pos, " has length ", len,
                  " (the format allows at most 2^31 - 1)");
    TESSERA_CHECK(n - pos - 12 >= len, label, ": PNG truncated: chunk '", name, "' at offset ", pos, " needs ",
                  len + 12, " bytes, ", n - pos, " are left");
    for (int i = 0; i < 4; ++i) {
      bool const letter = (type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z');
      TESSERA_CHECK(letter, label, ": corrupt PNG: chunk type at offset ", pos + 4, " is not four letters");
    }
    std::uint8_t const* data = d + pos + 8;
    std::uint32_t const crc_file = u32be(data + len);
    std::uint32_t const crc = crc32(data, len, crc32(type, 4));
    TESSERA_CHECK(crc == crc_file, label, ": corrupt PNG: CRC mismatch in chunk '", name, "' at offset ", pos);
    bool const is_idat = name == "IDAT";
    TESSERA_CHECK(name != "CgBI", label,
                  ": Apple's CgBI PNG variant (byte-swapped, premultiplied, headerless zlib) is not supported");
    TESSERA_CHECK(seen_ihdr || name == "IHDR", label, ": corrupt PNG: the first chunk is '", name, "', not IHDR");
    if (name == "IHDR") {
      TESSERA_CHECK(!seen_ihdr, label, ": corrupt PNG: a second IHDR chunk at offset ", pos);
      TESSERA_CHECK(len == 13, label, ": corrupt PNG: IHDR has ", len, " bytes instead of 13");
      seen_ihdr = true;
      p.ihdr_chunk = pos;
      p.width = u32be(data);
      p.height = u32be(data + 4);
      p.bit_depth = data[8];
      p.color_type = data[9];
      p.interlace = data[12];
      int const bd = p.bit_depth, ct = p.color_type;
      bool const depth_ok = (ct == 0 && (bd == 1 || bd == 2 || bd == 4 || bd == 8 || bd == 16)) ||
                            (ct == 3 && (bd == 1 || bd == 2 || bd == 4 || bd == 8)) ||
                            ((ct == 2 || ct == 4 || ct == 6) && (bd == 8 || bd == 16));
      TESSERA_CHECK(depth_ok, label, ": corrupt PNG: colour type ", ct, " with bit depth ", bd,
                    " is not a valid combination");
      TESSERA_CHECK(data[10] == 0 && data[11] == 0 && p.interlace <= 1, label,
                    ": corrupt PNG: IHDR compression/filter/interlace method ", int{data[10]}, "/", int{data[11]},
                    "/", p.interlace, " (only 0/0/0 and 0/0/1 exist)");
      TESSERA_CHECK(p.width <= 0x7FFFFFFFu && p.height <= 0x7FFFFFFFu, label, ": corrupt PNG: IHDR size ", p.width,
                    " x ", p.height, " exceeds 2^31 - 1");
      check_budget(in, "PNG", p.width, p.height);
    } else if (name == "PLTE") {
      TESSERA_CHECK(!seen_plte, label, ": corrupt PNG: a second PLTE chunk at offset ", pos);
      TESSERA_CHECK(p.idat.empty(), label, ": corrupt PNG: PLTE after the image data");
      TESSERA_CHECK(len % 3 == 0 && len >= 3 && len <= 768, label, ": corrupt PNG: PLTE has ", len,
                    " bytes (must be 3 to 768 and a multiple of 3)");
      seen_plte = true;
      std::memcpy(p.palette.data(), data, len);
      p.palette_size = static_cast<int>(len / 3);
    } else if (is_idat) {
      TESSERA_CHECK(p.idat.empty() || p.idat_chunks_end == pos, label,
                    ": corrupt PNG: IDAT chunks are not consecutive (another chunk at offset ", p.idat_chunks_end, ")");
      if (p.idat.empty()) p.idat_chunks_begin = pos;
      p.idat.emplace_back(pos + 8, len);
      p.idat_chunks_end = pos + 12 + len;
      p.idat_bytes += len;
    } else if (name == "IEND") {
      seen_iend = true;
      pos += 12 + len;
      break;
    } else {
      // Bit 5 of the first type byte clear (an upper-case letter) marks a critical chunk.
      TESSERA_CHECK((type[0] & 0x20) != 0, label, ": PNG has the unknown critical chunk '", name,
                    "' (stb_image refuses files it cannot fully interpret)");
    }
    pos += 12 + len;
  }
  TESSERA_CHECK(seen_iend, label, ": PNG truncated: no IEND chunk");
  TESSERA_CHECK(!p.idat.empty(), label, ": corrupt PNG: no IDAT chunk (no image data)");
  TESSERA_CHECK(p.color_type != 3 || seen_plte, label, ": corrupt PNG: a palette image without a PLTE chunk");
  return p;
}

/// Inflates the image data into a bounded buffer with stb's own zlib decoder and checks that it
/// yields at least the bytes the image needs and not far more. stb_image itself grows its output
/// buffer without limit while inflating, so a 1 x 1 PNG with a few MB of crafted IDAT could make it
/// allocate gigabytes; after this check it never allocates more than about twice the budgeted size.
/// Costs one extra inflate (about half of stb's PNG decode time).
inline void check_png_inflated_size(image_input const& in, png_layout const& p) {
  std::string const& label = *in.label;
  std::uint64_t const need = png_raw_bytes(p);
  std::uint64_t const limit64 = need + need / 8 + 65536;  // room for encoders that append a few bytes
  TESSERA_CHECK(need <= static_cast<std::uint64_t>(INT_MAX) && p.idat_bytes <= static_cast<std::size_t>(INT_MAX),
                label, ": PNG image data of ", need, " bytes is more than stb_image can handle (2^31 - 1)");
  // Deflate expands at most 1032:1, so less compressed data than need / 1032 cannot be the whole
  // image: refused before the buffer below is allocated for a size the file cannot back.
  TESSERA_CHECK(static_cast<std::uint64_t>(p.idat_bytes) * 1032 + 1032 >= need, label, ": PNG truncated: ",
                p.idat_bytes, " bytes of compressed image data cannot inflate to the ", need, " bytes the image needs");
  int const limit = static_cast<int>(std::min<std::uint64_t>(limit64, static_cast<std::uint64_t>(INT_MAX)));
  std::vector<std::uint8_t> joined;
  std::uint8_t const* z = in.data + p.idat.front().first;
  if (p.idat.size() > 1) {
    joined.resize(p.idat_bytes);
    std::size_t o = 0;
    for (auto const& [off, len] : p.idat) {
      std::memcpy(joined.data() + o, in.data + off, len);
      o += len;
    }
    z = joined.data();
  }
  host_buffer<std::uint8_t> out(limit);
  int const got = stbi_zlib_decode_buffer(reinterpret_cast<char*>(out.data()), limit, reinterpret_cast<char const*>(z),
                                          static_cast<int>(p.idat_bytes));
  TESSERA_CHECK(got >= 0, label, ": corrupt PNG: the image data is not a valid zlib stream, or it inflates to more than ",
                limit, " bytes (the image needs ", need, "): ", stbi_reason());
  TESSERA_CHECK(static_cast<std::uint64_t>(got) >= need, label, ": PNG truncated: the image data inflates to ", got,
                " bytes, the image needs ", need);
}

/// Copy of the file that stb decodes as a grayscale image whose samples are the palette indices:
/// signature, IHDR with colour type 0 (same bit depth, CRC recomputed), the IDAT chunks, IEND.
[[nodiscard]] inline std::vector<std::uint8_t> png_indices_as_gray(image_input const& in, png_layout const& p) {
  std::vector<std::uint8_t> out;
  out.reserve(8 + 25 + (p.idat_chunks_end - p.idat_chunks_begin) + 12);
  out.insert(out.end(), png_signature.begin(), png_signature.end());
  std::size_t const ihdr = out.size();
  out.insert(out.end(), in.data + p.ihdr_chunk, in.data + p.ihdr_chunk + 25);
  out[ihdr + 8 + 9] = 0;  // colour type: grayscale
  std::uint32_t const crc = crc32(out.data() + ihdr + 4, 17);
  for (int i = 0; i < 4; ++i) out[ihdr + 21 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
  out.insert(out.end(), in.data + p.idat_chunks_begin, in.data + p.idat_chunks_end);
  static constexpr std::array<std::uint8_t, 12> iend = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  out.insert(out.end(), iend.begin(), iend.end());
  return out;
}

/// PNG -> RGB8 with Pillow's conversion rules (see the top of this file).
[[nodiscard]] inline raw_rgb decode_png(image_input const& in) {
  png_layout const p = parse_png(in);
  check_png_inflated_size(in, p);
  auto const h = static_cast<index_t>(p.height), w = static_cast<index_t>(p.width);
  raw_rgb out = make_rgb(h, w);
  std::uint8_t* dst = out.pixels.data();
  std::size_t const n = static_cast<std::size_t>(h * w);

  if (p.color_type == 3) {
    std::vector<std::uint8_t> const gray = png_indices_as_gray(in, p);
    stb_cross_check(in, gray.data(), gray.size(), "PNG", h, w);
    auto const px = stb_load_8(in, gray.data(), gray.size(), 1, "PNG", h, w);
    // stb scales gray samples of depth < 8 to 0..255 (x 255, 85, 17); undo that to get the index.
    int const scale = p.bit_depth == 1 ? 255 : p.bit_depth == 2 ? 85 : p.bit_depth == 4 ? 17 : 1;
    std::array<std::uint8_t, 768> lut{};  // Pillow's palette: PLTE entries, then zeros
    std::memcpy(lut.data(), p.palette.data(), static_cast<std::size_t>(p.palette_size) * 3);
    std::uint8_t const* src = px.data.get();
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t const idx = static_cast<std::size_t>(src[i] / scale);
      dst[3 * i + 0] = lut[3 * idx + 0];
      dst[3 * i + 1] = lut[3 * idx + 1];
      dst[3 * i + 2] = lut[3 * idx + 2];
    }
    return out;
  }

  stb_cross_check(in, in.data, in.size, "PNG", h, w);
  if (p.color_type == 0 && p.bit_depth == 16) {
    // Pillow: mode "I;16"; convert('RGB') is I16_RGB (libImaging/Convert.c): v > 255 -> 255.
    auto const px = stb_load_16(in, in.data, in.size, "PNG", h, w);
    std::uint16_t const* src = px.data.get();
    auto const ch = static_cast<std::size_t>(px.channels);  // 2 when a tRNS chunk is present
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t const v = src[ch * i];
      dst[3 * i + 0] = dst[3 * i + 1] = dst[3 * i + 2] = static_cast<std::uint8_t>(v > 255 ? 255 : v);
    }
    return out;
  }
  // 8-bit layouts and 16-bit RGB / LA / RGBA: stb keeps the high byte of 16-bit samples, as
  // Pillow's "RGB;16B" / "LA;16B" / "RGBA;16B" unpackers do; depths below 8 scale like "L;2"/"L;4"/"1".
  auto const px = stb_load_8(in, in.data, in.size, 0, "PNG", h, w);
  stb_to_rgb(px.data.get(), px.channels, out);
  return out;
}

}  // namespace tessera::io::detail
