// SPDX-License-Identifier: Apache-2.0
// Weight-name maps: bind the tensors of a checkpoint (io::checkpoint, safetensors) to canonical
// per-block weight structs as zero-copy typed views into the mapped files. Namings: HF Qwen2
// (Qwen2ForCausalLM), POINTS1.5 CustomLlama (spec section 4.2), the 2025 Qwen2-based POINTS
// variant, Qwen2-VL's `visual.*` tower and POINTS' `vision_encoder.*` / `vision_projector.*`.
#pragma once

#include <tessera/core/buffer.hpp>
#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/config.hpp>
#include <tessera/io/detail/strict_json.hpp>
#include <tessera/io/detail/weight_map_storage.hpp>
#include <tessera/io/safetensors.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::io {

/// Tensor names of a decoder.
enum class decoder_naming {
  hf_qwen2,             ///< transformers Qwen2ForCausalLM: model.embed_tokens, model.layers.N.self_attn.q_proj, lm_head
  points_custom_llama,  ///< POINTS1.5 (Dec 2024): llm.lm.embed_in, llm.lm.layers.N.attention.query_dense /
                        ///< key_value_dense / dense, mlp.dense_h_to_4h / dense_4h_to_h, llm.embed_out
  points_qwen2,         ///< 2025 Qwen2-based POINTS variant: llm.model.layers.N.self_attn.q_proj, llm.lm_head
};
/// Tensor names of a Qwen2-VL ViT: Qwen2-VL's `visual.*` or POINTS' `vision_encoder.*`.
enum class vision_naming { qwen2_vl, points };
/// Tensor names of a PatchMerger: the tower's own `visual.merger.*` or POINTS' `vision_projector.*`.
enum class projector_naming { qwen2_vl_merger, points };
/// What binding does with a tensor stored in another dtype than the one requested.
enum class dtype_policy {
  exact,    ///< refuse it: every view is zero-copy into the mapped file
  convert,  ///< convert it (round to nearest even) into a buffer owned by the weights struct
};

[[nodiscard]] constexpr std::string_view name_of(decoder_naming n) noexcept {
  switch (n) {
    case decoder_naming::hf_qwen2: return "hf_qwen2";
    case decoder_naming::points_custom_llama: return "points_custom_llama";
    case decoder_naming::points_qwen2: return "points_qwen2";
  }
  return "?";
}
[[nodiscard]] constexpr std::string_view name_of(vision_naming n) noexcept {
  return n == vision_naming::qwen2_vl ? "qwen2_vl" : "points";
}
[[nodiscard]] constexpr std::string_view name_of(projector_naming n) noexcept {
  return n == projector_naming::qwen2_vl_merger ? "qwen2_vl_merger" : "points";
}

/// One tensor a weight map expects: checkpoint name, stored shape (PyTorch order) and what it is.
struct tensor_spec {
  std::string name;
  std::vector<index_t> shape;
  std::string what;
};

/// A tensor a checkpoint may hold that no block reads, and why it may stay unbound. With a
/// shape, a present tensor must have it (the reference refuses to load it otherwise).
struct unused_spec {
  std::string name;
  std::optional<std::vector<index_t>> shape;
  std::string reason;
};

/// A checkpoint tensor deliberately left unbound.
struct skipped_tensor {
  std::string name;
  std::string reason;
};

/// What a binding did, for callers who want to see it (finish() returns it).
struct binding_report {
  std::size_t n_bound = 0;          ///< tensors bound (zero-copy or converted)
  std::size_t n_converted = 0;      ///< of which were converted into owned buffers
  std::size_t converted_bytes = 0;  ///< bytes of those buffers
  std::vector<skipped_tensor> skipped;  ///< present, known unused or tied duplicates; sorted by name
};

/// Tensors binding converted to T, owned (shared) by the weights that view them. Empty when
/// every view points into the mapped checkpoint.
template <weight_type T>
struct converted_tensors {
  std::vector<host_buffer<T>> buffers;
};

/// A normalization's parameters: weight [d], bias [d] for LayerNorm (none for RMSNorm).
template <weight_type T>
struct norm_weights {
  tensor_view<T const, 1> weight;
  std::optional<tensor_view<T const, 1>> bias;
};

/// A linear layer y = x W^T + b: weight [out, in] (row-major, nn.Linear layout), bias [out].
template <weight_type T>
struct linear_weights {
  tensor_view<T const, 2> weight;
  std::optional<tensor_view<T const, 1>> bias;
};

/// K or V projection split by KV head: weight [n_kv_heads, head_dim, d_model], bias
/// [n_kv_heads, head_dim]. Contiguous for HF names; strided views into key_value_dense for
/// CustomLlama (head g's rows start at g * 2 * head_dim).
template <weight_type T>
struct kv_head_weights {
  tensor_view<T const, 3> weight;
  std::optional<tensor_view<T const, 2>> bias;
};

/// One decoder block (Qwen2DecoderLayer / CustomLlamaLayer): pre-norm attention with GQA, then a
/// pre-norm SiLU-gated MLP down(act(gate(x)) * up(x)).
template <weight_type T>
struct decoder_layer_weights {
  norm_weights<T> input_norm;      ///< [d_model]
  linear_weights<T> q;             ///< [n_heads * head_dim, d_model] (+ bias)
  kv_head_weights<T> k, v;         ///< see kv_head_weights
  /// CustomLlama's fused key_value_dense [n_kv_heads * 2 * head_dim, d_model] (+ bias): for each KV
  /// head g, head_dim K rows then head_dim V rows, so one GEMM yields K and V interleaved per head.
  /// Absent for HF names.
  std::optional<linear_weights<T>> kv_fused;
  linear_weights<T> o;             ///< [d_model, n_heads * head_dim] (+ bias if the config says)
  norm_weights<T> post_norm;       ///< [d_model]
  linear_weights<T> gate, up;      ///< [d_ff, d_model] each (+ biases if the config says)
  /// CustomLlama's fused dense_h_to_4h [2 * d_ff, d_model] (+ bias): rows [0, d_ff) are `up`
  /// (the linear branch), rows [d_ff, 2 d_ff) are `gate` (the SiLU branch), spec section 4.2.
  /// Absent for HF names.
  std::optional<linear_weights<T>> up_gate_fused;
  linear_weights<T> down;          ///< [d_model, d_ff] (+ bias if the config says)
};

