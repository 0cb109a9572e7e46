// SPDX-License-Identifier: Apache-2.0
// tessera::rng, the distributions of pack/random.hpp and the token-dropping policies: published test
// vectors (splitmix64, xoshiro256**), a Python re-implementation of the documented seeding,
// statistical checks with fixed seeds (bounds: 5 standard errors of the estimate, derived in each
// test), hand-worked keep counts, the schedule at known points, reproducibility and errors.
#include "common/moments.hpp"
#include <tessera/core/error.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/core/random.hpp>
#include <tessera/pack/token_drop.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

namespace {

using namespace tessera;
using pack::patch_grid;
using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::WithinAbs;

using test::moments;
using test::n_draws;
using test::sample_moments;

/// Checks sample moments against the analytic mean and variance: |mean - mu| <= 5 sqrt(var / n);
/// |s^2 - var| <= 5 sqrt((m4 - var^2) / n) with m4 <= dev_max^2 var, dev_max the largest possible
/// |x - mu| (bounded supports) -- so each bound is 5 standard errors of its estimator.
void check_drop_moments(moments const& got, double mu, double var, double dev_max) {
  double const se_mean = std::sqrt(var / n_draws);
  double const se_var = std::sqrt(std::max(dev_max * dev_max * var - var * var, var * var) / n_draws);
  INFO("mean " << got.mean << " vs " << mu << " (5 se = " << 5 * se_mean << "), var " << got.var << " vs " << var
               << " (5 se = " << 5 * se_var << ")");
  CHECK(std::abs(got.mean - mu) <= 5 * se_mean);
  CHECK(std::abs(got.var - var) <= 5 * se_var);
}

}  // namespace

TEST_CASE("rng: published test vectors and the documented seeding", "[pack][unit]") {
  // splitmix64 from state 0 (Vigna's splitmix64.c reference outputs).
  std::uint64_t st = 0;
  CHECK(tessera::splitmix64(st) == 0xe220a8397b1dcdafULL);
  CHECK(tessera::splitmix64(st) == 0x6e789e6aa1b965f4ULL);
  CHECK(tessera::splitmix64(st) == 0x06c45d188009454fULL);
  // xoshiro256** from state {1, 2, 3, 4} (reference xoshiro256starstar.c).
  auto x = tessera::rng::from_state(1, 2, 3, 4);
  CHECK(x() == 11520ULL);
  CHECK(x() == 0ULL);
  CHECK(x() == 1509978240ULL);
  CHECK(x() == 1215971899390074240ULL);
  // rng(42, 3): values from a separate Python implementation of the seeding rule in random.hpp.
  tessera::rng r(42, 3);
  CHECK(r() == 0x5d820981817e4addULL);
  CHECK(r() == 0x93727ee08c7311a2ULL);
  CHECK(r() == 0x22c7a9f117c4446dULL);
  CHECK_THROWS_WITH(tessera::rng::from_state(0, 0, 0, 0), ContainsSubstring("must not be all zero"));
}

TEST_CASE("rng: uniform draws", "[pack][unit]") {
  tessera::rng r(1);
  // U[0, 1): mean 1/2, variance 1/12, |x - mu| <= 1/2.
  check_drop_moments(sample_moments([&] { return r.uniform(); }), 0.5, 1.0 / 12.0, 0.5);
  for (int i = 0; i < 1000; ++i) {
    double const u = r.uniform_open();
    REQUIRE((u > 0.0 && u < 1.0));
  }
  // uniform_below(7): each value with probability 1/7; a count's sd is sqrt(n p (1 - p)).
  std::vector<int> count(7, 0);
  for (int i = 0; i < n_draws; ++i) ++count[static_cast<std::size_t>(r.uniform_below(7))];
  double const p = 1.0 / 7.0, sd = std::sqrt(n_draws * p * (1 - p));
  for (int c : count) CHECK(std::abs(c - n_draws * p) <= 5 * sd);
  CHECK(r.uniform_below(1) == 0);
}

