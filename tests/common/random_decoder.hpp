// SPDX-License-Identifier: Apache-2.0
// A Qwen2 decoder with random weights built in memory (no checkpoint): for the decoder's unit
// tests and for bench_decoder at the real Qwen2.5 shapes. Values are uniform with a given
// standard deviation, from a counter-based hash, so billions of them fill in seconds on every
// thread and the same seed gives the same weights whatever the thread count.
#pragma once

#include <tessera/core/buffer.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/quant/format.hpp>

#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

namespace tessera::test {

/// splitmix64 of (seed, index): one independent 64-bit value per element.
[[nodiscard]] inline std::uint64_t hash64(std::uint64_t seed, std::uint64_t i) noexcept {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// n values, uniform with mean `mean` and standard deviation `std`, rounded to T.
template <weight_type T>
[[nodiscard]] host_buffer<T> random_buffer(index_t n, std::uint64_t seed, float std, float mean = 0.0f) {
  host_buffer<T> b(n);
  float const half_width = std * 1.7320508f;  // U(-a, a) has std a / sqrt(3)
  T* const p = b.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > (1 << 20))
#endif
  for (index_t i = 0; i < n; ++i) {
    double const u = static_cast<double>(hash64(seed, static_cast<std::uint64_t>(i)) >> 11) * 0x1.0p-53;  // [0, 1)
    p[i] = from_float<T>(mean + half_width * static_cast<float>(2.0 * u - 1.0));
  }
  return b;
}

/// Random weights for a decoder_config, and views of them in both layouts the decoder reads.
template <weight_type T>
struct random_decoder {
  lm::decoder_config config;
  lm::decoder_weights<T> hf;                   ///< separate q / k / v and gate / up (HF names)
  std::optional<lm::decoder_weights<T>> fused; ///< the same values in CustomLlama's fused layout
  std::shared_ptr<io::converted_tensors<T>> storage = std::make_shared<io::converted_tensors<T>>();
  std::shared_ptr<std::deque<quant::quantized_matrix>> quantized = std::make_shared<std::deque<quant::quantized_matrix>>();
};

/// Weights with std `std` (norm weights 1 +- 0.1, biases std 0.1 where the config has them).
/// With `fused`, also builds CustomLlama's key_value_dense (per KV head: its K rows, then its V
/// rows) and dense_h_to_4h ([up; gate]) from the same values. With a quantized `format`, each
/// linear layer's weight is quantized (groups of 32) as soon as it is drawn and its dense copy
/// dropped (the views left empty), so a 7B shape needs no room for its bf16 weights; the same
/// seed gives the weights that quantize_decoder would quantize.
template <weight_type T>
[[nodiscard]] random_decoder<T> make_random_decoder(lm::decoder_config const& c, std::uint64_t seed, float std = 0.02f,
                                                    bool fused = false,
                                                    quant::weight_format format = quant::weight_format::dense) {
  random_decoder<T> r;
  r.config = c;
  std::uint64_t next_seed = seed;
  auto& store = r.storage->buffers;
  auto add = [&](index_t n, float s, float mean = 0.0f) -> T* {
    store.push_back(random_buffer<T>(n, hash64(next_seed++, 0x5EED), s, mean));
    return store.back().data();
  };
  auto copy = [&](index_t n) -> T* {
    store.emplace_back(n);
    return store.back().data();
  };
  TESSERA_CHECK(!fused || format == quant::weight_format::dense, "make_random_decoder: fused weights are dense");
  bool const q = format != quant::weight_format::dense;
  // A linear layer's weight: drawn, then (quantized formats) quantized and its dense copy dropped.
  auto weight = [&](index_t rows, index_t cols, quant::qmatrix& out) -> T* {
    T* const p = add(rows * cols, std);
    if (!q) return p;
    r.quantized->push_back(quant::quantize(tensor_view<T const, 2>(p, {rows, cols}), format));
    out = r.quantized->back().view();
    store.pop_back();
    return nullptr;
  };
  index_t const d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.d_ff, hd = c.head_dim, G = c.n_kv_heads;
  using lin = nn::linear_weights<T>;
  auto vec = [](T* p, index_t n) { return tensor_view<T const, 1>(p, {n}); };
  auto mat = [](T* p, index_t rows, index_t cols) { return tensor_view<T const, 2>(p, {rows, cols}); };
  auto norm = [&]() {
    nn::norm_weights<T> nw{vec(add(d, 0.1f, 1.0f), d), std::nullopt};
    if (c.norm == nn::norm_kind::layer_norm) nw.bias = vec(add(d, 0.1f), d);
    return nw;
  };
  r.hf.embed = mat(add(c.vocab_size * d, std), c.vocab_size, d);
  if (fused) r.fused.emplace();
  for (index_t l = 0; l < c.n_layers; ++l) {
    lm::decoder_layer_weights<T> w;
    w.input_norm = norm();
    w.q.weight = mat(weight(qd, d, w.q.quantized), q ? 0 : qd, q ? 0 : d);
    if (c.qkv_bias) w.q.bias = vec(add(qd, 0.1f), qd);
    T* const kw = weight(kvd, d, w.k.quantized);
    T* const vw = weight(kvd, d, w.v.quantized);
    T* const kb = c.qkv_bias ? add(kvd, 0.1f) : nullptr;
    T* const vb = c.qkv_bias ? add(kvd, 0.1f) : nullptr;
    if (!q) {
      w.k.weight = tensor_view<T const, 3>(kw, {G, hd, d});
      w.v.weight = tensor_view<T const, 3>(vw, {G, hd, d});
    }
    if (kb) w.k.bias = tensor_view<T const, 2>(kb, {G, hd});
    if (vb) w.v.bias = tensor_view<T const, 2>(vb, {G, hd});
    auto linear = [&](index_t rows, index_t cols, bool bias) {
      lin l;
      l.weight = mat(weight(rows, cols, l.quantized), q ? 0 : rows, q ? 0 : cols);
      if (bias) l.bias = vec(add(rows, 0.1f), rows);
      return l;
    };
    w.o = linear(d, qd, c.o_bias);
    w.post_norm = norm();
    w.gate = linear(ff, d, c.gate_up_bias);
    w.up = linear(ff, d, c.gate_up_bias);
    w.down = linear(d, ff, c.down_bias);
    r.hf.layers.push_back(w);
    if (fused) {
      lm::decoder_layer_weights<T> f = w;
      T* const kv = copy(2 * kvd * d);
      for (index_t g = 0; g < G; ++g)
        for (index_t i = 0; i < hd; ++i)
          for (index_t j = 0; j < d; ++j) {
            kv[((2 * g) * hd + i) * d + j] = kw[(g * hd + i) * d + j];
            kv[((2 * g + 1) * hd + i) * d + j] = vw[(g * hd + i) * d + j];
          }
      f.kv_fused = lin{mat(kv, 2 * kvd, d), std::nullopt};
      if (c.qkv_bias) {
        T* const kvb = copy(2 * kvd);
        for (index_t g = 0; g < G; ++g)
          for (index_t i = 0; i < hd; ++i) {
            kvb[2 * g * hd + i] = kb[g * hd + i];
            kvb[(2 * g + 1) * hd + i] = vb[g * hd + i];
          }
        f.kv_fused->bias = vec(kvb, 2 * kvd);
      }
      T* const ug = copy(2 * ff * d);
      std::copy_n(w.up.weight.data(), ff * d, ug);
      std::copy_n(w.gate.weight.data(), ff * d, ug + ff * d);
      f.up_gate_fused = lin{mat(ug, 2 * ff, d), std::nullopt};
      if (c.gate_up_bias) {
        T* const ugb = copy(2 * ff);
        std::copy_n(w.up.bias->data(), ff, ugb);
        std::copy_n(w.gate.bias->data(), ff, ugb + ff);
        f.up_gate_fused->bias = vec(ugb, 2 * ff);
      }
      r.fused->layers.push_back(f);
    }
  }
  r.hf.final_norm = norm();
  if (c.tie_word_embeddings) {
    r.hf.lm_head = r.hf.embed;
    r.hf.lm_head_tied = true;
  } else {
    r.hf.lm_head = mat(add(c.vocab_size * d, std), c.vocab_size, d);
  }
  r.hf.keep_alive = q ? std::shared_ptr<void const>(std::make_shared<std::pair<decltype(r.storage), decltype(r.quantized)>>(
                             r.storage, r.quantized))
                       : std::shared_ptr<void const>(r.storage);
  if (fused) {
    r.fused->embed = r.hf.embed;
    r.fused->final_norm = r.hf.final_norm;
    r.fused->lm_head = r.hf.lm_head;
    r.fused->lm_head_tied = r.hf.lm_head_tied;
    r.fused->keep_alive = r.storage;
  }
  return r;
}

/// A decoder_config with the given sizes and Qwen2.5's other settings (RMSNorm eps 1e-6, RoPE
/// base 1e6, q / k / v biases, SiLU).
[[nodiscard]] inline lm::decoder_config qwen2_config_of(index_t vocab, index_t d_model, index_t n_layers, index_t n_heads,
                                                        index_t n_kv_heads, index_t d_ff, bool tied) {
  lm::decoder_config c;
  c.vocab_size = vocab;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = d_model / n_heads;
  c.rotary_dim = c.head_dim;
  c.d_ff = d_ff;
  c.max_positions = 32768;
  c.rope_theta = 1e6;
  c.norm_eps = 1e-6;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace tessera::test
