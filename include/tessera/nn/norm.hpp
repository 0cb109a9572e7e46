// SPDX-License-Identifier: Apache-2.0
// nn::norm_weights and the normalizations that take them: nn.LayerNorm (weight, optional bias) and
// Qwen2RMSNorm-style RMSNorm (weight only), and nn::norm, which applies the one a config names
// (norm_kind) -- the form models use, so that a layer's norm is one call.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/rms_norm.hpp>

#include <optional>
#include <string_view>

namespace tessera::nn {

/// Which normalization: Qwen2RMSNorm-style RMSNorm, or nn.LayerNorm.
enum class norm_kind { rms_norm, layer_norm };

[[nodiscard]] constexpr std::string_view name_of(norm_kind n) noexcept {
  return n == norm_kind::rms_norm ? "rms_norm" : "layer_norm";
}

/// A normalization's parameters: weight [d]; bias [d] for a LayerNorm that has one (none for
/// RMSNorm, and for vit-pytorch's bias-free LayerNorm).
template <weight_type T, class Space = host_space>
struct norm_weights {
  tensor_view<T const, 1, Space> weight;
  std::optional<tensor_view<T const, 1, Space>> bias;
};

/// nn.LayerNorm(d, eps) with these parameters; x, y and eps as in nn::layer_norm.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void layer_norm(tensor_view<float const, 2, backend::space_t<Backend>> x,
                norm_weights<W, backend::space_t<Backend>> const& w, float eps,
                tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  using view1 = tensor_view<W const, 1, backend::space_t<Backend>>;
  layer_norm<Backend>(x, w.weight, w.bias ? *w.bias : view1(nullptr, {0}), eps, y, ctx);
}

/// RMSNorm(d, eps) with these parameters (which must have no bias); x, y and eps as in nn::rms_norm.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void rms_norm(tensor_view<float const, 2, backend::space_t<Backend>> x,
              norm_weights<W, backend::space_t<Backend>> const& w, float eps,
              tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  TESSERA_CHECK(!w.bias, "nn::rms_norm: RMSNorm has no bias, but the weights hold one");
  rms_norm<Backend>(x, w.weight, eps, y, ctx);
}

/// The normalization `kind` names, with these parameters.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void norm(norm_kind kind, tensor_view<float const, 2, backend::space_t<Backend>> x,
          norm_weights<W, backend::space_t<Backend>> const& w, float eps,
          tensor_view<float, 2, backend::space_t<Backend>> y, exec_ctx<Backend>& ctx) {
  if (kind == norm_kind::rms_norm) rms_norm<Backend>(x, w, eps, y, ctx);
  else layer_norm<Backend>(x, w, eps, y, ctx);
}

}  // namespace tessera::nn
