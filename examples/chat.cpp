// SPDX-License-Identifier: Apache-2.0
// chat: ask POINTS1.5 about images. A checkpoint directory as downloaded (config.json,
// preprocessor_config.json, tokenizer.json, safetensors), images and a question in; the answer
// streamed out, token for token what the PyTorch model answers (greedy by default, as POINTS1.5's
// generation config). Without --prompt it is an interactive chat: each line is a user turn,
// `/image FILE` attaches an image to the next turn, `/reset` starts over, `/quit` (or end of
// input) leaves; earlier turns, their images and answers are part of every later prompt, and
// what was computed for them (the KV cache, the images' rows) is kept, not computed again
// (model::points15_conversation).
// Prints the load time, each image's size and token count, the vision time, prefill and decode
// tokens/s. Any bad input (a missing or damaged image, an image over the pixel budget, a
// directory that is not a POINTS1.5 checkpoint, a prompt longer than the context) is one line on
// stderr and exit status 1 (in the interactive mode: the turn is dropped and the chat goes on).
//
// Usage: chat --model DIR [--image FILE]... [--prompt TEXT] [--max-new-tokens N] [--greedy]
//             [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R]
//             [--seed S] [--stop TEXT]... [--threads N] [--weights auto|bf16|f32|q8|q4]
//             [--max-context N] [--max-image-pixels N] [--print-ids]
// --weights auto runs bf16 checkpoints as bf16 (mmapped) and f32 / f16 ones as f32; the KV cache
// follows the weights. q8 / q4 quantize the LLM's linear layers on load (8 or 4 bits, a scale per
// 32 weights; docs/quantization.md), the rest as auto. --max-context bounds prompt + answer (default: the LLM's
// max_position_embeddings); --max-image-pixels bounds the decoded size of an image file
// (default: Pillow's decompression-bomb limit). --print-ids prints the answer's ids after it.
#include "common/quant_note.hpp"
#include "common/sampling_flags.hpp"

#include <tessera/model/generation_config.hpp>
#include <tessera/model/points15/conversation.hpp>
#include <tessera/model/points15/model.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace lm = tessera::lm;
namespace backend = tessera::backend;
using tessera::index_t;

struct options {
  fs::path model_dir;
  std::vector<fs::path> images;
  std::optional<std::string> prompt;
  examples::sampling_flags sampling;
  index_t threads = 0, max_context = 0, max_image_pixels = 0;
  std::string weights = "auto";
  bool print_ids = false;
  /// --weights q8 / q4: the LLM's linear layers quantized on load
  [[nodiscard]] tessera::quant::weight_format linear_format() const {
    return tessera::quant::parse_weight_format(weights).value_or(tessera::quant::weight_format::dense);
  }
};

options parse_args(int argc, char** argv) {
  options o;
  o.sampling.max_new_tokens = 1024;  // POINTS1.5's default
  for (int i = 1; i < argc; ++i) {
    if (o.sampling.parse(argc, argv, i)) continue;
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) examples::usage("missing value after " + std::string(a));
      return argv[++i];
    };
    if (a == "--model") o.model_dir = value();
    else if (a == "--image") o.images.emplace_back(value());
    else if (a == "--prompt") o.prompt = value();
    else if (a == "--threads") o.threads = examples::parse_number<index_t>(a, value());
    else if (a == "--max-context") o.max_context = examples::parse_number<index_t>(a, value());
    else if (a == "--max-image-pixels") o.max_image_pixels = examples::parse_number<index_t>(a, value());
    else if (a == "--weights") o.weights = value();
    else if (a == "--print-ids") o.print_ids = true;
    else if (a == "--help" || a == "-h") examples::usage("ask POINTS1.5 about images");
    else examples::usage("unknown argument '" + std::string(a) + "'");
  }
  if (o.model_dir.empty()) examples::usage("--model DIR is required (a POINTS1.5 checkpoint directory)");
  if (o.weights != "auto" && o.weights != "bf16" && o.weights != "f32" && o.weights != "q8" && o.weights != "q4")
    examples::usage("--weights takes auto, bf16, f32, q8 or q4");
  return o;
}

double ms(double seconds) { return 1e3 * seconds; }

/// One chat: the loaded model, the conversation so far and the generation options.
template <class T>
class chat {
 public:
  chat(options const& o, model::points15<backend::cpu, T>&& m) : o_(o), m_(std::move(m)), conv_(m_, o.max_context) {
    opt_.generation.max_new_tokens = o.sampling.max_new_tokens;
    opt_.generation.sampling = o.sampling.sampling(model::read_generation_config(o.model_dir));
    opt_.generation.stop_strings = o.sampling.stop;
    opt_.max_context = o.max_context;
  }

