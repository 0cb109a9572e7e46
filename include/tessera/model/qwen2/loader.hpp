// SPDX-License-Identifier: Apache-2.0
// model::load_qwen2_decoder -- a Qwen2 / Qwen2.5 checkpoint directory, as downloaded (config.json,
// model.safetensors or a sharded index), loaded into an lm::qwen2_decoder whose weights stay
// mmapped: config reader + checkpoint names + decoder, in one call.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/core/dtype.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/lm/qwen2_decoder.hpp>
#include <tessera/model/qwen2/checkpoint.hpp>
#include <tessera/model/qwen2/config.hpp>

#include <filesystem>
#include <memory>
#include <utility>

namespace tessera::model {

/// A decoder loaded from disk together with what it needs to stay valid: the mapped checkpoint
/// (its weights are zero-copy views into it where the stored dtype is T).
template <backend::tag Backend, weight_type T>
struct loaded_decoder {
  qwen2_config config;                   ///< the config.json as read
  io::binding_report report;         ///< what binding did (tensors bound, converted, skipped)
  lm::qwen2_decoder<Backend, T> decoder;
};

/// Loads a Qwen2 / Qwen2.5 checkpoint: `dir` holds config.json and model.safetensors (or a
/// sharded index), in HF naming (or POINTS1.5's CustomLlama / 2025 names, detected from the
/// tensor names). Weights stored as T are mmapped, never copied; others are converted into
/// owned buffers when `dtypes` is io::dtype_policy::convert, else refused. Throws tessera::error
/// naming the file, the tensor or the config field on any problem.
template <backend::tag Backend, weight_type T>
[[nodiscard]] loaded_decoder<Backend, T> load_qwen2_decoder(std::filesystem::path const& dir,
                                                            io::dtype_policy dtypes = io::dtype_policy::exact,
                                                            lm::decoder_options const& options = {}) {
  qwen2_config cfg = read_qwen2_config(dir);
  auto ckpt = std::make_shared<io::checkpoint const>(dir);
  qwen2_bind_options bind;
  bind.dtypes = dtypes;
  qwen2_weights<T> w = bind_qwen2<T>(*ckpt, cfg, bind);
  lm::qwen2_decoder<Backend, T> dec(cfg.decoder, std::move(w.decoder), options, std::move(ckpt));
  return {std::move(cfg), std::move(w.report), std::move(dec)};
}

}  // namespace tessera::model
