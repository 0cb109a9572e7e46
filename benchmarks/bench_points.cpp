// SPDX-License-Identifier: Apache-2.0
// bench_points: model::points15 end to end at the real POINTS1.5 shapes, random bf16 weights built
// in memory (no download): the Qwen2-VL vision tower (embed 1280, 32 blocks, 16 heads of 80,
// patch 14, merge 2, QuickGELU), the PatchMerger projector (1280 -> 5120 -> d_model) and a
// Qwen2.5-0.5B-shape decoder; the 7B projector (out 3584) is timed on the same tower output.
// Two requests: one 448 x 448 image, and four images of mixed sizes; a 32-token answer each.
// Reports preprocessing, the vision tower (GFLOP/s against the FMA peak probed in the same run;
// each block's time through the tower), the projectors, time to first token and decode tokens/s
// against the DRAM roofline (weight bytes per step / read bandwidth probed around the decode runs),
// then one block's kernels timed alone at the last case's size. Prints a table and writes JSON;
// scripts/bench_points.sh runs transformers' Qwen2-VL vision tower on the same images beside it
// (--dump-pixels writes the pixel_values it reads).
//   bench_points [--quick] [--threads N] [--json PATH] [--filter TEXT] [--reps N] [--big-reps N]
//                [--dump-pixels DIR] [--tokenizer DIR] [--weights bf16|q8|q4] [--lm-head q8|q4]
// --weights / --lm-head: the LLM's linear layers (and its LM head) quantized on load
// (docs/quantization.md); the vision tower and the projector stay bf16.
// --quick: a tiny model and tiny images (the CI smoke test; its numbers are not measurements).
#include <tessera/tessera.hpp>

#include "bench_common.hpp"
#include "common/random_decoder.hpp"

#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

using namespace tessera;

namespace {

using model_t = model::points15<backend::cpu, bf16>;
using ref_model_t = model::points15<backend::reference, bf16>;

struct options {
  bool quick = false;
  int threads = backend::default_threads();
  std::string json_path = "bench_points.json";
  std::string filter;
  std::string dump_dir;  ///< where each case's pixel_values go (raw f32), for the PyTorch side
  std::string tokenizer_dir = TESSERA_SOURCE_DIR "/tests/golden/points15/custom_llama_bf16";
  int reps = 2;      ///< timed runs of the small case (after one warm-up run)
  int big_reps = 1;  ///< timed runs of the large case (warmed up by the small case before it)
  index_t new_tokens = 32;
  lm::quantize_options quantize{};  ///< the LLM's linear layers and LM head (default: bf16 as built)
};

// ---- shapes ---------------------------------------------------------------------------------------

/// The Qwen2-VL-7B vision tower (POINTS1.5's vision_config), or a tiny one for --quick. The
/// derived fields are set as parse_qwen2_vl_vision_config derives them.
model::qwen2_vl_vision_config vision_config(bool quick) {
  model::qwen2_vl_vision_config v;
  v.source = "bench_points (in memory)";
  v.depth = quick ? 2 : 32;
  v.embed_dim = quick ? 64 : 1280;
  v.num_heads = quick ? 4 : 16;
  v.hidden_size = 3584;  // the tower's own merger; POINTS1.5 does not run it
  v.hidden_act = "quick_gelu";
  v.activation = nn::activation_kind::quick_gelu;
  v.mlp_ratio = 4.0;
  v.head_dim = v.embed_dim / v.num_heads;
  v.mlp_dim = 4 * v.embed_dim;
  v.patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size;
  v.merge_dim = v.embed_dim * v.spatial_merge_size * v.spatial_merge_size;
  return v;
}

/// Qwen2.5-0.5B as its config.json gives it (tied embeddings, RoPE base 1e6, RMSNorm eps 1e-6,
/// q / k / v biases), or a tiny decoder for --quick (the tokenizer's ids stay below its vocabulary).
lm::decoder_config decoder_config(bool quick) {
  return quick ? test::qwen2_config_of(1024, 64, 2, 4, 2, 128, true)
               : test::qwen2_config_of(151936, 896, 24, 14, 2, 4864, true);
}

/// Qwen2.5-7B's hidden_size: the 7B model's projector output (timed without a 7B decoder).
index_t d_model_7b(bool quick) { return quick ? 96 : 3584; }

// ---- random weights -------------------------------------------------------------------------------

/// Every random tensor of the benchmark's models, owned; the weight structs hold views into it.
struct weight_maker {
  std::shared_ptr<io::converted_tensors<bf16>> storage = std::make_shared<io::converted_tensors<bf16>>();
  std::uint64_t seed;

  explicit weight_maker(std::uint64_t s) : seed(s) {}
  tensor_view<bf16 const, 1> vec(index_t n, float std, float mean = 0.0f) { return {add(n, std, mean), {n}}; }
  tensor_view<bf16 const, 2> mat(index_t rows, index_t cols, float std) { return {add(rows * cols, std, 0.0f), {rows, cols}}; }
  /// HF's init for Linear / Conv3d weights (std 0.02); small random biases.
  nn::linear_weights<bf16> linear(index_t out, index_t in) { return {mat(out, in, 0.02f), vec(out, 0.02f)}; }
  /// LayerNorm with weight 1 +- 0.1 and bias.
  nn::norm_weights<bf16> layer_norm(index_t n) { return {vec(n, 0.1f, 1.0f), vec(n, 0.02f)}; }

