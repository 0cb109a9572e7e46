// SPDX-License-Identifier: Apache-2.0
// io::decode_image / io::load_image on bad input: the pixel budget refused from the header of
// files claiming enormous sizes (before any pixel allocation), truncated and corrupted copies of
// every committed fixture (an error or the untouched image, never a crash: a small fuzz that the
// sanitizer CI build runs under ASan/UBSan), crafted JPEG and PNG defects with libjpeg-turbo's and
// libpng's reasons in the message, unknown formats, file-reading limits, stb_image's global flip
// flag (GIF), concurrent decoding. Decoding correctness against Pillow is in
// tests/golden/test_golden_image.cpp.
#include "common/compare.hpp"
#include "golden/image_test_support.hpp"

#include <tessera/core/error.hpp>
#include <tessera/io/image.hpp>

#include <stb_image.h>
#include <zlib.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}
void append(std::vector<std::byte>& out, std::string_view s) {
  for (char ch : s) out.push_back(static_cast<std::byte>(ch));
}
void put_be32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}
void put_le(std::vector<std::byte>& out, std::uint32_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
}

/// CRC-32 of a PNG chunk's type and data (zlib's, as libpng computes it).
std::uint32_t crc_of(std::vector<std::byte> const& type_and_data) {
  return static_cast<std::uint32_t>(
      ::crc32(0L, reinterpret_cast<Bytef const*>(type_and_data.data()), static_cast<uInt>(type_and_data.size())));
}

/// A PNG that is only a signature and a valid IHDR (correct CRC) claiming width x height.
std::vector<std::byte> png_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f = bytes_of({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A});
  put_be32(f, 13);
  std::vector<std::byte> chunk;
  append(chunk, "IHDR");
  put_be32(chunk, width);
  put_be32(chunk, height);
  for (int b : {8, 2, 0, 0, 0}) chunk.push_back(static_cast<std::byte>(b));
  f.insert(f.end(), chunk.begin(), chunk.end());
  put_be32(f, crc_of(chunk));
  return f;
}
/// BMP file header + 40-byte info header claiming width x height (24-bit), no pixel data.
std::vector<std::byte> bmp_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f;
  append(f, "BM");
  put_le(f, 54, 4);
  put_le(f, 0, 4);
  put_le(f, 54, 4);
  put_le(f, 40, 4);
  put_le(f, width, 4);
  put_le(f, height, 4);
  put_le(f, 1, 2);
  put_le(f, 24, 2);
  for (int i = 0; i < 6; ++i) put_le(f, 0, 4);
  return f;
}
/// GIF header + screen descriptor claiming width x height, then an empty 1 x 1 frame.
std::vector<std::byte> gif_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f;
  append(f, "GIF89a");
  put_le(f, width, 2);
  put_le(f, height, 2);
  for (int b : {0, 0, 0, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 0, 0x3B}) f.push_back(static_cast<std::byte>(b));
  return f;
}
/// JPEG SOI + baseline SOF0 claiming width x height, 3 components, the scan header (the end of
/// what a JPEG decoder reads as the header), no data, EOI.
std::vector<std::byte> jpeg_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f = bytes_of({0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8});
  put_le(f, ((height & 0xFF) << 8) | (height >> 8), 2);  // big-endian
  put_le(f, ((width & 0xFF) << 8) | (width >> 8), 2);
  for (int b : {3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1}) f.push_back(static_cast<std::byte>(b));
  for (int b : {0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0, 0xFF, 0xD9})
    f.push_back(static_cast<std::byte>(b));
  return f;
}
/// TGA header claiming width x height, 24-bit uncompressed, no pixel data.
std::vector<std::byte> tga_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f = bytes_of({0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  put_le(f, width, 2);
  put_le(f, height, 2);
  for (int b : {24, 0}) f.push_back(static_cast<std::byte>(b));
  return f;
}

/// A marker segment: 0xFF, the marker code, the big-endian length (payload + 2), the payload.
void put_segment(std::vector<std::byte>& f, int marker, std::vector<int> const& payload) {
  f.push_back(std::byte{0xFF});
  f.push_back(static_cast<std::byte>(marker));
  std::size_t const len = payload.size() + 2;
  f.push_back(static_cast<std::byte>(len >> 8));
  f.push_back(static_cast<std::byte>(len & 0xFF));
  for (int b : payload) f.push_back(static_cast<std::byte>(b));
}

/// Entropy-coded JPEG data: bits most significant first, the last byte padded with 1s, a 0x00
/// stuffed after every 0xFF, as encoders write it.
std::vector<std::byte> jpeg_entropy(std::vector<std::pair<std::uint32_t, int>> const& codes) {
  std::vector<int> bits;
  for (auto const& [v, n] : codes)
    for (int i = n - 1; i >= 0; --i) bits.push_back(static_cast<int>((v >> i) & 1));
  while (bits.size() % 8 != 0) bits.push_back(1);
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < bits.size(); i += 8) {
    int v = 0;
    for (std::size_t k = 0; k < 8; ++k) v = 2 * v + bits[i + k];
    out.push_back(static_cast<std::byte>(v));
    if (v == 0xFF) out.push_back(std::byte{0x00});
  }
  return out;
}

