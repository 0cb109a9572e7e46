// SPDX-License-Identifier: Apache-2.0
// Shared by the image tests (tests/io/test_image*.cpp, tests/golden/test_golden_image.cpp): FNV-1a 64,
// the synthetic test image of tools/golden/make_image_goldens.py (same formula, same bytes), and the
// paths of the committed fixtures and of the real images in ../shared/data (never copied here).
#pragma once

#include <tessera/io/image.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace tessera::test {

/// FNV-1a 64 over `n` bytes (offset 0xcbf29ce484222325, prime 0x100000001b3), as the golden generator.
[[nodiscard]] inline std::uint64_t fnv1a64(void const* data, std::size_t n) noexcept {
  auto const* p = static_cast<unsigned char const*>(data);
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

/// 16 lower-case hex digits, as the manifest stores hashes.
[[nodiscard]] inline std::string hex64(std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = digits[v & 0xF];
  return s;
}

/// make_image_goldens.synthetic_image(h, w): gradients + 8-pixel checkerboard + integer hash noise,
/// white columns (x % 17 == 0), black rows (y % 13 == 0); uint32 arithmetic with wrap-around.
[[nodiscard]] inline io::rgb_image synthetic_image(index_t h, index_t w) {
  io::rgb_image img(h, w);
  auto const H = static_cast<std::uint64_t>(h), W = static_cast<std::uint64_t>(w);
  for (std::uint64_t y = 0; y < H; ++y)
    for (std::uint64_t x = 0; x < W; ++x)
      for (std::uint64_t c = 0; c < 3; ++c) {
        std::uint32_t v = (static_cast<std::uint32_t>(x) * 0x9E3779B1u) ^ (static_cast<std::uint32_t>(y) * 0x85EBCA77u) ^
                          (static_cast<std::uint32_t>(c) * 0xC2B2AE3Du);
        v ^= v >> 15;
        v *= 0x2C1B3C6Du;
        v ^= v >> 12;
        v *= 0x297A2D39u;
        v ^= v >> 15;
        std::uint64_t const grad = c == 0   ? x * 255 / (W > 1 ? W - 1 : 1)
                                   : c == 1 ? y * 255 / (H > 1 ? H - 1 : 1)
                                            : (x + y) * 255 / (W + H > 2 ? W + H - 2 : 1);
        std::uint64_t const checker = ((x / 8 + y / 8) % 2 == 0) ? 255 : 0;
        std::uint64_t val = (grad * 3 + checker * 2 + (v & 255u) * 3) >> 3;
        if (x % 17 == 0) val = 255;
        if (y % 13 == 0) val = 0;
        img.data()[(y * W + x) * 3 + c] = static_cast<std::uint8_t>(val);
      }
  return img;
}

/// tests/golden/<name>.
[[nodiscard]] inline std::filesystem::path golden_path(std::string const& name) {
  return std::filesystem::path(TESSERA_SOURCE_DIR) / "tests" / "golden" / name;
}

/// ../shared/data/images (real photographs and documents; the tests SKIP when it is absent).
[[nodiscard]] inline std::filesystem::path shared_images_dir() {
  return std::filesystem::path(TESSERA_SOURCE_DIR) / ".." / "shared" / "data" / "images";
}

/// The whole file as bytes.
[[nodiscard]] inline std::vector<std::byte> read_bytes(std::filesystem::path const& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  for (std::size_t i = 0; i < chars.size(); ++i) out[i] = static_cast<std::byte>(chars[i]);
  return out;
}

}  // namespace tessera::test
