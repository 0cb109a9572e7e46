// SPDX-License-Identifier: Apache-2.0
// config.json readers for Qwen2 / Qwen2.5 (transformers Qwen2Config), the Qwen2-VL vision tower
// (Qwen2VLVisionConfig) and POINTS1.5 (POINTSV15ChatModel: a CustomLlama or Qwen2 llm_config plus
// a Qwen2-VL vision_config), all as of transformers 4.46.3. Absent fields take the reference
// defaults; both decoder flavours also map to one normalized decoder_config.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/detail/config_json.hpp>
#include <tessera/io/detail/strict_json.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tessera::io {

/// Sanity bounds on config sizes. They are far above every released model (Qwen2.5-72B:
/// d_model 8192, d_ff 29568, 80 layers, vocab 152064) and keep derived products far from
/// overflow; a value outside them is refused as corrupt rather than allocated.
struct config_limits {
  static constexpr index_t max_d_model = index_t{1} << 17;
  static constexpr index_t max_d_ff = index_t{1} << 20;
  static constexpr index_t max_layers = 1024;
  static constexpr index_t max_heads = 1024;
  static constexpr index_t max_vocab = index_t{1} << 24;
  static constexpr index_t max_positions = index_t{1} << 26;
  static constexpr index_t max_patch = 1024;         ///< patch_size
  static constexpr index_t max_small_factor = 64;    ///< in_channels, temporal_patch_size, spatial_merge_size
  static constexpr double max_rope_theta = 1e15;
};

/// Element-wise activation named by a config's hidden_act. Maps one to one to nn::activation.
enum class activation_kind { silu, gelu_erf, gelu_tanh, quick_gelu };
/// Normalization of a decoder: Qwen2RMSNorm-style, or LayerNorm with weight and bias.
enum class norm_kind { rms_norm, layer_norm };
/// Which reference code a decoder follows. The math is the same block; the numerics differ in
/// places the decoder must reproduce (spec section 7.4: CustomLlama rotates q/k in f32, HF Qwen2
/// in the activation dtype).
enum class decoder_flavour { qwen2, custom_llama };

[[nodiscard]] constexpr std::string_view name_of(activation_kind a) noexcept {
  switch (a) {
    case activation_kind::silu: return "silu";
    case activation_kind::gelu_erf: return "gelu_erf";
    case activation_kind::gelu_tanh: return "gelu_tanh";
    case activation_kind::quick_gelu: return "quick_gelu";
  }
  return "?";
}
[[nodiscard]] constexpr std::string_view name_of(norm_kind n) noexcept {
  return n == norm_kind::rms_norm ? "rms_norm" : "layer_norm";
}
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
  norm_kind norm = norm_kind::rms_norm;
  double norm_eps = 0;
  activation_kind activation = activation_kind::silu;  ///< of the gate branch
  bool qkv_bias = true;      ///< q, k, v projections have biases
  bool o_bias = false;       ///< output projection has a bias
  bool gate_up_bias = false; ///< gate and up projections have biases
  bool down_bias = false;    ///< down projection has a bias
  bool tie_word_embeddings = false;  ///< lm_head is the embedding matrix
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<dtype> torch_dtype;  ///< the checkpoint's declared dtype, if the config says

  [[nodiscard]] index_t q_dim() const noexcept { return n_heads * head_dim; }
  [[nodiscard]] index_t kv_dim() const noexcept { return n_kv_heads * head_dim; }
  /// Query heads per KV head; query head h reads KV head h / group_size().
  [[nodiscard]] index_t group_size() const noexcept { return n_heads / n_kv_heads; }
};

/// transformers 4.46.3 Qwen2Config as resolved from a config.json (model_type "qwen2",
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
  decoder_config decoder;  ///< the normalized description (derived once)
};

