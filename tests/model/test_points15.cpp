// SPDX-License-Identifier: Apache-2.0
// model::points15 end to end against the original POINTS1.5 PyTorch code (tools/golden/
// make_points15_goldens.py; versions, sources and sha256 of the reference files in
// tests/golden/points15/manifest.json). A tiny random POINTS1.5 saved as real checkpoint
// directories: CustomLlama names in f32 (sharded) and bf16, the 2025 Qwen2 names in f32. Two real
// images of different sizes and aspect ratios (../shared/data/images; skipped when absent), three
// requests (one image, two images, a multi-turn conversation with an image in two user turns).
// Pinned: each image's pixel_values (row hashes and samples); per checkpoint and request the
// prompt ids, image_grid_thw, the vision tower's output,
// the projector's rows, the spliced input embeddings, the logits of every prompt position, and
// the greedy answer (ids identical), alone and batched.
// Budgets: f32 by NMSE <= tol<float>::model_nmse (1e-8; measured 3.5e-13 - 7.5e-13). bf16 weights
// run with bf16 products (PyTorch's bf16 model semantics, without its rounding of every
// activation to bf16) against PyTorch's bf16 run: NMSE <= tol<bf16>::model_nmse (1e-4; measured
// 2.0e-5 vision, 3.9e-5 projector, 5.9e-5 logits at most); the answer ids are identical (every
// step's top-1 / top-2 margin in the reference is >= 0.031, manifest answers.*.min_margin).
// The same file holds the model's unit tests (bad checkpoints, bad requests, the MLP projector
// policy, preprocessor_config.json): one instantiation of the model serves both.
#include "common/compare.hpp"
#include "common/golden.hpp"
#include "common/temp_dir.hpp"
#include "golden/image_test_support.hpp"

#include <tessera/backend/backend.hpp>
#include <tessera/core/random.hpp>
#include <tessera/model/points15/conversation.hpp>
#include <tessera/model/points15/model.hpp>
#include <tessera/nn/gather.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace tessera;
namespace fs = std::filesystem;
using test::require_nmse;
using test::tol;

fs::path points_dir() { return test::golden_path("points15"); }

nlohmann::json const& points15_manifest() {
  static nlohmann::json const m = [] {
    std::ifstream f(points_dir() / "manifest.json");
    return nlohmann::json::parse(f);
  }();
  return m;
}

/// How an image item is handed over (every form must give the same answer).
enum class image_form { file, bytes, pixels };

model::content_item image_item(std::string const& key, image_form form) {
  fs::path const file = test::shared_images_dir() / fs::path(points15_manifest()["images"][key]["file"].get<std::string>()).filename();
  switch (form) {
    case image_form::file: return model::content_item::image_file(file);
    case image_form::bytes: return model::content_item::image_bytes(test::read_bytes(file));
    case image_form::pixels: return model::content_item::image_pixels(io::load_image(file));
  }
  return {};
}

/// The manifest's request `name` as a points15_request.
model::points15_request request_of(std::string const& name, image_form form = image_form::file) {
  model::points15_request r;
  for (nlohmann::json const& m : points15_manifest()["requests"][name]["messages"]) {
    model::chat_turn t{m["role"].get<std::string>(), {}};
    for (nlohmann::json const& c : m["content"]) {
      if (c["type"] == "image") t.content.push_back(image_item(c["image"].get<std::string>(), form));
      else t.content.push_back(model::content_item::make_text(c["text"].get<std::string>()));
    }
    r.messages.push_back(std::move(t));
  }
  return r;
}

std::vector<std::string> request_names() { return {"one_image", "two_images", "multi_turn"}; }

bool have_images() {
  if (fs::is_directory(test::shared_images_dir())) return true;
  return false;
}
#define REQUIRE_SHARED_IMAGES()                                                                                      \
  if (!have_images())                                                                                                \
  SKIP(test::shared_images_dir().string() << " is absent: the POINTS1.5 goldens need the real images of ../shared/data")

