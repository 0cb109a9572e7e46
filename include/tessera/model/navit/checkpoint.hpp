// SPDX-License-Identifier: Apache-2.0
// The parameter names of a vit-pytorch NaViT state_dict (saved as safetensors) and their binder:
// the encoder's weights, the factorized position tables, the attention pooling and the head.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/model/navit/config.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/pool/attention_pool.hpp>
#include <tessera/vision/vision_encoder.hpp>
#include <tessera/vision/vit_block.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tessera::model {

/// A NaViT classifier's weights: the encoder, the pooling and the head.
template <weight_type T>
struct navit_weights {
  vision::vision_encoder_weights<T> encoder;  ///< keep_alive holds the converted tensors, if any
  tensor_view<T const, 2> pos_embed_height;  ///< [image_height / patch, dim]
  tensor_view<T const, 2> pos_embed_width;   ///< [image_width / patch, dim]
  pool::navit_pool_weights<T> pool;
  nn::norm_weights<T> head_norm;             ///< mlp_head.0 (LayerNorm without bias)
  tensor_view<T const, 2> head;              ///< mlp_head.1 [num_classes, dim], no bias
  io::binding_report report;
};

/// Binds a vit-pytorch NaViT state_dict saved as safetensors (its own parameter names). The
/// LayerNorms' all-zero `beta` buffers may be stored or not; stored ones must be zero-shaped
/// [dim] and are skipped (LayerNorm without bias). Every other stored tensor must be bound.
template <weight_type T>
[[nodiscard]] navit_weights<T> bind_navit(io::checkpoint const& ckpt, navit_config const& c,
                                          io::dtype_policy dtypes = io::dtype_policy::exact) {
  io::weight_binder b(ckpt, dtypes, true);
  auto store = std::make_shared<io::converted_tensors<T>>();
  index_t const inner = c.heads * c.dim_head;
  auto const vec = [&](std::string const& name, index_t n, std::string what) {
    return tensor_view<T const, 1>(b.take<T>({name, {n}, std::move(what)}, *store), {n});
  };
  auto const mat = [&](std::string const& name, index_t r, index_t k, std::string what) {
    return tensor_view<T const, 2>(b.take<T>({name, {r, k}, std::move(what)}, *store), {r, k});
  };
  auto const gamma = [&](std::string const& name, std::string what) {  // RMSNorm(heads, dim_head).gamma [h, 1, d]
    return tensor_view<T const, 2>(b.take<T>({name, {c.heads, 1, c.dim_head}, std::move(what)}, *store),
                                   {c.heads, c.dim_head});
  };
  auto const ln = [&](std::string const& prefix, index_t n) {
    b.allow_unused({prefix + ".beta", std::vector<index_t>{n}, "LayerNorm without bias: the all-zero beta buffer"});
    return nn::norm_weights<T>{vec(prefix + ".gamma", n, "LayerNorm gamma"), std::nullopt};
  };
  navit_weights<T> w;
  w.encoder.patch_norm_in = ln("to_patch_embedding.0", c.patch_dim());
  w.encoder.patch_embed = {mat("to_patch_embedding.1.weight", c.dim, c.patch_dim(), "patch linear"),
                           vec("to_patch_embedding.1.bias", c.dim, "patch linear bias")};
  w.encoder.patch_norm_out = ln("to_patch_embedding.2", c.dim);
  w.pos_embed_height = mat("pos_embed_height", c.rows_y(), c.dim, "row position table");
  w.pos_embed_width = mat("pos_embed_width", c.rows_x(), c.dim, "column position table");
  for (index_t i = 0; i < c.depth; ++i) {
    std::string const a = "transformer.layers." + std::to_string(i) + ".0.";
    std::string const f = "transformer.layers." + std::to_string(i) + ".1.";
    vision::vit_block_weights<T> bw;
    bw.norm1 = ln(a + "norm", c.dim);
    bw.q = nn::linear_weights<T>{mat(a + "to_q.weight", inner, c.dim, "to_q"), std::nullopt};
    bw.kv = nn::linear_weights<T>{mat(a + "to_kv.weight", 2 * inner, c.dim, "to_kv"), std::nullopt};
    bw.q_norm = gamma(a + "q_norm.gamma", "query RMSNorm gamma");
    bw.k_norm = gamma(a + "k_norm.gamma", "key RMSNorm gamma");
    bw.proj = {mat(a + "to_out.0.weight", c.dim, inner, "to_out"), std::nullopt};
    bw.norm2 = ln(f + "0", c.dim);
    bw.fc1 = {mat(f + "1.weight", c.mlp_dim, c.dim, "MLP fc1"), vec(f + "1.bias", c.mlp_dim, "MLP fc1 bias")};
    bw.fc2 = {mat(f + "4.weight", c.dim, c.mlp_dim, "MLP fc2"), vec(f + "4.bias", c.dim, "MLP fc2 bias")};
    w.encoder.blocks.push_back(std::move(bw));
  }
  w.encoder.final_norm = ln("transformer.norm", c.dim);
  w.pool.probe = vec("attn_pool_queries", c.dim, "attention-pool probe");
  w.pool.norm_gamma = ln("attn_pool.norm", c.dim).weight;
  w.pool.to_q = mat("attn_pool.to_q.weight", inner, c.dim, "attention-pool to_q");
  w.pool.to_kv = mat("attn_pool.to_kv.weight", 2 * inner, c.dim, "attention-pool to_kv");
  w.pool.q_gamma = gamma("attn_pool.q_norm.gamma", "attention-pool query RMSNorm gamma");
  w.pool.k_gamma = gamma("attn_pool.k_norm.gamma", "attention-pool key RMSNorm gamma");
  w.pool.to_out = mat("attn_pool.to_out.0.weight", c.dim, inner, "attention-pool to_out");
  w.head_norm = ln("mlp_head.0", c.dim);
  w.head = mat("mlp_head.1.weight", c.num_classes, c.dim, "classifier head");
  w.report = b.finish();
  w.encoder.keep_alive = store;
  return w;
}

}  // namespace tessera::model
