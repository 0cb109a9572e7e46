// SPDX-License-Identifier: Apache-2.0
// JPEG for io::decode_image: tessera checks the whole file itself (segment lengths, one frame
// header of a kind stb_image decodes, the Huffman and quantization tables, every scan's
// entropy-coded data, the end-of-image marker) and the budget, then stb_image decodes. stb does not
// notice a file cut short (it pads the entropy-coded data and returns an image), so the EOI check
// is what turns truncation into an error, as Pillow's "image file is truncated" does.
//
// Why tessera reads the entropy-coded data too: production links Debian 12's libstb (stb_image
// 2.27), whose JPEG decoder has memory-safety bugs fixed upstream only in 2.28 (we cannot patch it),
// all reached through malformed files. tessera refuses those files before stb sees them:
//   - a DHT table with more than 256 codes (2.27 writes past its `size[257]` and `values[256]`
//     arrays), or with more codes of some length than fit in that many bits;
//   - a scan using a Huffman or quantization table no DHT / DQT segment defined (2.27 does not clear
//     its decoder state, so it would decode with uninitialized tables: reads out of bounds);
//   - entropy-coded data that ends before the scan's last block, or a missing restart marker (2.27
//     then consumes bits it does not have: negative bit counts and shifts by 32 or more), and
//     invalid Huffman codes;
//   - a DC coefficient that does not fit 16 bits (2.27 overflows int in its DC prediction and
//     dequantization; every real 8-bit JPEG stays within +-2048);
//   - a component no complete scan decodes, or refined by a progressive scan before its first DC
//     scan (2.27 would return uninitialized memory as pixels).
// Decoding the Huffman data once more costs about a third of stb's decode time.
//
// stb's decoder is not libjpeg-turbo (Pillow's): the IDCT, chroma upsampling and YCbCr -> RGB
// rounding differ, so pixels may differ by a few levels (docs/inputs.md has the measurement).
// Gray JPEGs are replicated to RGB as Pillow's L -> RGB does; Adobe CMYK / YCCK JPEGs use stb's
// inverted-CMYK formula, which is algebraically Pillow's cmyk2rgb after its "CMYK;I" unpacking.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>
#include <tessera/io/detail/image_stb.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace tessera::io::detail {

/// "0xFFD8" for marker code 0xD8.
[[nodiscard]] inline std::string marker_name(std::uint8_t m) {
  static constexpr char digits[] = "0123456789ABCDEF";
  return std::string("0xFF") + digits[m >> 4] + digits[m & 0x0F];
}

/// What the marker walk learned about a JPEG file.
struct jpeg_layout {
  std::uint32_t width = 0, height = 0;
  int components = 0;
  int scans = 0;
  int adobe_transform = -1;  // APP14 "Adobe" colour transform, -1 when absent
};

/// Most scans accepted: progressive files have about 10; thousands of tiny scans over a large
/// frame would make decoding quadratic (libjpeg-turbo offers the same kind of cap).
inline constexpr int jpeg_max_scans = 1000;

/// One Huffman table of a DHT segment, ready for decoding (canonical codes, ITU T.81 annex C).
struct jpeg_huffman_table {
  static constexpr int lookup_bits = 9;
  bool defined = false;
  std::array<std::uint8_t, 256> symbols{};
  // Per code length 1..16: the first code, one past the last code, the index of the first symbol.
  std::array<std::int32_t, 17> first_code{}, end_code{}, first_index{};
  // The next 9 bits -> (code length << 8) | symbol for codes of up to 9 bits; 0: longer or invalid.
  std::array<std::uint16_t, 1 << lookup_bits> lookup{};
};

/// The tables in force at some point of the file: DHT, DQT and DRI segments may come anywhere
/// before the scan that uses them, and later segments replace earlier tables.
struct jpeg_tables {
  std::array<jpeg_huffman_table, 4> dc, ac;
  std::array<std::int32_t, 4> quant_dc{-1, -1, -1, -1};  // DC entry of each quantization table; -1: undefined
  std::uint32_t restart_interval = 0;                    // MCUs per restart interval; 0: no restarts
};

/// A frame component and what the scans did to it.
struct jpeg_component {
  int id = 0, h = 1, v = 1, tq = 0;
  std::uint32_t blocks_w = 0, blocks_h = 0;  // the blocks a non-interleaved scan codes
  std::uint32_t coeff_w = 0;                 // blocks per row of the MCU-padded layout
  std::uint32_t coeff_h = 0;
  bool decoded = false;  // sequential: a scan coded it; progressive: its first DC scan did
  // Progressive: per block (MCU-padded layout), bit k set when zigzag coefficient k is non-zero
  // as stb stores it (16 bits); refinement scans spend a correction bit on exactly those.
  std::vector<std::uint64_t> nonzero;
};

