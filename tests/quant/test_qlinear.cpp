// SPDX-License-Identifier: Apache-2.0
// Quantized weights: the quantizer's error bounds and layout (quant::quantize), nn::linear with
// 8-bit and 4-bit weights -- exact where the weights quantize exactly, the cpu backend (decode GEMV
// and prefill GEMM, f32 and bf16 products, every group size, strided rows, bias or none, 1 or 2
// threads) against the reference backend's dequantize-then-multiply (4-bit decode within the
// bound of its x quantization where the build has the integer kernel) -- and errors.
#include <tessera/backend/cpu/qgemm.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/quant/format.hpp>

#include "common/compare.hpp"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <vector>

using namespace tessera;
using nn::product_precision;
using quant::weight_format;

namespace {

constexpr weight_format quantized_formats[] = {weight_format::q8, weight_format::q4};

/// y = x W^T (+ bias) with quantized W, x rows padded by ldx_pad, y rows by ldy_pad (padding
/// checked untouched).
template <class Backend>
std::vector<float> run_qlinear(std::vector<float> const& x, index_t m, quant::qmatrix const& w,
                               std::vector<float> const* bias, product_precision p, int threads, index_t pad = 0) {
  index_t const k = w.cols, n = w.rows;
  std::vector<float> xs(static_cast<std::size_t>(m * (k + pad)), -777.0f);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < k; ++j) xs[i * (k + pad) + j] = x[i * k + j];
  std::vector<float> ys(static_cast<std::size_t>(m * (n + pad)), -999.0f);
  tensor_view<float const, 2> xv(xs.data(), {m, k}, {k + pad, 1});
  tensor_view<float, 2> yv(ys.data(), {m, n}, {n + pad, 1});
  exec_ctx<Backend> ctx(threads);
  tensor_view<float const, 1> bv(bias ? bias->data() : nullptr, {bias ? n : 0});
  nn::linear<Backend>(xv, w, bv, yv, ctx, p);
  std::vector<float> y(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i) {
    for (index_t j = 0; j < n; ++j) y[i * n + j] = ys[i * (n + pad) + j];
    for (index_t j = n; j < n + pad; ++j) REQUIRE(ys[i * (n + pad) + j] == -999.0f);
  }
  return y;
}

/// Whether this build's decode quantizes x (backend/cpu/qgemm.hpp): 8-bit weights to int16 per row,
/// 4-bit weights to int8 per group of 32.
bool int_gemv(weight_format f) {
  return f == weight_format::q8 ? TESSERA_HAVE_Q8_INT_GEMV : TESSERA_HAVE_Q4_INT_GEMV;
}

/// The most that quantizing x (after rounding to bf16 with bf16 products) can move each output:
/// sum_k |W[j, k]| d_x(k) / 2, with d_x = max |x| / 32767 over the row (8-bit weights) or
/// max |x| / 127 over the group of 32 (4-bit weights).
std::vector<double> x_rounding_bound(std::vector<float> const& x, index_t m, quant::qmatrix const& w, bool bf16) {
  std::vector<double> out(static_cast<std::size_t>(m * w.rows));
  std::vector<float> row(static_cast<std::size_t>(w.cols)), dx(static_cast<std::size_t>(m * w.cols / 32));
  index_t const span = w.format == weight_format::q8 ? w.cols : 32;
  float const steps = w.format == weight_format::q8 ? 32767.0f : 127.0f;
  for (index_t i = 0; i < m; ++i)
    for (index_t g0 = 0; g0 < w.cols; g0 += span) {
      float amax = 0;
      for (index_t k = g0; k < g0 + span; ++k) {
        float const v = bf16 ? bf16::from_float(x[i * w.cols + k]).to_float() : x[i * w.cols + k];
        amax = std::max(amax, std::fabs(v));
      }
      for (index_t g = g0 / 32; g < (g0 + span) / 32; ++g) dx[i * (w.cols / 32) + g] = amax / steps;
    }
  for (index_t j = 0; j < w.rows; ++j) {
    quant::dequantize_row(w, j, row.data());
    for (index_t i = 0; i < m; ++i) {
      double s = 0;
      for (index_t k = 0; k < w.cols; ++k) s += std::fabs(row[k]) * dx[i * (w.cols / 32) + k / 32] / 2;
      out[i * w.rows + j] = s;
    }
  }
  return out;
}

