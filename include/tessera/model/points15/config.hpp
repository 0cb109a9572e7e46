// SPDX-License-Identifier: Apache-2.0
// config.json of POINTS1.5 (model_type "pointsv1.5_chat", POINTSV15ChatModel): a CustomLlama or
// Qwen2 llm_config, a Qwen2-VL vision_config and the vision_projector PatchMerger; and
// model_config, the config.json of any model tessera reads.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/model/qwen2/config.hpp>
#include <tessera/model/qwen2_vl/config.hpp>
#include <tessera/model/qwen2_vl/preprocessor_config.hpp>
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
  lm::decoder_config decoder;
};

/// POINTS1.5 (model_type "pointsv1.5_chat", POINTSV15ChatModel): LLM + ViT + projector.
struct points15_config {
  std::string source;
  /// The llm_config as its own class resolves it: CustomLlamaConfig (the Dec-2024 release) or
  /// Qwen2Config (the 2025 Qwen2-based variant, spec section 4.1).
  std::variant<custom_llama_config, qwen2_config> llm;
  lm::decoder_config decoder;  ///< the normalized LLM
  qwen2_vl_vision_config vision;
  patch_merger_config projector;  ///< vision_projector: PatchMerger(llm hidden_size, context_dim = embed_dim)
};

/// POINTS1.5's patch geometry: tessera's Qwen2-VL processor makes 14 x 14 x 2-frame RGB patches in
/// 2 x 2 windows, so the vision tower and the preprocessor must both have exactly that.
inline void check_points15_patch_geometry(qwen2_vl_vision_config const& v, qwen2vl_preprocessor_config const& p) {
  TESSERA_CHECK(v.patch_size == 14 && v.temporal_patch_size == 2 && v.spatial_merge_size == 2 && v.in_channels == 3,
                "model::points15: ", v.source, ": vision_config has patch_size ", v.patch_size, ", temporal_patch_size ",
                v.temporal_patch_size, ", spatial_merge_size ", v.spatial_merge_size, ", in_channels ", v.in_channels,
                "; tessera's Qwen2-VL processor makes 14 x 14 x 2-frame RGB patches in 2 x 2 windows");
  TESSERA_CHECK(p.patch_size == v.patch_size && p.merge_size == v.spatial_merge_size &&
                    p.temporal_patch_size == v.temporal_patch_size,
                "model::points15: the preprocessor's patch_size ", p.patch_size, " / merge_size ", p.merge_size,
                " / temporal_patch_size ", p.temporal_patch_size, " differ from vision_config's ", v.patch_size, " / ",
                v.spatial_merge_size, " / ", v.temporal_patch_size);
}

/// Which class an llm_config follows. `auto_detect` looks at llm_config.model_type, then its
/// architectures / auto_map, then at field names unique to one class.
enum class points_llm_flavour { auto_detect, custom_llama, qwen2 };

/// A config.json of any model tessera reads.
using model_config = std::variant<qwen2_config, points15_config>;


