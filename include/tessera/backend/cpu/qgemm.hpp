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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

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

#if defined(__AVX2__) || defined(__AVX512F__)
/// A group's 32 quantized values as two vectors of 16 int8: columns 0-15 and 16-31 (q4: the low and
/// the high nibbles, minus 8).
template <quant::weight_format F>
inline void unpack_group_i8(std::uint8_t const* q, __m128i& lo, __m128i& hi) noexcept {
  if constexpr (F == quant::weight_format::q8) {
    lo = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
    hi = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q + 16));
  } else {
    __m128i const b = _mm_loadu_si128(reinterpret_cast<__m128i const*>(q));
    __m128i const low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    lo = _mm_sub_epi8(_mm_and_si128(b, low4), eight);
    hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), eight);
  }
}
#endif

/// One group of 32 quantized columns dequantized into 32 / L float batches: out[i] holds columns
/// [i L, (i + 1) L). q points at the group's first byte (q8: 32 bytes, q4: 16 bytes).
template <class A, quant::weight_format F>
inline void dequantize_group(std::uint8_t const* q, float d, fbatch<A>* out) noexcept {
  constexpr std::size_t L = fbatch<A>::size;
  fbatch<A> const scale(d);
#if defined(__AVX512F__)
  if constexpr (L == 16) {
    __m128i lo, hi;
    unpack_group_i8<F>(q, lo, hi);
    out[0] = fbatch<A>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))) * scale;
    out[1] = fbatch<A>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))) * scale;
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (L == 8) {
    __m128i lo, hi;
    unpack_group_i8<F>(q, lo, hi);
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

// ---------------------------------------------------------------------------------------------
// 4-bit decode with integer dot products. Dequantizing 4-bit weights to f32 costs more
// instructions per byte than the memory system delivers bytes (bench_kernels: about half the DRAM
// roof on Zen 4), so where the target has AVX512-VNNI or AVX2, x is quantized too, per group of 32
// (d_x = max |x| / 127, x8 = round(x / d_x), in f32: llama.cpp's Q8 activations) and each group's
// sum of (q - 8) * x8 is formed in int32 -- exact -- then scaled by d_w * d_x. The cost is x's
// rounding: at most d_x / 2 per element, against the weights' step d_w (their error is 8 times
// larger relative to the group's largest value, so the 4-bit error dominates).

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define TESSERA_HAVE_Q4_INT_GEMV 1
#elif defined(__AVX2__)
#define TESSERA_HAVE_Q4_INT_GEMV 1
#else
#define TESSERA_HAVE_Q4_INT_GEMV 0
#endif

#if TESSERA_HAVE_Q4_INT_GEMV
/// Groups of 32 per block of the integer kernel: 4 (one zmm of packed nibbles) or 2 (one ymm).
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
inline constexpr index_t q4_block_groups = 4;
#else
inline constexpr index_t q4_block_groups = 2;
#endif
/// How far ahead of its loads the 4-bit kernel prefetches W: 2 KiB (32 cache lines) in flight per
/// core. Measured on the 0.5B and 1.5B decoders (q4, 2 threads of a Zen 4): 3 - 5 % faster per token
/// than 512 bytes; 4 KiB the same as 2.
inline constexpr index_t q4_prefetch_bytes = 2048;

/// x quantized for the integer kernel, per row: x8 (int8, blocks of q4_block_groups groups, each
/// block the groups' first 16 values then their last 16, as the nibbles unpack), the per-group
/// scale d_x and, per 32-bit lane of a block, -8 times the sum of the 8 x8 values the lane's dot
/// product covers (so the accumulator starts at the -8 offset's share). Padded with zeros to
/// whole blocks.
struct q4_x_layout {
  index_t blocks;          // per row
  std::int8_t* x8;         // [m][blocks][2][16 * q4_block_groups]
  float* dx;               // [m][blocks * q4_block_groups]
  std::int32_t* offset;    // [m][blocks][4 * q4_block_groups]
};

/// Runs on the calling thread before the parallel region (a serial step of every decode product),
/// hence the vector form: the same values as the scalar tail (vcvtps2dq rounds to nearest even, as
/// std::nearbyint does in the default rounding mode; |x8| <= 127, so the narrowing is exact).
inline void quantize_x_for_q4(float const* x, index_t ldx, index_t m, index_t k, q4_x_layout const& q) noexcept {
  constexpr index_t G = q4_block_groups;
  index_t const groups = k / 32;
  for (index_t i = 0; i < m; ++i) {
    std::int8_t* x8 = q.x8 + i * q.blocks * 32 * G;
    float* dx = q.dx + i * q.blocks * G;
    std::int32_t* off = q.offset + i * q.blocks * 4 * G;
    std::memset(x8, 0, static_cast<std::size_t>(q.blocks * 32 * G));
    std::memset(dx, 0, static_cast<std::size_t>(q.blocks * G) * sizeof(float));
    std::memset(off, 0, static_cast<std::size_t>(q.blocks * 4 * G) * sizeof(std::int32_t));
    for (index_t g = 0; g < groups; ++g) {
      float const* xg = x + i * ldx + g * 32;
      index_t const b = g / G, slot = g % G;
      // the group's first 16 values in the block's low half, its last 16 in the high half
      std::int8_t* lo = x8 + b * 32 * G + slot * 16;
      std::int8_t* hi = lo + 16 * G;
      std::int32_t* o = off + b * 4 * G + slot * 4;
#if defined(__AVX512F__)
      __m512 const a = _mm512_loadu_ps(xg), c = _mm512_loadu_ps(xg + 16);
      float const amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
      float const inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      dx[g] = amax / 127.0f;
      __m512 const vinv = _mm512_set1_ps(inv);
      __m128i const la = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, vinv)));
      __m128i const lc = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(c, vinv)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), la);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), lc);
      // lane l of the kernel's dot product covers values 4l .. 4l + 3 of both halves
      __m128i const ones8 = _mm_set1_epi8(1), ones16 = _mm_set1_epi16(1);
      __m128i const sum4 = _mm_add_epi32(_mm_madd_epi16(_mm_maddubs_epi16(ones8, la), ones16),
                                         _mm_madd_epi16(_mm_maddubs_epi16(ones8, lc), ones16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_mullo_epi32(sum4, _mm_set1_epi32(-8)));
#else
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xg[j]));
      float const inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      dx[g] = amax / 127.0f;
      for (int j = 0; j < 32; ++j) {
        auto const v = static_cast<std::int8_t>(std::nearbyint(xg[j] * inv));
        (j < 16 ? lo : hi)[j & 15] = v;
        o[(j & 15) / 4] -= 8 * v;
      }
