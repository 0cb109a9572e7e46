// SPDX-License-Identifier: Apache-2.0
// The checkpoint names of a Qwen2-style decoder and its binder: transformers' Qwen2ForCausalLM
// (model.layers.N.self_attn.q_proj, ...), POINTS1.5's CustomLlama (llm.lm.layers.N.attention.
// query_dense / key_value_dense, mlp.dense_h_to_4h; spec section 4.2) and the 2025 Qwen2-based
// POINTS variant (llm.model.layers.N...). Binding gives lm::decoder_weights: zero-copy views into
// the mapped checkpoint (or converted copies the weights keep alive).
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/config_json.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/lm/decoder_config.hpp>
#include <tessera/lm/decoder_weights.hpp>
#include <tessera/model/qwen2/config.hpp>
#include <tessera/nn/linear.hpp>
#include <tessera/nn/norm.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::model {

/// Tensor names of a decoder.
enum class decoder_naming {
  hf_qwen2,             ///< transformers Qwen2ForCausalLM: model.embed_tokens, model.layers.N.self_attn.q_proj, lm_head
  points_custom_llama,  ///< POINTS1.5 (Dec 2024): llm.lm.embed_in, llm.lm.layers.N.attention.query_dense /
                        ///< key_value_dense / dense, mlp.dense_h_to_4h / dense_4h_to_h, llm.embed_out
  points_qwen2,         ///< 2025 Qwen2-based POINTS variant: llm.model.layers.N.self_attn.q_proj, llm.lm_head
};

[[nodiscard]] constexpr std::string_view name_of(decoder_naming n) noexcept {
  switch (n) {
    case decoder_naming::hf_qwen2: return "hf_qwen2";
    case decoder_naming::points_custom_llama: return "points_custom_llama";
    case decoder_naming::points_qwen2: return "points_qwen2";
  }
  return "?";
}

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

/// The specs of one layer; optional members are absent when the config / naming has no such tensor.
struct decoder_layer_specs {
  io::tensor_spec input_norm;
  std::optional<io::tensor_spec> input_norm_bias;
  io::tensor_spec q;
  std::optional<io::tensor_spec> q_bias;
  std::optional<io::tensor_spec> k, k_bias, v, v_bias;  // HF names
  std::optional<io::tensor_spec> kv, kv_bias;           // CustomLlama key_value_dense
  io::tensor_spec o;
  std::optional<io::tensor_spec> o_bias;
  io::tensor_spec post_norm;
  std::optional<io::tensor_spec> post_norm_bias;
  std::optional<io::tensor_spec> gate, gate_bias, up, up_bias;  // HF names
  std::optional<io::tensor_spec> up_gate, up_gate_bias;         // CustomLlama dense_h_to_4h
  io::tensor_spec down;
  std::optional<io::tensor_spec> down_bias;
  io::unused_spec inv_freq;
};

struct decoder_specs {
  io::tensor_spec embed;
  std::vector<decoder_layer_specs> layers;
  io::tensor_spec final_norm;
  std::optional<io::tensor_spec> final_norm_bias;
  std::optional<io::tensor_spec> lm_head;  // absent when tied
};

/// Refuses a hand-made decoder_config the specs cannot describe (configs from the readers always pass).
inline void check_decoder_config(lm::decoder_config const& c) {
  TESSERA_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                    c.head_dim > 0 && c.d_ff > 0,
                "model::bind_decoder: decoder_config has a non-positive size (vocab ", c.vocab_size, ", d_model ", c.d_model,
                ", layers ", c.n_layers, ", heads ", c.n_heads, "/", c.n_kv_heads, ", head_dim ", c.head_dim, ", d_ff ",
                c.d_ff, ")");
  TESSERA_CHECK(c.n_heads % c.n_kv_heads == 0, "model::bind_decoder: decoder_config n_heads ", c.n_heads,
                " is not a multiple of n_kv_heads ", c.n_kv_heads);
  TESSERA_CHECK(c.n_layers <= io::config_limits::max_layers && c.d_model <= io::config_limits::max_d_model &&
                    c.d_ff <= io::config_limits::max_d_ff && c.vocab_size <= io::config_limits::max_vocab &&
                    c.n_heads <= io::config_limits::max_heads && c.head_dim <= io::config_limits::max_d_model,
                "model::bind_decoder: decoder_config sizes exceed io::config_limits");
}

