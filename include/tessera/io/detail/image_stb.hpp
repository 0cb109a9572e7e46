// SPDX-License-Identifier: Apache-2.0
// The calls into stb_image (Debian's libstb: the implementation is compiled into the shared
// library, never into tessera), which decodes the LZW data of GIF frames (image_gif.hpp): owning
// pointers for its results, its failure reason in every error, and a cross-check of stb's own
// header parse against the size tessera budgeted for.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <stb_image.h>

namespace tessera::io::detail {

struct stbi_free_deleter {
  void operator()(void* p) const noexcept { stbi_image_free(p); }
};
/// Pixels returned by stbi_load_*: `channels` interleaved samples per pixel, rows top to bottom.
template <class T>
struct stbi_pixels {
  std::unique_ptr<T, stbi_free_deleter> data;
  int channels = 0;
};

/// stb's reason for its last failure in this thread (stb 2.27 keeps it thread-local).
[[nodiscard]] inline char const* stbi_reason() noexcept {
  char const* r = stbi_failure_reason();
  return r != nullptr ? r : "no reason given";
}

/// stb takes the length as int.
inline void check_stb_length(image_input const& in, std::size_t size) {
  TESSERA_CHECK(size <= static_cast<std::size_t>(INT_MAX), *in.label, ": ", size,
                " bytes is more than stb_image can take (2^31 - 1)");
}

/// Asks stb_image to parse the header of `data` and checks that it sees the image tessera's own
/// parser budgeted for, so stb never allocates for a size that was not checked.
inline void stb_cross_check(image_input const& in, std::uint8_t const* data, std::size_t size, char const* format,
                            index_t height, index_t width) {
  check_stb_length(in, size);
  int w = 0, h = 0, c = 0;
  TESSERA_CHECK(stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &c) == 1, *in.label, ": stb_image rejects the ",
                format, " header: ", stbi_reason());
  TESSERA_CHECK(w == width && h == height, *in.label, ": stb_image reads the ", format, " header as ", w, " x ", h,
                " pixels, tessera as ", width, " x ", height);
}

/// stbi_load_from_memory (8 bits per sample) with `req_channels` (0 = the file's own channels).
/// Before decoding, this thread's stb flags are reset so that a vertical flip another part of the
/// program may have requested does not apply (stbi_set_flip_vertically_on_load_thread(0)).
[[nodiscard]] inline stbi_pixels<std::uint8_t> stb_load_8(image_input const& in, std::uint8_t const* data,
                                                          std::size_t size, int req_channels, char const* format,
                                                          index_t height, index_t width) {
  check_stb_length(in, size);
  stbi_set_flip_vertically_on_load_thread(0);
  int w = 0, h = 0, c = 0;
  stbi_pixels<std::uint8_t> out;
  out.data.reset(stbi_load_from_memory(data, static_cast<int>(size), &w, &h, &c, req_channels));
  TESSERA_CHECK(out.data != nullptr, *in.label, ": stb_image cannot decode this ", format, ": ", stbi_reason());
  TESSERA_CHECK(w == width && h == height, *in.label, ": stb_image decoded ", w, " x ", h, " pixels, the ", format,
                " header says ", width, " x ", height);
  out.channels = req_channels != 0 ? req_channels : c;
  return out;
}

}  // namespace tessera::io::detail
