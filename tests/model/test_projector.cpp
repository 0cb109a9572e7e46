// SPDX-License-Identifier: Apache-2.0
// The projector blocks: model::mlp_projector on a hand-worked case (reference backend), both
// projectors on the cpu backend against the reference on random data with f32 and bf16 weights,
// and their refusals. model::patch_merger against transformers' PatchMerger is in
// tests/golden/test_golden_pool.cpp.
#include "common/compare.hpp"
#include "common/tolerance.hpp"

#include <tessera/model/projector/mlp_projector.hpp>
#include <tessera/model/projector/patch_merger.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using namespace tessera;

template <class T>
std::vector<T> random_values(std::size_t n, std::uint32_t seed, float scale) {
  std::vector<T> v(n);
  std::uint32_t s = seed * 2654435761u + 1u;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = from_float<T>(scale * (static_cast<float>(s >> 8) / 16777216.0f - 0.5f));
  }
  return v;
}

template <class T>
tensor_view<T const, 2> v2(std::vector<T> const& v, index_t r, index_t c) {
  return {v.data(), {r, c}};
}
template <class T>
tensor_view<T const, 1> v1(std::vector<T> const& v) {
  return {v.data(), {static_cast<index_t>(v.size())}};
}

}  // namespace

TEST_CASE("mlp_projector: hand-worked case (reference)", "[model][projector][unit]") {
  // x = [1, -2]; fc1 = [[1, 0], [0, 1], [1, 1]], b1 = [0, 0, 1] -> h = [1, -2, 0];
  // silu(h) = [1 * sigmoid(1), -2 * sigmoid(-2), 0]; fc2 = [[1, 1, 1]], no bias.
  std::vector<float> const x{1, -2}, w1{1, 0, 0, 1, 1, 1}, b1{0, 0, 1}, w2{1, 1, 1};
  model::mlp_projector_config const c{.d_in = 2, .d_hidden = 3, .d_out = 1, .activation = nn::activation_kind::silu};
  model::mlp_projector_weights<float> w;
  w.fc1 = {v2(w1, 3, 2), v1(b1)};
  w.fc2 = {v2(w2, 1, 3), std::nullopt};
  float out = 0;
  exec_ctx<backend::reference> ctx;
  model::mlp_projector<backend::reference>(v2(x, 1, 2), c, w, tensor_view<float, 2>(&out, {1, 1}), ctx);
  double const want = 1.0 / (1.0 + std::exp(-1.0)) - 2.0 / (1.0 + std::exp(2.0));
  REQUIRE(std::abs(out - want) <= 1e-6);
}

