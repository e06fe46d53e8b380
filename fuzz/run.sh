#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60) with libFuzzer, starting
# from fuzz/seeds/TARGET and fuzz/regressions/TARGET; the growing corpus
# lives in fuzz/corpus/TARGET (gitignored). A crash is copied into
# fuzz/regressions/TARGET/, where `cargo test -p fmp-testkit --test
# fuzz_corpus` replays it on stable in CI: fix the bug, keep the file.
#   fuzz/run.sh [seconds] [target...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire submission hub_request)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
  echo "== fuzz $t for ${secs}s"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" "regressions/$t" \
      -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/"; then
    status=1
    for f in artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-*; do
      [ -e "$f" ] || continue
      cp "$f" "regressions/$t/"
      echo "crash kept as regressions/$t/$(basename "$f")"
    done
  fi
done
exit $status
