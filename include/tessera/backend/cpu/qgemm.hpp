// SPDX-License-Identifier: Apache-2.0
// The cpu products with quantized weights (quant::qmatrix): y[M, N] = x[M, K] @ W[N, K]^T (+ bias).
//   - Small M (decode, M <= gemv_max_rows): each W row is streamed once and dequantized in
//     registers -- the int8 (or the nibble minus 8) widened to f32 and multiplied by its group's
//     f16 scale, which is exact -- then f32 FMAs against x kept in f32 (or rounded to bf16 for bf16
//     products). So the products are the reference's (dequantize, then multiply); only the
//     summation order differs.
//   - Large M (prefill): blocks of W rows are dequantized into scratch -- bf16 for bf16 products
//     (the dequantized weight rounded to bf16 once more), f32 for f32 products (exact) -- and
//     handed to the dense GEMM engine (gemm.hpp), whose packing and register tiles they reuse. The
//     dequantization is K multiply-adds per W row, against 2 M K flops of product.
#pragma once

#include <tessera/backend/cpu/gemm.hpp>
#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/quant/format.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::backend::cpu_detail {

/// f16 -> float for a group's scale (F16C where the target has it).
[[nodiscard]] inline float scale_to_float(f16 s) noexcept {
#if defined(__F16C__)
  return _cvtsh_ss(s.bits);
#else
  return s.to_float();
#endif
}

/// One group of 32 quantized columns dequantized into 32 / L float batches: out[i] holds columns
/// [i L, (i + 1) L). q points at the group's first byte (q8: 32 bytes, q4: 16 bytes).
template <class A, quant::weight_format F>
inline void dequantize_group(std::uint8_t const* q, float d, fbatch<A>* out) noexcept {
  constexpr std::size_t L = fbatch<A>::size;
  fbatch<A> const scale(d);
#if defined(__AVX512F__)
  if constexpr (L == 16) {
    __m128i lo, hi;
    if constexpr (F == quant::weight_format::q8) {
      lo = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
      hi = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q + 16));
    } else {
      __m128i const b = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
      __m128i const low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
      lo = _mm_sub_epi8(_mm_and_si128(b, low4), eight);
      hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), eight);
    }
    out[0] = fbatch<A>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))) * scale;
    out[1] = fbatch<A>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))) * scale;
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (L == 8) {
    __m128i lo, hi;
    if constexpr (F == quant::weight_format::q8) {
      lo = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
      hi = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q + 16));
    } else {
      __m128i const b = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
      __m128i const low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
      lo = _mm_sub_epi8(_mm_and_si128(b, low4), eight);
      hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), eight);
    }
    out[0] = fbatch<A>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))) * scale;
    out[1] = fbatch<A>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))) * scale;
    out[2] = fbatch<A>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))) * scale;
    out[3] = fbatch<A>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))) * scale;
    return;
  }
#endif
  alignas(64) float tmp[32];
  for (int k = 0; k < 32; ++k) {
    int const v = F == quant::weight_format::q8
                      ? static_cast<int>(static_cast<std::int8_t>(q[k]))
                      : static_cast<int>(k < 16 ? (q[k] & 0x0F) : (q[k - 16] >> 4)) - 8;
    tmp[k] = static_cast<float>(v);
  }
  for (std::size_t i = 0; i < 32 / L; ++i) out[i] = fbatch<A>::load_aligned(tmp + i * L) * scale;
}

/// Operands of one quantized product.
template <class Bias>
struct qgemm_args {
  index_t m;
  float const* x;  // [m, w.cols], row stride ldx
  index_t ldx;
  quant::qmatrix w;
  Bias const* bias;  // [w.rows] or nullptr
  float* y;          // [m, w.rows], row stride ldy
  index_t ldy;
};

/// Small-M kernel: outputs [n_begin, n_end) of MROWS rows of x, R rows of W at a time, each W row
/// read once. Every output is computed the same way whatever block it lands in, so the result does
/// not depend on the thread count.
template <class A, quant::weight_format F, int MROWS, class Bias>
void qgemv_rows(qgemm_args<Bias> const& g, index_t n_begin, index_t n_end) noexcept {
  using B = fbatch<A>;
  constexpr int L = static_cast<int>(B::size);
  constexpr int V = 32 / L;                 // batches per group
  constexpr int R = MROWS == 1 ? 4 : 2;     // W rows per pass
  constexpr index_t group_bytes = F == quant::weight_format::q8 ? 32 : 16;
  quant::qmatrix const& w = g.w;
  index_t const per_scale = w.group / 32;  // groups of 32 per scale
  for (index_t n = n_begin; n < n_end; n += R) {
    int const rows = static_cast<int>(std::min<index_t>(R, n_end - n));
    B acc[MROWS][R];
    for (auto& am : acc)
      for (auto& v : am) v = B(0.0f);
    std::uint8_t const* qr[R];
    f16 const* sr[R];
    for (int r = 0; r < R; ++r) {
      index_t const row = n + std::min(r, rows - 1);  // missing rows repeat the last (not stored)
      qr[r] = w.row(row);
      sr[r] = w.row_scales(row);
    }
    index_t const n32 = w.cols / 32;
    for (index_t j = 0; j < n32; ++j) {
      B wv[R][V];
      for (int r = 0; r < R; ++r) {
        __builtin_prefetch(qr[r] + (j + 16) * group_bytes);
        dequantize_group<A, F>(qr[r] + j * group_bytes, scale_to_float(sr[r][j / per_scale]), wv[r]);
      }
      for (int m = 0; m < MROWS; ++m)
        for (int v = 0; v < V; ++v) {
          B const xv = B::load_unaligned(g.x + m * g.ldx + j * 32 + v * L);
          for (int r = 0; r < R; ++r) acc[m][r] = xsimd::fma(xv, wv[r][v], acc[m][r]);
        }
    }
    for (int m = 0; m < MROWS; ++m)
      for (int r = 0; r < rows; ++r)
        g.y[m * g.ldy + n + r] = reduce_add(acc[m][r]) + (g.bias ? to_float(g.bias[n + r]) : 0.0f);
  }
}

