// SPDX-License-Identifier: Apache-2.0
// posemb::factorized_learned / factorized_sinusoidal: hand-worked cases for every combine mode,
// coordinate mode and phi; vit-pytorch's evaluation order; the fractional discretisation; cpu vs
// reference (d_model 1..258, f32 / bf16 / f16 tables, strided rows with guards); packed == per
// image; argument errors leave x untouched.
#include <tessera/posemb/factorized.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace tessera;
using posemb::combine_mode;

namespace {

template <class T>
tensor_view<T const, 2> view2(std::vector<T> const& v, index_t rows, index_t cols) {
  return {v.data(), {rows, cols}};
}

template <class Backend, class Coord, class W>
std::vector<float> run_learned(std::vector<float> const& x, index_t d, std::vector<Coord> const& coords,
                               std::vector<W> const& ty, std::vector<W> const& tx, index_t d_phi, combine_mode c,
                               index_t row_pad = 0, int threads = 2) {
  index_t const n = static_cast<index_t>(coords.size() / 2);
  test::strided_rows buf(n, d, d + row_pad, x);
  exec_ctx<Backend> ctx(threads);
  posemb::factorized_learned<Backend>(buf.view(), view2(coords, n, 2),
                                      view2(ty, static_cast<index_t>(ty.size()) / d_phi, d_phi),
                                      view2(tx, static_cast<index_t>(tx.size()) / d_phi, d_phi), c, ctx);
  REQUIRE(buf.intact());
  return buf.values();
}

template <class Backend, class Coord>
std::vector<float> run_sinusoidal(std::vector<float> const& x, index_t d, std::vector<Coord> const& coords,
                                  combine_mode c, posemb::sinusoid_options const& opt = {}, index_t row_pad = 0,
                                  int threads = 2) {
  index_t const n = static_cast<index_t>(coords.size() / 2);
  test::strided_rows buf(n, d, d + row_pad, x);
  exec_ctx<Backend> ctx(threads);
  posemb::factorized_sinusoidal<Backend>(buf.view(), view2(coords, n, 2), c, ctx, opt);
  REQUIRE(buf.intact());
  return buf.values();
}

}  // namespace

TEST_CASE("factorized_learned reference: hand-worked sum, concat and product", "[posemb][factorized][unit]") {
  // Two tokens at (row, col) = (2, 0) and (0, 1). table_y rows r = [r, 10 r, 100 r, 1000 r] + 1,
  // table_x rows c = [-c, -2c, -3c, -4c].
  std::vector<float> const ty{1, 1, 1, 1, 2, 11, 101, 1001, 3, 21, 201, 2001};
  std::vector<float> const tx{0, 0, 0, 0, -1, -2, -3, -4};
  std::vector<std::int32_t> const coords{2, 0, 0, 1};
  std::vector<float> const x{0.5f, 0.5f, 0.5f, 0.5f, 1, 2, 3, 4};
  // sum: x + ty[2] + tx[0] = [3.5, 21.5, 201.5, 2001.5]; x + ty[0] + tx[1] = [1, 1, 1, 1].
  CHECK(run_learned<backend::reference>(x, 4, coords, ty, tx, 4, combine_mode::sum) ==
        std::vector<float>{3.5f, 21.5f, 201.5f, 2001.5f, 1, 1, 1, 1});
  // product: x + ty[2] * tx[0] = x; x + ty[0] * tx[1] = [0, 0, 0, 0].
  CHECK(run_learned<backend::reference>(x, 4, coords, ty, tx, 4, combine_mode::product) ==
        std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 0, 0});
  // concat (d_phi 2): tables are read as [n_rows, 2]: ty rows 0..5 = (1,1),(1,1),(2,11),(101,1001),(3,21),(201,2001),
  // tx rows 0..3 = (0,0),(0,0),(-1,-2),(-3,-4). Token 0: [x0 + ty[2] | x1 + tx[0]]; token 1: [+ty[0] | +tx[1]].
  CHECK(run_learned<backend::reference>(x, 4, coords, ty, tx, 2, combine_mode::concat) ==
        std::vector<float>{2.5f, 11.5f, 0.5f, 0.5f, 2, 3, 3, 4});
  // The cpu backend gives the same bits.
  for (auto c : {combine_mode::sum, combine_mode::product})
    CHECK(run_learned<backend::cpu>(x, 4, coords, ty, tx, 4, c) ==
          run_learned<backend::reference>(x, 4, coords, ty, tx, 4, c));
  CHECK(run_learned<backend::cpu>(x, 4, coords, ty, tx, 2, combine_mode::concat) ==
        run_learned<backend::reference>(x, 4, coords, ty, tx, 2, combine_mode::concat));
}