#endif
    }
  }
}

/// Small-M 4-bit kernel with integer dot products: outputs [n_begin, n_end) for MROWS x rows.
template <int MROWS, class Bias>
void q4_int_gemv_rows(qgemm_args<Bias> const& g, q4_x_layout const& q, index_t n_begin, index_t n_end) noexcept {
  constexpr index_t G = q4_block_groups;
  quant::qmatrix const& w = g.w;
  index_t const groups = w.cols / 32, per_scale = w.group / 32;
  for (index_t n = n_begin; n < n_end; ++n) {
    std::uint8_t const* qr = w.row(n);
    f16 const* sr = w.row_scales(n);
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    __m512 acc[MROWS];
    for (auto& a : acc) a = _mm512_setzero_ps();
    __m512i const low4 = _mm512_set1_epi8(0x0F);
    __m512i const quad = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    for (index_t b = 0; b < q.blocks; ++b) {
      index_t const g0 = b * G, in_block = std::min<index_t>(G, groups - g0);
      __mmask64 const mask = in_block == G ? ~__mmask64{0} : (__mmask64{1} << (16 * in_block)) - 1;
      __m512i const raw = _mm512_maskz_loadu_epi8(mask, qr + g0 * 16);
      _mm_prefetch(reinterpret_cast<char const*>(qr + g0 * 16 + q4_prefetch_bytes), _MM_HINT_T0);
      __m512i const lo = _mm512_and_si512(raw, low4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      alignas(16) float dw[4] = {0, 0, 0, 0};
      if (per_scale == 1 && in_block == G) {
        _mm_store_ps(dw, _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<__m128i const*>(sr + g0))));
      } else {
        for (index_t j = 0; j < in_block; ++j) dw[j] = scale_to_float(sr[(g0 + j) / per_scale]);
      }
      __m512 const dw16 = _mm512_permutexvar_ps(quad, _mm512_castps128_ps512(_mm_load_ps(dw)));
      for (int m = 0; m < MROWS; ++m) {
        std::int8_t const* xb = q.x8 + (m * q.blocks + b) * 32 * G;
        __m512i v = _mm512_loadu_si512(q.offset + (m * q.blocks + b) * 4 * G);
        v = _mm512_dpbusd_epi32(v, lo, _mm512_loadu_si512(xb));
        v = _mm512_dpbusd_epi32(v, hi, _mm512_loadu_si512(xb + 16 * G));
        __m512 const dx16 = _mm512_permutexvar_ps(quad, _mm512_castps128_ps512(_mm_loadu_ps(q.dx + (m * q.blocks + b) * G)));
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(dw16, dx16), acc[m]);
      }
    }
    for (int m = 0; m < MROWS; ++m)
      g.y[m * g.ldy + n] = _mm512_reduce_add_ps(acc[m]) + (g.bias ? to_float(g.bias[n]) : 0.0f);
