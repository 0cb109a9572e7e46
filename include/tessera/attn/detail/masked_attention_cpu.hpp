// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention, cpu backend: FlashAttention-2 (Dao 2023) on CPU with xsimd + OpenMP.
// A query tile is BR = QV x lanes rows, each row a (query head, token) pair of one kv head's
// group (GQA heads share the K / V they read) of one sequence. Tiles are processed with the
// scores TRANSPOSED, S^T[key][row]: every vector holds one key's scores for BR rows, so the
// online-softmax statistics (running max m, sum l) are vertical vector operations, never
// horizontal reductions, and any head_dim works without a remainder in the vector dimension:
//   Qt[d][row]   = q * scale * log2(e)                 (packed once per tile)
//   S^T[j][row]  = sum_d K[j][d] Qt[d][row]            (MR keys x QV vectors register tile)
//   m' = max(m, max_j S^T), P^T = exp2(S^T - m'), l = l 2^(m - m') + sum_j P^T
//   O^T[d][row]  = O^T 2^(m - m') + sum_j V[j][d] P^T[j][row]   (DR dims x QV vectors tile)
//   out = O^T / l, transposed on the way out; lse = (m + log2 l) ln 2.
// A work item is a chunk of up to 16 query tiles of one sequence and head group: each key tile
// (BC keys) of K and V is copied once into contiguous scratch and reused by every tile of the
// chunk. Items are sorted by cost (largest first) and handed out dynamically to the threads.
// Scores in the log2 domain save a multiply per exponential; exp2 is a degree-6 polynomial on
// [-0.5, 0.5] plus an exponent shift (max relative error about 1e-7, see the tests).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/parallel.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::attn::detail {

/// 2^x for x <= 0 (and -inf), f32, on every lane: x is clamped to [-127, 0], split into an
/// integer n (round to nearest via the 1.5 * 2^23 trick) and f in [-0.5, 0.5]; 2^f is a
/// near-minimax degree-6 polynomial (relative error <= 1e-7 in f32 Horner); 2^n is built in the
/// exponent field, where n = -127 gives exactly 0 (so -inf, masked keys, give exactly 0).
template <class Arch>
[[nodiscard]] inline backend::cpu_detail::fbatch<Arch> exp2_nonpositive(backend::cpu_detail::fbatch<Arch> x) noexcept {
  using B = backend::cpu_detail::fbatch<Arch>;
  using I = backend::cpu_detail::ibatch<Arch>;
  using backend::cpu_detail::bitcast;
  x = xsimd::max(x, B(-127.0f));
  B const shifter(12582912.0f);  // 1.5 * 2^23: x + shifter rounds x to an integer in the low mantissa bits
  B const t = x + shifter;
  B const n = t - shifter;
  B const f = x - n;
  B p(1.5353362e-4f);
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(1.3398875e-3f));
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(9.6184369e-3f));
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(5.5503324e-2f));
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(2.4022648e-1f));
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(6.9314718e-1f));
  p = backend::cpu_detail::fmadd<Arch>(p, f, B(1.0f));
  // bits(t) - bits(shifter) = n; the biased exponent n + 127 shifted into place.
  I const e = (bitcast<std::int32_t>(t) - I(0x4B400000 - 127)) << 23;
  return p * bitcast<float>(e);
}

