//! A whole-system, seeded simulation (in the spirit of Jepsen and of
//! deterministic simulation testing), with real `fmp` processes on loopback.
//!
//! From one u64 seed: a random topology (HQ, 1–2 regional hubs joined to HQ
//! with `--hub` codes for 1–2 FMPs each, sometimes a district hub below one
//! of them, 1–3 phones per hub, each for one FMP of its hub, some with a
//! clock months off under libfaketime), then a random interleaving of
//! operations (record, an enumerator editing or deleting its own record,
//! reviews at a hub or at HQ, a phone enrolled mid-run, revoke and later
//! reinstate a phone, syncs phone → hub and hub → upstream, backups of a
//! phone's, a hub's or HQ's store) and faults (syncs through a `FaultProxy`
//! cut at a random byte or gone silent, a sync child SIGKILLed at a random
//! moment, the server a sync goes to (a hub's or HQ's) SIGKILLed and
//! restarted, a phone, a hub or HQ restored from an earlier copy of its
//! store, wrong set-ups that must be refused). Then the faults
//! stop, every replica syncs a bounded number of times, and the invariants
//! are checked:
//!
//! - every id `fmp record` printed is at HQ exactly once, or held with a
//!   reason at a hop that `fmp status --json` names (`quarantined[].record`),
//!   unless the phone that acknowledged it was restored from a copy older
//!   than the record before the record left the phone (then it is gone with
//!   the phone's newer data: counted and logged, not expected);
//! - HQ holds no submission nobody acknowledged;
//! - every replica holds, for its FMPs, the same materialized submissions
//!   (canonical JSON with review) as HQ, and logs each change once;
//! - `PRAGMA integrity_check` is ok on every store.
//!
//! `FMP_SIM_SEED=N` replays one seed (a failure prints the command and the
//! operation log); `FMP_SIM_SEEDS=N` runs N seeds from it (default 3, the
//! CI budget). `scripts/simulate.sh` runs many. The schedule of operations
//! and faults is a pure function of the seed; what a SIGKILL interrupts
//! depends on timing, so a replay is close but not byte-identical.
//!
//! Regional hubs may share an FMP (that found a bug, fixed: certificates
//! now chain; `FMP_SIM_OVERLAP=0` keeps their FMPs disjoint), and half the
//! worlds have a district hub joined below a regional hub with a hub code
//! from it, with phones of its own. A restored phone may write before the
//! sync that heals it (the bug that found is fixed;
//! `FMP_SIM_WRITE_BEFORE_HEAL=0` makes it sync first), and must be healed
//! within three syncs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

#[path = "../hub/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;

const DEFAULT_SEED: u64 = 0x513d_2026;
const DEFAULT_SEEDS: u64 = 3;

/// FMPs the hubs cover (entry/exit points of the embedded Mali registry).
const FMPS: [&str; 4] = ["ML-GOG", "ML-HER", "ML-BEN", "ML-MNK"];

