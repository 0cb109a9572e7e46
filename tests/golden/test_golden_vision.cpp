// SPDX-License-Identifier: Apache-2.0
// Both vision encoders against the original PyTorch models (tools/golden/make_vision_goldens.py;
// versions and seeds in tests/golden/vision_manifest.json):
//   - transformers 4.46.3 Qwen2VisionTransformerPretrainedModel (tiny random config, three
//     synthetic images of different sizes packed varlen), per block and at the end, in f32 and
//     in bf16;
//   - vit-pytorch 1.26.11 NaViT (two packed rows with padding), per stage, pooled and logits,
//     without token dropping and with a fixed keep-set.
// Both the reference and the cpu backend are compared. Per-block budgets: tol<float>::vs_golden
// element-wise; the bf16 run (PyTorch rounds every activation to bf16, tessera keeps f32
// activations with bf16 weights and products) is compared by NMSE with tol<bf16>::model_nmse.
#include "common/compare.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/model/navit/classifier.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace {

using namespace tessera;
using test::tol;

std::string golden_path(std::string const& name) { return std::string(TESSERA_SOURCE_DIR) + "/tests/golden/" + name; }

bool verbose() { return std::getenv("TESSERA_GOLDEN_VERBOSE") != nullptr; }

/// A golden tensor as f32 (bf16 tensors widened exactly) plus its shape.
struct golden_tensor {
  std::vector<float> values;
  std::vector<index_t> shape;
};

golden_tensor read(io::safetensors_file const& f, std::string const& name) {
  INFO("golden tensor " << name << " in " << f.path());
  io::tensor_info const& t = f.info(name);
  golden_tensor g;
  g.shape = t.shape;
  g.values.resize(static_cast<std::size_t>(t.numel()));
  if (t.type == dtype::f32) {
    f.copy_to(name, std::span<float>(g.values));
  } else if (t.type == dtype::bf16) {
    std::vector<bf16> tmp(g.values.size());
    f.copy_to(name, std::span<bf16>(tmp));
    for (std::size_t i = 0; i < tmp.size(); ++i) g.values[i] = tmp[i].to_float();
  } else {
    FAIL("golden tensor " << name << " has an unexpected dtype");
  }
  return g;
}

template <class T>
std::vector<T> read_as(io::safetensors_file const& f, std::string const& name) {
  INFO("golden tensor " << name << " in " << f.path());
  std::vector<T> out(static_cast<std::size_t>(f.info(name).numel()));
  f.copy_to(name, std::span<T>(out));
  return out;
}

/// Element-wise check of `got` rows against `want` rows (only the rows listed, if any).
void require_rows_close(std::string const& what, std::vector<float> const& got, std::vector<float> const& want,
                        index_t width, std::vector<index_t> const& rows, test::tolerance t) {
  std::vector<float> g, w;
  for (index_t r : rows) {
    g.insert(g.end(), got.begin() + r * width, got.begin() + (r + 1) * width);
    w.insert(w.end(), want.begin() + r * width, want.begin() + (r + 1) * width);
  }
  auto const cmp = test::compare_scaled(g, w, static_cast<std::int64_t>(g.size()), t, test::golden_rel_floor);
  INFO(what << ": " << cmp.report());
  if (verbose()) std::cout << what << ": " << cmp.report() << "\n";
  REQUIRE(cmp.ok);
}

