// SPDX-License-Identifier: Apache-2.0
// pool::patch_merge_2x2, map_head and navit_pool against the PyTorch modules they mirror: the
// `merger.*` (transformers 4.46.3 PatchMerger), `map.*` (timm 1.0.12 AttentionPoolLatent) and
// `navitpool.*` (vit-pytorch 1.26.11 NaViT attention pooling) tensors of
// tests/golden/vision_blocks.safetensors (tools/golden/make_vision_goldens.py; versions, seeds,
// settings in tests/golden/vision_manifest.json). Both backends are compared with the golden
// directly, budget tol<float>::vs_golden. Set TESSERA_GOLDEN_VERBOSE=1 for every report.
#include "common/compare.hpp"
#include "common/golden.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/pack/patchify.hpp>
#include <tessera/pool/attention_pool.hpp>
#include <tessera/pool/patch_merge.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace {

using namespace tessera;

using test::golden_file;

golden_file const& blocks() {
  static golden_file const f("vision_blocks.safetensors");
  return f;
}

void require_close(std::string const& what, std::vector<float> const& got, std::vector<float> const& want,
                   test::tolerance t) {
  REQUIRE(got.size() == want.size());
  auto const r = test::compare_scaled(got.data(), want.data(), static_cast<std::int64_t>(got.size()),
                                      static_cast<std::int64_t>(got.size()), t, test::golden_rel_floor);
  if (std::getenv("TESSERA_GOLDEN_VERBOSE")) std::cout << "[golden] " << what << ": " << r.report() << "\n";
  INFO(what << ": " << r.report());
  REQUIRE(r.ok);
}

template <class T>
tensor_view<T const, 1> view1(std::vector<T> const& v) {
  return {v.data(), {static_cast<index_t>(v.size())}};
}
template <class T>
tensor_view<T const, 2> view2(std::vector<T> const& v, index_t rows, index_t cols) {
  REQUIRE(static_cast<index_t>(v.size()) == rows * cols);
  return {v.data(), {rows, cols}};
}

template <class Backend>
std::string label(std::string const& c) {
  return std::string(backend::name_v<Backend>) + " " + c;
}

}  // namespace

TEMPLATE_TEST_CASE("golden: patch_merge_2x2 is PatchMerger's view(-1, 4 d); LN -> merge -> MLP = PatchMerger",
                   "[golden][pool][patch_merge]", backend::reference, backend::cpu) {
  auto const& g = blocks();
  auto const thw = g.get<std::int32_t>("merger.grid_thw");
  std::vector<pack::patch_grid> grids;
  for (std::size_t i = 0; i + 2 < thw.size(); i += 3) grids.push_back({thw[i], thw[i + 1], thw[i + 2]});
  index_t n = 0;
  for (auto const& gr : grids) n += gr.n_patches();
  index_t const d = 64, hidden = 256, d_out = 96;
  REQUIRE(g.shape("merger.x") == std::vector<index_t>{n, d});
  auto const x = g.get<float>("merger.x");
  auto const ln_out = g.get<float>("merger.ln_out");
  exec_ctx<TestType> ctx(2);

  // The merge of HF's own ln_q output: window-major rows are a reshape, bit for bit.
  test::guarded<float> merged(n * d);
  pool::patch_merge_2x2<TestType>(view2(ln_out, n, d), grids, pack::token_order::merge_window_major,
                                  merged.view(n / 4, 4 * d), ctx);
  CHECK(merged.intact());
  CHECK(merged.values() == ln_out);
  // The same tokens in row-major order merge to the same rows.
  std::vector<float> row_major(ln_out.size());
  index_t base = 0;
  for (auto const& gr : grids) {
    for (index_t k = 0; k < gr.h * gr.w; ++k) {
      auto const p = pack::detail::position_of(k, gr.w, 2, true);
      for (index_t j = 0; j < d; ++j)
        row_major[static_cast<std::size_t>((base + p.row * gr.w + p.col) * d + j)] =
            ln_out[static_cast<std::size_t>((base + k) * d + j)];
    }
    base += gr.n_patches();
  }
  test::guarded<float> merged_rm(n * d);
  pool::patch_merge_2x2<TestType>(view2(row_major, n, d), grids, pack::token_order::row_major,
                                  merged_rm.view(n / 4, 4 * d), ctx);
  CHECK(merged_rm.values() == ln_out);

  // Whole PatchMerger from nn blocks: ln_q -> merge -> Linear -> GELU(erf) -> Linear.
  std::vector<float> ln(ln_out.size());
  nn::layer_norm<TestType>(view2(x, n, d), view1(g.get<float>("merger.ln_q.weight")),
                           view1(g.get<float>("merger.ln_q.bias")), 1e-6f, tensor_view<float, 2>(ln.data(), {n, d}),
                           ctx);
  require_close(label<TestType>("merger.ln_out"), ln, ln_out, test::tol<float>::vs_golden);
  std::vector<float> m(ln.size()), h(static_cast<std::size_t>(n / 4 * hidden));
  test::guarded<float> out(n / 4 * d_out);
  pool::patch_merge_2x2<TestType>(view2(ln, n, d), grids, pack::token_order::merge_window_major,
                                  tensor_view<float, 2>(m.data(), {n / 4, hidden}), ctx);
  auto const w0 = g.get<float>("merger.mlp.0.weight"), b0 = g.get<float>("merger.mlp.0.bias");
  auto const w2 = g.get<float>("merger.mlp.2.weight"), b2 = g.get<float>("merger.mlp.2.bias");
  tensor_view<float, 2> const hv(h.data(), {n / 4, hidden});
  nn::linear<TestType>(view2(m, n / 4, hidden), view2(w0, hidden, hidden), view1(b0), hv, ctx);
  nn::gelu<TestType>(hv, hv, ctx, nn::gelu_approx::erf);
  nn::linear<TestType>(tensor_view<float const, 2>(hv), view2(w2, d_out, hidden), view1(b2), out.view(n / 4, d_out),
                       ctx);
  CHECK(out.intact());
  require_close(label<TestType>("merger.out"), out.values(), g.get<float>("merger.out"), test::tol<float>::vs_golden);
}

