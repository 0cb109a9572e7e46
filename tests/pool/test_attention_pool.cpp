// SPDX-License-Identifier: Apache-2.0
// pool::map_head / navit_pool: hand-worked tiny heads; cpu vs reference (ragged batches, padding
// sequences, strided rows with guards, f32 / bf16 weights); packed == each image alone; masked rows
// are 0 and leave the others unchanged; argument errors; random_map_head_weights.
#include <tessera/pool/attention_pool.hpp>

#include "common/compare.hpp"
#include "common/strided.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

using namespace tessera;

namespace {

template <class W>
tensor_view<W const, 1> v1(std::vector<W> const& v) {
  return {v.data(), {static_cast<index_t>(v.size())}};
}
template <class W>
tensor_view<W const, 2> v2(std::vector<W> const& v, index_t rows) {
  return {v.data(), {rows, static_cast<index_t>(v.size()) / rows}};
}

/// Owned map_head parameters.
template <class W>
struct map_params {
  std::vector<W> probe, q_w, q_b, kv_w, kv_b, proj_w, proj_b, norm_w, norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
  index_t d = 0, d_ff = 0;
  [[nodiscard]] pool::map_head_weights<W> weights() const {
    return {v1(probe),  v2(q_w, d),      v1(q_b),    v2(kv_w, 2 * d), v1(kv_b),   v2(proj_w, d), v1(proj_b),
            v1(norm_w), v1(norm_b),      v2(fc1_w, d_ff), v1(fc1_b), v2(fc2_w, d), v1(fc2_b)};
  }
  static map_params random(index_t d, index_t d_ff, std::uint64_t s) {
    map_params p;
    p.d = d;
    p.d_ff = d_ff;
    auto const r = [&](index_t n, float sd) { return test::random_vector<W>(static_cast<std::size_t>(n), ++s, sd); };
    float const sd = 1.0f / std::sqrt(static_cast<float>(d));
    p.probe = r(d, 1.0f);
    p.q_w = r(d * d, sd);
    p.q_b = r(d, 0.1f);
    p.kv_w = r(2 * d * d, sd);
    p.kv_b = r(2 * d, 0.1f);
    p.proj_w = r(d * d, sd);
    p.proj_b = r(d, 0.1f);
    p.norm_w = r(d, 1.0f);
    p.norm_b = r(d, 0.1f);
    p.fc1_w = r(d_ff * d, sd);
    p.fc1_b = r(d_ff, 0.1f);
    p.fc2_w = r(d * d_ff, 1.0f / std::sqrt(static_cast<float>(d_ff)));
    p.fc2_b = r(d, 0.1f);
    return p;
  }
};

/// Owned navit_pool parameters.
template <class W>
struct navit_params {
  std::vector<W> probe, gamma, to_q, to_kv, q_gamma, k_gamma, to_out;
  index_t d = 0, inner = 0, heads = 0;
  [[nodiscard]] pool::navit_pool_weights<W> weights() const {
    return {v1(probe), v1(gamma), v2(to_q, inner), v2(to_kv, 2 * inner), v2(q_gamma, heads), v2(k_gamma, heads),
            v2(to_out, d)};
  }
  static navit_params random(index_t d, index_t heads, index_t hd, std::uint64_t s) {
    navit_params p;
    p.d = d;
    p.inner = heads * hd;
    p.heads = heads;
    auto const r = [&](index_t n, float sd) { return test::random_vector<W>(static_cast<std::size_t>(n), ++s, sd); };
    float const sd = 1.0f / std::sqrt(static_cast<float>(d));
    p.probe = r(d, 1.0f);
    p.gamma = r(d, 1.0f);
    p.to_q = r(p.inner * d, sd);
    p.to_kv = r(2 * p.inner * d, sd);
    p.q_gamma = r(p.inner, 1.0f);
    p.k_gamma = r(p.inner, 1.0f);
    p.to_out = r(d * p.inner, 1.0f / std::sqrt(static_cast<float>(p.inner)));
    return p;
  }
};

template <class Backend, class W>
std::vector<float> run_map(map_params<W> const& p, index_t heads, std::vector<float> const& x, seq_offsets const& seqs,
                           std::vector<std::uint8_t> const& masked = {}, index_t pad = 0, int threads = 2,
                           nn::gelu_approx gelu = nn::gelu_approx::erf, float eps = 1e-6f) {
  test::strided_rows xb(seqs.n_tokens(), p.d, p.d + pad, x);
  test::strided_rows ob(seqs.n_seqs(), p.d, p.d + 2 * pad,
                        std::vector<float>(static_cast<std::size_t>(seqs.n_seqs() * p.d), std::nanf("")));
  exec_ctx<Backend> ctx(threads);
  pool::map_head_options opt;
  opt.n_heads = heads;
  opt.gelu = gelu;
  opt.norm_eps = eps;
  pool::map_head<Backend>(xb.view(), seqs, p.weights(), opt, ob.view(), ctx, masked);
  REQUIRE(xb.intact());
  REQUIRE(ob.intact());
  return ob.values();
}

template <class Backend, class W>
std::vector<float> run_navit(navit_params<W> const& p, std::vector<float> const& x, seq_offsets const& seqs,
                             std::vector<std::uint8_t> const& masked = {}, index_t pad = 0, int threads = 2) {
  test::strided_rows xb(seqs.n_tokens(), p.d, p.d + pad, x);
  test::strided_rows ob(seqs.n_seqs(), p.d, p.d + 2 * pad,
                        std::vector<float>(static_cast<std::size_t>(seqs.n_seqs() * p.d), std::nanf("")));
  exec_ctx<Backend> ctx(threads);
  pool::navit_pool_options opt;
  opt.n_heads = p.heads;
  pool::navit_pool<Backend>(xb.view(), seqs, p.weights(), opt, ob.view(), ctx, masked);
  REQUIRE(xb.intact());
  REQUIRE(ob.intact());
  return ob.values();
}

double gelu_erf(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

}  // namespace

TEST_CASE("map_head reference: hand-worked tiny head", "[pool][attention_pool][unit]") {
  // d = 2, one head (scale 1 / sqrt 2), q = probe, k = v = x (kv = [I; I]), proj = I, all biases 0.
  // Probe (sqrt(2) ln 3, 0) against tokens (1, 0) and (0, 0): scores ln 3 and 0, weights 3/4 and
  // 1/4, so y = (3/4, 0). LayerNorm(y) = (0.375, -0.375) / sqrt(0.140625 + eps) = (c, -c);
  // fc1 = fc2 = I: out = y + gelu((c, -c)). A second image of one token z gets y = z.
  map_params<float> p;
  p.d = 2;
  p.d_ff = 2;
  p.probe = {static_cast<float>(std::sqrt(2.0) * std::log(3.0)), 0.0f};
  p.q_w = p.proj_w = p.fc1_w = p.fc2_w = {1, 0, 0, 1};
  p.kv_w = {1, 0, 0, 1, 1, 0, 0, 1};
  p.norm_w = {1, 1};
  std::vector<float> const x{1, 0, 0, 0, 2, -2};
  auto const seqs = seq_offsets::from_lengths({2, 1, 0});
  double const c = 0.375 / std::sqrt(0.140625 + 1e-6), c2 = 2.0 / std::sqrt(4.0 + 1e-6);
  // Third image is empty: attention output 0, y = 0, LayerNorm(0) = 0, out = 0 + gelu(0) = 0.
  std::vector<double> const exact{0.75 + gelu_erf(c), gelu_erf(-c), 2 + gelu_erf(c2), -2 + gelu_erf(-c2), 0, 0};
  std::vector<float> const want(exact.begin(), exact.end());
  TESSERA_REQUIRE_CLOSE(run_map<backend::reference>(p, 1, x, seqs), want, (test::tolerance{1e-6, 1e-6}));
  TESSERA_REQUIRE_CLOSE(run_map<backend::cpu>(p, 1, x, seqs), want, (test::tolerance{2e-6, 2e-6}));
  // Two heads of one dimension each: head 0 sees scores (sqrt 2 ln 3) * (1, 0), head 1 all zero.
  double const w0 = 1.0 / (1.0 + std::exp(-std::sqrt(2.0) * std::log(3.0)));
  auto const two = run_map<backend::reference>(p, 2, x, seq_offsets::single(2), {}, 0, 1);
  double const y0 = w0, y1 = 0.0, mean = (y0 + y1) / 2, var = (y0 - mean) * (y0 - mean);
  double const n0 = (y0 - mean) / std::sqrt(var + 1e-6);
  std::vector<double> const e2{y0 + gelu_erf(n0), y1 + gelu_erf(-n0)};
  TESSERA_REQUIRE_CLOSE(two, std::vector<float>(e2.begin(), e2.end()), (test::tolerance{1e-6, 1e-6}));
}

TEST_CASE("navit_pool reference: hand-worked tiny head", "[pool][attention_pool][unit]") {
  // d = 2, one head of 2: probe (1, -1), gamma 1: LayerNorm -> (1, -1) / sqrt(1 + 1e-5); to_q = I;
  // q-norm: q / ||q|| * sqrt 2 = (1, -1). to_kv = [I; I]: tokens (2, 0) and (0, 3) give k' =
  // (sqrt 2, 0) and (0, sqrt 2); scores (scale 1) sqrt 2 and -sqrt 2: weights p and 1 - p with
  // p = 1 / (1 + e^(-2 sqrt 2)). to_out = I: out = (2p, 3(1 - p)) + probe.
  navit_params<float> p;
  p.d = 2;
  p.inner = 2;
  p.heads = 1;
  p.probe = {1, -1};
  p.gamma = {1, 1};
  p.to_q = p.to_out = {1, 0, 0, 1};
  p.to_kv = {1, 0, 0, 1, 1, 0, 0, 1};
  p.q_gamma = p.k_gamma = {1, 1};
  std::vector<float> const x{2, 0, 0, 3};
  double const w = 1.0 / (1.0 + std::exp(-2.0 * std::sqrt(2.0)));
  // A second, empty image gives the probe itself.
  std::vector<double> const exact{2 * w + 1, 3 * (1 - w) - 1, 1, -1};
  std::vector<float> const want(exact.begin(), exact.end());
  auto const seqs = seq_offsets::from_lengths({2, 0});
  TESSERA_REQUIRE_CLOSE(run_navit<backend::reference>(p, x, seqs), want, (test::tolerance{1e-6, 1e-6}));
  TESSERA_REQUIRE_CLOSE(run_navit<backend::cpu>(p, x, seqs), want, (test::tolerance{1e-6, 1e-6}));
  // k_gamma (1, 0) drops k's second dimension: k' = (sqrt 2, 0) and (0, 0), scores sqrt 2 and 0.
  p.k_gamma = {1, 0};
  double const v0 = 1.0 / (1.0 + std::exp(-std::sqrt(2.0)));
  std::vector<double> const e3{2 * v0 + 1, 3 * (1 - v0) - 1};
  TESSERA_REQUIRE_CLOSE(run_navit<backend::reference>(p, x, seq_offsets::single(2)),
                        std::vector<float>(e3.begin(), e3.end()), (test::tolerance{1e-6, 1e-6}));
}

TEMPLATE_TEST_CASE("attention pools: cpu matches the reference", "[pool][attention_pool][unit]", float, bf16) {
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  std::vector<std::vector<std::int64_t>> const sets{{0}, {1}, {7, 0, 129}, {17, 72, 1}};
  for (auto const& lens : sets)
    for (index_t d : {8, 72})
      for (int variant = 0; variant < 2; ++variant) {
        if (d == 72 && lens.size() != 3) continue;  // keep the (unoptimized) reference runs short
        auto const seqs = seq_offsets::from_lengths(lens);
        index_t const heads = variant ? 4 : 1;
        INFO("sequences " << lens.size() << ", first " << lens[0] << ", d " << d << ", variant " << variant);
        std::vector<std::uint8_t> masked;
        if (variant && lens.size() > 1)
          for (std::size_t i = 0; i < lens.size(); ++i) masked.push_back(i == 1 ? 1 : 0);
        auto const x = test::random_vector<float>(static_cast<std::size_t>(seqs.n_tokens() * d), ++s);
        auto const mp = map_params<TestType>::random(d, 2 * d, ++s);
        auto const gelu = variant ? nn::gelu_approx::tanh : nn::gelu_approx::erf;
        // Measured: max abs difference ~1e-6 (f32 softmax and GEMM order vs f64); 2x vs_ref keeps margin
        // for the LayerNorm's amplification of the attention output's error.
        auto const t = test::tol<float>::vs_ref.scaled(2.0);
        TESSERA_REQUIRE_CLOSE((run_map<backend::cpu>(mp, heads, x, seqs, masked, variant ? 3 : 0, 3, gelu)),
                              (run_map<backend::reference>(mp, heads, x, seqs, masked, 0, 1, gelu)), t);
        auto const np = navit_params<TestType>::random(d, heads, variant ? 16 : d, ++s);
        TESSERA_REQUIRE_CLOSE((run_navit<backend::cpu>(np, x, seqs, masked, variant ? 3 : 0, 3)),
                              (run_navit<backend::reference>(np, x, seqs, masked, 0, 1)), t);
      }
}

TEST_CASE("attention pools: packed == each image alone; masked rows are 0", "[pool][attention_pool][unit]") {
  std::vector<std::int64_t> const lens{7, 129, 1, 17};
  auto const seqs = seq_offsets::from_lengths(lens);
  index_t const d = 72;
  auto const x = test::random_vector<float>(static_cast<std::size_t>(seqs.n_tokens() * d), test::seed());
  auto const mp = map_params<float>::random(d, 2 * d, test::seed() + 1);
  auto const np = navit_params<float>::random(d, 4, 16, test::seed() + 2);
  auto const pm = run_map<backend::cpu>(mp, 4, x, seqs);
  auto const pn = run_navit<backend::cpu>(np, x, seqs);
  std::vector<std::uint8_t> const masked{0, 1, 0, 1};
  auto const mm = run_map<backend::cpu>(mp, 4, x, seqs, masked);
  auto const mn = run_navit<backend::cpu>(np, x, seqs, masked);
  for (std::size_t i = 0; i < lens.size(); ++i) {
    INFO("image " << i);
    auto const b = static_cast<std::ptrdiff_t>(seqs.begin(static_cast<std::int64_t>(i)) * d);
    std::vector<float> const xi(x.begin() + b, x.begin() + b + lens[i] * d);
    auto const row = [&](std::vector<float> const& v) {
      return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(i) * d,
                                v.begin() + static_cast<std::ptrdiff_t>(i + 1) * d);
    };
    // The kv GEMM may block a different row count differently: last-bit differences only.
    TESSERA_REQUIRE_CLOSE(run_map<backend::cpu>(mp, 4, xi, seq_offsets::single(lens[i])), row(pm),
                          test::tol<float>::vs_ref);
    TESSERA_REQUIRE_CLOSE(run_navit<backend::cpu>(np, xi, seq_offsets::single(lens[i])), row(pn),
                          test::tol<float>::vs_ref);
    if (masked[i]) {
      CHECK(row(mm) == std::vector<float>(static_cast<std::size_t>(d), 0.0f));
      CHECK(row(mn) == std::vector<float>(static_cast<std::size_t>(d), 0.0f));
    } else {
      CHECK(row(mm) == row(pm));
      CHECK(row(mn) == row(pn));
    }
  }
}

