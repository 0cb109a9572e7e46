// SPDX-License-Identifier: Apache-2.0
// Reading committed golden files (tests/golden/*.safetensors) through tessera's own reader.
#pragma once

#include "common/compare.hpp"

#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>

#include <catch2/catch_test_macros.hpp>

#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace tessera::test {

/// One golden safetensors file under tests/golden/. Every accessor requires the tensor to exist
/// with exactly the stored dtype, so a regenerated file with a changed layout fails loudly.
class golden_file {
 public:
  explicit golden_file(char const* file_name)
      : path_(std::string(TESSERA_SOURCE_DIR) + "/tests/golden/" + file_name), file_(path_) {}

  /// The tensor's elements (copy_to throws unless the stored dtype is exactly dtype_of_v<T>).
  template <class T>
  [[nodiscard]] std::vector<T> get(std::string const& name) const {
    INFO("golden tensor " << name << " in " << path_);
    std::vector<T> out(static_cast<std::size_t>(file_.info(name).numel()));
    file_.copy_to(name, std::span<T>(out));
    return out;
  }
  [[nodiscard]] std::vector<index_t> shape(std::string const& name) const {
    INFO("golden tensor " << name << " in " << path_);
    return file_.info(name).shape;
  }

 private:
  std::string path_;
  io::safetensors_file file_;
};

/// TESSERA_GOLDEN_VERBOSE=1 prints every golden comparison's report.
[[nodiscard]] inline bool golden_verbose() {
  static bool const v = std::getenv("TESSERA_GOLDEN_VERBOSE") != nullptr;
  return v;
}

/// NMSE of `got` against `want` within `budget`, reported (printed with TESSERA_GOLDEN_VERBOSE).
inline void require_nmse(std::string const& what, std::span<float const> got, std::span<float const> want,
                         double budget) {
  double const e = nmse(got, want);
  INFO(what << ": NMSE " << e << " (budget " << budget << ", " << 100.0 * e / budget << "% used)");
  if (golden_verbose()) std::cout << what << ": NMSE " << e << " (" << 100.0 * e / budget << "% of budget)\n";
  REQUIRE(e <= budget);
}

}  // namespace tessera::test
