#!/usr/bin/env bash
# Runs the hub load bench (fmp-hub-bench) in one of the ways README's
# "The report under write load" measured it:
#
#   scripts/hub-bench-modes.sh MODE [BENCH_BINARY] [DEVICES] [SUBMISSIONS]
#
#   shared  hub and device threads on both cores, equal priority
#   pinned  hub on core 0, the device threads on core 1 (taskset)
#   niced   both cores, the device threads at nice 19, the hub at 0
#   first   both cores, the device threads at nice 19, the hub at nice -10
#           (ahead of everything else on the machine: needs root)
#
# The bench's process runs the device threads and starts the hub as its
# child; the hub's affinity or priority is set on each of its threads as
# soon as it appears (before the devices enroll). BENCH_BINARY defaults to
# target/release/fmp-hub-bench (cargo build --release -p fmp-hub --bin
# fmp-hub-bench); DEVICES and SUBMISSIONS to 200 and 50.
set -euo pipefail
mode=${1:?usage: $0 shared|pinned|niced|first [bench-binary] [devices] [submissions]}
bin=${2:-target/release/fmp-hub-bench}
devices=${3:-200}
per=${4:-50}
case $mode in
  shared) taskset -c 0,1 "$bin" "$devices" "$per" & ;;
  pinned) taskset -c 1 "$bin" "$devices" "$per" & ;;
  niced | first) nice -n 19 taskset -c 0,1 "$bin" "$devices" "$per" & ;;
  *) echo "unknown mode: $mode" >&2; exit 2 ;;
esac
bench=$!
hub=
for _ in $(seq 1 400); do
  hub=$(pgrep -P "$bench" | head -1 || true)
  [ -n "$hub" ] && break
  sleep 0.05
done
if [ -z "$hub" ]; then
  echo "the bench started no hub" >&2
  wait "$bench"
  exit 1
fi
for t in /proc/"$hub"/task/*; do
  case $mode in
    pinned) taskset -p -c 0 "${t##*/}" > /dev/null ;;
    niced) renice -n 0 -p "${t##*/}" > /dev/null ;;
    first) renice -n -10 -p "${t##*/}" > /dev/null ;;
  esac
done
echo "mode $mode: hub $hub on cores $(taskset -cp "$hub" | cut -d: -f2 | tr -d ' ') at nice $(ps -o ni= -p "$hub" | tr -d ' ')" >&2
wait "$bench"
