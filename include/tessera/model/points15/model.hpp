// SPDX-License-Identifier: Apache-2.0
// model::points15 -- POINTS1.5 whole: a checkpoint directory as downloaded in, answers out, token
// for token as the PyTorch model (WePOINTS' POINTSV15ChatModel.chat) gives them. One object owns
// the config, the image processor settings, the tokenizer, the mapped checkpoint, the vision
// tower, the projector and the decoder; generate() runs a request (or several, batched):
//   images -> preprocess (smart_resize, bicubic, normalize, patchify) -> one varlen pack ->
//   ViT -> projector -> rows spliced into the <|image_pad|> runs of the prompt -> prefill ->
//   decode (greedy by default) until <|im_end|> or the limit, text streamed.
// Each step is also a public call (prepare, encode, prompts), for taking the model apart.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/buffer.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/geometry.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/image.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/lm/generate.hpp>
#include <tessera/lm/qwen2_decoder.hpp>
#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/points15/projector.hpp>
#include <tessera/model/points15/request.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>
#include <tessera/model/qwen2_vl/preprocessor_config.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/text/tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tessera::model {

/// How to load a POINTS1.5 checkpoint.
struct points15_load_options {
  /// Weights stored as the model's T are mmapped (zero copy); others are converted into owned
  /// buffers (convert, the default) or refused (exact).
  io::dtype_policy dtypes = io::dtype_policy::convert;
  int threads = 0;                 ///< threads of every step; 0 = OpenMP's default
  io::image_limits image_limits;   ///< what decoding an image file or bytes may cost
  points_llm_flavour flavour = points_llm_flavour::auto_detect;
  lm::decoder_options decoder;     ///< the decoder's product precision (default: the weight type's)
};

/// How to generate. The defaults are POINTS1.5's (spec 5.4): greedy, 1024 new tokens, stop on
/// <|im_end|>.
struct points15_options {
  lm::generation_options generation = [] {
    lm::generation_options g;
    g.max_new_tokens = 1024;
    return g;
  }();
  bool stop_at_im_end = true;  ///< add <|im_end|> to generation.stop_token_ids (chat() passes it as eos)
  /// Positions per sequence (prompt + answer); 0 = the LLM's max_position_embeddings.
  index_t max_context = 0;
};

/// Wall times of one generate() call, seconds (shared by the requests of a batch).
struct points15_timings {
  double preprocess = 0;  ///< reading, decoding and preprocessing the images; rendering and tokenizing prompts
  double vision = 0;      ///< the vision tower and the projector over the packed images
  double prefill = 0;     ///< the packed prefill and every request's first token
  double decode = 0;      ///< the batched decode steps
};

/// One image of a request, as prepared.
struct points15_image_info {
  image_size size;     ///< as decoded
  image_size resized;  ///< smart_resize's
  patch_grid grid;     ///< image_grid_thw
  index_t llm_tokens = 0;  ///< <|image_pad|> tokens (projector rows)
};

/// The answer to one request.
struct points15_result {
  std::vector<text::token_id> ids;  ///< generated ids; ends with <|im_end|> when it stopped on it
  std::string text;                 ///< their text, special tokens skipped
  lm::finish_reason reason = lm::finish_reason::length;
  index_t prompt_tokens = 0;        ///< of which image_tokens are image rows
  index_t image_tokens = 0;
  index_t reused_tokens = 0;        ///< prompt positions kept in the cache from earlier turns (points15_conversation)
  std::vector<points15_image_info> images;
  points15_timings timings;         ///< of the whole call
  lm::generation_stats stats;       ///< of the whole call
};

/// A batch of requests after preprocessing: prompt ids and the images' pixel_values.
struct points15_prepared {
  std::vector<std::vector<text::token_id>> ids;   ///< per request: the tokenized prompt
  std::vector<qwen2vl_pixels> pixels;             ///< every image of every request, in order
  std::vector<patch_grid> grids;                  ///< their image_grid_thw
  std::vector<index_t> first_image;               ///< request r has images [first_image[r], first_image[r + 1])
  std::vector<std::vector<points15_image_info>> images;  ///< per request
};