/// sum_k |x[i, k]| |W[j, k]| per output: the scale of the rounding errors of a dot product.
std::vector<double> abs_products(std::vector<float> const& x, index_t m, quant::qmatrix const& w) {
  std::vector<double> out(static_cast<std::size_t>(m * w.rows));
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  for (index_t j = 0; j < w.rows; ++j) {
    quant::dequantize_row(w, j, row.data());
    for (index_t i = 0; i < m; ++i) {
      double s = 0;
      for (index_t k = 0; k < w.cols; ++k) s += std::fabs(x[i * w.cols + k]) * std::fabs(row[k]);
      out[i * w.rows + j] = s;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("quantize: every weight within half a step of its group's scale, the layout as documented",
          "[quant][unit]") {
  auto const seed = test::seed();
  INFO("seed " << seed);
  for (weight_format f : quantized_formats)
    for (index_t group : {index_t{32}, index_t{64}, index_t{128}}) {
      index_t const rows = 5, cols = 256;
      auto w = test::random_vector<float>(static_cast<std::size_t>(rows * cols), seed + group, 0.05f);
      w[3] = 0.0f;
      for (index_t k = 0; k < group; ++k) w[cols + k] = 0.0f;  // an all-zero group: scale 0, values 0
      quant::quantized_matrix const q = quant::quantize(tensor_view<float const, 2>(w.data(), {rows, cols}), f, group);
      INFO(quant::name_of(f) << " group " << group);
      REQUIRE(q.data.size() == static_cast<std::size_t>(rows * (f == weight_format::q8 ? cols : cols / 2)));
      REQUIRE(q.scales.size() == static_cast<std::size_t>(rows * cols / group));
      quant::qmatrix const v = q.view();
      std::vector<float> deq(static_cast<std::size_t>(cols));
      for (index_t r = 0; r < rows; ++r) {
        quant::dequantize_row(v, r, deq.data());
        for (index_t g = 0; g < cols / group; ++g) {
          float amax = 0.0f, extreme = 0.0f;
          for (index_t k = g * group; k < (g + 1) * group; ++k)
            if (std::fabs(w[r * cols + k]) > amax) amax = std::fabs(w[r * cols + k]), extreme = w[r * cols + k];
          float const d = v.row_scales(r)[g].to_float();
          float const want_d = f == weight_format::q8 ? amax / 127.0f : extreme / -8.0f;
          CHECK(std::fabs(d - want_d) <= std::fabs(want_d) * 1e-3f);  // the f16 rounding of the scale
          int top = 0;
          for (index_t k = g * group; k < (g + 1) * group; ++k) {
            float const x = w[r * cols + k], err = std::fabs(deq[k] - x);
            int const val = quant::value_at(f, v.row(r), k);
            top = std::max(top, std::abs(val));
            CHECK(val >= (f == weight_format::q8 ? -127 : -8));
            CHECK(val <= (f == weight_format::q8 ? 127 : 7));
            // q4 clamps values above 7 steps (the side opposite the extreme) to 7: up to a step off.
            float const budget = (f == weight_format::q4 && x / d > 7.5f) ? std::fabs(d) : 0.5f * std::fabs(d);
            CHECK(err <= budget * (1 + 1e-6f) + 1e-12f);
            if (amax == 0.0f) CHECK(deq[k] == 0.0f);
          }
          if (amax > 0.0f) CHECK(top == (f == weight_format::q8 ? 127 : 8));  // the full range is used
        }
      }
    }
  // The nibble layout: column j of a group in the low nibble of byte j, column j + 16 in the high.
  std::vector<float> w(32);
  for (int k = 0; k < 32; ++k) w[k] = static_cast<float>(k % 16 - 8);  // -8 .. 7 twice: scale exactly 1
  auto const q = quant::quantize(tensor_view<float const, 2>(w.data(), {1, 32}), weight_format::q4);
  REQUIRE(q.scales[0].to_float() == 1.0f);
  for (int j = 0; j < 16; ++j) CHECK(q.data[j] == static_cast<std::uint8_t>(j | (j << 4)));
}

TEST_CASE("quantized linear is exact where the weights quantize exactly", "[quant][unit]") {
  // Integers with each group's extreme at the end of the range have scale 1: the quantized
  // product is then the dense product of small integers, exact in any order.
  auto const seed = test::seed();
  for (weight_format f : quantized_formats) {
    index_t const m_values[] = {1, 3, 4, 9, 40};
    for (index_t m : m_values) {
      index_t const n = 37, k = 128;
      int const lim = f == weight_format::q8 ? 127 : 7;
      std::mt19937_64 gen(seed + static_cast<std::uint64_t>(m));
      std::uniform_int_distribution<int> d(f == weight_format::q8 ? -127 : -8, lim);
      std::vector<float> w(static_cast<std::size_t>(n * k));
      for (auto& v : w) v = static_cast<float>(d(gen));
      for (index_t g = 0; g < n * k; g += 32) w[g] = f == weight_format::q8 ? 127.0f : -8.0f;
      // q4 decode quantizes x per group of 32 (x8 = round(x * 127 / max |x|)): integers with each
      // group's largest at 127 pass through unchanged. The sums stay below 2^24: exact in f32.
      // (q8 decode's int16 x is checked within its bound by the next test.)
      auto x = test::random_ints<float>(static_cast<std::size_t>(m * k), seed + 7, f == weight_format::q8 ? 3 : 127);
      if (f == weight_format::q4)
        for (index_t i = 0; i < m * k; i += 32) x[i] = 127.0f;
      std::vector<float> bias = test::random_ints<float>(static_cast<std::size_t>(n), seed + 8, 5);
      auto q = quant::quantize(tensor_view<float const, 2>(w.data(), {n, k}), f);
      std::vector<float> want(static_cast<std::size_t>(m * n));
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) {
          float s = bias[j];
          for (index_t c = 0; c < k; ++c) s += x[i * k + c] * w[j * k + c];
          want[i * n + j] = s;
        }
      INFO(quant::name_of(f) << " m=" << m);
      for (auto p : {product_precision::f32, product_precision::bf16}) {
        CHECK(run_qlinear<backend::reference>(x, m, q.view(), &bias, p, 1) == want);
        if (f == weight_format::q8 && m <= 4 && int_gemv(f)) {  // int16 x is not exact here: the f32 kernel
          std::vector<float> y(static_cast<std::size_t>(m * n));
          exec_ctx<backend::cpu> ctx(2);
          backend::cpu_detail::qgemm<backend::cpu::arch>(
              backend::cpu_detail::qgemm_args<float>{m, x.data(), k, q.view(), bias.data(), y.data(), n},
              p == product_precision::bf16, ctx, backend::cpu_detail::quant_gemv_kernel::f32);
          CHECK(y == want);
        } else {
          CHECK(run_qlinear<backend::cpu>(x, m, q.view(), &bias, p, 2) == want);
        }
      }
    }
  }
}

TEST_CASE("quantized linear cpu matches the reference's dequantize-then-multiply", "[quant][unit]") {
#if defined(NDEBUG)
  std::vector<index_t> const sweep_n{1, 5, 67, 300};
#else  // Debug and sanitizer builds: the edge shapes only (the double-precision reference dominates)
  std::vector<index_t> const sweep_n{5, 67};
#endif
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  for (weight_format f : quantized_formats)
    for (auto p : {product_precision::f32, product_precision::bf16})
      for (index_t m : {index_t{1}, index_t{2}, index_t{3}, index_t{4}, index_t{5}, index_t{33}})
        for (index_t n : sweep_n)
          for (index_t k : {index_t{32}, index_t{96}, index_t{256}}) {
            index_t const group = k % 64 == 0 && (m + n) % 2 ? 64 : 32;
            auto w = test::random_vector<float>(static_cast<std::size_t>(n * k), ++s, 0.05f);
            auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), ++s);
            auto bias = test::random_vector<float>(static_cast<std::size_t>(n), ++s);
            bool const with_bias = (m + n + k) % 2 == 1;
            index_t const pad = (m + n) % 3;
            auto q = quant::quantize(tensor_view<float const, 2>(w.data(), {n, k}), f, group);
            auto want = run_qlinear<backend::reference>(x, m, q.view(), with_bias ? &bias : nullptr, p, 1);
            auto scale = abs_products(x, m, q.view());
            bool const x_quantized = int_gemv(f) && m <= 4;
            std::vector<double> const x_bound =
                x_quantized ? x_rounding_bound(x, m, q.view(), p == product_precision::bf16) : std::vector<double>(scale.size());
            for (int threads : {1, 2}) {
              auto got = run_qlinear<backend::cpu>(x, m, q.view(), with_bias ? &bias : nullptr, p, threads, pad);
              INFO(quant::name_of(f) << " m=" << m << " n=" << n << " k=" << k << " group=" << group << " threads="
                                     << threads << " precision=" << (p == product_precision::bf16 ? "bf16" : "f32"));
              // f32 sums in another order: a few ulps of sum |x w|. The prefill path with bf16
              // products rounds the dequantized weights to bf16 as well: up to 2^-8 of sum |x w|.
              double const rel = (p == product_precision::bf16 && m > 4) ? 1.0 / 256 : 1e-6 * std::sqrt(double(k));
              for (std::size_t i = 0; i < got.size(); ++i) {
                INFO("element " << i << " got " << got[i] << " want " << want[i]);
                REQUIRE(std::fabs(got[i] - want[i]) <= rel * scale[i] + x_bound[i] * (1 + 1e-5) + 1e-6);
              }
            }
            if (x_quantized) {  // the f32 decode kernel, which the integer ones replace
              std::vector<float> y(static_cast<std::size_t>(m * n));
              exec_ctx<backend::cpu> ctx(2);
              backend::cpu_detail::qgemm_args<float> const g{m, x.data(), k, q.view(), with_bias ? bias.data() : nullptr,
                                                             y.data(), n};
              backend::cpu_detail::qgemm<backend::cpu::arch>(g, p == product_precision::bf16, ctx,
                                                             backend::cpu_detail::quant_gemv_kernel::f32);
              for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(std::fabs(y[i] - want[i]) <= 1e-6 * std::sqrt(double(k)) * scale[i] + 1e-6);
            }
          }
}

