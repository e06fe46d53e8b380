#!/usr/bin/env bash
# Every check of fmp, in one place: format, lints, all Rust tests (unit,
# property, end-to-end across processes), and the Kotlin suite on the JVM.
# Installs what it needs (apt, npm) idempotently. One build profile (debug).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A clean build gains nothing from incremental state, and it is the larger
# part of target/ (a CI machine once ran out of disk): off on CI.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi

step() { printf '\n== %s\n' "$*"; }

step "install test dependencies (idempotent)"
scripts/install-deps.sh
export FMP_REQUIRE_CHROMIUM=1
# The field scenarios' fake clocks and full disk must run, not skip. The
# full disk mounts a tmpfs, which needs root: elsewhere it skips, and says so.
if [ "$(id -u)" -eq 0 ] || [ "${CI:-}" = "true" ]; then
  export FMP_REQUIRE_FIELD=1
else
  echo "not root: the field scenarios that need root (a full disk on a tmpfs, network namespaces) will skip, each with a line saying so"
fi

# The PostgreSQL backend's tests: a throwaway cluster of our own on a free
# loopback port (never a server the machine happens to run), stopped at exit.
step "throwaway PostgreSQL cluster"
PG_DIR=$(mktemp -d)
trap 'scripts/pg-cluster.sh stop "$PG_DIR/pg"; rm -rf "$PG_DIR"' EXIT
if FMP_TEST_PG=$(scripts/pg-cluster.sh start "$PG_DIR/pg"); then
  export FMP_TEST_PG FMP_REQUIRE_PG=1
  echo "PostgreSQL for the tests at $FMP_TEST_PG"
elif [ "${CI:-}" = "true" ]; then
  echo "could not start a PostgreSQL cluster (see above)" >&2
  exit 1
else
  echo "could not start a PostgreSQL cluster: the PostgreSQL backend's tests will skip, each with a line saying so"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

if [ -n "${FMP_TEST_PG:-}" ]; then
  step "fmp-sync's suites again, every replica on PostgreSQL"
  FMP_TEST_BACKEND=postgres cargo test -p fmp-sync --tests
fi

if [ -x android-bindings/run-jvm-tests.sh ]; then
  step "Kotlin bindings on the JVM"
  android-bindings/run-jvm-tests.sh
fi

step "all checks passed"
