// SPDX-License-Identifier: Apache-2.0
// text::generate -- autoregressive text generation with a qwen2_decoder, as transformers'
// generate() does it for one or several prompts: prefill every prompt (packed, in chunks of at
// most prefill_chunk tokens), then one decode step per new token for all unfinished sequences
// together (batched GEMVs), each sequence choosing its next token with its own text::sampler,
// until a stop token, a stop string, max_new_tokens or the end of its cache slot. Text is
// streamed as it becomes valid UTF-8, never showing a stop string or a part of one.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/text/kv_cache.hpp>
#include <tessera/text/qwen2_decoder.hpp>
#include <tessera/text/sampler.hpp>
#include <tessera/text/tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text {

/// Why a sequence stopped.
enum class finish_reason {
  length,               ///< max_new_tokens generated
  stop_token,           ///< a stop token id was generated (it is the last of `tokens`)
  stop_string,          ///< the text reached a stop string (cut from `text`, kept in `tokens`)
  context_full,         ///< the sequence's cache slot is full (prompt + generated = max_context)
  stopped_by_callback,  ///< the text callback returned false
};

[[nodiscard]] constexpr std::string_view name_of(finish_reason r) noexcept {
  switch (r) {
    case finish_reason::length: return "length";
    case finish_reason::stop_token: return "stop_token";
    case finish_reason::stop_string: return "stop_string";
    case finish_reason::context_full: return "context_full";
    case finish_reason::stopped_by_callback: return "stopped_by_callback";
  }
  return "?";
}

/// How to generate (transformers GenerationConfig's fields, where they exist).
struct generation_options {
  index_t max_new_tokens = 256;  ///< >= 0
  /// Greedy or sampling, see text::sampler. Sequence i of a batch samples with seed + i, so its
  /// tokens do not depend on the other sequences of the batch.
  sampling_config sampling;
  /// Generating one of these ends the sequence (HF eos_token_id; e.g. <|im_end|> for chat).
  std::vector<token_id> stop_token_ids;
  /// The generated text reaching one of these ends the sequence; the text is cut before it (HF
  /// stop_strings stops the same way; HF keeps the string in the decoded output).
  std::vector<std::string> stop_strings;
  /// Prompt tokens per prefill pass (>= 1): bounds the activation memory of long prompts. Longer
  /// prompts are prefilled in pieces, each attending to the cached ones before it.
  index_t prefill_chunk = 512;
};

/// One sequence's output.
struct generation_result {
  std::vector<token_id> tokens;  ///< every generated id, a final stop token included
  std::string text;              ///< their text (special tokens skipped, cut before a stop string)
  finish_reason reason = finish_reason::length;
};

/// Token counts and wall times of one generate() call.
struct generation_stats {
  index_t prompt_tokens = 0;     ///< prefilled, summed over the sequences
  index_t generated_tokens = 0;  ///< summed over the sequences
  index_t decode_tokens = 0;     ///< of those, chosen after a decode pass (all but each sequence's first)
  index_t decode_steps = 0;      ///< batched decode passes
  double prefill_seconds = 0;    ///< the prefill passes and the choice of every sequence's first token
  double decode_seconds = 0;     ///< every decode pass and the choices after it
  [[nodiscard]] double prefill_tokens_per_second() const noexcept {
    return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
  }
  [[nodiscard]] double decode_tokens_per_second() const noexcept {
    return decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0;
  }
};

/// Receives (sequence index, text) as generated text becomes final; returning false stops that
/// sequence (finish_reason::stopped_by_callback). The pieces of a sequence concatenate to its
/// generation_result::text.
using text_callback = std::function<bool(index_t seq, std::string_view text)>;

namespace detail {

/// One sequence's decoding state: sampler, text assembly with stop-string hold-back.
class sequence_state {
 public:
  sequence_state(sampling_config const& cfg, index_t vocab, tokenizer const& tok, std::vector<token_id> const& prompt,
                 generation_options const& opt, index_t index, text_callback const* on_text)
      : sampler_(cfg, vocab), tok_(&tok), stream_(tok.stream(/*skip_special=*/true)), opt_(&opt), index_(index),
        on_text_(on_text), history_(prompt) {
    history_.reserve(prompt.size() + static_cast<std::size_t>(opt.max_new_tokens));
    result_.tokens.reserve(static_cast<std::size_t>(opt.max_new_tokens));
  }

