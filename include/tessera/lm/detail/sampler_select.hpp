// SPDX-License-Identifier: Apache-2.0
// Scans, selections and the small numeric kernels behind lm::sampler: finding NaN / +inf, the
// first maximum, the k-th largest value (torch.topk's last value), a vectorizable f32 exp for
// arguments <= 0, fixed-order double sums, and the float -> decimal double conversion that gives
// top_p the same threshold as HF's Python float. Plain loops: scans work in 64-wide blocks whose
// per-block test (compare, or-reduce) the compiler vectorizes at -O3, and walk the rare blocks that
// pass it one element at a time. No result depends on whether the compiler vectorized anything.
// The whole-vocabulary loops are separate [[gnu::noinline]] functions on purpose: inlined into the
// sampler's member functions, g++ 12 left several of them scalar (5-8x slower at vocab 152k).
#pragma once

#include <tessera/core/config.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <limits>
#include <system_error>

namespace tessera::lm::detail {

/// Width of the blocks the scans test at once. 16 would be fully unrolled by GCC and then not
/// vectorized; 64 keeps a loop the vectorizer takes (checked with -fopt-info-vec, g++ 12 -O3).
inline constexpr index_t sampler_block = 64;

/// Index of the first x[i] that is NaN or +inf, or -1 when there is none. -inf is valid.
[[nodiscard, gnu::noinline]] inline index_t find_nan_or_pos_inf(float const* x, index_t n) noexcept {
  constexpr float big = std::numeric_limits<float>::max();
  index_t i = 0;
  for (; i + sampler_block <= n; i += sampler_block) {
    int bad = 0;
    for (index_t j = 0; j < sampler_block; ++j) bad |= !(x[i + j] <= big);  // NaN and +inf fail `<= max`
    if (bad) break;
  }
  for (; i < n; ++i)
    if (!(x[i] <= big)) return i;
  return -1;
}

/// Index of the first maximum of x[0..n), n >= 1, x without NaN (torch.argmax's rule: the first
/// index among equal maxima). All -inf gives 0, as torch.argmax.
[[nodiscard, gnu::noinline]] inline index_t argmax_first(float const* x, index_t n) noexcept {
  index_t best = 0;
  float best_v = x[0];
  index_t i = 0;
  for (; i + sampler_block <= n; i += sampler_block) {
    int any = 0;
    for (index_t j = 0; j < sampler_block; ++j) any |= x[i + j] > best_v;
    if (!any) continue;
    for (index_t j = 0; j < sampler_block; ++j)
      if (x[i + j] > best_v) {
        best_v = x[i + j];
        best = i + j;
      }
  }
  for (; i < n; ++i)
    if (x[i] > best_v) {
      best_v = x[i];
      best = i;
    }
  return best;
}

/// Restores the min-heap property of heap[0..k) after heap[0] was replaced (sift-down).
inline void sift_down_min(float* heap, index_t k) noexcept {
  index_t i = 0;
  float const v = heap[0];
  for (;;) {
    index_t c = 2 * i + 1;
    if (c >= k) break;
    if (c + 1 < k && heap[c + 1] < heap[c]) ++c;
    if (!(heap[c] < v)) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = v;
}

/// The k-th largest value of x[0..n) counted with multiplicity (= torch.topk(x, k).values[-1]),
/// 1 <= k <= n, x without NaN. A min-heap of the k largest values seen so far (heap: k floats of
/// workspace); a block is skipped when none of its values beats the heap's minimum, so a scan
/// costs about n compares plus O(k log(n/k) log k) heap work on random data. Values equal to the
/// minimum are skipped: they do not change the multiset's k-th largest value.
[[nodiscard, gnu::noinline]] inline float kth_largest_heap(float const* x, index_t n, index_t k, float* heap) noexcept {
  std::copy(x, x + k, heap);
  std::make_heap(heap, heap + k, [](float a, float b) { return a > b; });  // min at heap[0]
  float thr = heap[0];
  auto const offer = [&](float v) {
    if (v > thr) {
      heap[0] = v;
      sift_down_min(heap, k);
      thr = heap[0];
    }
  };
  index_t i = k;
  for (; i + sampler_block <= n; i += sampler_block) {
    int any = 0;
    for (index_t j = 0; j < sampler_block; ++j) any |= x[i + j] > thr;
    if (!any) continue;
    for (index_t j = 0; j < sampler_block; ++j) offer(x[i + j]);
  }
  for (; i < n; ++i) offer(x[i]);
  return thr;
}

/// e^x for x <= 0 (including -0 and -inf; no NaN, no x > 0), as f32, within 1.01 ulp of the
/// exact value for results in the normal range (every 7th float in [-87.3, 0]: 0.98 ulp without
/// FMA contraction, 1.01 with it; the unit test checks 2 ulp). Cephes' expf: x = n ln2 + r by
/// Cody-Waite (ln2 = 0.693359375 - 2.12194440e-4, the first product exact), 1 + r + r^2 P5(r),
/// times 2^n built from bits in two factors so that subnormal results (x < -87.3) are right;
/// x < -104 gives 0 (f32 e^x underflows to 0 below -103.97). Branch-free with integer selects only, so that g++ 12
/// vectorizes loops over it without -ffast-math (a float compare in a select blocks if-conversion
/// under -ftrapping-math). std::exp(float) is a libm call per element, ~5 ns: 0.8 ms at vocab 152k.
[[nodiscard]] inline float exp_nonpos(float x) noexcept {
  // For x <= 0 the bit patterns order by magnitude: x < -104 <=> bits > bits(-104) = 0xC2D00000.
  std::uint32_t const bits = std::bit_cast<std::uint32_t>(x);
  float const xc = std::bit_cast<float>(std::min(bits, 0xC2D00000u));
  std::uint32_t const keep = 0u - static_cast<std::uint32_t>(bits <= 0xC2D00000u);  // all ones or 0
  float const t = xc * 1.44269504088896341f;
  float const fn = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer (|t| < 2^22)
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float const y = p * (r * r) + r + 1.0f;
  int const n = static_cast<int>(fn);  // in [-150, 0]
  int const low = n < -100 ? 1 : 0;    // 2^n = 2^(n + 64) * 2^-64 below 2^-100
  float const s1 = std::bit_cast<float>((n + 64 * low + 127) << 23);
  float const s2 = std::bit_cast<float>((127 - 64 * low) << 23);
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>((y * s1) * s2) & keep);
}

/// x[i] = x[i] / d for i < n (IEEE division, as torch's `scores / temperature`).
[[gnu::noinline]] inline void divide_all(float* x, index_t n, float d) noexcept {
  for (index_t i = 0; i < n; ++i) x[i] = x[i] / d;
}

/// out[i] = exp_nonpos(x[i] - m) for i < n (m >= every x[i]; x and out do not overlap).
[[gnu::noinline]] inline void exp_shifted(float const* x, index_t n, float m, float* out) noexcept {
  for (index_t i = 0; i < n; ++i) out[i] = exp_nonpos(x[i] - m);
}

/// Number of partial sums of sum_f64 (four AVX2 registers of doubles: enough to hide add latency).
inline constexpr index_t sum_lanes = 16;

/// Combines sum_f64's partial sums in its fixed order (a pairwise tree); acc is overwritten.
[[nodiscard]] inline double reduce_lanes(double* acc) noexcept {
  for (index_t w = sum_lanes / 2; w >= 1; w /= 2)
    for (index_t j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

/// Sum of v[0..n) in double with 16 interleaved partial sums (partial j takes v[i], i % 16 == j,
/// in increasing i), combined by reduce_lanes: the result does not depend on vectorization (each
/// partial is a plain sequential sum) and the loop vectorizes without reassociation. Adding zeros
/// changes nothing, so a sparse vector's sum can be formed from its nonzero entries alone.
[[nodiscard, gnu::noinline]] inline double sum_f64(float const* v, index_t n) noexcept {
  double acc[sum_lanes] = {};
  index_t i = 0;
  for (; i + sum_lanes <= n; i += sum_lanes)
    for (index_t j = 0; j < sum_lanes; ++j) acc[j] += static_cast<double>(v[i + j]);
  for (index_t j = 0; j < sum_lanes && i + j < n; ++j) acc[j] += static_cast<double>(v[i + j]);
  return reduce_lanes(acc);
}

/// hist[bits(p[i]) >> 16] += p[i] (in double) for every p[i] >= floor_p, p[i] in [0, 1]. A 64-entry
/// block with no p >= floor_p costs one vectorized test, so a peaked distribution (almost every p
/// tiny) skips almost all of the scatter, which is the slow part (a load-add-store per element).
[[gnu::noinline]] inline void histogram_mass(float const* p, index_t n, float floor_p, double* hist) noexcept {
  auto const one = [&](index_t t) {
    if (p[t] >= floor_p) hist[std::bit_cast<std::uint32_t>(p[t]) >> 16] += static_cast<double>(p[t]);
  };
  index_t i = 0;
  for (; i + sampler_block <= n; i += sampler_block) {
    int any = 0;
    for (index_t j = 0; j < sampler_block; ++j) any |= p[i + j] >= floor_p ? 1 : 0;
    if (any != 0)
      for (index_t j = i; j < i + sampler_block; ++j) one(j);
  }
  for (; i < n; ++i) one(i);
}

/// The k-th largest value of x[0..n) (1 <= k <= n, no NaN) by a radix step: a count histogram of
/// the top 16 bits of an order-preserving key finds the bucket that holds it, std::nth_element
/// finishes inside that bucket. counts: 65536 entries, work: n floats. O(n) for every k; used for
/// the k the heap scan would be slow for.
[[nodiscard, gnu::noinline]] inline float kth_largest_radix(float const* x, index_t n, index_t k,
                                                            std::uint32_t* counts, float* work) noexcept {
  // key: unsigned order equals float order (negative values: all bits flipped; others: sign set).
  auto const key = [](float v) {
    std::uint32_t const b = std::bit_cast<std::uint32_t>(v);
    return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  };
  std::fill(counts, counts + 65536, 0u);
  for (index_t i = 0; i < n; ++i) ++counts[key(x[i]) >> 16];
  index_t above = 0;  // values in buckets above the one that holds the k-th largest
  std::uint32_t b = 65535;
  for (;; --b) {
    if (above + counts[b] >= k) break;
    above += counts[b];
  }
  index_t m = 0;
  for (index_t i = 0; i < n; ++i)
    if ((key(x[i]) >> 16) == b) work[m++] = x[i];
  index_t const r = k - above;  // the r-th largest inside the bucket, 1 <= r <= m
  std::nth_element(work, work + (r - 1), work + m, [](float a, float c) { return a > c; });
  return work[r - 1];
}

/// The double that a user who wrote `v` as a decimal meant: the shortest decimal string that
/// rounds to v (std::to_chars' shortest round trip, e.g. 0.8f -> "0.8"), read as a double
/// (0.8). HF keeps top_p as a Python float (a double) and compares with float32(1 - top_p); this
/// lets tessera's float top_p reproduce that threshold bit for bit (1 - 0.8 = 0.19999999999999996
/// -> 0.2f, while 1.0f - 0.8f = 0.19999999f).
[[nodiscard]] inline double decimal_double(float v) noexcept {
  char buf[64];
  auto const written = std::to_chars(buf, buf + sizeof buf, v);
  double d = static_cast<double>(v);
  if (written.ec != std::errc{}) return d;
  double parsed = 0.0;
  auto const read = std::from_chars(buf, written.ptr, parsed);
  // The parsed double rounds back to v by construction; anything else keeps the exact widening.
  if (read.ec == std::errc{} && static_cast<float>(parsed) == v) d = parsed;
  return d;
}

}  // namespace tessera::lm::detail
