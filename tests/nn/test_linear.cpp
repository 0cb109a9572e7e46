// SPDX-License-Identifier: Apache-2.0
// nn::linear: reference on a hand-worked case; cpu vs reference over awkward shapes, every weight
// dtype, both product precisions, strided views, bias or none; exact on small integers; errors.
// nn::random_parameters: nn.Linear's and the norms' initialization, reproducible from the seed.
#include <tessera/nn/linear.hpp>
#include <tessera/nn/random_parameters.hpp>

#include "common/compare.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

using namespace tessera;
using nn::product_precision;

namespace {

template <class Backend, class W>
std::vector<float> run_linear(std::vector<float> const& x, index_t m, index_t k, std::vector<W> const& w, index_t n,
                              std::vector<W> const* bias, product_precision p, int threads = 2,
                              index_t ldx_pad = 0, index_t ldy_pad = 0, bool* guards_ok = nullptr) {
  // Copy operands into padded (strided) storage when asked, so row strides differ from widths.
  std::vector<float> xs(static_cast<std::size_t>(m * (k + ldx_pad)), -777.0f);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < k; ++j) xs[i * (k + ldx_pad) + j] = x[i * k + j];
  test::guarded<float> ys(m * (n + ldy_pad), -999.0f);
  tensor_view<float const, 2> xv(xs.data(), {m, k}, {k + ldx_pad, 1});
  tensor_view<float, 2> yv(ys.data(), {m, n}, {n + ldy_pad, 1});
  tensor_view<W const, 2> wv(w.data(), {n, k});
  exec_ctx<Backend> ctx(threads);
  if (bias)
    nn::linear<Backend>(xv, wv, tensor_view<W const, 1>(bias->data(), {n}), yv, ctx, p);
  else
    nn::linear<Backend>(xv, wv, yv, ctx, p);
  if (guards_ok) *guards_ok = ys.intact();
  std::vector<float> y(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) y[i * n + j] = ys.data()[i * (n + ldy_pad) + j];
  // Padding columns of y must be untouched.
  for (index_t i = 0; i < m && guards_ok; ++i)
    for (index_t j = n; j < n + ldy_pad; ++j) *guards_ok = *guards_ok && ys.data()[i * (n + ldy_pad) + j] == -999.0f;
  return y;
}

}  // namespace

TEST_CASE("linear reference matches a hand-worked case", "[nn][linear][unit]") {
  // x = [[1, 2, 3], [-1, 0, 2]], W = [[1, 0, -1], [2, 1, 0]], b = [0.5, -1]
  std::vector<float> x{1, 2, 3, -1, 0, 2}, w{1, 0, -1, 2, 1, 0}, b{0.5f, -1};
  auto y = run_linear<backend::reference, float>(x, 2, 3, w, 2, &b, product_precision::f32, 1);
  CHECK(y == std::vector<float>{1 - 3 + 0.5f, 2 + 2 - 1, -1 - 2 + 0.5f, -2 - 1});
  // bf16 products round x first: 1 + 2^-9 becomes 1.
  std::vector<float> x2{1.0f + 1.0f / 512}, w2{1.0f};
  std::vector<bf16> w2b{bf16::from_float(1.0f)};
  CHECK(run_linear<backend::reference, bf16>(x2, 1, 1, w2b, 1, nullptr, product_precision::bf16, 1)[0] == 1.0f);
  CHECK(run_linear<backend::reference, bf16>(x2, 1, 1, w2b, 1, nullptr, product_precision::f32, 1)[0] == x2[0]);
}

// The largest shape of the sweep, in multiply-adds. Under AddressSanitizer (CI's sanitize step,
// -O0) the sweep keeps every size, tails included (what a sanitizer checks), but not the shapes
// over 300k multiply-adds: they took 51 s of that step's 140 s of tests (f32, bf16 and f16 weights),
// and every other step runs them.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr index_t max_sweep_macs = 300'000;
#else
inline constexpr index_t max_sweep_macs = 3'000'000;
#endif