TEMPLATE_TEST_CASE("golden: model::patch_merger (the POINTS1.5 projector block) equals transformers' PatchMerger",
                   "[golden][model][patch_merger]", backend::reference, backend::cpu) {
  auto const& g = blocks();
  auto const thw = g.get<std::int32_t>("merger.grid_thw");
  std::vector<patch_grid> grids;
  for (std::size_t i = 0; i + 2 < thw.size(); i += 3) grids.push_back({thw[i], thw[i + 1], thw[i + 2]});
  index_t n = 0;
  for (auto const& gr : grids) n += gr.n_patches();
  model::patch_merger_config const c{.context_dim = 64, .merge_size = 2, .hidden_dim = 256, .out_dim = 96};
  auto const x = g.get<float>("merger.x");
  auto const lw = g.get<float>("merger.ln_q.weight"), lb = g.get<float>("merger.ln_q.bias");
  auto const w0 = g.get<float>("merger.mlp.0.weight"), b0 = g.get<float>("merger.mlp.0.bias");
  auto const w2 = g.get<float>("merger.mlp.2.weight"), b2 = g.get<float>("merger.mlp.2.bias");
  model::patch_merger_weights<float> w;
  w.ln_q = {view1(lw), view1(lb)};
  w.fc1 = {view2(w0, c.hidden_dim, c.hidden_dim), view1(b0)};
  w.fc2 = {view2(w2, c.out_dim, c.hidden_dim), view1(b2)};
  exec_ctx<TestType> ctx(2);
  test::guarded<float> out(n / 4 * c.out_dim);
  model::patch_merger<TestType>(view2(x, n, c.context_dim), grids, pack::token_order::merge_window_major, c, w,
                                out.view(n / 4, c.out_dim), ctx);
  CHECK(out.intact());
  require_close(label<TestType>("patch_merger block: merger.out"), out.values(), g.get<float>("merger.out"),
                test::tol<float>::vs_golden);
  // Wrong shapes are refused with the block's name.
  test::guarded<float> small(n / 4 * (c.out_dim - 1));
  REQUIRE_THROWS_AS(model::patch_merger<TestType>(view2(x, n, c.context_dim), grids, pack::token_order::merge_window_major,
                                                  c, w, small.view(n / 4, c.out_dim - 1), ctx),
                    tessera::error);
}

