// SPDX-License-Identifier: Apache-2.0
// The cpu GEMM engine behind nn::linear: y[M, N] = x[M, K] @ W[N, K]^T (+ bias), W in PyTorch's
// [out, in] layout. Large M: BLIS-style blocking -- panels of W are transposed into [k][nr]
// order in scratch (once per call, reused by every row of x), x is read in place and broadcast,
// an mr x nr register tile accumulates in f32. Small M (decode): dot products straight from the
// rows of W, streaming it once at memory bandwidth. bf16 products use AVX512-BF16 vdpbf16ps
// where the target has it, else the f32 kernels on x rounded to bf16 (same products, exact).
#pragma once

#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define TESSERA_HAVE_AVX512_BF16_DOT 1
#else
#define TESSERA_HAVE_AVX512_BF16_DOT 0
#endif

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::backend::cpu_detail {

/// Register and cache blocking for an architecture.
template <class A>
struct gemm_blocking {
  static constexpr int lanes = static_cast<int>(fbatch<A>::size);
  static constexpr int nr = 2 * lanes;              // two vectors of output columns
  static constexpr int mr = lanes >= 16 ? 14 : 6;   // 2*mr accumulators: 28 of 32 zmm, 12 of 16 ymm/xmm
  static constexpr index_t kc = 256;                // a W panel kc x nr x 4 B = 32 KiB stays in L1
  static constexpr index_t nc = 12 * nr;            // a W block nc x kc x 4 B = 384 KiB stays in L2
  static constexpr index_t gemv_max_rows = 4;       // M <= this: dot-product path, W streamed once
};

/// Products with fewer multiply-adds than this run on one thread.
inline constexpr double gemm_min_parallel_macs = 65536;

/// Which kernel forms bf16 products when M is large (GEMV always uses vdpbf16ps where present).
enum class bf16_gemm_kernel {
  /// The kernel faster on this CPU (bf16_dot_preferred): dot on AMD Zen 4 and later, fma elsewhere.
  automatic,
  /// x rounded to bf16 once, W widened to f32 while packing, f32 FMA: the same exact products.
  fma,
  /// vdpbf16ps on bf16 pairs (needs AVX512-BF16; falls back to fma without it).
  dot,
};

/// Whether the vdpbf16ps kernel outruns the FMA kernel on the CPU this runs on, decided by CPUID
/// (never by timing, so a machine always picks the same kernel and the same result bits):
///   - AMD family 0x19 with AVX512-BF16 (Zen 4) and later: yes. On a 2-core Zen 4 (EPYC, family
///     25 model 17) vdpbf16ps sustains twice the FMA kernel's rate: 424 vs 214 GFLOP/s for the
///     POINTS1.5 vision layers (benchmarks/results/dev-epyc-2core-avx512bf16/bench_points.json,
///     breakdown of the kernels timed side by side). Zen 5 (family 0x1A) is not measured and is
///     treated as Zen 4.
///   - Intel with AVX512-BF16 (the Xeon of benchmarks/results/dev-xeon-2core-avx512bf16): no.
///     There vdpbf16ps issues 0.5 per cycle (64 flops) against 2 zmm FMAs (32 flops each), half.
///   - every other CPU: no (not measured; the FMA kernel is the safe choice).
[[nodiscard]] inline bool bf16_dot_preferred() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static bool const preferred = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
    bool const amd = ebx == 0x68747541u && edx == 0x69746E65u && ecx == 0x444D4163u;  // "AuthenticAMD"
    if (!amd || __get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
    unsigned const base = (eax >> 8) & 0xFu;
    unsigned const family = base == 0xFu ? base + ((eax >> 20) & 0xFFu) : base;
    return family >= 0x19u;  // the dot kernel exists only where AVX512-BF16 does: Zen 4 on
  }();
  return preferred;
#else
  return false;
#endif
}

// ---------------------------------------------------------------------------------------------
// Packing W panels: bp[k][j] = W[n0 + j][k0 + k] as f32 (or as bf16 pairs for vdpbf16ps).

#if defined(__AVX512F__)
/// In-register 16 x 16 transpose of 32-bit elements: r[i][j] -> r[j][i].
inline void transpose16x16(__m512 r[16]) noexcept {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // per 128-bit block: a0 b0 a1 b1
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 4; ++i) {  // per block: column c of rows 4i..4i+3
    __m512d const t0 = _mm512_castps_pd(t[4 * i]), t1 = _mm512_castps_pd(t[4 * i + 1]);
    __m512d const t2 = _mm512_castps_pd(t[4 * i + 2]), t3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  __m512 out[16];
  for (int c = 0; c < 4; ++c) {  // gather block b of the four row quads into column 4b + c
    __m512 const p0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), p1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    __m512 const q0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), q1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    out[c] = _mm512_shuffle_f32x4(p0, q0, 0x88);
    out[4 + c] = _mm512_shuffle_f32x4(p0, q0, 0xDD);
    out[8 + c] = _mm512_shuffle_f32x4(p1, q1, 0x88);
    out[12 + c] = _mm512_shuffle_f32x4(p1, q1, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = out[i];
}
#endif