/// POINTS1.5's CustomLlamaConfig (remote code shipped with the checkpoint, configuration_llama.py)
/// as resolved from its llm_config. The defaults are those of the public copy of that file in
/// josephydu/sglang python/sglang/srt/configs/pointsv15_chat.py @ a6f0c03fedf03ae73605976fa4c822e05bb633ff
/// (the PaddleMIX port has the same); tie_word_embeddings defaults to PretrainedConfig's true.
struct custom_llama_config {
  std::string source;
  index_t vocab_size = 102400;
  index_t hidden_size = 2560;
  index_t num_layers = 32;
  index_t num_attention_heads = 20;
  index_t num_kv_heads = 4;
  index_t ffn_hidden_size = 2560 * 4;
  std::string hidden_act = "swiglu";
  double rotary_pct = 1.0;
  double rotary_emb_base = 10000.0;
  double rotary_compress = 1.0;
  index_t max_position_embeddings = 4096;
  double layernorm_epsilon = 1e-5;
  std::string norm_type = "layer_norm";  ///< after rms_norm (if not null) overrode it
  bool qkv_proj_bias = true;
  bool out_proj_bias = true;
  bool mlp_fc1_bias = true;
  bool mlp_fc2_bias = true;
  bool tie_word_embeddings = true;
  std::optional<std::int64_t> bos_token_id = 0;
  std::vector<std::int64_t> eos_token_ids = {2};
  std::optional<dtype> torch_dtype;
  decoder_config decoder;
};

/// transformers 4.46.3 Qwen2VLVisionConfig (the Qwen2-VL ViT; POINTS1.5's vision_config).
/// Member initializers are the class defaults (the Qwen2-VL-7B tower).
struct qwen2_vl_vision_config {
  std::string source;
  index_t depth = 32;
  index_t embed_dim = 1280;
  index_t hidden_size = 3584;  ///< output width of the tower's own PatchMerger
  std::string hidden_act = "quick_gelu";
  double mlp_ratio = 4.0;
  index_t num_heads = 16;
  index_t in_channels = 3;
  index_t patch_size = 14;
  index_t spatial_merge_size = 2;
  index_t temporal_patch_size = 2;
  // Derived once by the reader:
  activation_kind activation = activation_kind::quick_gelu;
  index_t head_dim = 80;     ///< embed_dim / num_heads
  index_t mlp_dim = 5120;    ///< int(embed_dim * mlp_ratio), as Qwen2VLVisionBlock computes it
  index_t patch_dim = 1176;  ///< in_channels * temporal_patch_size * patch_size^2 (Conv3d as a linear)
  index_t merge_dim = 5120;  ///< embed_dim * spatial_merge_size^2 (PatchMerger's hidden width)
  /// Constants of the reference modules, not config fields: LayerNorm eps of Qwen2VLVisionBlock
  /// and PatchMerger, and VisionRotaryEmbedding's theta.
  static constexpr double norm_eps = 1e-6;
  static constexpr double rope_theta = 10000.0;
};

/// A Qwen2-VL PatchMerger (LayerNorm, 2x2 concat, Linear-GELU-Linear): the tower's own merger
/// (out_dim = vision hidden_size) or POINTS1.5's vision_projector (out_dim = LLM d_model).
struct patch_merger_config {
  index_t context_dim = 1280;  ///< width of the ViT tokens (ln_q)
  index_t merge_size = 2;      ///< spatial merge window side
  index_t hidden_dim = 5120;   ///< context_dim * merge_size^2 (mlp.0 is hidden x hidden)
  index_t out_dim = 3584;      ///< mlp.2 output width
  static constexpr double norm_eps = 1e-6;
};

/// The Qwen2-VL tower's own merger (`visual.merger`): PatchMerger(dim = hidden_size,
/// context_dim = embed_dim, spatial_merge_size).
[[nodiscard]] inline patch_merger_config vision_merger_config(qwen2_vl_vision_config const& v) noexcept {
  return {v.embed_dim, v.spatial_merge_size, v.merge_dim, v.hidden_size};
}

