// SPDX-License-Identifier: Apache-2.0
// nn::embedding -- torch.nn.functional.embedding: the rows of a table picked by token ids, widened
// to f32 (exactly: bf16 and f16 values are f32 values). The token embedding of a decoder.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <cstdint>
#include <span>

namespace tessera::nn {

namespace detail {
template <class Backend>
struct embedding_impl {  // specialized below for the host backends (a gather: no arithmetic to vectorize)
  static_assert(always_false<Backend>,
                "nn::embedding has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/nn/embedding.hpp was included through tessera.hpp)");
};

/// Host gather: row t of out = table[ids[t]] widened to f32. Rows are independent; the cpu backend
/// splits them over threads when there are many (a prefill), the reference backend never.
template <weight_type W>
void embedding_rows(tensor_view<W const, 2> table, std::span<std::int32_t const> ids, tensor_view<float, 2> out,
                    int threads) {
  auto const n = static_cast<index_t>(ids.size()), d = table.extent(1);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * d >= (index_t{1} << 16))
#endif
  for (index_t t = 0; t < n; ++t) {
    W const* const src = table.row(ids[static_cast<std::size_t>(t)]);
    float* const dst = out.row(t);
    for (index_t j = 0; j < d; ++j) dst[j] = to_float(src[j]);
  }
  (void)threads;
}
}  // namespace detail

/// Mirrors torch.nn.functional.embedding(ids, table) with an f32 result.
///   table: [vocab, d_model] f32, bf16 or f16; rows may be strided, last dimension contiguous.
///   ids:   [n_tokens] int32, each in [0, vocab).
///   out:   [n_tokens, d_model] f32; rows may be strided, last dimension contiguous.
/// Throws tessera::error naming the first id outside the table (before writing anything).
/// Workspace: none. Exact (a copy), so bitwise identical on every backend.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void embedding(tensor_view<W const, 2, backend::space_t<Backend>> table, std::span<std::int32_t const> ids,
               tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx) {
  auto const n = static_cast<index_t>(ids.size());
  TESSERA_CHECK(out.extent(0) == n && out.extent(1) == table.extent(1), "nn::embedding: out must be [", n, ", ",
                table.extent(1), "], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(out.is_row_contiguous() && table.is_row_contiguous(),
                "nn::embedding: the last dimension of the table and of out must be contiguous");
  for (index_t t = 0; t < n; ++t) {
    std::int32_t const id = ids[static_cast<std::size_t>(t)];
    TESSERA_CHECK(id >= 0 && id < table.extent(0), "nn::embedding: token ", t, " has id ", id,
                  ", outside the vocabulary [0, ", table.extent(0), ")");
  }
  if (n == 0 || table.extent(1) == 0) return;
  detail::embedding_impl<Backend>::run(table, ids, out, ctx);
}

namespace detail {
template <>
struct embedding_impl<backend::reference> {
  template <weight_type W>
  static void run(tensor_view<W const, 2> table, std::span<std::int32_t const> ids, tensor_view<float, 2> out,
                  exec_ctx<backend::reference>&) {
    embedding_rows(table, ids, out, 1);
  }
};
template <class Arch>
struct embedding_impl<backend::cpu_simd<Arch>> {
  template <weight_type W>
  static void run(tensor_view<W const, 2> table, std::span<std::int32_t const> ids, tensor_view<float, 2> out,
                  exec_ctx<backend::cpu_simd<Arch>>& ctx) {
    embedding_rows(table, ids, out, ctx.threads());
  }
};
}  // namespace detail

}  // namespace tessera::nn
