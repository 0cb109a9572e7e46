// SPDX-License-Identifier: Apache-2.0
// Safetensors files (https://github.com/huggingface/safetensors): an mmap-based reader with
// zero-copy typed views and conversion to f32, Hugging Face sharded checkpoints
// (model.safetensors.index.json, as written by transformers' save_pretrained), and an atomic
// writer whose output is byte-identical to the reference (Rust/Python) writer's.
#pragma once

#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/detail/posix_file.hpp>
#include <tessera/io/detail/strict_json.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace tessera::io {

// Safetensors stores little-endian data and the views below reinterpret it in place.
static_assert(std::endian::native == std::endian::little,
              "tessera::io safetensors support assumes a little-endian host (the format is little-endian)");

/// Element types a safetensors tensor can be viewed as or written from (those with a dtype_of).
template <class T>
concept tensor_element = std::is_trivially_copyable_v<std::remove_cv_t<T>> &&
                         requires { dtype_of<std::remove_cv_t<T>>::value; };

/// One tensor of a safetensors file, as its header describes it.
struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  std::vector<index_t> shape;  ///< PyTorch order, outermost first; empty for a scalar (rank 0)
  std::size_t begin = 0;       ///< first byte, relative to the start of the data region
  std::size_t end = 0;         ///< one past the last byte, relative to the start of the data region

  [[nodiscard]] int rank() const noexcept { return static_cast<int>(shape.size()); }
  /// Number of elements: the product of the shape (1 for a scalar). Never overflows: the reader
  /// rejects shapes whose product does not fit.
  [[nodiscard]] index_t numel() const noexcept {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    return n;
  }
  [[nodiscard]] std::size_t n_bytes() const noexcept { return end - begin; }
};

/// The free-form string -> string "__metadata__" of a file (or the "metadata" of an index).
using metadata_map = std::map<std::string, std::string>;

/// Largest header accepted, in bytes: the reference implementation's limit (100 MB), which keeps a
/// corrupt length field from making the reader parse gigabytes.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

/// The dtype spelled `s` in a safetensors header, or nothing if tessera has no such dtype.
[[nodiscard]] inline std::optional<dtype> dtype_from_name(std::string_view s) noexcept {
  for (dtype d : {dtype::f64, dtype::f32, dtype::f16, dtype::bf16, dtype::i64, dtype::i32, dtype::i16, dtype::i8,
                  dtype::u8, dtype::boolean})
    if (name_of(d) == s) return d;
  return std::nullopt;
}

/// Rank of a dtype in the reference implementation's Dtype enum (declared in increasing alignment
/// order); its writer stores tensors by decreasing rank, then by name.
[[nodiscard]] constexpr int reference_order(dtype d) noexcept {
  switch (d) {
    case dtype::boolean: return 0;
    case dtype::u8: return 1;
    case dtype::i8: return 2;
    case dtype::i16: return 3;
    case dtype::f16: return 4;
    case dtype::bf16: return 5;
    case dtype::i32: return 6;
    case dtype::f32: return 7;
    case dtype::f64: return 8;
    case dtype::i64: return 9;
  }
  return -1;
}

