// SPDX-License-Identifier: Apache-2.0
// lm::qwen2_decoder -- the Qwen2 / Qwen2.5 decoder (transformers' Qwen2ForCausalLM, and
// POINTS1.5's CustomLlama, which is the same network under other names) built from tessera's
// blocks: token embedding, n_layers x { RMSNorm, attention (q / k / v with bias, o without; GQA;
// 1-D RoPE; causal over the KV cache), RMSNorm, SwiGLU MLP }, final RMSNorm, LM head (tied or
// untied). Several sequences run in one pass: their new tokens are packed (seq_offsets), each
// reads and extends its own slot of a lm::kv_cache. See docs/decoder.md.
#pragma once

#include <tessera/attn/cache_pass.hpp>
#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/lm/decoder_weights.hpp>
#include <tessera/nn/add.hpp>
#include <tessera/nn/embedding.hpp>
#include <tessera/nn/gather.hpp>
#include <tessera/nn/norm.hpp>
#include <tessera/lm/quantize.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/swiglu.hpp>
#include <tessera/posemb/rope_1d.hpp>
#include <tessera/lm/kv_cache.hpp>
#include <tessera/text/token_id.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace tessera::lm {

using text::token_id;

/// Called with (stage, hidden states [n_tokens, d_model]) during decoder::forward: stage -1 = the
/// embeddings, 0 .. n_layers - 1 = the output of layer i (HF: the forward output of
/// model.layers[i]), n_layers = after the final norm. For golden tests and for taking a model
/// apart; empty = no calls.
using decoder_observer = std::function<void(index_t stage, tensor_view<float const, 2> hidden)>;

/// Which positions get logits in qwen2_decoder::run.
enum class logits_rows {
  last,  ///< the last new token of each sequence: [n_seqs, vocab] (generation)
  all,   ///< every new token: [n_tokens, vocab] (scoring a prompt, golden tests)
};

/// Numerics of a decoder.
struct decoder_options {
  /// Products of the linear layers (nn::product_precision): nothing = the weight type's default
  /// (bf16 weights: bf16 products, as a bf16 PyTorch model; f32 / f16 weights: f32 products).
  /// product_precision::f32 with bf16 weights computes the f32 model of the same weights exactly.
  std::optional<nn::product_precision> precision;
  /// Quantize the linear layers (and optionally the LM head) on construction: 8 or 4 bits with a
  /// scale per group (lm::quantize_options; default dense: the weights as given). Weights a
  /// checkpoint stores quantized are used as stored.
  quantize_options quantize{};
};

/// The Qwen2 decoder over weights of type T (f32, bf16 or f16; views, typically into the mmapped
/// checkpoint). Activations, norms, RoPE, softmax and accumulation are f32 whatever T is.
/// Immutable after construction: one decoder may serve several threads, each with its own
/// exec_ctx and kv_cache.
template <backend::tag Backend, weight_type T>
class qwen2_decoder {
 public:
  using weight_t = T;

