#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `start DIR` creates one in
# DIR (initdb, trust authentication, listening on 127.0.0.1 only, on a free
# port) and prints the connection URL of its maintenance database;
# `stop DIR` stops it. Nothing here touches a server the machine happens to
# run. PostgreSQL refuses to run as root: as root the cluster belongs to
# the `postgres` user (Debian's package creates it), otherwise to the
# caller. About 1.2 s to start on a 2-core machine.
set -euo pipefail

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] || { echo "pg-cluster: no PostgreSQL server here (Debian: apt-get install postgresql)" >&2; exit 1; }
  echo "$d"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    dir=${2:?usage: pg-cluster.sh start DIR}
    bin=$(bindir)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      # The postgres user must reach DIR (mktemp -d makes its parent 0700).
      chmod o+x "$(dirname "$dir")"
      chown postgres "$dir"
    fi
    as_owner "'$bin/initdb' -D '$dir/data' -A trust -U fmp --no-sync >'$dir/initdb.log' 2>&1" \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    as_owner "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w \
      -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null" \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://fmp@127.0.0.1:$port/postgres"
    ;;
  stop)
    dir=${2:?usage: pg-cluster.sh stop DIR}
    [ -d "$dir/data" ] || exit 0
    as_owner "'$(bindir)/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1" || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg-cluster.sh start DIR | stop DIR" >&2
    exit 2
    ;;
esac