/// The vision side of a prepared batch.
struct points15_encoded {
  host_buffer<float> vision;  ///< [n_vit_tokens, embed_dim]: the tower's output, images packed in order
  host_buffer<float> rows;    ///< [n_rows, d_model]: the projector's rows, images in order
  std::vector<index_t> first_row;  ///< image i has rows [first_row[i], first_row[i + 1])
  index_t n_vit_tokens = 0, embed_dim = 0, n_rows = 0, d_model = 0;
  [[nodiscard]] tensor_view<float const, 2> vision_view() const { return vision.view(n_vit_tokens, embed_dim); }
  [[nodiscard]] tensor_view<float const, 2> rows_view() const { return rows.view(n_rows, d_model); }
};

/// The special tokens POINTS1.5 prompts use, looked up by name in the tokenizer (as chat() does).
struct points15_tokens {
  text::token_id im_start = 0, im_end = 0, vision_start = 0, vision_end = 0, image_pad = 0;
};

namespace detail {
/// A points15_result from one sequence's generation_result and the request's facts.
[[nodiscard]] inline points15_result make_result(lm::generation_result&& gen, index_t prompt_tokens,
                                                 std::vector<points15_image_info> images, points15_timings timings,
                                                 lm::generation_stats const& stats) {
  points15_result o;
  o.ids = std::move(gen.tokens);
  o.text = std::move(gen.text);
  o.reason = gen.reason;
  o.prompt_tokens = prompt_tokens;
  o.images = std::move(images);
  for (points15_image_info const& i : o.images) o.image_tokens += i.llm_tokens;
  o.timings = timings;
  o.stats = stats;
  return o;
}
}  // namespace detail

/// POINTS1.5 on a backend with host memory, weights of type T, a projector policy
/// (projector::patch_merger is POINTS1.5's).
template <backend::tag Backend, weight_type T, class Projector = projector::patch_merger>
class points15 {
  static_assert(std::is_same_v<backend::space_t<Backend>, host_space>,
                "model::points15 runs on a host backend (reference, cpu)");

 public:
  using decoder_type = lm::qwen2_decoder<Backend, T>;
  using encoder_type = qwen2vl_encoder<Backend, T>;
  using projector_type = Projector;
  using projector_config = typename Projector::config_type;
  using projector_weights = typename Projector::template weights_type<T>;

  /// Loads a checkpoint directory as downloaded: config.json (CustomLlama or Qwen2 llm_config),
  /// preprocessor_config.json (defaults for what it lacks, listed in preprocessor().defaulted),
  /// tokenizer.json (or vocab.json + merges.txt), model.safetensors or a sharded index in either
  /// LLM naming. Throws tessera::error naming the file, field, tensor or token that is wrong.
  [[nodiscard]] static points15 load(std::filesystem::path const& dir, points15_load_options const& opt = {}) {
    std::error_code ec;
    TESSERA_CHECK(std::filesystem::is_directory(dir, ec), "model::points15: '", dir.string(),
                  "' is not a directory (a POINTS1.5 checkpoint directory holds config.json, "
                  "preprocessor_config.json, tokenizer.json and the safetensors)");
    points15_config cfg = read_points15_config(dir, opt.flavour);
    qwen2vl_preprocessor_config pre = read_qwen2vl_preprocessor_config(dir);
    text::tokenizer tok = text::tokenizer::from_dir(dir);
    auto ckpt = std::make_shared<io::checkpoint const>(dir);
    points15_bind_options bind;
    bind.dtypes = opt.dtypes;
    points15_weights<T, Projector> w = bind_points15<T, Projector>(*ckpt, cfg, bind);
    return points15(std::move(cfg), std::move(pre), std::move(tok), std::move(w), std::move(ckpt), opt);
  }

