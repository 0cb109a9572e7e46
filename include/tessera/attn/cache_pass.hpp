// SPDX-License-Identifier: Apache-2.0
// The KV-cache side of one decoder pass, as blocks: attn::plan_cache_pass writes, once per pass,
// where each new token goes (its rotary position and its cache row) and which cache rows each
// sequence attends to (the ranges of an attn::range_plan); attn::kv_append writes the new tokens'
// keys and values into their cache rows (f32, or bf16 rounded to nearest even as torch's
// .to(torch.bfloat16)). transformers' DynamicCache.update and cache_position, in block form.
#pragma once

#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstdint>
#include <span>

namespace tessera::attn {

namespace detail {
template <class Backend>
struct cache_pass_impl {  // specialized below for the host backends
  static_assert(always_false<Backend>,
                "attn::plan_cache_pass / kv_append have no implementation for this backend (check "
                "TESSERA_ENABLE_* and that tessera/attn/cache_pass.hpp was included through tessera.hpp)");
};

struct host_cache_pass {
  static void plan(seq_offsets const& seqs, std::span<index_t const> first_row, std::span<index_t const> past,
                   tensor_view<std::int32_t, 1> positions, tensor_view<index_t, 1> rows, std::span<seq_range> ranges) {
    for (index_t s = 0; s < seqs.n_seqs(); ++s) {
      auto const u = static_cast<std::size_t>(s);
      index_t const row0 = first_row[u], p0 = past[u];
      for (index_t i = seqs.begin(s); i < seqs.end(s); ++i) {
        index_t const p = p0 + (i - seqs.begin(s));
        positions(i) = static_cast<std::int32_t>(p);
        rows(i) = row0 + p;
      }
      ranges[u] = {seqs.begin(s), seqs.end(s), row0, row0 + p0 + seqs.length(s)};
    }
  }

  template <kv_element KV>
  static void append(tensor_view<float const, 3> k, tensor_view<float const, 3> v, tensor_view<index_t const, 1> rows,
                     tensor_view<KV, 3> keys, tensor_view<KV, 3> values, int threads) {
    index_t const n = k.extent(0), g_n = k.extent(1), hd = k.extent(2);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * g_n * hd >= (index_t{1} << 16))
#endif
    for (index_t t = 0; t < n; ++t)
      for (index_t g = 0; g < g_n; ++g) {
        float const* const ks = &k(t, g, index_t{0});
        float const* const vs = &v(t, g, index_t{0});
        KV* const kd = &keys(rows(t), g, index_t{0});
        KV* const vd = &values(rows(t), g, index_t{0});
        for (index_t j = 0; j < hd; ++j) {
          kd[j] = from_float<KV>(ks[j]);
          vd[j] = from_float<KV>(vs[j]);
        }
      }
    (void)threads;
  }
};

template <>
struct cache_pass_impl<backend::reference> : host_cache_pass {};
template <class Arch>
struct cache_pass_impl<backend::cpu_simd<Arch>> : host_cache_pass {};
}  // namespace detail