/// The frame header (SOF) with the MCU geometry stb_image uses.
struct jpeg_frame {
  bool progressive = false;
  int n = 0;
  std::array<jpeg_component, 4> comp;
  std::uint32_t mcus_x = 0, mcus_y = 0;
};

/// A scan header (SOS).
struct jpeg_scan {
  int n = 0;
  std::array<int, 4> comp{};  // frame component indices, in scan order
  std::array<int, 4> td{}, ta{};
  int ss = 0, se = 63, ah = 0, al = 0;
};

/// Reads one DHT segment's payload `s` (`plen` bytes) into `t`. Each table: class and id byte, 16
/// code counts, then as many symbols as the counts sum to.
inline void parse_jpeg_dht(image_input const& in, std::uint8_t const* s, std::size_t plen, std::size_t offset,
                           jpeg_tables& t) {
  std::string const& label = *in.label;
  std::size_t p = 0;
  while (p < plen) {
    TESSERA_CHECK(plen - p >= 17, label, ": corrupt JPEG: the Huffman table segment (DHT) at offset ", offset,
                  " ends inside a table header");
    int const tc = s[p] >> 4, th = s[p] & 15;
    TESSERA_CHECK(tc <= 1 && th <= 3, label, ": corrupt JPEG: Huffman table class ", tc, " id ", th,
                  " in the DHT segment at offset ", offset, " (class 0 or 1, id 0 to 3)");
    char const* const kind = tc == 0 ? "DC" : "AC";
    std::uint8_t const* counts = s + p + 1;
    std::size_t total = 0;
    for (int i = 0; i < 16; ++i) total += counts[i];
    TESSERA_CHECK(total <= 256, label, ": corrupt JPEG: Huffman table ", kind, th, " in the DHT segment at offset ",
                  offset, " with ", total, " codes (at most 256)");
    TESSERA_CHECK(plen - p - 17 >= total, label, ": corrupt JPEG: Huffman table ", kind, th, " declares ", total,
                  " codes, but its DHT segment at offset ", offset, " holds only ", plen - p - 17, " more bytes");
    jpeg_huffman_table& h = (tc == 0 ? t.dc : t.ac)[static_cast<std::size_t>(th)];
    h = jpeg_huffman_table{};
    std::memcpy(h.symbols.data(), s + p + 17, total);
    std::int32_t code = 0, index = 0;
    for (int len = 1; len <= 16; ++len) {
      std::int32_t const count = counts[len - 1];
      h.first_code[static_cast<std::size_t>(len)] = code;
      h.first_index[static_cast<std::size_t>(len)] = index;
      TESSERA_CHECK(code + count <= (std::int32_t{1} << len), label, ": corrupt JPEG: Huffman table ", kind, th,
                    " in the DHT segment at offset ", offset, " has more codes of up to ", len,
                    " bits than fit in ", len, " bits");
      if (len <= jpeg_huffman_table::lookup_bits)
        for (std::int32_t c = 0; c < count; ++c) {
          int const shift = jpeg_huffman_table::lookup_bits - len;
          auto const entry = static_cast<std::uint16_t>((len << 8) | h.symbols[static_cast<std::size_t>(index + c)]);
          for (std::int32_t k = (code + c) << shift; k < (code + c + 1) << shift; ++k)
            h.lookup[static_cast<std::size_t>(k)] = entry;
        }
      code += count;
      index += count;
      h.end_code[static_cast<std::size_t>(len)] = code;
      code <<= 1;
    }
    h.defined = true;
    p += 17 + total;
  }
}

/// Reads one DQT segment's payload: per table a precision and id byte, then 64 values of 8 or 16 bits.
inline void parse_jpeg_dqt(image_input const& in, std::uint8_t const* s, std::size_t plen, std::size_t offset,
                           jpeg_tables& t) {
  std::string const& label = *in.label;
  std::size_t p = 0;
  while (p < plen) {
    int const pq = s[p] >> 4, tq = s[p] & 15;
    TESSERA_CHECK(pq <= 1 && tq <= 3, label, ": corrupt JPEG: quantization table precision ", pq, " id ", tq,
                  " in the DQT segment at offset ", offset, " (precision 0 or 1, id 0 to 3)");
    std::size_t const bytes = pq == 0 ? 64 : 128;
    TESSERA_CHECK(plen - p - 1 >= bytes, label, ": corrupt JPEG: quantization table ", tq,
                  " runs past the end of its DQT segment at offset ", offset);
    t.quant_dc[static_cast<std::size_t>(tq)] = static_cast<std::int32_t>(pq == 0 ? s[p + 1] : u16be(s + p + 1));
    p += 1 + bytes;
  }
}

