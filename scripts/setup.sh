#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what building and testing tessera needs on Debian 12 (bookworm), and nothing when it is
# all present already: g++ and make (build-essential), CMake >= 3.28 and Catch2 v3 (both from
# bookworm-backports on Debian 12), Eigen 3.4, xsimd, nlohmann-json, libjpeg-turbo, libpng, stb,
# utf8proc, PCRE2 (tests only: cross-checks the tokenizer's pre-tokenizer), git, pkg-config.
# Runs as root, or as a user who may run sudo (only apt-get, and writing the backports source
# list, go through sudo).
#   --dry-run   report what is missing and would be installed; change nothing.
set -euo pipefail

dry_run=0
[ "${1:-}" = --dry-run ] && dry_run=1

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

min_cmake=3.28

# ---- what is missing ------------------------------------------------------------------------------
# version_ge A B: true when version A >= version B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The Catch2 version recorded in the first Catch2ConfigVersion.cmake found where CMake looks.
catch2_version() {
  local f
  for f in /usr/lib/cmake/Catch2 /usr/lib/*/cmake/Catch2 /usr/share/cmake/Catch2 \
           /usr/local/lib/cmake/Catch2 /usr/local/lib/*/cmake/Catch2 /usr/local/share/cmake/Catch2; do
    if [ -f "$f/Catch2ConfigVersion.cmake" ]; then
      sed -n 's/^ *set(PACKAGE_VERSION "\([0-9.]*\)").*/\1/p' "$f/Catch2ConfigVersion.cmake" | head -n1
      return
    fi
  done
}

# header_present <path relative to an include dir>
header_present() { [ -f "/usr/include/$1" ] || [ -f "/usr/local/include/$1" ]; }

missing_main=()        # packages from the distribution's main suite
missing_backports=()   # packages that need bookworm-backports on Debian 12

command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || missing_main+=(build-essential)
command -v git >/dev/null 2>&1 || missing_main+=(git)
command -v pkg-config >/dev/null 2>&1 || missing_main+=(pkg-config)
header_present eigen3/Eigen/Core || missing_main+=(libeigen3-dev)
header_present xsimd/xsimd.hpp || missing_main+=(libxsimd-dev)
header_present nlohmann/json.hpp || missing_main+=(nlohmann-json3-dev)
header_present stb/stb_image.h || missing_main+=(libstb-dev)
header_present jpeglib.h || missing_main+=(libjpeg62-turbo-dev)
header_present png.h || missing_main+=(libpng-dev)
header_present utf8proc.h || missing_main+=(libutf8proc-dev)
header_present pcre2.h || missing_main+=(libpcre2-dev)

cmake_version=""
if command -v cmake >/dev/null 2>&1; then
  cmake_version=$(cmake --version | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
fi
if [ -z "$cmake_version" ] || ! version_ge "$cmake_version" "$min_cmake"; then
  missing_backports+=(cmake)
fi
catch2=$(catch2_version)
if [ -z "$catch2" ] || ! version_ge "$catch2" 3.0; then
  missing_backports+=(catch2)
fi

missing=("${missing_main[@]}" "${missing_backports[@]}")
if [ ${#missing[@]} -eq 0 ]; then
  say "all dependencies present (cmake $cmake_version, Catch2 $catch2, g++ $(g++ -dumpfullversion)); nothing to install"
  exit 0
fi
say "missing: ${missing[*]}"
if [[ " ${missing[*]} " == *" cmake "* && -n "$cmake_version" ]]; then say "found cmake $cmake_version, need >= $min_cmake"; fi
if [[ " ${missing[*]} " == *" catch2 "* && -n "$catch2" ]]; then say "found Catch2 $catch2, need 3.x"; fi

if [ "$dry_run" -eq 1 ]; then
  say "dry run: would install ${missing[*]} (${missing_backports[*]:-nothing} from bookworm-backports on Debian 12)"
  exit 0
fi

# ---- how to install ------------------------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 ||
  die "apt-get not found: install by hand: ${missing[*]} (CMake >= $min_cmake, Catch2 3)"

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
  as_root=(sudo)   # passwordless sudo, or a terminal where sudo can ask for the password
else
  die "need root to install ${missing[*]}: run this script as root, or as a user who may use sudo"
fi

codename=""
[ -r /etc/os-release ] && codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")

apt_install() { # apt_install [apt-get options...] packages...
  say "running: ${as_root[*]:+${as_root[*]} }apt-get install -y --no-install-recommends $*"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

backports_target=()
if [ ${#missing_backports[@]} -gt 0 ] && [ "$codename" = bookworm ]; then
  # Debian 12 ships CMake 3.25 and Catch2 2.13; the versions tessera needs are in backports.
  if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding bookworm-backports to /etc/apt/sources.list.d/bookworm-backports.list"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' |
      "${as_root[@]}" tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  backports_target=(-t bookworm-backports)
fi

say "running: ${as_root[*]:+${as_root[*]} }apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
if [ ${#missing_main[@]} -gt 0 ]; then apt_install "${missing_main[@]}"; fi
if [ ${#missing_backports[@]} -gt 0 ]; then apt_install "${backports_target[@]}" "${missing_backports[@]}"; fi

# ---- check the result ----------------------------------------------------------------------------
cmake_version=$(cmake --version | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
version_ge "$cmake_version" "$min_cmake" || die "cmake $cmake_version installed, still older than $min_cmake"
catch2=$(catch2_version)
{ [ -n "$catch2" ] && version_ge "$catch2" 3.0; } || die "Catch2 3 not found after installing (found '${catch2}')"
say "done (cmake $cmake_version, Catch2 $catch2, g++ $(g++ -dumpfullversion))"