  /// Checks the config (what this decoder supports) and every weight's shape against it; throws
  /// tessera::error naming the tensor or the field. `keep_alive` holds whatever owns the
  /// weights' memory (e.g. the checkpoint), so the decoder may outlive its creator's handles.
  qwen2_decoder(decoder_config const& config, decoder_weights<T> weights, decoder_options const& options = {},
                std::shared_ptr<void const> keep_alive = {})
      : config_(config), weights_(quantize_decoder(std::move(weights), options.quantize)),
        keep_alive_(std::move(keep_alive)),
        precision_(options.precision.value_or(nn::default_precision_v<T>)) {
    decoder_config const& c = config_;
    TESSERA_CHECK(c.n_layers >= 1 && c.d_model >= 1 && c.n_heads >= 1 && c.n_kv_heads >= 1 && c.head_dim >= 1 &&
                      c.d_ff >= 1 && c.vocab_size >= 1,
                  "lm::qwen2_decoder: config sizes must be positive (layers ", c.n_layers, ", d_model ", c.d_model,
                  ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim, ", d_ff ", c.d_ff, ", vocab ",
                  c.vocab_size, ")");
    TESSERA_CHECK(c.n_heads % c.n_kv_heads == 0, "lm::qwen2_decoder: n_heads ", c.n_heads,
                  " is not a multiple of n_kv_heads ", c.n_kv_heads);
    TESSERA_CHECK(c.activation == nn::activation_kind::silu, "lm::qwen2_decoder: the MLP gate activation must be ",
                  "silu (SwiGLU), the config says ", nn::name_of(c.activation));
    TESSERA_CHECK(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0 && c.rotary_dim <= c.head_dim,
                  "lm::qwen2_decoder: rotary_dim ", c.rotary_dim, " must be even and in [2, head_dim = ", c.head_dim,
                  "]");
    TESSERA_CHECK(c.rope_position_scale == 1.0, "lm::qwen2_decoder: rotary position scaling (CustomLlama ",
                  "rotary_compress) ", c.rope_position_scale, " is not supported; only 1");
    TESSERA_CHECK(c.rope_theta > 0 && c.norm_eps > 0, "lm::qwen2_decoder: rope_theta (", c.rope_theta,
                  ") and the norm eps (", c.norm_eps, ") must be positive");
    TESSERA_CHECK((precision_ == nn::product_precision::f32 || std::is_same_v<std::remove_cv_t<T>, bf16>),
                  "lm::qwen2_decoder: bf16 products need bf16 weights");
    check_weights();
  }

  [[nodiscard]] decoder_config const& config() const noexcept { return config_; }
  [[nodiscard]] decoder_weights<T> const& weights() const noexcept { return weights_; }
  [[nodiscard]] nn::product_precision precision() const noexcept { return precision_; }
  [[nodiscard]] index_t d_model() const noexcept { return config_.d_model; }
  [[nodiscard]] index_t vocab_size() const noexcept { return config_.vocab_size; }

  /// The cache type that follows the weights (default_kv_t: an f32 model keeps an f32 cache, a
  /// bf16 model a bf16 one), in this backend's memory.
  using cache_type = kv_cache<default_kv_t<T>, backend::space_t<Backend>>;
  /// A cache of cache_type for n_slots sequences of max_context positions.
  [[nodiscard]] cache_type make_cache(index_t n_slots, index_t max_context) const {
    return cache_type(cache_shape(n_slots, max_context));
  }

  /// The cache shape this decoder needs for n_slots sequences of max_context positions.
  [[nodiscard]] kv_cache_shape cache_shape(index_t n_slots, index_t max_context) const noexcept {
    return {config_.n_layers, n_slots, max_context, config_.n_kv_heads, config_.head_dim};
  }

  /// Weight bytes one decode step streams: every layer's matrices as stored (quantized ones with
  /// their scales), plus the LM head (the embedding rows read are negligible). The numerator of
  /// the decode roofline.
  [[nodiscard]] std::size_t decode_weight_bytes() const noexcept {
    decoder_config const& c = config_;
    auto bytes = [](quant::qmatrix const& q, index_t rows, index_t cols) {
      return q.empty() ? static_cast<double>(rows) * static_cast<double>(cols) * sizeof(T) : q.bytes();
    };
    index_t const d = c.d_model;
    double total = bytes(weights_.lm_head_quantized, c.vocab_size, d);
    for (decoder_layer_weights<T> const& w : weights_.layers) {
      total += bytes(w.q.quantized, c.q_dim(), d) + bytes(w.o.quantized, d, c.q_dim()) + bytes(w.down.quantized, d, c.d_ff);
      total += w.kv_fused ? bytes(w.kv_fused->quantized, 2 * c.kv_dim(), d)
                          : bytes(w.k.quantized, c.kv_dim(), d) + bytes(w.v.quantized, c.kv_dim(), d);
      total += w.up_gate_fused ? bytes(w.up_gate_fused->quantized, 2 * c.d_ff, d)
                               : bytes(w.gate.quantized, c.d_ff, d) + bytes(w.up.quantized, c.d_ff, d);
    }
    return static_cast<std::size_t>(total);
  }

