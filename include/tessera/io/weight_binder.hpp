// SPDX-License-Identifier: Apache-2.0
// io::weight_binder -- binds the tensors of a checkpoint (io::checkpoint: safetensors, single or
// sharded) to typed views, zero-copy into the mapped files where the stored dtype is the one asked
// for, converted into owned buffers where the caller allows it. It records which tensors were
// bound, so that a model's loader can refuse a checkpoint holding tensors nobody bound. Generic:
// the names a model family stores live in model/<family>/checkpoint.hpp.
#pragma once

#include <tessera/core/buffer.hpp>
#include <tessera/core/config.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/quant/format.hpp>
#include <tessera/io/detail/strict_json.hpp>
#include <tessera/io/detail/weight_binder_storage.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/nn/linear.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::io {

/// What binding does with a tensor stored in another dtype than the one requested.
enum class dtype_policy {
  exact,    ///< refuse it: every view is zero-copy into the mapped file
  convert,  ///< convert it (round to nearest even) into a buffer owned by the weights struct
};


/// One tensor a weight map expects: checkpoint name, stored shape (PyTorch order) and what it is.
struct tensor_spec {
  std::string name;
  std::vector<index_t> shape;
  std::string what;
};

/// A tensor a checkpoint may hold that no block reads, and why it may stay unbound. With a
/// shape, a present tensor must have it (the reference refuses to load it otherwise).
struct unused_spec {
  std::string name;
  std::optional<std::vector<index_t>> shape;
  std::string reason;
};

/// A checkpoint tensor deliberately left unbound.
struct skipped_tensor {
  std::string name;
  std::string reason;
};

/// What a binding did, for callers who want to see it (finish() returns it).
struct binding_report {
  std::size_t n_bound = 0;          ///< tensors bound (zero-copy or converted)
  std::size_t n_converted = 0;      ///< of which were converted into owned buffers
  std::size_t converted_bytes = 0;  ///< bytes of those buffers
  std::vector<skipped_tensor> skipped;  ///< present, known unused or tied duplicates; sorted by name
};

/// Tensors binding converted to T, owned (shared) by the weights that view them. Empty when
/// every view points into the mapped checkpoint.
template <weight_type T>
struct converted_tensors {
  std::vector<host_buffer<T>> buffers;
};


/// Binds tensors of one checkpoint and keeps track of which ones were used, so that after all
/// parts are bound finish() can refuse a checkpoint holding tensors nobody bound (a sign of a
/// different model or naming) while listing the known-unused ones it skipped.
class weight_binder {
 public:
  /// `ckpt` must outlive the binder and every view bound through it.
  explicit weight_binder(checkpoint const& ckpt, dtype_policy dtypes = dtype_policy::exact,
                         bool ignore_known_unused = true)
      : ckpt_(&ckpt), label_(detail::checkpoint_label(ckpt)), dtypes_(dtypes),
        ignore_known_unused_(ignore_known_unused), used_(ckpt.size(), false) {}

  [[nodiscard]] checkpoint const& source() const noexcept { return *ckpt_; }
  [[nodiscard]] std::string const& label() const noexcept { return label_; }
  [[nodiscard]] dtype_policy dtypes() const noexcept { return dtypes_; }

