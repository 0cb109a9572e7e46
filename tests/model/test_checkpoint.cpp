// SPDX-License-Identifier: Apache-2.0
// Tests for tessera/io/weight_map.hpp on small checkpoints written here, tensor by tensor, with
// names spelled out in the tests: the CustomLlama strided K/V and up/gate views on a hand-worked
// layout, zero-copy pointers into the mapping, dtype conversion on request, tied heads, known-unused
// tensors, naming detection, and one test per refusal (missing, extra, misshaped, mistyped,
// misaligned). Checkpoints saved by the reference code are in tests/golden/test_golden_config.cpp.
#include "common/mapping.hpp"
#include "common/temp_dir.hpp"

#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace lm = tessera::lm;
namespace nn = tessera::nn;
namespace backend = tessera::backend;
namespace pack = tessera::pack;
namespace vision = tessera::vision;
using tessera::exec_ctx;
using tessera::patch_grid;
using tessera::tensor_view;
using Catch::Matchers::ContainsSubstring;
using tessera::bf16;
using tessera::dtype;
using tessera::f16;
using tessera::index_t;
using tessera::test::temp_dir;

namespace {

/// Element i of the tensor with id `id`: a small integer, exact in bf16, f16 and f32, and
/// different for every (tensor, element) pair that a mix-up could confuse.
float value_of(int id, index_t i) { return static_cast<float>((id * 37 + i) % 241 - 120); }

/// Tensors to write, each filled with value_of(its id, element).
class ckpt_writer {
 public:
  /// Adds a tensor; returns its id (for value_of).
  int add(std::string name, std::vector<index_t> shape, dtype type = dtype::bf16) {
    int const id = static_cast<int>(tensors_.size()) + 1;
    index_t n = 1;
    for (index_t d : shape) n *= d;
    std::vector<std::byte> bytes(static_cast<std::size_t>(n) * tessera::size_of(type));
    for (index_t i = 0; i < n; ++i) {
      float const v = value_of(id, i);
      auto* p = bytes.data() + static_cast<std::size_t>(i) * tessera::size_of(type);
      switch (type) {
        case dtype::f32: std::memcpy(p, &v, 4); break;
        case dtype::bf16: { auto const b = bf16::from_float(v).bits; std::memcpy(p, &b, 2); break; }
        case dtype::f16: { auto const b = f16::from_float(v).bits; std::memcpy(p, &b, 2); break; }
        case dtype::i32: { auto const b = static_cast<std::int32_t>(v); std::memcpy(p, &b, 4); break; }
        default: FAIL("unsupported dtype in the test writer");
      }
    }
    ids_[name] = id;
    tensors_.push_back({std::move(name), type, std::move(shape), std::move(bytes)});
    return id;
  }
  void remove(std::string const& name) {
    tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(), [&](stored const& t) { return t.name == name; }),
                   tensors_.end());
  }
  /// Replaces a tensor's shape (bytes resized, values kept where they fit).
  void reshape(std::string const& name, std::vector<index_t> shape) {
    for (stored& t : tensors_)
      if (t.name == name) {
        index_t n = 1;
        for (index_t d : shape) n *= d;
        t.bytes.resize(static_cast<std::size_t>(n) * tessera::size_of(t.type));
        t.shape = std::move(shape);
      }
  }
  [[nodiscard]] int id(std::string const& name) const { return ids_.at(name); }
  void write(fs::path const& path) const {
    std::vector<io::tensor_entry> entries;
    for (stored const& t : tensors_) entries.push_back({t.name, t.type, t.shape, std::span<std::byte const>(t.bytes)});
    io::save_safetensors(path, std::span<io::tensor_entry const>(entries));
  }

 private:
  struct stored {
    std::string name;
    dtype type;
    std::vector<index_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<stored> tensors_;
  std::map<std::string, int> ids_;
};

/// d_model 8, 4 query heads and 2 KV heads of head_dim 2, d_ff 3, vocab 5, one layer.
lm::decoder_config tiny_decoder(lm::decoder_flavour f) {
  lm::decoder_config c;
  c.flavour = f;
  c.vocab_size = 5;
  c.d_model = 8;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  c.d_ff = 3;
  c.rotary_dim = 2;
  c.max_positions = 64;
  c.rope_theta = 1e4;
  c.norm_eps = 1e-6;
  c.qkv_bias = true;
  c.o_bias = false;
  c.gate_up_bias = false;
  c.down_bias = false;
  c.tie_word_embeddings = false;
  return c;
}

/// The tiny decoder under CustomLlama names, every name written out.
ckpt_writer custom_llama_tiny(dtype type = dtype::bf16) {
  ckpt_writer w;
  w.add("llm.lm.embed_in.weight", {5, 8}, type);
  w.add("llm.lm.layers.0.input_layernorm.weight", {8}, type);
  w.add("llm.lm.layers.0.attention.query_dense.weight", {8, 8}, type);
  w.add("llm.lm.layers.0.attention.query_dense.bias", {8}, type);
  w.add("llm.lm.layers.0.attention.key_value_dense.weight", {8, 8}, type);  // 2 KV heads x (K 2 + V 2) rows
  w.add("llm.lm.layers.0.attention.key_value_dense.bias", {8}, type);
  w.add("llm.lm.layers.0.attention.dense.weight", {8, 8}, type);
  w.add("llm.lm.layers.0.post_attention_layernorm.weight", {8}, type);
  w.add("llm.lm.layers.0.mlp.dense_h_to_4h.weight", {6, 8}, type);
  w.add("llm.lm.layers.0.mlp.dense_4h_to_h.weight", {8, 3}, type);
  w.add("llm.lm.final_layer_norm.weight", {8}, type);
  w.add("llm.embed_out.weight", {5, 8}, type);
  return w;
}