/// A whole decoder. Views point into the checkpoint (which must outlive them) or into `converted`.
template <weight_type T>
struct decoder_weights {
  decoder_naming naming = decoder_naming::hf_qwen2;
  tensor_view<T const, 2> embed;   ///< [vocab_size, d_model]
  std::vector<decoder_layer_weights<T>> layers;
  norm_weights<T> final_norm;      ///< [d_model]
  tensor_view<T const, 2> lm_head; ///< [vocab_size, d_model]; the embedding itself when tied
  bool lm_head_tied = false;
  std::shared_ptr<converted_tensors<T> const> converted;
};

/// One Qwen2VLVisionBlock: x + proj(attn(norm1 x)), then x + fc2(act(fc1(norm2 x))).
template <weight_type T>
struct vision_block_weights {
  norm_weights<T> norm1;   ///< LayerNorm [embed_dim] with bias
  linear_weights<T> qkv;   ///< [3 * embed_dim, embed_dim]: q rows, then k rows, then v rows
  linear_weights<T> proj;  ///< [embed_dim, embed_dim]
  norm_weights<T> norm2;
  linear_weights<T> fc1;   ///< [mlp_dim, embed_dim]
  linear_weights<T> fc2;   ///< [embed_dim, mlp_dim]
};

/// The Qwen2-VL ViT (Qwen2VisionTransformerPretrainedModel without its merger).
template <weight_type T>
struct vision_encoder_weights {
  vision_naming naming = vision_naming::qwen2_vl;
  /// The Conv3d weight [embed_dim, C, T, P, P] viewed as a linear [embed_dim, patch_dim]
  /// (patch_dim = C*T*P*P, features in (c, t, py, px) order as the processor flattens patches).
  tensor_view<T const, 2> patch_embed;
  std::vector<vision_block_weights<T>> blocks;
  std::shared_ptr<converted_tensors<T> const> converted;
};

/// A PatchMerger: ln_q, then 2x2 concat, mlp.0 (Linear), GELU, mlp.2 (Linear).
template <weight_type T>
struct patch_merger_weights {
  projector_naming naming = projector_naming::points;
  norm_weights<T> ln_q;    ///< LayerNorm [context_dim] with bias
  linear_weights<T> fc1;   ///< mlp.0 [hidden_dim, hidden_dim]
  linear_weights<T> fc2;   ///< mlp.2 [out_dim, hidden_dim]
  std::shared_ptr<converted_tensors<T> const> converted;
};

/// Binds tensors of one checkpoint and keeps track of which ones were used, so that after all
/// parts are bound finish() can refuse a checkpoint holding tensors nobody bound (a sign of a
/// different model or naming) while listing the known-unused ones it skipped.
class weight_binder {
 public:
  /// `ckpt` must outlive the binder and every view bound through it.
  explicit weight_binder(checkpoint const& ckpt, dtype_policy dtypes = dtype_policy::exact,
                         bool ignore_known_unused = true)
      : ckpt_(&ckpt), label_(detail::checkpoint_label(ckpt)), dtypes_(dtypes),
        ignore_known_unused_(ignore_known_unused), used_(ckpt.size(), false) {}

  [[nodiscard]] checkpoint const& source() const noexcept { return *ckpt_; }
  [[nodiscard]] std::string const& label() const noexcept { return label_; }
  [[nodiscard]] dtype_policy dtypes() const noexcept { return dtypes_; }

