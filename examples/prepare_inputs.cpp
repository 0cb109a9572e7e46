// SPDX-License-Identifier: Apache-2.0
// prepare_inputs: everything POINTS1.5 does before its first matrix product, for real files.
//   1. decode each image (PNG, JPEG, BMP, GIF, TGA) to RGB, as Pillow's convert('RGB');
//   2. smart_resize (factor 28, min/max pixels), Pillow-exact bicubic resize, CLIP normalization,
//      14 x 14 patches in 2 x 2 merge-window-major order: pixel_values [n_patches, 1176] and
//      image_grid_thw, exactly as the reference processor gives them;
//   3. the POINTS1.5 chat prompt with one <|image_pad|> per merged token, tokenized with the Qwen2
//      tokenizer (tokenizer.json, or vocab.json + merges.txt + added tokens);
//   4. with --model DIR: the model's config.json, and its checkpoint's tensors bound to the blocks;
//      for a POINTS1.5 checkpoint, its vision tower encodes the packed images.
//
// Usage: prepare_inputs [--image FILE]... [--tokenizer DIR] [--prompt TEXT]
//                       [--min-pixels N] [--max-pixels N] [--model DIR]
// Without --image / --tokenizer it uses ../shared/data (relative to the current directory) when
// that folder is there; otherwise a synthetic 480 x 640 image, and no tokenizer step.
#include <tessera/model/points15/config.hpp>
#include <tessera/io/image.hpp>
#include <tessera/model/qwen2_vl/processor.hpp>
#include <tessera/model/points15/checkpoint.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/text/tokenizer.hpp>
#include <tessera/model/qwen2_vl/encoder.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = tessera::io;
namespace model = tessera::model;
namespace lm = tessera::lm;
using tessera::index_t;
using tessera::exec_ctx;
using tessera::host_buffer;
using tessera::tensor_view;
namespace backend = tessera::backend;
namespace pack = tessera::pack;
namespace vision = tessera::vision;

struct options {
  std::vector<fs::path> images;
  fs::path tokenizer_dir;
  fs::path model_dir;
  std::string prompt = "Please describe the image in detail.";
  model::resize_limits limits;  // POINTS1.5 defaults: min 56*56, max 28*28*1280 pixels
};

[[noreturn]] void usage(char const* why) {
  std::fprintf(stderr,
               "prepare_inputs: %s\n"
               "usage: prepare_inputs [--image FILE]... [--tokenizer DIR] [--prompt TEXT]\n"
               "                      [--min-pixels N] [--max-pixels N] [--model DIR]\n",
               why);
  std::exit(2);
}

index_t parse_count(char const* flag, char const* text) {
  char* end = nullptr;
  long long const v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v <= 0) {
    std::fprintf(stderr, "prepare_inputs: %s needs a positive integer, got '%s'\n", flag, text);
    std::exit(2);
  }
  return static_cast<index_t>(v);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const a = argv[i];
    auto value = [&]() -> char const* {
      if (i + 1 >= argc) usage(("missing value after " + std::string(a)).c_str());
      return argv[++i];
    };
    if (a == "--image") o.images.emplace_back(value());
    else if (a == "--tokenizer") o.tokenizer_dir = value();
    else if (a == "--model") o.model_dir = value();
    else if (a == "--prompt") o.prompt = value();
    else if (a == "--min-pixels") o.limits.min_pixels = parse_count("--min-pixels", value());
    else if (a == "--max-pixels") o.limits.max_pixels = parse_count("--max-pixels", value());
    else if (a == "-h" || a == "--help") usage("prepares POINTS1.5 inputs (images and prompt)");
    else usage(("unknown argument '" + std::string(a) + "'").c_str());
  }
  fs::path const shared = "../shared/data";
  if (o.images.empty() && fs::exists(shared / "images" / "skimage_coffee.png"))
    o.images.push_back(shared / "images" / "skimage_coffee.png");
  if (o.tokenizer_dir.empty() && fs::is_directory(shared / "qwen2-tokenizer")) o.tokenizer_dir = shared / "qwen2-tokenizer";
  return o;
}