#else  // AVX2: maddubs (u8 x s8 -> pairs of s16) and madd with ones (-> s32)
    __m256 acc[MROWS];
    for (auto& a : acc) a = _mm256_setzero_ps();
    __m256i const low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256i const quad = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
    for (index_t b = 0; b < q.blocks; ++b) {
      index_t const g0 = b * G, in_block = std::min<index_t>(G, groups - g0);
      __m256i raw;
      if (in_block == G) {
        raw = _mm256_loadu_si256(reinterpret_cast<__m256i const*>(qr + g0 * 16));
      } else {
        raw = _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<__m128i const*>(qr + g0 * 16)));
      }
      _mm_prefetch(reinterpret_cast<char const*>(qr + g0 * 16 + q4_prefetch_bytes), _MM_HINT_T0);
      __m256i const lo = _mm256_and_si256(raw, low4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
      float dw[2] = {scale_to_float(sr[g0 / per_scale]), in_block == G ? scale_to_float(sr[(g0 + 1) / per_scale]) : 0.0f};
      __m256 const dw8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_setr_ps(dw[0], dw[1], 0, 0)), quad);
      for (int m = 0; m < MROWS; ++m) {
        std::int8_t const* xb = q.x8 + (m * q.blocks + b) * 32 * G;
        __m256i const p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<__m256i const*>(xb))),
                                           _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<__m256i const*>(xb + 16 * G))));
        __m256i const v = _mm256_add_epi32(_mm256_madd_epi16(p, ones),
                                           _mm256_loadu_si256(reinterpret_cast<__m256i const*>(q.offset + (m * q.blocks + b) * 4 * G)));
        __m256 const dx8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_castsi128_ps(_mm_loadl_epi64(
                                                        reinterpret_cast<__m128i const*>(q.dx + (m * q.blocks + b) * G)))),
                                                    quad);
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(dw8, dx8), acc[m]);
      }
    }
    for (int m = 0; m < MROWS; ++m) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      g.y[m * g.ldy + n] = _mm_cvtss_f32(s) + (g.bias ? to_float(g.bias[n]) : 0.0f);
    }
#endif
  }
}
#endif  // TESSERA_HAVE_Q4_INT_GEMV

