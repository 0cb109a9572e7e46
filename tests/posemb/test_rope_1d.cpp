// SPDX-License-Identifier: Apache-2.0
// posemb::rope_1d: reference on a hand-worked case; inv_freq as transformers computes it; cpu vs
// reference over awkward head_dims, head counts, strided q / k views, any thread count; position 0
// is the identity; large positions against a double-precision check; sincos error; scratch reuse;
// argument errors.
#include <tessera/posemb/rope_1d.hpp>

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
std::vector<float> run_rope(std::vector<float> const& x, std::vector<std::int32_t> const& pos, index_t n_heads,
                            index_t head_dim, float theta, int threads = 2, index_t head_pad = 0,
                            index_t token_pad = 0) {
  auto const n_tokens = static_cast<index_t>(pos.size());
  index_t const hs = head_dim + head_pad, ts = n_heads * hs + token_pad;
  heads_buffer buf(n_tokens, n_heads, head_dim, hs, ts, x);
  exec_ctx<Backend> ctx(threads);
  posemb::rope_1d(buf.view(), tensor_view<std::int32_t const, 1>(pos.data(), {n_tokens}), theta, ctx);
  REQUIRE(buf.intact());
  return buf.values();
}

/// transformers' inv_freq, restated independently of the library: f32 exponent 2i / dim, f32 pow
/// (correctly rounded here), f32 reciprocal.
float hf_inv_freq(float theta, index_t head_dim, index_t i) {
  float const e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
  float const p = static_cast<float>(std::pow(static_cast<double>(theta), static_cast<double>(e)));
  return 1.0f / p;
}

/// HF's rotation with the f32 angle float(pos) * inv_freq, then cos / sin and the rotation in double.
std::vector<float> rope_double(std::vector<float> const& x, std::vector<std::int32_t> const& pos, index_t n_heads,
                               index_t head_dim, float theta) {
  std::vector<float> y(x.size());
  index_t const half = head_dim / 2;
  for (std::size_t t = 0; t < pos.size(); ++t)
    for (index_t d = 0; d < half; ++d) {
      float const angle = static_cast<float>(pos[t]) * hf_inv_freq(theta, head_dim, d);
      double const c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
      for (index_t h = 0; h < n_heads; ++h) {
        std::size_t const base = (t * static_cast<std::size_t>(n_heads) + static_cast<std::size_t>(h)) *
                                 static_cast<std::size_t>(head_dim);
        double const a = x[base + static_cast<std::size_t>(d)], b = x[base + static_cast<std::size_t>(d + half)];
        y[base + static_cast<std::size_t>(d)] = static_cast<float>(a * c - b * s);
        y[base + static_cast<std::size_t>(d + half)] = static_cast<float>(b * c + a * s);
      }
    }
  return y;
}

std::vector<std::int32_t> random_positions(std::size_t n, std::uint64_t seed, std::int32_t max) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<std::int32_t> d(0, max);
  std::vector<std::int32_t> p(n);
  for (auto& v : p) v = d(gen);
  return p;
}

}  // namespace

TEST_CASE("rope_1d reference matches a hand-worked case", "[posemb][rope_1d][unit]") {
  // head_dim 4, theta 100: inv_freq = [1, 1 / 100^(2/4)] = [1, 0.1]; pairs (0, 2) and (1, 3).
  // token 0 (position 0): identity. token 1 (position 1): head 0 = e0 -> [cos 1, 0, sin 1, 0],
  // head 1 = e1 -> [0, cos 0.1, 0, sin 0.1]. token 2 (position 2): [1, 2, 3, 4] ->
  // [cos 2 - 3 sin 2, 2 cos .2 - 4 sin .2, 3 cos 2 + sin 2, 4 cos .2 + 2 sin .2]; zeros stay 0.
  std::vector<float> const x{1, 2, 3, 4, 5, 6, 7, 8,  // token 0
                             1, 0, 0, 0, 0, 1, 0, 0,  // token 1
                             1, 2, 3, 4, 0, 0, 0, 0};  // token 2
  std::vector<std::int32_t> const pos{0, 1, 2};
  std::vector<double> const exact{1, 2, 3, 4, 5, 6, 7, 8,
                                  0.5403023058681398, 0, 0.8414709848078965, 0,
                                  0, 0.9950041652780258, 0, 0.09983341664682815,
                                  -3.1440391170241875, 1.1654558325022384, -0.33914308281574557, 4.317604972955089,
                                  0, 0, 0, 0};
  std::vector<float> const want(exact.begin(), exact.end());
  // The f32 angle 2 * 0.1f differs from 0.2 by 3e-9: far inside the budget.
  TESSERA_REQUIRE_CLOSE(run_rope<backend::reference>(x, pos, 2, 4, 100.0f), want, (test::tolerance{1e-7, 1e-7}));
  TESSERA_REQUIRE_CLOSE(run_rope<backend::cpu>(x, pos, 2, 4, 100.0f), want, (test::tolerance{1e-6, 1e-6}));
}