TEMPLATE_TEST_CASE("linear cpu matches the reference", "[nn][linear][unit]", float, bf16, f16) {
  using W = TestType;
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::vector<index_t> const ms{1, 2, 3, 4, 5, 7, 17, 72, 129};
  std::vector<index_t> const ks{1, 7, 17, 72, 127, 129, 1000};
  std::vector<index_t> const ns{1, 7, 17, 72, 127, 129};
  std::vector<product_precision> precisions{product_precision::f32};
  if constexpr (std::is_same_v<W, bf16>) precisions.push_back(product_precision::bf16);
  std::uint64_t s = seed;
  for (auto p : precisions)
    for (index_t m : ms)
      for (index_t k : ks)
        for (index_t n : ns) {
          if (m * k * n > max_sweep_macs) continue;
          auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), ++s);
          auto w = test::random_vector<W>(static_cast<std::size_t>(n * k), ++s, 0.1f);
          auto b = test::random_vector<W>(static_cast<std::size_t>(n), ++s);
          bool const with_bias = (m + n + k) % 2 == 0;
          index_t const pad = (m + k) % 3;  // strided rows for some shapes
          bool guards = false;
          auto want = run_linear<backend::reference, W>(x, m, k, w, n, with_bias ? &b : nullptr, p, 1);
          auto got = run_linear<backend::cpu, W>(x, m, k, w, n, with_bias ? &b : nullptr, p, 2, pad, pad, &guards);
          INFO("m=" << m << " k=" << k << " n=" << n << " bias=" << with_bias << " pad=" << pad
                    << " precision=" << (p == product_precision::bf16 ? "bf16" : "f32"));
          REQUIRE(guards);
          // f32 accumulation against the double-accumulating oracle: the cpu error grows like
          // sqrt(k) * eps * sum|x w|; budget tol<float>::vs_ref scaled for long reductions.
          TESSERA_REQUIRE_CLOSE(got, want, test::tol<float>::vs_ref.for_reduction(static_cast<double>(k)));
        }
}

TEMPLATE_TEST_CASE("linear cpu is exact on small integers", "[nn][linear][unit]", float, bf16, f16) {
  using W = TestType;
  for (index_t m : {1, 3, 16, 33})
    for (index_t k : {5, 64, 300})
      for (index_t n : {3, 40, 100}) {
        auto x = test::random_ints<float>(static_cast<std::size_t>(m * k), test::seed() + m * k + n);
        auto w = test::random_ints<W>(static_cast<std::size_t>(n * k), test::seed() + 7 * n);
        auto want = run_linear<backend::reference, W>(x, m, k, w, n, nullptr, product_precision::f32, 1);
        auto got = run_linear<backend::cpu, W>(x, m, k, w, n, nullptr, nn::default_precision_v<W>, 2);
        INFO("m=" << m << " k=" << k << " n=" << n);
        REQUIRE(got == want);
      }
}

TEST_CASE("linear cpu gives the same result for any thread count", "[nn][linear][unit]") {
  index_t const m = 40, k = 300, n = 200;
  auto x = test::random_vector<float>(m * k, 1);
  auto w = test::random_vector<bf16>(n * k, 2);
  for (auto p : {product_precision::f32, product_precision::bf16}) {
    auto one = run_linear<backend::cpu, bf16>(x, m, k, w, n, nullptr, p, 1);
    auto two = run_linear<backend::cpu, bf16>(x, m, k, w, n, nullptr, p, 2);
    auto three = run_linear<backend::cpu, bf16>(x, m, k, w, n, nullptr, p, 3);
    REQUIRE(one == two);
    REQUIRE(one == three);
  }
}

TEST_CASE("linear handles empty extents", "[nn][linear][unit]") {
  std::vector<float> b{1.5f, -2.0f};
  std::vector<float> w;  // [2, 0]
  std::vector<float> x;  // [3, 0]
  auto y = run_linear<backend::cpu, float>(x, 3, 0, w, 2, &b, product_precision::f32);
  CHECK(y == std::vector<float>{1.5f, -2, 1.5f, -2, 1.5f, -2});
  auto none = run_linear<backend::cpu, float>(x, 0, 0, w, 2, &b, product_precision::f32);
  CHECK(none.empty());
}