// ---------------------------------------------------------------------------------------------
// 8-bit decode with 16-bit integer activations. The f32 kernel above spends five instructions per
// 16 weights (widen, convert, scale, multiply-add) and stays under the DRAM roof on 2 cores; here x
// is quantized once per call to int16 with one scale per row (d_x = max |x| / 32767, an error of at
// most d_x / 2 per element: for max |x| = 50 sigma, 4e-4 sigma, far below bf16's 2^-9 relative
// rounding). The weights are read 64 bytes (two groups) at a time and split into their even and
// odd bytes, sign-extended to int16 in place by shifts (no lane-crossing widening); x is stored in
// the matching order, each 64 columns as [32 even | 32 odd], so that two vpmaddwd (vpdpwssd with
// VNNI) give each 32-bit lane the sum of four products (at most 4 x 127 x 32767 < 2^24: exact in
// the f32 conversion). Lanes 0-7 hold one group and 8-15 the next; a permute spreads their two
// scales. One W row at a time: two rows per pass (two DRAM streams) measured 30 % slower here.
// Measured on the Qwen2.5-0.5B up/gate matrix, 2 threads of a Zen 4: 28-29 GB/s against a 32.5
// GB/s read probe, where the previous form (widening one group at a time, two rows per pass) read
// 20 GB/s.

#if defined(__AVX512BW__) || defined(__AVX2__)
#define TESSERA_HAVE_Q8_INT_GEMV 1
#else
#define TESSERA_HAVE_Q8_INT_GEMV 0
#endif

#if TESSERA_HAVE_Q8_INT_GEMV
/// x rows as int16 (row stride ld, a multiple of 64, zero-padded), each 64 columns stored as their
/// 32 even columns then their 32 odd ones, and the rows' scales d_x.
struct q8_x_layout {
  index_t ld;
  std::int16_t* x16;  // [m][ld]
  float* dx;          // [m]
};

/// Runs on the calling thread before the parallel region (a serial step of every decode product),
/// hence the AVX-512 form: the same values as the scalar loop (vcvtps2dq rounds to nearest even,
/// as std::nearbyint does in the default rounding mode), about 10x fewer instructions.
inline void quantize_x_for_q8(float const* x, index_t ldx, index_t m, index_t k, q8_x_layout const& q) noexcept {
  for (index_t i = 0; i < m; ++i) {
    float const* xr = x + i * ldx;
    std::int16_t* o = q.x16 + i * q.ld;
    float amax = 0.0f;
    index_t j = 0;
#if defined(__AVX512F__)
    __m512 vmax = _mm512_setzero_ps();
    for (; j + 16 <= k; j += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(xr + j)));
    amax = _mm512_reduce_max_ps(vmax);
#endif
    for (; j < k; ++j) amax = std::max(amax, std::fabs(xr[j]));
    float const inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
    q.dx[i] = amax / 32767.0f;
    j = 0;
#if defined(__AVX512F__)
    __m512 const vinv = _mm512_set1_ps(inv);
    __m512i const even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    __m512i const odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (; j + 64 <= k; j += 64) {
      __m512i v[4];
      for (int c = 0; c < 4; ++c) v[c] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + j + 16 * c), vinv));
      std::int16_t* dst = o + j;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(_mm512_permutex2var_epi32(v[0], even, v[1])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16), _mm512_cvtepi32_epi16(_mm512_permutex2var_epi32(v[2], even, v[3])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32), _mm512_cvtepi32_epi16(_mm512_permutex2var_epi32(v[0], odd, v[1])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 48), _mm512_cvtepi32_epi16(_mm512_permutex2var_epi32(v[2], odd, v[3])));
    }
#endif
    for (; j < q.ld; ++j) {
      auto const v = j < k ? static_cast<std::int16_t>(std::nearbyint(xr[j] * inv)) : std::int16_t{0};
      o[j / 64 * 64 + (j % 2) * 32 + j % 64 / 2] = v;
    }
  }
}

