// SPDX-License-Identifier: Apache-2.0
// Tests for tessera/io/config.hpp on hand-written config.json texts: defaults, derived sizes, the
// normalized decoder of both LLM flavours, every refusal (each names the file and the field),
// file reading, and a mutation sweep (malformed input is always a tessera::error).
// The defaults themselves are checked against Python's resolution in tests/golden/test_golden_config.cpp.
#include "common/temp_dir.hpp"

#include <tessera/model/points15/config.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <variant>

#include <unistd.h>

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace lm = tessera::lm;
namespace nn = tessera::nn;
using Catch::Matchers::ContainsSubstring;
using nlohmann::json;
using tessera::index_t;
using tessera::test::temp_dir;

namespace {

/// Qwen2.5-0.5B's config.json (spec section 4.4), as a JSON value to edit.
json qwen25_05b() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

/// A POINTS1.5-7B llm_config in CustomLlama fields (spec sections 4.1 / 4.4).
json custom_llama_7b() {
  return json::parse(R"({
    "model_type": "custom_llama", "architectures": ["CustomLlamaForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_llama.CustomLlamaConfig",
                 "AutoModelForCausalLM": "modeling_llama.CustomLlamaForCausalLM"},
    "vocab_size": 152064, "hidden_size": 3584, "num_layers": 28, "num_attention_heads": 28, "num_kv_heads": 4,
    "ffn_hidden_size": 18944, "hidden_act": "swiglu", "rotary_pct": 1.0, "rotary_emb_base": 1000000,
    "rotary_compress": 1.0, "max_position_embeddings": 16384, "initializer_range": 0.02,
    "layernorm_epsilon": 1e-05, "norm_type": "rms_norm", "qkv_proj_bias": true, "out_proj_bias": false,
    "mlp_fc1_bias": false, "mlp_fc2_bias": false, "tie_word_embeddings": false, "bos_token_id": 0,
    "eos_token_id": [2, 3]})");
}

/// Qwen2-VL-7B's vision_config as published (in_chans / spatial_patch_size included).
json vision_7b() {
  return json::parse(R"({"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
    "hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
    "temporal_patch_size": 2})");
}

json points15_7b() {
  json p = json::parse(R"({"architectures": ["POINTSV15ChatModel"], "model_type": "pointsv1.5_chat",
                           "torch_dtype": "bfloat16"})");
  p["llm_config"] = custom_llama_7b();
  p["vision_config"] = vision_7b();
  return p;
}

/// `base` edited by `edit`, as text.
std::string edited(json base, std::function<void(json&)> const& edit) {
  edit(base);
  return base.dump();
}

model::qwen2_config qwen2_with(std::function<void(json&)> const& edit) {
  return model::parse_qwen2_config(edited(qwen25_05b(), edit), "qwen.json");
}
model::custom_llama_config llama_with(std::function<void(json&)> const& edit) {
  return model::parse_custom_llama_config(edited(custom_llama_7b(), edit), "llm.json");
}
model::qwen2_vl_vision_config vision_with(std::function<void(json&)> const& edit) {
  return model::parse_qwen2_vl_vision_config(edited(vision_7b(), edit), "vision.json");
}
model::points15_config points_with(std::function<void(json&)> const& edit,
                                model::points_llm_flavour f = model::points_llm_flavour::auto_detect) {
  return model::parse_points15_config(edited(points15_7b(), edit), "points.json", f);
}

