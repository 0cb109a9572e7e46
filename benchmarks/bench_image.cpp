// SPDX-License-Identifier: Apache-2.0
// bench_image: the POINTS1.5 image path on one thread, from an encoded file held in memory:
//   decode      io::decode_image (bytes in memory -> RGB8),
//   preprocess  model::preprocess_qwen2vl of the decoded image (smart_resize, Pillow-exact bicubic
//               resize, rescale + normalize, patchify into pixel_values), threads = 1,
//   pipeline    both, as a caller does per image.
// Min and median over repeated calls (one warm-up first), megapixels of the input per second, the
// single-thread DRAM read bandwidth probed before and after the timed stages, and the FNV-1a 64 of
// the decoded RGB bytes and of pixel_values (float32 little-endian), which tools/bench/image_pillow.py
// computes the same way over Pillow's decode and transformers' pixel_values: equal hashes mean
// identical outputs. Prints a table and writes JSON; scripts/bench_image.sh runs both on a
// generated 12-megapixel photo-like JPEG and reports the ratio.
//   bench_image --image PATH [--reps N] [--quick] [--json PATH]
// --quick: few reps, a small DRAM probe (the CI smoke test; its numbers are not measurements).
// Without --image, --quick decodes the committed fixture tests/golden/images/jpeg_rgb.jpg.
// Run with OMP_NUM_THREADS=1.
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>

#include "bench_common.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#define TESSERA_SOURCE_DIR "."
#endif

using namespace tessera;