/// The bits of one scan's entropy-coded data, most significant first: 0xFF 0x00 is a 0xFF data byte
/// (0xFF fill bytes may come before it), a marker ends the data of a restart interval. Past the
/// data it reads zero bits, as decoders do, and remembers that it did (`overrun`).
class jpeg_bit_reader {
 public:
  jpeg_bit_reader(std::uint8_t const* data, std::size_t begin, std::size_t end) noexcept
      : d_(data), pos_(begin), end_(end) {}

  /// True once a bit past the end of the current interval's data was consumed.
  [[nodiscard]] bool overrun() const noexcept { return bits_ < pad_; }

  /// The next `n` (0 to 16) bits as an unsigned number.
  [[nodiscard]] std::uint32_t bits(int n) noexcept {
    if (n == 0) return 0;
    if (bits_ < n) fill();
    auto const v = static_cast<std::uint32_t>(acc_ >> (64 - n));
    consume(n);
    return v;
  }

  /// The next `n` bits as a signed coefficient difference (T.81 F.2.2.1 EXTEND).
  [[nodiscard]] std::int32_t extended(int n) noexcept {
    if (n == 0) return 0;
    auto const v = static_cast<std::int32_t>(bits(n));
    return v < (std::int32_t{1} << (n - 1)) ? v - (std::int32_t{1} << n) + 1 : v;
  }

  /// The next Huffman-coded symbol, or -1 for a bit sequence that is no code of `h`.
  [[nodiscard]] int decode(jpeg_huffman_table const& h) noexcept {
    if (bits_ < 16) fill();
    auto const peek = static_cast<std::uint32_t>(acc_ >> 48);
    std::uint16_t const e = h.lookup[peek >> (16 - jpeg_huffman_table::lookup_bits)];
    if (e != 0) {
      consume(e >> 8);
      return e & 0xFF;
    }
    // Codes of up to `len` bits, left-aligned to `len` bits, fill [0, end_code[len]) (canonical codes).
    for (int len = jpeg_huffman_table::lookup_bits + 1; len <= 16; ++len) {
      auto const c = static_cast<std::int32_t>(peek >> (16 - len));
      auto const l = static_cast<std::size_t>(len);
      if (c < h.end_code[l]) {
        consume(len);
        return h.symbols[static_cast<std::size_t>(h.first_index[l] + c - h.first_code[l])];
      }
    }
    return -1;
  }

  /// Ends a restart interval: drops the bits left, skips to the next marker and past it. False if
  /// that marker is not a restart marker (RSTn).
  [[nodiscard]] bool restart() noexcept {
    acc_ = 0;
    bits_ = pad_ = 0;
    at_marker_ = false;
    while (pos_ < end_) {
      if (d_[pos_] != 0xFF) {
        ++pos_;
        continue;
      }
      std::size_t q = pos_ + 1;
      while (q < end_ && d_[q] == 0xFF) ++q;
      if (q >= end_) return false;
      pos_ = q + 1;
      if (d_[q] >= 0xD0 && d_[q] <= 0xD7) return true;
    }
    return false;
  }

 private:
  void consume(int n) noexcept {
    acc_ <<= n;
    bits_ -= n;
  }
  /// The next data byte, or -1 at a marker (RSTn or the end of the scan).
  int next_byte() noexcept {
    if (pos_ >= end_) return -1;
    std::uint8_t const b = d_[pos_];
    if (b != 0xFF) {
      ++pos_;
      return b;
    }
    std::size_t q = pos_ + 1;
    while (q < end_ && d_[q] == 0xFF) ++q;
    if (q < end_ && d_[q] == 0x00) {
      pos_ = q + 1;
      return 0xFF;
    }
    return -1;
  }
  /// Tops the buffer up to more than 56 bits; zero bytes (counted in pad_) past the data.
  void fill() noexcept {
    while (bits_ <= 56) {
      int const b = at_marker_ ? -1 : next_byte();
      if (b < 0) {
        at_marker_ = true;
        pad_ += 8;
      } else {
        acc_ |= static_cast<std::uint64_t>(b) << (56 - bits_);
      }
      bits_ += 8;
    }
  }

  std::uint8_t const* d_;
  std::size_t pos_, end_;
  std::uint64_t acc_ = 0;  // bits_ valid bits, left-aligned
  int bits_ = 0;
  int pad_ = 0;            // how many of the low valid bits are zeros read past the data
  bool at_marker_ = false;
};

