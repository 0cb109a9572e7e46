// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention -- multi-head scaled-dot-product attention over packed variable-length
// sequences (block-diagonal mask; optional bottom-right causal mask; grouped-query heads), as
// torch.nn.functional.scaled_dot_product_attention run per segment of HF Qwen2-VL's cu_seqlens
// (VisionSdpaAttention) or flash_attn_varlen_func computes it. FlashAttention-2 style online
// softmax (Dao 2023): no n x n mask or score matrix is ever built.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
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

/// One sequence's work: queries [q_begin, q_end) attend to keys / values [kv_begin, kv_end)
/// (token indices into q and k / v). An empty key range gives zero outputs. The kernels work on
/// these ranges only, so a KV-cache caller hands them non-contiguous key ranges directly (each
/// sequence's slot of a preallocated cache).
struct seq_range {
  index_t q_begin = 0, q_end = 0, kv_begin = 0, kv_end = 0;
};

/// Element types k and v may have: f32, or bf16 (a bf16 KV cache; widened exactly to f32 as the
/// kernels read them, every product and sum stays f32).
template <class T>
concept kv_element = std::is_same_v<std::remove_cv_t<T>, float> || std::is_same_v<std::remove_cv_t<T>, bf16>;

namespace detail {

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

/// Shape, stride, aliasing and scale checks shared by every public overload.
template <class Space, class KV>
void check_attention_operands(tensor_view<float const, 3, Space> const& q, tensor_view<KV const, 3, Space> const& k,
                              tensor_view<KV const, 3, Space> const& v, tensor_view<float, 3, Space> const& out,
                              attention_options const& opt, tensor_view<float, 2, Space> const& lse) {
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
  TESSERA_CHECK(out.extents() == q.extents(), "attn::masked_attention: out must be [", n_q, ", ", n_heads, ", ",
                head_dim, "] like q, got [", out.extent(0), ", ", out.extent(1), ", ", out.extent(2), "]");
  TESSERA_CHECK(q.is_row_contiguous() && k.is_row_contiguous() && v.is_row_contiguous() && out.is_row_contiguous(),
                "attn::masked_attention: the last dimension (head_dim) of q, k, v and out must be contiguous "
                "(stride 1), got strides ", q.stride(2), ", ", k.stride(2), ", ", v.stride(2), ", ", out.stride(2));
  bool const has_lse = lse.extent(0) != 0 || lse.extent(1) != 0;
  TESSERA_CHECK(!has_lse || (lse.extent(0) == n_heads && lse.extent(1) == n_q), "attn::masked_attention: lse must ",
                "be [", n_heads, ", ", n_q, "] (n_heads, n_q_tokens) or empty, got [", lse.extent(0), ", ",
                lse.extent(1), "]");
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
}

/// The parameters the kernels receive: the resolved scale (never 0) and the causal flag.
[[nodiscard]] inline attention_params resolve_params(attention_options const& opt, index_t head_dim) noexcept {
  return {opt.scale != 0.0f ? opt.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))),
          opt.causal};
}

/// The per-sequence ranges of (q_seqs, kv_seqs): sequence s's queries see its own keys, or none
/// when masked_seqs flags it as padding (zeros, lse = -inf). Sizes checked by the caller.
inline void fill_ranges(seq_offsets const& q_seqs, seq_offsets const& kv_seqs, std::span<std::uint8_t const> masked_seqs,
                        std::span<seq_range> out) noexcept {
  for (std::size_t s = 0; s < out.size(); ++s) {
    auto const i = static_cast<index_t>(s);
    bool const masked = !masked_seqs.empty() && masked_seqs[s] != 0;
    out[s] = {q_seqs.begin(i), q_seqs.end(i), kv_seqs.begin(i), masked ? kv_seqs.begin(i) : kv_seqs.end(i)};
  }
}