/// The logits of every prompt position of the spliced prompt, and the spliced embeddings.
template <class T>
void prompt_forward(model::points15<backend::cpu, T>& m, lm::prompt const& p, std::vector<float>& embeds,
                    std::vector<float>& logits) {
  auto const& dec = m.decoder();
  index_t const n = p.size(), d = dec.d_model(), vocab = dec.vocab_size();
  embeds.assign(static_cast<std::size_t>(n * d), 0.0f);
  tensor_view<float, 2> const x(embeds.data(), {n, d});
  dec.embed(p.ids, x, m.ctx());
  nn::scatter_rows<backend::cpu>(p.rows, std::span<index_t const>(p.row_positions), x, m.ctx());
  std::vector<float> hidden = embeds;
  auto cache = dec.make_cache(1, n);
  std::vector<index_t> const slot{0};
  dec.forward(tensor_view<float, 2>(hidden.data(), {n, d}), seq_offsets::single(n), slot, cache, m.ctx());
  logits.assign(static_cast<std::size_t>(n * vocab), 0.0f);
  dec.lm_head(tensor_view<float const, 2>(hidden.data(), {n, d}), tensor_view<float, 2>(logits.data(), {n, vocab}),
              m.ctx());
}

std::vector<text::token_id> ids_of(std::vector<std::int32_t> const& v) { return {v.begin(), v.end()}; }

/// Every step of every request of one checkpoint, alone; then all three requests batched.
template <class T>
void check_variant(std::string const& variant, double budget) {
  INFO("checkpoint " << variant);
  auto m = model::points15<backend::cpu, T>::load(points_dir() / variant);
  test::golden_file const out(variant == "custom_llama_f32" ? "points15/outputs.safetensors"
                                                            : ("points15/outputs_" + variant + ".safetensors").c_str());
  test::golden_file const shared("points15/outputs.safetensors");
  model::points15_options opt;
  opt.generation.max_new_tokens = points15_manifest()["settings"]["generation"]["max_new_tokens"].get<index_t>();
  std::vector<model::points15_request> batch;
  std::vector<std::vector<text::token_id>> answers;
  for (std::string const& name : request_names()) {
    INFO("request " << name);
    model::points15_request const req = request_of(name);
    std::string const key = variant + "." + name;
    model::points15_prepared const prep = m.prepare(std::span(&req, 1));
    REQUIRE(prep.ids.size() == 1);
    CHECK(prep.ids[0] == ids_of(shared.get<std::int32_t>(name + ".input_ids")));
    std::vector<std::int32_t> grids;
    for (patch_grid const& g : prep.grids)
      grids.insert(grids.end(), {static_cast<std::int32_t>(g.t), static_cast<std::int32_t>(g.h), static_cast<std::int32_t>(g.w)});
    CHECK(grids == shared.get<std::int32_t>(name + ".image_grid_thw"));

    model::points15_encoded const enc = m.encode(prep);
    require_nmse(key + ".vision_out", enc.vision.span(), out.get<float>(key + ".vision_out"), budget);
    require_nmse(key + ".projector_out", enc.rows.span(), out.get<float>(key + ".projector_out"), budget);
    std::vector<lm::prompt> const ps = m.prompts(prep, enc);
    std::vector<float> embeds, logits;
    prompt_forward(m, ps.front(), embeds, logits);
    require_nmse(key + ".input_embeds", embeds, out.get<float>(key + ".input_embeds"), budget);
    require_nmse(key + ".logits", logits, out.get<float>(key + ".logits"), budget);

    model::points15_result const r = m.generate(req, opt);
    auto const want = ids_of(out.get<std::int32_t>(key + ".answer_ids"));
    CHECK(r.ids == want);
    bool const stopped = points15_manifest()["requests"][name]["answers"][variant]["stopped_on_im_end"].get<bool>();
    CHECK(r.reason == (stopped ? lm::finish_reason::stop_token : lm::finish_reason::length));
    CHECK(r.prompt_tokens == static_cast<index_t>(prep.ids[0].size()));
    CHECK(r.text == m.tokenizer().decode(r.ids, true));
    batch.push_back(request_of(name, name == "two_images" ? image_form::bytes : image_form::pixels));
    answers.push_back(want);
  }
  // Batched: one vision pack of all five images, the three prompts packed into one prefill,
  // batched decode steps; multi_turn stops (on <|im_end|>) before the others.
  std::vector<std::string> streamed(batch.size());
  auto const results = m.generate(std::span<model::points15_request const>(batch), opt,
                                  [&](index_t i, std::string_view t) {
                                    streamed[static_cast<std::size_t>(i)] += t;
                                    return true;
                                  });
  REQUIRE(results.size() == batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    INFO("batched request " << request_names()[i]);
    CHECK(results[i].ids == answers[i]);
    CHECK(results[i].text == streamed[i]);
  }

  // A conversation that keeps its cache and image rows: multi_turn told turn by turn (the
  // assistant turn scripted) gives the golden answer ...
  {
    model::points15_request const mt = request_of("multi_turn");
    model::points15_conversation<backend::cpu, T> conv(m);
    conv.add(mt.messages[0]);
    conv.add(mt.messages[1]);
    model::points15_result const r = conv.ask(mt.messages[2], opt);
    CHECK(r.ids == answers[2]);
    CHECK(r.reused_tokens == 0);
    CHECK(conv.request().messages.size() == 4);
    CHECK(conv.request().messages.back().content[0].text == r.text);
  }
  // ... and a conversation whose first answer is generated: turn 1 is one_image (its golden
  // answer), turn 2 reuses the cached positions and equals a fresh run over the whole
  // conversation (which re-encodes both images and prefills everything).
  {
    model::points15_conversation<backend::cpu, T> conv(m);
    model::points15_request const one = request_of("one_image");
    model::points15_result const r1 = conv.ask(one.messages[0], opt);
    CHECK(r1.ids == answers[0]);
    CHECK(conv.cached_tokens() == r1.prompt_tokens + static_cast<index_t>(r1.ids.size()) - 1);
    model::points15_request const mt = request_of("multi_turn", image_form::bytes);
    model::points15_result const r2 = conv.ask(mt.messages[2], opt);
    model::points15_request fresh = conv.request();
    fresh.messages.pop_back();  // the answer just given
    model::points15_result const want = m.generate(fresh, opt);
    CHECK(r2.ids == want.ids);
    CHECK(r2.prompt_tokens == want.prompt_tokens);
    CHECK(r2.reused_tokens > r1.prompt_tokens);  // the first prompt and (most of) its answer
    CHECK(r2.images.size() == 2);
  }
}

}  // namespace

