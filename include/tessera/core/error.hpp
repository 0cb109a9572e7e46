// SPDX-License-Identifier: Apache-2.0
// tessera::error and the TESSERA_CHECK / TESSERA_DEBUG_ASSERT macros. Every precondition failure
// at a public entry point becomes a tessera::error whose message names the block, what was
// expected and what came, plus the source location of the check.
#pragma once

#include <tessera/core/config.hpp>

#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)
#include <cstdio>
#include <cstdlib>
#define TESSERA_NO_EXCEPTIONS 1
#endif

namespace tessera {

#if defined(__cpp_lib_source_location)
using source_location = std::source_location;
#else
/// Stand-in for std::source_location where the standard library's needs a compiler builtin the
/// compiler lacks (libstdc++ 12 with clang 14, which tessera's libFuzzer build uses).
class source_location {
 public:
  static constexpr source_location current(char const* file = __builtin_FILE(),
                                           char const* function = __builtin_FUNCTION(),
                                           unsigned line = __builtin_LINE()) noexcept {
    source_location here;
    here.file_ = file;
    here.function_ = function;
    here.line_ = line;
    return here;
  }
  [[nodiscard]] constexpr char const* file_name() const noexcept { return file_; }
  [[nodiscard]] constexpr char const* function_name() const noexcept { return function_; }
  [[nodiscard]] constexpr unsigned line() const noexcept { return line_; }
  [[nodiscard]] constexpr unsigned column() const noexcept { return 0; }

 private:
  char const* file_ = "";
  char const* function_ = "";
  unsigned line_ = 0;
};
#endif

/// The one exception type of the library. what() = "<message> [file:line]".
class error : public std::runtime_error {
 public:
  error(std::string message, source_location where)
      : std::runtime_error(message + " [" + where.file_name() + ":" + std::to_string(where.line()) + "]"),
        message_(std::move(message)),
        where_(where) {}

  /// The message without the source location.
  [[nodiscard]] std::string const& message() const noexcept { return message_; }
  [[nodiscard]] source_location const& where() const noexcept { return where_; }

 private:
  std::string message_;
  source_location where_;
};

namespace detail {

/// Streams the parts of a message into one string.
template <class... Parts>
[[nodiscard]] std::string concat(Parts const&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

/// Throws tessera::error (or prints and aborts in -fno-exceptions builds). Never returns.
template <class... Parts>
[[noreturn]] void raise_at(source_location where, Parts const&... parts) {
  std::string message = concat(parts...);
#ifdef TESSERA_NO_EXCEPTIONS
  std::fprintf(stderr, "tessera::error: %s [%s:%u]\n", message.c_str(), where.file_name(),
               static_cast<unsigned>(where.line()));
  std::abort();
#else
  throw error(std::move(message), where);
#endif
}

}  // namespace detail
}  // namespace tessera

/// Host precondition at a public entry point: throws tessera::error with the streamed parts,
/// e.g. TESSERA_CHECK(x.extent(1) == k, "nn::linear: x has ", x.extent(1), " columns, W has ", k).
#define TESSERA_CHECK(cond, ...)                                                         \
  do {                                                                                   \
    if (!(cond)) [[unlikely]]                                                            \
      ::tessera::detail::raise_at(::tessera::source_location::current(), __VA_ARGS__);        \
  } while (0)

/// Unconditional failure with a message (for switch defaults and parse errors).
#define TESSERA_FAIL(...) ::tessera::detail::raise_at(::tessera::source_location::current(), __VA_ARGS__)

/// Internal invariant; compiled only when TESSERA_DEBUG is on (always in tessera's tests).
#if TESSERA_DEBUG
#define TESSERA_DEBUG_ASSERT(cond, ...)                                                        \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::tessera::detail::raise_at(::tessera::source_location::current(), "internal check failed: ",  \
                                  #cond " " __VA_OPT__(, ) __VA_ARGS__);                       \
  } while (0)
#else
#define TESSERA_DEBUG_ASSERT(cond, ...) \
  do {                                  \
  } while (0)
#endif
