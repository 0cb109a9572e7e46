// SPDX-License-Identifier: Apache-2.0
// pool::map_head and pool::navit_pool -- attention pooling with one learned probe per image over a
// packed token buffer (spec 6.2):
//   - map_head   = big_vision MAPHead = timm 1.0.12 AttentionPoolLatent(latent_len=1): biased q / kv
//                  projections, softmax(q k^T / sqrt(head_dim)) v, proj, then x + MLP(LayerNorm(x));
//   - navit_pool = vit-pytorch 1.26.11 NaViT's attn_pool: bias-free LayerNorm on the probe, to_q,
//                  to_kv on the (un-normed) tokens, per-head RMS qk-norm, scale 1, to_out, + probe.
// The projections run through nn::linear / nn::layer_norm / nn::gelu / nn::add; the per-(image,
// head) single-query softmax attention is this block's kernel (detail/attention_pool_*.hpp).
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/nn/activation.hpp>
#include <tessera/nn/add.hpp>
#include <tessera/nn/layer_norm.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/random_parameters.hpp>
#include <tessera/pool/detail/pool_common.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace tessera::pool {

/// Weights of map_head, PyTorch [out_features, in_features] layouts; d = d_model. Biases may be
/// empty views (extent 0 = no bias).
template <weight_type W, class Space = backend::host_space>
struct map_head_weights {
  using vec = tensor_view<W const, 1, Space>;
  using mat = tensor_view<W const, 2, Space>;
  vec probe;        ///< [d]: timm `latent` [1, 1, d] / big_vision MAPHead `probe`
  mat q_weight;     ///< [d, d]  timm `q`
  vec q_bias;       ///< [d] or empty
  mat kv_weight;    ///< [2d, d] timm `kv`: rows [0, d) give k, rows [d, 2d) give v (heads in order)
  vec kv_bias;      ///< [2d] or empty
  mat proj_weight;  ///< [d, d]  timm `proj`
  vec proj_bias;    ///< [d] or empty
  vec norm_weight;  ///< [d]     timm `norm` (LayerNorm)
  vec norm_bias;    ///< [d] or empty
  mat fc1_weight;   ///< [d_ff, d] timm `mlp.fc1`
  vec fc1_bias;     ///< [d_ff] or empty
  mat fc2_weight;   ///< [d, d_ff] timm `mlp.fc2`
  vec fc2_bias;     ///< [d] or empty
};

struct map_head_options {
  index_t n_heads = 0;                         ///< > 0, divides d_model
  float norm_eps = 1e-6f;                      ///< timm LayerNorm(eps=1e-6); Flax default 1e-6 too
  nn::gelu_approx gelu = nn::gelu_approx::erf; ///< erf: timm nn.GELU(); tanh: Flax nn.gelu (big_vision)
};

/// Random weights for map_head of width d with an MLP of d_ff, as timm's AttentionPoolLatent
/// initializes them: the probe with standard deviation d^-1/2 (uniform here, a truncated normal in
/// timm), q / kv / proj / fc1 / fc2 as nn.Linear with biases, the LayerNorm ones and zeros. The
/// tensors live in `p`, which must outlive the weights. For a head built in code (a new variant).
template <weight_type W>
[[nodiscard]] map_head_weights<W> random_map_head_weights(index_t d, index_t d_ff, nn::random_parameters<W>& p) {
  TESSERA_CHECK(d >= 1 && d_ff >= 1, "pool::random_map_head_weights: d (", d, ") and d_ff (", d_ff, ") must be >= 1");
  auto const probe = p.uniform({d}, std::sqrt(3.0f / static_cast<float>(d)));  // U(-a, a) has std a / sqrt(3)
  auto const q = p.linear(d, d), kv = p.linear(2 * d, d), proj = p.linear(d, d);
  auto const norm = p.norm(d, true);
  auto const fc1 = p.linear(d_ff, d), fc2 = p.linear(d, d_ff);
  return {probe,       q.weight,    *q.bias,      kv.weight,  *kv.bias,   proj.weight, *proj.bias,
          norm.weight, *norm.bias,  fc1.weight,   *fc1.bias,  fc2.weight, *fc2.bias};
}