TEST_CASE("golden: POINTS1.5 pixel_values of the two real images equal the reference processor's", "[golden][model][points15]") {
  REQUIRE_SHARED_IMAGES();
  // Qwen2ImageProcessorForPOINTSV15 with the checkpoint's preprocessor_config.json (max_pixels
  // 37632): every row's FNV-1a 64 and 4096 sampled values, exactly.
  auto m = model::points15<backend::cpu, bf16>::load(points_dir() / "custom_llama_bf16");
  test::golden_file const images("points15/images.safetensors");
  for (std::string const key : {"A", "B"}) {
    INFO("image " << key);
    auto const [px, info] = m.prepare_image(image_item(key, image_form::file));
    std::vector<std::int32_t> const grid{static_cast<std::int32_t>(px.grid.t), static_cast<std::int32_t>(px.grid.h),
                                         static_cast<std::int32_t>(px.grid.w)};
    CHECK(grid == images.get<std::int32_t>(key + ".image_grid_thw"));
    CHECK(info.llm_tokens == points15_manifest()["images"][key]["n_llm_tokens"].get<index_t>());
    std::vector<std::int64_t> hashes;
    for (index_t r = 0; r < px.n_patches(); ++r)
      hashes.push_back(static_cast<std::int64_t>(test::fnv1a64(px.rows().row(r), static_cast<std::size_t>(px.n_features) * sizeof(float))));
    CHECK(hashes == images.get<std::int64_t>(key + ".pixel_values_row_fnv1a64"));
    auto const idx = images.get<std::int32_t>(key + ".sample_index");
    auto const val = images.get<float>(key + ".sample_value");
    std::size_t same = 0;
    for (std::size_t i = 0; i < idx.size(); ++i) same += px.pixel_values.data()[idx[i]] == val[i];
    CHECK(same == idx.size());
  }
}

TEST_CASE("golden: POINTS1.5 end to end, CustomLlama f32 checkpoint (sharded)", "[golden][model][points15]") {
  REQUIRE_SHARED_IMAGES();
  check_variant<float>("custom_llama_f32", tol<float>::model_nmse);
}

TEST_CASE("golden: POINTS1.5 end to end, Qwen2 (2025) f32 checkpoint", "[golden][model][points15]") {
  REQUIRE_SHARED_IMAGES();
  check_variant<float>("qwen2_f32", tol<float>::model_nmse);
}

TEST_CASE("golden: POINTS1.5 end to end, CustomLlama bf16 checkpoint with bf16 weights", "[golden][model][points15]") {
  REQUIRE_SHARED_IMAGES();
  check_variant<bf16>("custom_llama_bf16", tol<bf16>::model_nmse);
}