/// Decodes the Huffman-coded data of one scan, `d[begin, end)` (end: the marker after it), without
/// reconstructing pixels: every block the scan codes must be complete, every code valid, restart
/// markers where the restart interval puts them, DC coefficients within 16 bits. Follows the
/// decoding procedures of T.81 (F.2 sequential, G.1.2 progressive), the ones stb_image implements.
inline void check_jpeg_scan(image_input const& in, jpeg_frame& f, jpeg_tables const& t, jpeg_scan const& sc,
                            int scan_no, std::size_t begin, std::size_t end) {
  std::string const& label = *in.label;
  enum class kind { sequential, dc_first, dc_refine, ac_first, ac_refine };
  kind const mode = !f.progressive ? kind::sequential
                    : sc.ss == 0   ? (sc.ah == 0 ? kind::dc_first : kind::dc_refine)
                                   : (sc.ah == 0 ? kind::ac_first : kind::ac_refine);
  bool const single = sc.n == 1;
  jpeg_component& c0 = f.comp[static_cast<std::size_t>(sc.comp[0])];
  std::uint64_t const mcus = single ? std::uint64_t{c0.blocks_w} * c0.blocks_h : std::uint64_t{f.mcus_x} * f.mcus_y;
  if ((mode == kind::ac_first || mode == kind::ac_refine) && c0.nonzero.empty())
    c0.nonzero.assign(std::size_t{c0.coeff_w} * c0.coeff_h, 0);
  std::uint64_t band = 0;  // zigzag positions ss..se (AC scans)
  for (int k = sc.ss; k <= sc.se; ++k) band |= std::uint64_t{1} << k;

  jpeg_bit_reader r(in.data, begin, end);
  std::uint64_t mcu = 0;
  std::array<std::int32_t, 4> dc_pred{};  // per frame component
  std::uint32_t eob_run = 0;              // progressive AC: blocks left in the current end-of-band run

  auto const fail = [&](char const* what) {
    TESSERA_FAIL(label, ": corrupt JPEG: ", what, " in scan ", scan_no, " (MCU ", mcu + 1, " of ", mcus, ")");
  };
  auto const dc_step = [&](jpeg_huffman_table const& h, std::int32_t& pred, std::int32_t scale) {
    int const s = r.decode(h);
    if (s < 0) fail("an invalid Huffman code");
    if (s > 15) fail("a DC difference of more than 15 bits");
    pred += r.extended(s);
    std::int64_t const v = std::int64_t{pred} * scale;
    if (pred < -32768 || pred > 32767 || v < -32768 || v > 32767) fail("a DC coefficient that does not fit 16 bits");
  };

  // One block of frame component `ci`, at scan position `k`, block (bx, by) of the padded layout.
  auto const block = [&](int k, std::uint32_t bx, std::uint32_t by) {
    auto const ku = static_cast<std::size_t>(k);
    auto const ci = static_cast<std::size_t>(sc.comp[ku]);
    jpeg_component& c = f.comp[ci];
    jpeg_huffman_table const& dc = t.dc[static_cast<std::size_t>(sc.td[ku])];
    jpeg_huffman_table const& ac = t.ac[static_cast<std::size_t>(sc.ta[ku])];
    switch (mode) {
      case kind::sequential: {
        dc_step(dc, dc_pred[ci], t.quant_dc[static_cast<std::size_t>(c.tq)]);
        for (int z = 1; z < 64;) {
          int const rs = r.decode(ac);
          if (rs < 0) fail("an invalid Huffman code");
          int const run = rs >> 4, size = rs & 15;
          if (size == 0) {
            if (run != 15) break;  // end of block
            z += 16;
            continue;
          }
          z += run + 1;
          (void)r.bits(size);  // any value fits: |v| < 2^15
        }
        break;
      }
      case kind::dc_first:
        dc_step(dc, dc_pred[ci], std::int32_t{1} << sc.al);
        if (!c.nonzero.empty()) c.nonzero[std::size_t{by} * c.coeff_w + bx] = 0;  // stb clears the whole block
        break;
      case kind::dc_refine: (void)r.bits(1); break;
      case kind::ac_first: {
        if (eob_run > 0) {
          --eob_run;
          break;
        }
        std::uint64_t& nz = c.nonzero[std::size_t{by} * c.coeff_w + bx];
        for (int z = sc.ss; z <= sc.se;) {
          int const rs = r.decode(ac);
          if (rs < 0) fail("an invalid Huffman code");
          int const run = rs >> 4, size = rs & 15;
          if (size == 0) {
            if (run < 15) {  // end-of-band run of 2^run + extra bits blocks, this one included
              eob_run = (std::uint32_t{1} << run) - 1 + r.bits(run);
              break;
            }
            z += 16;
            continue;
          }
          z += run;
          std::int32_t const v = r.extended(size);
          // stb keeps (short)(v << al): zero when the shift pushes every set bit out of 16 bits.
          std::uint64_t const bit = std::uint64_t{1} << (z < 63 ? z : 63);  // past 63: stb writes slot 63
          if (((v * (std::int32_t{1} << sc.al)) & 0xFFFF) != 0) nz |= bit;
          else nz &= ~bit;
          ++z;
        }
        break;
      }
      case kind::ac_refine: {
        std::uint64_t& nz = c.nonzero[std::size_t{by} * c.coeff_w + bx];
        if (eob_run > 0) {  // only correction bits, one per non-zero coefficient of the band
          --eob_run;
          for (int n = std::popcount(nz & band); n > 0; n -= 16) (void)r.bits(n < 16 ? n : 16);
          break;
        }
        for (int z = sc.ss; z <= sc.se;) {
          int const rs = r.decode(ac);
          if (rs < 0) fail("an invalid Huffman code");
          int run = rs >> 4;
          int const size = rs & 15;
          bool place = false;  // a new coefficient of magnitude 2^al goes after `run` zero ones
          if (size == 0) {
            if (run < 15) {
              eob_run = (std::uint32_t{1} << run) - 1 + r.bits(run);
              run = 64;  // the rest of this block is in the run: correction bits only
            }
          } else {
            if (size != 1) fail("a refinement coefficient of more than one bit");
            (void)r.bits(1);  // its sign
            place = true;
          }
          while (z <= sc.se) {
            std::uint64_t const bit = std::uint64_t{1} << z;
            ++z;
            if (nz & bit) {
              (void)r.bits(1);  // correction bit of a non-zero coefficient
            } else if (run == 0) {
              if (place) nz |= bit;
              break;
            } else {
              --run;
            }
          }
        }
        break;
      }
    }
  };

  auto const end_mcu = [&] {
    if (r.overrun())
      TESSERA_FAIL(label, ": JPEG truncated: the entropy-coded data of scan ", scan_no, " ends inside MCU ", mcu + 1,
                   " of ", mcus, t.restart_interval != 0 ? " (or a restart interval ends early)" : "");
    ++mcu;
    if (t.restart_interval != 0 && mcu % t.restart_interval == 0 && mcu < mcus) {
      if (!r.restart())
        TESSERA_FAIL(label, ": corrupt JPEG: no restart marker after MCU ", mcu, " of scan ", scan_no,
                     " (restart interval ", t.restart_interval, ")");
      dc_pred = {};
      eob_run = 0;
    }
  };

  if (single) {  // non-interleaved: the component's own blocks, each one an MCU
    for (std::uint32_t by = 0; by < c0.blocks_h; ++by)
      for (std::uint32_t bx = 0; bx < c0.blocks_w; ++bx) {
        block(0, bx, by);
        end_mcu();
      }
  } else {
    for (std::uint32_t my = 0; my < f.mcus_y; ++my)
      for (std::uint32_t mx = 0; mx < f.mcus_x; ++mx) {
        for (int k = 0; k < sc.n; ++k) {
          jpeg_component const& c = f.comp[static_cast<std::size_t>(sc.comp[static_cast<std::size_t>(k)])];
          for (int y = 0; y < c.v; ++y)
            for (int x = 0; x < c.h; ++x)
              block(k, mx * static_cast<std::uint32_t>(c.h) + static_cast<std::uint32_t>(x),
                    my * static_cast<std::uint32_t>(c.v) + static_cast<std::uint32_t>(y));
        }
        end_mcu();
      }
  }
}

