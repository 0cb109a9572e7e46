// SPDX-License-Identifier: Apache-2.0
// text::token_id -- the one type of token ids, shared by the tokenizer, the decoder and the sampler
// (a header of its own so that the decoder and the sampler need not include the tokenizer).
#pragma once

#include <cstdint>

namespace tessera::text {

/// A token id (an index into the model's embedding table).
using token_id = std::int32_t;

}  // namespace tessera::text