TEST_CASE("linear rejects bad shapes with a message naming the block", "[nn][linear][unit]") {
  using Catch::Matchers::ContainsSubstring;
  std::vector<float> x(12), w(12), y(12), b(5);
  exec_ctx<backend::cpu> ctx(1);
  tensor_view<float const, 2> x34(x.data(), {3, 4}), w34(w.data(), {3, 4}), w43(w.data(), {4, 3});
  tensor_view<float, 2> y33(y.data(), {3, 3}), y34(y.data(), {3, 4});
  REQUIRE_THROWS_WITH(nn::linear(x34, w43, y34, ctx), ContainsSubstring("nn::linear") && ContainsSubstring("inner"));
  REQUIRE_THROWS_WITH(nn::linear(x34, w34, y34, ctx), ContainsSubstring("y must be [3, 3]"));
  REQUIRE_THROWS_WITH(nn::linear(x34, w34, tensor_view<float const, 1>(b.data(), {5}), y33, ctx),
                      ContainsSubstring("bias must have 3"));
  tensor_view<float const, 2> x_cols(x.data(), {3, 4}, {4, 2});
  REQUIRE_THROWS_WITH(nn::linear(x_cols, w34, y33, ctx), ContainsSubstring("contiguous"));
  REQUIRE_THROWS_WITH(nn::linear(x34, w34, y33, ctx, product_precision::bf16), ContainsSubstring("bf16 products"));
}

TEST_CASE("linear allocates scratch only when its high-water mark rises", "[nn][linear][unit]") {
  index_t const m = 64, k = 96, n = 80;
  auto x = test::random_vector<float>(m * k, 3);
  auto w = test::random_vector<bf16>(n * k, 4);
  std::vector<float> y(m * n);
  exec_ctx<backend::cpu> ctx(2);
  auto call = [&] {
    nn::linear(tensor_view<float const, 2>(x.data(), {m, k}), tensor_view<bf16 const, 2>(w.data(), {n, k}),
               tensor_view<float, 2>(y.data(), {m, n}), ctx);
  };
  call();
  auto const after_first = ctx.scratch().allocations();
  for (int i = 0; i < 3; ++i) call();
  REQUIRE(ctx.scratch().allocations() == after_first);
}

