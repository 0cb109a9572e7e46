// SPDX-License-Identifier: Apache-2.0
// pool::patch_merge_2x2: hand-worked window-major (HF's view(-1, 4 d)) and row-major gathers; both
// token orders give the same rows for the same image; cpu == reference (awkward dims, strided rows,
// guards, several images and frames); argument errors.
#include <tessera/pack/patchify.hpp>
#include <tessera/pool/patch_merge.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <vector>

using namespace tessera;

namespace {

template <class Backend>
std::vector<float> run_merge(std::vector<float> const& x, index_t dim, std::vector<pack::patch_grid> const& grids,
                             pack::token_order order, index_t x_pad = 0, index_t out_pad = 0, int threads = 2) {
  index_t n = 0;
  for (auto const& g : grids) n += g.n_patches();
  test::strided_rows xb(n, dim, dim + x_pad, x);
  std::vector<float> const init(static_cast<std::size_t>(n * dim), -1.0f);
  test::strided_rows ob(n / 4, 4 * dim, 4 * dim + out_pad, init);
  exec_ctx<Backend> ctx(threads);
  pool::patch_merge_2x2<Backend>(xb.view(), grids, order, ob.view(), ctx);
  REQUIRE(xb.intact());
  REQUIRE(ob.intact());
  return ob.values();
}

/// x in row-major token order -> the same tokens in 2 x 2 window-major order (per frame).
std::vector<float> to_window_major(std::vector<float> const& x, index_t dim, std::vector<pack::patch_grid> const& grids) {
  std::vector<float> y(x.size());
  index_t base = 0;
  for (auto const& g : grids)
    for (index_t f = 0; f < g.t; ++f, base += g.h * g.w)
      for (index_t k = 0; k < g.h * g.w; ++k) {
        auto const p = pack::detail::position_of(k, g.w, 2, true);
        for (index_t j = 0; j < dim; ++j)
          y[static_cast<std::size_t>((base + k) * dim + j)] =
              x[static_cast<std::size_t>((base + p.row * g.w + p.col) * dim + j)];
      }
  return y;
}

}  // namespace

TEST_CASE("patch_merge_2x2 reference: hand-worked window-major and row-major", "[pool][unit]") {
  // One 2 x 4 grid, dim 1, token k holds k.
  std::vector<float> const x{0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<pack::patch_grid> const g{{1, 2, 4}};
  // Window-major: 4 consecutive tokens per window (HF's view).
  CHECK(run_merge<backend::reference>(x, 1, g, pack::token_order::merge_window_major) ==
        std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7});
  // Row-major: window 0 = tokens (0,0), (0,1), (1,0), (1,1) = 0, 1, 4, 5; window 1 = 2, 3, 6, 7.
  CHECK(run_merge<backend::reference>(x, 1, g, pack::token_order::row_major) ==
        std::vector<float>{0, 1, 4, 5, 2, 3, 6, 7});
  // dim 2: each quadrant is a whole token row.
  std::vector<float> const x2{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 6, 16, 7, 17};
  CHECK(run_merge<backend::cpu>(x2, 2, g, pack::token_order::row_major) ==
        std::vector<float>{0, 10, 1, 11, 4, 14, 5, 15, 2, 12, 3, 13, 6, 16, 7, 17});
}

TEST_CASE("patch_merge_2x2: both token orders merge the same windows; cpu == reference", "[pool][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  std::vector<pack::patch_grid> const grids{{1, 4, 6}, {2, 2, 2}, {1, 8, 4}, {1, 2, 18}};
  for (index_t dim : test::awkward_sizes) {
    INFO("dim " << dim);
    index_t n = 0;
    for (auto const& g : grids) n += g.n_patches();
    auto const x_rm = test::random_vector<float>(static_cast<std::size_t>(n * dim), ++s);
    auto const x_wm = to_window_major(x_rm, dim, grids);
    auto const want = run_merge<backend::reference>(x_wm, dim, grids, pack::token_order::merge_window_major);
    CHECK(want == x_wm);  // window-major: a pure reshape
    CHECK(run_merge<backend::reference>(x_rm, dim, grids, pack::token_order::row_major) == want);
    CHECK(run_merge<backend::cpu>(x_rm, dim, grids, pack::token_order::row_major, 3, 7, 3) == want);
    CHECK(run_merge<backend::cpu>(x_wm, dim, grids, pack::token_order::merge_window_major, 1, 0, 1) == want);
  }
}

TEST_CASE("patch_merge_2x2 rejects bad arguments", "[pool][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  std::vector<float> x(12 * 2), out(3 * 8, -1.0f);
  tensor_view<float const, 2> const xv(x.data(), {12, 2});
  tensor_view<float, 2> const ov(out.data(), {3, 8});
  auto const wm = pack::token_order::merge_window_major;
  std::vector<pack::patch_grid> const odd{{1, 3, 4}}, short_grid{{1, 2, 4}}, good{{1, 2, 6}}, zero{{0, 2, 6}};
  std::vector<pack::patch_grid> const huge{{1, 1 << 30, 1 << 30}, {1 << 30, 2, 2}};
  CHECK_THROWS_AS(pool::patch_merge_2x2(xv, odd, wm, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::patch_merge_2x2(xv, short_grid, wm, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::patch_merge_2x2(xv, zero, wm, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::patch_merge_2x2(xv, huge, wm, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::patch_merge_2x2(xv, good, wm, tensor_view<float, 2>(out.data(), {3, 6}), ctx),
                  tessera::error);
  std::vector<float> const wide(12 * 4);
  CHECK_THROWS_AS(pool::patch_merge_2x2(tensor_view<float const, 2>(wide.data(), {12, 2}, {4, 2}), good, wm, ov, ctx),
                  tessera::error);
  CHECK(out == std::vector<float>(24, -1.0f));
  pool::patch_merge_2x2(xv, good, wm, ov, ctx);  // valid
}