/// A small gray baseline JPEG, 8 pixels wide and 8 * `blocks` high, built segment by segment so
/// that a test can break one thing at a time. Huffman tables: DC0 codes '0' (difference 0) and
/// '10' (a 15-bit difference follows; a code of all 1 bits is not allowed); AC0 code '0' (end of
/// block).
struct tiny_jpeg {
  static constexpr std::pair<std::uint32_t, int> dc_zero{0, 1}, end_of_block{0, 1};
  int blocks = 2;
  std::vector<int> dqt = [] {  // table 0, 8-bit, all 1
    std::vector<int> v(65, 1);
    v[0] = 0x00;  // precision 0, id 0
    return v;
  }();
  std::vector<std::vector<int>> components = {{1, 0x11, 0}};
  std::vector<int> dht_dc = {0x00, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15};
  std::vector<int> dht_ac = {0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00};
  std::vector<int> dri;                        // empty: no DRI segment
  std::vector<std::vector<int>> scan_components = {{1, 0x00}};
  std::vector<std::byte> data = jpeg_entropy({dc_zero, end_of_block, dc_zero, end_of_block});

  [[nodiscard]] std::vector<std::byte> bytes() const {
    std::vector<std::byte> f = bytes_of({0xFF, 0xD8});
    put_segment(f, 0xDB, dqt);
    std::vector<int> sof = {8, (8 * blocks) >> 8, (8 * blocks) & 0xFF, 0, 8, static_cast<int>(components.size())};
    for (auto const& c : components) sof.insert(sof.end(), c.begin(), c.end());
    put_segment(f, 0xC0, sof);
    put_segment(f, 0xC4, dht_dc);
    put_segment(f, 0xC4, dht_ac);
    if (!dri.empty()) put_segment(f, 0xDD, dri);
    std::vector<int> sos = {static_cast<int>(scan_components.size())};
    for (auto const& c : scan_components) sos.insert(sos.end(), c.begin(), c.end());
    for (int b : {0, 63, 0}) sos.push_back(b);
    put_segment(f, 0xDA, sos);
    f.insert(f.end(), data.begin(), data.end());
    for (int b : {0xFF, 0xD9}) f.push_back(static_cast<std::byte>(b));
    return f;
  }
};

/// Where the entropy-coded data that starts at `data` ends: the first marker other than RSTn.
std::size_t jpeg_scan_end(std::vector<std::byte> const& b, std::size_t data) {
  std::size_t e = data;
  while (!(b[e] == std::byte{0xFF} && b[e + 1] != std::byte{0x00} &&
           (b[e + 1] < std::byte{0xD0} || b[e + 1] > std::byte{0xD7})))
    ++e;
  return e;
}

/// The message of the tessera::error decoding `bytes` throws ("" if it decodes).
std::string decode_error(std::vector<std::byte> const& bytes) {
  try {
    (void)io::decode_image(bytes);
  } catch (tessera::error const& e) {
    return e.message();
  }
  return "";
}