template <class A, quant::weight_format F, class Bias>
struct qgemv_kernel {
  template <int MROWS>
  struct rows {
    static void run(qgemm_args<Bias> const& g, index_t n_begin, index_t n_end) noexcept {
      qgemv_rows<A, F, MROWS>(g, n_begin, n_end);
    }
  };
};

/// Rows [r0, r1) of W dequantized into out (row stride ldo elements), as f32 or rounded to bf16.
template <class A, class Out>
void dequantize_rows(quant::qmatrix const& w, index_t r0, index_t r1, Out* out, index_t ldo) noexcept {
  using B = fbatch<A>;
  constexpr index_t L = B::size;
  index_t const per_scale = w.group / 32, group_bytes = w.format == quant::weight_format::q8 ? 32 : 16;
  for (index_t r = r0; r < r1; ++r) {
    std::uint8_t const* q = w.row(r);
    f16 const* s = w.row_scales(r);
    Out* o = out + (r - r0) * ldo;
    for (index_t j = 0; j < w.cols / 32; ++j) {
      B v[32 / L];
      float const d = scale_to_float(s[j / per_scale]);
      if (w.format == quant::weight_format::q8)
        dequantize_group<A, quant::weight_format::q8>(q + j * group_bytes, d, v);
      else
        dequantize_group<A, quant::weight_format::q4>(q + j * group_bytes, d, v);
      for (index_t i = 0; i < 32 / L; ++i) {
        if constexpr (std::is_same_v<Out, bf16>)
          store_as_bf16<A>(o + j * 32 + i * L, v[i]);
        else
          v[i].store_unaligned(o + j * 32 + i * L);
      }
    }
  }
}

/// Rows of W dequantized per block of the large-M path: a block of bf16 (f32) takes this many rows
/// times K times 2 (4) bytes of scratch, and one call of the dense engine.
inline constexpr index_t qgemm_block_rows = 256;

/// y = x W^T (+ bias) with quantized W. bf16_products: x is rounded to bf16 first; in the large-M
/// path the dequantized W too (see the header comment).
template <class A, class Bias>
void qgemm(qgemm_args<Bias> g, bool bf16_products, exec_ctx<cpu_simd<A>>& ctx) {
  using blk = gemm_blocking<A>;
  index_t const n = g.w.rows, k = g.w.cols;
  if (g.m == 0 || n == 0) return;
  auto frame = ctx.scratch().open();
  bool const tiny = static_cast<double>(g.m) * static_cast<double>(n) * static_cast<double>(k) < gemm_min_parallel_macs;
  int const threads = tiny ? 1 : std::max(1, ctx.threads());
  if (g.m <= blk::gemv_max_rows) {
    if (bf16_products) {  // x rounded to bf16 once; the products are then exact in f32
      float* xr = frame.template alloc<float>(static_cast<std::size_t>(g.m * k));
      round_rows_to_bf16<A>(g.x, g.ldx, g.m, k, xr, k);
      g.x = xr;
      g.ldx = k;
    }
    parallel_region(threads, [&](int t, int T) {
      auto const r = split(n, t, T, 4);
      if (g.w.format == quant::weight_format::q8)
        dispatch_rows<static_cast<int>(blk::gemv_max_rows),
                      qgemv_kernel<A, quant::weight_format::q8, Bias>::template rows>(
            static_cast<int>(g.m), g, static_cast<index_t>(r.begin), static_cast<index_t>(r.end));
      else
        dispatch_rows<static_cast<int>(blk::gemv_max_rows),
                      qgemv_kernel<A, quant::weight_format::q4, Bias>::template rows>(
            static_cast<int>(g.m), g, static_cast<index_t>(r.begin), static_cast<index_t>(r.end));
    });
    return;
  }
  auto run = [&]<class Out>(Out*) {
    index_t const block = std::min(n, qgemm_block_rows);
    Out* wd = frame.template alloc<Out>(static_cast<std::size_t>(block * k));
    for (index_t n0 = 0; n0 < n; n0 += block) {
      index_t const nb = std::min(block, n - n0);
      parallel_region(threads, [&](int t, int T) {
        auto const r = split(nb, t, T);
        dequantize_rows<A>(g.w, n0 + r.begin, n0 + r.end, wd + r.begin * k, k);
      });
      gemm_args<Out, Bias> const d{g.m, nb, k, g.x, g.ldx, wd, k, g.bias ? g.bias + n0 : nullptr, g.y + n0, g.ldy};
      gemm<A>(d, bf16_products, ctx);
    }
  };
  if (bf16_products)
    run(static_cast<bf16*>(nullptr));
  else
    run(static_cast<float*>(nullptr));
}

}  // namespace tessera::backend::cpu_detail

TESSERA_SIMD_DIAGNOSTICS_END