/// Weights of navit_pool (vit-pytorch names under `attn_pool.`); d = d_model, inner = n_heads * head_dim.
template <weight_type W, class Space = backend::host_space>
struct navit_pool_weights {
  using vec = tensor_view<W const, 1, Space>;
  using mat = tensor_view<W const, 2, Space>;
  vec probe;       ///< [d]         `attn_pool_queries`
  vec norm_gamma;  ///< [d]         `attn_pool.norm.gamma` (its beta is a zero buffer: no bias)
  mat to_q;        ///< [inner, d]  `attn_pool.to_q.weight`
  mat to_kv;       ///< [2 inner, d] `attn_pool.to_kv.weight`: rows [0, inner) k, [inner, 2 inner) v
  mat q_gamma;     ///< [n_heads, head_dim] `attn_pool.q_norm.gamma` ([h, 1, head_dim] flattened)
  mat k_gamma;     ///< [n_heads, head_dim] `attn_pool.k_norm.gamma`
  mat to_out;      ///< [d, inner]  `attn_pool.to_out.0.weight`
};

struct navit_pool_options {
  index_t n_heads = 0;     ///< > 0, divides inner = to_q rows
  float norm_eps = 1e-5f;  ///< F.layer_norm's default, what vit-pytorch's LayerNorm uses
};

namespace detail {
template <class Backend>
struct pool_attend_impl {  // specialized in detail/attention_pool_ref.hpp, detail/attention_pool_cpu.hpp
  static_assert(always_false<Backend>,
                "pool::map_head / navit_pool have no implementation for this backend (check TESSERA_ENABLE_* and "
                "that tessera/pool/attention_pool.hpp was included through tessera.hpp)");
};

/// F.normalize's eps (`x / max(||x||, eps)`), used by vit-pytorch's RMSNorm.
inline constexpr float normalize_eps = 1e-12f;

/// The single-query attention both heads share: for every sequence s not masked and not empty,
/// and head h, out[s, h * hd:(h+1) * hd] = softmax_j(scale * q_h . k'_jh) v_jh over the tokens j of
/// s, with k' = k, or, when k_gamma is given, vit-pytorch's RMS k-norm
/// k' = k / max(||k||, 1e-12) * k_norm_scale * gamma_k[h]. Other rows are 0.
struct attend_args {
  float const* q = nullptr;        ///< [n_heads * head_dim], the (already normed) query
  float const* k_gamma = nullptr;  ///< [n_heads * head_dim] or nullptr (no k-norm)
  float k_norm_scale = 1.0f;       ///< sqrt(head_dim) as an f32 (RMSNorm.scale)
  float scale = 1.0f;              ///< score scale
};

template <class Space>
void check_pool_inputs(char const* block, tensor_view<float const, 2, Space> const& x, seq_offsets const& seqs,
                       std::span<std::uint8_t const> masked, tensor_view<float, 2, Space> const& out, index_t d) {
  TESSERA_CHECK(x.extent(0) == seqs.n_tokens(), block, ": x has ", x.extent(0), " rows, the offsets cover ",
                seqs.n_tokens());
  TESSERA_CHECK(x.extent(1) == d, block, ": x must have d_model = ", d, " columns (the probe's size), got ",
                x.extent(1));
  TESSERA_CHECK(out.extent(0) == seqs.n_seqs() && out.extent(1) == d, block, ": out must be [", seqs.n_seqs(), ", ",
                d, "], got [", out.extent(0), ", ", out.extent(1), "]");
  TESSERA_CHECK(x.is_row_contiguous() && out.is_row_contiguous(), block,
                ": the last dimension of x and out must be contiguous");
  check_masked_seqs(block, seqs, masked);
}

template <class W, class Space>
void check_matrix(char const* block, char const* name, tensor_view<W const, 2, Space> const& m, index_t rows,
                  index_t cols) {
  TESSERA_CHECK(m.extent(0) == rows && m.extent(1) == cols, block, ": ", name, " must be [", rows, ", ", cols,
                "], got [", m.extent(0), ", ", m.extent(1), "]");
  TESSERA_CHECK(m.is_row_contiguous(), block, ": the last dimension of ", name, " must be contiguous");
}

template <class W, class Space>
void check_vector(char const* block, char const* name, tensor_view<W const, 1, Space> const& v, index_t n,
                  bool optional) {
  TESSERA_CHECK(v.extent(0) == n || (optional && v.extent(0) == 0), block, ": ", name, " must have ", n,
                " elements", optional ? " (or none)" : "", ", got ", v.extent(0));
  TESSERA_CHECK(v.extent(0) <= 1 || v.stride(0) == 1, block, ": ", name, " must be contiguous");
}

/// A view of rows [.., col0, col0 + n_heads * head_dim) of a [rows, ld] buffer as [rows, n_heads, head_dim].
template <class T>
[[nodiscard]] tensor_view<T, 3> heads_view(T* base, index_t rows, index_t ld, index_t n_heads, index_t head_dim) {
  return {base, {rows, n_heads, head_dim}, {ld, head_dim, 1}};
}

/// Zeroes the rows of masked sequences (host memory).
inline void zero_masked_rows(tensor_view<float, 2> out, std::span<std::uint8_t const> masked) {
  for (index_t s = 0; s < out.extent(0); ++s)
    if (is_masked(masked, s))
      for (index_t j = 0; j < out.extent(1); ++j) out(s, j) = 0.0f;
}

/// vit-pytorch RMSNorm on one head vector, in torch's f32 order: (v / max(||v||, eps)) * scale * gamma.
template <class W>
void rms_qk_norm(float* v, W const* gamma, index_t head_dim, float scale) noexcept {
  double ss = 0.0;
  for (index_t i = 0; i < head_dim; ++i) ss += static_cast<double>(v[i]) * static_cast<double>(v[i]);
  float const norm = static_cast<float>(std::sqrt(ss));
  float const den = norm > normalize_eps ? norm : normalize_eps;
  for (index_t i = 0; i < head_dim; ++i) v[i] = v[i] / den * scale * to_float(gamma[i]);
}
}  // namespace detail

