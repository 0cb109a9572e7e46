// SPDX-License-Identifier: Apache-2.0
// config.json of a Qwen2 / Qwen2.5 decoder (transformers 4.46.3 Qwen2Config, Qwen2ForCausalLM):
// the fields as the class resolves them, and the normalized lm::decoder_config they describe.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/norm.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tessera::model {

/// architecture Qwen2ForCausalLM). Member initializers are the class defaults.
struct qwen2_config {
  std::string source;  ///< the file (or name) the config was read from
  index_t vocab_size = 151936;
  index_t hidden_size = 4096;
  index_t intermediate_size = 22016;
  index_t num_hidden_layers = 32;
  index_t num_attention_heads = 32;
  index_t num_key_value_heads = 32;  ///< absent -> 32; null -> num_attention_heads (as the class does)
  std::string hidden_act = "silu";
  index_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  double rope_theta = 10000.0;
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<dtype> torch_dtype;
  lm::decoder_config decoder;  ///< the normalized description (derived once)
};

namespace detail {

/// Qwen2Config fields of object `c` (the root of a Qwen2 config.json, or POINTS' llm_config).
[[nodiscard]] inline qwen2_config parse_qwen2_object(io::config_object const& c) {
  using L = io::config_limits;
  qwen2_config q;
  q.source = c.source();
  io::check_model_type(c, "qwen2", "a Qwen2 decoder (Qwen2ForCausalLM)");
  io::check_architectures(c, "Qwen2ForCausalLM");
  q.vocab_size = c.integer("vocab_size", q.vocab_size, 1, L::max_vocab);
  q.hidden_size = c.integer("hidden_size", q.hidden_size, 1, L::max_d_model);
  q.intermediate_size = c.integer("intermediate_size", q.intermediate_size, 1, L::max_d_ff);
  q.num_hidden_layers = c.integer("num_hidden_layers", q.num_hidden_layers, 1, L::max_layers);
  q.num_attention_heads = c.integer("num_attention_heads", q.num_attention_heads, 1, L::max_heads);
  // Qwen2Config: an absent num_key_value_heads takes the keyword default (32); only an explicit
  // null falls back to num_attention_heads.
  if (nlohmann::json const* kv = c.find("num_key_value_heads"); kv != nullptr && kv->is_null())
    q.num_key_value_heads = q.num_attention_heads;
  else
    q.num_key_value_heads = c.integer("num_key_value_heads", q.num_key_value_heads, 1, L::max_heads);
  q.hidden_act = c.string("hidden_act", q.hidden_act);
  if (q.hidden_act != "silu")
    c.fail("hidden_act", io::detail::quote_name(q.hidden_act),
           " is not supported: tessera's decoder implements the SiLU-gated MLP (hidden_act 'silu')");
  q.max_position_embeddings = c.integer("max_position_embeddings", q.max_position_embeddings, 1, L::max_positions);
  q.rms_norm_eps = c.number("rms_norm_eps", q.rms_norm_eps, 0.0, 1.0, true);
  q.tie_word_embeddings = c.boolean("tie_word_embeddings", q.tie_word_embeddings);
  q.rope_theta = c.number("rope_theta", q.rope_theta, 1.0, L::max_rope_theta, true);
  if (nlohmann::json const* rs = c.find_non_null("rope_scaling")) {
    if (!rs->is_object()) c.fail("rope_scaling", "must be null or a JSON object, got ", io::detail::describe(*rs));
    io::config_object const r(*rs, c.source(), c.path() + "rope_scaling.");
    // Qwen2Config reads rope_type, falling back to the older spelling type.
    std::string const key = r.find("rope_type") != nullptr ? "rope_type" : "type";
    std::string const type = r.string(key, "default");
    if (type != "default")
      r.fail(key, io::detail::quote_name(type),
             " RoPE scaling is not supported: tessera implements plain RoPE (rope_scaling null or 'default')");
    if (r.find("mrope_section") != nullptr)
      r.fail("mrope_section", "M-RoPE belongs to the Qwen2-VL language model, not to a Qwen2 decoder");
  }
  if (c.boolean("use_sliding_window", false))
    c.fail("use_sliding_window", "is true: sliding-window attention is not supported (every released Qwen2.5 "
                                 "model has it disabled)");
  q.bos_token_id = std::nullopt;
  if (auto const bos = c.token_ids("bos_token_id", {}); !bos.empty()) {
    if (bos.size() != 1) c.fail("bos_token_id", "must be one token id, got a list of ", bos.size());
    q.bos_token_id = bos.front();
  }
  q.eos_token_ids = c.token_ids("eos_token_id", {});
  q.torch_dtype = io::torch_dtype_field(c);

  io::check_divides(c, "num_attention_heads", q.num_attention_heads, "hidden_size", q.hidden_size,
                "Qwen2Attention requires head_dim * num_heads == hidden_size");
  index_t const head_dim = q.hidden_size / q.num_attention_heads;
  if (head_dim % 2 != 0)
    c.fail("num_attention_heads", "gives head_dim ", head_dim, "; RoPE pairs dimension d with d + head_dim/2, so "
                                  "head_dim must be even");
  io::check_divides(c, "num_key_value_heads", q.num_key_value_heads, "num_attention_heads", q.num_attention_heads,
                "each KV head serves a whole group of query heads");
  if (nlohmann::json const* hd = c.find_non_null("head_dim")) {
    index_t const given = c.integer_value("head_dim", *hd, 1, L::max_d_model);
    if (given != head_dim)
      c.fail("head_dim", given, " differs from hidden_size / num_attention_heads = ", head_dim,
             " (transformers 4.46.3 Qwen2 always uses the latter)");
  }

  lm::decoder_config& d = q.decoder;
  d.flavour = lm::decoder_flavour::qwen2;
  d.vocab_size = q.vocab_size;
  d.d_model = q.hidden_size;
  d.n_layers = q.num_hidden_layers;
  d.n_heads = q.num_attention_heads;
  d.n_kv_heads = q.num_key_value_heads;
  d.head_dim = head_dim;
  d.d_ff = q.intermediate_size;
  d.rotary_dim = head_dim;
  d.max_positions = q.max_position_embeddings;
  d.rope_theta = q.rope_theta;
  d.rope_position_scale = 1.0;
  d.norm = nn::norm_kind::rms_norm;
  d.norm_eps = q.rms_norm_eps;
  d.activation = nn::activation_kind::silu;
  d.qkv_bias = true;  // Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False; Qwen2MLP: no biases
  d.o_bias = false;
  d.gate_up_bias = false;
  d.down_bias = false;
  d.tie_word_embeddings = q.tie_word_embeddings;
  d.bos_token_id = q.bos_token_id;
  d.eos_token_ids = q.eos_token_ids;
  d.torch_dtype = q.torch_dtype;
  return q;
}


}  // namespace detail