/// A grayscale PNG of width x 1 pixels whose IDAT holds `zlib` (chunk CRCs correct).
std::vector<std::byte> png_with_zlib(std::uint32_t width, std::vector<int> const& zlib) {
  std::vector<std::byte> f = bytes_of({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A});
  auto chunk = [&](std::string_view type, std::vector<std::byte> const& data) {
    put_be32(f, static_cast<std::uint32_t>(data.size()));
    std::vector<std::byte> body;
    append(body, type);
    body.insert(body.end(), data.begin(), data.end());
    f.insert(f.end(), body.begin(), body.end());
    put_be32(f, crc_of(body));
  };
  std::vector<std::byte> ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, 1);
  for (int b : {8, 0, 0, 0, 0}) ihdr.push_back(static_cast<std::byte>(b));
  chunk("IHDR", ihdr);
  std::vector<std::byte> idat;
  for (int b : zlib) idat.push_back(static_cast<std::byte>(b));
  chunk("IDAT", idat);
  chunk("IEND", {});
  return f;
}

/// Every committed fixture: (file name, bytes).
std::vector<std::pair<std::string, std::vector<std::byte>>> const& fixtures() {
  static auto const all = [] {
    std::vector<std::pair<std::string, std::vector<std::byte>>> v;
    for (auto const& e : std::filesystem::directory_iterator(test::golden_path("images")))
      v.emplace_back(e.path().filename().string(), test::read_bytes(e.path()));
    std::sort(v.begin(), v.end());
    return v;
  }();
  return all;
}

/// Decodes `bytes`; true if it succeeded. Any exception other than tessera::error fails the test.
bool try_decode(std::vector<std::byte> const& bytes, io::rgb_image* out = nullptr, io::image_limits limits = {}) {
  try {
    io::rgb_image img = io::decode_image(bytes, limits);
    if (out != nullptr) *out = std::move(img);
    return true;
  } catch (tessera::error const&) {
    return false;
  }
}

bool same_pixels(io::rgb_image const& a, io::rgb_image const& b) {
  return a.height() == b.height() && a.width() == b.width() &&
         std::memcmp(a.data(), b.data(), a.pixels().size()) == 0;
}

}  // namespace

TEST_CASE("decode_image refuses headers beyond the pixel budget before allocating", "[io][image][unit]") {
  struct crafted {
    char const* format;
    std::vector<std::byte> bytes;
  };
  std::vector<crafted> const cases = {
      {"PNG", png_header_only(100000, 100000)}, {"BMP", bmp_header_only(100000, 100000)},
      {"GIF", gif_header_only(65535, 65535)},   {"JPEG", jpeg_header_only(65500, 65500)},
      {"TGA", tga_header_only(65535, 65535)},
  };
  for (auto const& c : cases) {
    INFO(c.format);
    REQUIRE_THROWS_WITH(io::decode_image(c.bytes), ContainsSubstring(c.format) && ContainsSubstring("max_pixels") &&
                                                       ContainsSubstring("refused before decoding"));
    // With the budget lifted the same bytes fail later for another reason (no pixel data), which
    // shows the budget is checked first, from the header alone.
    // Nothing is allocated for the claimed size then either: each format checks that the file can
    // back the declared pixels before allocating them.
    io::image_limits huge;
    huge.max_pixels = std::int64_t{1} << 40;
    REQUIRE_THROWS_AS(io::decode_image(c.bytes, huge), tessera::error);
    try {
      (void)io::decode_image(c.bytes, huge);
    } catch (tessera::error const& e) {
      CHECK_THAT(e.message(), !ContainsSubstring("max_pixels"));
    }
  }
}

TEST_CASE("image_limits are configurable: pixels, side, file size", "[io][image][unit]") {
  auto const path = test::golden_path("images/png_rgb.png");  // 13 x 11
  io::image_limits lim;
  lim.max_pixels = 13 * 11;
  CHECK(io::load_image(path, lim).width() == 13);
  lim.max_pixels = 13 * 11 - 1;
  REQUIRE_THROWS_WITH(io::load_image(path, lim), ContainsSubstring("max_pixels") && ContainsSubstring("png_rgb.png"));
  lim = {};
  lim.max_side = 12;
  REQUIRE_THROWS_WITH(io::load_image(path, lim), ContainsSubstring("max_side"));
  lim = {};
  lim.max_file_bytes = 100;
  REQUIRE_THROWS_WITH(io::load_image(path, lim), ContainsSubstring("max_file_bytes"));
  lim = {};
  lim.max_pixels = 0;
  REQUIRE_THROWS_AS(io::load_image(path, lim), tessera::error);
}

