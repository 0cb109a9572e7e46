// SPDX-License-Identifier: Apache-2.0
// tessera::rng -- a small seeded random generator and the few distributions Patch n' Pack needs
// (token dropping, resolution sampling), written out so that a seed gives the same draws with every
// compiler and standard library. std::uniform_real_distribution, std::normal_distribution and
// std::gamma_distribution are implementation-defined and are deliberately not used.
//   generator: xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro256starstar.c),
//              state seeded by splitmix64 (Steele, Lea & Flood 2014) from (seed, stream);
//   normal:    Marsaglia's polar method (the second value of each pair is discarded: no hidden state);
//   gamma:     Marsaglia & Tsang 2000 ("A simple method for generating gamma variables"), with the
//              U^(1/k) boost for shape k < 1; beta = X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b);
//   truncated normal: inversion of the normal CDF by bisection (exact up to double precision).
// The integer streams (uniform_below, sample_without_replacement) are bit-identical everywhere; the
// floating-point draws use std::log, std::exp, std::pow and std::erfc, which libms may round
// differently in the last ulp, so they are reproducible bit for bit with one libm and to ~1e-15
// across libms.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace tessera {

/// splitmix64: one step of Steele, Lea & Flood's generator; a good 64-bit mixing function.
[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// xoshiro256** seeded from (seed, stream): x = splitmix64 output on state `seed`, then the four
/// state words are the next four splitmix64 outputs from state x ^ (stream * 0xd1b54a32d192ed03).
/// Different streams of one seed are unrelated sequences, so that e.g. the draws for image i do
/// not depend on how many draws image i - 1 needed.
class rng {
 public:
  using result_type = std::uint64_t;

  explicit constexpr rng(std::uint64_t seed, std::uint64_t stream = 0) noexcept {
    std::uint64_t sm = seed;
    std::uint64_t const mixed_stream = splitmix64(sm) ^ (stream * 0xd1b54a32d192ed03ULL);
    std::uint64_t st = mixed_stream;
    for (auto& word : s_) word = splitmix64(st);
  }

  /// A generator with the given xoshiro256** state (not all zero), e.g. for the published test vectors.
  [[nodiscard]] static rng from_state(std::uint64_t s0, std::uint64_t s1, std::uint64_t s2, std::uint64_t s3) {
    TESSERA_CHECK((s0 | s1 | s2 | s3) != 0, "rng::from_state: the xoshiro256** state must not be all zero");
    rng r(0);
    r.s_[0] = s0;
    r.s_[1] = s1;
    r.s_[2] = s2;
    r.s_[3] = s3;
    return r;
  }

  [[nodiscard]] static constexpr result_type min() noexcept { return 0; }
  [[nodiscard]] static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  /// Next 64 random bits (xoshiro256** 1.0).
  constexpr result_type operator()() noexcept {
    std::uint64_t const result = rotl(s_[1] * 5, 7) * 9;
    std::uint64_t const t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform double in [0, 1): the top 53 bits times 2^-53.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  /// Uniform double in (0, 1): (top 53 bits + 0.5) times 2^-53; never 0, so log() is finite.
  double uniform_open() noexcept { return (static_cast<double>((*this)() >> 11) + 0.5) * 0x1.0p-53; }
  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [0, n), unbiased (rejection of the lowest 2^64 mod n values, as OpenBSD's
  /// arc4random_uniform). n must be >= 1.
  std::uint64_t uniform_below(std::uint64_t n) noexcept {
    std::uint64_t const threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      std::uint64_t const x = (*this)();
      if (x >= threshold) return x % n;
    }
  }

  /// Standard normal N(0, 1): Marsaglia's polar method; the pair's second value is discarded.
  double normal() noexcept {
    for (;;) {
      double const u = 2.0 * uniform() - 1.0, v = 2.0 * uniform() - 1.0;
      double const s = u * u + v * v;
      if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * std::log(s) / s);
    }
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

/// Gamma(shape, 1) by Marsaglia & Tsang: d = k - 1/3, c = 1 / sqrt(9 d); repeat x ~ N(0, 1),
/// v = (1 + c x)^3 until v > 0 and (u < 1 - 0.0331 x^4 or log u < x^2 / 2 + d (1 - v + log v)),
/// return d v. For k < 1: Gamma(k + 1) * U^(1/k). shape must be > 0 and finite.
[[nodiscard]] inline double sample_gamma(rng& r, double shape) {
  TESSERA_CHECK(shape > 0.0 && std::isfinite(shape), "sample_gamma: shape must be positive and finite, got ",
                shape);
  double boost = 1.0;
  if (shape < 1.0) {
    boost = std::pow(r.uniform_open(), 1.0 / shape);
    shape += 1.0;
  }
  double const d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double const x = r.normal();
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    double const u = r.uniform_open();
    double const x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2 || std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return d * v * boost;
  }
}

/// Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), drawn in that order. a, b > 0.
[[nodiscard]] inline double sample_beta(rng& r, double a, double b) {
  TESSERA_CHECK(a > 0.0 && b > 0.0 && std::isfinite(a) && std::isfinite(b),
                "sample_beta: parameters must be positive and finite, got a = ", a, ", b = ", b);
  double const x = sample_gamma(r, a), y = sample_gamma(r, b);
  double const s = x + y;
  return s > 0.0 ? x / s : (a >= b ? 1.0 : 0.0);  // both underflowed (tiny a and b): the limit is a point mass
}

/// N(mu, sigma^2) truncated to [lo, hi], by inversion: u ~ U(0, 1) picks the quantile
/// F(lo) + u (F(hi) - F(lo)) of the normal CDF F, found by bisection on [lo, hi] (64 halvings, or
/// until the interval stops shrinking). On a side of the mean the upper-tail function
/// Q(z) = erfc(z / sqrt 2) / 2 is used so that far tails keep their precision. Needs sigma > 0,
/// lo <= hi (finite) and an interval whose normal mass is representable (within ~37 sigma).
[[nodiscard]] inline double sample_truncated_normal(rng& r, double mu, double sigma, double lo, double hi) {
  TESSERA_CHECK(sigma > 0.0 && std::isfinite(sigma) && std::isfinite(mu), "sample_truncated_normal: need a finite mu "
                "and sigma > 0, got mu = ", mu, ", sigma = ", sigma);
  TESSERA_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "sample_truncated_normal: need finite lo <= hi, got [",
                lo, ", ", hi, "]");
  double const u = r.uniform();
  if (lo == hi) return lo;
  // Work in standard units; mirror an interval lying left of the mean so that it lies right of it.
  double a = (lo - mu) / sigma, b = (hi - mu) / sigma;
  bool const mirrored = b <= 0.0;
  if (mirrored) {
    double const t = a;
    a = -b;
    b = -t;
  }
  // G is decreasing: G(z) = Q(z) where the interval is right of the mean, else 1 - Phi(z) likewise;
  // both are erfc(z / sqrt 2) / 2, which is precise in the right tail.
  auto const tail = [](double z) { return 0.5 * std::erfc(z * 0.70710678118654752440); };
  double const ga = tail(a), gb = tail(b);
  TESSERA_CHECK(ga > gb, "sample_truncated_normal: the interval [", lo, ", ", hi, "] has no representable mass under N(",
                mu, ", ", sigma, "^2)");
  double const target = ga - u * (ga - gb);  // G(z) = target, z in [a, b]
  double zl = a, zh = b;
  for (int it = 0; it < 64; ++it) {
    double const mid = 0.5 * (zl + zh);
    if (mid <= zl || mid >= zh) break;
    if (tail(mid) > target) zl = mid;
    else zh = mid;
  }
  double z = 0.5 * (zl + zh);
  if (mirrored) z = -z;
  return std::clamp(mu + sigma * z, lo, hi);
}

/// k distinct indices drawn uniformly from [0, n), returned in increasing order: a partial
/// Fisher-Yates shuffle of 0..n-1 (position i swapped with i + uniform_below(n - i), i < k),
/// then the first k sorted. O(n + k log k) time, n int32 of memory. Needs 0 <= k <= n <= 2^31 - 1.
[[nodiscard]] inline std::vector<std::int32_t> sample_without_replacement(rng& r, index_t n, index_t k) {
  TESSERA_CHECK(n >= 0 && n <= std::numeric_limits<std::int32_t>::max() && k >= 0 && k <= n,
                "sample_without_replacement: need 0 <= k <= n <= 2^31 - 1, got n = ", n, ", k = ", k);
  std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), std::int32_t{0});
  for (index_t i = 0; i < k; ++i) {
    auto const j = i + static_cast<index_t>(r.uniform_below(static_cast<std::uint64_t>(n - i)));
    std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  idx.resize(static_cast<std::size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace tessera
