// SPDX-License-Identifier: Apache-2.0
// lm::quantize_decoder -- a decoder's linear layers (q, k, v, o, gate, up, down, or CustomLlama's
// fused key_value_dense and dense_h_to_4h) quantized to 8 or 4 bits, and optionally the LM head;
// the embedding and the norms stay as they are. qwen2_decoder does it on construction when its
// options ask (decoder_options::quantize), so every loader offers it.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/lm/decoder_weights.hpp>
#include <tessera/quant/format.hpp>

#include <deque>
#include <memory>
#include <utility>

namespace tessera::lm {

/// What to quantize, and how.
struct quantize_options {
  /// The linear layers' format: dense keeps them as they are (stored or converted weights).
  quant::weight_format format = quant::weight_format::dense;
  /// Columns per scale: a multiple of 32 that divides every layer's input width.
  index_t group = quant::default_group;
  /// The LM head's format (a vocab x d_model GEMV per token: 28 % of Qwen2.5-0.5B's bf16 weight
  /// bytes, 58 % once the layers are 4-bit): dense (the default) leaves it as stored, q8 or q4
  /// quantizes it, independently of `format`. Its error lands on the logits directly; llama.cpp's
  /// 4-bit files keep it at 6 bits or more (8 at Qwen2.5-0.5B's width), so format q4 with an
  /// lm_head of q8 is the like-for-like mix. A tied head is quantized apart from the embedding,
  /// which stays as it is.
  quant::weight_format lm_head = quant::weight_format::dense;
};

namespace detail {
/// Owns the quantized matrices and whatever owned the weights before.
struct quantized_store {
  std::shared_ptr<void const> previous;
  std::deque<quant::quantized_matrix> matrices;  // a deque: views into earlier matrices stay valid
};
}  // namespace detail

/// `w` with its linear layers and LM head quantized as `o` says (a no-op where both are dense). The dense views
/// stay (the embedding, and a tied LM head, still need them), the decoder reads the quantized ones.
/// Throws tessera::error naming the layer for a width the group does not divide, a non-finite
/// weight, or weights that are already quantized in another format or group.
template <weight_type T>
[[nodiscard]] decoder_weights<T> quantize_decoder(decoder_weights<T> w, quantize_options const& o) {
  if (o.format == quant::weight_format::dense && o.lm_head == quant::weight_format::dense) return w;
  auto store = std::make_shared<detail::quantized_store>();
  store->previous = w.keep_alive;
  auto to = [&](std::string const& where, quant::weight_format f, tensor_view<T const, 2> m, quant::qmatrix& out) {
    if (!out.empty()) {
      TESSERA_CHECK(out.format == f && out.group == o.group, where, " is stored as ", quant::name_of(out.format),
                    " with groups of ", out.group, "; it cannot be requantized to ", quant::name_of(f),
                    " with groups of ", o.group);
      return;
    }
    quant::check_group(f, m.extent(1), o.group, where);
    store->matrices.push_back(quant::quantize(m, f, o.group));
    out = store->matrices.back().view();
  };
  auto quantize = [&](char const* what, std::size_t layer, tensor_view<T const, 2> m, quant::qmatrix& out) {
    to(std::string("lm::quantize_decoder: ") + what + " of layer " + std::to_string(layer), o.format, m, out);
  };
  for (std::size_t l = 0; l < w.layers.size() && o.format != quant::weight_format::dense; ++l) {
    decoder_layer_weights<T>& L = w.layers[l];
    quantize("q_proj", l, L.q.weight, L.q.quantized);
    quantize("o_proj", l, L.o.weight, L.o.quantized);
    quantize("down_proj", l, L.down.weight, L.down.quantized);
    if (L.kv_fused) {
      quantize("key_value_dense", l, L.kv_fused->weight, L.kv_fused->quantized);
    } else {
      for (auto [name, kv] : {std::pair{"k_proj", &L.k}, std::pair{"v_proj", &L.v}}) {
        TESSERA_CHECK(!kv->quantized.empty() || kv->weight.is_contiguous(), "lm::quantize_decoder: ", name,
                      " of layer ", l, " is not contiguous");
        tensor_view<T const, 2> const flat(kv->weight.data(),
                                           {kv->weight.extent(0) * kv->weight.extent(1), kv->weight.extent(2)});
        quantize(name, l, flat, kv->quantized);
      }
    }
    if (L.up_gate_fused) {
      quantize("dense_h_to_4h", l, L.up_gate_fused->weight, L.up_gate_fused->quantized);
    } else {
      quantize("gate_proj", l, L.gate.weight, L.gate.quantized);
      quantize("up_proj", l, L.up.weight, L.up.quantized);
    }
  }
  if (o.lm_head != quant::weight_format::dense) to("lm::quantize_decoder: the LM head", o.lm_head, w.lm_head, w.lm_head_quantized);
  w.keep_alive = std::move(store);
  return w;
}

}  // namespace tessera::lm
