// SPDX-License-Identifier: Apache-2.0
// nn::gelu (erf and tanh forms), nn::quick_gelu, nn::silu -- element-wise activations on f32
// [n_rows, dim] views: torch.nn.functional.gelu, transformers' QuickGELUActivation (the Qwen2-VL
// ViT MLP) and torch.nn.functional.silu (the Qwen2 MLP gate, see also nn/swiglu.hpp).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <string_view>

namespace tessera::nn {

/// Which GELU: torch.nn.functional.gelu(x, approximate='none' | 'tanh').
enum class gelu_approx {
  erf,   ///< exact: 0.5 x (1 + erf(x / sqrt(2))) -- nn.GELU(), the POINTS1.5 patch merger
  tanh,  ///< 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) -- gelu_pytorch_tanh, Flax nn.gelu
};

/// An activation named at run time, e.g. by a config's hidden_act (transformers' ACT2FN names:
/// "silu", "gelu", "gelu_pytorch_tanh", "quick_gelu"). See nn::activate.
enum class activation_kind { silu, gelu_erf, gelu_tanh, quick_gelu };

[[nodiscard]] constexpr std::string_view name_of(activation_kind a) noexcept {
  switch (a) {
    case activation_kind::silu: return "silu";
    case activation_kind::gelu_erf: return "gelu_erf";
    case activation_kind::gelu_tanh: return "gelu_tanh";
    case activation_kind::quick_gelu: return "quick_gelu";
  }
  return "?";
}

namespace detail {
/// The element-wise functions behind the public calls (a template argument of the kernels).
enum class activation { gelu_erf, gelu_tanh, quick_gelu, silu };
/// QuickGELU's 1.702 as torch multiplies it into an f32 tensor: rounded to f32 first.
inline constexpr float quick_gelu_alpha = 1.702f;

template <class Backend>
struct activation_impl {  // specialized in detail/activation_ref.hpp, detail/activation_cpu.hpp
  static_assert(always_false<Backend>,
                "nn::gelu / quick_gelu / silu have no implementation for this backend (check TESSERA_ENABLE_* "
                "and that tessera/nn/activation.hpp was included through tessera.hpp)");
};

/// Shape, contiguity and aliasing checks shared by the unary element-wise blocks.
template <class Space>
void check_unary(char const* block, tensor_view<float const, 2, Space> const& x,
                 tensor_view<float, 2, Space> const& y) {
  TESSERA_CHECK(y.extent(0) == x.extent(0) && y.extent(1) == x.extent(1), block, ": y must be [", x.extent(0), ", ",
                x.extent(1), "] like x, got [", y.extent(0), ", ", y.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && y.is_row_contiguous(), block,
                ": the last dimension of x and y must be contiguous (stride 1), got strides ", x.stride(1), " and ",
                y.stride(1));
  TESSERA_CHECK(static_cast<void const*>(y.data()) != static_cast<void const*>(x.data()) || y.strides() == x.strides(),
                block, ": in place, y must be exactly x (same strides), got row strides ", y.stride(0), " and ",
                x.stride(0));
}
}  // namespace detail

// Common to the three activations below:
//   x: [n_rows, dim] f32; rows may be strided, the last dimension must be contiguous.
//   y: [n_rows, dim] f32, last dimension contiguous; either exactly x (same data and strides: in
//      place) or not overlapping x.
// The cpu backend uses xsimd's f32 erf / tanh / exp with torch's f32 formulas; measured against the
// exact functions on [-20, 20] (tests/nn/test_activation.cpp) the error is at most 1.9e-6 absolute,
// about 1 ulp of the result, 1 % of the f32 test budget.
// Workspace: none. Determinism: element-wise, so bitwise reproducible and independent of the
// thread count.

/// Mirrors torch.nn.functional.gelu(x, approximate='none' | 'tanh') / nn.GELU.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void gelu(tensor_view<float const, 2, backend::space_t<Backend>> x, tensor_view<float, 2, backend::space_t<Backend>> y,
          exec_ctx<Backend>& ctx, gelu_approx approx = gelu_approx::erf) {
  detail::check_unary("nn::gelu", x, y);
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  using impl = detail::activation_impl<Backend>;
  if (approx == gelu_approx::erf) impl::template run<detail::activation::gelu_erf>(x, y, ctx);
  else impl::template run<detail::activation::gelu_tanh>(x, y, ctx);
}

/// Mirrors transformers' QuickGELUActivation (hidden_act "quick_gelu", the Qwen2-VL ViT):
/// y = x * sigmoid(1.702 x).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void quick_gelu(tensor_view<float const, 2, backend::space_t<Backend>> x,
                tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  detail::check_unary("nn::quick_gelu", x, y);
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  detail::activation_impl<Backend>::template run<detail::activation::quick_gelu>(x, y, ctx);
}

/// Mirrors torch.nn.functional.silu / nn.SiLU (hidden_act "silu"): y = x * sigmoid(x).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void silu(tensor_view<float const, 2, backend::space_t<Backend>> x, tensor_view<float, 2, backend::space_t<Backend>> y,
          exec_ctx<Backend>& ctx) {
  detail::check_unary("nn::silu", x, y);
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  detail::activation_impl<Backend>::template run<detail::activation::silu>(x, y, ctx);
}

/// The activation `kind` (chosen at run time), x and y as above.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void activate(activation_kind kind, tensor_view<float const, 2, backend::space_t<Backend>> x,
              tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  switch (kind) {
    case activation_kind::quick_gelu: quick_gelu<Backend>(x, y, ctx); return;
    case activation_kind::gelu_erf: gelu<Backend>(x, y, ctx, gelu_approx::erf); return;
    case activation_kind::gelu_tanh: gelu<Backend>(x, y, ctx, gelu_approx::tanh); return;
    case activation_kind::silu: silu<Backend>(x, y, ctx); return;
  }
  TESSERA_FAIL("nn::activate: unknown activation kind ", static_cast<int>(kind));
}

}  // namespace tessera::nn

#include <tessera/nn/detail/activation_ref.hpp>
#include <tessera/nn/detail/activation_cpu.hpp>
