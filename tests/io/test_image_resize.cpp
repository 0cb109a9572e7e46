// SPDX-License-Identifier: Apache-2.0
// model::smart_resize (the spec section 1.2 table, Python's banker's rounding, WePOINTS' small-side
// rule, the aspect-ratio and zero-side errors), io::resize_bicubic (a hand-checked case from Pillow,
// the cpu backend against the reference backend on many shapes, thread counts and strided views,
// argument checks), io::normalize_image and model::preprocess_qwen2vl's shapes. The comparisons with
// Pillow and transformers on whole images are in tests/golden/test_golden_image.cpp.
#include "common/compare.hpp"
#include "golden/image_test_support.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <array>
#include <utility>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

io::rgb_image random_image(index_t h, index_t w, std::uint64_t seed) {
  io::rgb_image img(h, w);
  std::mt19937_64 rng(seed);
  for (auto& v : img.pixels()) v = static_cast<std::uint8_t>(rng() & 0xFF);
  // Hard 0/255 edges make the negative lobes of the cubic overshoot, so clipping is exercised.
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; x += 7) img.view()(y, x, 1) = 255;
  for (index_t y = 0; y < h; y += 5)
    for (index_t x = 0; x < w; ++x) img.view()(y, x, 2) = 0;
  return img;
}

io::rgb_image resize_with(io::rgb_image const& in, index_t oh, index_t ow, int threads, bool reference) {
  io::rgb_image out(oh, ow);
  if (reference) {
    exec_ctx<backend::reference> ctx;
    io::resize_bicubic<backend::reference>(in.view(), out.view(), ctx);
  } else {
    exec_ctx<backend::cpu> ctx(threads);
    io::resize_bicubic<backend::cpu>(in.view(), out.view(), ctx);
  }
  return out;
}

}  // namespace

TEST_CASE("smart_resize reproduces the spec section 1.2 table", "[io][image][unit]") {
  struct row {
    index_t h, w;
    std::int64_t max_pixels;
    index_t rh, rw, vit_tokens, llm_tokens;
  };
  // spec/points15.md section 1.2 (min_pixels = 3136 in every row).
  std::vector<row> const table = {
      {480, 640, 1003520, 476, 644, 1564, 391},    {480, 640, 12845056, 476, 644, 1564, 391},
      {1080, 1920, 1003520, 728, 1316, 4888, 1222}, {1080, 1920, 12845056, 1092, 1932, 10764, 2691},
      {224, 224, 1003520, 224, 224, 256, 64},       {224, 224, 12845056, 224, 224, 256, 64},
      {20, 500, 1003520, 28, 504, 72, 18},          {20, 500, 12845056, 28, 504, 72, 18},
      {3000, 4000, 1003520, 840, 1148, 4920, 1230}, {700, 1000, 1003520, 700, 1008, 3600, 900},
      {700, 1000, 12845056, 700, 1008, 3600, 900},
  };
  for (auto const& r : table) {
    INFO(r.h << " x " << r.w << ", max_pixels " << r.max_pixels);
    tessera::image_size const s = model::smart_resize(r.h, r.w, {3136, r.max_pixels});
    CHECK(s.height == r.rh);
    CHECK(s.width == r.rw);
    CHECK((s.height / 14) * (s.width / 14) == r.vit_tokens);
    CHECK((s.height / 14) * (s.width / 14) / 4 == r.llm_tokens);
  }
}

TEST_CASE("smart_resize rounds like Python: half to even, in float64", "[io][image][unit]") {
  model::resize_limits const free{0, std::int64_t{1} << 40};
  // round(70 / 28) = round(2.5) = 2 and round(98 / 28) = round(3.5) = 4 (std::round would give 3 and 4).
  CHECK(model::smart_resize(70, 280, free) == tessera::image_size{56, 280});
  CHECK(model::smart_resize(98, 280, free) == tessera::image_size{112, 280});
  CHECK(model::smart_resize(126, 280, free) == tessera::image_size{112, 280});  // round(4.5) = 4
  CHECK(model::smart_resize(154, 280, free) == tessera::image_size{168, 280});  // round(5.5) = 6
  CHECK(model::detail::round_half_even(0.5) == 0.0);
  CHECK(model::detail::round_half_even(1.5) == 2.0);
  CHECK(model::detail::round_half_even(2.5000000000000004) == 3.0);
  CHECK(model::detail::round_half_even(3.4999999999999996) == 3.0);
}