TEST_CASE("truncated copies of every fixture give an error or the full image, never garbage", "[io][image][unit]") {
  REQUIRE(fixtures().size() >= 40);
  for (auto const& [name, bytes] : fixtures()) {
    INFO(name);
    io::rgb_image full;
    REQUIRE(try_decode(bytes, &full));
    int accepted = 0;
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      std::vector<std::byte> const cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
      io::rgb_image img;
      if (try_decode(cut, &img)) {
        INFO("prefix of " << n << " bytes decoded to a different image");
        REQUIRE(same_pixels(img, full));  // only trailing data the decoder does not need was cut
        ++accepted;
      }
    }
    // What may be cut without losing pixels: the GIF trailer, the TGA 2.0 footer Pillow writes.
    CHECK(accepted <= 26);
  }
}

TEST_CASE("corrupted fixtures never crash the decoders", "[io][image][unit]") {
  std::mt19937_64 rng(test::seed(4242));
  INFO("seed " << test::seed(4242));
  int errors = 0, decoded = 0;
  for (auto const& [name, bytes] : fixtures()) {
    INFO(name);
    for (int trial = 0; trial < 150; ++trial) {
      std::vector<std::byte> m = bytes;
      int const edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        std::size_t const pos = rng() % m.size();
        switch (rng() % 3) {
          case 0: m[pos] = static_cast<std::byte>(rng() & 0xFF); break;          // random byte
          case 1: m[pos] ^= static_cast<std::byte>(1u << (rng() % 8)); break;     // one bit
          default: m[pos] = static_cast<std::byte>((rng() & 1) ? 0xFF : 0x00); break;
        }
      }
      io::image_limits lim;
      lim.max_pixels = 1 << 22;  // keep absurd (but valid) sizes from corrupted headers cheap
      io::rgb_image img;
      if (try_decode(m, &img, lim)) {
        ++decoded;
        CHECK(img.height() * img.width() <= lim.max_pixels);
      } else {
        ++errors;
      }
    }
  }
  CHECK(errors > 0);
  CHECK(decoded > 0);
}

TEST_CASE("random bytes, with and without a format's magic number, never crash", "[io][image][unit]") {
  std::mt19937_64 rng(test::seed(77));
  std::vector<std::string> const magics = {"", "\x89PNG\r\n\x1a\n", "\xFF\xD8\xFF", "GIF89a", "BM", std::string("\0\0\2", 3)};
  for (auto const& magic : magics)
    for (int trial = 0; trial < 200; ++trial) {
      std::size_t const n = rng() % 300;
      std::vector<std::byte> b;
      append(b, magic);
      for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::byte>(rng() & 0xFF));
      io::image_limits lim;
      lim.max_pixels = 1 << 22;
      (void)try_decode(b, nullptr, lim);
    }
  SUCCEED("no crash");
}

