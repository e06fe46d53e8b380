#!/usr/bin/env bash
# The field scenarios too long for CI's budget (tests/field/scenarios.rs,
# marked #[ignore]): 400 submissions through a link gone silent every
# 1.5–6 KB (about 20 minutes of link time in a debug build). Prints each
# scenario's result; exits non-zero if one fails.
#
#   scripts/field-long.sh            # every long scenario
#   scripts/field-long.sh silent     # those whose name contains "silent"
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
export FMP_REQUIRE_FIELD=1
cargo test -q -p fmp-cli --test field_scenarios -- --ignored --nocapture $filter
