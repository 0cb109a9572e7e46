// SPDX-License-Identifier: Apache-2.0
// vision::vit_block and vision::vision_encoder: the cpu backend against the reference backend for
// the Qwen2-VL-style block (fused qkv with bias, 2-D RoPE, QuickGELU) and the NaViT-style block
// (separate q / kv without bias, per-head RMS qk-norm, scale 1, GELU), with f32 and bf16 weights;
// packed == each image alone; padding never changes the real tokens' outputs; bad input errors.
// The goldens against transformers and vit-pytorch are in tests/golden/test_golden_vision.cpp.
#include "common/random_encoder.hpp"
#include "common/compare.hpp"
#include "common/temp_dir.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/model/navit/classifier.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>
#include <tessera/vision/pool_policies.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace tessera;
using test::random_weights;
using test::tol;

using test::small_config;

template <class Backend, class T>
using qwen_like = vision::vision_encoder<Backend, T, vision::policy::rope_2d, vision::policy::layer_norm,
                                         vision::policy::quick_gelu, vision::policy::no_pooling>;
template <class Backend, class T>
using navit_like = vision::vision_encoder<Backend, T, vision::policy::factorized_sinusoidal, vision::policy::layer_norm,
                                          vision::policy::gelu, vision::policy::mean_pooling>;

/// Runs an encoder over `plan` with the packed patches; returns the tokens (and pooled, if any).
template <class Enc, class Backend>
std::pair<std::vector<float>, std::vector<float>> run(Enc const& enc, pack::pack_plan const& plan,
                                                      std::vector<float> const& packed, exec_ctx<Backend>& ctx) {
  index_t const n = plan.n_slots(), d = enc.d_model(), f = enc.config().patch_dim;
  std::vector<float> out(static_cast<std::size_t>(n * d), -7.0f);
  std::vector<float> pooled;
  tensor_view<float, 2> pooled_view;
  if constexpr (Enc::pooling_type::pools) {
    pooled.assign(static_cast<std::size_t>(plan.n_images() * d), -7.0f);
    pooled_view = tensor_view<float, 2>(pooled.data(), {plan.n_images(), d});
  }
  enc.forward(tensor_view<float const, 2>(packed.data(), {n, f}), vision::batch_of(plan),
              tensor_view<float, 2>(out.data(), {n, d}), ctx, pooled_view);
  return {out, pooled};
}

using test::pack_rows;

using test::grids;
using test::image_patches;

TEMPLATE_TEST_CASE("vision_encoder (Qwen2-VL style): cpu matches the reference", "[vision][unit]", float, bf16) {
  auto const c = small_config();
  random_weights<TestType> const rw(c, false, test::seed(11));
  pack::pack_plan const plan = pack::pack_plan::make(grids, {}, nullptr, pack::token_order::merge_window_major, 2);
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 5), c.patch_dim);
  exec_ctx<backend::reference> rctx;
  exec_ctx<backend::cpu> cctx;
  auto const want = run(qwen_like<backend::reference, TestType>(c, rw.w), plan, packed, rctx).first;
  auto const got = run(qwen_like<backend::cpu, TestType>(c, rw.w), plan, packed, cctx).first;
  // Two blocks with different summation orders. With bf16 weights both backends round the
  // activations to bf16 before each product (PyTorch's bf16 semantics), so a last-bit difference
  // upstream can flip a rounding: the bf16 budget applies.
  TESSERA_REQUIRE_CLOSE(got, want, (std::is_same_v<TestType, bf16> ? tol<bf16>::vs_ref : test::tolerance{2e-5, 2e-5}));
}

