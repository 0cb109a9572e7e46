// SPDX-License-Identifier: Apache-2.0
// pack::resolution_sampler -- target sizes for NaViT-style variable-resolution training and for
// NaFlex-style fitting into a token budget (spec section 6.5). Every function returns a size in
// pixels (sides multiples of the patch); the caller resizes with io::resize_bicubic.
//   - sample_resolution: keeps the aspect ratio and draws the LONGER side from U(lo, hi) or from
//     NaViT's truncated normal (u ~ N(-0.5, 1) truncated to [-1, 1], mapped linearly onto [lo, hi]);
//   - fit_to_token_budget: big_vision's NaFlex resize_to_sequence, float32 binary search
//     (big_vision/pp/proj/image_text/ops_naflex.py, _get_image_size_for_seq, commit 0127fb6b).
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/random.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <variant>

namespace tessera::pack {

/// Side length drawn uniformly from [lo, hi) pixels.
struct side_uniform {
  double lo = 64.0;
  double hi = 384.0;
};

/// Side length = lo + (u + 1) / 2 * (hi - lo), u ~ N(mu, sigma^2) truncated to [-1, 1]
/// (NaViT: mu = -0.5, sigma = 1, biased towards small sides; [lo, hi] = [64, 384] in the paper).
struct side_truncated_normal {
  double lo = 64.0;
  double hi = 384.0;
  double mu = -0.5;
  double sigma = 1.0;
};

using side_distribution = std::variant<side_uniform, side_truncated_normal>;

namespace detail {
inline constexpr index_t max_image_side = index_t{1} << 24;  // float32-exact integers, as the NaFlex search needs

inline void check_image(char const* who, index_t height, index_t width, index_t patch) {
  TESSERA_CHECK(height >= 1 && width >= 1 && height <= max_image_side && width <= max_image_side, who, ": image size ",
                height, " x ", width, " must have sides in [1, 2^24]");
  TESSERA_CHECK(patch >= 1 && patch <= 4096, who, ": patch must be in [1, 4096], got ", patch);
}
}  // namespace detail

/// A draw of the side length from `dist`, in pixels (real-valued). Throws tessera::error unless
/// 0 < lo <= hi <= 2^24 (and sigma > 0 for the truncated normal).
[[nodiscard]] inline double sample_side(side_distribution const& dist, rng& r) {
  auto const check = [](double lo, double hi) {
    TESSERA_CHECK(lo > 0.0 && lo <= hi && hi <= static_cast<double>(detail::max_image_side),
                  "pack::sample_side: need 0 < lo <= hi <= 2^24, got [", lo, ", ", hi, "]");
  };
  if (auto const* u = std::get_if<side_uniform>(&dist)) {
    check(u->lo, u->hi);
    return r.uniform(u->lo, u->hi);
  }
  auto const& t = std::get<side_truncated_normal>(dist);
  check(t.lo, t.hi);
  double const u = sample_truncated_normal(r, t.mu, t.sigma, -1.0, 1.0);
  return t.lo + 0.5 * (u + 1.0) * (t.hi - t.lo);
}

/// The aspect-preserving size whose longer side is `side` pixels, each side rounded to the nearest
/// multiple of `patch` (std::round: halves away from zero) and at least one patch:
///   long' = max(p, round(side / p) p),  short' = max(p, round(short * side / long / p) p).
/// Square images: both sides from `side`.
[[nodiscard]] inline image_size size_for_side(index_t height, index_t width, double side, index_t patch) {
  detail::check_image("pack::size_for_side", height, width, patch);
  TESSERA_CHECK(side > 0.0 && side <= static_cast<double>(detail::max_image_side), "pack::size_for_side: side ", side,
                " must be in (0, 2^24]");
  auto const p = static_cast<double>(patch);
  auto const snap = [p, patch](double x) { return std::max(patch, static_cast<index_t>(std::round(x / p)) * patch); };
  double const longer = static_cast<double>(std::max(height, width));
  if (height >= width) return {snap(side), snap(static_cast<double>(width) * side / longer)};
  return {snap(static_cast<double>(height) * side / longer), snap(side)};
}

/// NaViT resolution sampling: the longer side drawn from `dist` (sample_side), then size_for_side.
/// Seeded through `r`; returns the target (height, width) in pixels, multiples of `patch`.
[[nodiscard]] inline image_size sample_resolution(index_t height, index_t width, side_distribution const& dist,
                                                     index_t patch, rng& r) {
  detail::check_image("pack::sample_resolution", height, width, patch);
  return size_for_side(height, width, sample_side(dist, r), patch);
}

/// Result of fit_to_token_budget.
struct naflex_size {
  float ratio = 0.0f;  ///< the scale found (the search's feasible lower bound)
  index_t height = 0;  ///< target height in pixels, a multiple of patch
  index_t width = 0;   ///< target width in pixels, a multiple of patch
};

/// big_vision NaFlex `resize_to_sequence` sizing (_get_image_size_for_seq with
/// divisible_by_patch=True), reproduced in float32 like the TensorFlow original:
///   target(r) = max(p, p * ceil(float32(side) * r / p)) per side;
///   feasible(r) = (target_h / p) * (target_w / p) <= max_tokens;
///   lb = eps / 10, rb = 100; while rb - lb >= eps: mid = (lb + rb) / 2; feasible(mid) ? lb = mid : rb = mid;
///   ratio = lb, size = target(lb).
/// The aspect ratio is kept up to the rounding of each side up to a patch multiple. As in
/// big_vision, a result with ratio <= eps (the image cannot fit: e.g. max_tokens too small for its
/// aspect ratio) or ratio >= 100 is refused (tessera::error). Needs sides in [1, 2^24], patch in
/// [1, 4096], max_tokens in [1, 2^31 - 1] and eps in [1e-5, 1] (a smaller eps can stall the float32
/// search near 100, where float32 spacing is 7.6e-6).
[[nodiscard]] inline naflex_size fit_to_token_budget(index_t height, index_t width, index_t patch, index_t max_tokens,
                                                     double eps = 1e-5) {
  detail::check_image("pack::fit_to_token_budget", height, width, patch);
  TESSERA_CHECK(max_tokens >= 1 && max_tokens <= std::numeric_limits<std::int32_t>::max(),
                "pack::fit_to_token_budget: max_tokens must be in [1, 2^31 - 1], got ", max_tokens);
  TESSERA_CHECK(eps >= 1e-5 && eps <= 1.0, "pack::fit_to_token_budget: eps must be in [1e-5, 1], got ", eps);
  auto const fh = static_cast<float>(height), fw = static_cast<float>(width), fp = static_cast<float>(patch);
  // prepare_target_hw: float32 multiply, divide, ceil, multiply, max with p, cast to int.
  auto const target = [fp](float side, float ratio) {
    float const t = std::ceil(side * ratio / fp) * fp;
    return static_cast<index_t>(std::max(t, fp));
  };
  auto const feasible = [&](float ratio) {
    return (target(fh, ratio) / patch) * (target(fw, ratio) / patch) <= max_tokens;
  };
  // As in TF: the bounds start at float32(eps / 10) and 100; comparisons against float32(eps).
  float const feps = static_cast<float>(eps);
  float lb = static_cast<float>(eps / 10.0), rb = 100.0f;
  // With eps >= 1e-5 this ends after ~24 halvings; the bound only guards against the unforeseen.
  for (int it = 0; it < 200 && rb - lb >= feps; ++it) {
    float const mid = (lb + rb) / 2.0f;
    if (feasible(mid)) lb = mid;
    else rb = mid;
  }
  TESSERA_CHECK(lb > feps, "pack::fit_to_token_budget: no scale fits ", height, " x ", width, " into ", max_tokens,
                " tokens of ", patch, " x ", patch, " (binary search failed - image too large?)");
  TESSERA_CHECK(lb < 100.0f, "pack::fit_to_token_budget: binary search failed - image ", height, " x ", width,
                " too small?");
  return {lb, target(fh, lb), target(fw, lb)};
}

}  // namespace tessera::pack
