// SPDX-License-Identifier: Apache-2.0
// bench_vision case (b): a Qwen2-VL-dims encoder (width 1280, 16 heads x 80, MLP 5120, 4 blocks,
// random bf16 weights) over a mixed batch of images, run on the same weights as
//   packed  -- one varlen sequence, block-diagonal attention (Qwen2-VL / POINTS1.5 / NaViT);
//   padded  -- every image padded to the largest one, one row per image, as a batched [B, L, D]
//              ViT with a key-padding mask computes it: every slot goes through every linear layer
//              and every query scores all L keys of its row (dense masked attention). tessera never
//              computes masked scores, so this is timed with each row as one L-token sequence: the
//              same work as the dense masked kernel (its outputs are not the masked ones, and are
//              not checked);
//   padded_keyskip -- the same padded rows, but each row's queries only see its real keys (a
//              varlen kernel over a padded batch: the cheapest padded baseline; its real rows are
//              checked against packed);
//   single  -- one forward per image.
// Throughput counts real tokens. The acceptance compares packed with padded by slots:
//   packed_tok_s >= 0.9 * padded_tok_s * padded_slots / real_tokens
// and the same ratio against padded_keyskip is reported beside it.
#pragma once

#include <tessera/tessera.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tessera::bench {

struct encoder_bench_image {
  index_t height = 0, width = 0;  ///< pixels (multiples of 28)
};

/// Random bf16 weights of a Qwen2-VL-dims encoder, owned.
struct encoder_bench_weights {
  std::vector<host_buffer<bf16>> store;  // views point into the buffers' heap memory, which moving keeps
  vision::vision_encoder_weights<bf16> weights;

  tensor_view<bf16 const, 1> vec(index_t n, float scale, float offset, std::mt19937_64& gen) {
    return fill(n, scale, offset, gen).view(n);
  }
  tensor_view<bf16 const, 2> mat(index_t r, index_t c, float scale, float offset, std::mt19937_64& gen) {
    return fill(r * c, scale, offset, gen).view(r, c);
  }

 private:
  host_buffer<bf16>& fill(index_t n, float scale, float offset, std::mt19937_64& gen) {
    host_buffer<bf16> b(n);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (index_t i = 0; i < n; ++i) b.data()[i] = bf16::from_float(offset + scale * d(gen));
    store.push_back(std::move(b));
    return store.back();
  }
};

inline encoder_bench_weights make_encoder_bench_weights(vision::vision_encoder_config const& c, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  encoder_bench_weights w;
  w.store.reserve(static_cast<std::size_t>(4 + 12 * c.depth));
  index_t const d = c.block.d_model, inner = c.block.inner(), ff = c.block.d_ff;
  auto const lin = [&](index_t out, index_t in) {
    return nn::linear_weights<bf16>{w.mat(out, in, 1.0f / std::sqrt(static_cast<float>(in)), 0.0f, gen),
                                    w.vec(out, 0.02f, 0.0f, gen)};
  };
  auto const norm = [&] { return nn::norm_weights<bf16>{w.vec(d, 0.1f, 1.0f, gen), w.vec(d, 0.02f, 0.0f, gen)}; };
  w.weights.patch_embed = {w.mat(d, c.patch_dim, 1.0f / std::sqrt(static_cast<float>(c.patch_dim)), 0.0f, gen),
                           std::nullopt};
  for (index_t i = 0; i < c.depth; ++i) {
    vision::vit_block_weights<bf16> b;
    b.norm1 = norm();
    b.qkv = lin(3 * inner, d);
    b.proj = lin(d, inner);
    b.norm2 = norm();
    b.fc1 = lin(ff, d);
    b.fc2 = lin(d, ff);
    w.weights.blocks.push_back(std::move(b));
  }
  return w;
}

