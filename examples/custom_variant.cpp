// SPDX-License-Identifier: Apache-2.0
// custom_variant: a new VLM composed from tessera's policies (docs/custom-variants.md): a NaViT encoder
// (factorized fractional position tables, MAP-head pooling) -> MLP projector -> small Qwen2-style decoder.
// Random weights, so the ids are noise; the shapes are the point. Usage: custom_variant [image]
#include <tessera/io/image.hpp>
#include <tessera/lm/generate.hpp>
#include <tessera/model/projector/mlp_projector.hpp>
#include <tessera/nn/random_parameters.hpp>
#include <tessera/pack/pack_plan.hpp>
#include <tessera/pack/resolution_sampler.hpp>
#include <tessera/vision/pool_policies.hpp>
#include <tessera/vision/position_policies.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

using namespace tessera;
namespace pol = vision::policy;

static void show(char const* s, index_t r, index_t c) { std::printf("%-38s [%" PRId64 ", %" PRId64 "]\n", s, r, c); }

int main(int argc, char** argv) try {
  index_t const patch = 8, row_len = 64, dv = 32, dl = 48, vocab = 64, slot = 0;  // dv, dl: ViT, LLM widths
  io::rgb_image img = argc > 1 ? io::load_image(argv[1]) : io::rgb_image(56, 64);  // synthetic: 7 x 8 patches
  for (std::size_t i = 0; argc == 1 && i < img.pixels().size(); ++i) img.pixels()[i] = std::uint8_t(i * 37 % 256);
  pack::naflex_size const fit = pack::fit_to_token_budget(img.height(), img.width(), patch, row_len);
  img = io::resize_bicubic(img, fit.height, fit.width);  // NaFlex: aspect kept, <= row_len patches (synthetic: as is)
  host_buffer<float> chw(3 * img.height() * img.width());
  io::normalize_image(img.view(), chw.view(3, img.height(), img.width()));
  pack::patches const px = pack::patchify(chw.view(3, img.height(), img.width()), pack::navit_layout(patch));
  index_t const f = px.n_features;  // p * p * 3 values per patch
  show("patches [n_patches, p*p*c]", px.n_patches(), f);
  // Patch n' Pack: a row of row_len token slots holds the image, then padding (more images would share it).
  pack::pack_plan const plan = pack::pack_plan::make(std::span(&px.grid, 1), {pack::pack_mode::fixed_rows, row_len});
  host_buffer<float> packed(row_len * f), tokens(row_len * dv), pooled(dv), rows(dl), logits(vocab);
  pack::gather_patches(plan, std::array{px.rows()}, packed.view(row_len, f));  // one patch array per image
  show("packed [n_slots, p*p*c]", row_len, f);

  nn::random_parameters<float> p(/*seed=*/7);  // as PyTorch initializes: linears U(+-1/sqrt(in)), norms ones
  vision::vision_encoder_config const vc{f, /*depth=*/2, {.d_model = dv, .n_heads = 4, .head_dim = 8, .d_ff = 128}};
  vision::vision_encoder_weights<float> vw{.patch_embed = p.linear(dv, f), .final_norm = p.norm(dv, true)};
  for (index_t i = 0; i < vc.depth; ++i)
    vw.blocks.push_back({.norm1 = p.norm(dv, true), .qkv = p.linear(3 * dv, dv), .proj = p.linear(dv, dv),
                         .norm2 = p.norm(dv, true), .fc1 = p.linear(128, dv), .fc2 = p.linear(dv, 128)});
  pol::factorized_learned<float> const pos{p.uniform({16, dv}, 1), p.uniform({16, dv}, 1),  // 16 rows per axis
                                           posemb::coord_mode::fractional};
  pol::map_head_pooling<float> const map{pool::random_map_head_weights(dv, 128, p), {.n_heads = 4}};
  // The variant is a type: backend, weight type, then position x norm x activation x pooling policies.
  vision::vision_encoder<backend::cpu, float, pol::factorized_learned<float>, pol::layer_norm, pol::gelu,
                         pol::map_head_pooling<float>> const enc(vc, std::move(vw), pos, {1e-6f}, {}, map);
  exec_ctx<backend::cpu> ctx;
  enc.forward(packed.view(row_len, f), vision::batch_of(plan), tokens.view(row_len, dv), ctx, pooled.view(1, dv));
  show("encoder tokens [n_slots, d_vision]", row_len, dv);
  show("MAP-pooled [n_images, d_vision]", 1, dv);
  model::mlp_projector_weights<float> const mlp{p.linear(96, dv), p.linear(dl, 96), p.keep_alive()};  // mlp2x_gelu
  model::mlp_projector<backend::cpu>(pooled.view(1, dv), {dv, 96, dl}, mlp, rows.view(1, dl), ctx);
  show("projected [n_images, d_model]", 1, dl);

  lm::decoder_config const lc{.vocab_size = vocab, .d_model = dl, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                              .head_dim = 12, .d_ff = 96, .rotary_dim = 12, .rope_theta = 1e6, .norm_eps = 1e-6};
  lm::qwen2_decoder<backend::cpu, float> const dec(lc, lm::random_decoder_weights(lc, p));
  lm::prompt const prompt = lm::splice({1, 2, 63, 3, 4, 5}, /*pad id=*/63, rows.view(1, dl));  // row replaces id 63
  show("decoder input embeddings [n, d_model]", prompt.size(), dl);
  auto cache = dec.make_cache(/*n_slots=*/1, /*max_context=*/16);
  lm::prefill(dec, std::span(&prompt, 1), std::span(&slot, 1), cache, logits.view(1, vocab), ctx);
  show("logits [n_seqs, vocab]", 1, vocab);
  std::printf("greedy ids (noise: %" PRId64 " random weights):", p.n_values());
  for (int i = 0; i < 8; ++i) {
    auto const next = text::token_id(std::max_element(logits.data(), logits.data() + vocab) - logits.data());
    std::printf(" %d", next);
    lm::decode_step(dec, std::span(&next, 1), std::span(&slot, 1), cache, logits.view(1, vocab), ctx);
  }
  std::printf("\n");
} catch (error const& e) {
  std::fprintf(stderr, "custom_variant: %s\n", e.what());
  return 1;
}