/// The tile kernel for one vector architecture and QV query vectors per tile (see the top of the
/// file); masked_attention_impl below picks the instance.
template <class Arch, int QV_>
struct flash_tiles {
  using B = backend::cpu_detail::fbatch<Arch>;
  static constexpr int L = static_cast<int>(B::size);
  /// 32 vector registers with AVX-512, 16 with AVX2 / SSE2 (a narrow batch of an AVX-512 build
  /// still has 32).
#if defined(__AVX512F__)
  static constexpr bool wide = true;
#else
  static constexpr bool wide = false;
#endif
  static constexpr int QV = QV_;               ///< query vectors per tile
  static constexpr int BR = QV * L;            ///< rows per tile: (head, token) pairs
  /// Keys per S^T register tile (MR x QV accumulators), and head dims per O^T register tile.
  static constexpr int MR = QV == 1 ? (wide ? 24 : 12) : (wide ? 12 : 6);
  static constexpr int BC = 96;                ///< keys per key tile (a multiple of MR)
  static constexpr int DR_MAX = MR;
  static constexpr int max_chunk = 16;         ///< query tiles per work item sharing each packed K / V tile
  static_assert(BC % MR == 0);
  /// Scores are in the log2 domain: q is pre-multiplied by scale * log2(e).
  static constexpr float log2e = 1.44269504088896340736f;
  static constexpr float ln2 = 0.693147180559945309417f;
  /// Below this many multiply-adds the OpenMP fork costs more than it saves.
  static constexpr double min_parallel_work = 1 << 16;

  /// A work item: query tiles [tile0, tile0 + n_tiles) of heads [h0, h0 + nh) (one kv head's
  /// group, or part of it) of one sequence; tile t holds tokens [t nq, (t + 1) nq) of each head.
  struct work_item {
    std::int64_t cost;     ///< approximate multiply-adds (sort key, largest first)
    std::int32_t seq;      ///< index into the ranges
    std::int32_t h0;       ///< first query head
    std::int32_t nh;       ///< query heads per tile (same kv head)
    std::int32_t nq;       ///< tokens per head per tile (nh * nq <= BR)
    std::int32_t tile0;    ///< first query tile of the sequence
    std::int32_t n_tiles;  ///< query tiles in the item (<= max_chunk)
  };

  /// Everything the tile loop reads besides the per-thread scratch. KV: float or bf16.
  template <class KV>
  struct problem {
    tensor_view<float const, 3> q;        // [n_q_tokens, n_heads, head_dim]
    tensor_view<KV const, 3> k, v;        // [n_kv_tokens, n_kv_heads, head_dim] each
    tensor_view<float, 3> out;            // [n_q_tokens, n_heads, head_dim]
    tensor_view<float, 2> lse;            // [n_heads, n_q_tokens] or empty
    std::span<seq_range const> ranges;
    index_t head_dim, group;
    float qscale;
    bool causal;
  };