/// The tiny decoder under HF Qwen2 names.
ckpt_writer hf_tiny(dtype type = dtype::bf16) {
  ckpt_writer w;
  w.add("model.embed_tokens.weight", {5, 8}, type);
  w.add("model.layers.0.input_layernorm.weight", {8}, type);
  w.add("model.layers.0.self_attn.q_proj.weight", {8, 8}, type);
  w.add("model.layers.0.self_attn.q_proj.bias", {8}, type);
  w.add("model.layers.0.self_attn.k_proj.weight", {4, 8}, type);
  w.add("model.layers.0.self_attn.k_proj.bias", {4}, type);
  w.add("model.layers.0.self_attn.v_proj.weight", {4, 8}, type);
  w.add("model.layers.0.self_attn.v_proj.bias", {4}, type);
  w.add("model.layers.0.self_attn.o_proj.weight", {8, 8}, type);
  w.add("model.layers.0.post_attention_layernorm.weight", {8}, type);
  w.add("model.layers.0.mlp.gate_proj.weight", {3, 8}, type);
  w.add("model.layers.0.mlp.up_proj.weight", {3, 8}, type);
  w.add("model.layers.0.mlp.down_proj.weight", {8, 3}, type);
  w.add("model.norm.weight", {8}, type);
  w.add("lm_head.weight", {5, 8}, type);
  return w;
}

template <class T>
float at(tessera::tensor_view<T const, 1> const& v, index_t i) {
  return tessera::to_float(v(i));
}
template <class T>
float at(tessera::tensor_view<T const, 2> const& v, index_t i, index_t j) {
  return tessera::to_float(v(i, j));
}
template <class T>
float at(tessera::tensor_view<T const, 3> const& v, index_t i, index_t j, index_t k) {
  return tessera::to_float(v(i, j, k));
}

using tessera::test::inside_mapping;

}  // namespace

TEST_CASE("weight map: CustomLlama K/V and up/gate are views into the fused tensors (hand-worked)",
          "[io][weight_map][unit]") {
  temp_dir dir;
  ckpt_writer w = custom_llama_tiny();
  w.write(dir.path() / "model.safetensors");
  io::checkpoint const ck(dir.path());
  io::weight_binder b(ck);
  lm::decoder_weights<bf16> const dw = model::bind_decoder<bf16>(b, tiny_decoder(lm::decoder_flavour::custom_llama));
  io::binding_report const rep = b.finish();
  CHECK(rep.n_bound == 12);
  CHECK(rep.n_converted == 0);
  CHECK(rep.skipped.empty());
  CHECK(model::detect_decoder_naming(ck) == model::decoder_naming::points_custom_llama);
  REQUIRE(dw.layers.size() == 1);
  lm::decoder_layer_weights<bf16> const& l = dw.layers[0];

  int const kv_id = w.id("llm.lm.layers.0.attention.key_value_dense.weight");
  int const kvb_id = w.id("llm.lm.layers.0.attention.key_value_dense.bias");
  // key_value_dense rows: [K of head 0 (2 rows), V of head 0 (2), K of head 1 (2), V of head 1 (2)].
  for (index_t g = 0; g < 2; ++g)
    for (index_t r = 0; r < 2; ++r) {
      for (index_t c = 0; c < 8; ++c) {
        CHECK(at(l.k.weight, g, r, c) == value_of(kv_id, (g * 4 + r) * 8 + c));
        CHECK(at(l.v.weight, g, r, c) == value_of(kv_id, (g * 4 + 2 + r) * 8 + c));
      }
      CHECK(at(*l.k.bias, g, r) == value_of(kvb_id, g * 4 + r));
      CHECK(at(*l.v.bias, g, r) == value_of(kvb_id, g * 4 + 2 + r));
    }
  CHECK(l.k.weight.stride(0) == 32);
  CHECK_FALSE(l.k.weight.is_contiguous());
  REQUIRE(l.kv_fused.has_value());
  CHECK(l.kv_fused->weight.extent(0) == 8);
  CHECK(l.kv_fused->weight.data() == l.k.weight.data());
  CHECK(l.v.weight.data() == l.k.weight.data() + 16);

  // dense_h_to_4h rows [0, 3) are up, [3, 6) are gate.
  int const ug_id = w.id("llm.lm.layers.0.mlp.dense_h_to_4h.weight");
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 0; c < 8; ++c) {
      CHECK(at(l.up.weight, r, c) == value_of(ug_id, r * 8 + c));
      CHECK(at(l.gate.weight, r, c) == value_of(ug_id, (3 + r) * 8 + c));
    }
  REQUIRE(l.up_gate_fused.has_value());
  CHECK(l.up.weight.is_contiguous());
  CHECK(l.gate.weight.is_contiguous());
  CHECK_FALSE(l.up.bias.has_value());
  CHECK_FALSE(l.o.bias.has_value());
  CHECK_FALSE(l.down.bias.has_value());
  CHECK_FALSE(l.input_norm.bias.has_value());
  REQUIRE(l.q.bias.has_value());
  CHECK(at(*l.q.bias, 5) == value_of(w.id("llm.lm.layers.0.attention.query_dense.bias"), 5));
  CHECK(at(l.down.weight, 7, 2) == value_of(w.id("llm.lm.layers.0.mlp.dense_4h_to_h.weight"), 7 * 3 + 2));
  CHECK(at(dw.lm_head, 4, 7) == value_of(w.id("llm.embed_out.weight"), 4 * 8 + 7));
  CHECK_FALSE(dw.lm_head_tied);

  // Zero copy: every view points into the mapped file.
  CHECK(inside_mapping(ck, dw.embed.data(), dw.embed.size()));
  CHECK(inside_mapping(ck, l.kv_fused->weight.data(), 64));
  CHECK(inside_mapping(ck, l.gate.weight.data(), 24));
  CHECK(inside_mapping(ck, dw.final_norm.weight.data(), 8));
  CHECK(std::static_pointer_cast<io::converted_tensors<float> const>(dw.keep_alive)->buffers.empty());
}

