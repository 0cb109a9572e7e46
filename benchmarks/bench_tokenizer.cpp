// SPDX-License-Identifier: Apache-2.0
// bench_tokenizer: text::tokenizer throughput on the Qwen2 vocabulary (../shared/data/qwen2-tokenizer),
// single-threaded, one encode() per document of a deterministic generated corpus (English prose,
// code, Chinese; nothing copied from anywhere). Also times the pre-tokenizer split alone, the
// hand-written scanner against PCRE2 (JIT) running Qwen2's regex, and decode. Prints a table and
// writes JSON; --corpus-out writes the corpus for tools/bench/tokenizer_hf.py, which times HF
// tokenizers on the same documents (scripts/bench_tokenizer.sh runs both and reports the ratio).
//   bench_tokenizer [--quick] [--mb N] [--reps N] [--data DIR] [--json PATH] [--corpus-out PATH]
#include <tessera/text/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#if TESSERA_BENCH_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

#ifndef TESSERA_SOURCE_DIR
#define TESSERA_SOURCE_DIR "."
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using tessera::text::token_id;

// ---- deterministic corpus ------------------------------------------------------------------------

/// splitmix64: a tiny, fully specified generator, so the corpus is the same everywhere.
struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
};

constexpr std::string_view english_words[] = {
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his",
    "her", "he", "she", "it", "they", "we", "you", "are", "were", "be", "been", "have", "has", "had", "not", "but",
    "or", "an", "this", "which", "their", "there", "all", "would", "will", "one", "can", "more", "other", "some",
    "what", "when", "into", "out", "up", "about", "time", "only", "so", "than", "them", "its", "new", "two",
    "first", "also", "after", "years", "may", "over", "most", "like", "people", "city", "river", "mountain",
    "garden", "window", "kitchen", "yellow", "quickly", "slowly", "beautiful", "language", "model", "token",
    "encoder", "decoder", "matrix", "vector", "image", "pixel", "camera", "morning", "evening", "station",
    "library", "science", "history", "network", "question", "answer", "simple", "complex", "running", "jumped",
    "walking", "thought", "brought", "through", "although", "government", "development", "experience",
    "information", "university", "community", "important", "different", "following", "including", "between",
    "without", "another", "several", "because", "however", "children", "building", "understand", "remember",
    "considered", "particular", "especially", "performance", "international", "technology", "environment"};

constexpr std::string_view identifiers[] = {"x", "y", "i", "n", "count", "total", "buffer", "tokens", "result",
                                            "index", "value", "config", "model", "batch_size", "hidden", "weights",
                                            "encodeWord", "parse_header", "MAX_LEN", "self", "data", "offset"};

/// Common CJK characters (UTF-8, 3 bytes each) and Chinese punctuation.
constexpr std::string_view hanzi =
    "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用"
    "发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知道电脑语言模型图像文字处理";
constexpr std::string_view hanzi_punct[] = {"，", "。", "！", "？", "、", "：", "；", "“", "”"};

std::string english_document(rng& r) {
  std::string d;
  std::size_t const paragraphs = 1 + r.below(4);
  for (std::size_t p = 0; p < paragraphs; ++p) {
    std::size_t const sentences = 2 + r.below(6);
    for (std::size_t s = 0; s < sentences; ++s) {
      std::size_t const words = 4 + r.below(20);
      for (std::size_t w = 0; w < words; ++w) {
        std::string word(english_words[r.below(std::size(english_words))]);
        if (w == 0 || r.chance(0.03)) word[0] = static_cast<char>(word[0] - 'a' + 'A');
        d += word;
        if (w + 1 < words) d += r.chance(0.07) ? ", " : (r.chance(0.02) ? "'s " : " ");
      }
      d += r.chance(0.1) ? "? " : (r.chance(0.05) ? "! " : ". ");
      if (r.chance(0.05)) d += std::to_string(r.below(100000)) + " ";
    }
    d.back() = '\n';
    d += '\n';
  }
  return d;
}

