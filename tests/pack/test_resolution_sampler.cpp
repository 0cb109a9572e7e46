// SPDX-License-Identifier: Apache-2.0
// pack::resolution_sampler: aspect-preserving sizes (hand-worked), the side distributions against
// their analytic moments (fixed seeds, 5-standard-error bounds), reproducibility, and the NaFlex
// token-budget fit: hand-worked sizes, "fits, and a ratio eps larger would not", errors.
#include "common/moments.hpp"

#include <tessera/core/error.hpp>
#include <tessera/pack/resolution_sampler.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cmath>
#include <numbers>
#include <vector>

namespace {

using namespace tessera;
using Catch::Matchers::ContainsSubstring;

using test::moments;
using test::n_draws;
using test::sample_moments;

/// |mean - mu| <= 5 sqrt(var / n) and |s^2 - var| <= 5 sqrt((dev_max^2 var - var^2) / n), where
/// dev_max bounds |x - mu| on the bounded support (so m4 <= dev_max^2 var): 5 standard errors.
void check_moments(moments const& got, double mu, double var, double dev_max) {
  double const se_mean = std::sqrt(var / n_draws);
  double const se_var = std::sqrt((dev_max * dev_max * var - var * var) / n_draws);
  INFO("mean " << got.mean << " vs " << mu << ", var " << got.var << " vs " << var);
  CHECK(std::abs(got.mean - mu) <= 5 * se_mean);
  CHECK(std::abs(got.var - var) <= 5 * se_var);
}

/// The NaFlex size for `ratio`, written from big_vision's prepare_target_hw in float32.
tessera::image_size naflex_target(index_t h, index_t w, index_t p, float ratio) {
  auto const side = [&](index_t s) {
    float const t = std::ceil(static_cast<float>(s) * ratio / static_cast<float>(p)) * static_cast<float>(p);
    return static_cast<index_t>(std::max(t, static_cast<float>(p)));
  };
  return {side(h), side(w)};
}

}  // namespace

TEST_CASE("size_for_side keeps the aspect ratio and snaps to patch multiples", "[pack][unit]") {
  // 480 x 640, longer side 320 -> 240 x 320 (scale 1/2, both already multiples of 16).
  CHECK(pack::size_for_side(480, 640, 320.0, 16) == tessera::image_size{240, 320});
  CHECK(pack::size_for_side(640, 480, 320.0, 16) == tessera::image_size{320, 240});
  // 10 x 1000 at 100: width round(6.25) * 16 = 96, height 1 px -> at least one patch.
  CHECK(pack::size_for_side(10, 1000, 100.0, 16) == tessera::image_size{16, 96});
  // Halves round away from zero: 24 / 16 = 1.5 -> 2 patches.
  CHECK(pack::size_for_side(100, 100, 24.0, 16) == tessera::image_size{32, 32});
  // 300 x 200 at 200, p 14: 200 / 14 = 14.29 -> 196; 200 * 200 / 300 = 133.3 / 14 = 9.52 -> 140.
  CHECK(pack::size_for_side(300, 200, 200.0, 14) == tessera::image_size{196, 140});
  CHECK_THROWS_WITH(pack::size_for_side(0, 10, 100.0, 16), ContainsSubstring("sides in [1, 2^24]"));
  CHECK_THROWS_WITH(pack::size_for_side(10, 10, -1.0, 16), ContainsSubstring("side -1"));
  CHECK_THROWS_WITH(pack::size_for_side(10, 10, 10.0, 0), ContainsSubstring("patch must be in [1, 4096]"));
}

TEST_CASE("sample_side: uniform and NaViT's truncated normal", "[pack][unit]") {
  SECTION("uniform") {
    tessera::rng r(21);
    // U(64, 384): mean 224, variance 320^2 / 12, |x - mu| <= 160.
    check_moments(sample_moments([&] { return pack::sample_side(pack::side_uniform{64, 384}, r); }), 224.0,
                  320.0 * 320.0 / 12.0, 160.0);
  }
  SECTION("truncated normal") {
    // u ~ N(-0.5, 1) truncated to [-1, 1]: al = -0.5, be = 1.5, Z = Phi(be) - Phi(al),
    // E u = -0.5 + (phi(al) - phi(be)) / Z, Var u = 1 + (al phi(al) - be phi(be)) / Z - (E u + 0.5)^2;
    // side = 64 + (u + 1) / 2 * 320 => mean 64 + 160 (E u + 1), var 160^2 Var u, |x - mu| <= 320.
    auto const phi = [](double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); };
    auto const Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    double const al = -0.5, be = 1.5, Z = Phi(be) - Phi(al), d = (phi(al) - phi(be)) / Z;
    double const eu = -0.5 + d, vu = 1 + (al * phi(al) - be * phi(be)) / Z - d * d;
    tessera::rng r(22);
    auto const got = sample_moments([&] { return pack::sample_side(pack::side_truncated_normal{}, r); });
    check_moments(got, 64 + 160 * (eu + 1), 160.0 * 160.0 * vu, 320.0);
    CHECK(got.mean < 224.0);  // biased towards small sides
  }
  tessera::rng r(1);
  CHECK_THROWS_WITH(pack::sample_side(pack::side_uniform{0, 10}, r), ContainsSubstring("0 < lo <= hi <= 2^24"));
  CHECK_THROWS_WITH(pack::sample_side(pack::side_truncated_normal{100, 50}, r), ContainsSubstring("0 < lo <= hi"));
  CHECK_THROWS_WITH(pack::sample_side(pack::side_truncated_normal{64, 384, -0.5, 0.0}, r), ContainsSubstring("sigma > 0"));
}

