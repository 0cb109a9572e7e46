// SPDX-License-Identifier: Apache-2.0
// lm::generate, text::chat_template and model::generation_defaults: batched generation equals
// each sequence alone, chunked prefill equals one pass, stop tokens / stop strings / length /
// full cache / callback stops, streaming pieces add up to the text and never show a stop string,
// bad options are refused; ChatML rendering; generation_config.json parsing. The model is a small
// random decoder whose vocabulary is the tiny test tokenizer's (tests/text/data).
#include "common/random_decoder.hpp"
#include "text/tokenizer_test_support.hpp"

#include <tessera/text/chat_template.hpp>
#include <tessera/lm/generate.hpp>
#include <tessera/text/tokenizer.hpp>
#include <tessera/model/generation_config.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <string>
#include <vector>

namespace {

using namespace tessera;

struct fixture {
  text::tokenizer tok = text::tokenizer::from_tokenizer_json(test::tiny_tokenizer_path());
  test::random_decoder<float> rd = test::make_random_decoder<float>(
      test::qwen2_config_of(static_cast<index_t>(tok.vocab_size()) + 7, 64, 2, 2, 1, 96, false), 5, 0.3f);
  lm::qwen2_decoder<backend::cpu, float> dec{rd.config, rd.hf};
  exec_ctx<backend::cpu> ctx;

  std::vector<text::token_id> prompt(std::string const& s) const { return tok.encode(s); }

  std::vector<lm::generation_result> run(std::vector<std::vector<text::token_id>> const& prompts,
                                           lm::generation_options const& opt, index_t max_context = 96,
                                           lm::text_callback const& cb = {}, lm::generation_stats* st = nullptr) {
    lm::kv_cache<float> cache(dec.cache_shape(static_cast<index_t>(prompts.size()), max_context));
    return lm::generate(dec, tok, std::span<std::vector<text::token_id> const>(prompts), opt, cache, ctx, cb, st);
  }
};

lm::generation_options sampling(index_t n, std::uint64_t seed) {
  lm::generation_options o;
  o.max_new_tokens = n;
  o.sampling.do_sample = true;
  o.sampling.temperature = 0.9f;
  o.sampling.top_k = 50;
  o.sampling.top_p = 0.95f;
  o.sampling.repetition_penalty = 1.1f;
  o.sampling.seed = seed;
  return o;
}

}  // namespace

TEST_CASE("generate: a batch of prompts gives each sequence what it gets alone", "[text][generate][unit]") {
  fixture f;
  std::vector<std::vector<text::token_id>> const prompts{f.prompt("hello world"), f.prompt("a"),
                                                         f.prompt("the quick brown fox jumps")};
  for (bool sample : {false, true}) {
    INFO((sample ? "sampling" : "greedy"));
    lm::generation_options opt = sample ? sampling(24, 77) : lm::generation_options{};
    opt.max_new_tokens = 24;
    lm::generation_stats st;
    auto const batch = f.run(prompts, opt, 96, {}, &st);
    REQUIRE(batch.size() == 3);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      lm::generation_options alone = opt;
      alone.sampling.seed = opt.sampling.seed + i;  // sequence i of a batch samples with seed + i
      auto const one = f.run({prompts[i]}, alone);
      INFO("sequence " << i);
      REQUIRE(one[0].tokens == batch[i].tokens);
      REQUIRE(one[0].text == batch[i].text);
      REQUIRE(batch[i].tokens.size() == 24);
      REQUIRE(batch[i].reason == lm::finish_reason::length);
    }
    REQUIRE(st.generated_tokens == 72);
    REQUIRE(st.decode_tokens == 69);
    REQUIRE(st.decode_steps == 23);
    REQUIRE(st.prompt_tokens == static_cast<index_t>(prompts[0].size() + prompts[1].size() + prompts[2].size()));
  }
}

TEST_CASE("generate: prefill in chunks gives the same tokens as one pass", "[text][generate][unit]") {
  fixture f;
  std::vector<std::vector<text::token_id>> const prompts{f.prompt("hello world hello world hello world"),
                                                         f.prompt("the quick brown fox")};
  lm::generation_options opt;
  opt.max_new_tokens = 12;
  auto const whole = f.run(prompts, opt);
  for (index_t chunk : {1, 3, 7}) {
    INFO("chunk " << chunk);
    opt.prefill_chunk = chunk;
    auto const pieces = f.run(prompts, opt);
    for (std::size_t i = 0; i < prompts.size(); ++i) REQUIRE(pieces[i].tokens == whole[i].tokens);
  }
}

