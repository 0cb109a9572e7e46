// SPDX-License-Identifier: Apache-2.0
// PNG for io::decode_image: tessera walks the chunk structure itself (CRCs, IHDR fields, chunk
// order, budget) and decodes the zlib stream once without output (its validity and the size it
// inflates to) before stb_image decodes, then converts to RGB8 exactly as Pillow 11's
// Image.open(f).convert('RGB') does:
//   - 16-bit grayscale opens as Pillow mode "I;16" and I;16 -> RGB clamps (v > 255 -> 255); every
//     other 16-bit layout keeps the high byte (rawmodes "RGB;16B", "LA;16B", "RGBA;16B"), as stb does;
//   - palette images are looked up in PLTE; an index past the end of PLTE gives black (Pillow's
//     palette is zero-filled). stb would read uninitialized palette entries there, so tessera has stb
//     decode the indices (the IHDR colour type rewritten to grayscale) and does the lookup itself;
//   - alpha (tRNS, LA, RGBA) is dropped, never composited.
// The zlib decode is tessera's own, not stb's: production links Debian 12's libstb (stb_image
// 2.27), whose inflater accepts the invalid deflate symbols 286/287 and 30/31 (fixed in 2.28) and
// then copies output it has not written yet (uninitialized memory) into the image; tessera refuses
// such streams, as zlib (Pillow) does, before stb sees them.
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
#include <memory>
#include <string>
#include <utility>
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

/// A Huffman code of a deflate block (RFC 1951 3.2.2), built from code lengths: canonical codes,
/// each stored with its bits reversed because deflate packs codes starting from their first bit.
struct deflate_huffman {
  static constexpr int lookup_bits = 9;
  std::array<std::uint16_t, 16> count{};   // codes of each length 1..15
  std::array<std::uint16_t, 320> sorted{};  // symbols in code order
  // The next 9 input bits -> (code length << 12) | symbol, for codes of up to 9 bits; 0: longer or none.
  std::array<std::uint16_t, 1 << lookup_bits> lookup{};
};

/// Builds `h` from the code lengths of symbols 0..n-1 (0: unused). False when more codes of some
/// length are declared than fit (over-subscribed); an incomplete code is fine (its unused bit
/// sequences are refused when they appear).
[[nodiscard]] inline bool build_deflate_huffman(deflate_huffman& h, std::uint8_t const* lengths, int n) noexcept {
  h = deflate_huffman{};
  for (int i = 0; i < n; ++i) ++h.count[lengths[i]];
  h.count[0] = 0;
  std::array<int, 17> next{};  // position in `sorted` of the next symbol of each length
  int free_codes = 1;
  for (int len = 1; len <= 15; ++len) {
    free_codes = 2 * free_codes - h.count[static_cast<std::size_t>(len)];
    if (free_codes < 0) return false;
    next[static_cast<std::size_t>(len) + 1] = next[static_cast<std::size_t>(len)] + h.count[static_cast<std::size_t>(len)];
  }
  for (int i = 0; i < n; ++i)
    if (lengths[i] != 0) h.sorted[static_cast<std::size_t>(next[lengths[i]]++)] = static_cast<std::uint16_t>(i);
  std::uint32_t code = 0;
  std::size_t index = 0;
  for (int len = 1; len <= deflate_huffman::lookup_bits; ++len) {
    for (int k = 0; k < h.count[static_cast<std::size_t>(len)]; ++k, ++code) {
      std::uint32_t reversed = 0;
      for (int b = 0; b < len; ++b) reversed |= ((code >> b) & 1u) << (len - 1 - b);
      auto const entry = static_cast<std::uint16_t>((len << 12) | h.sorted[index++]);
      for (std::uint32_t j = reversed; j < (1u << deflate_huffman::lookup_bits); j += 1u << len) h.lookup[j] = entry;
    }
    code <<= 1;
  }
  return true;
}