  /// The embedding rows of `ids` as f32 into x [n_tokens, d_model] (rows may be strided, last
  /// dimension contiguous): nn::embedding on this backend. Throws tessera::error for an id outside
  /// [0, vocab_size).
  void embed(std::span<token_id const> ids, tensor_view<float, 2> x, exec_ctx<Backend>& ctx) const {
    index_t const n = static_cast<index_t>(ids.size()), d = config_.d_model;
    TESSERA_CHECK(x.extent(0) == n && x.extent(1) == d, "lm::qwen2_decoder::embed: x must be [", n, ", ", d,
                  "], got [", x.extent(0), ", ", x.extent(1), "]");
    nn::embedding<Backend>(weights_.embed, ids, x, ctx);
  }

  /// Runs the new tokens of n_seqs sequences through every layer and the final norm, in place.
  ///   x:     [n_tokens, d_model] f32: the input embeddings (embed(), or any rows a caller splices
  ///          in, e.g. a VLM's image tokens); on return the final-norm hidden states. Rows may be
  ///          strided, last dimension contiguous.
  ///   seqs:  the packing of the new tokens: sequence s owns rows [seqs.begin(s), seqs.end(s)).
  ///   slots: one distinct cache slot per sequence. Sequence s continues the sequence held in
  ///          slot slots[s]: its new tokens take positions length(slot), length(slot) + 1, ...
  ///          and attend causally to everything before them in the slot (an empty slot = a new
  ///          prompt). On return the slot's length has grown by the sequence's token count.
  ///   cache: with n_layers layers, n_kv_heads and head_dim of this decoder.
  /// Throws tessera::error (before any change to x or the cache) for mismatched shapes, slots
  /// outside the cache or repeated, and a sequence that would exceed the cache's max_context.
  /// Workspace: n_tokens x (2 d_model + 2 q_dim + 2 kv_dim + 2 d_ff) floats plus the blocks' own,
  /// from ctx.scratch() (reused by every layer, and by every later call of the same size).
  /// Determinism: bitwise reproducible for a backend, shape and thread count; a sequence's
  /// results do not depend on the other sequences of the batch.
  template <attn::kv_element KV>
  void forward(tensor_view<float, 2> x, seq_offsets const& seqs, std::span<index_t const> slots, kv_cache<KV, backend::space_t<Backend>>& cache,
               exec_ctx<Backend>& ctx, decoder_observer const& observe = {}) const {
    decoder_config const& c = config_;
    index_t const n = x.extent(0), d = c.d_model, H = c.n_heads, G = c.n_kv_heads, hd = c.head_dim;
    index_t const qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff;
    TESSERA_CHECK(x.extent(1) == d && seqs.n_tokens() == n, "lm::qwen2_decoder::forward: x must be [",
                  seqs.n_tokens(), ", ", d, "] (the tokens of seqs), got [", n, ", ", x.extent(1), "]");
    TESSERA_CHECK(x.is_row_contiguous(), "lm::qwen2_decoder::forward: the last dimension of x must be contiguous");
    check_cache(cache, seqs, slots);
    if (n == 0) return;
    auto const stage = [&](index_t s) {
      if (observe) observe(s, x);
    };

    auto frame = ctx.scratch().open();
    auto alloc = [&](index_t count) { return frame.template alloc<float>(static_cast<std::size_t>(count)); };
    tensor_view<float, 2> const h(alloc(n * d), {n, d});                      // [n_tokens, d_model] normed input
    index_t const qkv_w = qd + 2 * kvd;
    float* const qkv = alloc(n * qkv_w);                                      // [n_tokens, q | k | v]
    tensor_view<float, 3> const att(alloc(n * qd), {n, H, hd});              // [n_tokens, n_heads, head_dim]
    tensor_view<float, 2> const tmp(alloc(n * d), {n, d});                    // [n_tokens, d_model] block output
    tensor_view<float, 2> const ffn(alloc(n * 2 * ff), {n, 2 * ff});          // [n_tokens, gate | up] or [up | gate]
    // Where the new tokens go and what each sequence attends to: planned once for every layer.
    auto const n_seqs = static_cast<std::size_t>(seqs.n_seqs());
    tensor_view<std::int32_t, 1> const positions(frame.template alloc<std::int32_t>(static_cast<std::size_t>(n)), {n});  // [n_tokens]
    tensor_view<index_t, 1> const cache_rows(frame.template alloc<index_t>(static_cast<std::size_t>(n)), {n});         // [n_tokens]
    std::span<attn::seq_range> const ranges(frame.template alloc<attn::seq_range>(n_seqs), n_seqs);                   // [n_seqs]
    index_t* const first_row = frame.template alloc<index_t>(n_seqs);  // [n_seqs] host: the plan's inputs
    index_t* const past = frame.template alloc<index_t>(n_seqs);       // [n_seqs]
    for (std::size_t s = 0; s < n_seqs; ++s) {
      first_row[s] = cache.slot_row(slots[s]);
      past[s] = cache.length(slots[s]);
    }
    attn::plan_cache_pass<Backend>(seqs, std::span<index_t const>(first_row, n_seqs), std::span<index_t const>(past, n_seqs),
                                   positions, cache_rows, ranges, ctx);
    attn::range_plan const attn_plan(ranges, n, cache.keys(0).extent(0));
    tensor_view<std::int32_t const, 1> const pos_view(positions);
    bool const fused = weights_.layers.front().kv_fused.has_value();
    // q | k | v views into the projection buffer. CustomLlama's key_value_dense interleaves K and
    // V per KV head ([k_0 v_0 k_1 v_1 ...]); HF's separate k_proj / v_proj give [k_0 k_1 ... v_0 v_1 ...].
    tensor_view<float, 2> const qcols(qkv, {n, qd}, {qkv_w, 1});              // [n_tokens, n_heads * head_dim]
    tensor_view<float, 3> const q(qkv, {n, H, hd}, {qkv_w, hd, 1});           // [n_tokens, n_heads, head_dim]
    tensor_view<float, 3> const k(qkv + qd, {n, G, hd}, {qkv_w, fused ? 2 * hd : hd, 1});            // [n_tokens, n_kv_heads, head_dim]
    tensor_view<float, 3> const v(qkv + qd + (fused ? hd : kvd), {n, G, hd}, {qkv_w, fused ? 2 * hd : hd, 1});  // [n_tokens, n_kv_heads, head_dim]
    std::array<index_t, 3> const rot_ext{n, H, c.rotary_dim};
    tensor_view<float, 3> const q_rot(qkv, rot_ext, q.strides());                       // [n_tokens, n_heads, rotary_dim]
    tensor_view<float, 3> const k_rot(k.data(), {n, G, c.rotary_dim}, k.strides());     // [n_tokens, n_kv_heads, rotary_dim]
    auto const theta = static_cast<float>(c.rope_theta);
    auto const eps = static_cast<float>(c.norm_eps);

    stage(-1);
    for (index_t l = 0; l < c.n_layers; ++l) {
      decoder_layer_weights<T> const& w = weights_.layers[static_cast<std::size_t>(l)];
      // ---- attention ----
      norm(x, w.input_norm, eps, h, ctx);
      if (fused) {
        tensor_view<float, 2> const kvcols(qkv + qd, {n, 2 * kvd}, {qkv_w, 1});  // [n_tokens, (k_g | v_g) per head]
        linear_group(h, {{&w.q, qcols}, {&*w.kv_fused, kvcols}}, ctx);
      } else {
        tensor_view<float, 2> const kcols(qkv + qd, {n, kvd}, {qkv_w, 1});        // [n_tokens, n_kv_heads * head_dim]
        tensor_view<float, 2> const vcols(qkv + qd + kvd, {n, kvd}, {qkv_w, 1});  // [n_tokens, n_kv_heads * head_dim]
        nn::linear_weights<T> const wk = flat(w.k), wv = flat(w.v);
        linear_group(h, {{&w.q, qcols}, {&wk, kcols}, {&wv, vcols}}, ctx);
      }
      posemb::rope_1d<Backend>(q_rot, pos_view, theta, ctx);
      posemb::rope_1d<Backend>(k_rot, pos_view, theta, ctx);
      attn::kv_append<Backend, KV>(k, v, cache_rows, cache.keys(l), cache.values(l), ctx);
      attn::masked_attention<Backend, KV>(q, cache.keys(l), cache.values(l), attn_plan, att, ctx,
                                          attn::attention_options{.causal = true, .scale = 0.0f});
      linear(tensor_view<float const, 2>(att.data(), {n, qd}), w.o, tmp, ctx);
      nn::add<Backend>(x, tmp, x, ctx);
      // ---- MLP: down(silu(gate(x)) * up(x)) ----
      norm(x, w.post_norm, eps, h, ctx);
      tensor_view<float, 2> gate, up;
      if (w.up_gate_fused) {  // CustomLlama dense_h_to_4h: [up | gate]
        linear(h, *w.up_gate_fused, ffn, ctx);
        up = tensor_view<float, 2>(ffn.data(), {n, ff}, {2 * ff, 1});
        gate = tensor_view<float, 2>(ffn.data() + ff, {n, ff}, {2 * ff, 1});
      } else {
        gate = tensor_view<float, 2>(ffn.data(), {n, ff}, {2 * ff, 1});
        up = tensor_view<float, 2>(ffn.data() + ff, {n, ff}, {2 * ff, 1});
        linear_group(h, {{&w.gate, gate}, {&w.up, up}}, ctx);
      }
      nn::swiglu<Backend>(gate, up, gate, ctx);
      linear(gate, w.down, tmp, ctx);
      nn::add<Backend>(x, tmp, x, ctx);
      stage(l);
    }
    norm(x, weights_.final_norm, eps, x, ctx);
    stage(c.n_layers);
    for (std::size_t s = 0; s < n_seqs; ++s) {
      index_t const slot = slots[s];
      cache.set_length(slot, cache.length(slot) + seqs.length(static_cast<index_t>(s)));
    }
  }