TEST_CASE("weight map: HF names give contiguous per-head K/V and no fused tensors", "[io][weight_map][unit]") {
  temp_dir dir;
  ckpt_writer w = hf_tiny(dtype::f32);
  w.write(dir.path() / "model.safetensors");
  io::checkpoint const ck(dir.path());
  io::weight_binder b(ck);
  auto const dw = model::bind_decoder<float>(b, tiny_decoder(lm::decoder_flavour::qwen2));
  (void)b.finish();
  CHECK(model::detect_decoder_naming(ck) == model::decoder_naming::hf_qwen2);
  auto const& l = dw.layers[0];
  CHECK_FALSE(l.kv_fused.has_value());
  CHECK_FALSE(l.up_gate_fused.has_value());
  CHECK(l.k.weight.is_contiguous());
  int const k_id = w.id("model.layers.0.self_attn.k_proj.weight");
  int const vb_id = w.id("model.layers.0.self_attn.v_proj.bias");
  for (index_t g = 0; g < 2; ++g)
    for (index_t r = 0; r < 2; ++r) {
      CHECK(at(l.k.weight, g, r, 3) == value_of(k_id, (g * 2 + r) * 8 + 3));
      CHECK(at(*l.v.bias, g, r) == value_of(vb_id, g * 2 + r));
    }
  CHECK(at(l.gate.weight, 2, 1) == value_of(w.id("model.layers.0.mlp.gate_proj.weight"), 17));
  CHECK(at(l.up.weight, 2, 1) == value_of(w.id("model.layers.0.mlp.up_proj.weight"), 17));
  CHECK(inside_mapping(ck, l.k.weight.data(), 32));
}

TEST_CASE("weight map: the same decoder under the three namings lists the expected names", "[io][weight_map][unit]") {
  lm::decoder_config c = tiny_decoder(lm::decoder_flavour::custom_llama);
  auto names = [&](model::decoder_naming n) {
    std::vector<std::string> out;
    for (io::tensor_spec const& s : model::decoder_tensor_specs(c, n)) out.push_back(s.name);
    std::sort(out.begin(), out.end());
    return out;
  };
  std::vector<std::string> const custom = names(model::decoder_naming::points_custom_llama);
  CHECK(custom == std::vector<std::string>{
                      "llm.embed_out.weight", "llm.lm.embed_in.weight", "llm.lm.final_layer_norm.weight",
                      "llm.lm.layers.0.attention.dense.weight", "llm.lm.layers.0.attention.key_value_dense.bias",
                      "llm.lm.layers.0.attention.key_value_dense.weight", "llm.lm.layers.0.attention.query_dense.bias",
                      "llm.lm.layers.0.attention.query_dense.weight", "llm.lm.layers.0.input_layernorm.weight",
                      "llm.lm.layers.0.mlp.dense_4h_to_h.weight", "llm.lm.layers.0.mlp.dense_h_to_4h.weight",
                      "llm.lm.layers.0.post_attention_layernorm.weight"});
  std::vector<std::string> const pq = names(model::decoder_naming::points_qwen2);
  CHECK(std::find(pq.begin(), pq.end(), "llm.lm_head.weight") != pq.end());
  CHECK(std::find(pq.begin(), pq.end(), "llm.model.layers.0.self_attn.k_proj.bias") != pq.end());
  CHECK(std::find(pq.begin(), pq.end(), "llm.model.norm.weight") != pq.end());
  CHECK(pq.size() == 15);
  // Config-driven optional tensors: LayerNorm biases, o / MLP biases; no head when tied.
  c.norm = nn::norm_kind::layer_norm;
  c.o_bias = c.gate_up_bias = c.down_bias = true;
  c.tie_word_embeddings = true;
  std::vector<std::string> const full = names(model::decoder_naming::points_custom_llama);
  for (char const* n : {"llm.lm.layers.0.input_layernorm.bias", "llm.lm.layers.0.post_attention_layernorm.bias",
                        "llm.lm.final_layer_norm.bias", "llm.lm.layers.0.attention.dense.bias",
                        "llm.lm.layers.0.mlp.dense_h_to_4h.bias", "llm.lm.layers.0.mlp.dense_4h_to_h.bias"})
    CHECK(std::find(full.begin(), full.end(), n) != full.end());
  CHECK(std::find(full.begin(), full.end(), "llm.embed_out.weight") == full.end());
}

