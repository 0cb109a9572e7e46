// SPDX-License-Identifier: Apache-2.0
// generate: text-only chat with a Qwen2 / Qwen2.5 model directory (config.json,
// model.safetensors or a sharded index, tokenizer.json or vocab.json + merges.txt, and optionally
// generation_config.json), as transformers' generate() runs it: the prompt in the ChatML template,
// prefill, then token by token with the model's sampling settings, streamed as it comes.
// Prints prefill and decode tokens/s at the end.
//
// Usage: generate --model DIR [--prompt TEXT] [--system TEXT] [--template qwen2.5|qwen2|points|none]
//                 [--max-new-tokens N] [--greedy] [--temperature T] [--top-k K] [--top-p P]
//                 [--min-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]...
//                 [--max-context N] [--threads N] [--tokenizer PATH] [--weights auto|bf16|f32|q8|q4]
//                 [--kv-cache auto|bf16|f32] [--prompt-ids "ID ID ..."] [--print-ids]
// Sampling starts from the model's generation_config.json as transformers reads it (Qwen2.5-Instruct:
// temperature 0.7, top_k 20, top_p 0.8, repetition_penalty 1.05; absent fields take
// GenerationConfig's defaults, e.g. top_k 50); each flag overrides one field (--top-k 0 turns
// top-k off); --greedy or --temperature 0 decodes greedily. Generation stops at the stop tokens (generation_config's and
// config's eos_token_id, <|im_end|>, <|endoftext|>), a --stop string, or --max-new-tokens.
// bf16 checkpoints are used in place (mmapped); f32 and f16 ones are converted to f32 weights
// (--weights chooses explicitly; q8 / q4 quantize the linear layers on load, 8 or 4 bits with a
// scale per 32 weights, the rest as auto: docs/quantization.md). The KV cache follows the weights, as transformers' cache follows
// the model's dtype (f32 model: f32 cache, bf16 model: bf16 cache); --kv-cache chooses explicitly.
// --prompt-ids feeds token ids directly (no template, no tokenizer encode); --print-ids prints the
// generated ids on a line of their own after the text.
#include "common/quant_note.hpp"
#include "common/sampling_flags.hpp"

#include <tessera/lm/generate.hpp>
#include <tessera/model/generation_config.hpp>
#include <tessera/model/qwen2/config.hpp>
#include <tessera/model/qwen2/loader.hpp>
#include <tessera/text/chat_template.hpp>
#include <tessera/text/tokenizer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace lm = tessera::lm;
namespace text = tessera::text;
namespace backend = tessera::backend;
using tessera::index_t;

struct options {
  fs::path model_dir, tokenizer_path;
  std::string prompt = "Give me a short introduction to large language models.";
  std::optional<std::string> system;
  std::string template_name = "qwen2.5";
  index_t max_context = 0, threads = 0;
  examples::sampling_flags sampling;
  std::string weights = "auto", kv_cache = "auto";
  /// --weights q8 / q4: the linear layers quantized on load
  [[nodiscard]] tessera::quant::weight_format linear_format() const {
    return tessera::quant::parse_weight_format(weights).value_or(tessera::quant::weight_format::dense);
  }
  std::optional<std::vector<text::token_id>> prompt_ids;
  bool print_ids = false;
};

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) examples::usage("missing value after " + std::string(a));
      return argv[++i];
    };
    if (o.sampling.parse(argc, argv, i)) continue;
    if (a == "--model") o.model_dir = value();
    else if (a == "--tokenizer") o.tokenizer_path = value();
    else if (a == "--prompt") o.prompt = value();
    else if (a == "--system") o.system = value();
    else if (a == "--template") o.template_name = value();
    else if (a == "--max-context") o.max_context = examples::parse_number<index_t>(a, value());
    else if (a == "--threads") o.threads = examples::parse_number<index_t>(a, value());
    else if (a == "--weights") o.weights = value();
    else if (a == "--kv-cache") o.kv_cache = value();
    else if (a == "--print-ids") o.print_ids = true;
    else if (a == "--prompt-ids") {
      std::vector<text::token_id> ids;
      std::istringstream in(value());
      for (std::string w; in >> w;) ids.push_back(examples::parse_number<text::token_id>(a, w.c_str()));
      if (ids.empty()) examples::usage("--prompt-ids takes at least one id");
      o.prompt_ids = std::move(ids);
    }
    else if (a == "--help" || a == "-h") examples::usage("text generation with a Qwen2 / Qwen2.5 checkpoint");
    else examples::usage("unknown argument '" + std::string(a) + "'");
  }
  if (o.model_dir.empty()) examples::usage("--model DIR is required (a Qwen2 / Qwen2.5 checkpoint directory)");
  if (o.weights != "auto" && o.weights != "bf16" && o.weights != "f32" && o.weights != "q8" && o.weights != "q4")
    examples::usage("--weights takes auto, bf16, f32, q8 or q4");
  if (o.kv_cache != "auto" && o.kv_cache != "bf16" && o.kv_cache != "f32") examples::usage("--kv-cache takes auto, bf16 or f32");
  if (o.template_name != "qwen2.5" && o.template_name != "qwen2" && o.template_name != "points" &&
      o.template_name != "none")
    examples::usage("--template takes qwen2.5, qwen2, points or none");
  return o;
}

