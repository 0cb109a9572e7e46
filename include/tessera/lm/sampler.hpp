// SPDX-License-Identifier: Apache-2.0
// lm::sampler: picks the next token from a decoder's last-position logits with the semantics of
// Hugging Face transformers 4.46.3 generate() (GenerationMixin._get_logits_processor + _sample):
// RepetitionPenaltyLogitsProcessor, then with do_sample TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, MinPLogitsWarper, then argmax (greedy) or a draw from the softmax.
// Evidence: tests/golden/test_golden_sampler.cpp against tools/golden/make_sampler_goldens.py.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/random.hpp>
#include <tessera/lm/detail/sampler_select.hpp>
#include <tessera/text/token_id.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace tessera::lm {

using text::token_id;

/// HF GenerationConfig's sampling fields (transformers 4.46.3 semantics).
///
/// HF's own defaults differ: GenerationConfig() has top_k = 50, and Qwen2.5-Instruct's
/// generation_config.json sets do_sample, temperature 0.7, top_k 20, top_p 0.8 and
/// repetition_penalty 1.05. Here every processor is off unless set.
struct sampling_config {
  bool do_sample = false;           ///< false: greedy (argmax, first index on ties) after the processors that apply to greedy (repetition penalty)
  float temperature = 1.0f;         ///< > 0 (HF TemperatureLogitsWarper; 1 = off); only with do_sample
  std::int64_t top_k = 0;           ///< 0 = off (TopKLogitsWarper); only with do_sample
  float top_p = 1.0f;               ///< (0, 1]; 1 = off (TopPLogitsWarper); only with do_sample
  float min_p = 0.0f;               ///< [0, 1]; 0 = off (MinPLogitsWarper); only with do_sample
  float repetition_penalty = 1.0f;  ///< > 0; 1 = off (RepetitionPenaltyLogitsProcessor); greedy and sampling
  std::uint64_t seed = 0;           ///< seeds the sampler's own RNG (rng); same seed + same logits = same tokens
};