TEST_CASE("generate: the same seed gives the same tokens, another seed other tokens", "[text][generate][unit]") {
  fixture f;
  auto const p = f.prompt("hello world");
  auto const a = f.run({p}, sampling(32, 1)), b = f.run({p}, sampling(32, 1)), c = f.run({p}, sampling(32, 2));
  REQUIRE(a[0].tokens == b[0].tokens);
  REQUIRE(a[0].tokens != c[0].tokens);
}

TEST_CASE("generate: stop tokens, stop strings, length, a full cache and the callback end a sequence",
          "[text][generate][unit]") {
  fixture f;
  auto const p = f.prompt("hello world");
  lm::generation_options opt;
  opt.max_new_tokens = 40;
  auto const free_run = f.run({p}, opt)[0];
  REQUIRE(free_run.tokens.size() == 40);

  SECTION("stop token: the first occurrence of a generated id ends the sequence, and is its last token") {
    text::token_id const stop = free_run.tokens[10];
    opt.stop_token_ids = {stop};
    auto const r = f.run({p}, opt)[0];
    REQUIRE(r.reason == lm::finish_reason::stop_token);
    auto const first = std::find(free_run.tokens.begin(), free_run.tokens.end(), stop);
    REQUIRE(r.tokens == std::vector<text::token_id>(free_run.tokens.begin(), first + 1));
    REQUIRE(free_run.text.starts_with(r.text));
  }
  SECTION("stop string: the text is cut before it, and streaming never shows any of it") {
    REQUIRE(free_run.text.size() >= 12);
    std::string const stop = free_run.text.substr(6, 3);
    opt.stop_strings = {stop, "\x01never"};
    std::string streamed;
    auto const r = f.run({p}, opt, 96, [&](index_t seq, std::string_view piece) {
      REQUIRE(seq == 0);
      streamed += piece;
      return true;
    })[0];
    REQUIRE(r.reason == lm::finish_reason::stop_string);
    REQUIRE(r.text == free_run.text.substr(0, free_run.text.find(stop)));
    REQUIRE(streamed == r.text);
    REQUIRE(r.tokens.size() < free_run.tokens.size());
    REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), free_run.tokens.begin()));
  }
  SECTION("length and streaming: the pieces add up to the text") {
    std::string streamed;
    auto const r = f.run({p}, opt, 96, [&](index_t, std::string_view piece) {
      streamed += piece;
      return true;
    })[0];
    REQUIRE(r.reason == lm::finish_reason::length);
    REQUIRE(streamed == r.text);
    REQUIRE(r.text == free_run.text);
    REQUIRE(r.text == f.tok.decode(r.tokens, /*skip_special=*/true));
  }
  SECTION("a full cache slot: prompt + generated tokens fill max_context, one more is chosen") {
    auto const max_context = static_cast<index_t>(p.size()) + 5;
    auto const r = f.run({p}, opt, max_context)[0];
    REQUIRE(r.reason == lm::finish_reason::context_full);
    REQUIRE(r.tokens.size() == 6);
    REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), free_run.tokens.begin()));
  }
  SECTION("the callback stops a sequence") {
    int calls = 0;
    auto const r = f.run({p}, opt, 96, [&](index_t, std::string_view) { return ++calls < 2; })[0];
    REQUIRE(r.reason == lm::finish_reason::stopped_by_callback);
    REQUIRE(calls == 2);
    REQUIRE(r.tokens.size() < free_run.tokens.size());
  }
  SECTION("max_new_tokens 0 only prefills") {
    opt.max_new_tokens = 0;
    auto const r = f.run({p}, opt)[0];
    REQUIRE(r.tokens.empty());
    REQUIRE(r.reason == lm::finish_reason::length);
  }
}

