// SPDX-License-Identifier: Apache-2.0
// posemb::rope_2d: reference on a hand-worked case; the row / column halves are rope_1d over
// head_dim / 2; Qwen2-VL position ids (window-major, repeated over t); cpu vs reference over awkward
// head_dims, token counts and strided q / k views with guards; argument errors.
#include <tessera/posemb/rope_1d.hpp>
#include <tessera/posemb/rope_2d.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace tessera;

namespace {

using test::heads_buffer;

template <class Backend>
std::vector<float> run_rope_2d(std::vector<float> const& x, std::vector<std::int32_t> const& pos, index_t n_heads,
                            index_t head_dim, float theta, int threads = 2, index_t head_pad = 0,
                            index_t token_pad = 0) {
  auto const n_tokens = static_cast<index_t>(pos.size() / 2);
  index_t const hs = head_dim + head_pad, ts = n_heads * hs + token_pad;
  heads_buffer buf(n_tokens, n_heads, head_dim, hs, ts, x);
  exec_ctx<Backend> ctx(threads);
  posemb::rope_2d<Backend>(buf.view(), tensor_view<std::int32_t const, 2>(pos.data(), {n_tokens, 2}), theta, ctx);
  REQUIRE(buf.intact());
  return buf.values();
}

std::vector<std::int32_t> random_positions_2d(std::size_t n_tokens, std::uint64_t seed, std::int32_t max) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<std::int32_t> d(0, max);
  std::vector<std::int32_t> p(2 * n_tokens);
  for (auto& v : p) v = d(gen);
  return p;
}

}  // namespace