void write_text(fs::path const& p, std::string const& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Qwen2
// ------------------------------------------------------------------------------------------------

TEST_CASE("qwen2 config: Qwen2.5-0.5B fields and derived decoder", "[io][config][unit]") {
  model::qwen2_config const q = model::parse_qwen2_config(qwen25_05b().dump(), "qwen.json");
  CHECK(q.source == "qwen.json");
  CHECK(q.vocab_size == 151936);
  CHECK(q.hidden_size == 896);
  CHECK(q.intermediate_size == 4864);
  CHECK(q.num_hidden_layers == 24);
  CHECK(q.num_attention_heads == 14);
  CHECK(q.num_key_value_heads == 2);
  CHECK(q.rms_norm_eps == 1e-6);
  CHECK(q.rope_theta == 1e6);
  CHECK(q.tie_word_embeddings);
  CHECK(q.bos_token_id == 151643);
  CHECK(q.eos_token_ids == std::vector<std::int64_t>{151643});
  CHECK(q.torch_dtype == tessera::dtype::bf16);

  lm::decoder_config const& d = q.decoder;
  CHECK(d.flavour == lm::decoder_flavour::qwen2);
  CHECK(d.d_model == 896);
  CHECK(d.n_layers == 24);
  CHECK(d.n_heads == 14);
  CHECK(d.n_kv_heads == 2);
  CHECK(d.head_dim == 64);
  CHECK(d.rotary_dim == 64);
  CHECK(d.q_dim() == 896);
  CHECK(d.kv_dim() == 128);
  CHECK(d.group_size() == 7);
  CHECK(d.d_ff == 4864);
  CHECK(d.vocab_size == 151936);
  CHECK(d.max_positions == 32768);
  CHECK(d.rope_theta == 1e6);
  CHECK(d.rope_position_scale == 1.0);
  CHECK(d.norm == nn::norm_kind::rms_norm);
  CHECK(d.norm_eps == 1e-6);
  CHECK(d.activation == nn::activation_kind::silu);
  CHECK(d.qkv_bias);
  CHECK_FALSE(d.o_bias);
  CHECK_FALSE(d.gate_up_bias);
  CHECK_FALSE(d.down_bias);
  CHECK(d.tie_word_embeddings);
}

TEST_CASE("qwen2 config: absent fields take the Qwen2Config defaults", "[io][config][unit]") {
  model::qwen2_config const q = model::parse_qwen2_config("{}", "empty.json");
  CHECK(q.vocab_size == 151936);
  CHECK(q.hidden_size == 4096);
  CHECK(q.intermediate_size == 22016);
  CHECK(q.num_hidden_layers == 32);
  CHECK(q.num_attention_heads == 32);
  CHECK(q.num_key_value_heads == 32);
  CHECK(q.max_position_embeddings == 32768);
  CHECK(q.rms_norm_eps == 1e-6);
  CHECK(q.rope_theta == 10000.0);
  CHECK_FALSE(q.tie_word_embeddings);
  CHECK_FALSE(q.bos_token_id.has_value());
  CHECK(q.eos_token_ids.empty());
  CHECK_FALSE(q.torch_dtype.has_value());
  CHECK(q.decoder.head_dim == 128);
}

TEST_CASE("qwen2 config: num_key_value_heads absent is 32, null is num_attention_heads", "[io][config][unit]") {
  // Absent: the keyword default 32, which 14 heads cannot be grouped into.
  REQUIRE_TESSERA_ERROR(qwen2_with([](json& j) { j.erase("num_key_value_heads"); }),
                       "field 'num_key_value_heads': 32 does not divide num_attention_heads 14");
  model::qwen2_config const q = qwen2_with([](json& j) { j["num_key_value_heads"] = nullptr; });
  CHECK(q.num_key_value_heads == 14);
  CHECK(q.decoder.group_size() == 1);
}

TEST_CASE("qwen2 config: refusals name the file and the field", "[io][config][unit]") {
  auto err = [](std::function<void(json&)> const& edit, std::string const& text) {
    INFO("expected: " << text);
    REQUIRE_TESSERA_ERROR(qwen2_with(edit), text);
    REQUIRE_TESSERA_ERROR(qwen2_with(edit), "config 'qwen.json'");
  };
  err([](json& j) { j["model_type"] = "llama"; }, "field 'model_type': 'llama' is not supported");
  err([](json& j) { j["model_type"] = 3; }, "field 'model_type': must be a string");
  err([](json& j) { j["architectures"] = {"LlamaForCausalLM"}; }, "field 'architectures': ['LlamaForCausalLM']");
  err([](json& j) { j["architectures"] = {1}; }, "field 'architectures': must be a list of strings");
  err([](json& j) { j["vocab_size"] = 0; }, "field 'vocab_size': is 0, outside the supported range");
  err([](json& j) { j["vocab_size"] = -5; }, "field 'vocab_size': is -5");
  err([](json& j) { j["vocab_size"] = 1LL << 40; }, "field 'vocab_size': is 1099511627776");
  err([](json& j) { j["vocab_size"] = 18446744073709551615ULL; }, "field 'vocab_size': is 18446744073709551615");
  err([](json& j) { j["hidden_size"] = 896.0; }, "field 'hidden_size': must be an integer, got 896.0");
  err([](json& j) { j["hidden_size"] = "896"; }, "field 'hidden_size': must be an integer, got '896'");
  err([](json& j) { j["hidden_size"] = nullptr; }, "field 'hidden_size': must be an integer, got null");
  err([](json& j) { j["num_hidden_layers"] = true; }, "field 'num_hidden_layers': must be an integer, got true");
  err([](json& j) { j["num_hidden_layers"] = 5000; }, "field 'num_hidden_layers': is 5000");
  err([](json& j) { j["intermediate_size"] = 0; }, "field 'intermediate_size'");
  err([](json& j) { j["max_position_embeddings"] = 0; }, "field 'max_position_embeddings'");
  err([](json& j) { j["hidden_size"] = 900; }, "field 'num_attention_heads': 14 does not divide hidden_size 900");
  err([](json& j) { j["hidden_size"] = 42; }, "head_dim 3");  // 42 / 14 = 3: odd
  err([](json& j) { j["num_key_value_heads"] = 4; }, "field 'num_key_value_heads': 4 does not divide");
  err([](json& j) { j["num_key_value_heads"] = 0; }, "field 'num_key_value_heads': is 0");
  err([](json& j) { j["hidden_act"] = "gelu"; }, "field 'hidden_act': 'gelu' is not supported");
  err([](json& j) { j["hidden_act"] = 1; }, "field 'hidden_act': must be a string");
  err([](json& j) { j["rms_norm_eps"] = 0; }, "field 'rms_norm_eps': is 0");
  err([](json& j) { j["rms_norm_eps"] = -1e-6; }, "field 'rms_norm_eps'");
  err([](json& j) { j["rms_norm_eps"] = 2.0; }, "field 'rms_norm_eps'");
  err([](json& j) { j["rms_norm_eps"] = "1e-6"; }, "field 'rms_norm_eps': must be a number");
  err([](json& j) { j["rope_theta"] = 0.5; }, "field 'rope_theta'");
  err([](json& j) { j["rope_theta"] = 1e300; }, "field 'rope_theta'");
  err([](json& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}}; },
      "field 'rope_scaling.type': 'yarn' RoPE scaling is not supported");
  err([](json& j) { j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}}; },
      "field 'rope_scaling.rope_type': 'linear'");
  err([](json& j) { j["rope_scaling"] = {{"type", "mrope"}, {"mrope_section", {16, 24, 24}}}; },
      "field 'rope_scaling.type': 'mrope'");
  err([](json& j) { j["rope_scaling"] = {{"type", "default"}, {"mrope_section", {16, 24, 24}}}; },
      "field 'rope_scaling.mrope_section'");
  err([](json& j) { j["rope_scaling"] = "yarn"; }, "field 'rope_scaling': must be null or a JSON object");
  err([](json& j) { j["use_sliding_window"] = true; }, "field 'use_sliding_window': is true");
  err([](json& j) { j["use_sliding_window"] = "false"; }, "field 'use_sliding_window': must be true or false");
  err([](json& j) { j["tie_word_embeddings"] = 1; }, "field 'tie_word_embeddings': must be true or false");
  err([](json& j) { j["head_dim"] = 128; }, "field 'head_dim': 128 differs from hidden_size / num_attention_heads = 64");
  err([](json& j) { j["torch_dtype"] = "float64"; }, "field 'torch_dtype': 'float64' is not a dtype");
  err([](json& j) { j["torch_dtype"] = 16; }, "field 'torch_dtype': must be a string");
  err([](json& j) { j["eos_token_id"] = {2, -1}; }, "field 'eos_token_id': is -1");
  err([](json& j) { j["eos_token_id"] = "2"; }, "field 'eos_token_id': must be an integer");
  err([](json& j) { j["bos_token_id"] = {1, 2}; }, "field 'bos_token_id': must be one token id");
  err([](json& j) { j["eos_token_id"] = json::array(); for (int i = 0; i < 2000; ++i) j["eos_token_id"].push_back(i); },
      "field 'eos_token_id': lists 2000 token ids");
}