TEST_CASE("generate: bad prompts and options are refused before any work", "[text][generate][unit]") {
  fixture f;
  lm::generation_options opt;
  auto const p = f.prompt("hello");
  REQUIRE_THROWS_AS(f.run({std::vector<text::token_id>{}}, opt), tessera::error);
  REQUIRE_THROWS_AS(f.run({std::vector<text::token_id>{1, static_cast<text::token_id>(f.dec.vocab_size())}}, opt),
                    tessera::error);
  REQUIRE_THROWS_AS(f.run({p}, opt, static_cast<index_t>(p.size())), tessera::error);  // no room to generate
  lm::kv_cache<float> one_slot(f.dec.cache_shape(1, 32));
  std::vector<std::vector<text::token_id>> const two{p, p};
  REQUIRE_THROWS_AS(lm::generate(f.dec, f.tok, std::span<std::vector<text::token_id> const>(two), opt, one_slot, f.ctx),
                    tessera::error);
  lm::generation_options bad = opt;
  bad.stop_strings = {""};
  REQUIRE_THROWS_AS(f.run({p}, bad), tessera::error);
  bad = opt;
  bad.max_new_tokens = -1;
  REQUIRE_THROWS_AS(f.run({p}, bad), tessera::error);
  bad = opt;
  bad.prefill_chunk = 0;
  REQUIRE_THROWS_AS(f.run({p}, bad), tessera::error);
  bad = sampling(4, 1);
  bad.sampling.temperature = 0.0f;
  REQUIRE_THROWS_AS(f.run({p}, bad), tessera::error);
}

TEST_CASE("chat_template renders ChatML as Qwen2.5, Qwen2 and POINTS1.5 do", "[text][chat][unit]") {
  std::vector<text::chat_message> const user{{"user", "Hi!"}};
  REQUIRE(text::chat_template::qwen2_5().render(user) ==
          "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
          "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  REQUIRE(text::chat_template::qwen2().render(user, false) ==
          "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n");
  REQUIRE(text::chat_template::points15().render(user) == "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  std::vector<text::chat_message> const conv{{"system", "Be brief."}, {"user", "1+1?"}, {"assistant", "2"}, {"user", "2+2?"}};
  REQUIRE(text::chat_template::qwen2_5().render(conv) ==
          "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>\n"
          "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  REQUIRE_THROWS_AS(text::chat_template::qwen2_5().render(std::vector<text::chat_message>{{"tool", "x"}}), tessera::error);
  REQUIRE_THROWS_AS(text::chat_template::qwen2_5().render(std::vector<text::chat_message>{}), tessera::error);
}

TEST_CASE("generation_config.json: the decoding fields, as transformers writes them", "[text][generate][unit]") {
  // Qwen2.5-0.5B-Instruct's file.
  auto const g = model::parse_generation_config(R"({
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.1, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "transformers_version": "4.37.0"})",
                                               "generation_config.json");
  REQUIRE(g.do_sample == true);
  REQUIRE(g.temperature == 0.7f);
  REQUIRE(g.top_p == 0.8f);
  REQUIRE(g.top_k == 20);
  REQUIRE(g.repetition_penalty == 1.1f);
  REQUIRE_FALSE(g.min_p.has_value());
  REQUIRE(g.eos_token_ids == std::vector<text::token_id>{151645, 151643});
  lm::sampling_config const s = g.sampling(7);
  REQUIRE(s.do_sample);
  REQUIRE(s.top_k == 20);
  REQUIRE(s.min_p == 0.0f);
  REQUIRE(s.seed == 7);
  auto const empty = model::parse_generation_config(R"({"_from_model_config": true, "eos_token_id": 2})", "g");
  REQUIRE_FALSE(empty.do_sample.has_value());
  REQUIRE(empty.eos_token_ids == std::vector<text::token_id>{2});
  lm::sampling_config const hf = empty.sampling();  // transformers' GenerationConfig defaults
  REQUIRE_FALSE(hf.do_sample);
  REQUIRE(hf.top_k == 50);
  REQUIRE(hf.temperature == 1.0f);
  REQUIRE(hf.top_p == 1.0f);
  REQUIRE(hf.repetition_penalty == 1.0f);
  for (char const* bad : {R"({"temperature": "0.7"})", R"({"top_p": 1.5})", R"({"top_k": -1})", R"({"do_sample": 1})",
                          R"({"eos_token_id": [1, "2"]})", R"({"repetition_penalty": 0})", R"([1, 2])", "{"})
    REQUIRE_THROWS_AS(model::parse_generation_config(bad, "bad.json"), tessera::error);
  test::temp_dir dir;
  REQUIRE_FALSE(model::read_generation_config(dir.path()).do_sample.has_value());  // no file: no defaults
  REQUIRE_THROWS_AS(model::read_generation_config(dir.path() / "missing.json"), tessera::error);
}

// ---- prompts from embedding rows ------------------------------------------------------------------

