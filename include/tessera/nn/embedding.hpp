// SPDX-License-Identifier: Apache-2.0
// nn::embedding -- torch.nn.functional.embedding: the rows of a table picked by token ids, widened
// to f32 (exactly: bf16 and f16 values are f32 values). The token embedding of a decoder; a row
// gather (nn::gather_rows) with the vocabulary named in its messages.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/gather.hpp>

#include <cstdint>
#include <span>

namespace tessera::nn {

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
  for (index_t t = 0; t < n; ++t) {
    std::int32_t const id = ids[static_cast<std::size_t>(t)];
    TESSERA_CHECK(id >= 0 && id < table.extent(0), "nn::embedding: token ", t, " has id ", id,
                  ", outside the vocabulary [0, ", table.extent(0), ")");
  }
  TESSERA_CHECK(out.is_row_contiguous() && table.is_row_contiguous(),
                "nn::embedding: the last dimension of the table and of out must be contiguous");
  if (n == 0 || table.extent(1) == 0) return;
  // The ids are checked above with the vocabulary in the message: the gather itself, unchecked.
  detail::rows_impl<Backend>::gather(table, ids, out, backend::host_threads(ctx));
}

}  // namespace tessera::nn
