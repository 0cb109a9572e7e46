// SPDX-License-Identifier: Apache-2.0
// lm::qwen2_decoder and lm::kv_cache on random in-memory weights: the cpu backend against the
// reference, prefill + cached decode steps against one full pass, a packed batch against each
// sequence alone, CustomLlama's fused layout against HF's, bf16 caches, rollback, bad input;
// lm::random_decoder_weights for every bias, norm and tying choice of a config.
// (The comparison with transformers' Qwen2ForCausalLM is tests/golden/test_golden_decoder.cpp.)
#include "common/compare.hpp"
#include "common/random_decoder.hpp"
#include "common/temp_dir.hpp"

#include <tessera/model/qwen2/loader.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace tessera;
using test::nmse;
using test::tol;

/// sum (a - b)^2 / sum b^2.
/// Element-wise comparison of two equally long spans.
test::compare_result close(std::span<float const> got, std::span<float const> want, test::tolerance t) {
  REQUIRE(got.size() == want.size());
  return test::compare(got.data(), want.data(), static_cast<std::int64_t>(got.size()), t);
}

std::vector<text::token_id> random_ids(std::size_t n, index_t vocab, std::uint64_t seed) {
  std::vector<text::token_id> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<text::token_id>(test::hash64(seed, i) % static_cast<std::uint64_t>(vocab));
  return ids;
}

/// Logits of every token of one prompt, run alone in slot 0 of a fresh cache.
template <class Backend, class T, class KV = float>
std::vector<float> prompt_logits(lm::qwen2_decoder<Backend, T> const& dec, std::span<text::token_id const> ids,
                                 exec_ctx<Backend>& ctx) {
  auto const n = static_cast<index_t>(ids.size());
  lm::kv_cache<KV> cache(dec.cache_shape(1, n + 4));
  std::vector<float> logits(static_cast<std::size_t>(n * dec.vocab_size()));
  std::vector<index_t> const slots{0};
  dec.run(ids, seq_offsets::single(n), slots, cache, tensor_view<float, 2>(logits.data(), {n, dec.vocab_size()}), ctx,
          lm::logits_rows::all);
  return logits;
}

// Two shapes: head_dim 64 with 2 KV heads (group 2), head_dim 32 with one KV head (group 4),
// untied, with an odd vocabulary.
lm::decoder_config small_config(int which) {
  if (which == 0) return test::qwen2_config_of(/*vocab*/ 301, /*d*/ 128, /*layers*/ 2, /*heads*/ 2, /*kv*/ 1, /*ff*/ 200, true);
  lm::decoder_config c = test::qwen2_config_of(257, 128, 3, 4, 1, 96, false);
  c.rope_theta = 1e4;
  c.norm_eps = 1e-5;
  return c;
}

}  // namespace

TEMPLATE_TEST_CASE("qwen2_decoder: the cpu backend matches the reference", "[text][decoder][unit]", float, bf16) {
  for (int which : {0, 1}) {
    INFO("config " << which);
    auto const rd = test::make_random_decoder<TestType>(small_config(which), test::seed(11 + which), 0.08f);
    lm::decoder_options const opt{nn::product_precision::f32};
    lm::qwen2_decoder<backend::reference, TestType> const ref(rd.config, rd.hf, opt);
    lm::qwen2_decoder<backend::cpu, TestType> const cpu(rd.config, rd.hf, opt);
    exec_ctx<backend::reference> rctx;
    exec_ctx<backend::cpu> cctx;
    auto const ids = random_ids(37, rd.config.vocab_size, test::seed(5));
    auto const want = prompt_logits(ref, ids, rctx);
    auto const got = prompt_logits(cpu, ids, cctx);
    double const e = nmse(got, want);
    INFO("NMSE " << e);
    REQUIRE(e <= tol<float>::model_nmse);
    auto const cmp = test::compare(got, want, tol<float>::vs_ref.scaled(10));
    INFO(cmp.report());
    REQUIRE(cmp.ok);
  }
}