/// Reads an SOS header (`s`, `plen` bytes) and checks it against the frame and the tables in force,
/// as stb_image needs them: the components exist (each once), the tables the scan uses are
/// defined, the spectral selection and successive approximation are ones stb decodes.
[[nodiscard]] inline jpeg_scan parse_jpeg_sos(image_input const& in, jpeg_frame const& f, jpeg_tables const& t,
                                              std::uint8_t const* s, std::size_t plen, std::size_t offset) {
  std::string const& label = *in.label;
  jpeg_scan sc;
  TESSERA_CHECK(plen >= 1, label, ": corrupt JPEG: empty scan header (SOS) at offset ", offset);
  sc.n = s[0];
  TESSERA_CHECK(sc.n >= 1 && sc.n <= f.n, label, ": corrupt JPEG: scan header at offset ", offset, " with ", sc.n,
                " components (the frame has ", f.n, ")");
  TESSERA_CHECK(plen == 4 + 2 * static_cast<std::size_t>(sc.n), label, ": corrupt JPEG: scan header at offset ",
                offset, " has ", plen, " bytes, ", 4 + 2 * sc.n, " for ", sc.n, " components");
  for (int k = 0; k < sc.n; ++k) {
    auto const ku = static_cast<std::size_t>(k);
    int const id = s[1 + 2 * ku];
    int ci = 0;
    while (ci < f.n && f.comp[static_cast<std::size_t>(ci)].id != id) ++ci;  // the first match, as stb
    TESSERA_CHECK(ci < f.n, label, ": corrupt JPEG: the scan at offset ", offset, " names component ", id,
                  ", which the frame header does not have");
    for (int j = 0; j < k; ++j)
      TESSERA_CHECK(sc.comp[static_cast<std::size_t>(j)] != ci, label, ": corrupt JPEG: the scan at offset ", offset,
                    " names component ", id, " twice");
    sc.comp[ku] = ci;
    sc.td[ku] = s[2 + 2 * ku] >> 4;
    sc.ta[ku] = s[2 + 2 * ku] & 15;
    TESSERA_CHECK(sc.td[ku] <= 3 && sc.ta[ku] <= 3, label, ": corrupt JPEG: the scan at offset ", offset,
                  " selects Huffman tables DC", sc.td[ku], " / AC", sc.ta[ku], " (ids 0 to 3)");
  }
  std::uint8_t const* tail = s + 1 + 2 * static_cast<std::size_t>(sc.n);
  sc.ss = tail[0];
  sc.se = tail[1];
  sc.ah = tail[2] >> 4;
  sc.al = tail[2] & 15;
  if (!f.progressive) {
    TESSERA_CHECK(sc.ss == 0 && sc.ah == 0 && sc.al == 0, label, ": corrupt JPEG: sequential scan at offset ", offset,
                  " with spectral start ", sc.ss, " and successive approximation ", sc.ah, "/", sc.al,
                  " (must be 0, 0/0)");
    sc.se = 63;  // ignored by stb (and by libjpeg, with a warning)
  } else {
    TESSERA_CHECK(sc.ss <= sc.se && sc.se <= 63 && sc.ah <= 13 && sc.al <= 13, label,
                  ": corrupt JPEG: progressive scan at offset ", offset, " with spectral selection ", sc.ss, "..",
                  sc.se, " and successive approximation ", sc.ah, "/", sc.al, " (need 0 <= start <= end <= 63, bits <= 13)");
    TESSERA_CHECK(sc.ss != 0 || sc.se == 0, label, ": corrupt JPEG: progressive scan at offset ", offset,
                  " mixes the DC coefficient with AC coefficients 1..", sc.se);
    TESSERA_CHECK(sc.ss == 0 || sc.n == 1, label, ": corrupt JPEG: progressive AC scan at offset ", offset, " with ",
                  sc.n, " components (AC scans code one component)");
  }
  bool const uses_dc = !f.progressive || (sc.ss == 0 && sc.ah == 0);
  bool const uses_ac = !f.progressive || sc.ss > 0;
  for (int k = 0; k < sc.n; ++k) {
    auto const ku = static_cast<std::size_t>(k);
    jpeg_component const& c = f.comp[static_cast<std::size_t>(sc.comp[ku])];
    TESSERA_CHECK(!uses_dc || t.dc[static_cast<std::size_t>(sc.td[ku])].defined, label, ": corrupt JPEG: the scan at offset ",
                  offset, " uses Huffman table DC", sc.td[ku], ", which no DHT segment before it defines");
    TESSERA_CHECK(!uses_ac || t.ac[static_cast<std::size_t>(sc.ta[ku])].defined, label, ": corrupt JPEG: the scan at offset ",
                  offset, " uses Huffman table AC", sc.ta[ku], ", which no DHT segment before it defines");
    TESSERA_CHECK(t.quant_dc[static_cast<std::size_t>(c.tq)] >= 0, label, ": corrupt JPEG: component ", c.id,
                  " uses quantization table ", c.tq, ", which no DQT segment before its scan at offset ", offset, " defines");
    TESSERA_CHECK(!f.progressive || (sc.ss == 0 && sc.ah == 0) || c.decoded, label, ": corrupt JPEG: the progressive scan at offset ",
                  offset, " refines component ", c.id, " before its first DC scan");
  }
  return sc;
}