TEST_CASE("weight map: LayerNorm decoder with every bias binds them all", "[io][weight_map][unit]") {
  temp_dir dir;
  ckpt_writer w = custom_llama_tiny(dtype::f32);
  w.add("llm.lm.layers.0.input_layernorm.bias", {8}, dtype::f32);
  w.add("llm.lm.layers.0.post_attention_layernorm.bias", {8}, dtype::f32);
  w.add("llm.lm.final_layer_norm.bias", {8}, dtype::f32);
  w.add("llm.lm.layers.0.attention.dense.bias", {8}, dtype::f32);
  w.add("llm.lm.layers.0.mlp.dense_h_to_4h.bias", {6}, dtype::f32);
  w.add("llm.lm.layers.0.mlp.dense_4h_to_h.bias", {8}, dtype::f32);
  w.write(dir.path() / "m.safetensors");
  io::checkpoint const ck(dir.path() / "m.safetensors");
  lm::decoder_config c = tiny_decoder(lm::decoder_flavour::custom_llama);
  c.norm = nn::norm_kind::layer_norm;
  c.o_bias = c.gate_up_bias = c.down_bias = true;
  io::weight_binder b(ck);
  auto const dw = model::bind_decoder<float>(b, c);
  CHECK(b.finish().n_bound == 18);
  auto const& l = dw.layers[0];
  int const ugb = w.id("llm.lm.layers.0.mlp.dense_h_to_4h.bias");
  REQUIRE(l.up.bias.has_value());
  REQUIRE(l.gate.bias.has_value());
  CHECK(at(*l.up.bias, 2) == value_of(ugb, 2));
  CHECK(at(*l.gate.bias, 0) == value_of(ugb, 3));
  CHECK(at(*l.input_norm.bias, 1) == value_of(w.id("llm.lm.layers.0.input_layernorm.bias"), 1));
  CHECK(dw.final_norm.bias.has_value());
  CHECK(l.o.bias.has_value());
  CHECK(l.down.bias.has_value());
}

TEST_CASE("weight map: dtype conversion only on request, into owned buffers", "[io][weight_map][unit]") {
  temp_dir dir;
  ckpt_writer w = custom_llama_tiny(dtype::bf16);
  w.remove("llm.lm.final_layer_norm.weight");
  w.add("llm.lm.final_layer_norm.weight", {8}, dtype::f32);
  w.write(dir.path() / "model.safetensors");
  io::checkpoint const ck(dir.path());
  lm::decoder_config const c = tiny_decoder(lm::decoder_flavour::custom_llama);
  {
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c),
                      "tensor 'llm.lm.final_layer_norm.weight' (final norm weight [d_model] (points_custom_llama "
                      "naming)) is F32, weights of BF16 were requested; dtype_policy::convert");
  }
  io::weight_binder b(ck, io::dtype_policy::convert);
  auto const dw = model::bind_decoder<bf16>(b, c);
  io::binding_report const rep = b.finish();
  CHECK(rep.n_converted == 1);
  CHECK(rep.converted_bytes == 8 * sizeof(bf16));
  auto const conv = std::static_pointer_cast<io::converted_tensors<bf16> const>(dw.keep_alive);
  REQUIRE(conv->buffers.size() == 1);
  CHECK(dw.final_norm.weight.data() == conv->buffers[0].data());
  CHECK_FALSE(inside_mapping(ck, dw.final_norm.weight.data(), 8));
  for (index_t i = 0; i < 8; ++i)
    CHECK(at(dw.final_norm.weight, i) == value_of(w.id("llm.lm.final_layer_norm.weight"), i));
  CHECK(inside_mapping(ck, dw.embed.data(), 40));  // tensors already stored as bf16 stay zero-copy

  // Everything to f32 and to f16: values are small integers, exact in every dtype.
  io::weight_binder bf(ck, io::dtype_policy::convert);
  auto const df = model::bind_decoder<float>(bf, c);
  CHECK(bf.finish().n_converted == 11);
  auto const& l = df.layers[0];
  int const kv_id = w.id("llm.lm.layers.0.attention.key_value_dense.weight");
  CHECK(at(l.v.weight, 1, 1, 5) == value_of(kv_id, (4 + 2 + 1) * 8 + 5));
  io::weight_binder bh(ck, io::dtype_policy::convert);
  auto const dh = model::bind_decoder<f16>(bh, c);
  CHECK(at(dh.layers[0].gate.weight, 1, 1) == value_of(w.id("llm.lm.layers.0.mlp.dense_h_to_4h.weight"), 4 * 8 + 1));
  // Views and their buffers survive copies and moves of the weights struct.
  lm::decoder_weights<f16> moved = dh;
  lm::decoder_weights<f16> const moved2 = std::move(moved);
  CHECK(at(moved2.layers[0].gate.weight, 1, 1) == value_of(w.id("llm.lm.layers.0.mlp.dense_h_to_4h.weight"), 33));
}

