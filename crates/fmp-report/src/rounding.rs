//! Percentages that add up: largest-remainder rounding and the "top five and
//! Other" share tables with their change in percentage points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Key of the row that gathers everything past the top rows.
pub const OTHER: &str = "other";

/// Integer percentages of `items` that sum to exactly 100 when the total is
/// positive (all zero otherwise), by the largest-remainder rule.
///
/// Leftover points go to the largest remainders; ties go to the larger count,
/// then to the smaller key, so the result never depends on input order.
pub fn largest_remainder<K: Ord>(items: &[(K, u64)]) -> Vec<u32> {
    let total: u128 = items.iter().map(|(_, c)| u128::from(*c)).sum();
    if total == 0 {
        return vec![0; items.len()];
    }
    let mut pct: Vec<u32> = Vec::with_capacity(items.len());
    let mut rem: Vec<(u128, usize)> = Vec::with_capacity(items.len());
    for (i, (_, c)) in items.iter().enumerate() {
        let scaled = u128::from(*c) * 100;
        // scaled / total <= 100, so it fits in u32.
        pct.push(u32::try_from(scaled / total).unwrap_or(100));
        rem.push((scaled % total, i));
    }
    let given: u32 = pct.iter().sum();
    let left = 100u32.saturating_sub(given) as usize;
    rem.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| items[b.1].1.cmp(&items[a.1].1))
            .then_with(|| items[a.1].0.cmp(&items[b.1].0))
    });
    for &(_, i) in rem.iter().take(left) {
        pct[i] += 1;
    }
    pct
}

/// One row of a share table: a key (country code, movement type or `other`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRow {
    /// Country code, movement type, or `other`.
    pub key: String,
    /// Display name of the key.
    pub label: String,
    /// Individuals this month.
    pub count: u64,
    /// Integer per cent of the table's total; a table's rows sum to 100.
    pub pct: u32,
    /// Change against the previous month in percentage points; `None` when
    /// zero or when the previous month has no data (rendered "-").
    pub change_pp: Option<i64>,
}

impl ShareRow {
    /// Its share as printed: `23%`, or `<1%` for individuals that round to
    /// 0% (a row of a top-five list is never shown as 0%).
    pub fn pct_text(&self) -> String {
        if self.pct == 0 && self.count > 0 {
            "<1%".to_string()
        } else {
            format!("{}%", self.pct)
        }
    }
}

/// A share table of `cur` (key → individuals), keeping the `top` largest keys
/// (all when `None`) and gathering the rest as `other`; changes are taken
/// against `prev` grouped the same way.
pub fn share_table(
    cur: &BTreeMap<String, u64>,
    prev: &BTreeMap<String, u64>,
    top: Option<usize>,
    label: &dyn Fn(&str) -> String,
) -> Vec<ShareRow> {
    let mut entries: Vec<(&String, u64)> = cur
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(k, c)| (k, *c))
        .collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let keep = top.unwrap_or(entries.len()).min(entries.len());
    let other: u64 = entries[keep..].iter().map(|(_, c)| *c).sum();
    let mut rows: Vec<(String, u64)> = entries[..keep]
        .iter()
        .map(|(k, c)| ((*k).clone(), *c))
        .collect();
    let has_other = other > 0;
    if has_other {
        rows.push((OTHER.to_string(), other));
    }
    let pcts = largest_remainder(&rows);

    // The previous month, grouped into this month's rows plus one bucket for
    // everything else (hidden when this month has no `other` row).
    let prev_total: u64 = prev.values().sum();
    let prev_pcts: Option<Vec<u32>> = (prev_total > 0).then(|| {
        let mut grouped: Vec<(String, u64)> = rows[..keep]
            .iter()
            .map(|(k, _)| (k.clone(), prev.get(k).copied().unwrap_or(0)))
            .collect();
        let kept: u64 = grouped.iter().map(|(_, c)| *c).sum();
        grouped.push((OTHER.to_string(), prev_total - kept));
        largest_remainder(&grouped)
    });

    rows.into_iter()
        .zip(pcts)
        .enumerate()
        .map(|(i, ((key, count), pct))| {
            let change_pp = prev_pcts.as_ref().and_then(|p| {
                let before = if i < keep { p[i] } else { p[keep] };
                let d = i64::from(pct) - i64::from(before);
                (d != 0).then_some(d)
            });
            let label = if key == OTHER {
                "Other".to_string()
            } else {
                label(&key)
            };
            ShareRow {
                key,
                label,
                count,
                pct,
                change_pp,
            }
        })
        .collect()
}

/// `num / den` in tenths of a per cent, rounded half up (0 when `den` is 0).
pub fn per_mille(num: u64, den: u64) -> i64 {
    if den == 0 {
        return 0;
    }
    let (n, d) = (u128::from(num), u128::from(den));
    i64::try_from((n * 2000 + d) / (2 * d)).unwrap_or(i64::MAX)
}

