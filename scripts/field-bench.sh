#!/usr/bin/env bash
# The field benchmark (issue 7): runs the sync bench and the report bench,
# then the field bench, which prints ONE table that reuses their figures.
# Release build; takes several minutes (the report bench builds a
# 1,000,000-submission database once, under ./target/). Their own tables
# stay in target/field-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(pwd)/target/field-bench"
mkdir -p "$out"
cargo bench -q -p fmp-sync --bench sync > "$out/sync.md"
cargo bench -q -p fmp-report --bench report > "$out/report.md"
FMP_SYNC_BENCH_OUT="$out/sync.md" FMP_REPORT_BENCH_OUT="$out/report.md" \
  cargo bench -q -p fmp-testkit --bench field