TEST_CASE("random distributions match their analytic moments", "[pack][unit]") {
  SECTION("normal") {
    tessera::rng r(2);
    // N(0, 1): var of s^2 is 2 sigma^4 / n (m4 = 3); dev_max = sqrt(3) gives exactly that bound.
    check_drop_moments(sample_moments([&] { return r.normal(); }), 0.0, 1.0, std::sqrt(3.0));
  }
  SECTION("gamma") {
    // Gamma(k): mean k, variance k; m4 = 3k^2 + 6k, i.e. dev_max^2 = 3k + 6.
    for (double k : {0.4, 1.0, 3.5}) {
      tessera::rng r(3);
      INFO("shape " << k);
      check_drop_moments(sample_moments([&] { return tessera::sample_gamma(r, k); }), k, k, std::sqrt(3 * k + 6));
    }
  }
  SECTION("beta") {
    // Beta(a, b) on [0, 1]: mean a / (a + b), variance ab / ((a+b)^2 (a+b+1)); |x - mu| <= 1.
    for (auto const& ab : {std::pair{0.7, 1.63}, std::pair{2.0, 5.0}, std::pair{0.2, 0.3}}) {
      double const a = ab.first, b = ab.second;  // not a structured binding: clang 14 cannot capture those
      tessera::rng r(4);
      INFO("a " << a << " b " << b);
      double const mu = a / (a + b), var = a * b / ((a + b) * (a + b) * (a + b + 1));
      check_drop_moments(sample_moments([&] { return tessera::sample_beta(r, a, b); }), mu, var, 1.0);
    }
  }
  SECTION("truncated normal") {
    // N(mu, 1) truncated to [lo, hi]: with al = lo - mu, be = hi - mu, Z = Phi(be) - Phi(al):
    //   mean = mu + (phi(al) - phi(be)) / Z,
    //   var  = 1 + (al phi(al) - be phi(be)) / Z - ((phi(al) - phi(be)) / Z)^2.
    auto const phi = [](double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); };
    auto const Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    struct tc {
      double mu, lo, hi;
    };
    for (tc c : {tc{-0.5, -1.0, 1.0}, tc{0.0, 5.0, 6.0}, tc{0.0, -7.0, -6.5}, tc{3.0, -1.0, 1.0}}) {
      tessera::rng r(5);
      INFO("mu " << c.mu << " on [" << c.lo << ", " << c.hi << "]");
      double const al = c.lo - c.mu, be = c.hi - c.mu;
      // Z from the tail on the far side of the mean to keep precision in the tails.
      double const Z = al >= 0 ? Phi(-al) - Phi(-be) : Phi(be) - Phi(al);
      double const d = (phi(al) - phi(be)) / Z;
      double const mean = c.mu + d, var = 1 + (al * phi(al) - be * phi(be)) / Z - d * d;
      moments const got = sample_moments([&] {
        double const v = tessera::sample_truncated_normal(r, c.mu, 1.0, c.lo, c.hi);
        REQUIRE((v >= c.lo && v <= c.hi));
        return v;
      });
      check_drop_moments(got, mean, var, c.hi - c.lo);
    }
  }
  tessera::rng r(1);
  CHECK_THROWS_WITH(tessera::sample_gamma(r, 0.0), ContainsSubstring("shape must be positive"));
  CHECK_THROWS_WITH(tessera::sample_beta(r, 1.0, -1.0), ContainsSubstring("must be positive"));
  CHECK_THROWS_WITH(tessera::sample_truncated_normal(r, 0.0, 0.0, -1.0, 1.0), ContainsSubstring("sigma > 0"));
  CHECK_THROWS_WITH(tessera::sample_truncated_normal(r, 0.0, 1.0, 1.0, -1.0), ContainsSubstring("lo <= hi"));
  CHECK_THROWS_WITH(tessera::sample_truncated_normal(r, 0.0, 1.0, 50.0, 60.0), ContainsSubstring("no representable mass"));
  CHECK(tessera::sample_truncated_normal(r, 0.0, 1.0, 2.0, 2.0) == 2.0);
}