namespace detail {

/// CustomLlamaConfig fields of POINTS1.5's llm_config object `c`.
[[nodiscard]] inline custom_llama_config parse_custom_llama_object(io::config_object const& c) {
  using L = io::config_limits;
  custom_llama_config l;
  l.source = c.source();
  io::check_model_type(c, "custom_llama", "a CustomLlama decoder (POINTS1.5 llm_config)");
  io::check_architectures(c, "CustomLlamaForCausalLM");
  l.vocab_size = c.integer("vocab_size", l.vocab_size, 1, L::max_vocab);
  l.hidden_size = c.integer("hidden_size", l.hidden_size, 1, L::max_d_model);
  l.num_layers = c.integer("num_layers", l.num_layers, 1, L::max_layers);
  l.num_attention_heads = c.integer("num_attention_heads", l.num_attention_heads, 1, L::max_heads);
  l.num_kv_heads = c.integer("num_kv_heads", l.num_kv_heads, 1, L::max_heads);
  l.ffn_hidden_size = c.integer("ffn_hidden_size", l.ffn_hidden_size, 1, L::max_d_ff);
  l.hidden_act = c.string("hidden_act", l.hidden_act);
  if (l.hidden_act != "swiglu")
    c.fail("hidden_act", io::detail::quote_name(l.hidden_act),
           " is not supported: tessera's decoder implements CustomLlama's gated 'swiglu' MLP only");
  l.rotary_pct = c.number("rotary_pct", l.rotary_pct, 0.0, 1.0, true);
  l.rotary_emb_base = c.number("rotary_emb_base", l.rotary_emb_base, 1.0, L::max_rope_theta, true);
  l.rotary_compress = c.number("rotary_compress", l.rotary_compress, 0.0, 1e6, true);
  l.max_position_embeddings = c.integer("max_position_embeddings", l.max_position_embeddings, 1, L::max_positions);
  l.layernorm_epsilon = c.number("layernorm_epsilon", l.layernorm_epsilon, 0.0, 1.0, true);
  // CustomLlamaConfig: a non-null rms_norm decides, otherwise norm_type does.
  if (nlohmann::json const* rms = c.find_non_null("rms_norm")) {
    if (!rms->is_boolean()) c.fail("rms_norm", "must be true, false or null, got ", io::detail::describe(*rms));
    l.norm_type = rms->get<bool>() ? "rms_norm" : "layer_norm";
  } else {
    l.norm_type = c.string("norm_type", l.norm_type);
    if (l.norm_type != "rms_norm" && l.norm_type != "layer_norm")
      c.fail("norm_type", io::detail::quote_name(l.norm_type), " is not a norm CustomLlama knows ('rms_norm', 'layer_norm')");
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
  l.torch_dtype = io::torch_dtype_field(c);

  io::check_divides(c, "num_attention_heads", l.num_attention_heads, "hidden_size", l.hidden_size,
                "CustomLlamaAttention uses head_size = hidden_size / num_attention_heads");
  index_t const head_dim = l.hidden_size / l.num_attention_heads;
  if (l.num_kv_heads >= l.num_attention_heads)
    c.fail("num_kv_heads", l.num_kv_heads, " is not below num_attention_heads ", l.num_attention_heads,
           ": CustomLlama then stores a fused per-head query_key_value tensor, a layout tessera does not map "
           "(POINTS1.5 uses grouped-query attention)");
  io::check_divides(c, "num_kv_heads", l.num_kv_heads, "num_attention_heads", l.num_attention_heads,
                "each KV head serves a whole group of query heads");
  // CustomLlamaAttention: rotary_ndims = int(head_size * rotary_pct) (truncation, in float64).
  auto const rotary_dim = static_cast<index_t>(static_cast<double>(head_dim) * l.rotary_pct);
  if (rotary_dim < 2 || rotary_dim % 2 != 0)
    c.fail("rotary_pct", l.rotary_pct, " gives ", rotary_dim, " rotary dimensions of head_dim ", head_dim,
           "; RoPE needs an even number, at least 2");

  lm::decoder_config& d = l.decoder;
  d.flavour = lm::decoder_flavour::custom_llama;
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
  d.norm = l.norm_type == "rms_norm" ? nn::norm_kind::rms_norm : nn::norm_kind::layer_norm;
  d.norm_eps = l.layernorm_epsilon;
  d.activation = nn::activation_kind::silu;  // swiglu: x1 * silu(x2)
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


/// Which class an llm_config follows (see points_llm_flavour).
[[nodiscard]] inline points_llm_flavour detect_llm_flavour(io::config_object const& llm) {
  if (nlohmann::json const* mt = llm.find_non_null("model_type")) {
    if (!mt->is_string()) llm.fail("model_type", "must be a string, got ", io::detail::describe(*mt));
    std::string const& s = mt->get_ref<std::string const&>();
    if (s == "custom_llama") return points_llm_flavour::custom_llama;
    if (s == "qwen2") return points_llm_flavour::qwen2;
    llm.fail("model_type", io::detail::describe(*mt), " is not supported; POINTS1.5's llm_config is 'custom_llama' "
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
  TESSERA_FAIL("config ", io::quote_tail(llm.source()), ": field ", io::detail::quote_name(field),
               " cannot be identified as a CustomLlamaConfig or a Qwen2Config (no model_type, architectures or "
               "auto_map, and ", custom ? "field names of both" : "no field name unique to either",
               "); pass points_llm_flavour explicitly");
}

[[nodiscard]] inline points15_config parse_points15_object(io::config_object const& c, points_llm_flavour flavour) {
  points15_config p;
  p.source = c.source();
  io::check_model_type(c, "pointsv1.5_chat", "POINTS1.5 (POINTSV15ChatModel)");
  io::check_architectures(c, "POINTSV15ChatModel");
  io::config_object const llm = c.object("llm_config");
  io::config_object const vis = c.object("vision_config");
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
  // The dtype the checkpoint was saved in: save_pretrained writes it at the top level and often
  // leaves the nested llm_config's null.
  if (!p.decoder.torch_dtype) p.decoder.torch_dtype = io::torch_dtype_field(c);
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

/// Parses POINTS1.5's llm_config object on its own as a CustomLlamaConfig (same rules as inside
/// parse_points15_config). Also refuses hidden_act other than "swiglu", a norm_type other than
/// rms_norm / layer_norm, num_kv_heads >= num_attention_heads (the fused MHA layout), and a
/// rotary_pct giving an odd or zero number of rotary dimensions.
[[nodiscard]] inline custom_llama_config parse_custom_llama_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  return detail::parse_custom_llama_object(io::config_object(root, src, ""));
}


/// Parses a POINTS1.5 config.json (model_type "pointsv1.5_chat", POINTSV15ChatModel): llm_config
/// (CustomLlamaConfig or Qwen2Config, see points_llm_flavour) and vision_config
/// (Qwen2VLVisionConfig) are both required; the projector is derived from them. Errors name the
/// nested field ("llm_config.num_kv_heads").
[[nodiscard]] inline points15_config parse_points15_config(std::string_view json, std::string_view source,
                                                           points_llm_flavour flavour = points_llm_flavour::auto_detect) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  return detail::parse_points15_object(io::config_object(root, src, ""), flavour);
}


/// Parses a config.json of any supported model, chosen by model_type ("qwen2", "pointsv1.5_chat"),
/// or by architectures when model_type is absent. Refuses every other model by name.
[[nodiscard]] inline model_config parse_model_config(std::string_view json, std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  io::config_object const c(root, src, "");
  std::string type;
  if (nlohmann::json const* mt = c.find("model_type"); mt != nullptr) {
    if (!mt->is_string()) c.fail("model_type", "must be a string, got ", io::detail::describe(*mt));
    type = mt->get<std::string>();
  } else if (c.list_contains("architectures", "Qwen2ForCausalLM")) {
    type = "qwen2";
  } else if (c.list_contains("architectures", "POINTSV15ChatModel")) {
    type = "pointsv1.5_chat";
  } else {
    c.fail("model_type", "is missing and architectures ", io::list_text(c.string_list("architectures")),
           " names no supported model (Qwen2ForCausalLM, POINTSV15ChatModel)");
  }
  if (type == "qwen2") return detail::parse_qwen2_object(c);
  if (type == "pointsv1.5_chat") return detail::parse_points15_object(c, points_llm_flavour::auto_detect);
  c.fail("model_type", io::detail::quote_name(type),
         " is not supported; tessera reads 'qwen2' (Qwen2ForCausalLM) and 'pointsv1.5_chat' (POINTSV15ChatModel)");
}


/// The read_* functions read `path` (a config.json, or a directory holding one; at most
/// detail::max_config_bytes) and parse it as the matching parse_* function, naming the file in
/// every error.
[[nodiscard]] inline points15_config read_points15_config(std::filesystem::path const& path,
                                                          points_llm_flavour flavour = points_llm_flavour::auto_detect) {
  auto const [text, file] = io::read_config_text(path);
  return parse_points15_config(text, file, flavour);
}
[[nodiscard]] inline model_config read_model_config(std::filesystem::path const& path) {
  auto const [text, file] = io::read_config_text(path);
  return parse_model_config(text, file);
}

/// The normalized decoder of any model_config.
[[nodiscard]] inline lm::decoder_config const& decoder_of(model_config const& m) noexcept {
  if (auto const* q = std::get_if<qwen2_config>(&m)) return q->decoder;
  return std::get<points15_config>(m).decoder;
}


}  // namespace tessera::model
