// SPDX-License-Identifier: Apache-2.0
// POSIX file glue for tessera::io: a read-only, move-only memory mapping of a whole file, and a
// writer that writes to a temporary file beside the target and renames it into place on commit,
// so a failed or interrupted save never leaves a partial file under the target name.
#pragma once

#include <tessera/core/error.hpp>

#if !defined(__unix__) && !defined(__APPLE__)
#error "tessera/io needs POSIX open/fstat/mmap (Linux, macOS, BSD)"
#endif

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::io::detail {

/// The text of an errno value (std::strerror is not thread-safe; the generic category is).
[[nodiscard]] inline std::string errno_text(int e) { return std::generic_category().message(e); }

/// Closes a file descriptor, retrying nothing: after EINTR the descriptor is already released on
/// Linux, and a second close could close a descriptor another thread has just opened.
inline void close_fd(int fd) noexcept {
  if (fd >= 0) (void)::close(fd);
}

/// A whole file mapped read-only (PROT_READ, MAP_PRIVATE). Move-only; the mapping lives until
/// destruction, and moving keeps the mapped address, so pointers into it survive a move.
/// An empty file maps to an empty span (mmap refuses length 0).
/// The file must not be truncated by another process while mapped: reading a page past the new end
/// raises SIGBUS, which no user-space check can prevent.
class mapped_file {
 public:
  mapped_file() noexcept = default;

  /// Maps `path`. Throws tessera::error naming the file if it cannot be opened, is not a regular
  /// file, or cannot be mapped.
  explicit mapped_file(std::filesystem::path const& path) {
    int const fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int const e = errno;
      TESSERA_FAIL("io: cannot open '", path.string(), "': ", errno_text(e));
    }
    struct ::stat st {};
    if (::fstat(fd, &st) != 0) {
      int const e = errno;
      close_fd(fd);
      TESSERA_FAIL("io: cannot stat '", path.string(), "': ", errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) {
      close_fd(fd);
      TESSERA_FAIL("io: '", path.string(), "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* const addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        int const e = errno;
        close_fd(fd);
        TESSERA_FAIL("io: cannot mmap '", path.string(), "' (", size_, " bytes): ", errno_text(e));
      }
      addr_ = addr;
    }
    close_fd(fd);  // the mapping keeps its own reference to the file
  }

  mapped_file(mapped_file&& o) noexcept : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      release();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  mapped_file(mapped_file const&) = delete;
  mapped_file& operator=(mapped_file const&) = delete;
  ~mapped_file() { release(); }

  /// The mapped bytes (empty for an empty file).
  [[nodiscard]] std::span<std::byte const> bytes() const noexcept {
    return {static_cast<std::byte const*>(addr_), size_};
  }

 private:
  void release() noexcept {
    if (addr_ != nullptr) (void)::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

/// Writes a file through a temporary sibling ("<name>.tmp-<pid>-<n>") and renames it over the
/// target in commit(). Destroying an uncommitted writer (an error, an exception) removes the
/// temporary, so the target is either untouched or completely replaced. Move-less by design.
class atomic_file_writer {
 public:
  /// Creates the temporary file. Throws tessera::error if the directory does not exist or is
  /// not writable.
  explicit atomic_file_writer(std::filesystem::path target) : target_(std::move(target)) {
    static std::atomic<std::uint64_t> counter{0};
    TESSERA_CHECK(!target_.filename().empty(), "io: cannot write to '", target_.string(), "': not a file name");
    // O_EXCL makes a collision with a leftover temporary an error instead of a shared file;
    // a few retries with a fresh counter value get past such leftovers.
    int e = 0;
    for (int attempt = 0; attempt < 16; ++attempt) {
      temp_ = target_;
      temp_ += ".tmp-" + std::to_string(static_cast<long long>(::getpid())) + "-" +
               std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) return;
      e = errno;
      if (e != EEXIST) break;
    }
    TESSERA_FAIL("io: cannot create '", temp_.string(), "' to write '", target_.string(), "': ", errno_text(e));
  }
  atomic_file_writer(atomic_file_writer const&) = delete;
  atomic_file_writer& operator=(atomic_file_writer const&) = delete;
  ~atomic_file_writer() {
    if (fd_ >= 0) {
      close_fd(fd_);
      (void)::unlink(temp_.c_str());
    }
  }

  /// Appends `data`; retries short writes and EINTR. Throws tessera::error on any other failure.
  void write(std::span<std::byte const> data) {
    TESSERA_CHECK(fd_ >= 0, "io: write to '", target_.string(), "' after commit");
    std::byte const* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      ::ssize_t const n = ::write(fd_, p, left);
      if (n < 0) {
        int const e = errno;
        if (e == EINTR) continue;
        TESSERA_FAIL("io: writing '", temp_.string(), "' failed: ", errno_text(e));
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  /// Flushes the data to disk (fsync), closes the temporary and renames it over the target.
  /// Throws tessera::error (and removes the temporary) if any step fails.
  void commit() {
    TESSERA_CHECK(fd_ >= 0, "io: '", target_.string(), "' committed twice");
    // fsync before rename: otherwise a crash can leave the new name pointing at unwritten data.
    if (::fsync(fd_) != 0) {
      int const e = errno;
      TESSERA_FAIL("io: fsync of '", temp_.string(), "' failed: ", errno_text(e));
    }
    int const fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) {
      int const e = errno;
      (void)::unlink(temp_.c_str());
      TESSERA_FAIL("io: closing '", temp_.string(), "' failed: ", errno_text(e));
    }
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      int const e = errno;
      (void)::unlink(temp_.c_str());
      TESSERA_FAIL("io: cannot rename '", temp_.string(), "' to '", target_.string(), "': ", errno_text(e));
    }
    sync_parent_directory();
  }

 private:
  // Best effort: makes the rename itself durable. Failure here cannot corrupt anything.
  void sync_parent_directory() const noexcept {
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    int const fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::fsync(fd);
    close_fd(fd);
  }

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
};

}  // namespace tessera::io::detail