/// Next-token selection with HF generate() semantics on the f32 logits of one sequence.
///
/// Processors, in HF's order, each only when it is on (s = the scores so far, f32):
///  1. repetition penalty (greedy and sampling): each *distinct* id of `history` once (HF gathers,
///     transforms and scatters): s = s < 0 ? s * penalty : s / penalty;
///  only with do_sample:
///  2. temperature: s = s / temperature (an IEEE division, as torch; not a multiply by 1 / t);
///  3. top-k: k = min(top_k, vocab); removes s < the k-th largest s counted with multiplicity
///     (torch.topk's last value), so every token tied with it stays; top_k >= vocab is a no-op;
///  4. top-p: p = softmax(s) in f32; in ascending order of s, cum = float32 of the running sum of p
///     accumulated in double (torch's CPU cumsum of float32 accumulates in double and rounds each
///     output to float); removes the tokens with cum <= float32(1 - top_p), the most probable
///     token always stays. 1 - top_p is computed in double from the decimal value of top_p, as HF
///     holds it in a Python float (0.8f counts as 0.8; see detail::decimal_double): the threshold
///     is bit-identical to HF's (0.2f, where 1.0f - 0.8f would give 0.19999999f);
///  5. min-p: p = softmax(s) of the scores so far; removes p < float32(min_p * max p). The most
///     probable token always stays (HF's min_tokens_to_keep = 1 never has to act, since max p >=
///     min_p * max p). HF adds MinPLogitsWarper whenever min_p is not None; with min_p = 0.0 it
///     removes nothing (p < 0 never holds), so min_p = 0 here means off: the same result.
/// Removed tokens become -inf; the others keep their values bit for bit (steps 1-2 are the exact
/// f32 operations torch performs). Then greedy takes the first index of the maximum (torch.argmax;
/// all -inf gives 0, as torch); sampling draws from softmax(s) (see draw order below).
///
/// Ties in top-p: HF sorts ascending and removes from the front. torch.sort is not stable (on the
/// CPU it is std::sort: an insertion sort, hence stable, up to 16 elements, an introsort beyond),
/// so for a larger vocabulary HF's choice inside a group of equal scores is unspecified. tessera
/// uses the order a stable ascending sort gives (HF's code with a stable sort, and what torch does
/// on the CPU for up to 16 tokens): among equal scores the lower ids come first in ascending order,
/// so when top-p's cut falls inside a group of equal scores, the group's *lowest* ids are removed
/// first. The number removed is HF's in any case. top-k and min-p never split a group of equal
/// scores. (Greedy is a different rule, torch.argmax's: the first index of the maximum.)
///
/// Numerics of top-p and min-p: exp is detail::exp_nonpos (<= 1.01 ulp), the denominator is summed
/// in double and rounded to f32, p = e / denominator in f32. torch's CPU softmax differs from the
/// exact one by up to ~1e-6 relative at vocab 1000 and ~1e-5 at vocab 152k (measured: torch 2.5.1,
/// AVX2, its vectorized exp and f32 lane sums), so a token whose cumulative or scaled probability
/// lies that close to a threshold can go either way in HF itself (and between HF runs on different
/// hardware). Elsewhere the masks are HF's exactly (goldens: identical in every case but the two
/// whose top-p cut splits a group of equal scores among more than 16 tokens; those agree per group).
///
/// Draw: u = one rng::uniform() in [0, 1) per call; weights w_t = exp(s_t - max s) (f32, 0
/// for removed tokens) summed in double per 64-token block (detail::sum_f64's fixed order), the
/// blocks' sums added in id order; the token is the first, in id order, whose running sum exceeds
/// u * total. The same arithmetic whichever processors ran, so the token is a function of the
/// processed logits and u alone. The RNG is not torch's: only the distribution is HF's.
///
/// Performance: every work buffer is allocated by the constructor (O(vocab)); sample() and
/// process() never allocate. top-k scans with a k-element heap (k <= 256) or selects by a radix
/// histogram (larger k); top-p sorts only the tokens that a histogram of the probabilities cannot
/// rule out, which is the whole vocabulary only for a nearly flat distribution. Measured at vocab
/// 151,936 (one core of a shared 2-core AMD EPYC VM, x86-64-v3, g++ 12 -O3; medians moved by up
/// to 40 % between runs): greedy ~20 us; temperature 0.7 + top_k 20 + top_p 0.8 + repetition
/// penalty 1.05 over 2,000 ids ~70-120 us; top_p 0.8 without top_k ~200-300 us.
///
/// Thread safety: a sampler owns work buffers and an RNG: one per sequence / thread.
class sampler {
 public:
  /// Validates `cfg` (each message names the field and value; NaN is refused in every field; the
  /// warper fields are range-checked only with do_sample, since HF ignores them in greedy mode,
  /// where e.g. temperature 0 is common) and allocates the work buffers for `vocab_size` in
  /// [1, 2^31 - 1].
  sampler(sampling_config const& cfg, std::int64_t vocab_size) : cfg_(cfg), n_(vocab_size), rng_(cfg.seed) {
    TESSERA_CHECK(vocab_size >= 1 && vocab_size <= std::numeric_limits<token_id>::max(),
                  "lm::sampler: vocab_size must be in [1, 2^31 - 1], got ", vocab_size);
    TESSERA_CHECK(!std::isnan(cfg.temperature), "lm::sampler: temperature is NaN");
    TESSERA_CHECK(!std::isnan(cfg.top_p), "lm::sampler: top_p is NaN");
    TESSERA_CHECK(!std::isnan(cfg.min_p), "lm::sampler: min_p is NaN");
    TESSERA_CHECK(cfg.repetition_penalty > 0.0f && std::isfinite(cfg.repetition_penalty),
                  "lm::sampler: repetition_penalty must be > 0 and finite (1 = off), got ",
                  cfg.repetition_penalty);
    if (cfg.do_sample) {
      TESSERA_CHECK(cfg.temperature > 0.0f && std::isfinite(cfg.temperature),
                    "lm::sampler: temperature must be > 0 and finite with do_sample (1 = off; for greedy "
                    "decoding set do_sample = false), got ",
                    cfg.temperature);
      TESSERA_CHECK(cfg.top_k >= 0, "lm::sampler: top_k must be >= 0 (0 = off), got ", cfg.top_k);
      TESSERA_CHECK(cfg.top_p > 0.0f && cfg.top_p <= 1.0f, "lm::sampler: top_p must be in (0, 1] (1 = off), got ",
                    cfg.top_p);
      TESSERA_CHECK(cfg.min_p >= 0.0f && cfg.min_p <= 1.0f, "lm::sampler: min_p must be in [0, 1] (0 = off), got ",
                    cfg.min_p);
    }
    auto const n = static_cast<std::size_t>(n_);
    if (cfg.repetition_penalty != 1.0f) seen_.assign(n, 0u);
    if (cfg.do_sample) {
      work_.assign(n, 0.0f);
      cand_.assign(n, 0);
      auto const n_blocks = static_cast<std::size_t>((n_ + block - 1) / block);
      block_sums_.assign(n_blocks, 0.0);
      block_ids_.assign(n_blocks, 0);
      if (top_k_on() && cfg.top_k <= heap_k_max) heap_.assign(static_cast<std::size_t>(cfg.top_k), 0.0f);
      if (top_k_on() && cfg.top_k > heap_k_max) counts_.assign(65536, 0u);
      if (top_p_on()) {
        hist_.assign(hist_buckets, 0.0);
        top_p_threshold_ = static_cast<float>(1.0 - detail::decimal_double(cfg.top_p));
      }
    }
  }

