//! The hub's commands: `serve`, `enroll-code`, `join`, `devices`, `revoke`,
//! `sync` and `status`, over `fmp-hub`.

use crate::output::{StdoutError, out};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use fmp_core::store::Store;
use fmp_core::store::ops::{EnrollmentReads, EnrollmentWrites};
use fmp_hub::client::{Event, SyncOptions};
use fmp_hub::{HubError, Limits, ServeOptions};

/// The hub subcommands (flattened into `fmp`'s).
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Run a hub: phones and lower hubs sync with it (until SIGINT/SIGTERM).
    ///
    /// Prints `listening on URL` once it accepts connections.
    Serve {
        /// Directory of the hub's store.
        #[arg(long)]
        store: PathBuf,
        /// Address to listen on, e.g. 0.0.0.0:8443 (port 0 picks a free one).
        #[arg(long)]
        listen: String,
        /// PEM certificate (chain) for TLS. If neither it nor the key exists,
        /// a self-signed certificate and key are made there on first start;
        /// its SHA-256 fingerprint is printed at every start.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for TLS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        max_body: usize,
        /// Log format: one text line or one JSON object per request and event.
        #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
        log_format: LogFormatArg,
        /// Log to this file (appended) instead of stderr.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Connections open at once; past it new ones get `503 busy`.
        #[arg(long, default_value_t = Limits::default().max_connections)]
        max_connections: usize,
        /// Connections open at once from one client address.
        #[arg(long, default_value_t = Limits::default().max_connections_per_ip)]
        max_connections_per_ip: usize,
        /// Seconds a client has to send a request's headers; idle
        /// keep-alive connections are closed after it too.
        #[arg(long, default_value_t = Limits::default().header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        header_timeout: u64,
    },
    /// Print a one-time enrollment code for a phone (or a lower hub) for these FMPs.
    EnrollCode {
        /// Directory of the hub's store.
        #[arg(long)]
        store: PathBuf,
        /// FMP code the device may write, e.g. ML-GOG (repeat for several).
        #[arg(long = "fmp", required = true)]
        fmps: Vec<String>,
        /// How long the code is valid: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// The device is a supervisor's hub: it may enroll phones for these FMPs.
        #[arg(long)]
        hub: bool,
    },
    /// List this hub's enrollment codes not used yet (FMPs, kind, expiry), or cancel one.
    ///
    /// Only a code's hash is stored, so a code is listed by its id (the first
    /// 8 hex digits of the hash); `--cancel` takes the code or its id.
    Codes {
        /// Directory of the hub's store.
        #[arg(long)]
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Cancel this unused code (the code, e.g. K7QM2-XR4TD, or its id):
        /// a device joining with it is refused.
        #[arg(long, value_name = "CODE_OR_ID")]
        cancel: Option<String>,
    },
    /// Join a hub with an enrollment code: this store may then sync with it.
    Join {
        /// Directory of this device's store.
        #[arg(long)]
        store: PathBuf,
        /// The hub's address, e.g. http://10.0.0.2:8080 or https://gao-hub:8443.
        #[arg(long)]
        hub: String,
        /// The one-time code from the supervisor.
        #[arg(long)]
        code: String,
    },
    /// List the devices enrolled on this hub, with their FMPs and last sync.
    Devices {
        /// Directory of the hub's store.
        #[arg(long)]
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Reinstate a revoked device (by id, or a name only one revoked
        /// device has) with its key and FMPs: it may sync again. An
        /// enrollment code alone never brings a revoked device back.
        #[arg(long, value_name = "DEVICE")]
        reinstate: Option<String>,
    },
    /// Revoke a device (by id or name): the hub refuses it from now on.
    Revoke {
        /// Directory of the hub's store.
        #[arg(long)]
        store: PathBuf,
        /// Device id or name.
        device: String,
    },
    /// Sync with the hub this store joined: send what it lacks, receive what this store lacks.
    Sync {
        /// Directory of this store.
        #[arg(long)]
        store: PathBuf,
        /// Another address for the same hub.
        #[arg(long)]
        hub: Option<String>,
        /// Retries after network failures before giving up.
        #[arg(long, default_value_t = 8)]
        retries: u32,
        /// First retry delay in milliseconds (doubled each time, with jitter).
        #[arg(long, default_value_t = 500)]
        retry_delay_ms: u64,
        /// Largest message, bytes (both ways): the ceiling of the message
        /// size, which follows the link (smaller after a cut, larger as
        /// messages get through).
        #[arg(long, default_value_t = fmp_hub::DEFAULT_MAX_BYTES)]
        max_bytes: u32,
        /// Seconds without a byte from the hub before a request is given up
        /// as a silent link and retried (the hub's answer must begin within
        /// this, after the request went out at 8 kbit/s, and never pause
        /// longer). Keep it above the link's worst round trip.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        stall_timeout: u64,
    },
    /// Sync state: pending changes, last sync per peer, quarantined records and why.
    Status {
        /// Directory of this store.
        #[arg(long)]
        store: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--log-format` of `fmp serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// What ends a hub subcommand early.
enum Stop {
    /// The hub's work failed.
    Hub(HubError),
    /// Standard output could not be written.
    Output(StdoutError),
}

impl<E: Into<HubError>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Hub(e.into())
    }
}

