// SPDX-License-Identifier: Apache-2.0
// Position-embedding policies of vision::vision_encoder that do something: NaViT's factorized
// embeddings (learned tables or sinusoids; absolute or fractional coordinates; sum, concat or
// product) added to the patch embeddings, and Qwen2-VL's 2-D RoPE applied to q and k.
// policy::no_position is in vision/policies.hpp.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/posemb/factorized.hpp>
#include <tessera/posemb/rope_2d.hpp>
#include <tessera/vision/policies.hpp>

namespace tessera::vision::policy {

/// NaViT's factorized position embedding from learned tables: x += table_y[row] (op) table_x[col]
/// (posemb::factorized_learned). Absolute coordinates index the tables directly (vit-pytorch's
/// pos_embed_height / pos_embed_width); fractional ones (row / grid_h) pick row floor(r * rows).
template <weight_type T>
struct factorized_learned {
  tensor_view<T const, 2> table_y;  ///< [rows_y, d_phi]
  tensor_view<T const, 2> table_x;  ///< [rows_x, d_phi]
  posemb::coord_mode coords = posemb::coord_mode::absolute;
  posemb::combine_mode combine = posemb::combine_mode::sum;
  template <backend::tag Backend>
  void embed(tensor_view<float, 2> x, packed_tokens const& t, exec_ctx<Backend>& ctx) const {
    if (coords == posemb::coord_mode::absolute)
      posemb::factorized_learned<Backend>(x, t.coords, table_y, table_x, combine, ctx);
    else
      posemb::factorized_learned<Backend>(x, t.frac_coords, table_y, table_x, combine, ctx);
  }
  template <backend::tag Backend>
  void rotate(tensor_view<float, 3>, tensor_view<float, 3>, packed_tokens const&, exec_ctx<Backend>&) const {}
};

/// NaViT's factorized position embedding from sinusoids (no parameters): absolute or fractional.
struct factorized_sinusoidal {
  posemb::coord_mode coords = posemb::coord_mode::fractional;
  posemb::combine_mode combine = posemb::combine_mode::sum;
  posemb::sinusoid_options options{};
  template <backend::tag Backend>
  void embed(tensor_view<float, 2> x, packed_tokens const& t, exec_ctx<Backend>& ctx) const {
    if (coords == posemb::coord_mode::absolute)
      posemb::factorized_sinusoidal<Backend>(x, t.coords, combine, ctx, options);
    else
      posemb::factorized_sinusoidal<Backend>(x, t.frac_coords, combine, ctx, options);
  }
  template <backend::tag Backend>
  void rotate(tensor_view<float, 3>, tensor_view<float, 3>, packed_tokens const&, exec_ctx<Backend>&) const {}
};


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

}  // namespace tessera::vision::policy
