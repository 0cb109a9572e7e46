// SPDX-License-Identifier: Apache-2.0
// The image path against the reference Python code (tools/golden/make_image_goldens.py; versions and
// every case in tests/golden/image_manifest.json): transformers 4.46.3 Qwen2VLImageProcessor with
// WePOINTS' smart_resize, Pillow 11.0.0 resize and convert('RGB'). Every decoded image (fixtures and
// real images, JPEG included: Pillow's libjpeg-turbo) is compared with Pillow's Image.open(f).convert('RGB')
// byte for byte.
//
// Acceptance, per case: smart_resize size and grid_thw identical; the Pillow-resized uint8 image
// identical (every row's FNV-1a 64 hash, the whole-buffer hash, and every byte for small cases), for
// both resize backends; pixel_values identical (whole-buffer hash of the float32 bytes, seeded
// samples, every value for small cases -- the budget is 1e-6 and the measured error is 0). Because
// pixel_values is the 3 x 256 normalization table looked up and permuted, the table is compared
// exhaustively and the permutation is checked element by element on the small cases.
// Real images come from ../shared/data/images and are skipped when it is absent; the committed
// goldens hold only their hashes, sizes and samples.
#include "golden/image_test_support.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/pack/patchify.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace tessera;

nlohmann::json const& manifest() {
  static nlohmann::json const m = [] {
    std::ifstream f(test::golden_path("image_manifest.json"));
    REQUIRE(f.good());
    return nlohmann::json::parse(f);
  }();
  return m;
}

io::safetensors_file const& goldens() {
  static io::safetensors_file const f(test::golden_path("image_goldens.safetensors"));
  return f;
}

io::safetensors_file const& format_goldens() {
  static io::safetensors_file const f(test::golden_path("image_formats.safetensors"));
  return f;
}

template <class T>
std::vector<T> tensor(io::safetensors_file const& f, std::string const& name) {
  INFO("golden tensor " << name);
  std::vector<T> out(static_cast<std::size_t>(f.info(name).numel()));
  f.copy_to(name, std::span<T>(out));
  return out;
}

bool verbose() {
  static bool const v = std::getenv("TESSERA_GOLDEN_VERBOSE") != nullptr;
  return v;
}

/// The synthetic input of a case (tools/golden/make_image_goldens.py's formula).
io::rgb_image synthetic(nlohmann::json const& c) {
  return test::synthetic_image(c["source"]["height"].get<index_t>(), c["source"]["width"].get<index_t>());
}

/// The real input of a case, decoded by tessera and checked against Pillow's decoded bytes (PNG and
/// JPEG alike: the whole-buffer hash of Image.open(f).convert('RGB')).
io::rgb_image real(nlohmann::json const& c) {
  auto const& src = c["source"];
  std::filesystem::path const p = test::shared_images_dir() / src["file"].get<std::string>();
  INFO("real image " << p.string());
  REQUIRE(src["decoded_by"].get<std::string>() == "Pillow");
  io::rgb_image img = io::load_image(p);
  CHECK(img.height() == src["decoded_size"][0].get<index_t>());
  CHECK(img.width() == src["decoded_size"][1].get<index_t>());
  CHECK(test::hex64(test::fnv1a64(img.data(), img.pixels().size())) == src["decoded_fnv1a64"].get<std::string>());
  return img;
}

/// Resized uint8 image against the golden: per-row hashes (which row differs), whole hash, bytes.
void check_resized(nlohmann::json const& c, io::rgb_image const& got, char const* backend) {
  INFO("resize backend " << backend);
  auto const rows = tensor<std::int64_t>(goldens(), c["resized_row_fnv1a64"].get<std::string>());
  REQUIRE(static_cast<index_t>(rows.size()) == got.height());
  std::size_t const row_bytes = static_cast<std::size_t>(got.width()) * 3;
  for (index_t y = 0; y < got.height(); ++y) {
    auto const h = static_cast<std::int64_t>(test::fnv1a64(got.data() + static_cast<std::size_t>(y) * row_bytes, row_bytes));
    INFO("first differing row: " << y);
    REQUIRE(h == rows[static_cast<std::size_t>(y)]);
  }
  CHECK(test::hex64(test::fnv1a64(got.data(), got.pixels().size())) == c["resized_fnv1a64"].get<std::string>());
  if (c.contains("resized")) {
    auto const want = tensor<std::uint8_t>(goldens(), c["resized"].get<std::string>());
    REQUIRE(want.size() == got.pixels().size());
    CHECK(std::memcmp(want.data(), got.data(), want.size()) == 0);
  }
}

