// SPDX-License-Identifier: Apache-2.0
// The checkpoint names of the Qwen2-VL vision tower and of a PatchMerger, and their binders:
// Qwen2-VL's `visual.*` (and its own `visual.merger.*`) or POINTS1.5's `vision_encoder.*` and
// `vision_projector.*` (spec section 2.2). Binding gives vision::vision_encoder_weights and
// model::patch_merger_weights: zero-copy views into the mapped checkpoint, or converted copies the
// weights keep alive.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/model/qwen2_vl/config.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/vision/vision_encoder.hpp>
#include <tessera/vision/vit_block.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::model {

/// Tensor names of a Qwen2-VL ViT: Qwen2-VL's `visual.*` or POINTS' `vision_encoder.*`.
enum class vision_naming { qwen2_vl, points };
/// Tensor names of a PatchMerger: the tower's own `visual.merger.*` or POINTS' `vision_projector.*`.
enum class projector_naming { qwen2_vl_merger, points };

[[nodiscard]] constexpr std::string_view name_of(vision_naming n) noexcept {
  return n == vision_naming::qwen2_vl ? "qwen2_vl" : "points";
}
[[nodiscard]] constexpr std::string_view name_of(projector_naming n) noexcept {
  return n == projector_naming::qwen2_vl_merger ? "qwen2_vl_merger" : "points";
}