/// Small-M 8-bit kernel with 16-bit integer x: outputs [n_begin, n_end) for MROWS x rows.
template <int MROWS, class Bias>
void q8_int_gemv_rows(qgemm_args<Bias> const& g, q8_x_layout const& q, index_t n_begin, index_t n_end) noexcept {
  quant::qmatrix const& w = g.w;
  index_t const groups = w.cols / 32, per_scale = w.group / 32;
  for (index_t n = n_begin; n < n_end; ++n) {
    std::uint8_t const* qr = w.row(n);
    f16 const* sr = w.row_scales(n);
#if defined(__AVX512BW__)
    index_t const pairs = (groups + 1) / 2;
    __m512 acc[MROWS];
    for (auto& a : acc) a = _mm512_setzero_ps();
    __m512 ds = _mm512_setzero_ps();  // the scales of 16 groups: those of pairs [p - p % 8, + 8)
    __m512i idx = _mm512_setzero_si512();
    __m512i const first = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), two = _mm512_set1_epi32(2);
    for (index_t p = 0; p < pairs; ++p) {
      if (p % 8 == 0) {
        index_t const left = std::min<index_t>(16, groups - 2 * p);
        if (per_scale == 1) {
          auto const mask = static_cast<__mmask16>(left == 16 ? 0xFFFFu : (1u << left) - 1u);
          ds = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, sr + 2 * p));
        } else {
          alignas(64) float d[16] = {};
          for (index_t t = 0; t < left; ++t) d[t] = scale_to_float(sr[(2 * p + t) / per_scale]);
          ds = _mm512_load_ps(d);
        }
        idx = first;
      }
      _mm_prefetch(reinterpret_cast<char const*>(qr + p * 64 + 2048), _MM_HINT_T0);
      __m512i const raw = 2 * p + 1 < groups ? _mm512_loadu_si512(qr + p * 64)
                                             : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, qr + p * 64);
      __m512i const we = _mm512_srai_epi16(_mm512_slli_epi16(raw, 8), 8), wo = _mm512_srai_epi16(raw, 8);
      __m512 const d = _mm512_permutexvar_ps(idx, ds);
      for (int m = 0; m < MROWS; ++m) {
        std::int16_t const* xp = q.x16 + m * q.ld + p * 64;
#if defined(__AVX512VNNI__)
        __m512i v = _mm512_dpwssd_epi32(_mm512_setzero_si512(), we, _mm512_loadu_si512(xp));
        v = _mm512_dpwssd_epi32(v, wo, _mm512_loadu_si512(xp + 32));
#else
        __m512i const v = _mm512_add_epi32(_mm512_madd_epi16(we, _mm512_loadu_si512(xp)),
                                           _mm512_madd_epi16(wo, _mm512_loadu_si512(xp + 32)));
#endif
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), d, acc[m]);
      }
      idx = _mm512_add_epi32(idx, two);
    }
    for (int m = 0; m < MROWS; ++m)
      g.y[m * g.ldy + n] = _mm512_reduce_add_ps(acc[m]) * q.dx[m] + (g.bias ? to_float(g.bias[n]) : 0.0f);
#else
    __m256 acc[MROWS];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (index_t j = 0; j < groups; ++j) {  // group j: bytes [32 (j % 2), + 32) of pair j / 2
      index_t const p = j / 2, h = j % 2;
      _mm_prefetch(reinterpret_cast<char const*>(qr + j * 32 + 2048), _MM_HINT_T0);
      __m256i const raw = _mm256_loadu_si256(reinterpret_cast<__m256i const*>(qr + j * 32));
      __m256i const we = _mm256_srai_epi16(_mm256_slli_epi16(raw, 8), 8), wo = _mm256_srai_epi16(raw, 8);
      __m256 const d = _mm256_set1_ps(scale_to_float(sr[j / per_scale]));
      for (int m = 0; m < MROWS; ++m) {
        std::int16_t const* xp = q.x16 + m * q.ld + p * 64 + h * 16;
        __m256i const v =
            _mm256_add_epi32(_mm256_madd_epi16(we, _mm256_loadu_si256(reinterpret_cast<__m256i const*>(xp))),
                             _mm256_madd_epi16(wo, _mm256_loadu_si256(reinterpret_cast<__m256i const*>(xp + 32))));
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), d, acc[m]);
      }
    }
    for (int m = 0; m < MROWS; ++m) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      g.y[m * g.ldy + n] = _mm_cvtss_f32(s) * q.dx[m] + (g.bias ? to_float(g.bias[n]) : 0.0f);
    }