  [[nodiscard]] bool done() const noexcept { return done_; }
  [[nodiscard]] generation_result& result() noexcept { return result_; }

  /// Chooses the next token from this sequence's logits row, records it and its text; returns it.
  token_id step(std::span<float> logits) {
    token_id const id = sampler_.sample(logits, history_);
    history_.push_back(id);
    result_.tokens.push_back(id);
    if (std::find(opt_->stop_token_ids.begin(), opt_->stop_token_ids.end(), id) != opt_->stop_token_ids.end()) {
      finish(finish_reason::stop_token);
      return id;
    }
    if (tok_->contains(id)) feed(stream_.push(id));  // ids past the tokenizer (padding rows) have no text
    if (!done_ && static_cast<index_t>(result_.tokens.size()) >= opt_->max_new_tokens) finish(finish_reason::length);
    return id;
  }

  /// Ends the sequence. The text held back (an incomplete character, a possible start of a stop
  /// string) is flushed first, unless the callback stopped it; the flush itself may still
  /// complete a stop string, which then is the reason.
  void finish(finish_reason reason) {
    if (done_) return;
    if (reason != finish_reason::stopped_by_callback) feed(stream_.finish(), /*final=*/true);
    if (!done_) {
      done_ = true;
      result_.reason = reason;
    }
  }

 private:
  /// Appends decoded text; emits what can no longer be (part of) a stop string.
  void feed(std::string piece, bool final = false) {
    pending_ += piece;
    std::size_t cut = std::string::npos;
    for (std::string const& s : opt_->stop_strings) cut = std::min(cut, pending_.find(s));
    if (cut != std::string::npos) {
      emit(pending_.substr(0, cut));
      pending_.clear();
      done_ = true;
      result_.reason = finish_reason::stop_string;
      return;
    }
    std::size_t hold = 0;  // longest suffix of pending that starts some stop string
    if (!final)
      for (std::string const& s : opt_->stop_strings)
        for (std::size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
          if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
            hold = n;
            break;
          }
    emit(pending_.substr(0, pending_.size() - hold));
    pending_.erase(0, pending_.size() - hold);
  }

  void emit(std::string const& text) {
    if (text.empty() || done_) return;
    result_.text += text;
    if (on_text_ && *on_text_ && !(*on_text_)(index_, text)) {
      done_ = true;
      result_.reason = finish_reason::stopped_by_callback;
    }
  }

  sampler sampler_;
  tokenizer const* tok_;
  stream_decoder stream_;
  generation_options const* opt_;
  index_t index_;
  text_callback const* on_text_;
  std::vector<token_id> history_;  // prompt + generated (the repetition penalty's input_ids)
  std::string pending_;
  generation_result result_;
  bool done_ = false;
};

}  // namespace detail