TEST_CASE("golden: POINTS1.5 with 8-bit and 4-bit LLM linear layers stays close to PyTorch's f32 logits",
          "[golden][model][points15][quant]") {
  // The f32 checkpoints with the LLM's linear layers quantized on load (the vision tower and the
  // projector as stored): NMSE of each request's prompt logits against the f32 PyTorch model's.
  // The LLM is 2 layers x 64 with random weights. Measured: q8 5.4e-5 - 6.6e-5, q4 0.014 - 0.019;
  // budgets 1e-4 and 0.1.
  REQUIRE_SHARED_IMAGES();
  for (auto const& [format, budget] : {std::pair{quant::weight_format::q8, 1e-4}, std::pair{quant::weight_format::q4, 0.1}})
    for (std::string const variant : {"custom_llama_f32", "qwen2_f32"}) {
      INFO(variant << " " << quant::name_of(format));
      model::points15_load_options lo;
      lo.decoder.quantize.format = format;
      auto m = model::points15<backend::cpu, float>::load(points_dir() / variant, lo);
      REQUIRE(m.decoder().weights().layers.front().q.quantized.format == format);
      test::golden_file const out(variant == "custom_llama_f32" ? "points15/outputs.safetensors"
                                                                : ("points15/outputs_" + variant + ".safetensors").c_str());
      for (std::string const& name : request_names()) {
        model::points15_request const req = request_of(name);
        model::points15_prepared const prep = m.prepare(std::span(&req, 1));
        model::points15_encoded const enc = m.encode(prep);  // the prompts view its rows
        std::vector<lm::prompt> const ps = m.prompts(prep, enc);
        std::vector<float> embeds, logits;
        prompt_forward(m, ps.front(), embeds, logits);
        double const e = test::nmse(logits, out.get<float>(variant + "." + name + ".logits"));
        std::cout << "POINTS1.5 " << variant << " " << quant::name_of(format) << " " << name << ": logits NMSE " << e
                  << "\n";
        CHECK(e <= budget);
        CHECK(e > 0.0);
      }
    }
}

// ------------------------------------------------------------------------------------------------
// Unit tests: what load() and generate() refuse, the MLP projector policy, the prompt format
// ------------------------------------------------------------------------------------------------

namespace {

/// A copy of a golden checkpoint directory in which `edit` may change files.
struct checkpoint_copy {
  test::temp_dir tmp{"points15"};
  fs::path dir;
  explicit checkpoint_copy(std::string const& variant) : dir(tmp.path() / variant) {
    fs::copy(points_dir() / variant, dir, fs::copy_options::recursive);
  }
  nlohmann::json read_json(std::string const& name) const {
    std::ifstream f(dir / name);
    return nlohmann::json::parse(f);
  }
  void write_json(std::string const& name, nlohmann::json const& j) const { test::write_file(dir / name, j.dump(1)); }
};

model::points15_request synthetic_request(index_t h, index_t w, std::string const& question) {
  model::points15_request r;
  r.messages.push_back({"user", {model::content_item::image_pixels(test::synthetic_image(h, w)),
                                 model::content_item::make_text(question)}});
  return r;
}

}  // namespace

TEST_CASE("points15: the prompt of a request is POINTS1.5's construct_prompt + chat template", "[model][points15]") {
  // Spec 5.1, written out by hand: each image is <|vision_start|>, N pads, <|vision_end|>, "\n".
  model::points15_request r;
  r.messages.push_back({"user", {model::content_item::image_file("a.png"), model::content_item::make_text("Q1")}});
  r.messages.push_back({"assistant", {model::content_item::make_text("A1")}});
  r.messages.push_back({"user", {model::content_item::make_text("Q2 "), model::content_item::image_file("b.png")}});
  std::vector<std::size_t> const counts{2, 1};
  CHECK(model::render_points15_prompt(r, counts) ==
        "<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>\nQ1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nQ2 <|vision_start|><|image_pad|><|vision_end|>\n<|im_end|>\n<|im_start|>assistant\n");
  REQUIRE_TESSERA_ERROR((void)model::render_points15_prompt(r, std::vector<std::size_t>{2}), "more images than the 1 token counts given");
  r.messages.pop_back();
  REQUIRE_TESSERA_ERROR((void)model::render_points15_prompt(r, counts), "a request ends with the user turn");
  REQUIRE_TESSERA_ERROR((void)model::render_points15_prompt(model::points15_request{}, counts), "has no messages");
}