TEST_CASE("qwen2_decoder: prefill then cached decode steps equal one pass over the whole sequence",
          "[text][decoder][unit]") {
  for (int which : {0, 1}) {
    INFO("config " << which);
    auto const rd = test::make_random_decoder<float>(small_config(which), test::seed(21 + which), 0.08f);
    lm::qwen2_decoder<backend::cpu, float> const dec(rd.config, rd.hf);
    exec_ctx<backend::cpu> ctx;
    index_t const vocab = rd.config.vocab_size, n_prompt = 19, n_steps = 9, n = n_prompt + n_steps;
    auto const ids = random_ids(static_cast<std::size_t>(n), vocab, test::seed(7));
    auto const full = prompt_logits(dec, ids, ctx);

    lm::kv_cache<float> cache(dec.cache_shape(2, 64));
    std::vector<index_t> const slots{1};
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    tensor_view<float, 2> const out(logits.data(), {1, vocab});
    dec.run(std::span(ids).first(static_cast<std::size_t>(n_prompt)), seq_offsets::single(n_prompt), slots, cache, out,
            ctx);
    REQUIRE(cache.length(1) == n_prompt);
    REQUIRE(cache.length(0) == 0);
    for (index_t t = n_prompt - 1; t < n; ++t) {
      if (t >= n_prompt) dec.run(std::span(ids).subspan(static_cast<std::size_t>(t), 1), seq_offsets::single(1), slots,
                                 cache, out, ctx);
      std::span<float const> const want(full.data() + t * vocab, static_cast<std::size_t>(vocab));
      auto const cmp = close(logits, want, tol<float>::vs_ref);
      INFO("position " << t << ": " << cmp.report());
      REQUIRE(cmp.ok);
    }
    REQUIRE(cache.length(1) == n);
  }
}

TEST_CASE("qwen2_decoder: a packed batch of sequences equals each sequence alone", "[text][decoder][unit]") {
  auto const rd = test::make_random_decoder<bf16>(small_config(1), test::seed(31), 0.08f);
  lm::qwen2_decoder<backend::cpu, bf16> const dec(rd.config, rd.hf);
  exec_ctx<backend::cpu> ctx;
  index_t const vocab = rd.config.vocab_size;
  std::vector<std::vector<text::token_id>> prompts;
  for (std::size_t len : {13u, 1u, 40u, 6u}) prompts.push_back(random_ids(len, vocab, test::seed(100 + len)));

  // Alone, in slot 0 of its own cache: logits of every token, then one decode step.
  std::vector<std::vector<float>> alone, alone_step;
  std::vector<text::token_id> const next{3, 5, 7, 11};
  for (std::size_t s = 0; s < prompts.size(); ++s) {
    auto const n = static_cast<index_t>(prompts[s].size());
    lm::kv_cache<float> cache(dec.cache_shape(1, 64));
    std::vector<index_t> const slot0{0};
    alone.emplace_back(static_cast<std::size_t>(n * vocab));
    dec.run(prompts[s], seq_offsets::single(n), slot0, cache, tensor_view<float, 2>(alone.back().data(), {n, vocab}),
            ctx, lm::logits_rows::all);
    alone_step.emplace_back(static_cast<std::size_t>(vocab));
    dec.run(std::span(next).subspan(s, 1), seq_offsets::single(1), slot0, cache,
            tensor_view<float, 2>(alone_step.back().data(), {1, vocab}), ctx);
  }

  // Packed, in slots 3 2 0 1 of one cache, then one decode step for all four together.
  std::vector<text::token_id> packed;
  std::vector<index_t> lengths;
  for (auto const& p : prompts) {
    packed.insert(packed.end(), p.begin(), p.end());
    lengths.push_back(static_cast<index_t>(p.size()));
  }
  auto const seqs = seq_offsets::from_lengths(std::span<index_t const>(lengths));
  std::vector<index_t> const slots{3, 2, 0, 1};
  lm::kv_cache<float> cache(dec.cache_shape(4, 64));
  std::vector<float> logits(static_cast<std::size_t>(seqs.n_tokens() * vocab));
  dec.run(packed, seqs, slots, cache, tensor_view<float, 2>(logits.data(), {seqs.n_tokens(), vocab}), ctx,
          lm::logits_rows::all);
  std::vector<float> step(4 * static_cast<std::size_t>(vocab));
  dec.run(next, seq_offsets::from_lengths({1, 1, 1, 1}), slots, cache, tensor_view<float, 2>(step.data(), {4, vocab}),
          ctx);
  for (std::size_t s = 0; s < prompts.size(); ++s) {
    INFO("sequence " << s);
    std::span<float const> const got(logits.data() + seqs.begin(static_cast<index_t>(s)) * vocab, alone[s].size());
    auto const cmp = close(got, alone[s], tol<float>::vs_ref);
    INFO("prompt: " << cmp.report());
    REQUIRE(cmp.ok);
    auto const cmp_step = close(std::span<float const>(step).subspan(s * static_cast<std::size_t>(vocab),
                                                                             static_cast<std::size_t>(vocab)),
                                        alone_step[s], tol<float>::vs_ref);
    INFO("decode step: " << cmp_step.report());
    REQUIRE(cmp_step.ok);
    REQUIRE(cache.length(slots[s]) == lengths[s] + 1);
  }
}

