// SPDX-License-Identifier: Apache-2.0
// The Qwen2-VL / POINTS1.5 vision tower (transformers' Qwen2VisionTransformerPretrainedModel
// without its merger = WePOINTS' Qwen2VisionTransformerForNavitPOINTS): patch linear without bias
// (the Conv3d), depth x { LayerNorm(1e-6), fused qkv, 2-D RoPE, block-diagonal attention per
// image, proj, LayerNorm, fc1, QuickGELU, fc2 }, no final norm (spec section 2).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config.hpp>
#include <tessera/io/weight_map.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/posemb/rope_2d.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <span>

namespace tessera::vision {
namespace policy {

/// Qwen2-VL's 2-D rotary embedding (VisionRotaryEmbedding + apply_rotary_pos_emb_vision): q and k
/// of every head rotate by their token's (row, col) patch coordinates, half-split pairing,
/// h-frequencies then w-frequencies (spec section 2.4). Nothing is added to the tokens.
struct rope_2d {
  float theta = 10000.0f;
  template <backend::tag Backend>
  void embed(tensor_view<float, 2>, packed_tokens const&, exec_ctx<Backend>&) const {}
  template <backend::tag Backend>
  void rotate(tensor_view<float, 3> q, tensor_view<float, 3> k, packed_tokens const& t, exec_ctx<Backend>& ctx) const {
    posemb::rope_2d<Backend>(q, t.coords, theta, ctx);
    posemb::rope_2d<Backend>(k, t.coords, theta, ctx);
  }
};

}  // namespace policy

/// The Qwen2-VL ViT: 2-D RoPE, LayerNorm, the config's activation (QuickGELU in every released
/// Qwen2-VL / POINTS1.5 config), no pooling.
template <backend::tag Backend, weight_type T>
using qwen2vl_encoder = vision_encoder<Backend, T, policy::rope_2d, policy::layer_norm, policy::configured_activation,
                                       policy::no_pooling>;

/// The encoder shapes of a Qwen2VLVisionConfig.
[[nodiscard]] inline vision_encoder_config encoder_config_of(io::qwen2_vl_vision_config const& c) {
  vision_encoder_config e;
  e.patch_dim = c.patch_dim;
  e.depth = c.depth;
  e.block.d_model = c.embed_dim;
  e.block.n_heads = c.num_heads;
  e.block.head_dim = c.head_dim;
  e.block.d_ff = c.mlp_dim;
  e.block.attn_scale = 0.0f;  // 1 / sqrt(head_dim), as flash-attn's default and the eager path
  return e;
}

/// Builds the encoder from a config and weights bound by io::bind_vision_encoder (views into the
/// checkpoint, which must outlive the encoder).
template <backend::tag Backend, weight_type T>
[[nodiscard]] qwen2vl_encoder<Backend, T> make_qwen2vl_encoder(io::qwen2_vl_vision_config const& c,
                                                               io::vision_encoder_weights<T> const& w) {
  vision_encoder_weights<T> ew;
  ew.patch_embed = {w.patch_embed, std::nullopt};  // Conv3d(bias=False)
  ew.blocks.reserve(w.blocks.size());
  for (io::vision_block_weights<T> const& b : w.blocks) ew.blocks.push_back(block_weights_of(b));
  return qwen2vl_encoder<Backend, T>(encoder_config_of(c), std::move(ew),
                                     policy::rope_2d{static_cast<float>(io::qwen2_vl_vision_config::rope_theta)},
                                     policy::layer_norm{static_cast<float>(io::qwen2_vl_vision_config::norm_eps)},
                                     policy::configured_activation{c.activation}, policy::no_pooling{});
}

/// The varlen packing of Qwen2-VL / POINTS1.5 for still images: one segment per image, no padding,
/// tokens in 2 x 2-window-major order (seqs() equals HF's cu_seqlens).
[[nodiscard]] inline pack::pack_plan qwen2vl_plan(std::span<pack::patch_grid const> grids,
                                                  io::qwen2_vl_vision_config const& c) {
  return pack::pack_plan::make(grids, pack::pack_options{}, nullptr, pack::token_order::merge_window_major,
                               c.spatial_merge_size);
}

}  // namespace tessera::vision