/// POINTS1.5 (model_type "pointsv1.5_chat", POINTSV15ChatModel): LLM + ViT + projector.
struct points15_config {
  std::string source;
  /// The llm_config as its own class resolves it: CustomLlamaConfig (the Dec-2024 release) or
  /// Qwen2Config (the 2025 Qwen2-based variant, spec section 4.1).
  std::variant<custom_llama_config, qwen2_config> llm;
  decoder_config decoder;  ///< the normalized LLM
  qwen2_vl_vision_config vision;
  patch_merger_config projector;  ///< vision_projector: PatchMerger(llm hidden_size, context_dim = embed_dim)
};

/// Which class an llm_config follows. `auto_detect` looks at llm_config.model_type, then its
/// architectures / auto_map, then at field names unique to one class.
enum class points_llm_flavour { auto_detect, custom_llama, qwen2 };

/// A config.json of any model tessera reads.
using model_config = std::variant<qwen2_config, points15_config>;

namespace detail {

/// The checkpoint dtype a torch_dtype string names ("float32", "float16", "bfloat16").
[[nodiscard]] inline std::optional<dtype> torch_dtype_field(config_object const& c) {
  nlohmann::json const* v = c.find_non_null("torch_dtype");
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) c.fail("torch_dtype", "must be a string such as \"bfloat16\", got ", describe(*v));
  std::string const& s = v->get_ref<std::string const&>();
  if (s == "float32") return dtype::f32;
  if (s == "float16") return dtype::f16;
  if (s == "bfloat16") return dtype::bf16;
  c.fail("torch_dtype", describe(*v), " is not a dtype tessera loads (float32, float16, bfloat16)");
}

/// Refuses a model_type other than `want` (absent is accepted).
inline void check_model_type(config_object const& c, std::string_view want, std::string_view what) {
  nlohmann::json const* v = c.find("model_type");
  if (v == nullptr) return;
  if (!v->is_string()) c.fail("model_type", "must be a string, got ", describe(*v));
  if (v->get_ref<std::string const&>() != want)
    c.fail("model_type", describe(*v), " is not supported here; ", what, " needs model_type '", want, "'");
}

/// Refuses an architectures list that does not name `want` (absent, null or empty is accepted).
inline void check_architectures(config_object const& c, std::string_view want) {
  std::vector<std::string> const archs = c.string_list("architectures");
  if (archs.empty() || c.list_contains("architectures", want)) return;
  c.fail("architectures", list_text(archs), " is not supported here; expected '", want, "'");
}

/// A divisibility requirement between two already-read fields.
inline void check_divides(config_object const& c, std::string_view key, index_t divisor, std::string_view of_key,
                          index_t of, std::string_view why) {
  if (of % divisor != 0) c.fail(key, divisor, " does not divide ", of_key, " ", of, " (", why, ")");
}