  template <class KV, class Ctx>
  static void run(tensor_view<float const, 3> q,  // [n_q_tokens, n_heads, head_dim]
                  tensor_view<KV const, 3> k,     // [n_kv_tokens, n_kv_heads, head_dim] f32 or bf16
                  tensor_view<KV const, 3> v,     // [n_kv_tokens, n_kv_heads, head_dim] f32 or bf16
                  std::span<seq_range const> ranges,
                  tensor_view<float, 3> out,      // [n_q_tokens, n_heads, head_dim]
                  tensor_view<float, 2> lse,      // [n_heads, n_q_tokens] or empty
                  attention_params const& p, Ctx& ctx) {
    index_t const n_heads = q.extent(1), head_dim = q.extent(2), group = n_heads / k.extent(1);
    problem<KV> const pb{q, k, v, out, lse, ranges, head_dim, group, p.scale * log2e, p.causal};
    // Tile shape: all heads of a group share the tile when they fit, tokens fill the rest.
    index_t const nh = std::min<index_t>(group, BR), nq = BR / nh, n_sub = (group + nh - 1) / nh;
    index_t total_tiles = 0;
    for (seq_range const& r : ranges) total_tiles += k.extent(1) * n_sub * ((r.q_end - r.q_begin + nq - 1) / nq);
    // Tiles per item: as many as share a packed K / V tile, while leaving >= 8 items per thread.
    index_t const chunk = std::clamp<index_t>(total_tiles / (8 * std::max(ctx.threads(), 1)), 1, max_chunk);

    backend::scratch_arena::frame frame = ctx.scratch().open();
    index_t n_items = 0;
    for (seq_range const& r : ranges) {
      index_t const tiles = (r.q_end - r.q_begin + nq - 1) / nq;
      n_items += k.extent(1) * n_sub * ((tiles + chunk - 1) / chunk);
    }
    work_item* const items = frame.alloc<work_item>(static_cast<std::size_t>(n_items));  // [n_items]
    double total_work = 0;
    index_t n = 0;
    for (std::size_t s = 0; s < ranges.size(); ++s) {
      seq_range const& r = ranges[s];
      index_t const q_len = r.q_end - r.q_begin, kv_len = r.kv_end - r.kv_begin;
      index_t const tiles = (q_len + nq - 1) / nq;
      for (index_t h0 = 0; h0 < n_heads; h0 += nh) {
        index_t const heads = std::min(nh, group - h0 % group);  // a tile never crosses a group
        for (index_t t0 = 0; t0 < tiles; t0 += chunk) {
          index_t const nt = std::min(chunk, tiles - t0);
          index_t cost = 0;
          for (index_t t = t0; t < t0 + nt; ++t)
            cost += heads * std::min(nq, q_len - t * nq) *
                    (key_stop(pb.causal, q_len, kv_len, std::min((t + 1) * nq, q_len)) + 16) * head_dim;
          items[n++] = {cost,
                        static_cast<std::int32_t>(s),
                        static_cast<std::int32_t>(h0),
                        static_cast<std::int32_t>(heads),
                        static_cast<std::int32_t>(nq),
                        static_cast<std::int32_t>(t0),
                        static_cast<std::int32_t>(nt)};
          total_work += static_cast<double>(cost);
        }
        // A partial subgroup ends the group: the next tile starts at the next group's first head.
        if (heads < nh) h0 += heads - nh;
      }
    }
    TESSERA_DEBUG_ASSERT(n == n_items, "masked_attention: work item count ", n, " != ", n_items);
    // Largest first: with dynamic scheduling this is the LPT rule, which balances a few long
    // sequences against many short ones. Ties keep the (sequence, head, tile) order.
    std::sort(items, items + n_items, [](work_item const& a, work_item const& b) {
      if (a.cost != b.cost) return a.cost > b.cost;
      if (a.seq != b.seq) return a.seq < b.seq;
      if (a.h0 != b.h0) return a.h0 < b.h0;
      return a.tile0 < b.tile0;
    });

    int const threads = static_cast<int>(std::min<index_t>(
        total_work >= min_parallel_work ? ctx.threads() : 1, std::max<index_t>(n_items, 1)));
    std::size_t const per_thread = thread_floats(head_dim);
    float* const tiles = frame.alloc<float>(per_thread * static_cast<std::size_t>(threads));  // [threads][per_thread]
    std::atomic<index_t> next{0};
    backend::cpu_detail::parallel_region(threads, [&](int t, int) {
      float* const mine = tiles + per_thread * static_cast<std::size_t>(t);
      for (index_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_items;
           i = next.fetch_add(1, std::memory_order_relaxed)) {
        switch (head_dim) {  // the supported compile-time head dims; others take the runtime path
          case 64: process<64>(pb, items[i], mine); break;
          case 72: process<72>(pb, items[i], mine); break;
          case 80: process<80>(pb, items[i], mine); break;
          case 128: process<128>(pb, items[i], mine); break;
          default: process<0>(pb, items[i], mine); break;
        }
      }
    });
  }

  /// Floats of one thread's scratch: per query tile of a chunk Qt and O^T [head_dim][BR] and m,
  /// l, alpha, row offsets [BR]; shared S^T [BC][BR] and the packed K and V tiles [BC][head_dim].
  /// Rounded to whole cache lines.
  [[nodiscard]] static std::size_t thread_floats(index_t head_dim) noexcept {
    auto const f = static_cast<std::size_t>(max_chunk * tile_floats(head_dim) + BC * BR + 2 * BC * head_dim);
    return (f + 15) / 16 * 16;
  }

 private:
  [[nodiscard]] static constexpr index_t tile_floats(index_t head_dim) noexcept { return (2 * head_dim + 4) * BR; }

  /// Keys [0, key_stop) of a sequence are read by a tile whose tokens end at t_end (causal: the
  /// last token's limit, bottom-right aligned).
  [[nodiscard]] static index_t key_stop(bool causal, index_t q_len, index_t kv_len, index_t t_end) noexcept {
    if (!causal) return kv_len;
    return std::clamp<index_t>(kv_len - q_len + t_end, 0, kv_len);
  }