/// Reads the frame header (SOF0/1/2 payload `s`, `plen` bytes): 8-bit samples, 1, 3 or 4
/// components with sampling factors 1..4 that divide the largest ones (stb_image's resamplers need
/// integer ratios), quantization table ids 0..3; computes the block and MCU geometry.
[[nodiscard]] inline jpeg_frame parse_jpeg_sof(image_input const& in, std::uint8_t marker, std::uint8_t const* s,
                                               std::size_t plen, jpeg_layout& j) {
  std::string const& label = *in.label;
  jpeg_frame f;
  f.progressive = marker == 0xC2;
  TESSERA_CHECK(plen >= 6, label, ": corrupt JPEG: frame header of ", plen, " bytes");
  TESSERA_CHECK(s[0] == 8, label, ": ", int{s[0]}, "-bit JPEG is not supported by stb_image (8-bit only)");
  j.height = u16be(s + 1);
  j.width = u16be(s + 3);
  j.components = s[5];
  TESSERA_CHECK(j.height != 0, label, ": JPEG with the height defined by a later DNL marker is not supported");
  TESSERA_CHECK(j.components == 1 || j.components == 3 || j.components == 4, label, ": JPEG with ", j.components,
                " components is not supported (1, 3 or 4)");
  TESSERA_CHECK(plen == 6u + 3u * static_cast<std::size_t>(j.components), label, ": corrupt JPEG: frame header of ",
                plen, " bytes for ", j.components, " components (needs ", 6 + 3 * j.components, ")");
  check_budget(in, "JPEG", j.width, j.height);
  f.n = j.components;
  int hmax = 1, vmax = 1;
  for (int i = 0; i < f.n; ++i) {
    jpeg_component& c = f.comp[static_cast<std::size_t>(i)];
    std::uint8_t const* p = s + 6 + 3 * i;
    c.id = p[0];
    c.h = p[1] >> 4;
    c.v = p[1] & 15;
    c.tq = p[2];
    TESSERA_CHECK(c.h >= 1 && c.h <= 4 && c.v >= 1 && c.v <= 4 && c.tq <= 3, label, ": corrupt JPEG: component ", c.id,
                  " has sampling factors ", c.h, "x", c.v, " (1 to 4) and quantization table ", c.tq, " (0 to 3)");
    hmax = c.h > hmax ? c.h : hmax;
    vmax = c.v > vmax ? c.v : vmax;
  }
  f.mcus_x = (j.width + 8u * static_cast<std::uint32_t>(hmax) - 1) / (8u * static_cast<std::uint32_t>(hmax));
  f.mcus_y = (j.height + 8u * static_cast<std::uint32_t>(vmax) - 1) / (8u * static_cast<std::uint32_t>(vmax));
  for (int i = 0; i < f.n; ++i) {
    jpeg_component& c = f.comp[static_cast<std::size_t>(i)];
    TESSERA_CHECK(hmax % c.h == 0 && vmax % c.v == 0, label, ": JPEG component ", c.id, " has sampling factors ", c.h,
                  "x", c.v, ", not an integer fraction of the largest ones (", hmax, "x", vmax,
                  "); stb_image does not decode such files");
    auto const h = static_cast<std::uint32_t>(c.h), v = static_cast<std::uint32_t>(c.v);
    std::uint32_t const w = (j.width * h + static_cast<std::uint32_t>(hmax) - 1) / static_cast<std::uint32_t>(hmax);
    std::uint32_t const ht = (j.height * v + static_cast<std::uint32_t>(vmax) - 1) / static_cast<std::uint32_t>(vmax);
    c.blocks_w = (w + 7) / 8;
    c.blocks_h = (ht + 7) / 8;
    c.coeff_w = f.mcus_x * h;
    c.coeff_h = f.mcus_y * v;
  }
  return f;
}