TEST_CASE("qwen2 config: accepted variants", "[io][config][unit]") {
  CHECK(qwen2_with([](json& j) { j["rope_scaling"] = nullptr; }).decoder.rope_theta == 1e6);
  CHECK(qwen2_with([](json& j) { j["rope_scaling"] = {{"type", "default"}}; }).decoder.head_dim == 64);
  CHECK(qwen2_with([](json& j) { j["rope_theta"] = 10000; }).rope_theta == 10000.0);  // an integer is fine
  CHECK(qwen2_with([](json& j) { j["head_dim"] = 64; }).decoder.head_dim == 64);
  CHECK(qwen2_with([](json& j) { j["head_dim"] = nullptr; }).decoder.head_dim == 64);
  CHECK(qwen2_with([](json& j) { j.erase("architectures"); }).hidden_size == 896);
  CHECK(qwen2_with([](json& j) { j["eos_token_id"] = {151645, 151643}; }).eos_token_ids ==
        std::vector<std::int64_t>{151645, 151643});
  CHECK(qwen2_with([](json& j) { j["eos_token_id"] = nullptr; }).eos_token_ids.empty());
  CHECK(qwen2_with([](json& j) { j["torch_dtype"] = "float16"; }).decoder.torch_dtype == tessera::dtype::f16);
  CHECK(qwen2_with([](json& j) { j["torch_dtype"] = "float32"; }).decoder.torch_dtype == tessera::dtype::f32);
  // A disabled window's size is ignored, as Qwen2Config drops it.
  CHECK(qwen2_with([](json& j) { j["sliding_window"] = "anything"; }).hidden_size == 896);
}