TEST_CASE("rope_1d inv_freq follows transformers' f32 computation", "[posemb][rope_1d][unit]") {
  // Exact points: 2i / dim = 0 and 1/2 give 1 and 1 / sqrt(theta).
  CHECK(posemb::detail::rope_inv_freq(1e6f, 128, 0) == 1.0f);
  CHECK(posemb::detail::rope_inv_freq(1e6f, 128, 32) == 1.0f / 1000.0f);
  CHECK(posemb::detail::rope_inv_freq(1e4f, 80, 20) == 1.0f / 100.0f);
  for (float theta : {1e4f, 1e6f})
    for (index_t head_dim : {64, 72, 80, 128}) {
      for (index_t i = 0; i < head_dim / 2; ++i) {
        INFO("theta " << theta << ", head_dim " << head_dim << ", i " << i);
        float const got = posemb::detail::rope_inv_freq(theta, head_dim, i);
        CHECK(got == hf_inv_freq(theta, head_dim, i));
        // Against the real-valued formula: the f32 exponent e = 2i / dim is off by up to half an
        // ulp (e * 2^-24), which moves theta^e by ln(theta) * e * 2^-24 relative (up to 6e-7 for
        // theta 1e6: inherent in HF's f32 init); pow and the reciprocal add 1 ulp.
        double const e = 2.0 * static_cast<double>(i) / static_cast<double>(head_dim);
        double const exact = std::pow(static_cast<double>(theta), -e);
        double const rel = std::log(static_cast<double>(theta)) * e * 0x1p-24 + 0x1p-23;
        CHECK(std::fabs(got - exact) <= rel * exact);
      }
    }
}

TEST_CASE("rope_1d cpu matches the reference", "[posemb][rope_1d][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  // half = 1, 4, 7, 17, 36, 40, 64, 72, 127, 129: every tail length against the batch widths.
  for (index_t head_dim : {2, 8, 14, 34, 72, 80, 128, 144, 254, 258})
    for (index_t n_heads : {1, 3, 7})
      for (index_t n_tokens : {1, 3, 17})
        for (int variant = 0; variant < 2; ++variant) {  // 0: dense; 1: q inside a fused qkv buffer
          float const theta = variant ? 1e6f : 1e4f;
          index_t const head_pad = variant ? 5 : 0, token_pad = variant ? 2 * n_heads * head_dim + 3 : 0;
          INFO("head_dim " << head_dim << ", heads " << n_heads << ", tokens " << n_tokens << ", variant " << variant);
          auto const x = test::random_vector<float>(static_cast<std::size_t>(n_tokens * n_heads * head_dim), ++s);
          auto const pos = random_positions(static_cast<std::size_t>(n_tokens), ++s, 40000);
          auto const want = run_rope<backend::reference>(x, pos, n_heads, head_dim, theta, 1, head_pad, token_pad);
          auto const got = run_rope<backend::cpu>(x, pos, n_heads, head_dim, theta, 2, head_pad, token_pad);
          TESSERA_REQUIRE_CLOSE(got, want, test::tol<float>::vs_ref);
        }
}

TEST_CASE("rope_1d at position 0 is the identity", "[posemb][rope_1d][unit]") {
  for (index_t head_dim : {2, 14, 72, 128, 258}) {
    INFO("head_dim " << head_dim);
    auto const x = test::random_vector<float>(static_cast<std::size_t>(5 * 3 * head_dim), test::seed());
    std::vector<std::int32_t> const pos(5, 0);
    CHECK(run_rope<backend::reference>(x, pos, 3, head_dim, 1e6f) == x);
    CHECK(run_rope<backend::cpu>(x, pos, 3, head_dim, 1e6f, 2, 3, 7) == x);
  }
}

TEST_CASE("rope_1d at large positions matches a double-precision check", "[posemb][rope_1d][unit]") {
  // Like HF, the angle is the f32 product float(pos) * inv_freq (at position 1e6 its ulp is
  // 0.06 rad); the check then evaluates cos / sin and the rotation in double. The cpu backend's
  // range reduction must hold up to angles of 2^31.
  std::vector<std::int32_t> const pos{100000, 1000000, 16777217, 123456789, std::numeric_limits<std::int32_t>::max(),
                                      32767, 65536, 7};
  for (float theta : {1e4f, 1e6f})
    for (index_t head_dim : {64, 128}) {
      INFO("theta " << theta << ", head_dim " << head_dim);
      auto const x = test::random_vector<float>(pos.size() * 4 * static_cast<std::size_t>(head_dim), test::seed());
      auto const want = rope_double(x, pos, 4, head_dim, theta);
      TESSERA_REQUIRE_CLOSE(run_rope<backend::reference>(x, pos, 4, head_dim, theta), want, test::tol<float>::vs_ref);
      TESSERA_REQUIRE_CLOSE(run_rope<backend::cpu>(x, pos, 4, head_dim, theta), want, test::tol<float>::vs_ref);
    }
}

