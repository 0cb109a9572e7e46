// SPDX-License-Identifier: Apache-2.0
// nn::softmax: reference on hand-worked rows; cpu vs reference over awkward widths, strided rows,
// in place, any thread count; -inf entries, all -inf rows (NaN, as PyTorch), +inf / NaN entries,
// huge values without overflow; measured exp error; argument errors.
#include <tessera/nn/softmax.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <limits>
#include <vector>

using namespace tessera;
using test::strided_rows;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

/// Element-wise equality in which NaN equals NaN (all -inf rows give NaN).
bool identical(std::vector<float> const& a, std::vector<float> const& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

template <class Backend>
std::vector<float> run_softmax(std::vector<float> const& x, index_t n_rows, index_t dim, int threads = 2) {
  strided_rows xin(n_rows, dim, dim, x), y(n_rows, dim, dim, std::vector<float>(x.size(), 0.0f));
  exec_ctx<Backend> ctx(threads);
  nn::softmax(xin.view(), y.view(), ctx);
  REQUIRE(y.intact());
  return y.values();
}

}  // namespace

TEST_CASE("softmax reference matches hand-worked rows", "[nn][softmax][unit]") {
  // [0, ln 2, ln 3] -> [1, 2, 3] / 6; [5, 5, 5, 5] -> 1/4 each (width 3 padded with a 4th row
  // element below); [-inf, 0, -inf, 0] -> [0, 1/2, 0, 1/2]; [7] -> 1.
  std::vector<float> const x3{0.0f, std::log(2.0f), std::log(3.0f)};
  std::vector<float> const want3{1.0f / 6, 2.0f / 6, 3.0f / 6};
  std::vector<float> const x4{5, 5, 5, 5, -inf, 0, -inf, 0};
  std::vector<float> const want4{0.25f, 0.25f, 0.25f, 0.25f, 0, 0.5f, 0, 0.5f};
  for (bool cpu : {false, true}) {
    INFO((cpu ? "cpu" : "reference"));
    auto const run = [&](std::vector<float> const& x, index_t rows, index_t dim) {
      return cpu ? run_softmax<backend::cpu>(x, rows, dim) : run_softmax<backend::reference>(x, rows, dim);
    };
    TESSERA_REQUIRE_CLOSE(run(x3, 1, 3), want3, (test::tolerance{1e-7, 1e-6}));
    TESSERA_REQUIRE_CLOSE(run(x4, 2, 4), want4, (test::tolerance{0, 1e-7}));
    CHECK(run({7.0f}, 1, 1) == std::vector<float>{1.0f});
  }
}

TEST_CASE("softmax cpu matches the reference", "[nn][softmax][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  exec_ctx<backend::reference> ref_ctx;
  exec_ctx<backend::cpu> cpu_ctx(2);
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (index_t n_rows : {1, 3, 17})
      for (int variant = 0; variant < 3; ++variant) {  // plain; strided rows; scores scaled by 8 with masked entries
        index_t const stride = variant == 1 ? dim + 7 : dim;
        INFO("dim " << dim << ", rows " << n_rows << ", variant " << variant);
        auto x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s, variant == 2 ? 8.0f : 1.0f);
        if (variant == 2)
          for (std::size_t i = 0; i < x.size(); i += 3) x[i] = -inf;  // masked scores
        strided_rows xin(n_rows, dim, stride, x);
        strided_rows want(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        strided_rows got(n_rows, dim, stride, std::vector<float>(x.size(), 0.0f));
        nn::softmax(xin.view(), want.view(), ref_ctx);
        nn::softmax(xin.view(), got.view(), cpu_ctx);
        REQUIRE(want.intact());
        REQUIRE(got.intact());
        TESSERA_REQUIRE_CLOSE(got.values(), want.values(), test::tol<float>::vs_ref);

        strided_rows inplace(n_rows, dim, stride, x);  // y is exactly x
        nn::softmax(inplace.view(), inplace.view(), cpu_ctx);
        REQUIRE(inplace.intact());
        REQUIRE(identical(inplace.values(), got.values()));
        strided_rows inplace_ref(n_rows, dim, stride, x);
        nn::softmax(inplace_ref.view(), inplace_ref.view(), ref_ctx);
        REQUIRE(identical(inplace_ref.values(), want.values()));
      }
}

TEST_CASE("softmax cpu result does not depend on the thread count", "[nn][softmax][unit]") {
  index_t const n_rows = 67, dim = 1000;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed(), 4.0f);
  auto const one = run_softmax<backend::cpu>(x, n_rows, dim, 1);
  CHECK(run_softmax<backend::cpu>(x, n_rows, dim, 2) == one);
  CHECK(run_softmax<backend::cpu>(x, n_rows, dim, 3) == one);
  TESSERA_REQUIRE_CLOSE(one, run_softmax<backend::reference>(x, n_rows, dim), test::tol<float>::vs_ref);
}