TEST_CASE("points15: preprocessor_config.json fields, defaults and refusals", "[model][points15]") {
  auto const p = model::parse_qwen2vl_preprocessor_config(
      R"({"min_pixels": 3136, "max_pixels": 37632, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]})", "pp.json");
  CHECK(p.limits.min_pixels == 3136);
  CHECK(p.limits.max_pixels == 37632);
  CHECK(p.normalization.mean == std::array<double, 3>{0.5, 0.5, 0.5});
  CHECK(p.normalization.stddev == std::array<double, 3>{0.25, 0.5, 1.0});
  CHECK(p.defaulted == std::vector<std::string>{"rescale_factor", "patch_size", "merge_size", "temporal_patch_size"});
  // Newer transformers writes the bounds only in "size".
  auto const s = model::parse_qwen2vl_preprocessor_config(R"({"size": {"shortest_edge": 100, "longest_edge": 2000}})", "s.json");
  CHECK(s.limits.min_pixels == 100);
  CHECK(s.limits.max_pixels == 2000);
  // No file at all: Qwen2VLImageProcessor's defaults, every field listed.
  test::temp_dir const empty("pp");
  auto const d = model::read_qwen2vl_preprocessor_config(empty.path());
  CHECK(d.source.empty());
  CHECK(d.limits.max_pixels == 28 * 28 * 1280);
  CHECK(d.defaulted.size() == 8);
  REQUIRE_TESSERA_ERROR((void)model::parse_qwen2vl_preprocessor_config(R"({"patch_size": 16})", "x.json"),
                        "field 'patch_size': is 16");
  REQUIRE_TESSERA_ERROR((void)model::parse_qwen2vl_preprocessor_config(R"({"image_std": [0.2, 0, 0.2]})", "x.json"),
                        "field 'image_std': element 1 is 0");
  REQUIRE_TESSERA_ERROR((void)model::parse_qwen2vl_preprocessor_config(R"({"min_pixels": 10, "max_pixels": 5})", "x.json"),
                        "must satisfy 0 <= min_pixels <= max_pixels");
  REQUIRE_TESSERA_ERROR((void)model::parse_qwen2vl_preprocessor_config(R"({"do_normalize": false})", "x.json"),
                        "field 'do_normalize': is false");
  REQUIRE_TESSERA_ERROR((void)model::parse_qwen2vl_preprocessor_config(R"({"resample": 2})", "x.json"),
                        "bicubic filter (3) only");
}

TEST_CASE("points15: load reads the whole checkpoint directory and refuses inconsistent ones", "[model][points15]") {
  using model_t = model::points15<backend::cpu, bf16>;
  {
    auto const m = model_t::load(points_dir() / "custom_llama_f32");  // f32 stored, bf16 wanted: converted
    CHECK(m.report().converted_bytes > 0);
    CHECK(m.naming().decoder == model::decoder_naming::points_custom_llama);
    CHECK(m.preprocessor().limits.max_pixels == 37632);
    CHECK(m.tokens().image_pad == 492);
    CHECK(m.tokens().im_end == 482);
    auto const q = model_t::load(points_dir() / "custom_llama_bf16");  // bf16 stored: mapped, nothing converted
    CHECK(q.report().converted_bytes == 0);
  }
  REQUIRE_TESSERA_ERROR((void)model_t::load(points_dir() / "no_such_dir"), "is not a directory");
  REQUIRE_TESSERA_ERROR((void)model_t::load(test::golden_path("decoder_tied")), "POINTS1.5 (POINTSV15ChatModel)");
  model::points15_load_options exact;
  exact.dtypes = io::dtype_policy::exact;
  CHECK_NOTHROW((void)model_t::load(points_dir() / "custom_llama_bf16", exact));
  using f32_model = model::points15<backend::cpu, float>;
  REQUIRE_TESSERA_ERROR((void)f32_model::load(points_dir() / "custom_llama_bf16", exact),
                        "dtype_policy::convert converts it");
  SECTION("a missing tensor") {
    checkpoint_copy c("custom_llama_bf16");
    nlohmann::json j = c.read_json("config.json");
    j["llm_config"]["num_layers"] = 3;
    c.write_json("config.json", j);
    REQUIRE_TESSERA_ERROR((void)model_t::load(c.dir), "missing tensor 'llm.lm.layers.2.");
  }
  SECTION("a vision width that does not match the stored tensors") {
    checkpoint_copy c("custom_llama_bf16");
    nlohmann::json j = c.read_json("config.json");
    j["vision_config"]["embed_dim"] = 48;
    c.write_json("config.json", j);
    REQUIRE_TESSERA_ERROR((void)model_t::load(c.dir), "vision_encoder.patch_embed.proj.weight");
  }
  SECTION("a tokenizer without <|image_pad|>") {
    checkpoint_copy c("custom_llama_bf16");
    nlohmann::json j = c.read_json("tokenizer.json");
    for (auto& t : j["added_tokens"])
      if (t["content"] == "<|image_pad|>") t["content"] = "<|img_pad|>";  // same id, another name
    c.write_json("tokenizer.json", j);
    REQUIRE_TESSERA_ERROR((void)model_t::load(c.dir), "the tokenizer has no <|image_pad|> token");
  }
  SECTION("a preprocessor whose patch size the processor cannot make") {
    checkpoint_copy c("custom_llama_bf16");
    nlohmann::json j = c.read_json("preprocessor_config.json");
    j["merge_size"] = 3;
    c.write_json("preprocessor_config.json", j);
    REQUIRE_TESSERA_ERROR((void)model_t::load(c.dir), "field 'merge_size': is 3");
  }
  SECTION("no preprocessor_config.json: the processor's defaults") {
    checkpoint_copy c("custom_llama_bf16");
    fs::remove(c.dir / "preprocessor_config.json");
    auto const m = model_t::load(c.dir);
    CHECK(m.preprocessor().limits.max_pixels == 28 * 28 * 1280);
    CHECK(m.preprocessor().defaulted.size() == 8);
  }
}