  /// Logits of hidden rows: logits = hidden @ lm_head^T (HF lm_head, no bias).
  ///   hidden: [n_rows, d_model] f32 (final-norm hidden states); logits: [n_rows, vocab_size] f32.
  void lm_head(tensor_view<float const, 2> hidden, tensor_view<float, 2> logits, exec_ctx<Backend>& ctx) const {
    TESSERA_CHECK(hidden.extent(1) == config_.d_model && logits.extent(0) == hidden.extent(0) &&
                      logits.extent(1) == config_.vocab_size,
                  "lm::qwen2_decoder::lm_head: hidden must be [n, ", config_.d_model, "] and logits [n, ",
                  config_.vocab_size, "], got [", hidden.extent(0), ", ", hidden.extent(1), "] and [", logits.extent(0),
                  ", ", logits.extent(1), "]");
    if (!weights_.lm_head_quantized.empty()) {
      if constexpr (nn::supports_quantized_v<Backend>) {
        nn::linear<Backend>(hidden, weights_.lm_head_quantized, tensor_view<float const, 1>(nullptr, {0}), logits, ctx,
                            precision_);
        return;
      }
    }
    nn::linear<Backend>(hidden, weights_.lm_head, logits, ctx, precision_);
  }

  /// embed + forward + lm_head: the logits of the new tokens of each sequence.
  ///   ids:    [n_tokens], packed by seqs; slots, cache: as in forward().
  ///   logits: [n_seqs, vocab] for logits_rows::last (every sequence must have at least one new
  ///           token), [n_tokens, vocab] for logits_rows::all.
  template <attn::kv_element KV>
  void run(std::span<token_id const> ids, seq_offsets const& seqs, std::span<index_t const> slots, kv_cache<KV, backend::space_t<Backend>>& cache,
           tensor_view<float, 2> logits, exec_ctx<Backend>& ctx, logits_rows rows = logits_rows::last,
           decoder_observer const& observe = {}) const {
    index_t const n = static_cast<index_t>(ids.size()), d = config_.d_model;
    TESSERA_CHECK(seqs.n_tokens() == n, "lm::qwen2_decoder::run: ", n, " ids, the packing covers ", seqs.n_tokens());
    index_t const want_rows = rows == logits_rows::last ? seqs.n_seqs() : n;
    TESSERA_CHECK(logits.extent(0) == want_rows && logits.extent(1) == config_.vocab_size,
                  "lm::qwen2_decoder::run: logits must be [", want_rows, ", ", config_.vocab_size, "], got [",
                  logits.extent(0), ", ", logits.extent(1), "]");
    if (rows == logits_rows::last)
      for (index_t s = 0; s < seqs.n_seqs(); ++s)
        TESSERA_CHECK(seqs.length(s) >= 1, "lm::qwen2_decoder::run: sequence ", s,
                      " has no new token, so it has no last-token logits");
    auto frame = ctx.scratch().open();
    tensor_view<float, 2> const x(frame.template alloc<float>(static_cast<std::size_t>(n * d)), {n, d});  // [n_tokens, d_model]
    embed(ids, x, ctx);
    forward(x, seqs, slots, cache, ctx, observe);
    if (rows == logits_rows::all) {
      lm_head(x, logits, ctx);
      return;
    }
    // Only the last token of each sequence: gather those rows, one GEMV-shaped product.
    index_t const ns = seqs.n_seqs();
    tensor_view<float, 2> const last(frame.template alloc<float>(static_cast<std::size_t>(ns * d)), {ns, d});  // [n_seqs, d_model]
    index_t* const last_rows = frame.template alloc<index_t>(static_cast<std::size_t>(ns));  // [n_seqs]
    for (index_t s = 0; s < ns; ++s) last_rows[s] = seqs.end(s) - 1;
    nn::gather_rows<Backend>(tensor_view<float const, 2>(x), std::span<index_t const>(last_rows, static_cast<std::size_t>(ns)),
                             last, ctx);
    lm_head(last, logits, ctx);
  }