TEST_CASE("sample_without_replacement is uniform, sorted and distinct", "[pack][unit]") {
  // Each of n = 10 indices is in a 3-subset with probability 3/10; count sd = sqrt(N p (1 - p)).
  std::vector<int> count(10, 0);
  for (int t = 0; t < n_draws; ++t) {
    tessera::rng r(99, static_cast<std::uint64_t>(t));
    auto const s = tessera::sample_without_replacement(r, 10, 3);
    REQUIRE(s.size() == 3);
    REQUIRE(std::is_sorted(s.begin(), s.end()));
    REQUIRE(std::adjacent_find(s.begin(), s.end()) == s.end());
    for (auto i : s) ++count[static_cast<std::size_t>(i)];
  }
  double const p = 0.3, sd = std::sqrt(n_draws * p * (1 - p));
  for (int c : count) CHECK(std::abs(c - n_draws * p) <= 5 * sd);
  tessera::rng r(1);
  CHECK(tessera::sample_without_replacement(r, 5, 5) == std::vector<std::int32_t>{0, 1, 2, 3, 4});
  CHECK(tessera::sample_without_replacement(r, 5, 0).empty());
  CHECK_THROWS_WITH(tessera::sample_without_replacement(r, 5, 6), ContainsSubstring("0 <= k <= n"));
}

TEST_CASE("n_keep: max(1, floor(n (1 - rate))) as vit-pytorch", "[pack][unit]") {
  CHECK(pack::n_keep(10, 0.3) == 7);   // Python: int(10 * (1 - 0.3)) = 7
  CHECK(pack::n_keep(10, 0.25) == 7);  // 7.5 -> 7
  CHECK(pack::n_keep(256, 0.5) == 128);
  CHECK(pack::n_keep(10, 0.95) == 1);  // 0.5 -> 0 -> at least one
  CHECK(pack::n_keep(7, 0.0) == 7);
  CHECK(pack::n_keep(7, 1.0) == 1);
  CHECK(pack::n_keep(1, 0.5) == 1);
  CHECK_THROWS_WITH(pack::n_keep(0, 0.1), ContainsSubstring("at least one token"));
  CHECK_THROWS_WITH(pack::n_keep(4, 1.5), ContainsSubstring("rate must be in [0, 1]"));
}

TEST_CASE("make_keep_sets: constant rate, reproducible, independent per image", "[pack][unit]") {
  std::vector<patch_grid> const g = {{1, 4, 5}, {1, 3, 3}, {1, 1, 1}, {1, 16, 16}};
  pack::drop_policy const policy = pack::drop_constant{0.5};
  auto const a = pack::make_keep_sets(g, policy, 123);
  REQUIRE(a.per_image.size() == 4);
  std::vector<std::size_t> const want_sizes = {10, 4, 1, 128};  // floor(20/2), floor(4.5), max(1, 0), 128
  for (std::size_t i = 0; i < 4; ++i) {
    auto const& s = a.per_image[i];
    CHECK(s.size() == want_sizes[i]);
    CHECK(std::is_sorted(s.begin(), s.end()));
    CHECK(std::adjacent_find(s.begin(), s.end()) == s.end());
    CHECK(s.front() >= 0);
    CHECK(s.back() < g[i].n_patches());
  }
  CHECK(pack::make_keep_sets(g, policy, 123).per_image == a.per_image);
  CHECK(pack::make_keep_sets(g, policy, 124).per_image != a.per_image);
  // Image 3's set depends only on (seed, 3) and its grid.
  std::vector<patch_grid> g2 = g;
  g2[0] = {1, 7, 2};
  CHECK(pack::make_keep_sets(g2, policy, 123).per_image[3] == a.per_image[3]);
  // The sets feed pack_plan directly; the kept patches keep their coordinates.
  auto const plan = pack::pack_plan::make(g, {pack::pack_mode::fixed_rows, 140, 0}, &a);
  CHECK(plan.n_real_tokens() == 143);
  for (index_t s = 0; s < plan.n_slots(); ++s) {
    std::int32_t const img = plan.image_id()[static_cast<std::size_t>(s)];
    if (img < 0) continue;
    std::int32_t const src = plan.source_patch()[static_cast<std::size_t>(s)];
    CHECK(plan.coords()(s, 0) == src / g[static_cast<std::size_t>(img)].w);
    CHECK(plan.coords()(s, 1) == src % g[static_cast<std::size_t>(img)].w);
  }

  CHECK(pack::make_keep_sets(g, pack::drop_none{}, 1).per_image.empty());
  auto const full = pack::make_keep_sets(g, pack::drop_constant{0.0}, 1);
  CHECK(full.per_image[3].size() == 256);
}