  /// The elements of tensor `spec.name` as T: a pointer into the mapped file when it is stored
  /// as T and aligned for T; otherwise (only under dtype_policy::convert) a converted copy in a
  /// new buffer appended to `store`. The stored shape must equal spec.shape exactly.
  /// Throws tessera::error naming the tensor, what it is and both shapes / dtypes.
  template <weight_type T>
  [[nodiscard]] T const* take(tensor_spec const& spec, converted_tensors<T>& store) {
    std::size_t const pos = position(spec.name);
    if (pos == npos)
      TESSERA_FAIL(label_, ": missing tensor ", detail::quote_name(spec.name), " (", spec.what, ", shape ",
                   detail::shape_text(spec.shape), ")");
    tensor_info const& t = ckpt_->info(spec.name);
    if (t.shape != spec.shape)
      TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name), " (", spec.what, ") has shape ",
                   detail::shape_text(t.shape), ", expected ", detail::shape_text(spec.shape));
    std::span<std::byte const> const bytes = ckpt_->bytes(spec.name);
    bool const same = t.type == dtype_of_v<T>;
    bool const aligned = reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(T) == 0;
    if (!used_[pos]) ++report_.n_bound;
    used_[pos] = true;
    if (same && aligned) return reinterpret_cast<T const*>(bytes.data());
    if (dtypes_ == dtype_policy::exact) {
      if (!same)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name), " (", spec.what, ") is ", name_of(t.type),
                     ", weights of ", name_of(dtype_of_v<T>), " were requested; dtype_policy::convert converts it "
                     "into an owned buffer");
      TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name),
                   " is not aligned for its dtype in the file, so no zero-copy view is possible; "
                   "dtype_policy::convert copies it");
    }
    host_buffer<T> buf(t.numel());
    detail::convert_elements<T>(label_, t, bytes.data(), buf.span());
    ++report_.n_converted;
    report_.converted_bytes += static_cast<std::size_t>(t.numel()) * sizeof(T);
    T const* p = buf.data();
    store.buffers.push_back(std::move(buf));
    return p;
  }

  [[nodiscard]] bool contains(std::string_view name) const { return position(name) != npos; }
  /// Whether a tensor has been bound or skipped.
  [[nodiscard]] bool handled(std::string_view name) const {
    std::size_t const pos = position(name);
    return pos != npos && used_[pos];
  }

  /// Declares a tensor known to be unused (see unused_spec); finish() skips it if present.
  void allow_unused(unused_spec spec) {
    std::string name = spec.name;
    allowed_.insert_or_assign(std::move(name), std::move(spec));
  }
  /// Marks a present tensor as deliberately not bound (e.g. a tied duplicate), with the reason.
  void skip(std::string const& name, std::string reason) {
    std::size_t const pos = position(name);
    TESSERA_CHECK(pos != npos, label_, ": cannot skip tensor ", detail::quote_name(name), ", which is not stored");
    if (!used_[pos]) report_.skipped.push_back({name, std::move(reason)});
    used_[pos] = true;
  }

  /// Names of the stored tensors not bound or skipped so far (sorted).
  [[nodiscard]] std::vector<std::string> unhandled() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < used_.size(); ++i)
      if (!used_[i]) out.push_back(ckpt_->names()[i]);
    return out;
  }

  /// Ends the binding. Every stored tensor must have been bound, skipped, or declared known-unused
  /// (then it is listed in the report, if ignore_known_unused; with ignore_known_unused false it
  /// is an error too). A known-unused tensor with a declared shape must have that shape.
  /// Throws tessera::error naming the unbound tensors (the first 8, and how many in all).
  [[nodiscard]] binding_report finish() const {
    binding_report r = report_;
    std::vector<std::string> extra;
    for (std::string const& name : unhandled()) {
      auto const it = allowed_.find(name);
      if (it == allowed_.end()) {
        extra.push_back(name);
        continue;
      }
      unused_spec const& u = it->second;
      tensor_info const& t = ckpt_->info(name);
      if (u.shape && t.shape != *u.shape)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(name), " (unused: ", u.reason, ") has shape ",
                     detail::shape_text(t.shape), ", expected ", detail::shape_text(*u.shape),
                     "; the reference model would refuse to load it");
      if (!ignore_known_unused_)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(name), " is not bound (", u.reason,
                     ") and ignore_known_unused is off");
      r.skipped.push_back({name, u.reason});
    }
    if (!extra.empty()) {
      std::string list;
      for (std::size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", " : "") + detail::quote_name(extra[i]);
      TESSERA_FAIL(label_, ": ", extra.size(), " stored tensor(s) were bound by no part: ", list,
                   extra.size() > 8 ? ", ..." : "",
                   " (an unexpected tensor usually means another model, another naming, or a part left unbound)");
    }
    std::sort(r.skipped.begin(), r.skipped.end(),
              [](skipped_tensor const& a, skipped_tensor const& b) { return a.name < b.name; });
    return r;
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  [[nodiscard]] std::size_t position(std::string_view name) const {
    auto const& names = ckpt_->names();  // sorted
    auto const it = std::lower_bound(names.begin(), names.end(), name,
                                     [](std::string const& a, std::string_view b) { return a < b; });
    if (it == names.end() || *it != name) return npos;
    return static_cast<std::size_t>(it - names.begin());
  }

  checkpoint const* ckpt_;
  std::string label_;
  dtype_policy dtypes_;
  bool ignore_known_unused_;
  std::vector<bool> used_;  // parallel to ckpt_->names()
  std::map<std::string, unused_spec, std::less<>> allowed_;
  binding_report report_;
};

namespace detail {

/// Per-naming name parts of a decoder.
struct decoder_prefixes {
  std::string embed, layers, final_norm, head;
};
[[nodiscard]] inline decoder_prefixes decoder_names(decoder_naming n) {
  switch (n) {
    case decoder_naming::hf_qwen2:
      return {"model.embed_tokens.weight", "model.layers.", "model.norm.", "lm_head.weight"};
    case decoder_naming::points_custom_llama:
      return {"llm.lm.embed_in.weight", "llm.lm.layers.", "llm.lm.final_layer_norm.", "llm.embed_out.weight"};
    case decoder_naming::points_qwen2:
      return {"llm.model.embed_tokens.weight", "llm.model.layers.", "llm.model.norm.", "llm.lm_head.weight"};
  }
  return {};
}
[[nodiscard]] inline std::string vision_prefix(vision_naming n) {
  return n == vision_naming::qwen2_vl ? "visual." : "vision_encoder.";
}
[[nodiscard]] inline std::string projector_prefix(projector_naming n) {
  return n == projector_naming::qwen2_vl_merger ? "visual.merger." : "vision_projector.";
}

/// The specs of one layer; optional members are absent when the config / naming has no such tensor.
struct decoder_layer_specs {
  tensor_spec input_norm;
  std::optional<tensor_spec> input_norm_bias;
  tensor_spec q;
  std::optional<tensor_spec> q_bias;
  std::optional<tensor_spec> k, k_bias, v, v_bias;  // HF names
  std::optional<tensor_spec> kv, kv_bias;           // CustomLlama key_value_dense
  tensor_spec o;
  std::optional<tensor_spec> o_bias;
  tensor_spec post_norm;
  std::optional<tensor_spec> post_norm_bias;
  std::optional<tensor_spec> gate, gate_bias, up, up_bias;  // HF names
  std::optional<tensor_spec> up_gate, up_gate_bias;         // CustomLlama dense_h_to_4h
  tensor_spec down;
  std::optional<tensor_spec> down_bias;
  unused_spec inv_freq;
};

struct decoder_specs {
  tensor_spec embed;
  std::vector<decoder_layer_specs> layers;
  tensor_spec final_norm;
  std::optional<tensor_spec> final_norm_bias;
  std::optional<tensor_spec> lm_head;  // absent when tied
};

/// Refuses a hand-made decoder_config the specs cannot describe (configs from the readers always pass).
inline void check_decoder_config(decoder_config const& c) {
  TESSERA_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                    c.head_dim > 0 && c.d_ff > 0,
                "io::weight_map: decoder_config has a non-positive size (vocab ", c.vocab_size, ", d_model ", c.d_model,
                ", layers ", c.n_layers, ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim, ", d_ff ",
                c.d_ff, ")");
  TESSERA_CHECK(c.n_heads % c.n_kv_heads == 0, "io::weight_map: decoder_config n_heads ", c.n_heads,
                " is not a multiple of n_kv_heads ", c.n_kv_heads);
  TESSERA_CHECK(c.n_layers <= config_limits::max_layers && c.d_model <= config_limits::max_d_model &&
                    c.d_ff <= config_limits::max_d_ff && c.vocab_size <= config_limits::max_vocab &&
                    c.n_heads <= config_limits::max_heads && c.head_dim <= config_limits::max_d_model,
                "io::weight_map: decoder_config sizes exceed io::config_limits");
}