TEST_CASE("sample_resolution: patch multiples, aspect ratio, reproducible", "[pack][unit]") {
  auto const draw_all = [](std::uint64_t seed) {
    std::vector<tessera::image_size> out;
    for (std::uint64_t i = 0; i < 50; ++i) {
      tessera::rng r(seed, i);
      out.push_back(pack::sample_resolution(375, 500, pack::side_truncated_normal{64, 384}, 16, r));
    }
    return out;
  };
  auto const a = draw_all(5);
  CHECK(draw_all(5) == a);
  CHECK(draw_all(6) != a);
  for (auto const s : a) {
    CHECK(s.height % 16 == 0);
    CHECK(s.width % 16 == 0);
    CHECK(s.width >= 64);
    CHECK(s.width <= 384);
    // Aspect 3:4 up to rounding each side by at most half a patch.
    CHECK(std::abs(static_cast<double>(s.height) - 0.75 * static_cast<double>(s.width)) <= 8.0 + 0.75 * 8.0);
  }
  tessera::rng r(1);
  CHECK_THROWS_WITH(pack::sample_resolution(0, 5, pack::side_uniform{}, 16, r), ContainsSubstring("sides in [1, 2^24]"));
}

TEST_CASE("fit_to_token_budget reproduces big_vision NaFlex sizing", "[pack][unit]") {
  // 1000 x 500, p 16, 256 tokens: ceil(62.5 r) * ceil(31.25 r) <= 256 holds up to r = 0.352
  // (22 x 11 = 242 patches); just above, 23 x 12 = 276. So 352 x 176.
  auto const a = pack::fit_to_token_budget(1000, 500, 16, 256);
  CHECK(a.height == 352);
  CHECK(a.width == 176);
  // 256 x 256, 256 tokens of 16: ratio -> 1 from below, 16 x 16 patches.
  auto const b = pack::fit_to_token_budget(256, 256, 16, 256);
  CHECK(b.height == 256);
  CHECK(b.width == 256);
  CHECK(b.ratio <= 1.0f);
  CHECK(b.ratio > 1.0f - 1e-5f);
  // A 1 x 1 image grows to the search's upper bound: ratio ~100 -> ceil(100 / 16) * 16 = 112.
  auto const c = pack::fit_to_token_budget(1, 1, 16, 256);
  CHECK(c.height == 112);
  CHECK(c.width == 112);

  // Property: the result fits, matches target(ratio), and a ratio eps larger does not fit
  // (the search stops with rb - lb < eps and rb infeasible; feasibility is monotone here).
  struct tc {
    index_t h, w, p, max_tokens;
  };
  for (tc t : {tc{480, 640, 16, 256}, tc{640, 480, 14, 729}, tc{1080, 1920, 16, 1024}, tc{37, 1234, 16, 64},
               tc{224, 224, 14, 256}, tc{3000, 200, 32, 100}, tc{5, 7, 2, 1000}}) {
    INFO(t.h << " x " << t.w << ", p " << t.p << ", max " << t.max_tokens);
    auto const f = pack::fit_to_token_budget(t.h, t.w, t.p, t.max_tokens);
    CHECK(f.height % t.p == 0);
    CHECK(f.width % t.p == 0);
    CHECK(f.height >= t.p);
    CHECK(f.width >= t.p);
    CHECK((f.height / t.p) * (f.width / t.p) <= t.max_tokens);
    CHECK(naflex_target(t.h, t.w, t.p, f.ratio) == tessera::image_size{f.height, f.width});
    tessera::image_size const bigger = naflex_target(t.h, t.w, t.p, f.ratio + 1e-5f);
    CHECK((bigger.height / t.p) * (bigger.width / t.p) > t.max_tokens);
  }

  // Too elongated for the budget: 1 x 2^20 with 4 one-pixel patches needs ratio < eps.
  CHECK_THROWS_WITH(pack::fit_to_token_budget(1, 1 << 20, 1, 4), ContainsSubstring("image too large?"));
  CHECK_THROWS_WITH(pack::fit_to_token_budget(10, 10, 16, 0), ContainsSubstring("max_tokens must be in"));
  CHECK_THROWS_WITH(pack::fit_to_token_budget(10, 10, 16, 16, 1e-7), ContainsSubstring("eps must be in [1e-5, 1]"));
  CHECK_THROWS_WITH(pack::fit_to_token_budget(10, (index_t{1} << 24) + 1, 16, 16), ContainsSubstring("sides in [1, 2^24]"));
}