/// One preprocessing case: smart_resize, both resize backends, pixel_values and grid_thw.
void check_case(nlohmann::json const& c, io::rgb_image const& img) {
  std::string const name = c["name"].get<std::string>();
  INFO("case " << name);
  auto const table = io::normalization_table();
  model::resize_limits const limits{c["min_pixels"].get<std::int64_t>(), c["max_pixels"].get<std::int64_t>()};

  // smart_resize and grid_thw.
  tessera::image_size const size = model::smart_resize(img.height(), img.width(), limits);
  REQUIRE(size.height == c["resized_size"][0].get<index_t>());
  REQUIRE(size.width == c["resized_size"][1].get<index_t>());

  // Pillow bicubic, both backends (the reference backend only where it stays quick).
  io::rgb_image const resized = io::resize_bicubic(img, size.height, size.width);
  check_resized(c, resized, "cpu");
  if (size.height * size.width <= 1'100'000) {
    io::rgb_image ref(size.height, size.width);
    exec_ctx<backend::reference> ctx;
    io::resize_bicubic<backend::reference>(img.view(), ref.view(), ctx);
    check_resized(c, ref, "reference");
  }

  // pixel_values and grid_thw.
  model::qwen2vl_pixels const px = model::preprocess_qwen2vl(img, limits);
  auto const thw = tensor<std::int64_t>(goldens(), c["grid_thw_tensor"].get<std::string>());
  REQUIRE(thw.size() == 3);
  CHECK(px.grid == pack::patch_grid{thw[0], thw[1], thw[2]});
  REQUIRE(px.n_patches() == c["n_patches"].get<index_t>());
  REQUIRE(px.n_features == 1176);
  CHECK(px.n_merged_tokens() == c["llm_tokens"].get<index_t>());
  float const* pv = px.pixel_values.data();
  std::size_t const n_values = static_cast<std::size_t>(px.n_patches() * px.n_features);
  CHECK(test::hex64(test::fnv1a64(pv, n_values * sizeof(float))) == c["pixel_values_fnv1a64"].get<std::string>());
  auto const idx = tensor<std::int64_t>(goldens(), c["sample_index"].get<std::string>());
  auto const val = tensor<float>(goldens(), c["sample_value"].get<std::string>());
  REQUIRE(idx.size() == val.size());
  double max_err = 0;
  for (std::size_t i = 0; i < idx.size(); ++i) {
    REQUIRE(static_cast<std::size_t>(idx[i]) < n_values);
    max_err = std::max(max_err, std::fabs(double(pv[idx[i]]) - double(val[i])));
  }
  if (c.contains("pixel_values")) {
    auto const want = tensor<float>(goldens(), c["pixel_values"].get<std::string>());
    REQUIRE(want.size() == n_values);
    for (std::size_t i = 0; i < n_values; ++i) max_err = std::max(max_err, std::fabs(double(pv[i]) - double(want[i])));
    // The permutation, element by element: pixel_values[k, f] = table[c][resized(y, x, c)] with
    // k = ((bh * (gw / 2) + bw) * 2 + mh) * 2 + mw, f = ((c * 2 + t) * 14 + py) * 14 + px (spec 1.5).
    index_t const gw = px.grid.w;
    for (index_t k = 0; k < px.n_patches(); ++k) {
      index_t const mw = k % 2, mh = (k / 2) % 2, win = k / 4;
      index_t const row = (win / (gw / 2)) * 2 + mh, col = (win % (gw / 2)) * 2 + mw;
      for (index_t f = 0; f < 1176; ++f) {
        index_t const pxl = f % 14, py = (f / 14) % 14, ch = f / (2 * 14 * 14);
        index_t const y = row * 14 + py, x = col * 14 + pxl;
        float const expect = table[static_cast<std::size_t>(ch)][resized.data()[(y * resized.width() + x) * 3 + ch]];
        INFO("token " << k << " feature " << f);
        REQUIRE(std::memcmp(&pv[k * 1176 + f], &expect, sizeof(float)) == 0);
      }
    }
  }
  if (verbose())
    std::cout << "[golden] " << name << ": " << img.height() << "x" << img.width() << " -> " << size.height << "x"
              << size.width << ", grid (" << px.grid.t << ", " << px.grid.h << ", " << px.grid.w << "), max |diff| "
              << max_err << "\n";
  CHECK(max_err <= 1e-6);  // measured: 0 (the values are identical)
}

}  // namespace