TEST_CASE("drop_beta: the rate follows u * d_max, u ~ Beta with mean d_mu / d_max, var 0.3 u_mu (1 - u_mu)",
          "[pack][unit]") {
  // d_mu = 0.3, d_max = 0.6: u_mu = 0.5, Var(u) = 0.3 * 0.25 = 0.075; rate = 0.6 u:
  // mean 0.3, variance 0.36 * 0.075 = 0.027, |rate - 0.3| <= 0.3.
  pack::drop_beta const beta{0.3, 0.6, 0.3};
  patch_grid const g{1, 8, 8};
  tessera::rng r(11);
  check_drop_moments(sample_moments([&] { return pack::drop_rate(beta, g, r); }), 0.3, 0.027, 0.3);
  // Skewed: d_mu = 0.1, d_max = 1 (a = 0.1 * 7/3 < 1 exercises the shape < 1 path): var 0.3 * 0.09.
  tessera::rng r2(12);
  check_drop_moments(sample_moments([&] { return pack::drop_rate(pack::drop_beta{0.1, 1.0, 0.3}, g, r2); }), 0.1,
                0.3 * 0.1 * 0.9, 0.9);
  // Point-mass limits.
  tessera::rng r3(13);
  CHECK(pack::drop_rate(pack::drop_beta{0.0, 0.5, 0.3}, g, r3) == 0.0);
  CHECK(pack::drop_rate(pack::drop_beta{0.5, 0.5, 0.3}, g, r3) == 0.5);
  // Per-image keep counts follow the per-image rates.
  std::vector<patch_grid> const gs(50, patch_grid{1, 10, 10});
  auto const k = pack::make_keep_sets(gs, beta, 5);
  std::size_t lo = 1000, hi = 0;
  for (auto const& s : k.per_image) {
    lo = std::min(lo, s.size());
    hi = std::max(hi, s.size());
    CHECK(s.size() >= 40);  // rate <= 0.6
  }
  CHECK(lo < hi);  // rates differ between images
}

TEST_CASE("drop_by_resolution: linear in the token count between the anchors", "[pack][unit]") {
  pack::drop_by_resolution const p{64, 256, 0.1, 0.5};
  tessera::rng r(1);
  CHECK(pack::drop_rate(p, {1, 4, 4}, r) == 0.1);    // 16 <= 64
  CHECK(pack::drop_rate(p, {1, 8, 8}, r) == 0.1);    // 64
  CHECK_THAT(pack::drop_rate(p, {1, 10, 16}, r), WithinAbs(0.1 + 0.4 * 96.0 / 192.0, 1e-15));  // 160: halfway
  CHECK(pack::drop_rate(p, {1, 16, 16}, r) == 0.5);  // 256
  CHECK(pack::drop_rate(p, {1, 32, 32}, r) == 0.5);
  std::vector<patch_grid> const g = {{1, 4, 4}, {1, 32, 32}};
  auto const k = pack::make_keep_sets(g, p, 3);
  CHECK(k.per_image[0].size() == 14);   // floor(16 * 0.9) = 14
  CHECK(k.per_image[1].size() == 512);  // floor(1024 * 0.5)
}