[[nodiscard]] inline decoder_specs make_decoder_specs(decoder_config const& c, decoder_naming n) {
  check_decoder_config(c);
  decoder_prefixes const p = decoder_names(n);
  bool const custom = n == decoder_naming::points_custom_llama;
  bool const layer_norm = c.norm == norm_kind::layer_norm;
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff;
  auto spec = [](std::string name, std::vector<index_t> shape, std::string what) {
    return tensor_spec{std::move(name), std::move(shape), std::move(what)};
  };
  decoder_specs s;
  s.embed = spec(p.embed, {c.vocab_size, d}, "token embedding [vocab_size, d_model]" + tag);
  s.layers.reserve(static_cast<std::size_t>(c.n_layers));
  for (index_t i = 0; i < c.n_layers; ++i) {
    std::string const lp = p.layers + std::to_string(i) + ".";
    std::string const li = "layer " + std::to_string(i) + " ";
    decoder_layer_specs l;
    l.input_norm = spec(lp + "input_layernorm.weight", {d}, li + "input norm weight [d_model]");
    if (layer_norm) l.input_norm_bias = spec(lp + "input_layernorm.bias", {d}, li + "input norm bias [d_model]");
    l.post_norm = spec(lp + "post_attention_layernorm.weight", {d}, li + "post-attention norm weight [d_model]");
    if (layer_norm)
      l.post_norm_bias = spec(lp + "post_attention_layernorm.bias", {d}, li + "post-attention norm bias [d_model]");
    std::string const attn = lp + (custom ? "attention." : "self_attn.");
    std::string const qn = attn + (custom ? "query_dense." : "q_proj.");
    l.q = spec(qn + "weight", {qd, d}, li + "Q projection [n_heads*head_dim, d_model]" + tag);
    if (c.qkv_bias) l.q_bias = spec(qn + "bias", {qd}, li + "Q bias [n_heads*head_dim]");
    if (custom) {
      l.kv = spec(attn + "key_value_dense.weight", {2 * kvd, d},
                  li + "fused K/V projection key_value_dense [n_kv_heads*2*head_dim, d_model]" + tag);
      if (c.qkv_bias) l.kv_bias = spec(attn + "key_value_dense.bias", {2 * kvd}, li + "fused K/V bias [n_kv_heads*2*head_dim]");
    } else {
      l.k = spec(attn + "k_proj.weight", {kvd, d}, li + "K projection [n_kv_heads*head_dim, d_model]" + tag);
      l.v = spec(attn + "v_proj.weight", {kvd, d}, li + "V projection [n_kv_heads*head_dim, d_model]" + tag);
      if (c.qkv_bias) {
        l.k_bias = spec(attn + "k_proj.bias", {kvd}, li + "K bias [n_kv_heads*head_dim]");
        l.v_bias = spec(attn + "v_proj.bias", {kvd}, li + "V bias [n_kv_heads*head_dim]");
      }
    }
    std::string const on = attn + (custom ? "dense." : "o_proj.");
    l.o = spec(on + "weight", {d, qd}, li + "output projection [d_model, n_heads*head_dim]" + tag);
    if (c.o_bias) l.o_bias = spec(on + "bias", {d}, li + "output projection bias [d_model]");
    if (custom) {
      l.up_gate = spec(lp + "mlp.dense_h_to_4h.weight", {2 * ff, d},
                       li + "fused up/gate projection dense_h_to_4h [2*d_ff, d_model]" + tag);
      if (c.gate_up_bias) l.up_gate_bias = spec(lp + "mlp.dense_h_to_4h.bias", {2 * ff}, li + "fused up/gate bias [2*d_ff]");
      l.down = spec(lp + "mlp.dense_4h_to_h.weight", {d, ff}, li + "down projection dense_4h_to_h [d_model, d_ff]" + tag);
      if (c.down_bias) l.down_bias = spec(lp + "mlp.dense_4h_to_h.bias", {d}, li + "down projection bias [d_model]");
    } else {
      l.gate = spec(lp + "mlp.gate_proj.weight", {ff, d}, li + "gate projection [d_ff, d_model]" + tag);
      l.up = spec(lp + "mlp.up_proj.weight", {ff, d}, li + "up projection [d_ff, d_model]" + tag);
      if (c.gate_up_bias) {
        l.gate_bias = spec(lp + "mlp.gate_proj.bias", {ff}, li + "gate bias [d_ff]");
        l.up_bias = spec(lp + "mlp.up_proj.bias", {ff}, li + "up bias [d_ff]");
      }
      l.down = spec(lp + "mlp.down_proj.weight", {d, ff}, li + "down projection [d_model, d_ff]" + tag);
      if (c.down_bias) l.down_bias = spec(lp + "mlp.down_proj.bias", {d}, li + "down projection bias [d_model]");
    }
    // Old transformers versions stored RoPE's inv_freq; current ones register it non-persistent and
    // CustomLlamaForCausalLM lists it in _keys_to_ignore_on_load_unexpected: recomputed, never read.
    l.inv_freq = {attn + "rotary_emb.inv_freq", std::nullopt,
                  "RoPE inv_freq buffer: recomputed from rope_theta; the reference ignores it on load"};
    s.layers.push_back(std::move(l));
  }
  s.final_norm = spec(p.final_norm + "weight", {d}, "final norm weight [d_model]" + tag);
  if (layer_norm) s.final_norm_bias = spec(p.final_norm + "bias", {d}, "final norm bias [d_model]" + tag);
  if (!c.tie_word_embeddings) s.lm_head = spec(p.head, {c.vocab_size, d}, "LM head [vocab_size, d_model]" + tag);
  return s;
}