#if defined(__AVX2__)
/// In-register 8 x 8 transpose of 32-bit elements: r[i][j] -> r[j][i].
inline void transpose8x8(__m256 r[8]) noexcept {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // per 128-bit lane: a0 b0 a1 b1
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 2; ++i) {  // per lane: column c of rows 4i..4i+3
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {  // join the lanes: columns c (low halves) and c + 4 (high halves)
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}
#endif

/// Packs rows [n0, n0 + n_valid) x columns [k0, k0 + kb) of W into bp ([kb][NR] f32); rows past
/// n_valid are zero so the micro-kernel never branches on the N edge. With AVX-512 / AVX2, whole
/// 16 x 16 / 8 x 8 blocks are widened and transposed in registers (the scalar gather it replaces
/// took about a quarter of a 512-row bf16 GEMM on AVX2).
template <class A, int NR, class W>
void pack_w_f32(W const* w, index_t ldw, index_t n0, int n_valid, index_t k0, index_t kb, float* bp) noexcept {
  index_t k = 0;
#if defined(__AVX2__)
  if constexpr (fbatch<A>::size == 8 && NR % 8 == 0) {
    for (; k + 8 <= kb; k += 8)
      for (int g = 0; g < NR / 8; ++g) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          int const j = g * 8 + i;
          r[i] = j < n_valid ? __m256(load_as_float<A>(w + (n0 + j) * ldw + k0 + k)) : _mm256_setzero_ps();
        }
        transpose8x8(r);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(bp + (k + i) * NR + g * 8, r[i]);
      }
  }
#endif
#if defined(__AVX512F__)
  if constexpr (fbatch<A>::size == 16 && NR % 16 == 0) {
    for (; k + 16 <= kb; k += 16)
      for (int g = 0; g < NR / 16; ++g) {
        __m512 r[16];
        for (int i = 0; i < 16; ++i) {
          int const j = g * 16 + i;
          r[i] = j < n_valid ? __m512(load_as_float<A>(w + (n0 + j) * ldw + k0 + k)) : _mm512_setzero_ps();
        }
        transpose16x16(r);
        for (int i = 0; i < 16; ++i) _mm512_store_ps(bp + (k + i) * NR + g * 16, r[i]);
      }
  }
#endif
  for (; k < kb; ++k)
    for (int j = 0; j < NR; ++j) bp[k * NR + j] = j < n_valid ? to_float(w[(n0 + j) * ldw + k0 + k]) : 0.0f;
}