/// "[2, 3, 4]".
[[nodiscard]] inline std::string shape_text(std::span<index_t const> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// A header after validation. Tensors are in data order (increasing begin, then end, then name).
struct parsed_header {
  std::vector<tensor_info> tensors;
  std::map<std::string, std::size_t, std::less<>> index;  // name -> position in `tensors`
  std::vector<std::string> names;                         // tensors[i].name, in data order
  metadata_map metadata;
  std::size_t data_offset = 0;  // 8 + header length: where the data region starts in the file
};

/// Reads one header entry {"dtype", "shape", "data_offsets"}; fields beyond these are ignored,
/// as the reference implementation ignores them.
[[nodiscard]] inline tensor_info parse_entry(std::string const& name, nlohmann::json const& e, std::size_t data_size,
                                             std::string const& label) {
  std::string const where = label + ": tensor " + quote_name(name);
  TESSERA_CHECK(e.is_object(), where, ": entry must be a JSON object with dtype, shape and data_offsets, got ",
                describe(e));
  auto const field = [&](char const* key) -> nlohmann::json const& {
    auto const it = e.find(key);
    TESSERA_CHECK(it != e.end(), where, ": missing field '", key, "'");
    return *it;
  };
  tensor_info t;
  t.name = name;

  nlohmann::json const& jd = field("dtype");
  TESSERA_CHECK(jd.is_string(), where, ": field 'dtype' must be a string, got ", describe(jd));
  std::optional<dtype> const type = dtype_from_name(jd.get_ref<std::string const&>());
  TESSERA_CHECK(type.has_value(), where, ": dtype ", describe(jd),
                " is not supported (tessera reads F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  t.type = *type;

  // Element count with overflow checks in shape order, as the reference does (checked_mul), so a
  // shape that overflows before a later 0 is rejected too.
  nlohmann::json const& js = field("shape");
  TESSERA_CHECK(js.is_array(), where, ": field 'shape' must be an array of non-negative integers, got ",
                describe(js));
  constexpr auto index_max = static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
  std::uint64_t numel = 1;
  t.shape.reserve(js.size());
  for (std::size_t i = 0; i < js.size(); ++i) {
    std::optional<std::uint64_t> const d = as_uint(js[i]);
    TESSERA_CHECK(d.has_value() && *d <= index_max, where, ": shape[", i, "] is ", describe(js[i]),
                  "; dimensions must be non-negative integers below 2^63");
    t.shape.push_back(static_cast<index_t>(*d));
    TESSERA_CHECK(*d == 0 || numel <= index_max / *d, where, ": shape ", shape_text(t.shape),
                  "... has more elements than fit in a 64-bit index (shape product overflows)");
    numel *= *d;
  }
  std::size_t const elem = size_of(t.type);
  TESSERA_CHECK(numel <= std::numeric_limits<std::size_t>::max() / elem, where, ": shape ", shape_text(t.shape),
                " of ", name_of(t.type), " needs more bytes than fit in 64 bits (size overflows)");
  std::size_t const want_bytes = static_cast<std::size_t>(numel) * elem;

  nlohmann::json const& jo = field("data_offsets");
  TESSERA_CHECK(jo.is_array() && jo.size() == 2, where,
                ": field 'data_offsets' must be an array [begin, end] of two non-negative integers, got ",
                jo.is_array() ? "an array of " + std::to_string(jo.size()) + " elements" : describe(jo));
  std::optional<std::uint64_t> const b = as_uint(jo[0]), en = as_uint(jo[1]);
  TESSERA_CHECK(b.has_value() && en.has_value(), where, ": data_offsets [", describe(jo[0]), ", ", describe(jo[1]),
                "] must be non-negative integers");
  TESSERA_CHECK(*b <= *en, where, ": data_offsets [", *b, ", ", *en, "] have begin > end");
  TESSERA_CHECK(*en <= data_size, where, ": data_offsets [", *b, ", ", *en, "] run past the end of the data region (",
                data_size, " bytes)");
  t.begin = static_cast<std::size_t>(*b);
  t.end = static_cast<std::size_t>(*en);
  TESSERA_CHECK(t.n_bytes() == want_bytes, where, ": data_offsets [", t.begin, ", ", t.end, ") hold ", t.n_bytes(),
                " bytes but dtype ", name_of(t.type), " with shape ", shape_text(t.shape), " needs ", want_bytes);
  return t;
}

/// Validates and reads the header of a whole safetensors file held in `file`. `label` starts every
/// error message (it names the file). The rules are the reference implementation's
/// (safetensors/src/tensor.rs, SafeTensors::read_metadata and Metadata::validate):
///   - 8-byte little-endian header length N, N <= 100'000'000, 8 + N <= file size;
///   - the header is a JSON object (UTF-8; nlohmann rejects ill-formed UTF-8 in strings);
///     "__metadata__", if present and not null, maps strings to strings; every other key is a tensor;
///   - each tensor's byte count equals prod(shape) * size_of(dtype), without overflow;
///   - sorted by offsets, the tensors tile the data region exactly: the first begins at 0, each
///     begins where the previous ends (no hole, no overlap) and the last ends at the end of the
///     file (no trailing bytes).
/// Stricter than the reference: duplicate JSON keys are an error (serde would keep the last), and
/// JSON nesting is capped at max_json_depth.
[[nodiscard]] inline parsed_header parse_safetensors(std::span<std::byte const> file, std::string const& label) {
  TESSERA_CHECK(file.size() >= 8, label, ": file is ", file.size(),
                " bytes, shorter than the 8-byte header length every safetensors file starts with");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(file[static_cast<std::size_t>(i)]);
  TESSERA_CHECK(n <= max_header_bytes, label, ": header length ", n, " exceeds the limit of ", max_header_bytes,
                " bytes (corrupt length field, or not a safetensors file)");
  TESSERA_CHECK(n <= file.size() - 8, label, ": header length ", n, " runs past the end of the file (", file.size(),
                " bytes)");
  parsed_header h;
  h.data_offset = 8 + static_cast<std::size_t>(n);
  std::size_t const data_size = file.size() - h.data_offset;

  std::string_view const text(reinterpret_cast<char const*>(file.data()) + 8, static_cast<std::size_t>(n));
  nlohmann::json const root = parse_json_strict(text, label + ": header");
  TESSERA_CHECK(root.is_object(), label, ": header must be a JSON object, got ", describe(root));

  h.tensors.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_null()) continue;  // serde reads null as "no metadata" (an Option); so do we
      TESSERA_CHECK(it->is_object(), label, ": __metadata__ must be a JSON object of strings, got ", describe(*it));
      for (auto m = it->begin(); m != it->end(); ++m) {
        TESSERA_CHECK(m->is_string(), label, ": __metadata__ value of ", quote_name(m.key()), " must be a string, got ",
                      describe(*m));
        h.metadata.emplace(m.key(), m->get<std::string>());
      }
      continue;
    }
    h.tensors.push_back(parse_entry(it.key(), *it, data_size, label));
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](tensor_info const& a, tensor_info const& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::size_t covered = 0;  // end of the previous tensor
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    tensor_info const& t = h.tensors[i];
    if (t.begin < covered) {
      tensor_info const& prev = h.tensors[i - 1];  // covered > 0, so there is a previous tensor
      TESSERA_FAIL(label, ": tensor ", quote_name(t.name), " at bytes [", t.begin, ", ", t.end, ") overlaps tensor ",
                   quote_name(prev.name), " at [", prev.begin, ", ", prev.end, ")");
    }
    TESSERA_CHECK(t.begin == covered, label, ": bytes [", covered, ", ", t.begin,
                  ") of the data region belong to no tensor (a hole before tensor ", quote_name(t.name),
                  "); safetensors requires the tensors to cover the data region without gaps");
    covered = t.end;
  }
  TESSERA_CHECK(covered == data_size, label, ": the data region has ", data_size, " bytes but the tensors cover only ",
                covered, " (trailing bytes after the last tensor)");

  h.names.reserve(h.tensors.size());
  for (std::size_t i = 0; i < h.tensors.size(); ++i) {
    h.index.emplace(h.tensors[i].name, i);
    h.names.push_back(h.tensors[i].name);
  }
  return h;
}

