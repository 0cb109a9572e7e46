// SPDX-License-Identifier: Apache-2.0
// pack::patchify loops: one token (patch) per iteration, split over OpenMP threads. The pixel source
// is a template parameter so that io::preprocess_qwen2vl can read uint8 pixels through its
// normalization table while pack::patchify reads a float [C, H, W] image; both share this single
// implementation of the token and feature orders.
#pragma once

#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/core/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tessera::pack::detail {

/// (row, col) of token k in the patch grid (grid_h x grid_w patches).
///   merge-window-major: k = ((bh * (grid_w / m) + bw) * m + mh) * m + mw, row = bh*m + mh, col = bw*m + mw
///   row-major:          k = row * grid_w + col
struct token_position {
  index_t row, col;
};
[[nodiscard]] inline token_position position_of(index_t k, index_t grid_w, index_t merge, bool window_major) noexcept {
  if (!window_major) return {k / grid_w, k % grid_w};
  index_t const mw = k % merge, mh = (k / merge) % merge, window = k / (merge * merge);
  index_t const windows_per_row = grid_w / merge;
  return {(window / windows_per_row) * merge + mh, (window % windows_per_row) * merge + mw};
}

/// Writes n_tokens rows of n_features values. `src(c, y, x)` returns the pixel value of channel c
/// at row y, column x. Feature orders:
///   channel-major (c, t, py, px): f = ((c * T + t) * p + py) * p + px   (Conv3d weight flattening)
///   channel-last  (t, py, px, c): f = ((t * p + py) * p + px) * C + c   (big_vision, vit-pytorch)
/// Every temporal slice t holds the same (still) image.
template <class Src>
void patchify_rows(Src const& src, index_t channels, index_t patch, index_t temporal, index_t merge,
                   bool window_major, bool channel_major, index_t grid_h, index_t grid_w, float* out,
                   index_t out_stride, int threads) {
  index_t const n_tokens = grid_h * grid_w;
  index_t const pp = patch * patch;
  backend::cpu_detail::parallel_region(threads, [&](int t, int T) {
    auto const part = backend::cpu_detail::split(n_tokens, t, T);
    for (index_t k = part.begin; k < part.end; ++k) {
      token_position const pos = position_of(k, grid_w, merge, window_major);
      index_t const y0 = pos.row * patch, x0 = pos.col * patch;
      float* o = out + k * out_stride;
      if (channel_major) {
        for (index_t c = 0; c < channels; ++c) {
          float* oc = o + c * temporal * pp;  // [T][p][p] of channel c
          for (index_t py = 0; py < patch; ++py)
            for (index_t px = 0; px < patch; ++px) oc[py * patch + px] = src(c, y0 + py, x0 + px);
          for (index_t tt = 1; tt < temporal; ++tt)
            std::memcpy(oc + tt * pp, oc, static_cast<std::size_t>(pp) * sizeof(float));
        }
      } else {
        for (index_t py = 0; py < patch; ++py)
          for (index_t px = 0; px < patch; ++px)
            for (index_t c = 0; c < channels; ++c) o[(py * patch + px) * channels + c] = src(c, y0 + py, x0 + px);
        for (index_t tt = 1; tt < temporal; ++tt)
          std::memcpy(o + tt * pp * channels, o, static_cast<std::size_t>(pp * channels) * sizeof(float));
      }
    }
  });
}

}  // namespace tessera::pack::detail