/// The bias of one panel as NR floats (zero-padded), the accumulators' starting value.
template <int NR, class Bias>
void pack_bias(Bias const* bias, index_t n0, int n_valid, float* out) noexcept {
  for (int j = 0; j < NR; ++j) out[j] = (bias && j < n_valid) ? to_float(bias[n0 + j]) : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels: C[MR x NR] (=|+=) A[MR x kb] * Bp[kb x NR].

/// Loads the C tile into the accumulators (accumulate), or the bias row, or zeros.
template <class A, int MR, int NR>
struct c_tile {
  using B = fbatch<A>;
  static constexpr int L = static_cast<int>(B::size);
  static_assert(NR == 2 * L);
  B c0[MR], c1[MR];

  void init(float* c, index_t ldc, float const* init_row, bool accumulate, int n_valid) noexcept {
    if (accumulate) {
      if (n_valid == NR) {
        for (int i = 0; i < MR; ++i) {
          c0[i] = B::load_unaligned(c + i * ldc);
          c1[i] = B::load_unaligned(c + i * ldc + L);
        }
      } else {
        alignas(64) float tmp[NR];
        for (int i = 0; i < MR; ++i) {
          for (int j = 0; j < NR; ++j) tmp[j] = j < n_valid ? c[i * ldc + j] : 0.0f;
          c0[i] = B::load_aligned(tmp);
          c1[i] = B::load_aligned(tmp + L);
        }
      }
    } else if (init_row) {
      B const b0 = B::load_unaligned(init_row), b1 = B::load_unaligned(init_row + L);
      for (int i = 0; i < MR; ++i) {
        c0[i] = b0;
        c1[i] = b1;
      }
    } else {
      for (int i = 0; i < MR; ++i) c0[i] = c1[i] = B(0.0f);
    }
  }
  void store(float* c, index_t ldc, int n_valid) const noexcept {
    if (n_valid == NR) {
      for (int i = 0; i < MR; ++i) {
        c0[i].store_unaligned(c + i * ldc);
        c1[i].store_unaligned(c + i * ldc + L);
      }
    } else {
      alignas(64) float tmp[NR];
      for (int i = 0; i < MR; ++i) {
        c0[i].store_aligned(tmp);
        c1[i].store_aligned(tmp + L);
        for (int j = 0; j < n_valid; ++j) c[i * ldc + j] = tmp[j];
      }
    }
  }
};

/// f32 FMA micro-kernel: x rows are broadcast from memory, two vectors of the panel per k.
template <class A, int MR, int NR>
void ukernel_f32(index_t kb, float const* a, index_t lda, float const* bp, float* c, index_t ldc,
                 float const* init_row, bool accumulate, int n_valid) noexcept {
  using B = fbatch<A>;
  constexpr int L = static_cast<int>(B::size);
  c_tile<A, MR, NR> t;
  t.init(c, ldc, init_row, accumulate, n_valid);
  for (index_t k = 0; k < kb; ++k) {
    B const b0 = B::load_aligned(bp + k * NR), b1 = B::load_aligned(bp + k * NR + L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      B const av(a[i * lda + k]);
      t.c0[i] = xsimd::fma(av, b0, t.c0[i]);
      t.c1[i] = xsimd::fma(av, b1, t.c1[i]);
    }
  }
  t.store(c, ldc, n_valid);
}

#if TESSERA_HAVE_AVX512_BF16_DOT
/// Packs W (bf16) rows [n0, n0 + n_valid) x pair columns [kp0, kp0 + kpb) into bp
/// ([kpb][NR] dwords, each dword = W[n][2kp] | W[n][2kp + 1] << 16); a missing odd tail is zero.
template <int NR>
void pack_w_bf16_pairs(bf16 const* w, index_t ldw, index_t k_total, index_t n0, int n_valid, index_t kp0,
                       index_t kpb, std::uint32_t* bp) noexcept {
  index_t kp = 0;
  bool const full_pairs = 2 * (kp0 + kpb) <= k_total;
  for (; full_pairs && kp + 16 <= kpb; kp += 16)
    for (int g = 0; g < NR / 16; ++g) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        int const j = g * 16 + i;
        r[i] = j < n_valid ? _mm512_castsi512_ps(_mm512_loadu_si512(w + (n0 + j) * ldw + 2 * (kp0 + kp)))
                           : _mm512_setzero_ps();
      }
      transpose16x16(r);
      for (int i = 0; i < 16; ++i) _mm512_store_si512(bp + (kp + i) * NR + g * 16, _mm512_castps_si512(r[i]));
    }
  for (; kp < kpb; ++kp)
    for (int j = 0; j < NR; ++j) {
      std::uint32_t v = 0;
      if (j < n_valid) {
        index_t const k = 2 * (kp0 + kp);
        bf16 const* row = w + (n0 + j) * ldw;
        v = row[k].bits | (k + 1 < k_total ? static_cast<std::uint32_t>(row[k + 1].bits) << 16 : 0u);
      }
      bp[kp * NR + j] = v;
    }
}

/// vdpbf16ps micro-kernel: per pair of k, 32 products per instruction into f32 accumulators.
/// a: x rounded to bf16, as dwords (pairs) with row stride lda dwords.
template <class A, int MR, int NR>
void ukernel_bf16(index_t kpb, std::uint32_t const* a, index_t lda, std::uint32_t const* bp, float* c, index_t ldc,
                  float const* init_row, bool accumulate, int n_valid) noexcept {
  static_assert(NR == 32, "the vdpbf16ps kernel is written for two zmm of output columns");
  c_tile<A, MR, NR> t;
  t.init(c, ldc, init_row, accumulate, n_valid);
  for (index_t kp = 0; kp < kpb; ++kp) {
    __m512bh const b0 = (__m512bh)_mm512_load_si512(bp + kp * NR);
    __m512bh const b1 = (__m512bh)_mm512_load_si512(bp + kp * NR + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      __m512bh const av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i * lda + kp]));
      t.c0[i] = _mm512_dpbf16_ps(t.c0[i], av, b0);
      t.c1[i] = _mm512_dpbf16_ps(t.c1[i], av, b1);
    }
  }
  t.store(c, ldc, n_valid);
}
#endif

/// Calls K<m>::run(args...) for the runtime tile height m in [1, MR].
template <int MR, template <int> class K, class... Args>
inline void dispatch_rows(int m, Args&&... args) noexcept {
  if constexpr (MR >= 1) {
    if (m == MR) return K<MR>::run(static_cast<Args&&>(args)...);
    dispatch_rows<MR - 1, K>(m, static_cast<Args&&>(args)...);
  }
}