/// Refuses a hand-made vision config the specs cannot describe.
inline void check_vision_config(qwen2_vl_vision_config const& v) {
  TESSERA_CHECK(v.depth > 0 && v.embed_dim > 0 && v.num_heads > 0 && v.mlp_dim > 0 && v.in_channels > 0 &&
                    v.temporal_patch_size > 0 && v.patch_size > 0 && v.hidden_size > 0 && v.merge_dim > 0,
                "io::weight_map: qwen2_vl_vision_config has a non-positive size");
  TESSERA_CHECK(v.patch_dim == v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size,
                "io::weight_map: qwen2_vl_vision_config patch_dim ", v.patch_dim, " is not in_channels * "
                "temporal_patch_size * patch_size^2");
  TESSERA_CHECK(v.depth <= config_limits::max_layers && v.embed_dim <= config_limits::max_d_model &&
                    v.mlp_dim <= config_limits::max_d_ff,
                "io::weight_map: qwen2_vl_vision_config sizes exceed io::config_limits");
}

struct vision_block_specs {
  tensor_spec norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};
struct vision_specs {
  tensor_spec patch_embed;
  std::vector<vision_block_specs> blocks;
  std::vector<unused_spec> unused;
};

[[nodiscard]] inline vision_specs make_vision_specs(qwen2_vl_vision_config const& v, vision_naming n) {
  check_vision_config(v);
  std::string const p = vision_prefix(n);
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const e = v.embed_dim, m = v.mlp_dim;
  vision_specs s;
  s.patch_embed = {p + "patch_embed.proj.weight",
                   {e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size},
                   "patch embedding Conv3d [embed_dim, in_channels, temporal_patch_size, patch_size, patch_size]" + tag};
  for (index_t i = 0; i < v.depth; ++i) {
    std::string const bp = p + "blocks." + std::to_string(i) + ".";
    std::string const bi = "ViT block " + std::to_string(i) + " ";
    s.blocks.push_back({{bp + "norm1.weight", {e}, bi + "norm1 weight [embed_dim]"},
                        {bp + "norm1.bias", {e}, bi + "norm1 bias [embed_dim]"},
                        {bp + "attn.qkv.weight", {3 * e, e}, bi + "fused QKV [3*embed_dim, embed_dim]" + tag},
                        {bp + "attn.qkv.bias", {3 * e}, bi + "QKV bias [3*embed_dim]"},
                        {bp + "attn.proj.weight", {e, e}, bi + "attention output [embed_dim, embed_dim]"},
                        {bp + "attn.proj.bias", {e}, bi + "attention output bias [embed_dim]"},
                        {bp + "norm2.weight", {e}, bi + "norm2 weight [embed_dim]"},
                        {bp + "norm2.bias", {e}, bi + "norm2 bias [embed_dim]"},
                        {bp + "mlp.fc1.weight", {m, e}, bi + "MLP fc1 [mlp_dim, embed_dim]"},
                        {bp + "mlp.fc1.bias", {m}, bi + "MLP fc1 bias [mlp_dim]"},
                        {bp + "mlp.fc2.weight", {e, m}, bi + "MLP fc2 [embed_dim, mlp_dim]"},
                        {bp + "mlp.fc2.bias", {e}, bi + "MLP fc2 bias [embed_dim]"}});
  }
  s.unused.push_back({p + "rotary_pos_emb.inv_freq", std::nullopt,
                      "vision RoPE inv_freq buffer: non-persistent in the reference, recomputed"});
  if (n == vision_naming::points) {
    // Qwen2VisionTransformerPretrainedModel builds its own merger, which POINTS1.5 never applies
    // (it uses vision_projector; spec section 7.16). The reference loads these tensors (so their
    // shapes must fit) and ignores them.
    std::string const why = "the ViT's own PatchMerger, built but never applied by POINTS1.5 (spec 7.16)";
    index_t const h = v.merge_dim;
    std::string const mp = p + "merger.";
    s.unused.push_back({mp + "ln_q.weight", std::vector<index_t>{e}, why});
    s.unused.push_back({mp + "ln_q.bias", std::vector<index_t>{e}, why});
    s.unused.push_back({mp + "mlp.0.weight", std::vector<index_t>{h, h}, why});
    s.unused.push_back({mp + "mlp.0.bias", std::vector<index_t>{h}, why});
    s.unused.push_back({mp + "mlp.2.weight", std::vector<index_t>{v.hidden_size, h}, why});
    s.unused.push_back({mp + "mlp.2.bias", std::vector<index_t>{v.hidden_size}, why});
  }
  return s;
}

struct projector_specs {
  tensor_spec ln_w, ln_b, fc1_w, fc1_b, fc2_w, fc2_b;
};
[[nodiscard]] inline projector_specs make_projector_specs(patch_merger_config const& c, projector_naming n) {
  TESSERA_CHECK(c.context_dim > 0 && c.merge_size > 0 && c.out_dim > 0 &&
                    c.hidden_dim == c.context_dim * c.merge_size * c.merge_size &&
                    c.hidden_dim <= config_limits::max_d_ff && c.out_dim <= config_limits::max_d_model,
                "io::weight_map: patch_merger_config (context_dim ", c.context_dim, ", merge_size ", c.merge_size,
                ", hidden_dim ", c.hidden_dim, ", out_dim ", c.out_dim,
                ") is not consistent (hidden_dim = context_dim * merge_size^2) or exceeds io::config_limits");
  std::string const p = projector_prefix(n);
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const h = c.hidden_dim;
  return {{p + "ln_q.weight", {c.context_dim}, "merger ln_q weight [context_dim]" + tag},
          {p + "ln_q.bias", {c.context_dim}, "merger ln_q bias [context_dim]" + tag},
          {p + "mlp.0.weight", {h, h}, "merger mlp.0 [hidden_dim, hidden_dim]" + tag},
          {p + "mlp.0.bias", {h}, "merger mlp.0 bias [hidden_dim]" + tag},
          {p + "mlp.2.weight", {c.out_dim, h}, "merger mlp.2 [out_dim, hidden_dim]" + tag},
          {p + "mlp.2.bias", {c.out_dim}, "merger mlp.2 bias [out_dim]" + tag}};
}