/// Validated entry of the seq_offsets overloads: builds the per-sequence ranges in scratch and
/// runs the backend.
template <backend::tag Backend, class KV>
void run_masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                          tensor_view<KV const, 3, backend::space_t<Backend>> k,
                          tensor_view<KV const, 3, backend::space_t<Backend>> v, seq_offsets const& q_seqs,
                          seq_offsets const& kv_seqs, tensor_view<float, 3, backend::space_t<Backend>> out,
                          exec_ctx<Backend>& ctx, attention_options const& opt,
                          tensor_view<float, 2, backend::space_t<Backend>> lse,
                          std::span<std::uint8_t const> masked_seqs) {
  check_attention_operands(q, k, v, out, opt, lse);
  index_t const n_q = q.extent(0), n_kv = k.extent(0);
  TESSERA_CHECK(q_seqs.n_seqs() == kv_seqs.n_seqs(), "attn::masked_attention: q_seqs has ", q_seqs.n_seqs(),
                " sequences, kv_seqs has ", kv_seqs.n_seqs());
  TESSERA_CHECK(q_seqs.n_tokens() == n_q, "attn::masked_attention: q has ", n_q, " tokens, q_seqs covers ",
                q_seqs.n_tokens());
  TESSERA_CHECK(kv_seqs.n_tokens() == n_kv, "attn::masked_attention: k and v have ", n_kv,
                " tokens, kv_seqs covers ", kv_seqs.n_tokens());
  TESSERA_CHECK(masked_seqs.empty() || static_cast<index_t>(masked_seqs.size()) == q_seqs.n_seqs(),
                "attn::masked_attention: masked_seqs must be empty or have one entry per sequence (",
                q_seqs.n_seqs(), "), got ", masked_seqs.size());
  for (std::size_t s = 0; s < masked_seqs.size(); ++s)
    TESSERA_CHECK(masked_seqs[s] <= 1, "attn::masked_attention: masked_seqs entries must be 0 or 1, sequence ", s,
                  " has ", static_cast<int>(masked_seqs[s]));
  if (n_q == 0) return;

  auto const n_seqs = static_cast<std::size_t>(q_seqs.n_seqs());
  auto frame = ctx.scratch().open();
  std::span<seq_range> const ranges(frame.template alloc<seq_range>(n_seqs), n_seqs);  // [n_seqs]
  fill_ranges(q_seqs, kv_seqs, masked_seqs, ranges);
  detail::masked_attention_impl<Backend>::run(q, k, v, std::span<seq_range const>(ranges), out, lse,
                                              resolve_params(opt, q.extent(2)), ctx);
}

/// Validated entry of the explicit-range overloads.
template <backend::tag Backend, class KV>
void run_ranged_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                          tensor_view<KV const, 3, backend::space_t<Backend>> k,
                          tensor_view<KV const, 3, backend::space_t<Backend>> v, std::span<seq_range const> ranges,
                          tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                          attention_options const& opt, tensor_view<float, 2, backend::space_t<Backend>> lse) {
  check_attention_operands(q, k, v, out, opt, lse);
  index_t const n_q = q.extent(0), n_kv = k.extent(0);
  for (std::size_t s = 0; s < ranges.size(); ++s) {
    seq_range const& r = ranges[s];
    TESSERA_CHECK(0 <= r.q_begin && r.q_begin <= r.q_end && r.q_end <= n_q, "attn::masked_attention: range ", s,
                  " has queries [", r.q_begin, ", ", r.q_end, "), outside q's [0, ", n_q, ")");
    TESSERA_CHECK(0 <= r.kv_begin && r.kv_begin <= r.kv_end && r.kv_end <= n_kv, "attn::masked_attention: range ",
                  s, " has keys [", r.kv_begin, ", ", r.kv_end, "), outside k's [0, ", n_kv, ")");
  }
  if (ranges.empty() || n_q == 0) return;
  // Each output row is written by one range: the query ranges must not overlap.
  backend::scratch_arena::frame frame = ctx.scratch().open();
  auto* const order = frame.alloc<seq_range>(ranges.size());  // [n_ranges] sorted by q_begin
  std::copy(ranges.begin(), ranges.end(), order);
  std::sort(order, order + ranges.size(), [](seq_range const& a, seq_range const& b) { return a.q_begin < b.q_begin; });
  index_t covered = 0;
  for (std::size_t s = 0; s < ranges.size(); ++s) {
    if (order[s].q_begin == order[s].q_end) continue;
    TESSERA_CHECK(order[s].q_begin >= covered, "attn::masked_attention: query ranges overlap at token ",
                  order[s].q_begin, " (each query row belongs to at most one range)");
    covered = order[s].q_end;
  }
  detail::masked_attention_impl<Backend>::run(q, k, v, ranges, out, lse, resolve_params(opt, q.extent(2)), ctx);
}

}  // namespace detail