template <class A, int NR>
struct f32_kernel {
  template <int MR>
  struct rows {
    static void run(index_t kb, float const* a, index_t lda, float const* bp, float* c, index_t ldc, float const* init,
                    bool accumulate, int n_valid) noexcept {
      ukernel_f32<A, MR, NR>(kb, a, lda, bp, c, ldc, init, accumulate, n_valid);
    }
  };
};
#if TESSERA_HAVE_AVX512_BF16_DOT
template <class A, int NR>
struct bf16_kernel {
  template <int MR>
  struct rows {
    static void run(index_t kpb, std::uint32_t const* a, index_t lda, std::uint32_t const* bp, float* c, index_t ldc,
                    float const* init, bool accumulate, int n_valid) noexcept {
      ukernel_bf16<A, MR, NR>(kpb, a, lda, bp, c, ldc, init, accumulate, n_valid);
    }
  };
};
#endif

// ---------------------------------------------------------------------------------------------
// Drivers.

/// Splits an m x n output among T threads: by columns (in units of nr) when there are enough
/// column panels, else by rows too. Returns (row range, column range) of thread t.
struct tile_ranges {
  range rows, cols;
};
[[nodiscard]] inline tile_ranges partition(index_t m, index_t n, int t, int T, int nr) noexcept {
  long long const panels = (n + nr - 1) / nr;
  int const tn = static_cast<int>(std::min<long long>(T, std::max<long long>(1, panels)));
  int const tm = T / tn;
  if (t >= tn * tm) return {{0, 0}, {0, 0}};  // a spare thread: no work
  return {split(m, t / tn, tm), split(n, t % tn, tn, nr)};
}

/// Operand shapes of one GEMM, raw pointers and leading dimensions (elements).
template <class W, class Bias>
struct gemm_args {
  index_t m, n, k;
  float const* x;
  index_t ldx;
  W const* w;
  index_t ldw;
  Bias const* bias;  // nullptr: none
  float* y;
  index_t ldy;
};

/// Packed-panel GEMM over output columns [n_begin, n_end) and rows [m_begin, m_end), f32 products.
/// bp: nc * kc + nc floats of scratch owned by the calling thread.
template <class A, class W, class Bias>
void gemm_f32_tile(gemm_args<W, Bias> const& g, index_t m_begin, index_t m_end, index_t n_begin, index_t n_end,
                   float* bp) noexcept {
  using blk = gemm_blocking<A>;
  constexpr int NR = blk::nr, MR = blk::mr;
  float* const bias_panels = bp + blk::nc * blk::kc;
  for (index_t jc = n_begin; jc < n_end; jc += blk::nc) {
    index_t const nb = std::min(blk::nc, n_end - jc), panels = (nb + NR - 1) / NR;
    for (index_t p = 0; p < panels; ++p)
      pack_bias<NR>(g.bias, jc + p * NR, static_cast<int>(std::min<index_t>(NR, nb - p * NR)), bias_panels + p * NR);
    for (index_t pc = 0; pc < g.k; pc += blk::kc) {
      index_t const kb = std::min(blk::kc, g.k - pc);
      for (index_t p = 0; p < panels; ++p)
        pack_w_f32<A, NR>(g.w, g.ldw, jc + p * NR, static_cast<int>(std::min<index_t>(NR, nb - p * NR)), pc, kb,
                          bp + p * kb * NR);
      for (index_t ic = m_begin; ic < m_end; ic += MR) {
        int const mb = static_cast<int>(std::min<index_t>(MR, m_end - ic));
        for (index_t p = 0; p < panels; ++p) {
          int const nv = static_cast<int>(std::min<index_t>(NR, nb - p * NR));
          float* c = g.y + ic * g.ldy + jc + p * NR;
          float const* a = g.x + ic * g.ldx + pc;
          float const* init = bias_panels + p * NR;
          dispatch_rows<MR, f32_kernel<A, NR>::template rows>(mb, kb, a, g.ldx, bp + p * kb * NR, c, g.ldy,
                                                             (g.bias ? init : nullptr), pc > 0, nv);
        }
      }
    }
  }
}

#if TESSERA_HAVE_AVX512_BF16_DOT
/// Packed-panel GEMM with vdpbf16ps. xb: x rounded to bf16, [m][kp] dwords with row stride ldxb.
template <class A, class Bias>
void gemm_bf16_tile(gemm_args<bf16, Bias> const& g, std::uint32_t const* xb, index_t ldxb, index_t m_begin,
                    index_t m_end, index_t n_begin, index_t n_end, std::uint32_t* bp) noexcept {
  using blk = gemm_blocking<A>;
  constexpr int NR = blk::nr, MR = blk::mr;
  constexpr index_t kpc = blk::kc;  // pairs per block: a panel is kpc x NR dwords = 32 KiB, as for f32
  float* const bias_panels = reinterpret_cast<float*>(bp + blk::nc * kpc);
  index_t const kp_total = (g.k + 1) / 2;
  for (index_t jc = n_begin; jc < n_end; jc += blk::nc) {
    index_t const nb = std::min(blk::nc, n_end - jc), panels = (nb + NR - 1) / NR;
    for (index_t p = 0; p < panels; ++p)
      pack_bias<NR>(g.bias, jc + p * NR, static_cast<int>(std::min<index_t>(NR, nb - p * NR)), bias_panels + p * NR);
    for (index_t pc = 0; pc < kp_total; pc += kpc) {
      index_t const kpb = std::min(kpc, kp_total - pc);
      for (index_t p = 0; p < panels; ++p)
        pack_w_bf16_pairs<NR>(g.w, g.ldw, g.k, jc + p * NR, static_cast<int>(std::min<index_t>(NR, nb - p * NR)), pc,
                              kpb, bp + p * kpb * NR);
      for (index_t ic = m_begin; ic < m_end; ic += MR) {
        int const mb = static_cast<int>(std::min<index_t>(MR, m_end - ic));
        for (index_t p = 0; p < panels; ++p) {
          int const nv = static_cast<int>(std::min<index_t>(NR, nb - p * NR));
          dispatch_rows<MR, bf16_kernel<A, NR>::template rows>(
              mb, kpb, xb + ic * ldxb + pc, ldxb, bp + p * kpb * NR, g.y + ic * g.ldy + jc + p * NR, g.ldy,
              g.bias ? bias_panels + p * NR : nullptr, pc > 0, nv);
        }
      }
    }
  }
}