TEST_CASE("config text: invalid JSON, duplicate keys, non-objects and huge texts are refused", "[io][config][unit]") {
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config("{\"vocab_size\": ", "bad.json"), "config 'bad.json': invalid JSON");
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config(R"({"hidden_size": 896, "hidden_size": 64})", "dup.json"),
                       "duplicate key 'hidden_size'");
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config(std::string("{\"a\": 1}\0", 9), "nul.json"), "NUL byte");
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config("[1, 2]", "arr.json"), "must be a JSON object, got a JSON array");
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config("NaN", "nan.json"), "invalid JSON");
  std::string deep(100, '[');
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config("{\"a\": " + deep, "deep.json"), "nests deeper");
  std::string const huge = "{\"x\": \"" + std::string((16u << 20) + 1, 'a') + "\"}";
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config(huge, "huge.json"), "limit for a config file");
  // A long path keeps its end (the file name) in messages.
  std::string const long_name = std::string(200, 'd') + "/config.json";
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config("{\"vocab_size\": 0}", long_name), "dddd/config.json'");
}

// ------------------------------------------------------------------------------------------------
// CustomLlama (POINTS1.5 llm_config)
// ------------------------------------------------------------------------------------------------

TEST_CASE("custom_llama config: POINTS1.5-7B fields and derived decoder", "[io][config][unit]") {
  model::custom_llama_config const l = model::parse_custom_llama_config(custom_llama_7b().dump(), "llm.json");
  CHECK(l.num_layers == 28);
  CHECK(l.num_kv_heads == 4);
  CHECK(l.ffn_hidden_size == 18944);
  CHECK(l.rotary_emb_base == 1e6);
  CHECK(l.layernorm_epsilon == 1e-5);
  CHECK(l.norm_type == "rms_norm");
  lm::decoder_config const& d = l.decoder;
  CHECK(d.flavour == lm::decoder_flavour::custom_llama);
  CHECK(d.d_model == 3584);
  CHECK(d.n_heads == 28);
  CHECK(d.n_kv_heads == 4);
  CHECK(d.head_dim == 128);
  CHECK(d.rotary_dim == 128);
  CHECK(d.group_size() == 7);
  CHECK(d.kv_dim() == 512);
  CHECK(d.d_ff == 18944);
  CHECK(d.vocab_size == 152064);
  CHECK(d.max_positions == 16384);
  CHECK(d.rope_theta == 1e6);
  CHECK(d.rope_position_scale == 1.0);
  CHECK(d.norm == nn::norm_kind::rms_norm);
  CHECK(d.norm_eps == 1e-5);
  CHECK(d.activation == nn::activation_kind::silu);
  CHECK(d.qkv_bias);
  CHECK_FALSE(d.o_bias);
  CHECK_FALSE(d.gate_up_bias);
  CHECK_FALSE(d.down_bias);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK(d.bos_token_id == 0);
  CHECK(d.eos_token_ids == std::vector<std::int64_t>{2, 3});
}

TEST_CASE("custom_llama config: absent fields take CustomLlamaConfig's defaults", "[io][config][unit]") {
  // Sizes consistent with the defaults' head layout: 2560 / 20 heads = 128, 4 KV heads.
  model::custom_llama_config const l = model::parse_custom_llama_config("{}", "llm.json");
  CHECK(l.vocab_size == 102400);
  CHECK(l.hidden_size == 2560);
  CHECK(l.num_layers == 32);
  CHECK(l.num_attention_heads == 20);
  CHECK(l.num_kv_heads == 4);
  CHECK(l.ffn_hidden_size == 10240);
  CHECK(l.rotary_emb_base == 10000.0);
  CHECK(l.max_position_embeddings == 4096);
  CHECK(l.layernorm_epsilon == 1e-5);
  CHECK(l.norm_type == "layer_norm");
  CHECK(l.tie_word_embeddings);  // PretrainedConfig's default
  lm::decoder_config const& d = l.decoder;
  CHECK(d.norm == nn::norm_kind::layer_norm);
  CHECK(d.qkv_bias);
  CHECK(d.o_bias);
  CHECK(d.gate_up_bias);
  CHECK(d.down_bias);
  CHECK(d.tie_word_embeddings);
  CHECK(d.bos_token_id == 0);
  CHECK(d.eos_token_ids == std::vector<std::int64_t>{2});
}

TEST_CASE("custom_llama config: rms_norm overrides norm_type; rotary_pct gives rotary_dim", "[io][config][unit]") {
  CHECK(llama_with([](json& j) { j["rms_norm"] = true; j["norm_type"] = "layer_norm"; }).decoder.norm ==
        nn::norm_kind::rms_norm);
  CHECK(llama_with([](json& j) { j["rms_norm"] = false; j["norm_type"] = "rms_norm"; }).decoder.norm ==
        nn::norm_kind::layer_norm);
  // With rms_norm set, norm_type is not read at all (as in CustomLlamaConfig).
  CHECK(llama_with([](json& j) { j["rms_norm"] = true; j["norm_type"] = "batch_norm"; }).norm_type == "rms_norm");
  CHECK(llama_with([](json& j) { j["rms_norm"] = nullptr; }).decoder.norm == nn::norm_kind::rms_norm);
  CHECK(llama_with([](json& j) { j["rotary_pct"] = 0.5; }).decoder.rotary_dim == 64);
  CHECK(llama_with([](json& j) { j["rotary_pct"] = 0.25; }).decoder.rotary_dim == 32);
  CHECK(llama_with([](json& j) { j["rotary_compress"] = 0.25; }).decoder.rope_position_scale == 0.25);
  CHECK(llama_with([](json& j) { j["bos_token_id"] = nullptr; }).bos_token_id == std::nullopt);
}