/// Attention ranges checked once for a batch: every range inside [0, n_q) x [0, n_kv), query
/// ranges in increasing order and disjoint. The plan half of a plan / run split: a decoder builds
/// one per pass and every layer's masked_attention(..., plan, ...) runs with no check of the
/// ranges and no allocation. Holds a view of the ranges, which must outlive it.
class range_plan {
 public:
  range_plan() = default;
  /// Throws tessera::error naming the first range out of bounds, out of order or overlapping.
  range_plan(std::span<seq_range const> ranges, index_t n_q, index_t n_kv) : ranges_(ranges), n_q_(n_q), n_kv_(n_kv) {
    index_t covered = 0;
    for (std::size_t s = 0; s < ranges.size(); ++s) {
      seq_range const& r = ranges[s];
      TESSERA_CHECK(0 <= r.q_begin && r.q_begin <= r.q_end && r.q_end <= n_q, "attn::range_plan: range ", s,
                    " has queries [", r.q_begin, ", ", r.q_end, "), outside q's [0, ", n_q, ")");
      TESSERA_CHECK(0 <= r.kv_begin && r.kv_begin <= r.kv_end && r.kv_end <= n_kv, "attn::range_plan: range ", s,
                    " has keys [", r.kv_begin, ", ", r.kv_end, "), outside k's [0, ", n_kv, ")");
      TESSERA_CHECK(r.q_begin >= covered || r.q_begin == r.q_end, "attn::range_plan: range ", s, " starts at query ",
                    r.q_begin, ", before the end of the ranges before it (", covered,
                    "): query ranges must be in order and disjoint");
      if (r.q_end > r.q_begin) covered = r.q_end;
    }
  }
  [[nodiscard]] std::span<seq_range const> ranges() const noexcept { return ranges_; }
  [[nodiscard]] index_t n_q() const noexcept { return n_q_; }
  [[nodiscard]] index_t n_kv() const noexcept { return n_kv_; }

 private:
  std::span<seq_range const> ranges_;
  index_t n_q_ = 0, n_kv_ = 0;
};

/// The ranges of packed sequences (the plan half for the seq_offsets form): sequence s's queries
/// [q_seqs.begin(s), q_seqs.end(s)) see keys [kv_seqs.begin(s), kv_seqs.end(s)), or none when
/// masked_seqs (empty, or one byte per sequence) flags it as padding. Writes n_seqs ranges into
/// `out` (storage the caller owns, e.g. from its scratch arena) and returns their range_plan, built
/// once per batch and read by every layer's masked_attention(..., plan, ...). Throws
/// tessera::error for mismatched sequence counts or sizes.
[[nodiscard]] inline range_plan plan_ranges(seq_offsets const& q_seqs, seq_offsets const& kv_seqs,
                                            std::span<std::uint8_t const> masked_seqs, std::span<seq_range> out) {
  TESSERA_CHECK(q_seqs.n_seqs() == kv_seqs.n_seqs() && static_cast<index_t>(out.size()) == q_seqs.n_seqs(),
                "attn::plan_ranges: q_seqs has ", q_seqs.n_seqs(), " sequences, kv_seqs ", kv_seqs.n_seqs(),
                ", out room for ", out.size());
  TESSERA_CHECK(masked_seqs.empty() || static_cast<index_t>(masked_seqs.size()) == q_seqs.n_seqs(),
                "attn::plan_ranges: masked_seqs must be empty or have one entry per sequence (", q_seqs.n_seqs(),
                "), got ", masked_seqs.size());
  detail::fill_ranges(q_seqs, kv_seqs, masked_seqs, out);
  return range_plan(out, q_seqs.n_tokens(), kv_seqs.n_tokens());
}

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
  detail::run_masked_attention<Backend, float>(q, k, v, q_seqs, kv_seqs, out, ctx, opt, lse, masked_seqs);
}