/// Small-M path with vdpbf16ps: each output is a dot product of a bf16 x row (zero-padded to a
/// multiple of 32) with a W row, one W row at a time (one sequential DRAM stream per thread, which
/// the hardware prefetcher follows: software prefetches only got in its way), 64 columns per step
/// into two accumulators (the vdpbf16ps latency chain halved). Measured with bench_kernels-like
/// runs on Zen 4 (2 threads, weights from DRAM), Qwen2.5-0.5B's up/gate (896 -> 4864) and LM head
/// (896 -> 151936): 29 - 31 GB/s, against 18 - 20 GB/s for the previous form (4 W rows per pass,
/// each prefetched 512 bytes ahead).
template <int MROWS, class Bias>
void gemv_bf16_rows(gemm_args<bf16, Bias> const& g, bf16 const* xb, index_t ldxb, index_t n_begin,
                    index_t n_end) noexcept {
  index_t const k_pairs = g.k / 64 * 64, k_full = g.k / 32 * 32;
  __mmask32 const tail_mask = g.k % 32 ? static_cast<__mmask32>((1ull << (g.k % 32)) - 1) : 0;
  for (index_t n = n_begin; n < n_end; ++n) {
    __m512 acc[MROWS][2];
    for (auto& am : acc) am[0] = am[1] = _mm512_setzero_ps();
    bf16 const* const w = g.w + n * g.ldw;
    index_t k = 0;
    for (; k < k_pairs; k += 64) {
      __m512bh const w0 = (__m512bh)_mm512_loadu_si512(w + k), w1 = (__m512bh)_mm512_loadu_si512(w + k + 32);
      for (int m = 0; m < MROWS; ++m) {
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_load_si512(xb + m * ldxb + k), w0);
        acc[m][1] = _mm512_dpbf16_ps(acc[m][1], (__m512bh)_mm512_load_si512(xb + m * ldxb + k + 32), w1);
      }
    }
    for (; k < k_full + (tail_mask ? 32 : 0); k += 32) {  // a last full block of 32, then the tail
      __mmask32 const mk = k < k_full ? ~__mmask32(0) : tail_mask;
      __m512bh const wv = (__m512bh)_mm512_maskz_loadu_epi16(mk, w + k);
      for (int m = 0; m < MROWS; ++m)
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_load_si512(xb + m * ldxb + k), wv);
    }
    for (int m = 0; m < MROWS; ++m)
      g.y[m * g.ldy + n] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1])) + (g.bias ? to_float(g.bias[n]) : 0.0f);
  }
}
#endif

#if defined(__AVX2__) && !TESSERA_HAVE_AVX512_BF16_DOT
/// How far ahead (bytes) the AVX2 bf16 GEMV prefetches each row stream, into L2 (prefetcht1).
inline constexpr std::ptrdiff_t gemv_avx2_prefetch_bytes = 2048;

/// x rows for gemv_bf16_avx2_rows: each block of 16 values reordered as the two unpacks of a
/// 16-element bf16 load produce them (per 128-bit lane: unpacklo takes elements 0-3 and 8-11,
/// unpackhi 4-7 and 12-15), so every product pairs the right x with its w. The k % 16 tail
/// stays in order. Optionally rounded to bf16 first (bf16 products).
inline void permute_rows_for_avx2_gemv(float const* x, index_t ldx, index_t m, index_t k, bool round_to_bf16,
                                       float* out, index_t ldo) noexcept {
  index_t const k16 = k / 16 * 16;
  for (index_t i = 0; i < m; ++i) {
    float const* const src = x + i * ldx;
    float* const dst = out + i * ldo;
    auto val = [&](index_t j) { return round_to_bf16 ? bf16::from_float(src[j]).to_float() : src[j]; };
    for (index_t b = 0; b < k16; b += 16)
      for (int j = 0; j < 4; ++j) {
        dst[b + j] = val(b + j);
        dst[b + 4 + j] = val(b + 8 + j);
        dst[b + 8 + j] = val(b + 4 + j);
        dst[b + 12 + j] = val(b + 12 + j);
      }
    for (index_t j = k16; j < k; ++j) dst[j] = val(j);
  }
}