  /// Head dims per O^T register tile: a divisor of the head dim when one is close to the
  /// maximum (no partial tile), else the maximum.
  static constexpr int pick_dr(int hd) noexcept {
    if (hd <= 0) return DR_MAX;
    for (int dr = DR_MAX; dr >= DR_MAX * 2 / 3; --dr)
      if (hd % dr == 0) return dr;
    return DR_MAX;
  }

  /// The state of one query tile inside a work item.
  struct tile_state {
    float* qt;       // [hd][BR] q * scale * log2(e), transposed
    float* ot;       // [hd][BR] unnormalized output, transposed
    float* m;        // [BR] running max (log2 domain)
    float* l;        // [BR] running sum
    float* alpha;    // [BR] rescale factor of the current key tile
    float* row_tok;  // [BR] token offset of each row within the tile
    index_t i0;      // first token of the tile (relative to the sequence)
    index_t kv_stop; // keys [0, kv_stop) are visible to some row
    index_t diag;    // keys >= diag are hidden from some rows (causal); may be negative
  };

  /// One work item: for each key tile, pack K / V once, then for each query tile of the item:
  /// scores, causal mask on the diagonal, online softmax, P V; finally write out / lse.
  /// Copies one row of n keys or values into packed f32 scratch (bf16 widened exactly).
  template <class KV>
  static void copy_row(float* dst, KV const* src, index_t n) noexcept {
    if constexpr (std::is_same_v<KV, float>) {
      std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
    } else {
      index_t const full = n - n % L;
      for (index_t d = 0; d < full; d += L) backend::cpu_detail::load_as_float<Arch>(src + d).store_unaligned(dst + d);
      for (index_t d = full; d < n; ++d) dst[d] = src[d].to_float();
    }
  }