std::string code_document(rng& r) {
  auto id = [&] { return std::string(identifiers[r.below(std::size(identifiers))]); };
  std::string d;
  std::size_t const functions = 1 + r.below(4);
  for (std::size_t f = 0; f < functions; ++f) {
    if (r.chance(0.5)) {
      d += "def " + id() + "_" + id() + "(" + id() + ", " + id() + "=" + std::to_string(r.below(100)) + "):\n";
      for (std::size_t k = 0, n = 2 + r.below(8); k < n; ++k) {
        d += "    " + id() + " = " + id() + (r.chance(0.5) ? " + " : " * ") + std::to_string(r.below(1000));
        d += r.chance(0.2) ? "  # " + std::string(english_words[r.below(std::size(english_words))]) + "\n" : "\n";
        if (r.chance(0.2)) d += "    if " + id() + " >= " + id() + ":\n        return [" + id() + ", " + id() + "]\n";
      }
      d += "    return " + id() + "\n\n";
    } else {
      d += "static int " + id() + "(std::vector<float> const& " + id() + ", int " + id() + ") {\n";
      for (std::size_t k = 0, n = 2 + r.below(8); k < n; ++k) {
        d += "\tfor (int i = 0; i < " + std::to_string(r.below(4096)) + "; ++i) " + id() + "[i] += " + id() +
             "[i] * " + std::to_string(r.below(10)) + ".5f;\n";
        if (r.chance(0.3)) d += "\t// " + std::string(english_words[r.below(std::size(english_words))]) + " " + id() + "\n";
      }
      d += "\treturn " + id() + ";\n}\n\n";
    }
  }
  return d;
}

std::string chinese_document(rng& r) {
  std::string d;
  std::size_t const n = 100 + r.below(700);
  std::size_t const n_hanzi = hanzi.size() / 3;
  for (std::size_t k = 0; k < n; ++k) {
    d += hanzi.substr(3 * r.below(n_hanzi), 3);
    if (r.chance(0.08)) d += hanzi_punct[r.below(std::size(hanzi_punct))];
    if (r.chance(0.01)) d += r.chance(0.5) ? std::string("GPU") : std::to_string(r.below(3000));
    if (r.chance(0.005)) d += "\n";
  }
  return d;
}

struct corpus_t {
  std::vector<std::string> docs;
  std::size_t bytes = 0, english_bytes = 0, code_bytes = 0, chinese_bytes = 0;
};

/// About `target_bytes` of documents: 45% English prose, 25% code, 30% Chinese (by bytes).
corpus_t make_corpus(std::size_t target_bytes) {
  rng r{20241208};
  corpus_t c;
  while (c.bytes < target_bytes) {
    std::string doc;
    if (c.english_bytes <= 0.45 * static_cast<double>(c.bytes)) {
      doc = english_document(r);
      c.english_bytes += doc.size();
    } else if (c.code_bytes <= 0.25 * static_cast<double>(c.bytes)) {
      doc = code_document(r);
      c.code_bytes += doc.size();
    } else {
      doc = chinese_document(r);
      c.chinese_bytes += doc.size();
    }
    c.bytes += doc.size();
    c.docs.push_back(std::move(doc));
  }
  return c;
}

// ---- timing --------------------------------------------------------------------------------------

struct timing {
  double min_s = 0, median_s = 0;
  int reps = 0;
};

/// One warm-up call, then `reps` timed calls.
template <class F>
timing time_it(F&& f, int reps) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto const a = clock_type::now();
    f();
    t.push_back(std::chrono::duration<double>(clock_type::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], reps};
}

/// FNV-1a over the ids of every document, each id as 4 little-endian bytes and each document
/// closed by its id count: tools/bench/tokenizer_hf.py computes the same over HF's ids.
std::uint64_t hash_ids(std::vector<std::vector<token_id>> const& all) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  auto const add = [&](std::uint32_t v) {
    for (int k = 0; k < 4; ++k) h = (h ^ ((v >> (8 * k)) & 0xFFu)) * 0x100000001B3ull;
  };
  for (auto const& ids : all) {
    for (token_id id : ids) add(static_cast<std::uint32_t>(id));
    add(static_cast<std::uint32_t>(ids.size()));
  }
  return h;
}