TEST_CASE("custom_llama config: refusals name the file and the field", "[io][config][unit]") {
  auto err = [](std::function<void(json&)> const& edit, std::string const& text) {
    INFO("expected: " << text);
    REQUIRE_TESSERA_ERROR(llama_with(edit), text);
    REQUIRE_TESSERA_ERROR(llama_with(edit), "config 'llm.json'");
  };
  err([](json& j) { j["model_type"] = "llama"; }, "field 'model_type': 'llama' is not supported");
  err([](json& j) { j["architectures"] = {"LlamaForCausalLM"}; }, "field 'architectures'");
  err([](json& j) { j["hidden_act"] = "gelu"; }, "field 'hidden_act': 'gelu' is not supported");
  err([](json& j) { j["norm_type"] = "batch_norm"; }, "field 'norm_type': 'batch_norm'");
  err([](json& j) { j["rms_norm"] = "yes"; }, "field 'rms_norm': must be true, false or null");
  err([](json& j) { j["num_kv_heads"] = 28; }, "field 'num_kv_heads': 28 is not below num_attention_heads 28");
  err([](json& j) { j["num_kv_heads"] = 5; }, "field 'num_kv_heads': 5 does not divide num_attention_heads 28");
  err([](json& j) { j["num_kv_heads"] = 0; }, "field 'num_kv_heads': is 0");
  err([](json& j) { j["hidden_size"] = 3585; }, "field 'num_attention_heads': 28 does not divide hidden_size 3585");
  err([](json& j) { j["rotary_pct"] = 0.0; }, "field 'rotary_pct'");
  err([](json& j) { j["rotary_pct"] = 1.5; }, "field 'rotary_pct'");
  err([](json& j) { j["rotary_pct"] = 0.2; }, "field 'rotary_pct': 0.2 gives 25 rotary dimensions");  // int(25.6)
  err([](json& j) { j["rotary_pct"] = 0.01; }, "gives 1 rotary dimensions");
  err([](json& j) { j["rotary_compress"] = 0; }, "field 'rotary_compress'");
  err([](json& j) { j["rotary_emb_base"] = -1; }, "field 'rotary_emb_base'");
  err([](json& j) { j["layernorm_epsilon"] = 0; }, "field 'layernorm_epsilon'");
  err([](json& j) { j["qkv_proj_bias"] = "true"; }, "field 'qkv_proj_bias': must be true or false");
  err([](json& j) { j["mlp_fc2_bias"] = nullptr; }, "field 'mlp_fc2_bias': must be true or false, got null");
  err([](json& j) { j["ffn_hidden_size"] = 1 << 21; }, "field 'ffn_hidden_size': is 2097152");
}

// ------------------------------------------------------------------------------------------------
// Qwen2-VL vision
// ------------------------------------------------------------------------------------------------

TEST_CASE("vision config: Qwen2-VL-7B tower, derived sizes", "[io][config][unit]") {
  model::qwen2_vl_vision_config const v = model::parse_qwen2_vl_vision_config(vision_7b().dump(), "vision.json");
  CHECK(v.depth == 32);
  CHECK(v.embed_dim == 1280);
  CHECK(v.hidden_size == 3584);
  CHECK(v.num_heads == 16);
  CHECK(v.in_channels == 3);  // in_chans is not a Qwen2VLVisionConfig field
  CHECK(v.hidden_act == "quick_gelu");
  CHECK(v.activation == nn::activation_kind::quick_gelu);
  CHECK(v.head_dim == 80);
  CHECK(v.mlp_dim == 5120);
  CHECK(v.patch_dim == 3 * 2 * 14 * 14);
  CHECK(v.merge_dim == 5120);
  model::patch_merger_config const m = model::vision_merger_config(v);
  CHECK(m.context_dim == 1280);
  CHECK(m.merge_size == 2);
  CHECK(m.hidden_dim == 5120);
  CHECK(m.out_dim == 3584);
}

