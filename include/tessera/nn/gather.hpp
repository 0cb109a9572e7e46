// SPDX-License-Identifier: Apache-2.0
// nn::gather_rows and nn::scatter_rows -- moving whole rows by index (torch.index_select along
// dim 0, and index_copy_): token embeddings, the last token of each sequence, pooled rows in
// image order, caller rows spliced into a prompt. Pure data movement: exact on every backend.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>

#include <concepts>
#include <cstdint>
#include <span>
#include <type_traits>

namespace tessera::nn {

/// Index types of the row blocks: int32 (token ids) or int64 (index_t rows).
template <class I>
concept row_index = std::is_same_v<std::remove_cv_t<I>, std::int32_t> || std::is_same_v<std::remove_cv_t<I>, std::int64_t>;

namespace detail {
template <class Backend>
struct rows_impl {  // specialized below for the host backends (data movement: nothing to vectorize by hand)
  static_assert(always_false<Backend>,
                "nn::gather_rows / scatter_rows have no implementation for this backend (check TESSERA_ENABLE_* "
                "and that tessera/nn/gather.hpp was included through tessera.hpp)");
};

/// out[t] = widen(src[idx[t]]) (gather) or dst[idx[t]] = src[t] (scatter), rows split over
/// `threads` when there are many elements.
struct host_rows {
  template <weight_type W, row_index I>
  static void gather(tensor_view<W const, 2> src, std::span<I const> idx, tensor_view<float, 2> out, int threads) {
    auto const n = static_cast<index_t>(idx.size()), d = src.extent(1);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * d >= (index_t{1} << 16))
#endif
    for (index_t t = 0; t < n; ++t) {
      W const* const s = src.row(static_cast<index_t>(idx[static_cast<std::size_t>(t)]));
      float* const o = out.row(t);
      for (index_t j = 0; j < d; ++j) o[j] = to_float(s[j]);  // widening: exact
    }
    (void)threads;
  }
  template <row_index I>
  static void scatter(tensor_view<float const, 2> src, std::span<I const> idx, tensor_view<float, 2> dst, int threads) {
    auto const n = static_cast<index_t>(idx.size()), d = src.extent(1);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * d >= (index_t{1} << 16))
#endif
    for (index_t t = 0; t < n; ++t) {
      float const* const s = src.row(t);
      float* const o = dst.row(static_cast<index_t>(idx[static_cast<std::size_t>(t)]));
      for (index_t j = 0; j < d; ++j) o[j] = s[j];
    }
    (void)threads;
  }
};

template <>
struct rows_impl<backend::reference> : host_rows {};
template <class Arch>
struct rows_impl<backend::cpu_simd<Arch>> : host_rows {};

/// Index checks shared by gather and scatter: every index in [0, n_rows).
template <row_index I>
void check_row_indices(char const* block, std::span<I const> idx, index_t n_rows, char const* what) {
  for (std::size_t t = 0; t < idx.size(); ++t)
    TESSERA_CHECK(idx[t] >= 0 && idx[t] < n_rows, block, ": index ", t, " is ", idx[t], ", outside the ", what,
                  "'s rows [0, ", n_rows, ")");
}
}  // namespace detail

/// Mirrors torch.index_select(src, 0, idx) with an f32 result: out[t, :] = src[idx[t], :].
///   src: [n_src, d] f32, bf16 or f16; out: [n_idx, d] f32; rows may be strided, last dimension
///   contiguous; out must not overlap src. idx: int32 or int64, each in [0, n_src).
/// Throws tessera::error naming the first bad index, before writing anything. Workspace: none.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W, row_index I>
void gather_rows(tensor_view<W const, 2, backend::space_t<Backend>> src, std::span<I const> idx,
                 tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx) {
  auto const n = static_cast<index_t>(idx.size());
  TESSERA_CHECK(out.extent(0) == n && out.extent(1) == src.extent(1), "nn::gather_rows: out must be [", n, ", ",
                src.extent(1), "], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(out.is_row_contiguous() && src.is_row_contiguous(),
                "nn::gather_rows: the last dimension of src and out must be contiguous");
  detail::check_row_indices("nn::gather_rows", idx, src.extent(0), "source");
  if (n == 0 || src.extent(1) == 0) return;
  detail::rows_impl<Backend>::gather(src, idx, out, backend::host_threads(ctx));
}

/// Mirrors dst.index_copy_(0, idx, src): dst[idx[t], :] = src[t, :].
///   src: [n_idx, d] f32; dst: [n_dst, d] f32; rows may be strided, last dimension contiguous;
///   they must not overlap. idx: int32 or int64, distinct, each in [0, n_dst) (distinctness is the
///   caller's promise: with a repeated index the surviving row is unspecified, as in torch).
/// Throws tessera::error naming the first bad index, before writing anything. Workspace: none.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, row_index I>
void scatter_rows(tensor_view<float const, 2, backend::space_t<Backend>> src, std::span<I const> idx,
                  tensor_view<float, 2, backend::space_t<Backend>> dst, exec_ctx<Backend>& ctx) {
  auto const n = static_cast<index_t>(idx.size());
  TESSERA_CHECK(src.extent(0) == n && src.extent(1) == dst.extent(1), "nn::scatter_rows: src must be [", n, ", ",
                dst.extent(1), "], got [", src.extent(0), ", ", src.extent(1), "]");
  TESSERA_CHECK(src.is_row_contiguous() && dst.is_row_contiguous(),
                "nn::scatter_rows: the last dimension of src and dst must be contiguous");
  detail::check_row_indices("nn::scatter_rows", idx, dst.extent(0), "destination");
  if (n == 0 || src.extent(1) == 0) return;
  detail::rows_impl<Backend>::scatter(src, idx, dst, backend::host_threads(ctx));
}

}  // namespace tessera::nn
