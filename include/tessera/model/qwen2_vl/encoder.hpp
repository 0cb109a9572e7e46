// SPDX-License-Identifier: Apache-2.0
// The Qwen2-VL / POINTS1.5 vision tower (transformers' Qwen2VisionTransformerPretrainedModel
// without its merger = WePOINTS' Qwen2VisionTransformerForNavitPOINTS): patch linear without bias
// (the Conv3d), depth x { LayerNorm(1e-6), fused qkv, 2-D RoPE, block-diagonal attention per
// image, proj, LayerNorm, fc1, QuickGELU, fc2 }, no final norm (spec section 2), as a
// vision::vision_encoder of policies; and the varlen packing it reads.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/model/qwen2_vl/config.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/position_policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <span>
#include <utility>

namespace tessera::model {

/// The Qwen2-VL ViT: 2-D RoPE, LayerNorm, the config's activation (QuickGELU in every released
/// Qwen2-VL / POINTS1.5 config), no pooling.
template <backend::tag Backend, weight_type T>
using qwen2vl_encoder = vision::vision_encoder<Backend, T, vision::policy::rope_2d, vision::policy::layer_norm,
                                               vision::policy::configured_activation, vision::policy::no_pooling>;

/// The encoder shapes of a Qwen2VLVisionConfig.
[[nodiscard]] inline vision::vision_encoder_config encoder_config_of(qwen2_vl_vision_config const& c) {
  vision::vision_encoder_config e;
  e.patch_dim = c.patch_dim;
  e.depth = c.depth;
  e.block.d_model = c.embed_dim;
  e.block.n_heads = c.num_heads;
  e.block.head_dim = c.head_dim;
  e.block.d_ff = c.mlp_dim;
  e.block.attn_scale = 0.0f;  // 1 / sqrt(head_dim), as flash-attn's default and the eager path
  return e;
}

/// Builds the encoder from a config and weights bound by bind_vision_encoder. The encoder keeps
/// the weights' keep_alive (converted tensors) with it; views into a mapped checkpoint need the
/// checkpoint to outlive the encoder (model loaders keep it alive with the model).
template <backend::tag Backend, weight_type T>
[[nodiscard]] qwen2vl_encoder<Backend, T> make_qwen2vl_encoder(qwen2_vl_vision_config const& c,
                                                               vision::vision_encoder_weights<T> w) {
  return qwen2vl_encoder<Backend, T>(encoder_config_of(c), std::move(w),
                                     vision::policy::rope_2d{static_cast<float>(qwen2_vl_vision_config::rope_theta)},
                                     vision::policy::layer_norm{static_cast<float>(qwen2_vl_vision_config::norm_eps)},
                                     vision::policy::configured_activation{c.activation}, vision::policy::no_pooling{});
}

/// The varlen packing of Qwen2-VL / POINTS1.5 for still images: one segment per image, no padding,
/// tokens in 2 x 2-window-major order (seqs() equals HF's cu_seqlens).
[[nodiscard]] inline pack::pack_plan qwen2vl_plan(std::span<patch_grid const> grids,
                                                  qwen2_vl_vision_config const& c) {
  return pack::pack_plan::make(grids, pack::pack_options{}, nullptr, pack::token_order::merge_window_major,
                               c.spatial_merge_size);
}

}  // namespace tessera::model
