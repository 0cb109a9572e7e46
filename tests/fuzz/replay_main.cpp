// SPDX-License-Identifier: Apache-2.0
// A driver for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on every
// file given (directories are walked). CTest uses it to replay the committed corpora -- seeds and
// the inputs of every crash found so far -- in each build, including the sanitizer build.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size);

namespace {
int replay_file(std::filesystem::path const& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz replay: cannot open %s\n", p.c_str());
    return 1;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<std::uint8_t const*>(bytes.data()), bytes.size());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  int failures = 0, files = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path const arg(argv[i]);
    if (std::filesystem::is_directory(arg)) {
      for (auto const& e : std::filesystem::recursive_directory_iterator(arg))
        if (e.is_regular_file()) failures += replay_file(e.path()), ++files;
    } else {
      failures += replay_file(arg), ++files;
    }
  }
  std::printf("fuzz replay: %d inputs, %d unreadable\n", files, failures);
  return failures == 0 && files > 0 ? 0 : 1;
}
