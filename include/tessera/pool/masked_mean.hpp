// SPDX-License-Identifier: Apache-2.0
// pool::masked_mean -- mean of each packed sequence's token rows: NaViT / big_vision "gap" pooling
// (`sum(x * mask) / sum(mask)` per image, spec 6.2) over a Patch n' Pack buffer, without a mask
// tensor: the sequences are given by seq_offsets, padding runs by masked_seqs.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <cstdint>
#include <span>

namespace tessera::pool {

/// out[s, :] = mean of x[seqs.begin(s) .. seqs.end(s), :]; an empty sequence, or one flagged in
/// masked_seqs, gives a row of 0.
///   x:           [n_tokens, dim] f32, n_tokens == seqs.n_tokens(); rows may be strided, last dim contiguous.
///   out:         [n_seqs, dim] f32; rows may be strided, last dim contiguous; must not overlap x.
///   masked_seqs: empty, or one byte per sequence, 1 = padding run (pack_plan::padding_seqs()).
/// Numerics: the reference sums in f64; the cpu backend sums each column in f32 in token order, then
/// divides by the length. Workspace: none. Determinism: bitwise
/// reproducible for a backend and shape, independent of the thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_mean(tensor_view<float const, 2, backend::space_t<Backend>> x, seq_offsets const& seqs,
                 tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                 std::span<std::uint8_t const> masked_seqs = {}) {
  TESSERA_CHECK(x.extent(0) == seqs.n_tokens(), "pool::masked_mean: x has ", x.extent(0), " rows, the offsets cover ",
                seqs.n_tokens());
  TESSERA_CHECK(out.extent(0) == seqs.n_seqs() && out.extent(1) == x.extent(1), "pool::masked_mean: out must be [",
                seqs.n_seqs(), ", ", x.extent(1), "], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && out.is_row_contiguous(),
                "pool::masked_mean: the last dimension of x and out must be contiguous");
  detail::check_masked_seqs("pool::masked_mean", seqs, masked_seqs);
  if (out.extent(0) == 0 || out.extent(1) == 0) return;
  detail::masked_mean_impl<Backend>::run(x, seqs, out, ctx, masked_seqs);
}

}  // namespace tessera::pool

#include <tessera/pool/detail/masked_reduce_ref.hpp>
#include <tessera/pool/detail/masked_reduce_cpu.hpp>