  /// Assembles a model from parts (a variant built in code, a recombined model). `keep_alive`
  /// owns the memory the weights view (the mapped checkpoint). Checks every part against the
  /// others: vision, projector and decoder widths, special tokens, processor geometry.
  points15(points15_config config, qwen2vl_preprocessor_config preprocessor, text::tokenizer tokenizer,
           points15_weights<T, Projector> weights, std::shared_ptr<void const> keep_alive,
           points15_load_options const& opt = {})
      : config_(std::move(config)), preprocessor_(std::move(preprocessor)), tokenizer_(std::move(tokenizer)),
        keep_alive_(std::move(keep_alive)), image_limits_(opt.image_limits),
        encoder_(make_qwen2vl_encoder<Backend, T>(config_.vision, std::move(weights.vision))),
        projector_config_(weights.projector_config), projector_weights_(std::move(weights.projector)),
        decoder_(config_.decoder, std::move(weights.decoder), opt.decoder, keep_alive_), report_(std::move(weights.report)),
        naming_(weights.naming), ctx_(opt.threads) {
    qwen2_vl_vision_config const& v = config_.vision;
    check_points15_patch_geometry(v, preprocessor_);
    Projector::check(projector_config_, projector_weights_);
    TESSERA_CHECK(projector_in_width(projector_config_) == v.embed_dim, "model::points15: the projector (",
                  Projector::name, ") reads tokens of width ", projector_in_width(projector_config_),
                  " but the vision tower's embed_dim is ", v.embed_dim);
    TESSERA_CHECK(projector_out_width(projector_config_) == decoder_.d_model(), "model::points15: the projector (",
                  Projector::name, ") writes rows of width ", projector_out_width(projector_config_),
                  " but the LLM's hidden_size is ", decoder_.d_model());
    auto special = [&](char const* name) {
      std::optional<text::token_id> const id = tokenizer_.find_token(name);
      TESSERA_CHECK(id.has_value(), "model::points15: the tokenizer has no ", name,
                    " token; POINTS1.5 prompts need <|im_start|>, <|im_end|>, <|vision_start|>, <|vision_end|> and "
                    "<|image_pad|>");
      TESSERA_CHECK(*id >= 0 && *id < decoder_.vocab_size(), "model::points15: the tokenizer's ", name, " is id ", *id,
                    ", outside the LLM's vocabulary of ", decoder_.vocab_size());
      return *id;
    };
    tokens_ = {special("<|im_start|>"), special("<|im_end|>"), special("<|vision_start|>"),
               special("<|vision_end|>"), special("<|image_pad|>")};
  }

  points15(points15&&) noexcept = default;
  points15& operator=(points15&&) noexcept = default;

  // ---- the parts ----
  [[nodiscard]] points15_config const& config() const noexcept { return config_; }
  [[nodiscard]] qwen2vl_preprocessor_config const& preprocessor() const noexcept { return preprocessor_; }
  [[nodiscard]] text::tokenizer const& tokenizer() const noexcept { return tokenizer_; }
  [[nodiscard]] encoder_type const& encoder() const noexcept { return encoder_; }
  [[nodiscard]] projector_config const& projector() const noexcept { return projector_config_; }
  [[nodiscard]] projector_weights const& projector_weights_of() const noexcept { return projector_weights_; }
  [[nodiscard]] decoder_type const& decoder() const noexcept { return decoder_; }
  [[nodiscard]] points15_tokens const& tokens() const noexcept { return tokens_; }
  [[nodiscard]] io::binding_report const& report() const noexcept { return report_; }
  [[nodiscard]] points15_namings const& naming() const noexcept { return naming_; }
  [[nodiscard]] exec_ctx<Backend>& ctx() noexcept { return ctx_; }
  /// Positions per sequence when points15_options::max_context is 0.
  [[nodiscard]] index_t max_positions() const noexcept { return config_.decoder.max_positions; }