  /// Applies the processors in HF's order to `logits` in place (removed tokens become -inf)
  /// given every id so far (prompt + generated; used by the repetition penalty), then returns
  /// the chosen token: argmax when !do_sample, else a draw from softmax(processed logits) with
  /// the sampler's RNG.
  ///   logits:  [vocab_size] f32 without NaN or +inf (-inf marks a token that is ruled out);
  ///   history: ids in [0, vocab_size), any length, repeats allowed (penalized once).
  /// Throws tessera::error before touching `logits` when an argument is invalid; with do_sample
  /// also when every logit is -inf after processing (HF: softmax gives NaN, torch.multinomial
  /// raises) and when a processor overflowed a logit to +inf (`logits` is then partly processed).
  token_id sample(std::span<float> logits, std::span<token_id const> history) {
    check_inputs(logits, history);
    float* const x = logits.data();
    apply(x, history);
    if (!cfg_.do_sample) return static_cast<token_id>(detail::argmax_first(x, n_));
    return draw(x);
  }

  /// The processors only (what sample() does before choosing), for tests and for callers who
  /// want the distribution. Same arguments and errors as sample() (all -inf is not an error
  /// here: the logits stay all -inf); with !do_sample only the repetition penalty applies.
  void process(std::span<float> logits, std::span<token_id const> history) {
    check_inputs(logits, history);
    apply(logits.data(), history);
  }

  [[nodiscard]] sampling_config const& config() const noexcept { return cfg_; }
  [[nodiscard]] std::int64_t vocab_size() const noexcept { return n_; }

  /// Restarts the RNG as if the sampler had been built with `seed` (config().seed becomes it).
  void reseed(std::uint64_t seed) {
    cfg_.seed = seed;
    rng_ = rng(seed);
  }

 private:
  static constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  static constexpr index_t block = detail::sampler_block;
  /// top_k up to this uses the heap scan, larger ones the radix selection (measured crossover).
  static constexpr std::int64_t heap_k_max = 256;
  /// Histogram of f32 probabilities by their top 16 bits: p in [0, 1] has bits <= 0x3F800000.
  static constexpr std::size_t hist_buckets = (0x3F800000u >> 16) + 1;

  [[nodiscard]] bool top_k_on() const noexcept { return cfg_.top_k > 0 && cfg_.top_k < n_; }
  [[nodiscard]] bool top_p_on() const noexcept { return cfg_.top_p < 1.0f; }
  [[nodiscard]] bool min_p_on() const noexcept { return cfg_.min_p > 0.0f; }
  [[nodiscard]] float& work(index_t t) noexcept { return work_[static_cast<std::size_t>(t)]; }
  [[nodiscard]] token_id& cand(index_t c) noexcept { return cand_[static_cast<std::size_t>(c)]; }

  void check_inputs(std::span<float const> logits, std::span<token_id const> history) const {
    TESSERA_CHECK(static_cast<std::int64_t>(logits.size()) == n_, "lm::sampler: logits has ", logits.size(),
                  " entries, the sampler was built for vocab_size ", n_);
    for (std::size_t i = 0; i < history.size(); ++i)
      TESSERA_CHECK(history[i] >= 0 && history[i] < n_, "lm::sampler: history[", i, "] = ", history[i],
                    " is outside [0, vocab_size = ", n_, ")");
    index_t const bad = detail::find_nan_or_pos_inf(logits.data(), n_);
    TESSERA_CHECK(bad < 0, "lm::sampler: logits[", bad, "] is ", logits[static_cast<std::size_t>(bad < 0 ? 0 : bad)],
                  " (NaN and +inf are refused; -inf marks a token that is ruled out)");
  }

