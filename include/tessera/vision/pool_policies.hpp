// SPDX-License-Identifier: Apache-2.0
// Pooling policies of vision::vision_encoder: one vector per image from the encoder's packed tokens
// (big_vision's "gap" and "max" heads, and the attention-pooling heads of pool/attention_pool.hpp).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/gather.hpp>
#include <tessera/pool/attention_pool.hpp>
#include <tessera/pool/masked_max.hpp>
#include <tessera/pool/masked_mean.hpp>
#include <tessera/vision/policies.hpp>


namespace tessera::vision::policy {

namespace detail {
/// Runs a per-segment reduction into scratch [n_seqs, d], then copies segment image_seq[i] to
/// pooled row i (segments are in slot order, images in input order).
template <class Backend, class Reduce>
void pool_per_image(tensor_view<float const, 2> x, packed_tokens const& t, tensor_view<float, 2> pooled,
                    exec_ctx<Backend>& ctx, Reduce&& reduce) {
  index_t const n_seqs = t.seqs->n_seqs(), d = x.extent(1);
  auto frame = ctx.scratch().open();
  tensor_view<float, 2> const per_seq(frame.template alloc<float>(static_cast<std::size_t>(n_seqs * d)),
                                      {n_seqs, d});  // [n_seqs, d_model]
  reduce(per_seq);
  nn::gather_rows<Backend>(tensor_view<float const, 2>(per_seq), t.image_seq, pooled, ctx);  // image i <- its segment
}
}  // namespace detail

/// Masked mean over each image's tokens (big_vision pool_type "gap"; padding never counted).
struct mean_pooling {
  static constexpr bool pools = true;
  template <backend::tag Backend>
  void operator()(tensor_view<float const, 2> x, packed_tokens const& t, tensor_view<float, 2> pooled,
                  exec_ctx<Backend>& ctx) const {
    detail::pool_per_image(x, t, pooled, ctx, [&](tensor_view<float, 2> per_seq) {
      pool::masked_mean<Backend>(x, *t.seqs, per_seq, ctx, t.padding);
    });
  }
};

/// Masked max over each image's tokens (big_vision pool_type "max").
struct max_pooling {
  static constexpr bool pools = true;
  template <backend::tag Backend>
  void operator()(tensor_view<float const, 2> x, packed_tokens const& t, tensor_view<float, 2> pooled,
                  exec_ctx<Backend>& ctx) const {
    detail::pool_per_image(x, t, pooled, ctx, [&](tensor_view<float, 2> per_seq) {
      pool::masked_max<Backend>(x, *t.seqs, per_seq, ctx, t.padding);
    });
  }
};

/// big_vision's MAPHead (= timm AttentionPoolLatent): a learned probe attends over each image's
/// tokens, then LayerNorm + MLP with a residual (pool::map_head).
template <weight_type T>
struct map_head_pooling {
  static constexpr bool pools = true;
  pool::map_head_weights<T> weights;
  pool::map_head_options options;
  template <backend::tag Backend>
  void operator()(tensor_view<float const, 2> x, packed_tokens const& t, tensor_view<float, 2> pooled,
                  exec_ctx<Backend>& ctx) const {
    detail::pool_per_image(x, t, pooled, ctx, [&](tensor_view<float, 2> per_seq) {
      pool::map_head<Backend>(x, *t.seqs, weights, options, per_seq, ctx, t.padding);
    });
  }
};

/// vit-pytorch NaViT's attention pooling: a learned probe per image (LayerNorm, to_q, per-head RMS
/// qk-norm, attention with scale 1 over the image's tokens, to_out), the probe added back
/// (pool::navit_pool).
template <weight_type T>
struct navit_attention_pooling {
  static constexpr bool pools = true;
  pool::navit_pool_weights<T> weights;
  pool::navit_pool_options options;
  template <backend::tag Backend>
  void operator()(tensor_view<float const, 2> x, packed_tokens const& t, tensor_view<float, 2> pooled,
                  exec_ctx<Backend>& ctx) const {
    detail::pool_per_image(x, t, pooled, ctx, [&](tensor_view<float, 2> per_seq) {
      pool::navit_pool<Backend>(x, *t.seqs, weights, options, per_seq, ctx, t.padding);
    });
  }
};

}  // namespace tessera::vision::policy