/// A 480 x 640 test card (colour gradients and a checkerboard) for runs without image files.
io::rgb_image synthetic_image() {
  index_t const h = 480, w = 640;
  io::rgb_image img(h, w);
  std::uint8_t* p = img.data();
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x, p += 3) {
      bool const check = ((x / 40) + (y / 40)) % 2 == 0;
      p[0] = static_cast<std::uint8_t>(x * 255 / (w - 1));
      p[1] = static_cast<std::uint8_t>(y * 255 / (h - 1));
      p[2] = check ? 200 : 40;
    }
  return img;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Runs the POINTS1.5 vision tower (varlen packing, block-diagonal attention) over the packed
/// pixel_values of every image.
template <class T>
void encode_images(model::points15_weights<T> const& w, model::points15_config const& c,
                   std::vector<model::qwen2vl_pixels> const& pixels) {
  std::vector<pack::patch_grid> grids;
  std::vector<tensor_view<float const, 2>> rows;
  for (model::qwen2vl_pixels const& p : pixels) {
    grids.push_back(p.grid);
    rows.push_back(p.rows());
  }
  pack::pack_plan const plan = model::qwen2vl_plan(grids, c.vision);
  index_t const n = plan.n_slots(), f = c.vision.patch_dim, e = c.vision.embed_dim;
  host_buffer<float> packed(n * f), out(n * e);
  pack::gather_patches(plan, rows, packed.view(n, f));
  auto const encoder = model::make_qwen2vl_encoder<backend::cpu>(c.vision, w.vision);
  exec_ctx<backend::cpu> ctx;
  auto const t0 = std::chrono::steady_clock::now();
  encoder.forward(packed.view(n, f), vision::batch_of(plan), out.view(n, e), ctx);
  double const ms = ms_since(t0);
  double sum_sq = 0;
  for (index_t i = 0; i < n * e; ++i) sum_sq += static_cast<double>(out.data()[i]) * out.data()[i];
  std::printf("  vision tower (%lld blocks, width %lld): %zu image(s) packed into %lld tokens, %lld segments -> "
              "[%lld, %lld] in %.1f ms (%.0f tokens/s), output RMS %.3f\n",
              static_cast<long long>(c.vision.depth), static_cast<long long>(e), pixels.size(),
              static_cast<long long>(n), static_cast<long long>(plan.seqs().n_seqs()), static_cast<long long>(n),
              static_cast<long long>(e), ms, 1e3 * static_cast<double>(n) / ms,
              std::sqrt(sum_sq / static_cast<double>(n * e)));
}

void describe_model(fs::path const& dir, std::vector<model::qwen2vl_pixels> const& pixels) {
  model::model_config const cfg = model::read_model_config(dir);
  lm::decoder_config const& d = model::decoder_of(cfg);
  std::printf("\nmodel %s: %s decoder, %lld layers, d_model %lld, %lld query / %lld KV heads of %lld, vocab %lld\n",
              dir.string().c_str(), lm::name_of(d.flavour).data(), static_cast<long long>(d.n_layers),
              static_cast<long long>(d.d_model), static_cast<long long>(d.n_heads),
              static_cast<long long>(d.n_kv_heads), static_cast<long long>(d.head_dim),
              static_cast<long long>(d.vocab_size));
  bool const has_weights = fs::exists(dir / "model.safetensors") || fs::exists(dir / "model.safetensors.index.json");
  if (!has_weights) {
    std::printf("  (no model.safetensors or model.safetensors.index.json: config only)\n");
    return;
  }
  io::checkpoint const ckpt(dir);
  // Bind without copying: views into the mapped files, in the checkpoint's own dtype.
  auto const print_report = [](io::binding_report const& report) {
    std::printf("  checkpoint: %zu tensors bound (zero-copy), %zu skipped\n", report.n_bound, report.skipped.size());
    for (io::skipped_tensor const& s : report.skipped)
      std::printf("    skipped %s: %s\n", s.name.c_str(), s.reason.c_str());
  };
  std::visit(
      [&](auto const& c) {
        using C = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<C, model::points15_config>) {
          auto const w = model::bind_points15<tessera::bf16>(ckpt, c);
          print_report(w.report);
          encode_images(w, c, pixels);
        } else {
          print_report(model::bind_qwen2<tessera::bf16>(ckpt, c).report);
        }
      },
      cfg);
}

