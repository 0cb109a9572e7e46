// SPDX-License-Identifier: Apache-2.0
// io::decode_image / io::load_image on bad input: the pixel budget refused from the header of
// files claiming enormous sizes (before any pixel allocation), truncated and corrupted copies of
// every committed fixture (an error or the untouched image, never a crash: a small fuzz that the
// sanitizer CI build runs under ASan/UBSan), unknown formats, file-reading limits, stb_image's global
// flip flag, concurrent decoding. Decoding correctness against Pillow is in
// tests/golden/test_golden_image.cpp.
#include "common/compare.hpp"
#include "golden/image_test_support.hpp"

#include <tessera/core/error.hpp>
#include <tessera/io/image.hpp>

#include <stb_image.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <array>
#include <chrono>
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
  put_be32(f, io::detail::crc32(reinterpret_cast<std::uint8_t const*>(chunk.data()), chunk.size()));
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
/// JPEG SOI + baseline SOF0 claiming width x height, 3 components, then EOI.
std::vector<std::byte> jpeg_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::byte> f = bytes_of({0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8});
  put_le(f, ((height & 0xFF) << 8) | (height >> 8), 2);  // big-endian
  put_le(f, ((width & 0xFF) << 8) | (width >> 8), 2);
  for (int b : {3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9}) f.push_back(static_cast<std::byte>(b));
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
      {"GIF", gif_header_only(65535, 65535)},   {"JPEG", jpeg_header_only(65535, 65535)},
      {"TGA", tga_header_only(65535, 65535)},
  };
  for (auto const& c : cases) {
    INFO(c.format);
    auto const t0 = std::chrono::steady_clock::now();
    REQUIRE_THROWS_WITH(io::decode_image(c.bytes), ContainsSubstring(c.format) && ContainsSubstring("max_pixels") &&
                                                       ContainsSubstring("refused before decoding"));
    // No 10^10-pixel allocation happened: the refusal is immediate.
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    // With the budget lifted the same bytes fail later for another reason (no pixel data), which
    // shows the budget is checked first, from the header alone.
    // Nothing is allocated for the claimed size then either: each format checks that the file can
    // back the declared pixels before allocating them (the whole call stays quick, even under ASan).
    io::image_limits huge;
    huge.max_pixels = std::int64_t{1} << 40;
    auto const t1 = std::chrono::steady_clock::now();
    REQUIRE_THROWS_AS(io::decode_image(c.bytes, huge), tessera::error);
    try {
      (void)io::decode_image(c.bytes, huge);
    } catch (tessera::error const& e) {
      CHECK_THAT(e.message(), !ContainsSubstring("max_pixels"));
    }
    CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::seconds(1));
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

  // A PNG whose chunk data was altered: the CRC catches it.
  auto png = test::read_bytes(test::golden_path("images/png_rgb.png"));
  png[png.size() - 20] ^= std::byte{0x40};  // inside the IDAT data
  REQUIRE_THROWS_WITH(io::decode_image(png), ContainsSubstring("CRC mismatch") && ContainsSubstring("IDAT"));

  // A JPEG without its end-of-image marker.
  auto jpg = test::read_bytes(test::golden_path("images/jpeg_rgb.jpg"));
  jpg.resize(jpg.size() - 2);
  REQUIRE_THROWS_WITH(io::decode_image(jpg), ContainsSubstring("JPEG truncated") && ContainsSubstring("EOI"));

  // A GIF frame reaching outside the logical screen (Pillow would grow the image; refused).
  auto gif = test::read_bytes(test::golden_path("images/gif_p.gif"));
  gif[6] = std::byte{5};  // screen width 5 < frame width 13
  gif[7] = std::byte{0};
  REQUIRE_THROWS_WITH(io::decode_image(gif), ContainsSubstring("outside"));

  // A BMP cut inside its pixel rows.
  auto bmp = test::read_bytes(test::golden_path("images/bmp_rgb24.bmp"));
  bmp.resize(bmp.size() - 1);
  REQUIRE_THROWS_WITH(io::decode_image(bmp), ContainsSubstring("BMP truncated"));

  // A 4-component JPEG without an Adobe marker is ambiguous (YCbCr for stb, CMYK for libjpeg).
  auto cmyk = test::read_bytes(test::golden_path("images/jpeg_cmyk.jpg"));
  for (std::size_t i = 0; i + 7 < cmyk.size(); ++i)
    if (cmyk[i] == std::byte{0xFF} && cmyk[i + 1] == std::byte{0xEE}) cmyk[i + 4] = std::byte{'X'};  // "Adobe" -> "Xdobe"
  REQUIRE_THROWS_WITH(io::decode_image(cmyk), ContainsSubstring("4-component"));
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
  auto const bytes = test::read_bytes(test::golden_path("images/png_rgb.png"));
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
