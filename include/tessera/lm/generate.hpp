// SPDX-License-Identifier: Apache-2.0
// lm::generate -- autoregressive text generation with a qwen2_decoder, as transformers'
// generate() does it for one or several prompts: prefill every prompt (packed, in chunks of at
// most prefill_chunk tokens), then one decode step per new token for all unfinished sequences
// together (batched GEMVs), each sequence choosing its next token with its own lm::sampler,
// until a stop token, a stop string, max_new_tokens or the end of its cache slot. Text is
// streamed as it becomes valid UTF-8, never showing a stop string or a part of one.
// A prompt's rows come from token ids, from caller-given embedding rows (a VLM's image rows
// spliced at its pad tokens: lm::splice), or both; lm::prefill and lm::decode_step are the
// cached single steps generate() is made of, for callers who drive decoding themselves.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/lm/kv_cache.hpp>
#include <tessera/lm/qwen2_decoder.hpp>
#include <tessera/lm/sampler.hpp>
#include <tessera/nn/gather.hpp>
#include <tessera/text/token_id.hpp>

#include <algorithm>
#include <concepts>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::lm {

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
  /// Greedy or sampling, see lm::sampler. Sequence i of a batch samples with seed + i, so its
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
  /// false: sequence i starts afresh in cache slot i (the slot is reset). true: it continues what
  /// slot i holds (an earlier turn of a conversation): its prompt takes the positions after the
  /// cached ones. The repetition penalty sees this call's prompt and generated tokens.
  bool continue_cache = false;
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


/// What a detokenizer must offer generate(): text::tokenizer, or any type with the same calls.
/// stream(skip_special) returns an incremental decoder whose push(id) gives the text that became
/// valid UTF-8 and finish() the rest; contains(id) says whether the id has text at all.
template <class Tok>
concept detokenizer = requires(Tok const& tok, token_id id) {
  { tok.contains(id) } -> std::convertible_to<bool>;
  { tok.stream(true).push(id) } -> std::convertible_to<std::string>;
  { tok.stream(true).finish() } -> std::convertible_to<std::string>;
};

// ------------------------------------------------------------------------------------------------
// Prompts: ids, embedding rows, or both
// ------------------------------------------------------------------------------------------------

/// One prompt. Every position has a token id (the repetition penalty's history, and the source of
/// its embedding); caller-given rows replace the embeddings of some positions, e.g. a VLM's image
/// rows at its <|image_pad|> tokens (see splice).
struct prompt {
  std::vector<token_id> ids;
  /// [n_rows, d_model] f32 rows that replace the embeddings of positions row_positions (row r at
  /// position row_positions[r]); empty (the default) = every position embeds its id. The rows must
  /// stay valid until the prompt has been prefilled.
  tensor_view<float const, 2> rows;
  std::vector<index_t> row_positions;  ///< strictly increasing, in [0, ids.size())

  prompt() = default;
  prompt(std::vector<token_id> token_ids) : ids(std::move(token_ids)) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(ids.size()); }
};

/// The prompt `ids` with `rows` spliced in at the positions holding `pad_id`, in order: the
/// POINTS1.5 / Qwen2-VL splice of image rows into the embedded prompt (spec section 5.2).
/// Throws tessera::error naming both counts when the number of pad tokens differs from the number
/// of rows. `rows` must outlive the prompt's prefill.
[[nodiscard]] inline prompt splice(std::vector<token_id> ids, token_id pad_id, tensor_view<float const, 2> rows) {
  prompt p(std::move(ids));
  for (index_t i = 0; i < p.size(); ++i)
    if (p.ids[static_cast<std::size_t>(i)] == pad_id) p.row_positions.push_back(i);
  auto const n_pads = static_cast<index_t>(p.row_positions.size());
  TESSERA_CHECK(n_pads == rows.extent(0), "lm::splice: the prompt holds ", n_pads, " pad tokens (id ", pad_id,
                ") but ", rows.extent(0), " rows were given; each pad takes exactly one row");
  p.rows = rows;
  return p;
}