TEMPLATE_TEST_CASE("qwen2_decoder: CustomLlama's fused layout gives the same logits as HF's", "[text][decoder][unit]",
                   float, bf16) {
  lm::decoder_config c = small_config(0);
  c.flavour = lm::decoder_flavour::custom_llama;
  auto const rd = test::make_random_decoder<TestType>(c, test::seed(41), 0.08f, /*fused=*/true);
  lm::qwen2_decoder<backend::cpu, TestType> const hf(rd.config, rd.hf);
  lm::qwen2_decoder<backend::cpu, TestType> const fused(rd.config, *rd.fused);
  exec_ctx<backend::cpu> ctx;
  for (std::size_t n : {1u, 3u, 29u}) {  // GEMV-shaped and GEMM-shaped projections
    auto const ids = random_ids(n, c.vocab_size, test::seed(n));
    auto const a = prompt_logits(hf, ids, ctx);
    auto const b = prompt_logits(fused, ids, ctx);
    // The fused projections compute every output element with the same products in the same
    // order as the separate ones, so the results are identical, not merely close.
    REQUIRE(a == b);
  }
}

TEST_CASE("qwen2_decoder: a bf16 KV cache stays within bf16 rounding of the f32 cache", "[text][decoder][unit]") {
  auto const rd = test::make_random_decoder<float>(small_config(1), test::seed(51), 0.08f);
  lm::qwen2_decoder<backend::cpu, float> const dec(rd.config, rd.hf);
  exec_ctx<backend::cpu> ctx;
  auto const ids = random_ids(45, rd.config.vocab_size, test::seed(52));
  auto const f32 = prompt_logits<backend::cpu, float, float>(dec, ids, ctx);
  auto const b16 = prompt_logits<backend::cpu, float, bf16>(dec, ids, ctx);
  double const e = nmse(b16, f32);
  INFO("NMSE bf16 cache vs f32 cache: " << e);
  REQUIRE(e <= tol<bf16>::model_nmse);
  REQUIRE(e > 0.0);  // the cache really is rounded
  // The reference backend reads the same bf16 cache.
  lm::qwen2_decoder<backend::reference, float> const ref(rd.config, rd.hf);
  exec_ctx<backend::reference> rctx;
  auto const ref_b16 = prompt_logits<backend::reference, float, bf16>(ref, ids, rctx);
  REQUIRE(nmse(b16, ref_b16) <= tol<float>::model_nmse);
}

TEST_CASE("qwen2_decoder: truncating the cache rolls a sequence back", "[text][decoder][unit]") {
  auto const rd = test::make_random_decoder<float>(small_config(0), test::seed(61), 0.08f);
  lm::qwen2_decoder<backend::cpu, float> const dec(rd.config, rd.hf);
  exec_ctx<backend::cpu> ctx;
  index_t const vocab = rd.config.vocab_size;
  auto const ids = random_ids(20, vocab, test::seed(62));
  lm::kv_cache<float> cache(dec.cache_shape(1, 32));
  std::vector<index_t> const slot{0};
  std::vector<float> first(static_cast<std::size_t>(vocab)), again(first.size());
  dec.run(std::span(ids).first(12), seq_offsets::single(12), slot, cache, tensor_view<float, 2>(first.data(), {1, vocab}), ctx);
  dec.run(std::span(ids).subspan(12), seq_offsets::single(8), slot, cache, tensor_view<float, 2>(again.data(), {1, vocab}), ctx);
  REQUIRE(cache.length(0) == 20);
  cache.truncate(0, 11);  // keep 11 positions, feed token 11 again: the same logits as before
  dec.run(std::span(ids).subspan(11, 1), seq_offsets::single(1), slot, cache, tensor_view<float, 2>(again.data(), {1, vocab}), ctx);
  auto const cmp = test::compare(again, first, tol<float>::vs_ref);
  INFO(cmp.report());
  REQUIRE(cmp.ok);
  REQUIRE_THROWS_AS(cache.truncate(0, 13), tessera::error);
}