TEST_CASE("decode_image names what is wrong", "[io][image][unit]") {
  REQUIRE_THROWS_WITH(io::decode_image({}), ContainsSubstring("unknown image format") && ContainsSubstring("0 bytes"));
  std::vector<std::byte> webp;
  append(webp, std::string("RIFF\x10\0\0\0WEBPVP8 ", 16));
  REQUIRE_THROWS_WITH(io::decode_image(webp), ContainsSubstring("WebP") && ContainsSubstring("not supported"));
  std::vector<std::byte> tiff;
  append(tiff, std::string("II*\0\x08\0\0\0", 8));
  REQUIRE_THROWS_WITH(io::decode_image(tiff), ContainsSubstring("TIFF"));

  // A PNG whose image data was altered: zlib's checksum or libpng's CRC catches it.
  auto png = test::read_bytes(test::golden_path("images/png_rgb.png"));
  png[png.size() - 20] ^= std::byte{0x40};  // inside the IDAT data
  REQUIRE_THROWS_WITH(io::decode_image(png), ContainsSubstring("corrupt PNG") && ContainsSubstring("IDAT"));
  png = test::read_bytes(test::golden_path("images/png_rgb.png"));
  png[png.size() - 13] ^= std::byte{0x01};  // the IDAT chunk's CRC
  REQUIRE_THROWS_WITH(io::decode_image(png), ContainsSubstring("corrupt PNG") && ContainsSubstring("IDAT: CRC error"));

  // A JPEG without its end-of-image marker (Pillow: "image file is truncated").
  auto jpg = test::read_bytes(test::golden_path("images/jpeg_rgb.jpg"));
  jpg.resize(jpg.size() - 2);
  REQUIRE_THROWS_WITH(io::decode_image(jpg), ContainsSubstring("JPEG truncated") &&
                                                 ContainsSubstring("Premature end of JPEG file"));

  // A GIF frame reaching outside the logical screen (Pillow would grow the image; refused).
  auto gif = test::read_bytes(test::golden_path("images/gif_p.gif"));
  gif[6] = std::byte{5};  // screen width 5 < frame width 13
  gif[7] = std::byte{0};
  REQUIRE_THROWS_WITH(io::decode_image(gif), ContainsSubstring("outside"));

  // A BMP cut inside its pixel rows.
  auto bmp = test::read_bytes(test::golden_path("images/bmp_rgb24.bmp"));
  bmp.resize(bmp.size() - 1);
  REQUIRE_THROWS_WITH(io::decode_image(bmp), ContainsSubstring("BMP truncated"));

  // A 2-component JPEG (Pillow: "cannot handle 2-layer images").
  tiny_jpeg two;
  two.components = {{1, 0x11, 0}, {2, 0x11, 0}};
  two.scan_components = {{1, 0x00}, {2, 0x00}};
  REQUIRE_THROWS_WITH(io::decode_image(two.bytes()), ContainsSubstring("a JPEG with 2 components"));
}

TEST_CASE("4-component JPEGs are inverted CMYK with or without an Adobe marker, as in Pillow", "[io][image][unit]") {
  auto const cmyk = test::read_bytes(test::golden_path("images/jpeg_cmyk.jpg"));
  auto renamed = cmyk;  // "Adobe" -> "Xdobe": libjpeg no longer sees the marker, the samples are the same
  int markers = 0;
  for (std::size_t i = 0; i + 7 < renamed.size(); ++i)
    if (renamed[i] == std::byte{0xFF} && renamed[i + 1] == std::byte{0xEE}) {
      renamed[i + 4] = std::byte{'X'};
      ++markers;
    }
  REQUIRE(markers == 1);
  CHECK(same_pixels(io::decode_image(renamed), io::decode_image(cmyk)));
}

// Crafted JPEGs, one defect each: libjpeg-turbo refuses them, or warns that the data is corrupt
// (and would decode damaged blocks, as Pillow does); either way decode_image throws, naming
// libjpeg's reason.

TEST_CASE("tiny_jpeg, the base of the crafted JPEGs below, decodes", "[io][image][unit]") {
  io::rgb_image const img = io::decode_image(tiny_jpeg{}.bytes());
  CHECK(img.height() == 16);
  CHECK(img.width() == 8);
  CHECK(img.data()[0] == 128);  // DC 0: mid-gray
  CHECK(img.data()[3 * 8 * 16 - 1] == 128);
}

TEST_CASE("JPEG Huffman and quantization tables that are invalid or undefined are refused", "[io][image][unit]") {
  tiny_jpeg j;
  j.dht_dc = {0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 45, 255};  // 300 codes
  for (int i = 0; i < 300; ++i) j.dht_dc.push_back(i % 16);
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("cannot decode this JPEG") && ContainsSubstring("Huffman table"));
  j = tiny_jpeg{};
  j.dht_dc[2] = 3;  // three codes of 2 bits after one of 1 bit cannot be prefix-free
  for (int v : {1, 2}) j.dht_dc.push_back(v);
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("Huffman table"));
  j = tiny_jpeg{};
  j.dht_ac[0] = 0x24;  // class 2
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("Bogus DHT index"));
  j = tiny_jpeg{};
  j.scan_components = {{1, 0x02}};  // AC table 2: no DHT segment defines it, and it has no default
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("Huffman table 0x02 was not defined"));
  j = tiny_jpeg{};
  j.components = {{1, 0x11, 3}};  // quantization table 3
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("Quantization table 0x03 was not defined"));
}

