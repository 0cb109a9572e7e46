// SPDX-License-Identifier: Apache-2.0
// nn::rms_norm: reference on a hand-worked row; cpu vs reference over awkward widths, every
// weight dtype, strided rows, in place, any thread count; constant and zero rows; argument errors.
#include <tessera/nn/rms_norm.hpp>

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
std::vector<W> scale_params(std::size_t n, std::uint64_t seed) {
  auto const f = test::random_vector<float>(n, seed, 0.5f);
  std::vector<W> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = from_float<W>(1.0f + f[i]);
  return w;
}

template <class Backend, class W>
std::vector<float> run_rms_norm(std::vector<float> const& x, index_t n_rows, index_t dim, std::vector<W> const& w,
                                float eps, int threads = 2) {
  strided_rows xin(n_rows, dim, dim, x), y(n_rows, dim, dim, std::vector<float>(x.size(), 0.0f));
  exec_ctx<Backend> ctx(threads);
  nn::rms_norm(xin.view(), tensor_view<W const, 1>(w.data(), {dim}), eps, y.view(), ctx);
  REQUIRE(y.intact());
  return y.values();
}

}  // namespace

TEST_CASE("rms_norm reference matches a hand-worked row", "[nn][rms_norm][unit]") {
  // [1, 2, 3, 4]: mean of squares 30 / 4 = 7.5; eps 1.5 -> 1 / sqrt(9) = 1/3 -> [1/3, 2/3, 1, 4/3];
  // times w = [3, 1.5, -1, 0.75] -> [1, 1, -1, 1]. Row 2: [0, 0, 0, 0] -> 0 (no NaN).
  std::vector<float> const x{1, 2, 3, 4, 0, 0, 0, 0}, w{3, 1.5f, -1, 0.75f};
  std::vector<float> const want{1, 1, -1, 1, 0, 0, 0, 0};
  TESSERA_REQUIRE_CLOSE(run_rms_norm<backend::reference>(x, 2, 4, w, 1.5f), want, (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_rms_norm<backend::cpu>(x, 2, 4, w, 1.5f), want, (test::tolerance{1e-6, 1e-6}));
}

TEMPLATE_TEST_CASE("rms_norm cpu matches the reference", "[nn][rms_norm][unit]", float, bf16, f16) {
  using W = TestType;
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  exec_ctx<backend::reference> ref_ctx;
  exec_ctx<backend::cpu> cpu_ctx(2);
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (index_t n_rows : {1, 3, 17})
      for (index_t pad : {0, 3}) {
        index_t const stride = dim + pad;
        INFO("dim " << dim << ", rows " << n_rows << ", row stride " << stride);
        auto x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s, 2.0f);
        auto const w = scale_params<W>(static_cast<std::size_t>(dim), ++s);
        tensor_view<W const, 1> wv(w.data(), {dim});
        float const eps = 1e-6f;

        strided_rows xin(n_rows, dim, stride, x);
        strided_rows want(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        strided_rows got(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        nn::rms_norm(xin.view(), wv, eps, want.view(), ref_ctx);
        nn::rms_norm(xin.view(), wv, eps, got.view(), cpu_ctx);
        REQUIRE(want.intact());
        REQUIRE(got.intact());
        TESSERA_REQUIRE_CLOSE(got.values(), want.values(), test::tol<float>::vs_ref);

        strided_rows inplace(n_rows, dim, stride, x);  // y is exactly x
        nn::rms_norm(inplace.view(), wv, eps, inplace.view(), cpu_ctx);
        REQUIRE(inplace.intact());
        REQUIRE(inplace.values() == got.values());
        strided_rows inplace_ref(n_rows, dim, stride, x);
        nn::rms_norm(inplace_ref.view(), wv, eps, inplace_ref.view(), ref_ctx);
        REQUIRE(inplace_ref.values() == want.values());
      }
}

TEST_CASE("rms_norm cpu result does not depend on the thread count", "[nn][rms_norm][unit]") {
  index_t const n_rows = 67, dim = 1536;  // above the parallel threshold
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed());
  auto const w = scale_params<bf16>(static_cast<std::size_t>(dim), test::seed() + 1);
  auto const one = run_rms_norm<backend::cpu>(x, n_rows, dim, w, 1e-6f, 1);
  CHECK(run_rms_norm<backend::cpu>(x, n_rows, dim, w, 1e-6f, 2) == one);
  CHECK(run_rms_norm<backend::cpu>(x, n_rows, dim, w, 1e-6f, 3) == one);
  TESSERA_REQUIRE_CLOSE(one, run_rms_norm<backend::reference>(x, n_rows, dim, w, 1e-6f), test::tol<float>::vs_ref);
}

TEST_CASE("rms_norm of constant rows matches the closed form", "[nn][rms_norm][unit]") {
  // A row of c: y = c / sqrt(c^2 + eps) * w; a zero row gives exactly 0.
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (float c : {0.0f, 1e-3f, -0.1f, 3.7f, -1000.3f}) {
      INFO("dim " << dim << ", constant " << c);
      float const eps = 1e-5f;
      std::vector<float> const x(static_cast<std::size_t>(dim), c);
      auto const w = scale_params<float>(static_cast<std::size_t>(dim), test::seed());
      std::vector<float> want(static_cast<std::size_t>(dim));
      double const s = static_cast<double>(c) / std::sqrt(static_cast<double>(c) * c + static_cast<double>(eps));
      for (std::size_t j = 0; j < want.size(); ++j) want[j] = static_cast<float>(s * w[j]);
      TESSERA_REQUIRE_CLOSE(run_rms_norm<backend::cpu>(x, 1, dim, w, eps), want, test::tol<float>::vs_ref);
      TESSERA_REQUIRE_CLOSE(run_rms_norm<backend::reference>(x, 1, dim, w, eps), want, test::tol<float>::vs_ref);
    }
}

TEST_CASE("rms_norm rejects invalid arguments", "[nn][rms_norm][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> xs(4 * 8, 1.0f), ys(4 * 8), w(8, 1.0f);
  tensor_view<float const, 2> x(xs.data(), {4, 8});
  tensor_view<float, 2> y(ys.data(), {4, 8});
  tensor_view<float const, 1> wv(w.data(), {8});
  REQUIRE_NOTHROW(nn::rms_norm(x, wv, 1e-6f, y, ctx));
  REQUIRE_NOTHROW(nn::rms_norm(x, wv, 1e-6f, y, ref_ctx));
  REQUIRE_THROWS_AS(nn::rms_norm(x, tensor_view<float const, 1>(w.data(), {7}), 1e-6f, y, ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::rms_norm(x, wv, 1e-6f, tensor_view<float, 2>(ys.data(), {3, 8}), ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::rms_norm(x, wv, 1e-6f, tensor_view<float, 2>(ys.data(), {8, 4}), ref_ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::rms_norm(tensor_view<float const, 2>(xs.data(), {4, 4}, {8, 2}),
                                 tensor_view<float const, 1>(w.data(), {4}), 1e-6f,
                                 tensor_view<float, 2>(ys.data(), {4, 4}), ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(nn::rms_norm(x, wv, 1e-6f, tensor_view<float, 2>(ys.data(), {4, 4}, {8, 2}), ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::rms_norm(x, tensor_view<float const, 1>(w.data(), {8}, {2}), 1e-6f, y, ctx), tessera::error);
  for (float eps : {0.0f, -1e-6f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
    REQUIRE_THROWS_AS(nn::rms_norm(x, wv, eps, y, ctx), tessera::error);
  std::vector<float> big(4 * 9, 1.0f);
  REQUIRE_THROWS_AS(nn::rms_norm(tensor_view<float const, 2>(big.data(), {4, 8}), wv, 1e-6f,
                                 tensor_view<float, 2>(big.data(), {4, 8}, {9, 1}), ctx),
                    tessera::error);
}