/// Small-M GEMV for bf16 weights on AVX2 (bandwidth-bound decode). Each group of R rows of W is
/// one row from each of R equal sub-ranges of [n_begin, n_end), so a thread reads R independent
/// sequential streams, as a DRAM bandwidth probe does (consecutive rows form one stream, whose
/// misses the hardware overlaps less), and prefetches each stream 2 KiB ahead into L2. Each
/// 16-element load is widened by two unpacks with zero (bf16 bits into the top half of each f32
/// lane: one shuffle per 8 values instead of a zero-extension and a shift) against x rows
/// pre-permuted to match (xp, see permute_rows_for_avx2_gemv).
/// Measured on the development machine (Qwen2.5-0.5B decode step, 40 steps of each variant
/// interleaved in one process): consecutive rows with 512-byte L1 prefetch 56 ms minimum / 66 ms
/// median; 4 streams with 2 KiB L2 prefetch 40 / 50; 8 streams with 2 KiB L2 prefetch 37 / 46.
/// Every output row is computed the same way whatever group it lands in, so the result does not
/// depend on the thread count.
template <int MROWS, class Bias>
void gemv_bf16_avx2_rows(gemm_args<bf16, Bias> const& g, float const* xp, index_t ldxp, index_t n_begin,
                         index_t n_end) noexcept {
  // Rows per group: R x MROWS accumulators and 2 x MROWS x vectors must fit in 16 ymm registers.
  constexpr int R = MROWS == 1 ? 8 : MROWS == 2 ? 4 : 2;
  index_t const k16 = g.k / 16 * 16;
  __m256i const zero = _mm256_setzero_si256();
  // One group: the rows row[0 .. rows); a short group re-reads its last row and stores `rows`.
  auto group = [&](index_t const* row, int rows) {
    bf16 const* wr[R];
    for (int r = 0; r < R; ++r) wr[r] = g.w + row[std::min(r, rows - 1)] * g.ldw;
    __m256 acc[MROWS][R];
    for (auto& am : acc)
      for (auto& v : am) v = _mm256_setzero_ps();
    for (index_t k = 0; k < k16; k += 16) {
      __m256 xl[MROWS], xh[MROWS];
      for (int m = 0; m < MROWS; ++m) {
        xl[m] = _mm256_loadu_ps(xp + m * ldxp + k);
        xh[m] = _mm256_loadu_ps(xp + m * ldxp + k + 8);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // Past a row's end this fetches the stream's next row, read next (prefetches never fault).
        _mm_prefetch(reinterpret_cast<char const*>(wr[r] + k) + gemv_avx2_prefetch_bytes, _MM_HINT_T1);
        __m256i const w = _mm256_loadu_si256(reinterpret_cast<__m256i const*>(wr[r] + k));
        __m256 const wl = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, w));
        __m256 const wh = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, w));
        for (int m = 0; m < MROWS; ++m) acc[m][r] = _mm256_fmadd_ps(wh, xh[m], _mm256_fmadd_ps(wl, xl[m], acc[m][r]));
      }
    }
    for (int m = 0; m < MROWS; ++m)
      for (int r = 0; r < rows; ++r) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[m][r]), _mm256_extractf128_ps(acc[m][r], 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        float s = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
        for (index_t k = k16; k < g.k; ++k) s += xp[m * ldxp + k] * wr[r][k].to_float();
        g.y[m * g.ldy + row[r]] = s + (g.bias ? to_float(g.bias[row[r]]) : 0.0f);
      }
  };
  index_t row[R];
  index_t const sub = (n_end - n_begin) / R;  // rows per stream; the last (n_end - n_begin) % R rows follow
  for (index_t i = 0; i < sub; ++i) {
    for (int r = 0; r < R; ++r) row[r] = n_begin + r * sub + i;
    group(row, R);
  }
  for (index_t n = n_begin + R * sub; n < n_end; n += R) {
    int const rows = static_cast<int>(std::min<index_t>(R, n_end - n));
    for (int r = 0; r < R; ++r) row[r] = n + r;
    group(row, rows);
  }
}
#endif

