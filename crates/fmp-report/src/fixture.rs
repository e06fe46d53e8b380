//! Test support: a seeded fixture of the Mali FMP submissions of May and June
//! 2020, whose June per-FMP totals are exactly those of the seed report
//! (the Mali FMP report of June 2020; its figures are in `docs/seed-report.md`) and whose nationality, destination
//! and demography mix follow it. Reused by `fmp demo`, the tests and the
//! benchmarks; not meant for production data.
//!
//! Every submission passes DESIGN.md's semantic rules: the people add up to
//! the nationalities, under-fives are minors, pregnant women are women, and
//! vulnerabilities never exceed the group.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use fmp_core::reference::Registry;
use fmp_core::store::{Store, StoreError};
use fmp_core::{
    Direction, MovementType, People, Place, StoredSubmission, Submission, Transport, Vulnerable,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// June 2020 per-FMP figures of the seed report: (code, incoming, outgoing).
pub const SEED_JUNE_2020: [(&str, u64, u64); 9] = [
    ("ML-WAB", 2_029, 1_913),
    ("ML-PKI", 824, 792),
    ("ML-TBK", 234, 713),
    ("ML-MNK", 38, 110),
    ("ML-SEV", 0, 550),
    ("ML-GOG", 76, 103),
    ("ML-BEN", 459, 557),
    ("ML-HER", 5_924, 2_584),
    ("ML-BKO", 11, 1_022),
];

/// Weighted choices: (key, weight). `*` in nationality lists means "Other".
type W = &'static [(&'static str, u32)];

/// How one FMP's submissions are drawn.
struct Spec {
    code: &'static str,
    may: (u32, u32),
    june_days: u32,
    nat_june: W,
    nat_may: W,
    next_out: W,
    final_out: W,
    dep_in: W,
    movement: W,
    /// Per cent of groups that are buses (12–60 people); others are small vehicles.
    bus_pct: u32,
    /// Per mille of adults who are women.
    adult_female: u32,
    /// Per mille of individuals who are minors.
    minor: u32,
    /// Per mille of minors who are girls.
    minor_female: u32,
}

const ECO: &str = "economic_long_term";
const SEAS: &str = "seasonal";
const SHORT: &str = "short_term_local";

