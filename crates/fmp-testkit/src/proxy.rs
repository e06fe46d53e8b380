//! A fault-injecting TCP proxy for loopback tests, driven by a seed.
//!
//! Every connection accepted on `127.0.0.1:PORT` is piped to the upstream
//! address through a model of a bad link:
//!
//! - **bandwidth**: each direction is serialized at `bandwidth` bytes per
//!   second (chunks of at most [`CHUNK`] bytes), so a 32 kbit/s link really
//!   takes 250 ms per KiB;
//! - **latency**: each chunk arrives `latency` after it left (propagation,
//!   independent of bandwidth);
//! - **stalls**: with probability `stall_per_mille` per chunk the link
//!   freezes for a random time in `stall`;
//! - **byte cuts**: a connection is cut (both sockets closed, nothing more
//!   delivered) after a random number of bytes in `cut_after_bytes`
//!   (both directions counted), for the first `faulty_connections`;
//! - **link drops**: every random interval in `drop_every` the link goes
//!   down: every open connection is cut, and new ones are closed at once
//!   for a random time in `down_for`;
//! - **silent** ([`Faults::silent`]): cuts and drops close nothing. At a
//!   byte cut the connection freezes: nothing more is forwarded either way,
//!   no FIN, no RST, both sockets stay open. A link drop freezes every open
//!   connection the same way (as when a phone reattaches with a new address:
//!   the old connections never hear back), and a connection accepted while
//!   the link is down is held open with nothing forwarded (its data lost).
//!   This is the common failure of 2G links: the client hears nothing until
//!   its own timeout. A frozen connection is released (both sockets closed)
//!   once the client closes its side, or when the proxy is dropped.
//!
//! Randomness comes from `seed` alone: connection `k` draws from
//! `seed ^ k`, the drop schedule from `seed`. Byte cuts replay exactly;
//! time-based drops replay the same schedule (where in the byte stream they
//! land depends on the scheduler). A failing test prints its seed
//! ([`FaultProxy::describe`]) so the run can be replayed with
//! `FMP_FIELD_SEED`.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Largest piece the proxy forwards at once.
pub const CHUNK: usize = 512;

/// The faults of a link. `Faults::default()` is a clean, instant link.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bytes per second in each direction (None: unlimited).
    pub bandwidth: Option<u64>,
    /// Chance per chunk, in thousandths, that the link stalls.
    pub stall_per_mille: u32,
    /// How long a stall lasts, in milliseconds.
    pub stall_ms: Option<RangeInclusive<u64>>,
    /// Cut a connection after this many bytes (both directions counted).
    pub cut_after_bytes: Option<RangeInclusive<u64>>,
    /// Only the first this many connections get byte cuts (None: all).
    pub faulty_connections: Option<u64>,
    /// Drop the whole link every so many milliseconds.
    pub drop_every_ms: Option<RangeInclusive<u64>>,
    /// After a drop, the link stays down this many milliseconds.
    pub down_for_ms: Option<RangeInclusive<u64>>,
    /// Cuts and drops freeze connections instead of closing them.
    pub silent: bool,
}

impl Faults {
    /// A clean link with this seed.
    pub fn seeded(seed: u64) -> Faults {
        Faults {
            seed,
            ..Faults::default()
        }
    }

    /// A link of `kbit` kilobits per second with `latency_ms` one way.
    pub fn link(mut self, kbit: u64, latency_ms: u64) -> Faults {
        self.bandwidth = Some(kbit * 1000 / 8);
        self.latency = Duration::from_millis(latency_ms);
        self
    }

    /// Cuts each of the first `connections` connections after a number
    /// of bytes drawn from `bytes`.
    pub fn cut_after(mut self, bytes: RangeInclusive<u64>, connections: Option<u64>) -> Faults {
        self.cut_after_bytes = Some(bytes);
        self.faulty_connections = connections;
        self
    }

    /// Drops the whole link every `every_ms`, down for `down_ms`.
    pub fn drops(mut self, every_ms: RangeInclusive<u64>, down_ms: RangeInclusive<u64>) -> Faults {
        self.drop_every_ms = Some(every_ms);
        self.down_for_ms = Some(down_ms);
        self
    }

    /// Stalls with chance `per_mille` per chunk for `ms`.
    pub fn stalls(mut self, per_mille: u32, ms: RangeInclusive<u64>) -> Faults {
        self.stall_per_mille = per_mille;
        self.stall_ms = Some(ms);
        self
    }

    /// Makes cuts and drops silent: connections freeze, nothing is closed.
    pub fn silent(mut self) -> Faults {
        self.silent = true;
        self
    }
}

