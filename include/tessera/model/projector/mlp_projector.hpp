// SPDX-License-Identifier: Apache-2.0
// model::mlp_projector -- the plain two-layer MLP projector of LLaVA-1.5 style VLMs
// (mm_projector_type "mlp2x_gelu": Linear(d_in, d_hidden) -> GELU -> Linear(d_hidden, d_out)),
// one output row per vision token: no merging, no norm. The alternative to model::patch_merger
// when a variant keeps every token (or pools before projecting).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/linear.hpp>

#include <cstddef>
#include <memory>
#include <optional>

namespace tessera::model {

/// Shapes and activation of an MLP projector.
struct mlp_projector_config {
  index_t d_in = 0;      ///< vision token width
  index_t d_hidden = 0;  ///< width after the first Linear
  index_t d_out = 0;     ///< LLM d_model
  nn::activation_kind activation = nn::activation_kind::gelu_erf;  ///< nn.GELU() in LLaVA
};

/// The two Linear layers (each with an optional bias; LLaVA's have biases).
template <weight_type T, class Space = host_space>
struct mlp_projector_weights {
  nn::linear_weights<T, Space> fc1;  ///< [d_hidden, d_in]
  nn::linear_weights<T, Space> fc2;  ///< [d_out, d_hidden]
  std::shared_ptr<void const> keep_alive;
};

/// Checks the weights against the config; throws tessera::error naming the tensor.
template <weight_type T, class Space>
void check_mlp_projector(mlp_projector_config const& c, mlp_projector_weights<T, Space> const& w) {
  TESSERA_CHECK(c.d_in >= 1 && c.d_hidden >= 1 && c.d_out >= 1, "model::mlp_projector: sizes must be positive (d_in ",
                c.d_in, ", d_hidden ", c.d_hidden, ", d_out ", c.d_out, ")");
  auto const lin = [](char const* what, nn::linear_weights<T, Space> const& l, index_t rows, index_t cols) {
    TESSERA_CHECK(l.weight.extent(0) == rows && l.weight.extent(1) == cols && (!l.bias || l.bias->extent(0) == rows),
                  "model::mlp_projector: ", what, " must be [", rows, ", ", cols, "] (bias [", rows, "]), got [",
                  l.weight.extent(0), ", ", l.weight.extent(1), "]");
  };
  lin("fc1", w.fc1, c.d_hidden, c.d_in);
  lin("fc2", w.fc2, c.d_out, c.d_hidden);
}

/// out = fc2(act(fc1(x))).
///   x:   [n_tokens, d_in] f32; rows may be strided, last dimension contiguous.
///   out: [n_tokens, d_out] f32, last dimension contiguous; must not overlap x.
/// Workspace: n_tokens * d_hidden floats from ctx.scratch(). Determinism: as nn::linear.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type T>
void mlp_projector(tensor_view<float const, 2, backend::space_t<Backend>> x, mlp_projector_config const& c,
                   mlp_projector_weights<T, backend::space_t<Backend>> const& w,
                   tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                   std::optional<nn::product_precision> precision = std::nullopt) {
  check_mlp_projector(c, w);
  index_t const n = x.extent(0);
  TESSERA_CHECK(x.extent(1) == c.d_in && out.extent(0) == n && out.extent(1) == c.d_out,
                "model::mlp_projector: x must be [n, ", c.d_in, "] and out [n, ", c.d_out, "], got [", n, ", ",
                x.extent(1), "] and [", out.extent(0), ", ", out.extent(1), "]");
  nn::product_precision const p = precision.value_or(nn::default_precision_v<T>);
  auto frame = ctx.scratch().open();
  tensor_view<float, 2, backend::space_t<Backend>> const hidden(
      frame.template alloc<float>(static_cast<std::size_t>(n * c.d_hidden)), {n, c.d_hidden});  // [n_tokens, d_hidden]
  nn::linear<Backend>(x, w.fc1, hidden, ctx, p);
  nn::activate<Backend>(c.activation, hidden, hidden, ctx);
  nn::linear<Backend>(hidden, w.fc2, out, ctx, p);
}

}  // namespace tessera::model