TEST_CASE("points15: bad requests get errors naming the request and the image", "[model][points15]") {
  using model_t = model::points15<backend::cpu, bf16>;
  io::image_limits small;
  small.max_pixels = 300;
  model::points15_load_options lo;
  lo.threads = 1;
  lo.image_limits = small;
  auto m = model_t::load(points_dir() / "custom_llama_bf16", lo);
  test::temp_dir const tmp("points15-req");
  test::write_file(tmp.path() / "notes.png", "this is text, not an image");
  model::points15_options opt;
  opt.generation.max_new_tokens = 2;
  auto ask = [&](model::content_item item) {
    model::points15_request r;
    r.messages.push_back({"user", {model::content_item::make_text("hi "), std::move(item)}});
    return m.generate(r, opt);
  };
  REQUIRE_TESSERA_ERROR((void)ask(model::content_item::image_file(tmp.path() / "missing.jpg")),
                        "request 0, image 0: io::load_image");
  REQUIRE_TESSERA_ERROR((void)ask(model::content_item::image_file(tmp.path() / "notes.png")), "request 0, image 0");
  // 35 x 21 = 735 pixels, over the 300-pixel budget of this model's image_limits.
  REQUIRE_TESSERA_ERROR((void)ask(model::content_item::image_bytes(test::read_bytes(test::golden_path("images") / "jpeg_rgb411.jpg"))),
                        "request 0, image 0: io::decode_image: image in memory");
  REQUIRE_TESSERA_ERROR((void)ask(model::content_item::image_pixels(io::rgb_image{})), "the rgb_image is empty");
  REQUIRE_TESSERA_ERROR((void)ask(model::content_item::make_text("<|image_pad|>")), "its text contains <|image_pad|> itself");
  opt.max_context = 40;
  REQUIRE_TESSERA_ERROR((void)m.generate(synthetic_request(168, 168, "Describe."), opt),
                        "leaves no room to answer in a context of 40 positions");
  model::points15_request last_assistant = synthetic_request(56, 56, "x");
  last_assistant.messages.push_back({"assistant", {model::content_item::make_text("y")}});
  REQUIRE_TESSERA_ERROR((void)m.generate(last_assistant, opt), "a request ends with the user turn");
  REQUIRE_TESSERA_ERROR((void)m.generate(std::span<model::points15_request const>{}, opt), "no requests");
}

namespace {

/// A POINTS1.5 with an MLP projector (one LLM row per ViT token), recombined from the golden
/// checkpoint's ViT and LLM and an MLP of width d_in -> 40 -> 64 with deterministic weights.
struct mlp_variant {
  using model_t = model::points15<backend::cpu, bf16, model::projector::mlp>;
  std::vector<bf16> fc1_w, fc1_b, fc2_w, fc2_b;
  model::points15_weights<bf16, model::projector::mlp> w;
  std::shared_ptr<io::checkpoint const> ckpt;
  model::points15_config cfg;