TEST_CASE("smart_resize accepts sides below 28 (WePOINTS) and refuses what the reference cannot do",
          "[io][image][unit]") {
  CHECK(model::smart_resize(1, 1) == tessera::image_size{56, 56});
  CHECK(model::smart_resize(27, 10000) == tessera::image_size{28, 9996});   // no aspect check below 28
  CHECK(model::smart_resize(1, 100000) == tessera::image_size{28, 17724});
  CHECK(model::smart_resize(28, 5600) == tessera::image_size{28, 5600});     // aspect exactly 200: accepted
  REQUIRE_THROWS_WITH(model::smart_resize(28, 5601), ContainsSubstring("aspect ratio"));
  REQUIRE_THROWS_WITH(model::smart_resize(27, 1000000), ContainsSubstring("zero side"));  // Python: (0, 192780)
  REQUIRE_THROWS_AS(model::smart_resize(0, 10), tessera::error);
  REQUIRE_THROWS_AS(model::smart_resize(10, -1), tessera::error);
  REQUIRE_THROWS_AS(model::smart_resize(10, 10, {100, 10}), tessera::error);  // min > max
  REQUIRE_THROWS_AS(model::smart_resize(10, 10, {}, 0), tessera::error);
  REQUIRE_THROWS_AS(model::smart_resize(index_t{1} << 27, 10), tessera::error);
}

TEST_CASE("resize_bicubic matches a case computed with Pillow 11", "[io][image][unit]") {
  // Image.fromarray(a).resize(size, Image.BICUBIC) for this 1 x 5 RGB image (values from Pillow).
  io::rgb_image a(1, 5);
  std::uint8_t const px[] = {0, 10, 200, 0, 20, 100, 255, 30, 0, 255, 40, 50, 128, 50, 250};
  std::memcpy(a.data(), px, sizeof px);
  std::uint8_t const down[] = {0, 14, 160, 206, 30, 20, 189, 46, 165};  // to 1 x 3
  std::uint8_t const up[] = {0, 9, 207, 0, 13, 166, 9, 21, 93, 186, 27, 20,
                             255, 33, 0, 255, 39, 42, 178, 47, 174, 119, 51, 255};  // to 2 x 8, both rows
  for (bool ref : {false, true}) {
    INFO((ref ? "reference" : "cpu"));
    io::rgb_image const d = resize_with(a, 1, 3, 1, ref);
    CHECK(std::memcmp(d.data(), down, sizeof down) == 0);
    io::rgb_image const u = resize_with(a, 2, 8, 1, ref);
    CHECK(std::memcmp(u.data(), up, sizeof up) == 0);
    CHECK(std::memcmp(u.data() + 24, up, sizeof up) == 0);
  }
}

TEST_CASE("resize_bicubic: cpu equals reference on awkward shapes, any thread count", "[io][image][unit]") {
  std::mt19937_64 rng(test::seed(99));
  INFO("seed " << test::seed(99));
  std::vector<std::array<index_t, 4>> shapes = {
      {1, 1, 1, 1},   {1, 1, 56, 56},   {2, 3, 1, 1},      {17, 13, 17, 40},  {17, 13, 40, 13},
      {9, 31, 8, 8},  {129, 72, 7, 127}, {5, 1000, 28, 28}, {1000, 5, 3, 300}, {64, 64, 64, 64},
  };
  for (int i = 0; i < 20; ++i)
    shapes.push_back({1 + static_cast<index_t>(rng() % 300), 1 + static_cast<index_t>(rng() % 300),
                      1 + static_cast<index_t>(rng() % 300), 1 + static_cast<index_t>(rng() % 300)});
  for (auto const& s : shapes) {
    INFO(s[0] << " x " << s[1] << " -> " << s[2] << " x " << s[3]);
    io::rgb_image const in = random_image(s[0], s[1], rng());
    io::rgb_image const want = resize_with(in, s[2], s[3], 1, true);
    for (int threads : {1, 2, 3, 5}) {
      INFO(threads << " threads");
      io::rgb_image const got = resize_with(in, s[2], s[3], threads, false);
      REQUIRE(std::memcmp(got.data(), want.data(), want.pixels().size()) == 0);
    }
    if (s[0] == s[2] && s[1] == s[3]) CHECK(std::memcmp(want.data(), in.data(), in.pixels().size()) == 0);  // a copy
  }
}