TEST_CASE("weight map: rounding on conversion is round-to-nearest-even", "[io][weight_map][unit]") {
  temp_dir dir;
  // f32 values whose bf16 rounding is a tie (to even) or just above one.
  std::vector<float> const vals = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, -2.5f};
  io::save_safetensors(dir.path() / "m.safetensors",
                       {io::make_entry("x", std::vector<index_t>{4}, vals)});
  io::checkpoint const ck(dir.path() / "m.safetensors");
  io::weight_binder b(ck, io::dtype_policy::convert);
  io::converted_tensors<bf16> store;
  bf16 const* p = b.take<bf16>({"x", {4}, "test"}, store);
  CHECK(p[0].to_float() == 1.0f);                  // tie -> even
  CHECK(p[1].to_float() == 1.0f + 4 * 0x1p-8f);    // tie -> even (up)
  CHECK(p[2].to_float() == 1.0f + 2 * 0x1p-8f);    // above the tie -> up
  CHECK(p[3].to_float() == -2.5f);
}

TEST_CASE("weight map: missing, misshaped and non-float tensors are named", "[io][weight_map][unit]") {
  temp_dir dir;
  lm::decoder_config const c = tiny_decoder(lm::decoder_flavour::custom_llama);
  SECTION("missing") {
    ckpt_writer w = custom_llama_tiny();
    w.remove("llm.lm.layers.0.mlp.dense_h_to_4h.weight");
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c),
                      "missing tensor 'llm.lm.layers.0.mlp.dense_h_to_4h.weight' (layer 0 fused up/gate projection "
                      "dense_h_to_4h [2*d_ff, d_model] (points_custom_llama naming), shape [6, 8])");
  }
  SECTION("missing head of an untied model") {
    ckpt_writer w = custom_llama_tiny();
    w.remove("llm.embed_out.weight");
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c), "missing tensor 'llm.embed_out.weight' (LM head");
  }
  SECTION("wrong shape") {
    ckpt_writer w = custom_llama_tiny();
    w.reshape("llm.lm.layers.0.attention.key_value_dense.weight", {4, 8});  // an MHA-sized K only
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c),
                      "tensor 'llm.lm.layers.0.attention.key_value_dense.weight' (layer 0 fused K/V projection "
                      "key_value_dense [n_kv_heads*2*head_dim, d_model] (points_custom_llama naming)) has shape "
                      "[4, 8], expected [8, 8]");
  }
  SECTION("wrong rank") {
    ckpt_writer w = custom_llama_tiny();
    w.reshape("llm.lm.final_layer_norm.weight", {1, 8});
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c), "has shape [1, 8], expected [8]");
  }
  SECTION("integer tensor, even with conversion") {
    ckpt_writer w = custom_llama_tiny();
    w.remove("llm.lm.layers.0.input_layernorm.weight");
    w.add("llm.lm.layers.0.input_layernorm.weight", {8}, dtype::i32);
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck, io::dtype_policy::convert);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c),
                      "tensor 'llm.lm.layers.0.input_layernorm.weight' is I32; only F32, F64, BF16 and F16 weights convert");
  }
}

TEST_CASE("weight map: extra tensors are refused by finish(), known-unused ones listed", "[io][weight_map][unit]") {
  temp_dir dir;
  lm::decoder_config const c = tiny_decoder(lm::decoder_flavour::custom_llama);
  ckpt_writer w = custom_llama_tiny();
  w.add("llm.lm.layers.0.attention.rotary_emb.inv_freq", {1}, dtype::f32);
  w.write(dir.path() / "a.safetensors");
  io::checkpoint const ck(dir.path() / "a.safetensors");
  {
    io::weight_binder b(ck);
    (void)model::bind_decoder<bf16>(b, c);
    io::binding_report const rep = b.finish();
    REQUIRE(rep.skipped.size() == 1);
    CHECK(rep.skipped[0].name == "llm.lm.layers.0.attention.rotary_emb.inv_freq");
    CHECK_THAT(rep.skipped[0].reason, ContainsSubstring("inv_freq"));
  }
  {
    io::weight_binder b(ck, io::dtype_policy::exact, /*ignore_known_unused=*/false);
    (void)model::bind_decoder<bf16>(b, c);
    REQUIRE_TESSERA_ERROR((void)b.finish(), "tensor 'llm.lm.layers.0.attention.rotary_emb.inv_freq' is not bound");
  }
  // An unexpected tensor: finish() names it; bind_points15 / bind_qwen2 call finish() themselves.
  w.add("llm.lm.layers.1.attention.query_dense.weight", {8, 8});
  w.add("vision_tower.foo", {2});
  w.write(dir.path() / "b.safetensors");
  io::checkpoint const ck2(dir.path() / "b.safetensors");
  io::weight_binder b(ck2);
  (void)model::bind_decoder<bf16>(b, c);
  REQUIRE_TESSERA_ERROR((void)b.finish(), "2 stored tensor(s) were bound by no part: "
                                      "'llm.lm.layers.1.attention.query_dense.weight', 'vision_tower.foo'");
  CHECK(b.unhandled().size() == 3);  // inv_freq too, until finish() classifies it
}

