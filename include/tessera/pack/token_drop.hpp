// SPDX-License-Identifier: Apache-2.0
// pack::token_drop -- NaViT's (continuous) token dropping (spec section 6.4): per image, a drop
// rate is chosen by a policy and max(1, floor(n * (1 - rate))) of its n patches are kept, drawn
// uniformly without replacement (vit-pytorch na_vit: num_keep = max(1, int(seq_len * (1 - p))),
// randn(seq_len).topk(num_keep)); the kept indices feed pack_plan::make as keep_sets. Dropped
// patches simply do not enter the packed buffer; kept ones keep their true (row, col).
// Draws are seeded and reproducible (core/random.hpp): image i uses rng(seed, i) only, so its
// keep set does not depend on the other images.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/core/random.hpp>

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

namespace tessera::pack {

/// Keep every patch.
struct drop_none {};

/// The same rate for every image, in [0, 1].
struct drop_constant {
  double rate = 0.0;
};

/// Per-image rate d = u * max_rate with u ~ Beta(a, b) (NaViT "continuous token dropping").
/// Parameterised by the mean rate d_mu = mean_rate: u has mean u_mu = d_mu / d_max and variance
/// variance_factor * u_mu (1 - u_mu) (the paper's 0.3). With m = u_mu and v = variance_factor:
///   Var(Beta(a, b)) = m (1 - m) / (a + b + 1)  =>  a + b = 1 / v - 1,  a = m (1/v - 1),  b = (1 - m)(1/v - 1).
/// (v = 0.3: a + b = 7/3.) Needs 0 <= mean_rate <= max_rate <= 1 and 0 < v < 1; mean_rate = 0
/// gives rate 0 and mean_rate = max_rate gives rate max_rate (the Beta's point-mass limits).
struct drop_beta {
  double mean_rate = 0.0;
  double max_rate = 1.0;
  double variance_factor = 0.3;
};

/// A rate that grows with the image's token count n = grid_h * grid_w, linearly between two
/// anchors and constant outside them (bigger images lose more tokens, small ones stay whole):
///   rate(n) = rate_lo + (rate_hi - rate_lo) * clamp((n - tokens_lo) / (tokens_hi - tokens_lo), 0, 1).
/// Needs 0 < tokens_lo < tokens_hi and both rates in [0, 1].
struct drop_by_resolution {
  index_t tokens_lo = 1;
  index_t tokens_hi = 2;
  double rate_lo = 0.0;
  double rate_hi = 0.0;
};

/// Given keep indices per image, packed in the given order (e.g. to reproduce vit-pytorch's topk
/// order); validated by pack_plan::make.
struct drop_explicit {
  keep_sets keep;
};

using drop_policy = std::variant<drop_none, drop_constant, drop_beta, drop_by_resolution, drop_explicit>;

/// NaViT's schedule over training progress n (e.g. images seen, or steps):
///   rho(n) = rho_min + (rho_max - rho_min) * sigmoid((n - mu) / tau),  sigmoid(x) = 1 / (1 + e^-x).
/// tau > 0; rho_min, rho_max in [0, 1] (rho_max < rho_min gives a decreasing schedule).
struct rate_schedule {
  double rho_min = 0.0;
  double rho_max = 0.0;
  double mu = 0.0;
  double tau = 1.0;

  [[nodiscard]] double at(double n) const {
    TESSERA_CHECK(tau > 0.0 && std::isfinite(tau) && std::isfinite(mu) && std::isfinite(n),
                  "pack::rate_schedule: need finite mu, n and tau > 0, got mu = ", mu, ", tau = ", tau, ", n = ", n);
    TESSERA_CHECK(rho_min >= 0.0 && rho_min <= 1.0 && rho_max >= 0.0 && rho_max <= 1.0,
                  "pack::rate_schedule: rho_min (", rho_min, ") and rho_max (", rho_max, ") must be in [0, 1]");
    double const x = (n - mu) / tau;
    // Either branch is the same sigmoid; each avoids exp overflow on its side.
    double const s = x >= 0.0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
    return rho_min + (rho_max - rho_min) * s;
  }
};

/// `base` with its rate set by `schedule` at progress n: drop_constant gets rate = rho(n),
/// drop_beta gets mean_rate = rho(n) (max_rate must be >= rho(n)). Other policies: tessera::error.
[[nodiscard]] inline drop_policy scheduled(drop_policy const& base, rate_schedule const& schedule, double n) {
  double const rho = schedule.at(n);
  if (auto const* c = std::get_if<drop_constant>(&base)) {
    drop_constant out = *c;
    out.rate = rho;
    return out;
  }
  if (auto const* b = std::get_if<drop_beta>(&base)) {
    drop_beta out = *b;
    TESSERA_CHECK(rho <= out.max_rate, "pack::scheduled: the schedule's mean rate ", rho, " exceeds drop_beta::max_rate ",
                  out.max_rate);
    out.mean_rate = rho;
    return out;
  }
  TESSERA_FAIL("pack::scheduled: a schedule sets the rate of drop_constant or the mean of drop_beta only (policy index ",
               base.index(), ")");
}

/// Tokens kept out of n at `rate`: max(1, floor(n * (1 - rate))) (vit-pytorch na_vit), for n >= 1.
[[nodiscard]] inline index_t n_keep(index_t n, double rate) {
  TESSERA_CHECK(n >= 1, "pack::n_keep: an image has at least one token, got n = ", n);
  TESSERA_CHECK(rate >= 0.0 && rate <= 1.0, "pack::n_keep: rate must be in [0, 1], got ", rate);
  auto const k = static_cast<index_t>(std::floor(static_cast<double>(n) * (1.0 - rate)));
  return k < 1 ? 1 : (k > n ? n : k);
}

namespace detail {
inline void check_rate(double r, char const* what) {
  TESSERA_CHECK(r >= 0.0 && r <= 1.0, "pack::token_drop: ", what, " must be in [0, 1], got ", r);
}
inline void check_policy(drop_policy const& policy) {
  std::visit(
      [](auto const& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, drop_constant>) {
          check_rate(p.rate, "drop_constant::rate");
        } else if constexpr (std::is_same_v<P, drop_beta>) {
          check_rate(p.mean_rate, "drop_beta::mean_rate");
          check_rate(p.max_rate, "drop_beta::max_rate");
          TESSERA_CHECK(p.mean_rate <= p.max_rate, "pack::token_drop: drop_beta::mean_rate (", p.mean_rate,
                        ") exceeds max_rate (", p.max_rate, ")");
          TESSERA_CHECK(p.variance_factor > 0.0 && p.variance_factor < 1.0,
                        "pack::token_drop: drop_beta::variance_factor must be in (0, 1), got ", p.variance_factor);
        } else if constexpr (std::is_same_v<P, drop_by_resolution>) {
          TESSERA_CHECK(p.tokens_lo > 0 && p.tokens_lo < p.tokens_hi, "pack::token_drop: drop_by_resolution needs ",
                        "0 < tokens_lo < tokens_hi, got ", p.tokens_lo, ", ", p.tokens_hi);
          check_rate(p.rate_lo, "drop_by_resolution::rate_lo");
          check_rate(p.rate_hi, "drop_by_resolution::rate_hi");
        }
      },
      policy);
}
}  // namespace detail