std::vector<index_t> all_rows(index_t n) {
  std::vector<index_t> r(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = i;
  return r;
}

// ------------------------------------------------------------------------------------------------
// Qwen2-VL tower
// ------------------------------------------------------------------------------------------------

struct qwen2vl_golden {
  model::qwen2_vl_vision_config config = model::read_qwen2_vl_vision_config(golden_path("vision_qwen2vl/config.json"));
  io::checkpoint ckpt{golden_path("vision_qwen2vl/model.safetensors")};
  io::safetensors_file out{golden_path("vision_qwen2vl_outputs.safetensors")};
  std::vector<pack::patch_grid> grids;
  golden_tensor pixels = read(out, "pixel_values");

  qwen2vl_golden() {
    std::vector<std::int32_t> const thw = read_as<std::int32_t>(out, "grid_thw");
    for (std::size_t i = 0; i + 2 < thw.size(); i += 3) grids.push_back({thw[i], thw[i + 1], thw[i + 2]});
  }
};

qwen2vl_golden const& qwen2vl() {
  static qwen2vl_golden const g;
  return g;
}

/// Runs the tower over `grids` / `pixels` and returns the stage outputs (-2: patch embedding,
/// 0..depth-1: blocks) and the final tokens.
template <class Backend>
std::map<index_t, std::vector<float>> run_qwen2vl(std::span<pack::patch_grid const> grids,
                                                  tensor_view<float const, 2> pixels, nn::product_precision prec) {
  qwen2vl_golden const& g = qwen2vl();
  io::weight_binder b(g.ckpt);
  vision::vision_encoder_weights<bf16> const w = model::bind_vision_encoder<bf16>(b, g.config);
  (void)b.finish();
  auto const enc = model::make_qwen2vl_encoder<Backend>(g.config, w);
  pack::pack_plan const plan = model::qwen2vl_plan(grids, g.config);
  vision::packed_tokens const tokens = vision::batch_of(plan);
  host_buffer<float> out(pixels.extent(0) * g.config.embed_dim);
  std::map<index_t, std::vector<float>> stages;
  vision::stage_observer const observe = [&](index_t s, tensor_view<float const, 2> x) {
    stages[s] = std::vector<float>(x.data(), x.data() + x.extent(0) * x.extent(1));
  };
  exec_ctx<Backend> ctx;
  enc.forward(pixels, tokens, out.view(pixels.extent(0), g.config.embed_dim), ctx, {}, observe, prec);
  stages[g.config.depth] = std::vector<float>(out.data(), out.data() + pixels.extent(0) * g.config.embed_dim);
  return stages;
}

TEMPLATE_TEST_CASE("the Qwen2-VL tower matches transformers per block (f32)", "[vision][golden]", backend::reference,
                   backend::cpu) {
#if defined(__SANITIZE_ADDRESS__)
  // The reference backend's plain loops over the whole tower took 20 s of the sanitize step's tests
  // (-O0); every other step runs them, and the cpu backend runs here.
  if constexpr (std::is_same_v<TestType, backend::reference>)
    SKIP("the reference tower is left to the unsanitized builds under AddressSanitizer (20 s at -O0)");
#endif
  qwen2vl_golden const& g = qwen2vl();
  index_t const n = g.pixels.shape[0], e = g.config.embed_dim;
  REQUIRE(g.pixels.shape[1] == g.config.patch_dim);
  auto stages = run_qwen2vl<TestType>(g.grids, tensor_view<float const, 2>(g.pixels.values.data(), {n, g.pixels.shape[1]}),
                                      nn::product_precision::f32);
  require_rows_close("patch_embed", stages[-2], read(g.out, "patch_embed.out").values, e, all_rows(n),
                     tol<float>::vs_golden);
  for (index_t i = 0; i < g.config.depth; ++i)
    require_rows_close("block " + std::to_string(i), stages[i], read(g.out, "blocks." + std::to_string(i) + ".out").values,
                       e, all_rows(n), tol<float>::vs_golden);
  std::vector<float> const want = read(g.out, "out").values;
  require_rows_close("out", stages[g.config.depth], want, e, all_rows(n), tol<float>::vs_golden);
  double const err = test::nmse(stages[g.config.depth].data(), want.data(), n * e);
  INFO("NMSE " << err);
  if (verbose()) std::cout << "qwen2vl f32 out NMSE " << err << "\n";
  REQUIRE(err <= tol<float>::model_nmse);
}

TEST_CASE("the Qwen2-VL tower in bf16 matches transformers' bf16 run", "[vision][golden]") {
  qwen2vl_golden const& g = qwen2vl();
  index_t const n = g.pixels.shape[0], e = g.config.embed_dim;
  auto stages = run_qwen2vl<backend::cpu>(
      g.grids, tensor_view<float const, 2>(g.pixels.values.data(), {n, g.pixels.shape[1]}), nn::product_precision::bf16);
  for (index_t i = 0; i < g.config.depth; ++i) {
    std::vector<float> const want = read(g.out, "bf16.blocks." + std::to_string(i) + ".out").values;
    double const err = test::nmse(stages[i].data(), want.data(), n * e);
    INFO("block " << i << " NMSE vs the bf16 golden " << err);
    if (verbose()) std::cout << "qwen2vl bf16 block " << i << " NMSE " << err << "\n";
    REQUIRE(err <= tol<bf16>::model_nmse);
  }
}

TEST_CASE("the Qwen2-VL tower with f16 weights matches transformers' f32 run", "[vision][golden]") {
  using TestType = backend::cpu;  // (the reference backend's f16 path is the decoder test's)
  // The checkpoint's bf16 values converted to f16 (dtype_policy::convert): exact except for the
  // smallest weights, which f16 holds as subnormals; the products are f32. Measured NMSE 4e-13 -
  // 6e-13, so the f32 model budget (1e-8) applies, not the looser f16 one.
  qwen2vl_golden const& g = qwen2vl();
  index_t const n = g.pixels.shape[0], e = g.config.embed_dim;
  io::weight_binder b(g.ckpt, io::dtype_policy::convert);
  auto const enc = model::make_qwen2vl_encoder<TestType, f16>(g.config, model::bind_vision_encoder<f16>(b, g.config));
  REQUIRE(b.finish().n_converted > 0);
  pack::pack_plan const plan = model::qwen2vl_plan(g.grids, g.config);
  host_buffer<float> out(n * e);
  exec_ctx<TestType> ctx;
  enc.forward(tensor_view<float const, 2>(g.pixels.values.data(), {n, g.pixels.shape[1]}), vision::batch_of(plan),
              out.view(n, e), ctx);
  std::vector<float> const want = read(g.out, "out").values;
  double const err = test::nmse(out.data(), want.data(), n * e);
  INFO("f16 weights: NMSE " << err << " against the f32 golden");
  if (verbose()) std::cout << "qwen2vl f16 weights out NMSE " << err << "\n";
  REQUIRE(err <= tol<float>::model_nmse);
}

TEST_CASE("the Qwen2-VL tower: packed equals each image alone, and tessera's pixels equal the processor's",
          "[vision][golden]") {
  qwen2vl_golden const& g = qwen2vl();
  index_t const n = g.pixels.shape[0], f = g.pixels.shape[1], e = g.config.embed_dim;
  tensor_view<float const, 2> const all(g.pixels.values.data(), {n, f});
  auto packed = run_qwen2vl<backend::cpu>(g.grids, all, nn::product_precision::f32);
  index_t row = 0;
  for (std::size_t i = 0; i < g.grids.size(); ++i) {
    index_t const len = g.grids[i].n_patches();
    auto alone = run_qwen2vl<backend::cpu>(std::span(&g.grids[i], 1), all.slice_rows(row, row + len),
                                           nn::product_precision::f32);
    std::vector<float> const& p = packed[g.config.depth];
    std::vector<float> const mine(p.begin() + row * e, p.begin() + (row + len) * e);
    auto const cmp = test::compare(alone[g.config.depth], mine, tol<float>::vs_ref);
    INFO("image " << i << ": " << cmp.report());
    REQUIRE(cmp.ok);
    row += len;
  }

  // The synthetic images through tessera's own preprocessing give the processor's pixel_values.
  auto const manifest = nlohmann::json::parse(std::ifstream(golden_path("vision_manifest.json")));
  auto const& proc = manifest.at("qwen2vl").at("processor");
  model::resize_limits const limits{proc.at("min_pixels").get<index_t>(), proc.at("max_pixels").get<index_t>()};
  row = 0;
  for (std::size_t i = 0; i < g.grids.size(); ++i) {
    std::string const name = "image." + std::to_string(i);
    std::vector<std::uint8_t> const px = read_as<std::uint8_t>(g.out, name);
    std::vector<index_t> const shape = g.out.info(name).shape;
    io::rgb_image img(shape[0], shape[1]);
    std::copy(px.begin(), px.end(), img.data());
    model::qwen2vl_pixels const mine = model::preprocess_qwen2vl(img, limits);
    REQUIRE(mine.grid == g.grids[i]);
    std::vector<float> const got(mine.pixel_values.data(), mine.pixel_values.data() + mine.grid.n_patches() * f);
    std::vector<float> const want(g.pixels.values.begin() + row * f,
                                  g.pixels.values.begin() + (row + mine.grid.n_patches()) * f);
    auto const cmp = test::compare(got, want, test::tolerance{1e-6, 0});
    INFO("image " << i << " pixel_values: " << cmp.report());
    REQUIRE(cmp.ok);
    row += mine.grid.n_patches();
  }
}

// ------------------------------------------------------------------------------------------------
// vit-pytorch NaViT
// ------------------------------------------------------------------------------------------------

struct navit_golden {
  model::navit_config config = model::read_navit_config(golden_path("vision_navit/config.json"));
  io::checkpoint ckpt{golden_path("vision_navit/model.safetensors")};
  io::safetensors_file out{golden_path("vision_navit_outputs.safetensors")};
};

navit_golden const& navit() {
  static navit_golden const g;
  return g;
}

/// The golden's images, grouped as the reference grouped them (image.{g}.{i}).
std::vector<std::vector<golden_tensor>> navit_images(navit_golden const& g) {
  std::vector<std::vector<golden_tensor>> groups;
  for (int gi = 0;; ++gi) {
    std::vector<golden_tensor> imgs;
    for (int i = 0;; ++i) {
      std::string const name = "image." + std::to_string(gi) + "." + std::to_string(i);
      if (!g.out.contains(name)) break;
      imgs.push_back(read(g.out, name));
    }
    if (imgs.empty()) break;
    groups.push_back(std::move(imgs));
  }
  return groups;
}

template <class Backend>
void check_navit(std::string const& prefix, bool drop) {
  navit_golden const& g = navit();
  model::navit_config const& c = g.config;
  auto const groups = navit_images(g);
  REQUIRE(groups.size() >= 2);
  // The reference pads every group to its longest; row_len = that length reproduces the grouping
  // with first-fit (checked below against the images' rows).
  golden_tensor const pe = read(g.out, prefix + "patch_embed.out");  // [n_rows, row_len, dim]
  REQUIRE(pe.shape.size() == 3);
  index_t const n_rows = pe.shape[0], row_len = pe.shape[1];
  REQUIRE(n_rows == static_cast<index_t>(groups.size()));

  std::vector<pack::patch_grid> grids;
  std::vector<pack::patches> patches;
  std::vector<index_t> group_of;
  for (std::size_t gi = 0; gi < groups.size(); ++gi)
    for (golden_tensor const& im : groups[gi]) {
      tensor_view<float const, 3> const v(im.values.data(), {im.shape[0], im.shape[1], im.shape[2]});
      patches.push_back(pack::patchify(v, c.layout()));
      grids.push_back(patches.back().grid);
      group_of.push_back(static_cast<index_t>(gi));
    }
  pack::keep_sets keep;
  if (drop) {
    for (std::size_t gi = 0; gi < groups.size(); ++gi)
      for (std::size_t i = 0; i < groups[gi].size(); ++i)
        keep.per_image.push_back(
            read_as<std::int32_t>(g.out, "drop.keep." + std::to_string(gi) + "." + std::to_string(i)));
  }
  pack::pack_plan const plan = model::navit_plan(grids, row_len, 0, drop ? &keep : nullptr);
  REQUIRE(plan.n_rows() == n_rows);
  for (index_t i = 0; i < plan.n_images(); ++i) REQUIRE(plan.row_of_image(i) == group_of[static_cast<std::size_t>(i)]);

  std::vector<tensor_view<float const, 2>> views;
  for (auto const& p : patches) views.push_back(p.values.view(p.n_patches(), p.n_features));
  host_buffer<float> packed(plan.n_slots() * c.patch_dim());
  pack::gather_patches(plan, views, packed.view(plan.n_slots(), c.patch_dim()));

  io::checkpoint const& ckpt = g.ckpt;
  model::navit_classifier<Backend, float> const model(c, model::bind_navit<float>(ckpt, c));
  host_buffer<float> tokens(plan.n_slots() * c.dim), pooled(plan.n_images() * c.dim),
      logits(plan.n_images() * c.num_classes);
  std::map<index_t, std::vector<float>> stages;
  vision::stage_observer const observe = [&](index_t s, tensor_view<float const, 2> x) {
    stages[s] = std::vector<float>(x.data(), x.data() + x.extent(0) * x.extent(1));
  };
  exec_ctx<Backend> ctx;
  model.forward(packed.view(plan.n_slots(), c.patch_dim()), vision::batch_of(plan),
                tokens.view(plan.n_slots(), c.dim), pooled.view(plan.n_images(), c.dim),
                logits.view(plan.n_images(), c.num_classes), ctx, observe);

  std::vector<index_t> real;
  for (index_t s = 0; s < plan.n_slots(); ++s)
    if (plan.image_id()[static_cast<std::size_t>(s)] >= 0) real.push_back(s);
  auto const t = tol<float>::vs_golden;
  require_rows_close(prefix + "patch_embed", stages[-2], pe.values, c.dim, real, t);
  require_rows_close(prefix + "pos", stages[-1], read(g.out, prefix + "pos.out").values, c.dim, real, t);
  for (index_t l = 0; l < c.depth; ++l)
    require_rows_close(prefix + "block " + std::to_string(l), stages[l],
                       read(g.out, prefix + "blocks." + std::to_string(l) + ".out").values, c.dim, real, t);
  require_rows_close(prefix + "transformer", stages[c.depth], read(g.out, prefix + "transformer.out").values, c.dim,
                     real, t);
  std::vector<float> const pooled_v(pooled.data(), pooled.data() + plan.n_images() * c.dim);
  require_rows_close(prefix + "pool", pooled_v, read(g.out, prefix + "pool.out").values, c.dim,
                     all_rows(plan.n_images()), t);
  std::vector<float> const logits_v(logits.data(), logits.data() + plan.n_images() * c.num_classes);
  require_rows_close(prefix + "logits", logits_v, read(g.out, prefix + "logits").values, c.num_classes,
                     all_rows(plan.n_images()), t);
}

TEMPLATE_TEST_CASE("NaViT matches vit-pytorch per stage, pooled and logits", "[vision][golden]", backend::reference,
                   backend::cpu) {
  check_navit<TestType>("", false);
}

TEMPLATE_TEST_CASE("NaViT with a fixed keep-set matches vit-pytorch's token-dropout run", "[vision][golden]",
                   backend::reference, backend::cpu) {
  check_navit<TestType>("drop.", true);
}

}  // namespace