/// What the proxy did, for assertions and bench figures.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut by a byte limit.
    pub byte_cuts: AtomicU64,
    /// Link drops (each cuts every open connection).
    pub drops: AtomicU64,
    /// Connections refused while the link was down.
    pub refused_while_down: AtomicU64,
    /// Connections frozen by a silent cut or drop, or held while the link
    /// was down (silent faults only).
    pub silent_freezes: AtomicU64,
    /// Frozen connections still held open now (they go when the client
    /// closes its side).
    pub held: AtomicU64,
    /// Bytes forwarded client → upstream.
    pub bytes_up: AtomicU64,
    /// Bytes forwarded upstream → client.
    pub bytes_down: AtomicU64,
}

impl Stats {
    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::SeqCst)
    }
}

/// A running proxy; stops (cutting every connection) on drop.
#[derive(Debug)]
pub struct FaultProxy {
    /// Its address, `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// What it did so far.
    pub stats: Arc<Stats>,
    upstream: Arc<Mutex<String>>,
    faults: Faults,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Errors starting a proxy.
#[derive(Debug)]
pub enum ProxyError {
    /// The runtime or the listener could not start.
    Io(std::io::Error),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Io(e) => write!(f, "the fault proxy could not start: {e}"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`HOST:PORT`) on a loopback port.
    pub fn start(upstream: &str, faults: Faults) -> Result<FaultProxy, ProxyError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ProxyError::Io)?;
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(ProxyError::Io)?;
        let addr = listener.local_addr().map_err(ProxyError::Io)?;
        let stats = Arc::new(Stats::default());
        let up = Arc::new(Mutex::new(strip_scheme(upstream)));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (s2, u2, f2) = (stats.clone(), up.clone(), faults.clone());
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = accept_loop(listener, u2, f2, s2) => {},
                        _ = stop_rx => {},
                    }
                });
                rt.shutdown_background();
            })
            .map_err(ProxyError::Io)?;
        Ok(FaultProxy {
            addr,
            stats,
            upstream: up,
            faults,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points new connections at another upstream (a restarted hub).
    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = strip_scheme(upstream);
    }

    /// One line for a failure message: the seed and the faults.
    pub fn describe(&self) -> String {
        format!(
            "fault proxy seed {} ({:?}); connections {}, byte cuts {}, drops {}, refused while down {}, silent freezes {} (held now {}), bytes up {} down {}",
            self.faults.seed,
            self.faults,
            Stats::get(&self.stats.connections),
            Stats::get(&self.stats.byte_cuts),
            Stats::get(&self.stats.drops),
            Stats::get(&self.stats.refused_while_down),
            Stats::get(&self.stats.silent_freezes),
            Stats::get(&self.stats.held),
            Stats::get(&self.stats.bytes_up),
            Stats::get(&self.stats.bytes_down),
        )
    }

    /// Connections cut by a byte limit so far.
    pub fn byte_cuts(&self) -> u64 {
        Stats::get(&self.stats.byte_cuts)
    }

    /// Link drops so far.
    pub fn drops(&self) -> u64 {
        Stats::get(&self.stats.drops)
    }

    /// Connections frozen silently so far (cut, dropped or held while down).
    pub fn silent_freezes(&self) -> u64 {
        Stats::get(&self.stats.silent_freezes)
    }

    /// Frozen connections still held open.
    pub fn held(&self) -> u64 {
        Stats::get(&self.stats.held)
    }

    /// Bytes forwarded, both directions.
    pub fn bytes(&self) -> u64 {
        Stats::get(&self.stats.bytes_up) + Stats::get(&self.stats.bytes_down)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn strip_scheme(u: &str) -> String {
    u.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

fn draw(rng: &mut StdRng, r: &RangeInclusive<u64>) -> u64 {
    if r.start() >= r.end() {
        *r.start()
    } else {
        rng.random_range(r.clone())
    }
}

/// The link state shared by connections: its drop epoch, and whether it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    epoch: u64,
    down: bool,
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Arc<Mutex<String>>,
    faults: Faults,
    stats: Arc<Stats>,
) {
    let (link_tx, link_rx) = watch::channel(Link {
        epoch: 0,
        down: false,
    });
    if let Some(every) = faults.drop_every_ms.clone() {
        let down = faults.down_for_ms.clone().unwrap_or(0..=0);
        let seed = faults.seed;
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0xD50F);
            let mut epoch = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(draw(&mut rng, &every))).await;
                epoch += 1;
                stats.drops.fetch_add(1, Ordering::SeqCst);
                let _ = link_tx.send(Link { epoch, down: true });
                tokio::time::sleep(Duration::from_millis(draw(&mut rng, &down))).await;
                let _ = link_tx.send(Link { epoch, down: false });
            }
        });
    }
    let mut k: u64 = 0;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let n = k;
        k += 1;
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let link = *link_rx.borrow();
        if link.down {
            if faults.silent {
                // As if the SYN and all that follows were lost.
                let stats = stats.clone();
                tokio::spawn(async move {
                    let (mut cr, _cw) = client.into_split();
                    hold(&mut cr, &stats).await;
                });
            } else {
                stats.refused_while_down.fetch_add(1, Ordering::SeqCst);
                drop(client);
            }
            continue;
        }
        let target = upstream.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let faults = faults.clone();
        let stats = stats.clone();
        let link_rx = link_rx.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            connection(n, client, server, faults, stats, link_rx, link.epoch).await;
        });
    }
}

