// SPDX-License-Identifier: Apache-2.0
// A NaViT encoder and classifier (Dehghani et al. 2023, "Patch n' Pack") as vit-pytorch's
// na_vit.NaViT (1.26) computes it: patches (c, p1, p2) -> LayerNorm -> Linear -> LayerNorm,
// + factorized position embedding, depth x { LN, to_q / to_kv (no bias), per-head RMS qk-norm,
// attention (scale 1) within each image, to_out; LN, Linear, GELU, Linear }, final LN, attention
// pooling with one learned probe per image, then LayerNorm + Linear to class logits. All its
// LayerNorms have no bias. The position embedding is a policy: absolute (vit-pytorch) or
// fractional coordinates into the same learned tables, or sinusoids.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/model/navit/checkpoint.hpp>
#include <tessera/model/navit/config.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/pool_policies.hpp>
#include <tessera/vision/position_policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <span>
#include <utility>

namespace tessera::model {

/// The NaViT encoder type: factorized learned position embedding, LayerNorm, GELU (erf),
/// vit-pytorch attention pooling.
template <backend::tag Backend, weight_type T>
using navit_encoder = vision::vision_encoder<Backend, T, vision::policy::factorized_learned<T>, vision::policy::layer_norm,
                                             vision::policy::gelu, vision::policy::navit_attention_pooling<T>>;

/// vit-pytorch's NaViT classifier: encoder (with pooling) + LayerNorm + Linear head.
template <backend::tag Backend, weight_type T>
class navit_classifier {
 public:
  navit_classifier(navit_config config, navit_weights<T> weights)
      : config_(std::move(config)), weights_(std::move(weights)), encoder_(make_encoder(config_, weights_)) {}

  [[nodiscard]] navit_config const& config() const noexcept { return config_; }
  [[nodiscard]] navit_encoder<Backend, T> const& encoder() const noexcept { return encoder_; }

  /// patches [n_tokens, patch_dim] packed by `tokens`; writes the encoder tokens out [n_tokens,
  /// dim], pooled [n_images, dim] and logits [n_images, num_classes] (f32).
  /// Workspace: the encoder's, plus n_images * dim floats from ctx.scratch().
  void forward(tensor_view<float const, 2> patches, vision::packed_tokens const& tokens, tensor_view<float, 2> out,
               tensor_view<float, 2> pooled, tensor_view<float, 2> logits, exec_ctx<Backend>& ctx,
               vision::stage_observer const& observe = {}) const {
    TESSERA_CHECK(logits.extent(0) == tokens.n_images() && logits.extent(1) == config_.num_classes,
                  "model::navit_classifier: logits must be [", tokens.n_images(), ", ", config_.num_classes,
                  "], got [", logits.extent(0), ", ", logits.extent(1), "]");
    encoder_.forward(patches, tokens, out, ctx, pooled, observe);
    index_t const n = pooled.extent(0);
    if (n == 0) return;
    auto frame = ctx.scratch().open();
    tensor_view<float, 2> const h(frame.template alloc<float>(static_cast<std::size_t>(n * config_.dim)),
                                  {n, config_.dim});  // [n_images, dim]
    vision::policy::layer_norm{static_cast<float>(config_.layer_norm_eps)}(pooled, weights_.head_norm, h, ctx);
    nn::linear<Backend>(h, weights_.head, logits, ctx, nn::product_precision::f32);
  }

 private:
  static navit_encoder<Backend, T> make_encoder(navit_config const& c, navit_weights<T> const& w) {
    vision::vision_encoder_config e;
    e.patch_dim = c.patch_dim();
    e.depth = c.depth;
    e.block = {.d_model = c.dim, .n_heads = c.heads, .head_dim = c.dim_head, .d_ff = c.mlp_dim, .attn_scale = 1.0f,
               .qk_norm_eps = 1e-12f};
    float const eps = static_cast<float>(c.layer_norm_eps);
    return navit_encoder<Backend, T>(
        e, w.encoder, vision::policy::factorized_learned<T>{w.pos_embed_height, w.pos_embed_width, c.position_coords},
        vision::policy::layer_norm{eps}, vision::policy::gelu{nn::gelu_approx::erf},
        vision::policy::navit_attention_pooling<T>{w.pool, pool::navit_pool_options{.n_heads = c.heads, .norm_eps = eps}});
  }

  navit_config config_;
  navit_weights<T> weights_;
  navit_encoder<Backend, T> encoder_;
};

/// The packing of a NaViT batch: images first-fit into rows of `row_len` tokens (padding at the
/// end of each row), row-major tokens.
[[nodiscard]] inline pack::pack_plan navit_plan(std::span<patch_grid const> grids, index_t row_len,
                                                index_t max_images_per_row = 0,
                                                pack::keep_sets const* keep = nullptr) {
  return pack::pack_plan::make(grids,
                               pack::pack_options{.mode = pack::pack_mode::fixed_rows, .row_len = row_len,
                                                  .max_images_per_row = max_images_per_row},
                               keep, pack::token_order::row_major, 1);
}

}  // namespace tessera::model
