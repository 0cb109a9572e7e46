// SPDX-License-Identifier: Apache-2.0
// vision::vision_encoder -- a ViT over packed image tokens built from policies:
//   patches --[norm]--> patch linear --[norm]--> + position embedding (policy)
//     --> depth x vit_block (norm, activation, position policies) --> [final norm]
//     --> tokens, and one pooled vector per image (pooling policy).
// Qwen2-VL / POINTS1.5 and vit-pytorch's NaViT are two instantiations (model/qwen2_vl/encoder.hpp,
// model/navit/classifier.hpp); a variant is a new combination of policies and optional weights.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/vision/policies.hpp>
#include <tessera/vision/vit_block.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace tessera::vision {

/// The tokens of a pack_plan as the encoder reads them (views into the plan, which must outlive
/// the result): its segments, padding flags, coordinates and the segment of each image.
[[nodiscard]] inline packed_tokens batch_of(pack::pack_plan const& plan) {
  packed_tokens t;
  t.seqs = &plan.seqs();
  t.padding = plan.padding_seqs();
  t.coords = plan.coords();
  t.frac_coords = plan.frac_coords();
  t.image_seq = plan.image_seqs();
  return t;
}

/// Shapes of an encoder.
struct vision_encoder_config {
  index_t patch_dim = 0;     ///< values per patch row (Qwen2-VL: 3 * 2 * 14 * 14 = 1176)
  index_t depth = 0;         ///< number of blocks
  vit_block_config block;    ///< d_model, heads, head_dim, d_ff, attention scale
};

/// Weights of an encoder; optional parts are applied when present.
template <weight_type T>
struct vision_encoder_weights {
  std::optional<nn::norm_weights<T>> patch_norm_in{};   ///< norm over the raw patch values (vit-pytorch NaViT)
  nn::linear_weights<T> patch_embed;                    ///< [d_model, patch_dim] (+ bias): Conv2d/3d as a linear
  std::optional<nn::norm_weights<T>> patch_norm_out{};  ///< norm after the patch linear (vit-pytorch NaViT)
  std::vector<vit_block_weights<T>> blocks{};           ///< depth blocks
  std::optional<nn::norm_weights<T>> final_norm{};      ///< vit-pytorch Transformer.norm; none in Qwen2-VL
  /// Owns memory the views point into when it is not the caller's (e.g. tensors a checkpoint binder
  /// converted to T); the encoder keeps it alive as long as it lives. May be empty.
  std::shared_ptr<void const> keep_alive{};
};

/// Called after each stage with (stage, tokens): stage -2 = patch embedding, -1 = after the
/// position embedding, 0 .. depth-1 = after block i, depth = after the final norm. For golden
/// tests and for taking a model apart; empty = no calls.
using stage_observer = std::function<void(index_t, tensor_view<float const, 2>)>;

/// A pooling policy: pooled [n_images, d_model] from the encoder's tokens.
template <class P, class Backend>
concept pooling_policy = requires { { P::pools } -> std::convertible_to<bool>; };

template <backend::tag Backend, weight_type T, class Pos, class Norm, class Act, class Pool>
  requires position_policy<Pos, Backend> && norm_policy<Norm, Backend, T> && activation_policy<Act, Backend> &&
           pooling_policy<Pool, Backend>
class vision_encoder {
 public:
  using weight_t = T;
  using position_type = Pos;
  using pooling_type = Pool;
  /// Checks every weight's shape against the config (tessera::error naming the tensor).
  vision_encoder(vision_encoder_config const& config, vision_encoder_weights<T> weights, Pos pos = {},
                 Norm norm = {}, Act act = {}, Pool pool = {})
      : config_(config), weights_(std::move(weights)), pos_(std::move(pos)), norm_(std::move(norm)),
        act_(std::move(act)), pool_(std::move(pool)) {
    vit_block_config const& b = config_.block;
    TESSERA_CHECK(config_.patch_dim > 0 && config_.depth >= 0, "vision::vision_encoder: patch_dim ",
                  config_.patch_dim, " and depth ", config_.depth, " must be positive");
    TESSERA_CHECK(static_cast<index_t>(weights_.blocks.size()) == config_.depth, "vision::vision_encoder: ",
                  config_.depth, " blocks configured, weights for ", weights_.blocks.size());
    nn::linear_weights<T> const& pe = weights_.patch_embed;
    TESSERA_CHECK(pe.weight.extent(0) == b.d_model && pe.weight.extent(1) == config_.patch_dim &&
                      (!pe.bias || pe.bias->extent(0) == b.d_model),
                  "vision::vision_encoder: patch_embed must be [", b.d_model, ", ", config_.patch_dim, "], got [",
                  pe.weight.extent(0), ", ", pe.weight.extent(1), "]");
    if (weights_.patch_norm_in) detail::check_norm("patch_norm_in", *weights_.patch_norm_in, config_.patch_dim);
    if (weights_.patch_norm_out) detail::check_norm("patch_norm_out", *weights_.patch_norm_out, b.d_model);
    if (weights_.final_norm) detail::check_norm("final_norm", *weights_.final_norm, b.d_model);
    for (vit_block_weights<T> const& bw : weights_.blocks) check_block_weights(b, bw);
  }