 private:
  /// A K or V projection split by KV head ([n_kv, head_dim, d_model], contiguous for HF names) as
  /// the nn.Linear it is: weight [n_kv * head_dim, d_model], bias [n_kv * head_dim].
  [[nodiscard]] static nn::linear_weights<T> flat(kv_head_weights<T> const& w) {
    TESSERA_DEBUG_ASSERT(!w.quantized.empty() || w.weight.is_contiguous(), "qwen2_decoder: HF k / v weights are contiguous");
    nn::linear_weights<T> l{tensor_view<T const, 2>(w.weight.data(), {w.weight.extent(0) * w.weight.extent(1), w.weight.extent(2)}),
                            std::nullopt, w.quantized};
    if (w.bias) l.bias = tensor_view<T const, 1>(w.bias->data(), {w.bias->extent(0) * w.bias->extent(1)});
    return l;
  }

  void linear(tensor_view<float const, 2> in, nn::linear_weights<T> const& w, tensor_view<float, 2> out,
              exec_ctx<Backend>& ctx) const {
    nn::linear<Backend>(in, w, out, ctx, precision_);
  }

  /// Linear layers of the same input: as one grouped nn::linear where the backend takes quantized
  /// weights and all of them are quantized (the decode kernels then make one pass over them all),
  /// else one by one. The values are the same either way.
  void linear_group(tensor_view<float const, 2> in,
                    std::initializer_list<std::pair<nn::linear_weights<T> const*, tensor_view<float, 2>>> items,
                    exec_ctx<Backend>& ctx) const {
    if constexpr (nn::supports_quantized_v<Backend>) {
      std::array<nn::quantized_output<T>, 3> outs{};
      std::size_t count = 0;
      for (auto const& [w, y] : items) {
        if (w->quantized.empty() || count == outs.size()) break;
        outs[count++] = {w->quantized, w->bias ? *w->bias : tensor_view<T const, 1>(nullptr, {0}), y};
      }
      if (count == items.size()) {
        nn::linear<Backend>(in, std::span<nn::quantized_output<T> const>(outs.data(), count), ctx, precision_);
        return;
      }
    }
    for (auto const& [w, y] : items) linear(in, *w, y, ctx);
  }