#if TESSERA_HAVE_Q8_INT_GEMV
TEST_CASE("the 8-bit decode kernels' x: int16 per row, each 64 columns as 32 even then 32 odd", "[quant][unit]") {
  // backend/cpu/qgemm.hpp's layout, written out here independently: x16[64 c + 32 (j % 2) + (j % 64) / 2]
  // = nearbyint(x[j] 32767 / max |x|) for column j = 64 c + (j % 64), zeros past k.
  for (index_t k : {index_t{32}, index_t{200}, index_t{896}}) {
    index_t const m = 2, ld = (k + 63) / 64 * 64;
    auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), test::seed() + static_cast<std::uint64_t>(k));
    x[5] = -40.0f;  // one large value sets row 0's scale
    std::vector<std::int16_t> x16(static_cast<std::size_t>(m * ld), 12345);
    std::vector<float> dx(static_cast<std::size_t>(m));
    backend::cpu_detail::quantize_x_for_q8(x.data(), k, m, k, {ld, x16.data(), dx.data()});
    for (index_t i = 0; i < m; ++i) {
      float amax = 0.0f;
      for (index_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[i * k + j]));
      INFO("k " << k << " row " << i);
      REQUIRE(dx[i] == amax / 32767.0f);
      for (index_t j = 0; j < ld; ++j) {
        float const want = j < k ? std::nearbyint(x[i * k + j] * (32767.0f / amax)) : 0.0f;
        REQUIRE(x16[i * ld + j / 64 * 64 + (j % 2) * 32 + j % 64 / 2] == static_cast<std::int16_t>(want));
      }
    }
  }
}
#endif