/// Generates a continuation of every prompt, sequence i in cache slot i (its previous contents
/// are discarded; the cache holds prompt and continuation afterwards).
///   prompts: >= 1 token ids each; prompts.size() <= cache.n_slots(); each prompt must fit its
///            slot (length < max_context, so that at least one token can be generated).
///   on_text: optional streaming callback; stats: optional counts and timings.
/// Throws tessera::error for invalid options or prompts (before any work), and whatever the
/// decoder, sampler or tokenizer throw on invalid input (e.g. an id outside the vocabulary).
/// Deterministic: the same inputs, options and seed give the same tokens, for any batch
/// composition (sequence i's RNG is seeded with seed + i) and, for a backend, thread count.
template <backend::tag Backend, weight_type T, attn::kv_element KV>
std::vector<generation_result> generate(qwen2_decoder<Backend, T> const& dec, tokenizer const& tok,
                                        std::span<std::vector<token_id> const> prompts,
                                        generation_options const& opt, kv_cache<KV>& cache, exec_ctx<Backend>& ctx,
                                        text_callback const& on_text = {}, generation_stats* stats = nullptr) {
  using clock = std::chrono::steady_clock;
  auto const n_seqs = static_cast<index_t>(prompts.size());
  index_t const vocab = dec.vocab_size(), d = dec.d_model();
  TESSERA_CHECK(n_seqs >= 1, "text::generate: no prompts");
  TESSERA_CHECK(n_seqs <= cache.n_slots(), "text::generate: ", n_seqs, " prompts but the cache has ", cache.n_slots(),
                " slots");
  TESSERA_CHECK(opt.max_new_tokens >= 0, "text::generate: max_new_tokens must be >= 0, got ", opt.max_new_tokens);
  TESSERA_CHECK(opt.prefill_chunk >= 1, "text::generate: prefill_chunk must be >= 1, got ", opt.prefill_chunk);
  for (std::string const& s : opt.stop_strings)
    TESSERA_CHECK(!s.empty(), "text::generate: a stop string is empty (it would stop before the first token)");
  for (index_t i = 0; i < n_seqs; ++i) {
    auto const len = static_cast<index_t>(prompts[static_cast<std::size_t>(i)].size());
    TESSERA_CHECK(len >= 1, "text::generate: prompt ", i, " is empty (generation needs at least one token)");
    TESSERA_CHECK(len < cache.max_context(), "text::generate: prompt ", i, " has ", len,
                  " tokens; the cache holds at most ", cache.max_context(), " positions per sequence");
    for (token_id id : prompts[static_cast<std::size_t>(i)])
      TESSERA_CHECK(id >= 0 && id < vocab, "text::generate: prompt ", i, " holds id ", id, ", outside the model's ",
                    "vocabulary [0, ", vocab, ")");
  }

  std::vector<detail::sequence_state> seqs;
  seqs.reserve(static_cast<std::size_t>(n_seqs));
  for (index_t i = 0; i < n_seqs; ++i) {
    sampling_config sc = opt.sampling;
    sc.seed = opt.sampling.seed + static_cast<std::uint64_t>(i);
    seqs.emplace_back(sc, vocab, tok, prompts[static_cast<std::size_t>(i)], opt, i, &on_text);
  }
  std::vector<float> logits(static_cast<std::size_t>(n_seqs * vocab));  // [n_seqs, vocab]
  generation_stats st;
  auto const t0 = clock::now();

  // ---- prefill: passes of at most prefill_chunk tokens; each takes the next piece of every
  // sequence in order while it fits (at least one piece per pass) ----
  for (index_t i = 0; i < n_seqs; ++i) cache.reset(i);
  std::vector<index_t> done_tokens(static_cast<std::size_t>(n_seqs), 0);
  for (;;) {
    std::vector<token_id> ids;
    std::vector<index_t> lengths, slots, finishing;  // finishing: (position in the pass) of last pieces
    for (index_t i = 0; i < n_seqs; ++i) {
      auto const& p = prompts[static_cast<std::size_t>(i)];
      index_t const done_i = done_tokens[static_cast<std::size_t>(i)], total = static_cast<index_t>(p.size());
      if (done_i == total) continue;
      index_t const room = opt.prefill_chunk - static_cast<index_t>(ids.size());
      if (room <= 0) break;
      index_t const take = std::min(room, total - done_i);
      ids.insert(ids.end(), p.begin() + done_i, p.begin() + done_i + take);
      lengths.push_back(take);
      slots.push_back(i);
      done_tokens[static_cast<std::size_t>(i)] += take;
      if (done_i + take == total) finishing.push_back(static_cast<index_t>(slots.size()) - 1);
    }
    if (ids.empty()) break;
    auto const pass = seq_offsets::from_lengths(std::span<index_t const>(lengths));
    auto const n = static_cast<index_t>(ids.size());
    auto frame = ctx.scratch().open();
    tensor_view<float, 2> const x(frame.template alloc<float>(static_cast<std::size_t>(n * d)), {n, d});  // [n, d_model]
    dec.embed(ids, x);
    dec.forward(x, pass, slots, cache, ctx);
    if (finishing.empty()) continue;
    // LM head only for the sequences whose prompt ended in this pass.
    auto const nf = static_cast<index_t>(finishing.size());
    tensor_view<float, 2> const last(frame.template alloc<float>(static_cast<std::size_t>(nf * d)), {nf, d});  // [nf, d_model]
    tensor_view<float, 2> const out(frame.template alloc<float>(static_cast<std::size_t>(nf * vocab)), {nf, vocab});
    for (index_t f = 0; f < nf; ++f) std::copy_n(x.row(pass.end(finishing[static_cast<std::size_t>(f)]) - 1), d, last.row(f));
    dec.lm_head(last, out, ctx);
    for (index_t f = 0; f < nf; ++f) {
      index_t const seq = slots[static_cast<std::size_t>(finishing[static_cast<std::size_t>(f)])];
      std::copy_n(out.row(f), vocab, logits.data() + seq * vocab);
    }
  }
  for (auto const& p : prompts) st.prompt_tokens += static_cast<index_t>(p.size());

  // The first token of every sequence, from the prefill's logits.
  auto const after_step = [&](index_t i) {
    detail::sequence_state& s = seqs[static_cast<std::size_t>(i)];
    if (!s.done() && cache.length(i) + 1 > cache.max_context()) s.finish(finish_reason::context_full);
  };
  std::vector<token_id> next(static_cast<std::size_t>(n_seqs), 0);
  for (index_t i = 0; i < n_seqs; ++i) {
    detail::sequence_state& s = seqs[static_cast<std::size_t>(i)];
    if (opt.max_new_tokens == 0) {
      s.finish(finish_reason::length);
      continue;
    }
    next[static_cast<std::size_t>(i)] = s.step(std::span<float>(logits.data() + i * vocab, static_cast<std::size_t>(vocab)));
    after_step(i);
  }
  auto const t1 = clock::now();
  st.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  // ---- decode: one token for every unfinished sequence per pass ----
  std::vector<index_t> active;
  std::vector<token_id> ids;
  seq_offsets one_each = seq_offsets::from_lengths({});  // one token per active sequence; rebuilt when their count changes
  for (;;) {
    active.clear();
    ids.clear();
    for (index_t i = 0; i < n_seqs; ++i)
      if (!seqs[static_cast<std::size_t>(i)].done()) {
        active.push_back(i);
        ids.push_back(next[static_cast<std::size_t>(i)]);
      }
    if (active.empty()) break;
    auto const na = static_cast<index_t>(active.size());
    if (one_each.n_seqs() != na) {
      std::vector<index_t> const ones(active.size(), 1);
      one_each = seq_offsets::from_lengths(std::span<index_t const>(ones));
    }
    dec.run(ids, one_each, active, cache, tensor_view<float, 2>(logits.data(), {na, vocab}), ctx);
    ++st.decode_steps;
    for (index_t a = 0; a < na; ++a) {
      index_t const i = active[static_cast<std::size_t>(a)];
      next[static_cast<std::size_t>(i)] =
          seqs[static_cast<std::size_t>(i)].step(std::span<float>(logits.data() + a * vocab, static_cast<std::size_t>(vocab)));
      ++st.decode_tokens;
      after_step(i);
    }
  }
  st.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();

  std::vector<generation_result> results;
  results.reserve(seqs.size());
  for (auto& s : seqs) {
    st.generated_tokens += static_cast<index_t>(s.result().tokens.size());
    results.push_back(std::move(s.result()));
  }
  if (stats) *stats = st;
  return results;
}

/// One prompt (slot 0 of the cache).
template <backend::tag Backend, weight_type T, attn::kv_element KV>
generation_result generate(qwen2_decoder<Backend, T> const& dec, tokenizer const& tok, std::vector<token_id> prompt,
                           generation_options const& opt, kv_cache<KV>& cache, exec_ctx<Backend>& ctx,
                           text_callback const& on_text = {}, generation_stats* stats = nullptr) {
  std::vector<std::vector<token_id>> const one{std::move(prompt)};
  return std::move(generate(dec, tok, std::span<std::vector<token_id> const>(one), opt, cache, ctx, on_text, stats).front());
}

}  // namespace tessera::text
