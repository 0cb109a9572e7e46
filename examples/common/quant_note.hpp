// SPDX-License-Identifier: Apache-2.0
// What the examples print about a decoder's quantized linear layers.
#pragma once

#include <tessera/lm/decoder_weights.hpp>
#include <tessera/quant/format.hpp>

#include <string>

namespace examples {

/// ", <who> q8 (groups of 32)" when the decoder's linear layers are quantized (on load or as
/// stored in the checkpoint), "" when they are dense.
template <class T>
[[nodiscard]] std::string linear_layers_note(tessera::lm::decoder_weights<T> const& w, char const* who) {
  if (w.layers.empty()) return "";
  tessera::quant::qmatrix const& q = w.layers.front().down.quantized;
  if (q.empty()) return "";
  return std::string(", ") + who + " " + std::string(tessera::quant::name_of(q.format)) + " (groups of " +
         std::to_string(q.group) + ")";
}

}  // namespace examples