TEMPLATE_TEST_CASE("golden: map_head matches timm AttentionPoolLatent", "[golden][pool][attention_pool]",
                   backend::reference, backend::cpu) {
  auto const& g = blocks();
  index_t const d = 64, d_ff = 256;
  std::vector<std::int64_t> lens;
  std::vector<float> x, want;
  // The three images packed, with a padding run of 3 junk tokens between images 0 and 1.
  std::vector<std::uint8_t> masked;
  for (int i = 0; i < 3; ++i) {
    auto const xi = g.get<float>("map.x." + std::to_string(i));
    auto const oi = g.get<float>("map.out." + std::to_string(i));
    REQUIRE(oi.size() == static_cast<std::size_t>(d));
    lens.push_back(static_cast<std::int64_t>(xi.size()) / d);
    x.insert(x.end(), xi.begin(), xi.end());
    want.insert(want.end(), oi.begin(), oi.end());
    masked.push_back(0);
    if (i == 0) {
      lens.push_back(3);
      x.insert(x.end(), static_cast<std::size_t>(3 * d), 1e3f);
      want.insert(want.end(), static_cast<std::size_t>(d), 0.0f);
      masked.push_back(1);
    }
  }
  CHECK(lens == std::vector<std::int64_t>{9, 3, 1, 40});
  auto const seqs = seq_offsets::from_lengths(lens);
  auto const probe = g.get<float>("map.latent");
  auto const qw = g.get<float>("map.q.weight"), qb = g.get<float>("map.q.bias");
  auto const kvw = g.get<float>("map.kv.weight"), kvb = g.get<float>("map.kv.bias");
  auto const pw = g.get<float>("map.proj.weight"), pb = g.get<float>("map.proj.bias");
  auto const nw = g.get<float>("map.norm.weight"), nb = g.get<float>("map.norm.bias");
  auto const f1w = g.get<float>("map.mlp.fc1.weight"), f1b = g.get<float>("map.mlp.fc1.bias");
  auto const f2w = g.get<float>("map.mlp.fc2.weight"), f2b = g.get<float>("map.mlp.fc2.bias");
  pool::map_head_weights<float> const w{view1(probe), view2(qw, d, d),      view1(qb),  view2(kvw, 2 * d, d),
                                        view1(kvb),   view2(pw, d, d),      view1(pb),  view1(nw),
                                        view1(nb),    view2(f1w, d_ff, d), view1(f1b), view2(f2w, d, d_ff),
                                        view1(f2b)};
  pool::map_head_options opt;
  opt.n_heads = 4;
  exec_ctx<TestType> ctx(2);
  test::guarded<float> out(4 * d);
  pool::map_head<TestType>(view2(x, seqs.n_tokens(), d), seqs, w, opt, out.view(4, d), ctx, masked);
  CHECK(out.intact());
  require_close(label<TestType>("map.out"), out.values(), want, test::tol<float>::vs_golden);
}

TEMPLATE_TEST_CASE("golden: navit_pool matches vit-pytorch NaViT attention pooling", "[golden][pool][attention_pool]",
                   backend::reference, backend::cpu) {
  auto const& g = blocks();
  index_t const d = 64, heads = 4, hd = 16;
  REQUIRE(g.shape("navitpool.x")[0] == 1);
  auto const ids = g.get<std::int32_t>("navitpool.image_ids");
  auto const n = static_cast<index_t>(ids.size());
  // Runs of equal image ids -> one sequence each; id -1 = padding.
  std::vector<std::int64_t> lens;
  std::vector<std::uint8_t> masked;
  std::vector<std::int32_t> run_ids;
  for (index_t t = 0; t < n; ++t) {
    if (t == 0 || ids[static_cast<std::size_t>(t)] != ids[static_cast<std::size_t>(t - 1)]) {
      lens.push_back(0);
      run_ids.push_back(ids[static_cast<std::size_t>(t)]);
      masked.push_back(ids[static_cast<std::size_t>(t)] < 0 ? 1 : 0);
    }
    ++lens.back();
  }
  REQUIRE(run_ids == std::vector<std::int32_t>{0, 1, 2, -1});
  auto const seqs = seq_offsets::from_lengths(lens);
  auto const x = g.get<float>("navitpool.x");
  auto const probe = g.get<float>("navitpool.queries"), gamma = g.get<float>("navitpool.norm.gamma");
  auto const to_q = g.get<float>("navitpool.to_q.weight"), to_kv = g.get<float>("navitpool.to_kv.weight");
  auto const qg = g.get<float>("navitpool.q_norm.gamma"), kg = g.get<float>("navitpool.k_norm.gamma");
  auto const to_out = g.get<float>("navitpool.to_out.0.weight");
  pool::navit_pool_weights<float> const w{view1(probe),          view1(gamma),         view2(to_q, heads * hd, d),
                                          view2(to_kv, 2 * heads * hd, d), view2(qg, heads, hd), view2(kg, heads, hd),
                                          view2(to_out, d, heads * hd)};
  pool::navit_pool_options opt;
  opt.n_heads = heads;
  exec_ctx<TestType> ctx(2);
  test::guarded<float> out(4 * d);
  pool::navit_pool<TestType>(view2(x, n, d), seqs, w, opt, out.view(4, d), ctx, masked);
  CHECK(out.intact());
  auto want = g.get<float>("navitpool.out");
  want.insert(want.end(), static_cast<std::size_t>(d), 0.0f);  // the padding run's row
  require_close(label<TestType>("navitpool.out"), out.values(), want, test::tol<float>::vs_golden);
}