  /// The elements of tensor `spec.name` as T: a pointer into the mapped file when it is stored
  /// as T and aligned for T; otherwise (only under dtype_policy::convert) a converted copy in a
  /// new buffer appended to `store`. The stored shape must equal spec.shape exactly.
  /// Throws tessera::error naming the tensor, what it is and both shapes / dtypes.
  template <weight_type T>
  [[nodiscard]] T const* take(tensor_spec const& spec, converted_tensors<T>& store) {
    std::size_t const pos = position(spec.name);
    if (pos == npos)
      TESSERA_FAIL(label_, ": missing tensor ", detail::quote_name(spec.name), " (", spec.what, ", shape ",
                   detail::shape_text(spec.shape), ")");
    tensor_info const& t = ckpt_->info(spec.name);
    if (t.shape != spec.shape)
      TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name), " (", spec.what, ") has shape ",
                   detail::shape_text(t.shape), ", expected ", detail::shape_text(spec.shape));
    std::span<std::byte const> const bytes = ckpt_->bytes(spec.name);
    bool const same = t.type == dtype_of_v<T>;
    bool const aligned = reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(T) == 0;
    if (!used_[pos]) ++report_.n_bound;
    used_[pos] = true;
    if (same && aligned) return reinterpret_cast<T const*>(bytes.data());
    if (dtypes_ == dtype_policy::exact) {
      if (!same)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name), " (", spec.what, ") is ", name_of(t.type),
                     ", weights of ", name_of(dtype_of_v<T>), " were requested; dtype_policy::convert converts it "
                     "into an owned buffer");
      TESSERA_FAIL(label_, ": tensor ", detail::quote_name(spec.name),
                   " is not aligned for its dtype in the file, so no zero-copy view is possible; "
                   "dtype_policy::convert copies it");
    }
    host_buffer<T> buf(t.numel());
    detail::convert_elements<T>(label_, t, bytes.data(), buf.span());
    ++report_.n_converted;
    report_.converted_bytes += static_cast<std::size_t>(t.numel()) * sizeof(T);
    T const* p = buf.data();
    store.buffers.push_back(std::move(buf));
    return p;
  }

  /// The bytes of tensor `name` exactly as stored: its dtype must be `type` and its shape `shape`
  /// (no conversion; for quantized weights and their scales). Marks it bound.
  [[nodiscard]] std::byte const* take_bytes(std::string const& name, dtype type, std::vector<index_t> const& shape,
                                            std::string const& what) {
    std::size_t const pos = position(name);
    if (pos == npos) TESSERA_FAIL(label_, ": missing tensor ", detail::quote_name(name), " (", what, ")");
    tensor_info const& t = ckpt_->info(name);
    if (t.type != type || t.shape != shape)
      TESSERA_FAIL(label_, ": tensor ", detail::quote_name(name), " (", what, ") is ", name_of(t.type), " ",
                   detail::shape_text(t.shape), ", expected ", name_of(type), " ", detail::shape_text(shape));
    if (!used_[pos]) ++report_.n_bound;
    used_[pos] = true;
    return ckpt_->bytes(name).data();
  }

  [[nodiscard]] bool contains(std::string_view name) const { return position(name) != npos; }
  /// Whether a tensor has been bound or skipped.
  [[nodiscard]] bool handled(std::string_view name) const {
    std::size_t const pos = position(name);
    return pos != npos && used_[pos];
  }

  /// Declares a tensor known to be unused (see unused_spec); finish() skips it if present.
  void allow_unused(unused_spec spec) {
    std::string name = spec.name;
    allowed_.insert_or_assign(std::move(name), std::move(spec));
  }
  /// Marks a present tensor as deliberately not bound (e.g. a tied duplicate), with the reason.
  void skip(std::string const& name, std::string reason) {
    std::size_t const pos = position(name);
    TESSERA_CHECK(pos != npos, label_, ": cannot skip tensor ", detail::quote_name(name), ", which is not stored");
    if (!used_[pos]) report_.skipped.push_back({name, std::move(reason)});
    used_[pos] = true;
  }

  /// Names of the stored tensors not bound or skipped so far (sorted).
  [[nodiscard]] std::vector<std::string> unhandled() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < used_.size(); ++i)
      if (!used_[i]) out.push_back(ckpt_->names()[i]);
    return out;
  }

  /// Ends the binding. Every stored tensor must have been bound, skipped, or declared known-unused
  /// (then it is listed in the report, if ignore_known_unused; with ignore_known_unused false it
  /// is an error too). A known-unused tensor with a declared shape must have that shape.
  /// Throws tessera::error naming the unbound tensors (the first 8, and how many in all).
  [[nodiscard]] binding_report finish() const {
    binding_report r = report_;
    std::vector<std::string> extra;
    for (std::string const& name : unhandled()) {
      auto const it = allowed_.find(name);
      if (it == allowed_.end()) {
        extra.push_back(name);
        continue;
      }
      unused_spec const& u = it->second;
      tensor_info const& t = ckpt_->info(name);
      if (u.shape && t.shape != *u.shape)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(name), " (unused: ", u.reason, ") has shape ",
                     detail::shape_text(t.shape), ", expected ", detail::shape_text(*u.shape),
                     "; the reference model would refuse to load it");
      if (!ignore_known_unused_)
        TESSERA_FAIL(label_, ": tensor ", detail::quote_name(name), " is not bound (", u.reason,
                     ") and ignore_known_unused is off");
      r.skipped.push_back({name, u.reason});
    }
    if (!extra.empty()) {
      std::string list;
      for (std::size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", " : "") + detail::quote_name(extra[i]);
      TESSERA_FAIL(label_, ": ", extra.size(), " stored tensor(s) were bound by no part: ", list,
                   extra.size() > 8 ? ", ..." : "",
                   " (an unexpected tensor usually means another model, another naming, or a part left unbound)");
    }
    std::sort(r.skipped.begin(), r.skipped.end(),
              [](skipped_tensor const& a, skipped_tensor const& b) { return a.name < b.name; });
    return r;
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  [[nodiscard]] std::size_t position(std::string_view name) const {
    auto const& names = ckpt_->names();  // sorted
    auto const it = std::lower_bound(names.begin(), names.end(), name,
                                     [](std::string const& a, std::string_view b) { return a < b; });
    if (it == names.end() || *it != name) return npos;
    return static_cast<std::size_t>(it - names.begin());
  }

  checkpoint const* ckpt_;
  std::string label_;
  dtype_policy dtypes_;
  bool ignore_known_unused_;
  std::vector<bool> used_;  // parallel to ckpt_->names()
  std::map<std::string, unused_spec, std::less<>> allowed_;
  binding_report report_;
};


