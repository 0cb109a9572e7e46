// SPDX-License-Identifier: Apache-2.0
// Tests for tessera/io/safetensors.hpp: writer round trips of every dtype, byte-identity with the
// reference writer's published test vectors, typed views, exact conversion to f32, sharded
// checkpoints, one test per malformation (files built byte by byte), and a header mutation sweep.
#include "common/temp_dir.hpp"

#include <tessera/io/safetensors.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
namespace io = tessera::io;
using Catch::Matchers::ContainsSubstring;
using tessera::bf16;
using tessera::dtype;
using tessera::f16;
using tessera::index_t;
using tessera::test::temp_dir;

namespace {

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

/// A safetensors file from its parts: the length field (the header's size unless given), the
/// header text as is, and the data bytes.
std::string raw_file(std::string const& header, std::string const& data = "") {
  return le64(header.size()) + header + data;
}

void write_bytes(fs::path const& p, std::string const& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_bytes(fs::path const& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` to a file in `dir` and opens it.
io::safetensors_file open_bytes(temp_dir const& dir, std::string const& bytes) {
  fs::path const p = dir / "t.safetensors";
  write_bytes(p, bytes);
  return io::safetensors_file(p);
}

/// Header text of one entry.
std::string entry(std::string const& name, std::string const& dtype, std::string const& shape,
                  std::string const& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

template <class T>
std::string le_bytes(std::vector<T> const& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

template <class T>
std::vector<T> to_vector(tessera::tensor_view<T const, 1> v) {
  std::vector<T> out;
  for (index_t i = 0; i < v.extent(0); ++i) out.push_back(v(i));
  return out;
}

}  // namespace

// ---- writer + reader round trips ------------------------------------------------------------

TEST_CASE("safetensors round-trips every dtype through the writer", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<double> const f64{1.5, -2.25, 1e300, 0.0};
  std::vector<float> const f32{0.f, 1.f, -2.5f, 3.25f, 1e-30f, -0.f};
  std::vector<f16> const hf{f16::from_float(1.f), f16::from_float(-0.5f), f16::from_float(65504.f)};
  std::vector<bf16> const bf{bf16::from_float(1.f), bf16::from_float(-3.f), bf16::from_float(1e30f)};
  std::vector<std::int64_t> const i64{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                      std::numeric_limits<std::int64_t>::max()};
  std::vector<std::int32_t> const i32{-7, 0, 42, std::numeric_limits<std::int32_t>::max()};
  std::vector<std::int16_t> const i16{-32768, 1, 32767};
  std::vector<std::int8_t> const i8{-128, 0, 127};
  std::vector<std::uint8_t> const u8{0, 7, 255};
  std::array<bool, 3> const mask{true, false, true};
  std::vector<float> const scalar{42.f};
  std::vector<float> const none;

  fs::path const p = dir / "all.safetensors";
  io::save_safetensors(p, {io::make_entry("f64", {2, 2}, f64), io::make_entry("f32", {2, 3}, f32),
                           io::make_entry("f16", {3}, hf), io::make_entry("bf16", {1, 3}, bf),
                           io::make_entry("i64", {4}, i64), io::make_entry("i32", {2, 2}, i32),
                           io::make_entry("i16", {3}, i16), io::make_entry("i8", {3}, i8),
                           io::make_entry("u8", {3}, u8), io::make_entry("bool", {3}, std::span<bool const>(mask)),
                           io::make_entry("f32.scalar", {}, scalar), io::make_entry("f32.empty", {0, 4}, none)});

  io::safetensors_file const f(p);
  REQUIRE(f.size() == 12);
  // The reference writer's storage order: decreasing alignment, then name.
  REQUIRE(f.names() == std::vector<std::string>{"i64", "f64", "f32", "f32.empty", "f32.scalar", "i32", "bf16", "f16",
                                                "i16", "i8", "u8", "bool"});
  for (auto const& t : f.tensors()) {
    INFO(t.name);
    CHECK(reinterpret_cast<std::uintptr_t>(f.bytes(t.name).data()) % tessera::size_of(t.type) == 0);
    CHECK(f.contains(t.name));
  }
  CHECK_FALSE(f.contains("f128"));
  CHECK(f.metadata().empty());

  CHECK(f.info("f64").type == dtype::f64);
  CHECK(f.info("f64").shape == std::vector<index_t>{2, 2});
  CHECK(f.info("f32.scalar").shape.empty());
  CHECK(f.info("f32.scalar").numel() == 1);
  CHECK(f.info("f32.empty").numel() == 0);
  CHECK(f.info("bool").type == dtype::boolean);

  auto const v64 = f.view<double, 2>("f64");
  CHECK((v64(0, 0) == 1.5 && v64(0, 1) == -2.25 && v64(1, 0) == 1e300 && v64(1, 1) == 0.0));
  auto const v32 = f.view<float, 2>("f32");
  REQUIRE((v32.extent(0) == 2 && v32.extent(1) == 3 && v32.is_contiguous()));
  for (index_t r = 0; r < 2; ++r)
    for (index_t c = 0; c < 3; ++c) CHECK(std::bit_cast<std::uint32_t>(v32(r, c)) == std::bit_cast<std::uint32_t>(f32[r * 3 + c]));
  CHECK(to_vector(f.view<f16, 1>("f16")) == hf);
  auto const vbf = f.view<bf16, 2>("bf16");
  CHECK((vbf(0, 0) == bf[0] && vbf(0, 1) == bf[1] && vbf(0, 2) == bf[2]));
  CHECK(to_vector(f.view<std::int64_t, 1>("i64")) == i64);
  auto const vi32 = f.view<std::int32_t, 2>("i32");
  CHECK((vi32(0, 0) == -7 && vi32(1, 1) == std::numeric_limits<std::int32_t>::max()));
  CHECK(to_vector(f.view<std::int16_t, 1>("i16")) == i16);
  CHECK(to_vector(f.view<std::int8_t, 1>("i8")) == i8);
  CHECK(to_vector(f.view<std::uint8_t, 1>("u8")) == u8);
  auto const vb = f.view<bool, 1>("bool");
  CHECK((vb(0) && !vb(1) && vb(2)));
  auto const ve = f.view<float, 2>("f32.empty");
  CHECK((ve.extent(0) == 0 && ve.extent(1) == 4 && ve.empty()));

  float s = 0;
  f.copy_to("f32.scalar", std::span<float>(&s, 1));
  CHECK(s == 42.f);
  CHECK(f.to_float("f32.scalar") == std::vector<float>{42.f});
  CHECK(f.to_float("f32.empty").empty());

  CHECK(f.bytes("i16").size() == 6);
  CHECK(std::memcmp(f.bytes("i16").data(), i16.data(), 6) == 0);
  CHECK(f.data().size() == 32 + 32 + 24 + 0 + 4 + 16 + 6 + 6 + 6 + 3 + 3 + 3);
}

TEST_CASE("safetensors writer output is byte-identical to the reference writer", "[io][safetensors][unit]") {
  // The byte strings of huggingface/safetensors' own serializer tests (test_serialization,
  // test_serialization_forced_alignement, test_empty), rebuilt from their header text.
  temp_dir dir;
  std::vector<float> const values{0.f, 1.f, 2.f, 3.f, 4.f, 5.f};
  fs::path const p = dir / "ref.safetensors";

  io::save_safetensors(p, {io::make_entry("attn.0", {1, 2, 3}, values)});
  std::string const h1 = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  REQUIRE(h1.size() == 64);  // already a multiple of 8: no padding
  CHECK(read_bytes(p) == raw_file(h1, le_bytes(values)));

  io::save_safetensors(p, {io::make_entry("attn0", {1, 1, 2, 3}, values)});
  std::string const h2 = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  CHECK(read_bytes(p) == raw_file(h2 + std::string(7, ' '), le_bytes(values)));  // 65 -> 72 bytes

  io::save_safetensors(p, std::span<io::tensor_entry const>{});
  CHECK(read_bytes(p) == raw_file("{}      "));

  io::save_safetensors(p, std::span<io::tensor_entry const>{}, {{"framework", "pt"}});
  CHECK(read_bytes(p) == raw_file(R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' ')));
}

TEST_CASE("safetensors writer aligns every tensor whatever the sizes", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<std::uint8_t> const a{1, 2, 3};                        // 3 bytes
  std::vector<bf16> const c{bf16::from_bits(1), bf16::from_bits(2), bf16::from_bits(3)};  // 6 bytes
  std::vector<float> const b{1.f};                                   // 4 bytes
  std::vector<double> const d{2.0};                                  // 8 bytes
  std::vector<std::int8_t> const e{-1};
  fs::path const p = dir / "align.safetensors";
  // A name of odd length makes the unpadded header length odd.
  io::save_safetensors(p, {io::make_entry("a", {3}, a), io::make_entry("bbbbb", {1}, b), io::make_entry("c", {3}, c),
                           io::make_entry("d", {1}, d), io::make_entry("e", {1}, e)});
  io::safetensors_file const f(p);
  CHECK(f.names() == std::vector<std::string>{"d", "bbbbb", "c", "e", "a"});
  CHECK((f.info("d").begin == 0 && f.info("bbbbb").begin == 8 && f.info("c").begin == 12 && f.info("e").begin == 18 &&
         f.info("a").begin == 19 && f.info("a").end == 22));
  CHECK(f.view<double, 1>("d")(0) == 2.0);
  CHECK(f.view<float, 1>("bbbbb")(0) == 1.f);
  CHECK(f.view<bf16, 1>("c")(2) == bf16::from_bits(3));
  CHECK(f.view<std::int8_t, 1>("e")(0) == -1);
}

TEST_CASE("safetensors writer takes contiguous tensor_views", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<float> data{1, 2, 3, 4, 5, 6};
  tessera::tensor_view<float, 2> const v(data.data(), {2, 3});
  tessera::tensor_view<float const, 2> const cv(data.data(), {3, 2});
  fs::path const p = dir / "views.safetensors";
  io::save_safetensors(p, {io::make_entry("v", v), io::make_entry("cv", cv)});
  io::safetensors_file const f(p);
  CHECK(f.info("v").shape == std::vector<index_t>{2, 3});
  CHECK(f.info("cv").shape == std::vector<index_t>{3, 2});
  CHECK(f.to_float("v") == data);

  tessera::tensor_view<float, 2> const strided(data.data(), {2, 2}, {3, 1});  // not contiguous
  REQUIRE_TESSERA_ERROR((void)io::make_entry("s", strided), "not contiguous");
}

TEST_CASE("safetensors metadata round-trips and is omitted when empty", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<float> const x{1.f};
  fs::path const p = dir / "meta.safetensors";
  io::metadata_map const meta{{"format", "pt"}, {"note", "\xc3\xbcnicode \"quoted\"\n\ttab\\"}, {"", "empty key"}};
  io::save_safetensors(p, {io::make_entry("x", {1}, x)}, meta);
  io::safetensors_file const f(p);
  CHECK(f.metadata() == meta);

  io::save_safetensors(p, {io::make_entry("x", {1}, x)});
  CHECK(read_bytes(p).find("__metadata__") == std::string::npos);
  CHECK(io::safetensors_file(p).metadata().empty());
}

TEST_CASE("safetensors writer refuses invalid entries and leaves no file behind", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<float> const x{1.f, 2.f};
  std::vector<std::int32_t> const y{1, 2};
  fs::path const p = dir / "bad.safetensors";

  SECTION("duplicate names, same dtype") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {2}, x), io::make_entry("w", {2}, x)}),
                     "'w' appears twice");
  }
  SECTION("duplicate names, different dtypes") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {2}, x), io::make_entry("v", {2}, y),
                                              io::make_entry("w", {2}, y)}),
                     "'w' appears twice");
  }
  SECTION("byte count does not match the shape") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {3}, x)}), "has 8 bytes but F32 with shape [3]");
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::tensor_entry{"w", dtype::f64, {2}, std::as_bytes(std::span(x))}}),
                     "needs 2 x 8");
  }
  SECTION("negative dimension") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {-1, -2}, x)}), "negative dimension");
  }
  SECTION("shape product overflow") {
    index_t const big = index_t{1} << 40;
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {big, big}, x)}), "overflows");
  }
  SECTION("reserved name") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("__metadata__", {2}, x)}), "reserved");
  }
  SECTION("name or metadata that is not UTF-8") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("bad\xff", {2}, x)}), "not valid UTF-8");
    REQUIRE_TESSERA_ERROR(io::save_safetensors(p, {io::make_entry("w", {2}, x)}, {{"k", "\xc3"}}), "not valid UTF-8");
  }
  SECTION("directory that does not exist") {
    REQUIRE_TESSERA_ERROR(io::save_safetensors(dir / "no/such/dir/w.safetensors", {io::make_entry("w", {2}, x)}),
                     "cannot create");
  }
  CHECK(dir.n_entries() == 0);  // neither the target nor a temporary was left behind
}

TEST_CASE("safetensors writer replaces an existing file atomically", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<float> const a{1.f, 2.f};
  std::vector<float> const b{3.f, 4.f, 5.f};
  fs::path const p = dir / "model.safetensors";
  io::save_safetensors(p, {io::make_entry("a", {2}, a)});
  std::string const first = read_bytes(p);

  REQUIRE_THROWS_AS(io::save_safetensors(p, {io::make_entry("a", {5}, b)}), tessera::error);
  CHECK(read_bytes(p) == first);  // a failed save leaves the old file untouched

  io::save_safetensors(p, {io::make_entry("b", {3}, b)});
  io::safetensors_file const f(p);
  CHECK(f.names() == std::vector<std::string>{"b"});
  CHECK(f.to_float("b") == b);
  CHECK(dir.n_entries() == 1);
}

// ---- views and conversion -------------------------------------------------------------------

TEST_CASE("safetensors views check dtype, rank and alignment", "[io][safetensors][unit]") {
  temp_dir dir;
  // "w" (F32) starts at data offset 2 and the header is 8-aligned: its address is 2 mod 4.
  std::string header = "{" + entry("a", "U8", "[2]", "[0,2]") + "," + entry("w", "F32", "[2]", "[2,10]") + "," +
                       entry("h", "BF16", "[1]", "[10,12]") + "," + entry("s", "F32", "[]", "[12,16]") + "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  std::string const data = std::string("\x01\x02", 2) + le_bytes(std::vector<float>{1.5f, -3.f}) +
                           le_bytes(std::vector<std::uint16_t>{0x3F80}) + le_bytes(std::vector<float>{7.f});
  io::safetensors_file const f = open_bytes(dir, raw_file(header, data));

  REQUIRE_TESSERA_ERROR(((void)f.view<float, 1>("w")), "not aligned for F32");
  CHECK(f.to_float("w") == std::vector<float>{1.5f, -3.f});  // conversion copies: fine unaligned
  std::vector<float> w(2);
  f.copy_to("w", std::span<float>(w));
  CHECK(w == std::vector<float>{1.5f, -3.f});
  CHECK(to_vector(f.view<std::uint8_t, 1>("a")) == std::vector<std::uint8_t>{1, 2});
  CHECK(f.view<bf16, 1>("h")(0) == bf16::from_bits(0x3F80));  // offset 10: 2-aligned

  REQUIRE_TESSERA_ERROR(((void)f.view<bf16, 1>("w")), "is F32, a view of BF16 was requested");
  REQUIRE_TESSERA_ERROR(((void)f.view<std::uint8_t, 2>("a")), "has rank 1");
  REQUIRE_TESSERA_ERROR(((void)f.view<float, 1>("s")), "has rank 0");
  std::vector<std::int8_t> wrong(2);
  REQUIRE_TESSERA_ERROR(f.copy_to("a", std::span<std::int8_t>(wrong)), "copy_to<I8>");
  std::vector<std::uint8_t> small(1);
  REQUIRE_TESSERA_ERROR(f.copy_to("a", std::span<std::uint8_t>(small)), "the output holds 1");
}

TEST_CASE("safetensors bool views accept only bytes 0 and 1", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const header = "{" + entry("m", "BOOL", "[3]", "[0,3]") + "}";
  io::safetensors_file const ok = open_bytes(dir, raw_file(header, std::string("\x01\x00\x01", 3)));
  CHECK(ok.view<bool, 1>("m")(2));

  io::safetensors_file const bad = open_bytes(dir, raw_file(header, std::string("\x01\x02\x01", 3)));
  REQUIRE_TESSERA_ERROR(((void)bad.view<bool, 1>("m")), "holds byte 2 at element 1");
  std::array<bool, 3> out{};
  REQUIRE_TESSERA_ERROR(bad.copy_to("m", std::span<bool>(out)), "only 0 and 1");
  CHECK(bad.bytes("m").size() == 3);  // raw bytes stay available
}

TEST_CASE("safetensors to_float converts bf16, f16 and f64 exactly", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<std::uint16_t> const bf_bits{0x3F80, 0xC000, 0x0001, 0x7F80, 0xFF80, 0x3EAB, 0x8000, 0x7F7F};
  std::vector<float> const bf_want{1.f,   -2.f, std::ldexp(1.f, -133), INFINITY, -INFINITY, 0.333984375f,
                                   -0.f, std::ldexp(255.f, 120)};
  std::vector<std::uint16_t> const hf_bits{0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3555, 0x7C00, 0x0400, 0x83FF};
  std::vector<float> const hf_want{1.f,      -2.f, std::ldexp(1.f, -24), 65504.f, 0.333251953125f,
                                   INFINITY, std::ldexp(1.f, -14), -std::ldexp(1023.f, -24)};
  std::vector<double> const f64{0.1, -1e-50, 3.0, 1e300};
  std::vector<std::int32_t> const ints{1, 2};
  std::string const header = "{" + entry("bf", "BF16", "[8]", "[0,16]") + "," + entry("hf", "F16", "[2,4]", "[16,32]") +
                             "," + entry("d", "F64", "[4]", "[32,64]") + "," + entry("i", "I32", "[2]", "[64,72]") + "}";
  std::string const data = le_bytes(bf_bits) + le_bytes(hf_bits) + le_bytes(f64) + le_bytes(ints);
  io::safetensors_file const f = open_bytes(dir, raw_file(header, data));

  auto const same_bits = [](std::vector<float> const& got, std::vector<float> const& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
      CHECK(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(want[i]));
    }
  };
  same_bits(f.to_float("bf"), bf_want);
  same_bits(f.to_float("hf"), hf_want);
  same_bits(f.to_float("d"), {0.1f, -0.f, 3.f, INFINITY});

  std::vector<float> out(8, -1.f);
  f.read_as_float("hf", out);
  same_bits(out, hf_want);
  REQUIRE_TESSERA_ERROR(f.read_as_float("hf", std::span<float>(out).first(7)), "has 8 elements");
  REQUIRE_TESSERA_ERROR((void)f.to_float("i"), "only F32, F64, BF16 and F16");
}

// ---- malformed files: each is a tessera::error naming the problem ---------------------------

TEST_CASE("safetensors rejects a file shorter than 8 bytes", "[io][safetensors][unit]") {
  temp_dir dir;
  for (std::size_t n : {0, 1, 7}) {
    INFO(n << " bytes");
    REQUIRE_TESSERA_ERROR(open_bytes(dir, std::string(n, '\0')), "shorter than the 8-byte header length");
  }
}

TEST_CASE("safetensors rejects a header length beyond the file size", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, le64(100) + "{}"), "header length 100 runs past the end of the file (10 bytes)");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, le64(3) + "{}"), "runs past the end");
}

TEST_CASE("safetensors rejects an absurd header length", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, le64(200'000'000) + "{}"), "exceeds the limit of 100000000 bytes");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, le64(std::numeric_limits<std::uint64_t>::max()) + "{}"), "exceeds the limit");
}

TEST_CASE("safetensors rejects a header that is not valid JSON", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{\"a\": ")), "invalid JSON");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(std::string("{}\0\0", 4))), "NUL byte at offset 2");  // NUL padding
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(std::string("{}\0{\"a\":1}", 10))), "invalid JSON");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{\"\xff\":1}")), "invalid JSON");             // ill-formed UTF-8
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("")), "invalid JSON");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{} {}")), "invalid JSON");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{\"a\": ")), "t.safetensors");  // the message names the file
}

TEST_CASE("safetensors rejects a header that is not a JSON object", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("[1,2]")), "header must be a JSON object, got a JSON array");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("42")), "must be a JSON object, got 42");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("\"x\"")), "must be a JSON object");
}

TEST_CASE("safetensors rejects deeply nested JSON", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const deep = "{\"__metadata__\":" + std::string(200, '[') + std::string(200, ']') + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(deep)), "nests deeper than 64");
}

TEST_CASE("safetensors rejects entries with missing fields", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", data)),
                   "tensor 'w': missing field 'dtype'");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", data)),
                   "missing field 'shape'");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", data)),
                   "missing field 'data_offsets'");
}

TEST_CASE("safetensors rejects entries with wrong JSON types", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":5})", data)), "entry must be a JSON object");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":[]})", data)), "entry must be a JSON object");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})", data)),
                   "field 'dtype' must be a string, got 5");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", data)),
                   "field 'shape' must be an array");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data)),
                   "'data_offsets' must be an array [begin, end] of two non-negative integers, got an array of 1");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", data)),
                   "got an array of 3");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"b":0}}})", data)),
                   "got a JSON object");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", data)),
                   "must be non-negative integers");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data)),
                   "must be non-negative integers");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8]}})", data)),
                   "must be non-negative integers");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"__metadata__":["a"]})")), "__metadata__ must be a JSON object");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"__metadata__":{"epoch":3}})")),
                   "__metadata__ value of 'epoch' must be a string, got 3");
}

TEST_CASE("safetensors rejects an unknown dtype and names it", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F8_E4M3", "[8]", "[0,8]") + "}", data)),
                   "dtype 'F8_E4M3' is not supported");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "float32", "[2]", "[0,8]") + "}", data)),
                   "tensor 'w': dtype 'float32'");
}

TEST_CASE("safetensors rejects negative or non-integer dimensions", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[-2]", "[0,8]") + "}", data)),
                   "shape[0] is -2");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[2,1.5]", "[0,8]") + "}", data)),
                   "shape[1] is 1.5");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[\"2\"]", "[0,8]") + "}", data)),
                   "shape[0] is '2'");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[null]", "[0,8]") + "}", data)),
                   "dimensions must be non-negative integers");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[9223372036854775808]", "[0,8]") + "}", data)),
                   "below 2^63");
}

TEST_CASE("safetensors rejects a shape whose size overflows", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(
      open_bytes(dir, raw_file("{" + entry("w", "F32", "[4294967296,4294967296,4]", "[0,8]") + "}", data)),
      "shape product overflows");
  // Overflows before the 0, as the reference's checked_mul does.
  REQUIRE_TESSERA_ERROR(
      open_bytes(dir, raw_file("{" + entry("w", "F32", "[4294967296,4294967296,0]", "[0,0]") + "}")),
      "shape product overflows");
  // 2^62 elements fit an index, 2^62 * 8 bytes do not.
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F64", "[4611686018427387904]", "[0,8]") + "}", data)),
                   "size overflows");
}

TEST_CASE("safetensors rejects data_offsets beyond the data region", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[250]", "[0,1000]") + "}", data)),
                   "data_offsets [0, 1000] run past the end of the data region (8 bytes)");
  REQUIRE_TESSERA_ERROR(
      open_bytes(dir, raw_file("{" + entry("w", "U8", "[2]", "[18446744073709551614,18446744073709551615]") + "}", data)),
      "run past the end of the data region");
}

TEST_CASE("safetensors rejects data_offsets with begin > end", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[2]", "[8,0]") + "}", std::string(8, '\0'))),
                   "data_offsets [8, 0] have begin > end");
}

TEST_CASE("safetensors rejects a byte count that does not match shape and dtype", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "F32", "[2]", "[0,4]") + "}", std::string(4, '\0'))),
                   "hold 4 bytes but dtype F32 with shape [2] needs 8");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{" + entry("w", "BF16", "[]", "[0,4]") + "}", std::string(4, '\0'))),
                   "with shape [] needs 2");
}

TEST_CASE("safetensors rejects overlapping tensors", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const h1 = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h1, std::string(12, '\0'))),
                   "tensor 'b' at bytes [4, 12) overlaps tensor 'a' at [0, 8)");
  std::string const h2 = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "I32", "[2]", "[0,8]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h2, std::string(8, '\0'))), "overlaps");
  // An empty tensor inside another one: the reference rejects it too.
  std::string const h3 = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("e", "F32", "[0]", "[4,4]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h3, std::string(8, '\0'))), "tensor 'e' at bytes [4, 4) overlaps");
}

TEST_CASE("safetensors rejects holes in the data region", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const h1 = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h1, std::string(12, '\0'))),
                   "bytes [4, 8) of the data region belong to no tensor (a hole before tensor 'b')");
  std::string const h2 = "{" + entry("a", "F32", "[1]", "[4,8]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h2, std::string(8, '\0'))), "bytes [0, 4) of the data region");
}

TEST_CASE("safetensors rejects trailing bytes after the last tensor", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const h = "{" + entry("a", "F32", "[1]", "[0,4]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h, std::string(8, '\0'))),
                   "the data region has 8 bytes but the tensors cover only 4");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file("{}", "x")), "has 1 bytes but the tensors cover only 0");
}

TEST_CASE("safetensors rejects duplicate names and duplicate fields", "[io][safetensors][unit]") {
  temp_dir dir;
  std::string const data(8, '\0');
  std::string const h1 = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}";
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(h1, data)), "duplicate key 'a'");
  REQUIRE_TESSERA_ERROR(
      open_bytes(dir, raw_file(R"({"a":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}})", data)),
      "duplicate key 'dtype'");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"__metadata__":{"k":"1","k":"2"}})")), "duplicate key 'k'");
  REQUIRE_TESSERA_ERROR(open_bytes(dir, raw_file(R"({"__metadata__":{},"__metadata__":{}})")),
                   "duplicate key '__metadata__'");
}

TEST_CASE("safetensors lookups of absent names name the tensor", "[io][safetensors][unit]") {
  temp_dir dir;
  io::safetensors_file const f = open_bytes(dir, raw_file("{" + entry("a", "F32", "[1]", "[0,4]") + "}", "abcd"));
  REQUIRE_TESSERA_ERROR((void)f.info("nope"), "no tensor named 'nope' (the file has 1 tensors)");
  REQUIRE_TESSERA_ERROR((void)f.bytes("nope"), "'nope'");
  REQUIRE_TESSERA_ERROR(((void)f.view<float, 1>("nope")), "'nope'");
  REQUIRE_TESSERA_ERROR((void)f.to_float("nope"), "'nope'");
  REQUIRE_TESSERA_ERROR((void)f.info(std::string("bad\x1b[31m", 8)), "'bad\\x1b[31m'");  // control bytes escaped
}

TEST_CASE("safetensors rejects paths that are not readable files", "[io][safetensors][unit]") {
  temp_dir dir;
  REQUIRE_TESSERA_ERROR(io::safetensors_file(dir / "missing.safetensors"), "cannot open");
  REQUIRE_TESSERA_ERROR(io::safetensors_file(dir.path()), "is not a regular file");
}

TEST_CASE("safetensors accepts what the reference accepts", "[io][safetensors][unit]") {
  temp_dir dir;
  SECTION("no tensors, with and without trailing spaces") {
    CHECK(open_bytes(dir, raw_file("{}")).size() == 0);
    CHECK(open_bytes(dir, raw_file("  {}    \n")).size() == 0);
    CHECK(open_bytes(dir, raw_file(R"({"__metadata__":null})")).metadata().empty());
  }
  SECTION("entries in any JSON order, extra fields ignored") {
    std::string const h = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2],"extra":[1,{"x":2}]},)"
                          R"("a":{"data_offsets":[0,1],"shape":[1],"dtype":"I8"}})";
    io::safetensors_file const f = open_bytes(dir, raw_file(h, "\x05\x06"));
    CHECK(f.names() == std::vector<std::string>{"a", "b"});
    CHECK(f.view<std::uint8_t, 1>("b")(0) == 6);
  }
  SECTION("empty tensors sharing an offset, including at the end") {
    std::string const h = "{" + entry("z2", "F32", "[0,3]", "[0,0]") + "," + entry("z1", "I64", "[0]", "[0,0]") + "," +
                          entry("a", "U8", "[2]", "[0,2]") + "," + entry("z3", "F32", "[5,0]", "[2,2]") + "}";
    io::safetensors_file const f = open_bytes(dir, raw_file(h, "xy"));
    CHECK(f.names() == std::vector<std::string>{"z1", "z2", "a", "z3"});
    CHECK(f.info("z3").shape == std::vector<index_t>{5, 0});
  }
}

// ---- sharded checkpoints --------------------------------------------------------------------

namespace {

/// Writes two shards and an index with the given weight_map into `dir`.
void write_two_shards(temp_dir const& dir, nlohmann::json const& weight_map) {
  std::vector<float> const a{1.f, 2.f, 3.f, 4.f};
  std::vector<bf16> const b{bf16::from_float(0.5f), bf16::from_float(-8.f)};
  std::vector<std::int64_t> const c{7};
  io::save_safetensors(dir / "model-00001-of-00002.safetensors",
                       {io::make_entry("layer.0.weight", {2, 2}, a), io::make_entry("layer.0.bias", {2}, b)},
                       {{"format", "pt"}});
  io::save_safetensors(dir / "model-00002-of-00002.safetensors", {io::make_entry("step", {1}, c)});
  nlohmann::json const index = {{"metadata", {{"total_size", 28}, {"format", "pt"}}}, {"weight_map", weight_map}};
  write_bytes(dir / "model.safetensors.index.json", index.dump(2));
}

nlohmann::json const good_weight_map = {{"layer.0.weight", "model-00001-of-00002.safetensors"},
                                        {"layer.0.bias", "model-00001-of-00002.safetensors"},
                                        {"step", "model-00002-of-00002.safetensors"}};

}  // namespace

TEST_CASE("checkpoint reads a sharded index round trip", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  write_two_shards(dir, good_weight_map);
  for (fs::path const& p : {dir.path(), dir / "model.safetensors.index.json"}) {
    INFO(p.string());
    io::checkpoint const ck(p);
    CHECK(ck.n_shards() == 2);
    CHECK(ck.size() == 3);
    CHECK(ck.names() == std::vector<std::string>{"layer.0.bias", "layer.0.weight", "step"});
    CHECK(ck.metadata() == io::metadata_map{{"format", "pt"}, {"total_size", "28"}});
    CHECK(ck.contains("step"));
    CHECK_FALSE(ck.contains("layer.1.weight"));
    CHECK(ck.shard_of("step").path().filename() == "model-00002-of-00002.safetensors");
    CHECK(ck.shard(0).metadata() == io::metadata_map{{"format", "pt"}});

    auto const w = ck.view<float, 2>("layer.0.weight");
    CHECK((w(0, 0) == 1.f && w(1, 1) == 4.f));
    CHECK(ck.to_float("layer.0.bias") == std::vector<float>{0.5f, -8.f});
    std::vector<float> bias(2);
    ck.read_as_float("layer.0.bias", bias);
    CHECK(bias == std::vector<float>{0.5f, -8.f});
    std::int64_t step = 0;
    ck.copy_to("step", std::span<std::int64_t>(&step, 1));
    CHECK(step == 7);
    CHECK(ck.info("step").type == dtype::i64);
    CHECK(ck.bytes("step").size() == 8);
    REQUIRE_TESSERA_ERROR((void)ck.info("layer.1.weight"), "no tensor named 'layer.1.weight'");
    REQUIRE_TESSERA_ERROR((void)ck.shard(2), "shard 2 of 2");
  }
}

TEST_CASE("checkpoint opens a single file and a directory holding model.safetensors",
          "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  std::vector<float> const a{1.f, 2.f};
  io::save_safetensors(dir / "model.safetensors", {io::make_entry("a", {2}, a)}, {{"format", "pt"}});
  for (fs::path const& p : {dir.path(), dir / "model.safetensors"}) {
    io::checkpoint const ck(p);
    CHECK(ck.n_shards() == 1);
    CHECK(ck.names() == std::vector<std::string>{"a"});
    CHECK(ck.metadata() == io::metadata_map{{"format", "pt"}});
    CHECK(ck.to_float("a") == a);
  }
  temp_dir empty;
  REQUIRE_TESSERA_ERROR(io::checkpoint(empty.path()), "has neither model.safetensors.index.json nor model.safetensors");
}

TEST_CASE("checkpoint rejects a weight_map naming a missing shard", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  nlohmann::json wm = good_weight_map;
  wm["extra"] = "model-00003-of-00002.safetensors";
  write_two_shards(dir, wm);
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()),
                   "tensor 'extra' is mapped to shard 'model-00003-of-00002.safetensors', but");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "does not exist");
}

TEST_CASE("checkpoint rejects a listed tensor absent from its shard", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  nlohmann::json wm = good_weight_map;
  wm["step"] = "model-00001-of-00002.safetensors";  // step lives in shard 2
  write_two_shards(dir, wm);
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()),
                   "lists tensor 'step' in shard 'model-00001-of-00002.safetensors', which has no such tensor");
}

TEST_CASE("checkpoint rejects a tensor stored in two shards", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  write_two_shards(dir, good_weight_map);
  std::vector<std::int64_t> const c{8};
  io::save_safetensors(dir / "model-00002-of-00002.safetensors",
                       {io::make_entry("step", {1}, c), io::make_entry("layer.0.bias", {1}, c)});
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "tensor 'layer.0.bias' is stored in two shards");
}

TEST_CASE("checkpoint rejects shard paths escaping the directory", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  std::vector<std::string> const escaping{"../model-00001-of-00002.safetensors", "/etc/passwd",
                                          "sub/../../x.safetensors", "",
                                          std::string("model-00001-of-00002.safetensors\0x", 34)};
  for (std::string const& shard : escaping) {
    INFO(shard);
    nlohmann::json wm = good_weight_map;
    wm["escape"] = shard;
    write_two_shards(dir, wm);
    REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "which is not a relative path inside the checkpoint directory");
  }
}

TEST_CASE("checkpoint rejects malformed index files", "[io][safetensors][checkpoint][unit]") {
  temp_dir dir;
  write_two_shards(dir, good_weight_map);
  fs::path const index = dir / "model.safetensors.index.json";
  write_bytes(index, R"({"metadata":{}})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "missing 'weight_map'");
  write_bytes(index, R"({"weight_map":["a"]})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "'weight_map' must be a JSON object");
  write_bytes(index, R"({"weight_map":{"step":2}})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "weight_map value of tensor 'step' must be a shard file name, got 2");
  write_bytes(index, R"({"weight_map":{"step":"model-00002-of-00002.safetensors",)"
                     R"("step":"model-00001-of-00002.safetensors"}})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "duplicate key 'step'");
  write_bytes(index, R"({"metadata":"x","weight_map":{}})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "'metadata' must be a JSON object");
  write_bytes(index, R"({"weight_map":{})");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "invalid JSON");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "model.safetensors.index.json");
  write_bytes(index, "[]");
  REQUIRE_TESSERA_ERROR(io::checkpoint(dir.path()), "must be a JSON object");
}

// ---- mutation sweep -------------------------------------------------------------------------

namespace {

/// Opens `p` and reads everything it offers; returns false if the open threw tessera::error.
/// Any other exception (or a crash, or a sanitizer report) fails the test.
bool open_and_touch(fs::path const& p) {
  try {
    io::safetensors_file const f(p);
    unsigned sum = 0;
    for (auto const& t : f.tensors()) {
      for (std::byte b : f.bytes(t.name)) sum += std::to_integer<unsigned>(b);
      if (t.type == dtype::f32 || t.type == dtype::bf16 || t.type == dtype::f16 || t.type == dtype::f64)
        for (float v : f.to_float(t.name)) sum += std::isnan(v) ? 1u : 0u;
      if (t.type == dtype::boolean && t.rank() == 1) {
        try {
          auto const v = f.view<bool, 1>(t.name);
          for (index_t i = 0; i < v.extent(0); ++i) sum += v(i) ? 1u : 0u;
        } catch (tessera::error const&) {
        }
      }
    }
    for (auto const& [k, v] : f.metadata()) sum += static_cast<unsigned>(k.size() + v.size());
    (void)sum;
    return true;
  } catch (tessera::error const&) {
    return false;
  }
}

}  // namespace

TEST_CASE("safetensors survives byte flips and truncations of a valid file", "[io][safetensors][unit]") {
  temp_dir dir;
  std::vector<float> const w{1.f, -2.f, 3.5f, 0.f, 1e-3f, 7.f};
  std::vector<bf16> const b{bf16::from_float(1.f), bf16::from_float(2.f)};
  std::vector<std::int64_t> const step{123456789};
  std::array<bool, 3> const mask{true, false, true};
  fs::path const good = dir / "good.safetensors";
  io::save_safetensors(good,
                       {io::make_entry("w", {2, 3}, w), io::make_entry("b", {2}, b), io::make_entry("step", {}, step),
                        io::make_entry("mask", {3}, std::span<bool const>(mask))},
                       {{"format", "pt"}});
  std::string const bytes = read_bytes(good);
  REQUIRE(open_and_touch(good));
  std::size_t header_end = 0;
  for (int i = 7; i >= 0; --i) header_end = (header_end << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  header_end += 8;
  REQUIRE(header_end < bytes.size());

  fs::path const p = dir / "mutant.safetensors";
  std::size_t opened = 0, rejected = 0;
  auto const attempt = [&](std::string const& mutant) {
    // A fresh file each time: ext4 flushes a file truncated and rewritten in place (auto_da_alloc),
    // which makes thousands of rewrites wait on the disk.
    fs::remove(p);
    write_bytes(p, mutant);
    if (open_and_touch(p))
      ++opened;
    else
      ++rejected;
  };

  // Every byte of the length field and the header, flipped or replaced by JSON-significant bytes.
  std::array<unsigned char, 3> const flips{0x01, 0x80, 0xFF};
  std::string const replacements = std::string("\"}]-9 ", 6) + std::string(1, '\0');
  for (std::size_t pos = 0; pos < header_end; ++pos) {
    for (unsigned char x : flips) {
      std::string m = bytes;
      m[pos] = static_cast<char>(static_cast<unsigned char>(m[pos]) ^ x);
      attempt(m);
    }
    for (char c : replacements) {
      if (bytes[pos] == c) continue;
      std::string m = bytes;
      m[pos] = c;
      attempt(m);
    }
  }
  // Every truncation, and a few extensions.
  for (std::size_t len = 0; len < bytes.size(); ++len) attempt(bytes.substr(0, len));
  attempt(bytes + '\0');
  attempt(bytes + bytes);

  INFO(opened << " mutants opened, " << rejected << " rejected");
  CHECK(rejected > header_end);  // most mutations are caught...
  CHECK(opened > 0);             // ...while some are harmless (e.g. a digit of a metadata string)
}