namespace {

/// FNV-1a 64 over bytes (offset 0xcbf29ce484222325, prime 0x100000001b3), as 16 hex digits.
std::string fnv1a64_hex(void const* data, std::size_t n) {
  auto const* p = static_cast<unsigned char const*>(data);
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

/// The JPEG library tessera's decoder was compiled against, where its headers say so.
std::string jpeg_library() {
#if defined(LIBJPEG_TURBO_VERSION_NUMBER)
  int const v = LIBJPEG_TURBO_VERSION_NUMBER;  // e.g. 2001005 = 2.1.5
  return "libjpeg-turbo " + std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
         std::to_string(v % 1000) + " (headers)";
#elif defined(JPEG_LIB_VERSION)
  return "libjpeg API " + std::to_string(JPEG_LIB_VERSION) + " (headers)";
#else
  return "built in (no libjpeg headers seen)";
#endif
}

nlohmann::json stage_json(bench::timing const& t, double megapixels) {
  return {{"min_s", t.min_s}, {"median_s", t.median_s}, {"reps", t.reps}, {"mp_per_s", megapixels / t.min_s},
          {"mp_per_s_median", megapixels / t.median_s}};
}

}  // namespace

int main(int argc, char** argv) try {
  bool quick = false;
  int reps = 10;
  std::string image_path, json_path = "bench_image.json";
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--image" && i + 1 < argc) image_path = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_image --image PATH [--reps N] [--quick] [--json PATH]\n");
      return 2;
    }
  }
  if (image_path.empty()) {
    if (!quick) {
      std::fprintf(stderr, "bench_image: pass --image PATH (only --quick falls back to the committed fixture)\n");
      return 2;
    }
    image_path = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/images/jpeg_rgb.jpg";
  }
  if (quick) reps = std::min(reps, 2);
  double const min_time = quick ? 0.0 : 2.0;

  // The file is read once; every timed call decodes from these bytes.
  std::vector<std::byte> file;
  {
    std::ifstream in(image_path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "bench_image: cannot read %s\n", image_path.c_str());
      return 1;
    }
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    file.resize(raw.size());
    if (!raw.empty()) std::memcpy(file.data(), raw.data(), raw.size());
  }
  std::span<std::byte const> const bytes(file);

  std::size_t const llc = bench::llc_bytes();
  std::printf("bench_image: 1 thread, SIMD arch %s (%s, %zu-bit vectors), %s, JPEG: %s, load average %.2f%s\n",
              TESSERA_SIMD_ARCH_NAME, xsimd::default_arch::name(), xsimd::batch<float>::size * 32,
              compiler_name().c_str(), jpeg_library().c_str(), bench::load_average(),
              quick ? ", quick mode (smoke test: timings are not measurements)" : "");
  std::size_t const probe_bytes = quick ? (std::size_t{64} << 20) : std::max<std::size_t>(std::size_t{1} << 30, 2 * llc);
  double const dram_before = bench::probe_dram_gbps(1, probe_bytes);

  // Outputs once, outside the timing: sizes and hashes.
  io::rgb_image const decoded = io::decode_image(bytes);
  model::qwen2vl_pixels const pixels = model::preprocess_qwen2vl(decoded, {}, {}, 1);
  double const megapixels = static_cast<double>(decoded.width()) * static_cast<double>(decoded.height()) / 1e6;
  std::string const rgb_hash = fnv1a64_hex(decoded.data(), decoded.pixels().size());
  std::string const pv_hash =
      fnv1a64_hex(pixels.pixel_values.data(), static_cast<std::size_t>(pixels.pixel_values.size()) * sizeof(float));
  bool const checked = pixels.pixel_values.size() == pixels.n_patches() * pixels.n_features &&
                       pixels.grid.h * 14 == pixels.resized.height && pixels.grid.w * 14 == pixels.resized.width;
  std::printf("image %s: %lld x %lld (%.2f MP), %zu bytes -> resized %lld x %lld, grid (%lld, %lld, %lld), %lld patches\n",
              image_path.c_str(), static_cast<long long>(decoded.width()), static_cast<long long>(decoded.height()),
              megapixels, file.size(), static_cast<long long>(pixels.resized.width),
              static_cast<long long>(pixels.resized.height), static_cast<long long>(pixels.grid.t),
              static_cast<long long>(pixels.grid.h), static_cast<long long>(pixels.grid.w),
              static_cast<long long>(pixels.n_patches()));

  std::size_t sink = 0;
  bench::timing const t_decode = bench::time_it([&](int) {
    io::rgb_image const img = io::decode_image(bytes);
    sink += img.data()[0];
  }, reps, min_time);
  bench::timing const t_pre = bench::time_it([&](int) {
    model::qwen2vl_pixels const px = model::preprocess_qwen2vl(decoded, {}, {}, 1);
    sink += static_cast<std::size_t>(px.pixel_values.data()[0] > 0.0f);
  }, reps, min_time);
  bench::timing const t_pipe = bench::time_it([&](int) {
    io::rgb_image const img = io::decode_image(bytes);
    model::qwen2vl_pixels const px = model::preprocess_qwen2vl(img, {}, {}, 1);
    sink += static_cast<std::size_t>(px.pixel_values.data()[0] > 0.0f);
  }, reps, min_time);
  double const dram_after = bench::probe_dram_gbps(1, probe_bytes);

  std::printf("\n%-46s %9s %9s %10s %6s\n", "stage (1 thread)", "min ms", "med ms", "MP/s (min)", "reps");
  auto row = [&](char const* what, bench::timing const& t) {
    std::printf("%-46s %9.2f %9.2f %10.1f %6d\n", what, t.min_s * 1e3, t.median_s * 1e3, megapixels / t.min_s, t.reps);
  };
  row("decode (memory -> RGB8)", t_decode);
  row("preprocess (resize, normalize, patchify)", t_pre);
  row("pipeline (decode + preprocess)", t_pipe);
  std::printf("DRAM read bandwidth, 1 thread (same run): %.1f GB/s before, %.1f GB/s after\n", dram_before, dram_after);
  std::printf("decoded RGB fnv1a64 %s, pixel_values fnv1a64 %s%s\n", rgb_hash.c_str(), pv_hash.c_str(),
              checked ? "" : "  (SHAPE CHECK FAILED)");

  nlohmann::json j;
  j["machine"] = {{"threads", 1},
                  {"simd_arch", TESSERA_SIMD_ARCH_NAME},
                  {"xsimd_arch", xsimd::default_arch::name()},
                  {"vector_bits", xsimd::batch<float>::size * 32},
                  {"compiler", compiler_name()},
#if defined(__OPTIMIZE__)
                  {"optimized", true},
#else
                  {"optimized", false},
#endif
                  {"llc_bytes", llc},
                  {"load_average_1min", bench::load_average()},
                  {"quick", quick}};
  j["jpeg_library"] = jpeg_library();
  j["image"] = {{"path", image_path}, {"width", decoded.width()}, {"height", decoded.height()},
                {"megapixels", megapixels}, {"file_bytes", file.size()}};
  j["resized"] = {{"height", pixels.resized.height}, {"width", pixels.resized.width}};
  j["grid_thw"] = {pixels.grid.t, pixels.grid.h, pixels.grid.w};
  j["n_patches"] = pixels.n_patches();
  j["n_features"] = pixels.n_features;
  j["decode"] = stage_json(t_decode, megapixels);
  j["decode"]["rgb_fnv1a64"] = rgb_hash;
  j["decode"]["rgb_bytes"] = decoded.pixels().size();
  j["preprocess"] = stage_json(t_pre, megapixels);
  j["pipeline"] = stage_json(t_pipe, megapixels);
  j["pipeline"]["pixel_values_fnv1a64"] = pv_hash;
  j["pipeline"]["pixel_values_bytes"] = static_cast<std::size_t>(pixels.pixel_values.size()) * sizeof(float);
  j["dram_read_gbps"] = {{"threads", 1}, {"probe_bytes", probe_bytes}, {"before", dram_before},
                         {"after", dram_after}, {"max", std::max(dram_before, dram_after)}};
  j["checked"] = checked;
  std::ofstream(json_path) << j.dump(2) << "\n";
  std::printf("JSON written to %s\n", json_path.c_str());
  (void)sink;
  return checked ? 0 : 1;
} catch (std::exception const& e) {
  std::fprintf(stderr, "bench_image: %s\n", e.what());
  return 1;
}