TEMPLATE_TEST_CASE("vision_encoder (NaViT style, pooled): cpu matches the reference", "[vision][unit]", float, bf16) {
  auto const c = small_config();
  random_weights<TestType> const rw(c, true, test::seed(12));
  pack::pack_plan const plan = model::navit_plan(grids, 40, 3);
  auto const packed = pack_rows(plan, image_patches(c.patch_dim, 6), c.patch_dim);
  exec_ctx<backend::reference> rctx;
  exec_ctx<backend::cpu> cctx;
  auto const [want, want_pooled] = run(navit_like<backend::reference, TestType>(c, rw.w), plan, packed, rctx);
  auto const [got, got_pooled] = run(navit_like<backend::cpu, TestType>(c, rw.w), plan, packed, cctx);
  std::vector<float> g, w;  // real slots only: padding rows are unspecified
  for (index_t s = 0; s < plan.n_slots(); ++s)
    if (plan.image_id()[static_cast<std::size_t>(s)] >= 0)
      for (index_t k = 0; k < c.block.d_model; ++k) {
        g.push_back(got[static_cast<std::size_t>(s * c.block.d_model + k)]);
        w.push_back(want[static_cast<std::size_t>(s * c.block.d_model + k)]);
      }
  auto const t = std::is_same_v<TestType, bf16> ? tol<bf16>::vs_ref : test::tolerance{2e-5, 2e-5};
  TESSERA_REQUIRE_CLOSE(g, w, t);
  TESSERA_REQUIRE_CLOSE(got_pooled, want_pooled, t);
}

TEST_CASE("vision_encoder: packed equals each image alone, and padding never changes outputs", "[vision][unit]") {
  auto const c = small_config();
  random_weights<float> const rw(c, true, test::seed(13));
  auto const per_image = image_patches(c.patch_dim, 7);
  exec_ctx<backend::cpu> ctx;
  navit_like<backend::cpu, float> const enc(c, rw.w);
  index_t const d = c.block.d_model;

  // Alone: each image in its own varlen plan.
  std::vector<std::vector<float>> alone, alone_pooled;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    pack::pack_plan const p = pack::pack_plan::make(std::span(&grids[i], 1));
    auto [t, pooled] = run(enc, p, per_image[i], ctx);
    alone.push_back(std::move(t));
    alone_pooled.push_back(std::move(pooled));
  }
  // The same images packed in several ways: varlen, rows of 40 / 64 / 200 slots, a cap of 1 and 2.
  std::vector<pack::pack_plan> plans;
  plans.push_back(pack::pack_plan::make(grids));
  for (index_t row_len : {40, 64, 200}) plans.push_back(model::navit_plan(grids, row_len));
  plans.push_back(model::navit_plan(grids, 64, 1));
  plans.push_back(model::navit_plan(grids, 64, 2));
  for (pack::pack_plan const& plan : plans) {
    INFO("plan: " << plan.n_rows() << " rows of " << plan.row_len() << " slots");
    auto const packed = pack_rows(plan, per_image, c.patch_dim);
    auto const [tokens, pooled] = run(enc, plan, packed, ctx);
    for (index_t i = 0; i < plan.n_images(); ++i) {
      INFO("image " << i);
      auto const b = static_cast<std::size_t>(plan.slot_begin(i) * d);
      std::vector<float> const mine(tokens.begin() + static_cast<std::ptrdiff_t>(b),
                                    tokens.begin() + static_cast<std::ptrdiff_t>(b + static_cast<std::size_t>(plan.n_kept(i) * d)));
      TESSERA_REQUIRE_CLOSE(mine, alone[static_cast<std::size_t>(i)], tol<float>::vs_ref);
      std::vector<float> const pooled_i(pooled.begin() + i * d, pooled.begin() + (i + 1) * d);
      TESSERA_REQUIRE_CLOSE(pooled_i, alone_pooled[static_cast<std::size_t>(i)], tol<float>::vs_ref);
      for (float v : tokens) REQUIRE(std::isfinite(v));
    }
  }
}