namespace detail {

[[nodiscard]] inline std::string vision_prefix(vision_naming n) {
  return n == vision_naming::qwen2_vl ? "visual." : "vision_encoder.";
}
[[nodiscard]] inline std::string projector_prefix(projector_naming n) {
  return n == projector_naming::qwen2_vl_merger ? "visual.merger." : "vision_projector.";
}


/// Refuses a hand-made vision config the specs cannot describe.
inline void check_vision_config(qwen2_vl_vision_config const& v) {
  TESSERA_CHECK(v.depth > 0 && v.embed_dim > 0 && v.num_heads > 0 && v.mlp_dim > 0 && v.in_channels > 0 &&
                    v.temporal_patch_size > 0 && v.patch_size > 0 && v.hidden_size > 0 && v.merge_dim > 0,
                "model::bind_vision_encoder: qwen2_vl_vision_config has a non-positive size");
  TESSERA_CHECK(v.patch_dim == v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size,
                "model::bind_vision_encoder: qwen2_vl_vision_config patch_dim ", v.patch_dim, " is not in_channels * "
                "temporal_patch_size * patch_size^2");
  TESSERA_CHECK(v.depth <= io::config_limits::max_layers && v.embed_dim <= io::config_limits::max_d_model &&
                    v.mlp_dim <= io::config_limits::max_d_ff,
                "model::bind_vision_encoder: qwen2_vl_vision_config sizes exceed io::config_limits");
}

struct vision_block_specs {
  io::tensor_spec norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};
struct vision_specs {
  io::tensor_spec patch_embed;
  std::vector<vision_block_specs> blocks;
  std::vector<io::unused_spec> unused;
};

[[nodiscard]] inline vision_specs make_vision_specs(qwen2_vl_vision_config const& v, vision_naming n) {
  check_vision_config(v);
  std::string const p = vision_prefix(n);
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const e = v.embed_dim, m = v.mlp_dim;
  vision_specs s;
  s.patch_embed = {p + "patch_embed.proj.weight",
                   {e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size},
                   "patch embedding Conv3d [embed_dim, in_channels, temporal_patch_size, patch_size, patch_size]" + tag};
  for (index_t i = 0; i < v.depth; ++i) {
    std::string const bp = p + "blocks." + std::to_string(i) + ".";
    std::string const bi = "ViT block " + std::to_string(i) + " ";
    s.blocks.push_back({{bp + "norm1.weight", {e}, bi + "norm1 weight [embed_dim]"},
                        {bp + "norm1.bias", {e}, bi + "norm1 bias [embed_dim]"},
                        {bp + "attn.qkv.weight", {3 * e, e}, bi + "fused QKV [3*embed_dim, embed_dim]" + tag},
                        {bp + "attn.qkv.bias", {3 * e}, bi + "QKV bias [3*embed_dim]"},
                        {bp + "attn.proj.weight", {e, e}, bi + "attention output [embed_dim, embed_dim]"},
                        {bp + "attn.proj.bias", {e}, bi + "attention output bias [embed_dim]"},
                        {bp + "norm2.weight", {e}, bi + "norm2 weight [embed_dim]"},
                        {bp + "norm2.bias", {e}, bi + "norm2 bias [embed_dim]"},
                        {bp + "mlp.fc1.weight", {m, e}, bi + "MLP fc1 [mlp_dim, embed_dim]"},
                        {bp + "mlp.fc1.bias", {m}, bi + "MLP fc1 bias [mlp_dim]"},
                        {bp + "mlp.fc2.weight", {e, m}, bi + "MLP fc2 [embed_dim, mlp_dim]"},
                        {bp + "mlp.fc2.bias", {e}, bi + "MLP fc2 bias [embed_dim]"}});
  }
  s.unused.push_back({p + "rotary_pos_emb.inv_freq", std::nullopt,
                      "vision RoPE inv_freq buffer: non-persistent in the reference, recomputed"});
  if (n == vision_naming::points) {
    // Qwen2VisionTransformerPretrainedModel builds its own merger, which POINTS1.5 never applies
    // (it uses vision_projector; spec section 7.16). The reference loads these tensors (so their
    // shapes must fit) and ignores them.
    std::string const why = "the ViT's own PatchMerger, built but never applied by POINTS1.5 (spec 7.16)";
    index_t const h = v.merge_dim;
    std::string const mp = p + "merger.";
    s.unused.push_back({mp + "ln_q.weight", std::vector<index_t>{e}, why});
    s.unused.push_back({mp + "ln_q.bias", std::vector<index_t>{e}, why});
    s.unused.push_back({mp + "mlp.0.weight", std::vector<index_t>{h, h}, why});
    s.unused.push_back({mp + "mlp.0.bias", std::vector<index_t>{h}, why});
    s.unused.push_back({mp + "mlp.2.weight", std::vector<index_t>{v.hidden_size, h}, why});
    s.unused.push_back({mp + "mlp.2.bias", std::vector<index_t>{v.hidden_size}, why});
  }
  return s;
}

struct projector_specs {
  io::tensor_spec ln_w, ln_b, fc1_w, fc1_b, fc2_w, fc2_b;
};
[[nodiscard]] inline projector_specs make_projector_specs(patch_merger_config const& c, projector_naming n) {
  TESSERA_CHECK(c.context_dim > 0 && c.merge_size > 0 && c.out_dim > 0 &&
                    c.hidden_dim == c.context_dim * c.merge_size * c.merge_size &&
                    c.hidden_dim <= io::config_limits::max_d_ff && c.out_dim <= io::config_limits::max_d_model,
                "model::bind_patch_merger: patch_merger_config (context_dim ", c.context_dim, ", merge_size ", c.merge_size,
                ", hidden_dim ", c.hidden_dim, ", out_dim ", c.out_dim,
                ") is not consistent (hidden_dim = context_dim * merge_size^2) or exceeds io::config_limits");
  std::string const p = projector_prefix(n);
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const h = c.hidden_dim;
  return {{p + "ln_q.weight", {c.context_dim}, "merger ln_q weight [context_dim]" + tag},
          {p + "ln_q.bias", {c.context_dim}, "merger ln_q bias [context_dim]" + tag},
          {p + "mlp.0.weight", {h, h}, "merger mlp.0 [hidden_dim, hidden_dim]" + tag},
          {p + "mlp.0.bias", {h}, "merger mlp.0 bias [hidden_dim]" + tag},
          {p + "mlp.2.weight", {c.out_dim, h}, "merger mlp.2 [out_dim, hidden_dim]" + tag},
          {p + "mlp.2.bias", {c.out_dim}, "merger mlp.2 bias [out_dim]" + tag}};
}


[[nodiscard]] inline std::string vision_key(vision_naming n) { return vision_prefix(n) + "patch_embed.proj.weight"; }
[[nodiscard]] inline std::string projector_key(projector_naming n) { return projector_prefix(n) + "ln_q.weight"; }

}  // namespace detail

/// The ViT naming of `ckpt` (visual.patch_embed.proj.weight / vision_encoder.patch_embed.proj.weight).
[[nodiscard]] inline std::optional<vision_naming> detect_vision_naming(io::checkpoint const& ckpt) {
  return io::detect_naming(ckpt, {vision_naming::qwen2_vl, vision_naming::points}, &detail::vision_key,
                            "ViT patch embedding");
}
/// The PatchMerger naming of `ckpt` (visual.merger.ln_q.weight / vision_projector.ln_q.weight).
[[nodiscard]] inline std::optional<projector_naming> detect_projector_naming(io::checkpoint const& ckpt) {
  return io::detect_naming(ckpt, {projector_naming::qwen2_vl_merger, projector_naming::points},
                            &detail::projector_key, "PatchMerger");
}