  /// Adds a user turn (the pending images, then `text`), answers it, streams the answer.
  void ask(std::string const& text) {
    model::chat_turn turn{"user", {}};
    for (fs::path const& p : pending_) turn.content.push_back(model::content_item::image_file(p));
    turn.content.push_back(model::content_item::make_text(text));
    // On an error the conversation stays as it was (the images stay attached for the next try).
    model::points15_result const r = conv_.ask(std::move(turn), opt_, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    pending_.clear();
    std::printf("\n");
    if (o_.print_ids) {
      std::printf("ids:");
      for (auto id : r.ids) std::printf(" %d", static_cast<int>(id));
      std::printf("\n");
    }
    std::fflush(stdout);
    report(r);
  }

  void attach(fs::path p) { pending_.push_back(std::move(p)); }
  void reset() {
    conv_.reset();
    pending_.clear();
  }
  [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

 private:
  void report(model::points15_result const& r) const {
    for (std::size_t i = 0; i < r.images.size(); ++i) {
      model::points15_image_info const& im = r.images[i];
      std::fprintf(stderr, "image %zu: %ld x %ld -> resized %ld x %ld, grid %ld x %ld patches, %ld LLM tokens\n", i,
                   static_cast<long>(im.size.height), static_cast<long>(im.size.width),
                   static_cast<long>(im.resized.height), static_cast<long>(im.resized.width),
                   static_cast<long>(im.grid.h), static_cast<long>(im.grid.w), static_cast<long>(im.llm_tokens));
    }
    lm::generation_stats const& s = r.stats;
    std::fprintf(stderr,
                 "prompt %ld tokens (%ld image tokens, %ld kept from earlier turns); preprocess %.1f ms, vision %.1f ms, prefill %.1f ms = %.1f "
                 "tokens/s; answer %ld tokens, decode %.1f ms = %.1f tokens/s; stopped by %s\n",
                 static_cast<long>(r.prompt_tokens), static_cast<long>(r.image_tokens),
                 static_cast<long>(r.reused_tokens), ms(r.timings.preprocess),
                 ms(r.timings.vision), ms(s.prefill_seconds), s.prefill_tokens_per_second(),
                 static_cast<long>(r.ids.size()), ms(s.decode_seconds), s.decode_tokens_per_second(),
                 std::string(lm::name_of(r.reason)).c_str());
  }

  options const& o_;
  model::points15<backend::cpu, T> m_;
  model::points15_conversation<backend::cpu, T> conv_;
  model::points15_options opt_;
  std::vector<fs::path> pending_;
};

template <class T>
int run(options const& o) {
  auto const t0 = std::chrono::steady_clock::now();
  model::points15_load_options lo;
  lo.threads = static_cast<int>(o.threads);
  if (o.max_image_pixels > 0) lo.image_limits.max_pixels = o.max_image_pixels;
  lo.decoder.quantize.format = o.linear_format();
  auto m = model::points15<backend::cpu, T>::load(o.model_dir, lo);
  double const load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  model::points15_config const& c = m.config();
  io::binding_report const& rep = m.report();
  std::fprintf(stderr,
               "model %s: POINTS1.5, vision %ld blocks x %ld, %s decoder %ld layers x %ld, vocab %ld; %s weights%s "
               "(%zu tensors mmapped, %zu converted); %d threads; loaded in %.2f s\n",
               o.model_dir.string().c_str(), static_cast<long>(c.vision.depth), static_cast<long>(c.vision.embed_dim),
               std::string(lm::name_of(c.decoder.flavour)).c_str(), static_cast<long>(c.decoder.n_layers),
               static_cast<long>(c.decoder.d_model), static_cast<long>(c.decoder.vocab_size),
               std::is_same_v<T, tessera::bf16> ? "bf16" : "f32",
               examples::linear_layers_note(m.decoder().weights(), "the LLM's linear layers").c_str(),
               rep.n_bound - rep.n_converted, rep.n_converted, m.ctx().threads(), load_s);
  if (!m.preprocessor().defaulted.empty()) {
    std::string fields;
    for (std::string const& f : m.preprocessor().defaulted) fields += (fields.empty() ? "" : ", ") + f;
    std::fprintf(stderr, "preprocessor: defaults for %s (absent from preprocessor_config.json)\n", fields.c_str());
  }
  chat<T> session(o, std::move(m));
  for (fs::path const& p : o.images) session.attach(p);
  if (o.prompt) {
    session.ask(*o.prompt);
    return 0;
  }
  std::fprintf(stderr, "interactive chat: type a question; /image FILE attaches an image, /reset starts over, /quit leaves\n");
  for (std::string line;;) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/quit") break;
    if (line.empty()) continue;
    if (line == "/reset") {
      session.reset();
      std::fprintf(stderr, "(conversation cleared)\n");
    } else if (line.rfind("/image ", 0) == 0) {
      session.attach(line.substr(7));
      std::fprintf(stderr, "(%zu image(s) attached to the next question)\n", session.pending());
    } else {
      try {
        session.ask(line);
      } catch (tessera::error const& e) {
        std::fprintf(stderr, "\nchat: %s (turn dropped)\n", e.what());
      }
    }
  }
  return 0;
}

}  // namespace

void examples::usage(std::string const& why) {
  std::fprintf(stderr,
               "chat: %s\n"
               "usage: chat --model DIR [--image FILE]... [--prompt TEXT]\n"
               "            %s\n"
               "            [--threads N] [--weights auto|bf16|f32|q8|q4] [--max-context N] [--max-image-pixels N]\n"
               "            [--print-ids]\n",
               why.c_str(), examples::sampling_usage);
  std::exit(2);
}

int main(int argc, char** argv) {
  options const o = parse_args(argc, argv);
  std::error_code ec;
  if (!fs::is_directory(o.model_dir, ec)) {
    std::fprintf(stderr, "chat: --model '%s' is not a directory (a POINTS1.5 checkpoint directory holds config.json, "
                 "preprocessor_config.json, tokenizer.json and the safetensors)\n", o.model_dir.string().c_str());
    return 1;
  }
  try {
    model::points15_config const cfg = model::read_points15_config(o.model_dir);
    bool const bf16 = o.weights == "auto" || o.linear_format() != tessera::quant::weight_format::dense
                          ? !cfg.decoder.torch_dtype || *cfg.decoder.torch_dtype == tessera::dtype::bf16
                          : o.weights == "bf16";
    return bf16 ? run<tessera::bf16>(o) : run<float>(o);
  } catch (tessera::error const& e) {
    std::fprintf(stderr, "chat: %s\n", e.what());
    return 1;
  }
}