/// A prompt made of embedding rows only: position i is row i; every id is `fill_id` (the
/// repetition penalty's history; any id of the vocabulary).
[[nodiscard]] inline prompt prompt_from_rows(tensor_view<float const, 2> rows, token_id fill_id) {
  prompt p(std::vector<token_id>(static_cast<std::size_t>(rows.extent(0)), fill_id));
  p.rows = rows;
  p.row_positions.resize(static_cast<std::size_t>(rows.extent(0)));
  for (index_t i = 0; i < rows.extent(0); ++i) p.row_positions[static_cast<std::size_t>(i)] = i;
  return p;
}

namespace detail {

/// Checks one prompt against a decoder (ids in the vocabulary, rows of its width at valid
/// positions); `who` and `i` name it in messages.
inline void check_prompt(prompt const& p, index_t i, index_t vocab, index_t d_model, char const* who) {
  TESSERA_CHECK(p.size() >= 1, who, ": prompt ", i, " is empty (generation needs at least one token)");
  for (token_id id : p.ids)
    TESSERA_CHECK(id >= 0 && id < vocab, who, ": prompt ", i, " holds id ", id, ", outside the model's vocabulary [0, ",
                  vocab, ")");
  auto const n_rows = static_cast<index_t>(p.row_positions.size());
  TESSERA_CHECK(p.rows.extent(0) == n_rows, who, ": prompt ", i, " has ", p.rows.extent(0), " rows for ", n_rows,
                " row positions");
  if (n_rows == 0) return;
  TESSERA_CHECK(p.rows.extent(1) == d_model && p.rows.is_row_contiguous(), who, ": prompt ", i,
                "'s rows must be [n, ", d_model, "] with a contiguous last dimension, got [", p.rows.extent(0), ", ",
                p.rows.extent(1), "]");
  for (std::size_t r = 0; r < p.row_positions.size(); ++r) {
    index_t const pos = p.row_positions[r];
    TESSERA_CHECK(pos >= 0 && pos < p.size() && (r == 0 || pos > p.row_positions[r - 1]), who, ": prompt ", i,
                  "'s row positions must be strictly increasing in [0, ", p.size(), "), row ", r, " is at ", pos);
  }
}

}  // namespace detail

