//! Range-based set reconciliation over change keys `(time, hash)`, for two
//! replicas with no shared cursor (after a restore, or a hub that never met
//! this phone).
//!
//! Both sides sort their change keys by the change's own time, then hash:
//! new data clusters at the end, where the differences are. The client
//! sends one fingerprint of everything; a side that receives a range's
//! fingerprint compares it with its own: equal ranges are skipped, small
//! unequal ones answered with their hash lists, large ones split into
//! [`SPLIT`] sub-ranges with fingerprints. The client ends a range when it
//! gets the server's hash list, noting which hashes each side lacks; the
//! server keeps no state between messages.

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use fmp_core::store::log::Hash;

/// Ranges are split into this many parts.
pub const SPLIT: usize = 16;
/// Ranges with at most this many items are sent as hash lists.
pub const LIST_AT_MOST: usize = 24;

/// An exclusive upper bound in the `(time, hash)` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// Keys below `(time, prefix)` (hash compared to the prefix bytewise).
    Key {
        /// Change time (ms since the epoch, by the author's clock).
        time: i64,
        /// The shortest hash prefix that separates the neighbours.
        prefix: Vec<u8>,
    },
    /// Everything.
    End,
}

/// What a range carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Nothing more to do here.
    Skip,
    /// The sender's fingerprint and count of the range.
    Fingerprint {
        /// 16 bytes of SHA-256 over the wrapping sum of the hashes and the count.
        fp: [u8; 16],
        /// Items in the range.
        count: u64,
    },
    /// The sender's hashes in the range (from the server: final).
    Ids(Vec<Hash>),
}

/// One range of a reconciliation message: from the previous range's upper
/// bound (or the start) to `upper`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Exclusive upper bound.
    pub upper: Bound,
    /// Payload.
    pub mode: Mode,
}

/// A change's sort key.
pub type Key = (i64, Hash);

fn below(k: &Key, b: &Bound) -> bool {
    match b {
        Bound::End => true,
        Bound::Key { time, prefix } => {
            k.0 < *time || (k.0 == *time && k.1.as_slice() < prefix.as_slice())
        }
    }
}

fn bound_between(prev: &Key, next: &Key) -> Bound {
    if prev.0 != next.0 {
        return Bound::Key {
            time: next.0,
            prefix: Vec::new(),
        };
    }
    let common = prev
        .1
        .iter()
        .zip(next.1.iter())
        .take_while(|(a, b)| a == b)
        .count();
    Bound::Key {
        time: next.0,
        prefix: next.1[..(common + 1).min(32)].to_vec(),
    }
}

/// Fingerprint of a slice of keys.
pub fn fingerprint(keys: &[Key]) -> ([u8; 16], u64) {
    let mut sum: u128 = 0;
    for (_, h) in keys {
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        sum = sum.wrapping_add(u128::from_le_bytes(b));
    }
    let count = keys.len() as u64;
    let mut input = sum.to_le_bytes().to_vec();
    input.extend_from_slice(&count.to_le_bytes());
    let d = digest(&SHA256, &input);
    let mut fp = [0u8; 16];
    fp.copy_from_slice(&d.as_ref()[..16]);
    (fp, count)
}

/// The client's first message: one fingerprint of everything.
pub fn initial(keys: &[Key]) -> Vec<Range> {
    let (fp, count) = fingerprint(keys);
    vec![Range {
        upper: Bound::End,
        mode: Mode::Fingerprint { fp, count },
    }]
}

/// Differences found by the client.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// Hashes the client has and the server lacks.
    pub have: Vec<Hash>,
    /// Hashes the server has and the client lacks.
    pub need: Vec<Hash>,
}

fn split(keys: &[Key], upper: &Bound, out: &mut Vec<Range>) {
    if keys.len() <= LIST_AT_MOST {
        out.push(Range {
            upper: upper.clone(),
            mode: Mode::Ids(keys.iter().map(|k| k.1).collect()),
        });
        return;
    }
    let per = keys.len().div_ceil(SPLIT);
    let chunks: Vec<&[Key]> = keys.chunks(per).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let (fp, count) = fingerprint(chunk);
        let ub = match chunks.get(i + 1) {
            Some(next) => match (chunk.last(), next.first()) {
                (Some(p), Some(n)) => bound_between(p, n),
                _ => upper.clone(),
            },
            None => upper.clone(),
        };
        out.push(Range {
            upper: ub,
            mode: Mode::Fingerprint { fp, count },
        });
    }
}