TEST_CASE("JPEG scans whose entropy-coded data ends early are refused", "[io][image][unit]") {
  // libjpeg pads such a scan with zeros and warns; Pillow ignores the warning and returns the
  // padded blocks. tessera: "JPEG truncated".
  tiny_jpeg j;
  j.data = jpeg_entropy({{2, 2}, {0x7FFF, 3}});  // block 1 cut inside its 15-bit DC difference
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("JPEG truncated") && ContainsSubstring("libjpeg-turbo"));
  j.data.clear();  // no data at all
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("JPEG truncated"));
  // Every cut of each fixture's first scan, closed with an EOI marker: an error or (a cut only in
  // the padding of the last byte) the complete image, never one decoded from zero-filled data.
  int jpegs = 0;
  for (auto const& [name, bytes] : fixtures()) {
    // Arithmetic-coded scans that end early are padded with zeros by libjpeg without a warning
    // (T.81's decoding procedure does the same); only their missing end of file is detected.
    if (name.find(".jpg") == std::string::npos || name.find("arithmetic") != std::string::npos) continue;
    ++jpegs;
    INFO(name);
    io::rgb_image const full = io::decode_image(bytes);
    std::size_t sos = 0;
    while (!(bytes[sos] == std::byte{0xFF} && bytes[sos + 1] == std::byte{0xDA})) ++sos;
    std::size_t const data = sos + 2 + ((static_cast<std::size_t>(bytes[sos + 2]) << 8) | static_cast<std::size_t>(bytes[sos + 3]));
    std::size_t const scan_end = jpeg_scan_end(bytes, data);
    for (std::size_t cut = data; cut < scan_end; ++cut) {
      std::vector<std::byte> b(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      for (int v : {0xFF, 0xD9}) b.push_back(static_cast<std::byte>(v));
      io::rgb_image img;
      if (try_decode(b, &img)) {
        INFO("scan cut after " << cut - data << " of " << scan_end - data << " bytes");
        REQUIRE(same_pixels(img, full));
      }
    }
  }
  CHECK(jpegs >= 4);
}

TEST_CASE("JPEG files with missing restart markers or a broken progression are refused", "[io][image][unit]") {
  tiny_jpeg j;
  j.dri = {0, 1};  // a restart marker after every MCU, but the data has none
  CHECK_THAT(decode_error(j.bytes()), ContainsSubstring("cannot decode this JPEG") && ContainsSubstring("RST"));
  j.data = jpeg_entropy({tiny_jpeg::dc_zero, tiny_jpeg::end_of_block});
  for (int b : {0xFF, 0xD0}) j.data.push_back(static_cast<std::byte>(b));
  auto const second = jpeg_entropy({tiny_jpeg::dc_zero, tiny_jpeg::end_of_block});
  j.data.insert(j.data.end(), second.begin(), second.end());
  CHECK(decode_error(j.bytes()).empty());  // with the marker it decodes

  auto prog = test::read_bytes(test::golden_path("images/jpeg_rgb444_progressive.jpg"));
  REQUIRE(decode_error(prog).empty());
  std::vector<std::size_t> sos;
  for (std::size_t i = 0; i + 1 < prog.size(); ++i)
    if (prog[i] == std::byte{0xFF} && prog[i + 1] == std::byte{0xDA}) sos.push_back(i);
  REQUIRE(sos.size() >= 3);
  // Drop the first scan (the DC scan): the AC scans then refine blocks nothing initialized.
  std::size_t const dc_end = jpeg_scan_end(prog, sos[0] + 14);  // SOS of 3 components: 14 bytes
  std::vector<std::byte> no_dc(prog.begin(), prog.begin() + static_cast<std::ptrdiff_t>(sos[0]));
  no_dc.insert(no_dc.end(), prog.begin() + static_cast<std::ptrdiff_t>(dc_end), prog.end());
  CHECK_THAT(decode_error(no_dc), ContainsSubstring("Inconsistent progression"));
  // Cut the last scan short.
  std::vector<std::byte> cut(prog.begin(), prog.begin() + static_cast<std::ptrdiff_t>(sos.back() + 16));
  for (int b : {0xFF, 0xD9}) cut.push_back(static_cast<std::byte>(b));
  CHECK_THAT(decode_error(cut), ContainsSubstring("JPEG truncated"));
}

