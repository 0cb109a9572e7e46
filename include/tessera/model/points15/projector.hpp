// SPDX-License-Identifier: Apache-2.0
// The projector of a POINTS1.5-style model as a policy of model::points15: how many LLM rows an
// image's ViT tokens become, how the projector's weights are bound from a checkpoint and how it
// runs. patch_merger is POINTS1.5's (Qwen2-VL PatchMerger, 4 ViT tokens per row); mlp is the
// LLaVA-style two-layer MLP (one row per ViT token), for variants that keep every token.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/projector/mlp_projector.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/model/qwen2_vl/checkpoint.hpp>
#include <tessera/pack/patchify.hpp>

#include <optional>
#include <span>
#include <string>

namespace tessera::model::projector {

/// POINTS1.5's vision_projector: a Qwen2-VL PatchMerger over 2 x 2 windows of ViT tokens (spec 3).
struct patch_merger {
  using config_type = patch_merger_config;
  template <weight_type T>
  using weights_type = patch_merger_weights<T>;
  static constexpr char const* name = "patch_merger";

  /// ViT tokens per LLM row.
  static constexpr index_t tokens_per_row = 4;
  [[nodiscard]] static index_t rows_of(patch_grid const& g) noexcept { return g.n_patches() / tokens_per_row; }

  /// The projector's shapes, from the config (PatchMerger(llm hidden, context_dim = ViT width)).
  [[nodiscard]] static config_type configure(points15_config const& c, io::checkpoint const&) { return c.projector; }
  /// The naming of the checkpoint's merger (vision_projector.* or visual.merger.*), if any.
  [[nodiscard]] static std::optional<projector_naming> detect(io::checkpoint const& ckpt) {
    return detect_projector_naming(ckpt);
  }
  template <weight_type T>
  [[nodiscard]] static weights_type<T> bind(io::weight_binder& b, config_type const& c,
                                            std::optional<projector_naming> naming) {
    return bind_patch_merger<T>(b, c, naming);
  }
  template <weight_type T>
  static void check(config_type const& c, weights_type<T> const& w) {
    check_patch_merger(c, w);
  }
  [[nodiscard]] static index_t workspace(config_type const& c, index_t n_tokens) noexcept {
    return patch_merger_workspace(c, n_tokens);
  }
  /// x: [n_tokens, context_dim], the ViT tokens of `grids` (merge-window-major); out: [rows, out_dim].
  template <backend::tag Backend, weight_type T>
  static void run(tensor_view<float const, 2> x, std::span<patch_grid const> grids, config_type const& c,
                  weights_type<T> const& w, tensor_view<float, 2> out, exec_ctx<Backend>& ctx) {
    model::patch_merger<Backend>(x, grids, pack::token_order::merge_window_major, c, w, out, ctx);
  }
};

/// A LLaVA-style projector: Linear -> GELU (erf) -> Linear over every ViT token, stored as
/// `vision_projector.0.*` and `vision_projector.2.*` (an nn.Sequential), both with bias. The hidden
/// width comes from the stored tensor.
struct mlp {
  using config_type = mlp_projector_config;
  template <weight_type T>
  using weights_type = mlp_projector_weights<T>;
  static constexpr char const* name = "mlp";
  static constexpr index_t tokens_per_row = 1;
  [[nodiscard]] static index_t rows_of(patch_grid const& g) noexcept { return g.n_patches(); }

  [[nodiscard]] static config_type configure(points15_config const& c, io::checkpoint const& ckpt) {
    std::string const key = "vision_projector.0.weight";
    TESSERA_CHECK(ckpt.contains(key), "model::projector::mlp: the checkpoint holds no ", key,
                  " (an MLP projector stores vision_projector.0.* and vision_projector.2.*)");
    io::tensor_info const& t = ckpt.info(key);
    TESSERA_CHECK(t.shape.size() == 2 && t.shape[1] == c.vision.embed_dim && t.shape[0] >= 1 &&
                      t.shape[0] <= io::config_limits::max_d_ff,
                  "model::projector::mlp: ", key, " must be [d_hidden, ", c.vision.embed_dim,
                  "] (the ViT width), it has ", t.shape.size(), " dimensions",
                  t.shape.size() == 2 ? " [" + std::to_string(t.shape[0]) + ", " + std::to_string(t.shape[1]) + "]" : "");
    return {c.vision.embed_dim, t.shape[0], c.decoder.d_model, nn::activation_kind::gelu_erf};
  }
  /// Only POINTS' prefix exists for this projector.
  [[nodiscard]] static std::optional<projector_naming> detect(io::checkpoint const& ckpt) {
    if (ckpt.contains("vision_projector.0.weight")) return projector_naming::points;
    return std::nullopt;
  }
  template <weight_type T>
  [[nodiscard]] static weights_type<T> bind(io::weight_binder& b, config_type const& c,
                                            std::optional<projector_naming> /*only one naming*/) {
    io::part_binder<T> pb(b);
    weights_type<T> w;
    w.fc1 = pb.linear({"vision_projector.0.weight", {c.d_hidden, c.d_in}, "MLP projector fc1 [d_hidden, d_in]"},
                      io::tensor_spec{"vision_projector.0.bias", {c.d_hidden}, "MLP projector fc1 bias"});
    w.fc2 = pb.linear({"vision_projector.2.weight", {c.d_out, c.d_hidden}, "MLP projector fc2 [d_out, d_hidden]"},
                      io::tensor_spec{"vision_projector.2.bias", {c.d_out}, "MLP projector fc2 bias"});
    w.keep_alive = pb.keep_alive();
    return w;
  }
  template <weight_type T>
  static void check(config_type const& c, weights_type<T> const& w) {
    check_mlp_projector(c, w);
  }
  [[nodiscard]] static index_t workspace(config_type const& c, index_t n_tokens) noexcept {
    return n_tokens * c.d_hidden;
  }
  template <backend::tag Backend, weight_type T>
  static void run(tensor_view<float const, 2> x, std::span<patch_grid const>, config_type const& c,
                  weights_type<T> const& w, tensor_view<float, 2> out, exec_ctx<Backend>& ctx) {
    model::mlp_projector<Backend>(x, c, w, out, ctx);
  }
};

}  // namespace tessera::model::projector
