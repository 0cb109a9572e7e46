// SPDX-License-Identifier: Apache-2.0
// lm::decoder_config -- the one description both Qwen2-style LLM flavours (transformers' Qwen2,
// POINTS1.5's CustomLlama) normalize to: what lm::qwen2_decoder needs, with every derived size
// computed once by the config readers (model/qwen2/config.hpp, model/points15/config.hpp).
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/norm.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace tessera::lm {

/// Which reference code a decoder follows. The math is the same block; the numerics differ in
/// places the decoder must reproduce (spec section 7.4: CustomLlama rotates q/k in f32, HF Qwen2
/// in the activation dtype).
enum class decoder_flavour { qwen2, custom_llama };

[[nodiscard]] constexpr std::string_view name_of(decoder_flavour f) noexcept {
  return f == decoder_flavour::qwen2 ? "qwen2" : "custom_llama";
}


/// The decoder both LLM flavours (HF Qwen2, POINTS1.5 CustomLlama) normalize to: everything a
/// Qwen2-style decoder (pre-norm blocks, GQA with 1-D RoPE, SiLU-gated MLP) needs, with all
/// derived sizes computed once by the reader.
struct decoder_config {
  decoder_flavour flavour = decoder_flavour::qwen2;
  index_t vocab_size = 0;
  index_t d_model = 0;
  index_t n_layers = 0;
  index_t n_heads = 0;
  index_t n_kv_heads = 0;
  index_t head_dim = 0;   ///< d_model / n_heads
  index_t d_ff = 0;       ///< MLP intermediate size (each of gate and up)
  index_t rotary_dim = 0; ///< leading dims of each head that RoPE rotates (head_dim unless rotary_pct < 1)
  index_t max_positions = 0;
  double rope_theta = 0;           ///< RoPE base
  double rope_position_scale = 1;  ///< positions are multiplied by this (CustomLlama rotary_compress)
  nn::norm_kind norm = nn::norm_kind::rms_norm;
  double norm_eps = 0;
  nn::activation_kind activation = nn::activation_kind::silu;  ///< of the gate branch
  bool qkv_bias = true;      ///< q, k, v projections have biases
  bool o_bias = false;       ///< output projection has a bias
  bool gate_up_bias = false; ///< gate and up projections have biases
  bool down_bias = false;    ///< down projection has a bias
  bool tie_word_embeddings = false;  ///< lm_head is the embedding matrix
  std::optional<std::int64_t> bos_token_id{};
  std::vector<std::int64_t> eos_token_ids{};
  std::optional<dtype> torch_dtype{};  ///< the checkpoint's declared dtype, if the config says

  [[nodiscard]] index_t q_dim() const noexcept { return n_heads * head_dim; }
  [[nodiscard]] index_t kv_dim() const noexcept { return n_kv_heads * head_dim; }
  /// Query heads per KV head; query head h reads KV head h / group_size().
  [[nodiscard]] index_t group_size() const noexcept { return n_heads / n_kv_heads; }
};

/// transformers 4.46.3 Qwen2Config as resolved from a config.json (model_type "qwen2",

}  // namespace tessera::lm