const SPECS: [Spec; 9] = [
    Spec {
        code: "ML-WAB",
        may: (1_450, 1_366),
        june_days: 28,
        nat_june: &[
            ("NER", 52),
            ("BFA", 21),
            ("SDN", 6),
            ("GIN", 4),
            ("MLI", 4),
            ("*", 13),
        ],
        nat_may: &[
            ("NER", 62),
            ("BFA", 24),
            ("SDN", 3),
            ("GIN", 3),
            ("MLI", 3),
            ("*", 5),
        ],
        next_out: &[("MLI", 100)],
        final_out: &[
            ("MLI", 58),
            ("LBY", 11),
            ("DZA", 9),
            ("NER", 6),
            ("ITA", 5),
            ("MAR", 4),
            ("ESP", 3),
            ("FRA", 2),
            ("DEU", 2),
        ],
        dep_in: &[("MLI", 85), ("BFA", 10), ("NER", 5)],
        movement: &[(SEAS, 60), (ECO, 38), ("other", 2)],
        bus_pct: 70,
        adult_female: 21,
        minor: 30,
        minor_female: 50,
    },
    Spec {
        code: "ML-PKI",
        may: (442, 424),
        june_days: 30,
        nat_june: &[
            ("MLI", 23),
            ("BFA", 21),
            ("GIN", 11),
            ("NER", 10),
            ("SDN", 8),
            ("*", 27),
        ],
        nat_may: &[("MLI", 51), ("BFA", 6), ("GIN", 19), ("NER", 2), ("*", 13)],
        next_out: &[("DZA", 76), ("MLI", 24)],
        final_out: &[
            ("DZA", 28),
            ("MLI", 25),
            ("LBY", 18),
            ("MAR", 12),
            ("ESP", 8),
            ("ITA", 6),
            ("FRA", 3),
        ],
        dep_in: &[("DZA", 50), ("NER", 40), ("MLI", 10)],
        movement: &[(ECO, 85), (SEAS, 12), (SHORT, 2), ("forced", 1)],
        bus_pct: 60,
        adult_female: 40,
        minor: 40,
        minor_female: 300,
    },
    Spec {
        code: "ML-TBK",
        may: (136, 414),
        june_days: 30,
        nat_june: &[
            ("GIN", 43),
            ("MLI", 31),
            ("GMB", 6),
            ("SLE", 5),
            ("CIV", 3),
            ("*", 12),
        ],
        nat_may: &[
            ("GIN", 32),
            ("MLI", 38),
            ("GMB", 6),
            ("SLE", 3),
            ("CIV", 4),
            ("*", 8),
        ],
        next_out: &[("MLI", 98), ("DZA", 2)],
        final_out: &[
            ("DZA", 48),
            ("MAR", 26),
            ("ITA", 20),
            ("ESP", 2),
            ("LBY", 4),
        ],
        dep_in: &[("DZA", 70), ("MLI", 30)],
        movement: &[(ECO, 85), (SEAS, 12), (SHORT, 2), ("forced", 1)],
        bus_pct: 50,
        adult_female: 32,
        minor: 60,
        minor_female: 40,
    },
    Spec {
        code: "ML-MNK",
        may: (40, 88),
        june_days: 30,
        nat_june: &[
            ("MLI", 39),
            ("NER", 33),
            ("NGA", 12),
            ("GHA", 8),
            ("BFA", 3),
            ("*", 5),
        ],
        nat_may: &[
            ("MLI", 44),
            ("NER", 32),
            ("NGA", 11),
            ("GHA", 4),
            ("BFA", 2),
            ("*", 7),
        ],
        next_out: &[("DZA", 100)],
        final_out: &[("DZA", 83), ("LBY", 15), ("NER", 2)],
        dep_in: &[("NER", 90), ("DZA", 10)],
        movement: &[(ECO, 85), (SEAS, 12), (SHORT, 3)],
        bus_pct: 15,
        adult_female: 50,
        minor: 40,
        minor_female: 400,
    },
    Spec {
        code: "ML-SEV",
        may: (0, 406),
        june_days: 30,
        nat_june: &[
            ("GIN", 31),
            ("MLI", 23),
            ("BFA", 11),
            ("SEN", 10),
            ("CIV", 10),
            ("*", 15),
        ],
        nat_may: &[
            ("GIN", 29),
            ("MLI", 26),
            ("BFA", 16),
            ("SEN", 8),
            ("CIV", 12),
            ("*", 9),
        ],
        next_out: &[("MLI", 100)],
        final_out: &[
            ("DZA", 39),
            ("ESP", 19),
            ("ITA", 18),
            ("MAR", 17),
            ("FRA", 7),
        ],
        dep_in: &[("MLI", 100)],
        movement: &[(ECO, 85), (SEAS, 10), (SHORT, 3), ("tourism", 2)],
        bus_pct: 70,
        adult_female: 60,
        minor: 40,
        minor_female: 400,
    },
    Spec {
        code: "ML-GOG",
        may: (92, 123),
        june_days: 30,
        nat_june: &[("MLI", 100)],
        nat_may: &[("MLI", 96), ("*", 4)],
        next_out: &[("MRT", 100)],
        final_out: &[("MRT", 100)],
        dep_in: &[("MRT", 100)],
        movement: &[(ECO, 80), (SEAS, 15), (SHORT, 5)],
        bus_pct: 20,
        adult_female: 80,
        minor: 50,
        minor_female: 400,
    },
    Spec {
        code: "ML-BEN",
        may: (349, 423),
        june_days: 30,
        nat_june: &[
            ("BFA", 79),
            ("NGA", 8),
            ("MLI", 5),
            ("GIN", 3),
            ("BEN", 2),
            ("*", 3),
        ],
        nat_may: &[
            ("BFA", 77),
            ("NGA", 8),
            ("MLI", 3),
            ("GIN", 3),
            ("BEN", 2),
            ("*", 6),
        ],
        next_out: &[("BFA", 100)],
        final_out: &[
            ("BFA", 84),
            ("MLI", 7),
            ("BEN", 4),
            ("TGO", 2),
            ("GAB", 2),
            ("CIV", 1),
        ],
        dep_in: &[("BFA", 95), ("NER", 5)],
        movement: &[(ECO, 70), (SEAS, 28), (SHORT, 2)],
        bus_pct: 60,
        adult_female: 253,
        minor: 10,
        minor_female: 300,
    },
    Spec {
        code: "ML-HER",
        may: (1_703, 2_167),
        june_days: 30,
        nat_june: &[
            ("BFA", 89),
            ("MLI", 2),
            ("GIN", 2),
            ("SEN", 1),
            ("GNB", 1),
            ("*", 5),
        ],
        nat_may: &[
            ("BFA", 72),
            ("MLI", 6),
            ("GIN", 4),
            ("SEN", 4),
            ("GNB", 2),
            ("*", 12),
        ],
        next_out: &[("BFA", 96), ("NER", 3), ("GHA", 1)],
        final_out: &[
            ("BFA", 79),
            ("DZA", 6),
            ("LBY", 5),
            ("GAB", 3),
            ("GNQ", 2),
            ("MAR", 2),
            ("CIV", 2),
            ("ESP", 1),
        ],
        dep_in: &[("BFA", 92), ("CIV", 6), ("GHA", 2)],
        movement: &[(ECO, 62), (SEAS, 37), (SHORT, 1)],
        bus_pct: 70,
        adult_female: 80,
        minor: 40,
        minor_female: 350,
    },
    Spec {
        code: "ML-BKO",
        may: (20, 924),
        june_days: 30,
        nat_june: &[
            ("MLI", 33),
            ("GIN", 24),
            ("BFA", 10),
            ("CIV", 9),
            ("SEN", 9),
            ("*", 15),
        ],
        nat_may: &[
            ("MLI", 33),
            ("GIN", 17),
            ("BFA", 8),
            ("CIV", 7),
            ("SEN", 5),
            ("*", 30),
        ],
        next_out: &[("MLI", 86), ("MRT", 13), ("SEN", 1)],
        final_out: &[
            ("DZA", 48),
            ("ITA", 14),
            ("ESP", 11),
            ("MAR", 9),
            ("MRT", 8),
            ("FRA", 7),
            ("DEU", 3),
        ],
        dep_in: &[("SEN", 50), ("GIN", 50)],
        movement: &[(ECO, 85), (SEAS, 10), (SHORT, 3), ("tourism", 2)],
        bus_pct: 70,
        adult_female: 70,
        minor: 40,
        minor_female: 400,
    },
];