/// big_vision MAPHead / timm AttentionPoolLatent(latent_len=1, qk_norm=False, pool_type='token'),
/// one probe per packed sequence (image): for each sequence s with tokens X_s,
///   q = probe Wq^T + bq;  [K | V] = X_s Wkv^T + bkv;  a = concat_h softmax(q_h K_h^T / sqrt(hd)) V_h
///   y = a Wproj^T + bproj;  out[s] = y + fc2(gelu(fc1(LayerNorm(y))))
///   x:           [n_tokens, d] f32 packed tokens; rows may be strided, last dim contiguous.
///   seqs:        one sequence per image (padding runs allowed, see masked_seqs); empty sequences
///                are legal: their attention output is 0 (as attn::masked_attention), the rest of
///                the head applies as usual (out = proj bias + MLP of it).
///   w:           map_head_weights; d = probe size, d_ff = fc1 rows; n_heads divides d.
///   out:         [n_seqs, d] f32; rows may be strided, last dim contiguous; must not overlap x or w.
///   masked_seqs: empty, or one byte per sequence; 1 = padding run, its out row is 0.
/// Numerics: f32 activations; the projections follow nn::linear (bf16 weights use bf16 products,
/// nn::default_precision_v), the softmax is f32 on cpu, f64 in the reference.
/// Workspace: ctx.scratch(): (2 + 2 n_tokens + 3 n_seqs) * d + n_seqs * d_ff floats, plus the
/// nn blocks' own and threads * max sequence length floats for the scores.
/// Determinism: bitwise reproducible for a backend, shape and thread count.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void map_head(tensor_view<float const, 2, backend::space_t<Backend>> x, seq_offsets const& seqs,
              map_head_weights<W, backend::space_t<Backend>> const& w, map_head_options const& opt,
              tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
              std::span<std::uint8_t const> masked_seqs = {}) {
  static_assert(std::is_same_v<backend::space_t<Backend>, backend::host_space>,
                "pool::map_head: host backends only (reference, cpu)");
  char const* const block = "pool::map_head";
  index_t const d = w.probe.extent(0), d_ff = w.fc1_weight.extent(0);
  TESSERA_CHECK(d > 0 && opt.n_heads > 0 && d % opt.n_heads == 0, block, ": n_heads (", opt.n_heads,
                ") must be > 0 and divide d_model (", d, ")");
  TESSERA_CHECK(d_ff > 0, block, ": fc1_weight needs at least one row");
  TESSERA_CHECK(opt.norm_eps > 0.0f && std::isfinite(opt.norm_eps), block, ": norm_eps must be finite and > 0, got ",
                opt.norm_eps);
  detail::check_pool_inputs(block, x, seqs, masked_seqs, out, d);
  detail::check_vector(block, "probe", w.probe, d, false);
  detail::check_matrix(block, "q_weight", w.q_weight, d, d);
  detail::check_vector(block, "q_bias", w.q_bias, d, true);
  detail::check_matrix(block, "kv_weight", w.kv_weight, 2 * d, d);
  detail::check_vector(block, "kv_bias", w.kv_bias, 2 * d, true);
  detail::check_matrix(block, "proj_weight", w.proj_weight, d, d);
  detail::check_vector(block, "proj_bias", w.proj_bias, d, true);
  detail::check_vector(block, "norm_weight", w.norm_weight, d, false);
  detail::check_vector(block, "norm_bias", w.norm_bias, d, true);
  detail::check_matrix(block, "fc1_weight", w.fc1_weight, d_ff, d);
  detail::check_vector(block, "fc1_bias", w.fc1_bias, d_ff, true);
  detail::check_matrix(block, "fc2_weight", w.fc2_weight, d, d_ff);
  detail::check_vector(block, "fc2_bias", w.fc2_bias, d, true);
  index_t const n_seqs = seqs.n_seqs(), n_tokens = x.extent(0), hd = d / opt.n_heads;
  if (n_seqs == 0) return;

  auto frame = ctx.scratch().open();
  auto const alloc = [&](index_t rows, index_t cols) {
    return tensor_view<float, 2>(frame.template alloc<float>(static_cast<std::size_t>(rows * cols)), {rows, cols});
  };
  tensor_view<float, 2> const probe = alloc(1, d), q = alloc(1, d);  // [1, d]
  tensor_view<float, 2> const kv = alloc(n_tokens, 2 * d);           // [n_tokens, 2d]
  tensor_view<float, 2> const attn = alloc(n_seqs, d);               // [n_seqs, d]
  tensor_view<float, 2> const ln = alloc(n_seqs, d);                 // [n_seqs, d]
  tensor_view<float, 2> const hidden = alloc(n_seqs, d_ff);          // [n_seqs, d_ff]
  tensor_view<float, 2> const mlp = alloc(n_seqs, d);                // [n_seqs, d]
  for (index_t j = 0; j < d; ++j) probe(0, j) = to_float(w.probe(j));

  nn::linear<Backend>(probe, w.q_weight, w.q_bias, q, ctx);
  if (n_tokens > 0) nn::linear<Backend>(x, w.kv_weight, w.kv_bias, kv, ctx);
  detail::attend_args args;
  args.q = q.data();
  args.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  detail::pool_attend_impl<Backend>::run(args, detail::heads_view<float const>(kv.data(), n_tokens, 2 * d, opt.n_heads, hd),
                                         detail::heads_view<float const>(kv.data() + d, n_tokens, 2 * d, opt.n_heads, hd),
                                         seqs, masked_seqs, attn, ctx);
  nn::linear<Backend>(attn, w.proj_weight, w.proj_bias, out, ctx);
  nn::layer_norm<Backend>(out, w.norm_weight, w.norm_bias, opt.norm_eps, ln, ctx);
  nn::linear<Backend>(ln, w.fc1_weight, w.fc1_bias, hidden, ctx);
  nn::gelu<Backend>(hidden, hidden, ctx, opt.gelu);
  nn::linear<Backend>(hidden, w.fc2_weight, w.fc2_bias, mlp, ctx);
  nn::add<Backend>(out, mlp, out, ctx);
  detail::zero_masked_rows(out, masked_seqs);
}