#if TESSERA_HAVE_Q4_INT_GEMV
TEST_CASE("the 4-bit decode kernels' x: int8 per group of 32, halves apart, lane sums of the offset", "[quant][unit]") {
  // backend/cpu/qgemm.hpp's layout, written out here independently. Group g (scale
  // d = max |x_g| / 127, x8 = nearbyint(x / d)) is slot s = g % G of block b = g / G (G groups of 32
  // per block): its values 0 - 15 at x8[b 32 G + 16 s + j], 16 - 31 at x8[b 32 G + 16 G + 16 s + j - 16],
  // and offset[b 4 G + 4 s + l] = -8 (the sum of its values 4l .. 4l + 3 and 16 + 4l .. 16 + 4l + 3).
  constexpr index_t G = backend::cpu_detail::q4_block_groups;
  for (index_t k : {index_t{32}, index_t{96}, index_t{896}}) {
    index_t const m = 2, groups = k / 32, blocks = (groups + G - 1) / G;
    auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), test::seed() + static_cast<std::uint64_t>(k));
    x[5] = -40.0f;   // one large value sets group 0's scale
    x[40 % k] = 0.0f;
    std::vector<std::int8_t> x8(static_cast<std::size_t>(m * blocks * 32 * G), 99);
    std::vector<float> dx(static_cast<std::size_t>(m * blocks * G), -1.0f);
    std::vector<std::int32_t> off(static_cast<std::size_t>(m * blocks * 4 * G), 12345);
    backend::cpu_detail::quantize_x_for_q4(x.data(), k, m, k, {blocks, x8.data(), dx.data(), off.data()});
    for (index_t i = 0; i < m; ++i)
      for (index_t g = 0; g < blocks * G; ++g) {
        INFO("k " << k << " row " << i << " group " << g);
        index_t const b = g / G, s = g % G;
        float amax = 0.0f;
        if (g < groups)
          for (index_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i * k + g * 32 + j]));
        REQUIRE(dx[i * blocks * G + g] == amax / 127.0f);
        std::int32_t lane[4] = {0, 0, 0, 0};
        for (index_t j = 0; j < 32; ++j) {
          float const want = amax > 0.0f ? std::nearbyint(x[i * k + g * 32 + j] * (127.0f / amax)) : 0.0f;
          index_t const at = i * blocks * 32 * G + b * 32 * G + (j < 16 ? 0 : 16 * G) + 16 * s + j % 16;
          REQUIRE(x8[at] == static_cast<std::int8_t>(want));
          lane[j % 16 / 4] -= 8 * static_cast<std::int32_t>(want);
        }
        for (index_t l = 0; l < 4; ++l) REQUIRE(off[i * blocks * 4 * G + b * 4 * G + 4 * s + l] == lane[l]);
      }
  }
}
#endif

