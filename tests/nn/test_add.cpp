// SPDX-License-Identifier: Apache-2.0
// nn::add: reference on a hand-worked case; cpu == reference bit for bit over awkward widths,
// strided rows, in place on either operand, any thread count; errors.
#include <tessera/nn/add.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <vector>

using namespace tessera;
using test::strided_rows;

namespace {

template <class Backend>
std::vector<float> run_add(std::vector<float> const& a, std::vector<float> const& b, index_t n_rows, index_t dim,
                           int threads = 2) {
  strided_rows av(n_rows, dim, dim, a), bv(n_rows, dim, dim, b), y(n_rows, dim, dim, std::vector<float>(a.size()));
  exec_ctx<Backend> ctx(threads);
  nn::add(av.view(), bv.view(), y.view(), ctx);
  REQUIRE(y.intact());
  return y.values();
}

}  // namespace

TEST_CASE("add reference matches a hand-worked case", "[nn][add][unit]") {
  std::vector<float> const a{1, 2, 3, -4, 0.5f, 1e30f}, b{10, -2, 0.25f, 4, 0.25f, -1e30f};
  std::vector<float> const want{11, 0, 3.25f, 0, 0.75f, 0};
  CHECK(run_add<backend::reference>(a, b, 2, 3) == want);
  CHECK(run_add<backend::cpu>(a, b, 2, 3) == want);
}

TEST_CASE("add cpu equals the reference bit for bit", "[nn][add][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  exec_ctx<backend::reference> ref_ctx;
  exec_ctx<backend::cpu> cpu_ctx(2);
  for (index_t dim : {1, 7, 17, 72, 127, 129, 1000, 1280})
    for (index_t n_rows : {1, 3, 17}) {
      INFO("dim " << dim << ", rows " << n_rows);
      auto const a = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s);
      auto const b = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), ++s);
      strided_rows ain(n_rows, dim, dim + 1, a), bin(n_rows, dim, dim + 6, b);
      strided_rows want(n_rows, dim, dim + 2, std::vector<float>(a.size()));
      strided_rows got(n_rows, dim, dim + 2, std::vector<float>(a.size()));
      nn::add(ain.view(), bin.view(), want.view(), ref_ctx);
      nn::add(ain.view(), bin.view(), got.view(), cpu_ctx);
      REQUIRE(want.intact());
      REQUIRE(got.intact());
      REQUIRE(got.values() == want.values());
      TESSERA_REQUIRE_CLOSE(got.values(), want.values(), (test::tolerance{0, 0}));

      // The residual pattern x += f(x): y is exactly a, or exactly b; also a == b.
      strided_rows a2(n_rows, dim, dim + 1, a), b2(n_rows, dim, dim + 6, b);
      nn::add(a2.view(), b2.view(), a2.view(), cpu_ctx);
      REQUIRE(a2.intact());
      REQUIRE(a2.values() == want.values());
      strided_rows a3(n_rows, dim, dim + 1, a), b3(n_rows, dim, dim + 6, b);
      nn::add(a3.view(), b3.view(), b3.view(), cpu_ctx);
      REQUIRE(b3.intact());
      REQUIRE(b3.values() == want.values());
      strided_rows a4(n_rows, dim, dim + 1, a);
      nn::add(a4.view(), a4.view(), a4.view(), cpu_ctx);
      std::vector<float> doubled(a);
      for (auto& v : doubled) v *= 2.0f;
      REQUIRE(a4.values() == doubled);
    }
}

TEST_CASE("add cpu result does not depend on the thread count", "[nn][add][unit]") {
  for (index_t n_rows : {1, 7}) {
    index_t const dim = 33333;
    auto const a = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed());
    auto const b = test::random_vector<float>(static_cast<std::size_t>(n_rows * dim), test::seed() + 1);
    auto const want = run_add<backend::reference>(a, b, n_rows, dim);
    for (int threads : {1, 2, 3}) CHECK(run_add<backend::cpu>(a, b, n_rows, dim, threads) == want);
  }
}

TEST_CASE("add rejects invalid arguments", "[nn][add][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> as(4 * 8, 1.0f), bs(4 * 8, 1.0f), ys(4 * 8);
  tensor_view<float const, 2> a(as.data(), {4, 8}), b(bs.data(), {4, 8});
  tensor_view<float, 2> y(ys.data(), {4, 8});
  REQUIRE_NOTHROW(nn::add(a, b, y, ctx));
  REQUIRE_NOTHROW(nn::add(a, b, y, ref_ctx));
  REQUIRE_THROWS_AS(nn::add(a, tensor_view<float const, 2>(bs.data(), {4, 7}), y, ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::add(a, tensor_view<float const, 2>(bs.data(), {3, 8}), y, ref_ctx), tessera::error);
  REQUIRE_THROWS_AS(nn::add(a, b, tensor_view<float, 2>(ys.data(), {8, 4}), ctx), tessera::error);
  REQUIRE_THROWS_AS(
      nn::add(tensor_view<float const, 2>(as.data(), {4, 4}, {8, 2}), tensor_view<float const, 2>(bs.data(), {4, 4}),
              tensor_view<float, 2>(ys.data(), {4, 4}), ctx),
      tessera::error);
  REQUIRE_THROWS_AS(
      nn::add(tensor_view<float const, 2>(as.data(), {4, 4}), tensor_view<float const, 2>(bs.data(), {4, 4}),
              tensor_view<float, 2>(ys.data(), {4, 4}, {8, 2}), ctx),
      tessera::error);
  REQUIRE_THROWS_AS(nn::add(tensor_view<float const, 2>(as.data(), {3, 8}), b.slice_rows(0, 3),
                            tensor_view<float, 2>(as.data(), {3, 8}, {9, 1}), ctx),
                    tessera::error);
}