text::tokenizer load_tokenizer(options const& o) {
  fs::path const p = o.tokenizer_path.empty() ? o.model_dir : o.tokenizer_path;
  if (fs::is_directory(p)) return text::tokenizer::from_dir(p);
  return text::tokenizer::from_tokenizer_json(p);
}

template <class T, class KV>
int run(options const& o, io::dtype_policy dtypes) {
  auto const t0 = std::chrono::steady_clock::now();
  lm::decoder_options dopt;
  dopt.quantize.format = o.linear_format();
  auto loaded = model::load_qwen2_decoder<backend::cpu, T>(o.model_dir, dtypes, dopt);
  lm::qwen2_decoder<backend::cpu, T> const& dec = loaded.decoder;
  text::tokenizer const tok = load_tokenizer(o);
  model::generation_defaults const gen = model::read_generation_config(o.model_dir);
  double const load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  lm::generation_options opt;
  opt.max_new_tokens = o.sampling.max_new_tokens;
  opt.sampling = o.sampling.sampling(gen);
  opt.stop_strings = o.sampling.stop;
  auto add_stop = [&](std::int64_t id) {
    if (id >= 0 && id < dec.vocab_size() &&
        std::find(opt.stop_token_ids.begin(), opt.stop_token_ids.end(), id) == opt.stop_token_ids.end())
      opt.stop_token_ids.push_back(static_cast<text::token_id>(id));
  };
  for (auto id : gen.eos_token_ids) add_stop(id);
  for (auto id : loaded.config.eos_token_ids) add_stop(id);
  for (char const* special : {"<|im_end|>", "<|endoftext|>"})
    if (auto id = tok.find_token(special)) add_stop(*id);

  std::string prompt_text = o.prompt;
  if (o.template_name != "none") {
    text::chat_template const tpl = o.template_name == "qwen2.5" ? text::chat_template::qwen2_5()
                                    : o.template_name == "qwen2" ? text::chat_template::qwen2()
                                                                 : text::chat_template::points15();
    std::vector<text::chat_message> messages;
    if (o.system) messages.push_back({"system", *o.system});
    messages.push_back({"user", o.prompt});
    prompt_text = tpl.render(messages);
  }
  std::vector<text::token_id> const prompt = o.prompt_ids ? *o.prompt_ids : tok.encode(prompt_text);
  index_t const max_context = o.max_context > 0 ? o.max_context
                                                : std::min<index_t>(static_cast<index_t>(prompt.size()) + o.sampling.max_new_tokens,
                                                                    std::max<index_t>(loaded.config.decoder.max_positions, 1));
  lm::kv_cache<KV> cache(dec.cache_shape(1, std::max<index_t>(max_context, static_cast<index_t>(prompt.size()) + 1)));
  tessera::exec_ctx<backend::cpu> ctx(static_cast<int>(o.threads));

  lm::decoder_config const& c = dec.config();
  std::fprintf(stderr,
               "model %s: %ld layers, d_model %ld, %ld/%ld heads, vocab %ld, %s weights%s (%zu tensors mmapped, %zu "
               "converted), loaded in %.2f s\n",
               o.model_dir.string().c_str(), static_cast<long>(c.n_layers), static_cast<long>(c.d_model),
               static_cast<long>(c.n_heads), static_cast<long>(c.n_kv_heads), static_cast<long>(c.vocab_size),
               std::is_same_v<T, tessera::bf16> ? "bf16" : "f32",
               examples::linear_layers_note(dec.weights(), "linear layers").c_str(),
               loaded.report.n_bound - loaded.report.n_converted,
               loaded.report.n_converted, load_s);
  lm::sampling_config const& s = opt.sampling;
  if (s.do_sample)
    std::fprintf(stderr, "sampling: temperature %g, top_k %ld, top_p %g, min_p %g, repetition_penalty %g, seed %llu\n",
                 static_cast<double>(s.temperature), static_cast<long>(s.top_k), static_cast<double>(s.top_p),
                 static_cast<double>(s.min_p), static_cast<double>(s.repetition_penalty),
                 static_cast<unsigned long long>(s.seed));
  else
    std::fprintf(stderr, "greedy decoding, repetition_penalty %g\n", static_cast<double>(s.repetition_penalty));
  std::fprintf(stderr, "KV cache: %s, %ld positions (%.1f MiB), %d threads\n\n",
               std::is_same_v<KV, tessera::bf16> ? "bf16" : "f32", static_cast<long>(cache.max_context()),
               static_cast<double>(cache.bytes()) / (1 << 20), ctx.threads());

  lm::generation_stats st;
  lm::generation_result const r = lm::generate(
      dec, tok, prompt, opt, cache, ctx,
      [](index_t, std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      },
      &st);
  std::printf("\n");
  if (o.print_ids) {
    std::printf("ids:");
    for (text::token_id id : r.tokens) std::printf(" %d", static_cast<int>(id));
    std::printf("\n");
  }
  std::fflush(stdout);
  std::fprintf(stderr,
               "\nprompt: %ld tokens, prefill %.3f s = %.1f tokens/s\n"
               "generated: %ld tokens, decode %.3f s = %.1f tokens/s; stopped by %s\n",
               static_cast<long>(st.prompt_tokens), st.prefill_seconds, st.prefill_tokens_per_second(),
               static_cast<long>(st.generated_tokens), st.decode_seconds, st.decode_tokens_per_second(),
               std::string(lm::name_of(r.reason)).c_str());
  return 0;
}

}  // namespace