impl From<StdoutError> for Stop {
    fn from(e: StdoutError) -> Stop {
        Stop::Output(e)
    }
}

/// Runs a hub subcommand; errors are printed (a closed standard output
/// ends it quietly, with status 0).
pub fn run(cmd: HubCommand) -> ExitCode {
    match dispatch(cmd) {
        Ok(code) => code,
        Err(Stop::Output(e)) if e.closed() => ExitCode::SUCCESS,
        Err(Stop::Output(e)) => {
            eprintln!("error: writing to standard output: {}", e.0);
            ExitCode::FAILURE
        }
        Err(Stop::Hub(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: HubCommand) -> Result<ExitCode, Stop> {
    match cmd {
        HubCommand::Serve {
            store,
            listen,
            tls_cert,
            tls_key,
            max_body,
            log_format,
            log,
            max_connections,
            max_connections_per_ip,
            header_timeout,
        } => {
            let format = match log_format {
                LogFormatArg::Text => fmp_hub::logging::LogFormat::Text,
                LogFormatArg::Json => fmp_hub::logging::LogFormat::Json,
            };
            let place = fmp_hub::logging::init(format, log.as_deref())?;
            eprintln!("logging to {place}");
            let tls = tls_cert.zip(tls_key);
            let scheme = if tls.is_some() { "https" } else { "http" };
            if let Some((cert, key)) = &tls {
                // Not a store: refused before any certificate is made.
                drop(Store::open(&store)?);
                let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                names.extend(crate::addresses::local_ipv4().iter().map(|a| a.to_string()));
                if fmp_hub::tls::ensure_self_signed(cert, key, &names)? {
                    eprintln!(
                        "made a self-signed TLS certificate {} and its key {} (readable by \
                         you only): phones and hubs pin it when they join",
                        cert.display(),
                        key.display()
                    );
                }
                eprintln!(
                    "TLS certificate {}: SHA-256 fingerprint {}",
                    cert.display(),
                    fmp_hub::tls::file_fingerprint(cert)?
                );
            } else {
                eprintln!(
                    "plain HTTP: submissions cross the network unencrypted (requests are still \
                     signed); give --tls-cert FILE --tls-key FILE for HTTPS (made on first start \
                     if neither file exists)"
                );
            }
            let store_dir = store.clone();
            let opts = ServeOptions {
                store,
                listen,
                tls,
                limits: Limits {
                    max_body,
                    max_connections,
                    max_connections_per_ip,
                    header_timeout: Duration::from_secs(header_timeout),
                    ..Limits::default()
                },
            };
            fmp_hub::serve_until_signal(opts, |addr| {
                // (A hub whose standard output went away serves on.)
                let _ = out!("listening on {scheme}://{addr}");
                let _ = std::io::stdout().flush();
                let own = if addr.ip().is_unspecified() {
                    crate::addresses::local_ipv4()
                } else {
                    Vec::new()
                };
                if let Some(line) = crate::addresses::reach_line(scheme, addr, || own.clone()) {
                    eprintln!("{line}");
                }
                // Kept for `enroll-code` to print beside its codes (best effort).
                let urls = crate::addresses::phone_urls(scheme, addr, &own);
                // On a thread of its own: this runs inside the hub's async
                // runtime, where a PostgreSQL store's blocking client may
                // not start its own.
                std::thread::scope(|sc| {
                    sc.spawn(|| {
                        if let Ok(s) = Store::open(&store_dir) {
                            let _ = s.transaction(|w| w.set_served_at(&urls));
                        }
                    });
                });
            })?;
            eprintln!("hub stopped");
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::EnrollCode {
            store,
            fmps,
            expires,
            hub,
        } => {
            let s = Store::open(&store)?;
            let ttl = fmp_hub::enroll::parse_duration(&expires)?;
            if ttl < std::time::Duration::from_secs(60) {
                return Err(HubError::Usage(format!(
                    "--expires {expires} is too short: a code must stay valid at least 1m \
                     for a phone to join with it (e.g. 30m, 24h, 7d)"
                ))
                .into());
            }
            if ttl > MAX_CODE_TTL {
                return Err(HubError::Usage(format!(
                    "--expires {expires} is too long: a code may stay valid at most 365d \
                     (a code is a key to the hub; make a new one when it is needed)"
                ))
                .into());
            }
            // The same FMP given twice is one FMP.
            let mut fmps = fmps;
            let mut seen = std::collections::HashSet::new();
            fmps.retain(|f| seen.insert(f.clone()));
            let code = fmp_hub::enroll::create_code(&s, &fmps, ttl, hub)?;
            // Taken after the code was stored, and rounded up to the minute
            // printed: never earlier than the expiry stored.
            let until = chrono::Duration::from_std(ttl)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                .and_then(|t| {
                    let past = i64::from(t.timestamp_subsec_nanos() > 0)
                        + i64::from(chrono::Timelike::second(&t));
                    if past == 0 {
                        Some(t)
                    } else {
                        t.checked_add_signed(chrono::Duration::seconds(
                            60 - i64::from(chrono::Timelike::second(&t)),
                        ))
                    }
                })
                .map_or_else(
                    || "far in the future".to_string(),
                    |t| format!("until {} UTC", t.format("%Y-%m-%d %H:%M")),
                );
            let id = fmp_hub::enroll::code_id(&code);
            let urls = s.snapshot(|r| r.served_at())?;
            let hub_url = match urls.as_slice() {
                [] => "URL".to_string(),
                [one] => one.clone(),
                many => format!("{} (or {})", many[0], many[1..].join(", ")),
            };
            out!("{code}")?;
            // The code again with all a person needs beside it, on one
            // stream (stdout keeps the code alone, for scripts).
            eprintln!(
                "one-time code {code} (id {id} in `fmp codes`) for {}{}, valid {expires} \
                 ({until}); the device joins with: fmp join --store DIR --hub {hub_url} --code {code}{}",
                fmps.join(", "),
                if hub {
                    " (a hub, may enroll phones)"
                } else {
                    ""
                },
                if urls.is_empty() {
                    " (this hub's address: `fmp serve` prints it)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Codes {
            store,
            json,
            cancel,
        } => {
            let s = Store::open(&store)?;
            if let Some(which) = cancel {
                let c = fmp_hub::enroll::cancel(&s, &which)?;
                out!(
                    "cancelled code {} for {} (it would have expired {})",
                    c.id,
                    c.fmps.join(", "),
                    c.expires_at
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let list = fmp_hub::enroll::unused(&s)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            if list.is_empty() {
                out!("no unused enrollment code")?;
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "{:<8}  {:<24}  {:<5}  {:<20}  expires",
                "id",
                "fmps",
                "for",
                "made"
            )?;
            for c in list {
                out!(
                    "{:<8}  {:<24}  {:<5}  {:<20}  {}",
                    c.id,
                    c.fmps.join(","),
                    if c.hub { "hub" } else { "phone" },
                    c.created_at,
                    c.expires_at
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Join { store, hub, code } => {
            let s = Store::open(&store)?;
            let j = fmp_hub::client::join(&s, &hub, &code)?;
            out!(
                "joined hub {} ({}) for {}{}",
                j.hub_name,
                j.hub,
                j.fmps.join(", "),
                if j.may_enroll {
                    "; may enroll phones"
                } else {
                    ""
                }
            )?;
            match &j.tls_fingerprint {
                Some(fp) => out!(
                    "pinned the hub's TLS certificate (SHA-256 {fp}); check it is the one \
                     `fmp serve` printed"
                )?,
                None => out!(
                    "plain HTTP: no certificate pinned; what is synced crosses the network \
                     unencrypted (requests are still signed)"
                )?,
            }
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Devices {
            store,
            json,
            reinstate,
        } => {
            let s = Store::open(&store)?;
            if let Some(who) = reinstate {
                let id = fmp_hub::db::reinstate(&s, &who)?;
                out!("reinstated device {id}")?;
                let clash = fmp_hub::db::name_clashes(&s, id)?;
                if !clash.is_empty() {
                    eprintln!(
                        "warning: the reinstated device's name is also that of active device(s) {} \
                         ({}); `fmp revoke` by name now refuses, give it by id",
                        clash
                            .iter()
                            .map(|d| d.device.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        clash
                            .iter()
                            .map(|d| fmp_hub::db::printable(&d.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let list = fmp_hub::status::devices(&s)?;
            let unused = fmp_hub::enroll::unused(&s)?.len();
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                )?;
            } else {
                out!(
                    "{:<36}  {:<20}  {:<24}  {:<20}  state",
                    "device",
                    "name",
                    "fmps",
                    "last sync"
                )?;
                for d in list {
                    let state = match (&d.revoked_at, d.may_enroll) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, true) => "hub".to_string(),
                        (None, false) => "active".to_string(),
                    };
                    out!(
                        "{:<36}  {:<20}  {:<24}  {:<20}  {state}",
                        d.device,
                        fmp_hub::db::listed_name(&d.name),
                        d.fmps.map(|f| f.join(",")).unwrap_or_else(|| "any".into()),
                        d.last_sync.unwrap_or_else(|| "never".into()),
                    )?;
                }
                if unused > 0 {
                    out!(
                        "{unused} enrollment code(s) not used yet: `fmp codes --store {}` lists \
                         them, `--cancel` cancels one",
                        store.display()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Revoke { store, device } => {
            let s = Store::open(&store)?;
            let shown = fmp_hub::db::printable(&device);
            let ids = fmp_hub::db::revoke_ids(&s, &device)?;
            if ids.is_empty() {
                return Err(HubError::Usage(format!(
                    "no active device {shown} on this hub (see `fmp devices`)"
                ))
                .into());
            }
            out!(
                "revoked {} device(s): {shown} ({})",
                ids.len(),
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Sync {
            store,
            hub,
            retries,
            retry_delay_ms,
            max_bytes,
            stall_timeout,
        } => {
            let s = Store::open(&store)?;
            let bar = if std::io::stderr().is_terminal() {
                let b = indicatif::ProgressBar::new_spinner();
                b.enable_steady_tick(Duration::from_millis(120));
                Some(b)
            } else {
                None
            };
            let b2 = bar.clone();
            let opts = SyncOptions {
                url: hub,
                retries,
                base_delay: Duration::from_millis(retry_delay_ms),
                max_bytes,
                stall_timeout: Duration::from_secs(stall_timeout),
                progress: Some(Box::new(move |p| {
                    let t = &p.summary;
                    let line = match &p.event {
                        Event::RoundTrip => format!(
                            "round trip {}: sent {}, received {}, {} bytes",
                            t.round_trips,
                            t.sent,
                            t.received,
                            t.bytes_sent + t.bytes_received
                        ),
                        Event::Quarantined(n) => {
                            format!("the hub refused {n} change(s); set aside (see `fmp status`)")
                        }
                        Event::Retry {
                            attempt,
                            wait,
                            error,
                        } => format!(
                            "retry {attempt} in {:.1} s after: {error}",
                            wait.as_secs_f64()
                        ),
                    };
                    match &b2 {
                        Some(b) => b.set_message(line),
                        None => eprintln!("{line}"),
                    }
                })),
                ..SyncOptions::default()
            };
            let r = fmp_hub::client::sync(&s, opts);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let t = r?;
            out!(
                "synced: sent {}, received {}, bytes {} up / {} down, round trips {}{}{}{}",
                t.sent,
                t.received,
                t.bytes_sent,
                t.bytes_received,
                t.round_trips,
                if t.retries > 0 {
                    format!(", retries {}", t.retries)
                } else {
                    String::new()
                },
                if t.shed > 0 {
                    format!(", waited for a busy hub {} time(s)", t.shed)
                } else {
                    String::new()
                },
                if t.refused.is_empty() {
                    String::new()
                } else {
                    format!(", refused by the hub {} (quarantined)", t.refused.len())
                }
            )?;
            Ok(ExitCode::SUCCESS)
        }
        HubCommand::Status { store, json } => {
            let s = Store::open(&store)?;
            let st = fmp_hub::status::status(&s)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&st).unwrap_or_default())?;
                return Ok(ExitCode::SUCCESS);
            }
            out!(
                "device {} ({})",
                fmp_hub::db::printable(&st.name),
                st.device
            )?;
            match (&st.hub, &st.hub_url) {
                (Some(h), Some(u)) => out!(
                    "joined hub {h} at {u} for {}",
                    st.fmps
                        .as_ref()
                        .map(|f| f.join(", "))
                        .unwrap_or_else(|| "any FMP".into())
                )?,
                _ => out!("not joined to a hub")?,
            }
            if let Some(fp) = &st.hub_tls_fingerprint {
                out!("hub's TLS certificate pinned: SHA-256 {fp}")?;
            } else if st
                .hub_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://"))
            {
                out!("plain HTTP to the hub: no certificate pinned")?;
            }
            if let Some(r) = &st.refused_by_hub {
                out!(
                    "refused by the hub since {}: {}",
                    r.at,
                    fmp_hub::db::printable(&r.reason)
                )?;
            }
            out!("pending changes: {}", st.pending)?;
            for p in &st.peers {
                out!(
                    "peer {}: last sync {}, {} change(s) not acknowledged",
                    named(Some(&p.peer), p.name.as_deref()),
                    p.last_sync.as_deref().unwrap_or("never"),
                    p.pending
                )?;
            }
            if st.quarantined.is_empty() {
                out!("quarantined: none")?;
            } else {
                for line in quarantine_lines(&st.quarantined) {
                    out!("{line}")?;
                }
                for g in &st.held {
                    out!(
                        "  held: {} change(s) by {}{}: {}",
                        g.changes,
                        named(g.author.as_deref(), g.author_name.as_deref()),
                        if g.retried {
                            " (offered again at each sync)"
                        } else {
                            ""
                        },
                        g.reason
                    )?;
                }
            }
            if !st.to_correct.is_empty() {
                out!(
                    "to correct: {} of this device's record(s) sent back by a review",
                    st.to_correct.len()
                )?;
                for t in &st.to_correct {
                    out!(
                        "  {} ({}) {} by {}{}: {}",
                        t.id,
                        t.fmp,
                        t.status,
                        named(Some(&t.by), t.by_name.as_deref()),
                        if t.edited_since {
                            ", edited since (waiting for the reviewer)"
                        } else {
                            ""
                        },
                        fmp_hub::db::printable(if t.comment.is_empty() {
                            "(no comment)"
                        } else {
                            &t.comment
                        })
                    )?;
                }
            }
            if st.flagged > 0 {
                out!(
                    "flagged for review: {} record(s) with conflicting values or merged edits \
                     that break a rule (`fmp show` names it)",
                    st.flagged
                )?;
            }
            let w = &st.waiting;
            if w.total > 0 {
                out!(
                    "waiting here: {} received change(s) not applied: {} held back for scope \
                     (until an edit brings the record into its author's FMPs), {} behind those, \
                     {} missing a dependency",
                    w.total,
                    w.held_for_scope,
                    w.behind_waiting,
                    w.missing_dependency
                )?;
            }
            if let Some(r) = &st.restored {
                let when = r.detected_at.as_deref().unwrap_or("?");
                match &r.healed_at {
                    Some(_) => out!(
                        "restored from an older copy: detected {when}, healed: {} change(s) \
                         taken back, writing as actor epoch {}",
                        r.taken_back,
                        r.epoch
                    )?,
                    None => out!(
                        "restored from an older copy: detected {when}, not healed yet (sync \
                         again): {} change(s) taken back so far, writing as actor epoch {}",
                        r.taken_back,
                        r.epoch
                    )?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A device as a person reads it: its name with the id's first 8
/// characters, else `device ID` (`--json` has both).
fn named(id: Option<&str>, name: Option<&str>) -> String {
    let id = id.unwrap_or("?");
    match name {
        Some(n) => format!(
            "{} ({})",
            fmp_hub::db::printable(n),
            id.get(..8).unwrap_or(id)
        ),
        None => format!("device {id}"),
    }
}

/// The longest an enrollment code may stay valid (`--expires`).
const MAX_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// `fmp status`'s quarantine lines: a head with the counts, then one line
/// per record and reason (not one per change), with how many changes.
fn quarantine_lines(list: &[fmp_hub::db::Quarantined]) -> Vec<String> {
    let mut groups: Vec<(&fmp_hub::db::Quarantined, usize)> = Vec::new();
    for q in list {
        match groups
            .iter_mut()
            .find(|(l, _)| l.record == q.record && l.reason == q.reason && l.released == q.released)
        {
            Some((_, n)) => *n += 1,
            None => groups.push((q, 1)),
        }
    }
    let records: std::collections::HashSet<&String> = list.iter().map(|q| &q.record).collect();
    let mut out = vec![format!(
        "quarantined: {} change(s) of {} record(s)",
        list.len(),
        records.len()
    )];
    for (q, n) in groups {
        out.push(format!(
            "  {} ({}){}{}: {}",
            q.record,
            q.fmp.as_deref().unwrap_or("?"),
            if q.released {
                " (sent again at the next sync)"
            } else {
                ""
            },
            if n > 1 {
                format!(", {n} changes")
            } else {
                String::new()
            },
            fmp_hub::db::printable(&q.reason)
        ));
    }
    out
}

#[cfg(test)]
mod quarantine_tests {
    use super::quarantine_lines;
    use fmp_hub::db::Quarantined;

    fn q(hash: &str, record: &str, reason: &str) -> Quarantined {
        Quarantined {
            hash: hash.into(),
            record: record.into(),
            author: None,
            fmp: Some("ML-BEN".into()),
            reason: reason.into(),
            at: "2020-06-30T00:00:00Z".into(),
            released: false,
        }
    }

    #[test]
    fn a_record_with_several_refused_changes_is_one_line_with_their_count() {
        let lines = quarantine_lines(&[
            q("a1", "rec-1", "outside its FMPs"),
            q("a2", "rec-1", "outside its FMPs"),
            q("b1", "rec-2", "outside its FMPs"),
            q("a3", "rec-1", "cannot verify its author"),
        ]);
        assert_eq!(
            lines,
            [
                "quarantined: 4 change(s) of 2 record(s)",
                "  rec-1 (ML-BEN), 2 changes: outside its FMPs",
                "  rec-2 (ML-BEN): outside its FMPs",
                "  rec-1 (ML-BEN): cannot verify its author",
            ]
        );
    }

    #[test]
    fn a_change_to_be_sent_again_is_labelled_so_not_released() {
        let mut again = q("a1", "rec-1", "outside its FMPs");
        again.released = true;
        let lines = quarantine_lines(&[again]);
        assert_eq!(
            lines[1],
            "  rec-1 (ML-BEN) (sent again at the next sync): outside its FMPs"
        );
    }
}