TEST_CASE("qwen2_decoder: bad input is refused with tessera::error", "[text][decoder][unit]") {
  auto const rd = test::make_random_decoder<float>(small_config(0), test::seed(71), 0.08f);
  lm::qwen2_decoder<backend::cpu, float> const dec(rd.config, rd.hf);
  exec_ctx<backend::cpu> ctx;
  index_t const vocab = rd.config.vocab_size;
  std::vector<float> logits(2 * static_cast<std::size_t>(vocab));
  tensor_view<float, 2> const one(logits.data(), {1, vocab}), two(logits.data(), {2, vocab});
  lm::kv_cache<float> cache(dec.cache_shape(2, 8));
  std::vector<text::token_id> const ids{1, 2, 3};
  std::vector<index_t> const slot0{0}, slot5{5}, both0{0, 0};

  REQUIRE_THROWS_AS(dec.run(std::vector<text::token_id>{1, static_cast<text::token_id>(vocab)}, seq_offsets::single(2),
                            slot0, cache, one, ctx),
                    tessera::error);  // id outside the vocabulary
  REQUIRE_THROWS_AS(dec.run(std::vector<text::token_id>{-1}, seq_offsets::single(1), slot0, cache, one, ctx),
                    tessera::error);
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::single(3), slot5, cache, one, ctx), tessera::error);  // no such slot
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::from_lengths({1, 2}), both0, cache, two, ctx), tessera::error);  // repeated
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::from_lengths({1, 2}), slot0, cache, two, ctx), tessera::error);  // count
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::single(3), slot0, cache, two, ctx), tessera::error);  // logits rows
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::from_lengths({3, 0}), std::vector<index_t>{0, 1}, cache, two, ctx),
                    tessera::error);  // an empty sequence has no last token
  // Context overflow: 3 + 3 + 3 > 8, refused before anything changes.
  dec.run(ids, seq_offsets::single(3), slot0, cache, one, ctx);
  dec.run(ids, seq_offsets::single(3), slot0, cache, one, ctx);
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::single(3), slot0, cache, one, ctx), tessera::error);
  REQUIRE(cache.length(0) == 6);
  // A cache for another model.
  lm::kv_cache<float> other({rd.config.n_layers + 1, 1, 8, rd.config.n_kv_heads, rd.config.head_dim});
  REQUIRE_THROWS_AS(dec.run(ids, seq_offsets::single(3), slot0, other, one, ctx), tessera::error);
  // Caches and configs with absurd sizes.
  REQUIRE_THROWS_AS(lm::kv_cache<float>({2, 0, 8, 1, 64}), tessera::error);
  REQUIRE_THROWS_AS(lm::kv_cache<float>({2, 1 << 20, 1 << 20, 1, 64}), tessera::error);
  lm::decoder_config bad = rd.config;
  bad.activation = nn::activation_kind::gelu_erf;
  REQUIRE_THROWS_AS((lm::qwen2_decoder<backend::cpu, float>(bad, rd.hf)), tessera::error);
  bad = rd.config;
  bad.d_ff += 1;  // weights no longer match
  REQUIRE_THROWS_AS((lm::qwen2_decoder<backend::cpu, float>(bad, rd.hf)), tessera::error);
}

TEST_CASE("random_decoder_weights: the tensors a config describes, which the decoder accepts", "[text][decoder][unit]") {
  lm::decoder_config tied = small_config(0), all_biases = small_config(1);
  all_biases.o_bias = all_biases.gate_up_bias = all_biases.down_bias = true;
  all_biases.norm = nn::norm_kind::layer_norm;
  lm::decoder_config no_bias = small_config(1);
  no_bias.qkv_bias = false;
  for (lm::decoder_config const& c : {tied, all_biases, no_bias}) {
    nn::random_parameters<float> p(5);
    lm::decoder_weights<float> const w = lm::random_decoder_weights(c, p);
    INFO("qkv_bias " << c.qkv_bias << ", o_bias " << c.o_bias << ", tied " << c.tie_word_embeddings);
    REQUIRE(static_cast<index_t>(w.layers.size()) == c.n_layers);
    lm::decoder_layer_weights<float> const& l = w.layers.back();
    CHECK((l.q.bias.has_value() == c.qkv_bias && l.k.bias.has_value() == c.qkv_bias && l.v.bias.has_value() == c.qkv_bias));
    CHECK((l.o.bias.has_value() == c.o_bias && l.gate.bias.has_value() == c.gate_up_bias &&
           l.up.bias.has_value() == c.gate_up_bias && l.down.bias.has_value() == c.down_bias));
    CHECK(l.input_norm.bias.has_value() == (c.norm == nn::norm_kind::layer_norm));
    CHECK((w.lm_head_tied == c.tie_word_embeddings && (w.lm_head.data() == w.embed.data()) == c.tie_word_embeddings));
    CHECK((!l.kv_fused && !l.up_gate_fused && w.keep_alive == p.keep_alive()));
    // The decoder checks every shape; its logits are finite.
    lm::qwen2_decoder<backend::cpu, float> const dec(c, w);
    exec_ctx<backend::cpu> ctx(2);
    std::vector<text::token_id> const ids = random_ids(5, c.vocab_size, 3);
    for (float v : prompt_logits(dec, ids, ctx)) REQUIRE(std::isfinite(v));
  }
  nn::random_parameters<float> p(5);
  lm::decoder_config bad = tied;
  bad.n_layers = 0;
  REQUIRE_THROWS_WITH(lm::random_decoder_weights(bad, p), Catch::Matchers::ContainsSubstring("lm::random_decoder_weights"));
}

TEST_CASE("load_qwen2_decoder: missing files are named in the error", "[text][decoder][unit]") {
  test::temp_dir dir;
  REQUIRE_THROWS_AS((model::load_qwen2_decoder<backend::cpu, bf16>(dir.path())), tessera::error);
}