/// The name a quantized checkpoint gives the parts of the matrix `weight_name` (<base>.weight):
/// <base>.qweight (int8 [rows, cols] for q8, uint8 [rows, cols / 2] for q4) and <base>.scales
/// (f16 [rows, cols / group]); docs/quantization.md.
[[nodiscard]] inline std::string quantized_name(std::string const& weight_name, char const* part) {
  std::string base = weight_name;
  if (base.size() > 7 && base.ends_with(".weight")) base.resize(base.size() - 7);
  return base + "." + part;
}

/// Binds the quantized form of the matrix `w` ([rows, cols] as w.shape says) when the checkpoint
/// stores <base>.qweight: the format from its dtype (I8: q8, U8: q4), the group from the scales'
/// width. Nothing when it stores no <base>.qweight. Throws tessera::error naming the tensor for a
/// wrong dtype or shape, or a group that does not fit (quant::check_group).
[[nodiscard]] inline std::optional<quant::qmatrix> bind_quantized(weight_binder& b, tensor_spec const& w) {
  std::string const qname = quantized_name(w.name, "qweight"), sname = quantized_name(w.name, "scales");
  if (!b.contains(qname)) return std::nullopt;
  TESSERA_CHECK(w.shape.size() == 2, b.label(), ": ", detail::quote_name(qname), " quantizes a tensor of rank ",
                w.shape.size(), "; only matrices are quantized");
  TESSERA_CHECK(!b.contains(w.name), b.label(), ": stores both ", detail::quote_name(w.name), " and its quantized form ",
                detail::quote_name(qname), "; a checkpoint holds one of them");
  index_t const rows = w.shape[0], cols = w.shape[1];
  tensor_info const& qi = b.source().info(qname);
  TESSERA_CHECK(qi.type == dtype::i8 || qi.type == dtype::u8, b.label(), ": ", detail::quote_name(qname), " (", w.what,
                ", quantized) is ", name_of(qi.type), "; I8 (8-bit weights) or U8 (4-bit weights, two per byte) expected");
  quant::weight_format const f = qi.type == dtype::i8 ? quant::weight_format::q8 : quant::weight_format::q4;
  tensor_info const& si = b.source().info(b.contains(sname) ? sname : qname);
  TESSERA_CHECK(b.contains(sname) && si.shape.size() == 2 && si.shape[1] >= 1 && cols % si.shape[1] == 0, b.label(), ": ",
                detail::quote_name(qname), " needs ", detail::quote_name(sname), " of shape [", rows,
                ", in_features / group]");
  index_t const group = cols / si.shape[1];
  quant::check_group(f, cols, group, b.label() + ": " + detail::quote_name(qname));
  std::string const what = w.what + " (" + std::string(quant::name_of(f)) + ")";
  auto const* data = reinterpret_cast<std::uint8_t const*>(
      b.take_bytes(qname, qi.type, {rows, quant::row_bytes(f, cols)}, what));
  auto const* scales = reinterpret_cast<f16 const*>(b.take_bytes(sname, dtype::f16, {rows, cols / group}, what + " scales"));
  TESSERA_CHECK(reinterpret_cast<std::uintptr_t>(scales) % alignof(f16) == 0, b.label(), ": ",
                detail::quote_name(sname), " is not aligned for f16 in the file");
  return quant::qmatrix{f, rows, cols, group, data, quant::row_bytes(f, cols), scales, cols / group};
}