/// Walks SOI, the marker segments, each scan's entropy-coded data and EOI. Refuses: frame types
/// stb_image does not decode (lossless, hierarchical, arithmetic-coded, 12-bit), a frame whose height
/// is defined later by DNL, component counts other than 1, 3, 4, 4-component files without an
/// Adobe APP14 marker (stb would treat them as YCbCr, libjpeg as CMYK), a missing EOI (truncated),
/// and everything listed at the top of this file that stb 2.27 would mishandle.
[[nodiscard]] inline jpeg_layout parse_jpeg(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(n >= 4 && d[0] == 0xFF && d[1] == 0xD8, label, ": not a JPEG file (no SOI marker)");
  jpeg_layout j;
  jpeg_frame frame;
  auto tables = std::make_unique<jpeg_tables>();  // 12 KB: kept off the stack
  bool seen_frame = false;
  std::size_t pos = 2;
  for (;;) {
    // A marker: 0xFF, optional 0xFF fill bytes, the marker code. Stray bytes before it are skipped,
    // as libjpeg (with a warning) and stb_image do.
    auto const* ff = pos < n ? static_cast<std::uint8_t const*>(std::memchr(d + pos, 0xFF, n - pos)) : nullptr;
    TESSERA_CHECK(ff != nullptr, label, ": JPEG truncated: no EOI marker (end of image)");
    pos = static_cast<std::size_t>(ff - d);
    while (pos < n && d[pos] == 0xFF) ++pos;
    TESSERA_CHECK(pos < n, label, ": JPEG truncated: no EOI marker (end of image)");
    std::uint8_t const m = d[pos++];
    if (m == 0xD9) break;                           // EOI: done; anything after it is ignored
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // TEM, stray RSTn: no payload
    TESSERA_CHECK(m != 0xD8 && m != 0x00, label, ": corrupt JPEG: unexpected marker ", marker_name(m), " at offset ", pos - 2);
    TESSERA_CHECK(n - pos >= 2, label, ": JPEG truncated inside the marker ", marker_name(m));
    std::uint32_t const len = u16be(d + pos);
    TESSERA_CHECK(len >= 2 && n - pos >= len, label, len < 2 ? ": corrupt JPEG: segment length " : ": JPEG truncated: segment of ",
                  len, " bytes at offset ", pos, " runs past the end of the file");
    std::uint8_t const* s = d + pos + 2;  // segment payload, len - 2 bytes
    std::size_t const plen = len - 2;
    std::size_t const offset = pos - 2;   // of the marker
    bool const sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      TESSERA_CHECK(m == 0xC0 || m == 0xC1 || m == 0xC2, label, ": JPEG frame type SOF", (m & 0x0F),
                    " (", (m == 0xC3 ? "lossless" : m >= 0xC9 ? "arithmetic-coded" : "hierarchical"),
                    ") is not supported by stb_image");
      TESSERA_CHECK(!seen_frame, label, ": corrupt JPEG: a second frame header (SOF) at offset ", offset);
      frame = parse_jpeg_sof(in, m, s, plen, j);
      seen_frame = true;
    } else if (m == 0xC4) {
      parse_jpeg_dht(in, s, plen, offset, *tables);
    } else if (m == 0xDB) {
      parse_jpeg_dqt(in, s, plen, offset, *tables);
    } else if (m == 0xDD) {
      TESSERA_CHECK(plen == 2, label, ": corrupt JPEG: restart interval segment (DRI) of ", plen, " bytes at offset ",
                    offset, " (needs 2)");
      tables->restart_interval = u16be(s);
    } else if (m == 0xCC) {
      TESSERA_FAIL(label, ": arithmetic-coded JPEG (DAC marker) is not supported by stb_image");
    } else if (m == 0xEE && plen >= 12 && std::memcmp(s, "Adobe\0", 6) == 0) {
      j.adobe_transform = s[11];  // stb's test ("Adobe", version high byte 0), so both agree
    }
    pos += len;
    if (m == 0xDA) {  // SOS: check the header, then the entropy-coded data up to the next marker that is not RSTn
      TESSERA_CHECK(seen_frame, label, ": corrupt JPEG: scan (SOS) before the frame header (SOF)");
      TESSERA_CHECK(++j.scans <= jpeg_max_scans, label, ": JPEG has more than ", jpeg_max_scans, " scans");
      jpeg_scan const sc = parse_jpeg_sos(in, frame, *tables, s, plen, offset);
      std::size_t end = pos;
      for (;;) {
        auto const* e = static_cast<std::uint8_t const*>(std::memchr(d + end, 0xFF, n - end));
        TESSERA_CHECK(e != nullptr, label, ": JPEG truncated: no EOI marker (end of image)");
        end = static_cast<std::size_t>(e - d);
        std::size_t q = end + 1;
        while (q < n && d[q] == 0xFF) ++q;  // fill bytes
        TESSERA_CHECK(q < n, label, ": JPEG truncated: no EOI marker (end of image)");
        if (d[q] == 0x00 || (d[q] >= 0xD0 && d[q] <= 0xD7)) {
          end = q + 1;  // a stuffed 0xFF data byte or a restart marker: still inside the scan
          continue;
        }
        break;  // `end`: the first 0xFF of the marker that ends the scan
      }
      check_jpeg_scan(in, frame, *tables, sc, j.scans, pos, end);
      for (int k = 0; k < sc.n; ++k)
        if (!frame.progressive || (sc.ss == 0 && sc.ah == 0))
          frame.comp[static_cast<std::size_t>(sc.comp[static_cast<std::size_t>(k)])].decoded = true;
      pos = end;
    }
  }
  TESSERA_CHECK(seen_frame && j.scans > 0, label, ": corrupt JPEG: EOI before any ", seen_frame ? "scan" : "frame header");
  for (int i = 0; i < frame.n; ++i) {
    jpeg_component const& c = frame.comp[static_cast<std::size_t>(i)];
    TESSERA_CHECK(c.decoded, label, ": corrupt JPEG: no scan codes component ", c.id,
                  frame.progressive ? " (no DC scan)" : "", "; stb_image would return uninitialized pixels");
  }
  TESSERA_CHECK(j.components != 4 || j.adobe_transform == 0 || j.adobe_transform == 2, label,
                ": 4-component JPEG without an Adobe CMYK/YCCK marker (transform ", j.adobe_transform,
                ") is not supported: stb_image would read it as YCbCr, libjpeg as CMYK");
  return j;
}

/// JPEG -> RGB8 through stb_image (see the top of this file for how it differs from Pillow).
[[nodiscard]] inline raw_rgb decode_jpeg(image_input const& in) {
  jpeg_layout const j = parse_jpeg(in);
  auto const h = static_cast<index_t>(j.height), w = static_cast<index_t>(j.width);
  stb_cross_check(in, in.data, in.size, "JPEG", h, w);
  raw_rgb out = make_rgb(h, w);
  auto const px = stb_load_8(in, in.data, in.size, 0, "JPEG", h, w);
  stb_to_rgb(px.data.get(), px.channels, out);
  return out;
}

}  // namespace tessera::io::detail
