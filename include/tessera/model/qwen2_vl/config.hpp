// SPDX-License-Identifier: Apache-2.0
// config.json of the Qwen2-VL vision tower (transformers 4.46.3 Qwen2VLVisionConfig; POINTS1.5's
// vision_config) and of a PatchMerger (the tower's own merger, or POINTS1.5's vision_projector).
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/nn/activation.hpp>

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
  nn::activation_kind activation = nn::activation_kind::quick_gelu;
  index_t head_dim = 80;     ///< embed_dim / num_heads
  index_t mlp_dim = 5120;    ///< int(embed_dim * mlp_ratio), as Qwen2VLVisionBlock computes it
  index_t patch_dim = 1176;  ///< in_channels * temporal_patch_size * patch_size^2 (Conv3d as a linear)
  index_t merge_dim = 5120;  ///< embed_dim * spatial_merge_size^2 (PatchMerger's hidden width)
  /// Constants of the reference modules, not config fields: LayerNorm eps of Qwen2VLVisionBlock
  /// and PatchMerger, and VisionRotaryEmbedding's theta.
  static constexpr double norm_eps = 1e-6;
  static constexpr double rope_theta = 10000.0;
};


/// The Qwen2-VL tower's own merger (`visual.merger`): PatchMerger(dim = hidden_size,
/// context_dim = embed_dim, spatial_merge_size).
[[nodiscard]] inline patch_merger_config vision_merger_config(qwen2_vl_vision_config const& v) noexcept {
  return {v.embed_dim, v.spatial_merge_size, v.merge_dim, v.hidden_size};
}


namespace detail {

/// The activation a ViT hidden_act names (transformers ACT2FN keys tessera implements).
[[nodiscard]] inline nn::activation_kind vision_activation(io::config_object const& c, std::string const& name) {
  if (name == "quick_gelu") return nn::activation_kind::quick_gelu;
  if (name == "gelu") return nn::activation_kind::gelu_erf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return nn::activation_kind::gelu_tanh;
  if (name == "silu" || name == "swish") return nn::activation_kind::silu;
  c.fail("hidden_act", io::detail::quote_name(name),
         " is not supported (tessera implements quick_gelu, gelu, gelu_pytorch_tanh / gelu_new, silu)");
}

/// Qwen2VLVisionConfig fields of object `c`.
[[nodiscard]] inline qwen2_vl_vision_config parse_vision_object(io::config_object const& c) {
  using L = io::config_limits;
  qwen2_vl_vision_config v;
  v.source = c.source();
  io::check_model_type(c, "qwen2_vl", "a Qwen2-VL vision tower (Qwen2VLVisionConfig)");
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

  io::check_divides(c, "num_heads", v.num_heads, "embed_dim", v.embed_dim,
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


}  // namespace detail

/// Parses a Qwen2VLVisionConfig: either the vision_config object itself, or a whole Qwen2-VL
/// config.json (model_type "qwen2_vl" with a "vision_config" object), whose vision_config is
/// read, as Qwen2VLVisionConfig.from_pretrained does. Absent fields take the class defaults.
/// Throws tessera::error naming the field for wrong types, sizes outside config_limits,
/// embed_dim not a multiple of num_heads, head_dim not a multiple of 4, an unsupported
/// hidden_act, or another model_type.
[[nodiscard]] inline qwen2_vl_vision_config parse_qwen2_vl_vision_config(std::string_view json,
                                                                         std::string_view source) {
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  io::config_object const c(root, src, "");
  if (nlohmann::json const* vc = c.find("vision_config"); vc != nullptr) {
    io::check_model_type(c, "qwen2_vl", "a Qwen2-VL config with a vision_config");
    return detail::parse_vision_object(c.object("vision_config"));
  }
  return detail::parse_vision_object(c);
}


/// The read_* functions read `path` (a config.json, or a directory holding one; at most
/// detail::max_config_bytes) and parse it as the matching parse_* function, naming the file in
/// every error.
[[nodiscard]] inline qwen2_vl_vision_config read_qwen2_vl_vision_config(std::filesystem::path const& path) {
  auto const [text, file] = io::read_config_text(path);
  return parse_qwen2_vl_vision_config(text, file);
}

}  // namespace tessera::model