/// Binds spec by spec into one converted_tensors store.
template <weight_type T>
class part_binder {
 public:
  explicit part_binder(weight_binder& b) : b_(b), store_(std::make_shared<converted_tensors<T>>()) {}
  [[nodiscard]] T const* ptr(tensor_spec const& s) { return b_.take<T>(s, *store_); }
  [[nodiscard]] tensor_view<T const, 1> vec(tensor_spec const& s) { return {ptr(s), {s.shape[0]}}; }
  [[nodiscard]] tensor_view<T const, 2> mat(tensor_spec const& s) { return {ptr(s), {s.shape[0], s.shape[1]}}; }
  [[nodiscard]] std::optional<tensor_view<T const, 1>> opt_vec(std::optional<tensor_spec> const& s) {
    if (!s) return std::nullopt;
    return vec(*s);
  }
  [[nodiscard]] linear_weights<T> linear(tensor_spec const& w, std::optional<tensor_spec> const& b) {
    return {mat(w), opt_vec(b)};
  }
  [[nodiscard]] std::shared_ptr<converted_tensors<T> const> store() const { return store_; }

 private:
  weight_binder& b_;
  std::shared_ptr<converted_tensors<T>> store_;
};

/// The one naming whose key tensor `ckpt` holds; nothing if none; an error if several.
template <class Naming>
[[nodiscard]] std::optional<Naming> detect_one(checkpoint const& ckpt, std::initializer_list<Naming> namings,
                                               std::string (*key)(Naming), char const* what) {
  std::vector<Naming> found;
  for (Naming n : namings)
    if (ckpt.contains(key(n))) found.push_back(n);
  if (found.empty()) return std::nullopt;
  if (found.size() > 1) {
    std::string names;
    for (Naming n : found) names += (names.empty() ? "" : ", ") + std::string(name_of(n));
    TESSERA_FAIL(checkpoint_label(ckpt), ": holds ", what, " tensors of several namings (", names,
                 "); choose one in bind_options");
  }
  return found.front();
}
[[nodiscard]] inline std::string decoder_key(decoder_naming n) { return decoder_names(n).embed; }
[[nodiscard]] inline std::string vision_key(vision_naming n) { return vision_prefix(n) + "patch_embed.proj.weight"; }
[[nodiscard]] inline std::string projector_key(projector_naming n) { return projector_prefix(n) + "ln_q.weight"; }

}  // namespace detail

/// The decoder naming of `ckpt`, from which embedding tensor it holds (model.embed_tokens.weight,
/// llm.lm.embed_in.weight, llm.model.embed_tokens.weight); nothing if none. Throws if several.
[[nodiscard]] inline std::optional<decoder_naming> detect_decoder_naming(checkpoint const& ckpt) {
  return detail::detect_one(
      ckpt, {decoder_naming::hf_qwen2, decoder_naming::points_custom_llama, decoder_naming::points_qwen2},
      &detail::decoder_key, "decoder embedding");
}
/// The ViT naming of `ckpt` (visual.patch_embed.proj.weight / vision_encoder.patch_embed.proj.weight).
[[nodiscard]] inline std::optional<vision_naming> detect_vision_naming(checkpoint const& ckpt) {
  return detail::detect_one(ckpt, {vision_naming::qwen2_vl, vision_naming::points}, &detail::vision_key,
                            "ViT patch embedding");
}
/// The PatchMerger naming of `ckpt` (visual.merger.ln_q.weight / vision_projector.ln_q.weight).
[[nodiscard]] inline std::optional<projector_naming> detect_projector_naming(checkpoint const& ckpt) {
  return detail::detect_one(ckpt, {projector_naming::qwen2_vl_merger, projector_naming::points},
                            &detail::projector_key, "PatchMerger");
}

/// Every tensor a decoder with this config and naming stores (lm_head omitted when tied): the
/// names and shapes a checkpoint must hold, e.g. to compare with a state dict or an index file.
[[nodiscard]] inline std::vector<tensor_spec> decoder_tensor_specs(decoder_config const& cfg, decoder_naming naming) {
  detail::decoder_specs const s = detail::make_decoder_specs(cfg, naming);
  std::vector<tensor_spec> out{s.embed};
  auto add = [&](std::optional<tensor_spec> const& t) {
    if (t) out.push_back(*t);
  };
  for (detail::decoder_layer_specs const& l : s.layers) {
    for (auto const* t : {&l.input_norm, &l.q, &l.o, &l.post_norm, &l.down}) out.push_back(*t);
    for (auto const* t : {&l.input_norm_bias, &l.q_bias, &l.k, &l.k_bias, &l.v, &l.v_bias, &l.kv, &l.kv_bias, &l.o_bias,
                          &l.post_norm_bias, &l.gate, &l.gate_bias, &l.up, &l.up_bias, &l.up_gate, &l.up_gate_bias,
                          &l.down_bias})
      add(*t);
  }
  out.push_back(s.final_norm);
  add(s.final_norm_bias);
  add(s.lm_head);
  return out;
}
/// Every tensor of the ViT (patch embedding and blocks) a checkpoint must hold.
[[nodiscard]] inline std::vector<tensor_spec> vision_encoder_tensor_specs(qwen2_vl_vision_config const& cfg,
                                                                          vision_naming naming) {
  detail::vision_specs const s = detail::make_vision_specs(cfg, naming);
  std::vector<tensor_spec> out{s.patch_embed};
  for (detail::vision_block_specs const& b : s.blocks)
    for (auto const* t : {&b.norm1_w, &b.norm1_b, &b.qkv_w, &b.qkv_b, &b.proj_w, &b.proj_b, &b.norm2_w, &b.norm2_b,
                          &b.fc1_w, &b.fc1_b, &b.fc2_w, &b.fc2_b})
      out.push_back(*t);
  return out;
}
/// The ViT tensors a checkpoint may hold that no block reads (see bind_vision_encoder).
[[nodiscard]] inline std::vector<unused_spec> vision_encoder_unused_specs(qwen2_vl_vision_config const& cfg,
                                                                          vision_naming naming) {
  return detail::make_vision_specs(cfg, naming).unused;
}
/// Every tensor of a PatchMerger a checkpoint must hold.
[[nodiscard]] inline std::vector<tensor_spec> patch_merger_tensor_specs(patch_merger_config const& cfg,
                                                                        projector_naming naming) {
  detail::projector_specs const s = detail::make_projector_specs(cfg, naming);
  return {s.ln_w, s.ln_b, s.fc1_w, s.fc1_b, s.fc2_w, s.fc2_b};
}