/// Checks that a BOOL tensor holds only 0 and 1: any other byte read as a C++ bool is undefined
/// behaviour, so a hostile file must not reach a bool view with one.
inline void check_bools(std::string const& label, tensor_info const& t, std::byte const* p) {
  for (std::size_t i = 0; i < t.n_bytes(); ++i)
    TESSERA_CHECK(std::to_integer<unsigned>(p[i]) <= 1u, label, ": BOOL tensor ", quote_name(t.name), " holds byte ",
                  std::to_integer<unsigned>(p[i]), " at element ", i, "; only 0 and 1 are valid");
}

/// The zero-copy view behind safetensors_file::view. `file_offset` = position of `p` in the file.
template <tensor_element T, int Rank>
[[nodiscard]] tensor_view<T const, Rank> typed_view(std::string const& label, tensor_info const& t, std::byte const* p,
                                                    std::size_t file_offset) {
  constexpr dtype want = dtype_of_v<T>;
  TESSERA_CHECK(t.type == want, label, ": tensor ", quote_name(t.name), " is ", name_of(t.type), ", a view of ",
                name_of(want), " was requested (to_float() converts floating-point dtypes)");
  TESSERA_CHECK(t.rank() == Rank, label, ": tensor ", quote_name(t.name), " has rank ", t.rank(), " (shape ",
                shape_text(t.shape), "), a view of rank ", Rank, " was requested");
  TESSERA_CHECK(reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0, label, ": tensor ", quote_name(t.name),
                " starts at file offset ", file_offset, ", which is not aligned for ", name_of(want), " (alignment ",
                alignof(T),
                "); safetensors does not require aligned data and this file's writer did not align it, so no "
                "zero-copy view is possible: use copy_to() or to_float(), which copy");
  if constexpr (std::is_same_v<std::remove_cv_t<T>, bool>) check_bools(label, t, p);
  std::array<index_t, Rank> extents{};
  std::copy(t.shape.begin(), t.shape.end(), extents.begin());
  return tensor_view<T const, Rank>(reinterpret_cast<T const*>(p), extents);
}