/// Small-M path with f32 products: 4 W rows x MROWS x rows of dot products, W widened on the fly.
template <class A, int MROWS, class W, class Bias>
void gemv_f32_rows(gemm_args<W, Bias> const& g, index_t n_begin, index_t n_end) noexcept {
  using B = fbatch<A>;
  constexpr index_t L = B::size;
  index_t const k_full = g.k / L * L;
  for (index_t n = n_begin; n < n_end; n += 4) {
    int const rows = static_cast<int>(std::min<index_t>(4, n_end - n));
    B acc[MROWS][4];
    for (auto& am : acc)
      for (auto& v : am) v = B(0.0f);
    for (index_t k = 0; k < k_full; k += L) {
      B wv[4];
      for (int r = 0; r < 4; ++r) wv[r] = r < rows ? load_as_float<A>(g.w + (n + r) * g.ldw + k) : B(0.0f);
      for (int m = 0; m < MROWS; ++m) {
        B const xv = B::load_unaligned(g.x + m * g.ldx + k);
        for (int r = 0; r < 4; ++r) acc[m][r] = xsimd::fma(xv, wv[r], acc[m][r]);
      }
    }
    for (int m = 0; m < MROWS; ++m)
      for (int r = 0; r < rows; ++r) {
        float s = reduce_add(acc[m][r]);
        for (index_t k = k_full; k < g.k; ++k) s += g.x[m * g.ldx + k] * to_float(g.w[(n + r) * g.ldw + k]);
        g.y[m * g.ldy + n + r] = s + (g.bias ? to_float(g.bias[n + r]) : 0.0f);
      }
  }
}

template <class A, class W, class Bias>
struct gemv_f32_kernel {
  template <int MROWS>
  struct rows {
    static void run(gemm_args<W, Bias> const& g, index_t n_begin, index_t n_end) noexcept {
      gemv_f32_rows<A, MROWS>(g, n_begin, n_end);
    }
  };
};

/// Rounds rows of x to bf16 values kept as f32 (the exact inputs of bf16 products) into out.
template <class A>
void round_rows_to_bf16(float const* x, index_t ldx, index_t m, index_t k, float* out, index_t ldo) noexcept {
  constexpr index_t L = fbatch<A>::size;
  for (index_t i = 0; i < m; ++i) {
    index_t j = 0;
    for (; j + L <= k; j += L)  // the bf16 bits back in the top half of a float: exact
      bitcast<float>(bf16_bits<A>(fbatch<A>::load_unaligned(x + i * ldx + j)) << 16).store_unaligned(out + i * ldo + j);
    for (; j < k; ++j) out[i * ldo + j] = bf16::from_float(x[i * ldx + j]).to_float();
  }
}

/// Converts rows of x to bf16 (round to nearest even), zero-padding each row to `ldo` elements.
template <class A>
void convert_rows_to_bf16(float const* x, index_t ldx, index_t m, index_t k, bf16* out, index_t ldo) noexcept {
  constexpr index_t L = fbatch<A>::size;
  for (index_t i = 0; i < m; ++i) {
    index_t j = 0;
    for (; j + L <= k; j += L) store_as_bf16<A>(out + i * ldo + j, fbatch<A>::load_unaligned(x + i * ldx + j));
    for (; j < k; ++j) out[i * ldo + j] = bf16::from_float(x[i * ldx + j]);
    for (; j < ldo; ++j) out[i * ldo + j] = bf16::from_bits(0);
  }
}

/// y = x W^T (+ bias) for the cpu backend. bf16_products: x is rounded to bf16 first (W must be bf16).
template <class A, class W, class Bias>
void gemm(gemm_args<W, Bias> g, bool bf16_products, exec_ctx<cpu_simd<A>>& ctx,
          bf16_gemm_kernel kernel = bf16_gemm_kernel::automatic) {
  using blk = gemm_blocking<A>;
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // empty sum: y = bias (or 0)
    for (index_t i = 0; i < g.m; ++i)
      for (index_t j = 0; j < g.n; ++j) g.y[i * g.ldy + j] = g.bias ? to_float(g.bias[j]) : 0.0f;
    return;
  }
  (void)kernel;  // only consulted where the bf16 dot instruction exists
#if TESSERA_HAVE_AVX512_BF16_DOT
  if (kernel == bf16_gemm_kernel::automatic)
    kernel = bf16_dot_preferred() ? bf16_gemm_kernel::dot : bf16_gemm_kernel::fma;
#endif
  auto frame = ctx.scratch().open();
  // Below about 64K multiply-adds (a few microseconds) an OpenMP fork and join costs as much as the
  // work, and with more threads than free cores (several processes, or tests run in parallel)
  // every barrier waits for a descheduled thread: small products run on the calling thread.
  bool const tiny = static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k) < gemm_min_parallel_macs;
  int const threads = tiny ? 1 : std::max(1, ctx.threads());
  bool const small_m = g.m <= blk::gemv_max_rows;