/// Nationalities that fill the "Other" share, in order of preference.
const OTHER_POOL: [&str; 14] = [
    "NGA", "GHA", "CMR", "GMB", "SLE", "SEN", "CIV", "GNB", "LBR", "TCD", "SDN", "BEN", "TGO",
    "NER",
];

/// Final destinations of incoming groups.
const FINAL_IN: W = &[("MLI", 85), ("GIN", 5), ("CIV", 5), ("SEN", 5)];

/// The nine Mali FMPs of the seed report: the registry the store ships with.
pub fn mali_registry() -> Registry {
    Registry::mali_default()
}

/// Splits `total` by `weights` with the largest-remainder rule (ties by order).
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let left = total.saturating_sub(out.iter().sum());
    for &i in order
        .iter()
        .cycle()
        .take(usize::try_from(left).unwrap_or(0))
    {
        out[i] += 1;
    }
    out
}

/// Nationality weights with `*` spread over a few other countries, each below
/// the smallest named one so the top five stay on top.
fn expand_nationalities(w: W) -> Vec<(&'static str, f64)> {
    let named: Vec<(&'static str, f64)> = w
        .iter()
        .filter(|(k, _)| *k != "*")
        .map(|(k, v)| (*k, f64::from(*v)))
        .collect();
    let other = w
        .iter()
        .find(|(k, _)| *k == "*")
        .map_or(0.0, |(_, v)| f64::from(*v));
    let mut out = named.clone();
    if other > 0.0 {
        let min = named.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
        let pool: Vec<&str> = OTHER_POOL
            .iter()
            .copied()
            .filter(|c| !named.iter().any(|(k, _)| k == c))
            .collect();
        let k = ((other / (0.7 * min)).ceil() as usize).clamp(1, pool.len());
        for c in pool.iter().take(k) {
            out.push((c, other / k as f64));
        }
    }
    out
}

fn pick(rng: &mut StdRng, w: W) -> &'static str {
    let total: u32 = w.iter().map(|(_, v)| v).sum();
    let mut r = rng.random_range(0..total.max(1));
    for (k, v) in w {
        if r < *v {
            return k;
        }
        r -= v;
    }
    w.first().map_or("MLI", |(k, _)| k)
}

