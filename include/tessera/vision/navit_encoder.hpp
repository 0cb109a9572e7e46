// SPDX-License-Identifier: Apache-2.0
// A NaViT encoder and classifier (Dehghani et al. 2023, "Patch n' Pack") as vit-pytorch's
// na_vit.NaViT (1.26) computes it: patches (c, p1, p2) -> LayerNorm -> Linear -> LayerNorm,
// + factorized position embedding, depth x { LN, to_q / to_kv (no bias), per-head RMS qk-norm,
// attention (scale 1) within each image, to_out; LN, Linear, GELU, Linear }, final LN, attention
// pooling with one learned probe per image, then LayerNorm + Linear to class logits. All its
// LayerNorms have no bias. The position embedding is a policy: absolute (vit-pytorch) or
// fractional coordinates into the same learned tables, or sinusoids.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/config.hpp>
#include <tessera/io/detail/config_json.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_map.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/posemb/factorized.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/pool_policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace tessera::vision {
namespace policy {

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

}  // namespace policy

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
  nlohmann::json const root = io::detail::parse_config_root(json, src);
  io::detail::config_object const c(root, src, "");
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
  auto const [text, file] = io::detail::read_config_text(path);
  return parse_navit_config(text, file);
}

/// A NaViT classifier's weights: the encoder, the pooling and the head.
template <weight_type T>
struct navit_weights {
  vision_encoder_weights<T> encoder;
  tensor_view<T const, 2> pos_embed_height;  ///< [image_height / patch, dim]
  tensor_view<T const, 2> pos_embed_width;   ///< [image_width / patch, dim]
  pool::navit_pool_weights<T> pool;
  io::norm_weights<T> head_norm;             ///< mlp_head.0 (LayerNorm without bias)
  tensor_view<T const, 2> head;              ///< mlp_head.1 [num_classes, dim], no bias
  io::binding_report report;
  std::shared_ptr<io::converted_tensors<T> const> converted;
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
    return io::norm_weights<T>{vec(prefix + ".gamma", n, "LayerNorm gamma"), std::nullopt};
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
    vit_block_weights<T> bw;
    bw.norm1 = ln(a + "norm", c.dim);
    bw.q = io::linear_weights<T>{mat(a + "to_q.weight", inner, c.dim, "to_q"), std::nullopt};
    bw.kv = io::linear_weights<T>{mat(a + "to_kv.weight", 2 * inner, c.dim, "to_kv"), std::nullopt};
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
  w.converted = store;
  return w;
}

/// The NaViT encoder type: factorized learned position embedding, LayerNorm, GELU (erf),
/// vit-pytorch attention pooling.
template <backend::tag Backend, weight_type T>
using navit_encoder = vision_encoder<Backend, T, policy::factorized_learned<T>, policy::layer_norm, policy::gelu,
                                     policy::navit_attention_pooling<T>>;

/// vit-pytorch's NaViT classifier: encoder (with pooling) + LayerNorm + Linear head.
template <backend::tag Backend, weight_type T>
class navit_classifier {
 public:
  navit_classifier(navit_config config, navit_weights<T> weights)
      : config_(std::move(config)), weights_(std::move(weights)), encoder_(make_encoder(config_, weights_)) {}

  [[nodiscard]] navit_config const& config() const noexcept { return config_; }
  [[nodiscard]] navit_encoder<Backend, T> const& encoder() const noexcept { return encoder_; }

  /// patches [n_tokens, patch_dim] packed by `tokens`; writes the encoder tokens out [n_tokens,
  /// dim], pooled [n_images, dim] and logits [n_images, num_classes] (f32).
  /// Workspace: the encoder's, plus n_images * dim floats from ctx.scratch().
  void forward(tensor_view<float const, 2> patches, packed_tokens const& tokens, tensor_view<float, 2> out,
               tensor_view<float, 2> pooled, tensor_view<float, 2> logits, exec_ctx<Backend>& ctx,
               stage_observer const& observe = {}) const {
    TESSERA_CHECK(logits.extent(0) == tokens.n_images() && logits.extent(1) == config_.num_classes,
                  "vision::navit_classifier: logits must be [", tokens.n_images(), ", ", config_.num_classes,
                  "], got [", logits.extent(0), ", ", logits.extent(1), "]");
    encoder_.forward(patches, tokens, out, ctx, pooled, observe);
    index_t const n = pooled.extent(0);
    if (n == 0) return;
    auto frame = ctx.scratch().open();
    tensor_view<float, 2> const h(frame.template alloc<float>(static_cast<std::size_t>(n * config_.dim)),
                                  {n, config_.dim});  // [n_images, dim]
    policy::layer_norm{static_cast<float>(config_.layer_norm_eps)}(pooled, weights_.head_norm, h, ctx);
    nn::linear<Backend>(h, weights_.head, logits, ctx, nn::product_precision::f32);
  }

 private:
  static navit_encoder<Backend, T> make_encoder(navit_config const& c, navit_weights<T> const& w) {
    vision_encoder_config e;
    e.patch_dim = c.patch_dim();
    e.depth = c.depth;
    e.block = {.d_model = c.dim, .n_heads = c.heads, .head_dim = c.dim_head, .d_ff = c.mlp_dim, .attn_scale = 1.0f,
               .qk_norm_eps = 1e-12f};
    float const eps = static_cast<float>(c.layer_norm_eps);
    return navit_encoder<Backend, T>(
        e, w.encoder, policy::factorized_learned<T>{w.pos_embed_height, w.pos_embed_width, c.position_coords},
        policy::layer_norm{eps}, policy::gelu{nn::gelu_approx::erf},
        policy::navit_attention_pooling<T>{w.pool, pool::navit_pool_options{.n_heads = c.heads, .norm_eps = eps}});
  }

  navit_config config_;
  navit_weights<T> weights_;
  navit_encoder<Backend, T> encoder_;
};

/// The packing of a NaViT batch: images first-fit into rows of `row_len` tokens (padding at the
/// end of each row), row-major tokens.
[[nodiscard]] inline pack::pack_plan navit_plan(std::span<pack::patch_grid const> grids, index_t row_len,
                                                index_t max_images_per_row = 0,
                                                pack::keep_sets const* keep = nullptr) {
  return pack::pack_plan::make(grids,
                               pack::pack_options{.mode = pack::pack_mode::fixed_rows, .row_len = row_len,
                                                  .max_images_per_row = max_images_per_row},
                               keep, pack::token_order::row_major, 1);
}

}  // namespace tessera::vision