  [[nodiscard]] vision_encoder_config const& config() const noexcept { return config_; }
  [[nodiscard]] vision_encoder_weights<T> const& weights() const noexcept { return weights_; }
  [[nodiscard]] Pos const& position() const noexcept { return pos_; }
  [[nodiscard]] Pool const& pooling() const noexcept { return pool_; }
  [[nodiscard]] index_t d_model() const noexcept { return config_.block.d_model; }

  /// patches: [n_tokens, patch_dim] f32, the packed patch rows (pack::gather_patches), padding
  ///          rows included; last dimension contiguous.
  /// tokens:  the packing (batch_of(plan)); n_tokens must match.
  /// out:     [n_tokens, d_model] f32, the encoder's output tokens (padding rows: unspecified,
  ///          finite); last dimension contiguous; must not overlap patches.
  /// pooled:  [n_images, d_model] when the pooling policy pools (else pass an empty view).
  /// precision: products of the linear layers (nn::product_precision; bf16 weights default to
  ///          bf16 products, PyTorch's bf16 semantics).
  /// Workspace: vit_block_workspace floats per block call plus the blocks' own (ctx.scratch()).
  void forward(tensor_view<float const, 2> patches, packed_tokens const& tokens, tensor_view<float, 2> out,
               exec_ctx<Backend>& ctx, tensor_view<float, 2> pooled = {}, stage_observer const& observe = {},
               std::optional<nn::product_precision> precision = std::nullopt) const {
    index_t const n = patches.extent(0), d = d_model();
    nn::product_precision const prec = precision.value_or(nn::default_precision_v<T>);
    TESSERA_CHECK(tokens.seqs != nullptr && tokens.n_tokens() == n, "vision::vision_encoder: the packing covers ",
                  tokens.n_tokens(), " tokens, patches has ", n, " rows");
    TESSERA_CHECK(patches.extent(1) == config_.patch_dim, "vision::vision_encoder: patches must have ",
                  config_.patch_dim, " values per row, got ", patches.extent(1));
    TESSERA_CHECK(out.extent(0) == n && out.extent(1) == d, "vision::vision_encoder: out must be [", n, ", ", d,
                  "], got [", out.extent(0), ", ", out.extent(1), "]");
    TESSERA_CHECK(tokens.padding.empty() || static_cast<index_t>(tokens.padding.size()) == tokens.seqs->n_seqs(),
                  "vision::vision_encoder: padding flags must have one entry per segment (", tokens.seqs->n_seqs(),
                  "), got ", tokens.padding.size());
    if constexpr (Pool::pools) {
      TESSERA_CHECK(pooled.extent(0) == tokens.n_images() && pooled.extent(1) == d,
                    "vision::vision_encoder: pooled must be [", tokens.n_images(), ", ", d, "], got [",
                    pooled.extent(0), ", ", pooled.extent(1), "]");
    } else {
      TESSERA_CHECK(pooled.extent(0) == 0, "vision::vision_encoder: this encoder does not pool; pass no pooled view");
    }
    if (n == 0) return;
    auto const stage = [&](index_t s) {
      if (observe) observe(s, out);
    };

    // Patch embedding: [norm] -> linear -> [norm].
    {
      auto frame = ctx.scratch().open();
      tensor_view<float const, 2> src = patches;
      if (weights_.patch_norm_in) {
        tensor_view<float, 2> const normed(frame.template alloc<float>(static_cast<std::size_t>(n * config_.patch_dim)),
                                           {n, config_.patch_dim});  // [n_tokens, patch_dim]
        norm_(patches, *weights_.patch_norm_in, normed, ctx);
        src = normed;
      }
      nn::linear<Backend>(src, weights_.patch_embed, out, ctx, prec);
      if (weights_.patch_norm_out) norm_(out, *weights_.patch_norm_out, out, ctx);
    }
    stage(-2);
    pos_.embed(out, tokens, ctx);
    stage(-1);
    // The attention ranges, planned once for every block (attn::plan_ranges).
    auto frame = ctx.scratch().open();
    auto const n_seqs = static_cast<std::size_t>(tokens.seqs->n_seqs());
    std::span<attn::seq_range> const ranges(frame.template alloc<attn::seq_range>(n_seqs), n_seqs);  // [n_seqs]
    attn::range_plan const plan =
        attn::plan_ranges(*tokens.seqs, tokens.kv_seqs ? *tokens.kv_seqs : *tokens.seqs, tokens.padding, ranges);
    packed_tokens planned = tokens;
    planned.attention = &plan;
    for (index_t i = 0; i < config_.depth; ++i) {
      vit_block<Backend>(config_.block, weights_.blocks[static_cast<std::size_t>(i)], norm_, act_, pos_, planned, out,
                         ctx, prec);
      stage(i);
    }
    if (weights_.final_norm) {
      norm_(out, *weights_.final_norm, out, ctx);
      stage(config_.depth);
    }
    if constexpr (Pool::pools) pool_(tensor_view<float const, 2>(out), tokens, pooled, ctx);
  }

 private:
  vision_encoder_config config_;
  vision_encoder_weights<T> weights_;
  Pos pos_;
  Norm norm_;
  Act act_;
  Pool pool_;
};

}  // namespace tessera::vision
