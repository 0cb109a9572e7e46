// SPDX-License-Identifier: Apache-2.0
// vision::vit_block -- one pre-norm transformer block over packed image tokens:
//   x = x + proj(attention(norm1(x)))        attention block-diagonal per image (attn::masked_attention)
//   x = x + fc2(act(fc1(norm2(x))))
// Mirrors transformers' Qwen2VLVisionBlock (fused qkv with bias, 2-D RoPE, QuickGELU) and
// vit-pytorch's NaViT Attention + FeedForward (separate to_q / to_kv without bias, per-head RMS
// query-key normalization, attention scale 1, GELU). Which of these a block does is decided by
// its policies (norm, activation, position embedding) and by which optional weights are present.
#pragma once

#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/add.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/vision/detail/qk_norm.hpp>
#include <tessera/vision/policies.hpp>

#include <algorithm>
#include <optional>

namespace tessera::vision {

/// Shapes of one block.
struct vit_block_config {
  index_t d_model = 0;   ///< token width
  index_t n_heads = 0;
  index_t head_dim = 0;  ///< inner attention width = n_heads * head_dim (need not equal d_model)
  index_t d_ff = 0;      ///< MLP hidden width
  float attn_scale = 0;  ///< softmax scale; 0 = 1 / sqrt(head_dim). vit-pytorch NaViT: 1 (its qk-norm scales)
  float qk_norm_eps = 1e-12f;  ///< F.normalize's eps (per-head RMS qk-norm only)
  [[nodiscard]] index_t inner() const noexcept { return n_heads * head_dim; }
};

/// Weights of one block. Exactly one of `qkv` (fused) or `q` + `kv` must be present.
template <weight_type T>
struct vit_block_weights {
  nn::norm_weights<T> norm1;                   ///< [d_model]
  std::optional<nn::linear_weights<T>> qkv{};  ///< [3 * inner, d_model]: q rows, k rows, v rows (Qwen2-VL attn.qkv)
  std::optional<nn::linear_weights<T>> q{};    ///< [inner, d_model] (vit-pytorch to_q)
  std::optional<nn::linear_weights<T>> kv{};   ///< [2 * inner, d_model]: k rows, then v rows (vit-pytorch to_kv)
  /// Per-head RMS query-key normalization (ViT-22B; vit-pytorch RMSNorm(heads, dim_head)):
  /// q <- normalize(q) * sqrt(head_dim) * gamma[head], gamma [n_heads, head_dim].
  std::optional<tensor_view<T const, 2>> q_norm{}, k_norm{};
  nn::linear_weights<T> proj;                  ///< [d_model, inner]
  nn::norm_weights<T> norm2;                   ///< [d_model]
  nn::linear_weights<T> fc1;                   ///< [d_ff, d_model]
  nn::linear_weights<T> fc2;                   ///< [d_model, d_ff]
};

/// Scratch floats one vit_block call takes for n_tokens tokens.
[[nodiscard]] inline index_t vit_block_workspace(vit_block_config const& c, index_t n_tokens) noexcept {
  return n_tokens * (std::max(c.d_model, c.inner()) + std::max(3 * c.inner(), c.d_ff));
}

namespace detail {
template <weight_type T>
void check_linear(char const* what, std::optional<nn::linear_weights<T>> const& l, index_t out, index_t in) {
  if (!l) return;
  TESSERA_CHECK(l->weight.extent(0) == out && l->weight.extent(1) == in, "vision::vit_block: ", what, " must be [",
                out, ", ", in, "], got [", l->weight.extent(0), ", ", l->weight.extent(1), "]");
  TESSERA_CHECK(!l->bias || l->bias->extent(0) == out, "vision::vit_block: ", what, " bias must have ", out,
                " elements, got ", l->bias->extent(0));
}

template <weight_type T>
void check_norm(char const* what, nn::norm_weights<T> const& n, index_t d) {
  TESSERA_CHECK(n.weight.extent(0) == d && (!n.bias || n.bias->extent(0) == d), "vision::vit_block: ", what,
                " must have ", d, " elements, got ", n.weight.extent(0));
}

}  // namespace detail

/// Checks a block's weights against its config; throws tessera::error naming the tensor.
template <weight_type T>
void check_block_weights(vit_block_config const& c, vit_block_weights<T> const& w) {
  TESSERA_CHECK(c.d_model > 0 && c.n_heads > 0 && c.head_dim > 0 && c.d_ff > 0,
                "vision::vit_block: config sizes must be positive (d_model ", c.d_model, ", n_heads ", c.n_heads,
                ", head_dim ", c.head_dim, ", d_ff ", c.d_ff, ")");
  TESSERA_CHECK(w.qkv.has_value() != (w.q.has_value() || w.kv.has_value()) && w.q.has_value() == w.kv.has_value(),
                "vision::vit_block: give either the fused qkv projection or both q and kv");
  TESSERA_CHECK(w.q_norm.has_value() == w.k_norm.has_value(), "vision::vit_block: q_norm and k_norm come together");
  detail::check_norm("norm1", w.norm1, c.d_model);
  detail::check_norm("norm2", w.norm2, c.d_model);
  detail::check_linear("qkv", w.qkv, 3 * c.inner(), c.d_model);
  detail::check_linear("q", w.q, c.inner(), c.d_model);
  detail::check_linear("kv", w.kv, 2 * c.inner(), c.d_model);
  detail::check_linear("proj", std::optional(w.proj), c.d_model, c.inner());
  detail::check_linear("fc1", std::optional(w.fc1), c.d_ff, c.d_model);
  detail::check_linear("fc2", std::optional(w.fc2), c.d_model, c.d_ff);
  for (auto const* g : {&w.q_norm, &w.k_norm})
    TESSERA_CHECK(!*g || ((*g)->extent(0) == c.n_heads && (*g)->extent(1) == c.head_dim && (*g)->is_row_contiguous()),
                  "vision::vit_block: q_norm / k_norm gammas must be [", c.n_heads, ", ", c.head_dim, "]");
}

/// One block, in place on x [n_tokens, d_model] f32 (rows may be strided, last dim contiguous).
/// `tokens` gives the attention segments (one per image; padding segments output zeros) and the
/// coordinates the position policy reads. Weights of type T (f32, bf16, f16) are used where they
/// are (mmapped views), with f32 accumulation; `precision` as in nn::linear.
/// Workspace: vit_block_workspace(config, n_tokens) floats from ctx.scratch(), plus what
/// attn::masked_attention and nn::linear take.
/// Determinism: bitwise reproducible for a backend, shape and thread count.
template <backend::tag Backend, weight_type T, class Norm, class Act, class Pos>
  requires norm_policy<Norm, Backend, T> && activation_policy<Act, Backend> && position_policy<Pos, Backend>
void vit_block(vit_block_config const& c, vit_block_weights<T> const& w, Norm const& norm, Act const& act,
               Pos const& pos, packed_tokens const& tokens, tensor_view<float, 2> x, exec_ctx<Backend>& ctx,
               nn::product_precision precision = nn::default_precision_v<T>) {
  TESSERA_CHECK(tokens.seqs != nullptr, "vision::vit_block: packed_tokens has no segments (seqs)");
  index_t const n = x.extent(0), d = c.d_model, inner = c.inner(), H = c.n_heads, hd = c.head_dim;
  TESSERA_CHECK(x.extent(1) == d && n == tokens.n_tokens(), "vision::vit_block: x must be [", tokens.n_tokens(),
                ", ", d, "], got [", n, ", ", x.extent(1), "]");
  check_block_weights(c, w);
  if (n == 0) return;

  auto frame = ctx.scratch().open();
  float* const small = frame.template alloc<float>(static_cast<std::size_t>(n * std::max(d, inner)));
  float* const big = frame.template alloc<float>(static_cast<std::size_t>(n * std::max(3 * inner, c.d_ff)));
  tensor_view<float, 2> const h(small, {n, d});  // [n_tokens, d_model] normalized input

  // ---- attention ----
  norm(x, w.norm1, h, ctx);
  tensor_view<float, 2> const qkv(big, {n, 3 * inner});  // [n_tokens, 3 * inner]: q | k | v
  if (w.qkv) {
    nn::linear<Backend>(h, *w.qkv, qkv, ctx, precision);
  } else {
    tensor_view<float, 2> const qcols(big, {n, inner}, {3 * inner, 1});            // [n_tokens, inner]
    tensor_view<float, 2> const kvcols(big + inner, {n, 2 * inner}, {3 * inner, 1});  // [n_tokens, 2 * inner]
    nn::linear<Backend>(h, *w.q, qcols, ctx, precision);
    nn::linear<Backend>(h, *w.kv, kvcols, ctx, precision);
  }
  std::array<index_t, 3> const head_strides{3 * inner, hd, 1};
  tensor_view<float, 3> const q(big, {n, H, hd}, head_strides);              // [n_tokens, n_heads, head_dim]
  tensor_view<float, 3> const k(big + inner, {n, H, hd}, head_strides);      // [n_tokens, n_heads, head_dim]
  tensor_view<float, 3> const v(big + 2 * inner, {n, H, hd}, head_strides);  // [n_tokens, n_heads, head_dim]
  if (w.q_norm) {
    detail::qk_norm<Backend>(q, *w.q_norm, c.qk_norm_eps, ctx);
    detail::qk_norm<Backend>(k, *w.k_norm, c.qk_norm_eps, ctx);
  }
  pos.rotate(q, k, tokens, ctx);
  tensor_view<float, 3> const att(small, {n, H, hd});  // [n_tokens, n_heads, head_dim]; h is no longer needed
  attn::attention_options const opt{.causal = false, .scale = c.attn_scale};
  if (tokens.attention) {  // planned once per batch by the encoder
    attn::masked_attention<Backend, float>(q, k, v, *tokens.attention, att, ctx, opt);
  } else {
    seq_offsets const& kv_seqs = tokens.kv_seqs ? *tokens.kv_seqs : *tokens.seqs;
    attn::masked_attention<Backend>(q, k, v, *tokens.seqs, kv_seqs, att, ctx, opt, tensor_view<float, 2>(nullptr, {0, 0}),
                                    tokens.padding);
  }
  tensor_view<float, 2> const proj_out(big, {n, d});  // [n_tokens, d_model]; q, k, v are no longer needed
  nn::linear<Backend>(tensor_view<float const, 2>(small, {n, inner}), w.proj, proj_out, ctx, precision);
  nn::add<Backend>(x, proj_out, x, ctx);

  // ---- MLP ----
  norm(x, w.norm2, h, ctx);
  tensor_view<float, 2> const hidden(big, {n, c.d_ff});  // [n_tokens, d_ff]
  nn::linear<Backend>(h, w.fc1, hidden, ctx, precision);
  act(hidden, ctx);
  tensor_view<float, 2> const mlp_out(small, {n, d});  // [n_tokens, d_model]
  nn::linear<Backend>(hidden, w.fc2, mlp_out, ctx, precision);
  nn::add<Backend>(x, mlp_out, x, ctx);
}

}  // namespace tessera::vision
