// SPDX-License-Identifier: Apache-2.0
// The parameters of lm::qwen2_decoder: per layer the norms, the attention projections (HF's
// separate q / k / v, or CustomLlama's fused key_value_dense) and the SwiGLU MLP (separate gate /
// up, or CustomLlama's fused dense_h_to_4h), plus the embedding, final norm and LM head. Views;
// a checkpoint binder (model/qwen2/checkpoint.hpp) or a test fills them.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>

#include <memory>
#include <optional>
#include <vector>

namespace tessera::lm {

/// K or V projection split by KV head: weight [n_kv_heads, head_dim, d_model], bias
/// [n_kv_heads, head_dim]. Contiguous for HF names; strided views into key_value_dense for
/// CustomLlama (head g's rows start at g * 2 * head_dim).
template <weight_type T>
struct kv_head_weights {
  tensor_view<T const, 3> weight;
  std::optional<tensor_view<T const, 2>> bias;
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
  std::shared_ptr<void const> keep_alive;  ///< owns converted buffers the views point into (may be empty)
};

}  // namespace tessera::lm