TEST_CASE("grouped quantized linear: bitwise each product alone, wide rows against the reference", "[quant][unit]") {
  // nn::linear over a span of quantized outputs of the same x (a decoder's q, k, v; gate, up): the
  // cpu backend's decode kernels run them in one pass. Each output must equal its own nn::linear
  // bitwise (1 and 2 threads), and the reference's within the bound of the integer kernels' x
  // quantization. Widths of 19 and 34 groups cross the 8-bit kernel's 16-group scale blocks and
  // end on half a 64-byte pair; m = 5 takes the large-M path one product at a time.
  auto const seed = test::seed();
  INFO("seed " << seed);
  std::uint64_t s = seed;
  for (weight_format f : quantized_formats)
    for (auto p : {product_precision::f32, product_precision::bf16})
      for (index_t m : {index_t{1}, index_t{3}, index_t{5}})
        for (index_t k : {index_t{608}, index_t{1088}}) {
          index_t const group = k == 1088 ? 64 : 32;
          std::vector<index_t> const rows{37, 8, 8};  // q, k, v of a tiny GQA layer
          std::vector<quant::quantized_matrix> ws;
          std::vector<std::vector<float>> biases;
          for (index_t n : rows) {
            auto w = test::random_vector<float>(static_cast<std::size_t>(n * k), ++s, 0.05f);
            ws.push_back(quant::quantize(tensor_view<float const, 2>(w.data(), {n, k}), f, group));
            biases.push_back(test::random_vector<float>(static_cast<std::size_t>(n), ++s));
          }
          auto x = test::random_vector<float>(static_cast<std::size_t>(m * k), ++s);
          INFO(quant::name_of(f) << " m=" << m << " k=" << k << " precision=" << (p == product_precision::bf16 ? "bf16" : "f32"));
          auto grouped = [&]<class Backend>(int threads) {
            std::vector<std::vector<float>> ys;
            std::vector<nn::quantized_output<float>> outs;
            for (std::size_t i = 0; i < rows.size(); ++i) ys.emplace_back(static_cast<std::size_t>(m * rows[i]), -1.0f);
            for (std::size_t i = 0; i < rows.size(); ++i)
              outs.push_back({ws[i].view(),
                              i == 1 ? tensor_view<float const, 1>(nullptr, {0})  // k without bias
                                     : tensor_view<float const, 1>(biases[i].data(), {rows[i]}),
                              tensor_view<float, 2>(ys[i].data(), {m, rows[i]})});
            exec_ctx<Backend> ctx(threads);
            nn::linear<Backend>(tensor_view<float const, 2>(x.data(), {m, k}),
                                std::span<nn::quantized_output<float> const>(outs), ctx, p);
            return ys;
          };
          auto const ref = grouped.template operator()<backend::reference>(1);
          for (int threads : {1, 2}) {
            auto const got = grouped.template operator()<backend::cpu>(threads);
            for (std::size_t i = 0; i < rows.size(); ++i) {
              INFO("output " << i << " threads " << threads);
              auto const alone = run_qlinear<backend::cpu>(x, m, ws[i].view(), i == 1 ? nullptr : &biases[i], p, threads);
              REQUIRE(got[i] == alone);
              auto const want = run_qlinear<backend::reference>(x, m, ws[i].view(), i == 1 ? nullptr : &biases[i], p, 1);
              REQUIRE(ref[i] == want);
              auto const scale = abs_products(x, m, ws[i].view());
              bool const x_quantized = int_gemv(f) && m <= 4;
              std::vector<double> const x_bound = x_quantized
                                                      ? x_rounding_bound(x, m, ws[i].view(), p == product_precision::bf16)
                                                      : std::vector<double>(scale.size());
              double const rel = (p == product_precision::bf16 && m > 4) ? 1.0 / 256 : 1e-6 * std::sqrt(double(k));
              for (std::size_t e = 0; e < want.size(); ++e) {
                INFO("element " << e << " got " << got[i][e] << " want " << want[e]);
                REQUIRE(std::fabs(got[i][e] - want[e]) <= rel * scale[e] + x_bound[e] * (1 + 1e-5) + 1e-6);
              }
            }
          }
        }
}