#endif
  }
}
#endif  // TESSERA_HAVE_Q8_INT_GEMV

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

/// Which kernel runs quantized decode (M <= gemv_max_rows).
enum class quant_gemv_kernel {
  /// integer where the target has one (TESSERA_HAVE_Q8_INT_GEMV, TESSERA_HAVE_Q4_INT_GEMV), else f32
  automatic,
  /// x kept in f32, the weights dequantized in registers (the reference's products)
  f32,
  /// x quantized (8-bit weights: int16 per row; 4-bit: int8 per group of 32), integer dot products
  integer,
};

/// Rows of W dequantized per block of the large-M path: a block of bf16 (f32) takes this many rows
/// times K times 2 (4) bytes of scratch (3.5 MiB for K = 896 in bf16, 74 MiB for Qwen2.5-7B's
/// down projection, K = 18944), and one call of the dense engine. Each call converts x to bf16
/// again, M K conversions against 2 M K x rows flops: with 256 rows that was 12 % of the 512-token
/// prefill of an MLP matrix of Qwen2.5-0.5B (bench_kernels), with 2048 a few percent.
inline constexpr index_t qgemm_block_rows = 2048;

/// The decode path (x of at most gemv_max_rows rows) of one or more products of the same x by
/// matrices of the same format and width (qgemm_group): x is rounded to bf16 and quantized once,
/// and one parallel region splits the rows of all the matrices, in order, among the threads. Every
/// output row is computed the same way whatever part, block or thread it lands in.
template <class A, class Bias>
void qgemv_parts(std::span<qgemm_args<Bias> const> parts, bool bf16_products, exec_ctx<cpu_simd<A>>& ctx,
                 quant_gemv_kernel gemv_kernel) {
  qgemm_args<Bias> const& g0 = parts.front();
  index_t const m = g0.m, k = g0.w.cols;
  quant::weight_format const format = g0.w.format;
  index_t n = 0;
  for (qgemm_args<Bias> const& p : parts) n += p.w.rows;
  if (m == 0 || n == 0) return;
  auto frame = ctx.scratch().open();
  bool const tiny = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) < gemm_min_parallel_macs;
  int const threads = tiny ? 1 : std::max(1, ctx.threads());
  (void)gemv_kernel;  // no integer kernel in this build
  float const* x = g0.x;
  index_t ldx = g0.ldx;
  if (bf16_products) {  // x rounded to bf16 once: the f32 kernel's products are then exact in f32,
                        // the integer kernels quantize the rounded values
    float* xr = frame.template alloc<float>(static_cast<std::size_t>(m * k));
    round_rows_to_bf16<A>(x, ldx, m, k, xr, k);
    x = xr;
    ldx = k;
  }
  // rows.operator()<M>(args, begin, end) for the runtime number of x rows, over the rows of the
  // parts that fall in each chunk (parallel_chunks: contiguous shares, balanced at the end)
  long long const chunk_rows = gemv_chunk_rows(static_cast<double>(quant::row_bytes(format, k)), 4);
  auto over_outputs = [&](auto&& rows) {
    parallel_chunks(threads, n, chunk_rows, [&](long long begin, long long end) {
      index_t base = 0;
      for (qgemm_args<Bias> const& p : parts) {
        index_t const b = std::max<index_t>(static_cast<index_t>(begin) - base, 0);
        index_t const e = std::min<index_t>(static_cast<index_t>(end) - base, p.w.rows);
        base += p.w.rows;
        if (b >= e) continue;
        qgemm_args<Bias> g = p;
        g.x = x;
        g.ldx = ldx;
        switch (m) {
          case 1: rows.template operator()<1>(g, b, e); break;
          case 2: rows.template operator()<2>(g, b, e); break;
          case 3: rows.template operator()<3>(g, b, e); break;
          default: rows.template operator()<4>(g, b, e); break;
        }
      }
    });
  };