/// Every tensor of the ViT (patch embedding and blocks) a checkpoint must hold.
[[nodiscard]] inline std::vector<io::tensor_spec> vision_encoder_tensor_specs(qwen2_vl_vision_config const& cfg,
                                                                          vision_naming naming) {
  detail::vision_specs const s = detail::make_vision_specs(cfg, naming);
  std::vector<io::tensor_spec> out{s.patch_embed};
  for (detail::vision_block_specs const& b : s.blocks)
    for (auto const* t : {&b.norm1_w, &b.norm1_b, &b.qkv_w, &b.qkv_b, &b.proj_w, &b.proj_b, &b.norm2_w, &b.norm2_b,
                          &b.fc1_w, &b.fc1_b, &b.fc2_w, &b.fc2_b})
      out.push_back(*t);
  return out;
}
/// The ViT tensors a checkpoint may hold that no block reads (see bind_vision_encoder).
[[nodiscard]] inline std::vector<io::unused_spec> vision_encoder_unused_specs(qwen2_vl_vision_config const& cfg,
                                                                          vision_naming naming) {
  return detail::make_vision_specs(cfg, naming).unused;
}
/// Every tensor of a PatchMerger a checkpoint must hold.
[[nodiscard]] inline std::vector<io::tensor_spec> patch_merger_tensor_specs(patch_merger_config const& cfg,
                                                                        projector_naming naming) {
  detail::projector_specs const s = detail::make_projector_specs(cfg, naming);
  return {s.ln_w, s.ln_b, s.fc1_w, s.fc1_b, s.fc2_w, s.fc2_b};
}


/// Binds the Qwen2-VL ViT (patch embedding + blocks) as a vision::vision_encoder's weights (see
/// make_qwen2vl_encoder). `naming` nothing = detect_vision_naming.
/// Registers the rotary inv_freq buffer and, for POINTS names, the unused vision_encoder.merger.*
/// as known-unused.
template <weight_type T>
[[nodiscard]] vision::vision_encoder_weights<T> bind_vision_encoder(io::weight_binder& b,
                                                                    qwen2_vl_vision_config const& cfg,
                                                                    std::optional<vision_naming> naming = std::nullopt) {
  if (!naming) naming = detect_vision_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no Qwen2-VL ViT (looked for visual.patch_embed.proj.weight, "
                            "vision_encoder.patch_embed.proj.weight)");
  detail::vision_specs const s = detail::make_vision_specs(cfg, *naming);
  io::part_binder<T> pb(b);
  vision::vision_encoder_weights<T> w;
  // Conv3d weight [E, C, T, P, P] is row-major, so its rows are the flattened (c, t, py, px) kernels.
  w.patch_embed = {tensor_view<T const, 2>(pb.ptr(s.patch_embed), {cfg.embed_dim, cfg.patch_dim}), std::nullopt};  // Conv3d(bias=False)
  w.blocks.reserve(s.blocks.size());
  for (detail::vision_block_specs const& k : s.blocks) {
    vision::vit_block_weights<T> bw;  // Qwen2VLVisionBlock: fused qkv
    bw.norm1 = {pb.vec(k.norm1_w), pb.vec(k.norm1_b)};
    bw.qkv = nn::linear_weights<T>{pb.mat(k.qkv_w), pb.vec(k.qkv_b)};
    bw.proj = {pb.mat(k.proj_w), pb.vec(k.proj_b)};
    bw.norm2 = {pb.vec(k.norm2_w), pb.vec(k.norm2_b)};
    bw.fc1 = {pb.mat(k.fc1_w), pb.vec(k.fc1_b)};
    bw.fc2 = {pb.mat(k.fc2_w), pb.vec(k.fc2_b)};
    w.blocks.push_back(bw);
  }
  for (io::unused_spec const& u : s.unused) b.allow_unused(u);
  w.keep_alive = pb.keep_alive();
  return w;
}

/// Binds a PatchMerger: POINTS' vision_projector, or the Qwen2-VL tower's visual.merger (config
/// from vision_merger_config). `naming` nothing = detect_projector_naming.
template <weight_type T>
[[nodiscard]] patch_merger_weights<T> bind_patch_merger(io::weight_binder& b, patch_merger_config const& cfg,
                                                        std::optional<projector_naming> naming = std::nullopt) {
  if (!naming) naming = detect_projector_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no PatchMerger (looked for vision_projector.ln_q.weight, "
                            "visual.merger.ln_q.weight)");
  detail::projector_specs const s = detail::make_projector_specs(cfg, *naming);
  io::part_binder<T> pb(b);
  patch_merger_weights<T> w;
  w.ln_q = {pb.vec(s.ln_w), pb.vec(s.ln_b)};
  w.fc1 = {pb.mat(s.fc1_w), pb.vec(s.fc1_b)};
  w.fc2 = {pb.mat(s.fc2_w), pb.vec(s.fc2_b)};
  w.keep_alive = pb.keep_alive();
  return w;
}


}  // namespace tessera::model