/// Copies a tensor's elements into `out` (any alignment); the dtype must be T's.
template <tensor_element T>
void copy_elements(std::string const& label, tensor_info const& t, std::byte const* p, std::span<T> out) {
  static_assert(!std::is_const_v<T>, "io::copy_to: the output span must be writable");
  TESSERA_CHECK(t.type == dtype_of_v<T>, label, ": tensor ", quote_name(t.name), " is ", name_of(t.type),
                ", copy_to<", name_of(dtype_of_v<T>), "> was requested");
  TESSERA_CHECK(out.size() == static_cast<std::size_t>(t.numel()), label, ": tensor ", quote_name(t.name), " has ",
                t.numel(), " elements (shape ", shape_text(t.shape), "), the output holds ", out.size());
  if constexpr (std::is_same_v<T, bool>) check_bools(label, t, p);
  if (t.n_bytes() > 0) std::memcpy(out.data(), p, t.n_bytes());
}

/// Loads element i of type S from possibly unaligned bytes.
template <class S>
[[nodiscard]] S load_unaligned(std::byte const* p, std::size_t i) noexcept {
  S v;
  std::memcpy(&v, p + i * sizeof(S), sizeof(S));
  return v;
}

/// Converts a floating-point tensor to f32 into `out` (any alignment of the source).
inline void convert_to_float(std::string const& label, tensor_info const& t, std::byte const* p, std::span<float> out) {
  std::size_t const n = static_cast<std::size_t>(t.numel());
  TESSERA_CHECK(out.size() == n, label, ": tensor ", quote_name(t.name), " has ", n, " elements (shape ",
                shape_text(t.shape), "), the output holds ", out.size());
  switch (t.type) {
    case dtype::f32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));
      return;
    case dtype::f64:  // round to nearest; magnitudes beyond FLT_MAX become +-inf
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_unaligned<double>(p, i));
      return;
    case dtype::bf16:  // exact
      for (std::size_t i = 0; i < n; ++i) out[i] = bf16::from_bits(load_unaligned<std::uint16_t>(p, i)).to_float();
      return;
    case dtype::f16:  // exact, subnormals included
      for (std::size_t i = 0; i < n; ++i) out[i] = f16::from_bits(load_unaligned<std::uint16_t>(p, i)).to_float();
      return;
    default:
      TESSERA_FAIL(label, ": tensor ", quote_name(t.name), " is ", name_of(t.type),
                   "; only F32, F64, BF16 and F16 tensors convert to float");
  }
}

}  // namespace detail

/// A safetensors file mapped into memory (POSIX mmap, read-only, MAP_PRIVATE). Move-only.
///
/// Opening validates the whole header (see detail::parse_safetensors for the exact rules, which
/// are the reference implementation's plus duplicate-key rejection); every malformed file throws
/// tessera::error naming the file and the problem. Tensor data is not read until used.
/// Views and spans handed out point into the mapping: they stay valid while this object (or the
/// object it was moved into) lives. The file must not be truncated while mapped (SIGBUS).
class safetensors_file {
 public:
  /// Maps and validates `path`. Throws tessera::error if the file cannot be opened or mapped, or
  /// is not a valid safetensors file.
  explicit safetensors_file(std::filesystem::path path)
      : path_(std::move(path)), label_("safetensors '" + path_.string() + "'"), map_(path_),
        header_(detail::parse_safetensors(map_.bytes(), label_)) {}

  safetensors_file(safetensors_file&&) noexcept = default;
  safetensors_file& operator=(safetensors_file&&) noexcept = default;
  safetensors_file(safetensors_file const&) = delete;
  safetensors_file& operator=(safetensors_file const&) = delete;
  ~safetensors_file() = default;

  [[nodiscard]] std::filesystem::path const& path() const noexcept { return path_; }
  /// Tensor names in data order (the order their bytes lie in the file: increasing offset, ties
  /// between empty tensors broken by name). For files from the reference writer: by decreasing
  /// dtype alignment, then by name.
  [[nodiscard]] std::vector<std::string> const& names() const noexcept { return header_.names; }
  /// Header entries, in the same order as names().
  [[nodiscard]] std::vector<tensor_info> const& tensors() const noexcept { return header_.tensors; }
  [[nodiscard]] std::size_t size() const noexcept { return header_.tensors.size(); }
  [[nodiscard]] bool contains(std::string_view name) const { return header_.index.find(name) != header_.index.end(); }
  /// The "__metadata__" map (empty if the file has none).
  [[nodiscard]] metadata_map const& metadata() const noexcept { return header_.metadata; }

  /// The header entry of `name`. Throws tessera::error naming the tensor if there is none.
  [[nodiscard]] tensor_info const& info(std::string_view name) const {
    auto const it = header_.index.find(name);
    if (it == header_.index.end())
      TESSERA_FAIL(label_, ": no tensor named ", detail::quote_name(name), " (the file has ", size(), " tensors)");
    return header_.tensors[it->second];
  }