/// Self-attention shorthand: q_seqs == kv_seqs == seqs (the ViT case: one sequence per image).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<float const, 3, backend::space_t<Backend>> k,
                      tensor_view<float const, 3, backend::space_t<Backend>> v, seq_offsets const& seqs,
                      tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                      attention_options const& opt = {}, tensor_view<float, 2, backend::space_t<Backend>> lse = {},
                      std::span<std::uint8_t const> masked_seqs = {}) {
  detail::run_masked_attention<Backend, float>(q, k, v, seqs, seqs, out, ctx, opt, lse, masked_seqs);
}

/// Attention over explicit per-sequence ranges, the form a KV cache uses: range s lets queries
/// [q_begin, q_end) see keys / values [kv_begin, kv_end) (with the causal rule of `opt`,
/// bottom-right aligned: the last query sees every key of its range). Key ranges may lie anywhere
/// in k / v, overlap, or leave gaps (e.g. each sequence's slot of a preallocated cache, filled to
/// its current length); query ranges must not overlap. Query rows outside every range are not
/// written.
///   q:   [n_q_tokens, n_heads, head_dim] f32;  out: like q, f32;
///   k, v: [n_kv_tokens, n_kv_heads, head_dim], f32 or bf16 (a bf16 cache: widened exactly, all
///        arithmetic f32); token and head strides free, last dimension contiguous.
///   lse: optional [n_heads, n_q_tokens] (as above).
/// Errors (tessera::error): everything the seq_offsets overloads check, plus ranges outside q or k
/// and overlapping query ranges. Workspace and determinism as above.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<float const, 3, backend::space_t<Backend>> k,
                      tensor_view<float const, 3, backend::space_t<Backend>> v, std::span<seq_range const> ranges,
                      tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                      attention_options const& opt = {}, tensor_view<float, 2, backend::space_t<Backend>> lse = {}) {
  detail::run_ranged_attention<Backend, float>(q, k, v, ranges, out, ctx, opt, lse);
}

/// The same with a bf16 K / V (a bf16 KV cache).
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<bf16 const, 3, backend::space_t<Backend>> k,
                      tensor_view<bf16 const, 3, backend::space_t<Backend>> v, std::span<seq_range const> ranges,
                      tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                      attention_options const& opt = {}, tensor_view<float, 2, backend::space_t<Backend>> lse = {}) {
  detail::run_ranged_attention<Backend, bf16>(q, k, v, ranges, out, ctx, opt, lse);
}

/// The run half of the plan / run split: attention over the ranges of a range_plan (built once
/// per batch), with f32 or bf16 k / v, as the explicit-range overloads compute it. Checks only the
/// operands' shapes against the plan; allocates nothing for the ranges.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, kv_element KV>
void masked_attention(tensor_view<float const, 3, backend::space_t<Backend>> q,
                      tensor_view<KV const, 3, backend::space_t<Backend>> k,
                      tensor_view<KV const, 3, backend::space_t<Backend>> v, range_plan const& plan,
                      tensor_view<float, 3, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                      attention_options const& opt = {}, tensor_view<float, 2, backend::space_t<Backend>> lse = {}) {
  detail::check_attention_operands(q, k, v, out, opt, lse);
  TESSERA_CHECK(q.extent(0) == plan.n_q() && k.extent(0) == plan.n_kv(), "attn::masked_attention: the plan is for ",
                plan.n_q(), " queries and ", plan.n_kv(), " keys, got ", q.extent(0), " and ", k.extent(0));
  if (plan.ranges().empty() || q.extent(0) == 0) return;
  detail::masked_attention_impl<Backend>::run(q, k, v, plan.ranges(), out, lse,
                                              detail::resolve_params(opt, q.extent(2)), ctx);
}

}  // namespace tessera::attn

#include <tessera/attn/detail/masked_attention_ref.hpp>
#include <tessera/attn/detail/masked_attention_cpu.hpp>
