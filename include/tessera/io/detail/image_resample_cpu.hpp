// SPDX-License-Identifier: Apache-2.0
// io::resize_bicubic, cpu backend: the same integer sums as Pillow (so the same bytes; integer
// addition is exact, the order does not matter), arranged for SIMD and OpenMP:
//   - horizontal pass: blocks of 8 source rows are transposed (SSE2 byte unpacks) into a tile
//     [in_w * 3][8], so that each filter tap is one 8-lane multiply-add over the 8 rows per channel
//     (AVX2 when available); blocks are split over threads;
//   - vertical pass: 32 samples of an output row at a time, accumulated in registers over the taps;
//     rows are split over threads.
// The fixed-size inner loops are written so that the compiler vectorizes them even at -O2.
// Scratch (the tiles, the intermediate image) comes from the exec_ctx arena.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/detail/image_resample_coeffs.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tessera::io::detail {

template <class Arch>
struct resize_bicubic_impl<backend::cpu_simd<Arch>> {
  static constexpr int block_rows = 8;  // rows per horizontal-pass tile
  static constexpr int chunk = 32;      // samples per vertical-pass register block
  static constexpr std::int32_t bias = std::int32_t{1} << (pillow_precision_bits - 1);

  static void run(tensor_view<std::uint8_t const, 3> in,  // [in_h, in_w, 3]
                  tensor_view<std::uint8_t, 3> out,       // [out_h, out_w, 3]
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    int const ih = static_cast<int>(in.extent(0)), iw = static_cast<int>(in.extent(1));
    int const oh = static_cast<int>(out.extent(0)), ow = static_cast<int>(out.extent(1));
    bool const need_h = ow != iw, need_v = oh != ih;
    resample_coeffs const cx = pillow_bicubic_coeffs(iw, ow);
    resample_coeffs const cy = pillow_bicubic_coeffs(ih, oh);
    row_window const rows = need_h ? used_rows(cy) : row_window{0, ih};
    int const threads = std::max(1, ctx.threads());
    // Only one size changes: the horizontal pass then covers every row (Pillow's window for an
    // unchanged height is [0, ih)) and writes straight into out.
    TESSERA_DEBUG_ASSERT(need_v || (rows.first == 0 && rows.last == ih), "row window [", rows.first, ", ", rows.last,
                         ") for an unchanged height ", ih);
    auto frame = ctx.scratch().open();

    std::uint8_t const* src = in.data();
    index_t src_stride = in.stride(0);
    if (need_h) {
      int const n_rows = rows.last - rows.first;
      std::uint8_t* tmp = out.data();
      index_t tmp_stride = out.stride(0);
      if (need_v) {
        tmp = frame.template alloc<std::uint8_t>(static_cast<std::size_t>(n_rows) * 3u * static_cast<std::size_t>(ow));
        tmp_stride = index_t{3} * ow;  // [n_rows, out_w, 3]
      }
      // One tile [in_w * 3][block_rows] per thread, plus 16 bytes for the last unaligned store.
      std::size_t const tile_size = static_cast<std::size_t>(iw) * 3u * block_rows + 16;
      auto* tiles = frame.template alloc<std::uint8_t>(static_cast<std::size_t>(threads) * tile_size);
      int const n_blocks = (n_rows + block_rows - 1) / block_rows;
      backend::cpu_detail::parallel_region(std::min(threads, n_blocks), [&](int t, int T) {
        auto const part = backend::cpu_detail::split(n_blocks, t, T);
        std::uint8_t* tile = tiles + static_cast<std::size_t>(t) * tile_size;
        for (auto b = part.begin; b < part.end; ++b)
          horizontal_block(in.data() + rows.first * in.stride(0), in.stride(0), n_rows, static_cast<int>(b) * block_rows,
                           iw, cx, ow, tmp, tmp_stride, tile);
      });
      if (!need_v) return;
      src = tmp;
      src_stride = tmp_stride;
    }
    if (need_v) {
      backend::cpu_detail::parallel_region(std::min(threads, oh), [&](int t, int T) {
        auto const part = backend::cpu_detail::split(oh, t, T);
        for (auto yy = part.begin; yy < part.end; ++yy)
          vertical_row(src, src_stride, rows.first, cy, static_cast<int>(yy), 3 * ow, out.data() + yy * out.stride(0));
      });
      return;
    }
    for (int yy = 0; yy < oh; ++yy)
      std::memcpy(out.data() + yy * out.stride(0), in.data() + yy * in.stride(0), static_cast<std::size_t>(3 * ow));
  }