/// Plans one pass of n_seqs sequences over a KV cache whose slot rows are contiguous per sequence.
/// Sequence s owns new tokens [seqs.begin(s), seqs.end(s)); they continue the past[s] tokens
/// already cached in rows [first_row[s], first_row[s] + past[s]).
///   positions: [n_tokens] int32 out: token i of sequence s gets position past[s] + (i - begin(s))
///              (the rotary position; Qwen2's plain 1-D positions).
///   rows:      [n_tokens] out: the cache row token i's key and value go to (first_row[s] + its position).
///   ranges:    [n_seqs] out: sequence s's queries see cache rows [first_row[s], first_row[s] +
///              past[s] + length(s)) -- causal, bottom-right aligned (make an attn::range_plan of them).
/// Throws tessera::error for mismatched sizes or negative rows / lengths. Workspace: none.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void plan_cache_pass(seq_offsets const& seqs, std::span<index_t const> first_row, std::span<index_t const> past,
                     tensor_view<std::int32_t, 1, backend::space_t<Backend>> positions,
                     tensor_view<index_t, 1, backend::space_t<Backend>> rows, std::span<seq_range> ranges,
                     exec_ctx<Backend>& ctx) {
  auto const n_seqs = static_cast<std::size_t>(seqs.n_seqs());
  TESSERA_CHECK(first_row.size() == n_seqs && past.size() == n_seqs && ranges.size() == n_seqs,
                "attn::plan_cache_pass: ", n_seqs, " sequences but ", first_row.size(), " first rows, ", past.size(),
                " past lengths and ", ranges.size(), " ranges");
  TESSERA_CHECK(positions.extent(0) == seqs.n_tokens() && rows.extent(0) == seqs.n_tokens(),
                "attn::plan_cache_pass: positions and rows must have ", seqs.n_tokens(), " entries, got ",
                positions.extent(0), " and ", rows.extent(0));
  for (std::size_t s = 0; s < n_seqs; ++s)
    TESSERA_CHECK(first_row[s] >= 0 && past[s] >= 0 && past[s] + seqs.length(static_cast<index_t>(s)) <= INT32_MAX,
                  "attn::plan_cache_pass: sequence ", s, " has first row ", first_row[s], " and ", past[s],
                  " cached positions");
  (void)ctx;
  detail::cache_pass_impl<Backend>::plan(seqs, first_row, past, positions, rows, ranges);
}

/// Writes new keys and values into their cache rows: keys[rows[t], g, :] = k[t, g, :] (and v),
/// converted to the cache's element type (bf16: round to nearest even, torch's .to(bfloat16)).
///   k, v:         [n_tokens, n_kv_heads, head_dim] f32 (token and head strides free, last
///                 dimension contiguous; e.g. views into a fused qkv projection).
///   rows:         [n_tokens], distinct, each in [0, cache rows) (attn::plan_cache_pass's rows).
///   keys, values: [n_cache_rows, n_kv_heads, head_dim] of KV, last dimension contiguous.
/// Throws tessera::error for mismatched shapes or a row outside the cache. Workspace: none.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, kv_element KV>
void kv_append(tensor_view<float const, 3, backend::space_t<Backend>> k,
               tensor_view<float const, 3, backend::space_t<Backend>> v,
               tensor_view<index_t const, 1, backend::space_t<Backend>> rows,
               tensor_view<KV, 3, backend::space_t<Backend>> keys, tensor_view<KV, 3, backend::space_t<Backend>> values,
               exec_ctx<Backend>& ctx) {
  TESSERA_CHECK(v.extents() == k.extents() && rows.extent(0) == k.extent(0),
                "attn::kv_append: k and v must share a shape and rows have one entry per token; k is [", k.extent(0),
                ", ", k.extent(1), ", ", k.extent(2), "], v [", v.extent(0), ", ", v.extent(1), ", ", v.extent(2),
                "], rows ", rows.extent(0));
  TESSERA_CHECK(keys.extents() == values.extents() && keys.extent(1) == k.extent(1) && keys.extent(2) == k.extent(2),
                "attn::kv_append: the cache is [", keys.extent(0), ", ", keys.extent(1), ", ", keys.extent(2),
                "], the new keys have ", k.extent(1), " heads of ", k.extent(2));
  TESSERA_CHECK(k.is_row_contiguous() && v.is_row_contiguous() && keys.is_row_contiguous() &&
                    values.is_row_contiguous(),
                "attn::kv_append: the last dimension (head_dim) of k, v and the cache must be contiguous");
  for (index_t t = 0; t < rows.extent(0); ++t)
    TESSERA_CHECK(rows(t) >= 0 && rows(t) < keys.extent(0), "attn::kv_append: token ", t, " goes to row ", rows(t),
                  ", outside the cache's [0, ", keys.extent(0), ")");
  detail::cache_pass_impl<Backend>::append(k, v, rows, keys, values, backend::host_threads(ctx));
}

}  // namespace tessera::attn
