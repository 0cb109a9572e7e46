// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the tokenizer.json loader on arbitrary bytes; a tokenizer that loads then encodes
// and decodes a fixed text with special tokens, and decodes ids made from the input's tail.
#include <tessera/text/tokenizer.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const json(reinterpret_cast<char const*>(data), size);
  try {
    auto const tok = tessera::text::tokenizer::from_tokenizer_json_text(json, "fuzz");
    std::vector<tessera::text::token_id> ids =
        tok.encode("<|im_start|>user\nHello, wörld! 123 \t\n  naïve café 東京<|im_end|>\n");
    std::string const back = tok.decode(ids);
    (void)back;
    // Ids from the input bytes (most out of range: those must be refused, not read).
    std::vector<tessera::text::token_id> raw;
    for (std::size_t i = 0; i + 1 < size && raw.size() < 64; i += 2)
      raw.push_back(static_cast<tessera::text::token_id>(data[i] | (data[i + 1] << 8)) %
                    static_cast<tessera::text::token_id>(tok.vocab_size() + 2));
    auto stream = tok.stream();
    for (auto id : raw) (void)stream.push(id);
    (void)stream.finish();
  } catch (tessera::error const&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