TEST_CASE("quantized linear rejects bad shapes and groups with a message naming the block", "[quant][unit]") {
  std::vector<float> w(64 * 4, 0.5f), x(64 * 2, 1.0f), y(2 * 4);
  auto q = quant::quantize(tensor_view<float const, 2>(w.data(), {4, 64}), weight_format::q8);
  exec_ctx<backend::cpu> ctx(1);
  tensor_view<float const, 1> none(nullptr, {0});
  using Catch::Matchers::ContainsSubstring;
  REQUIRE_THROWS_WITH(nn::linear<backend::cpu>(tensor_view<float const, 2>(x.data(), {2, 32}), q.view(), none,
                                               tensor_view<float, 2>(y.data(), {2, 4}), ctx),
                      ContainsSubstring("nn::linear") && ContainsSubstring("inner dimensions"));
  REQUIRE_THROWS_WITH(nn::linear<backend::cpu>(tensor_view<float const, 2>(x.data(), {2, 64}), q.view(), none,
                                               tensor_view<float, 2>(y.data(), {2, 3}), ctx),
                      ContainsSubstring("y must be [2, 4]"));
  // A grouped call checks every output before running any: the second one's y is too narrow.
  std::vector<float> y2(2 * 4, -1.0f);
  std::vector<nn::quantized_output<float>> const outs{{q.view(), none, tensor_view<float, 2>(y2.data(), {2, 4})},
                                                      {q.view(), none, tensor_view<float, 2>(y.data(), {2, 3})}};
  REQUIRE_THROWS_WITH(nn::linear<backend::cpu>(tensor_view<float const, 2>(x.data(), {2, 64}),
                                               std::span<nn::quantized_output<float> const>(outs), ctx),
                      ContainsSubstring("y must be [2, 4]"));
  REQUIRE(y2 == std::vector<float>(2 * 4, -1.0f));
  auto bad = q.view();
  bad.group = 48;
  REQUIRE_THROWS_WITH(nn::linear<backend::cpu>(tensor_view<float const, 2>(x.data(), {2, 64}), bad, none,
                                               tensor_view<float, 2>(y.data(), {2, 4}), ctx),
                      ContainsSubstring("multiple of 32"));
  REQUIRE_THROWS_WITH(quant::quantize(tensor_view<float const, 2>(w.data(), {2, 96}), weight_format::q4, 64),
                      ContainsSubstring("not a whole number of groups of 64"));
  w[5] = std::nanf("");
  REQUIRE_THROWS_WITH(quant::quantize(tensor_view<float const, 2>(w.data(), {4, 64}), weight_format::q8),
                      ContainsSubstring("only finite weights"));
  w[5] = 1e9f;
  REQUIRE_THROWS_WITH(quant::quantize(tensor_view<float const, 2>(w.data(), {4, 64}), weight_format::q8),
                      ContainsSubstring("f16 range"));
}
