#!/usr/bin/env bash
# Runs the Kotlin binding tests on the host JVM against the host build of the
# fmp-ffi cdylib. Idempotent: installs what is missing, reuses what is there.
#
#   android-bindings/run-jvm-tests.sh
#
# 1. kotlinc (npm package `kotlin-compiler`, JVM compiler) into $FMP_CACHE_DIR
#    (default ~/.cache/fmp), and JNA (Debian `libjna-java`) if
#    /usr/share/java/jna.jar is missing;
# 2. builds fmp-ffi (debug, feature `test-hooks`) and the `fmp` CLI (the hub
#    the sync tests start with `fmp serve` on loopback) with cargo;
# 3. generates the Kotlin bindings from the built library (uniffi library
#    mode) into android-bindings/build/generated (a build output, gitignored);
# 4. checks that README.md's usage example is the code the tests run;
# 5. compiles bindings + hand-written Kotlin + tests with kotlinc, runs them
#    with java -Djna.library.path=… -Dfmp.cli=…; exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
KOTLIN_VERSION="${KOTLIN_VERSION:-2.4.20}"
CACHE="${FMP_CACHE_DIR:-$HOME/.cache/fmp}"
KOTLIN_HOME="$CACHE/kotlin-compiler-$KOTLIN_VERSION"
JNA_JAR="${JNA_JAR:-/usr/share/java/jna.jar}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILD="$HERE/build"
GEN="$BUILD/generated/uniffi/jvm"
OUT="$BUILD/jvm-tests"

SECONDS=0
step() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'run-jvm-tests: %s\n' "$*" >&2; exit 1; }

command -v java >/dev/null || die "java not found: install a JDK (17 or newer), e.g. apt-get install openjdk-17-jdk-headless"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"

# --- 1. toolchain --------------------------------------------------------
if [[ ! -x "$KOTLIN_HOME/bin/kotlinc" ]]; then
    step "installing kotlinc $KOTLIN_VERSION into $KOTLIN_HOME (npm pack kotlin-compiler)"
    command -v npm >/dev/null || die "npm not found: needed once to fetch kotlin-compiler"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null)
    tar -xzf "$tmp"/kotlin-compiler-*.tgz -C "$tmp"
    mkdir -p "$CACHE"
    rm -rf "$KOTLIN_HOME"
    mv "$tmp/package" "$KOTLIN_HOME"
    chmod +x "$KOTLIN_HOME"/bin/*
fi
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
KTEST="$KOTLIN_HOME/lib/kotlin-test.jar"
[[ -f "$STDLIB" && -f "$KTEST" ]] || die "kotlin-stdlib.jar or kotlin-test.jar missing in $KOTLIN_HOME/lib: remove $KOTLIN_HOME and rerun"

if [[ ! -f "$JNA_JAR" ]]; then
    step "installing JNA (Debian libjna-java)"
    SUDO=""
    [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq libjna-java >/dev/null
    [[ -f "$JNA_JAR" ]] || die "libjna-java installed but $JNA_JAR is missing"
fi

# --- 2. the library ------------------------------------------------------
step "building fmp-ffi (host cdylib, feature test-hooks) and the fmp CLI (the test hub)"
(cd "$ROOT" && cargo build --quiet -p fmp-ffi --features test-hooks)
(cd "$ROOT" && cargo build --quiet -p fmp-cli)
FMP_CLI="$TARGET/debug/fmp"
[[ -x "$FMP_CLI" ]] || die "$FMP_CLI was not built"
case "$(uname -s)" in
    Darwin) LIB="$TARGET/debug/libfmp_ffi.dylib" ;;
    *) LIB="$TARGET/debug/libfmp_ffi.so" ;;
esac
[[ -f "$LIB" ]] || die "$LIB was not built"

# --- 3. bindings (library mode; a build output, never committed) ---------
step "generating Kotlin bindings from $LIB"
(cd "$ROOT" && cargo build --quiet -p fmp-uniffi-bindgen)
rm -rf "$GEN"
mkdir -p "$GEN"
"$TARGET/debug/uniffi-bindgen" generate --library "$LIB" --language kotlin \
    --no-format --out-dir "$GEN" >/dev/null

# --- 4. README example == test code --------------------------------------
step "checking README.md's example against the test source"
extract() { sed -n "/$2/,/$3/p" "$1" | sed '1d;$d'; }
readme_example="$(extract "$HERE/README.md" '^<!-- BEGIN EXAMPLE' '^<!-- END EXAMPLE' | sed '/^```/d')"
test_example="$(extract "$HERE/src/jvmTest/kotlin/org/fmp/test/UsageExample.kt" 'BEGIN EXAMPLE' 'END EXAMPLE')"
[[ -n "$test_example" ]] || die "no example found between BEGIN/END EXAMPLE in UsageExample.kt"
if [[ "$readme_example" != "$test_example" ]]; then
    diff <(printf '%s\n' "$readme_example") <(printf '%s\n' "$test_example") >&2 || true
    die "README.md's usage example differs from src/jvmTest/kotlin/org/fmp/test/UsageExample.kt (diff above: < README, > test)"
fi

# --- 5. compile and run --------------------------------------------------
step "compiling Kotlin (bindings, helpers, tests)"
rm -rf "$OUT"
mkdir -p "$OUT"
mapfile -t sources < <(find "$GEN" "$HERE/src/main/kotlin" "$HERE/src/jvmTest/kotlin" -name '*.kt' | sort)
"$KOTLINC" -nowarn -jvm-target 17 -cp "$JNA_JAR:$KTEST" -d "$OUT/classes" "${sources[@]}"

step "running the suite on $(java -version 2>&1 | head -n1)"
# The suite provokes Rust panics on purpose (debug_panic): one labelled line
# each, no backtrace.
RUST_BACKTRACE=0 java -Djna.library.path="$(dirname "$LIB")" -Dfmp.cli="$FMP_CLI" \
    -cp "$OUT/classes:$JNA_JAR:$STDLIB:$KTEST" \
    org.fmp.test.JvmTestsKt
step "done"