  template <int HD, class KV>
  static void process(problem<KV> const& pb, work_item const& it, float* scratch) noexcept {
    constexpr int DR = pick_dr(HD);
    constexpr float inf = std::numeric_limits<float>::infinity();
    index_t const hd = HD > 0 ? HD : pb.head_dim;
    seq_range const& r = pb.ranges[static_cast<std::size_t>(it.seq)];
    index_t const q_len = r.q_end - r.q_begin, kv_len = r.kv_end - r.kv_begin;
    index_t const nq = it.nq, nh = it.nh;
    index_t const kv_head = it.h0 / pb.group;

    float* const st = scratch;        // [BC][BR] scores, then probabilities
    float* const kt = st + BC * BR;   // [BC][hd] packed keys
    float* const vt = kt + BC * hd;   // [BC][hd] packed values
    float* const states = vt + BC * hd;
    tile_state ts[max_chunk];
    index_t kv_stop = 0;  // the item's key range: the maximum over its tiles
    for (int t = 0; t < it.n_tiles; ++t) {
      float* const base = states + t * tile_floats(hd);
      tile_state& s = ts[t];
      s.qt = base;
      s.ot = base + hd * BR;
      s.m = s.ot + hd * BR;
      s.l = s.m + BR;
      s.alpha = s.l + BR;
      s.row_tok = s.alpha + BR;
      s.i0 = (it.tile0 + t) * nq;
      s.kv_stop = key_stop(pb.causal, q_len, kv_len, std::min(s.i0 + nq, q_len));
      s.diag = pb.causal ? kv_len - q_len + s.i0 + 1 : s.kv_stop;
      kv_stop = std::max(kv_stop, s.kv_stop);
      if (s.kv_stop == 0) continue;
      // Rows of q (a token stride apart: one page each in a fused qkv buffer) are first copied
      // contiguously into ot (free until the key loop), so that their cache misses overlap, then
      // transposed into qt from L1.
      for (index_t row = 0; row < BR; ++row) {
        bool const ok = row < nh * nq && s.i0 + row % nq < q_len;
        float* const staged = s.ot + row * hd;
        if (ok) {
          float const* const src = &pb.q(r.q_begin + s.i0 + row % nq, it.h0 + row / nq, index_t{0});
          for (index_t d = 0; d < hd; ++d) staged[d] = src[d] * pb.qscale;
        } else {
          std::fill(staged, staged + hd, 0.0f);
        }
        s.row_tok[row] = static_cast<float>(row % nq);
        s.m[row] = -inf;
        s.l[row] = 0.0f;
      }
      for (index_t d = 0; d < hd; ++d)
        for (index_t row = 0; row < BR; ++row) s.qt[d * BR + row] = s.ot[row * hd + d];
      std::fill(s.ot, s.ot + hd * BR, 0.0f);
    }

    for (index_t j0 = 0; j0 < kv_stop; j0 += BC) {
      int const bc = static_cast<int>(std::min<index_t>(BC, kv_stop - j0));
      // Packed contiguously, the tile's rows no longer sit a token stride apart (15 KB in a fused
      // ViT qkv buffer: one 4 KiB page and a few L1 sets per row) and every query tile reuses them.
      for (int j = 0; j < bc; ++j) {
        copy_row(kt + j * hd, &pb.k(r.kv_begin + j0 + j, kv_head, index_t{0}), hd);
        copy_row(vt + j * hd, &pb.v(r.kv_begin + j0 + j, kv_head, index_t{0}), hd);
      }
      for (int t = 0; t < it.n_tiles; ++t) {
        tile_state const& s = ts[t];
        if (s.kv_stop <= j0) continue;
        int const bct = static_cast<int>(std::min<index_t>(bc, s.kv_stop - j0));
        for (int jb = 0; jb < bct; jb += MR) qk_tile<HD>(kt + jb * hd, std::min(MR, bct - jb), s.qt, st + jb * BR, hd);
        if (j0 + bct > s.diag) mask_diagonal(st, j0, bct, s.diag, s.row_tok);
        online_softmax(st, bct, s.m, s.l, s.alpha);
        index_t d0 = 0;
        for (; d0 + DR <= hd; d0 += DR) pv_tile<HD, DR, true>(vt + d0, bct, st, s.alpha, s.ot + d0 * BR, DR, hd);
        if (d0 < hd) pv_tile<HD, DR, false>(vt + d0, bct, st, s.alpha, s.ot + d0 * BR, static_cast<int>(hd - d0), hd);
      }
    }

    // Write out: rows without a visible key (l = 0) give 0 and lse = -inf. O^T is transposed
    // into qt (free now) first, so that out is written in whole rows.
    bool const has_lse = pb.lse.extent(0) != 0;
    for (int t = 0; t < it.n_tiles; ++t) {
      tile_state const& s = ts[t];
      float inv[BR];
      for (index_t row = 0; row < BR; ++row) inv[row] = s.kv_stop > 0 && s.l[row] > 0.0f ? 1.0f / s.l[row] : 0.0f;
      if (s.kv_stop > 0)
        for (index_t d = 0; d < hd; ++d)
          for (index_t row = 0; row < BR; ++row) s.qt[row * hd + d] = s.ot[d * BR + row] * inv[row];
      for (index_t row = 0; row < nh * nq; ++row) {
        if (s.i0 + row % nq >= q_len) continue;
        index_t const tok = r.q_begin + s.i0 + row % nq, head = it.h0 + row / nq;
        bool const seen = inv[row] > 0.0f;
        float* const dst = &pb.out(tok, head, index_t{0});
        if (seen)
          std::memcpy(dst, s.qt + row * hd, static_cast<std::size_t>(hd) * sizeof(float));
        else
          std::fill(dst, dst + hd, 0.0f);
        if (has_lse) pb.lse(head, tok) = seen ? (s.m[row] + std::log2(s.l[row])) * ln2 : -inf;
      }
    }
  }

