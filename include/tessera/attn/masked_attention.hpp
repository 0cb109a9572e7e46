// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention -- multi-head scaled-dot-product attention over packed variable-length
// sequences (block-diagonal mask; optional bottom-right causal mask; grouped-query heads), as
// torch.nn.functional.scaled_dot_product_attention run per segment of HF Qwen2-VL's cu_seqlens
// (VisionSdpaAttention) or flash_attn_varlen_func computes it. FlashAttention-2 style online
// softmax (Dao 2023): no n x n mask or score matrix is ever built.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace tessera::attn {

/// Mask and scale of masked_attention.
struct attention_options {
  /// Query i of a sequence with q_len queries and kv_len keys sees keys j <= kv_len - q_len + i
  /// (bottom-right aligned, as flash-attn); false = every key of its own sequence (block-diagonal).
  bool causal = false;
  /// Softmax scale of the scores; 0 = 1 / sqrt(head_dim), else used as is (vit-pytorch NaViT: 1).
  float scale = 0.0f;
};

namespace detail {

/// One sequence's work: queries [q_begin, q_end) attend to keys / values [kv_begin, kv_end)
/// (token indices into q and k / v). An empty key range gives zero outputs. The kernels work on
/// these ranges only, so a KV-cache caller can hand them non-contiguous key ranges directly.
struct seq_range {
  index_t q_begin = 0, q_end = 0, kv_begin = 0, kv_end = 0;
};

/// What every backend receives besides the operands.
struct attention_params {
  float scale = 1.0f;   ///< the resolved softmax scale (never 0 here)
  bool causal = false;
};

template <class Backend>
struct masked_attention_impl {  // specialized in detail/masked_attention_{ref,cpu}.hpp
  static_assert(always_false<Backend>,
                "attn::masked_attention has no implementation for this backend (check TESSERA_ENABLE_* and that "
                "tessera/attn/masked_attention.hpp was included through tessera.hpp)");
};

/// [lowest, highest] element addresses of a view (as integers); empty views give {1, 0}.
template <class T, int Rank, class S>
[[nodiscard]] std::array<std::uintptr_t, 2> address_span(tensor_view<T, Rank, S> const& v) noexcept {
  if (v.empty()) return {1, 0};
  index_t last = 0;
  for (int d = 0; d < Rank; ++d) last += (v.extent(d) - 1) * v.stride(d);
  auto const b = reinterpret_cast<std::uintptr_t>(v.data());
  return {b, b + static_cast<std::uintptr_t>(last) * sizeof(T) + (sizeof(T) - 1)};
}

/// True when the address ranges of two views intersect.
template <class T, class U, int RA, int RB, class S>
[[nodiscard]] bool spans_overlap(tensor_view<T, RA, S> const& a, tensor_view<U, RB, S> const& b) noexcept {
  auto const x = address_span(a), y = address_span(b);
  return x[0] <= x[1] && y[0] <= y[1] && x[0] <= y[1] && y[0] <= x[1];
}

/// True when no two elements of the view share an address (dimensions sorted by stride, each
/// stride must step over everything the smaller-stride dimensions span).
template <class T, int Rank, class S>
[[nodiscard]] bool elements_distinct(tensor_view<T, Rank, S> const& v) noexcept {
  if (v.empty()) return true;
  std::array<int, Rank> order{};
  for (int d = 0; d < Rank; ++d) order[static_cast<std::size_t>(d)] = d;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return v.stride(a) < v.stride(b); });
  index_t covered = 1;  // elements spanned by the dimensions seen so far
  for (int d : order) {
    if (v.extent(d) == 1) continue;
    if (v.stride(d) < covered) return false;
    covered = v.stride(d) * (v.extent(d) - 1) + covered;
  }
  return true;
}