TEST_CASE("softmax special values", "[nn][softmax][unit]") {
  float const nan = std::numeric_limits<float>::quiet_NaN();
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280}) {
    INFO("dim " << dim);
    auto const n = static_cast<std::size_t>(dim);
    // Row 0: all -inf -> NaN everywhere (PyTorch: 0 / 0 = NaN).
    // Row 1: huge values (1e30, 3e38, and a single -3e38): no overflow, the largest entries share 1.
    // Row 2: one finite entry among -inf -> exactly one-hot.
    // Row 3: +inf present -> NaN everywhere (PyTorch: inf - inf).
    // Row 4: NaN present -> NaN everywhere.
    std::vector<float> x(5 * n, -inf);
    for (std::size_t j = 0; j < n; ++j) x[n + j] = j % 2 ? 3e38f : (j % 3 ? 1e30f : -3e38f);
    x[2 * n + n / 2] = 123.0f;
    for (std::size_t j = 0; j < n; ++j) x[3 * n + j] = static_cast<float>(j);
    x[3 * n + n / 3] = inf;
    for (std::size_t j = 0; j < n; ++j) x[4 * n + j] = static_cast<float>(j);
    x[4 * n + (n - 1)] = nan;

    std::vector<float> want(5 * n, 0.0f);
    for (std::size_t j = 0; j < n; ++j) want[j] = nan;
    std::size_t const n_max = n / 2;  // entries equal to 3e38
    for (std::size_t j = 0; j < n; ++j)
      want[n + j] = n_max == 0 ? (x[n + j] == x[n] ? 1.0f : 0.0f) : (j % 2 ? 1.0f / static_cast<float>(n_max) : 0.0f);
    want[2 * n + n / 2] = 1.0f;
    for (std::size_t j = 0; j < 2 * n; ++j) want[3 * n + j] = nan;

    auto const ref = run_softmax<backend::reference>(x, 5, dim);
    auto const cpu = run_softmax<backend::cpu>(x, 5, dim);
    TESSERA_REQUIRE_CLOSE(ref, want, (test::tolerance{0, 1e-6}));
    TESSERA_REQUIRE_CLOSE(cpu, want, (test::tolerance{0, 1e-6}));
  }
}

TEST_CASE("softmax cpu exp error over the whole f32 range", "[nn][softmax][unit]") {
  // Rows of 1000 scores spanning [-104, 0] after the max subtraction (exp(-104) is below the
  // smallest f32 subnormal): cpu vs the double-precision reference. Measured on the dev machine
  // (AVX-512, AVX2 and SSE2 builds alike): max abs 7.5e-9, max rel 2.3e-7 on results >= 1e-30,
  // 0.1 % of the budget; xsimd::exp alone is within 1.5 ulp of exp on [-87, 88] and flushes
  // results below 1.2e-38 to 0, which the absolute budget covers.
  index_t const n_rows = 8, dim = 1000;
  std::vector<float> x(static_cast<std::size_t>(n_rows * dim));
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = -104.0f * static_cast<float>(i % 997) / 996.0f + static_cast<float>(i / 1000);
  auto const want = run_softmax<backend::reference>(x, n_rows, dim);
  auto const got = run_softmax<backend::cpu>(x, n_rows, dim);
  TESSERA_REQUIRE_CLOSE(got, want, test::tol<float>::vs_ref);
  double sum = 0;
  for (index_t j = 0; j < dim; ++j) sum += got[static_cast<std::size_t>(j)];
  CHECK(std::fabs(sum - 1.0) < 1e-6);
}

TEST_CASE("softmax rejects invalid arguments", "[nn][softmax][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> xs(4 * 8, 1.0f), ys(4 * 8);
  tensor_view<float const, 2> x(xs.data(), {4, 8});
  tensor_view<float, 2> y(ys.data(), {4, 8});
  REQUIRE_NOTHROW(nn::softmax(x, y, ctx));
  REQUIRE_NOTHROW(nn::softmax(x, y, ref_ctx));
  REQUIRE_THROWS_AS(nn::softmax(x, tensor_view<float, 2>(ys.data(), {3, 8}), ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::softmax(x, tensor_view<float, 2>(ys.data(), {8, 4}), ref_ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::softmax(tensor_view<float const, 2>(xs.data(), {4, 4}, {8, 2}),
                                tensor_view<float, 2>(ys.data(), {4, 4}), ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(nn::softmax(x, tensor_view<float, 2>(ys.data(), {4, 4}, {8, 2}).slice_rows(0, 4), ctx),
                    tessera::error);
  std::vector<float> big(4 * 9, 1.0f);
  REQUIRE_THROWS_AS(nn::softmax(tensor_view<float const, 2>(big.data(), {4, 8}),
                                tensor_view<float, 2>(big.data(), {4, 8}, {9, 1}), ctx),
                    tessera::error);
}