/// Prefills `prompts` into their cache slots, packed, in passes of at most `chunk` tokens, and
/// writes the logits of each prompt's last position.
///   prompts: >= 1 position each; prompt i continues whatever slot slots[i] already holds (reset
///            the slot first for a new sequence); it must fit: length(slot) + size <= max_context.
///   logits:  [n_prompts, vocab] f32.
/// A pass takes the next piece of every prompt in order while it fits (at least one piece per
/// pass); a piece's rows are its ids' embeddings with the prompt's own rows spliced over them.
/// Throws tessera::error before any work for invalid prompts, slots or shapes. Workspace: the
/// decoder's for `chunk` tokens, from ctx.scratch(). Determinism: as qwen2_decoder::forward; the
/// logits of a prompt do not depend on `chunk` beyond the last bits of the GEMMs' blocking.
template <backend::tag Backend, weight_type T, attn::kv_element KV>
void prefill(qwen2_decoder<Backend, T> const& dec, std::span<prompt const> prompts, std::span<index_t const> slots,
             kv_cache<KV, backend::space_t<Backend>>& cache, tensor_view<float, 2> logits, exec_ctx<Backend>& ctx, index_t chunk = 512) {
  auto const n_seqs = static_cast<index_t>(prompts.size());
  index_t const vocab = dec.vocab_size(), d = dec.d_model();
  TESSERA_CHECK(chunk >= 1, "lm::prefill: chunk must be >= 1, got ", chunk);
  TESSERA_CHECK(static_cast<index_t>(slots.size()) == n_seqs, "lm::prefill: ", n_seqs, " prompts but ", slots.size(),
                " slots");
  TESSERA_CHECK(logits.extent(0) == n_seqs && logits.extent(1) == vocab && logits.is_row_contiguous(),
                "lm::prefill: logits must be [", n_seqs, ", ", vocab, "], got [", logits.extent(0), ", ",
                logits.extent(1), "]");
  for (index_t i = 0; i < n_seqs; ++i) {
    prompt const& p = prompts[static_cast<std::size_t>(i)];
    detail::check_prompt(p, i, vocab, d, "lm::prefill");
    index_t const slot = slots[static_cast<std::size_t>(i)];
    TESSERA_CHECK(slot >= 0 && slot < cache.n_slots(), "lm::prefill: prompt ", i, " names cache slot ", slot,
                  ", outside [0, ", cache.n_slots(), ")");
    TESSERA_CHECK(cache.length(slot) + p.size() <= cache.max_context(), "lm::prefill: prompt ", i, " has ", p.size(),
                  " positions after the ", cache.length(slot), " cached in slot ", slot, "; the cache holds at most ",
                  cache.max_context(), " per sequence");
    for (index_t j = 0; j < i; ++j)
      TESSERA_CHECK(slots[static_cast<std::size_t>(j)] != slot, "lm::prefill: prompts ", j, " and ", i,
                    " both name cache slot ", slot);
  }
  std::vector<index_t> done(static_cast<std::size_t>(n_seqs), 0);
  std::vector<token_id> ids;
  std::vector<index_t> lengths, pass_slots, pass_seq, finishing;  // finishing: positions in the pass of last pieces
  for (;;) {
    ids.clear();
    lengths.clear();
    pass_slots.clear();
    pass_seq.clear();
    finishing.clear();
    for (index_t i = 0; i < n_seqs; ++i) {
      prompt const& p = prompts[static_cast<std::size_t>(i)];
      index_t const done_i = done[static_cast<std::size_t>(i)], total = p.size();
      if (done_i == total) continue;
      index_t const room = chunk - static_cast<index_t>(ids.size());
      if (room <= 0) break;
      index_t const take = std::min(room, total - done_i);
      ids.insert(ids.end(), p.ids.begin() + done_i, p.ids.begin() + done_i + take);
      lengths.push_back(take);
      pass_slots.push_back(slots[static_cast<std::size_t>(i)]);
      pass_seq.push_back(i);
      if (done_i + take == total) finishing.push_back(static_cast<index_t>(pass_slots.size()) - 1);
    }
    if (ids.empty()) break;
    auto const pass = seq_offsets::from_lengths(std::span<index_t const>(lengths));
    auto const n = static_cast<index_t>(ids.size());
    auto frame = ctx.scratch().open();
    tensor_view<float, 2> const x(frame.template alloc<float>(static_cast<std::size_t>(n * d)), {n, d});  // [n, d_model]
    dec.embed(ids, x, ctx);
    // Caller rows over the embeddings of their positions: piece s covers positions
    // [done_i, done_i + length) of its prompt and rows [pass.begin(s), pass.end(s)) of x.
    // The prompt's rows of a piece are a contiguous run of p.rows (row_positions increase).
    auto* const dst = frame.template alloc<index_t>(static_cast<std::size_t>(n));  // [<= n] rows of x
    for (std::size_t s = 0; s < pass_seq.size(); ++s) {
      prompt const& p = prompts[static_cast<std::size_t>(pass_seq[s])];
      if (p.row_positions.empty()) continue;
      index_t const first = done[static_cast<std::size_t>(pass_seq[s])], last = first + lengths[s];
      auto const lo = std::lower_bound(p.row_positions.begin(), p.row_positions.end(), first);
      auto const hi = std::lower_bound(lo, p.row_positions.end(), last);
      auto const r0 = static_cast<index_t>(lo - p.row_positions.begin()), r1 = static_cast<index_t>(hi - p.row_positions.begin());
      for (index_t r = r0; r < r1; ++r)
        dst[r - r0] = pass.begin(static_cast<index_t>(s)) + (p.row_positions[static_cast<std::size_t>(r)] - first);
      nn::scatter_rows<Backend>(p.rows.slice_rows(r0, r1), std::span<index_t const>(dst, static_cast<std::size_t>(r1 - r0)),
                                x, ctx);
    }
    for (std::size_t s = 0; s < pass_seq.size(); ++s) done[static_cast<std::size_t>(pass_seq[s])] += lengths[s];
    dec.forward(x, pass, pass_slots, cache, ctx);
    if (finishing.empty()) continue;
    // LM head only for the prompts that ended in this pass.
    auto const nf = static_cast<index_t>(finishing.size());
    tensor_view<float, 2> const last(frame.template alloc<float>(static_cast<std::size_t>(nf * d)), {nf, d});  // [nf, d_model]
    tensor_view<float, 2> const out(frame.template alloc<float>(static_cast<std::size_t>(nf * vocab)), {nf, vocab});
    for (index_t f = 0; f < nf; ++f) dst[f] = pass.end(finishing[static_cast<std::size_t>(f)]) - 1;
    nn::gather_rows<Backend>(tensor_view<float const, 2>(x), std::span<index_t const>(dst, static_cast<std::size_t>(nf)), last, ctx);
    dec.lm_head(last, out, ctx);
    for (index_t f = 0; f < nf; ++f) {
      index_t const seq = pass_seq[static_cast<std::size_t>(finishing[static_cast<std::size_t>(f)])];
      std::copy_n(out.row(f), vocab, logits.row(seq));
    }
  }
}