/// Validated entry shared by both public overloads: builds the per-sequence ranges in scratch and
/// runs the backend.
template <backend::tag Backend>
void run_masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                          tensor_view<float const, 3, backend::space_t<Backend>> k,
                          tensor_view<float const, 3, backend::space_t<Backend>> v, seq_offsets const& q_seqs,
                          seq_offsets const& kv_seqs, tensor_view<float, 3, backend::space_t<Backend>> out,
                          exec_ctx<Backend>& ctx, attention_options const& opt,
                          tensor_view<float, 2, backend::space_t<Backend>> lse,
                          std::span<std::uint8_t const> masked_seqs) {
  index_t const n_q = q.extent(0), n_heads = q.extent(1), head_dim = q.extent(2);
  index_t const n_kv = k.extent(0), n_kv_heads = k.extent(1);
  TESSERA_CHECK(head_dim >= 1, "attn::masked_attention: head_dim must be >= 1, q is [", n_q, ", ", n_heads, ", ",
                head_dim, "]");
  TESSERA_CHECK(k.extent(2) == head_dim && v.extent(2) == head_dim, "attn::masked_attention: q, k and v must share ",
                "head_dim; got ", head_dim, ", ", k.extent(2), " and ", v.extent(2));
  TESSERA_CHECK(v.extent(0) == n_kv && v.extent(1) == n_kv_heads, "attn::masked_attention: k and v must have the ",
                "same shape; k is [", n_kv, ", ", n_kv_heads, ", ", head_dim, "], v is [", v.extent(0), ", ",
                v.extent(1), ", ", v.extent(2), "]");
  TESSERA_CHECK(n_kv_heads >= 1 && n_heads >= 1, "attn::masked_attention: need at least one query head and one ",
                "kv head, got n_heads ", n_heads, ", n_kv_heads ", n_kv_heads);
  TESSERA_CHECK(n_heads % n_kv_heads == 0, "attn::masked_attention: n_heads (", n_heads,
                ") must be a multiple of n_kv_heads (", n_kv_heads, ") for grouped-query attention");
  TESSERA_CHECK(q_seqs.n_seqs() == kv_seqs.n_seqs(), "attn::masked_attention: q_seqs has ", q_seqs.n_seqs(),
                " sequences, kv_seqs has ", kv_seqs.n_seqs());
  TESSERA_CHECK(q_seqs.n_tokens() == n_q, "attn::masked_attention: q has ", n_q, " tokens, q_seqs covers ",
                q_seqs.n_tokens());
  TESSERA_CHECK(kv_seqs.n_tokens() == n_kv, "attn::masked_attention: k and v have ", n_kv,
                " tokens, kv_seqs covers ", kv_seqs.n_tokens());
  TESSERA_CHECK(out.extents() == q.extents(), "attn::masked_attention: out must be [", n_q, ", ", n_heads, ", ",
                head_dim, "] like q, got [", out.extent(0), ", ", out.extent(1), ", ", out.extent(2), "]");
  TESSERA_CHECK(q.is_row_contiguous() && k.is_row_contiguous() && v.is_row_contiguous() && out.is_row_contiguous(),
                "attn::masked_attention: the last dimension (head_dim) of q, k, v and out must be contiguous "
                "(stride 1), got strides ", q.stride(2), ", ", k.stride(2), ", ", v.stride(2), ", ", out.stride(2));
  bool const has_lse = lse.extent(0) != 0 || lse.extent(1) != 0;
  TESSERA_CHECK(!has_lse || (lse.extent(0) == n_heads && lse.extent(1) == n_q), "attn::masked_attention: lse must ",
                "be [", n_heads, ", ", n_q, "] (n_heads, n_q_tokens) or empty, got [", lse.extent(0), ", ",
                lse.extent(1), "]");
  TESSERA_CHECK(masked_seqs.empty() || static_cast<index_t>(masked_seqs.size()) == q_seqs.n_seqs(),
                "attn::masked_attention: masked_seqs must be empty or have one entry per sequence (",
                q_seqs.n_seqs(), "), got ", masked_seqs.size());
  for (std::size_t s = 0; s < masked_seqs.size(); ++s)
    TESSERA_CHECK(masked_seqs[s] <= 1, "attn::masked_attention: masked_seqs entries must be 0 or 1, sequence ", s,
                  " has ", static_cast<int>(masked_seqs[s]));
  TESSERA_CHECK(std::isfinite(opt.scale), "attn::masked_attention: scale must be finite, got ", opt.scale);
  TESSERA_CHECK(elements_distinct(out), "attn::masked_attention: the elements of out overlap each other (strides ",
                out.stride(0), ", ", out.stride(1), ", ", out.stride(2), ")");
  TESSERA_CHECK(!spans_overlap(out, q) && !spans_overlap(out, k) && !spans_overlap(out, v),
                "attn::masked_attention: out overlaps q, k or v in memory; attention cannot run in place");
  if (has_lse) {
    TESSERA_CHECK(elements_distinct(lse), "attn::masked_attention: the elements of lse overlap each other (strides ",
                  lse.stride(0), ", ", lse.stride(1), ")");
    TESSERA_CHECK(!spans_overlap(lse, q) && !spans_overlap(lse, k) && !spans_overlap(lse, v) &&
                      !spans_overlap(lse, out),
                  "attn::masked_attention: lse overlaps q, k, v or out in memory");
  }
  if (n_q == 0) return;

  attention_params const params{opt.scale != 0.0f ? opt.scale : static_cast<float>(1.0 / std::sqrt(
                                                                    static_cast<double>(head_dim))),
                                opt.causal};
  auto const n_seqs = static_cast<std::size_t>(q_seqs.n_seqs());
  backend::scratch_arena::frame frame = ctx.scratch().open();
  seq_range* const ranges = frame.alloc<seq_range>(n_seqs);  // [n_seqs]
  for (std::size_t s = 0; s < n_seqs; ++s) {
    auto const i = static_cast<index_t>(s);
    bool const masked = !masked_seqs.empty() && masked_seqs[s] != 0;
    // A masked (padding) sequence keeps its queries and sees no key: zeros, lse = -inf.
    ranges[s] = {q_seqs.begin(i), q_seqs.end(i), kv_seqs.begin(i), masked ? kv_seqs.begin(i) : kv_seqs.end(i)};
  }
  detail::masked_attention_impl<Backend>::run(q, k, v, std::span<seq_range const>(ranges, n_seqs), out, lse,
                                              params, ctx);
}

}  // namespace detail