TEMPLATE_TEST_CASE("projectors: cpu backend equals the reference", "[model][projector][unit]", float, bf16) {
  using T = TestType;
  auto const tol = test::tol<T>::vs_ref;
  // patch_merger on two images (2 x 4 and 4 x 2 patches, window-major), context_dim 24.
  std::vector<patch_grid> const grids{{1, 2, 4}, {1, 4, 2}};
  index_t const n = 16, d = 24, hidden = 96, d_out = 40;
  model::patch_merger_config const pc{.context_dim = d, .merge_size = 2, .hidden_dim = hidden, .out_dim = d_out};
  auto const x = random_values<float>(static_cast<std::size_t>(n * d), 1, 4.0f);
  auto const lw = random_values<T>(static_cast<std::size_t>(d), 2, 2.0f), lb = random_values<T>(static_cast<std::size_t>(d), 3, 1.0f);
  auto const w0 = random_values<T>(static_cast<std::size_t>(hidden * hidden), 4, 0.3f);
  auto const b0 = random_values<T>(static_cast<std::size_t>(hidden), 5, 0.3f);
  auto const w2 = random_values<T>(static_cast<std::size_t>(d_out * hidden), 6, 0.3f);
  auto const b2 = random_values<T>(static_cast<std::size_t>(d_out), 7, 0.3f);
  model::patch_merger_weights<T> pw;
  pw.ln_q = {v1(lw), v1(lb)};
  pw.fc1 = {v2(w0, hidden, hidden), v1(b0)};
  pw.fc2 = {v2(w2, d_out, hidden), v1(b2)};
  test::guarded<float> got(n / 4 * d_out), want(n / 4 * d_out);
  exec_ctx<backend::cpu> cpu(2);
  exec_ctx<backend::reference> ref;
  model::patch_merger<backend::cpu>(v2(x, n, d), grids, pack::token_order::merge_window_major, pc, pw,
                                    got.view(n / 4, d_out), cpu);
  model::patch_merger<backend::reference>(v2(x, n, d), grids, pack::token_order::merge_window_major, pc, pw,
                                          want.view(n / 4, d_out), ref);
  CHECK(got.intact());
  auto const r = test::compare(got.values().data(), want.values().data(), n / 4 * d_out, tol);
  INFO("patch_merger: " << r.report());
  REQUIRE(r.ok);

  // mlp_projector, GELU (erf), 7 tokens (a tail that is no multiple of a SIMD width).
  model::mlp_projector_config const mc{.d_in = 17, .d_hidden = 72, .d_out = 9};
  auto const mx = random_values<float>(7 * 17, 8, 2.0f);
  auto const m1 = random_values<T>(72 * 17, 9, 0.5f), mb1 = random_values<T>(72, 10, 0.5f);
  auto const m2 = random_values<T>(9 * 72, 11, 0.5f);
  model::mlp_projector_weights<T> mw;
  mw.fc1 = {v2(m1, 72, 17), v1(mb1)};
  mw.fc2 = {v2(m2, 9, 72), std::nullopt};
  test::guarded<float> mg(7 * 9), mr(7 * 9);
  model::mlp_projector<backend::cpu>(v2(mx, 7, 17), mc, mw, mg.view(7, 9), cpu);
  model::mlp_projector<backend::reference>(v2(mx, 7, 17), mc, mw, mr.view(7, 9), ref);
  CHECK(mg.intact());
  auto const r2 = test::compare(mg.values().data(), mr.values().data(), 7 * 9, tol);
  INFO("mlp_projector: " << r2.report());
  REQUIRE(r2.ok);
}

TEST_CASE("projectors: inconsistent configs and weights are refused", "[model][projector][unit]") {
  std::vector<float> const x(16 * 8, 0.1f), lw(8, 1.0f), lb(8, 0.0f), w0(32 * 32, 0.1f), b0(32, 0.0f), w2(4 * 32, 0.1f),
      b2(4, 0.0f);
  std::vector<patch_grid> const grids{{1, 4, 4}};
  model::patch_merger_weights<float> w;
  w.ln_q = {v1(lw), v1(lb)};
  w.fc1 = {v2(w0, 32, 32), v1(b0)};
  w.fc2 = {v2(w2, 4, 32), v1(b2)};
  std::vector<float> out(4 * 4);
  exec_ctx<backend::reference> ctx;
  model::patch_merger_config bad{.context_dim = 8, .merge_size = 3, .hidden_dim = 32, .out_dim = 4};
  REQUIRE_THROWS_AS(model::patch_merger<backend::reference>(v2(x, 16, 8), grids, pack::token_order::merge_window_major,
                                                            bad, w, tensor_view<float, 2>(out.data(), {4, 4}), ctx),
                    tessera::error);
  model::patch_merger_config const ok{.context_dim = 8, .merge_size = 2, .hidden_dim = 32, .out_dim = 4};
  model::patch_merger_weights<float> no_bias = w;
  no_bias.fc1.bias.reset();
  REQUIRE_THROWS_AS(model::patch_merger<backend::reference>(v2(x, 16, 8), grids, pack::token_order::merge_window_major,
                                                            ok, no_bias, tensor_view<float, 2>(out.data(), {4, 4}), ctx),
                    tessera::error);
  model::patch_merger<backend::reference>(v2(x, 16, 8), grids, pack::token_order::merge_window_major, ok, w,
                                          tensor_view<float, 2>(out.data(), {4, 4}), ctx);
  model::mlp_projector_config const mc{.d_in = 8, .d_hidden = 32, .d_out = 4};
  model::mlp_projector_weights<float> mw;
  mw.fc1 = {v2(w0, 32, 32), std::nullopt};  // [32, 32] where [32, 8] is needed
  mw.fc2 = {v2(w2, 4, 32), std::nullopt};
  REQUIRE_THROWS_AS(model::mlp_projector<backend::reference>(v2(x, 16, 8), mc, mw, tensor_view<float, 2>(out.data(), {4, 4}), ctx),
                    tessera::error);
}
