// SPDX-License-Identifier: Apache-2.0
// The parameters of lm::qwen2_decoder: per layer the norms, the attention projections (HF's
// separate q / k / v, or CustomLlama's fused key_value_dense) and the SwiGLU MLP (separate gate /
// up, or CustomLlama's fused dense_h_to_4h), plus the embedding, final norm and LM head. Views;
// a checkpoint binder (model/qwen2/checkpoint.hpp) fills them, or random_decoder_weights for a
// model built in code.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/nn/random_parameters.hpp>
#include <tessera/quant/format.hpp>

#include <cmath>
#include <memory>
#include <optional>
#include <vector>

namespace tessera::lm {

/// K or V projection split by KV head: weight [n_kv_heads, head_dim, d_model], bias
/// [n_kv_heads, head_dim]. Contiguous for HF names; strided views into key_value_dense for
/// CustomLlama (head g's rows start at g * 2 * head_dim). `quantized`, when not empty, holds the
/// weight as [n_kv_heads * head_dim, d_model] instead (nn::linear_weights::quantized).
template <weight_type T>
struct kv_head_weights {
  tensor_view<T const, 3> weight;
  std::optional<tensor_view<T const, 2>> bias;
  quant::qmatrix quantized{};
};

/// One decoder block (Qwen2DecoderLayer / CustomLlamaLayer): pre-norm attention with GQA, then a
/// pre-norm SiLU-gated MLP down(act(gate(x)) * up(x)).
template <weight_type T>
struct decoder_layer_weights {
  nn::norm_weights<T> input_norm;      ///< [d_model]
  nn::linear_weights<T> q;             ///< [n_heads * head_dim, d_model] (+ bias)
  kv_head_weights<T> k, v;         ///< see kv_head_weights
  /// CustomLlama's fused key_value_dense [n_kv_heads * 2 * head_dim, d_model] (+ bias): for each KV
  /// head g, head_dim K rows then head_dim V rows, so one GEMM yields K and V interleaved per head.
  /// Absent for HF names.
  std::optional<nn::linear_weights<T>> kv_fused;
  nn::linear_weights<T> o;             ///< [d_model, n_heads * head_dim] (+ bias if the config says)
  nn::norm_weights<T> post_norm;       ///< [d_model]
  nn::linear_weights<T> gate, up;      ///< [d_ff, d_model] each (+ biases if the config says)
  /// CustomLlama's fused dense_h_to_4h [2 * d_ff, d_model] (+ bias): rows [0, d_ff) are `up`
  /// (the linear branch), rows [d_ff, 2 d_ff) are `gate` (the SiLU branch), spec section 4.2.
  /// Absent for HF names.
  std::optional<nn::linear_weights<T>> up_gate_fused;
  nn::linear_weights<T> down;          ///< [d_model, d_ff] (+ bias if the config says)
};

/// A whole decoder. Views point into memory owned elsewhere: a mapped checkpoint (which must
/// outlive them; model::load_qwen2_decoder keeps it alive with the decoder), or buffers that
/// `keep_alive` holds (e.g. tensors a binder converted to T).
template <weight_type T>
struct decoder_weights {
  tensor_view<T const, 2> embed;   ///< [vocab_size, d_model]
  std::vector<decoder_layer_weights<T>> layers;
  nn::norm_weights<T> final_norm;      ///< [d_model]
  tensor_view<T const, 2> lm_head; ///< [vocab_size, d_model]; the embedding itself when tied
  bool lm_head_tied = false;
  quant::qmatrix lm_head_quantized{};  ///< when not empty, the LM head used instead of lm_head
  std::shared_ptr<void const> keep_alive;  ///< owns converted buffers the views point into (may be empty)
};

/// Random weights for a decoder of config `c`, in HF's layout (separate q / k / v and gate / up), as
/// PyTorch initializes the modules: every nn.Linear U(-1/sqrt(in), 1/sqrt(in)), its bias too where
/// the config has one; norms ones (a LayerNorm's bias zeros); the embedding U(-1, 1); the LM head
/// tied to the embedding when the config says so. The tensors live in `p` (keep_alive holds them).
/// For a decoder built in code (a new variant, an example); throws tessera::error for sizes < 1.
template <weight_type T>
[[nodiscard]] decoder_weights<T> random_decoder_weights(decoder_config const& c, nn::random_parameters<T>& p) {
  TESSERA_CHECK(c.vocab_size >= 1 && c.d_model >= 1 && c.n_layers >= 1 && c.n_heads >= 1 && c.n_kv_heads >= 1 &&
                    c.head_dim >= 1 && c.d_ff >= 1,
                "lm::random_decoder_weights: config sizes must be positive (vocab ", c.vocab_size, ", d_model ",
                c.d_model, ", layers ", c.n_layers, ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim,
                ", d_ff ", c.d_ff, ")");
  index_t const d = c.d_model;
  bool const norm_bias = c.norm == nn::norm_kind::layer_norm;
  float const kv_bound = 1.0f / std::sqrt(static_cast<float>(d));  // k_proj / v_proj are nn.Linear(d_model, kv_dim)
  decoder_weights<T> w;
  w.embed = p.uniform({c.vocab_size, d}, 1.0f);
  for (index_t l = 0; l < c.n_layers; ++l) {
    decoder_layer_weights<T> layer;
    layer.input_norm = p.norm(d, norm_bias);
    layer.q = p.linear(c.q_dim(), d, c.qkv_bias);
    for (kv_head_weights<T>* kv : {&layer.k, &layer.v}) {
      kv->weight = p.uniform({c.n_kv_heads, c.head_dim, d}, kv_bound);
      if (c.qkv_bias) kv->bias = p.uniform({c.n_kv_heads, c.head_dim}, kv_bound);
    }
    layer.o = p.linear(d, c.q_dim(), c.o_bias);
    layer.post_norm = p.norm(d, norm_bias);
    layer.gate = p.linear(c.d_ff, d, c.gate_up_bias);
    layer.up = p.linear(c.d_ff, d, c.gate_up_bias);
    layer.down = p.linear(d, c.d_ff, c.down_bias);
    w.layers.push_back(layer);
  }
  w.final_norm = p.norm(d, norm_bias);
  w.lm_head_tied = c.tie_word_embeddings;
  w.lm_head = c.tie_word_embeddings ? w.embed : p.linear(c.vocab_size, d, false).weight;
  w.keep_alive = p.keep_alive();
  return w;
}

}  // namespace tessera::lm