#if TESSERA_BENCH_HAVE_PCRE2
/// Qwen2's regex run by PCRE2 (JIT), \s spelled as Oniguruma's White_Space class (see
/// tests/text/tokenizer_test_support.hpp). Counts pieces.
class pcre2_split {
 public:
  pcre2_split() {
    static constexpr char pattern[] =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\t-\r\x{85}\p{Z}\p{L}\p{N}]+[\r\n]*)"
        R"(|[\t-\r\x{85}\p{Z}]*[\r\n]+|[\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[\t-\r\x{85}\p{Z}]+)";
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &off, nullptr);
    jit_ = code_ != nullptr && pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
    data_ = code_ ? pcre2_match_data_create_from_pattern(code_, nullptr) : nullptr;
  }
  ~pcre2_split() {
    pcre2_match_data_free(data_);
    pcre2_code_free(code_);
  }
  pcre2_split(pcre2_split const&) = delete;
  pcre2_split& operator=(pcre2_split const&) = delete;
  [[nodiscard]] bool ok() const { return code_ != nullptr; }
  [[nodiscard]] bool jit() const { return jit_; }
  /// Appends the end offset of every piece.
  void split(std::string_view s, std::vector<std::size_t>& ends) const {
    std::size_t at = 0;
    while (at < s.size()) {
      int const rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), at, PCRE2_NO_UTF_CHECK, data_,
                                 nullptr);
      if (rc < 0) break;
      PCRE2_SIZE const* ov = pcre2_get_ovector_pointer(data_);
      if (ov[0] > at) ends.push_back(ov[0]);
      ends.push_back(ov[1]);
      at = ov[1];
    }
    if (at < s.size()) ends.push_back(s.size());
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* data_ = nullptr;
  bool jit_ = false;
};
#endif

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double mb = 4.0;
  int reps = 5;
  std::string data_dir = std::string(TESSERA_SOURCE_DIR) + "/../shared/data/qwen2-tokenizer";
  std::string json_path = "bench_tokenizer.json", corpus_out;
  for (int i = 1; i < argc; ++i) {
    std::string const a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--mb" && i + 1 < argc) mb = std::atof(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--data" && i + 1 < argc) data_dir = argv[++i];
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--corpus-out" && i + 1 < argc) corpus_out = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_tokenizer [--quick] [--mb N] [--reps N] [--data DIR] [--json PATH] [--corpus-out PATH]\n");
      return 2;
    }
  }
  if (quick) {
    mb = std::min(mb, 0.25);
    reps = std::min(reps, 2);
  }
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(data_dir) / "vocab.json", ec)) {
    std::printf("bench_tokenizer: SKIPPED: no Qwen2 tokenizer at %s (pass --data DIR)\n", data_dir.c_str());
    nlohmann::json j = {{"skipped", true}, {"reason", "no tokenizer data at " + data_dir}};
    std::ofstream(json_path) << j.dump(2) << "\n";
    return 0;
  }

  auto const t_load = clock_type::now();
  auto const tok = tessera::text::tokenizer::from_dir(data_dir);
  double const load_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t_load).count();
  corpus_t const corpus = make_corpus(static_cast<std::size_t>(mb * 1e6));
  double const corpus_mb = static_cast<double>(corpus.bytes) / 1e6;
  std::printf("bench_tokenizer: %zu documents, %.2f MB (English %.0f%%, code %.0f%%, Chinese %.0f%%), load %.1f ms%s\n",
              corpus.docs.size(), corpus_mb, 100.0 * static_cast<double>(corpus.english_bytes) / static_cast<double>(corpus.bytes),
              100.0 * static_cast<double>(corpus.code_bytes) / static_cast<double>(corpus.bytes),
              100.0 * static_cast<double>(corpus.chinese_bytes) / static_cast<double>(corpus.bytes), load_ms,
              quick ? ", quick mode (smoke test, not a measurement)" : "");

  if (!corpus_out.empty()) {  // u32 little-endian length + bytes, per document
    std::ofstream out(corpus_out, std::ios::binary);
    for (auto const& d : corpus.docs) {
      auto const n = static_cast<std::uint32_t>(d.size());
      char len[4] = {static_cast<char>(n & 0xFF), static_cast<char>((n >> 8) & 0xFF), static_cast<char>((n >> 16) & 0xFF),
                     static_cast<char>(n >> 24)};
      out.write(len, 4);
      out.write(d.data(), static_cast<std::streamsize>(d.size()));
    }
  }

  // Encode: one call per document, ids kept (their hash is compared with HF's by the runner).
  std::vector<std::vector<token_id>> ids(corpus.docs.size());
  auto const encode_all = [&] {
    for (std::size_t k = 0; k < corpus.docs.size(); ++k) {
      ids[k].clear();
      tok.encode_append(corpus.docs[k], ids[k]);
    }
  };
  timing const t_encode = time_it(encode_all, reps);
  std::size_t n_tokens = 0;
  for (auto const& v : ids) n_tokens += v.size();
  std::uint64_t const ids_hash = hash_ids(ids);

  // Decode: one call per document; must give the documents back (the corpus is NFC text).
  std::size_t decode_errors = 0;
  for (std::size_t k = 0; k < corpus.docs.size(); ++k) decode_errors += tok.decode(ids[k]) != corpus.docs[k];
  std::size_t sink = 0;
  timing const t_decode = time_it([&] {
    for (auto const& v : ids) sink += tok.decode(v).size();
  }, reps);

  // The split alone: the scanner, and PCRE2 on the same text (checked equal first).
  std::vector<std::size_t> ends_scanner, ends_pcre2;
  auto const scan_all = [&](std::vector<std::size_t>& ends) {
    ends.clear();
    for (auto const& d : corpus.docs)
      tessera::text::detail::split_qwen2(d, [&](std::string_view p) { ends.push_back(static_cast<std::size_t>(p.data() + p.size() - d.data())); });
  };
  timing const t_scan = time_it([&] { scan_all(ends_scanner); }, reps);
  nlohmann::json pcre2_json = nullptr;
  double pcre2_mbs = 0;
