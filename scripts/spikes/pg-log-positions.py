"""Spike: log positions under concurrent PostgreSQL writers (issue 15).
Writers append batches of B changes (a sync request's commit: upsert B
documents, append B log rows) in one transaction; a reader pulls
"everything after my cursor" in a loop. Strategies:
  naive    : seq bigserial, reader WHERE seq > c
  advisory : pg_advisory_xact_lock before the log insert (appends serialized until commit)
  xid      : rows carry pg_current_xact_id(); reader reads (xid, seq) > c
             and xid < pg_snapshot_xmin(pg_current_snapshot()) (only finished txns)
Counts changes the reader never saw (skips) and changes/s.

Run (not part of the tests; figures in docs/adr/0005-postgres-log-positions.md):
  pip install "psycopg[binary]"
  mkdir -p /tmp/pgspike && chown postgres /tmp/pgspike
  su postgres -c "/usr/lib/postgresql/15/bin/initdb -D /tmp/pgspike/data -A trust -U fmp"
  su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgspike/data \
     -o '-p 54329 -k /tmp/pgspike -c listen_addresses=127.0.0.1' -w start"
  python3 scripts/spikes/pg-log-positions.py 100     # batches per writer
  (FMP_SPIKE_PG overrides the connection string.)"""
import os, sys, time, random, threading, psycopg
DSN = os.environ.get("FMP_SPIKE_PG", "host=127.0.0.1 port=54329 user=fmp dbname=postgres")
B = 50
PAYLOAD = os.urandom(200).hex()

def setup(conn):
    conn.execute("DROP TABLE IF EXISTS log; DROP TABLE IF EXISTS docs")
    conn.execute("CREATE TABLE log (seq bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), writer int, data text)")
    conn.execute("CREATE INDEX log_xid ON log (xid, seq)")
    conn.execute("CREATE TABLE docs (id text PRIMARY KEY, data text)")
    conn.commit()

def writer(strategy, wid, batches, jitter, counts):
    conn = psycopg.connect(DSN)
    for b in range(batches):
        with conn.transaction():
            cur = conn.cursor()
            cur.executemany("INSERT INTO docs VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                            [(f"{wid}-{b}-{i}", PAYLOAD) for i in range(B)])
            if strategy == "advisory":
                cur.execute("SELECT pg_advisory_xact_lock(7135)")
            cur.executemany("INSERT INTO log (writer, data) VALUES (%s, %s)", [(wid, PAYLOAD)] * B)
            if jitter:
                time.sleep(random.random() * jitter)   # the rest of the commit (cursor rows, nonce)
        counts[wid] = counts.get(wid, 0) + B
    conn.close()

def reader(strategy, stop, seen):
    conn = psycopg.connect(DSN, autocommit=True)
    c = (0, 0) if strategy == "xid" else 0
    while True:
        done = stop.is_set()
        if strategy == "xid":
            rows = conn.execute(
                "SELECT xid::text::bigint, seq FROM log WHERE (xid::text::bigint, seq) > (%s, %s) "
                "AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid, seq LIMIT 1000", c).fetchall()
            for x, s in rows: seen.add(s)
            if rows: c = rows[-1]
        else:
            rows = conn.execute("SELECT seq FROM log WHERE seq > %s ORDER BY seq LIMIT 1000", (c,)).fetchall()
            for (s,) in rows: seen.add(s)
            if rows: c = rows[-1][0]
        if done and not rows: break
    conn.close()

def run(strategy, writers, batches, jitter):
    with psycopg.connect(DSN) as conn: setup(conn)
    stop = threading.Event(); seen = set(); counts = {}
    rt = threading.Thread(target=reader, args=(strategy, stop, seen)); rt.start()
    t0 = time.perf_counter()
    ws = [threading.Thread(target=writer, args=(strategy, w, batches, jitter, counts)) for w in range(writers)]
    for w in ws: w.start()
    for w in ws: w.join()
    dt = time.perf_counter() - t0
    stop.set(); rt.join()
    with psycopg.connect(DSN) as conn:
        total = conn.execute("SELECT count(*) FROM log").fetchone()[0]
    return total, total - len(seen), total / dt

if __name__ == "__main__":
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print("| strategy | writers | jitter ms | changes | never seen by the reader | changes/s |")
    print("|---|---|---|---|---|---|")
    for jitter in (0.0, 0.005):
        for strategy in ("naive", "advisory", "xid"):
            for writers in (1, 2, 4, 8):
                total, skipped, rate = run(strategy, writers, batches, jitter)
                print(f"| {strategy} | {writers} | {jitter*1000:.0f} | {total} | {skipped} | {rate:,.0f} |", flush=True)
