//! `fmp-hub-bench`: a load benchmark of one hub over loopback (not a test).
//!
//! `fmp-hub-bench [DEVICES] [SUBMISSIONS]` (default 200 × 50): enrolls that
//! many simulated devices on a hub running in a child process, records the
//! submissions on each device offline, then syncs all devices at once and
//! prints throughput, p50/p99 sync latency, the hub's peak memory, the
//! requests it shed (`503 busy`) and the requests it applied twice (every
//! pushed change already there: a client gave up on an earlier answer).
//!
//! While the devices sync, a reader thread in the hub's process lists one
//! FMP's submissions every 100 ms (what `fmp list` reads on the hub's
//! store), and another reads the report of the month the submissions fall
//! in every second (what `fmp report` reads: the month's aggregates and
//! record counts, on one snapshot); after the sync both go on for 10 s on
//! the idle store (setup, while the devices enroll, is not counted). The
//! last two lines compare the two: reads should not wait behind writes.
//! Each read's time is split (from the kernel's schedstat of its thread)
//! into waiting for a CPU, running, and blocked (a lock, the disk), and
//! the devices' own CPU over the sync is printed beside the hub's: on a
//! machine of two cores they take most of it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fmp_core::store::report::Counted;
use fmp_core::store::{Store, StoreError};
use fmp_hub::client::{self, SyncOptions};
use fmp_hub::{HubError, Limits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = if args.get(1).map(String::as_str) == Some("--hub-only") {
        hub_only(args.get(2).map(String::as_str).unwrap_or("."))
    } else {
        let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
        let m = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
        bench(n, m)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The hub of the bench: serves until SIGTERM, then prints its counters
/// (`load: shed N, applied twice M`).
fn hub_only(dir: &str) -> Result<(), HubError> {
    let limits = Limits {
        rate_burst: 1e9,
        rate_per_sec: 1e9,
        join_burst: 1e9,
        join_per_sec: 1e9,
        join_global_burst: 1e9,
        join_global_per_sec: 1e9,
        ..Limits::default()
    };
    let state = fmp_hub::server::Hub::new(Store::open(Path::new(dir))?, limits)?;
    let (begun, done) = (
        Path::new(dir).join("sync-begun"),
        Path::new(dir).join("sync-done"),
    );
    let list = {
        let store = state.store().clone();
        let filter = fmp_core::store::Filter {
            fmp: Some("ML-GOG".into()),
            ..Default::default()
        };
        ReadProbe::start(
            Duration::from_millis(100),
            begun.clone(),
            done.clone(),
            move || store.list(&filter).is_ok(),
        )
    };
    let report = {
        let store = state.store().clone();
        ReadProbe::start(Duration::from_secs(1), begun, done, move || {
            report_reads(&store).is_ok()
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(HubError::Runtime)?;
    rt.block_on(fmp_hub::server::run(
        state.clone(),
        "127.0.0.1:0",
        None,
        |a| println!("listening on http://{a}"),
        async {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
            }
        },
    ))?;
    let load = state.load();
    println!(
        "load: shed {}, applied twice {}",
        load.shed, load.applied_twice
    );
    println!("{}", list.finish("list"));
    println!("{}", report.finish("report"));
    Ok(())
}

/// The month the bench's submissions fall in (`example_submission`'s,
/// plus at most a few hours), and the month before it.
const REPORT_MONTH: (&str, &str) = ("2020-06", "2020-05");

/// What `fmp report` reads of the store for [`REPORT_MONTH`] (every FMP,
/// all but rejected submissions): the month's aggregates and its record
/// counts, on one snapshot, on a reader connection beside the writer.
fn report_reads(store: &Store) -> Result<usize, StoreError> {
    use fmp_core::store::ops::{CountReads, ReportReads};
    let (month, previous) = REPORT_MONTH;
    store.snapshot(|r| {
        let aggs = r.report_aggregates(month, previous, Counted::AllButRejected)?;
        let counts = r.month_counts(month, |_| true)?;
        Ok(aggs.by_direction.len() + usize::try_from(counts.total).unwrap_or(0))
    })
}

/// One timed read: how long it took, and of that how long its thread
/// waited in the run queue for a CPU and how long it ran (the rest it was
/// blocked: a lock, the disk), from `/proc/thread-self/schedstat`. The
/// wait for a CPU is exact (counted as the thread gets one); the running
/// time is brought up to date at the scheduler's ticks (4 ms at 250 Hz),
/// so the split of the rest between running and blocked is that coarse.
#[derive(Clone, Copy, Default)]
struct Sample {
    ms: f64,
    queued_ms: f64,
    running_ms: f64,
}

impl Sample {
    fn blocked_ms(&self) -> f64 {
        (self.ms - self.queued_ms - self.running_ms).max(0.0)
    }
}

/// This thread's (time on a CPU, time waiting in the run queue), in ms.
fn sched_ms() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((f.next()?? / 1e6, f.next()?? / 1e6))
}

/// Times one read on the hub's store every `every`, under load (once the
/// bench writes the `begun` file, as the devices start syncing: not while
/// they enroll) and then idle (once it writes the `done` file).
struct ReadProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Sample>, Vec<Sample>)>,
}

impl ReadProbe {
    fn start(
        every: Duration,
        begun: std::path::PathBuf,
        done: std::path::PathBuf,
        mut read: impl FnMut() -> bool + Send + 'static,
    ) -> ReadProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut load, mut idle) = (Vec::new(), Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let before = sched_ms();
                let t = Instant::now();
                if read() {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let (running_ms, queued_ms) = before
                        .zip(sched_ms())
                        .map_or((0.0, 0.0), |(a, b)| (b.0 - a.0, b.1 - a.1));
                    let sample = Sample {
                        ms,
                        queued_ms,
                        running_ms,
                    };
                    if done.exists() {
                        idle.push(sample);
                    } else if begun.exists() {
                        load.push(sample);
                    }
                }
                std::thread::sleep(every);
            }
            (load, idle)
        });
        ReadProbe { stop, thread }
    }

    /// `reads: WHAT under load p50 … p99 … (n) | idle p50 … p99 … (n) |
    /// under load, p99 read … = … waiting for a CPU + … running + …
    /// blocked; all: …% waiting for a CPU, …% blocked | less the wait for a
    /// CPU: under load p50 … p99 …, idle p50 … p99 …`.
    fn finish(self, what: &str) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut load, mut idle) = self.thread.join().unwrap_or_default();
        load.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        idle.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        let at = |v: &[Sample], p: f64| -> Sample {
            v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        // The same reads less their wait for a CPU: what the store itself
        // costs them (the machine's other load taken out).
        let net = |v: &[Sample], p: f64| -> f64 {
            let mut n: Vec<f64> = v.iter().map(|s| s.ms - s.queued_ms).collect();
            n.sort_by(f64::total_cmp);
            n.get(((n.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let p99 = at(&load, 0.99);
        let total: f64 = load
            .iter()
            .map(|s| s.ms)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let share = |f: fn(&Sample) -> f64| load.iter().map(f).sum::<f64>() / total * 100.0;
        format!(
            "reads: {what} under load p50 {:.1} ms p99 {:.1} ms ({}) | idle p50 {:.1} ms p99 {:.1} ms ({}) | under load, p99 read {:.1} ms = {:.1} waiting for a CPU + {:.1} running + {:.1} blocked; all: {:.0}% waiting for a CPU, {:.0}% blocked | less the wait for a CPU: under load p50 {:.1} ms p99 {:.1} ms, idle p50 {:.1} ms p99 {:.1} ms",
            at(&load, 0.5).ms,
            p99.ms,
            load.len(),
            at(&idle, 0.5).ms,
            at(&idle, 0.99).ms,
            idle.len(),
            p99.ms,
            p99.queued_ms,
            p99.running_ms,
            p99.blocked_ms(),
            share(|s| s.queued_ms),
            share(Sample::blocked_ms),
            net(&load, 0.5),
            net(&load, 0.99),
            net(&idle, 0.5),
            net(&idle, 0.99),
        )
    }
}

fn peak_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn bench(devices: usize, per: usize) -> Result<(), HubError> {
    let tmp = std::env::temp_dir().join(format!("fmp-hub-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let hub_dir = tmp.join("hub");
    let fmps = ["ML-GOG", "ML-HER", "ML-MNK", "ML-TBK", "ML-PKI"];
    let codes: Vec<String> = {
        let hub = Store::init(&hub_dir, "bench-hub")?;
        (0..devices)
            .map(|i| {
                fmp_hub::enroll::create_code(
                    &hub,
                    &[fmps[i % fmps.len()].to_string()],
                    Duration::from_secs(3600),
                    false,
                )
            })
            .collect::<Result<_, _>>()?
    };
    let exe = std::env::current_exe().map_err(HubError::Runtime)?;
    let mut child = Command::new(exe)
        .args(["--hub-only", &hub_dir.to_string_lossy()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(HubError::Runtime)?;
    let mut line = String::new();
    let mut hub_out = child.stdout.take().map(BufReader::new);
    if let Some(out) = hub_out.as_mut() {
        out.read_line(&mut line).map_err(HubError::Runtime)?;
    }
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let t = Instant::now();
    let stores: Vec<Store> = (0..devices)
        .map(|i| -> Result<Store, HubError> {
            let s = Store::init(&tmp.join(format!("d{i}")), &format!("device-{i}"))?;
            client::join(&s, &url, &codes[i])?;
            let subs = (0..per)
                .map(|j| {
                    let mut sub = fmp_core::example_submission();
                    sub.fmp = fmps[i % fmps.len()].to_string();
                    sub.observed_at += chrono::Duration::minutes(j as i64);
                    sub.notes = format!("device {i} #{j}");
                    sub
                })
                .collect();
            s.record_many(subs, chrono::Utc::now())?;
            Ok(s)
        })
        .collect::<Result<_, _>>()?;
    println!(
        "setup: {devices} devices enrolled, {} submissions recorded offline in {:.1} s",
        devices * per,
        t.elapsed().as_secs_f64()
    );
    let own_cpu = cpu_secs(std::process::id());
    let _ = std::fs::write(hub_dir.join("sync-begun"), b"");
    let start = Instant::now();
    // Per cause: how many, and the first error seen (printed as an example).
    let causes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        &'static str,
        (u64, String),
    >::new()));
    let results: Vec<Result<(Duration, client::Summary), HubError>> = std::thread::scope(|sc| {
        let hs: Vec<_> = stores
            .iter()
            .map(|s| {
                let causes = causes.clone();
                sc.spawn(move || {
                    let t = Instant::now();
                    let opts = SyncOptions {
                        base_delay: Duration::from_millis(50),
                        progress: Some(Box::new(move |p: &client::Progress| {
                            if let client::Event::Retry { error, .. } = &p.event {
                                let mut c = causes.lock().unwrap_or_else(|e| e.into_inner());
                                let e = c
                                    .entry(retry_cause(error))
                                    .or_insert_with(|| (0, error.to_string()));
                                e.0 += 1;
                            }
                        })),
                        ..SyncOptions::default()
                    };
                    client::sync(s, opts).map(|r| (t.elapsed(), r))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(HubError::Protocol("a device thread panicked".into())))
            })
            .collect()
    });
    let wall = start.elapsed();
    let peak = peak_kib(child.id());
    let hub_cpu = cpu_secs(child.id());
    // The 200 simulated devices' CPU over the sync (this process: their
    // threads; the hub is the child), beside the cores' capacity.
    let devices_cpu = cpu_secs(std::process::id())
        .zip(own_cpu)
        .map(|(b, a)| b - a);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The read probes' idle phase: 10 s on the store at rest.
    let _ = std::fs::write(hub_dir.join("sync-done"), b"");
    std::thread::sleep(Duration::from_secs(10));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    if let Some(mut out) = hub_out {
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    }
    let _ = child.wait();
    let count = |what: &str| -> String {
        rest.lines()
            .find_map(|l| l.strip_prefix("load: "))
            .and_then(|l| l.split(", ").find_map(|p| p.strip_prefix(what)))
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let (shed_hub, twice) = (count("shed "), count("applied twice "));
    let mut lat = Vec::new();
    let (mut sent, mut bytes, mut rts, mut retries, mut failed) = (0u64, 0u64, 0u64, 0u64, 0usize);
    let mut shed = 0u64;
    for r in results {
        match r {
            Ok((d, s)) => {
                lat.push(d);
                sent += s.sent;
                bytes += s.bytes_sent + s.bytes_received;
                rts += u64::from(s.round_trips);
                retries += u64::from(s.retries);
                shed += u64::from(s.shed);
            }
            Err(e) => {
                failed += 1;
                eprintln!("a device failed: {e}");
            }
        }
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let held = Store::open(&hub_dir)?.list(&Default::default())?.len();
    println!(
        "| devices | submissions | wall (s) | submissions/s | p50 sync (ms) | p99 sync (ms) | round trips | bytes | retries | failed | hub peak RSS (MiB) | shed | applied twice |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {devices} | {sent} | {:.2} | {:.0} | {:.0} | {:.0} | {rts} | {bytes} | {retries} | {failed} | {} | {shed_hub} | {twice} |",
        wall.as_secs_f64(),
        sent as f64 / wall.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        peak.map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "hub holds {held} submissions; hub CPU {:.1} s; the clients waited for a busy hub {shed} times; devices CPU {:.1} s ({:.0}% of {cores} cores over the wall)",
        hub_cpu.unwrap_or(0.0),
        devices_cpu.unwrap_or(0.0),
        devices_cpu.unwrap_or(0.0) / (wall.as_secs_f64() * cores as f64) * 100.0
    );
    let causes = causes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !causes.is_empty() {
        let list: Vec<String> = causes
            .iter()
            .map(|(k, (n, _))| format!("{k} {n}"))
            .collect();
        println!("retries by cause: {}", list.join(", "));
        for (k, (_, example)) in &causes {
            println!("  {k}, e.g.: {example}");
        }
    }
    for reads in rest.lines().filter(|l| l.starts_with("reads: ")) {
        println!("{reads}");
    }
    let _ = std::fs::remove_dir_all(Path::new(&tmp));
    Ok(())
}

/// A retry's cause, in a word: what the bench's table should tell apart
/// (requests given up on a silent hub, a refused connection, a busy hub…).
fn retry_cause(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("stall") || e.contains("silent") || e.contains("no answer") {
        "stalled"
    } else if e.contains("timed out") || e.contains("timeout") {
        "timed out"
    } else if e.contains("busy") || e.contains("503") {
        "busy"
    } else if e.contains("connect") || e.contains("reset") || e.contains("closed") {
        "connection"
    } else {
        "other"
    }
}