/// The drop rate `policy` gives an image of grid `grid`, drawing from `r` where the policy is
/// random (drop_beta: one Beta draw). drop_none and drop_explicit give 0 (drop_explicit's sets
/// are used as given by make_keep_sets). Throws tessera::error for invalid policy parameters.
[[nodiscard]] inline double drop_rate(drop_policy const& policy, patch_grid const& grid, rng& r) {
  detail::check_policy(policy);
  if (auto const* c = std::get_if<drop_constant>(&policy)) return c->rate;
  if (auto const* b = std::get_if<drop_beta>(&policy)) {
    if (b->mean_rate <= 0.0 || b->max_rate <= 0.0) return 0.0;
    double const m = b->mean_rate / b->max_rate;
    if (m >= 1.0) return b->max_rate;
    double const total = 1.0 / b->variance_factor - 1.0;  // a + b
    return sample_beta(r, m * total, (1.0 - m) * total) * b->max_rate;
  }
  if (auto const* d = std::get_if<drop_by_resolution>(&policy)) {
    double const n = static_cast<double>(grid.n_patches());
    double t = (n - static_cast<double>(d->tokens_lo)) / static_cast<double>(d->tokens_hi - d->tokens_lo);
    t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
    return d->rate_lo + (d->rate_hi - d->rate_lo) * t;
  }
  return 0.0;
}

/// Largest image make_keep_sets accepts, in patches (the sampling scratch is one int32 per patch;
/// pack_plan's default max_slots is the same).
inline constexpr index_t max_patches_per_image = index_t{1} << 24;

/// Keep sets for `grids` under `policy`, seeded: image i draws from rng(seed, i) -- first its rate
/// (drop_rate), then k = n_keep(n, rate) indices uniformly without replacement
/// (sample_without_replacement), returned sorted in token order. drop_none gives empty per_image
/// (= keep all, the cheapest form for pack_plan::make); drop_explicit returns its sets unchanged
/// (they must have one entry per image; pack_plan::make validates the indices). Throws
/// tessera::error for invalid policy parameters and grids with t != 1, a non-positive side or more
/// than max_patches_per_image patches.
[[nodiscard]] inline keep_sets make_keep_sets(std::span<patch_grid const> grids, drop_policy const& policy,
                                              std::uint64_t seed) {
  detail::check_policy(policy);
  for (std::size_t i = 0; i < grids.size(); ++i) {
    TESSERA_CHECK(grids[i].t == 1 && grids[i].h > 0 && grids[i].w > 0, "pack::make_keep_sets: image ", i,
                  " has grid (t, h, w) = (", grids[i].t, ", ", grids[i].h, ", ", grids[i].w,
                  "); need t = 1 and positive h, w");
    TESSERA_CHECK(grids[i].h <= max_patches_per_image && grids[i].w <= max_patches_per_image &&
                      grids[i].h * grids[i].w <= max_patches_per_image,
                  "pack::make_keep_sets: image ", i, " has ", grids[i].h, " x ", grids[i].w,
                  " patches, more than max_patches_per_image = 2^24");
  }
  if (std::holds_alternative<drop_none>(policy)) return {};
  if (auto const* e = std::get_if<drop_explicit>(&policy)) {
    TESSERA_CHECK(e->keep.per_image.size() == grids.size(), "pack::make_keep_sets: drop_explicit has ",
                  e->keep.per_image.size(), " keep sets for ", grids.size(), " images");
    return e->keep;
  }
  keep_sets out;
  out.per_image.resize(grids.size());
  for (std::size_t i = 0; i < grids.size(); ++i) {
    rng r(seed, i);
    index_t const n = grids[i].n_patches();
    index_t const k = n_keep(n, drop_rate(policy, grids[i], r));
    out.per_image[i] = sample_without_replacement(r, n, k);
  }
  return out;
}

}  // namespace tessera::pack