#if TESSERA_HAVE_Q4_INT_GEMV
  if (format == quant::weight_format::q4 && gemv_kernel != quant_gemv_kernel::f32) {
    index_t const blocks = (k / 32 + q4_block_groups - 1) / q4_block_groups;
    q4_x_layout const q{blocks, frame.template alloc<std::int8_t>(static_cast<std::size_t>(m * blocks * 32 * q4_block_groups)),
                        frame.template alloc<float>(static_cast<std::size_t>(m * blocks * q4_block_groups)),
                        frame.template alloc<std::int32_t>(static_cast<std::size_t>(m * blocks * 4 * q4_block_groups))};
    quantize_x_for_q4(x, ldx, m, k, q);
    over_outputs([&]<int M>(qgemm_args<Bias> const& g, index_t b, index_t e) { q4_int_gemv_rows<M>(g, q, b, e); });
    return;
  }
#endif
#if TESSERA_HAVE_Q8_INT_GEMV
  if (format == quant::weight_format::q8 && gemv_kernel != quant_gemv_kernel::f32) {
    index_t const ld = (k + 63) / 64 * 64;
    q8_x_layout const q{ld, frame.template alloc<std::int16_t>(static_cast<std::size_t>(m * ld)),
                        frame.template alloc<float>(static_cast<std::size_t>(m))};
    quantize_x_for_q8(x, ldx, m, k, q);
    over_outputs([&]<int M>(qgemm_args<Bias> const& g, index_t b, index_t e) { q8_int_gemv_rows<M>(g, q, b, e); });
    return;
  }
#endif
  over_outputs([&]<int M>(qgemm_args<Bias> const& g, index_t b, index_t e) {
    if (format == quant::weight_format::q8)
      qgemv_rows<A, quant::weight_format::q8, M>(g, b, e);
    else
      qgemv_rows<A, quant::weight_format::q4, M>(g, b, e);
  });
}

/// y = x W^T (+ bias) with quantized W. bf16_products: x is rounded to bf16 first; in the large-M
/// path the dequantized W too (see the header comment).
template <class A, class Bias>
void qgemm(qgemm_args<Bias> g, bool bf16_products, exec_ctx<cpu_simd<A>>& ctx,
           quant_gemv_kernel gemv_kernel = quant_gemv_kernel::automatic) {
  using blk = gemm_blocking<A>;
  index_t const n = g.w.rows, k = g.w.cols;
  if (g.m == 0 || n == 0) return;
  if (g.m <= blk::gemv_max_rows) {
    qgemv_parts<A, Bias>(std::span<qgemm_args<Bias> const>(&g, 1), bf16_products, ctx, gemv_kernel);
    return;
  }
  auto frame = ctx.scratch().open();
  bool const tiny = static_cast<double>(g.m) * static_cast<double>(n) * static_cast<double>(k) < gemm_min_parallel_macs;
  int const threads = tiny ? 1 : std::max(1, ctx.threads());
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

/// Several products of the same x (qgemm each): in one decode pass (qgemv_parts) when x has at most
/// gemv_max_rows rows and the matrices share a format and a width, else one after the other.
template <class A, class Bias>
void qgemm_group(std::span<qgemm_args<Bias> const> parts, bool bf16_products, exec_ctx<cpu_simd<A>>& ctx,
                 quant_gemv_kernel gemv_kernel = quant_gemv_kernel::automatic) {
  if (parts.empty()) return;
  qgemm_args<Bias> const& g0 = parts.front();
  bool together = g0.m <= gemm_blocking<A>::gemv_max_rows;
  for (qgemm_args<Bias> const& p : parts)
    together = together && p.m == g0.m && p.x == g0.x && p.ldx == g0.ldx && p.w.format == g0.w.format &&
               p.w.cols == g0.w.cols;
  if (together) {
    qgemv_parts<A, Bias>(parts, bf16_products, ctx, gemv_kernel);
    return;
  }
  for (qgemm_args<Bias> const& p : parts) qgemm<A, Bias>(p, bf16_products, ctx, gemv_kernel);
}

}  // namespace tessera::backend::cpu_detail

TESSERA_SIMD_DIAGNOSTICS_END