namespace {

/// The embedding rows of `ids` exactly as the decoder embeds them (f32 weights: a copy).
std::vector<float> embedding_rows(lm::qwen2_decoder<backend::cpu, float> const& dec,
                                  std::vector<text::token_id> const& ids) {
  index_t const d = dec.d_model();
  std::vector<float> rows;
  for (text::token_id id : ids) {
    float const* r = dec.weights().embed.row(id);
    rows.insert(rows.end(), r, r + d);
  }
  return rows;
}

/// Last-position logits of each prompt after lm::prefill into fresh slots 0, 1, ...
std::vector<float> prefill_logits(fixture& f, std::vector<lm::prompt> const& prompts, index_t chunk) {
  auto const n = static_cast<index_t>(prompts.size());
  lm::kv_cache<float> cache(f.dec.cache_shape(n, 96));
  std::vector<index_t> slots(prompts.size());
  for (index_t i = 0; i < n; ++i) slots[static_cast<std::size_t>(i)] = i;
  std::vector<float> logits(static_cast<std::size_t>(n * f.dec.vocab_size()));
  lm::prefill(f.dec, std::span<lm::prompt const>(prompts), slots, cache,
              tensor_view<float, 2>(logits.data(), {n, f.dec.vocab_size()}), f.ctx, chunk);
  return logits;
}

}  // namespace

TEST_CASE("generate: pad rows that are the tokens' own embeddings give bit-identical logits to the ids",
          "[lm][generate][unit]") {
  fixture f;
  std::vector<text::token_id> const ids = f.prompt("the quick brown fox jumps over the lazy dog");
  std::vector<text::token_id> const ids2 = f.prompt("hello world, again");
  REQUIRE(ids.size() >= 10);
  // An "image" of 5 rows at positions 2..6 of the first prompt, all of the second prompt's rows
  // given as embeddings: the rows are exactly what embedding the ids gives.
  text::token_id const pad = static_cast<text::token_id>(f.dec.vocab_size() - 1);
  std::vector<text::token_id> padded = ids;
  std::vector<text::token_id> const image_ids(ids.begin() + 2, ids.begin() + 7);
  for (std::size_t i = 2; i < 7; ++i) padded[i] = pad;
  std::vector<float> const image = embedding_rows(f.dec, image_ids);
  std::vector<float> const all2 = embedding_rows(f.dec, ids2);
  index_t const d = f.dec.d_model();
  std::vector<lm::prompt> const by_ids{lm::prompt(ids), lm::prompt(ids2)};
  std::vector<lm::prompt> const by_rows{
      lm::splice(padded, pad, tensor_view<float const, 2>(image.data(), {5, d})),
      lm::prompt_from_rows(tensor_view<float const, 2>(all2.data(), {static_cast<index_t>(ids2.size()), d}), 0)};
  REQUIRE(by_rows[0].row_positions == std::vector<index_t>{2, 3, 4, 5, 6});
  // Chunks that cut through the image rows, through the second prompt, and none at all.
  for (index_t chunk : {1, 3, 4, 7, 16, 512}) {
    INFO("prefill chunk " << chunk);
    REQUIRE(prefill_logits(f, by_rows, chunk) == prefill_logits(f, by_ids, chunk));
  }
  // And through generate(): the same tokens from ids and from rows, alone and batched.
  lm::generation_options opt;
  opt.max_new_tokens = 12;
  opt.prefill_chunk = 4;
  lm::kv_cache<float> cache(f.dec.cache_shape(2, 96));
  auto const a = lm::generate(f.dec, f.tok, std::span<lm::prompt const>(by_ids), opt, cache, f.ctx);
  auto const b = lm::generate(f.dec, f.tok, std::span<lm::prompt const>(by_rows), opt, cache, f.ctx);
  REQUIRE(a[0].tokens == b[0].tokens);
  REQUIRE(a[1].tokens == b[1].tokens);
}

