// SPDX-License-Identifier: Apache-2.0
// test::random_weights: owned random weights of a small vision::vision_encoder (Qwen2-VL style or
// NaViT style), the small config, image grids and patches, and pack_rows, shared by the encoder and
// policy tests.
#pragma once

#include "common/compare.hpp"

#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <cmath>
#include <cstdint>
#include <array>
#include <optional>
#include <random>
#include <utility>
#include <vector>

namespace tessera::test {

/// Random weights for a small encoder, owned. `navit_style` gives q / kv / qk-norm, norms without
/// bias and no biases in the attention, plus patch norms and a final norm; `all_biases` then adds
/// a bias to every linear layer (norms stay bias-free, so the rms_norm policy accepts them).
template <class T>
struct random_weights {
  std::vector<host_buffer<T>> store;
  vision::vision_encoder_weights<T> w;
  std::mt19937_64 gen;

  random_weights(vision::vision_encoder_config const& c, bool navit_style, std::uint64_t seed, bool all_biases = false)
      : gen(seed) {
    index_t const d = c.block.d_model, inner = c.block.inner(), ff = c.block.d_ff;
    auto const norm = [&](index_t n, bool bias) {
      return nn::norm_weights<T>{vec(n, 0.2f, 1.0f), bias ? std::optional(vec(n, 0.1f, 0.0f)) : std::nullopt};
    };
    auto const lin = [&](index_t out, index_t in, bool bias) {
      bias = bias || all_biases;
      return nn::linear_weights<T>{mat(out, in, 1.0f / std::sqrt(static_cast<float>(in)), 0.0f),
                                   bias ? std::optional(vec(out, 0.1f, 0.0f)) : std::nullopt};
    };
    w.patch_embed = lin(d, c.patch_dim, navit_style);
    if (navit_style) {
      w.patch_norm_in = norm(c.patch_dim, false);
      w.patch_norm_out = norm(d, false);
      w.final_norm = norm(d, false);
    }
    for (index_t i = 0; i < c.depth; ++i) {
      vision::vit_block_weights<T> b;
      b.norm1 = norm(d, !navit_style);
      if (navit_style) {
        b.q = lin(inner, d, false);
        b.kv = lin(2 * inner, d, false);
        b.q_norm = mat(c.block.n_heads, c.block.head_dim, 0.2f, 1.0f);
        b.k_norm = mat(c.block.n_heads, c.block.head_dim, 0.2f, 1.0f);
      } else {
        b.qkv = lin(3 * inner, d, true);
      }
      b.proj = lin(d, inner, !navit_style);
      b.norm2 = norm(d, !navit_style);
      b.fc1 = lin(ff, d, true);
      b.fc2 = lin(d, ff, true);
      w.blocks.push_back(std::move(b));
    }
  }
  tensor_view<T const, 1> vec(index_t n, float scale, float offset) { return fill(n, scale, offset).view(n); }
  tensor_view<T const, 2> mat(index_t r, index_t k, float scale, float offset) {
    return fill(r * k, scale, offset).view(r, k);
  }
  host_buffer<T>& fill(index_t n, float scale, float offset) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    host_buffer<T> b(n);
    for (index_t i = 0; i < n; ++i) b.data()[i] = from_float<T>(offset + scale * nd(gen));
    store.push_back(std::move(b));
    return store.back();
  }
};

/// The small encoder of the encoder and policy tests: patches of 24 values, d_model 32, 2 heads of
/// 16, MLP 56, `depth` blocks.
inline vision::vision_encoder_config small_config(index_t depth = 2) {
  vision::vision_encoder_config c;
  c.patch_dim = 24;
  c.depth = depth;
  c.block = {.d_model = 32, .n_heads = 2, .head_dim = 16, .d_ff = 56};
  return c;
}

/// Four images' patch grids of mixed shapes, and random patch rows for them (image i from seed + i).
inline std::vector<pack::patch_grid> const grids{{1, 2, 4}, {1, 6, 4}, {1, 2, 2}, {1, 4, 8}};

inline std::vector<std::vector<float>> image_patches(index_t f, std::uint64_t seed) {
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0; i < grids.size(); ++i)
    out.push_back(random_vector<float>(static_cast<std::size_t>(grids[i].n_patches() * f), seed + i));
  return out;
}

/// The packed patch rows of `plan` from per-image patch rows (image i: per_image[i], its patches'
/// rows of `f` values), gathered by pack::gather_patches.
inline std::vector<float> pack_rows(pack::pack_plan const& plan, std::vector<std::vector<float>> const& per_image,
                                    index_t f) {
  std::vector<tensor_view<float const, 2>> views;
  for (index_t i = 0; i < plan.n_images(); ++i)
    views.emplace_back(per_image[static_cast<std::size_t>(i)].data(),
                       std::array<index_t, 2>{plan.grid(i).n_patches(), f});
  std::vector<float> packed(static_cast<std::size_t>(plan.n_slots() * f));
  pack::gather_patches(plan, views, tensor_view<float, 2>(packed.data(), {plan.n_slots(), f}));
  return packed;
}

}  // namespace tessera::test