  /// Transposes 8 rows of `n` bytes into tile[j * 8 + i] = row_i[j].
  static void transpose_rows(std::uint8_t const* const* rp, int n, std::uint8_t* tile) {
    int j = 0;
#if defined(__SSE2__)
    // 16 columns at a time: three rounds of byte / word / dword unpacks turn 8 rows of 16 bytes into
    // 16 columns of 8 bytes (8 stores of 2 columns each).
    for (; j + 16 <= n; j += 16) {
      __m128i r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<__m128i const*>(rp[i] + j));
      __m128i const t0 = _mm_unpacklo_epi8(r[0], r[1]), t1 = _mm_unpackhi_epi8(r[0], r[1]);
      __m128i const t2 = _mm_unpacklo_epi8(r[2], r[3]), t3 = _mm_unpackhi_epi8(r[2], r[3]);
      __m128i const t4 = _mm_unpacklo_epi8(r[4], r[5]), t5 = _mm_unpackhi_epi8(r[4], r[5]);
      __m128i const t6 = _mm_unpacklo_epi8(r[6], r[7]), t7 = _mm_unpackhi_epi8(r[6], r[7]);
      __m128i const u0 = _mm_unpacklo_epi16(t0, t2), u1 = _mm_unpackhi_epi16(t0, t2);  // columns 0-3, 4-7 of rows 0-3
      __m128i const u2 = _mm_unpacklo_epi16(t1, t3), u3 = _mm_unpackhi_epi16(t1, t3);  // columns 8-11, 12-15
      __m128i const u4 = _mm_unpacklo_epi16(t4, t6), u5 = _mm_unpackhi_epi16(t4, t6);  // same for rows 4-7
      __m128i const u6 = _mm_unpacklo_epi16(t5, t7), u7 = _mm_unpackhi_epi16(t5, t7);
      auto* o = reinterpret_cast<__m128i*>(tile + static_cast<std::size_t>(j) * 8);
      _mm_storeu_si128(o + 0, _mm_unpacklo_epi32(u0, u4));
      _mm_storeu_si128(o + 1, _mm_unpackhi_epi32(u0, u4));
      _mm_storeu_si128(o + 2, _mm_unpacklo_epi32(u1, u5));
      _mm_storeu_si128(o + 3, _mm_unpackhi_epi32(u1, u5));
      _mm_storeu_si128(o + 4, _mm_unpacklo_epi32(u2, u6));
      _mm_storeu_si128(o + 5, _mm_unpackhi_epi32(u2, u6));
      _mm_storeu_si128(o + 6, _mm_unpacklo_epi32(u3, u7));
      _mm_storeu_si128(o + 7, _mm_unpackhi_epi32(u3, u7));
    }
#endif
    for (; j < n; ++j)
      for (int i = 0; i < 8; ++i) tile[static_cast<std::size_t>(j) * 8 + static_cast<std::size_t>(i)] = rp[i][j];
  }

  /// Horizontal pass of rows [r0, r0 + 8) of `src` (fewer at the end) into `dst`.
  static void horizontal_block(std::uint8_t const* src, index_t src_stride, int n_rows, int r0, int iw,
                               resample_coeffs const& cx, int ow, std::uint8_t* dst, index_t dst_stride,
                               std::uint8_t* tile) {
    constexpr int R = block_rows;
    int const nr = std::min(R, n_rows - r0);
    std::uint8_t const* rp[R];
    for (int i = 0; i < R; ++i) rp[i] = src + (r0 + std::min(i, nr - 1)) * src_stride;  // pad with the last row
    transpose_rows(rp, 3 * iw, tile);                                                    // [iw * 3][R]
    std::size_t const ksize = static_cast<std::size_t>(cx.ksize);
    for (int xx = 0; xx < ow; ++xx) {
      auto const x_out = static_cast<std::size_t>(xx);
      int const xmin = cx.start[x_out], cnt = cx.count[x_out];
      std::int32_t const* k = cx.k.data() + x_out * ksize;
      std::uint8_t const* cols = tile + static_cast<std::size_t>(xmin) * 3u * R;  // per tap [3][R]: R, G, B of 8 rows
      std::int32_t a0[R], a1[R], a2[R];
#if defined(__AVX2__)
      // Written out because GCC -O2 does not vectorize the 8-lane uint8 -> int32 widening below.
      __m256i v0 = _mm256_set1_epi32(bias), v1 = v0, v2 = v0;
      for (int x = 0; x < cnt; ++x) {
        __m256i const kk = _mm256_set1_epi32(k[x]);
        std::uint8_t const* col = cols + static_cast<std::size_t>(x) * 3u * R;
        __m128i const rg = _mm_loadu_si128(reinterpret_cast<__m128i const*>(col));
        __m128i const b = _mm_loadl_epi64(reinterpret_cast<__m128i const*>(col + 2 * R));
        v0 = _mm256_add_epi32(v0, _mm256_mullo_epi32(kk, _mm256_cvtepu8_epi32(rg)));
        v1 = _mm256_add_epi32(v1, _mm256_mullo_epi32(kk, _mm256_cvtepu8_epi32(_mm_srli_si128(rg, 8))));
        v2 = _mm256_add_epi32(v2, _mm256_mullo_epi32(kk, _mm256_cvtepu8_epi32(b)));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a0), v0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a1), v1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a2), v2);