/// Parses a Qwen2 / Qwen2.5 config.json (model_type "qwen2", architecture Qwen2ForCausalLM).
/// `source` names the text in error messages (a file path, or any label). Absent fields take the
/// transformers 4.46.3 Qwen2Config defaults. Throws tessera::error naming `source` and the field
/// for: invalid JSON or duplicate keys, another model_type / architecture, a wrong JSON type
/// (896.0 for an integer, "true" for a bool), a size outside config_limits, eps or rope_theta
/// out of range, hidden_size not a multiple of num_attention_heads, an odd head_dim,
/// num_attention_heads not a multiple of num_key_value_heads, hidden_act other than "silu",
/// rope_scaling other than null / "default", or use_sliding_window true.
/// Safe on arbitrary bytes (a fuzz target): every malformation is a tessera::error.
[[nodiscard]] inline qwen2_config parse_qwen2_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  return detail::parse_qwen2_object(io::config_object(root, src, ""));
}


/// The read_* functions read `path` (a config.json, or a directory holding one; at most
/// detail::max_config_bytes) and parse it as the matching parse_* function, naming the file in
/// every error.
[[nodiscard]] inline qwen2_config read_qwen2_config(std::filesystem::path const& path) {
  auto const [text, file] = io::read_config_text(path);
  return parse_qwen2_config(text, file);
}

}  // namespace tessera::model