  explicit mlp_variant(index_t d_in) {
    fs::path const dir = points_dir() / "custom_llama_bf16";
    cfg = model::read_points15_config(dir);
    ckpt = std::make_shared<io::checkpoint const>(dir);
    io::weight_binder b(*ckpt);
    w.decoder = model::bind_decoder<bf16>(b, cfg.decoder);
    w.vision = model::bind_vision_encoder<bf16>(b, cfg.vision);
    index_t const h = 40, d = cfg.decoder.d_model;
    w.projector_config = {d_in, h, d, nn::activation_kind::gelu_erf};
    rng r(1505);
    auto fill = [&](std::vector<bf16>& v, index_t n, float scale) {
      v.resize(static_cast<std::size_t>(n));
      for (bf16& x : v) x = bf16::from_float(static_cast<float>((r.uniform() * 2.0 - 1.0) * scale));
    };
    fill(fc1_w, h * d_in, 0.3f);
    fill(fc1_b, h, 0.1f);
    fill(fc2_w, d * h, 0.3f);
    fill(fc2_b, d, 0.1f);
    w.projector.fc1 = {tensor_view<bf16 const, 2>(fc1_w.data(), {h, d_in}), tensor_view<bf16 const, 1>(fc1_b.data(), {h})};
    w.projector.fc2 = {tensor_view<bf16 const, 2>(fc2_w.data(), {d, h}), tensor_view<bf16 const, 1>(fc2_b.data(), {d})};
  }
  model_t make() {
    fs::path const dir = points_dir() / "custom_llama_bf16";
    return model_t(cfg, model::read_qwen2vl_preprocessor_config(dir), text::tokenizer::from_dir(dir), w, ckpt);
  }
};

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

}  // namespace

TEST_CASE("points15: the MLP projector policy gives one LLM row per ViT token", "[model][points15]") {
  mlp_variant v(32);
  auto m = v.make();
  model::points15_request const req = synthetic_request(56, 84, "What is this?");  // 4 x 6 patches
  model::points15_prepared const prep = m.prepare(std::span(&req, 1));
  REQUIRE(prep.images[0][0].llm_tokens == 24);  // the patch merger would give 6
  CHECK(std::count(prep.ids[0].begin(), prep.ids[0].end(), m.tokens().image_pad) == 24);
  model::points15_encoded const enc = m.encode(prep);
  REQUIRE(enc.n_rows == 24);
  // Each row is fc2(gelu(fc1(v) + b1)) + b2 of its ViT token, in double; the model's bf16 products
  // round the inputs of both layers to bf16: NMSE within tol<bf16>::model_nmse.
  index_t const d = m.decoder().d_model(), h = 40, e = 32;
  std::vector<float> want(static_cast<std::size_t>(24 * d));
  for (index_t t = 0; t < 24; ++t) {
    std::vector<double> hid(static_cast<std::size_t>(h));
    for (index_t j = 0; j < h; ++j) {
      double acc = v.fc1_b[static_cast<std::size_t>(j)].to_float();
      for (index_t k = 0; k < e; ++k)
        acc += static_cast<double>(v.fc1_w[static_cast<std::size_t>(j * e + k)].to_float()) * enc.vision.data()[t * e + k];
      hid[static_cast<std::size_t>(j)] = gelu_erf(acc);
    }
    for (index_t o = 0; o < d; ++o) {
      double acc = v.fc2_b[static_cast<std::size_t>(o)].to_float();
      for (index_t j = 0; j < h; ++j) acc += v.fc2_w[static_cast<std::size_t>(o * h + j)].to_float() * hid[static_cast<std::size_t>(j)];
      want[static_cast<std::size_t>(t * d + o)] = static_cast<float>(acc);
    }
  }
  require_nmse("MLP projector rows", enc.rows.span(), want, tol<bf16>::model_nmse);
  model::points15_options opt;
  opt.generation.max_new_tokens = 4;
  model::points15_result const r = m.generate(req, opt);
  CHECK(r.image_tokens == 24);
  CHECK(r.prompt_tokens == static_cast<index_t>(prep.ids[0].size()));
  CHECK(!r.ids.empty());
}

TEST_CASE("points15: a projector whose width does not match the vision tower is refused", "[model][points15]") {
  mlp_variant v(48);
  REQUIRE_TESSERA_ERROR((void)v.make(), "the projector (mlp) reads tokens of width 48 but the vision tower's embed_dim is 32");
}