/// Group sizes (with their transport) adding up to exactly `n`.
fn groups(
    rng: &mut StdRng,
    n: u32,
    bus_pct: u32,
    direction: Direction,
) -> Vec<(Direction, u32, Transport)> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let (size, transport) = if rng.random_range(0..100) < bus_pct {
            (rng.random_range(12..=60), Transport::Bus)
        } else {
            match rng.random_range(0..5) {
                0 => (rng.random_range(1..=5), Transport::Car),
                1 => (rng.random_range(1..=2), Transport::Motorbike),
                2 => (rng.random_range(2..=10), Transport::Truck),
                3 => (rng.random_range(1..=3), Transport::Foot),
                _ => (rng.random_range(1..=4), Transport::Tricycle),
            }
        };
        let size = size.min(left);
        out.push((direction, size, transport));
        left -= size;
    }
    out
}

fn per_mille(rng: &mut StdRng, n: u32, p: u32) -> u32 {
    (0..n).filter(|_| rng.random_range(0..1000) < p).count() as u32
}

/// One FMP's submissions for one month.
fn month_of(
    rng: &mut StdRng,
    spec: &Spec,
    (year, month, days): (i32, u32, u32),
    (n_in, n_out): (u32, u32),
    nat: W,
    out: &mut Vec<Submission>,
) {
    let mut all = groups(rng, n_in, spec.bus_pct, Direction::Incoming);
    all.extend(groups(rng, n_out, spec.bus_pct, Direction::Outgoing));
    all.shuffle(rng);

    // Nationalities: an exact pool handed out in blocks, so most groups are
    // of one or two nationalities and the month's mix is exactly the target.
    let weights = expand_nationalities(nat);
    let counts = apportion(
        u64::from(n_in + n_out),
        &weights.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
    );
    let mut pool: Vec<(&str, u64)> = weights
        .iter()
        .map(|(k, _)| *k)
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .collect();
    pool.reverse(); // pop from the end = the first country first

    for (i, (direction, size, transport)) in all.into_iter().enumerate() {
        let mut nationalities = BTreeMap::new();
        let mut need = u64::from(size);
        while need > 0 {
            let Some(last) = pool.last_mut() else { break };
            let take = need.min(last.1);
            *nationalities.entry(last.0.to_string()).or_insert(0u32) += take as u32;
            last.1 -= take;
            need -= take;
            if last.1 == 0 {
                pool.pop();
            }
        }

        let minors = per_mille(rng, size, spec.minor);
        let adults = size - minors;
        let adult_female = per_mille(rng, adults, spec.adult_female);
        let minor_female = per_mille(rng, minors, spec.minor_female);
        let people = People {
            adult_male: adults - adult_female,
            adult_female,
            minor_male: minors - minor_female,
            minor_female,
        };
        let vulnerable = Vulnerable {
            under5: per_mille(rng, minors, 50),
            elderly: per_mille(rng, adults, 2),
            disability: 0,
            pregnant: per_mille(rng, adult_female, 20),
            unaccompanied_children: None,
        };

        let day = (i as u32 % days) + 1;
        let observed_at = Utc
            .with_ymd_and_hms(
                year,
                month,
                day,
                rng.random_range(6..19),
                rng.random_range(0..60),
                0,
            )
            .single()
            .unwrap_or_default();
        let (departure, next, final_dest) = match direction {
            Direction::Incoming => (pick(rng, spec.dep_in), "MLI", pick(rng, FINAL_IN)),
            Direction::Outgoing => ("MLI", pick(rng, spec.next_out), pick(rng, spec.final_out)),
        };
        let movement_type = pick(rng, spec.movement)
            .parse()
            .unwrap_or(MovementType::Other);
        let millis = u64::try_from(observed_at.timestamp_millis()).unwrap_or(0);
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &rng.random::<[u8; 10]>())
            .into_uuid();
        out.push(Submission {
            id: Some(id),
            form: "dtm-fmp-flow".to_string(),
            form_version: 1,
            fmp: spec.code.to_string(),
            observed_at,
            direction,
            transport,
            departure: Place {
                country: departure.to_string(),
                place: None,
            },
            next_destination: Place {
                country: next.to_string(),
                place: None,
            },
            final_destination: Place {
                country: final_dest.to_string(),
                place: None,
            },
            movement_type,
            people,
            vulnerable,
            nationalities,
            notes: String::new(),
        });
    }
}