/// Binds a decoder. `naming` nothing = detect_decoder_naming (an error if the checkpoint holds no
/// decoder). For CustomLlama names, k / v are strided views into key_value_dense and gate / up
/// are the halves of dense_h_to_4h (up first), with the fused tensors exposed too. Tied heads
/// (cfg.tie_word_embeddings): lm_head views the embedding; a stored head tensor is accepted only
/// if it is byte-identical to the embedding (then skipped as a duplicate), since the reference
/// would overwrite one with the other on load. Registers the layers' rotary inv_freq buffers as
/// known-unused. Throws tessera::error for missing tensors and wrong shapes or dtypes.
template <weight_type T>
[[nodiscard]] decoder_weights<T> bind_decoder(weight_binder& b, decoder_config const& cfg,
                                              std::optional<decoder_naming> naming = std::nullopt) {
  if (!naming) naming = detect_decoder_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no decoder (looked for model.embed_tokens.weight, llm.lm.embed_in.weight, "
                            "llm.model.embed_tokens.weight)");
  detail::decoder_specs const s = detail::make_decoder_specs(cfg, *naming);
  detail::part_binder<T> pb(b);
  index_t const d = cfg.d_model, hd = cfg.head_dim, nkv = cfg.n_kv_heads, ff = cfg.d_ff;

  decoder_weights<T> w;
  w.naming = *naming;
  w.embed = pb.mat(s.embed);
  w.layers.reserve(s.layers.size());
  for (detail::decoder_layer_specs const& l : s.layers) {
    decoder_layer_weights<T> lw;
    lw.input_norm = {pb.vec(l.input_norm), pb.opt_vec(l.input_norm_bias)};
    lw.q = pb.linear(l.q, l.q_bias);
    if (l.kv) {
      // key_value_dense viewed as [n_kv, 2, head_dim, d_model]: K = [:, 0], V = [:, 1].
      linear_weights<T> const kv = pb.linear(*l.kv, l.kv_bias);
      lw.kv_fused = kv;
      std::array<index_t, 3> const ext{nkv, hd, d}, str{2 * hd * d, d, 1};
      lw.k.weight = tensor_view<T const, 3>(kv.weight.data(), ext, str);
      lw.v.weight = tensor_view<T const, 3>(kv.weight.data() + hd * d, ext, str);
      if (kv.bias) {
        std::array<index_t, 2> const bext{nkv, hd}, bstr{2 * hd, 1};
        lw.k.bias = tensor_view<T const, 2>(kv.bias->data(), bext, bstr);
        lw.v.bias = tensor_view<T const, 2>(kv.bias->data() + hd, bext, bstr);
      }
    } else {
      auto const head_split = [&](tensor_spec const& ws, std::optional<tensor_spec> const& bs) {
        kv_head_weights<T> r;
        r.weight = tensor_view<T const, 3>(pb.ptr(ws), {nkv, hd, d});
        if (bs) r.bias = tensor_view<T const, 2>(pb.ptr(*bs), {nkv, hd});
        return r;
      };
      lw.k = head_split(*l.k, l.k_bias);
      lw.v = head_split(*l.v, l.v_bias);
    }
    lw.o = pb.linear(l.o, l.o_bias);
    lw.post_norm = {pb.vec(l.post_norm), pb.opt_vec(l.post_norm_bias)};
    if (l.up_gate) {
      // dense_h_to_4h = [up; gate]: CustomLlama's swiglu computes x1 * silu(x2) on its two halves.
      linear_weights<T> const ug = pb.linear(*l.up_gate, l.up_gate_bias);
      lw.up_gate_fused = ug;
      lw.up.weight = tensor_view<T const, 2>(ug.weight.data(), {ff, d});
      lw.gate.weight = tensor_view<T const, 2>(ug.weight.data() + ff * d, {ff, d});
      if (ug.bias) {
        lw.up.bias = tensor_view<T const, 1>(ug.bias->data(), {ff});
        lw.gate.bias = tensor_view<T const, 1>(ug.bias->data() + ff, {ff});
      }
    } else {
      lw.gate = pb.linear(*l.gate, l.gate_bias);
      lw.up = pb.linear(*l.up, l.up_bias);
    }
    lw.down = pb.linear(l.down, l.down_bias);
    b.allow_unused(l.inv_freq);
    w.layers.push_back(lw);
  }
  w.final_norm = {pb.vec(s.final_norm), pb.opt_vec(s.final_norm_bias)};
  if (s.lm_head) {
    w.lm_head = pb.mat(*s.lm_head);
  } else {
    w.lm_head = w.embed;
    w.lm_head_tied = true;
    std::string const head = detail::decoder_names(*naming).head;
    if (b.contains(head)) {
      checkpoint const& ck = b.source();
      tensor_info const& hi = ck.info(head);
      tensor_info const& ei = ck.info(s.embed.name);
      std::span<std::byte const> const hb = ck.bytes(head), eb = ck.bytes(s.embed.name);
      bool const same = hi.type == ei.type && hi.shape == ei.shape &&
                        std::equal(hb.begin(), hb.end(), eb.begin(), eb.end());
      if (!same)
        TESSERA_FAIL(b.label(), ": the config ties the LM head to the embedding (tie_word_embeddings), but the "
                     "checkpoint stores ", detail::quote_name(head), " and it differs from ",
                     detail::quote_name(s.embed.name), "; check tie_word_embeddings (the reference would overwrite "
                     "one with the other on load)");
      b.skip(head, "tied LM head: byte-identical duplicate of " + s.embed.name);
    }
  }
  w.converted = pb.store();
  return w;
}