/// The bits of a zlib stream split over IDAT chunks, least significant bit of each byte first.
/// Past the end it reads zero bits and remembers that it did (`overrun`).
class deflate_bit_reader {
 public:
  deflate_bit_reader(std::uint8_t const* data, std::vector<std::pair<std::size_t, std::size_t>> const& spans) noexcept
      : d_(data), spans_(spans) {}

  [[nodiscard]] bool overrun() const noexcept { return bits_ < pad_; }
  /// Bytes of compressed data consumed so far (for messages).
  [[nodiscard]] std::uint64_t offset() const noexcept {
    return bits_ > pad_ ? consumed_ - static_cast<std::uint64_t>((bits_ - pad_) / 8) : consumed_;
  }

  /// The next `n` (0 to 16) bits as a number, first bit least significant.
  [[nodiscard]] std::uint32_t bits(int n) noexcept {
    if (bits_ < n) fill();
    auto const v = static_cast<std::uint32_t>(acc_ & ((std::uint64_t{1} << n) - 1));
    acc_ >>= n;
    bits_ -= n;
    return v;
  }

  /// The next symbol coded with `h`, or -1 for a bit sequence that is no code of `h`.
  [[nodiscard]] int decode(deflate_huffman const& h) noexcept {
    if (bits_ < 15) fill();
    std::uint16_t const e = h.lookup[acc_ & ((1u << deflate_huffman::lookup_bits) - 1)];
    if (e != 0) {
      acc_ >>= e >> 12;
      bits_ -= e >> 12;
      return e & 0xFFF;
    }
    // Longer codes, one bit at a time: codes of length len are first..first+count-1.
    std::uint32_t code = 0, first = 0, index = 0;
    for (int len = 1; len <= 15; ++len) {
      code |= static_cast<std::uint32_t>(acc_ >> (len - 1)) & 1u;
      std::uint32_t const count = h.count[static_cast<std::size_t>(len)];
      if (code - first < count) {
        acc_ >>= len;
        bits_ -= len;
        return h.sorted[index + code - first];
      }
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    return -1;
  }

  /// Drops the bits up to the next byte boundary (stored blocks start there).
  void align() noexcept {
    int const drop = bits_ % 8;
    acc_ >>= drop;
    bits_ -= drop;
  }

  /// Skips `n` whole bytes (after align()); false if the data ends first.
  [[nodiscard]] bool skip_bytes(std::uint64_t n) noexcept {
    while (n > 0 && bits_ >= 8 && !overrun()) {
      acc_ >>= 8;
      bits_ -= 8;
      --n;
    }
    if (overrun() || (n > 0 && pad_ > 0)) return false;
    while (n > 0) {
      if (span_ == spans_.size()) return false;
      std::uint64_t const left = spans_[span_].second - at_;
      std::uint64_t const take = n < left ? n : left;
      at_ += static_cast<std::size_t>(take);
      consumed_ += take;
      n -= take;
      if (at_ == spans_[span_].second) {
        ++span_;
        at_ = 0;
      }
    }
    return true;
  }

 private:
  void fill() noexcept {
    while (bits_ <= 56) {
      while (span_ < spans_.size() && at_ == spans_[span_].second) {
        ++span_;
        at_ = 0;
      }
      if (span_ < spans_.size()) {
        acc_ |= static_cast<std::uint64_t>(d_[spans_[span_].first + at_++]) << bits_;
        ++consumed_;
      } else {
        pad_ += 8;
      }
      bits_ += 8;
    }
  }

  std::uint8_t const* d_;
  std::vector<std::pair<std::size_t, std::size_t>> const& spans_;
  std::size_t span_ = 0, at_ = 0;  // current IDAT chunk, offset in its data
  std::uint64_t consumed_ = 0;     // bytes moved into the bit buffer or skipped
  std::uint64_t acc_ = 0;          // bits_ valid bits, next bit lowest
  int bits_ = 0;
  int pad_ = 0;                    // how many of the high valid bits are zeros read past the data
};

/// Decodes the zlib stream of the IDAT chunks (RFC 1950 header, RFC 1951 blocks) without producing
/// the output, and returns how many bytes it inflates to, stopping early once that passes `limit`.
/// Refuses what zlib (and so Pillow) refuses and stb_image 2.27 mishandles: length symbols 286/287
/// and distance symbols 30/31 (2.27 copies from a distance of 0, i.e. from output it has not
/// written), distances reaching before the start, more than 286 / 30 code lengths, a missing
/// end-of-block code, over-subscribed codes, truncated data. The Adler-32 checksum is not checked.
[[nodiscard]] inline std::uint64_t png_inflated_size(image_input const& in, png_layout const& p, std::uint64_t limit) {
  std::string const& label = *in.label;
  deflate_bit_reader r(in.data, p.idat);
  auto const fail = [&](char const* what) {
    TESSERA_FAIL(label, ": corrupt PNG: the image data is not a valid zlib stream: ", what, " (near byte ", r.offset(),
                 " of ", p.idat_bytes, ")");
  };
  std::uint32_t const cmf = r.bits(8), flg = r.bits(8);
  if (r.overrun() || (cmf * 256 + flg) % 31 != 0 || (cmf & 15) != 8 || (cmf >> 4) > 7 || (flg & 32) != 0)
    fail("bad zlib header (need deflate, a window of at most 32 KB, no preset dictionary)");

  static constexpr std::array<std::uint16_t, 29> length_base = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
                                                                15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
                                                                67, 83, 99, 115, 131, 163, 195, 227, 258};
  static constexpr std::array<std::uint8_t, 29> length_extra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                                2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
  static constexpr std::array<std::uint16_t, 30> dist_base = {1,    2,    3,    4,    5,    7,     9,     13,
                                                              17,   25,   33,   49,   65,   97,    129,   193,
                                                              257,  385,  513,  769,  1025, 1537,  2049,  3073,
                                                              4097, 6145, 8193, 12289, 16385, 24577};
  auto lit = std::make_unique<deflate_huffman>();
  auto dist = std::make_unique<deflate_huffman>();
  auto lencode = std::make_unique<deflate_huffman>();
  std::uint64_t out = 0;
  bool last = false;
  while (!last) {
    last = r.bits(1) != 0;
    std::uint32_t const type = r.bits(2);
    if (type == 0) {  // stored
      r.align();
      std::uint32_t const len = r.bits(16), nlen = r.bits(16);
      if (len != (~nlen & 0xFFFFu)) fail("a stored block whose length check fails");
      if (!r.skip_bytes(len)) fail("a stored block that runs past the end of the data");
      out += len;
    } else if (type == 3) {
      fail("a block of the reserved type 3");
    } else {
      if (type == 1) {  // fixed codes (RFC 1951 3.2.6)
        std::array<std::uint8_t, 288> l{};
        for (std::size_t i = 0; i < 288; ++i) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
        (void)build_deflate_huffman(*lit, l.data(), 288);
        std::array<std::uint8_t, 30> dl{};
        dl.fill(5);
        (void)build_deflate_huffman(*dist, dl.data(), 30);  // symbols 30, 31 left out: refused below
      } else {  // dynamic codes (RFC 1951 3.2.7)
        int const nlit = static_cast<int>(r.bits(5)) + 257, ndist = static_cast<int>(r.bits(5)) + 1;
        int const nclen = static_cast<int>(r.bits(4)) + 4;
        if (nlit > 286 || ndist > 30) fail("more than 286 literal/length or 30 distance codes");
        static constexpr std::array<std::uint8_t, 19> order = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
        std::array<std::uint8_t, 19> cl{};
        for (int i = 0; i < nclen; ++i) cl[order[static_cast<std::size_t>(i)]] = static_cast<std::uint8_t>(r.bits(3));
        if (!build_deflate_huffman(*lencode, cl.data(), 19)) fail("an over-subscribed code-length code");
        std::array<std::uint8_t, 286 + 30> lengths{};
        int const total = nlit + ndist;
        for (int i = 0; i < total;) {
          int const sym = r.decode(*lencode);
          if (sym < 0) fail("an invalid code-length code");
          if (sym < 16) {
            lengths[static_cast<std::size_t>(i++)] = static_cast<std::uint8_t>(sym);
            continue;
          }
          std::uint8_t value = 0;
          int repeat = 0;
          if (sym == 16) {
            if (i == 0) fail("a repeated code length with no length before it");
            value = lengths[static_cast<std::size_t>(i - 1)];
            repeat = 3 + static_cast<int>(r.bits(2));
          } else {
            repeat = sym == 17 ? 3 + static_cast<int>(r.bits(3)) : 11 + static_cast<int>(r.bits(7));
          }
          if (repeat > total - i) fail("code lengths repeated past the last symbol");
          while (repeat-- > 0) lengths[static_cast<std::size_t>(i++)] = value;
        }
        if (r.overrun()) fail("data that ends inside a block header");
        if (lengths[256] == 0) fail("a block without an end-of-block code");
        if (!build_deflate_huffman(*lit, lengths.data(), nlit) ||
            !build_deflate_huffman(*dist, lengths.data() + nlit, ndist))
          fail("an over-subscribed literal/length or distance code");
      }
      while (!r.overrun()) {  // past the data the reader yields zero bits: stop there
        int const sym = r.decode(*lit);
        if (sym < 256) {
          if (sym < 0) fail("an invalid literal/length code");
          ++out;
          continue;
        }
        if (sym == 256) break;
        if (sym > 285) fail("the invalid length symbol 286 or 287");
        auto const li = static_cast<std::size_t>(sym - 257);
        std::uint32_t const len = length_base[li] + r.bits(length_extra[li]);
        int const ds = r.decode(*dist);
        if (ds < 0) fail("an invalid distance code");  // includes symbols 30 and 31
        auto const di = static_cast<std::size_t>(ds);
        std::uint32_t const extra = di < 4 ? 0 : static_cast<std::uint32_t>(di / 2 - 1);
        std::uint32_t const d = dist_base[di] + r.bits(static_cast<int>(extra));
        if (d > out) fail("a distance reaching before the start of the data");
        out += len;
        if (out > limit) return out;
      }
    }
    if (r.overrun()) {
      TESSERA_FAIL(label, ": PNG truncated: the zlib stream of the image data ends early (", p.idat_bytes,
                   " bytes, inflated ", out, " so far)");
    }
    if (out > limit) return out;
  }
  return out;
}