/// One cached decode step: token ids[i] is appended to slot slots[i] (one new position each) and
/// logits [n, vocab] of those positions are written. Throws tessera::error for invalid ids,
/// slots or a full slot (qwen2_decoder::run's checks).
template <backend::tag Backend, weight_type T, attn::kv_element KV>
void decode_step(qwen2_decoder<Backend, T> const& dec, std::span<token_id const> ids, std::span<index_t const> slots,
                 kv_cache<KV, backend::space_t<Backend>>& cache, tensor_view<float, 2> logits, exec_ctx<Backend>& ctx) {
  std::vector<index_t> const ones(ids.size(), 1);
  dec.run(ids, seq_offsets::from_lengths(std::span<index_t const>(ones)), slots, cache, logits, ctx);
}

// ------------------------------------------------------------------------------------------------
// Streaming text with stop strings
// ------------------------------------------------------------------------------------------------

/// The text of generated ids as it becomes final: valid UTF-8 (through the detokenizer's stream),
/// cut before the first stop string, and never showing a stop string or a part of one (a text
/// that could still become a stop string is held back until it cannot). Reusable by any decoding
/// loop: push() each id, finish() at the end.
template <detokenizer Tok>
class text_stream {
 public:
  text_stream(Tok const& tok, std::vector<std::string> stop_strings, bool skip_special = true)
      : tok_(&tok), stream_(tok.stream(skip_special)), stops_(std::move(stop_strings)) {
    for (std::string const& s : stops_)
      TESSERA_CHECK(!s.empty(), "lm::text_stream: a stop string is empty (it would stop before the first token)");
  }

  /// Adds one id; returns the text that became final (possibly empty). Ids the detokenizer does
  /// not know (padding rows of a larger embedding table) have no text.
  [[nodiscard]] std::string push(token_id id) {
    if (stopped_ || !tok_->contains(id)) return {};
    return feed(stream_.push(id), false);
  }
  /// Flushes what was held back (an incomplete character, a possible start of a stop string).
  [[nodiscard]] std::string finish() {
    if (stopped_) return {};
    return feed(stream_.finish(), true);
  }
  /// True once the text has reached a stop string (nothing more is returned).
  [[nodiscard]] bool stopped() const noexcept { return stopped_; }

 private:
  std::string feed(std::string const& piece, bool final) {
    pending_ += piece;
    std::size_t cut = std::string::npos;
    for (std::string const& s : stops_) cut = std::min(cut, pending_.find(s));
    if (cut != std::string::npos) {
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      stopped_ = true;
      return out;
    }
    std::size_t hold = 0;  // longest suffix of pending that starts some stop string
    if (!final)
      for (std::string const& s : stops_)
        for (std::size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
          if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
            hold = n;
            break;
          }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
  }