/// Runs case (b); returns its JSON record. `quick`: one block and small images (CI smoke).
inline nlohmann::json run_encoder_bench(bool quick, int threads, double min_time) {
  using clock_type = std::chrono::steady_clock;
  vision::vision_encoder_config cfg;
  cfg.patch_dim = 1176;
  cfg.depth = quick ? 1 : 4;
  cfg.block = {.d_model = 1280, .n_heads = 16, .head_dim = 80, .d_ff = 5120};
  std::vector<encoder_bench_image> const images =
      quick ? std::vector<encoder_bench_image>{{112, 112}, {56, 168}, {224, 168}}
            : std::vector<encoder_bench_image>{{224, 224}, {448, 336}, {1036, 756}, {56, 812}};
  encoder_bench_weights const w = make_encoder_bench_weights(cfg, 20241125);
  using enc_t = vision::vision_encoder<backend::cpu, bf16, vision::policy::rope_2d, vision::policy::layer_norm,
                                       vision::policy::quick_gelu, vision::policy::no_pooling>;
  enc_t const enc(cfg, w.weights, vision::policy::rope_2d{10000.0f}, vision::policy::layer_norm{1e-6f});

  std::vector<pack::patch_grid> grids;
  for (auto const& im : images) grids.push_back(pack::grid_for(pack::qwen2vl_layout, im.height, im.width));
  index_t real = 0, longest = 0;
  for (auto const& g : grids) {
    real += g.n_patches();
    longest = std::max(longest, g.n_patches());
  }
  index_t const d = cfg.block.d_model, f = cfg.patch_dim;

  // Patch rows of every image (random, as normalized pixels are O(1)).
  std::mt19937_64 gen(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<host_buffer<float>> patches;
  for (auto const& g : grids) {
    host_buffer<float> p(g.n_patches() * f);
    for (index_t i = 0; i < g.n_patches() * f; ++i) p.data()[i] = nd(gen);
    patches.push_back(std::move(p));
  }
  std::vector<tensor_view<float const, 2>> views;
  for (std::size_t i = 0; i < grids.size(); ++i) views.push_back(patches[i].view(grids[i].n_patches(), f));

  exec_ctx<backend::cpu> ctx(threads);
  auto const time_it = [&](std::function<void()> const& fn) {
    fn();  // warm-up (also sizes the scratch arena)
    std::vector<double> t;
    auto const start = clock_type::now();
    while (t.size() < 3 || std::chrono::duration<double>(clock_type::now() - start).count() < min_time) {
      auto const a = clock_type::now();
      fn();
      t.push_back(std::chrono::duration<double>(clock_type::now() - a).count());
      if (t.size() >= 20) break;
    }
    std::sort(t.begin(), t.end());
    return std::pair{t.front(), t[t.size() / 2]};
  };

  // packed (varlen)
  pack::pack_plan const packed_plan = pack::pack_plan::make(grids, {}, nullptr, pack::token_order::merge_window_major, 2);
  host_buffer<float> packed_in(real * f), packed_out(real * d);
  pack::gather_patches(packed_plan, views, packed_in.view(real, f), threads);
  vision::packed_tokens const packed_tokens = vision::batch_of(packed_plan);
  auto const t_packed = time_it([&] { enc.forward(packed_in.view(real, f), packed_tokens, packed_out.view(real, d), ctx); });

  // Padded rows: one per image, row_len = the longest image.
  index_t const n_img = static_cast<index_t>(grids.size()), slots = n_img * longest;
  host_buffer<float> padded_in(slots * f, 0.0f), padded_out(slots * d);
  std::vector<std::int32_t> coords(static_cast<std::size_t>(slots * 2), 0);
  for (index_t i = 0; i < n_img; ++i) {
    index_t const n = grids[static_cast<std::size_t>(i)].n_patches();
    std::copy_n(patches[static_cast<std::size_t>(i)].data(), n * f, padded_in.data() + i * longest * f);
    auto const sub = packed_plan.coords().slice_rows(packed_plan.slot_begin(i), packed_plan.slot_begin(i) + n);
    for (index_t t = 0; t < n; ++t) {
      coords[static_cast<std::size_t>((i * longest + t) * 2)] = sub(t, 0);
      coords[static_cast<std::size_t>((i * longest + t) * 2 + 1)] = sub(t, 1);
    }
  }
  tensor_view<std::int32_t const, 2> const padded_coords(coords.data(), {slots, 2});

  // padded (dense masked attention's work): each row is one sequence of `longest` tokens.
  std::vector<std::int64_t> const rows(static_cast<std::size_t>(n_img), longest);
  seq_offsets const row_seqs = seq_offsets::from_lengths(rows);
  std::vector<std::int64_t> row_image_seq;
  for (index_t i = 0; i < n_img; ++i) row_image_seq.push_back(i);
  vision::packed_tokens dense_tokens;
  dense_tokens.seqs = &row_seqs;
  dense_tokens.coords = padded_coords;
  dense_tokens.image_seq = row_image_seq;
  auto const t_padded = time_it([&] { enc.forward(padded_in.view(slots, f), dense_tokens, padded_out.view(slots, d), ctx); });

  // padded_keyskip: segment 2i = row i's queries, whose keys are its image's n_i tokens; segment
  // 2i + 1 pairs no queries with the row's padding keys, so that the key offsets stay aligned.
  std::vector<std::int64_t> q2, kv2, keyskip_image_seq;
  for (index_t i = 0; i < n_img; ++i) {
    index_t const n = grids[static_cast<std::size_t>(i)].n_patches();
    q2.insert(q2.end(), {longest, 0});
    kv2.insert(kv2.end(), {n, longest - n});
    keyskip_image_seq.push_back(2 * i);
  }
  seq_offsets const q_seqs = seq_offsets::from_lengths(q2), kv_seqs = seq_offsets::from_lengths(kv2);
  vision::packed_tokens keyskip_tokens;
  keyskip_tokens.seqs = &q_seqs;
  keyskip_tokens.kv_seqs = &kv_seqs;
  keyskip_tokens.coords = padded_coords;
  keyskip_tokens.image_seq = keyskip_image_seq;
  auto const t_keyskip =
      time_it([&] { enc.forward(padded_in.view(slots, f), keyskip_tokens, padded_out.view(slots, d), ctx); });

  // single: one forward per image (plans built outside the timed loop).
  std::vector<pack::pack_plan> single_plans;
  for (auto const& g : grids) single_plans.push_back(pack::pack_plan::make(std::span(&g, 1), {}, nullptr,
                                                                         pack::token_order::merge_window_major, 2));
  host_buffer<float> single_out(longest * d);
  auto const t_single = time_it([&] {
    for (std::size_t i = 0; i < grids.size(); ++i) {
      index_t const n = grids[i].n_patches();
      enc.forward(views[i], vision::batch_of(single_plans[i]), single_out.view(n, d), ctx);
    }
  });

  // Correctness once: the real rows of padded_keyskip (the last padded run) and of each single
  // run equal the packed rows.
  double max_diff_padded = 0, max_diff_single = 0, max_abs = 0;
  for (index_t i = 0; i < n_img; ++i) {
    index_t const n = grids[static_cast<std::size_t>(i)].n_patches(), b = packed_plan.slot_begin(i);
    enc.forward(views[static_cast<std::size_t>(i)], vision::batch_of(single_plans[static_cast<std::size_t>(i)]),
                single_out.view(n, d), ctx);
    for (index_t t = 0; t < n * d; ++t) {
      float const want = packed_out.data()[b * d + t];
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(want)));
      max_diff_padded = std::max(max_diff_padded, static_cast<double>(std::fabs(padded_out.data()[i * longest * d + t] - want)));
      max_diff_single = std::max(max_diff_single, static_cast<double>(std::fabs(single_out.data()[t] - want)));
    }
  }

  // And once against the reference backend: the first block alone on the smallest image.
  double max_diff_reference = 0;
  {
    std::size_t small = 0;
    for (std::size_t i = 1; i < grids.size(); ++i)
      if (grids[i].n_patches() < grids[small].n_patches()) small = i;
    vision::vision_encoder_config c1 = cfg;
    c1.depth = 1;
    vision::vision_encoder_weights<bf16> w1 = w.weights;
    w1.blocks.resize(1);
    using ref_t = vision::vision_encoder<backend::reference, bf16, vision::policy::rope_2d, vision::policy::layer_norm,
                                         vision::policy::quick_gelu, vision::policy::no_pooling>;
    enc_t const fast1(c1, w1, vision::policy::rope_2d{10000.0f}, vision::policy::layer_norm{1e-6f});
    ref_t const ref1(c1, w1, vision::policy::rope_2d{10000.0f}, vision::policy::layer_norm{1e-6f});
    index_t const n = grids[small].n_patches();
    host_buffer<float> a(n * d), b(n * d);
    exec_ctx<backend::reference> rctx;
    fast1.forward(views[small], vision::batch_of(single_plans[small]), a.view(n, d), ctx);
    ref1.forward(views[small], vision::batch_of(single_plans[small]), b.view(n, d), rctx);
    for (index_t t = 0; t < n * d; ++t)
      max_diff_reference =
          std::max(max_diff_reference, static_cast<double>(std::fabs(a.data()[t] - b.data()[t])) /
                                           (1.0 + std::fabs(static_cast<double>(b.data()[t]))));
  }

  double const gemm_flops_per_token =
      2.0 * static_cast<double>(cfg.block.d_model * (4 * cfg.block.inner() + 2 * cfg.block.d_ff));
  double attn_pairs = 0;
  for (auto const& g : grids) attn_pairs += static_cast<double>(g.n_patches()) * static_cast<double>(g.n_patches());
  double const flops_packed =
      static_cast<double>(cfg.depth) * (gemm_flops_per_token * static_cast<double>(real) +
                                        4.0 * static_cast<double>(cfg.block.inner()) * attn_pairs) +
      2.0 * static_cast<double>(real * f * d);
  auto const rec = [&](std::pair<double, double> t, double flops) {
    return nlohmann::json{{"min_s", t.first},
                          {"median_s", t.second},
                          {"real_tokens_per_s", static_cast<double>(real) / t.first},
                          {"gflops", flops * 1e-9 / t.first}};
  };
  nlohmann::json j;
  j["name"] = "encoder qwen2vl-dims";
  j["depth"] = cfg.depth;
  j["d_model"] = d;
  j["heads"] = cfg.block.n_heads;
  j["head_dim"] = cfg.block.head_dim;
  j["d_ff"] = cfg.block.d_ff;
  j["weights"] = "bf16";
  j["threads"] = threads;
  nlohmann::json imgs = nlohmann::json::array();
  for (std::size_t i = 0; i < images.size(); ++i)
    imgs.push_back({{"height", images[i].height}, {"width", images[i].width}, {"tokens", grids[i].n_patches()}});
  j["images"] = imgs;
  j["real_tokens"] = real;
  j["padded_slots"] = slots;
  j["packed"] = rec(t_packed, flops_packed);
  // Useful FLOPs (the packed work) for every mode: the rate of work that counts.
  j["padded"] = rec(t_padded, flops_packed);
  j["padded_keyskip"] = rec(t_keyskip, flops_packed);
  j["single"] = rec(t_single, flops_packed);
  double const packed_tps = static_cast<double>(real) / t_packed.first;
  double const slot_ratio = static_cast<double>(slots) / static_cast<double>(real);
  double const target = 0.9 * static_cast<double>(real) / t_padded.first * slot_ratio;
  double const target_keyskip = 0.9 * static_cast<double>(real) / t_keyskip.first * slot_ratio;
  j["acceptance"] = {{"rule", "packed_tok_s >= 0.9 * padded_tok_s * padded_slots / real_tokens"},
                     {"packed_tok_s", packed_tps},
                     {"target_tok_s", target},
                     {"ratio_to_target", packed_tps / target},
                     {"met", packed_tps >= target},
                     {"keyskip_target_tok_s", target_keyskip},
                     {"keyskip_ratio_to_target", packed_tps / target_keyskip}};
  j["check"] = {{"max_rel_diff_vs_reference_1_block", max_diff_reference},
                {"max_abs_output", max_abs},
                {"max_diff_padded_keyskip_vs_packed", max_diff_padded},
                {"max_diff_single_vs_packed", max_diff_single}};
  std::printf("encoder %-20s real tok/s: packed %7.1f  padded %7.1f  padded_keyskip %7.1f  single %7.1f; "
              "packed / target %.2f (vs keyskip %.2f)\n",
              quick ? "(quick)" : "4 x 1280, bf16", packed_tps, static_cast<double>(real) / t_padded.first,
              static_cast<double>(real) / t_keyskip.first, static_cast<double>(real) / t_single.first,
              packed_tps / target, packed_tps / target_keyskip);
  return j;
}

}  // namespace tessera::bench