  void apply(float* x, std::span<token_id const> history) {
    all_ = true;  // every token may still be drawn; else exactly cand_[0, n_cand_) may
    n_cand_ = 0;
    if (cfg_.repetition_penalty != 1.0f) apply_repetition_penalty(x, history);
    if (!cfg_.do_sample) return;
    if (cfg_.temperature != 1.0f) detail::divide_all(x, n_, cfg_.temperature);
    if (top_k_on()) apply_top_k(x);
    if (top_p_on()) apply_top_p(x);
    if (min_p_on()) apply_min_p(x);
  }

  /// Epoch stamps mark the ids already penalized in this call, without clearing per call.
  void apply_repetition_penalty(float* x, std::span<token_id const> history) {
    if (++epoch_ == 0) {  // wrapped after 2^32 calls: forget the old stamps
      std::fill(seen_.begin(), seen_.end(), 0u);
      epoch_ = 1;
    }
    float const penalty = cfg_.repetition_penalty;
    for (token_id const id : history) {
      auto& stamp = seen_[static_cast<std::size_t>(id)];
      if (stamp == epoch_) continue;
      stamp = epoch_;
      float const s = x[id];
      x[id] = s < 0.0f ? s * penalty : s / penalty;
    }
  }

  /// Sets x[t] = -inf for every token with keep(t) false and lists the others in cand_ in
  /// increasing id order. A 64-token block where keep is false everywhere (one vectorized test)
  /// is filled at once: the common case for top-k, top-p's candidate cut and min-p.
  template <class Keep>
  void filter_all(float* x, Keep keep) {
    n_cand_ = 0;
    auto const one = [&](index_t t) {
      if (keep(t)) cand(n_cand_++) = static_cast<token_id>(t);
      else x[t] = neg_inf;
    };
    index_t i = 0;
    for (; i + block <= n_; i += block) {
      int any = 0;
      for (index_t j = 0; j < block; ++j) any |= keep(i + j) ? 1 : 0;
      if (any == 0) std::fill(x + i, x + i + block, neg_inf);
      else
        for (index_t j = i; j < i + block; ++j) one(j);
    }
    for (; i < n_; ++i) one(i);
    all_ = false;
    cand_by_id_ = true;
  }

  void apply_top_k(float* x) {
    index_t const k = cfg_.top_k;
    float const kth = k <= heap_k_max ? detail::kth_largest_heap(x, n_, k, heap_.data())
                                      : detail::kth_largest_radix(x, n_, k, counts_.data(), work_.data());
    // Removes s < kth: every token tied with the k-th value stays; kth = -inf removes nothing.
    filter_all(x, [x, kth](index_t t) { return x[t] >= kth; });
  }

  /// Largest score among the tokens that may still be drawn; -inf when every score is -inf (HF's
  /// softmax is NaN then: top-p and min-p remove nothing, sampling has nothing to draw). A +inf
  /// maximum (a processor overflowed) throws.
  [[nodiscard]] float current_max(float const* x) const {
    float m = neg_inf;
    if (all_) m = x[detail::argmax_first(x, n_)];
    else
      for (index_t c = 0; c < n_cand_; ++c) m = std::max(m, x[cand_[static_cast<std::size_t>(c)]]);
    TESSERA_CHECK(!(m > std::numeric_limits<float>::max()),
                  "lm::sampler: a processed logit overflowed to +inf (temperature or repetition penalty too "
                  "small for these logits)");
    return m;
  }

  /// work_[t] = e_t = exp(s_t - m) for the tokens that may be drawn; returns their sum in double in
  /// detail::sum_f64's order over all tokens (a list is first put in id order and summed into the
  /// same 16 partial sums: adding the zeros of removed tokens is exact, so the sum is the same).
  [[nodiscard]] double exp_and_sum(float const* x, float m) {
    if (all_) {
      detail::exp_shifted(x, n_, m, work_.data());
      return detail::sum_f64(work_.data(), n_);
    }
    if (!cand_by_id_) std::sort(cand_.data(), cand_.data() + n_cand_);
    cand_by_id_ = true;
    double acc[detail::sum_lanes] = {};
    for (index_t c = 0; c < n_cand_; ++c) {
      index_t const t = cand(c);
      work(t) = detail::exp_nonpos(x[t] - m);
      acc[t % detail::sum_lanes] += static_cast<double>(work(t));
    }
    return detail::reduce_lanes(acc);
  }

