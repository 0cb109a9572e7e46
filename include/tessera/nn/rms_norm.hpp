// SPDX-License-Identifier: Apache-2.0
// nn::rms_norm -- RMSNorm as HF transformers' Qwen2RMSNorm (the Qwen2.5 decoder's input /
// post-attention / final norms): y = (x * rsqrt(mean(x^2) + eps)) * weight, f32 activations,
// f32, bf16 or f16 weight.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cmath>
#include <type_traits>

namespace tessera::nn {

namespace detail {
template <class Backend>
struct rms_norm_impl {  // specialized in detail/rms_norm_ref.hpp, detail/rms_norm_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::rms_norm has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/rms_norm.hpp was included through tessera.hpp)");
};
}  // namespace detail

/// Mirrors HF Qwen2RMSNorm (= LlamaRMSNorm, T5LayerNorm) with f32 activations:
///   y[r, :] = (x[r, :] * (1 / sqrt(mean_j x[r, j]^2 + eps))) * weight,
/// in that order of f32 operations (normalize, then scale by the weight), as HF does.
///   x:      [n_rows, dim] f32; rows may be strided, the last dimension must be contiguous.
///   weight: [dim] f32, bf16 or f16, contiguous.
///   eps:    finite and > 0 (Qwen2.5: 1e-6; POINTS1.5's CustomLlama: 1e-5, from the config).
///   y:      [n_rows, dim] f32, last dimension contiguous; either exactly x (same data and strides:
///           in place) or not overlapping x or weight.
/// Workspace: none. Determinism: bitwise reproducible for a backend and shape, and independent of
/// the thread count (one thread reduces a whole row).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void rms_norm(tensor_view<float const, 2, backend::space_t<Backend>> x,
              tensor_view<W, 1, backend::space_t<Backend>> weight, float eps,
              tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  using weight_t = std::remove_cv_t<W>;
  index_t const dim = x.extent(1);
  TESSERA_CHECK(weight.extent(0) == dim, "nn::rms_norm: weight must have ", dim, " elements (x is [", x.extent(0),
                ", ", dim, "]), got ", weight.extent(0));
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == dim, "nn::rms_norm: y must be [", x.extent(0), ", ",
                dim, "], got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && y.is_row_contiguous() && weight.is_row_contiguous(),
                "nn::rms_norm: the last dimension of x, y and weight must be contiguous (stride 1), got strides ",
                x.stride(1), ", ", y.stride(1), ", ", weight.stride(0));
  TESSERA_CHECK(eps > 0.0f && std::isfinite(eps), "nn::rms_norm: eps must be finite and > 0, got ", eps);
  TESSERA_CHECK(static_cast<void const*>(y.data()) != static_cast<void const*>(x.data()) || y.strides() == x.strides(),
                "nn::rms_norm: in place, y must be exactly x (same strides), got row strides ", y.stride(0), " and ",
                x.stride(0));
  if (x.extent(0) == 0 || dim == 0) return;
  detail::rms_norm_impl<Backend>::run(x, tensor_view<weight_t const, 1, backend::space_t<Backend>>(weight), eps, y,
                                      ctx);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/rms_norm_ref.hpp>
#include <tessera/nn/detail/rms_norm_cpu.hpp>
