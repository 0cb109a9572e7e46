// SPDX-License-Identifier: Apache-2.0
// Test helpers for code that reads files: a self-removing temporary directory, writing bytes to a
// file, and REQUIRE_TESSERA_ERROR (the exception type plus a key fact of its message).
#pragma once

#include <tessera/core/error.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <atomic>
#include <cstddef>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

/// `expr` throws tessera::error whose message contains `text` (evaluates `expr` twice).
#define REQUIRE_TESSERA_ERROR(expr, text)                                      \
  do {                                                                         \
    REQUIRE_THROWS_AS(expr, tessera::error);                                   \
    REQUIRE_THROWS_WITH(expr, Catch::Matchers::ContainsSubstring(text));       \
  } while (0)

namespace tessera::test {

/// A fresh directory under the system temp directory, removed with its contents at scope exit.
/// Unique per process, call and random draw, so parallel CTest runs never share one.
class temp_dir {
 public:
  explicit temp_dir(std::string_view tag = "test") {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("tessera-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
             "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  temp_dir(temp_dir const&) = delete;
  temp_dir& operator=(temp_dir const&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::filesystem::path const& path() const noexcept { return path_; }
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  /// Number of entries directly inside (e.g. to check that a failed write left nothing behind).
  [[nodiscard]] std::size_t n_entries() const {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator(path_), std::filesystem::directory_iterator{}));
  }

 private:
  std::filesystem::path path_;
};

/// Writes `bytes` to `path` (created or truncated); throws std::runtime_error on failure.
inline void write_file(std::filesystem::path const& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace tessera::test