TEST_CASE("weight map: tied heads view the embedding; a stored head must be identical", "[io][weight_map][unit]") {
  temp_dir dir;
  lm::decoder_config c = tiny_decoder(lm::decoder_flavour::qwen2);
  c.tie_word_embeddings = true;
  SECTION("no head stored") {
    ckpt_writer w = hf_tiny();
    w.remove("lm_head.weight");
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    auto const dw = model::bind_decoder<bf16>(b, c);
    CHECK(b.finish().skipped.empty());
    CHECK(dw.lm_head_tied);
    CHECK(dw.lm_head.data() == dw.embed.data());
    CHECK(dw.lm_head.extents() == dw.embed.extents());
  }
  SECTION("identical duplicate is skipped") {
    // Write the embedding twice under both names (same values: value_of depends on the id).
    ckpt_writer w = hf_tiny();
    w.write(dir.path() / "tmp.safetensors");
    io::checkpoint const src(dir.path() / "tmp.safetensors");
    std::span<std::byte const> const emb = src.bytes("model.embed_tokens.weight");
    std::vector<io::tensor_entry> entries;
    for (std::string const& n : src.names())
      entries.push_back({n, src.info(n).type, src.info(n).shape,
                         n == "lm_head.weight" ? emb : src.bytes(n)});
    io::save_safetensors(dir.path() / "model.safetensors", std::span<io::tensor_entry const>(entries));
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    auto const dw = model::bind_decoder<bf16>(b, c);
    io::binding_report const rep = b.finish();
    REQUIRE(rep.skipped.size() == 1);
    CHECK(rep.skipped[0].name == "lm_head.weight");
    CHECK_THAT(rep.skipped[0].reason, ContainsSubstring("duplicate of model.embed_tokens.weight"));
    CHECK(dw.lm_head.data() == dw.embed.data());
  }
  SECTION("a different head contradicts tie_word_embeddings") {
    ckpt_writer w = hf_tiny();
    w.write(dir.path() / "model.safetensors");
    io::checkpoint const ck(dir.path());
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c),
                      "the config ties the LM head to the embedding (tie_word_embeddings), but the checkpoint stores "
                      "'lm_head.weight' and it differs from 'model.embed_tokens.weight'");
  }
}

TEST_CASE("weight map: naming detection, explicit choice, and refusals", "[io][weight_map][unit]") {
  temp_dir dir;
  lm::decoder_config const c = tiny_decoder(lm::decoder_flavour::qwen2);
  ckpt_writer w = hf_tiny();
  w.write(dir.path() / "hf.safetensors");
  io::checkpoint const ck(dir.path() / "hf.safetensors");
  CHECK(model::detect_decoder_naming(ck) == model::decoder_naming::hf_qwen2);
  CHECK_FALSE(model::detect_vision_naming(ck).has_value());
  CHECK_FALSE(model::detect_projector_naming(ck).has_value());
  {
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(b, c, model::decoder_naming::points_qwen2),
                      "missing tensor 'llm.model.embed_tokens.weight'");
  }
  {
    io::weight_binder b(ck);
    REQUIRE_TESSERA_ERROR((void)model::bind_vision_encoder<bf16>(b, model::qwen2_vl_vision_config{}), "holds no Qwen2-VL ViT");
    REQUIRE_TESSERA_ERROR((void)model::bind_patch_merger<bf16>(b, model::patch_merger_config{}), "holds no PatchMerger");
  }
  w.add("llm.lm.embed_in.weight", {5, 8});
  w.write(dir.path() / "both.safetensors");
  io::checkpoint const both(dir.path() / "both.safetensors");
  REQUIRE_TESSERA_ERROR((void)model::detect_decoder_naming(both),
                    "holds decoder embedding tensors of several namings (hf_qwen2, points_custom_llama)");
  io::weight_binder b(both);
  // The naming asked for is the one bound: the embedding views the HF tensor.
  CHECK(static_cast<void const*>(model::bind_decoder<bf16>(b, c, model::decoder_naming::hf_qwen2).embed.data()) ==
        static_cast<void const*>(both.bytes("model.embed_tokens.weight").data()));

  ckpt_writer none;
  none.add("something.else", {3});
  none.write(dir.path() / "none.safetensors");
  io::checkpoint const nk(dir.path() / "none.safetensors");
  io::weight_binder bn(nk);
  REQUIRE_TESSERA_ERROR((void)model::bind_decoder<bf16>(bn, c), "holds no decoder (looked for model.embed_tokens.weight");
}

TEST_CASE("weight map: hand-made configs that cannot describe a checkpoint are refused", "[io][weight_map][unit]") {
  lm::decoder_config c = tiny_decoder(lm::decoder_flavour::qwen2);
  c.n_kv_heads = 0;
  REQUIRE_TESSERA_ERROR((void)model::decoder_tensor_specs(c, model::decoder_naming::hf_qwen2), "non-positive size");
  c.n_kv_heads = 3;
  REQUIRE_TESSERA_ERROR((void)model::decoder_tensor_specs(c, model::decoder_naming::hf_qwen2), "not a multiple of n_kv_heads 3");
  model::qwen2_vl_vision_config v;
  v.patch_dim = 5;
  REQUIRE_TESSERA_ERROR((void)model::vision_encoder_tensor_specs(v, model::vision_naming::points), "patch_dim 5");
  model::patch_merger_config m;
  m.hidden_dim = 100;
  REQUIRE_TESSERA_ERROR((void)model::patch_merger_tensor_specs(m, model::projector_naming::points), "is not consistent");
}

