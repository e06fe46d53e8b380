#!/usr/bin/env bash
# Installs, idempotently, what the test suite needs beyond Rust:
# Debian chromium (the HTML report render test) and libjna-java (Kotlin
# bindings on the JVM), libfaketime (field scenarios), strace (fdatasync), postgresql (the
# PostgreSQL store backend's tests, on a throwaway cluster). kotlinc comes from
# npm in android-bindings/run-jvm-tests.sh.
#
# As root it calls apt-get; otherwise `sudo apt-get` where sudo works, and
# else it names the packages to install and stops. Java and npm are checked
# first, so a missing one fails at once with what to install.
set -euo pipefail

missing_tools=()
command -v java >/dev/null || missing_tools+=("java (a JDK 17 or newer: Debian openjdk-17-jdk-headless)")
command -v npm >/dev/null || missing_tools+=("npm (Node.js 18 or newer: Debian nodejs npm), needed once to fetch kotlinc")
if [ ${#missing_tools[@]} -gt 0 ]; then
  printf 'install-deps: missing: %s\n' "${missing_tools[@]}" >&2
  exit 1
fi

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/java/jna.jar ] || need+=(libjna-java)
# libfaketime: the field scenarios' phones with clocks set wrong.
ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || need+=(libfaketime)
# strace: the test that a durable record syncs with fdatasync, not fsync.
command -v strace >/dev/null || need+=(strace)
# PostgreSQL: the store's PostgreSQL backend runs against a throwaway
# cluster of the tests' own (scripts/pg-cluster.sh), never a running server.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -gt 0 ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  echo "install-deps: not root and no password-less sudo: install these Debian packages, then rerun: ${need[*]}" >&2
  echo "  sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing: ${need[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