TEST_CASE("factorized_learned sums in vit-pytorch's order (x + h_pos) + w_pos", "[posemb][factorized][unit]") {
  // f32: (1 + 1e8) + -1e8 = 0, whereas 1 + (1e8 + -1e8) would be 1.
  std::vector<float> const ty{1e8f}, tx{-1e8f}, x{1.0f};
  std::vector<std::int32_t> const coords{0, 0};
  CHECK(run_learned<backend::reference>(x, 1, coords, ty, tx, 1, combine_mode::sum) == std::vector<float>{0.0f});
  CHECK(run_learned<backend::cpu>(x, 1, coords, ty, tx, 1, combine_mode::sum) == std::vector<float>{0.0f});
}

TEST_CASE("factorized_learned fractional rows are floor(r * n_rows), clamped", "[posemb][factorized][unit]") {
  CHECK(posemb::detail::fractional_row(0.0f, 4) == 0);
  CHECK(posemb::detail::fractional_row(0.2499f, 4) == 0);
  CHECK(posemb::detail::fractional_row(0.25f, 4) == 1);
  CHECK(posemb::detail::fractional_row(0.7f, 4) == 2);
  CHECK(posemb::detail::fractional_row(0.99999994f, 4) == 3);  // 0.99999994 * 4 rounds to 4 in f32: clamped
  CHECK(posemb::detail::fractional_row(1.0f, 4) == 3);
  // A grid side equal to the table size gives back the absolute index: r = i / n.
  for (index_t n : {1, 7, 17, 72, 127, 129})
    for (index_t i = 0; i < n; ++i)
      REQUIRE(posemb::detail::fractional_row(static_cast<float>(i) / static_cast<float>(n), n) == i);
  // Table rows are (r, 0), (r, 1), ...: tokens at (0.5, 0.1) and (1.0, 0.8) with 4 y rows, 2 x rows.
  std::vector<float> const ty{0, 0, 1, 1, 2, 2, 3, 3}, tx{0, 0, 10, 10};
  std::vector<float> const coords{0.5f, 0.1f, 1.0f, 0.8f};
  std::vector<float> const x(4, 0.0f);
  CHECK(run_learned<backend::reference>(x, 2, coords, ty, tx, 2, combine_mode::sum) ==
        std::vector<float>{2, 2, 13, 13});
  CHECK(run_learned<backend::cpu>(x, 2, coords, ty, tx, 2, combine_mode::sum) == std::vector<float>{2, 2, 13, 13});
}

TEST_CASE("factorized_sinusoidal reference: hand-worked absolute and fractional", "[posemb][factorized][unit]") {
  // d_phi 4, base 100: w = [1, 1 / 100^(2/4)] = [1, 0.1]; phi(p) = [sin p, cos p, sin .1p, cos .1p].
  posemb::sinusoid_options opt;
  opt.base = 100.0f;
  opt.fractional_scale = 4.0f;
  std::vector<float> const x{0, 0, 0, 0, 1, 1, 1, 1};
  std::vector<std::int32_t> const abs_coords{1, 2, 0, 0};
  // token 0: phi(1) + phi(2); token 1: 1 + phi(0) + phi(0) = [1, 3, 1, 3].
  std::vector<double> const s{std::sin(1.0) + std::sin(2.0), std::cos(1.0) + std::cos(2.0),
                              std::sin(0.1) + std::sin(0.2), std::cos(0.1) + std::cos(0.2), 1, 3, 1, 3};
  std::vector<float> const want_sum(s.begin(), s.end());
  test::tolerance const t{2e-7, 2e-7};
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::reference>(x, 4, abs_coords, combine_mode::sum, opt), want_sum, t);
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::cpu>(x, 4, abs_coords, combine_mode::sum, opt), want_sum, t);
  // Fractional: (0.25, 0.5) * scale 4 = positions (1, 2), the same as token 0 above.
  std::vector<float> const frac{0.25f, 0.5f, 0.0f, 0.0f};
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::reference>(x, 4, frac, combine_mode::sum, opt), want_sum, t);
  // product: phi(1) * phi(2) element-wise; concat (d_phi 2, w = [1]): [sin 1, cos 1 | sin 2, cos 2].
  std::vector<double> const p{std::sin(1.0) * std::sin(2.0), std::cos(1.0) * std::cos(2.0),
                              std::sin(0.1) * std::sin(0.2), std::cos(0.1) * std::cos(0.2), 1, 2, 1, 2};
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::reference>(x, 4, abs_coords, combine_mode::product, opt),
                        std::vector<float>(p.begin(), p.end()), t);
  std::vector<double> const c{std::sin(1.0), std::cos(1.0), std::sin(2.0), std::cos(2.0), 1, 2, 1, 2};
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::reference>(x, 4, abs_coords, combine_mode::concat, opt),
                        std::vector<float>(c.begin(), c.end()), t);
  TESSERA_REQUIRE_CLOSE(run_sinusoidal<backend::cpu>(x, 4, abs_coords, combine_mode::concat, opt),
                        std::vector<float>(c.begin(), c.end()), t);
}