TEST_CASE("random_parameters: nn.Linear's and the norms' initialization, reproducible from the seed",
          "[nn][linear][unit]") {
  nn::random_parameters<float> p(11);
  nn::linear_weights<float> const l = p.linear(5, 16);
  REQUIRE((l.weight.extent(0) == 5 && l.weight.extent(1) == 16 && l.weight.is_contiguous()));
  REQUIRE((l.bias && l.bias->extent(0) == 5));
  // Tensor i of the store draws from rng(seed, i): U(-1/sqrt(16), 1/sqrt(16)) = U(-0.25, 0.25).
  rng r0(11, 0), r1(11, 1);
  float lo = 1.0f, hi = -1.0f;
  for (index_t i = 0; i < 5; ++i)
    for (index_t j = 0; j < 16; ++j) {
      REQUIRE(l.weight(i, j) == static_cast<float>(0.25f * (2.0 * r0.uniform() - 1.0)));
      lo = std::min(lo, l.weight(i, j));
      hi = std::max(hi, l.weight(i, j));
    }
  CHECK((lo >= -0.25f && lo < -0.2f && hi < 0.25f && hi > 0.2f));
  for (index_t i = 0; i < 5; ++i) REQUIRE((*l.bias)(i) == static_cast<float>(0.25f * (2.0 * r1.uniform() - 1.0)));
  CHECK_FALSE(p.linear(3, 4, /*bias=*/false).bias.has_value());

  nn::norm_weights<float> const ln = p.norm(6, /*bias=*/true), rms = p.norm(6);
  CHECK_FALSE(rms.bias.has_value());
  for (index_t i = 0; i < 6; ++i) CHECK((ln.weight(i) == 1.0f && (*ln.bias)(i) == 0.0f && rms.weight(i) == 1.0f));
  tensor_view<float const, 3> const t = p.uniform({2, 3, 4}, 0.5f);
  CHECK((t.extent(0) == 2 && t.extent(1) == 3 && t.extent(2) == 4 && t.is_contiguous()));
  tensor_view<float const, 2> const c = p.constant({2, 3}, 0.5f);
  CHECK((c(0, 0) == 0.5f && c(1, 2) == 0.5f));
  CHECK(p.n_values() == 5 * 16 + 5 + 3 * 4 + 3 * 6 + 24 + 6);

  // The same seed gives the same values; a tensor's values do not depend on the sizes before it.
  nn::random_parameters<float> same(11), other(11);
  (void)other.uniform({7}, 1.0f);
  tensor_view<float const, 2> const w_same = same.linear(5, 16).weight;
  tensor_view<float const, 1> const b_other = other.uniform({5}, 0.25f);
  for (index_t i = 0; i < 5; ++i) CHECK((w_same(i, 3) == l.weight(i, 3) && b_other(i) == (*l.bias)(i)));
  // bf16: the same draws, rounded.
  nn::random_parameters<bf16> pb(11);
  tensor_view<bf16 const, 2> const wb = pb.linear(5, 16).weight;
  for (index_t j = 0; j < 16; ++j) CHECK(wb(2, j).bits == bf16::from_float(l.weight(2, j)).bits);

  // keep_alive holds the tensors after the store is gone.
  std::shared_ptr<void const> keep;
  tensor_view<float const, 1> v;
  {
    nn::random_parameters<float> q(11);
    v = q.constant({4}, 2.0f);
    keep = q.keep_alive();
  }
  CHECK((v(0) == 2.0f && v(3) == 2.0f));

  CHECK_THROWS_WITH(p.uniform({3, -1}, 1.0f), Catch::Matchers::ContainsSubstring("nn::random_parameters"));
  CHECK_THROWS_AS(p.uniform({3}, -1.0f), tessera::error);
  CHECK_THROWS_AS(p.uniform({3}, std::nanf("")), tessera::error);
  CHECK_THROWS_AS(p.uniform({index_t{1} << 30, index_t{1} << 30}, 1.0f), tessera::error);
  CHECK_THROWS_AS(p.linear(3, 0), tessera::error);
}

#if TESSERA_HAVE_AVX512_BF16_DOT
TEST_CASE("the vdpbf16ps and FMA GEMM kernels both match the reference bf16 products", "[nn][linear][unit]") {
  // nn::linear picks the kernel measured faster on the CPU (cpu_detail::bf16_dot_preferred: dot
  // on AMD Zen 4 and later, FMA elsewhere); both must be right on any machine, so both are also
  // tested by name (the FMA one here too).
  namespace cd = backend::cpu_detail;
  for (index_t m : {5, 17, 129})
    for (index_t k : {1, 7, 31, 32, 33, 129, 700})
      for (index_t n : {1, 17, 33, 129}) {
        auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), test::seed() + 11 * m + k);
        auto w = test::random_vector<bf16>(static_cast<std::size_t>(n * k), test::seed() + 13 * n + k, 0.1f);
        auto b = test::random_vector<bf16>(static_cast<std::size_t>(n), test::seed() + n);
        auto want = run_linear<backend::reference, bf16>(x, m, k, w, n, &b, product_precision::bf16, 1);
        exec_ctx<backend::cpu> ctx(2);
        for (cd::bf16_gemm_kernel kernel : {cd::bf16_gemm_kernel::dot, cd::bf16_gemm_kernel::fma}) {
          test::guarded<float> y(m * n, -1.0f);
          cd::gemm_args<bf16, bf16> const g{m, n, k, x.data(), k, w.data(), k, b.data(), y.data(), n};
          cd::gemm<backend::cpu::arch>(g, true, ctx, kernel);
          INFO("m=" << m << " k=" << k << " n=" << n << (kernel == cd::bf16_gemm_kernel::dot ? " dot" : " fma"));
          REQUIRE(y.intact());
          TESSERA_REQUIRE_CLOSE(y.values(), want, test::tol<float>::vs_ref);
        }
      }
}
#endif
