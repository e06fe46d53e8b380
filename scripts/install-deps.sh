#!/usr/bin/env bash
# Installs, idempotently, what the test suite needs beyond Rust:
# Debian chromium (the HTML report render test) and libjna-java (Kotlin
# bindings on the JVM), libfaketime (field scenarios). kotlinc comes from npm in android-bindings/run-jvm-tests.sh.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/java/jna.jar ] || need+=(libjna-java)
# libfaketime: the field scenarios' phones with clocks set wrong.
ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || need+=(libfaketime)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
