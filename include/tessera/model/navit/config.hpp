// SPDX-License-Identifier: Apache-2.0
// The config.json of a vit-pytorch NaViT classifier (na_vit.NaViT's constructor arguments) and
// its reader.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/posemb/factorized.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace tessera::model {

/// The hyper-parameters of vit-pytorch's NaViT(...) constructor, read from a small config.json
/// ({"architecture": "vit_pytorch.NaViT", "image_size": [H, W] or S, "patch_size", "num_classes",
/// "dim", "depth", "heads", "dim_head", "mlp_dim", "channels", "layer_norm_eps"}), plus tessera's
/// choice of position coordinates ("position_coords": "absolute" as vit-pytorch, or "fractional").
struct navit_config {
  std::string source;
  index_t image_height = 0, image_width = 0;  ///< the largest image: sizes the position tables
  index_t patch_size = 0;
  index_t num_classes = 0;
  index_t dim = 0;
  index_t depth = 0;
  index_t heads = 0;
  index_t dim_head = 64;
  index_t mlp_dim = 0;
  index_t channels = 3;
  double layer_norm_eps = 1e-5;  ///< F.layer_norm's default, which vit-pytorch's LayerNorm uses
  posemb::coord_mode position_coords = posemb::coord_mode::absolute;
  [[nodiscard]] index_t patch_dim() const noexcept { return channels * patch_size * patch_size; }
  [[nodiscard]] index_t rows_y() const noexcept { return image_height / patch_size; }
  [[nodiscard]] index_t rows_x() const noexcept { return image_width / patch_size; }
  /// The token layout: one frame, row-major tokens, (c, p1, p2) features as vit-pytorch's
  /// rearrange('c (h p1) (w p2) -> (h w) (c p1 p2)').
  [[nodiscard]] pack::patch_layout layout() const noexcept {
    return {.patch = patch_size, .temporal = 1, .merge = 1, .tokens = pack::token_order::row_major,
            .features = pack::feature_order::c_t_py_px};
  }
};

/// Parses a NaViT config.json (see navit_config). Unknown architectures, missing or out-of-range
/// sizes and image sizes that are not multiples of patch_size are tessera::errors naming the field.
[[nodiscard]] inline navit_config parse_navit_config(std::string_view json, std::string_view source) {
  using L = io::config_limits;
  std::string const src(source);
  nlohmann::json const root = io::parse_config_root(json, src);
  io::config_object const c(root, src, "");
  navit_config n;
  n.source = src;
  std::string const arch = c.string("architecture", "");
  if (arch != "vit_pytorch.NaViT")
    c.fail("architecture", "is \"", arch, "\"; this reader knows \"vit_pytorch.NaViT\"");
  index_t const big = index_t{1} << 20;
  nlohmann::json const* size = c.find("image_size");
  if (size == nullptr) c.fail("image_size", "is missing");
  if (size->is_array()) {
    if (size->size() != 2) c.fail("image_size", "must be one integer or [height, width], got ", size->dump());
    n.image_height = c.integer_value("image_size", (*size)[0], 1, big);
    n.image_width = c.integer_value("image_size", (*size)[1], 1, big);
  } else {
    n.image_height = n.image_width = c.integer_value("image_size", *size, 1, big);
  }
  auto const required = [&](std::string_view key, index_t lo, index_t hi) {
    if (c.find(key) == nullptr) c.fail(key, "is missing");
    return c.integer(key, 0, lo, hi);
  };
  n.patch_size = required("patch_size", 1, L::max_patch);
  n.num_classes = required("num_classes", 1, L::max_vocab);
  n.dim = required("dim", 1, L::max_d_model);
  n.depth = required("depth", 1, L::max_layers);
  n.heads = required("heads", 1, L::max_heads);
  n.dim_head = c.integer("dim_head", n.dim_head, 1, L::max_d_model);
  n.mlp_dim = required("mlp_dim", 1, L::max_d_ff);
  n.channels = c.integer("channels", n.channels, 1, L::max_small_factor);
  n.layer_norm_eps = c.number("layer_norm_eps", n.layer_norm_eps, 0.0, 1.0, true);
  std::string const coords = c.string("position_coords", "absolute");
  if (coords == "absolute") n.position_coords = posemb::coord_mode::absolute;
  else if (coords == "fractional") n.position_coords = posemb::coord_mode::fractional;
  else c.fail("position_coords", "is \"", coords, "\"; expected \"absolute\" or \"fractional\"");
  if (n.image_height % n.patch_size != 0 || n.image_width % n.patch_size != 0)
    c.fail("image_size", n.image_height, " x ", n.image_width, " is not a multiple of patch_size ", n.patch_size);
  if (n.heads * n.dim_head > L::max_d_model) c.fail("heads", "heads * dim_head is too large");
  return n;
}

/// Reads a NaViT config.json (a file, or a directory holding config.json).
[[nodiscard]] inline navit_config read_navit_config(std::filesystem::path const& path) {
  auto const [text, file] = io::read_config_text(path);
  return parse_navit_config(text, file);
}

}  // namespace tessera::model