type Env = Vec<(&'static str, String)>;

// ---------------------------------------------------------------- processes

/// `fmp ARGS` with an environment (a fake clock), not checked.
fn fmp_env(args: &[&str], env: &Env) -> Output {
    Command::new(fmp_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// `fmp sync` as a child process.
fn sync_child(store: &Path, url: &str, extra: &[&str], env: &Env) -> Child {
    Command::new(fmp_bin())
        .args(["sync", "--store", s(store), "--hub", url])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A hub (`fmp serve`) that can be SIGKILLed.
struct Hub {
    child: Child,
    url: String,
}

impl Hub {
    fn start(store: &Path) -> Hub {
        let mut child = Command::new(fmp_bin())
            .args(["serve", "--store", s(store), "--listen", "127.0.0.1:0"])
            .arg("--log")
            .arg(store.with_extension("log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_string();
        Hub { child, url }
    }

    fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn kill(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

// ---------------------------------------------------------------- state

fn integrity(store: &Path) -> Result<(), String> {
    let ok = fmp_core::store::testing::integrity_check(store).unwrap();
    if ok == "ok" {
        Ok(())
    } else {
        Err(format!("{} is corrupt: {ok}", store.display()))
    }
}

/// A store's submissions (canonical JSON with review) by id; an id listed
/// twice or a change logged twice is an error.
fn submissions(store: &Path) -> Result<BTreeMap<String, serde_json::Value>, String> {
    let out = fmp(&["list", "--store", s(store), "--format", "json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let mut subs = BTreeMap::new();
    for v in list {
        let id = v["id"].as_str().unwrap().to_string();
        if subs.insert(id.clone(), v).is_some() {
            return Err(format!("{} lists {id} twice", store.display()));
        }
    }
    let hashes: Vec<[u8; 32]> =
        fmp_core::store::testing::changes(&fmp_core::store::Store::open(store).unwrap())
            .unwrap()
            .into_iter()
            .map(|c| c.hash)
            .collect();
    let n = hashes.len();
    let distinct = hashes.iter().collect::<BTreeSet<_>>().len();
    if n != distinct {
        return Err(format!(
            "{}: {} change(s) logged twice",
            store.display(),
            n - distinct
        ));
    }
    Ok(subs)
}

fn ids(store: &Path) -> BTreeSet<String> {
    submissions(store).unwrap().into_keys().collect()
}

fn status_json(store: &Path) -> serde_json::Value {
    serde_json::from_str(&fmp(&["status", "--store", s(store), "--json"])).unwrap()
}

/// Records held at `store` with a reason (`fmp status --json` quarantine).
fn held(store: &Path) -> BTreeMap<String, String> {
    let st = status_json(store);
    let mut out = BTreeMap::new();
    for q in st["quarantined"].as_array().cloned().unwrap_or_default() {
        let record = q["record"].as_str().unwrap_or_default().to_string();
        let reason = q["reason"].as_str().unwrap_or_default().to_string();
        if !record.is_empty() && !reason.is_empty() {
            out.insert(record, reason);
        }
    }
    out
}

// ---------------------------------------------------------------- data

/// The seed report's month at each FMP (the report fixture's June 2020,
/// its mix of directions, transport and nationalities), ids left to the
/// phone, by FMP.
fn june_by_fmp() -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for mut sub in fmp_report::fixture::many_months(20, (2020, 6), 1, 6.0) {
        sub.id = None;
        out.entry(sub.fmp.clone()).or_default().push(sub.to_value());
    }
    out
}

// ---------------------------------------------------------------- the world

struct RegionalHub {
    name: String,
    store: PathBuf,
    srv: Hub,
    fmps: Vec<&'static str>,
    /// The hub it joined (a district hub below a regional hub); `None`: HQ.
    upstream: Option<usize>,
    /// A copy of its store and the phones revoked on it then.
    backup: Option<(PathBuf, BTreeSet<String>)>,
}

struct Phone {
    name: String,
    store: PathBuf,
    hub: usize,
    fmp: &'static str,
    env: Env,
    clock: Option<&'static str>,
    /// Ids this phone acknowledged.
    own: Vec<String>,
    revoked: bool,
    /// A copy of its store and the ids it held then.
    backup: Option<(PathBuf, BTreeSet<String>)>,
}

/// How one sync is disturbed.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Reset after a random byte count, on the first 1–3 connections.
    Cut,
    /// Silence (no FIN, no RST) after a random byte count, first 1–2.
    Silent,
    /// The sync child SIGKILLed after this many ms (on a slow link).
    KillSync(u64),
    /// The hub's server SIGKILLed after this many ms, then restarted.
    KillHub(u64),
}

struct Sim {
    seed: u64,
    rng: StdRng,
    log: Arc<Mutex<Vec<String>>>,
    tmp: tempfile::TempDir,
    hq: PathBuf,
    hq_srv: Hub,
    hubs: Vec<RegionalHub>,
    phones: Vec<Phone>,
    data: BTreeMap<String, Vec<serde_json::Value>>,
    next_line: usize,
    acknowledged: Vec<String>,
    /// Acknowledged, then lost with a restore of the phone from an older
    /// copy before it left the phone.
    lost_by_restore: BTreeSet<String>,
    /// Acknowledged, then deleted by the phone that recorded it.
    deleted: BTreeSet<String>,
    /// A copy of HQ's store.
    hq_backup: Option<PathBuf>,
    /// What is still set aside after settling, with its reason.
    still_held: Vec<String>,
    faults_seen: BTreeMap<&'static str, u32>,
    started: Instant,
}

impl Sim {
    fn note(&self, line: String) {
        let t = self.started.elapsed().as_secs_f64();
        self.log.lock().unwrap().push(format!("{t:6.1}s {line}"));
    }

    fn count(&mut self, what: &'static str) {
        *self.faults_seen.entry(what).or_default() += 1;
    }

    fn fail(&self, what: String) -> ! {
        panic!("{what}");
    }

    fn setup(seed: u64, log: Arc<Mutex<Vec<String>>>) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let tmp = tempfile::tempdir().unwrap();
        let hq = init(tmp.path(), "hq");
        let hq_srv = Hub::start(&hq);
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(rng.random()),
            log,
            hq,
            hq_srv,
            hubs: Vec::new(),
            phones: Vec::new(),
            data: june_by_fmp(),
            next_line: 0,
            acknowledged: Vec::new(),
            lost_by_restore: BTreeSet::new(),
            deleted: BTreeSet::new(),
            hq_backup: None,
            still_held: Vec::new(),
            faults_seen: BTreeMap::new(),
            started: Instant::now(),
            tmp,
        };
        let n_hubs = sim.rng.random_range(1..=2);
        for h in 0..n_hubs {
            let n_fmps = sim.rng.random_range(1..=2);
            let mut fmps: Vec<&'static str> = Vec::new();
            // Found by seed 1362960422 with two regional hubs sharing an
            // FMP, now fixed: a hub could not verify a phone whose
            // certificate the other hub signed, so the other region's
            // records of the shared FMP never reached it. Certificates now
            // chain (`tests/hub/setup.rs`
            // `two_regional_hubs_sharing_an_fmp_each_get_the_records_of_the_other_s_phones`).
            // Hubs may share FMPs; `FMP_SIM_OVERLAP=0` keeps them disjoint.
            while fmps.len() < n_fmps {
                let f = FMPS[sim.rng.random_range(0..FMPS.len())];
                let taken = sim.hubs.iter().any(|h| h.fmps.contains(&f));
                if !fmps.contains(&f) && (overlap() || !taken) {
                    fmps.push(f);
                }
            }
            let name = format!("hub-{h}");
            let store = init(sim.tmp.path(), &name);
            enroll(&sim.hq, &store, &sim.hq_srv.url, &fmps, &["--hub"]);
            let srv = Hub::start(&store);
            sim.note(format!("{name}: joined HQ as a hub for {fmps:?}"));
            sim.hubs.push(RegionalHub {
                name,
                store,
                srv,
                fmps,
                upstream: None,
                backup: None,
            });
        }
        // Half the worlds have a district hub below a regional hub, for one
        // of its FMPs, joined with a hub code from it.
        if sim.rng.random_range(0..2) == 0 {
            let up = sim.rng.random_range(0..n_hubs);
            let fmps = sim.hubs[up].fmps.clone();
            let fmp = fmps[sim.rng.random_range(0..fmps.len())];
            let name = "district-hub".to_string();
            let store = init(sim.tmp.path(), &name);
            enroll(
                &sim.hubs[up].store,
                &store,
                &sim.hubs[up].srv.url,
                &[fmp],
                &["--hub"],
            );
            let srv = Hub::start(&store);
            sim.note(format!(
                "{name}: joined {} as a hub for [{fmp:?}]",
                sim.hubs[up].name
            ));
            sim.hubs.push(RegionalHub {
                name,
                store,
                srv,
                fmps: vec![fmp],
                upstream: Some(up),
                backup: None,
            });
        }
        let n_hubs = sim.hubs.len();
        for h in 0..n_hubs {
            for _ in 0..sim.rng.random_range(1..=3) {
                sim.add_phone(h);
            }
        }
        sim
    }

    /// A new phone joins hub `h` for one of its FMPs (at the start, or
    /// later: a phone enrolled after a hub's backup was taken).
    fn add_phone(&mut self, h: usize) {
        let fmps = self.hubs[h].fmps.clone();
        let fmp = fmps[self.rng.random_range(0..fmps.len())];
        let name = format!("phone-{}", self.phones.len());
        // Some phones' clocks are months off (skipped without
        // libfaketime).
        let clock = match self.rng.random_range(0..6) {
            0 => Some("-120d"),
            1 => Some("+45d"),
            _ => None,
        };
        let env = clock.and_then(faketime).unwrap_or_default();
        let clock = clock.filter(|_| !env.is_empty());
        let store = init(self.tmp.path(), &name);
        let code = code(&self.hubs[h].store, &[fmp], &[]);
        let out = fmp_env(
            &[
                "join",
                "--store",
                s(&store),
                "--hub",
                &self.hubs[h].srv.url,
                "--code",
                &code,
            ],
            &env,
        );
        if !out.status.success() {
            self.fail(format!("{name}: join failed: {}", text(&out.stderr)));
        }
        self.note(format!(
            "{name}: joined {} for {fmp}{}",
            self.hubs[h].name,
            clock.map(|c| format!(", clock {c}")).unwrap_or_default()
        ));
        self.phones.push(Phone {
            name,
            store,
            hub: h,
            fmp,
            env,
            clock,
            own: Vec::new(),
            revoked: false,
            backup: None,
        });
    }

    /// Wrong set-ups, each refused by `fmp enroll-code`.
    fn wrong_setups(&mut self) {
        let h = self.rng.random_range(0..self.hubs.len());
        let hub = &self.hubs[h];
        let outside = FMPS
            .iter()
            .find(|f| !hub.fmps.contains(f))
            .copied()
            .unwrap();
        // A code for an FMP outside the hub's scope.
        let out = fmp_in(
            &["enroll-code", "--store", s(&hub.store), "--fmp", outside],
            None,
        );
        let err = text(&out.stderr);
        if out.status.success() || !err.contains(outside) || !err.contains("only for") {
            self.fail(format!(
                "{}: a code for {outside} outside {:?} was not refused clearly: {}{err}",
                hub.name,
                hub.fmps,
                text(&out.stdout)
            ));
        }
        // A hub code (a hub below this one) outside its FMPs.
        let out = fmp_in(
            &[
                "enroll-code",
                "--store",
                s(&hub.store),
                "--fmp",
                outside,
                "--hub",
            ],
            None,
        );
        let err = text(&out.stderr);
        if out.status.success() || !err.contains("only for") {
            self.fail(format!(
                "{}: a hub code for {outside} outside {:?} was not refused: {}{err}",
                hub.name,
                hub.fmps,
                text(&out.stdout)
            ));
        }
        // A hub set up with a plain device code.
        let fmp = hub.fmps[0];
        let wrong = init(self.tmp.path(), "wrong-hub");
        enroll(&self.hq, &wrong, &self.hq_srv.url, &[fmp], &[]);
        let out = fmp_in(&["enroll-code", "--store", s(&wrong), "--fmp", fmp], None);
        let err = text(&out.stderr);
        if out.status.success() || !err.contains("device code") || !err.contains("--hub") {
            self.fail(format!(
                "a hub joined with a device code gave a code: {}{err}",
                text(&out.stdout)
            ));
        }
        self.note(format!(
            "wrong set-ups refused: {} code for {outside}, {} hub code, device-joined hub",
            hub.name, hub.name
        ));
        self.count("wrong set-up");
    }

    fn record(&mut self, p: usize, n: usize) {
        let fmp = self.phones[p].fmp;
        let month = &self.data[fmp];
        let lines: Vec<String> = (0..n)
            .map(|i| {
                let mut v = month[(self.next_line + i) % month.len()].clone();
                v["notes"] = serde_json::json!(format!(
                    "sim {} line {}",
                    self.phones[p].name,
                    self.next_line + i
                ));
                v.to_string()
            })
            .collect();
        self.next_line += n;
        let phone = &self.phones[p];
        let mut cmd = Command::new(fmp_bin());
        cmd.args(["record", "--store", s(&phone.store)])
            .envs(phone.env.iter().map(|(k, v)| (*k, v.as_str())));
        let out = run_with_input(cmd, &(lines.join("\n") + "\n"));
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if !out.status.success() || got.len() != n {
            self.fail(format!(
                "{}: record of {n} failed ({} ids): {}",
                phone.name,
                got.len(),
                text(&out.stderr)
            ));
        }
        self.note(format!("{}: recorded {n} {fmp}: {got:?}", phone.name));
        self.acknowledged.extend(got.iter().cloned());
        self.phones[p].own.extend(got);
    }

    /// One of the records phone `p` recorded and still holds, at random.
    fn pick_own(&mut self, p: usize) -> Option<String> {
        let held = ids(&self.phones[p].store);
        let mine: Vec<String> = self.phones[p]
            .own
            .iter()
            .filter(|id| held.contains(*id))
            .cloned()
            .collect();
        if mine.is_empty() {
            return None;
        }
        Some(mine[self.rng.random_range(0..mine.len())].clone())
    }

    /// The enumerator edits one of its own records the phone holds.
    fn edit(&mut self, p: usize) {
        let Some(id) = self.pick_own(p) else {
            return;
        };
        let n = self.rng.random_range(0..1000);
        let phone = &self.phones[p];
        let patch = format!(r#"{{"notes":"edited {n} on {}"}}"#, phone.name);
        let out = fmp_env(
            &["edit", "--store", s(&phone.store), &id, &patch],
            &phone.env,
        );
        if !out.status.success() {
            self.fail(format!(
                "{}: edit of its own {id} failed: {}",
                phone.name,
                text(&out.stderr)
            ));
        }
        self.note(format!("{}: edited {id} ({patch})", phone.name));
    }

    /// The enumerator deletes one of its own records the phone holds.
    fn delete(&mut self, p: usize) {
        let Some(id) = self.pick_own(p) else {
            return;
        };
        let phone = &self.phones[p];
        let out = fmp_env(&["delete", "--store", s(&phone.store), &id], &phone.env);
        if !out.status.success() {
            self.fail(format!(
                "{}: delete of its own {id} failed: {}",
                phone.name,
                text(&out.stderr)
            ));
        }
        self.note(format!("{}: deleted {id}", phone.name));
        self.deleted.insert(id);
        self.count("delete");
    }

    /// A copy of HQ's store, its server stopped and restarted around it.
    fn backup_hq(&mut self) {
        self.hq_srv.kill();
        let dir = self.tmp.path().join("hq-backup");
        copy_dir(&self.hq, &dir);
        self.hq_srv = Hub::start(&self.hq);
        self.note(format!(
            "HQ: store copied aside ({} records)",
            ids(&self.hq).len()
        ));
        self.hq_backup = Some(dir);
    }

    /// HQ put back from its copy: what only it held since is gone; its
    /// hubs heal it (and come back with the certificates it issued them).
    fn restore_hq(&mut self) {
        let Some(dir) = self.hq_backup.clone() else {
            return;
        };
        self.hq_srv.kill();
        let mut elsewhere = self.held_elsewhere(&self.hq);
        elsewhere.extend(ids(&dir));
        let lost: Vec<String> = self
            .acknowledged
            .iter()
            .filter(|id| !elsewhere.contains(*id) && !self.deleted.contains(*id))
            .cloned()
            .collect();
        restore(&self.hq, &dir);
        self.hq_srv = Hub::start(&self.hq);
        self.note(format!(
            "HQ: restored from its older copy; lost {} record(s) only it held: {lost:?}",
            lost.len()
        ));
        self.lost_by_restore.extend(lost);
        self.count("hq restore");
    }

    /// The ids every store but `except` lists.
    fn held_elsewhere(&self, except: &Path) -> BTreeSet<String> {
        let mut out = if self.hq.as_path() == except {
            BTreeSet::new()
        } else {
            ids(&self.hq)
        };
        let stores = self.hubs.iter().map(|h| &h.store);
        for store in stores.chain(self.phones.iter().map(|p| &p.store)) {
            if store != except {
                out.extend(ids(store));
            }
        }
        out
    }

    /// A copy of hub `h`'s store, taken with its server stopped (SIGKILL:
    /// what is committed is on disk) and restarted after.
    fn backup_hub(&mut self, h: usize) {
        self.hubs[h].srv.kill();
        let dir = self
            .tmp
            .path()
            .join(format!("{}-backup", self.hubs[h].name));
        copy_dir(&self.hubs[h].store, &dir);
        self.hubs[h].srv = Hub::start(&self.hubs[h].store);
        let revoked: BTreeSet<String> = self
            .phones
            .iter()
            .filter(|p| p.hub == h && p.revoked)
            .map(|p| p.name.clone())
            .collect();
        self.note(format!(
            "{}: store copied aside ({} records)",
            self.hubs[h].name,
            ids(&self.hubs[h].store).len()
        ));
        self.hubs[h].backup = Some((dir, revoked));
    }

    /// Hub `h` put back from its copy. What only it held since is gone
    /// (counted: nobody else holds it); its phones enrolled since come back
    /// with the certificates it issued them; a revocation since the copy is
    /// undone with it (a known limit: the supervisor revokes again).
    fn restore_hub(&mut self, h: usize) {
        let Some((dir, revoked)) = self.hubs[h].backup.clone() else {
            return;
        };
        self.hubs[h].srv.kill();
        let mut elsewhere = self.held_elsewhere(&self.hubs[h].store);
        elsewhere.extend(ids(&dir));
        let lost: Vec<String> = self
            .acknowledged
            .iter()
            .filter(|id| !elsewhere.contains(*id) && !self.deleted.contains(*id))
            .cloned()
            .collect();
        restore(&self.hubs[h].store, &dir);
        self.hubs[h].srv = Hub::start(&self.hubs[h].store);
        for p in 0..self.phones.len() {
            if self.phones[p].hub == h {
                let was = revoked.contains(&self.phones[p].name);
                if self.phones[p].revoked && !was {
                    self.note(format!(
                        "{}: its revocation since the copy is undone",
                        self.phones[p].name
                    ));
                }
                self.phones[p].revoked = was;
            }
        }
        self.note(format!(
            "{}: restored from its older copy; lost {} record(s) only it held: {lost:?}",
            self.hubs[h].name,
            lost.len()
        ));
        self.lost_by_restore.extend(lost);
        self.count("hub restore");
    }

    /// A supervisor (a hub, or HQ when `h` is None) reviews a record it holds.
    fn review(&mut self, h: Option<usize>) {
        let (name, store) = match h {
            Some(h) => (self.hubs[h].name.clone(), self.hubs[h].store.clone()),
            None => ("HQ".to_string(), self.hq.clone()),
        };
        let held: Vec<String> = ids(&store).into_iter().collect();
        if held.is_empty() {
            return;
        }
        let id = held[self.rng.random_range(0..held.len())].clone();
        let status = ["approved", "rejected", "has_issues"][self.rng.random_range(0..3)];
        let n = self.rng.random_range(0..1000);
        let out = fmp_in(
            &[
                "review",
                "--store",
                s(&store),
                &id,
                "--status",
                status,
                "--comment",
                &format!("sim review {n}"),
            ],
            None,
        );
        if !out.status.success() {
            self.fail(format!(
                "{name}: review of {id} failed: {}",
                text(&out.stderr)
            ));
        }
        self.note(format!("{name}: reviewed {id} {status}"));
    }

    fn revoke(&mut self, p: usize) {
        let (name, store, env) = (
            self.phones[p].name.clone(),
            self.phones[p].store.clone(),
            self.phones[p].env.clone(),
        );
        let h = self.phones[p].hub;
        let (hub_name, hub_store, url) = (
            self.hubs[h].name.clone(),
            self.hubs[h].store.clone(),
            self.hubs[h].srv.url.clone(),
        );
        let listed = fmp(&["devices", "--store", s(&hub_store)]);
        if !listed.split_whitespace().any(|w| w == name) {
            // Enrolled after the copy its hub was restored from, and not
            // synced since (it comes back with its certificate then).
            self.note(format!("{hub_name}: does not list {name} yet; not revoked"));
            return;
        }
        fmp(&["revoke", "--store", s(&hub_store), &name]);
        self.note(format!("{hub_name}: revoked {name}"));
        self.phones[p].revoked = true;
        self.count("revoke");
        // The revoked phone is refused, clearly.
        let out = sync_child(&store, &url, &["--retries", "0"], &env)
            .wait_with_output()
            .unwrap();
        let err = text(&out.stderr);
        if out.status.success() || !err.contains("revoked") {
            self.fail(format!(
                "{name}: a revoked phone's sync was not refused clearly: {} {err}",
                text(&out.stdout)
            ));
        }
        self.note(format!("{name}: sync refused while revoked"));
    }

    fn reinstate(&mut self, p: usize) {
        let phone = &self.phones[p];
        let hub = &self.hubs[phone.hub];
        fmp(&[
            "devices",
            "--store",
            s(&hub.store),
            "--reinstate",
            &phone.name,
        ]);
        self.note(format!("{}: reinstated {}", hub.name, phone.name));
        self.phones[p].revoked = false;
    }

    fn backup(&mut self, p: usize) {
        let phone = &self.phones[p];
        let held = ids(&phone.store);
        let dir = self.tmp.path().join(format!("{}-backup", phone.name));
        copy_dir(&phone.store, &dir);
        self.note(format!(
            "{}: store copied aside ({} records)",
            phone.name,
            held.len()
        ));
        self.phones[p].backup = Some((dir, held));
    }

    /// The phone put back from its copy: what it acknowledged since the
    /// copy and its hub does not hold is gone with it.
    fn restore(&mut self, p: usize) {
        let Some((dir, in_backup)) = self.phones[p].backup.clone() else {
            return;
        };
        if self.phones[p].revoked && !write_before_heal() {
            // It could not sync to heal (see below).
            return;
        }
        let elsewhere = self.held_elsewhere(&self.phones[p].store);
        let lost: Vec<String> = self.phones[p]
            .own
            .iter()
            .filter(|id| {
                !in_backup.contains(*id) && !elsewhere.contains(*id) && !self.deleted.contains(*id)
            })
            .cloned()
            .collect();
        restore(&self.phones[p].store, &dir);
        self.note(format!(
            "{}: restored from its older copy; lost {} record(s) that never left it: {lost:?}",
            self.phones[p].name,
            lost.len()
        ));
        self.lost_by_restore.extend(lost);
        self.count("restore");
        if write_before_heal() {
            return;
        }
        // Found by seed 1362960422 (with hubs sharing an FMP), now fixed: a
        // phone restored from a copy that held changes not yet synced when
        // it was taken, writing before its first sync after the restore,
        // sealed those changes again; the hub then served two bundles
        // claiming one change and every pull of the FMP was refused
        // ("change 0 claimed twice"). `tests/hub/restore.rs`
        // `a_restored_phone_recording_before_its_first_sync_does_not_block_its_fmp`
        // is the minimal case.
        for attempt in 1..=3 {
            self.sync_phone(p, Fault::None);
            let st = status_json(&self.phones[p].store);
            if st["restored"]["healed_at"].is_string() {
                self.note(format!(
                    "{}: healed after {attempt} sync(s): {}",
                    self.phones[p].name, st["restored"]
                ));
                return;
            }
        }
        self.fail(format!(
            "{}: restored and synced 3 times, still not healed: {}",
            self.phones[p].name,
            status_json(&self.phones[p].store)
        ));
    }

    fn proxy_faults(&mut self, fault: Fault) -> Option<Faults> {
        let seed = self.rng.random();
        match fault {
            Fault::None => None,
            Fault::Cut => {
                let n = self.rng.random_range(1..=3);
                Some(Faults::seeded(seed).cut_after(300..=6_000, Some(n)))
            }
            Fault::Silent => {
                let n = self.rng.random_range(1..=2);
                Some(
                    Faults::seeded(seed)
                        .cut_after(300..=6_000, Some(n))
                        .silent(),
                )
            }
            // A slow link, so the kill falls inside the sync.
            Fault::KillSync(_) | Fault::KillHub(_) => Some(Faults::seeded(seed).link(128, 30)),
        }
    }

    fn pick_fault(&mut self, hub_server: bool) -> Fault {
        match self.rng.random_range(0..20) {
            0..=7 => Fault::None,
            8..=10 => Fault::Cut,
            11..=12 => Fault::Silent,
            13..=16 => Fault::KillSync(self.rng.random_range(30..900)),
            _ if hub_server => Fault::KillHub(self.rng.random_range(30..900)),
            _ => Fault::Cut,
        }
    }

    /// One sync of `store` with the hub at `url` under `fault`; `hub` is
    /// the regional hub whose server a KillHub fault kills. Failure is
    /// allowed only under a fault; the outcome is logged.
    fn sync(
        &mut self,
        who: String,
        store: PathBuf,
        url: String,
        env: Env,
        hub: Option<usize>,
        fault: Fault,
    ) -> bool {
        let faults = self.proxy_faults(fault);
        let proxy = faults.map(|f| FaultProxy::start(&url, f).unwrap());
        let target = proxy.as_ref().map(|p| p.url()).unwrap_or(url);
        let mut args = vec!["--retries", "3", "--retry-delay-ms", "50"];
        if matches!(fault, Fault::Silent) {
            args.extend(["--stall-timeout", "1"]);
        }
        let mut child = sync_child(&store, &target, &args, &env);
        let mut disturbed = "";
        match fault {
            Fault::KillSync(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                if let Ok(None) = child.try_wait() {
                    kill(&mut child);
                    disturbed = " (SIGKILLed mid-sync)";
                } else {
                    disturbed = " (finished before the SIGKILL)";
                }
                self.count("sigkill sync");
            }
            Fault::KillHub(ms) => {
                let h = hub.unwrap();
                std::thread::sleep(Duration::from_millis(ms));
                let (srv, store, name) = if h == HQ {
                    (&mut self.hq_srv, self.hq.clone(), "HQ".to_string())
                } else {
                    let hub = &mut self.hubs[h];
                    (&mut hub.srv, hub.store.clone(), hub.name.clone())
                };
                srv.kill();
                if let Err(e) = integrity(&store) {
                    self.fail(format!("{name} after SIGKILL: {e}"));
                }
                *srv = Hub::start(&store);
                if let Some(p) = &proxy {
                    p.set_upstream(&srv.url);
                }
                disturbed = " (its hub's server SIGKILLed and restarted)";
                self.count("sigkill hub");
            }
            Fault::Cut => self.count("cut"),
            Fault::Silent => self.count("silence"),
            Fault::None => {}
        }
        let out = child.wait_with_output().unwrap();
        let ok = out.status.success();
        let desc = proxy.as_ref().map(|p| p.describe()).unwrap_or_default();
        let outcome = if ok {
            text(&out.stdout)
        } else {
            format!(
                "failed: {}",
                text(&out.stderr).lines().last().unwrap_or("(killed)")
            )
        };
        self.note(format!(
            "{who}: sync {fault:?}{disturbed}: {outcome}{}",
            if desc.is_empty() {
                String::new()
            } else {
                format!(" [{desc}]")
            }
        ));
        if !ok && matches!(fault, Fault::None) {
            self.fail(format!("{who}: a clean sync failed: {}", text(&out.stderr)));
        }
        ok
    }

    fn sync_phone(&mut self, p: usize, fault: Fault) -> bool {
        let phone = &self.phones[p];
        let (who, store, env, h) = (
            phone.name.clone(),
            phone.store.clone(),
            phone.env.clone(),
            phone.hub,
        );
        if phone.revoked {
            return false;
        }
        let url = self.hubs[h].srv.url.clone();
        self.sync(who, store, url, env, Some(h), fault)
    }

    fn sync_hub(&mut self, h: usize, fault: Fault) -> bool {
        let (who, store) = (self.hubs[h].name.clone(), self.hubs[h].store.clone());
        let (url, server) = match self.hubs[h].upstream {
            Some(up) => (self.hubs[up].srv.url.clone(), up),
            None => (self.hq_srv.url.clone(), HQ),
        };
        self.sync(who, store, url, Vec::new(), Some(server), fault)
    }

    fn step(&mut self) {
        let p = self.rng.random_range(0..self.phones.len());
        let h = self.rng.random_range(0..self.hubs.len());
        match self.rng.random_range(0..100) {
            0..=22 => {
                let n = self.rng.random_range(1..=5);
                self.record(p, n);
            }
            23..=31 => self.edit(p),
            32..=33 => self.delete(p),
            34..=41 => {
                let who = if self.rng.random_range(0..4) == 0 {
                    None
                } else {
                    Some(h)
                };
                self.review(who);
            }
            42..=45 => {
                if self.phones[p].revoked {
                    self.reinstate(p);
                } else {
                    self.revoke(p);
                }
            }
            46..=66 => {
                let fault = self.pick_fault(true);
                self.sync_phone(p, fault);
            }
            67..=82 => {
                let fault = self.pick_fault(true);
                self.sync_hub(h, fault);
            }
            83..=84 => {
                self.add_phone(h);
                self.count("enroll");
            }
            85..=88 => self.backup(p),
            89..=92 if self.hubs[h].backup.is_none() => self.backup_hub(h),
            89..=92 => self.restore_hub(h),
            93..=94 if self.hq_backup.is_none() => self.backup_hq(),
            93..=94 => self.restore_hq(),
            _ => self.restore(p),
        }
    }

    /// Faults stop: every revoked phone is reinstated and every replica
    /// syncs, a bounded number of rounds.
    fn settle(&mut self) {
        for p in 0..self.phones.len() {
            if self.phones[p].revoked {
                self.reinstate(p);
            }
        }
        for _ in 0..4 {
            for p in 0..self.phones.len() {
                self.sync_phone(p, Fault::None);
            }
            for h in 0..self.hubs.len() {
                self.sync_hub(h, Fault::None);
            }
        }
        for p in 0..self.phones.len() {
            self.sync_phone(p, Fault::None);
        }
    }

    fn check(&mut self) -> Result<(), String> {
        let ack: BTreeSet<&String> = self.acknowledged.iter().collect();
        if ack.len() != self.acknowledged.len() {
            return Err("an id was acknowledged twice".into());
        }
        let at_hq = submissions(&self.hq)?;
        integrity(&self.hq)?;
        // Held with a reason at a hop `fmp status` names.
        let mut held_at: BTreeMap<String, (String, String)> = BTreeMap::new();
        for ph in &self.phones {
            for (id, why) in held(&ph.store) {
                held_at.insert(id, (ph.name.clone(), why));
            }
        }
        for hub in &self.hubs {
            for (id, why) in held(&hub.store) {
                held_at.insert(id, (hub.name.clone(), why));
            }
        }
        // Everything still set aside, with its reason (in the summary).
        self.still_held = held_at
            .iter()
            .map(|(id, (at, why))| format!("{id} at {at}: {why}"))
            .collect();
        let mut missing = Vec::new();
        let mut holds = Vec::new();
        for id in &ack {
            if self.lost_by_restore.contains(*id)
                || self.deleted.contains(*id)
                || at_hq.contains_key(*id)
            {
                continue;
            }
            match held_at.get(*id) {
                Some((at, why)) => holds.push(format!("{id} held at {at}: {why}")),
                None => missing.push((*id).clone()),
            }
        }
        if !holds.is_empty() {
            self.note(format!("held with a reason: {holds:?}"));
        }
        if !missing.is_empty() {
            return Err(format!(
                "HQ lacks acknowledged submissions, held nowhere: {missing:?}"
            ));
        }
        let stray: Vec<&String> = at_hq
            .keys()
            .filter(|id| !ack.contains(id) || self.lost_by_restore.contains(*id))
            .collect();
        if !stray.is_empty() {
            return Err(format!(
                "HQ holds submissions nobody holds acknowledged: {stray:?}"
            ));
        }
        let scoped = |fmps: &[&str]| -> BTreeMap<String, serde_json::Value> {
            at_hq
                .iter()
                .filter(|(_, v)| fmps.contains(&v["fmp"].as_str().unwrap_or_default()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut replicas: Vec<(String, PathBuf, Vec<&str>)> = Vec::new();
        for hub in &self.hubs {
            replicas.push((hub.name.clone(), hub.store.clone(), hub.fmps.clone()));
        }
        for ph in &self.phones {
            replicas.push((ph.name.clone(), ph.store.clone(), vec![ph.fmp]));
        }
        for (name, store, fmps) in replicas {
            integrity(&store)?;
            let mine = submissions(&store)?;
            let want = scoped(&fmps);
            if mine != want {
                let a: BTreeSet<&String> = mine.keys().collect();
                let b: BTreeSet<&String> = want.keys().collect();
                let differ: Vec<&String> = a
                    .intersection(&b)
                    .filter(|id| mine[**id] != want[**id])
                    .copied()
                    .collect();
                let first = differ
                    .first()
                    .map(|id| format!("; e.g. {id}: here {} / HQ {}", mine[*id], want[*id]))
                    .unwrap_or_default();
                return Err(format!(
                    "{name} ({fmps:?}) differs from HQ: only here {:?}, only at HQ {:?}, \
                     different {differ:?}{first}; its status: {}",
                    a.difference(&b).collect::<Vec<_>>(),
                    b.difference(&a).collect::<Vec<_>>(),
                    status_json(&store)
                ));
            }
        }
        Ok(())
    }
}

/// One seed: topology, operations and faults, settling, invariants.
fn run(seed: u64, log: Arc<Mutex<Vec<String>>>) -> String {
    let mut sim = Sim::setup(seed, log);
    if sim.rng.random_range(0..2) == 0 {
        sim.wrong_setups();
    }
    let steps = sim.rng.random_range(20..=35);
    for _ in 0..steps {
        sim.step();
    }
    sim.note("faults stop; settling".into());
    sim.settle();
    if let Err(e) = sim.check() {
        panic!("invariant broken: {e}");
    }
    let clocks = sim.phones.iter().filter(|p| p.clock.is_some()).count();
    let district = sim.hubs.iter().filter(|h| h.upstream.is_some()).count();
    let mut fmps: Vec<&str> = sim
        .hubs
        .iter()
        .filter(|h| h.upstream.is_none())
        .flat_map(|h| h.fmps.iter().copied())
        .collect();
    let all = fmps.len();
    fmps.sort();
    fmps.dedup();
    let shared = all - fmps.len();
    format!(
        "seed {}: {} hub(s) ({district} below a regional hub, {shared} FMP(s) shared by two), \
         {} phone(s) ({clocks} with a clock off), {steps} steps, \
         {} acknowledged ({} lost with a restore), faults {:?}, still held {:?}, {:.1} s",
        sim.seed,
        sim.hubs.len(),
        sim.phones.len(),
        sim.acknowledged.len(),
        sim.lost_by_restore.len(),
        sim.faults_seen,
        sim.still_held,
        sim.started.elapsed().as_secs_f64()
    )
}

/// Regional hubs may share FMPs (the default; the bug this found is
/// described in `Sim::setup`); `FMP_SIM_OVERLAP=0` keeps them disjoint.
fn overlap() -> bool {
    std::env::var_os("FMP_SIM_OVERLAP").is_none_or(|v| v != "0")
}

/// A restored phone may write before it syncs (the default; the bug this
/// found is described in `Sim::restore`); `FMP_SIM_WRITE_BEFORE_HEAL=0`
/// makes it sync first.
fn write_before_heal() -> bool {
    std::env::var_os("FMP_SIM_WRITE_BEFORE_HEAL").is_none_or(|v| v != "0")
}

/// The server index of HQ in a [`Fault::KillHub`] (regional hubs: theirs).
const HQ: usize = usize::MAX;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(default)
}

#[test]
fn seeded_simulation_of_the_whole_chain_under_faults() {
    let first = env_u64("FMP_SIM_SEED", DEFAULT_SEED);
    let n = env_u64("FMP_SIM_SEEDS", DEFAULT_SEEDS).max(1);
    let mut failures = Vec::new();
    for seed in first..first.saturating_add(n) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        let result = std::panic::catch_unwind(move || run(seed, l2));
        match result {
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                let log = log.lock().unwrap_or_else(|p| p.into_inner()).join("\n  ");
                eprintln!("FAILING SEED {seed}");
                let mut flags = String::new();
                if !overlap() {
                    flags.push_str("FMP_SIM_OVERLAP=0 ");
                }
                if !write_before_heal() {
                    flags.push_str("FMP_SIM_WRITE_BEFORE_HEAL=0 ");
                }
                failures.push(format!(
                    "seed {seed} failed: {msg}\nrerun: {flags}FMP_SIM_SEED={seed} cargo test -p \
                     fmp-cli --test simulation\noperation log:\n  {log}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seed(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
