// SPDX-License-Identifier: Apache-2.0
// nn::layer_norm: reference on hand-worked rows; cpu vs reference over awkward widths, every
// weight dtype, bias or none, strided rows, in place, any thread count; constant and offset rows;
// argument errors.
#include <tessera/nn/layer_norm.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

using namespace tessera;
using test::strided_rows;

namespace {

template <class W>
std::vector<W> affine_params(std::size_t n, std::uint64_t seed, float mean) {
  auto const f = test::random_vector<float>(n, seed, 0.5f);
  std::vector<W> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = from_float<W>(mean + f[i]);
  return w;
}

template <class Backend, class W>
std::vector<float> run_layer_norm(std::vector<float> const& x, index_t n_rows, index_t dim, std::vector<W> const& w,
                                  std::type_identity_t<std::vector<W>> const* b, float eps, int threads = 2) {
  strided_rows xin(n_rows, dim, dim, x), y(n_rows, dim, dim, std::vector<float>(x.size(), 0.0f));
  exec_ctx<Backend> ctx(threads);
  tensor_view<W const, 1> bv = b ? tensor_view<W const, 1>(b->data(), {dim}) : tensor_view<W const, 1>(nullptr, {0});
  nn::layer_norm(xin.view(), tensor_view<W const, 1>(w.data(), {dim}), bv, eps, y.view(), ctx);
  REQUIRE(y.intact());
  return y.values();
}

}  // namespace