  void norm(tensor_view<float const, 2> in, nn::norm_weights<T> const& w, float eps, tensor_view<float, 2> out,
            exec_ctx<Backend>& ctx) const {
    nn::norm<Backend>(config_.norm, in, w, eps, out, ctx);
  }

  template <class KV>
  void check_cache(kv_cache<KV, backend::space_t<Backend>> const& cache, seq_offsets const& seqs, std::span<index_t const> slots) const {
    kv_cache_shape const& s = cache.shape();
    TESSERA_CHECK(s.n_layers == config_.n_layers && s.n_kv_heads == config_.n_kv_heads &&
                      s.head_dim == config_.head_dim,
                  "lm::qwen2_decoder: the cache is for ", s.n_layers, " layers of ", s.n_kv_heads, " x ", s.head_dim,
                  " keys, the decoder has ", config_.n_layers, " layers of ", config_.n_kv_heads, " x ",
                  config_.head_dim);
    TESSERA_CHECK(static_cast<index_t>(slots.size()) == seqs.n_seqs(), "lm::qwen2_decoder: ", seqs.n_seqs(),
                  " sequences but ", slots.size(), " cache slots");
    for (std::size_t i = 0; i < slots.size(); ++i) {
      index_t const slot = slots[i];
      TESSERA_CHECK(slot >= 0 && slot < s.n_slots, "lm::qwen2_decoder: sequence ", i, " names cache slot ", slot,
                    ", outside [0, ", s.n_slots, ")");
      for (std::size_t j = 0; j < i; ++j)
        TESSERA_CHECK(slots[j] != slot, "lm::qwen2_decoder: sequences ", j, " and ", i, " both name cache slot ",
                      slot);
      index_t const need = cache.length(slot) + seqs.length(static_cast<index_t>(i));
      TESSERA_CHECK(need <= s.max_context, "lm::qwen2_decoder: sequence ", i, " would reach ", need,
                    " positions in cache slot ", slot, ", beyond the cache's max_context ", s.max_context);
    }
  }