TEST_CASE("resize_bicubic keeps constant images constant and reads strided rows", "[io][image][unit]") {
  for (std::uint8_t v : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{128}, std::uint8_t{255}}) {
    io::rgb_image in(37, 23);
    for (auto& p : in.pixels()) p = v;
    for (auto const& [oh, ow] : {std::pair<index_t, index_t>{5, 3}, {80, 90}, {37, 100}, {3, 23}}) {
      io::rgb_image const out = io::resize_bicubic(in, oh, ow);
      CHECK(std::all_of(out.pixels().begin(), out.pixels().end(), [v](std::uint8_t x) { return x == v; }));
    }
  }
  // Input and output rows inside wider buffers (padding that must be neither read nor written).
  io::rgb_image const in = random_image(31, 19, 5);
  io::rgb_image const want = io::resize_bicubic(in, 45, 12);
  index_t const in_stride = 19 * 3 + 11, out_stride = 12 * 3 + 5;
  std::vector<std::uint8_t> src(static_cast<std::size_t>(31 * in_stride), 77);
  for (index_t y = 0; y < 31; ++y) std::memcpy(&src[static_cast<std::size_t>(y * in_stride)], in.data() + y * 57, 57);
  std::vector<std::uint8_t> dst(static_cast<std::size_t>(45 * out_stride), 0xA5);
  exec_ctx<backend::cpu> ctx(2);
  io::resize_bicubic<backend::cpu>(tensor_view<std::uint8_t const, 3>(src.data(), {31, 19, 3}, {in_stride, 3, 1}),
                                   tensor_view<std::uint8_t, 3>(dst.data(), {45, 12, 3}, {out_stride, 3, 1}), ctx);
  for (index_t y = 0; y < 45; ++y) {
    CHECK(std::memcmp(&dst[static_cast<std::size_t>(y * out_stride)], want.data() + y * 36, 36) == 0);
    for (index_t x = 36; x < out_stride; ++x) CHECK(dst[static_cast<std::size_t>(y * out_stride + x)] == 0xA5);
  }
}

TEST_CASE("resize_bicubic checks its arguments", "[io][image][unit]") {
  io::rgb_image in(4, 4), out(2, 2);
  exec_ctx<backend::cpu> ctx;
  REQUIRE_THROWS_AS(io::resize_bicubic(in, 0, 3), tessera::error);
  REQUIRE_THROWS_AS(io::resize_bicubic(io::rgb_image(), 3, 3), tessera::error);
  REQUIRE_THROWS_AS(io::resize_bicubic(in, index_t{1} << 25, 1), tessera::error);
  // Planar (channels-first) views are not RGB rows.
  REQUIRE_THROWS_WITH(io::resize_bicubic<backend::cpu>(tensor_view<std::uint8_t const, 3>(in.data(), {4, 4, 3}, {4, 1, 16}),
                                                       out.view(), ctx),
                      ContainsSubstring("strides"));
  // In place is refused.
  REQUIRE_THROWS_WITH(io::resize_bicubic<backend::cpu>(in.view(), tensor_view<std::uint8_t, 3>(in.data(), {2, 2, 3}), ctx),
                      ContainsSubstring("overlaps"));
}

TEST_CASE("normalize_image applies the table per channel into CHW", "[io][image][unit]") {
  io::rgb_image const img = random_image(3, 5, 11);
  auto const table = io::normalization_table();
  std::vector<float> out(3 * 3 * 5);
  io::normalize_image(img.view(), tensor_view<float, 3>(out.data(), {3, 3, 5}));
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 3; ++y)
      for (index_t x = 0; x < 5; ++x)
        CHECK(out[static_cast<std::size_t>((c * 3 + y) * 5 + x)] ==
              table[static_cast<std::size_t>(c)][img.view()(y, x, c)]);
  // The reference's arithmetic, spelled out for one value: float32(v * (1 / 255.0)), then float32 ops.
  float const x = static_cast<float>(200.0 * (1.0 / 255.0));
  CHECK(table[1][200] == (x - 0.4578275f) / 0.26130258f);
  REQUIRE_THROWS_AS(io::normalize_image(img.view(), tensor_view<float, 3>(out.data(), {3, 5, 3})), tessera::error);
  io::image_normalization bad;
  bad.stddev[2] = 0.0;
  REQUIRE_THROWS_AS(io::normalization_table(bad), tessera::error);
}

TEST_CASE("preprocess_qwen2vl returns pixel rows and grid_thw of the processor's shapes", "[io][image][unit]") {
  io::rgb_image const img = test::synthetic_image(100, 150);
  model::qwen2vl_pixels const p = model::preprocess_qwen2vl(img);
  CHECK(p.resized == model::smart_resize(100, 150));
  CHECK(p.grid == pack::patch_grid{1, p.resized.height / 14, p.resized.width / 14});
  CHECK(p.n_features == 1176);
  CHECK(p.rows().extent(0) == p.n_patches());
  CHECK(p.rows().extent(1) == 1176);
  CHECK(p.n_merged_tokens() * 4 == p.n_patches());
  // Same values whatever the thread count.
  model::qwen2vl_pixels const q = model::preprocess_qwen2vl(img, {}, {}, 1);
  CHECK(std::memcmp(p.pixel_values.data(), q.pixel_values.data(),
                    static_cast<std::size_t>(p.n_patches() * 1176) * sizeof(float)) == 0);
  REQUIRE_THROWS_AS(model::preprocess_qwen2vl(io::rgb_image()), tessera::error);
}
