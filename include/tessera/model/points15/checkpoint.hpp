// SPDX-License-Identifier: Apache-2.0
// A whole POINTS1.5 checkpoint bound at once: the decoder (CustomLlama or 2025 Qwen2 names,
// model/qwen2/checkpoint.hpp), the vision tower (`vision_encoder.*`) and the projector
// (`vision_projector.*`, model/qwen2_vl/checkpoint.hpp), with every stored tensor accounted for.
#pragma once

#include <tessera/core/dtype.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/safetensors.hpp>
#include <tessera/io/weight_binder.hpp>
#include <tessera/lm/decoder_weights.hpp>
#include <tessera/model/points15/config.hpp>
#include <tessera/model/points15/projector.hpp>
#include <tessera/model/projector/patch_merger.hpp>
#include <tessera/model/qwen2/checkpoint.hpp>
#include <tessera/model/qwen2_vl/checkpoint.hpp>
#include <tessera/vision/vision_encoder.hpp>

#include <optional>
#include <utility>

namespace tessera::model {

/// Options of bind_points15.
struct points15_bind_options {
  io::dtype_policy dtypes = io::dtype_policy::exact;
  /// Skip (and list in the report) tensors the reference also leaves unused: RoPE inv_freq
  /// buffers, POINTS' vision_encoder.merger.*. Off: they are errors like any unbound tensor.
  bool ignore_known_unused = true;
  std::optional<decoder_naming> decoder;      ///< nothing = detect from the tensor names
  std::optional<vision_naming> vision;        ///< nothing = detect
  std::optional<projector_naming> projector;  ///< nothing = detect
};

/// The namings a POINTS1.5 checkpoint was bound with.
struct points15_namings {
  decoder_naming decoder = decoder_naming::points_custom_llama;
  vision_naming vision = vision_naming::points;
  projector_naming projector = projector_naming::points;
};

/// A whole POINTS1.5 checkpoint, bound. Projector: a policy of model/points15/projector.hpp.
template <weight_type T, class Projector = projector::patch_merger>
struct points15_weights {
  lm::decoder_weights<T> decoder;
  vision::vision_encoder_weights<T> vision;
  typename Projector::config_type projector_config;
  typename Projector::template weights_type<T> projector;
  points15_namings naming;
  io::binding_report report;
};

/// Binds a whole POINTS1.5 checkpoint (either LLM naming): decoder, ViT, projector (the policy's
/// tensors: POINTS1.5's PatchMerger by default); every stored tensor must be bound or
/// known-unused. Throws tessera::error naming the tensor otherwise.
template <weight_type T, class Projector = projector::patch_merger>
[[nodiscard]] points15_weights<T, Projector> bind_points15(io::checkpoint const& ckpt, points15_config const& cfg,
                                                           points15_bind_options const& opt = {}) {
  io::weight_binder b(ckpt, opt.dtypes, opt.ignore_known_unused);
  points15_weights<T, Projector> w;
  std::optional<decoder_naming> const dn = opt.decoder ? opt.decoder : detect_decoder_naming(ckpt);
  std::optional<vision_naming> const vn = opt.vision ? opt.vision : detect_vision_naming(ckpt);
  std::optional<projector_naming> pn = opt.projector;
  if (!pn) pn = Projector::detect(ckpt);
  w.decoder = bind_decoder<T>(b, cfg.decoder, dn);
  w.vision = bind_vision_encoder<T>(b, cfg.vision, vn);
  w.projector_config = Projector::configure(cfg, ckpt);
  w.projector = Projector::template bind<T>(b, w.projector_config, pn);
  w.naming = {*dn, *vn, pn.value_or(projector_naming::points)};  // the binds above throw when a naming is absent
  w.report = b.finish();
  return w;
}

}  // namespace tessera::model