/// `num / den` in whole per cent, rounded half up (0 when `den` is 0).
pub fn percent(num: u64, den: u64) -> u32 {
    if den == 0 {
        return 0;
    }
    let (n, d) = (u128::from(num), u128::from(den));
    u32::try_from((n * 200 + d) / (2 * d)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_shares_are_kept() {
        assert_eq!(
            largest_remainder(&[("a", 1), ("b", 1), ("c", 2)]),
            vec![25, 25, 50]
        );
    }

    #[test]
    fn thirds_break_ties_by_key() {
        // 33.33 each: the one leftover point goes to the smallest key.
        assert_eq!(
            largest_remainder(&[("b", 1), ("a", 1), ("c", 1)]),
            vec![33, 34, 33]
        );
        assert_eq!(
            largest_remainder(&[("c", 1), ("b", 1), ("a", 1)]),
            vec![33, 33, 34]
        );
    }

    #[test]
    fn ties_prefer_the_larger_count() {
        // Counts 1,1,1,1,2 of 6: 16.67 x4 and 33.33; three leftover points go
        // to the largest remainders (the 16.67s), then by key.
        let items = [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 2)];
        let p = largest_remainder(&items);
        assert_eq!(p.iter().sum::<u32>(), 100);
        assert_eq!(p, vec![17, 17, 17, 16, 33]);
    }

    #[test]
    fn empty_or_zero_is_all_zero() {
        assert!(largest_remainder::<&str>(&[]).is_empty());
        assert_eq!(largest_remainder(&[("a", 0), ("b", 0)]), vec![0, 0]);
    }

    #[test]
    fn top_five_and_other_with_changes() {
        let cur: BTreeMap<String, u64> = [
            ("A", 50),
            ("B", 20),
            ("C", 10),
            ("D", 8),
            ("E", 7),
            ("F", 3),
            ("G", 2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let prev: BTreeMap<String, u64> = [("A", 40), ("B", 20), ("H", 40)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let t = share_table(&cur, &prev, Some(5), &|k| k.to_lowercase());
        let keys: Vec<&str> = t.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["A", "B", "C", "D", "E", "other"]);
        assert_eq!(t.iter().map(|r| r.pct).sum::<u32>(), 100);
        assert_eq!(t[0].change_pp, Some(10)); // 50 - 40
        assert_eq!(t[1].change_pp, None); // 20 - 20
        assert_eq!(t[2].change_pp, Some(10)); // 10 - 0
        assert_eq!(t[5].change_pp, Some(5 - 40));
        assert_eq!(t[5].label, "Other");
        let none = share_table(&cur, &BTreeMap::new(), Some(5), &|k| k.to_string());
        assert!(none.iter().all(|r| r.change_pp.is_none()));
    }

    #[test]
    fn half_up_helpers() {
        assert_eq!(per_mille(1, 400), 3); // 0.25% -> 0.3%
        assert_eq!(percent(1, 200), 1); // 0.5% -> 1%
        assert_eq!(percent(1, 0), 0);
    }

    proptest! {
        #[test]
        fn always_sums_to_100(counts in proptest::collection::vec(0u64..1_000_000, 1..40)) {
            let items: Vec<(usize, u64)> = counts.iter().copied().enumerate().collect();
            let p = largest_remainder(&items);
            let total: u64 = counts.iter().sum();
            prop_assert_eq!(p.iter().sum::<u32>(), if total > 0 { 100 } else { 0 });
            // Never more than one point away from the exact share.
            for (c, q) in counts.iter().zip(&p) {
                if total > 0 {
                    let exact = *c as f64 * 100.0 / total as f64;
                    prop_assert!((exact - f64::from(*q)).abs() < 1.0 + 1e-9);
                }
            }
        }

        #[test]
        fn order_does_not_matter(counts in proptest::collection::vec(0u64..50, 1..12)) {
            let items: Vec<(usize, u64)> = counts.iter().copied().enumerate().collect();
            let mut rev = items.clone();
            rev.reverse();
            let a = largest_remainder(&items);
            let mut b = largest_remainder(&rev);
            b.reverse();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn share_tables_sum_to_100(
            cur in proptest::collection::btree_map("[A-Z]{3}", 0u64..10_000, 1..15),
            prev in proptest::collection::btree_map("[A-Z]{3}", 0u64..10_000, 0..15),
        ) {
            let t = share_table(&cur, &prev, Some(5), &|k| k.to_string());
            let total: u64 = cur.values().sum();
            prop_assert_eq!(t.iter().map(|r| r.pct).sum::<u32>(), if total > 0 { 100 } else { 0 });
            prop_assert!(t.len() <= 6);
        }
    }
}
