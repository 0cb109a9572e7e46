// SPDX-License-Identifier: Apache-2.0
// model::write_quantized_checkpoint -- a copy of a Qwen2 / Qwen2.5 or POINTS1.5 checkpoint
// directory with the decoder's linear layers stored quantized (8 or 4 bits, docs/quantization.md):
// each <base>.weight they quantize becomes <base>.qweight and <base>.scales; every other tensor
// and every other file is copied as is. The copy loads as it is, mmapped, with the same loaders
// (model::load_qwen2_decoder, model::points15::load), and gives the same logits as quantizing the
// original on load.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/lm/quantize.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/qwen2/checkpoint.hpp>
#include <tessera/quant/format.hpp>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tessera::model {

/// The matrices quantize_decoder quantizes, as the checkpoint names them: q, k, v, o, gate, up,
/// down (CustomLlama: key_value_dense, dense_h_to_4h) of every layer, and the LM head when asked
/// and untied.
[[nodiscard]] inline std::vector<io::tensor_spec> decoder_linear_specs(lm::decoder_config const& cfg,
                                                                       decoder_naming naming, bool lm_head) {
  detail::decoder_specs const s = detail::make_decoder_specs(cfg, naming);
  std::vector<io::tensor_spec> out;
  for (detail::decoder_layer_specs const& l : s.layers) {
    out.push_back(l.q);
    out.push_back(l.o);
    out.push_back(l.down);
    for (auto const* t : {&l.k, &l.v, &l.kv, &l.gate, &l.up, &l.up_gate})
      if (*t) out.push_back(**t);
  }
  if (lm_head && s.lm_head) out.push_back(*s.lm_head);
  return out;
}

/// What write_quantized_checkpoint did.
struct quantized_checkpoint_report {
  std::size_t quantized = 0;   ///< matrices quantized
  std::size_t copied = 0;      ///< tensors copied as they were
  std::size_t files = 0;       ///< other files copied (config.json, tokenizer files, ...)
  double bytes_before = 0, bytes_after = 0;  ///< of the tensors
};

/// Writes `dst`/model.safetensors (one file) with the decoder of the checkpoint in `src` quantized
/// as `o` says, and copies every other file of `src` but its safetensors and their index.
/// The safetensors metadata records "tessera.quantization" (q8 / q4), "tessera.group_size" and
/// "tessera.lm_head". `dst` is created; it must not be `src`. Throws tessera::error naming the
/// file or tensor on any problem (a format of dense, a config tessera cannot read, a width the
/// group does not divide, I/O).
inline quantized_checkpoint_report write_quantized_checkpoint(std::filesystem::path const& src,
                                                              std::filesystem::path const& dst,
                                                              lm::quantize_options const& o) {
  namespace fs = std::filesystem;
  TESSERA_CHECK(o.format != quant::weight_format::dense,
                "model::write_quantized_checkpoint: the format must be q8 or q4, not dense");
  std::error_code ec;
  TESSERA_CHECK(!fs::equivalent(src, dst, ec), "model::write_quantized_checkpoint: the destination ", dst.string(),
                " is the source directory");
  lm::decoder_config const cfg = decoder_of(read_model_config(src));
  io::checkpoint const ckpt(src);
  std::optional<decoder_naming> const naming = detect_decoder_naming(ckpt);
  TESSERA_CHECK(naming.has_value(), "model::write_quantized_checkpoint: ", src.string(), " holds no decoder");
  std::map<std::string, quant::weight_format> targets;  // tensor name -> its format
  bool const head = o.lm_head != quant::weight_format::dense;
  std::vector<io::tensor_spec> const layers = decoder_linear_specs(cfg, *naming, false);
  std::vector<io::tensor_spec> const all = decoder_linear_specs(cfg, *naming, head);
  for (std::size_t i = 0; i < all.size(); ++i) {
    io::tensor_spec const& t = all[i];
    quant::weight_format const f = i < layers.size() ? o.format : o.lm_head;
    TESSERA_CHECK(ckpt.contains(t.name), "model::write_quantized_checkpoint: ", src.string(), " has no ", t.name, " (",
                  t.what, ")");
    TESSERA_CHECK(ckpt.info(t.name).shape == t.shape, "model::write_quantized_checkpoint: ", t.name, " (", t.what,
                  ") has the wrong shape");
    quant::check_group(f, t.shape[1], o.group, "model::write_quantized_checkpoint: " + t.name);
    targets.emplace(t.name, f);
  }

  quantized_checkpoint_report r;
  std::deque<quant::quantized_matrix> made;  // the new tensors' bytes, alive until the file is written
  std::vector<io::tensor_entry> entries;
  for (std::string const& name : ckpt.names()) {
    io::tensor_info const& t = ckpt.info(name);
    r.bytes_before += static_cast<double>(t.end - t.begin);
    auto const target = targets.find(name);
    if (target == targets.end()) {
      entries.push_back({name, t.type, t.shape, ckpt.bytes(name)});
      r.bytes_after += static_cast<double>(t.end - t.begin);
      ++r.copied;
      continue;
    }
    std::vector<float> const w = ckpt.to_float(name);
    made.push_back(
        quant::quantize(tensor_view<float const, 2>(w.data(), {t.shape[0], t.shape[1]}), target->second, o.group));
    quant::quantized_matrix const& q = made.back();
    entries.push_back({io::quantized_name(name, "qweight"),
                       target->second == quant::weight_format::q8 ? dtype::i8 : dtype::u8,
                       {q.rows, quant::row_bytes(q.format, q.cols)},
                       std::as_bytes(std::span(q.data))});
    entries.push_back({io::quantized_name(name, "scales"), dtype::f16, {q.rows, q.cols / q.group},
                       std::as_bytes(std::span(q.scales))});
    r.bytes_after += static_cast<double>(q.data.size() + 2 * q.scales.size());
    ++r.quantized;
  }
  fs::create_directories(dst);
  io::metadata_map meta = ckpt.metadata();
  meta["format"] = "pt";
  meta["tessera.quantization"] = std::string(quant::name_of(o.format));
  meta["tessera.group_size"] = std::to_string(o.group);
  meta["tessera.lm_head"] = head ? std::string(quant::name_of(o.lm_head)) : std::string("as stored");
  io::save_safetensors(dst / "model.safetensors", std::span<io::tensor_entry const>(entries), meta);

  for (fs::directory_entry const& e : fs::directory_iterator(src)) {
    std::string const file = e.path().filename().string();
    if (!e.is_regular_file() || file.ends_with(".safetensors") || file.ends_with(".safetensors.index.json")) continue;
    fs::copy_file(e.path(), dst / file, fs::copy_options::overwrite_existing, ec);
    TESSERA_CHECK(!ec, "model::write_quantized_checkpoint: copying ", e.path().string(), ": ", ec.message());
    ++r.files;
  }
  return r;
}

}  // namespace tessera::model