TEST_CASE("rope_1d cpu sincos error", "[posemb][rope_1d][unit]") {
  // head_dim 2: inv_freq = [1], so x = [1, 0] becomes [cos(pos), sin(pos)] for the f32 pos.
  // Every position 0 .. 2^17 - 1, then a spread up to 2^31 - 1. Measured on the dev machine
  // (AVX-512, AVX2, SSE2 builds): max abs error 7.7e-8, at most 1.5 ulp (xsimd::sincos).
  std::vector<std::int32_t> pos;
  for (std::int32_t p = 0; p < (1 << 17); ++p) pos.push_back(p);
  for (std::int64_t p = 1 << 17; p < std::numeric_limits<std::int32_t>::max(); p = p * 9 / 8 + 12345)
    pos.push_back(static_cast<std::int32_t>(p));
  std::vector<float> x(2 * pos.size());
  for (std::size_t t = 0; t < pos.size(); ++t) x[2 * t] = 1.0f;
  auto const got = run_rope<backend::cpu>(x, pos, 1, 2, 1e6f);
  std::vector<float> want(x.size());
  for (std::size_t t = 0; t < pos.size(); ++t) {
    auto const a = static_cast<double>(static_cast<float>(pos[t]));
    want[2 * t] = static_cast<float>(std::cos(a));
    want[2 * t + 1] = static_cast<float>(std::sin(a));
  }
  auto const cmp =
      test::compare(got.data(), want.data(), static_cast<std::int64_t>(got.size()), test::tolerance{2e-7, 0});
  INFO(cmp.report());
  REQUIRE(cmp.ok);
}

TEST_CASE("rope_1d cpu: thread count and scratch reuse", "[posemb][rope_1d][unit]") {
  index_t const n_tokens = 301, n_heads = 7, head_dim = 128;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(n_tokens * n_heads * head_dim), test::seed());
  auto const pos = random_positions(static_cast<std::size_t>(n_tokens), test::seed() + 1, 1 << 20);
  auto const one = run_rope<backend::cpu>(x, pos, n_heads, head_dim, 1e6f, 1);
  CHECK(run_rope<backend::cpu>(x, pos, n_heads, head_dim, 1e6f, 2) == one);
  CHECK(run_rope<backend::cpu>(x, pos, n_heads, head_dim, 1e6f, 3) == one);
  TESSERA_REQUIRE_CLOSE(one, run_rope<backend::reference>(x, pos, n_heads, head_dim, 1e6f), test::tol<float>::vs_ref);

  // The second call with the same shapes takes its workspace from the arena without allocating.
  std::vector<float> buf(x);
  tensor_view<float, 3> xv(buf.data(), {n_tokens, n_heads, head_dim});
  tensor_view<std::int32_t const, 1> pv(pos.data(), {n_tokens});
  exec_ctx<backend::cpu> ctx(2);
  posemb::rope_1d(xv, pv, 1e6f, ctx);
  auto const allocations = ctx.scratch().allocations();
  posemb::rope_1d(xv, pv, 1e6f, ctx);
  CHECK(ctx.scratch().allocations() == allocations);
}

TEST_CASE("rope_1d rejects invalid arguments", "[posemb][rope_1d][unit]") {
  exec_ctx<backend::cpu> ctx;
  exec_ctx<backend::reference> ref_ctx;
  std::vector<float> xs(3 * 2 * 8, 1.0f);
  std::vector<std::int32_t> pos{0, 1, 2};
  tensor_view<float, 3> x(xs.data(), {3, 2, 8});
  tensor_view<std::int32_t const, 1> p(pos.data(), {3});
  REQUIRE_NOTHROW(posemb::rope_1d(x, p, 1e4f, ctx));
  REQUIRE_NOTHROW(posemb::rope_1d(x, p, 1e4f, ref_ctx));
  // odd head_dim
  REQUIRE_THROWS_AS(posemb::rope_1d(tensor_view<float, 3>(xs.data(), {3, 2, 7}), p, 1e4f, ctx), tessera::error);
  // positions of the wrong length
  REQUIRE_THROWS_AS(posemb::rope_1d(x, tensor_view<std::int32_t const, 1>(pos.data(), {2}), 1e4f, ctx), tessera::error);
  REQUIRE_THROWS_AS(posemb::rope_1d(tensor_view<float, 3>(xs.data(), {2, 2, 8}), p, 1e4f, ref_ctx), tessera::error);
  // negative position
  std::vector<std::int32_t> neg{0, -1, 2};
  REQUIRE_THROWS_AS(posemb::rope_1d(x, tensor_view<std::int32_t const, 1>(neg.data(), {3}), 1e4f, ctx), tessera::error);
  REQUIRE_THROWS_AS(posemb::rope_1d(x, tensor_view<std::int32_t const, 1>(neg.data(), {3}), 1e4f, ref_ctx),
                    tessera::error);
  // non-contiguous last dimension
  REQUIRE_THROWS_AS(posemb::rope_1d(tensor_view<float, 3>(xs.data(), {3, 2, 4}, {16, 8, 2}), p, 1e4f, ctx),
                    tessera::error);
  // theta
  for (float theta : {0.0f, -1e4f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()})
    REQUIRE_THROWS_AS(posemb::rope_1d(x, p, theta, ctx), tessera::error);
  // Nothing was rotated by the failed calls beyond the two valid ones above.
}