  /// The raw little-endian bytes of `name` (any alignment). Throws if there is no such tensor.
  [[nodiscard]] std::span<std::byte const> bytes(std::string_view name) const {
    tensor_info const& t = info(name);
    return data().subspan(t.begin, t.n_bytes());
  }
  /// The whole data region (everything after the header).
  [[nodiscard]] std::span<std::byte const> data() const noexcept {
    return map_.bytes().subspan(header_.data_offset);
  }

  /// Zero-copy, read-only, contiguous view of `name` as T with rank Rank.
  /// Throws tessera::error if there is no such tensor, its dtype is not dtype_of_v<T>, its rank is
  /// not Rank, or its data is not aligned for T (files from the reference writer always are; see
  /// copy_to and to_float for unaligned data). Rank-0 tensors have no view: use copy_to. A bool
  /// view first checks that every byte is 0 or 1 (O(n)).
  template <tensor_element T, int Rank>
  [[nodiscard]] tensor_view<T const, Rank> view(std::string_view name) const {
    tensor_info const& t = info(name);
    return detail::typed_view<T, Rank>(label_, t, data().data() + t.begin, header_.data_offset + t.begin);
  }

  /// Copies `name` into `out` (out.size() == numel); works at any alignment. The dtype must be
  /// dtype_of_v<T> (no conversion). Throws tessera::error otherwise.
  template <tensor_element T>
  void copy_to(std::string_view name, std::span<T> out) const {
    tensor_info const& t = info(name);
    detail::copy_elements(label_, t, data().data() + t.begin, out);
  }

  /// Converts `name` (F32, F64, BF16 or F16) to f32 into `out` (out.size() == numel). BF16, F16 and
  /// F32 convert exactly; F64 rounds to nearest. Throws tessera::error for other dtypes or sizes.
  void read_as_float(std::string_view name, std::span<float> out) const {
    tensor_info const& t = info(name);
    detail::convert_to_float(label_, t, data().data() + t.begin, out);
  }
  /// read_as_float into a new vector of numel() floats.
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
    std::vector<float> out(static_cast<std::size_t>(info(name).numel()));
    read_as_float(name, out);
    return out;
  }

 private:
  std::filesystem::path path_;
  std::string label_;
  detail::mapped_file map_;
  detail::parsed_header header_;
};