TEST_CASE("vision config: defaults, activations, and a whole Qwen2-VL config.json", "[io][config][unit]") {
  model::qwen2_vl_vision_config const d = model::parse_qwen2_vl_vision_config("{}", "v.json");
  CHECK(d.depth == 32);
  CHECK(d.embed_dim == 1280);
  CHECK(d.mlp_ratio == 4.0);
  CHECK(d.patch_size == 14);
  CHECK(d.temporal_patch_size == 2);
  CHECK(d.spatial_merge_size == 2);
  CHECK(vision_with([](json& j) { j["hidden_act"] = "gelu"; }).activation == nn::activation_kind::gelu_erf);
  CHECK(vision_with([](json& j) { j["hidden_act"] = "gelu_pytorch_tanh"; }).activation == nn::activation_kind::gelu_tanh);
  CHECK(vision_with([](json& j) { j["hidden_act"] = "silu"; }).activation == nn::activation_kind::silu);
  CHECK(vision_with([](json& j) { j["mlp_ratio"] = 2.5; j["embed_dim"] = 16; j["num_heads"] = 2; }).mlp_dim == 40);

  json full = json::parse(R"({"model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"],
                              "hidden_size": 1536})");
  full["vision_config"] = vision_7b();
  full["vision_config"]["depth"] = 4;
  CHECK(model::parse_qwen2_vl_vision_config(full.dump(), "full.json").depth == 4);
  full["vision_config"] = 5;
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_vl_vision_config(full.dump(), "full.json"),
                       "field 'vision_config': must be a JSON object");
  full["vision_config"] = vision_7b();
  full["vision_config"]["num_heads"] = 3;
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_vl_vision_config(full.dump(), "full.json"), "field 'vision_config.num_heads'");
  full["model_type"] = "qwen2_5_vl";
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_vl_vision_config(full.dump(), "full.json"), "'qwen2_5_vl' is not supported");
}

TEST_CASE("vision config: refusals name the file and the field", "[io][config][unit]") {
  auto err = [](std::function<void(json&)> const& edit, std::string const& text) {
    INFO("expected: " << text);
    REQUIRE_TESSERA_ERROR(vision_with(edit), text);
    REQUIRE_TESSERA_ERROR(vision_with(edit), "config 'vision.json'");
  };
  err([](json& j) { j["num_heads"] = 7; }, "field 'num_heads': 7 does not divide embed_dim 1280");
  err([](json& j) { j["embed_dim"] = 24; j["num_heads"] = 4; }, "gives head_dim 6");
  err([](json& j) { j["hidden_act"] = "relu"; }, "field 'hidden_act': 'relu' is not supported");
  err([](json& j) { j["mlp_ratio"] = 0; }, "field 'mlp_ratio'");
  err([](json& j) { j["mlp_ratio"] = 0.0001; }, "field 'mlp_ratio': 0.0001 gives an MLP width of");
  err([](json& j) { j["mlp_ratio"] = "4"; }, "field 'mlp_ratio': must be a number");
  err([](json& j) { j["patch_size"] = 0; }, "field 'patch_size'");
  err([](json& j) { j["patch_size"] = 4096; }, "field 'patch_size': is 4096");
  err([](json& j) { j["in_channels"] = 100; }, "field 'in_channels': is 100");
  err([](json& j) { j["temporal_patch_size"] = -2; }, "field 'temporal_patch_size'");
  err([](json& j) { j["depth"] = 0; }, "field 'depth'");
  err([](json& j) { j["model_type"] = "siglip_vision_model"; }, "field 'model_type': 'siglip_vision_model'");
}

// ------------------------------------------------------------------------------------------------
// POINTS1.5
// ------------------------------------------------------------------------------------------------

TEST_CASE("points15 config: CustomLlama llm_config, vision_config and derived projector", "[io][config][unit]") {
  model::points15_config const p = model::parse_points15_config(points15_7b().dump(), "points.json");
  REQUIRE(std::holds_alternative<model::custom_llama_config>(p.llm));
  CHECK(std::get<model::custom_llama_config>(p.llm).num_kv_heads == 4);
  CHECK(p.decoder.flavour == lm::decoder_flavour::custom_llama);
  CHECK(p.decoder.d_model == 3584);
  CHECK(p.decoder.norm_eps == 1e-5);
  CHECK(p.vision.embed_dim == 1280);
  CHECK(p.projector.context_dim == 1280);
  CHECK(p.projector.merge_size == 2);
  CHECK(p.projector.hidden_dim == 5120);
  CHECK(p.projector.out_dim == 3584);
}

TEST_CASE("points15 config: the decoder's dtype is llm_config's torch_dtype, else the top level's", "[io][config][unit]") {
  auto dt = [](auto&& edit) { return points_with(edit).decoder.torch_dtype; };
  CHECK(dt([](json& j) { j["llm_config"]["torch_dtype"] = "float16"; j["torch_dtype"] = "float32"; }) == tessera::dtype::f16);
  CHECK(dt([](json& j) { j["llm_config"]["torch_dtype"] = nullptr; j["torch_dtype"] = "float32"; }) == tessera::dtype::f32);
  CHECK(dt([](json& j) { j["llm_config"].erase("torch_dtype"); j["torch_dtype"] = "bfloat16"; }) == tessera::dtype::bf16);
  CHECK_FALSE(dt([](json& j) { j["llm_config"].erase("torch_dtype"); j.erase("torch_dtype"); }).has_value());
}