  /// S^T[a][:] = sum_d K[a][d] Qt[d][:] for `rows` <= MR packed keys at kt (row stride hd).
  /// Rows past `rows` re-read the last key and are not stored.
  template <int HD>
  static void qk_tile(float const* kt, int rows, float const* qt, float* st, index_t hd_rt) noexcept {
    index_t const hd = HD > 0 ? HD : hd_rt;
    bool const full = rows == MR;
    B acc[MR][QV];
    for (int a = 0; a < MR; ++a)
      for (int c = 0; c < QV; ++c) acc[a][c] = B(0.0f);
    if (full) {
      for (index_t d = 0; d < hd; ++d) {
        B qv[QV];
        for (int c = 0; c < QV; ++c) qv[c] = B::load_aligned(qt + d * BR + c * L);
#pragma GCC unroll 16
        for (int a = 0; a < MR; ++a) {
          B const kb(kt[a * hd + d]);
          for (int c = 0; c < QV; ++c) acc[a][c] = backend::cpu_detail::fmadd<Arch>(kb, qv[c], acc[a][c]);
        }
      }
    } else {
      index_t off[MR];
      for (int a = 0; a < MR; ++a) off[a] = std::min(a, rows - 1) * hd;
      for (index_t d = 0; d < hd; ++d) {
        B qv[QV];
        for (int c = 0; c < QV; ++c) qv[c] = B::load_aligned(qt + d * BR + c * L);
        for (int a = 0; a < MR; ++a) {
          B const kb(kt[off[a] + d]);
          for (int c = 0; c < QV; ++c) acc[a][c] = backend::cpu_detail::fmadd<Arch>(kb, qv[c], acc[a][c]);
        }
      }
    }
    for (int a = 0; a < MR; ++a)
      if (a < rows)
        for (int c = 0; c < QV; ++c) acc[a][c].store_aligned(st + a * BR + c * L);
  }

  /// Causal rule inside the tile: key j (sequence index) is hidden from row `row` when
  /// j - diag >= row_tok[row] (j > token + kv_len - q_len). Only keys j < kv_stop reach here, so
  /// 0 <= j - diag < nq <= BR: small integers, exact in f32.
  static void mask_diagonal(float* st, index_t j0, int bc, index_t diag, float const* row_tok) noexcept {
    B const minus_inf(-std::numeric_limits<float>::infinity());
    for (index_t j = std::max(j0, diag); j < j0 + bc; ++j) {
      B const rel(static_cast<float>(j - diag));
      float* const srow = st + (j - j0) * BR;
      for (int c = 0; c < QV; ++c) {
        B const s = B::load_aligned(srow + c * L);
        xsimd::select(rel >= B::load_aligned(row_tok + c * L), minus_inf, s).store_aligned(srow + c * L);
      }
    }
  }

  /// Online softmax over one key tile: m' = max(m, max_j S^T[j]); P^T = exp2(S^T - m') in place;
  /// alpha = exp2(m - m'); l = alpha l + sum_j P^T. A row with no finite score so far keeps
  /// m = -inf and subtracts 0 instead (no -inf - -inf).
  static void online_softmax(float* st, int bc, float* m, float* l, float* alpha) noexcept {
    B const minus_inf(-std::numeric_limits<float>::infinity());
    for (int c = 0; c < QV; ++c) {
      B mt = minus_inf;
      for (int j = 0; j < bc; ++j) mt = xsimd::max(mt, B::load_aligned(st + j * BR + c * L));
      B const mo = B::load_aligned(m + c * L);
      B const mn = xsimd::max(mo, mt);
      B const mu = xsimd::select(mn == minus_inf, B(0.0f), mn);
      B const al = exp2_nonpositive<Arch>(mo - mu);
      B sum0(0.0f), sum1(0.0f);
      int j = 0;
      for (; j + 2 <= bc; j += 2) {
        B const p0 = exp2_nonpositive<Arch>(B::load_aligned(st + j * BR + c * L) - mu);
        B const p1 = exp2_nonpositive<Arch>(B::load_aligned(st + (j + 1) * BR + c * L) - mu);
        p0.store_aligned(st + j * BR + c * L);
        p1.store_aligned(st + (j + 1) * BR + c * L);
        sum0 += p0;
        sum1 += p1;
      }
      if (j < bc) {
        B const p0 = exp2_nonpositive<Arch>(B::load_aligned(st + j * BR + c * L) - mu);
        p0.store_aligned(st + j * BR + c * L);
        sum0 += p0;
      }
      backend::cpu_detail::fmadd<Arch>(B::load_aligned(l + c * L), al, sum0 + sum1).store_aligned(l + c * L);
      mn.store_aligned(m + c * L);
      al.store_aligned(alpha + c * L);
    }
  }

