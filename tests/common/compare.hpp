// SPDX-License-Identifier: Apache-2.0
// Element-wise comparison with a report (worst index, max abs, max rel, share of the budget
// used), seeded random inputs (TESSERA_TEST_SEED overrides), and guard elements after outputs.
#pragma once

#include "common/tolerance.hpp"

#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <span>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace tessera::test {

/// The test seed: TESSERA_TEST_SEED if set, else `fallback`. Printed on failure via INFO.
[[nodiscard]] inline std::uint64_t seed(std::uint64_t fallback = 20241208) {
  if (char const* s = std::getenv("TESSERA_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return fallback;
}

/// n values from N(0, stddev^2) (or U(-1,1) * stddev when uniform), rounded to T.
template <class T = float>
[[nodiscard]] std::vector<T> random_vector(std::size_t n, std::uint64_t s, float stddev = 1.0f) {
  std::mt19937_64 gen(s);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(d(gen));
  return v;
}

/// n small integers in [-r, r] (exact in every dtype and in any summation order up to 2^24).
template <class T = float>
[[nodiscard]] std::vector<T> random_ints(std::size_t n, std::uint64_t s, int r = 4) {
  std::mt19937_64 gen(s);
  std::uniform_int_distribution<int> d(-r, r);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(static_cast<float>(d(gen)));
  return v;
}

/// Summary of a comparison; `ok` is false if any element is outside its budget or not finite
/// where the reference is finite.
struct compare_result {
  bool ok = true;
  std::int64_t n = 0, n_bad = 0, worst = -1;
  double max_abs = 0, max_rel = 0, worst_budget_share = 0, got_at_worst = 0, want_at_worst = 0;
  /// compare_scaled only (negative otherwise): the atol of the worst element's row, and the
  /// smallest rel_floor with which every element would have passed.
  double atol_at_worst = -1, min_rel_floor = -1;
  [[nodiscard]] std::string report() const {
    std::ostringstream os;
    os << (ok ? "ok" : "MISMATCH") << ": " << n_bad << "/" << n << " elements outside budget; worst index " << worst
       << " got " << got_at_worst << " want " << want_at_worst << "; max abs " << max_abs << ", max rel " << max_rel
       << ", " << 100.0 * worst_budget_share << "% of budget used";
    if (atol_at_worst >= 0)
      os << " (row-scaled atol " << atol_at_worst << " there; needs rel floor >= " << std::max(min_rel_floor, 0.0)
         << ")";
    return os.str();
  }
};

/// Compares got against want (same length) element-wise: |g - w| <= atol + rtol * |w|.
/// NaN in want must be NaN in got; +-inf must match exactly.
template <class G, class W>
[[nodiscard]] compare_result compare(G const* got, W const* want, std::int64_t n, tolerance t) {
  compare_result r;
  r.n = n;
  for (std::int64_t i = 0; i < n; ++i) {
    double const g = to_float(got[i]), w = to_float(want[i]);
    double share;
    if (std::isnan(w) || std::isinf(w)) {
      bool const same = std::isnan(w) ? std::isnan(g) : g == w;
      share = same ? 0.0 : INFINITY;
    } else if (!std::isfinite(g)) {
      share = INFINITY;
    } else {
      double const err = std::fabs(g - w), budget = t.atol + t.rtol * std::fabs(w);
      share = budget > 0 ? err / budget : (err == 0 ? 0.0 : INFINITY);
      r.max_abs = std::max(r.max_abs, err);
      if (w != 0) r.max_rel = std::max(r.max_rel, err / std::fabs(w));
    }
    if (share > 1.0) ++r.n_bad;
    if (share > r.worst_budget_share || r.worst < 0) {
      r.worst_budget_share = share;
      r.worst = i;
      r.got_at_worst = g;
      r.want_at_worst = w;
    }
  }
  r.ok = r.n_bad == 0;
  return r;
}

template <class G, class W>
[[nodiscard]] compare_result compare(std::vector<G> const& got, std::vector<W> const& want, tolerance t) {
  REQUIRE(got.size() == want.size());
  return compare(got.data(), want.data(), static_cast<std::int64_t>(got.size()), t);
}

/// Like compare(), but the absolute floor of each row of `row_len` elements follows that row's
/// magnitude: atol_row = min(t.atol, rel_floor * max |want| over the row's finite values), so a
/// row of small outputs (softmax over 1280 entries, probabilities ~1e-3) is not compared against
/// a fixed 1e-4 that hides any error. rtol is t.rtol; the budget is never wider than t. A row
/// whose finite values are all 0 gets atol 0 (exact). row_len = n: one scale for the whole output.
/// The result's min_rel_floor is the smallest rel_floor with which every element would have passed
/// (given rtol), i.e. the measured error in units of the row's magnitude.
template <class G, class W>
[[nodiscard]] compare_result compare_scaled(G const* got, W const* want, std::int64_t n, std::int64_t row_len,
                                            tolerance t, double rel_floor) {
  REQUIRE(row_len > 0);
  REQUIRE(n % row_len == 0);
  compare_result r;
  r.n = n;
  r.min_rel_floor = 0;
  for (std::int64_t b = 0; b < n; b += row_len) {
    double scale = 0;
    for (std::int64_t i = b; i < b + row_len; ++i) {
      double const w = to_float(want[i]);
      if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
    }
    tolerance const tr{std::min(t.atol, rel_floor * scale), t.rtol};
    compare_result const c = compare(got + b, want + b, row_len, tr);
    for (std::int64_t i = b; i < b + row_len; ++i) {
      double const g = to_float(got[i]), w = to_float(want[i]);
      if (!std::isfinite(w) || !std::isfinite(g)) continue;
      double const over = std::fabs(g - w) - t.rtol * std::fabs(w);
      if (over > 0) r.min_rel_floor = std::max(r.min_rel_floor, scale > 0 ? over / scale : INFINITY);
    }
    r.n_bad += c.n_bad;
    r.max_abs = std::max(r.max_abs, c.max_abs);
    r.max_rel = std::max(r.max_rel, c.max_rel);
    if (c.worst >= 0 && (c.worst_budget_share > r.worst_budget_share || r.worst < 0)) {
      r.worst_budget_share = c.worst_budget_share;
      r.worst = b + c.worst;
      r.got_at_worst = c.got_at_worst;
      r.want_at_worst = c.want_at_worst;
      r.atol_at_worst = tr.atol;
    }
  }
  r.ok = r.n_bad == 0;
  return r;
}

template <class G, class W>
[[nodiscard]] compare_result compare_scaled(std::vector<G> const& got, std::vector<W> const& want,
                                            std::int64_t row_len, tolerance t, double rel_floor) {
  REQUIRE(got.size() == want.size());
  return compare_scaled(got.data(), want.data(), static_cast<std::int64_t>(got.size()), row_len, t, rel_floor);
}

/// REQUIREs closeness and prints the report (with the seed) either way on failure.
#define TESSERA_REQUIRE_CLOSE(got, want, tol_)                 \
  do {                                                          \
    auto const tessera_cmp_ = ::tessera::test::compare(got, want, tol_); \
    INFO(tessera_cmp_.report());                                \
    REQUIRE(tessera_cmp_.ok);                                   \
  } while (0)

/// NMSE = sum (a - b)^2 / sum b^2 (for deep stacks and whole models).
template <class A, class B>
[[nodiscard]] double nmse(A const* a, B const* b, std::int64_t n) {
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double const d = double(to_float(a[i])) - to_float(b[i]);
    num += d * d;
    den += double(to_float(b[i])) * to_float(b[i]);
  }
  return den > 0 ? num / den : num;
}

/// NMSE of two equally long f32 spans (REQUIREs equal lengths).
[[nodiscard]] inline double nmse(std::span<float const> got, std::span<float const> want) {
  REQUIRE(got.size() == want.size());
  return nmse(got.data(), want.data(), static_cast<std::int64_t>(got.size()));
}

/// An output buffer with `guard` sentinel elements after the payload; intact() checks that no
/// kernel wrote past the end.
template <class T>
class guarded {
 public:
  static constexpr std::int64_t guard = 64;
  explicit guarded(std::int64_t n, T fill = from_float<T>(0.0f)) : buf_(n + guard), n_(n) {
    for (std::int64_t i = 0; i < n; ++i) buf_[i] = fill;
    for (std::int64_t i = 0; i < guard; ++i) buf_[n + i] = sentinel();
  }
  [[nodiscard]] T* data() noexcept { return buf_.data(); }
  [[nodiscard]] T const* data() const noexcept { return buf_.data(); }
  [[nodiscard]] std::int64_t size() const noexcept { return n_; }
  [[nodiscard]] std::vector<T> values() const { return std::vector<T>(buf_.data(), buf_.data() + n_); }
  [[nodiscard]] bool intact() const noexcept {
    for (std::int64_t i = 0; i < guard; ++i)
      if (std::memcmp(&buf_[n_ + i], &sentinel_storage(), sizeof(T)) != 0) return false;
    return true;
  }
  [[nodiscard]] tensor_view<T, 2> view(index_t rows, index_t cols) { return {buf_.data(), {rows, cols}}; }

 private:
  static T sentinel() noexcept { return sentinel_storage(); }
  static T const& sentinel_storage() noexcept {
    static T const s = [] {
      T v;
      std::memset(&v, 0x5A, sizeof(T));   // an unusual bit pattern no kernel computes
      return v;
    }();
    return s;
  }
  host_buffer<T> buf_;
  std::int64_t n_;
};

/// Sizes with tails that are no multiple of any SIMD width or tile.
inline std::vector<index_t> const awkward_sizes{1, 7, 17, 72, 127, 129};

}  // namespace tessera::test
