// SPDX-License-Identifier: Apache-2.0
// Per-head RMS query-key normalization of ViT-22B as vit-pytorch's NaViT writes it
// (RMSNorm(heads, dim_head): F.normalize(x, dim=-1) * sqrt(dim_head) * gamma[head]), in place.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace tessera::vision::detail {

/// x[t, h, :] <- (x / max(||x||_2, eps)) * float(sqrt(head_dim)) * gamma[h, :], in that order, in
/// f32 as torch evaluates F.normalize (a division by the clamped norm, not a reciprocal multiply)
/// followed by the two multiplications. x: [n_tokens, n_heads, head_dim], last dim contiguous.
/// The norm is summed in f64 and rounded once, which is within 0.5 ulp of torch's f32 reduction.
template <backend::tag Backend, weight_type T>
void qk_norm(tensor_view<float, 3> x, tensor_view<T const, 2> gamma, float eps, exec_ctx<Backend>& ctx) {
  index_t const n = x.extent(0), H = x.extent(1), hd = x.extent(2);
  float const scale = static_cast<float>(std::sqrt(static_cast<double>(hd)));
  auto const row = [&](index_t t) {
    for (index_t h = 0; h < H; ++h) {
      float* const p = &x(t, h, 0);
      T const* const g = &gamma(h, 0);
      double ss = 0.0;
      for (index_t i = 0; i < hd; ++i) ss += static_cast<double>(p[i]) * static_cast<double>(p[i]);
      float const denom = std::max(static_cast<float>(std::sqrt(ss)), eps);
      for (index_t i = 0; i < hd; ++i) p[i] = p[i] / denom * scale * to_float(g[i]);
    }
  };
  if constexpr (std::is_same_v<Backend, backend::reference>) {
    (void)ctx;
    for (index_t t = 0; t < n; ++t) row(t);
  } else {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
#endif
    for (index_t t = 0; t < n; ++t) row(t);
    (void)ctx;
  }
}

}  // namespace tessera::vision::detail
