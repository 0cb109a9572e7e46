// SPDX-License-Identifier: Apache-2.0
// attn::masked_attention against torch.nn.functional.scaled_dot_product_attention run per
// segment of cu_seqlens (tools/golden/make_vision_goldens.py; versions, seeds and shapes in
// tests/golden/vision_manifest.json, cases attn, attn_gqa_causal, attn_bf16). Both the reference
// and the cpu backend are compared with the golden directly; the sequence offsets come from the
// golden's own cu_seqlens.
//
// Budgets: f32 cases tol<float>::vs_golden (atol 1e-4, rtol 1e-4). bf16: q / k / v are bf16
// values, widened exactly to f32; tessera computes in f32, torch's CPU SDPA in bf16 (out stored
// bf16). The f32 result is compared with torch's f32 SDPA on the same widened inputs
// (attn_bf16.out_f32) at the f32 budget, and with the bf16 golden at tol<bf16>::vs_golden
// (atol 1.6e-2, rtol 3.2e-2). Set TESSERA_GOLDEN_VERBOSE=1 to print every measured error.
#include "common/compare.hpp"
#include "common/golden.hpp"

#include <tessera/attn/masked_attention.hpp>
#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/seq_offsets.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must name the repository root (set by tests/CMakeLists.txt)"
#endif

namespace {

using namespace tessera;
using test::tol;
using test::tolerance;

using test::golden_file;

// The manifest's "file" of each case: attn in vision_blocks, the other two in vision_blocks_2.
golden_file const& blocks() {
  static golden_file const f("vision_blocks.safetensors");
  return f;
}
golden_file const& blocks_2() {
  static golden_file const f("vision_blocks_2.safetensors");
  return f;
}

bool verbose() { return test::golden_verbose(); }

template <class W>
void require_close(std::string const& what, std::vector<float> const& got, std::vector<W> const& want, tolerance t) {
  REQUIRE(got.size() == want.size());
  auto const r = test::compare_scaled(got.data(), want.data(), static_cast<std::int64_t>(got.size()),
                                      static_cast<std::int64_t>(got.size()), t, test::golden_rel_floor);
  if (verbose()) std::cout << "[golden] " << what << ": " << r.report() << "\n";
  INFO(what << ": " << r.report());
  REQUIRE(r.ok);
}

std::vector<float> widen(std::vector<bf16> const& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = v[i].to_float();
  return out;
}

/// Runs masked_attention (self-attention over the golden's cu_seqlens) and returns out.
template <class Backend>
std::vector<float> run_case(golden_file const& g, std::string const& c, std::vector<float> const& q,
                            std::vector<float> const& k, std::vector<float> const& v, bool causal) {
  auto const qs = g.shape(c + ".q"), ks = g.shape(c + ".k");
  REQUIRE(qs.size() == 3);
  REQUIRE(ks.size() == 3);
  auto const cu = g.get<std::int32_t>(c + ".cu_seqlens");
  auto const seqs = seq_offsets::from_cu_seqlens(cu);
  test::guarded<float> out(qs[0] * qs[1] * qs[2]);
  exec_ctx<Backend> ctx;
  attn::masked_attention<Backend>(tensor_view<float const, 3>(q.data(), {qs[0], qs[1], qs[2]}),
                                  tensor_view<float const, 3>(k.data(), {ks[0], ks[1], ks[2]}),
                                  tensor_view<float const, 3>(v.data(), {ks[0], ks[1], ks[2]}), seqs,
                                  tensor_view<float, 3>(out.data(), {qs[0], qs[1], qs[2]}), ctx, {causal, 0.0f});
  CHECK(out.intact());
  return out.values();
}

template <class Backend>
std::string label(std::string const& c) {
  return std::string(backend::name_v<Backend>) + " " + c;
}

}  // namespace

TEMPLATE_TEST_CASE("golden: masked_attention matches torch SDPA per segment", "[golden][attn]", backend::reference,
                   backend::cpu) {
  SECTION("attn: 4 heads x 80, segments 37, 1, 64, 0, 130, non-causal") {
    auto const& g = blocks();
    auto const got = run_case<TestType>(g, "attn", g.get<float>("attn.q"), g.get<float>("attn.k"),
                                        g.get<float>("attn.v"), false);
    require_close(label<TestType>("attn.out"), got, g.get<float>("attn.out"), tol<float>::vs_golden);
  }
  SECTION("attn_gqa_causal: 6 query heads on 2 kv heads x 64, segments 17, 50, 33, causal") {
    auto const& g = blocks_2();
    std::string const c = "attn_gqa_causal";
    auto const got = run_case<TestType>(g, c, g.get<float>(c + ".q"), g.get<float>(c + ".k"), g.get<float>(c + ".v"),
                                        true);
    require_close(label<TestType>(c + ".out"), got, g.get<float>(c + ".out"), tol<float>::vs_golden);
  }
  SECTION("attn_bf16: bf16 inputs, f32 compute, against torch f32 and bf16 SDPA") {
    auto const& g = blocks_2();
    std::string const c = "attn_bf16";
    auto const got = run_case<TestType>(g, c, widen(g.get<bf16>(c + ".q")), widen(g.get<bf16>(c + ".k")),
                                        widen(g.get<bf16>(c + ".v")), false);
    require_close(label<TestType>(c + ".out_f32"), got, g.get<float>(c + ".out_f32"), tol<float>::vs_golden);
    // torch's bf16 SDPA rounds its output (and intermediates) to bf16; measured error of the f32
    // result against it: max abs 7.2e-3, 8.6% of the bf16 golden budget (AVX-512 build).
    require_close(label<TestType>(c + ".out (bf16)"), got, g.get<bf16>(c + ".out"), tol<bf16>::vs_golden);
  }
}