/// vit-pytorch 1.26.11 NaViT attention pooling (`attn_pool(queries, context=x, attn_mask) +
/// queries`), one probe per packed sequence (image): with hd = head_dim, inner = n_heads * hd,
///   q = LayerNorm(probe; gamma, no bias, eps) Wq^T;  [K | V] = X_s Wkv^T  (tokens not normed)
///   q_h = q_h / max(||q_h||, 1e-12) * sqrt(hd) * q_gamma[h];  K_jh likewise with k_gamma
///   a = concat_h softmax(q_h K_h^T) V_h  (scale 1);  out[s] = a Wout^T + probe
///   x, seqs, out, masked_seqs: as map_head (an empty, unmasked sequence gives out = probe).
///   w: navit_pool_weights; d = probe size, inner = to_q rows, head_dim = inner / n_heads.
/// Numerics and determinism as map_head. Workspace: ctx.scratch(): (2 + 2 n_tokens + n_seqs) * inner
/// + 2 d floats, the nn blocks' own, and the score rows.
template <backend::tag Backend = TESSERA_DEFAULT_BACKEND, weight_type W>
void navit_pool(tensor_view<float const, 2, backend::space_t<Backend>> x, seq_offsets const& seqs,
                navit_pool_weights<W, backend::space_t<Backend>> const& w, navit_pool_options const& opt,
                tensor_view<float, 2, backend::space_t<Backend>> out, exec_ctx<Backend>& ctx,
                std::span<std::uint8_t const> masked_seqs = {}) {
  static_assert(std::is_same_v<backend::space_t<Backend>, backend::host_space>,
                "pool::navit_pool: host backends only (reference, cpu)");
  char const* const block = "pool::navit_pool";
  index_t const d = w.probe.extent(0), inner = w.to_q.extent(0);
  TESSERA_CHECK(d > 0 && inner > 0 && opt.n_heads > 0 && inner % opt.n_heads == 0, block, ": n_heads (", opt.n_heads,
                ") must be > 0 and divide inner = to_q rows (", inner, "); d_model is ", d);
  TESSERA_CHECK(opt.norm_eps > 0.0f && std::isfinite(opt.norm_eps), block, ": norm_eps must be finite and > 0, got ",
                opt.norm_eps);
  index_t const hd = inner / opt.n_heads;
  detail::check_pool_inputs(block, x, seqs, masked_seqs, out, d);
  detail::check_vector(block, "probe", w.probe, d, false);
  detail::check_vector(block, "norm_gamma", w.norm_gamma, d, false);
  detail::check_matrix(block, "to_q", w.to_q, inner, d);
  detail::check_matrix(block, "to_kv", w.to_kv, 2 * inner, d);
  detail::check_matrix(block, "q_gamma", w.q_gamma, opt.n_heads, hd);
  detail::check_matrix(block, "k_gamma", w.k_gamma, opt.n_heads, hd);
  TESSERA_CHECK(w.q_gamma.is_contiguous() && w.k_gamma.is_contiguous(), block, ": q_gamma and k_gamma must be contiguous");
  detail::check_matrix(block, "to_out", w.to_out, d, inner);
  index_t const n_seqs = seqs.n_seqs(), n_tokens = x.extent(0);
  if (n_seqs == 0) return;

  auto frame = ctx.scratch().open();
  auto const alloc = [&](index_t rows, index_t cols) {
    return tensor_view<float, 2>(frame.template alloc<float>(static_cast<std::size_t>(rows * cols)), {rows, cols});
  };
  tensor_view<float, 2> const probe = alloc(1, d), q_in = alloc(1, d);  // [1, d]
  tensor_view<float, 2> const q = alloc(1, inner);                      // [1, inner]
  tensor_view<float, 2> const k_gamma = alloc(1, inner);                // [1, inner] as f32
  tensor_view<float, 2> const kv = alloc(n_tokens, 2 * inner);          // [n_tokens, 2 inner]
  tensor_view<float, 2> const attn = alloc(n_seqs, inner);              // [n_seqs, inner]
  for (index_t j = 0; j < d; ++j) probe(0, j) = to_float(w.probe(j));
  for (index_t i = 0; i < inner; ++i) k_gamma(0, i) = to_float(w.k_gamma.data()[i]);

  nn::layer_norm<Backend>(probe, w.norm_gamma, tensor_view<W const, 1>(nullptr, {0}), opt.norm_eps, q_in, ctx);
  nn::linear<Backend>(q_in, w.to_q, q, ctx);
  // RMSNorm.scale = dim_head ** 0.5, a Python float that multiplies an f32 tensor as an f32.
  auto const norm_scale = static_cast<float>(std::sqrt(static_cast<double>(hd)));
  for (index_t h = 0; h < opt.n_heads; ++h) detail::rms_qk_norm(q.data() + h * hd, w.q_gamma.row(h), hd, norm_scale);
  if (n_tokens > 0) nn::linear<Backend>(x, w.to_kv, kv, ctx);
  detail::attend_args args;
  args.q = q.data();
  args.k_gamma = k_gamma.data();
  args.k_norm_scale = norm_scale;
  args.scale = 1.0f;
  detail::pool_attend_impl<Backend>::run(
      args, detail::heads_view<float const>(kv.data(), n_tokens, 2 * inner, opt.n_heads, hd),
      detail::heads_view<float const>(kv.data() + inner, n_tokens, 2 * inner, opt.n_heads, hd), seqs, masked_seqs, attn,
      ctx);
  nn::linear<Backend>(attn, w.to_out, out, ctx);
  nn::add<Backend>(out, tensor_view<float const, 2>(probe.data(), {n_seqs, d}, {0, 1}), out, ctx);
  detail::zero_masked_rows(out, masked_seqs);
}

}  // namespace tessera::pool

#include <tessera/pool/detail/attention_pool_ref.hpp>
#include <tessera/pool/detail/attention_pool_cpu.hpp>