TEST_CASE("rope_2d reference matches a hand-worked case", "[posemb][rope_2d][unit]") {
  // head_dim 8, theta 100: VisionRotaryEmbedding(4) has inv_freq = [1, 1 / 100^(2/4)] = [1, 0.1];
  // dims 0, 1 rotate with the row (angles row, 0.1 row), dims 2, 3 with the column (col, 0.1 col);
  // pairs (d, d + 4). Token 0 at (row 1, col 2): head 0 = e0 -> cos 1 e0 + sin 1 e4; head 1 =
  // e1 + e3 -> [0, cos .1, 0, cos .2, 0, sin .1, 0, sin .2]; head 2 = e2 -> cos 2 e2 + sin 2 e6.
  // Token 1 at (0, 0): identity. Token 2 at (0, 3): e0 (row dims) unchanged, e6 (col dim 2's
  // partner) -> x[2] = -sin 3, x[6] = cos 3.
  std::vector<float> const x{1, 0, 0, 0, 0, 0, 0, 0,  0, 1, 0, 1, 0, 0, 0, 0,  0, 0, 1, 0, 0, 0, 0, 0,
                             1, 2, 3, 4, 5, 6, 7, 8,  8, 7, 6, 5, 4, 3, 2, 1,  0, 0, 0, 0, 0, 0, 0, 0,
                             1, 0, 0, 0, 0, 0, 1, 0,  0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<std::int32_t> const pos{1, 2, 0, 0, 0, 3};
  double const c1 = 0.5403023058681398, s1 = 0.8414709848078965, c01 = 0.9950041652780258, s01 = 0.09983341664682815,
               c02 = 0.9800665778412416, s02 = 0.19866933079506122, c2 = -0.4161468365471424, s2 = 0.9092974268256817,
               c3 = -0.9899924966004454, s3 = 0.1411200080598672;
  std::vector<double> const exact{c1, 0, 0, 0, s1, 0, 0, 0,  0, c01, 0, c02, 0, s01, 0, s02,  0, 0, c2, 0, 0, 0, s2, 0,
                                  1, 2, 3, 4, 5, 6, 7, 8,  8, 7, 6, 5, 4, 3, 2, 1,  0, 0, 0, 0, 0, 0, 0, 0,
                                  1, 0, -s3, 0, 0, 0, c3, 0,  0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<float> const want(exact.begin(), exact.end());
  // The f32 angles (0.1f * 2 vs 0.2) differ from the exact ones by < 1e-8.
  TESSERA_REQUIRE_CLOSE(run_rope_2d<backend::reference>(x, pos, 3, 8, 100.0f), want, (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_rope_2d<backend::cpu>(x, pos, 3, 8, 100.0f), want, (test::tolerance{1e-6, 1e-6}));
}

TEST_CASE("rope_2d angles are HF's rotary_pos_emb", "[posemb][rope_2d][unit]") {
  // head_dim 8, theta 100 at (3, 5): [3 * 1, 3 * 0.1f, 5 * 1, 5 * 0.1f] as f32 products.
  std::vector<std::int32_t> const pos{3, 5, 0, 0};
  std::vector<float> angles(8, -1.0f);
  posemb::rope_2d_angles(tensor_view<std::int32_t const, 2>(pos.data(), {2, 2}), 100.0f, 8,
                         tensor_view<float, 2>(angles.data(), {2, 4}));
  float const tenth = 1.0f / static_cast<float>(std::pow(100.0, 0.5));
  CHECK(tenth == 0.1f);
  CHECK(angles == std::vector<float>{3.0f, 3.0f * 0.1f, 5.0f, 5.0f * 0.1f, 0, 0, 0, 0});
  // Qwen2-VL: head_dim 80, theta 1e4: inv_freq[k] = 1 / 10000^(2k / 40) for k < 20 on both halves.
  CHECK(posemb::detail::rope_2d_inv_freq(1e4f, 80, 0) == 1.0f);
  CHECK(posemb::detail::rope_2d_inv_freq(1e4f, 80, 10) == 1.0f / 100.0f);
  CHECK(posemb::detail::rope_2d_inv_freq(1e4f, 80, 30) == 1.0f / 100.0f);
  CHECK(posemb::detail::rope_2d_inv_freq(1e4f, 80, 20) == 1.0f);
}

TEST_CASE("rope_2d's row and column halves are rope_1d over head_dim / 2", "[posemb][rope_2d][unit]") {
  // Dims [0, q) + [h, h + q) form a (head_dim / 2)-wide vector that rotates like rope_1d with the
  // row as position (the same inv_freq), dims [q, h) + [h + q, 2h) like rope_1d with the column.
  index_t const head_dim = 80, h = 40, q = 20, n_tokens = 9;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n_tokens * head_dim), test::seed());
  auto const pos = random_positions_2d(static_cast<std::size_t>(n_tokens), test::seed() + 1, 300);
  auto const got = run_rope_2d<backend::reference>(x, pos, 1, head_dim, 1e4f);
  for (int part = 0; part < 2; ++part) {
    std::vector<float> sub(static_cast<std::size_t>(n_tokens * h));
    std::vector<std::int32_t> p(static_cast<std::size_t>(n_tokens));
    auto const src = [&](index_t t, index_t j) {  // position in x of element j of the sub-vector
      return static_cast<std::size_t>(t * head_dim + part * q + (j < q ? j : h + j - q));
    };
    for (index_t t = 0; t < n_tokens; ++t) {
      p[static_cast<std::size_t>(t)] = pos[static_cast<std::size_t>(2 * t + part)];
      for (index_t j = 0; j < h; ++j) sub[static_cast<std::size_t>(t * h + j)] = x[src(t, j)];
    }
    exec_ctx<backend::reference> ctx;
    posemb::rope_1d<backend::reference>(tensor_view<float, 3>(sub.data(), {n_tokens, 1, h}),
                                        tensor_view<std::int32_t const, 1>(p.data(), {n_tokens}), 1e4f, ctx);
    // Same inv_freq and angles, so the results agree to rounding: not bit for bit, because the
    // compiler may contract x * cos - y * sin into an FMA differently in the two functions
    // (GCC's default -ffp-contract=fast with -mfma measured a 1-ulp difference).
    for (index_t t = 0; t < n_tokens; ++t)
      for (index_t j = 0; j < h; ++j) {
        INFO("part " << part << ", token " << t << ", j " << j);
        double const a = got[src(t, j)], b = sub[static_cast<std::size_t>(t * h + j)];
        REQUIRE(std::fabs(a - b) <= 1e-7 + 2.4e-7 * std::fabs(b));
      }
  }
}

TEST_CASE("qwen2vl_position_ids follow rot_pos_emb's window-major order", "[posemb][rope_2d][unit]") {
  // grid (1, 4, 6) then (2, 2, 2): HF's hpos / wpos reshape(h/2, 2, w/2, 2).permute(0, 2, 1, 3),
  // then .repeat(t, 1) for the second image.
  std::vector<pack::patch_grid> const grids{{1, 4, 6}, {2, 2, 2}};
  REQUIRE(posemb::n_grid_tokens(grids) == 32);
  std::vector<std::int32_t> ids(64, -1);
  posemb::qwen2vl_position_ids(grids, tensor_view<std::int32_t, 2>(ids.data(), {32, 2}));
  std::vector<std::int32_t> const want{
      0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3, 0, 4, 0, 5, 1, 4, 1, 5,   // window row 0
      2, 0, 2, 1, 3, 0, 3, 1, 2, 2, 2, 3, 3, 2, 3, 3, 2, 4, 2, 5, 3, 4, 3, 5,   // window row 1
      0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1};                          // 2 x 2, twice
  CHECK(ids == want);
  // The same as pack::patch_coords for a still image in the Qwen2-VL layout.
  std::vector<std::int32_t> coords(48);
  pack::patch_coords(pack::qwen2vl_layout, {1, 4, 6}, tensor_view<std::int32_t, 2>(coords.data(), {24, 2}));
  CHECK(std::vector<std::int32_t>(ids.begin(), ids.begin() + 48) == coords);
  // merge 1: plain row-major.
  std::vector<std::int32_t> rm(12);
  std::vector<pack::patch_grid> const g3{{1, 2, 3}};
  posemb::qwen2vl_position_ids(g3, tensor_view<std::int32_t, 2>(rm.data(), {6, 2}), 1);
  CHECK(rm == std::vector<std::int32_t>{0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2});

  std::vector<pack::patch_grid> const odd{{1, 3, 4}};
  std::vector<std::int32_t> o(24);
  CHECK_THROWS_AS(posemb::qwen2vl_position_ids(odd, tensor_view<std::int32_t, 2>(o.data(), {12, 2})), tessera::error);
  CHECK_THROWS_AS(posemb::qwen2vl_position_ids(grids, tensor_view<std::int32_t, 2>(ids.data(), {31, 2})),
                  tessera::error);
  std::vector<pack::patch_grid> const zero{{1, 0, 2}};
  CHECK_THROWS_AS(posemb::n_grid_tokens(zero), tessera::error);
  std::vector<pack::patch_grid> const huge{{1, 1 << 20, 1 << 20}};
  CHECK_THROWS_AS(posemb::n_grid_tokens(huge), tessera::error);
}

TEST_CASE("rope_2d cpu matches the reference", "[posemb][rope_2d][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  // half = 2, 4, 6, 20, 34, 36, 40, 64, 72, 130: tails against every batch width.
  for (index_t head_dim : {4, 8, 12, 40, 68, 72, 80, 128, 144, 260})
    for (index_t n_heads : {1, 3})
      for (index_t n_tokens : {1, 7, 17, 129})
        for (int variant = 0; variant < 2; ++variant) {  // 0: dense; 1: k inside a fused qkv buffer
          if (n_tokens == 129 && head_dim > 80) continue;  // keep the runtime small
          index_t const head_pad = variant ? 3 : 0, token_pad = variant ? 2 * n_heads * head_dim + 1 : 0;
          INFO("head_dim " << head_dim << ", heads " << n_heads << ", tokens " << n_tokens << ", variant " << variant);
          auto const x = test::random_vector<float>(static_cast<std::size_t>(n_tokens * n_heads * head_dim), ++s);
          auto const pos = random_positions_2d(static_cast<std::size_t>(n_tokens), ++s, variant ? 100000 : 64);
          auto const want = run_rope_2d<backend::reference>(x, pos, n_heads, head_dim, 1e4f, 1, head_pad, token_pad);
          auto const got = run_rope_2d<backend::cpu>(x, pos, n_heads, head_dim, 1e4f, 2, head_pad, token_pad);
          TESSERA_REQUIRE_CLOSE(got, want, test::tol<float>::vs_ref);
        }
}

TEST_CASE("rope_2d rejects bad arguments", "[posemb][rope_2d][unit]") {
  std::vector<float> x(2 * 12, 1.0f);
  std::vector<std::int32_t> pos{0, 1, 2, 3};
  exec_ctx<backend::cpu> ctx(1);
  tensor_view<std::int32_t const, 2> const p(pos.data(), {2, 2});
  // head_dim 6 is even but not a multiple of 4.
  CHECK_THROWS_AS(posemb::rope_2d(tensor_view<float, 3>(x.data(), {2, 2, 6}), p, 1e4f, ctx), tessera::error);
  tensor_view<float, 3> const good(x.data(), {2, 1, 12});
  CHECK_THROWS_AS(posemb::rope_2d(good, tensor_view<std::int32_t const, 2>(pos.data(), {1, 2}), 1e4f, ctx),
                  tessera::error);
  CHECK_THROWS_AS(posemb::rope_2d(good, tensor_view<std::int32_t const, 2>(pos.data(), {2, 1}, {2, 1}), 1e4f, ctx),
                  tessera::error);
  CHECK_THROWS_AS(posemb::rope_2d(good, p, 0.0f, ctx), tessera::error);
  CHECK_THROWS_AS(posemb::rope_2d(good, p, std::numeric_limits<float>::infinity(), ctx), tessera::error);
  CHECK_THROWS_AS(posemb::rope_2d(tensor_view<float, 3>(x.data(), {2, 1, 4}, {12, 4, 2}), p, 1e4f, ctx),
                  tessera::error);
  pos[3] = -1;
  CHECK_THROWS_AS(posemb::rope_2d(good, p, 1e4f, ctx), tessera::error);
  CHECK(x == std::vector<float>(24, 1.0f));  // nothing was touched
  // No tokens: a no-op.
  posemb::rope_2d(tensor_view<float, 3>(x.data(), {0, 1, 12}), tensor_view<std::int32_t const, 2>(pos.data(), {0, 2}),
                  1e4f, ctx);
}