#if TESSERA_BENCH_HAVE_PCRE2
  pcre2_split const pcre2;
  if (pcre2.ok()) {
    timing const t_pcre2 = time_it([&] {
      ends_pcre2.clear();
      for (auto const& d : corpus.docs) pcre2.split(d, ends_pcre2);
    }, reps);
    pcre2_mbs = corpus_mb / t_pcre2.min_s;
    pcre2_json = {{"min_s", t_pcre2.min_s}, {"median_s", t_pcre2.median_s}, {"mb_per_s", pcre2_mbs},
                  {"mb_per_s_median", corpus_mb / t_pcre2.median_s}, {"jit", pcre2.jit()},
                  {"same_pieces_as_scanner", ends_pcre2 == ends_scanner}};
  }
#endif

  double const encode_mbs = corpus_mb / t_encode.min_s;
  std::printf("%-34s %9s %9s %10s\n", "case", "min ms", "med ms", "MB/s (min)");
  std::printf("%-34s %9.2f %9.2f %10.2f   (%.2f Mtokens/s, %zu tokens)\n", "encode, 1 thread, 1 call/document",
              t_encode.min_s * 1e3, t_encode.median_s * 1e3, encode_mbs, static_cast<double>(n_tokens) / t_encode.min_s / 1e6,
              n_tokens);
  std::printf("%-34s %9.2f %9.2f %10.2f   (%s)\n", "decode", t_decode.min_s * 1e3, t_decode.median_s * 1e3,
              corpus_mb / t_decode.min_s, decode_errors == 0 ? "round trip ok" : "ROUND TRIP FAILED");
  std::printf("%-34s %9.2f %9.2f %10.2f\n", "split: hand-written scanner", t_scan.min_s * 1e3, t_scan.median_s * 1e3,
              corpus_mb / t_scan.min_s);
  if (!pcre2_json.is_null())
    std::printf("%-34s %9.2f %9.2f %10.2f   (%s, %s)\n", "split: PCRE2 running the regex", pcre2_json["min_s"].get<double>() * 1e3,
                pcre2_json["median_s"].get<double>() * 1e3, pcre2_mbs, pcre2_json["jit"].get<bool>() ? "JIT" : "interpreter",
                pcre2_json["same_pieces_as_scanner"].get<bool>() ? "same pieces" : "PIECES DIFFER");
  std::printf("ids hash %016llx\n", static_cast<unsigned long long>(ids_hash));

  char hash_hex[17];
  std::snprintf(hash_hex, sizeof hash_hex, "%016llx", static_cast<unsigned long long>(ids_hash));
  nlohmann::json j;
  j["machine"] = {{"threads", 1}, {"simd_arch", TESSERA_SIMD_ARCH_NAME}, {"quick", quick}};
  j["corpus"] = {{"documents", corpus.docs.size()}, {"bytes", corpus.bytes}, {"english_bytes", corpus.english_bytes},
                 {"code_bytes", corpus.code_bytes}, {"chinese_bytes", corpus.chinese_bytes}, {"generator_seed", 20241208}};
  j["load_ms"] = load_ms;
  j["encode"] = {{"min_s", t_encode.min_s}, {"median_s", t_encode.median_s}, {"reps", t_encode.reps},
                 {"mb_per_s", encode_mbs}, {"mb_per_s_median", corpus_mb / t_encode.median_s}, {"tokens", n_tokens},
                 {"ids_fnv1a64", hash_hex}};
  j["decode"] = {{"min_s", t_decode.min_s}, {"median_s", t_decode.median_s}, {"mb_per_s", corpus_mb / t_decode.min_s},
                 {"round_trip_errors", decode_errors}};
  j["split_scanner"] = {{"min_s", t_scan.min_s}, {"median_s", t_scan.median_s}, {"mb_per_s", corpus_mb / t_scan.min_s},
                        {"mb_per_s_median", corpus_mb / t_scan.median_s}};
  j["split_pcre2"] = pcre2_json;
  std::ofstream(json_path) << j.dump(2) << "\n";
  std::printf("JSON written to %s\n", json_path.c_str());
  (void)sink;
  bool const ok = decode_errors == 0 && (pcre2_json.is_null() || pcre2_json["same_pieces_as_scanner"].get<bool>());
  return ok ? 0 : 1;
}