TEST_CASE("rate_schedule and scheduled policies", "[pack][unit]") {
  pack::rate_schedule const s{0.2, 0.8, 1000.0, 100.0};
  CHECK_THAT(s.at(1000.0), WithinAbs(0.5, 1e-15));                      // sigmoid(0) = 1/2
  CHECK_THAT(s.at(1000.0 + 100.0 * std::log(3.0)), WithinAbs(0.65, 1e-12));  // sigmoid(ln 3) = 3/4
  CHECK_THAT(s.at(1000.0 - 100.0 * std::log(3.0)), WithinAbs(0.35, 1e-12));  // sigmoid(-ln 3) = 1/4
  CHECK_THAT(s.at(-1e9), WithinAbs(0.2, 1e-15));
  CHECK_THAT(s.at(1e9), WithinAbs(0.8, 1e-15));
  pack::rate_schedule const down{0.9, 0.1, 0.0, 1.0};
  CHECK(down.at(-5.0) > down.at(5.0));

  auto const c = pack::scheduled(pack::drop_constant{0.0}, s, 1000.0);
  CHECK_THAT(std::get<pack::drop_constant>(c).rate, WithinAbs(0.5, 1e-15));
  auto const b = pack::scheduled(pack::drop_beta{0.0, 0.9, 0.3}, s, 1e9);
  CHECK_THAT(std::get<pack::drop_beta>(b).mean_rate, WithinAbs(0.8, 1e-15));
  CHECK(std::get<pack::drop_beta>(b).max_rate == 0.9);
  CHECK_THROWS_WITH(pack::scheduled(pack::drop_beta{0.0, 0.5, 0.3}, s, 1e9), ContainsSubstring("exceeds drop_beta::max_rate"));
  CHECK_THROWS_WITH(pack::scheduled(pack::drop_none{}, s, 0.0), ContainsSubstring("drop_constant or the mean of drop_beta"));
  CHECK_THROWS_WITH((pack::rate_schedule{0.2, 0.8, 0.0, 0.0}.at(1.0)), ContainsSubstring("tau > 0"));
  CHECK_THROWS_WITH((pack::rate_schedule{-0.2, 0.8, 0.0, 1.0}.at(1.0)), ContainsSubstring("must be in [0, 1]"));
}

TEST_CASE("drop_explicit and policy checks", "[pack][unit]") {
  std::vector<patch_grid> const g = {{1, 2, 2}, {1, 1, 3}};
  pack::keep_sets k;
  k.per_image = {{3, 0}, {2}};
  auto const out = pack::make_keep_sets(g, pack::drop_explicit{k}, 7);
  CHECK(out.per_image == k.per_image);  // given order kept
  pack::keep_sets bad;
  bad.per_image = {{0}};
  CHECK_THROWS_WITH(pack::make_keep_sets(g, pack::drop_explicit{bad}, 7), ContainsSubstring("1 keep sets for 2 images"));
  CHECK_THROWS_WITH(pack::make_keep_sets(g, pack::drop_constant{1.5}, 7),
                    ContainsSubstring("drop_constant::rate must be in [0, 1]"));
  CHECK_THROWS_WITH(pack::make_keep_sets(g, pack::drop_beta{0.6, 0.5, 0.3}, 7), ContainsSubstring("exceeds max_rate"));
  CHECK_THROWS_WITH(pack::make_keep_sets(g, pack::drop_beta{0.2, 0.5, 1.0}, 7),
                    ContainsSubstring("variance_factor must be in (0, 1)"));
  CHECK_THROWS_WITH(pack::make_keep_sets(g, pack::drop_by_resolution{10, 10, 0.0, 0.1}, 7),
                    ContainsSubstring("0 < tokens_lo < tokens_hi"));
  std::vector<patch_grid> const bad_grid = {{1, 0, 3}};
  CHECK_THROWS_WITH(pack::make_keep_sets(bad_grid, pack::drop_constant{0.1}, 7), ContainsSubstring("image 0 has grid"));
  std::vector<patch_grid> const huge = {{1, 2, 2}, {1, 8192, 4096}};
  CHECK_THROWS_WITH(pack::make_keep_sets(huge, pack::drop_constant{0.1}, 7),
                    ContainsSubstring("image 1 has 8192 x 4096 patches, more than max_patches_per_image"));
}