TEST_CASE("vision_encoder refuses inconsistent weights and inputs", "[vision][unit]") {
  auto const c = small_config(1);
  random_weights<float> rw(c, false, 3);
  exec_ctx<backend::cpu> ctx;
  {
    auto bad = rw.w;
    bad.blocks.clear();
    REQUIRE_TESSERA_ERROR((qwen_like<backend::cpu, float>(c, bad)), "1 blocks configured");
  }
  {
    auto bad = rw.w;
    bad.blocks[0].fc1.weight = rw.mat(c.block.d_ff + 1, c.block.d_model, 1.0f, 0.0f);
    REQUIRE_TESSERA_ERROR((qwen_like<backend::cpu, float>(c, bad)), "fc1 must be");
  }
  {
    auto bad = rw.w;
    bad.blocks[0].q = bad.blocks[0].qkv;  // both fused and separate
    REQUIRE_TESSERA_ERROR((qwen_like<backend::cpu, float>(c, bad)), "either the fused qkv");
  }
  qwen_like<backend::cpu, float> const enc(c, rw.w);
  pack::pack_plan const plan = pack::pack_plan::make(grids, {}, nullptr, pack::token_order::merge_window_major, 2);
  std::vector<float> patches(static_cast<std::size_t>(plan.n_slots() * (c.patch_dim + 1)));
  std::vector<float> out(static_cast<std::size_t>(plan.n_slots() * c.block.d_model));
  REQUIRE_TESSERA_ERROR(enc.forward(tensor_view<float const, 2>(patches.data(), {plan.n_slots(), c.patch_dim + 1}),
                                    vision::batch_of(plan), tensor_view<float, 2>(out.data(), {plan.n_slots(), c.block.d_model}),
                                    ctx),
                        "values per row");
  REQUIRE_TESSERA_ERROR(enc.forward(tensor_view<float const, 2>(patches.data(), {plan.n_slots() - 1, c.patch_dim}),
                                    vision::batch_of(plan), tensor_view<float, 2>(out.data(), {plan.n_slots() - 1, c.block.d_model}),
                                    ctx),
                        "the packing covers");
  std::vector<float> pooled(static_cast<std::size_t>(plan.n_images() * c.block.d_model));
  REQUIRE_TESSERA_ERROR(enc.forward(tensor_view<float const, 2>(patches.data(), {plan.n_slots(), c.patch_dim}),
                                    vision::batch_of(plan), tensor_view<float, 2>(out.data(), {plan.n_slots(), c.block.d_model}),
                                    ctx, tensor_view<float, 2>(pooled.data(), {plan.n_images(), c.block.d_model})),
                        "does not pool");
}

TEST_CASE("NaViT config.json is read strictly", "[vision][unit]") {
  std::string const good = R"({"architecture": "vit_pytorch.NaViT", "image_size": [64, 48], "patch_size": 8,
    "num_classes": 10, "dim": 64, "depth": 2, "heads": 4, "dim_head": 16, "mlp_dim": 128, "channels": 3})";
  model::navit_config const c = model::parse_navit_config(good, "good.json");
  CHECK(c.image_height == 64);
  CHECK(c.image_width == 48);
  CHECK(c.rows_y() == 8);
  CHECK(c.rows_x() == 6);
  CHECK(c.patch_dim() == 192);
  CHECK(c.layer_norm_eps == 1e-5);
  CHECK(c.position_coords == posemb::coord_mode::absolute);
  REQUIRE_TESSERA_ERROR(model::parse_navit_config(R"({"architecture": "ViT"})", "a.json"), "architecture");
  REQUIRE_TESSERA_ERROR(
      model::parse_navit_config(R"({"architecture": "vit_pytorch.NaViT", "image_size": 60, "patch_size": 8,
        "num_classes": 10, "dim": 64, "depth": 2, "heads": 4, "mlp_dim": 128})", "b.json"),
      "not a multiple of patch_size");
  REQUIRE_TESSERA_ERROR(
      model::parse_navit_config(R"({"architecture": "vit_pytorch.NaViT", "image_size": 64, "patch_size": 8,
        "num_classes": 10, "depth": 2, "heads": 4, "mlp_dim": 128})", "c.json"),
      "dim");
  REQUIRE_TESSERA_ERROR(
      model::parse_navit_config(R"({"architecture": "vit_pytorch.NaViT", "image_size": 64, "patch_size": 8,
        "num_classes": 10, "dim": 64, "depth": -1, "heads": 4, "mlp_dim": 128})", "d.json"),
      "depth");
  REQUIRE_TESSERA_ERROR(
      model::parse_navit_config(R"({"architecture": "vit_pytorch.NaViT", "image_size": 64, "patch_size": 8,
        "num_classes": 10, "dim": 64, "depth": 2, "heads": 4, "mlp_dim": 128, "position_coords": "polar"})", "e.json"),
      "position_coords");
}

}  // namespace