TEMPLATE_TEST_CASE("factorized_learned cpu matches the reference", "[posemb][factorized][unit]", float, bf16, f16) {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  for (auto c : {combine_mode::sum, combine_mode::concat, combine_mode::product})
    for (index_t d : {1, 2, 7, 14, 17, 34, 72, 127, 129, 254})
      for (index_t n : {1, 7, 129}) {
        if (c == combine_mode::concat && d % 2 != 0) continue;
        index_t const d_phi = posemb::detail::phi_width(c, d), rows_y = 9, rows_x = 13;
        INFO("combine " << static_cast<int>(c) << ", d " << d << ", n " << n);
        auto const x = test::random_vector<float>(static_cast<std::size_t>(n * d), ++s);
        auto const ty = test::random_vector<TestType>(static_cast<std::size_t>(rows_y * d_phi), ++s);
        auto const tx = test::random_vector<TestType>(static_cast<std::size_t>(rows_x * d_phi), ++s);
        std::mt19937_64 gen(++s);
        std::vector<std::int32_t> ci(static_cast<std::size_t>(2 * n));
        std::vector<float> cf(static_cast<std::size_t>(2 * n));
        for (std::size_t i = 0; i < ci.size(); ++i) {
          ci[i] = static_cast<std::int32_t>(gen() % static_cast<std::uint64_t>(i % 2 == 0 ? rows_y : rows_x));
          cf[i] = static_cast<float>(gen() % 1001) / 1000.0f;  // [0, 1], 1 included
        }
        // Every operation is one correctly rounded f32 op, except product, where a fused
        // multiply-add may round once instead of twice.
        test::tolerance const t = c == combine_mode::product ? test::tol<float>::vs_ref : test::tolerance{0, 0};
        TESSERA_REQUIRE_CLOSE((run_learned<backend::cpu>(x, d, ci, ty, tx, d_phi, c, 3)),
                              (run_learned<backend::reference>(x, d, ci, ty, tx, d_phi, c)), t);
        TESSERA_REQUIRE_CLOSE((run_learned<backend::cpu>(x, d, cf, ty, tx, d_phi, c, 0, 1)),
                              (run_learned<backend::reference>(x, d, cf, ty, tx, d_phi, c)), t);
      }
}

TEST_CASE("factorized_sinusoidal cpu matches the reference", "[posemb][factorized][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  for (auto c : {combine_mode::sum, combine_mode::concat, combine_mode::product})
    for (index_t d : {2, 4, 14, 34, 72, 128, 254, 260})
      for (index_t n : {1, 7, 129}) {
        if (c == combine_mode::concat && d % 4 != 0) continue;
        if (n == 129 && d > 72) continue;  // keep the runtime small
        INFO("combine " << static_cast<int>(c) << ", d " << d << ", n " << n);
        auto const x = test::random_vector<float>(static_cast<std::size_t>(n * d), ++s);
        std::mt19937_64 gen(++s);
        std::vector<std::int32_t> ci(static_cast<std::size_t>(2 * n));
        std::vector<float> cf(static_cast<std::size_t>(2 * n));
        for (std::size_t i = 0; i < ci.size(); ++i) {
          ci[i] = static_cast<std::int32_t>(gen() % 200);
          cf[i] = static_cast<float>(gen() % 1001) / 1000.0f;
        }
        TESSERA_REQUIRE_CLOSE((run_sinusoidal<backend::cpu>(x, d, ci, c, {}, 5)),
                              (run_sinusoidal<backend::reference>(x, d, ci, c)), test::tol<float>::vs_ref);
        TESSERA_REQUIRE_CLOSE((run_sinusoidal<backend::cpu>(x, d, cf, c, {}, 0, 1)),
                              (run_sinusoidal<backend::reference>(x, d, cf, c)), test::tol<float>::vs_ref);
      }
}

