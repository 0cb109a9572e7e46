// SPDX-License-Identifier: Apache-2.0
// Policies of vision::vit_block and vision::vision_encoder: the normalization, the MLP activation
// and the "none" position embedding and pooling. A policy is a small value type with a static-
// or member-function interface; the encoder is instantiated once per combination, so the choice
// costs nothing at run time. Position-embedding and pooling policies that carry weights live in
// vision/position_policies.hpp and vision/pool_policies.hpp.
#pragma once

#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/norm.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace tessera::vision {

/// What the position-embedding and pooling policies may read about the packed tokens. Built
/// from a pack::pack_plan by vision::batch_of (vision_encoder.hpp) or by hand.
struct packed_tokens {
  /// Attention segments over the n_tokens packed rows: one per image, plus one per padding run.
  seq_offsets const* seqs = nullptr;
  /// Per segment: 1 = padding (its queries output zeros, nothing attends to it). Empty = none.
  std::span<std::uint8_t const> padding;
  /// Keys each segment's queries see; nullptr = seqs (self-attention within each segment). A
  /// padded baseline sets it to cover only each row's real tokens while `seqs` covers the row.
  seq_offsets const* kv_seqs = nullptr;
  /// [n_tokens, 2] int32 (row, col) patch coordinates; padding rows hold anything in range.
  tensor_view<std::int32_t const, 2> coords;
  /// [n_tokens, 2] f32 (row / grid_h, col / grid_w); may be empty when no policy reads it.
  tensor_view<float const, 2> frac_coords;
  /// Segment index of image i, in image order (the pooled outputs follow it).
  std::span<std::int64_t const> image_seq;
  /// The attention ranges of seqs / kv_seqs / padding, checked once per batch (attn::plan_ranges):
  /// vision_encoder::forward sets it, so that every block runs attention without rebuilding them.
  /// nullptr = each block builds them from the fields above.
  attn::range_plan const* attention = nullptr;

  [[nodiscard]] index_t n_tokens() const noexcept { return seqs ? seqs->n_tokens() : 0; }
  [[nodiscard]] index_t n_images() const noexcept { return static_cast<index_t>(image_seq.size()); }
};

namespace policy {

// ---- normalization ---------------------------------------------------------------------------

/// nn.LayerNorm(d, eps) (bias optional: vit-pytorch's NaViT has none, Qwen2VLVisionBlock has one).
struct layer_norm {
  float eps = 1e-6f;
  template <backend::tag Backend, weight_type T>
  void operator()(tensor_view<float const, 2> x, nn::norm_weights<T> const& w, tensor_view<float, 2> y,
                  exec_ctx<Backend>& ctx) const {
    nn::layer_norm<Backend>(x, w, eps, y, ctx);
  }
};

/// Qwen2RMSNorm-style RMSNorm(d, eps) (weight only).
struct rms_norm {
  float eps = 1e-6f;
  template <backend::tag Backend, weight_type T>
  void operator()(tensor_view<float const, 2> x, nn::norm_weights<T> const& w, tensor_view<float, 2> y,
                  exec_ctx<Backend>& ctx) const {
    nn::rms_norm<Backend>(x, w, eps, y, ctx);
  }
};

// ---- MLP activation (in place) ---------------------------------------------------------------

/// transformers' QuickGELUActivation: x * sigmoid(1.702 x) (the Qwen2-VL ViT).
struct quick_gelu {
  template <backend::tag Backend>
  void operator()(tensor_view<float, 2> x, exec_ctx<Backend>& ctx) const {
    nn::quick_gelu<Backend>(x, x, ctx);
  }
};

/// nn.GELU(approximate='none' | 'tanh') (vit-pytorch's NaViT: erf; big_vision / Flax: tanh).
struct gelu {
  nn::gelu_approx approx = nn::gelu_approx::erf;
  template <backend::tag Backend>
  void operator()(tensor_view<float, 2> x, exec_ctx<Backend>& ctx) const {
    nn::gelu<Backend>(x, x, ctx, approx);
  }
};

/// The activation named by a config (nn::activation_kind), chosen at run time: for encoders
/// built from a config.json whose hidden_act is not known at compile time.
struct configured_activation {
  nn::activation_kind kind = nn::activation_kind::quick_gelu;
  template <backend::tag Backend>
  void operator()(tensor_view<float, 2> x, exec_ctx<Backend>& ctx) const {
    nn::activate<Backend>(kind, x, x, ctx);
  }
};

// ---- position embedding: none ----------------------------------------------------------------

/// No position information (a plain bag of patches); also the base of the other policies: a
/// position policy adds to the patch embeddings (`embed`) and/or rotates q and k (`rotate`).
struct no_position {
  template <backend::tag Backend>
  void embed(tensor_view<float, 2> /*x: [n_tokens, d_model]*/, packed_tokens const&, exec_ctx<Backend>&) const {}
  template <backend::tag Backend>
  void rotate(tensor_view<float, 3> /*q*/, tensor_view<float, 3> /*k*/, packed_tokens const&,
              exec_ctx<Backend>&) const {}
};

// ---- pooling: none ---------------------------------------------------------------------------

/// The encoder returns its tokens only (Qwen2-VL / POINTS1.5: the merger consumes every token).
struct no_pooling {
  static constexpr bool pools = false;
};

}  // namespace policy

/// A normalization policy: applies to [n, d] rows with norm_weights.
template <class P, class Backend, class T>
concept norm_policy = requires(P const& p, tensor_view<float const, 2> x, nn::norm_weights<T> const& w,
                               tensor_view<float, 2> y, exec_ctx<Backend>& ctx) {
  p(x, w, y, ctx);
};

/// An activation policy: in place on [n, d_ff].
template <class P, class Backend>
concept activation_policy = requires(P const& p, tensor_view<float, 2> x, exec_ctx<Backend>& ctx) {
  p(x, ctx);
};

/// A position-embedding policy: embed() after the patch embedding, rotate() on q and k.
template <class P, class Backend>
concept position_policy = requires(P const& p, tensor_view<float, 2> x, tensor_view<float, 3> q,
                                   packed_tokens const& t, exec_ctx<Backend>& ctx) {
  p.template embed<Backend>(x, t, ctx);
  p.template rotate<Backend>(q, q, t, ctx);
};

}  // namespace tessera::vision