  void check_weights() const {
    decoder_config const& c = config_;
    decoder_weights<T> const& w = weights_;
    index_t const d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff;
    auto mat = [](char const* what, index_t layer, tensor_view<T const, 2> const& m, index_t rows, index_t cols) {
      TESSERA_CHECK(m.extent(0) == rows && m.extent(1) == cols && m.is_row_contiguous(), "lm::qwen2_decoder: ",
                    what, layer >= 0 ? " of layer " : "", layer >= 0 ? std::to_string(layer) : std::string(),
                    " must be [", rows, ", ", cols, "] with contiguous rows, got [", m.extent(0), ", ", m.extent(1),
                    "]");
    };
    // A linear layer: its dense weight, or its quantized one when it has one.
    auto lin = [&](char const* what, index_t layer, tensor_view<T const, 2> const& m, quant::qmatrix const& q,
                   index_t rows, index_t cols) {
      if (q.empty()) return mat(what, layer, m, rows, cols);
      TESSERA_CHECK(q.rows == rows && q.cols == cols, "lm::qwen2_decoder: ", what,
                    layer >= 0 ? " of layer " + std::to_string(layer) : std::string(), " must be [", rows, ", ", cols,
                    "], its ", quant::name_of(q.format), " weight is [", q.rows, ", ", q.cols, "]");
      quant::check_group(q.format, q.cols, q.group, "lm::qwen2_decoder");
    };
    auto vec = [](char const* what, index_t layer, std::optional<tensor_view<T const, 1>> const& b, index_t len,
                  bool required) {
      TESSERA_CHECK(b.has_value() || !required, "lm::qwen2_decoder: ", what, " of layer ", layer,
                    " is missing (the config says it exists)");
      TESSERA_CHECK(!b || (b->extent(0) == len && (len <= 1 || b->stride(0) == 1)), "lm::qwen2_decoder: ", what,
                    " of layer ", layer, " must have ", len, " contiguous elements");
    };
    auto norm_ok = [&](char const* what, index_t layer, nn::norm_weights<T> const& nw) {
      TESSERA_CHECK(nw.weight.extent(0) == d, "lm::qwen2_decoder: ", what, " of layer ", layer, " must have ", d,
                    " elements, got ", nw.weight.extent(0));
      TESSERA_CHECK(c.norm == nn::norm_kind::rms_norm || nw.bias.has_value(), "lm::qwen2_decoder: ", what,
                    " of layer ", layer, " needs a bias (LayerNorm)");
    };
    mat("the embedding", -1, w.embed, c.vocab_size, d);
    lin("the LM head", -1, w.lm_head, w.lm_head_quantized, c.vocab_size, d);
    TESSERA_CHECK(static_cast<index_t>(w.layers.size()) == c.n_layers, "lm::qwen2_decoder: ", c.n_layers,
                  " layers configured, weights for ", w.layers.size());
    bool const fused = w.layers.front().kv_fused.has_value();
    for (std::size_t i = 0; i < w.layers.size(); ++i) {
      auto const li = static_cast<index_t>(i);
      decoder_layer_weights<T> const& lw = w.layers[i];
      TESSERA_CHECK(lw.kv_fused.has_value() == fused && lw.up_gate_fused.has_value() == fused,
                    "lm::qwen2_decoder: layer ", li, " mixes fused (CustomLlama) and separate (HF) projections");
      norm_ok("input norm", li, lw.input_norm);
      norm_ok("post-attention norm", li, lw.post_norm);
      lin("q_proj", li, lw.q.weight, lw.q.quantized, qd, d);
      vec("q bias", li, lw.q.bias, qd, c.qkv_bias);
      if (fused) {
        lin("key_value_dense", li, lw.kv_fused->weight, lw.kv_fused->quantized, 2 * kvd, d);
        vec("key_value_dense bias", li, lw.kv_fused->bias, 2 * kvd, c.qkv_bias);
        lin("dense_h_to_4h", li, lw.up_gate_fused->weight, lw.up_gate_fused->quantized, 2 * ff, d);
        vec("dense_h_to_4h bias", li, lw.up_gate_fused->bias, 2 * ff, c.gate_up_bias);
      } else {
        for (auto const* kv : {&lw.k, &lw.v}) {
          if (!kv->quantized.empty()) {
            lin("k_proj / v_proj", li, tensor_view<T const, 2>(), kv->quantized, kvd, d);
          } else {
            TESSERA_CHECK(kv->weight.extent(0) == c.n_kv_heads && kv->weight.extent(1) == c.head_dim &&
                              kv->weight.extent(2) == d && kv->weight.is_contiguous(),
                          "lm::qwen2_decoder: k_proj / v_proj of layer ", li, " must be contiguous [", c.n_kv_heads,
                          ", ", c.head_dim, ", ", d, "]");
          }
          TESSERA_CHECK(kv->bias.has_value() == c.qkv_bias &&
                            (!kv->bias || (kv->bias->extent(0) * kv->bias->extent(1) == kvd && kv->bias->is_contiguous())),
                        "lm::qwen2_decoder: k / v bias of layer ", li, " must ",
                        c.qkv_bias ? "have " + std::to_string(kvd) + " contiguous elements" : std::string("be absent"));
        }
        lin("gate_proj", li, lw.gate.weight, lw.gate.quantized, ff, d);
        lin("up_proj", li, lw.up.weight, lw.up.quantized, ff, d);
        vec("gate bias", li, lw.gate.bias, ff, c.gate_up_bias);
        vec("up bias", li, lw.up.bias, ff, c.gate_up_bias);
      }
      lin("o_proj", li, lw.o.weight, lw.o.quantized, d, qd);
      vec("o bias", li, lw.o.bias, d, c.o_bias);
      lin("down_proj", li, lw.down.weight, lw.down.quantized, d, ff);
      vec("down bias", li, lw.down.bias, d, c.down_bias);
    }
    TESSERA_CHECK(w.final_norm.weight.extent(0) == d, "lm::qwen2_decoder: the final norm must have ", d,
                  " elements, got ", w.final_norm.weight.extent(0));
  }

  decoder_config config_;
  decoder_weights<T> weights_;
  std::shared_ptr<void const> keep_alive_;
  nn::product_precision precision_;
};

}  // namespace tessera::lm
