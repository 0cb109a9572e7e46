// SPDX-License-Identifier: Apache-2.0
// pool::masked_mean / masked_max, cpu backend: the (sequence, column chunk) pairs are split over
// OpenMP threads; a chunk of up to `chunk_batches` xsimd batches stays in registers while the
// sequence's rows stream through it, so every output element is reduced by one thread in token order.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/cpu/simd.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

TESSERA_SIMD_DIAGNOSTICS_BEGIN

namespace tessera::pool::detail {

/// Shared driver: Op provides init(), step(acc, v), finish(acc, len) on batches, and the fill value
/// of partial loads.
template <class Arch, class Op>
struct masked_reduce_cpu {
  using batch = backend::cpu_detail::fbatch<Arch>;
  static constexpr index_t width = static_cast<index_t>(batch::size);
  static constexpr index_t chunk_batches = 8;
  static constexpr index_t chunk = chunk_batches * width;
  /// Below this many input elements the OpenMP fork costs more than the work.
  static constexpr index_t min_parallel_work = index_t{1} << 15;

  static void run(tensor_view<float const, 2> x,  // [n_tokens, dim]
                  seq_offsets const& seqs,
                  tensor_view<float, 2> out,  // [n_seqs, dim]
                  int ctx_threads, std::span<std::uint8_t const> masked) {
    index_t const dim = x.extent(1), n_chunks = (dim + chunk - 1) / chunk;
    index_t const n_items = seqs.n_seqs() * n_chunks;
    bool const parallel = ctx_threads > 1 && n_items > 1 && x.extent(0) * dim >= min_parallel_work;
    [[maybe_unused]] int const threads = parallel ? ctx_threads : 1;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (parallel)
#endif
    for (index_t item = 0; item < n_items; ++item) {
      index_t const s = item / n_chunks, c0 = item % n_chunks * chunk;
      index_t const cols = dim - c0 < chunk ? dim - c0 : chunk;
      float* const o = out.row(s) + c0;
      if (is_masked(masked, s) || seqs.length(s) == 0) {
        std::memset(o, 0, static_cast<std::size_t>(cols) * sizeof(float));
        continue;
      }
      reduce_chunk(x, seqs.begin(s), seqs.end(s), c0, cols, o);
    }
  }

 private:
  static void reduce_chunk(tensor_view<float const, 2> const& x, index_t begin, index_t end, index_t c0,
                           index_t cols, float* o) noexcept {
    using namespace backend::cpu_detail;
    index_t const full = cols / width;                 // whole batches in this chunk
    auto const tail = static_cast<std::size_t>(cols % width);
    typename Op::acc acc[chunk_batches + 1];
    for (auto& a : acc) a = Op::init();
    for (index_t t = begin; t < end; ++t) {
      float const* const row = x.row(t) + c0;
      for (index_t b = 0; b < full; ++b) Op::step(acc[b], batch::load_unaligned(row + b * width));
      if (tail) Op::step(acc[full], load_partial_as_float<Arch>(row + full * width, tail, Op::fill));
    }
    auto const len = static_cast<float>(end - begin);
    for (index_t b = 0; b < full; ++b) Op::finish(acc[b], len).store_unaligned(o + b * width);
    if (tail) store_partial<Arch>(o + full * width, Op::finish(acc[full], len), tail);
  }
};

/// Sum in f32, then divided by the length (as torch.mean).
template <class Arch>
struct mean_op {
  using batch = backend::cpu_detail::fbatch<Arch>;
  using acc = batch;
  static constexpr float fill = 0.0f;
  static acc init() noexcept { return batch(0.0f); }
  static void step(acc& a, batch const& v) noexcept { a += v; }
  static batch finish(acc const& a, float len) noexcept { return a / batch(len); }
};

/// Running maximum plus a NaN flag, so that a NaN anywhere in the column wins (xsimd::max alone
/// would drop it or not depending on the operand order).
template <class Arch>
struct max_op {
  using batch = backend::cpu_detail::fbatch<Arch>;
  struct acc {
    batch m, nan;
  };
  static constexpr float fill = -std::numeric_limits<float>::infinity();
  static acc init() noexcept { return {batch(fill), batch(0.0f)}; }
  static void step(acc& a, batch const& v) noexcept {
    a.m = xsimd::max(a.m, v);
    a.nan = xsimd::select(xsimd::isnan(v), batch(1.0f), a.nan);  // not v != v: xsimd may compare ordered
  }
  static batch finish(acc const& a, float) noexcept {
    return xsimd::select(a.nan != batch(0.0f), batch(std::numeric_limits<float>::quiet_NaN()), a.m);
  }
};

template <class Arch>
struct masked_mean_impl<backend::cpu_simd<Arch>> {
  static void run(tensor_view<float const, 2> x, seq_offsets const& seqs, tensor_view<float, 2> out,
                  exec_ctx<backend::cpu_simd<Arch>>& ctx, std::span<std::uint8_t const> masked) {
    masked_reduce_cpu<Arch, mean_op<Arch>>::run(x, seqs, out, ctx.threads(), masked);
  }
};

template <class Arch>
struct masked_max_impl<backend::cpu_simd<Arch>> {
  static void run(tensor_view<float const, 2> x, seq_offsets const& seqs, tensor_view<float, 2> out,
                  exec_ctx<backend::cpu_simd<Arch>>& ctx, std::span<std::uint8_t const> masked) {
    masked_reduce_cpu<Arch, max_op<Arch>>::run(x, seqs, out, ctx.threads(), masked);
  }
};

}  // namespace tessera::pool::detail

TESSERA_SIMD_DIAGNOSTICS_END