TEST_CASE("weight map: a tensor not aligned for its dtype needs dtype_policy::convert", "[io][weight_map][unit]") {
  // A file built byte by byte: "a" (U8 x 2) at data [0, 2), then "w" (F32 x 2) at [2, 10), which
  // puts w 2 bytes past an 8-aligned start: not aligned for float.
  temp_dir dir;
  std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  std::string file(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  file += header;
  file += std::string("\x01\x02", 2);
  float const vals[2] = {1.5f, -3.0f};
  file.append(reinterpret_cast<char const*>(vals), sizeof vals);
  { std::ofstream(dir.path() / "u.safetensors", std::ios::binary) << file; }
  io::checkpoint const ck(dir.path() / "u.safetensors");
  io::converted_tensors<float> store;
  io::weight_binder exact(ck);
  REQUIRE_TESSERA_ERROR((void)exact.take<float>({"w", {2}, "w"}, store), "tensor 'w' is not aligned for its dtype");
  io::weight_binder conv(ck, io::dtype_policy::convert);
  float const* p = conv.take<float>({"w", {2}, "w"}, store);
  CHECK(p[0] == 1.5f);
  CHECK(p[1] == -3.0f);
  CHECK(store.buffers.size() == 1);
  CHECK(conv.handled("w"));
  CHECK_FALSE(conv.handled("a"));
}

namespace {

/// depth 1, embed_dim 8, 2 heads, mlp_ratio 1, 1 channel, temporal 1, patch 2, merge 2.
model::qwen2_vl_vision_config tiny_vision() {
  return model::parse_qwen2_vl_vision_config(
      R"({"depth": 1, "embed_dim": 8, "num_heads": 2, "mlp_ratio": 1, "in_channels": 1, "temporal_patch_size": 1,
          "patch_size": 2, "spatial_merge_size": 2, "hidden_size": 6})",
      "tiny_vision");
}

ckpt_writer tiny_vision_tensors(std::string const& p) {
  ckpt_writer w;
  w.add(p + "patch_embed.proj.weight", {8, 1, 1, 2, 2});
  for (char const* n : {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias", "mlp.fc1.bias",
                        "mlp.fc2.bias"})
    w.add(p + "blocks.0." + n, {8});
  w.add(p + "blocks.0.attn.qkv.weight", {24, 8});
  w.add(p + "blocks.0.attn.qkv.bias", {24});
  w.add(p + "blocks.0.attn.proj.weight", {8, 8});
  w.add(p + "blocks.0.mlp.fc1.weight", {8, 8});
  w.add(p + "blocks.0.mlp.fc2.weight", {8, 8});
  return w;
}

}  // namespace

TEST_CASE("weight map: ViT patch embedding is the Conv3d weight viewed as a linear", "[io][weight_map][unit]") {
  temp_dir dir;
  model::qwen2_vl_vision_config const v = tiny_vision();
  REQUIRE(v.patch_dim == 4);
  ckpt_writer w = tiny_vision_tensors("visual.");
  w.add("visual.merger.ln_q.weight", {8});
  w.add("visual.merger.ln_q.bias", {8});
  w.add("visual.merger.mlp.0.weight", {32, 32});
  w.add("visual.merger.mlp.0.bias", {32});
  w.add("visual.merger.mlp.2.weight", {6, 32});
  w.add("visual.merger.mlp.2.bias", {6});
  w.write(dir.path() / "model.safetensors");
  io::checkpoint const ck(dir.path());
  io::weight_binder b(ck);
  auto const vw = model::bind_vision_encoder<bf16>(b, v);
  auto const mw = model::bind_patch_merger<bf16>(b, model::vision_merger_config(v));
  CHECK(b.finish().n_bound == 19);
  CHECK(model::detect_vision_naming(ck) == model::vision_naming::qwen2_vl);
  CHECK(model::detect_projector_naming(ck) == model::projector_naming::qwen2_vl_merger);
  CHECK(mw.fc2.weight.extent(0) == 6);
  CHECK(vw.patch_embed.weight.extent(0) == 8);
  CHECK(vw.patch_embed.weight.extent(1) == 4);
  int const pe = w.id("visual.patch_embed.proj.weight");
  // Conv3d [8, 1, 1, 2, 2]: out channel o, (c, t, py, px) flattened = column py * 2 + px.
  for (index_t o = 0; o < 8; ++o)
    for (index_t f = 0; f < 4; ++f) CHECK(at(vw.patch_embed.weight, o, f) == value_of(pe, o * 4 + f));
  REQUIRE(vw.blocks.size() == 1);
  CHECK(at(vw.blocks[0].qkv->weight, 23, 7) == value_of(w.id("visual.blocks.0.attn.qkv.weight"), 23 * 8 + 7));
  CHECK(at(*vw.blocks[0].norm2.bias, 3) == value_of(w.id("visual.blocks.0.norm2.bias"), 3));
  CHECK(at(*mw.fc2.bias, 5) == value_of(w.id("visual.merger.mlp.2.bias"), 5));
  CHECK(inside_mapping(ck, vw.patch_embed.weight.data(), 32));
}