 private:
  bf16 const* add(index_t n, float std, float mean) {
    storage->buffers.push_back(test::random_buffer<bf16>(n, test::hash64(seed++, 0xB0B), std, mean));
    return storage->buffers.back().data();
  }
};

/// The Qwen2-VL tower's tensors: Conv3d as a linear without bias, then per block norm1, qkv, proj,
/// norm2, fc1, fc2 (all with biases); no final norm.
vision::vision_encoder_weights<bf16> make_vision_weights(model::qwen2_vl_vision_config const& v, weight_maker& m) {
  vision::vision_encoder_weights<bf16> w;
  index_t const d = v.embed_dim;
  w.patch_embed = {m.mat(d, v.patch_dim, 0.02f), std::nullopt};
  for (index_t i = 0; i < v.depth; ++i) {
    vision::vit_block_weights<bf16> b;
    b.norm1 = m.layer_norm(d);
    b.qkv = m.linear(3 * d, d);
    b.proj = m.linear(d, d);
    b.norm2 = m.layer_norm(d);
    b.fc1 = m.linear(v.mlp_dim, d);
    b.fc2 = m.linear(d, v.mlp_dim);
    w.blocks.push_back(std::move(b));
  }
  w.keep_alive = m.storage;
  return w;
}

/// POINTS1.5's vision_projector: PatchMerger(out_dim, context_dim = embed_dim).
model::patch_merger_config projector_config(model::qwen2_vl_vision_config const& v, index_t out_dim) {
  return {v.embed_dim, 2, v.merge_dim, out_dim};
}

model::patch_merger_weights<bf16> make_projector_weights(model::patch_merger_config const& c, weight_maker& m) {
  return {m.layer_norm(c.context_dim), m.linear(c.hidden_dim, c.hidden_dim), m.linear(c.out_dim, c.hidden_dim),
          m.storage};
}

/// The parts of a model::points15, before it takes them.
struct model_parts {
  model::points15_config config;
  model::points15_weights<bf16> weights;
  std::shared_ptr<void const> keep_alive;
};

model_parts make_parts(bool quick, weight_maker& m, test::random_decoder<bf16> const& dec) {
  model_parts p;
  model::qwen2_config q;  // what the llm_config would say; the model reads config.decoder
  q.source = "bench_points (in memory)";
  q.vocab_size = dec.config.vocab_size;
  q.hidden_size = dec.config.d_model;
  q.intermediate_size = dec.config.d_ff;
  q.num_hidden_layers = dec.config.n_layers;
  q.num_attention_heads = dec.config.n_heads;
  q.num_key_value_heads = dec.config.n_kv_heads;
  q.tie_word_embeddings = dec.config.tie_word_embeddings;
  q.rope_theta = dec.config.rope_theta;
  q.rms_norm_eps = dec.config.norm_eps;
  q.decoder = dec.config;
  p.config.source = "bench_points (in memory)";
  p.config.llm = q;
  p.config.decoder = dec.config;
  p.config.vision = vision_config(quick);
  p.config.projector = projector_config(p.config.vision, dec.config.d_model);
  p.weights.decoder = dec.hf;
  p.weights.vision = make_vision_weights(p.config.vision, m);
  p.weights.projector_config = p.config.projector;
  p.weights.projector = make_projector_weights(p.config.projector, m);
  p.keep_alive = m.storage;
  return p;
}

// ---- images and requests --------------------------------------------------------------------------

/// A deterministic RGB image from integer arithmetic only (gradients, a product term and an XOR
/// texture), so that tools/bench/points_torch.py builds the same bytes with numpy.
io::rgb_image synthetic_image(index_t height, index_t width, index_t k) {
  io::rgb_image img(height, width);
  std::uint8_t* p = img.data();
  for (index_t y = 0; y < height; ++y)
    for (index_t x = 0; x < width; ++x)
      for (index_t c = 0; c < 3; ++c)
        p[(y * width + x) * 3 + c] = static_cast<std::uint8_t>(
            (7 * x + 13 * y + 61 * c + ((x * y) >> 4) % 64 + ((x ^ y) & 15) * 3 + 97 * k) % 256);
  return img;
}

struct case_spec {
  std::string name;
  std::vector<image_size> images;  ///< height x width as decoded
  int tower_reps = 1, generate_reps = 1;
  bool warm_up = true;  ///< an untimed run first (the large case is warmed up by the small one)
};

std::vector<case_spec> case_specs(options const& o) {
  if (o.quick)
    return {{"1x112x112", {{112, 112}}, o.reps, o.reps, true},
            {"4x_mixed", {{84, 112}, {140, 56}, {56, 84}, {56, 56}}, o.big_reps, o.big_reps, false}};
  // One 448 x 448 image; then a 640 x 480 landscape photo, a 336 x 448 portrait, a 600 x 200 banner /
  // text line and a 224 x 224 thumbnail (width x height): 3176 ViT tokens, 794 LLM rows.
  return {{"1x448x448", {{448, 448}}, o.reps, o.reps, true},
          {"4x_mixed", {{480, 640}, {448, 336}, {200, 600}, {224, 224}}, o.big_reps, o.big_reps, false}};
}

model::points15_request make_request(case_spec const& c) {
  model::chat_turn t{"user", {}};
  index_t k = 0;
  for (image_size const& s : c.images) t.content.push_back(model::content_item::image_pixels(synthetic_image(s.height, s.width, k++)));
  t.content.push_back(model::content_item::make_text("Please describe the image in detail."));
  return {{std::move(t)}};
}

// ---- FLOPs --------------------------------------------------------------------------------------

/// Multiply-adds x 2 of the tower over a pack of images (norms, softmax, RoPE and activations
/// are not counted): patch embedding, then per block qkv, attention scores and values within each
/// image (block-diagonal: sum of n_i^2 pairs), proj, fc1, fc2.
struct tower_flops {
  double patch_embed = 0, gemm_per_block = 0, attention_per_block = 0, total = 0;
};

tower_flops count_tower_flops(model::qwen2_vl_vision_config const& v, std::span<patch_grid const> grids) {
  double n = 0, pairs = 0;
  for (patch_grid const& g : grids) {
    auto const t = static_cast<double>(g.n_patches());
    n += t;
    pairs += t * t;
  }
  auto const d = static_cast<double>(v.embed_dim), ff = static_cast<double>(v.mlp_dim);
  tower_flops f;
  f.patch_embed = 2.0 * n * static_cast<double>(v.patch_dim) * d;
  f.gemm_per_block = 2.0 * n * d * (3 * d + d + 2 * ff);
  f.attention_per_block = 4.0 * d * pairs;  // QK^T and PV, over all heads (n_heads * head_dim = embed_dim)
  f.total = f.patch_embed + static_cast<double>(v.depth) * (f.gemm_per_block + f.attention_per_block);
  return f;
}

/// mlp.0 and mlp.2 of a PatchMerger over n_tokens ViT tokens (n_tokens / 4 rows).
double projector_flops(model::patch_merger_config const& c, index_t n_tokens) {
  return 2.0 * static_cast<double>(n_tokens / 4) * static_cast<double>(c.hidden_dim) *
         static_cast<double>(c.hidden_dim + c.out_dim);
}

// ---- helpers --------------------------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double min_of(std::vector<double> const& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

nlohmann::json timing_json(bench::timing const& t) {
  return {{"min_ms", t.min_s * 1e3}, {"median_ms", t.median_s * 1e3}, {"reps", t.reps}};
}

/// Minor page faults of this process so far (first touches of memory), -1 where unavailable.
long minor_page_faults() {
  rusage u{};
  return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_minflt : -1;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto const p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  return "unknown";
}


/// The tower alone over a prepared batch, packed as model::points15::encode packs it.
struct tower_run {
  pack::pack_plan plan;
  vision::packed_tokens tokens;
  host_buffer<float> patches, out;
  index_t n = 0, d = 0, f = 0;