  // ---- the steps ----

  /// Reads and preprocesses every image of every request, renders and tokenizes the prompts.
  /// Throws tessera::error naming the request and image for an unreadable or oversized image, a
  /// prompt whose text holds <|image_pad|> tokens of its own, or a prompt longer than
  /// `max_context` - 1 (0 = max_positions()).
  [[nodiscard]] points15_prepared prepare(std::span<points15_request const> requests, index_t max_context = 0) {
    TESSERA_CHECK(!requests.empty(), "model::points15: no requests");
    points15_prepared out;
    out.first_image.push_back(0);
    for (std::size_t r = 0; r < requests.size(); ++r) {
      std::vector<points15_image_info> infos;
      for (content_item const* item : requests[r].images()) {
        auto [px, info] = prepare_image(*item, r, infos.size());
        infos.push_back(info);
        out.grids.push_back(px.grid);
        out.pixels.push_back(std::move(px));
      }
      out.ids.push_back(tokenize(requests[r], infos, r, max_context));
      out.images.push_back(std::move(infos));
      out.first_image.push_back(static_cast<index_t>(out.pixels.size()));
    }
    return out;
  }

  /// One image item read (file, bytes or pixels) and preprocessed; errors name request and image.
  [[nodiscard]] std::pair<qwen2vl_pixels, points15_image_info> prepare_image(content_item const& item,
                                                                            std::size_t request = 0,
                                                                            std::size_t image = 0) {
    std::shared_ptr<io::rgb_image const> const decoded = read_image(item, request, image);
    qwen2vl_pixels px = [&] {
      try {
        return preprocess_qwen2vl(*decoded, preprocessor_.limits, preprocessor_.normalization,
                                  backend::host_threads(ctx_));
      } catch (error const& e) {
        TESSERA_FAIL("model::points15: request ", request, ", image ", image, ": ", e.what());
      }
    }();
    points15_image_info const info{{decoded->height(), decoded->width()}, px.resized, px.grid, Projector::rows_of(px.grid)};
    return {std::move(px), info};
  }

  /// The prompt ids of `request` whose images (in prompt order) are `images`; checks that the
  /// text adds no <|image_pad|> of its own and that the prompt leaves room for an answer in
  /// `max_context` positions (0 = max_positions()). `r` names the request in errors.
  [[nodiscard]] std::vector<text::token_id> tokenize(points15_request const& request,
                                                     std::span<points15_image_info const> images, std::size_t r = 0,
                                                     index_t max_context = 0) const {
    if (max_context <= 0) max_context = max_positions();
    std::vector<std::size_t> counts;
    index_t image_tokens = 0;
    for (points15_image_info const& i : images) {
      counts.push_back(static_cast<std::size_t>(i.llm_tokens));
      image_tokens += i.llm_tokens;
    }
    std::vector<text::token_id> ids = tokenizer_.encode(render_points15_prompt(request, counts));
    auto const pads = static_cast<index_t>(std::count(ids.begin(), ids.end(), tokens_.image_pad));
    TESSERA_CHECK(pads == image_tokens, "model::points15: request ", r, "'s prompt holds ", pads,
                  " <|image_pad|> tokens for ", image_tokens, " image rows: its text contains <|image_pad|> itself");
    auto const n = static_cast<index_t>(ids.size());
    TESSERA_CHECK(n < max_context, "model::points15: request ", r, "'s prompt is ", n, " tokens (", image_tokens,
                  " of them for ", images.size(), " image", images.size() == 1 ? "" : "s",
                  "), which leaves no room to answer in a context of ", max_context,
                  " positions; use fewer or smaller images (preprocessor max_pixels ", preprocessor_.limits.max_pixels,
                  ") or a shorter text");
    return ids;
  }