int run(options const& o) {
  std::string content;
  index_t total_patches = 0;
  std::vector<model::qwen2vl_pixels> pixels;
  std::vector<fs::path> images = o.images;
  if (images.empty()) {
    std::printf("(no --image and no ../shared/data/images: using a synthetic 480 x 640 image)\n");
    images.emplace_back();  // empty path: the synthetic image
  }
  std::printf("%-40s %11s %11s %14s %9s %9s %8s\n", "image", "size HxW", "resized", "grid (t,h,w)", "ViT tok",
              "LLM tok", "ms");
  for (fs::path const& path : images) {
    auto const t0 = std::chrono::steady_clock::now();
    io::rgb_image const img = path.empty() ? synthetic_image() : io::load_image(path);
    model::qwen2vl_pixels px = model::preprocess_qwen2vl(img, o.limits);
    double const ms = ms_since(t0);
    std::string const size = std::to_string(img.height()) + "x" + std::to_string(img.width());
    std::string const resized = std::to_string(px.resized.height) + "x" + std::to_string(px.resized.width);
    std::string const grid = "(1," + std::to_string(px.grid.h) + "," + std::to_string(px.grid.w) + ")";
    std::printf("%-40s %11s %11s %14s %9lld %9lld %8.1f\n", path.empty() ? "(synthetic)" : path.filename().string().c_str(), size.c_str(),
                resized.c_str(), grid.c_str(), static_cast<long long>(px.n_patches()),
                static_cast<long long>(px.n_merged_tokens()), ms);
    total_patches += px.n_patches();
    // One image item of a POINTS1.5 user message (spec section 5.1).
    content += "<|vision_start|>";
    for (index_t i = 0; i < px.n_merged_tokens(); ++i) content += "<|image_pad|>";
    content += "<|vision_end|>\n";
    pixels.push_back(std::move(px));
  }
  content += o.prompt;
  std::string const prompt = "<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n";
  std::printf("\npacked pixel_values: [%lld, 1176] float32 for %zu image(s)\n", static_cast<long long>(total_patches),
              images.size());
  if (!o.model_dir.empty()) describe_model(o.model_dir, pixels);
  if (o.tokenizer_dir.empty()) {
    std::printf("\n(no --tokenizer and no ../shared/data/qwen2-tokenizer: prompt not tokenized; pass --tokenizer DIR\n"
                " with a Qwen2 tokenizer.json, or vocab.json + merges.txt + added_tokens*.json)\n");
    return 0;
  }

  auto const t0 = std::chrono::steady_clock::now();
  tessera::text::tokenizer const tok = tessera::text::tokenizer::from_dir(o.tokenizer_dir);
  double const load_ms = ms_since(t0);
  auto const t1 = std::chrono::steady_clock::now();
  std::vector<tessera::text::token_id> const ids = tok.encode(prompt);
  double const encode_ms = ms_since(t1);
  auto const pad = tok.find_token("<|image_pad|>");
  auto const n_pads = pad ? std::count(ids.begin(), ids.end(), *pad) : 0;

  std::printf("\ntokenizer %s: %zu tokens, loaded in %.0f ms\n", o.tokenizer_dir.string().c_str(), tok.vocab_size(),
              load_ms);
  std::printf("prompt: %zu bytes -> %zu token ids (%lld <|image_pad|>) in %.2f ms\n", prompt.size(), ids.size(),
              static_cast<long long>(n_pads), encode_ms);
  std::printf("text ids:");
  std::size_t shown = 0;
  for (std::size_t i = 0; i < ids.size() && shown < 24; ++i) {
    if (pad && ids[i] == *pad) continue;
    std::printf(" %d", static_cast<int>(ids[i]));
    ++shown;
  }
  std::printf("\nround trip: decode(encode(prompt)) %s the prompt\n",
              tok.decode(ids) == prompt ? "equals" : "DIFFERS FROM");
  return tok.decode(ids) == prompt ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options const o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (tessera::error const& e) {
    std::fprintf(stderr, "prepare_inputs: %s\n", e.what());
    return 1;
  }
}