[[nodiscard]] inline decoder_specs make_decoder_specs(lm::decoder_config const& c, decoder_naming n) {
  check_decoder_config(c);
  decoder_prefixes const p = decoder_names(n);
  bool const custom = n == decoder_naming::points_custom_llama;
  bool const layer_norm = c.norm == nn::norm_kind::layer_norm;
  std::string const tag = std::string(" (") + std::string(name_of(n)) + " naming)";
  index_t const d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff;
  auto spec = [](std::string name, std::vector<index_t> shape, std::string what) {
    return io::tensor_spec{std::move(name), std::move(shape), std::move(what)};
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


[[nodiscard]] inline std::string decoder_key(decoder_naming n) { return decoder_names(n).embed; }

}  // namespace detail

/// The decoder naming of `ckpt`, from which embedding tensor it holds (model.embed_tokens.weight,
/// llm.lm.embed_in.weight, llm.model.embed_tokens.weight); nothing if none. Throws if several.
[[nodiscard]] inline std::optional<decoder_naming> detect_decoder_naming(io::checkpoint const& ckpt) {
  return io::detect_naming(
      ckpt, {decoder_naming::hf_qwen2, decoder_naming::points_custom_llama, decoder_naming::points_qwen2},
      &detail::decoder_key, "decoder embedding");
}

/// Every tensor a decoder with this config and naming stores (lm_head omitted when tied): the
/// names and shapes a checkpoint must hold, e.g. to compare with a state dict or an index file.
[[nodiscard]] inline std::vector<io::tensor_spec> decoder_tensor_specs(lm::decoder_config const& cfg, decoder_naming naming) {
  detail::decoder_specs const s = detail::make_decoder_specs(cfg, naming);
  std::vector<io::tensor_spec> out{s.embed};
  auto add = [&](std::optional<io::tensor_spec> const& t) {
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

/// Binds a decoder. `naming` nothing = detect_decoder_naming (an error if the checkpoint holds no
/// decoder). For CustomLlama names, k / v are strided views into key_value_dense and gate / up
/// are the halves of dense_h_to_4h (up first), with the fused tensors exposed too. Tied heads
/// (cfg.tie_word_embeddings): lm_head views the embedding; a stored head tensor is accepted only
/// if it is byte-identical to the embedding (then skipped as a duplicate), since the reference
/// would overwrite one with the other on load. Registers the layers' rotary inv_freq buffers as
/// known-unused. A linear layer (or an untied LM head) stored quantized (<base>.qweight and
/// <base>.scales, docs/quantization.md) is bound as such, mmapped. Throws tessera::error for
/// missing tensors and wrong shapes or dtypes.
template <weight_type T>
[[nodiscard]] lm::decoder_weights<T> bind_decoder(io::weight_binder& b, lm::decoder_config const& cfg,
                                              std::optional<decoder_naming> naming = std::nullopt) {
  if (!naming) naming = detect_decoder_naming(b.source());
  if (!naming)
    TESSERA_FAIL(b.label(), ": holds no decoder (looked for model.embed_tokens.weight, llm.lm.embed_in.weight, "
                            "llm.model.embed_tokens.weight)");
  detail::decoder_specs const s = detail::make_decoder_specs(cfg, *naming);
  io::part_binder<T> pb(b);
  index_t const d = cfg.d_model, hd = cfg.head_dim, nkv = cfg.n_kv_heads, ff = cfg.d_ff;

  lm::decoder_weights<T> w;
  w.embed = pb.mat(s.embed);
  w.layers.reserve(s.layers.size());
  for (detail::decoder_layer_specs const& l : s.layers) {
    lm::decoder_layer_weights<T> lw;
    lw.input_norm = {pb.vec(l.input_norm), pb.opt_vec(l.input_norm_bias)};
    lw.q = pb.linear(l.q, l.q_bias);
    if (l.kv) {
      // key_value_dense viewed as [n_kv, 2, head_dim, d_model]: K = [:, 0], V = [:, 1].
      nn::linear_weights<T> const kv = pb.linear(*l.kv, l.kv_bias);
      lw.kv_fused = kv;
      std::array<index_t, 3> const ext{nkv, hd, d}, str{2 * hd * d, d, 1};
      if (kv.quantized.empty()) {  // (stored quantized: the decoder reads the fused matrix only)
        lw.k.weight = tensor_view<T const, 3>(kv.weight.data(), ext, str);
        lw.v.weight = tensor_view<T const, 3>(kv.weight.data() + hd * d, ext, str);
      }
      if (kv.bias) {
        std::array<index_t, 2> const bext{nkv, hd}, bstr{2 * hd, 1};
        lw.k.bias = tensor_view<T const, 2>(kv.bias->data(), bext, bstr);
        lw.v.bias = tensor_view<T const, 2>(kv.bias->data() + hd, bext, bstr);
      }
    } else {
      auto const head_split = [&](io::tensor_spec const& ws, std::optional<io::tensor_spec> const& bs) {
        lm::kv_head_weights<T> r;
        if (auto q = pb.quantized(ws))
          r.quantized = *q;
        else
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
      nn::linear_weights<T> const ug = pb.linear(*l.up_gate, l.up_gate_bias);
      lw.up_gate_fused = ug;
      if (ug.quantized.empty()) {
        lw.up.weight = tensor_view<T const, 2>(ug.weight.data(), {ff, d});
        lw.gate.weight = tensor_view<T const, 2>(ug.weight.data() + ff * d, {ff, d});
      }
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
    if (auto q = pb.quantized(*s.lm_head))
      w.lm_head_quantized = *q;
    else
      w.lm_head = pb.mat(*s.lm_head);
  } else {
    w.lm_head = w.embed;
    w.lm_head_tied = true;
    std::string const head = detail::decoder_names(*naming).head;
    if (b.contains(head)) {
      io::checkpoint const& ck = b.source();
      io::tensor_info const& hi = ck.info(head);
      io::tensor_info const& ei = ck.info(s.embed.name);
      std::span<std::byte const> const hb = ck.bytes(head), eb = ck.bytes(s.embed.name);
      bool const same = hi.type == ei.type && hi.shape == ei.shape &&
                        std::equal(hb.begin(), hb.end(), eb.begin(), eb.end());
      if (!same)
        TESSERA_FAIL(b.label(), ": the config ties the LM head to the embedding (tie_word_embeddings), but the "
                     "checkpoint stores ", io::detail::quote_name(head), " and it differs from ",
                     io::detail::quote_name(s.embed.name), "; check tie_word_embeddings (the reference would overwrite "
                     "one with the other on load)");
      b.skip(head, "tied LM head: byte-identical duplicate of " + s.embed.name);
    }
  }
  w.keep_alive = pb.keep_alive();
  return w;
}


/// Options of bind_qwen2.
struct qwen2_bind_options {
  io::dtype_policy dtypes = io::dtype_policy::exact;
  /// Skip (and list in the report) tensors the reference also leaves unused (RoPE inv_freq
  /// buffers). Off: they are errors like any unbound tensor.
  bool ignore_known_unused = true;
  std::optional<decoder_naming> decoder;  ///< nothing = detect from the tensor names
};

/// A whole Qwen2ForCausalLM checkpoint, bound.
template <weight_type T>
struct qwen2_weights {
  decoder_naming naming = decoder_naming::hf_qwen2;  ///< the naming found (or asked for)
  lm::decoder_weights<T> decoder;
  io::binding_report report;
};

/// Binds a whole Qwen2ForCausalLM checkpoint; every stored tensor must be bound or known-unused.
template <weight_type T>
[[nodiscard]] qwen2_weights<T> bind_qwen2(io::checkpoint const& ckpt, qwen2_config const& cfg,
                                          qwen2_bind_options const& opt = {}) {
  io::weight_binder b(ckpt, opt.dtypes, opt.ignore_known_unused);
  std::optional<decoder_naming> const naming = opt.decoder ? opt.decoder : detect_decoder_naming(ckpt);
  lm::decoder_weights<T> dec = bind_decoder<T>(b, cfg.decoder, naming);
  io::binding_report rep = b.finish();
  return {*naming, std::move(dec), std::move(rep)};
}

}  // namespace tessera::model