/// A model checkpoint: one safetensors file, or a Hugging Face sharded checkpoint described by
/// model.safetensors.index.json ({"metadata": {...}, "weight_map": {"tensor": "shard file"}}).
/// Each shard is opened (mapped) once. Same read API as safetensors_file; names() is sorted.
class checkpoint {
 public:
  /// Opens `path`, which may be
  ///   - a directory holding model.safetensors.index.json (preferred) or model.safetensors,
  ///   - a "*.json" index file (shards are looked up in its directory),
  ///   - a single safetensors file.
  /// Index rules: "weight_map" must be an object of tensor name -> shard file name; shard names
  /// must be relative paths without ".." (symlinks, as in the Hugging Face cache, are followed);
  /// every shard named must exist; every tensor listed must be in the shard it is listed for; no
  /// tensor may be stored in two shards. Tensors a shard holds but the index does not list are
  /// still readable. Index "metadata" values that are not strings are kept as their JSON text
  /// (e.g. "total_size" -> "123456"). Throws tessera::error naming the file on any violation.
  explicit checkpoint(std::filesystem::path const& path) : path_(path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      fs::path const index = path / "model.safetensors.index.json";
      fs::path const single = path / "model.safetensors";
      if (fs::exists(index, ec)) {
        open_index(index);
      } else if (fs::exists(single, ec)) {
        open_single(single);
      } else {
        TESSERA_FAIL("io::checkpoint: directory '", path.string(),
                     "' has neither model.safetensors.index.json nor model.safetensors");
      }
    } else if (path.extension() == ".json") {
      open_index(path);
    } else {
      open_single(path);
    }
  }

  checkpoint(checkpoint&&) noexcept = default;
  checkpoint& operator=(checkpoint&&) noexcept = default;
  checkpoint(checkpoint const&) = delete;
  checkpoint& operator=(checkpoint const&) = delete;
  ~checkpoint() = default;

  /// What was opened: the safetensors file or the index file.
  [[nodiscard]] std::filesystem::path const& path() const noexcept { return path_; }
  /// Every tensor of every shard, sorted by name.
  [[nodiscard]] std::vector<std::string> const& names() const noexcept { return names_; }
  [[nodiscard]] std::size_t size() const noexcept { return names_.size(); }
  [[nodiscard]] bool contains(std::string_view name) const { return where_.find(name) != where_.end(); }
  /// The index's "metadata" (sharded) or the file's "__metadata__" (single file).
  [[nodiscard]] metadata_map const& metadata() const noexcept { return metadata_; }
  [[nodiscard]] std::size_t n_shards() const noexcept { return shards_.size(); }
  /// Shard i, in the order the index first names them (0 for a single file).
  [[nodiscard]] safetensors_file const& shard(std::size_t i) const {
    TESSERA_CHECK(i < shards_.size(), "io::checkpoint: shard ", i, " of ", shards_.size(), " requested");
    return shards_[i];
  }
  /// The shard that stores `name`. Throws tessera::error naming the tensor if no shard does.
  [[nodiscard]] safetensors_file const& shard_of(std::string_view name) const {
    auto const it = where_.find(name);
    if (it == where_.end())
      TESSERA_FAIL("io::checkpoint '", path_.string(), "': no tensor named ", detail::quote_name(name), " (",
                   names_.size(), " tensors in ", shards_.size(), " shard(s))");
    return shards_[it->second];
  }

  /// As safetensors_file::info / bytes / view / copy_to / read_as_float / to_float, on the shard
  /// that stores `name`.
  [[nodiscard]] tensor_info const& info(std::string_view name) const { return shard_of(name).info(name); }
  [[nodiscard]] std::span<std::byte const> bytes(std::string_view name) const { return shard_of(name).bytes(name); }
  template <tensor_element T, int Rank>
  [[nodiscard]] tensor_view<T const, Rank> view(std::string_view name) const {
    return shard_of(name).template view<T, Rank>(name);
  }
  template <tensor_element T>
  void copy_to(std::string_view name, std::span<T> out) const {
    shard_of(name).copy_to(name, out);
  }
  void read_as_float(std::string_view name, std::span<float> out) const { shard_of(name).read_as_float(name, out); }
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const { return shard_of(name).to_float(name); }

 private:
  void open_single(std::filesystem::path const& file) {
    shards_.emplace_back(file);
    metadata_ = shards_.front().metadata();
    index_shard_tensors();
  }

  // A shard name must stay inside the index's directory: relative, no "..", no NUL byte (which
  // would silently truncate the path handed to open()).
  static void check_shard_name(std::string const& label, std::string const& tensor, std::string const& shard) {
    std::filesystem::path const p(shard);
    bool ok = !shard.empty() && shard.find('\0') == std::string::npos && p.is_relative() && !p.has_root_name() &&
              !p.has_root_directory();
    for (auto const& part : p)
      if (part == "..") ok = false;
    TESSERA_CHECK(ok, label, ": tensor ", detail::quote_name(tensor), " is mapped to shard ", detail::quote_name(shard),
                  ", which is not a relative path inside the checkpoint directory (absolute or with '..')");
  }

  void open_index(std::filesystem::path const& index) {
    namespace fs = std::filesystem;
    std::string const label = "io::checkpoint: index '" + index.string() + "'";
    detail::mapped_file const file(index);
    std::span<std::byte const> const raw = file.bytes();
    TESSERA_CHECK(raw.size() <= max_header_bytes, label, ": ", raw.size(), " bytes is more than the limit of ",
                  max_header_bytes);
    nlohmann::json const root =
        detail::parse_json_strict(std::string_view(reinterpret_cast<char const*>(raw.data()), raw.size()), label);
    TESSERA_CHECK(root.is_object(), label, ": must be a JSON object, got ", detail::describe(root));
    if (auto const m = root.find("metadata"); m != root.end() && !m->is_null()) {
      TESSERA_CHECK(m->is_object(), label, ": 'metadata' must be a JSON object, got ", detail::describe(*m));
      for (auto it = m->begin(); it != m->end(); ++it)
        metadata_.emplace(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
    }
    auto const wm = root.find("weight_map");
    TESSERA_CHECK(wm != root.end(), label, ": missing 'weight_map'");
    TESSERA_CHECK(wm->is_object(), label, ": 'weight_map' must be a JSON object of tensor name -> shard file, got ",
                  detail::describe(*wm));

    fs::path const dir = index.parent_path();
    std::map<std::string, std::size_t> shard_ids;                 // shard file name -> position in shards_
    std::vector<std::pair<std::string, std::size_t>> listed;     // tensor -> shard, as the index says
    listed.reserve(wm->size());
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      TESSERA_CHECK(it->is_string(), label, ": weight_map value of tensor ", detail::quote_name(it.key()),
                    " must be a shard file name, got ", detail::describe(*it));
      std::string const& shard = it->get_ref<std::string const&>();
      auto found = shard_ids.find(shard);
      if (found == shard_ids.end()) {
        check_shard_name(label, it.key(), shard);
        fs::path const shard_path = dir / shard;
        std::error_code ec;
        TESSERA_CHECK(fs::is_regular_file(shard_path, ec), label, ": tensor ", detail::quote_name(it.key()),
                      " is mapped to shard ", detail::quote_name(shard), ", but '", shard_path.string(),
                      "' does not exist or is not a file");
        shards_.emplace_back(shard_path);
        found = shard_ids.emplace(shard, shards_.size() - 1).first;
      }
      listed.emplace_back(it.key(), found->second);
    }
    for (auto const& [tensor, s] : listed)
      TESSERA_CHECK(shards_[s].contains(tensor), label, ": lists tensor ", detail::quote_name(tensor), " in shard '",
                    shards_[s].path().filename().string(), "', which has no such tensor");
    index_shard_tensors();
  }

  // Maps every tensor of every shard to its shard; a tensor in two shards is an error.
  void index_shard_tensors() {
    for (std::size_t s = 0; s < shards_.size(); ++s)
      for (std::string const& name : shards_[s].names()) {
        auto const [it, inserted] = where_.emplace(name, s);
        TESSERA_CHECK(inserted, "io::checkpoint '", path_.string(), "': tensor ", detail::quote_name(name),
                      " is stored in two shards, '", shards_[it->second].path().filename().string(), "' and '",
                      shards_[s].path().filename().string(), "'");
      }
    names_.reserve(where_.size());
    for (auto const& [name, s] : where_) names_.push_back(name);
  }

  std::filesystem::path path_;
  std::vector<safetensors_file> shards_;
  std::map<std::string, std::size_t, std::less<>> where_;  // tensor -> position in shards_
  std::vector<std::string> names_;                         // sorted
  metadata_map metadata_;
};

