#!/usr/bin/env bash
# The field benchmark (issue 7): runs the sync bench and the report bench,
# then the field bench, which prints ONE table that reuses their figures.
# Release build; takes a few minutes (the report bench builds a
# 1,000,000-submission database once, under target/).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo bench -q -p fmp-sync --bench sync > "$tmp/sync.md"
cargo bench -q -p fmp-report --bench report > "$tmp/report.md"
FMP_SYNC_BENCH_OUT="$tmp/sync.md" FMP_REPORT_BENCH_OUT="$tmp/report.md" \
  cargo bench -q -p fmp-testkit --bench field