TEST_CASE("generate: splice refuses a pad count that is not the row count; bad rows are refused",
          "[lm][generate][unit]") {
  fixture f;
  index_t const d = f.dec.d_model();
  std::vector<float> const rows(static_cast<std::size_t>(3 * d), 0.5f);
  std::vector<text::token_id> const ids{5, 9, 9, 7};
  REQUIRE_THROWS_WITH(lm::splice(ids, 9, tensor_view<float const, 2>(rows.data(), {3, d})),
                      Catch::Matchers::ContainsSubstring("2 pad tokens") &&
                          Catch::Matchers::ContainsSubstring("3 rows"));
  lm::prompt const ok = lm::splice(ids, 9, tensor_view<float const, 2>(rows.data(), {2, d}));
  REQUIRE(ok.row_positions == std::vector<index_t>{1, 2});
  // Rows of the wrong width are refused before any work.
  lm::prompt const narrow = lm::splice(ids, 9, tensor_view<float const, 2>(rows.data(), {2, d - 1}));
  lm::kv_cache<float> cache(f.dec.cache_shape(1, 32));
  REQUIRE_THROWS_WITH(lm::generate(f.dec, f.tok, narrow, lm::generation_options{}, cache, f.ctx),
                      Catch::Matchers::ContainsSubstring("rows must be [n, 64]"));
}

TEST_CASE("generate: continue_cache extends a slot; prefill continues where the slot ends", "[lm][generate][unit]") {
  fixture f;
  std::vector<text::token_id> const first = f.prompt("hello world");
  std::vector<text::token_id> const second = f.prompt(" and the quick brown fox");
  std::vector<text::token_id> both = first;
  both.insert(both.end(), second.begin(), second.end());
  index_t const vocab = f.dec.vocab_size();
  // prefill(first) then prefill(second) into the same slot = prefill(first + second), one piece
  // at a time so that every GEMM sees the same row count in both runs (bitwise comparable).
  lm::kv_cache<float> cache(f.dec.cache_shape(1, 64));
  std::vector<index_t> const slot{0};
  std::vector<float> two(static_cast<std::size_t>(vocab)), one(static_cast<std::size_t>(vocab));
  std::vector<lm::prompt> const p1{lm::prompt(first)}, p2{lm::prompt(second)}, p12{lm::prompt(both)};
  lm::prefill(f.dec, std::span<lm::prompt const>(p1), slot, cache, tensor_view<float, 2>(two.data(), {1, vocab}), f.ctx, 1);
  lm::prefill(f.dec, std::span<lm::prompt const>(p2), slot, cache, tensor_view<float, 2>(two.data(), {1, vocab}), f.ctx, 1);
  REQUIRE(cache.length(0) == static_cast<index_t>(both.size()));
  cache.reset(0);
  lm::prefill(f.dec, std::span<lm::prompt const>(p12), slot, cache, tensor_view<float, 2>(one.data(), {1, vocab}), f.ctx, 1);
  REQUIRE(two == one);
  // generate with continue_cache: a second turn continues the first turn's cache. The cache holds
  // the first turn's prompt and all its tokens but the last, which the second prompt must start with.
  lm::generation_options opt;
  opt.max_new_tokens = 6;
  opt.prefill_chunk = 1;
  lm::kv_cache<float> c2(f.dec.cache_shape(1, 96));
  auto const turn1 = lm::generate(f.dec, f.tok, lm::prompt(first), opt, c2, f.ctx);
  REQUIRE(c2.length(0) == static_cast<index_t>(first.size() + turn1.tokens.size() - 1));
  std::vector<text::token_id> next{turn1.tokens.back()};
  next.insert(next.end(), second.begin(), second.end());
  lm::generation_options cont = opt;
  cont.continue_cache = true;
  auto const turn2 = lm::generate(f.dec, f.tok, lm::prompt(next), cont, c2, f.ctx);
  // The same as one fresh run over the whole conversation so far.
  std::vector<text::token_id> whole = first;
  whole.insert(whole.end(), turn1.tokens.begin(), turn1.tokens.end());
  whole.insert(whole.end(), second.begin(), second.end());
  lm::kv_cache<float> c3(f.dec.cache_shape(1, 96));
  lm::generation_options fresh = opt;
  auto const direct = lm::generate(f.dec, f.tok, lm::prompt(whole), fresh, c3, f.ctx);
  REQUIRE(turn2.tokens == direct.tokens);
  // A continuation that would not fit is refused, naming what is cached.
  lm::kv_cache<float> small(f.dec.cache_shape(1, static_cast<index_t>(first.size()) + 2));
  (void)lm::generate(f.dec, f.tok, lm::prompt(first), opt, small, f.ctx);
  REQUIRE_THROWS_WITH(lm::generate(f.dec, f.tok, lm::prompt(second), cont, small, f.ctx),
                      Catch::Matchers::ContainsSubstring("cached"));
}