/// One tensor to write: the bytes are borrowed (little-endian, row-major, contiguous) and must stay
/// valid until save_safetensors returns.
struct tensor_entry {
  std::string name;
  dtype type = dtype::f32;
  std::vector<index_t> shape;        ///< PyTorch order; empty for a scalar
  std::span<std::byte const> bytes;  ///< exactly prod(shape) * size_of(type) bytes
};

/// An entry for a contiguous host view (T may be const). Throws tessera::error if the view is
/// not contiguous (the file stores dense row-major data; copy strided views first).
template <tensor_element T, int Rank>
[[nodiscard]] tensor_entry make_entry(std::string name, tensor_view<T, Rank> v) {
  TESSERA_CHECK(v.is_contiguous(), "io::make_entry: view for tensor ", detail::quote_name(name),
                " is not contiguous; safetensors stores dense row-major data");
  auto const n = static_cast<std::size_t>(v.size());
  return {std::move(name), dtype_of_v<T>, std::vector<index_t>(v.extents().begin(), v.extents().end()),
          std::as_bytes(std::span<T const>(v.data(), n))};
}

/// An entry for `values` laid out with `shape` (row-major). The element count is checked by
/// save_safetensors.
template <tensor_element T>
[[nodiscard]] tensor_entry make_entry(std::string name, std::vector<index_t> shape, std::span<T> values) {
  return {std::move(name), dtype_of_v<T>, std::move(shape), std::as_bytes(std::span<T const>(values))};
}
template <tensor_element T>
[[nodiscard]] tensor_entry make_entry(std::string name, std::vector<index_t> shape, std::vector<T> const& values) {
  static_assert(!std::is_same_v<T, bool>,
                "io::make_entry: std::vector<bool> is bit-packed; write BOOL tensors from a std::span<bool const> "
                "or a std::vector<std::uint8_t> of 0/1 with tensor_entry{name, dtype::boolean, shape, bytes}");
  return make_entry(std::move(name), std::move(shape), std::span<T const>(values));
}