  /// The vision side: every image of `prepared` packed into one varlen sequence (block-diagonal
  /// attention per image), the tower, then the projector.
  [[nodiscard]] points15_encoded encode(points15_prepared const& prepared) { return encode(prepared.pixels); }

  /// The vision side of preprocessed images (see encode(prepared)).
  [[nodiscard]] points15_encoded encode(std::span<qwen2vl_pixels const> pixels) {
    std::vector<patch_grid> grids;
    grids.reserve(pixels.size());
    for (qwen2vl_pixels const& p : pixels) grids.push_back(p.grid);
    points15_encoded e;
    e.embed_dim = config_.vision.embed_dim;
    e.d_model = decoder_.d_model();
    e.first_row.push_back(0);
    for (patch_grid const& g : grids) e.first_row.push_back(e.first_row.back() + Projector::rows_of(g));
    e.n_rows = e.first_row.back();
    if (grids.empty()) return e;
    pack::pack_plan const plan = qwen2vl_plan(grids, config_.vision);
    index_t const n = plan.n_slots(), f = config_.vision.patch_dim;
    e.n_vit_tokens = n;
    std::vector<tensor_view<float const, 2>> per_image;
    per_image.reserve(pixels.size());
    for (qwen2vl_pixels const& p : pixels) per_image.push_back(p.rows());
    host_buffer<float> packed(n * f);  // [n_tokens, patch_dim]
    pack::gather_patches(plan, per_image, packed.view(n, f), backend::host_threads(ctx_));
    e.vision = host_buffer<float>(n * e.embed_dim);
    encoder_.forward(packed.view(n, f), vision::batch_of(plan), e.vision.view(n, e.embed_dim), ctx_);
    e.rows = host_buffer<float>(e.n_rows * e.d_model);
    Projector::template run<Backend, T>(e.vision_view(), grids, projector_config_, projector_weights_,
                                        e.rows.view(e.n_rows, e.d_model), ctx_);
    return e;
  }

  /// Request r's prompt: its ids with its images' rows spliced into the <|image_pad|> runs in
  /// order (spec 5.2). The prompts view `encoded`, which must outlive their prefill.
  [[nodiscard]] std::vector<lm::prompt> prompts(points15_prepared const& prepared, points15_encoded const& encoded) const {
    std::vector<lm::prompt> out;
    out.reserve(prepared.ids.size());
    for (std::size_t r = 0; r < prepared.ids.size(); ++r) {
      index_t const r0 = encoded.first_row[static_cast<std::size_t>(prepared.first_image[r])];
      index_t const r1 = encoded.first_row[static_cast<std::size_t>(prepared.first_image[r + 1])];
      if (r0 == r1) {
        out.emplace_back(prepared.ids[r]);
        continue;
      }
      out.push_back(lm::splice(prepared.ids[r], tokens_.image_pad, encoded.rows_view().slice_rows(r0, r1)));
    }
    return out;
  }
  /// A temporary `encoded` would leave the prompts viewing freed rows: keep it in a variable.
  std::vector<lm::prompt> prompts(points15_prepared const&, points15_encoded&&) const = delete;

  // ---- generation ----