  Tok const* tok_;
  decltype(std::declval<Tok const&>().stream(true)) stream_;
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

namespace detail {

/// One sequence's decoding state: sampler, stop tokens, text with stop-string hold-back.
template <detokenizer Tok>
class sequence_state {
 public:
  sequence_state(sampling_config const& cfg, index_t vocab, Tok const& tok, std::vector<token_id> const& prompt,
                 generation_options const& opt, index_t index, text_callback const* on_text)
      : sampler_(cfg, vocab), text_(tok, opt.stop_strings), opt_(&opt), index_(index), on_text_(on_text),
        history_(prompt) {
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
    emit(text_.push(id));
    if (text_.stopped()) force(finish_reason::stop_string);  // the stop string decides, even after the callback
    if (!done_ && static_cast<index_t>(result_.tokens.size()) >= opt_->max_new_tokens) finish(finish_reason::length);
    return id;
  }

  /// Ends the sequence. The text held back is flushed first, unless the callback stopped it; the
  /// flush itself may still complete a stop string, which then is the reason.
  void finish(finish_reason reason) {
    if (done_) return;
    if (reason != finish_reason::stopped_by_callback) {
      emit(text_.finish());
      if (text_.stopped()) force(finish_reason::stop_string);
    }
    end(reason);
  }

 private:
  void end(finish_reason reason) {
    if (done_) return;
    force(reason);
  }
  void force(finish_reason reason) {
    done_ = true;
    result_.reason = reason;
  }
  void emit(std::string const& text) {
    if (text.empty() || done_) return;
    result_.text += text;
    if (on_text_ && *on_text_ && !(*on_text_)(index_, text)) end(finish_reason::stopped_by_callback);
  }