#if TESSERA_HAVE_AVX512_BF16_DOT
  if constexpr (std::is_same_v<W, bf16> && fbatch<A>::size == 16) {
    if (bf16_products && small_m) {  // GEMV: bandwidth-bound, vdpbf16ps reads W as stored
      index_t const ldxb = (g.k + 31) / 32 * 32;  // zero-padded: full-width x loads, masked W tail
      bf16* xb = frame.template alloc<bf16>(static_cast<std::size_t>(g.m * ldxb));
      convert_rows_to_bf16<A>(g.x, g.ldx, g.m, g.k, xb, ldxb);
      parallel_chunks(threads, g.n, gemv_chunk_rows(static_cast<double>(sizeof(W)) * static_cast<double>(g.k), 4), [&](long long b, long long e) {
        switch (g.m) {
          case 1: gemv_bf16_rows<1>(g, xb, ldxb, b, e); break;
          case 2: gemv_bf16_rows<2>(g, xb, ldxb, b, e); break;
          case 3: gemv_bf16_rows<3>(g, xb, ldxb, b, e); break;
          default: gemv_bf16_rows<4>(g, xb, ldxb, b, e); break;
        }
      });
      return;
    }
    if (bf16_products && kernel == bf16_gemm_kernel::dot) {
      index_t const ldxb = (g.k + 1) / 2;  // dwords (bf16 pairs) per row of x
      auto* xb = frame.template alloc<std::uint32_t>(static_cast<std::size_t>(g.m * ldxb));
      bf16* xb16 = reinterpret_cast<bf16*>(xb);
      parallel_region(threads, [&](int t, int T) {
        auto const r = split(g.m, t, T);
        convert_rows_to_bf16<A>(g.x + r.begin * g.ldx, g.ldx, r.end - r.begin, g.k, xb16 + r.begin * 2 * ldxb, 2 * ldxb);
      });
      std::size_t const per_thread = static_cast<std::size_t>(blk::nc * blk::kc + blk::nc);
      auto* bp_all = frame.template alloc<std::uint32_t>(per_thread * static_cast<std::size_t>(threads));
      parallel_region(threads, [&](int t, int T) {
        auto const [mr, nrg] = partition(g.m, g.n, t, T, blk::nr);
        gemm_bf16_tile<A>(g, xb, ldxb, mr.begin, mr.end, nrg.begin, nrg.end, bp_all + per_thread * t);
      });
      return;
    }
  }
#endif
#if defined(__AVX2__) && !TESSERA_HAVE_AVX512_BF16_DOT
  if constexpr (std::is_same_v<W, bf16> && fbatch<A>::size == 8) {
    if (small_m) {  // decode GEMV: x permuted (and rounded for bf16 products) once, W streamed once
      index_t const ldxp = (g.k + 7) / 8 * 8;
      float* xp = frame.template alloc<float>(static_cast<std::size_t>(g.m * ldxp));
      permute_rows_for_avx2_gemv(g.x, g.ldx, g.m, g.k, bf16_products, xp, ldxp);
      parallel_chunks(threads, g.n, gemv_chunk_rows(static_cast<double>(sizeof(W)) * static_cast<double>(g.k), 8), [&](long long b, long long e) {
        switch (g.m) {
          case 1: gemv_bf16_avx2_rows<1>(g, xp, ldxp, b, e); break;
          case 2: gemv_bf16_avx2_rows<2>(g, xp, ldxp, b, e); break;
          case 3: gemv_bf16_avx2_rows<3>(g, xp, ldxp, b, e); break;
          default: gemv_bf16_avx2_rows<4>(g, xp, ldxp, b, e); break;
        }
      });
      return;
    }
  }
#endif
  if (bf16_products) {  // the f32 kernels on x rounded to bf16: bf16 x bf16 products are exact in f32
    float* xr = frame.template alloc<float>(static_cast<std::size_t>(g.m * g.k));
    parallel_region(threads, [&](int t, int T) {
      auto const r = split(g.m, t, T);
      round_rows_to_bf16<A>(g.x + r.begin * g.ldx, g.ldx, r.end - r.begin, g.k, xr + r.begin * g.k, g.k);
    });
    g.x = xr;
    g.ldx = g.k;
  }
  if (small_m) {
    parallel_chunks(threads, g.n, gemv_chunk_rows(static_cast<double>(sizeof(W)) * static_cast<double>(g.k), 4),
                    [&](long long b, long long e) {
                      dispatch_rows<static_cast<int>(blk::gemv_max_rows), gemv_f32_kernel<A, W, Bias>::template rows>(
                          static_cast<int>(g.m), g, static_cast<index_t>(b), static_cast<index_t>(e));
                    });
    return;
  }
  std::size_t const per_thread = static_cast<std::size_t>(blk::nc * blk::kc + blk::nc);
  float* bp_all = frame.template alloc<float>(per_thread * static_cast<std::size_t>(threads));
  parallel_region(threads, [&](int t, int T) {
    auto const [mr, nrg] = partition(g.m, g.n, t, T, blk::nr);
    gemm_f32_tile<A>(g, mr.begin, mr.end, nrg.begin, nrg.end, bp_all + per_thread * t);
  });
}

}  // namespace tessera::backend::cpu_detail

TESSERA_SIMD_DIAGNOSTICS_END