TEST_CASE("points15 config: the llm_config flavour is detected or chosen", "[io][config][unit]") {
  auto flavour = [](model::points15_config const& p) { return p.decoder.flavour; };
  // model_type decides first.
  CHECK(flavour(points_with([](json& j) { j["llm_config"].erase("architectures"); })) ==
        lm::decoder_flavour::custom_llama);
  // Without model_type: architectures, then auto_map, then field names.
  CHECK(flavour(points_with([](json& j) { j["llm_config"].erase("model_type"); })) ==
        lm::decoder_flavour::custom_llama);
  CHECK(flavour(points_with([](json& j) {
          j["llm_config"].erase("model_type");
          j["llm_config"].erase("architectures");
        })) == lm::decoder_flavour::custom_llama);
  CHECK(flavour(points_with([](json& j) {
          j["llm_config"] = json{{"num_kv_heads", 4}, {"hidden_size", 3584}, {"num_attention_heads", 28}};
        })) == lm::decoder_flavour::custom_llama);
  json const q = json::parse(qwen25_05b().dump());
  model::points15_config const pq = points_with([&](json& j) { j["llm_config"] = q; });
  REQUIRE(std::holds_alternative<model::qwen2_config>(pq.llm));
  CHECK(pq.decoder.flavour == lm::decoder_flavour::qwen2);
  CHECK(pq.projector.out_dim == 896);
  CHECK(flavour(points_with([&](json& j) {
          j["llm_config"] = q;
          j["llm_config"].erase("model_type");
          j["llm_config"].erase("architectures");
        })) == lm::decoder_flavour::qwen2);
  // Neither kind of field, or both: the caller must choose.
  REQUIRE_TESSERA_ERROR(points_with([](json& j) { j["llm_config"] = json::object(); }),
                       "field 'llm_config' cannot be identified");
  REQUIRE_TESSERA_ERROR(points_with([](json& j) { j["llm_config"] = json{{"num_kv_heads", 4}, {"rope_theta", 1e6}}; }),
                       "field names of both");
  // An explicit choice wins: the same fields read as a Qwen2Config take Qwen2's defaults.
  model::points15_config const forced = points_with(
      [](json& j) { j["llm_config"] = json{{"hidden_size", 896}, {"num_attention_heads", 14}, {"num_key_value_heads", 2}}; },
      model::points_llm_flavour::qwen2);
  CHECK(forced.decoder.flavour == lm::decoder_flavour::qwen2);
  CHECK(forced.decoder.norm_eps == 1e-6);
}

TEST_CASE("points15 config: refusals name the nested field", "[io][config][unit]") {
  auto err = [](std::function<void(json&)> const& edit, std::string const& text) {
    INFO("expected: " << text);
    REQUIRE_TESSERA_ERROR(points_with(edit), text);
    REQUIRE_TESSERA_ERROR(points_with(edit), "config 'points.json'");
  };
  err([](json& j) { j["model_type"] = "qwen2_vl"; }, "field 'model_type': 'qwen2_vl' is not supported");
  err([](json& j) { j["architectures"] = {"Qwen2VLForConditionalGeneration"}; }, "field 'architectures'");
  err([](json& j) { j.erase("llm_config"); }, "field 'llm_config': is missing");
  err([](json& j) { j["llm_config"] = "x"; }, "field 'llm_config': must be a JSON object");
  err([](json& j) { j.erase("vision_config"); }, "field 'vision_config': is missing");
  err([](json& j) { j["llm_config"]["model_type"] = "llama"; }, "field 'llm_config.model_type': 'llama'");
  err([](json& j) { j["llm_config"]["num_kv_heads"] = 3; }, "field 'llm_config.num_kv_heads': 3 does not divide");
  err([](json& j) { j["llm_config"]["hidden_act"] = "gelu"; }, "field 'llm_config.hidden_act'");
  err([](json& j) { j["vision_config"]["num_heads"] = 7; }, "field 'vision_config.num_heads'");
  err([](json& j) { j["vision_config"]["spatial_merge_size"] = 3; },
      "field 'vision_config.spatial_merge_size': 3 does not match POINTS1.5's projector");
}

// ------------------------------------------------------------------------------------------------
// Dispatch and files
// ------------------------------------------------------------------------------------------------