TEST_CASE("random_map_head_weights: timm's initialization, accepted by map_head", "[pool][attention_pool][unit]") {
  index_t const d = 16, d_ff = 40;
  nn::random_parameters<float> p(3);
  pool::map_head_weights<float> const w = pool::random_map_head_weights(d, d_ff, p);
  CHECK((w.probe.extent(0) == d && w.q_weight.extent(0) == d && w.kv_weight.extent(0) == 2 * d &&
         w.proj_weight.extent(1) == d && w.fc1_weight.extent(0) == d_ff && w.fc2_weight.extent(1) == d_ff));
  CHECK((w.q_bias.extent(0) == d && w.kv_bias.extent(0) == 2 * d && w.proj_bias.extent(0) == d &&
         w.fc1_bias.extent(0) == d_ff && w.fc2_bias.extent(0) == d));
  for (index_t i = 0; i < d; ++i) {
    CHECK((w.norm_weight(i) == 1.0f && w.norm_bias(i) == 0.0f));
    CHECK(std::abs(w.probe(i)) < std::sqrt(3.0f / d));  // std d^-1/2: uniform in +-sqrt(3 / d)
    CHECK(std::abs(w.fc2_weight(i, 0)) < 1.0f / std::sqrt(static_cast<float>(d_ff)));  // nn.Linear(d_ff, d)
  }
  auto const seqs = seq_offsets::from_lengths({3, 5});
  std::vector<float> const x = test::random_vector<float>(static_cast<std::size_t>(8 * d), test::seed());
  std::vector<float> out(2 * d);
  exec_ctx<backend::cpu> ctx(1);
  pool::map_head(tensor_view<float const, 2>(x.data(), {8, d}), seqs, w, pool::map_head_options{.n_heads = 4},
                 tensor_view<float, 2>(out.data(), {2, d}), ctx);
  for (float v : out) CHECK(std::isfinite(v));
  CHECK_THROWS_AS(pool::random_map_head_weights(0, d_ff, p), tessera::error);
}

