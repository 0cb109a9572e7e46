// SPDX-License-Identifier: Apache-2.0
// Shared pieces of tessera's image decoders (io/image.hpp): the decoded RGB8 buffer, the pixel
// budget checked from a header before anything is allocated, bounds-checked little/big-endian
// reads, the guard around calls into C decoders that report errors with longjmp, and a bounded
// whole-file read.
#pragma once

#include <tessera/core/buffer.hpp>
#include <tessera/core/config.hpp>
#include <tessera/core/error.hpp>
#include <tessera/io/detail/posix_file.hpp>

#include <cerrno>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::io::detail {

/// What a decoder may allocate, checked from the image header before decoding (see image_limits).
struct image_budget {
  std::uint64_t max_pixels = 0;
  std::uint64_t max_side = 0;
};

/// Decoded pixels: height x width x 3 bytes, rows top to bottom, R G B interleaved.
struct raw_rgb {
  index_t height = 0;
  index_t width = 0;
  host_buffer<std::uint8_t> pixels;
};

/// Everything a decoder needs to know about its input: the bytes, the label that starts every error
/// message (a file name or "image in memory"), and the budget.
struct image_input {
  std::uint8_t const* data = nullptr;
  std::size_t size = 0;
  std::string const* label = nullptr;
  image_budget budget;
};

/// Refuses a declared size outside the budget. `format` names the format in the message. Runs on
/// header fields only, so a header claiming 100000 x 100000 never reaches an allocation.
inline void check_budget(image_input const& in, char const* format, std::uint64_t width, std::uint64_t height) {
  TESSERA_CHECK(width > 0 && height > 0, *in.label, ": the ", format, " header declares an empty image (", width,
                " x ", height, " pixels)");
  TESSERA_CHECK(width <= in.budget.max_side && height <= in.budget.max_side, *in.label, ": the ", format,
                " header declares ", width, " x ", height, " pixels; a side above image_limits::max_side = ",
                in.budget.max_side, " is refused before decoding");
  // width, height < 2^32 here (every format stores them in at most 32 bits): the product fits.
  TESSERA_CHECK(width * height <= in.budget.max_pixels, *in.label, ": the ", format, " header declares ", width,
                " x ", height, " = ", width * height, " pixels, more than image_limits::max_pixels = ",
                in.budget.max_pixels, " (Pillow's DecompressionBombError threshold is 178956970); refused before decoding");
}

/// An RGB8 buffer for `height` x `width` pixels (after check_budget, so the size is bounded).
[[nodiscard]] inline raw_rgb make_rgb(index_t height, index_t width) {
  raw_rgb out;
  out.height = height;
  out.width = width;
  out.pixels = host_buffer<std::uint8_t>(height * width * 3);
  return out;
}

[[nodiscard]] inline std::uint32_t u16le(std::uint8_t const* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8);
}
[[nodiscard]] inline std::uint32_t u32le(std::uint8_t const* p) noexcept {
  return u16le(p) | (u16le(p + 2) << 16);
}
[[nodiscard]] inline std::uint32_t u16be(std::uint8_t const* p) noexcept {
  return (static_cast<std::uint32_t>(p[0]) << 8) | static_cast<std::uint32_t>(p[1]);
}
[[nodiscard]] inline std::uint32_t u32be(std::uint8_t const* p) noexcept {
  return (u16be(p) << 16) | u16be(p + 2);
}

/// Runs `step`, a group of calls into a C library (libjpeg, libpng) whose error callback leaves
/// with std::longjmp(jump, 1); false when it did. C++ allows that jump only over frames without
/// objects that have destructors: `step` and what it calls hold none (plain C calls on state that
/// outlives this call), and the caller turns the failure into a tessera::error.
template <class Step>
[[nodiscard]] bool guarded_call(std::jmp_buf& jump, Step const& step) {
  if (setjmp(jump) != 0) return false;
  step();
  return true;
}

/// Reads a whole regular file of at most `max_bytes` bytes. The size comes from fstat and is
/// checked before anything is allocated; exactly that many bytes are read (a file that shrinks or
/// grows while being read is an error), so the read is never unbounded.
[[nodiscard]] inline std::vector<std::byte> read_file_bounded(std::filesystem::path const& path,
                                                              std::uint64_t max_bytes) {
  int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int const e = errno;
    TESSERA_FAIL("io::load_image: cannot open '", path.string(), "': ", errno_text(e));
  }
  struct fd_guard {
    int fd;
    ~fd_guard() { close_fd(fd); }
  } const guard{fd};
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) {
    int const e = errno;
    TESSERA_FAIL("io::load_image: cannot stat '", path.string(), "': ", errno_text(e));
  }
  TESSERA_CHECK(S_ISREG(st.st_mode), "io::load_image: '", path.string(), "' is not a regular file");
  auto const size = static_cast<std::uint64_t>(st.st_size);
  TESSERA_CHECK(size <= max_bytes, "io::load_image: '", path.string(), "' is ", size,
                " bytes, more than image_limits::max_file_bytes = ", max_bytes);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    ::ssize_t const n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      int const e = errno;
      if (e == EINTR) continue;
      TESSERA_FAIL("io::load_image: reading '", path.string(), "' failed: ", errno_text(e));
    }
    TESSERA_CHECK(n > 0, "io::load_image: '", path.string(), "' shrank while being read (", done, " of ", size,
                  " bytes)");
    done += static_cast<std::size_t>(n);
  }
  std::byte extra{};
  ::ssize_t n = 0;
  do {
    n = ::read(fd, &extra, 1);
  } while (n < 0 && errno == EINTR);
  TESSERA_CHECK(n == 0, "io::load_image: '", path.string(), "' grew while being read (expected ", size, " bytes)");
  return bytes;
}

}  // namespace tessera::io::detail