TEST_CASE("model config: dispatch by model_type or architectures, others refused by name", "[io][config][unit]") {
  CHECK(std::holds_alternative<model::qwen2_config>(model::parse_model_config(qwen25_05b().dump(), "m.json")));
  CHECK(std::holds_alternative<model::points15_config>(model::parse_model_config(points15_7b().dump(), "m.json")));
  CHECK(model::decoder_of(model::parse_model_config(points15_7b().dump(), "m.json")).d_model == 3584);
  json q = qwen25_05b();
  q.erase("model_type");
  CHECK(std::holds_alternative<model::qwen2_config>(model::parse_model_config(q.dump(), "m.json")));
  json p = points15_7b();
  p.erase("model_type");
  CHECK(std::holds_alternative<model::points15_config>(model::parse_model_config(p.dump(), "m.json")));
  REQUIRE_TESSERA_ERROR(model::parse_model_config(R"({"model_type": "llama"})", "m.json"),
                       "field 'model_type': 'llama' is not supported; tessera reads 'qwen2'");
  REQUIRE_TESSERA_ERROR(model::parse_model_config(R"({"architectures": ["MistralForCausalLM"]})", "m.json"),
                       "field 'model_type': is missing and architectures ['MistralForCausalLM']");
  REQUIRE_TESSERA_ERROR(model::parse_model_config(R"({"model_type": ["qwen2"]})", "m.json"), "must be a string");
  // Qwen2-VL's language model uses M-RoPE: not a Qwen2 decoder.
  REQUIRE_TESSERA_ERROR(model::parse_qwen2_config(R"({"model_type": "qwen2_vl"})", "m.json"), "'qwen2_vl' is not supported");
}

TEST_CASE("config files: a file, a directory with config.json, and file errors", "[io][config][unit]") {
  temp_dir dir;
  write_text(dir.path() / "config.json", qwen25_05b().dump());
  CHECK(model::read_qwen2_config(dir.path()).source == (dir.path() / "config.json").string());
  CHECK(model::read_qwen2_config(dir.path() / "config.json").hidden_size == 896);
  CHECK(std::holds_alternative<model::qwen2_config>(model::read_model_config(dir.path())));
  write_text(dir.path() / "points.json", points15_7b().dump());
  CHECK(model::read_points15_config(dir.path() / "points.json").vision.depth == 32);
  write_text(dir.path() / "vision.json", vision_7b().dump());
  CHECK(model::read_qwen2_vl_vision_config(dir.path() / "vision.json").depth == 32);

  write_text(dir.path() / "bad.json", R"({"num_attention_heads": 5})");
  REQUIRE_TESSERA_ERROR(model::read_qwen2_config(dir.path() / "bad.json"), "bad.json': field 'num_attention_heads'");
  REQUIRE_TESSERA_ERROR(model::read_qwen2_config(dir.path() / "missing.json"), "missing.json': no such file");
  fs::create_directories(dir.path() / "empty_dir");
  REQUIRE_TESSERA_ERROR(model::read_qwen2_config(dir.path() / "empty_dir"), "empty_dir/config.json': no such file");
  {
    std::ofstream big(dir.path() / "big.json", std::ios::binary);
  }
  fs::resize_file(dir.path() / "big.json", std::uintmax_t{64} << 20);  // sparse: nothing is written
  REQUIRE_TESSERA_ERROR(model::read_qwen2_config(dir.path() / "big.json"), "limit for a config file");
}

TEST_CASE("config parsers: random mutations give a result or a tessera::error, nothing else", "[io][config][unit]") {
  // Byte flips, deletions and insertions of JSON-significant characters in valid configs. Each
  // parse either succeeds or throws tessera::error (no other exception type, no crash, no hang).
  std::uint64_t const seed = 20241208;
  std::mt19937_64 gen(seed);
  INFO("seed " << seed);
  std::string const texts[] = {qwen25_05b().dump(), points15_7b().dump(), vision_7b().dump()};
  char const alphabet[] = "{}[]\",:0123456789.-eE truefalsnul\\";
  std::size_t n_ok = 0, n_err = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string t = texts[static_cast<std::size_t>(iter) % 3];
    int const n_edits = 1 + static_cast<int>(gen() % 3);
    for (int e = 0; e < n_edits && !t.empty(); ++e) {
      std::size_t const pos = gen() % t.size();
      char const c = alphabet[gen() % (sizeof(alphabet) - 1)];
      switch (gen() % 3) {
        case 0: t[pos] = c; break;
        case 1: t.erase(pos, 1); break;
        default: t.insert(pos, 1, c); break;
      }
    }
    try {
      switch (iter % 4) {
        case 0: (void)model::parse_model_config(t, "fuzz.json"); break;
        case 1: (void)model::parse_points15_config(t, "fuzz.json"); break;
        case 2: (void)model::parse_qwen2_vl_vision_config(t, "fuzz.json"); break;
        default: (void)model::parse_qwen2_config(t, "fuzz.json"); break;
      }
      ++n_ok;
    } catch (tessera::error const&) {
      ++n_err;
    }
  }
  CHECK(n_ok + n_err == 3000);
  CHECK(n_err > 0);
}