  /// O^T[a][:] = alpha O^T[a][:] + sum_j V[j][a] P^T[j][:] for `rows` <= DR head dims of the
  /// packed values at vt (= V[0][d0], row stride hd). Full tiles use constant offsets; a partial
  /// one re-reads its last dim and stores only `rows`.
  template <int HD, int DR, bool Full>
  static void pv_tile(float const* vt, int bc, float const* pt, float const* alpha, float* ot, int rows,
                      index_t hd_rt) noexcept {
    index_t const hd = HD > 0 ? HD : hd_rt;
    int off[DR];
    for (int a = 0; a < DR; ++a) off[a] = Full ? a : std::min(a, rows - 1);
    B al[QV];
    for (int c = 0; c < QV; ++c) al[c] = B::load_aligned(alpha + c * L);
    B acc[DR][QV];
    for (int a = 0; a < DR; ++a)
      for (int c = 0; c < QV; ++c) acc[a][c] = B::load_aligned(ot + off[a] * BR + c * L) * al[c];
    for (int j = 0; j < bc; ++j) {
      B pv[QV];
      for (int c = 0; c < QV; ++c) pv[c] = B::load_aligned(pt + j * BR + c * L);
      float const* const vr = vt + j * hd;
#pragma GCC unroll 16
      for (int a = 0; a < DR; ++a) {
        B const vb(vr[Full ? a : off[a]]);
        for (int c = 0; c < QV; ++c) acc[a][c] = backend::cpu_detail::fmadd<Arch>(vb, pv[c], acc[a][c]);
      }
    }
    for (int a = 0; a < DR; ++a)
      if (Full || a < rows)
        for (int c = 0; c < QV; ++c) acc[a][c].store_aligned(ot + a * BR + c * L);
  }
};

template <class Arch>
struct masked_attention_impl<backend::cpu_simd<Arch>> {
  using wide_tiles = flash_tiles<Arch, 2>;
  /// One query per sequence (decode) gives a tile only `group` rows (the query heads of a kv
  /// head): 7 of 32 with AVX-512 and two vectors per tile. Such calls take tiles of 8 rows, one
  /// AVX2-width vector: every score and exponential then costs 4x fewer vector operations on AVX-512
  /// (8x fewer lanes, at twice the rate of a 512-bit operation on cores that split them) and 2x
  /// fewer on AVX2. Not with SSE2 (4 lanes: a group of 7 would need two tiles).
#if XSIMD_WITH_FMA3_AVX2
  using narrow_tiles = flash_tiles<xsimd::fma3<xsimd::avx2>, 1>;
#endif

  template <class KV>
  static void run(tensor_view<float const, 3> q, tensor_view<KV const, 3> k, tensor_view<KV const, 3> v,
                  std::span<seq_range const> ranges, tensor_view<float, 3> out, tensor_view<float, 2> lse,
                  attention_params const& p, exec_ctx<backend::cpu_simd<Arch>>& ctx) {
#if XSIMD_WITH_FMA3_AVX2
    index_t const group = q.extent(1) / k.extent(1);
    index_t max_q = 0;
    for (seq_range const& r : ranges) max_q = std::max(max_q, r.q_end - r.q_begin);
    if (group * max_q <= narrow_tiles::BR) {
      narrow_tiles::run(q, k, v, ranges, out, lse, p, ctx);
      return;
    }
#endif
    wide_tiles::run(q, k, v, ranges, out, lse, p, ctx);
  }
};

}  // namespace tessera::attn::detail

TESSERA_SIMD_DIAGNOSTICS_END