  sampler sampler_;
  text_stream<Tok> text_;
  generation_options const* opt_;
  index_t index_;
  text_callback const* on_text_;
  std::vector<token_id> history_;  // prompt + generated (the repetition penalty's input_ids)
  generation_result result_;
  bool done_ = false;
};

}  // namespace detail

/// Generates a continuation of every prompt, sequence i in cache slot i (its previous contents
/// are discarded, unless opt.continue_cache; the cache holds prompt and continuation afterwards).
///   prompts: >= 1 position each (ids, embedding rows, or both: see prompt, splice);
///            prompts.size() <= cache.n_slots(); each prompt must fit its slot with room for at
///            least one generated token (cached + prompt < max_context).
///   tok:     the detokenizer of the model's vocabulary (text::tokenizer).
///   on_text: optional streaming callback; stats: optional counts and timings.
/// Throws tessera::error for invalid options or prompts (before any work), and whatever the
/// decoder, sampler or tokenizer throw on invalid input.
/// Deterministic: the same inputs, options and seed give the same tokens, for any batch
/// composition (sequence i's RNG is seeded with seed + i) and, for a backend, thread count.
template <backend::tag Backend, weight_type T, attn::kv_element KV, detokenizer Tok>
std::vector<generation_result> generate(qwen2_decoder<Backend, T> const& dec, Tok const& tok,
                                        std::span<prompt const> prompts, generation_options const& opt,
                                        kv_cache<KV, backend::space_t<Backend>>& cache, exec_ctx<Backend>& ctx,
                                        text_callback const& on_text = {}, generation_stats* stats = nullptr) {
  using clock = std::chrono::steady_clock;
  auto const n_seqs = static_cast<index_t>(prompts.size());
  index_t const vocab = dec.vocab_size();
  TESSERA_CHECK(n_seqs >= 1, "lm::generate: no prompts");
  TESSERA_CHECK(n_seqs <= cache.n_slots(), "lm::generate: ", n_seqs, " prompts but the cache has ", cache.n_slots(),
                " slots");
  TESSERA_CHECK(opt.max_new_tokens >= 0, "lm::generate: max_new_tokens must be >= 0, got ", opt.max_new_tokens);
  TESSERA_CHECK(opt.prefill_chunk >= 1, "lm::generate: prefill_chunk must be >= 1, got ", opt.prefill_chunk);
  for (std::string const& s : opt.stop_strings)
    TESSERA_CHECK(!s.empty(), "lm::generate: a stop string is empty (it would stop before the first token)");
  for (index_t i = 0; i < n_seqs; ++i) {
    prompt const& p = prompts[static_cast<std::size_t>(i)];
    detail::check_prompt(p, i, vocab, dec.d_model(), "lm::generate");
    index_t const cached = opt.continue_cache ? cache.length(i) : 0;
    TESSERA_CHECK(cached + p.size() < cache.max_context(), "lm::generate: prompt ", i, " has ", p.size(), " tokens",
                  cached > 0 ? " after " + std::to_string(cached) + " cached" : std::string(),
                  "; the cache holds at most ", cache.max_context(), " positions per sequence");
  }

  std::vector<detail::sequence_state<Tok>> seqs;
  seqs.reserve(static_cast<std::size_t>(n_seqs));
  for (index_t i = 0; i < n_seqs; ++i) {
    sampling_config sc = opt.sampling;
    sc.seed = opt.sampling.seed + static_cast<std::uint64_t>(i);
    seqs.emplace_back(sc, vocab, tok, prompts[static_cast<std::size_t>(i)].ids, opt, i, &on_text);
  }
  std::vector<float> logits(static_cast<std::size_t>(n_seqs * vocab));  // [n_seqs, vocab]
  generation_stats st;
  auto const t0 = clock::now();

  // ---- prefill ----
  std::vector<index_t> slot_of(static_cast<std::size_t>(n_seqs));
  for (index_t i = 0; i < n_seqs; ++i) {
    slot_of[static_cast<std::size_t>(i)] = i;
    if (!opt.continue_cache) cache.reset(i);
  }
  prefill(dec, prompts, slot_of, cache, tensor_view<float, 2>(logits.data(), {n_seqs, vocab}), ctx, opt.prefill_chunk);
  for (auto const& p : prompts) st.prompt_tokens += p.size();

  // The first token of every sequence, from the prefill's logits.
  auto const after_step = [&](index_t i) {
    detail::sequence_state<Tok>& s = seqs[static_cast<std::size_t>(i)];
    if (!s.done() && cache.length(i) + 1 > cache.max_context()) s.finish(finish_reason::context_full);
  };
  std::vector<token_id> next(static_cast<std::size_t>(n_seqs), 0);
  for (index_t i = 0; i < n_seqs; ++i) {
    detail::sequence_state<Tok>& s = seqs[static_cast<std::size_t>(i)];
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

/// Prompts of token ids only.
template <backend::tag Backend, weight_type T, attn::kv_element KV, detokenizer Tok>
std::vector<generation_result> generate(qwen2_decoder<Backend, T> const& dec, Tok const& tok,
                                        std::span<std::vector<token_id> const> prompts, generation_options const& opt,
                                        kv_cache<KV, backend::space_t<Backend>>& cache, exec_ctx<Backend>& ctx, text_callback const& on_text = {},
                                        generation_stats* stats = nullptr) {
  std::vector<prompt> const ps(prompts.begin(), prompts.end());
  return generate(dec, tok, std::span<prompt const>(ps), opt, cache, ctx, on_text, stats);
}

/// One prompt (slot 0 of the cache).
template <backend::tag Backend, weight_type T, attn::kv_element KV, detokenizer Tok>
generation_result generate(qwen2_decoder<Backend, T> const& dec, Tok const& tok, prompt one_prompt,
                           generation_options const& opt, kv_cache<KV, backend::space_t<Backend>>& cache, exec_ctx<Backend>& ctx,
                           text_callback const& on_text = {}, generation_stats* stats = nullptr) {
  std::vector<prompt> const one{std::move(one_prompt)};
  return std::move(generate(dec, tok, std::span<prompt const>(one), opt, cache, ctx, on_text, stats).front());
}

}  // namespace tessera::lm
