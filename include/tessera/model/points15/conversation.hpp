// SPDX-License-Identifier: Apache-2.0
// model::points15_conversation -- a multi-turn chat with a POINTS1.5 model that keeps what it
// computed between turns: the KV cache of the conversation so far and the projector rows of its
// images. Each ask() renders and tokenizes the whole conversation exactly as the reference does
// (so the answer is the one points15::generate gives for the same messages), then keeps the
// longest prefix of cached positions whose ids equal the new prompt's, prefills only the rest,
// and encodes only the images that are new in this turn.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/lm/generate.hpp>
#include <tessera/model/points15/model.hpp>
#include <tessera/model/points15/request.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::model {

template <backend::tag Backend, weight_type T, class Projector = projector::patch_merger>
class points15_conversation {
 public:
  using model_type = points15<Backend, T, Projector>;

  /// A conversation with `model` (which must outlive it) of at most `max_context` positions
  /// (0 = the LLM's max_position_embeddings); the cache is allocated on the first ask().
  explicit points15_conversation(model_type& model, index_t max_context = 0)
      : model_(&model), limit_(max_context > 0 ? max_context : model.max_positions()) {}

  /// Appends a turn without answering it (an earlier exchange, a scripted assistant reply).
  void add(chat_turn turn) { request_.messages.push_back(std::move(turn)); }

  /// Appends `user_turn`, answers the whole conversation and appends the answer as the assistant
  /// turn. The answer equals points15::generate(request()) for the same options (the reused
  /// positions hold the keys and values a full prefill computes; with a repetition penalty other
  /// than 1 nothing is reused, as the penalty must see the whole prompt). On an error the
  /// conversation is left as it was before the call.
  points15_result ask(chat_turn user_turn, points15_options const& opt = {},
                      std::function<bool(std::string_view)> const& on_text = {}) {
    using clock = std::chrono::steady_clock;
    auto const secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    TESSERA_CHECK(user_turn.role == "user", "model::points15_conversation: ask() takes a user turn, got role '",
                  user_turn.role, "'");
    index_t const limit = opt.max_context > 0 ? std::min(opt.max_context, limit_) : limit_;
    request_.messages.push_back(std::move(user_turn));
    try {
      auto const t0 = clock::now();
      // The images this turn adds, preprocessed; the earlier ones are known.
      std::vector<content_item const*> const items = request_.images();
      std::vector<points15_image_info> infos = infos_;
      std::vector<qwen2vl_pixels> fresh;
      for (std::size_t i = infos_.size(); i < items.size(); ++i) {
        auto [px, info] = model_->prepare_image(*items[i], 0, i);
        infos.push_back(info);
        fresh.push_back(std::move(px));
      }
      std::vector<text::token_id> const ids = model_->tokenize(request_, infos, 0, limit);
      auto const t1 = clock::now();
      points15_encoded const enc = model_->encode(fresh);
      rows_.insert(rows_.end(), enc.rows.data(), enc.rows.data() + enc.n_rows * enc.d_model);
      infos_ = std::move(infos);
      auto const t2 = clock::now();
      index_t const d = model_->decoder().d_model();
      auto const n_rows = static_cast<index_t>(rows_.size()) / d;
      lm::prompt const full = lm::splice(ids, model_->tokens().image_pad, tensor_view<float const, 2>(rows_.data(), {n_rows, d}));

      // Keep the cached positions the new prompt starts with (at least one position is prefilled).
      if (!cache_) cache_.emplace(model_->decoder().make_cache(1, limit_));
      bool const reuse = opt.generation.sampling.repetition_penalty == 1.0f;
      std::size_t keep = 0;
      if (reuse)
        while (keep + 1 < ids.size() && keep < cached_ids_.size() && ids[keep] == cached_ids_[keep]) ++keep;
      cache_->truncate(0, static_cast<index_t>(keep));
      cached_ids_.resize(keep);
      lm::prompt rest(std::vector<text::token_id>(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end()));
      auto const first = std::lower_bound(full.row_positions.begin(), full.row_positions.end(), static_cast<index_t>(keep));
      auto const r0 = static_cast<index_t>(first - full.row_positions.begin());
      for (auto it = first; it != full.row_positions.end(); ++it) rest.row_positions.push_back(*it - static_cast<index_t>(keep));
      rest.rows = full.rows.slice_rows(r0, full.rows.extent(0));

      lm::generation_options const g = model_->generation_options(opt, true);
      lm::text_callback cb;
      if (on_text) cb = [&on_text](index_t, std::string_view t) { return on_text(t); };
      lm::generation_stats stats;
      lm::generation_result gen = lm::generate(model_->decoder(), model_->tokenizer(), std::move(rest), g, *cache_,
                                               model_->ctx(), cb, &stats);
      // The cache now holds the prompt and every answer id but the last (never fed back).
      cached_ids_ = ids;
      if (!gen.tokens.empty()) cached_ids_.insert(cached_ids_.end(), gen.tokens.begin(), gen.tokens.end() - 1);

      points15_result out = detail::make_result(std::move(gen), static_cast<index_t>(ids.size()), infos_,
                                                {secs(t0, t1), secs(t1, t2), stats.prefill_seconds, stats.decode_seconds},
                                                stats);
      out.reused_tokens = static_cast<index_t>(keep);
      request_.messages.push_back({"assistant", {content_item::make_text(out.text)}});
      return out;
    } catch (...) {
      request_.messages.pop_back();
      auto const known = std::min(infos_.size(), request_.images().size());
      if (infos_.size() > known) {  // images of the failed turn were committed: drop them
        index_t row_count = 0;
        for (std::size_t i = known; i < infos_.size(); ++i) row_count += infos_[i].llm_tokens;
        rows_.resize(rows_.size() - static_cast<std::size_t>(row_count * model_->decoder().d_model()));
        infos_.resize(known);
      }
      throw;
    }
  }

  /// Forgets every turn, image and cached position.
  void reset() {
    request_ = {};
    infos_.clear();
    rows_.clear();
    cached_ids_.clear();
    if (cache_) cache_->reset(0);
  }

  /// The conversation so far (user turns and answers).
  [[nodiscard]] points15_request const& request() const noexcept { return request_; }
  /// Positions whose keys and values the cache holds.
  [[nodiscard]] index_t cached_tokens() const noexcept { return static_cast<index_t>(cached_ids_.size()); }

 private:
  model_type* model_;
  index_t limit_;
  points15_request request_;
  std::vector<points15_image_info> infos_;  // every image of request_ so far, in order
  std::vector<float> rows_;                 // their projector rows [sum llm_tokens, d_model]
  std::vector<text::token_id> cached_ids_;  // the ids whose keys and values the cache holds
  std::optional<typename lm::qwen2_decoder<Backend, T>::cache_type> cache_;
};

}  // namespace tessera::model