  /// Answers every request in one call: one vision pack for all their images, their prompts
  /// prefilled packed, batched decode steps, each request stopping on its own. Request i's
  /// answer equals what it gets alone. on_text(i, piece) streams request i's text.
  [[nodiscard]] std::vector<points15_result> generate(std::span<points15_request const> requests,
                                                      points15_options const& opt = {},
                                                      lm::text_callback const& on_text = {}) {
    using clock = std::chrono::steady_clock;
    auto const secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    index_t const limit = opt.max_context > 0 ? opt.max_context : max_positions();
    auto const t0 = clock::now();
    points15_prepared const prepared = prepare(requests, limit);
    auto const t1 = clock::now();
    points15_encoded const encoded = encode(prepared);
    std::vector<lm::prompt> const ps = prompts(prepared, encoded);
    auto const t2 = clock::now();

    lm::generation_options const g = generation_options(opt, false);
    index_t longest = 0;
    for (lm::prompt const& p : ps) longest = std::max(longest, p.size());
    index_t const context = std::min(limit, longest + std::max<index_t>(g.max_new_tokens, 1));
    auto cache = decoder_.make_cache(static_cast<index_t>(ps.size()), context);
    lm::generation_stats stats;
    std::vector<lm::generation_result> gen =
        lm::generate(decoder_, tokenizer_, std::span<lm::prompt const>(ps), g, cache, ctx_, on_text, &stats);

    points15_timings const times{secs(t0, t1), secs(t1, t2), stats.prefill_seconds, stats.decode_seconds};
    std::vector<points15_result> out;
    out.reserve(gen.size());
    for (std::size_t r = 0; r < gen.size(); ++r)
      out.push_back(detail::make_result(std::move(gen[r]), ps[r].size(), prepared.images[r], times, stats));
    return out;
  }

  /// The lm::generation_options of `opt`: <|im_end|> added to the stop tokens (stop_at_im_end).
  [[nodiscard]] lm::generation_options generation_options(points15_options const& opt, bool continue_cache) const {
    lm::generation_options g = opt.generation;
    if (opt.stop_at_im_end &&
        std::find(g.stop_token_ids.begin(), g.stop_token_ids.end(), tokens_.im_end) == g.stop_token_ids.end())
      g.stop_token_ids.push_back(tokens_.im_end);
    g.continue_cache = continue_cache;
    return g;
  }

  /// One request.
  [[nodiscard]] points15_result generate(points15_request const& request, points15_options const& opt = {},
                                         std::function<bool(std::string_view)> const& on_text = {}) {
    lm::text_callback cb;
    if (on_text) cb = [&on_text](index_t, std::string_view t) { return on_text(t); };
    return std::move(generate(std::span<points15_request const>(&request, 1), opt, cb).front());
  }

 private:
  static index_t projector_in_width(patch_merger_config const& c) noexcept { return c.context_dim; }
  static index_t projector_in_width(mlp_projector_config const& c) noexcept { return c.d_in; }
  static index_t projector_out_width(patch_merger_config const& c) noexcept { return c.out_dim; }
  static index_t projector_out_width(mlp_projector_config const& c) noexcept { return c.d_out; }

  /// The decoded pixels of an image item; errors name the request and image.
  [[nodiscard]] std::shared_ptr<io::rgb_image const> read_image(content_item const& item, std::size_t request,
                                                                std::size_t image) const {
    return std::visit(
        [&](auto const& src) -> std::shared_ptr<io::rgb_image const> {
          using S = std::decay_t<decltype(src)>;
          try {
            if constexpr (std::is_same_v<S, std::filesystem::path>) {
              return std::make_shared<io::rgb_image const>(io::load_image(src, image_limits_));
            } else if constexpr (std::is_same_v<S, std::shared_ptr<std::vector<std::byte> const>>) {
              TESSERA_CHECK(src != nullptr, "no bytes given");
              return std::make_shared<io::rgb_image const>(io::decode_image(*src, image_limits_));
            } else {
              TESSERA_CHECK(src != nullptr && !src->empty(), "the rgb_image is empty");
              return src;
            }
          } catch (error const& e) {
            TESSERA_FAIL("model::points15: request ", request, ", image ", image, ": ", e.what());
          }
        },
        item.image);
  }

  points15_config config_;
  qwen2vl_preprocessor_config preprocessor_;
  text::tokenizer tokenizer_;
  std::shared_ptr<void const> keep_alive_;
  io::image_limits image_limits_;
  encoder_type encoder_;
  projector_config projector_config_;
  projector_weights projector_weights_;
  decoder_type decoder_;
  io::binding_report report_;
  points15_namings naming_;
  points15_tokens tokens_;
  exec_ctx<Backend> ctx_;
};

}  // namespace tessera::model