/// Binds the Qwen2-VL ViT (patch embedding + blocks). `naming` nothing = detect_vision_naming.
/// Registers the rotary inv_freq buffer and, for POINTS names, the unused vision_encoder.merger.*
/// as known-unused.
template <weight_type T>
[[nodiscard]] vision_encoder_weights<T> bind_vision_encoder(weight_binder& b, qwen2_vl_vision_config const& cfg,
                                                            std::optional<vision_naming> naming = std::nullopt) {
  if (!naming) naming = detect_vision_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no Qwen2-VL ViT (looked for visual.patch_embed.proj.weight, "
                            "vision_encoder.patch_embed.proj.weight)");
  detail::vision_specs const s = detail::make_vision_specs(cfg, *naming);
  detail::part_binder<T> pb(b);
  vision_encoder_weights<T> w;
  w.naming = *naming;
  // Conv3d weight [E, C, T, P, P] is row-major, so its rows are the flattened (c, t, py, px) kernels.
  w.patch_embed = tensor_view<T const, 2>(pb.ptr(s.patch_embed), {cfg.embed_dim, cfg.patch_dim});
  w.blocks.reserve(s.blocks.size());
  for (detail::vision_block_specs const& k : s.blocks) {
    vision_block_weights<T> bw;
    bw.norm1 = {pb.vec(k.norm1_w), pb.vec(k.norm1_b)};
    bw.qkv = {pb.mat(k.qkv_w), pb.vec(k.qkv_b)};
    bw.proj = {pb.mat(k.proj_w), pb.vec(k.proj_b)};
    bw.norm2 = {pb.vec(k.norm2_w), pb.vec(k.norm2_b)};
    bw.fc1 = {pb.mat(k.fc1_w), pb.vec(k.fc1_b)};
    bw.fc2 = {pb.mat(k.fc2_w), pb.vec(k.fc2_b)};
    w.blocks.push_back(bw);
  }
  for (unused_spec const& u : s.unused) b.allow_unused(u);
  w.converted = pb.store();
  return w;
}

/// Binds a PatchMerger: POINTS' vision_projector, or the Qwen2-VL tower's visual.merger (config
/// from vision_merger_config). `naming` nothing = detect_projector_naming.
template <weight_type T>
[[nodiscard]] patch_merger_weights<T> bind_patch_merger(weight_binder& b, patch_merger_config const& cfg,
                                                        std::optional<projector_naming> naming = std::nullopt) {
  if (!naming) naming = detect_projector_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no PatchMerger (looked for vision_projector.ln_q.weight, "
                            "visual.merger.ln_q.weight)");
  detail::projector_specs const s = detail::make_projector_specs(cfg, *naming);
  detail::part_binder<T> pb(b);
  patch_merger_weights<T> w;
  w.naming = *naming;
  w.ln_q = {pb.vec(s.ln_w), pb.vec(s.ln_b)};
  w.fc1 = {pb.mat(s.fc1_w), pb.vec(s.fc1_b)};
  w.fc2 = {pb.mat(s.fc2_w), pb.vec(s.fc2_b)};
  w.converted = pb.store();
  return w;
}

/// Options of the whole-model bind functions.
struct bind_options {
  dtype_policy dtypes = dtype_policy::exact;
  /// Skip (and list in the report) tensors the reference also leaves unused: RoPE inv_freq
  /// buffers, POINTS' vision_encoder.merger.*. Off: they are errors like any unbound tensor.
  bool ignore_known_unused = true;
  std::optional<decoder_naming> decoder;      ///< nothing = detect from the tensor names
  std::optional<vision_naming> vision;        ///< nothing = detect
  std::optional<projector_naming> projector;  ///< nothing = detect
};

template <weight_type T>
struct qwen2_weights {
  decoder_weights<T> decoder;
  binding_report report;
};

template <weight_type T>
struct points15_weights {
  decoder_weights<T> decoder;
  vision_encoder_weights<T> vision;
  patch_merger_weights<T> projector;
  binding_report report;
};

/// Binds a whole Qwen2ForCausalLM checkpoint; every stored tensor must be bound or known-unused.
template <weight_type T>
[[nodiscard]] qwen2_weights<T> bind_qwen2(checkpoint const& ckpt, qwen2_config const& cfg,
                                          bind_options const& opt = {}) {
  weight_binder b(ckpt, opt.dtypes, opt.ignore_known_unused);
  decoder_weights<T> dec = bind_decoder<T>(b, cfg.decoder, opt.decoder);
  binding_report rep = b.finish();
  return {std::move(dec), std::move(rep)};
}

/// Binds a whole POINTS1.5 checkpoint (either LLM naming): decoder, ViT, projector; every stored
/// tensor must be bound or known-unused.
template <weight_type T>
[[nodiscard]] points15_weights<T> bind_points15(checkpoint const& ckpt, points15_config const& cfg,
                                                bind_options const& opt = {}) {
  weight_binder b(ckpt, opt.dtypes, opt.ignore_known_unused);
  decoder_weights<T> dec = bind_decoder<T>(b, cfg.decoder, opt.decoder);
  vision_encoder_weights<T> vis = bind_vision_encoder<T>(b, cfg.vision, opt.vision);
  patch_merger_weights<T> proj = bind_patch_merger<T>(b, cfg.projector, opt.projector);
  binding_report rep = b.finish();
  return {std::move(dec), std::move(vis), std::move(proj), std::move(rep)};
}

}  // namespace tessera::io
