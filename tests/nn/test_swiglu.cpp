// SPDX-License-Identifier: Apache-2.0
// nn::swiglu: reference on hand-worked values; cpu vs reference over awkward widths, strided rows,
// gate / up as halves of one fused projection, in place on gate or up, any thread count; errors.
#include <tessera/nn/swiglu.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <vector>

using namespace tessera;
using test::strided_rows;

namespace {

template <class Backend>
std::vector<float> run_swiglu(std::vector<float> const& gate, std::vector<float> const& up, index_t n_rows,
                              index_t dim, int threads = 2) {
  strided_rows g(n_rows, dim, dim, gate), u(n_rows, dim, dim, up), y(n_rows, dim, dim, std::vector<float>(gate.size()));
  exec_ctx<Backend> ctx(threads);
  nn::swiglu(g.view(), u.view(), y.view(), ctx);
  REQUIRE(y.intact());
  return y.values();
}

}  // namespace

TEST_CASE("swiglu reference matches hand-worked values", "[nn][swiglu][unit]") {
  // silu(g) * u with silu(g) = g / (1 + exp(-g)) (Python math, double).
  std::vector<float> const gate{1, -1, 0, 2, -3}, up{2, 3, 5, -1, 0.5f};
  std::vector<double> const exact{1.4621171572600098, -0.80682426410998531, 0, -1.7615941559557646,
                                  -0.071138809766350175};
  std::vector<float> const want(exact.begin(), exact.end());
  TESSERA_REQUIRE_CLOSE(run_swiglu<backend::reference>(gate, up, 1, 5), want, (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_swiglu<backend::cpu>(gate, up, 1, 5), want, (test::tolerance{1e-6, 1e-6}));
}

TEST_CASE("swiglu cpu matches the reference", "[nn][swiglu][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  exec_ctx<backend::reference> ref_ctx;
  exec_ctx<backend::cpu> cpu_ctx(2);
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (index_t n_rows : {1, 3, 17}) {
      INFO("dim " << dim << ", rows " << n_rows);
      auto const g = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s, 3.0f);
      auto const u = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s, 2.0f);
      {  // separate strided buffers
        strided_rows gin(n_rows, dim, dim + 3, g), uin(n_rows, dim, dim + 11, u);
        strided_rows want(n_rows, dim, dim + 5, std::vector<float>(g.size()));
        strided_rows got(n_rows, dim, dim + 5, std::vector<float>(g.size()));
        nn::swiglu(gin.view(), uin.view(), want.view(), ref_ctx);
        nn::swiglu(gin.view(), uin.view(), got.view(), cpu_ctx);
        REQUIRE(want.intact());
        REQUIRE(got.intact());
        REQUIRE(gin.intact());
        REQUIRE(uin.intact());
        TESSERA_REQUIRE_CLOSE(got.values(), want.values(), test::tol<float>::vs_ref);

        // In place on gate, then on up.
        strided_rows g2(n_rows, dim, dim + 3, g), u2(n_rows, dim, dim + 11, u);
        nn::swiglu(g2.view(), u2.view(), g2.view(), cpu_ctx);
        REQUIRE(g2.intact());
        REQUIRE(g2.values() == got.values());
        strided_rows g3(n_rows, dim, dim + 3, g), u3(n_rows, dim, dim + 11, u);
        nn::swiglu(g3.view(), u3.view(), u3.view(), cpu_ctx);
        REQUIRE(u3.intact());
        REQUIRE(u3.values() == got.values());
        strided_rows g4(n_rows, dim, dim + 3, g), u4(n_rows, dim, dim + 11, u);
        nn::swiglu(g4.view(), u4.view(), u4.view(), ref_ctx);
        REQUIRE(u4.values() == want.values());
      }
      {  // gate and up as the two halves of one fused [n_rows, 2 * dim] projection
        std::vector<float> fused(static_cast<std::size_t>(n_rows * 2 * dim));
        for (index_t r = 0; r < n_rows; ++r)
          for (index_t j = 0; j < dim; ++j) {
            fused[static_cast<std::size_t>(r * 2 * dim + j)] = g[static_cast<std::size_t>(r * dim + j)];
            fused[static_cast<std::size_t>(r * 2 * dim + dim + j)] = u[static_cast<std::size_t>(r * dim + j)];
          }
        tensor_view<float const, 2> gv(fused.data(), {n_rows, dim}, {2 * dim, 1});
        tensor_view<float const, 2> uv(fused.data() + dim, {n_rows, dim}, {2 * dim, 1});
        test::guarded<float> y(n_rows * dim), y_ref(n_rows * dim);
        nn::swiglu(gv, uv, y.view(n_rows, dim), cpu_ctx);
        nn::swiglu(gv, uv, y_ref.view(n_rows, dim), ref_ctx);
        REQUIRE(y.intact());
        TESSERA_REQUIRE_CLOSE(y.values(), y_ref.values(), test::tol<float>::vs_ref);
      }
    }
}