/// Submissions of May and June 2020 at Mali's nine FMPs: June's per-FMP
/// totals are exactly the seed report's ([`SEED_JUNE_2020`]), May's plausible.
pub fn may_june_2020(seed: u64) -> Vec<Submission> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (spec, (code, n_in, n_out)) in SPECS.iter().zip(SEED_JUNE_2020) {
        debug_assert_eq!(spec.code, code);
        month_of(
            &mut rng,
            spec,
            (2020, 5, 31),
            spec.may,
            spec.nat_may,
            &mut out,
        );
        let june = (
            u32::try_from(n_in).unwrap_or(0),
            u32::try_from(n_out).unwrap_or(0),
        );
        month_of(
            &mut rng,
            spec,
            (2020, 6, spec.june_days),
            june,
            spec.nat_june,
            &mut out,
        );
    }
    out
}

/// Submissions for benchmarks and demos: `months` consecutive months from
/// `start` (year, month), each with June 2020's per-FMP mix and totals
/// multiplied by `scale` (about 740 submissions per month at scale 1).
pub fn many_months(seed: u64, start: (i32, u32), months: u32, scale: f64) -> Vec<Submission> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let Some(mut first) = NaiveDate::from_ymd_opt(start.0, start.1, 1) else {
        return out;
    };
    for _ in 0..months {
        let Some(next) = first.checked_add_months(chrono::Months::new(1)) else {
            break;
        };
        let days = u32::try_from((next - first).num_days()).unwrap_or(28);
        let (y, m) = (first.year(), first.month());
        for (spec, (_, n_in, n_out)) in SPECS.iter().zip(SEED_JUNE_2020) {
            let n = |x: u64| (x as f64 * scale).round() as u32;
            month_of(
                &mut rng,
                spec,
                (y, m, days),
                (n(n_in), n(n_out)),
                spec.nat_june,
                &mut out,
            );
        }
        first = next;
    }
    out
}

/// Wraps submissions as stored ones: no review, not deleted, no conflicts.
pub fn stored(subs: Vec<Submission>) -> Vec<StoredSubmission> {
    subs.into_iter()
        .map(|submission| StoredSubmission {
            submission,
            review: None,
            deleted: false,
            conflicts: Vec::new(),
        })
        .collect()
}

/// Creates a store in `dir` (see [`Store::init`]) holding `subs` (see [`load`]).
pub fn store_in(dir: &Path, subs: &[StoredSubmission]) -> Result<Store, StoreError> {
    let store = Store::init(dir, "fmp-report fixture")?;
    load(&store, subs)?;
    Ok(store)
}

/// Adds `subs` to `store` through its API: all recorded in one
/// transaction, then each review given and each tombstone set. A review
/// keeps its status and comment; its reviewer and time are this store's.
pub fn load(store: &Store, subs: &[StoredSubmission]) -> Result<(), StoreError> {
    let ids = store.record_many(
        subs.iter().map(|s| s.submission.clone()).collect(),
        Utc::now(),
    )?;
    for (s, id) in subs.iter().zip(ids) {
        if let Some(r) = &s.review {
            store.review(id, r.status, &r.comment)?;
        }
        if s.deleted {
            store.delete(id)?;
        }
    }
    Ok(())
}