TEST_CASE("weight map: POINTS' unused ViT merger is skipped only with the reference's shapes",
          "[io][weight_map][unit]") {
  temp_dir dir;
  model::qwen2_vl_vision_config const v = tiny_vision();
  ckpt_writer w = tiny_vision_tensors("vision_encoder.");
  w.add("vision_encoder.merger.ln_q.weight", {8});
  w.add("vision_encoder.merger.ln_q.bias", {8});
  w.add("vision_encoder.merger.mlp.0.weight", {32, 32});
  w.add("vision_encoder.merger.mlp.0.bias", {32});
  w.add("vision_encoder.merger.mlp.2.weight", {6, 32});
  w.add("vision_encoder.merger.mlp.2.bias", {6});
  w.add("vision_encoder.rotary_pos_emb.inv_freq", {1}, dtype::f32);
  w.write(dir.path() / "a.safetensors");
  io::checkpoint const ck(dir.path() / "a.safetensors");
  io::weight_binder b(ck);
  auto const vw = model::bind_vision_encoder<bf16>(b, v);
  CHECK(model::detect_vision_naming(ck) == model::vision_naming::points);
  io::binding_report const rep = b.finish();
  REQUIRE(rep.skipped.size() == 7);
  CHECK(rep.skipped[0].name == "vision_encoder.merger.ln_q.bias");
  CHECK_THAT(rep.skipped[0].reason, ContainsSubstring("never applied by POINTS1.5"));
  CHECK(rep.skipped[6].name == "vision_encoder.rotary_pos_emb.inv_freq");

  w.reshape("vision_encoder.merger.mlp.2.weight", {7, 32});
  w.write(dir.path() / "b.safetensors");
  io::checkpoint const ck2(dir.path() / "b.safetensors");
  io::weight_binder b2(ck2);
  (void)model::bind_vision_encoder<bf16>(b2, v);
  REQUIRE_TESSERA_ERROR((void)b2.finish(), "tensor 'vision_encoder.merger.mlp.2.weight' (unused: the ViT's own "
                                       "PatchMerger, built but never applied by POINTS1.5 (spec 7.16)) has shape "
                                       "[7, 32], expected [6, 32]");
  // A merger tensor the reference does not have is an extra tensor like any other.
  w.reshape("vision_encoder.merger.mlp.2.weight", {6, 32});
  w.add("vision_encoder.merger.mlp.1.weight", {2});
  w.write(dir.path() / "c.safetensors");
  io::checkpoint const ck3(dir.path() / "c.safetensors");
  io::weight_binder b3(ck3);
  (void)model::bind_vision_encoder<bf16>(b3, v);
  REQUIRE_TESSERA_ERROR((void)b3.finish(), "'vision_encoder.merger.mlp.1.weight'");
}

namespace {

/// An encoder built from a temporary: the checkpoint, the binder and the weights object are gone
/// when it returns, so the encoder may only use memory it keeps alive itself (the f32 copies the
/// binder converted from bf16). Under AddressSanitizer a view into freed memory fails the test.
model::qwen2vl_encoder<backend::cpu, float> encoder_from_temporaries(std::filesystem::path const& file,
                                                                     model::qwen2_vl_vision_config const& v) {
  auto const ckpt = std::make_unique<io::checkpoint>(file);
  io::weight_binder b(*ckpt, io::dtype_policy::convert);
  return model::make_qwen2vl_encoder<backend::cpu, float>(v, model::bind_vision_encoder<float>(b, v));
}

}  // namespace

TEST_CASE("qwen2_vl encoder: built from temporary converted weights, it keeps them alive",
          "[model][qwen2_vl][unit]") {
  temp_dir dir;
  model::qwen2_vl_vision_config const v = tiny_vision();
  tiny_vision_tensors("visual.").write(dir.path() / "vit.safetensors");  // bf16: binding as f32 converts every tensor
  auto const enc = encoder_from_temporaries(dir.path() / "vit.safetensors", v);
  // The same encoder over weights whose checkpoint is alive, as the reference result.
  io::checkpoint const ck(dir.path() / "vit.safetensors");
  io::weight_binder b(ck, io::dtype_policy::convert);
  auto const ref = model::make_qwen2vl_encoder<backend::cpu, float>(v, model::bind_vision_encoder<float>(b, v));
  std::vector<patch_grid> const grids{{1, 2, 4}};
  pack::pack_plan const plan = model::qwen2vl_plan(grids, v);
  index_t const n = plan.n_slots();
  std::vector<float> px(static_cast<std::size_t>(n * v.patch_dim));
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>((i * 37 % 23)) / 23.0f - 0.5f;
  std::vector<float> got(static_cast<std::size_t>(n * v.embed_dim)), want(got.size());
  exec_ctx<backend::cpu> ctx(1);
  enc.forward(tensor_view<float const, 2>(px.data(), {n, v.patch_dim}), vision::batch_of(plan),
              tensor_view<float, 2>(got.data(), {n, v.embed_dim}), ctx);
  ref.forward(tensor_view<float const, 2>(px.data(), {n, v.patch_dim}), vision::batch_of(plan),
              tensor_view<float, 2>(want.data(), {n, v.embed_dim}), ctx);
  REQUIRE(std::all_of(got.begin(), got.end(), [](float x) { return std::isfinite(x); }));
  REQUIRE(got == want);  // same weights, same backend and threads: bitwise
}