fn push(out: &mut Vec<Range>, r: Range) {
    if let (Some(last), Mode::Skip) = (out.last_mut(), &r.mode)
        && last.mode == Mode::Skip
    {
        last.upper = r.upper;
        return;
    }
    out.push(r);
}

/// Answers a reconciliation message with `keys` (sorted). The server calls
/// it with `found = None`; the client with its accumulator, and is done when
/// the answer holds nothing but `Skip`. Answers grow to at most about
/// `budget` bytes; past it the rest of the key space goes as one fingerprint.
pub fn answer(
    keys: &[Key],
    incoming: &[Range],
    mut found: Option<&mut Found>,
    budget: usize,
) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    let mut lower = 0usize;
    let mut size = 0usize;
    for r in incoming {
        let upper = lower + keys[lower..].partition_point(|k| below(k, &r.upper));
        let mine = &keys[lower..upper];
        if size > budget {
            // Out of room: the rest of the key space as one fingerprint.
            let (fp, count) = fingerprint(&keys[lower..]);
            out.push(Range {
                upper: Bound::End,
                mode: Mode::Fingerprint { fp, count },
            });
            return out;
        }
        let before = out.len();
        match &r.mode {
            Mode::Skip => push(&mut out, r.clone()),
            Mode::Fingerprint { fp, count } => {
                if fingerprint(mine) == (*fp, *count) {
                    push(
                        &mut out,
                        Range {
                            upper: r.upper.clone(),
                            mode: Mode::Skip,
                        },
                    );
                } else {
                    split(mine, &r.upper, &mut out);
                }
            }
            Mode::Ids(theirs) => match found.as_deref_mut() {
                Some(f) => {
                    let theirs_set: std::collections::HashSet<&Hash> = theirs.iter().collect();
                    let mine_set: std::collections::HashSet<&Hash> =
                        mine.iter().map(|k| &k.1).collect();
                    f.have
                        .extend(mine.iter().map(|k| k.1).filter(|h| !theirs_set.contains(h)));
                    f.need
                        .extend(theirs.iter().filter(|h| !mine_set.contains(h)).copied());
                    push(
                        &mut out,
                        Range {
                            upper: r.upper.clone(),
                            mode: Mode::Skip,
                        },
                    );
                }
                None => out.push(Range {
                    upper: r.upper.clone(),
                    mode: Mode::Ids(mine.iter().map(|k| k.1).collect()),
                }),
            },
        }
        for added in &out[before.min(out.len())..] {
            size += match &added.mode {
                Mode::Skip => 4,
                Mode::Fingerprint { .. } => 40,
                Mode::Ids(v) => 12 + 32 * v.len(),
            };
        }
        lower = upper;
    }
    out
}

/// True if a client's answer ends the reconciliation.
pub fn is_done(ranges: &[Range]) -> bool {
    ranges.iter().all(|r| r.mode == Mode::Skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: i64, n: u32) -> Key {
        let d = digest(&SHA256, &n.to_le_bytes());
        let mut h = [0u8; 32];
        h.copy_from_slice(d.as_ref());
        (t, h)
    }

    fn run(a: &[Key], b: &[Key]) -> (Found, usize) {
        let mut found = Found::default();
        let mut msg = initial(a);
        let mut rounds = 0;
        loop {
            rounds += 1;
            let reply = answer(b, &msg, None, 48_000);
            msg = answer(a, &reply, Some(&mut found), 48_000);
            if is_done(&msg) {
                return (found, rounds);
            }
            assert!(rounds < 50, "no convergence");
        }
    }

    #[test]
    fn finds_exactly_the_differences() {
        let mut a: Vec<Key> = (0..5000).map(|i| key(i64::from(i / 3), i)).collect();
        let mut b: Vec<Key> = a.clone();
        a.extend((5000..5040).map(|i| key(2000 + i64::from(i), i)));
        b.extend((6000..6007).map(|i| key(i64::from(i % 1700), i)));
        a.sort();
        b.sort();
        let (found, rounds) = run(&a, &b);
        let mut have = found.have.clone();
        have.sort();
        let mut want: Vec<Hash> = (5000..5040).map(|i| key(0, i).1).collect();
        want.sort();
        assert_eq!(have, want);
        assert_eq!(found.need.len(), 7);
        assert!(rounds <= 6, "{rounds} rounds");
    }

    #[test]
    fn equal_sets_end_in_one_round() {
        let a: Vec<Key> = (0..300).map(|i| key(i64::from(i), i)).collect();
        let (found, rounds) = run(&a, &a);
        assert_eq!(rounds, 1);
        assert!(found.have.is_empty() && found.need.is_empty());
    }
}