  tower_run(model_t& m, model::points15_prepared const& p)
      : plan(model::qwen2vl_plan(p.grids, m.config().vision)), n(plan.n_slots()), d(m.config().vision.embed_dim),
        f(m.config().vision.patch_dim) {
    tokens = vision::batch_of(plan);
    patches = host_buffer<float>(n * f);  // [n_tokens, patch_dim]
    out = host_buffer<float>(n * d);      // [n_tokens, embed_dim]
    std::vector<tensor_view<float const, 2>> per_image;
    for (model::qwen2vl_pixels const& px : p.pixels) per_image.push_back(px.rows());
    pack::gather_patches(plan, per_image, patches.view(n, f), backend::host_threads(m.ctx()));
  }
  /// One forward; with `block_s`, the wall time of each block (from the encoder's stage observer).
  void run(model_t& m, std::vector<double>* block_s = nullptr) {
    if (block_s == nullptr) {
      m.encoder().forward(patches.view(n, f), tokens, out.view(n, d), m.ctx());
      return;
    }
    block_s->clear();
    auto last = bench::clock_type::now();
    m.encoder().forward(patches.view(n, f), tokens, out.view(n, d), m.ctx(), {},
                        [&](index_t stage, tensor_view<float const, 2>) {
                          auto const now = bench::clock_type::now();
                          if (stage >= 0) block_s->push_back(std::chrono::duration<double>(now - last).count());
                          last = now;
                        });
  }
};

// ---- the check ----------------------------------------------------------------------------------

/// cpu against the reference backend, once: the same weights cut to one ViT block and one decoder
/// layer (the reference at full depth would take minutes), on one small image: the projector's
/// rows (tower + projector) and the prefill's last-token logits, as NMSE. Also checks that the
/// tower as this benchmark times it equals the tower inside encode(), bit for bit.
nlohmann::json check_vs_reference(model_parts const& full, options const& o) {
  model_parts p = full;
  p.config.vision.depth = 1;
  p.weights.vision.blocks.resize(1);
  p.config.decoder.n_layers = 1;
  p.weights.decoder.layers.resize(1);
  std::get<model::qwen2_config>(p.config.llm).num_hidden_layers = 1;
  model::points15_load_options lo;
  lo.threads = o.threads;
  lo.decoder.quantize = o.quantize;
  model_t cpu(p.config, model::qwen2vl_preprocessor_config{}, text::tokenizer::from_dir(o.tokenizer_dir), p.weights,
              p.keep_alive, lo);
  ref_model_t ref(p.config, model::qwen2vl_preprocessor_config{}, text::tokenizer::from_dir(o.tokenizer_dir), p.weights,
                  p.keep_alive, lo);

  case_spec const c{"check", {{56, 84}}, 1, 1, true};
  model::points15_request const req = make_request(c);
  std::span<model::points15_request const> const reqs(&req, 1);
  model::points15_prepared const pc = cpu.prepare(reqs), pr = ref.prepare(reqs);
  model::points15_encoded const ec = cpu.encode(pc), er = ref.encode(pr);
  double const rows_nmse = bench::nmse(ec.rows.data(), er.rows.data(), static_cast<std::size_t>(ec.rows.size()));

  tower_run t(cpu, pc);
  t.run(cpu);
  bool const tower_same = std::equal(t.out.data(), t.out.data() + t.out.size(), ec.vision.data());

  index_t const vocab = cpu.decoder().vocab_size();
  std::vector<float> lc(static_cast<std::size_t>(vocab)), lr(lc.size());
  std::vector<index_t> const slot{0};
  std::vector<lm::prompt> const prc = cpu.prompts(pc, ec), prr = ref.prompts(pr, er);
  auto cache_c = cpu.decoder().make_cache(1, prc[0].size() + 1);
  auto cache_r = ref.decoder().make_cache(1, prr[0].size() + 1);
  lm::prefill(cpu.decoder(), std::span<lm::prompt const>(prc), slot, cache_c, tensor_view<float, 2>(lc.data(), {1, vocab}),
              cpu.ctx());
  lm::prefill(ref.decoder(), std::span<lm::prompt const>(prr), slot, cache_r, tensor_view<float, 2>(lr.data(), {1, vocab}),
              ref.ctx());
  double const logits_nmse = bench::nmse(lc.data(), lr.data(), lc.size());
  // bf16 products on both backends: a last-bit difference upstream flips a bf16 rounding of an
  // activation now and then (a 2^-9 relative step); tol<bf16>'s model NMSE budget is 1e-4.
  // A 4-bit LM head multiplies x quantized to int8 per group of 32 on the cpu backend (the last
  // token's logits take the decode kernel): its budget is 3e-3, as bench_decoder's.
  double const budget = o.quantize.lm_head == quant::weight_format::q4 ? 3e-3 : 1e-4;
  bool const ok = rows_nmse <= 1e-4 && logits_nmse <= budget && tower_same;
  std::printf("check (cpu vs reference: 1 ViT block + projector + 1 decoder layer of the benchmark's weights, one 56 x 84 "
              "image, %ld ViT tokens, %ld prompt tokens): projector rows NMSE %.1e, last-token logits NMSE %.1e "
              "(<= %.0e); timed tower == encode()'s tower: %s -> %s\n\n",
              static_cast<long>(ec.n_vit_tokens), static_cast<long>(prc[0].size()), rows_nmse, logits_nmse, budget,
              tower_same ? "bitwise" : "DIFFERS", ok ? "ok" : "FAILED");
  return {{"what", "cpu vs reference backend, the benchmark's weights cut to 1 ViT block and 1 decoder layer, one 56 x 84 "
                   "image"},
          {"vit_tokens", ec.n_vit_tokens},
          {"prompt_tokens", prc[0].size()},
          {"projector_rows_nmse", rows_nmse},
          {"prefill_last_logits_nmse", logits_nmse},
          {"budget_nmse", budget},
          {"timed_tower_equals_encode", tower_same},
          {"ok", ok}};
}

// ---- one case -----------------------------------------------------------------------------------

struct roofs {
  double fma = 0, dot = 0, dram = 0;
  std::function<double()> probe_dram;
};

struct case_result {
  nlohmann::json j;
  std::vector<patch_grid> grids;
  double tower_min_s = 0;
};

case_result bench_case(model_t& m, case_spec const& c, model::patch_merger_config const& cfg7,
                       model::patch_merger_weights<bf16> const& w7, roofs const& r, options const& o) {
  model::qwen2_vl_vision_config const& v = m.config().vision;
  model::points15_request const req = make_request(c);
  std::span<model::points15_request const> const reqs(&req, 1);
  nlohmann::json j;
  j["name"] = c.name;

  // Preprocessing: every image resized, normalized and patchified, the prompt rendered and tokenized.
  model::points15_prepared const prepared = m.prepare(reqs);
  auto const t_pre = bench::time_it([&](int) { (void)m.prepare(reqs); }, o.quick ? 2 : 5, o.quick ? 0.0 : 0.3);
  index_t n_tokens = 0, n_rows = 0;
  nlohmann::json imgs = nlohmann::json::array();
  for (std::size_t i = 0; i < prepared.grids.size(); ++i) {
    model::points15_image_info const& info = prepared.images[0][i];
    n_tokens += info.grid.n_patches();
    n_rows += info.llm_tokens;
    imgs.push_back({{"height", info.size.height}, {"width", info.size.width}, {"resized_height", info.resized.height},
                    {"resized_width", info.resized.width}, {"grid_thw", {info.grid.t, info.grid.h, info.grid.w}},
                    {"vit_tokens", info.grid.n_patches()}, {"llm_tokens", info.llm_tokens}});
  }
  j["images"] = imgs;
  j["vit_tokens"] = n_tokens;
  j["llm_image_tokens"] = n_rows;
  j["prompt_tokens"] = prepared.ids[0].size();
  j["preprocess"] = timing_json(t_pre);
  std::string sizes;
  for (image_size const& s : c.images) sizes += (sizes.empty() ? "" : ", ") + std::to_string(s.width) + "x" + std::to_string(s.height);
  std::printf("%s: %zu image(s) (width x height %s): %ld ViT tokens, %ld LLM image tokens, %zu prompt tokens\n",
              c.name.c_str(), c.images.size(), sizes.c_str(), static_cast<long>(n_tokens), static_cast<long>(n_rows),
              prepared.ids[0].size());
  std::printf("  preprocess: %.2f ms min, %.2f ms median (%d runs)\n", t_pre.min_s * 1e3, t_pre.median_s * 1e3, t_pre.reps);

  if (!o.dump_dir.empty()) {  // pixel_values of every image, concatenated (as WePOINTS passes them)
    std::ofstream out(std::filesystem::path(o.dump_dir) / (c.name + ".f32"), std::ios::binary);
    for (model::qwen2vl_pixels const& px : prepared.pixels)
      out.write(reinterpret_cast<char const*>(px.pixel_values.data()),
                static_cast<std::streamsize>(px.pixel_values.size() * static_cast<index_t>(sizeof(float))));
    TESSERA_CHECK(static_cast<bool>(out), "bench_points: cannot write pixel_values into ", o.dump_dir);
  }

  // The vision tower alone (what transformers' tower is compared with).
  tower_flops const fl = count_tower_flops(v, prepared.grids);
  tower_run tower(m, prepared);
  double const load_before = bench::load_average();
  // time_it's call 0 is the warm-up; the large case skips it (one run of its tower takes ~30 s).
  // Page faults are counted too: scratch memory the tower touches for the first time costs a
  // fault per 4 KiB page, which is a large share of the time on a VM.
  std::vector<double> blocks, fastest_blocks;
  double fastest = 1e300;
  long fastest_faults = 0;
  auto const t_tower = bench::time_it(
      [&](int i) {
        if (i == 0 && !c.warm_up) return;
        long const f0 = minor_page_faults();
        auto const a = bench::clock_type::now();
        tower.run(m, &blocks);
        double const s = std::chrono::duration<double>(bench::clock_type::now() - a).count();
        if (i > 0 && s < fastest) {
          fastest = s;
          fastest_blocks = blocks;
          fastest_faults = minor_page_faults() - f0;
        }
      },
      c.tower_reps, 0.0);
  double const gf = fl.total / t_tower.min_s * 1e-9;
  std::printf("  vision tower (%ld blocks, bf16 weights): %.1f ms min, %.1f ms median (%d runs%s): %.1f GFLOP/s = %.0f%% of "
              "the FMA peak\n",
              static_cast<long>(v.depth), t_tower.min_s * 1e3, t_tower.median_s * 1e3, t_tower.reps,
              c.warm_up ? ", after a warm-up run" : ", warmed up by the case before", gf, 100.0 * gf / r.fma);
  // Per block, in order (the fastest run): whether the blocks keep their pace through the tower.
  std::string quarters;
  nlohmann::json bq = nlohmann::json::array();
  std::size_t const q = std::max<std::size_t>(1, fastest_blocks.size() / 4);
  for (std::size_t b = 0; b < fastest_blocks.size(); b += q) {
    std::size_t const e = std::min(fastest_blocks.size(), b + q);
    double sum = 0;
    for (std::size_t i = b; i < e; ++i) sum += fastest_blocks[i];
    double const avg = sum / static_cast<double>(e - b) * 1e3;
    bq.push_back({{"blocks", std::to_string(b + 1) + "-" + std::to_string(e)}, {"mean_ms", avg}});
    quarters += (quarters.empty() ? "" : ", ") + std::to_string(b + 1) + "-" + std::to_string(e) + ": " +
                std::to_string(static_cast<long>(std::lround(avg)));
  }
  std::printf("  per block (fastest run), mean ms by quarter of the tower: %s; %ld minor page faults in that run\n",
              quarters.c_str(), fastest_faults);
  nlohmann::json tj = timing_json(t_tower);
  tj["warm_up_run"] = c.warm_up;
  nlohmann::json bms = nlohmann::json::array();
  for (double b : fastest_blocks) bms.push_back(b * 1e3);
  tj["block_ms_fastest_run"] = bms;
  tj["block_ms_by_quarter"] = bq;
  tj["minor_page_faults_fastest_run"] = fastest_faults;
  tj["flops"] = fl.total;
  tj["flops_parts"] = {{"patch_embed", fl.patch_embed}, {"linear_per_block", fl.gemm_per_block},
                       {"attention_per_block", fl.attention_per_block}, {"blocks", v.depth}};
  tj["gflops"] = gf;
  tj["median_gflops"] = fl.total / t_tower.median_s * 1e-9;
  tj["fraction_of_fma_peak"] = gf / r.fma;
  tj["load_average_1min_before"] = load_before;
  // The model's scratch arena after the tower: its high-water mark so far (vit_block_workspace
  // alone would be n_tokens * (embed + mlp) floats per block).
  tj["scratch_capacity_bytes_after"] = m.ctx().scratch().capacity();
  tj["vit_block_workspace_bytes"] =
      vision::vit_block_workspace(m.encoder().config().block, n_tokens) * static_cast<index_t>(sizeof(float));
  std::printf("  scratch arena after the tower: %.1f MB (vit_block_workspace: %.1f MB per block)\n",
              static_cast<double>(m.ctx().scratch().capacity()) * 1e-6,
              static_cast<double>(tj["vit_block_workspace_bytes"].get<index_t>()) * 1e-6);
  j["vision_tower"] = tj;

  // The projectors on the tower's output: POINTS1.5's (out = the decoder's d_model) and the 7B shape.
  auto const projector = [&](model::patch_merger_config const& pc, model::patch_merger_weights<bf16> const& pw,
                             std::string const& what) {
    host_buffer<float> rows(n_rows * pc.out_dim);
    tensor_view<float const, 2> const x = tower.out.view(tower.n, tower.d);
    auto const t = bench::time_it(
        [&](int) {
          model::patch_merger<backend::cpu>(x, prepared.grids, pack::token_order::merge_window_major, pc, pw,
                                            rows.view(n_rows, pc.out_dim), m.ctx());
        },
        o.quick ? 2 : 3, o.quick ? 0.0 : 0.5);
    double const pf = projector_flops(pc, n_tokens);
    double const vision_plus = t_tower.min_s + t.min_s;
    std::printf("  projector %-28s %8.2f ms min (%d runs): %.1f GFLOP/s; tower + projector %.1f ms\n",
                (what + " (out " + std::to_string(pc.out_dim) + "):").c_str(), t.min_s * 1e3, t.reps,
                pf / t.min_s * 1e-9, vision_plus * 1e3);
    nlohmann::json pj = timing_json(t);
    pj["out_dim"] = pc.out_dim;
    pj["flops"] = pf;
    pj["gflops"] = pf / t.min_s * 1e-9;
    pj["fraction_of_fma_peak"] = pf / t.min_s * 1e-9 / r.fma;
    pj["vision_tower_plus_projector_min_ms"] = vision_plus * 1e3;
    pj["vision_tower_plus_projector_gflops"] = (fl.total + pf) / vision_plus * 1e-9;
    return pj;
  };
  j["projector"] = {{"decoder_shape", projector(m.projector(), m.projector_weights_of(), "decoder shape")},
                    {"7B_shape", projector(cfg7, w7, "Qwen2.5-7B shape")}};

  // generate(): preprocessing, tower + projector, prefill and the first token, then decode steps;
  // the answer is always new_tokens long (no stop token).
  model::points15_options gopt;
  gopt.generation.max_new_tokens = o.new_tokens;
  gopt.stop_at_im_end = false;
  std::vector<double> pre, vis, pref, ttft, dec, dec_tps, wall;
  index_t generated = 0, decode_tokens = 0, context = 0;
  double const dram_before = r.probe_dram();
  long gen_faults = 0;
  for (int run = c.warm_up ? -1 : 0; run < c.generate_reps; ++run) {
    long const f0 = minor_page_faults();
    auto const a = bench::clock_type::now();
    model::points15_result const res = m.generate(req, gopt);
    double const w = std::chrono::duration<double>(bench::clock_type::now() - a).count();
    if (run < 0) continue;  // the warm-up run
    gen_faults = minor_page_faults() - f0;
    model::points15_timings const& t = res.timings;
    pre.push_back(t.preprocess);
    vis.push_back(t.vision);
    pref.push_back(t.prefill);
    ttft.push_back(t.preprocess + t.vision + t.prefill);
    dec.push_back(t.decode);
    dec_tps.push_back(res.stats.decode_tokens_per_second());
    wall.push_back(w);
    generated = static_cast<index_t>(res.ids.size());
    decode_tokens = res.stats.decode_tokens;
    context = res.prompt_tokens + generated;
  }
  double const dram_after = r.probe_dram(), dram = std::max(dram_before, dram_after);
  auto const& dcfg = m.decoder().config();
  double const w_bytes = static_cast<double>(m.decoder().decode_weight_bytes());
  // KV bytes read by the average decode step (bf16 cache): half the answer on top of the prompt.
  double const kv_bytes = 2.0 * static_cast<double>(dcfg.n_layers * dcfg.kv_dim()) *
                          (static_cast<double>(context) - static_cast<double>(generated) / 2.0) * sizeof(bf16);
  double const roof = dram * 1e9 / w_bytes, roof_kv = dram * 1e9 / (w_bytes + kv_bytes);
  double const best_tps = *std::max_element(dec_tps.begin(), dec_tps.end());
  std::printf("  generate (%d run%s%s, %ld tokens each): preprocess %.1f ms, vision (tower + projector) %.1f ms, prefill "
              "%.1f ms -> time to first token %.1f ms (min; median %.1f ms)\n",
              c.generate_reps, c.generate_reps == 1 ? "" : "s", c.warm_up ? " after a warm-up run" : "",
              static_cast<long>(generated), min_of(pre) * 1e3, min_of(vis) * 1e3, min_of(pref) * 1e3, min_of(ttft) * 1e3,
              median(ttft) * 1e3);
  std::printf("  decode: %.1f tokens/s (best run; median %.1f); DRAM %.1f / %.1f GB/s before / after: roofline %.1f "
              "tokens/s (%.2f GB of weights per step) -> %.0f%% (%.0f%% with the KV reads)\n",
              best_tps, median(dec_tps), dram_before, dram_after, roof, w_bytes * 1e-9, 100.0 * best_tps / roof,
              100.0 * best_tps / roof_kv);
  j["generate"] = {{"runs", c.generate_reps},
                   {"warm_up_run", c.warm_up},
                   {"new_tokens", generated},
                   {"decode_tokens", decode_tokens},
                   {"context_at_end", context},
                   {"preprocess_ms", {{"min", min_of(pre) * 1e3}, {"median", median(pre) * 1e3}}},
                   {"vision_ms", {{"min", min_of(vis) * 1e3}, {"median", median(vis) * 1e3}}},
                   {"prefill_ms", {{"min", min_of(pref) * 1e3}, {"median", median(pref) * 1e3}}},
                   {"ttft_ms", {{"min", min_of(ttft) * 1e3}, {"median", median(ttft) * 1e3}}},
                   {"decode_ms", {{"min", min_of(dec) * 1e3}, {"median", median(dec) * 1e3}}},
                   {"wall_ms", {{"min", min_of(wall) * 1e3}, {"median", median(wall) * 1e3}}},
                   {"prefill_tokens_per_s", static_cast<double>(prepared.ids[0].size()) / min_of(pref)},
                   {"decode_tokens_per_s", best_tps},
                   {"median_decode_tokens_per_s", median(dec_tps)},
                   {"weight_bytes_per_step", w_bytes},
                   {"kv_bytes_per_step", kv_bytes},
                   {"dram_read_gbps_before", dram_before},
                   {"dram_read_gbps_after", dram_after},
                   {"roofline_weights_tokens_per_s", roof},
                   {"roofline_weights_kv_tokens_per_s", roof_kv},
                   {"fraction_of_roofline_weights", best_tps / roof},
                   {"fraction_of_roofline_weights_kv", best_tps / roof_kv}};
  j["generate"]["scratch_capacity_bytes_after"] = m.ctx().scratch().capacity();
  j["generate"]["minor_page_faults_last_run"] = gen_faults;
  j["load_average_1min_after"] = bench::load_average();
  std::printf("\n");
  return {j, prepared.grids, t_tower.min_s};
}

// ---- where the tower's time goes ----------------------------------------------------------------

/// One block's kernels at a case's token count, alone: the four linear layers (nn::linear, and on
/// AVX512-BF16 machines also the vdpbf16ps GEMM kernel nn::linear does not pick), the
/// block-diagonal attention, the norms, RoPE, QuickGELU and residual adds; what the block takes in
/// the tower beyond their sum is reported as not accounted for.
nlohmann::json bench_breakdown(model_t& m, std::vector<patch_grid> const& grids, double tower_min_s, roofs const& r,
                               options const& o) {
  model::qwen2_vl_vision_config const& v = m.config().vision;
  vision::vit_block_weights<bf16> const& b = m.encoder().weights().blocks.front();
  std::vector<index_t> lens;
  for (patch_grid const& g : grids) lens.push_back(g.n_patches());
  seq_offsets const seqs = seq_offsets::from_lengths(std::span<index_t const>(lens));
  index_t const n = seqs.n_tokens(), d = v.embed_dim, ff = v.mlp_dim, H = v.num_heads, hd = v.head_dim;
  host_buffer<float> const x = test::random_buffer<float>(n * ff, 5, 1.0f);  // [n_tokens, up to d_ff] inputs
  host_buffer<float> qkv(n * 3 * d), att(n * d), y(n * ff);
  exec_ctx<backend::cpu>& ctx = m.ctx();
  tower_flops const fl = count_tower_flops(v, grids);
  double const block_s = (tower_min_s - fl.patch_embed / fl.total * tower_min_s) / static_cast<double>(v.depth);
  int const reps = o.quick ? 2 : 3;
  double const min_time = o.quick ? 0.0 : 0.2;
  nlohmann::json rows = nlohmann::json::array();
  double accounted = 0;
  std::printf("breakdown: one block's kernels alone at %ld tokens (%zu images); the block takes %.1f ms in the tower "
              "(its share of the min)\n",
              static_cast<long>(n), grids.size(), block_s * 1e3);
  std::printf("  %-40s %9s %9s %7s %8s\n", "kernel", "min ms", "GFLOP/s", "%FMA", "%block");
  auto const row = [&](std::string const& what, double flops, std::function<void()> const& f, bool counts) {
    auto const t = bench::time_it([&](int) { f(); }, reps, min_time);
    double const g = flops / t.min_s * 1e-9;
    if (counts) accounted += t.min_s;
    std::string const rate = flops > 0 ? std::to_string(std::lround(g)) : "-";
    std::string const frac = flops > 0 ? std::to_string(std::lround(100.0 * g / r.fma)) + "%" : "-";
    std::string const share = counts ? std::to_string(std::lround(100.0 * t.min_s / block_s)) + "%" : "-";
    std::printf("  %-40s %9.2f %9s %7s %8s\n", what.c_str(), t.min_s * 1e3, rate.c_str(), frac.c_str(), share.c_str());
    nlohmann::json rj = timing_json(t);
    rj["kernel"] = what;
    rj["flops"] = flops;
    rj["gflops"] = g;
    rj["fraction_of_fma_peak"] = g / r.fma;
    rj["fraction_of_block"] = counts ? t.min_s / block_s : 0.0;
    rj["in_block"] = counts;
    rows.push_back(rj);
  };
  struct lin {
    char const* name;
    nn::linear_weights<bf16> const& w;
    index_t k, n_out;
    float* out;
  };
  std::vector<lin> const lins{{"qkv", *b.qkv, d, 3 * d, qkv.data()},
                              {"proj", b.proj, d, d, y.data()},
                              {"fc1", b.fc1, d, ff, y.data()},
                              {"fc2", b.fc2, ff, d, y.data()}};
  for (lin const& l : lins) {
    double const flops = 2.0 * static_cast<double>(n * l.k * l.n_out);
    tensor_view<float const, 2> const xin(x.data(), {n, l.k});  // [n_tokens, d_in]
    tensor_view<float, 2> const yout(l.out, {n, l.n_out});      // [n_tokens, d_out]
    row(std::string("linear ") + l.name + " " + std::to_string(l.k) + " -> " + std::to_string(l.n_out), flops,
        [&] { nn::linear<backend::cpu>(xin, l.w, yout, ctx); }, true);
#if TESSERA_HAVE_AVX512_BF16_DOT
    // Both bf16 kernels by name; nn::linear above runs the one bf16_dot_preferred() picks here.
    backend::cpu_detail::gemm_args<bf16, bf16> const g{n, l.n_out, l.k, x.data(), l.k, l.w.weight.data(), l.k,
                                                       l.w.bias->data(), l.out, l.n_out};
    bool const dot_picked = backend::cpu_detail::bf16_dot_preferred();
    for (auto const kernel : {backend::cpu_detail::bf16_gemm_kernel::fma, backend::cpu_detail::bf16_gemm_kernel::dot}) {
      bool const dot = kernel == backend::cpu_detail::bf16_gemm_kernel::dot;
      row(std::string(dot ? "  same, vdpbf16ps kernel" : "  same, FMA kernel") + (dot == dot_picked ? " (picked)" : ""),
          flops, [&] { backend::cpu_detail::gemm<backend::cpu::arch>(g, true, ctx, kernel); }, false);
    }
#endif
  }
  std::array<index_t, 3> const strides{3 * d, hd, 1};
  tensor_view<float const, 3> const q(qkv.data(), {n, H, hd}, strides);        // [n_tokens, n_heads, head_dim]
  tensor_view<float const, 3> const k(qkv.data() + d, {n, H, hd}, strides);    // [n_tokens, n_heads, head_dim]
  tensor_view<float const, 3> const vv(qkv.data() + 2 * d, {n, H, hd}, strides);  // [n_tokens, n_heads, head_dim]
  tensor_view<float, 3> const ao(att.data(), {n, H, hd});                       // [n_tokens, n_heads, head_dim]
  row("attention (per image, f32)", fl.attention_per_block,
      [&] { attn::masked_attention<backend::cpu>(q, k, vv, seqs, ao, ctx, {false, 0.0f}); }, true);
  // The elementwise parts (FLOPs not counted): norm1 and norm2, RoPE on q and k, QuickGELU on the
  // MLP's hidden layer, the two residual adds.
  pack::pack_plan const plan = model::qwen2vl_plan(grids, v);
  tensor_view<float, 2> const xs(att.data(), {n, d});  // [n_tokens, embed_dim]
  tensor_view<float, 2> const hs(y.data(), {n, d});    // [n_tokens, embed_dim]
  tensor_view<float, 2> const hid(y.data(), {n, ff});  // [n_tokens, mlp_dim]
  float const eps = static_cast<float>(model::qwen2_vl_vision_config::norm_eps);
  row("layer norm x 2", 0.0, [&] {
    nn::layer_norm<backend::cpu>(tensor_view<float const, 2>(xs), b.norm1, eps, hs, ctx);
    nn::layer_norm<backend::cpu>(tensor_view<float const, 2>(xs), b.norm2, eps, hs, ctx);
  }, true);
  tensor_view<float, 3> const qm(qkv.data(), {n, H, hd}, strides);      // [n_tokens, n_heads, head_dim]
  tensor_view<float, 3> const km(qkv.data() + d, {n, H, hd}, strides);  // [n_tokens, n_heads, head_dim]
  float const theta = static_cast<float>(model::qwen2_vl_vision_config::rope_theta);
  row("RoPE 2-D on q and k", 0.0, [&] {
    posemb::rope_2d<backend::cpu>(qm, plan.coords(), theta, ctx);
    posemb::rope_2d<backend::cpu>(km, plan.coords(), theta, ctx);
  }, true);
  row("QuickGELU", 0.0, [&] { nn::activate<backend::cpu>(v.activation, tensor_view<float const, 2>(hid), hid, ctx); },
      true);
  row("residual add x 2", 0.0, [&] {
    nn::add<backend::cpu>(tensor_view<float const, 2>(xs), tensor_view<float const, 2>(hs), xs, ctx);
    nn::add<backend::cpu>(tensor_view<float const, 2>(xs), tensor_view<float const, 2>(hs), xs, ctx);
  }, true);
  double const rest = block_s - accounted;
  std::printf("  %-40s %9.2f %9s %7s %7.0f%%\n\n", "not accounted for (in the tower only)", rest * 1e3, "-", "-",
              100.0 * rest / block_s);
  return {{"tokens", n}, {"images", grids.size()}, {"block_ms_in_tower", block_s * 1e3}, {"kernels", rows},
          {"unaccounted_ms", rest * 1e3}, {"unaccounted_fraction_of_block", rest / block_s},
          {"unaccounted_means", "the block's share of the tower's time minus its kernels timed alone here"}};
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--threads" && i + 1 < argc) o.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) o.json_path = argv[++i];
    else if (a == "--filter" && i + 1 < argc) o.filter = argv[++i];
    else if (a == "--reps" && i + 1 < argc) o.reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--big-reps" && i + 1 < argc) o.big_reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--dump-pixels" && i + 1 < argc) o.dump_dir = argv[++i];
    else if (a == "--tokenizer" && i + 1 < argc) o.tokenizer_dir = argv[++i];
    else if ((a == "--weights" || a == "--lm-head") && i + 1 < argc) {
      std::string const w = argv[++i];
      auto const f = bench::parse_weights(w);
      if (!f) {
        std::fprintf(stderr, "bench_points: %s takes bf16, q8 or q4; got '%s'\n", a.c_str(), w.c_str());
        return 2;
      }
      (a == "--weights" ? o.quantize.format : o.quantize.lm_head) = *f;
    } else {
      std::fprintf(stderr, "usage: bench_points [--quick] [--threads N] [--json PATH] [--filter TEXT] [--reps N] "
                           "[--big-reps N] [--dump-pixels DIR] [--tokenizer DIR] [--weights bf16|q8|q4] "
                           "[--lm-head q8|q4]\n");
      return 2;
    }
  }
  if (o.quick) {  // the smoke test: one run of each, a short answer
    o.new_tokens = 8;
    o.reps = o.big_reps = 1;
  }
  std::size_t const llc = bench::llc_bytes();
  std::string const cpu = cpu_model();
  double const load_start = bench::load_average();
  std::printf("bench_points: %s, %d threads, SIMD arch %s (%s, %zu-bit vectors), bf16 dot %s, load average %.2f%s\n",
              cpu.c_str(), o.threads, TESSERA_SIMD_ARCH_NAME, xsimd::default_arch::name(), xsimd::batch<float>::size * 32,
              TESSERA_HAVE_AVX512_BF16_DOT ? "yes" : "no", load_start,
              o.quick ? ", quick mode (smoke test: timings are not measurements)" : "");
  roofs r;
  long const iters = o.quick ? 2'000'000 : 20'000'000;
  r.fma = bench::probe_fma_gflops(o.threads, iters);
  r.dot = bench::probe_bf16_dot_gflops(o.threads, iters);
  std::size_t const probe_bytes = o.quick ? (std::size_t{64} << 20) : std::max<std::size_t>(std::size_t{1} << 30, 2 * llc);
  r.dram = bench::probe_dram_gbps(o.threads, probe_bytes);
  // Each probe takes half a second or more: the smoke test reuses the first one.
  r.probe_dram = [&] { return o.quick ? r.dram : bench::probe_dram_gbps(o.threads, probe_bytes); };
  std::printf("roofs (same run): f32 FMA peak %.1f GFLOP/s, bf16 dot peak %.1f GFLOP/s, DRAM read %.1f GB/s (probed "
              "again around each case's decode runs)\n",
              r.fma, r.dot, r.dram);

  // The model: random bf16 weights at the real shapes, the tiny test tokenizer (every POINTS1.5
  // special token, ids below the decoder's vocabulary).
  auto const t0 = bench::clock_type::now();
  lm::decoder_config const dcfg = decoder_config(o.quick);
  test::random_decoder<bf16> const rd = test::make_random_decoder<bf16>(dcfg, 2024, 0.02f);
  weight_maker wm(20250101);
  model_parts const parts = make_parts(o.quick, wm, rd);
  model::patch_merger_config const cfg7 = projector_config(parts.config.vision, d_model_7b(o.quick));
  model::patch_merger_weights<bf16> const w7 = make_projector_weights(cfg7, wm);
  double const build_s = std::chrono::duration<double>(bench::clock_type::now() - t0).count();
  model::points15_load_options lo;
  lo.threads = o.threads;
  lo.decoder.quantize = o.quantize;
  model_t m(parts.config, model::qwen2vl_preprocessor_config{}, text::tokenizer::from_dir(o.tokenizer_dir), parts.weights,
            parts.keep_alive, lo);
  model::qwen2_vl_vision_config const& v = m.config().vision;
  std::size_t vision_bytes = 0;
  for (auto const& buf : wm.storage->buffers) vision_bytes += static_cast<std::size_t>(buf.size()) * sizeof(bf16);
  std::printf("model (built in %.1f s): vision %ld blocks of %ld (%ld heads of %ld, MLP %ld, %s), patch %ld x %ld x %ld, "
              "merge %ld; projector %ld -> %ld -> %ld (7B shape: -> %ld); decoder d_model %ld, %ld layers, %ld / %ld "
              "heads, d_ff %ld, vocab %ld (linear layers %s, LM head %s: %.2f GB of weights per decode step); vision tower + "
              "both projectors %.2f GB; "
              "tokenizer %s\n\n",
              build_s, static_cast<long>(v.depth), static_cast<long>(v.embed_dim), static_cast<long>(v.num_heads),
              static_cast<long>(v.head_dim), static_cast<long>(v.mlp_dim), v.hidden_act.c_str(),
              static_cast<long>(v.temporal_patch_size), static_cast<long>(v.patch_size), static_cast<long>(v.patch_size),
              static_cast<long>(v.spatial_merge_size), static_cast<long>(m.projector().context_dim),
              static_cast<long>(m.projector().hidden_dim), static_cast<long>(m.projector().out_dim),
              static_cast<long>(cfg7.out_dim), static_cast<long>(dcfg.d_model), static_cast<long>(dcfg.n_layers),
              static_cast<long>(dcfg.n_heads), static_cast<long>(dcfg.n_kv_heads), static_cast<long>(dcfg.d_ff),
              static_cast<long>(dcfg.vocab_size), bench::weights_name(o.quantize.format).c_str(),
              bench::weights_name(o.quantize.lm_head).c_str(), static_cast<double>(m.decoder().decode_weight_bytes()) * 1e-9,
              static_cast<double>(vision_bytes) * 1e-9, o.tokenizer_dir.c_str());

  nlohmann::json j;
  j["benchmark"] = "model::points15 end to end, random bf16 weights at the POINTS1.5 shapes: preprocessing, vision "
                   "tower, projectors, time to first token, decode";
  j["machine"] = {{"cpu", cpu},
                  {"threads", o.threads},
                  {"simd_arch", TESSERA_SIMD_ARCH_NAME},
                  {"xsimd_arch", xsimd::default_arch::name()},
                  {"vector_bits", xsimd::batch<float>::size * 32},
                  {"bf16_dot", TESSERA_HAVE_AVX512_BF16_DOT == 1},
                  {"llc_bytes", llc},
                  {"load_average_1min_start", load_start},
                  {"quick", o.quick}};
  j["roofs"] = {{"fma_peak_gflops", r.fma}, {"bf16_dot_peak_gflops", r.dot}, {"dram_read_gbps", r.dram}};
  j["model"] = {
      {"weights", "bf16, random (counter-based hash; linear weights std 0.02, as HF's init), built in memory"},
      {"llm_linear_layers", bench::weights_name(o.quantize.format)},
      {"llm_lm_head", bench::weights_name(o.quantize.lm_head)},
      {"vision",
       {{"embed_dim", v.embed_dim}, {"depth", v.depth}, {"num_heads", v.num_heads}, {"head_dim", v.head_dim},
        {"mlp_dim", v.mlp_dim}, {"mlp_ratio", v.mlp_ratio}, {"hidden_act", v.hidden_act}, {"patch_size", v.patch_size},
        {"temporal_patch_size", v.temporal_patch_size}, {"spatial_merge_size", v.spatial_merge_size},
        {"patch_dim", v.patch_dim}}},
      {"projector", {{"context_dim", m.projector().context_dim}, {"hidden_dim", m.projector().hidden_dim},
                     {"out_dim", m.projector().out_dim}, {"out_dim_7B_shape", cfg7.out_dim}}},
      {"decoder", {{"shape", o.quick ? "tiny" : "Qwen2.5-0.5B"}, {"d_model", dcfg.d_model}, {"n_layers", dcfg.n_layers},
                   {"n_heads", dcfg.n_heads}, {"n_kv_heads", dcfg.n_kv_heads}, {"d_ff", dcfg.d_ff},
                   {"vocab", dcfg.vocab_size}, {"tied", dcfg.tie_word_embeddings}, {"rope_theta", dcfg.rope_theta},
                   {"rms_norm_eps", dcfg.norm_eps}, {"qkv_bias", dcfg.qkv_bias},
                   {"weight_bytes_per_decode_step", m.decoder().decode_weight_bytes()}, {"kv_cache", "bf16"}}},
      {"preprocessor", {{"min_pixels", m.preprocessor().limits.min_pixels},
                        {"max_pixels", m.preprocessor().limits.max_pixels}}},
      {"tokenizer", "tests/golden/points15/custom_llama_bf16 (the tiny test tokenizer: every POINTS1.5 special token)"},
      {"question", "Please describe the image in detail."},
      {"answer", "greedy, exactly " + std::to_string(o.new_tokens) + " new tokens (no stop token)"},
      {"synthetic_image", "p[y, x, c] = (7 x + 13 y + 61 c + ((x y) >> 4) % 64 + ((x ^ y) & 15) * 3 + 97 k) % 256, "
                          "k = the image's index in its request"}};
  j["build_seconds"] = build_s;
  j["runs"] = {{"small_case", "a warm-up run, then --reps (" + std::to_string(o.reps) +
                                  ") timed runs of the tower and of generate(); min and median"},
               {"large_case", "--big-reps (" + std::to_string(o.big_reps) +
                                  ") timed runs of the tower and of generate(), without a warm-up run of their own: "
                                  "the small case before warmed up the code, the threads and the weights, and one "
                                  "run of the large case's tower takes about 30 s on 2 cores"},
               {"other", "preprocess: at least 5 runs and 0.3 s; projectors: at least 3 runs and 0.5 s"}};

  j["check"] = check_vs_reference(parts, o);
  bool ok = j["check"]["ok"].get<bool>();

  std::vector<patch_grid> last_grids;
  double last_tower_s = 0;
  j["cases"] = nlohmann::json::array();
  for (case_spec const& c : case_specs(o)) {
    if (!o.filter.empty() && c.name.find(o.filter) == std::string::npos) continue;
    case_result cr = bench_case(m, c, cfg7, w7, r, o);
    j["cases"].push_back(std::move(cr.j));
    last_grids = std::move(cr.grids);
    last_tower_s = cr.tower_min_s;
  }
  if (!last_grids.empty())  // the kernels of one block at the last case's size
    j["breakdown"] = bench_breakdown(m, last_grids, last_tower_s, r, o);

  // The targets that this side decides (the ratio against PyTorch is in the script's report).
  if (!o.quick && !j["cases"].empty()) {
    nlohmann::json targets = nlohmann::json::array();
    std::printf("targets:\n");
    for (auto const& c : j["cases"]) {
      double const value = c["vision_tower"]["fraction_of_fma_peak"];
      std::string const what = c["name"].get<std::string>() + " vision tower GFLOP/s / FMA peak";
      bool const met = value >= 0.70;
      std::printf("  %-62s %8.3f  (goal >= 0.7)  %s\n", what.c_str(), value, met ? "met" : "MISSED");
      targets.push_back({{"target", what}, {"value", value}, {"goal", 0.70}, {"met", met}});
    }
    j["targets"] = targets;
  }
  j["load_average_1min_end"] = bench::load_average();
  std::ofstream(o.json_path) << j.dump(2) << "\n";
  std::printf("JSON written to %s\n", o.json_path.c_str());
  return ok ? 0 : 1;
}