TEST_CASE("swiglu cpu result does not depend on the thread count", "[nn][swiglu][unit]") {
  index_t const n_rows = 5, dim = 18944;  // Qwen2.5-7B d_ff
  auto const g = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed(), 3.0f);
  auto const u = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed() + 1);
  auto const one = run_swiglu<backend::cpu>(g, u, n_rows, dim, 1);
  CHECK(run_swiglu<backend::cpu>(g, u, n_rows, dim, 2) == one);
  CHECK(run_swiglu<backend::cpu>(g, u, n_rows, dim, 3) == one);
  TESSERA_REQUIRE_CLOSE(one, run_swiglu<backend::reference>(g, u, n_rows, dim), test::tol<float>::vs_ref);
}

TEST_CASE("swiglu with huge gates stays finite", "[nn][swiglu][unit]") {
  std::vector<float> const g{-3e38f, -1e30f, -100.0f, -88.0f, 0.0f, 88.0f, 100.0f, 1e30f};
  std::vector<float> const u{2.0f, -2.0f, 3.0f, -3.0f, 1.0f, 0.5f, -0.5f, 1e-8f};
  auto const got = run_swiglu<backend::cpu>(g, u, 1, 8);
  for (float v : got) CHECK(std::isfinite(v));
  TESSERA_REQUIRE_CLOSE(got, run_swiglu<backend::reference>(g, u, 1, 8), test::tol<float>::vs_ref);
}

TEST_CASE("swiglu rejects invalid arguments", "[nn][swiglu][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> gs(4 * 8, 1.0f), us(4 * 8, 1.0f), ys(4 * 8);
  tensor_view<float const, 2> g(gs.data(), {4, 8}), u(us.data(), {4, 8});
  tensor_view<float, 2> y(ys.data(), {4, 8});
  REQUIRE_NOTHROW(nn::swiglu(g, u, y, ctx));
  REQUIRE_NOTHROW(nn::swiglu(g, u, y, ref_ctx));
  REQUIRE_THROWS_AS(nn::swiglu(g, tensor_view<float const, 2>(us.data(), {4, 7}), y, ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::swiglu(g, tensor_view<float const, 2>(us.data(), {3, 8}), y, ref_ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::swiglu(g, u, tensor_view<float, 2>(ys.data(), {4, 7}), ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::swiglu(tensor_view<float const, 2>(gs.data(), {4, 4}, {8, 2}),
                               tensor_view<float const, 2>(us.data(), {4, 4}), tensor_view<float, 2>(ys.data(), {4, 4}),
                               ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(nn::swiglu(tensor_view<float const, 2>(gs.data(), {4, 4}),
                               tensor_view<float const, 2>(us.data(), {4, 4}, {8, 2}),
                               tensor_view<float, 2>(ys.data(), {4, 4}), ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(
      nn::swiglu(tensor_view<float const, 2>(gs.data(), {4, 4}), tensor_view<float const, 2>(us.data(), {4, 4}),
                 tensor_view<float, 2>(ys.data(), {4, 4}, {8, 2}), ctx),
      tessera::error);
  // In place with a different row stride, on gate and on up.
  REQUIRE_THROWS_AS(nn::swiglu(tensor_view<float const, 2>(gs.data(), {3, 8}), u.slice_rows(0, 3),
                               tensor_view<float, 2>(gs.data(), {3, 8}, {9, 1}), ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(nn::swiglu(g.slice_rows(0, 3), tensor_view<float const, 2>(us.data(), {3, 8}),
                               tensor_view<float, 2>(us.data(), {3, 8}, {9, 1}), ctx),
                    tessera::error);
}