TEST_CASE("factorized_learned on a packed buffer equals each image alone", "[posemb][factorized][unit]") {
  // Three images of 7, 1 and 17 tokens packed back to back; the embedding is per token, so slices agree.
  index_t const d = 17, rows = 6;
  std::vector<index_t> const lens{7, 1, 17};
  index_t const n = 25;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n * d), test::seed());
  auto const ty = test::random_vector<float>(static_cast<std::size_t>(rows * d), test::seed() + 1);
  auto const tx = test::random_vector<float>(static_cast<std::size_t>(rows * d), test::seed() + 2);
  std::vector<std::int32_t> coords(static_cast<std::size_t>(2 * n));
  for (std::size_t i = 0; i < coords.size(); ++i) coords[i] = static_cast<std::int32_t>((i * 7 + 3) % rows);
  auto const packed = run_learned<backend::cpu>(x, d, coords, ty, tx, d, combine_mode::sum);
  index_t begin = 0;
  for (index_t len : lens) {
    std::vector<float> const xi(x.begin() + begin * d, x.begin() + (begin + len) * d);
    std::vector<std::int32_t> const ci(coords.begin() + 2 * begin, coords.begin() + 2 * (begin + len));
    CHECK(run_learned<backend::cpu>(xi, d, ci, ty, tx, d, combine_mode::sum) ==
          std::vector<float>(packed.begin() + begin * d, packed.begin() + (begin + len) * d));
    begin += len;
  }
}

TEST_CASE("factorized position embeddings reject bad arguments", "[posemb][factorized][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  std::vector<float> x(2 * 4, 1.0f);
  tensor_view<float, 2> const xv(x.data(), {2, 4});
  std::vector<float> const t4(3 * 4, 0.5f), t2(3 * 2, 0.5f);
  auto const ty = view2(t4, 3, 4), tx = view2(t4, 3, 4);
  std::vector<std::int32_t> ci{0, 1, 2, 2};
  auto const cv = view2(ci, 2, 2);
  posemb::factorized_learned(xv, cv, ty, tx, combine_mode::sum, ctx);  // valid
  std::vector<float> const after = x;
  ci[3] = 3;  // beyond table_x's 3 rows
  CHECK_THROWS_AS(posemb::factorized_learned(xv, cv, ty, tx, combine_mode::sum, ctx), tessera::error);
  ci[3] = -1;
  CHECK_THROWS_AS(posemb::factorized_learned(xv, cv, ty, tx, combine_mode::sum, ctx), tessera::error);
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(xv, cv, combine_mode::sum, ctx), tessera::error);
  ci[3] = 0;
  // Table widths: concat needs d_model / 2 = 2 columns, sum 4.
  CHECK_THROWS_AS(posemb::factorized_learned(xv, cv, ty, tx, combine_mode::concat, ctx), tessera::error);
  CHECK_THROWS_AS(posemb::factorized_learned(xv, cv, view2(t2, 3, 2), view2(t2, 3, 2), combine_mode::sum, ctx),
                  tessera::error);
  CHECK_THROWS_AS(posemb::factorized_learned(xv, cv, view2(t4, 0, 4), tx, combine_mode::sum, ctx), tessera::error);
  CHECK_THROWS_AS(posemb::factorized_learned(xv, view2(ci, 1, 2), ty, tx, combine_mode::sum, ctx), tessera::error);
  // Fractional coordinates outside [0, 1] or NaN.
  std::vector<float> cf{0.5f, 0.5f, 1.5f, 0.0f};
  CHECK_THROWS_AS(posemb::factorized_learned(xv, view2(cf, 2, 2), ty, tx, combine_mode::sum, ctx), tessera::error);
  cf[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(xv, view2(cf, 2, 2), combine_mode::sum, ctx), tessera::error);
  cf[2] = -0.1f;
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(xv, view2(cf, 2, 2), combine_mode::sum, ctx), tessera::error);
  // Odd widths: concat of an odd d_model; a sinusoid of odd width (concat of d_model 6 gives 3).
  std::vector<float> x3(2 * 3), x6(2 * 6);
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(tensor_view<float, 2>(x3.data(), {2, 3}), cv, combine_mode::concat,
                                                ctx),
                  tessera::error);
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(tensor_view<float, 2>(x6.data(), {2, 6}), cv, combine_mode::concat,
                                                ctx),
                  tessera::error);
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(tensor_view<float, 2>(x3.data(), {2, 3}), cv, combine_mode::sum, ctx),
                  tessera::error);
  posemb::sinusoid_options bad;
  bad.base = 0.0f;
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(xv, cv, combine_mode::sum, ctx, bad), tessera::error);
  CHECK_THROWS_AS(posemb::factorized_sinusoidal(tensor_view<float, 2>(x.data(), {2, 2}, {4, 2}), cv,
                                                combine_mode::sum, ctx),
                  tessera::error);
  CHECK(x == after);  // no failed call touched x
}