TEST_CASE("JPEG frames the file cannot fill, and files of too many scans, are refused", "[io][image][unit]") {
  // 8000 x 8000 pixels need 10^6 blocks; Huffman coding spends a bit at least on each.
  CHECK_THAT(decode_error(jpeg_header_only(8000, 8000)),
             ContainsSubstring("JPEG truncated") && ContainsSubstring("1000000 coded blocks"));
  // Three components, one sequential scan each, then the scans repeated (each rewrites its
  // component): valid up to the scan limit.
  auto const with_scans = [](int scans) {
    tiny_jpeg j;
    j.components = {{1, 0x11, 0}, {2, 0x11, 0}, {3, 0x11, 0}};
    std::vector<std::byte> f = j.bytes();
    f.resize(f.size() - 2);  // EOI
    for (int i = 1; i < scans; ++i) {
      put_segment(f, 0xDA, {1, 1 + i % 3, 0x00, 0, 63, 0});
      f.insert(f.end(), j.data.begin(), j.data.end());
    }
    for (int b : {0xFF, 0xD9}) f.push_back(static_cast<std::byte>(b));
    return f;
  };
  io::rgb_image const three = io::decode_image(with_scans(3));
  CHECK(three.data()[0] == 128);
  CHECK(three.data()[1] == 128);
  CHECK(decode_error(with_scans(io::detail::jpeg_max_scans)).empty());
  CHECK_THAT(decode_error(with_scans(io::detail::jpeg_max_scans + 1)), ContainsSubstring("more than 1000 scans"));
}

TEST_CASE("PNG zlib streams with invalid deflate symbols are refused", "[io][image][unit]") {
  // Fixed-code blocks give the reserved distance symbols 30/31 and length symbols 286/287 a code.
  // Both streams below: literal 0 (the row's filter byte), then a 3-byte match, then end of
  // block, then an Adler-32.
  std::vector<int> const dist30 = {0x78, 0x01, 0x63, 0x00, 0x3E, 0x00, 0x00, 0x00, 0x00, 0x00};
  CHECK_THAT(decode_error(png_with_zlib(3, dist30)), ContainsSubstring("corrupt PNG") && ContainsSubstring("invalid distance code"));
  std::vector<int> dist0 = dist30;  // the same with distance symbol 0 and the right Adler-32: three 0 bytes
  dist0[4] = 0x02;
  dist0[6] = 0x00, dist0[7] = 0x04, dist0[8] = 0x00, dist0[9] = 0x01;
  CHECK(decode_error(png_with_zlib(3, dist0)).empty());
  // Literal 0 four times, then length symbol 286.
  std::vector<int> const len286 = {0x78, 0x01, 0x63, 0x60, 0x60, 0x60, 0x18, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00};
  CHECK_THAT(decode_error(png_with_zlib(3, len286)), ContainsSubstring("invalid literal/length code"));
}

TEST_CASE("PNG files a decoder must not trust are refused, naming libpng's reason", "[io][image][unit]") {
  auto const base = test::read_bytes(test::golden_path("images/png_rgb.png"));
  // An ancillary chunk with a wrong CRC (Pillow checks those too).
  std::vector<std::byte> png(base.begin(), base.begin() + 33);
  std::vector<std::byte> text;
  append(text, "tEXtComment");
  text.push_back(std::byte{0});
  append(text, "hello");
  put_be32(png, static_cast<std::uint32_t>(text.size() - 4));
  png.insert(png.end(), text.begin(), text.end());
  put_be32(png, crc_of(text) ^ 1u);
  png.insert(png.end(), base.begin() + 33, base.end());
  CHECK_THAT(decode_error(png), ContainsSubstring("corrupt PNG") && ContainsSubstring("tEXt") && ContainsSubstring("CRC"));
  // An unknown critical chunk (Apple's CgBI is one).
  std::vector<std::byte> cgbi(base.begin(), base.begin() + 33);
  std::vector<std::byte> body;
  append(body, "CgBI");
  for (int b : {0x50, 0x00, 0x20, 0x06}) body.push_back(static_cast<std::byte>(b));
  put_be32(cgbi, 4);
  cgbi.insert(cgbi.end(), body.begin(), body.end());
  put_be32(cgbi, crc_of(body));
  cgbi.insert(cgbi.end(), base.begin() + 33, base.end());
  CHECK_THAT(decode_error(cgbi), ContainsSubstring("corrupt PNG") && ContainsSubstring("CgBI"));
  // IHDR that is not the first chunk.
  std::vector<std::byte> late(base.begin(), base.begin() + 8);
  late.insert(late.end(), cgbi.begin() + 33, cgbi.begin() + 33 + 16);
  late.insert(late.end(), base.begin() + 8, base.end());
  CHECK_THAT(decode_error(late), ContainsSubstring("not a PNG file"));
  // A PNG whose IDAT claims far more rows than its few bytes can inflate to.
  auto tall = png_header_only(64, 1u << 20);
  CHECK_THAT(decode_error(tall), ContainsSubstring("PNG truncated") && ContainsSubstring("cannot inflate"));
  // A file without IEND.
  std::vector<std::byte> no_iend(base.begin(), base.end() - 12);
  CHECK_THAT(decode_error(no_iend), ContainsSubstring("PNG truncated"));
}