TEST_CASE("points15_conversation: a failed turn leaves the conversation as it was", "[model][points15]") {
  auto m = model::points15<backend::cpu, bf16>::load(points_dir() / "custom_llama_bf16");
  model::points15_conversation<backend::cpu, bf16> conv(m, 80);
  model::points15_options opt;
  opt.generation.max_new_tokens = 3;
  model::points15_request const first = synthetic_request(56, 56, "One?");  // 1 image, 1 LLM row
  model::points15_result const a = conv.ask(first.messages[0], opt);
  CHECK(a.reused_tokens == 0);
  CHECK(conv.request().messages.size() == 2);
  // A turn whose image is missing, then one whose prompt overflows the 80 positions: refused,
  // nothing of them kept.
  REQUIRE_TESSERA_ERROR((void)conv.ask({"user", {model::content_item::image_file("no_such.png")}}, opt),
                        "request 0, image 1: io::load_image");
  REQUIRE_TESSERA_ERROR((void)conv.ask(synthetic_request(168, 168, "Two?").messages[0], opt),
                        "leaves no room to answer in a context of 80 positions");
  REQUIRE_TESSERA_ERROR((void)conv.ask({"assistant", {}}, opt), "takes a user turn");
  CHECK(conv.request().messages.size() == 2);
  // The next turn still equals a fresh run of the whole conversation.
  model::points15_result const b = conv.ask(synthetic_request(56, 84, "Three?").messages[0], opt);
  model::points15_request fresh = conv.request();
  fresh.messages.pop_back();
  CHECK(b.ids == m.generate(fresh, opt).ids);
  CHECK(b.reused_tokens > 0);
  CHECK(b.images.size() == 2);
  conv.reset();
  CHECK(conv.request().messages.empty());
  CHECK(conv.cached_tokens() == 0);
}

// The bundled model, models/shapes-tiny (tools/demo_model/train.py), against its PyTorch run
// (tools/demo_model/evaluate.py wrote tests/golden/shapes_tiny/manifest.json): held-out scenes
// (small PNGs, the pixels the PyTorch model was given) and questions; per pair the prompt ids and
// the PyTorch model's greedy answer ids (to <|im_end|>). f32 weights, as stored: the ids must be
// identical. Debug builds check the first scene's questions only (the sanitizer build runs -O0).
TEST_CASE("golden: the bundled shapes-tiny model answers token for token as its PyTorch run", "[golden][model][points15]") {
  fs::path const model_dir = fs::path(TESSERA_SOURCE_DIR) / "models" / "shapes-tiny";
  fs::path const fixture = test::golden_path("shapes_tiny");
  nlohmann::json const fx = [&] {
    std::ifstream f(fixture / "manifest.json");
    return nlohmann::json::parse(f);
  }();
  auto m = model::points15<backend::cpu, float>::load(model_dir);
  model::points15_options opt;
  opt.generation.max_new_tokens = fx["max_new_tokens"].get<index_t>();
  nlohmann::json const& pairs = fx["pairs"];
  REQUIRE(pairs.size() >= 50);
  std::size_t checked = 0, correct = 0;
  for (nlohmann::json const& p : pairs) {
#ifndef NDEBUG
    if (p["image"] != pairs[0]["image"]) break;
#endif
    std::string const q = p["question"].get<std::string>();
    INFO(p["image"].get<std::string>() << ": " << q);
    model::points15_request const req = model::points15_request::ask(q, {fixture / p["image"].get<std::string>()});
    model::points15_prepared const prep = m.prepare(std::span(&req, 1));
    REQUIRE(prep.ids.size() == 1);
    CHECK(prep.ids[0] == ids_of(p["prompt_ids"].get<std::vector<std::int32_t>>()));
    REQUIRE(prep.grids.size() == 1);
    auto const grid = p["grid_thw"].get<std::vector<index_t>>();
    CHECK((prep.grids[0].t == grid[0] && prep.grids[0].h == grid[1] && prep.grids[0].w == grid[2]));
    model::points15_result const r = m.generate(req, opt);
    CHECK(r.ids == ids_of(p["answer_ids"].get<std::vector<std::int32_t>>()));
    std::string const answer = m.tokenizer().decode(r.ids, true);
    CHECK(answer == p["answer"].get<std::string>());
    ++checked;
    correct += answer == p["truth"].get<std::string>();
  }
  std::cout << "shapes-tiny: " << checked << " held-out (scene, question) pairs, tessera's answer ids equal PyTorch's; "
            << correct << " of them right\n";
}