void examples::usage(std::string const& why) {
  std::fprintf(stderr,
               "generate: %s\n"
               "usage: generate --model DIR [--prompt TEXT] [--system TEXT] [--template qwen2.5|qwen2|points|none]\n"
               "                %s\n"
               "                [--max-context N] [--threads N] [--tokenizer PATH] [--weights auto|bf16|f32|q8|q4]\n"
               "                [--kv-cache auto|bf16|f32] [--prompt-ids \"ID ID ...\"] [--print-ids]\n",
               why.c_str(), examples::sampling_usage);
  std::exit(2);
}

int main(int argc, char** argv) {
  options const o = parse_args(argc, argv);
  try {
    // bf16 checkpoints are used in place (mmapped); f32 and f16 ones are converted to f32. The
    // cache follows the weights unless --kv-cache says otherwise.
    model::qwen2_config const cfg = model::read_qwen2_config(o.model_dir);
    bool const bf16 = o.weights == "auto" || o.linear_format() != tessera::quant::weight_format::dense
                          ? !cfg.torch_dtype || *cfg.torch_dtype == tessera::dtype::bf16
                          : o.weights == "bf16";
    // auto: lm::default_kv_t of the weights (the cache follows the model, as in transformers).
    bool const kv_bf16 = o.kv_cache == "auto" ? std::is_same_v<lm::default_kv_t<tessera::bf16>, tessera::bf16> && bf16
                                              : o.kv_cache == "bf16";
    using tessera::bf16;
    if (bf16) {
      return kv_bf16 ? run<tessera::bf16, tessera::bf16>(o, io::dtype_policy::convert)
                     : run<tessera::bf16, float>(o, io::dtype_policy::convert);
    }
    return kv_bf16 ? run<float, tessera::bf16>(o, io::dtype_policy::convert) : run<float, float>(o, io::dtype_policy::convert);
  } catch (tessera::error const& e) {
    std::fprintf(stderr, "generate: %s\n", e.what());
    return 1;
  }
}