TEST_CASE("load_image reads regular files only, with errors naming the path", "[io][image][unit]") {
  REQUIRE_THROWS_WITH(io::load_image("/nonexistent/tessera.png"),
                      ContainsSubstring("/nonexistent/tessera.png") && ContainsSubstring("cannot open"));
  REQUIRE_THROWS_WITH(io::load_image(test::golden_path("images")), ContainsSubstring("not a regular file"));
  auto const path = test::golden_path("images/tga_rgb.tga");
  io::rgb_image const a = io::load_image(path);
  io::rgb_image const b = io::decode_image(test::read_bytes(path));
  CHECK(same_pixels(a, b));
  auto const bad = std::filesystem::temp_directory_path() / "tessera_test_image_bad.png";
  {
    std::ofstream f(bad, std::ios::binary);
    f << "\x89PNG\r\n\x1a\n not really";
  }
  REQUIRE_THROWS_WITH(io::load_image(bad), ContainsSubstring(bad.string()) && ContainsSubstring("not a PNG"));
  std::filesystem::remove(bad);
}

TEST_CASE("stb_image's global vertical-flip flag does not affect decode_image", "[io][image][unit]") {
  auto const bytes = test::read_bytes(test::golden_path("images/gif_p.gif"));  // GIF frames go through stb
  io::rgb_image const before = io::decode_image(bytes);
  stbi_set_flip_vertically_on_load(1);
  io::rgb_image const after = io::decode_image(bytes);
  stbi_set_flip_vertically_on_load(0);
  CHECK(same_pixels(before, after));
}

TEST_CASE("decode_image is safe to call from several threads at once", "[io][image][unit]") {
  std::vector<io::rgb_image> want;
  for (auto const& f : fixtures()) want.push_back(io::decode_image(f.second));
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      int good = 0;
      for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < fixtures().size(); ++i)
          if (same_pixels(io::decode_image(fixtures()[i].second), want[i])) ++good;
      ok[static_cast<std::size_t>(t)] = good;
    });
  for (auto& th : threads) th.join();
  for (int good : ok) CHECK(good == static_cast<int>(3 * fixtures().size()));
}

TEST_CASE("rgb_image owns HWC pixels", "[io][image][unit]") {
  io::rgb_image img(2, 3);
  CHECK(img.pixels().size() == 18);
  CHECK(std::all_of(img.pixels().begin(), img.pixels().end(), [](std::uint8_t v) { return v == 0; }));
  img.view()(1, 2, 0) = 7;
  CHECK(img.data()[(1 * 3 + 2) * 3] == 7);
  io::rgb_image const c = img.clone();
  CHECK(c.view()(1, 2, 0) == 7);
  CHECK(c.view().extent(0) == 2);
  CHECK(c.view().extent(1) == 3);
  CHECK(c.view().extent(2) == 3);
  REQUIRE_THROWS_AS(io::rgb_image(2, 3, host_buffer<std::uint8_t>(17)), tessera::error);
  REQUIRE_THROWS_AS(io::rgb_image(-1, 3), tessera::error);
  CHECK(io::rgb_image().empty());
}