/// Writes `entries` and `metadata` to `path` as a safetensors file.
/// Layout, as the reference writer (safetensors.torch.save_file) produces byte for byte:
///   - tensors stored by decreasing dtype alignment (I64, F64, F32, I32, BF16, F16, I16, I8, U8,
///     BOOL), then by name; so with the 8-byte aligned header every tensor is aligned for its dtype;
///   - header JSON: "__metadata__" first (omitted when empty; its keys sorted), then the tensors in
///     storage order, each {"dtype","shape","data_offsets"}; compact, padded with spaces to a
///     multiple of 8 bytes.
/// Written to a temporary file in the same directory, fsynced and renamed over `path`: on any error
/// the target is left as it was. Throws tessera::error for duplicate names, the name
/// "__metadata__", a negative dimension, a byte count that is not prod(shape) * size_of(type),
/// names or metadata that are not valid UTF-8, or any I/O failure.
inline void save_safetensors(std::filesystem::path const& path, std::span<tensor_entry const> entries,
                             metadata_map const& metadata = {}) {
  std::string const label = "io::save_safetensors '" + path.string() + "'";
  for (tensor_entry const& e : entries) {
    TESSERA_CHECK(e.name != "__metadata__", label, ": '__metadata__' is reserved and cannot name a tensor");
    std::uint64_t numel = 1;
    constexpr auto index_max = static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
    for (index_t d : e.shape) {
      TESSERA_CHECK(d >= 0, label, ": tensor ", detail::quote_name(e.name), " has a negative dimension in shape ",
                    detail::shape_text(e.shape));
      auto const ud = static_cast<std::uint64_t>(d);
      TESSERA_CHECK(ud == 0 || numel <= index_max / ud, label, ": tensor ", detail::quote_name(e.name), " shape ",
                    detail::shape_text(e.shape), " overflows a 64-bit element count");
      numel *= ud;
    }
    std::size_t const elem = size_of(e.type);
    TESSERA_CHECK(numel <= e.bytes.size() / elem && numel * elem == e.bytes.size(), label, ": tensor ",
                  detail::quote_name(e.name), " has ", e.bytes.size(), " bytes but ", name_of(e.type), " with shape ",
                  detail::shape_text(e.shape), " needs ", numel, " x ", elem);
  }

  std::vector<tensor_entry const*> order;
  order.reserve(entries.size());
  for (tensor_entry const& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](tensor_entry const* a, tensor_entry const* b) { return a->name < b->name; });
  for (std::size_t i = 1; i < order.size(); ++i)
    TESSERA_CHECK(order[i - 1]->name != order[i]->name, label, ": tensor name ", detail::quote_name(order[i]->name),
                  " appears twice");
  // Storage order; std::string compares bytes as unsigned char, as Rust's String ordering does.
  std::stable_sort(order.begin(), order.end(), [](tensor_entry const* a, tensor_entry const* b) {
    return detail::reference_order(a->type) > detail::reference_order(b->type);
  });

  std::string header = "{";
  try {
    if (!metadata.empty()) header += "\"__metadata__\":" + nlohmann::json(metadata).dump();
    std::size_t offset = 0;
    for (tensor_entry const* e : order) {
      if (header.size() > 1) header += ',';
      header += nlohmann::json(e->name).dump();
      header += ":{\"dtype\":\"";
      header += name_of(e->type);
      header += "\",\"shape\":[";
      for (std::size_t i = 0; i < e->shape.size(); ++i) {
        if (i > 0) header += ',';
        header += std::to_string(e->shape[i]);
      }
      header += "],\"data_offsets\":[" + std::to_string(offset) + ',' + std::to_string(offset + e->bytes.size()) + "]}";
      offset += e->bytes.size();
    }
  } catch (nlohmann::json::exception const& ex) {  // type_error 316: invalid UTF-8
    TESSERA_FAIL(label, ": a tensor name or metadata string is not valid UTF-8 (", ex.what(), ")");
  }
  header += '}';
  header.resize((header.size() + 7) / 8 * 8, ' ');  // the reference pads to 8 so tensor data stays aligned
  TESSERA_CHECK(header.size() <= max_header_bytes, label, ": header of ", header.size(), " bytes exceeds the limit of ",
                max_header_bytes, " that readers enforce");

  std::array<std::byte, 8> length{};
  for (std::size_t i = 0; i < 8; ++i)
    length[i] = static_cast<std::byte>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xFFu);
  detail::atomic_file_writer out(path);
  out.write(length);
  out.write(std::as_bytes(std::span<char const>(header)));
  for (tensor_entry const* e : order) out.write(e->bytes);
  out.commit();
}

/// save_safetensors for a braced list of entries: save_safetensors(p, {make_entry(...), ...}).
inline void save_safetensors(std::filesystem::path const& path, std::initializer_list<tensor_entry> entries,
                             metadata_map const& metadata = {}) {
  save_safetensors(path, std::span<tensor_entry const>(entries.begin(), entries.size()), metadata);
}

}  // namespace tessera::io