TEST_CASE("attention pools reject bad arguments", "[pool][attention_pool][unit]") {
  exec_ctx<backend::cpu> ctx(1);
  index_t const d = 8;
  auto const mp = map_params<float>::random(d, 16, 1);
  auto const np = navit_params<float>::random(d, 2, 4, 2);
  std::vector<float> x(5 * d, 0.5f), out(2 * d, -1.0f);
  auto const seqs = seq_offsets::from_lengths({2, 3});
  tensor_view<float const, 2> const xv(x.data(), {5, d});
  tensor_view<float, 2> const ov(out.data(), {2, d});
  pool::map_head_options mo;
  mo.n_heads = 3;  // does not divide 8
  CHECK_THROWS_AS(pool::map_head(xv, seqs, mp.weights(), mo, ov, ctx), tessera::error);
  mo.n_heads = 0;
  CHECK_THROWS_AS(pool::map_head(xv, seqs, mp.weights(), mo, ov, ctx), tessera::error);
  mo.n_heads = 2;
  auto w = mp.weights();
  w.kv_weight = v2(mp.q_w, d);  // [d, d] instead of [2d, d]
  CHECK_THROWS_AS(pool::map_head(xv, seqs, w, mo, ov, ctx), tessera::error);
  w = mp.weights();
  w.norm_weight = {};  // required
  CHECK_THROWS_AS(pool::map_head(xv, seqs, w, mo, ov, ctx), tessera::error);
  CHECK_THROWS_AS(pool::map_head(xv, seqs, mp.weights(), mo, tensor_view<float, 2>(out.data(), {1, d}), ctx),
                  tessera::error);
  CHECK_THROWS_AS(pool::map_head(tensor_view<float const, 2>(x.data(), {4, d}), seqs, mp.weights(), mo, ov, ctx),
                  tessera::error);
  std::vector<std::uint8_t> const bad{0, 3};
  CHECK_THROWS_AS(pool::map_head(xv, seqs, mp.weights(), mo, ov, ctx, bad), tessera::error);
  mo.norm_eps = 0.0f;
  CHECK_THROWS_AS(pool::map_head(xv, seqs, mp.weights(), mo, ov, ctx), tessera::error);

  pool::navit_pool_options no;
  no.n_heads = 3;
  CHECK_THROWS_AS(pool::navit_pool(xv, seqs, np.weights(), no, ov, ctx), tessera::error);
  no.n_heads = 2;
  auto nw = np.weights();
  nw.q_gamma = v2(np.q_gamma, 1);  // [1, 8] instead of [2, 4]
  CHECK_THROWS_AS(pool::navit_pool(xv, seqs, nw, no, ov, ctx), tessera::error);
  nw = np.weights();
  nw.to_out = v2(np.to_q, 8);  // [8, 8] happens to fit, now a wrong one: [4, 16]
  nw.to_out = v2(np.to_kv, 4);
  CHECK_THROWS_AS(pool::navit_pool(xv, seqs, nw, no, ov, ctx), tessera::error);
  CHECK(out == std::vector<float>(static_cast<std::size_t>(2 * d), -1.0f));
}