TEST_CASE("golden: the normalization table equals transformers' rescale + normalize", "[golden][io][image]") {
  auto const want = tensor<float>(goldens(), "normalization_table");
  REQUIRE(want.size() == 3 * 256);
  auto const got = io::normalization_table();
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t v = 0; v < 256; ++v) {
      INFO("channel " << c << " value " << v);
      REQUIRE(std::memcmp(&got[c][v], &want[c * 256 + v], sizeof(float)) == 0);  // bit for bit
    }
}

TEST_CASE("golden: POINTS1.5 preprocessing of synthetic images equals the reference processor",
          "[golden][io][image][pack]") {
  int n = 0;
  for (auto const& c : manifest()["cases"])
    if (c["source"]["kind"] == "synthetic") {
      check_case(c, synthetic(c));
      ++n;
    }
  CHECK(n == 9);
}

TEST_CASE("golden: POINTS1.5 preprocessing of the real images equals the reference processor",
          "[golden][io][image][pack]") {
  if (!std::filesystem::is_directory(test::shared_images_dir()))
    SKIP(test::shared_images_dir().string() << " is absent: the real-image goldens need ../shared/data/images "
                                               "(never copied into the repository)");
  int n = 0, n_jpeg = 0;
  for (auto const& c : manifest()["cases"])
    if (c["source"]["kind"] == "real") {
      check_case(c, real(c));
      ++n;
      if (c["source"]["file"].get<std::string>().ends_with(".jpg")) ++n_jpeg;
    }
  CHECK(n == 6);
  CHECK(n_jpeg == 1);  // the receipt photo: tessera's JPEG decode against Pillow's, through preprocessing
}

TEST_CASE("golden: decoding every fixture format and mode equals Pillow's convert('RGB')", "[golden][io][image]") {
  // The manifest and tests/golden/images/ list the same files: a fixture left out of either fails here.
  std::set<std::string> listed, present;
  for (auto const& fx : manifest()["fixtures"]) CHECK(listed.insert(fx["file"].get<std::string>()).second);
  for (auto const& e : std::filesystem::directory_iterator(test::golden_path("images")))
    present.insert("images/" + e.path().filename().string());
  for (auto const& f : listed) {
    INFO("listed in image_manifest.json: " << f);
    CHECK(present.contains(f));
  }
  for (auto const& f : present) {
    INFO("in tests/golden/images/: " << f);
    CHECK(listed.contains(f));
  }

  for (auto const& fx : manifest()["fixtures"]) {
    std::string const name = fx["name"].get<std::string>();
    INFO("fixture " << name << " (" << fx["written_by"].get<std::string>() << ", Pillow mode "
                    << fx["pillow_mode"].get<std::string>() << ")");
    CHECK(fx["expected"].get<std::string>() == "Pillow Image.open(f).convert('RGB')");
    io::rgb_image const img = io::load_image(test::golden_path(fx["file"].get<std::string>()));
    REQUIRE(img.height() == fx["size"][0].get<index_t>());
    REQUIRE(img.width() == fx["size"][1].get<index_t>());
    auto const want = tensor<std::uint8_t>(format_goldens(), fx["tensor"].get<std::string>());
    REQUIRE(want.size() == img.pixels().size());
    std::size_t first_bad = want.size();
    for (std::size_t i = 0; i < want.size() && first_bad == want.size(); ++i)
      if (want[i] != img.data()[i]) first_bad = i;
    INFO("first differing byte " << first_bad << " (pixel " << first_bad / 3 << ", channel " << first_bad % 3 << ")");
    CHECK(first_bad == want.size());
  }
}