async fn connection(
    n: u64,
    client: TcpStream,
    server: TcpStream,
    faults: Faults,
    stats: Arc<Stats>,
    mut link: watch::Receiver<Link>,
    epoch: u64,
) {
    let mut rng = StdRng::seed_from_u64(faults.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let cut_at = match (&faults.cut_after_bytes, faults.faulty_connections) {
        (Some(r), Some(m)) if n < m => Some(draw(&mut rng, r)),
        (Some(r), None) => Some(draw(&mut rng, r)),
        _ => None,
    };
    let budget = Arc::new(AtomicU64::new(cut_at.unwrap_or(u64::MAX)));
    let cut = Arc::new(tokio::sync::Notify::new());
    // The pipes borrow the halves, so a silent fault can keep them open.
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let rng_up = StdRng::seed_from_u64(rng.random());
    let rng_down = StdRng::seed_from_u64(rng.random());
    let up = pipe(
        (&mut cr, &mut sw),
        faults.clone(),
        (budget.clone(), cut.clone()),
        rng_up,
        stats.clone(),
        true,
    );
    let down = pipe(
        (&mut sr, &mut cw),
        faults.clone(),
        (budget.clone(), cut.clone()),
        rng_down,
        stats.clone(),
        false,
    );
    let dropped = async {
        loop {
            if link.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if link.borrow().epoch != epoch {
                return;
            }
        }
    };
    let faulted = tokio::select! {
        _ = async { tokio::join!(up, down) } => false,
        _ = dropped => true,
        _ = cut.notified() => true,
    };
    if faulted && faults.silent {
        // Frozen: the upstream halves stay open, untouched, until the
        // client gives up.
        hold(&mut cr, &stats).await;
    }
    // Dropping the halves closes both sockets: the cut (or the release).
    drop((cr, cw, sr, sw));
}

/// Holds a frozen connection: reads and discards what the client sends
/// (lost on the way) until it closes its side; the caller then drops the
/// sockets. Counted in `silent_freezes`, and in `held` while it lasts.
async fn hold(client: &mut tokio::net::tcp::OwnedReadHalf, stats: &Stats) {
    stats.silent_freezes.fetch_add(1, Ordering::SeqCst);
    stats.held.fetch_add(1, Ordering::SeqCst);
    let mut buf = vec![0u8; CHUNK];
    while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
    stats.held.fetch_sub(1, Ordering::SeqCst);
}

async fn pipe(
    (from, to): (
        &mut tokio::net::tcp::OwnedReadHalf,
        &mut tokio::net::tcp::OwnedWriteHalf,
    ),
    faults: Faults,
    (budget, cut): (Arc<AtomicU64>, Arc<tokio::sync::Notify>),
    mut rng: StdRng,
    stats: Arc<Stats>,
    upward: bool,
) {
    // Reader: paces at the bandwidth, stamps each chunk with its arrival
    // time; writer: delivers at that time (latency overlaps transmission).
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let cutting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutting_w = cutting.clone();
    let silent = faults.silent;
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut free_at = Instant::now();
        loop {
            let got = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let left = budget.load(Ordering::SeqCst);
            let take = (got as u64).min(left);
            budget.fetch_sub(take, Ordering::SeqCst);
            let now = Instant::now();
            if free_at < now {
                free_at = now;
            }
            if faults.stall_per_mille > 0 && rng.random_range(0..1000) < faults.stall_per_mille {
                let r = faults.stall_ms.clone().unwrap_or(0..=0);
                free_at += Duration::from_millis(draw(&mut rng, &r));
            }
            if let Some(bw) = faults.bandwidth.filter(|b| *b > 0) {
                free_at += Duration::from_secs_f64(take as f64 / bw as f64);
            }
            tokio::time::sleep_until(free_at).await;
            // `take` may be usize-sized: it is at most `got`.
            let chunk = buf[..usize::try_from(take).unwrap_or(got)].to_vec();
            if !chunk.is_empty() && tx.send((free_at + faults.latency, chunk)).is_err() {
                break;
            }
            if take < got as u64 {
                // The writer delivers what got through, then cuts both ways.
                cutting.store(true, Ordering::SeqCst);
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            let c = if upward {
                &stats.bytes_up
            } else {
                &stats.bytes_down
            };
            c.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        if cutting_w.load(Ordering::SeqCst) {
            stats.byte_cuts.fetch_add(1, Ordering::SeqCst);
            cut.notify_one();
            if silent {
                // No FIN: the connection freezes where it was cut.
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