#else
      for (int i = 0; i < R; ++i) a0[i] = a1[i] = a2[i] = bias;
      for (int x = 0; x < cnt; ++x) {
        std::int32_t const kk = k[x];
        std::uint8_t const* col = cols + static_cast<std::size_t>(x) * 3u * R;
        for (int i = 0; i < R; ++i) {
          a0[i] += kk * col[i];
          a1[i] += kk * col[R + i];
          a2[i] += kk * col[2 * R + i];
        }
      }
#endif
      for (int i = 0; i < nr; ++i) {
        std::uint8_t* o = dst + (r0 + i) * dst_stride + 3 * xx;
        o[0] = pillow_clip8(a0[i]);
        o[1] = pillow_clip8(a1[i]);
        o[2] = pillow_clip8(a2[i]);
      }
    }
  }

  /// Output row yy of the vertical pass: n samples, each the sum over source rows
  /// start[yy] - row_offset + r, 32 samples at a time in registers.
  static void vertical_row(std::uint8_t const* src, index_t src_stride, int row_offset, resample_coeffs const& cy,
                           int yy, int n, std::uint8_t* o) {
    auto const y = static_cast<std::size_t>(yy);
    int const ymin = cy.start[y] - row_offset, cnt = cy.count[y];
    std::int32_t const* k = cy.k.data() + y * static_cast<std::size_t>(cy.ksize);
    std::uint8_t const* s0 = src + ymin * src_stride;
    int i0 = 0;
    for (; i0 + chunk <= n; i0 += chunk) {
      std::int32_t a[chunk];
      for (int j = 0; j < chunk; ++j) a[j] = bias;
      for (int r = 0; r < cnt; ++r) {
        std::int32_t const kk = k[r];
        std::uint8_t const* s = s0 + r * src_stride + i0;
        for (int j = 0; j < chunk; ++j) a[j] += kk * s[j];
      }
      for (int j = 0; j < chunk; ++j) o[i0 + j] = pillow_clip8(a[j]);
    }
    for (; i0 < n; ++i0) {
      std::int32_t a = bias;
      for (int r = 0; r < cnt; ++r) a += k[r] * s0[r * src_stride + i0];
      o[i0] = pillow_clip8(a);
    }
  }
};

}  // namespace tessera::io::detail