  void apply_top_p(float* x) {
    float const m = current_max(x);
    if (m == neg_inf) return;
    // The softmax's denominator: the double sum rounded to f32 (torch sums in f32 lanes).
    float const denom = static_cast<float>(exp_and_sum(x, m));
    float const thr = top_p_threshold_;
    double below = 0.0;  // probability mass of the tokens ruled out before the sort
    if (all_) {
      // p_t = e_t / denom for every token. A histogram of p by its top 16 bits finds the largest
      // bucket b* such that the mass in buckets >= b* is at least 1 - thr plus a margin: then
      // every token below b* has an ascending cumulative sum <= (mass below b*) <= thr - margin,
      // i.e. HF removes it, and only the tokens in buckets >= b* need sorting. p is monotone in
      // s, so those tokens are exactly the top of HF's order. The margin (1e-9) covers summing in
      // another order than HF's ascending one, all in double (~1e-11 at vocab 152k). Tokens with
      // p < thr / (4 vocab) stay out of the histogram: their mass is < thr / 4, so the buckets
      // reach `need` above them. The walk starts at the bucket of the largest p, 1 / denom.
      float* const w = work_.data();
      detail::divide_all(w, n_, denom);
      double const total = detail::sum_f64(w, n_);
      std::uint32_t const top = std::bit_cast<std::uint32_t>(1.0f / denom) >> 16;
      std::fill(hist_.begin(), hist_.begin() + top + 1, 0.0);
      detail::histogram_mass(w, n_, thr / (4.0f * static_cast<float>(n_)), hist_.data());
      double const need = total - static_cast<double>(thr) + 1e-9;
      std::uint32_t cut = 0;
      double acc = 0.0;
      for (std::uint32_t b = top + 1; b-- > 0;) {
        acc += hist_[b];
        if (acc >= need) {
          cut = b;
          break;
        }
      }
      float const cut_p = std::bit_cast<float>(cut << 16);  // the smallest p in bucket `cut`
      filter_all(x, [w, cut_p](index_t t) { return w[t] >= cut_p; });
      double kept = 0.0;
      for (index_t c = 0; c < n_cand_; ++c) kept += static_cast<double>(work(cand(c)));
      below = total - kept;
      TESSERA_DEBUG_ASSERT(static_cast<float>(below) <= thr, "lm::sampler: top-p candidate cut");
    } else {
      for (index_t c = 0; c < n_cand_; ++c) work(cand(c)) = work(cand(c)) / denom;
    }
    // HF's order reversed (score descending; among equal scores the higher id first, i.e. a stable
    // ascending sort read backwards), then the ascending cumulative sum: from the least probable
    // candidate up, cum = float32(double running sum), removed while cum <= thr; rank 0 always
    // stays (min_tokens_to_keep = 1).
    token_id* const c0 = cand_.data();
    std::sort(c0, c0 + n_cand_, [x](token_id a, token_id b) { return x[a] > x[b] || (x[a] == x[b] && a > b); });
    cand_by_id_ = false;
    double cum = below;
    index_t keep = 1;
    for (index_t r = n_cand_ - 1; r >= 1; --r) {
      cum += static_cast<double>(work(c0[r]));
      if (!(static_cast<float>(cum) <= thr)) {
        keep = r + 1;
        break;
      }
    }
    for (index_t r = keep; r < n_cand_; ++r) x[c0[r]] = neg_inf;
    n_cand_ = std::min(n_cand_, keep);
  }

  void apply_min_p(float* x) {
    float const m = current_max(x);
    if (m == neg_inf) return;
    float const denom = static_cast<float>(exp_and_sum(x, m));
    // max p = exp(0) / denom; the threshold is the f32 product min_p * max p, as torch's.
    float const thr = cfg_.min_p * (1.0f / denom);
    if (all_) {
      float const* const w = work_.data();
      filter_all(x, [w, denom, thr](index_t t) { return !(w[t] / denom < thr); });
      return;
    }
    index_t kept = 0;
    for (index_t c = 0; c < n_cand_; ++c) {  // compacts the list in place (it stays in id order)
      index_t const t = cand(c);
      if (work(t) / denom < thr) x[t] = neg_inf;
      else cand(kept++) = static_cast<token_id>(t);
    }
    n_cand_ = kept;
  }