/// Checks that the image data inflates to at least the bytes the image needs and not far more.
/// stb_image itself grows its output buffer without limit while inflating, so a 1 x 1 PNG with a
/// few MB of crafted IDAT could make it allocate gigabytes; after this check it never allocates
/// more than about twice the budgeted size. Costs one decode of the compressed data, without output.
inline void check_png_inflated_size(image_input const& in, png_layout const& p) {
  std::string const& label = *in.label;
  std::uint64_t const need = png_raw_bytes(p);
  std::uint64_t const limit = need + need / 8 + 65536;  // room for encoders that append a few bytes
  TESSERA_CHECK(need <= static_cast<std::uint64_t>(INT_MAX) && p.idat_bytes <= static_cast<std::size_t>(INT_MAX),
                label, ": PNG image data of ", need, " bytes is more than stb_image can handle (2^31 - 1)");
  // Deflate expands at most 1032:1, so less compressed data than need / 1032 cannot be the whole
  // image: refused before decoding anything.
  TESSERA_CHECK(static_cast<std::uint64_t>(p.idat_bytes) * 1032 + 1032 >= need, label, ": PNG truncated: ",
                p.idat_bytes, " bytes of compressed image data cannot inflate to the ", need, " bytes the image needs");
  std::uint64_t const got = png_inflated_size(in, p, limit);
  TESSERA_CHECK(got <= limit, label, ": corrupt PNG: the image data inflates to more than ", limit,
                " bytes; the image needs ", need);
  TESSERA_CHECK(got >= need, label, ": PNG truncated: the image data inflates to ", got, " bytes, the image needs ",
                need);
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