/// Binds tensor by tensor (see tensor_spec) as typed views, all converted tensors into one
/// converted_tensors store, which keep_alive() hands to the weights that view them.
template <weight_type T>
class part_binder {
 public:
  explicit part_binder(weight_binder& b) : b_(b), store_(std::make_shared<converted_tensors<T>>()) {}
  [[nodiscard]] T const* ptr(tensor_spec const& s) { return b_.take<T>(s, *store_); }
  [[nodiscard]] tensor_view<T const, 1> vec(tensor_spec const& s) { return {ptr(s), {s.shape[0]}}; }
  [[nodiscard]] tensor_view<T const, 2> mat(tensor_spec const& s) { return {ptr(s), {s.shape[0], s.shape[1]}}; }
  [[nodiscard]] std::optional<tensor_view<T const, 1>> opt_vec(std::optional<tensor_spec> const& s) {
    if (!s) return std::nullopt;
    return vec(*s);
  }
  /// A linear layer: `w` itself, or, where the checkpoint stores it quantized (docs/quantization.md:
  /// <base>.qweight and <base>.scales instead of <base>.weight), views of those.
  [[nodiscard]] nn::linear_weights<T> linear(tensor_spec const& w, std::optional<tensor_spec> const& b) {
    if (auto q = quantized(w)) return {tensor_view<T const, 2>(), opt_vec(b), *q};
    return {mat(w), opt_vec(b)};
  }
  /// The quantized form of the matrix `w` names (<base>.weight), if the checkpoint stores one.
  [[nodiscard]] std::optional<quant::qmatrix> quantized(tensor_spec const& w) {
    return bind_quantized(b_, w);
  }
  [[nodiscard]] std::shared_ptr<converted_tensors<T> const> store() const { return store_; }
  [[nodiscard]] std::shared_ptr<void const> keep_alive() const { return store_; }

 private:
  weight_binder& b_;
  std::shared_ptr<converted_tensors<T>> store_;
};


/// The one naming (of `namings`) whose key tensor `ckpt` holds, key(naming) naming that tensor;
/// nothing if none; an error if several. `what` names the part in the message.
template <class Naming>
[[nodiscard]] std::optional<Naming> detect_naming(checkpoint const& ckpt, std::initializer_list<Naming> namings,
                                               std::string (*key)(Naming), char const* what) {
  std::vector<Naming> found;
  for (Naming n : namings)
    if (ckpt.contains(key(n))) found.push_back(n);
  if (found.empty()) return std::nullopt;
  if (found.size() > 1) {
    std::string names;
    for (Naming n : found) names += (names.empty() ? "" : ", ") + std::string(name_of(n));
    TESSERA_FAIL(detail::checkpoint_label(ckpt), ": holds ", what, " tensors of several namings (", names,
                 "); choose one in bind_options");
  }
  return found.front();
}

}  // namespace tessera::io