TEST_CASE("layer_norm reference matches hand-worked rows", "[nn][layer_norm][unit]") {
  // Row 0: [1, 2, 3, 4]: mean 2.5, biased var 1.25; eps 1 -> 1 / sqrt(2.25) = 2/3 -> [-1, -1/3, 1/3, 1].
  // Row 1: [0, 0, 0, 4]: mean 1, var (1 + 1 + 1 + 9) / 4 = 3; eps 1 -> 1/2 -> [-0.5, -0.5, -0.5, 1.5].
  std::vector<float> const x{1, 2, 3, 4, 0, 0, 0, 4};
  std::vector<float> const w{2, 3, -1, 0.5f}, b{0.5f, 0, 1, -1};
  std::vector<float> const want_bias{-1.5f, -1, 2.0f / 3.0f, -0.5f, -0.5f, -1.5f, 1.5f, -0.25f};
  std::vector<float> const want_nobias{-2, -1, -1.0f / 3.0f, 0.5f, -1, -1.5f, 0.5f, 0.75f};
  TESSERA_REQUIRE_CLOSE(run_layer_norm<backend::reference>(x, 2, 4, w, &b, 1.0f), want_bias,
                        (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_layer_norm<backend::reference>(x, 2, 4, w, nullptr, 1.0f), want_nobias,
                        (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_layer_norm<backend::cpu>(x, 2, 4, w, &b, 1.0f), want_bias, (test::tolerance{1e-6, 1e-6}));
  TESSERA_REQUIRE_CLOSE(run_layer_norm<backend::cpu>(x, 2, 4, w, nullptr, 1.0f), want_nobias,
                        (test::tolerance{1e-6, 1e-6}));
}

TEMPLATE_TEST_CASE("layer_norm cpu matches the reference", "[nn][layer_norm][unit]", float, bf16, f16) {
  using W = TestType;
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  exec_ctx<backend::reference> ref_ctx;
  exec_ctx<backend::cpu> cpu_ctx(2);
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (index_t n_rows : {1, 3, 17})
      for (int variant = 0; variant < 2; ++variant) {  // 0: no bias, contiguous; 1: bias, strided rows
        bool const with_bias = variant == 1;
        index_t const stride = variant == 1 ? dim + 5 : dim;
        INFO("dim " << dim << ", rows " << n_rows << ", bias " << with_bias << ", row stride " << stride);
        auto x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s);
        for (auto& v : x) v += 0.75f;  // a non-zero mean, so the subtraction matters
        auto const w = affine_params<W>(static_cast<std::size_t>(dim), ++s, 1.0f);
        auto const b = affine_params<W>(static_cast<std::size_t>(dim), ++s, 0.0f);
        tensor_view<W const, 1> wv(w.data(), {dim});
        tensor_view<W const, 1> bv =
            with_bias ? tensor_view<W const, 1>(b.data(), {dim}) : tensor_view<W const, 1>(nullptr, {0});
        float const eps = 1e-6f;

        strided_rows xin(n_rows, dim, stride, x);
        strided_rows want(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        strided_rows got(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        nn::layer_norm(xin.view(), wv, bv, eps, want.view(), ref_ctx);
        nn::layer_norm(xin.view(), wv, bv, eps, got.view(), cpu_ctx);
        REQUIRE(want.intact());
        REQUIRE(got.intact());
        TESSERA_REQUIRE_CLOSE(got.values(), want.values(), test::tol<float>::vs_ref);

        strided_rows inplace(n_rows, dim, stride, x);  // y is exactly x
        nn::layer_norm(inplace.view(), wv, bv, eps, inplace.view(), cpu_ctx);
        REQUIRE(inplace.intact());
        REQUIRE(inplace.values() == got.values());
        strided_rows inplace_ref(n_rows, dim, stride, x);
        nn::layer_norm(inplace_ref.view(), wv, bv, eps, inplace_ref.view(), ref_ctx);
        REQUIRE(inplace_ref.values() == want.values());
      }
}

TEST_CASE("layer_norm cpu result does not depend on the thread count", "[nn][layer_norm][unit]") {
  index_t const n_rows = 67, dim = 1280;  // above the parallel threshold
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed());
  auto const w = affine_params<bf16>(static_cast<std::size_t>(dim), test::seed() + 1, 1.0f);
  auto const b = affine_params<bf16>(static_cast<std::size_t>(dim), test::seed() + 2, 0.0f);
  auto const one = run_layer_norm<backend::cpu>(x, n_rows, dim, w, &b, 1e-6f, 1);
  CHECK(run_layer_norm<backend::cpu>(x, n_rows, dim, w, &b, 1e-6f, 2) == one);
  CHECK(run_layer_norm<backend::cpu>(x, n_rows, dim, w, &b, 1e-6f, 3) == one);
  TESSERA_REQUIRE_CLOSE(one, run_layer_norm<backend::reference>(x, n_rows, dim, w, &b, 1e-6f),
                        test::tol<float>::vs_ref);
}

TEST_CASE("layer_norm of a constant row is the bias, of an offset row stays accurate", "[nn][layer_norm][unit]") {
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (float c : {0.0f, 0.1f, -3.7f, 1000.3f}) {
      INFO("dim " << dim << ", constant " << c);
      std::vector<float> const x(static_cast<std::size_t>(2 * dim), c);
      auto const w = affine_params<float>(static_cast<std::size_t>(dim), test::seed(), 1.0f);
      auto const b = affine_params<float>(static_cast<std::size_t>(dim), test::seed() + 1, 0.0f);
      std::vector<float> want(b);
      want.insert(want.end(), b.begin(), b.end());
      // Exact: the corrected two-pass mean of a constant row is the constant (see layer_norm_cpu.hpp).
      CHECK(run_layer_norm<backend::cpu>(x, 2, dim, w, &b, 1e-6f) == want);
      CHECK(run_layer_norm<backend::reference>(x, 2, dim, w, &b, 1e-6f) == want);
    }
  // mean 1000, std 1: E[x^2] - mean^2 would lose every digit in f32; two passes keep them.
  index_t const n_rows = 5, dim = 1280;
  auto x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed() + 2);
  for (auto& v : x) v += 1000.0f;
  std::vector<float> const w(static_cast<std::size_t>(dim), 1.0f);
  TESSERA_REQUIRE_CLOSE(run_layer_norm<backend::cpu>(x, n_rows, dim, w, nullptr, 1e-5f),
                        run_layer_norm<backend::reference>(x, n_rows, dim, w, nullptr, 1e-5f),
                        test::tol<float>::vs_ref);
}

TEST_CASE("layer_norm rejects invalid arguments", "[nn][layer_norm][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> xs(4 * 8, 1.0f), ys(4 * 8), w(8, 1.0f), b(8, 0.0f);
  tensor_view<float const, 2> x(xs.data(), {4, 8});
  tensor_view<float, 2> y(ys.data(), {4, 8});
  tensor_view<float const, 1> wv(w.data(), {8}), bv(b.data(), {8}), none(nullptr, {0});
  REQUIRE_NOTHROW(nn::layer_norm(x, wv, bv, 1e-5f, y, ctx));
  REQUIRE_NOTHROW(nn::layer_norm(x, wv, none, 1e-5f, y, ref_ctx));
  // shapes
  REQUIRE_THROWS_AS(nn::layer_norm(x, tensor_view<float const, 1>(w.data(), {7}), bv, 1e-5f, y, ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::layer_norm(x, wv, tensor_view<float const, 1>(b.data(), {7}), 1e-5f, y, ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::layer_norm(x, wv, bv, 1e-5f, tensor_view<float, 2>(ys.data(), {3, 8}), ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::layer_norm(x, wv, bv, 1e-5f, tensor_view<float, 2>(ys.data(), {8, 4}), ref_ctx),
                    tessera::error);
  // non-contiguous last dimension
  REQUIRE_THROWS_AS(
      nn::layer_norm(tensor_view<float const, 2>(xs.data(), {4, 4}, {8, 2}), tensor_view<float const, 1>(w.data(), {4}),
                     none, 1e-5f, tensor_view<float, 2>(ys.data(), {4, 4}), ctx),
      tessera::error);
  REQUIRE_THROWS_AS(nn::layer_norm(x, tensor_view<float const, 1>(w.data(), {8}, {2}), none, 1e-5f, y, ctx),
                    tessera::error);
  // eps
  for (float eps : {0.0f, -1e-5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
    REQUIRE_THROWS_AS(nn::layer_norm(x, wv, bv, eps, y, ctx), tessera::error);
  // in place with a different row stride
  std::vector<float> big(4 * 9, 1.0f);
  REQUIRE_THROWS_AS(nn::layer_norm(tensor_view<float const, 2>(big.data(), {4, 8}), wv, bv, 1e-5f,
                                   tensor_view<float, 2>(big.data(), {4, 8}, {9, 1}), ctx),
                    tessera::error);
}