/// Multi-head attention over packed sequences with a flash-style online softmax. Sequence s:
/// queries [q_seqs.begin(s), q_seqs.end(s)) see keys / values [kv_seqs.begin(s), kv_seqs.end(s))
/// (with the causal rule of `opt`); out = softmax(scale * q k^T) v per head, computed in f32.
///   q:   [n_q_tokens, n_heads, head_dim] f32; k, v: [n_kv_tokens, n_kv_heads, head_dim] f32;
///   out: [n_q_tokens, n_heads, head_dim] f32. Token and head strides are free (e.g. views into a
///        fused qkv [n, 3 * n_heads * head_dim] buffer), the last dimension must be contiguous;
///        out must not overlap q, k, v or lse.
///   GQA: n_heads % n_kv_heads == 0; query head h uses kv head h / (n_heads / n_kv_heads).
///   q_seqs, kv_seqs: the same number of sequences, covering q and k / v (HF cu_seqlens).
///   A query row that sees no key (empty kv sequence, a sequence flagged in `masked_seqs`, or a
///   causal row before the first key) gets out = 0 and lse = -inf.
///   lse: optional (an empty view = none), [n_heads, n_q_tokens] f32, any strides: the natural-log
///        log-sum-exp of the scaled scores of each row (what flash-attn returns as softmax_lse).
///   masked_seqs: empty, or one byte per sequence, 1 = padding segment (its queries output zeros).
/// Errors (tessera::error): shape mismatches, GQA divisibility, sequence counts, strided last
/// dimension, overlapping outputs, a non-finite scale, masked_seqs entries other than 0 / 1.
/// q, k and v must be finite: the cpu kernel's max / exp2 do not propagate NaN (the reference does).
/// Workspace (cpu): O(threads x tile) from ctx.scratch(), never O(n^2): per thread up to 16 query
/// tiles of 32 rows (AVX-512; 16 with AVX2) with their transposed q and output (2 head_dim + 4
/// floats per row), one 96-key score tile and the packed K / V tile (about 400 KiB at head_dim 80),
/// plus 32 bytes per work item (< 1 MiB in all for 16k tokens x 16 heads).
/// Determinism: each (sequence, kv-head group, query tile) is computed by one thread in a fixed
/// order, whatever the thread count or packing, so results are bitwise identical for any thread
/// count and a packed batch equals each sequence run alone (cpu; the reference likewise).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<float const, 3, backend::space_t<Backend>> k,
                      tensor_view<float const, 3, backend::space_t<Backend>> v, seq_offsets const& q_seqs,
                      seq_offsets const& kv_seqs, tensor_view<float, 3, backend::space_t<Backend>> out,
                      exec_ctx<Backend>& ctx, attention_options const& opt = {},
                      tensor_view<float, 2, backend::space_t<Backend>> lse = {},
                      std::span<std::uint8_t const> masked_seqs = {}) {
  detail::run_masked_attention<Backend>(q, k, v, q_seqs, kv_seqs, out, ctx, opt, lse, masked_seqs);
}

/// Self-attention shorthand: q_seqs == kv_seqs == seqs (the ViT case: one sequence per image).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<float const, 3, backend::space_t<Backend>> k,
                      tensor_view<float const, 3, backend::space_t<Backend>> v, seq_offsets const& seqs,
                      tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                      attention_options const& opt = {}, tensor_view<float, 2, backend::space_t<Backend>> lse = {},
                      std::span<std::uint8_t const> masked_seqs = {}) {
  detail::run_masked_attention<Backend>(q, k, v, seqs, seqs, out, ctx, opt, lse, masked_seqs);
}

}  // namespace tessera::attn

#include <tessera/attn/detail/masked_attention_ref.hpp>
#include <tessera/attn/detail/masked_attention_cpu.hpp>