/// Qwen2Config fields of object `c` (the root of a Qwen2 config.json, or POINTS' llm_config).
[[nodiscard]] inline qwen2_config parse_qwen2_object(config_object const& c) {
  using L = config_limits;
  qwen2_config q;
  q.source = c.source();
  check_model_type(c, "qwen2", "a Qwen2 decoder (Qwen2ForCausalLM)");
  check_architectures(c, "Qwen2ForCausalLM");
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
    c.fail("hidden_act", quote_name(q.hidden_act),
           " is not supported: tessera's decoder implements the SiLU-gated MLP (hidden_act 'silu')");
  q.max_position_embeddings = c.integer("max_position_embeddings", q.max_position_embeddings, 1, L::max_positions);
  q.rms_norm_eps = c.number("rms_norm_eps", q.rms_norm_eps, 0.0, 1.0, true);
  q.tie_word_embeddings = c.boolean("tie_word_embeddings", q.tie_word_embeddings);
  q.rope_theta = c.number("rope_theta", q.rope_theta, 1.0, L::max_rope_theta, true);
  if (nlohmann::json const* rs = c.find_non_null("rope_scaling")) {
    if (!rs->is_object()) c.fail("rope_scaling", "must be null or a JSON object, got ", describe(*rs));
    config_object const r(*rs, c.source(), c.path() + "rope_scaling.");
    // Qwen2Config reads rope_type, falling back to the older spelling type.
    std::string const key = r.find("rope_type") != nullptr ? "rope_type" : "type";
    std::string const type = r.string(key, "default");
    if (type != "default")
      r.fail(key, quote_name(type),
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
  q.torch_dtype = torch_dtype_field(c);

  check_divides(c, "num_attention_heads", q.num_attention_heads, "hidden_size", q.hidden_size,
                "Qwen2Attention requires head_dim * num_heads == hidden_size");
  index_t const head_dim = q.hidden_size / q.num_attention_heads;
  if (head_dim % 2 != 0)
    c.fail("num_attention_heads", "gives head_dim ", head_dim, "; RoPE pairs dimension d with d + head_dim/2, so "
                                  "head_dim must be even");
  check_divides(c, "num_key_value_heads", q.num_key_value_heads, "num_attention_heads", q.num_attention_heads,
                "each KV head serves a whole group of query heads");
  if (nlohmann::json const* hd = c.find_non_null("head_dim")) {
    index_t const given = c.integer_value("head_dim", *hd, 1, L::max_d_model);
    if (given != head_dim)
      c.fail("head_dim", given, " differs from hidden_size / num_attention_heads = ", head_dim,
             " (transformers 4.46.3 Qwen2 always uses the latter)");
  }

  decoder_config& d = q.decoder;
  d.flavour = decoder_flavour::qwen2;
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
  d.norm = norm_kind::rms_norm;
  d.norm_eps = q.rms_norm_eps;
  d.activation = activation_kind::silu;
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

/// CustomLlamaConfig fields of POINTS1.5's llm_config object `c`.
[[nodiscard]] inline custom_llama_config parse_custom_llama_object(config_object const& c) {
  using L = config_limits;
  custom_llama_config l;
  l.source = c.source();
  check_model_type(c, "custom_llama", "a CustomLlama decoder (POINTS1.5 llm_config)");
  check_architectures(c, "CustomLlamaForCausalLM");
  l.vocab_size = c.integer("vocab_size", l.vocab_size, 1, L::max_vocab);
  l.hidden_size = c.integer("hidden_size", l.hidden_size, 1, L::max_d_model);
  l.num_layers = c.integer("num_layers", l.num_layers, 1, L::max_layers);
  l.num_attention_heads = c.integer("num_attention_heads", l.num_attention_heads, 1, L::max_heads);
  l.num_kv_heads = c.integer("num_kv_heads", l.num_kv_heads, 1, L::max_heads);
  l.ffn_hidden_size = c.integer("ffn_hidden_size", l.ffn_hidden_size, 1, L::max_d_ff);
  l.hidden_act = c.string("hidden_act", l.hidden_act);
  if (l.hidden_act != "swiglu")
    c.fail("hidden_act", quote_name(l.hidden_act),
           " is not supported: tessera's decoder implements CustomLlama's gated 'swiglu' MLP only");
  l.rotary_pct = c.number("rotary_pct", l.rotary_pct, 0.0, 1.0, true);
  l.rotary_emb_base = c.number("rotary_emb_base", l.rotary_emb_base, 1.0, L::max_rope_theta, true);
  l.rotary_compress = c.number("rotary_compress", l.rotary_compress, 0.0, 1e6, true);
  l.max_position_embeddings = c.integer("max_position_embeddings", l.max_position_embeddings, 1, L::max_positions);
  l.layernorm_epsilon = c.number("layernorm_epsilon", l.layernorm_epsilon, 0.0, 1.0, true);
  // CustomLlamaConfig: a non-null rms_norm decides, otherwise norm_type does.
  if (nlohmann::json const* rms = c.find_non_null("rms_norm")) {
    if (!rms->is_boolean()) c.fail("rms_norm", "must be true, false or null, got ", describe(*rms));
    l.norm_type = rms->get<bool>() ? "rms_norm" : "layer_norm";
  } else {
    l.norm_type = c.string("norm_type", l.norm_type);
    if (l.norm_type != "rms_norm" && l.norm_type != "layer_norm")
      c.fail("norm_type", quote_name(l.norm_type), " is not a norm CustomLlama knows ('rms_norm', 'layer_norm')");
  }
  l.qkv_proj_bias = c.boolean("qkv_proj_bias", l.qkv_proj_bias);
  l.out_proj_bias = c.boolean("out_proj_bias", l.out_proj_bias);
  l.mlp_fc1_bias = c.boolean("mlp_fc1_bias", l.mlp_fc1_bias);
  l.mlp_fc2_bias = c.boolean("mlp_fc2_bias", l.mlp_fc2_bias);
  l.tie_word_embeddings = c.boolean("tie_word_embeddings", l.tie_word_embeddings);
  if (auto const bos = c.token_ids("bos_token_id", {0}); bos.empty()) {
    l.bos_token_id = std::nullopt;
  } else {
    if (bos.size() != 1) c.fail("bos_token_id", "must be one token id, got a list of ", bos.size());
    l.bos_token_id = bos.front();
  }
  l.eos_token_ids = c.token_ids("eos_token_id", {2});
  l.torch_dtype = torch_dtype_field(c);

  check_divides(c, "num_attention_heads", l.num_attention_heads, "hidden_size", l.hidden_size,
                "CustomLlamaAttention uses head_size = hidden_size / num_attention_heads");
  index_t const head_dim = l.hidden_size / l.num_attention_heads;
  if (l.num_kv_heads >= l.num_attention_heads)
    c.fail("num_kv_heads", l.num_kv_heads, " is not below num_attention_heads ", l.num_attention_heads,
           ": CustomLlama then stores a fused per-head query_key_value tensor, a layout tessera does not map "
           "(POINTS1.5 uses grouped-query attention)");
  check_divides(c, "num_kv_heads", l.num_kv_heads, "num_attention_heads", l.num_attention_heads,
                "each KV head serves a whole group of query heads");
  // CustomLlamaAttention: rotary_ndims = int(head_size * rotary_pct) (truncation, in float64).
  auto const rotary_dim = static_cast<index_t>(static_cast<double>(head_dim) * l.rotary_pct);
  if (rotary_dim < 2 || rotary_dim % 2 != 0)
    c.fail("rotary_pct", l.rotary_pct, " gives ", rotary_dim, " rotary dimensions of head_dim ", head_dim,
           "; RoPE needs an even number, at least 2");

  decoder_config& d = l.decoder;
  d.flavour = decoder_flavour::custom_llama;
  d.vocab_size = l.vocab_size;
  d.d_model = l.hidden_size;
  d.n_layers = l.num_layers;
  d.n_heads = l.num_attention_heads;
  d.n_kv_heads = l.num_kv_heads;
  d.head_dim = head_dim;
  d.d_ff = l.ffn_hidden_size;
  d.rotary_dim = rotary_dim;
  d.max_positions = l.max_position_embeddings;
  d.rope_theta = l.rotary_emb_base;
  d.rope_position_scale = l.rotary_compress;
  d.norm = l.norm_type == "rms_norm" ? norm_kind::rms_norm : norm_kind::layer_norm;
  d.norm_eps = l.layernorm_epsilon;
  d.activation = activation_kind::silu;  // swiglu: x1 * silu(x2)
  d.qkv_bias = l.qkv_proj_bias;
  d.o_bias = l.out_proj_bias;
  d.gate_up_bias = l.mlp_fc1_bias;
  d.down_bias = l.mlp_fc2_bias;
  d.tie_word_embeddings = l.tie_word_embeddings;
  d.bos_token_id = l.bos_token_id;
  d.eos_token_ids = l.eos_token_ids;
  d.torch_dtype = l.torch_dtype;
  return l;
}

/// The activation a ViT hidden_act names (transformers ACT2FN keys tessera implements).
[[nodiscard]] inline activation_kind vision_activation(config_object const& c, std::string const& name) {
  if (name == "quick_gelu") return activation_kind::quick_gelu;
  if (name == "gelu") return activation_kind::gelu_erf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return activation_kind::gelu_tanh;
  if (name == "silu" || name == "swish") return activation_kind::silu;
  c.fail("hidden_act", quote_name(name),
         " is not supported (tessera implements quick_gelu, gelu, gelu_pytorch_tanh / gelu_new, silu)");
}

/// Qwen2VLVisionConfig fields of object `c`.
[[nodiscard]] inline qwen2_vl_vision_config parse_vision_object(config_object const& c) {
  using L = config_limits;
  qwen2_vl_vision_config v;
  v.source = c.source();
  check_model_type(c, "qwen2_vl", "a Qwen2-VL vision tower (Qwen2VLVisionConfig)");
  v.depth = c.integer("depth", v.depth, 1, L::max_layers);
  v.embed_dim = c.integer("embed_dim", v.embed_dim, 1, L::max_d_model);
  v.hidden_size = c.integer("hidden_size", v.hidden_size, 1, L::max_d_model);
  v.hidden_act = c.string("hidden_act", v.hidden_act);
  v.activation = vision_activation(c, v.hidden_act);
  v.mlp_ratio = c.number("mlp_ratio", v.mlp_ratio, 0.0, 1024.0, true);
  v.num_heads = c.integer("num_heads", v.num_heads, 1, L::max_heads);
  // Published Qwen2-VL configs also carry in_chans / spatial_patch_size; the class ignores both
  // (they land in **kwargs), and so does this reader.
  v.in_channels = c.integer("in_channels", v.in_channels, 1, L::max_small_factor);
  v.patch_size = c.integer("patch_size", v.patch_size, 1, L::max_patch);
  v.spatial_merge_size = c.integer("spatial_merge_size", v.spatial_merge_size, 1, L::max_small_factor);
  v.temporal_patch_size = c.integer("temporal_patch_size", v.temporal_patch_size, 1, L::max_small_factor);

  check_divides(c, "num_heads", v.num_heads, "embed_dim", v.embed_dim,
                "VisionAttention splits embed_dim into num_heads heads");
  v.head_dim = v.embed_dim / v.num_heads;
  if (v.head_dim % 4 != 0)
    c.fail("num_heads", "gives head_dim ", v.head_dim, "; the 2-D rotary embedding splits each head into h and w "
                        "halves of rotated pairs, so head_dim must be a multiple of 4");
  // Qwen2VLVisionBlock: mlp_hidden_dim = int(embed_dim * mlp_ratio), truncated in float64.
  double const mlp = static_cast<double>(v.embed_dim) * v.mlp_ratio;
  if (!(mlp >= 1.0 && mlp <= static_cast<double>(L::max_d_ff)))
    c.fail("mlp_ratio", v.mlp_ratio, " gives an MLP width of ", mlp, "; it must be in [1, ", L::max_d_ff, "]");
  v.mlp_dim = static_cast<index_t>(mlp);
  v.patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size;
  v.merge_dim = v.embed_dim * v.spatial_merge_size * v.spatial_merge_size;
  return v;
}

/// Which class an llm_config follows (see points_llm_flavour).
[[nodiscard]] inline points_llm_flavour detect_llm_flavour(config_object const& llm) {
  if (nlohmann::json const* mt = llm.find_non_null("model_type")) {
    if (!mt->is_string()) llm.fail("model_type", "must be a string, got ", describe(*mt));
    std::string const& s = mt->get_ref<std::string const&>();
    if (s == "custom_llama") return points_llm_flavour::custom_llama;
    if (s == "qwen2") return points_llm_flavour::qwen2;
    llm.fail("model_type", describe(*mt), " is not supported; POINTS1.5's llm_config is 'custom_llama' "
                                          "(CustomLlamaConfig) or 'qwen2' (Qwen2Config)");
  }
  if (llm.list_contains("architectures", "CustomLlamaForCausalLM")) return points_llm_flavour::custom_llama;
  if (llm.list_contains("architectures", "Qwen2ForCausalLM")) return points_llm_flavour::qwen2;
  if (nlohmann::json const* am = llm.find_non_null("auto_map"); am != nullptr && am->is_object()) {
    auto const it = am->find("AutoConfig");
    if (it != am->end() && it->is_string() &&
        it->get_ref<std::string const&>().find("CustomLlamaConfig") != std::string::npos)
      return points_llm_flavour::custom_llama;
  }
  bool const custom = llm.find("num_kv_heads") || llm.find("ffn_hidden_size") || llm.find("num_layers") ||
                      llm.find("layernorm_epsilon") || llm.find("rotary_emb_base");
  bool const qwen2 = llm.find("num_key_value_heads") || llm.find("intermediate_size") ||
                     llm.find("rms_norm_eps") || llm.find("rope_theta");
  if (custom && !qwen2) return points_llm_flavour::custom_llama;
  if (qwen2 && !custom) return points_llm_flavour::qwen2;
  std::string const field = llm.path().empty() ? std::string("llm_config") : llm.path().substr(0, llm.path().size() - 1);
  TESSERA_FAIL("config ", quote_tail(llm.source()), ": field ", quote_name(field),
               " cannot be identified as a CustomLlamaConfig or a Qwen2Config (no model_type, architectures or "
               "auto_map, and ", custom ? "field names of both" : "no field name unique to either",
               "); pass points_llm_flavour explicitly");
}

[[nodiscard]] inline points15_config parse_points15_object(config_object const& c, points_llm_flavour flavour) {
  points15_config p;
  p.source = c.source();
  check_model_type(c, "pointsv1.5_chat", "POINTS1.5 (POINTSV15ChatModel)");
  check_architectures(c, "POINTSV15ChatModel");
  config_object const llm = c.object("llm_config");
  config_object const vis = c.object("vision_config");
  if (flavour == points_llm_flavour::auto_detect) flavour = detect_llm_flavour(llm);
  if (flavour == points_llm_flavour::custom_llama) {
    custom_llama_config l = parse_custom_llama_object(llm);
    p.decoder = l.decoder;
    p.llm = std::move(l);
  } else {
    qwen2_config q = parse_qwen2_object(llm);
    p.decoder = q.decoder;
    p.llm = std::move(q);
  }
  p.vision = parse_vision_object(vis);
  // POINTSV15ChatModel builds PatchMerger(llm hidden_size, context_dim=1280) with the default
  // spatial_merge_size 2; the ViT orders its tokens in windows of vision spatial_merge_size.
  if (p.vision.spatial_merge_size != 2)
    vis.fail("spatial_merge_size", p.vision.spatial_merge_size,
             " does not match POINTS1.5's projector, a PatchMerger that always merges 2x2 windows");
  p.projector.context_dim = p.vision.embed_dim;
  p.projector.merge_size = 2;
  p.projector.hidden_dim = p.vision.merge_dim;
  p.projector.out_dim = p.decoder.d_model;
  return p;
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
  nlohmann::json const root = detail::parse_config_root(json, src);
  return detail::parse_qwen2_object(detail::config_object(root, src, ""));
}

/// Parses a Qwen2VLVisionConfig: either the vision_config object itself, or a whole Qwen2-VL
/// config.json (model_type "qwen2_vl" with a "vision_config" object), whose vision_config is
/// read, as Qwen2VLVisionConfig.from_pretrained does. Absent fields take the class defaults.
/// Throws tessera::error naming the field for wrong types, sizes outside config_limits,
/// embed_dim not a multiple of num_heads, head_dim not a multiple of 4, an unsupported
/// hidden_act, or another model_type.
[[nodiscard]] inline qwen2_vl_vision_config parse_qwen2_vl_vision_config(std::string_view json,
                                                                         std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = detail::parse_config_root(json, src);
  detail::config_object const c(root, src, "");
  if (nlohmann::json const* vc = c.find("vision_config"); vc != nullptr) {
    detail::check_model_type(c, "qwen2_vl", "a Qwen2-VL config with a vision_config");
    return detail::parse_vision_object(c.object("vision_config"));
  }
  return detail::parse_vision_object(c);
}

/// Parses POINTS1.5's llm_config object on its own as a CustomLlamaConfig (same rules as inside
/// parse_points15_config). Also refuses hidden_act other than "swiglu", a norm_type other than
/// rms_norm / layer_norm, num_kv_heads >= num_attention_heads (the fused MHA layout), and a
/// rotary_pct giving an odd or zero number of rotary dimensions.
[[nodiscard]] inline custom_llama_config parse_custom_llama_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = detail::parse_config_root(json, src);
  return detail::parse_custom_llama_object(detail::config_object(root, src, ""));
}

/// Parses a POINTS1.5 config.json (model_type "pointsv1.5_chat", POINTSV15ChatModel): llm_config
/// (CustomLlamaConfig or Qwen2Config, see points_llm_flavour) and vision_config
/// (Qwen2VLVisionConfig) are both required; the projector is derived from them. Errors name the
/// nested field ("llm_config.num_kv_heads").
[[nodiscard]] inline points15_config parse_points15_config(std::string_view json, std::string_view source,
                                                           points_llm_flavour flavour = points_llm_flavour::auto_detect) {
  std::string const src(source);
  nlohmann::json const root = detail::parse_config_root(json, src);
  return detail::parse_points15_object(detail::config_object(root, src, ""), flavour);
}

/// Parses a config.json of any supported model, chosen by model_type ("qwen2", "pointsv1.5_chat"),
/// or by architectures when model_type is absent. Refuses every other model by name.
[[nodiscard]] inline model_config parse_model_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = detail::parse_config_root(json, src);
  detail::config_object const c(root, src, "");
  std::string type;
  if (nlohmann::json const* mt = c.find("model_type"); mt != nullptr) {
    if (!mt->is_string()) c.fail("model_type", "must be a string, got ", detail::describe(*mt));
    type = mt->get<std::string>();
  } else if (c.list_contains("architectures", "Qwen2ForCausalLM")) {
    type = "qwen2";
  } else if (c.list_contains("architectures", "POINTSV15ChatModel")) {
    type = "pointsv1.5_chat";
  } else {
    c.fail("model_type", "is missing and architectures ", detail::list_text(c.string_list("architectures")),
           " names no supported model (Qwen2ForCausalLM, POINTSV15ChatModel)");
  }
  if (type == "qwen2") return detail::parse_qwen2_object(c);
  if (type == "pointsv1.5_chat") return detail::parse_points15_object(c, points_llm_flavour::auto_detect);
  c.fail("model_type", detail::quote_name(type),
         " is not supported; tessera reads 'qwen2' (Qwen2ForCausalLM) and 'pointsv1.5_chat' (POINTSV15ChatModel)");
}

/// The read_* functions read `path` (a config.json, or a directory holding one; at most
/// detail::max_config_bytes) and parse it as the matching parse_* function, naming the file in
/// every error.
[[nodiscard]] inline qwen2_config read_qwen2_config(std::filesystem::path const& path) {
  auto const [text, file] = detail::read_config_text(path);
  return parse_qwen2_config(text, file);
}
[[nodiscard]] inline qwen2_vl_vision_config read_qwen2_vl_vision_config(std::filesystem::path const& path) {
  auto const [text, file] = detail::read_config_text(path);
  return parse_qwen2_vl_vision_config(text, file);
}
[[nodiscard]] inline points15_config read_points15_config(std::filesystem::path const& path,
                                                          points_llm_flavour flavour = points_llm_flavour::auto_detect) {
  auto const [text, file] = detail::read_config_text(path);
  return parse_points15_config(text, file, flavour);
}
[[nodiscard]] inline model_config read_model_config(std::filesystem::path const& path) {
  auto const [text, file] = detail::read_config_text(path);
  return parse_model_config(text, file);
}

/// The normalized decoder of any model_config.
[[nodiscard]] inline decoder_config const& decoder_of(model_config const& m) noexcept {
  if (auto const* q = std::get_if<qwen2_config>(&m)) return q->decoder;
  return std::get<points15_config>(m).decoder;
}

}  // namespace tessera::io
