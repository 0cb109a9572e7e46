// SPDX-License-Identifier: Apache-2.0
// nn::layer_norm -- torch.nn.functional.layer_norm over the last dimension (nn.LayerNorm of the
// Qwen2-VL ViT blocks, eps 1e-6, and of the POINTS1.5 patch merger's ln_q) with f32 activations
// and f32, bf16 or f16 affine parameters. Statistics are f32 (cpu) or f64 (reference).
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
struct layer_norm_impl {  // specialized in detail/layer_norm_ref.hpp, detail/layer_norm_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::layer_norm has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/layer_norm.hpp was included through tessera.hpp)");
};
}  // namespace detail

/// Mirrors torch.nn.functional.layer_norm(x, [dim], weight, bias, eps) / nn.LayerNorm(dim, eps):
///   y[r, :] = (x[r, :] - mean_r) / sqrt(var_r + eps) * weight + bias,
/// with mean_r and the biased variance var_r (divided by dim, as PyTorch) of row r.
///   x:      [n_rows, dim] f32; rows may be strided, the last dimension must be contiguous.
///   weight: [dim] f32, bf16 or f16, contiguous.
///   bias:   [dim] of the weight's type, contiguous, or an empty view (extent 0) for no bias.
///   eps:    finite and > 0.
///   y:      [n_rows, dim] f32, last dimension contiguous; either exactly x (same data and strides:
///           in place) or not overlapping x, weight or bias.
/// Numerics: two passes over each row (mean, then the mean of squared deviations), never
/// E[x^2] - mean^2, which cancels when |mean| >> std. See detail/layer_norm_cpu.hpp.
/// Workspace: none. Determinism: bitwise reproducible for a backend and shape, and independent of
/// the thread count (one thread reduces a whole row).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W, class Bias>
  requires std::is_same_v<std::remove_cv_t<Bias>, std::remove_cv_t<W>>
void layer_norm(tensor_view<float const, 2, backend::space_t<Backend>> x,
                tensor_view<W, 1, backend::space_t<Backend>> weight,
                tensor_view<Bias, 1, backend::space_t<Backend>> bias, float eps,
                tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  using weight_t = std::remove_cv_t<W>;
  using space = backend::space_t<Backend>;
  index_t const dim = x.extent(1);
  TESSERA_CHECK(weight.extent(0) == dim, "nn::layer_norm: weight must have ", dim, " elements (x is [", x.extent(0),
                ", ", dim, "]), got ", weight.extent(0));
  TESSERA_CHECK(bias.extent(0) == 0 || bias.extent(0) == dim, "nn::layer_norm: bias must have ", dim,
                " elements (or none), got ", bias.extent(0));
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == dim, "nn::layer_norm: y must be [", x.extent(0), ", ",
                dim, "], got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && y.is_row_contiguous() && weight.is_row_contiguous() &&
                    bias.is_row_contiguous(),
                "nn::layer_norm: the last dimension of x, y, weight and bias must be contiguous (stride 1), got "
                "strides ", x.stride(1), ", ", y.stride(1), ", ", weight.stride(0), ", ", bias.stride(0));
  TESSERA_CHECK(eps > 0.0f && std::isfinite(eps), "nn::layer_norm: eps must be finite and > 0, got ", eps);
  TESSERA_CHECK(static_cast<void const*>(y.data()) != static_cast<void const*>(x.data()) || y.strides() == x.strides(),
                "nn::layer_norm: in place, y must be exactly x (same strides), got row strides ", y.stride(0), " and ",
                x.stride(0));
  if (x.extent(0) == 0 || dim == 0) return;
  detail::layer_norm_impl<Backend>::run(x, tensor_view<weight_t const, 1, space>(weight),
                                        tensor_view<weight_t const, 1, space>(bias), eps, y, ctx);
}

}  // namespace tessera::nn

#include <tessera/nn/detail/layer_norm_ref.hpp>
#include <tessera/nn/detail/layer_norm_cpu.hpp>