  /// The draw of sample() (see the class comment): exp weights, one sum per 64-token block (the
  /// blocks with a survivor, when a list is known), a running sum over the blocks, then over the
  /// tokens of the chosen block in id order. If rounding leaves u * total beyond every running
  /// sum, the last token with a positive weight is taken.
  token_id draw(float const* x) {
    float const m = current_max(x);
    TESSERA_CHECK(m != neg_inf, "lm::sampler: every logit is -inf after processing; there is nothing to sample "
                                "(HF's softmax gives NaN and torch.multinomial raises)");
    double const u = rng_.uniform();
    index_t n_blocks = 0;  // entries of block_ids_: the blocks the walk visits, in id order
    if (all_) {
      detail::exp_shifted(x, n_, m, work_.data());
      for (index_t b = 0; b * block < n_; ++b) {
        block_sums_[static_cast<std::size_t>(b)] = detail::sum_f64(&work(b * block), std::min(block, n_ - b * block));
        block_ids_[static_cast<std::size_t>(n_blocks++)] = b;
      }
    } else {
      if (!cand_by_id_) std::sort(cand_.data(), cand_.data() + n_cand_);
      cand_by_id_ = true;
      double acc[detail::sum_lanes] = {};
      index_t cur = -1;
      for (index_t c = 0; c < n_cand_; ++c) {
        index_t const t = cand(c);
        if (t / block != cur) {
          if (cur >= 0) block_sums_[static_cast<std::size_t>(cur)] = detail::reduce_lanes(acc);
          cur = t / block;
          block_ids_[static_cast<std::size_t>(n_blocks++)] = cur;
          std::fill(acc, acc + detail::sum_lanes, 0.0);
        }
        work(t) = detail::exp_nonpos(x[t] - m);
        acc[t % detail::sum_lanes] += static_cast<double>(work(t));
      }
      block_sums_[static_cast<std::size_t>(cur)] = detail::reduce_lanes(acc);
    }
    auto const block_sum = [&](index_t i) {
      return block_sums_[static_cast<std::size_t>(block_ids_[static_cast<std::size_t>(i)])];
    };
    double total = 0.0;
    for (index_t i = 0; i < n_blocks; ++i) total += block_sum(i);
    double const target = u * total;
    double run = 0.0;
    index_t chosen = -1;  // the block holding the draw: the last one with a positive sum at worst
    for (index_t i = 0; i < n_blocks; ++i) {
      double const s = block_sum(i);
      if (!(s > 0.0)) continue;
      chosen = block_ids_[static_cast<std::size_t>(i)];
      if (run + s > target) break;
      run += s;
    }
    TESSERA_DEBUG_ASSERT(chosen >= 0, "lm::sampler: some weight is positive");
    index_t last = -1;
    auto const step = [&](index_t t) {  // true when t is the drawn token
      float const w = work(t);
      if (!(w > 0.0f)) return false;
      run += static_cast<double>(w);
      last = t;
      return run > target;
    };
    index_t const lo = chosen * block, hi = std::min(n_, lo + block);
    if (all_) {
      for (index_t t = lo; t < hi; ++t)
        if (step(t)) break;
    } else {
      index_t c = std::lower_bound(cand_.data(), cand_.data() + n_cand_, static_cast<token_id>(lo)) - cand_.data();
      for (; c < n_cand_ && cand(c) < hi; ++c)
        if (step(cand(c))) break;
    }
    return static_cast<token_id>(last);
  }

  sampling_config cfg_;
  std::int64_t n_;
  rng rng_;
  float top_p_threshold_ = 0.0f;       // float32(1 - top_p), 1 - top_p in double (see the class comment)
  std::vector<std::uint32_t> seen_;    // [vocab] repetition penalty: epoch stamps
  std::uint32_t epoch_ = 0;
  std::vector<float> work_;            // [vocab] exp / probabilities by token id; radix selection copy
  std::vector<token_id> cand_;         // [vocab] the tokens that may still be drawn (when !all_)
  std::vector<float> heap_;            // [top_k] top-k heap (top_k <= heap_k_max)
  std::vector<std::uint32_t> counts_;  // [65536] top-k radix histogram (top_k > heap_k_max)
  std::vector<double> hist_;           // [hist_buckets] top-p: probability mass by top 16 bits of p
  std::vector<double> block_sums_;     // [ceil(vocab / 64)] draw: weight sum of each 64-token block
  std::vector<index_t> block_ids_;     // [ceil(vocab / 64)] draw: the blocks to walk, in id order
  index_t n_cand_ = 0;
  bool all_ = true;         // every token may still be drawn (no filtering warper ran)
  bool cand_by_id_ = true;  // cand_ is in increasing id order (false after top-p's sort)
};

}  // namespace tessera::lm
