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

/// The one exception type of the library. what() = "<message> [file:line]".
class error : public std::runtime_error {
 public:
  error(std::string message, std::source_location where)
      : std::runtime_error(message + " [" + where.file_name() + ":" + std::to_string(where.line()) + "]"),
        message_(std::move(message)),
        where_(where) {}

  /// The message without the source location.
  [[nodiscard]] std::string const& message() const noexcept { return message_; }
  [[nodiscard]] std::source_location const& where() const noexcept { return where_; }

 private:
  std::string message_;
  std::source_location where_;
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
[[noreturn]] void raise_at(std::source_location where, Parts const&... parts) {
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
      ::tessera::detail::raise_at(std::source_location::current(), __VA_ARGS__);        \
  } while (0)

/// Unconditional failure with a message (for switch defaults and parse errors).
#define TESSERA_FAIL(...) ::tessera::detail::raise_at(std::source_location::current(), __VA_ARGS__)

/// Internal invariant; compiled only when TESSERA_DEBUG is on (always in tessera's tests).
#if TESSERA_DEBUG
#define TESSERA_DEBUG_ASSERT(cond, ...)                                                        \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::tessera::detail::raise_at(std::source_location::current(), "internal check failed: ",  \
                                  #cond " " __VA_OPT__(, ) __VA_ARGS__);                       \
  } while (0)
#else
#define TESSERA_DEBUG_ASSERT(cond, ...) \
  do {                                  \
  } while (0)
#endif
