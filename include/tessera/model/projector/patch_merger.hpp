// SPDX-License-Identifier: Apache-2.0
// model::patch_merger -- the Qwen2-VL PatchMerger (transformers' PatchMerger; POINTS1.5's
// vision_projector, spec section 3): LayerNorm(ln_q, eps 1e-6) over each ViT token, the 2 x 2
// window of four tokens concatenated into one row, then Linear (mlp.0) -> GELU (erf) -> Linear
// (mlp.2). One output row per merged window: the image rows an LLM splices into its prompt.
// A block built from nn and pool blocks, so every backend of those runs it.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/pool/patch_merge.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <span>

namespace tessera::model {

/// A Qwen2-VL PatchMerger (LayerNorm, 2x2 concat, Linear-GELU-Linear): the tower's own merger
/// (out_dim = vision hidden_size) or POINTS1.5's vision_projector (out_dim = LLM d_model).
struct patch_merger_config {
  index_t context_dim = 1280;  ///< width of the ViT tokens (ln_q)
  index_t merge_size = 2;      ///< spatial merge window side
  index_t hidden_dim = 5120;   ///< context_dim * merge_size^2 (mlp.0 is hidden x hidden)
  index_t out_dim = 3584;      ///< mlp.2 output width
  static constexpr double norm_eps = 1e-6;
};

/// A PatchMerger's parameters: ln_q (LayerNorm with bias), mlp.0 [hidden, hidden] and mlp.2
/// [out_dim, hidden], both with bias. Views; `keep_alive` owns converted buffers they point into.
template <weight_type T, class Space = host_space>
struct patch_merger_weights {
  nn::norm_weights<T, Space> ln_q;   ///< [context_dim]
  nn::linear_weights<T, Space> fc1;  ///< mlp.0 [hidden_dim, hidden_dim]
  nn::linear_weights<T, Space> fc2;  ///< mlp.2 [out_dim, hidden_dim]
  std::shared_ptr<void const> keep_alive;
};

/// Checks the weights against the config; throws tessera::error naming the tensor.
template <weight_type T, class Space>
void check_patch_merger(patch_merger_config const& c, patch_merger_weights<T, Space> const& w) {
  TESSERA_CHECK(c.context_dim >= 1 && c.merge_size == 2 && c.hidden_dim == c.context_dim * 4 && c.out_dim >= 1,
                "model::patch_merger: config (context_dim ", c.context_dim, ", merge_size ", c.merge_size,
                ", hidden_dim ", c.hidden_dim, ", out_dim ", c.out_dim,
                ") must have merge_size 2 and hidden_dim = 4 * context_dim");
  TESSERA_CHECK(w.ln_q.weight.extent(0) == c.context_dim && w.ln_q.bias && w.ln_q.bias->extent(0) == c.context_dim,
                "model::patch_merger: ln_q must have weight and bias of ", c.context_dim, " elements");
  auto const lin = [](char const* what, nn::linear_weights<T, Space> const& l, index_t rows, index_t cols) {
    TESSERA_CHECK(l.weight.extent(0) == rows && l.weight.extent(1) == cols && l.bias && l.bias->extent(0) == rows,
                  "model::patch_merger: ", what, " must be [", rows, ", ", cols, "] with a bias of ", rows,
                  ", got [", l.weight.extent(0), ", ", l.weight.extent(1), "]", l.bias ? "" : " without bias");
  };
  lin("mlp.0", w.fc1, c.hidden_dim, c.hidden_dim);
  lin("mlp.2", w.fc2, c.out_dim, c.hidden_dim);
}

/// Scratch floats patch_merger takes for n_tokens ViT tokens.
[[nodiscard]] inline index_t patch_merger_workspace(patch_merger_config const& c, index_t n_tokens) noexcept {
  return n_tokens * c.context_dim + 2 * (n_tokens / 4) * c.hidden_dim;
}

/// Mirrors PatchMerger.forward: out = mlp.2(gelu(mlp.0(ln_q(x).view(-1, 4 * context_dim)))).
///   x:     [n_tokens, context_dim] f32, the ViT tokens of the images of `grids` back to back, in
///          `order` (Qwen2-VL / POINTS1.5: token_order::merge_window_major, where the four tokens
///          of a window are consecutive and the merge is HF's reshape); rows may be strided, last
///          dimension contiguous.
///   grids: each image's (t, h, w) patch grid, h and w even.
///   out:   [n_tokens / 4, out_dim] f32, one row per 2 x 2 window in image, frame, window-raster
///          order; last dimension contiguous; must not overlap x.
///   precision: the linear layers' products (nn::product_precision; default: the weight type's).
/// Throws tessera::error for mismatched shapes or weights. Workspace: patch_merger_workspace()
/// floats from ctx.scratch(). Determinism: as nn::linear (bitwise for a backend, shape and
/// thread count).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type T>
void patch_merger(tensor_view<float const, 2, backend::space_t<Backend>> x, std::span<patch_grid const> grids,
                  pack::token_order order, patch_merger_config const& c,
                  patch_merger_weights<T, backend::space_t<Backend>> const& w,
                  tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                  std::optional<nn::product_precision> precision = std::nullopt) {
  using space = backend::space_t<Backend>;
  check_patch_merger(c, w);
  index_t const n = x.extent(0), d = c.context_dim, m = n / 4;
  TESSERA_CHECK(x.extent(1) == d, "model::patch_merger: x must be [n_tokens, ", d, "], got [", n, ", ", x.extent(1),
                "]");
  TESSERA_CHECK(n % 4 == 0 && out.extent(0) == m && out.extent(1) == c.out_dim, "model::patch_merger: out must be [",
                n / 4, ", ", c.out_dim, "] for ", n, " tokens, got [", out.extent(0), ", ", out.extent(1), "]");
  nn::product_precision const p = precision.value_or(nn::default_precision_v<T>);
  auto frame = ctx.scratch().open();
  auto alloc = [&](index_t count) { return frame.template alloc<float>(static_cast<std::size_t>(count)); };
  tensor_view<float, 2, space> const ln(alloc(n * d), {n, d});                       // [n_tokens, context_dim]
  tensor_view<float, 2, space> const merged(alloc(m * c.hidden_dim), {m, c.hidden_dim});  // [n_windows, 4 d]
  tensor_view<float, 2, space> const hidden(alloc(m * c.hidden_dim), {m, c.hidden_dim});  // [n_windows, hidden]
  nn::layer_norm<Backend>(x, w.ln_q, static_cast<float>(patch_merger_config::norm_eps), ln, ctx);
  pool::patch_merge_2x2<Backend>(ln, grids, order, merged, ctx);
  nn::linear<Backend>(merged, w.fc1, hidden, ctx, p);
  nn::gelu<Backend>(hidden, hidden, ctx, nn::gelu_approx::erf);
  nn::linear<Backend>(hidden, w.fc2, out, ctx, p);
}

}  // namespace tessera::model
