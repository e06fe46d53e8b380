#!/usr/bin/env bash
# A longer run of the whole-system simulation (tests/field/simulation.rs):
# FMP_SIM_COUNT seeds (default 50) from FMP_SIM_START (default 1), one test
# process per seed, so one failing seed does not hide the next. Prints each
# seed's summary line and, at the end, the failing seeds with the command
# that replays each; their full output (panic message with the operation
# log) is kept under target/simulate/.
#
#   FMP_SIM_START=1000 FMP_SIM_COUNT=200 scripts/simulate.sh
#
# FMP_SIM_OVERLAP=0 and FMP_SIM_WRITE_BEFORE_HEAL=0 pass through to the test
# (narrower worlds than the default, to tell a failure apart).
#
# Exits non-zero if any seed failed.
set -uo pipefail
cd "$(dirname "$0")/.."
start="${FMP_SIM_START:-1}"
count="${FMP_SIM_COUNT:-50}"
out="${CARGO_TARGET_DIR:-target}/simulate"
mkdir -p "$out"
cargo test -q -p fmp-cli --test simulation --no-run || exit 2
failing=()
flags=""
[ -n "${FMP_SIM_OVERLAP:-}" ] && flags+="FMP_SIM_OVERLAP=$FMP_SIM_OVERLAP "
[ -n "${FMP_SIM_WRITE_BEFORE_HEAL:-}" ] && flags+="FMP_SIM_WRITE_BEFORE_HEAL=$FMP_SIM_WRITE_BEFORE_HEAL "
for ((seed = start; seed < start + count; seed++)); do
  log="$out/seed-$seed.log"
  if FMP_SIM_SEED="$seed" FMP_SIM_SEEDS=1 \
    cargo test -q -p fmp-cli --test simulation -- --nocapture >"$log" 2>&1; then
    grep -m1 "^seed $seed:" "$log" || echo "seed $seed: ok"
    rm -f "$log"
  else
    echo "seed $seed: FAILED (see $log)"
    failing+=("$seed")
  fi
done
echo
if [ ${#failing[@]} -eq 0 ]; then
  echo "all $count seed(s) from $start passed"
  exit 0
fi
echo "failing seeds (${#failing[@]} of $count): ${failing[*]}"
for seed in "${failing[@]}"; do
  echo "  ${flags}FMP_SIM_SEED=$seed cargo test -p fmp-cli --test simulation"
done
exit 1
