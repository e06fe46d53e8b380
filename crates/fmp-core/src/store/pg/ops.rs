//! Every operation of `store/ops.rs` on PostgreSQL: the SQLite statements
//! of `log.rs`, `hub.rs`, `query.rs`, `restore.rs`, … in PostgreSQL's
//! dialect, with the same results. Positions are those of ADR 0005
//! (`log.rs` here); writes run one at a time per database (ADR 0006), so
//! a write sees every write committed before it, as on SQLite.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use postgres::Row;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
use uuid::Uuid;

use super::log::ORDINAL_BITS;
use super::{PgReader, PgWriter, pg_err};
use crate::doc::Op;
use crate::form::Forms;
use crate::model::{People, Place, Review, StoredSubmission, Submission, Vulnerable};
use crate::refdoc;
use crate::reference::Registry;
use crate::role::Role;
use crate::store::StoreError;
use crate::store::authority::{Authority, DocChange};
use crate::store::corrections::ToCorrect;
use crate::store::counts::MonthCounts;
use crate::store::enrollment::DeviceMatch;
use crate::store::hub::{
    CodeRow, EnrolledDevice, QuarantineEntry, TrustRow, TrustVersion, UnusedCode, Upstream,
};
use crate::store::log::{
    Batch, DocStamp, Hash, LogRow, NewChange, PeerCursor, PendingChange, StoredBundle, Waiting,
    seal_chunks,
};
use crate::store::ops::*;
use crate::store::peers::PeerProgress;
use crate::store::report::{
    Counted, DayGroup, DirectionGroup, ExportRow, ExportSelection, KeyGroup, MovementGroup,
    ReportAggregates, SeriesGroup,
};
use crate::store::restore::RestoreState;
use crate::store::{Filter, HistoryEntry};

type P<'x> = &'x (dyn ToSql + Sync);

/// A column of a row, or a typed error (no panic on a column that does
/// not read as the schema says).
pub(crate) fn get<'r, T: FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| StoreError::Corrupt {
        what: format!("a column that does not read ({e})"),
    })
}

fn hash(v: Vec<u8>) -> Result<Hash, StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt {
        what: "a hash that is not 32 bytes".into(),
    })
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn split_fmps(s: Option<String>) -> Option<Vec<String>> {
    s.map(|s| {
        s.split(',')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    })
}

fn join_fmps(f: Option<&[String]>) -> Option<String> {
    f.map(|l| l.join(","))
}

fn uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt {
        what: format!("a device id that is no UUID ({e})"),
    })
}

/// A document's data: its own bytes, or (kept once) its one change's.
const DOC_DATA: &str = "CASE WHEN length(d.data) > 0 THEN d.data ELSE \
     (SELECT c.bytes FROM changes c WHERE c.doc_id = d.id ORDER BY c.seq LIMIT 1) END";

/// Log rows as [`LogRow`] reads them.
const SELECT: &str = "SELECT c.seq, c.hash, c.doc_id, d.kind, c.bytes, c.bundle, c.op
     FROM changes c JOIN documents d ON d.id = c.doc_id";

/// Change `c` of document `d` may be read by a peer whose FMPs are the
/// array in parameter `$n` (NULL: everything).
fn in_scope(n: usize) -> String {
    format!(
        "(${n}::text[] IS NULL OR d.kind <> 'submission' OR EXISTS (SELECT 1 FROM submissions s
           WHERE s.id = c.doc_id AND s.fmp = ANY(${n}::text[])))"
    )
}

fn log_row(r: &Row) -> Result<LogRow, StoreError> {
    let kind: String = get(r, 3)?;
    let op: String = get(r, 6)?;
    let bundle: Option<Vec<u8>> = get(r, 5)?;
    Ok(LogRow {
        seq: get(r, 0)?,
        hash: hash(get(r, 1)?)?,
        doc_id: get(r, 2)?,
        first: kind == "submission" && op == Op::Record.as_str(),
        doc_kind: kind,
        bytes: get(r, 4)?,
        bundle: bundle.map(hash).transpose()?,
        dep_known: false,
    })
}

fn first_dep(bytes: &[u8]) -> Option<Hash> {
    automerge::Change::try_from(bytes)
        .ok()
        .and_then(|c| c.deps().first().map(|d| d.0))
}

impl PgReader<'_> {
    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |e| pg_err(self.url, e)
    }

    pub(crate) fn query(&self, sql: &str, p: &[P<'_>]) -> Result<Vec<Row>, StoreError> {
        self.c.borrow_mut().query(sql, p).map_err(self.err())
    }

    pub(crate) fn opt(&self, sql: &str, p: &[P<'_>]) -> Result<Option<Row>, StoreError> {
        self.c.borrow_mut().query_opt(sql, p).map_err(self.err())
    }

    pub(crate) fn one(&self, sql: &str, p: &[P<'_>]) -> Result<Row, StoreError> {
        self.c.borrow_mut().query_one(sql, p).map_err(self.err())
    }

    pub(crate) fn exec(&self, sql: &str, p: &[P<'_>]) -> Result<u64, StoreError> {
        self.c.borrow_mut().execute(sql, p).map_err(self.err())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    fn exists(&self, sql: &str, p: &[P<'_>]) -> Result<bool, StoreError> {
        get(&self.one(&format!("SELECT EXISTS({sql})"), p)?, 0)
    }

    fn max_logged_epoch(&self, device: Uuid, received_only: bool) -> Result<u32, StoreError> {
        let rows = self.query(
            "SELECT bytes FROM changes WHERE author = $1 AND (NOT $2 OR origin IS NOT NULL)",
            &[&device.to_string(), &received_only],
        )?;
        let mut max = 0u32;
        for r in rows {
            let bytes: Vec<u8> = get(&r, 0)?;
            if let Ok(c) = automerge::Change::try_from(bytes.as_slice()) {
                let (_, e) = crate::doc::actor_parts(c.actor_id().to_bytes());
                max = max.max(e.unwrap_or(0));
            }
        }
        Ok(max)
    }
}

impl PgWriter<'_> {
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn del_meta(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM meta WHERE key = $1", &[&key])?;
        Ok(())
    }

    fn trust_changed(&self) -> Result<(), StoreError> {
        self.set_meta("hub_trust_version", &Uuid::now_v7().to_string())
    }

    /// Appends one change (ADR 0005's position: this transaction's id, then
    /// one past its last ordinal); `None`: its hash is logged already.
    /// The next position this write appends at (ADR 0005: its
    /// transaction id, then one past its last ordinal) and the end of its
    /// range.
    fn next_position(&self) -> Result<(i64, i64), StoreError> {
        let r = self.one(
            "SELECT b.base, coalesce((SELECT max(c.seq) + 1 FROM changes c
                 WHERE c.seq >= b.base AND c.seq < b.base + $1), b.base)
             FROM (SELECT pg_current_xact_id()::text::bigint << $2 AS base) b",
            &[&(1i64 << ORDINAL_BITS), &(ORDINAL_BITS as i32)],
        )?;
        let base: i64 = get(&r, 0)?;
        Ok((get(&r, 1)?, base + (1 << ORDINAL_BITS)))
    }

    /// Appends one change at position `seq` (from [`Self::next_position`],
    /// below `end`); `None`: its hash is logged already (the position is
    /// left unused).
    fn append_at(
        &self,
        seq: i64,
        end: i64,
        doc_id: &str,
        c: &NewChange<'_>,
    ) -> Result<Option<i64>, StoreError> {
        if seq >= end {
            return Err(StoreError::TooManyChanges {
                limit: 1 << ORDINAL_BITS,
            });
        }
        let row = self.opt(
            "INSERT INTO changes (seq, hash, doc_id, author, time, op, bytes, origin, bundle)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (hash) DO NOTHING RETURNING seq",
            &[
                &seq,
                &&c.hash[..],
                &doc_id,
                &c.author.to_string(),
                &c.time,
                &c.op,
                &c.bytes,
                &c.origin.map(|o| o.to_string()),
                &c.bundle.as_ref().map(|b| &b[..]),
            ],
        )?;
        row.map(|r| get(&r, 0)).transpose()
    }

    /// Appends one change (see [`Self::append_at`]).
    pub(crate) fn append(
        &self,
        doc_id: &str,
        c: &NewChange<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let (seq, end) = self.next_position()?;
        self.append_at(seq, end, doc_id, c)
    }

    fn save(
        &self,
        insert: bool,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        let data = match changes {
            [only] if only.bytes == data => &[][..],
            _ => data,
        };
        if insert {
            let n = self.exec(
                "INSERT INTO documents (id, kind, data) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &kind, &data],
            )?;
            if n == 0 {
                return Err(StoreError::Duplicate(id.to_string()));
            }
        } else {
            self.exec(
                "INSERT INTO documents (id, kind, data) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, data = excluded.data",
                &[&id, &kind, &data],
            )?;
        }
        let (mut stored, mut last) = (0u32, 0i64);
        let (mut next, end) = if changes.is_empty() {
            (0, 0)
        } else {
            self.next_position()?
        };
        for c in changes {
            let at = next;
            next += 1;
            match self.append_at(at, end, id, c)? {
                Some(seq) => {
                    stored += 1;
                    last = seq;
                }
                None if c.origin.is_none() => {
                    return Err(StoreError::Corrupt {
                        what: format!(
                            "a change made here already logged ({})",
                            hex::encode(c.hash)
                        ),
                    });
                }
                None => {}
            }
        }
        if let Some((s, invalid)) = state {
            self.write_row(s, last, invalid)?;
        }
        Ok(stored)
    }

    /// The materialized row of a submission (`materialize.rs`).
    pub(crate) fn write_row(
        &self,
        s: &StoredSubmission,
        seq: i64,
        invalid: bool,
    ) -> Result<(), StoreError> {
        let sub = &s.submission;
        let crate::store::materialize::Derived {
            id,
            observed,
            day,
            month,
            total,
            review_at,
            conflicts,
        } = crate::store::materialize::derived(s, invalid);
        let n = |v: u32| i64::from(v);
        self.exec(
            "DELETE FROM submission_nationalities WHERE submission_id = $1",
            &[&id],
        )?;
        self.exec(
            "INSERT INTO submissions (id, form, form_version, fmp, observed_at, day, month,
                direction, transport, movement_type, departure_country, departure_place,
                next_country, next_place, final_country, final_place,
                adult_male, adult_female, minor_male, minor_female, total,
                under5, elderly, disability, pregnant, unaccompanied, notes,
                review_status, review_comment, review_by, review_at, deleted, conflicts, updated_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)
             ON CONFLICT (id) DO UPDATE SET form = excluded.form, form_version = excluded.form_version,
                fmp = excluded.fmp, observed_at = excluded.observed_at, day = excluded.day,
                month = excluded.month, direction = excluded.direction,
                transport = excluded.transport, movement_type = excluded.movement_type,
                departure_country = excluded.departure_country,
                departure_place = excluded.departure_place, next_country = excluded.next_country,
                next_place = excluded.next_place, final_country = excluded.final_country,
                final_place = excluded.final_place, adult_male = excluded.adult_male,
                adult_female = excluded.adult_female, minor_male = excluded.minor_male,
                minor_female = excluded.minor_female, total = excluded.total,
                under5 = excluded.under5, elderly = excluded.elderly,
                disability = excluded.disability, pregnant = excluded.pregnant,
                unaccompanied = excluded.unaccompanied, notes = excluded.notes,
                review_status = excluded.review_status, review_comment = excluded.review_comment,
                review_by = excluded.review_by, review_at = excluded.review_at,
                deleted = excluded.deleted, conflicts = excluded.conflicts,
                updated_seq = excluded.updated_seq",
            &[
                &id,
                &sub.form,
                &n(sub.form_version),
                &sub.fmp,
                &observed,
                &day,
                &month,
                &sub.direction.as_str(),
                &sub.transport.as_str(),
                &sub.movement_type.as_str(),
                &sub.departure.country,
                &sub.departure.place,
                &sub.next_destination.country,
                &sub.next_destination.place,
                &sub.final_destination.country,
                &sub.final_destination.place,
                &n(sub.people.adult_male),
                &n(sub.people.adult_female),
                &n(sub.people.minor_male),
                &n(sub.people.minor_female),
                &total,
                &n(sub.vulnerable.under5),
                &n(sub.vulnerable.elderly),
                &n(sub.vulnerable.disability),
                &n(sub.vulnerable.pregnant),
                &sub.vulnerable.unaccompanied_children.map(i64::from),
                &sub.notes,
                &s.review.as_ref().map(|r| r.status.as_str()),
                &s.review.as_ref().map(|r| r.comment.as_str()),
                &s.review.as_ref().map(|r| r.by.as_str()),
                &review_at,
                &i64::from(s.deleted),
                &conflicts,
                &seq,
            ],
        )?;
        for (country, count) in &sub.nationalities {
            self.exec(
                "INSERT INTO submission_nationalities (submission_id, country, count)
                 VALUES ($1, $2, $3)",
                &[&id, country, &i64::from(*count)],
            )?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------ log

impl LogReads for PgReader<'_> {
    fn log_end(&self) -> Result<i64, StoreError> {
        get(
            &self.one("SELECT coalesce(max(seq), 0)::bigint FROM changes", &[])?,
            0,
        )
    }

    fn changes_after(
        &self,
        after: i64,
        not_from: Uuid,
        raw_budget: usize,
        scope: Option<&[String]>,
    ) -> Result<(Vec<LogRow>, bool), StoreError> {
        let peer = not_from.to_string();
        let scope_v: Option<Vec<String>> = scope.map(<[String]>::to_vec);
        let mut batch = Batch::new(after, &peer, scope, raw_budget);
        let mut cursor = after;
        // Read in pages (a client cannot hold a portal open while other
        // statements run on it): each page after the last row read.
        const PAGE: i64 = 500;
        loop {
            let rows = self.query(
                &format!(
                    "{SELECT} WHERE c.seq > $1 AND (c.origin IS NULL OR c.origin <> $2)
                       AND {} ORDER BY c.seq LIMIT {PAGE}",
                    in_scope(3)
                ),
                &[&cursor, &peer, &scope_v],
            )?;
            let n = rows.len();
            let page = rows.iter().map(log_row).collect::<Result<Vec<_>, _>>()?;
            // The first dependencies this page asks about, in one query.
            let deps: Vec<Vec<u8>> = page
                .iter()
                .filter(|r| r.submission_id().is_some() && !r.first)
                .filter_map(|r| first_dep(&r.bytes))
                .map(|d| d.to_vec())
                .collect();
            let mut held: HashMap<Hash, bool> = HashMap::new();
            if !deps.is_empty() {
                for x in self.query(
                    "SELECT hash, seq, origin, author FROM changes WHERE hash = ANY($1)",
                    &[&deps],
                )? {
                    let seq: i64 = get(&x, 1)?;
                    let origin: Option<String> = get(&x, 2)?;
                    let author: String = get(&x, 3)?;
                    held.insert(
                        hash(get(&x, 0)?)?,
                        seq <= after || origin.as_deref() == Some(peer.as_str()) || author == peer,
                    );
                }
            }
            for r in page {
                if batch.full() {
                    return Ok((batch.rows, false));
                }
                cursor = r.seq;
                batch.push(self, r, |dep| Ok(held.get(&dep).copied().unwrap_or(false)))?;
            }
            if n < PAGE as usize {
                return Ok((batch.rows, true));
            }
        }
    }

    fn changes_by_hash(
        &self,
        hashes: &[Hash],
        scope: Option<&[String]>,
    ) -> Result<Vec<LogRow>, StoreError> {
        let scope_v: Option<Vec<String>> = scope.map(<[String]>::to_vec);
        let list: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let rows = self.query(
            &format!(
                "{SELECT} WHERE c.hash = ANY($1) AND {} ORDER BY c.seq",
                in_scope(2)
            ),
            &[&list, &scope_v],
        )?;
        rows.iter().map(log_row).collect()
    }

    fn change_keys(&self, scope: Option<&[String]>) -> Result<Vec<(i64, Hash)>, StoreError> {
        let scope_v: Option<Vec<String>> = scope.map(<[String]>::to_vec);
        let rows = self.query(
            &format!(
                "SELECT c.time, c.hash FROM changes c JOIN documents d ON d.id = c.doc_id
                 WHERE {} ORDER BY c.time, c.hash",
                in_scope(1)
            ),
            &[&scope_v],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let h: Vec<u8> = get(&r, 1)?;
            if let Ok(h) = Hash::try_from(h.as_slice()) {
                out.push((get(&r, 0)?, h));
            }
        }
        Ok(out)
    }

    fn bundle(&self, id: &Hash) -> Result<Option<StoredBundle>, StoreError> {
        let Some(r) = self.opt(
            "SELECT author, hashes, sig FROM bundles WHERE id = $1",
            &[&&id[..]],
        )?
        else {
            return Ok(None);
        };
        let author: String = get(&r, 0)?;
        let hashes: Vec<u8> = get(&r, 1)?;
        Ok(Some(StoredBundle {
            id: *id,
            author: uuid(&author)?,
            hashes: hashes
                .chunks_exact(32)
                .filter_map(|h| Hash::try_from(h).ok())
                .collect(),
            sig: get(&r, 2)?,
        }))
    }

    fn unsealed(&self) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM changes WHERE bundle IS NULL AND author = $1",
            &[&self.store.identity.device_id.to_string()],
        )
    }

    fn certificate(&self, device: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.opt(
            "SELECT cert FROM devices WHERE device = $1",
            &[&device.to_string()],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn peer_cursor(&self, peer: Uuid) -> Result<Option<PeerCursor>, StoreError> {
        self.opt(
            "SELECT pulled, acked, synced_at FROM peers WHERE peer = $1",
            &[&peer.to_string()],
        )?
        .map(|r| {
            Ok(PeerCursor {
                pulled: get(&r, 0)?,
                acked: get(&r, 1)?,
                synced_at: get::<Option<i64>>(&r, 2)?.unwrap_or(0),
            })
        })
        .transpose()
    }

    fn change_document(&self, hash: &Hash) -> Result<Option<(String, String)>, StoreError> {
        self.opt(
            "(SELECT d.kind, c.doc_id FROM changes c JOIN documents d ON d.id = c.doc_id
               WHERE c.hash = $1)
             UNION ALL (SELECT kind, doc_id FROM pending WHERE hash = $1) LIMIT 1",
            &[&&hash[..]],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?)))
        .transpose()
    }

    fn logged(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.exists("SELECT 1 FROM changes WHERE hash = $1", &[&&hash[..]])
    }

    fn document(&self, id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.opt(
            &format!("SELECT d.kind, {DOC_DATA} FROM documents d WHERE d.id = $1"),
            &[&id],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?)))
        .transpose()
    }

    fn document_stamp(&self, id: &str) -> Result<DocStamp, StoreError> {
        let last_seq: Option<i64> = get(
            &self.one("SELECT max(seq) FROM changes WHERE doc_id = $1", &[&id])?,
            0,
        )?;
        let pending = self
            .query(
                "SELECT hash FROM pending WHERE doc_id = $1 ORDER BY hash",
                &[&id],
            )?
            .iter()
            .filter_map(|r| get::<Vec<u8>>(r, 0).ok())
            .filter_map(|h| Hash::try_from(h.as_slice()).ok())
            .collect();
        Ok(DocStamp { last_seq, pending })
    }

    fn reference_stamp(&self) -> Result<Option<i64>, StoreError> {
        get(
            &self.one(
                "SELECT max(s) FROM (
                    SELECT max(seq) AS s FROM changes WHERE doc_id = $1
                    UNION ALL
                    SELECT max(seq) FROM changes WHERE doc_id >= 'form:' AND doc_id < 'form;') x",
                &[&refdoc::REGISTRY_ID],
            )?,
            0,
        )
    }

    fn pending_for(&self, doc_id: &str) -> Result<Vec<PendingChange>, StoreError> {
        let rows = self.query(
            "SELECT hash, author, bundle, origin, kind, bytes FROM pending WHERE doc_id = $1",
            &[&doc_id],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let (h, a, b): (Vec<u8>, String, Vec<u8>) = (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
            let origin: Option<String> = get(&r, 3)?;
            let (Ok(hash), Ok(author), Ok(bundle)) = (
                Hash::try_from(h.as_slice()),
                Uuid::parse_str(&a),
                Hash::try_from(b.as_slice()),
            ) else {
                continue;
            };
            out.push(PendingChange {
                hash,
                doc_id: doc_id.to_string(),
                kind: get(&r, 4)?,
                author,
                bundle,
                origin: origin.and_then(|o| Uuid::parse_str(&o).ok()),
                bytes: get(&r, 5)?,
            });
        }
        Ok(out)
    }

    fn waiting(&self) -> Result<Waiting, StoreError> {
        let rows = self
            .query("SELECT bytes FROM pending", &[])?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<Vec<Vec<u8>>, StoreError>>()?;
        crate::store::log::waiting_of(
            rows,
            |d| self.exists("SELECT 1 FROM changes WHERE hash = $1", &[&&d[..]]),
            |d| self.exists("SELECT 1 FROM pending WHERE hash = $1", &[&&d[..]]),
        )
    }
}

impl LogWrites for PgWriter<'_> {
    fn put_certificate(&self, device: Uuid, cert: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO devices (device, cert) VALUES ($1, $2)
             ON CONFLICT (device) DO UPDATE SET cert = excluded.cert",
            &[&device.to_string(), &cert],
        )?;
        Ok(())
    }

    fn store_bundle(&self, b: &StoredBundle) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO bundles (id, author, hashes, sig) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[
                &&b.id[..],
                &b.author.to_string(),
                &b.hashes.concat(),
                &b.sig,
            ],
        )?;
        Ok(())
    }

    fn seal(
        &self,
        max: usize,
        budget: usize,
        mut sign: impl FnMut(Vec<Hash>) -> StoredBundle,
    ) -> Result<usize, StoreError> {
        let rows = self.query(
            "SELECT c.seq, c.hash, coalesce(s.fmp, ''), length(c.bytes)::bigint FROM changes c
             LEFT JOIN submissions s ON s.id = c.doc_id
             WHERE c.bundle IS NULL AND c.author = $1 ORDER BY c.seq",
            &[&self.store.identity.device_id.to_string()],
        )?;
        let rows = rows
            .iter()
            .map(|r| Ok((get(r, 0)?, hash(get(r, 1)?)?, get(r, 2)?, get(r, 3)?)))
            .collect::<Result<Vec<(i64, Hash, String, i64)>, StoreError>>()?;
        let chunks = seal_chunks(rows, max, budget);
        let mut made = 0;
        for chunk in &chunks {
            let bundle = sign(chunk.iter().map(|(_, h)| *h).collect());
            self.store_bundle(&bundle)?;
            let seqs: Vec<i64> = chunk.iter().map(|(s, _)| *s).collect();
            self.exec(
                "UPDATE changes SET bundle = $1 WHERE seq = ANY($2)",
                &[&&bundle.id[..], &seqs],
            )?;
            made += 1;
        }
        Ok(made)
    }

    fn advance_peer(
        &self,
        peer: Uuid,
        pulled: Option<i64>,
        acked: Option<i64>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO peers (peer, pulled, acked, synced_at)
               VALUES ($1, coalesce($2::bigint, 0), coalesce($3::bigint, 0), $4)
             ON CONFLICT (peer) DO UPDATE SET
               pulled = coalesce($2, peers.pulled),
               acked = greatest(peers.acked, coalesce($3, peers.acked)),
               synced_at = $4",
            &[&peer.to_string(), &pulled, &acked, &now_ms()],
        )?;
        Ok(())
    }

    fn forget_peer(&self, peer: Uuid) -> Result<(), StoreError> {
        self.exec("DELETE FROM peers WHERE peer = $1", &[&peer.to_string()])?;
        Ok(())
    }

    fn hold(&self, p: &PendingChange) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO pending (hash, doc_id, kind, author, bundle, origin, bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &&p.hash[..],
                &p.doc_id,
                &p.kind,
                &p.author.to_string(),
                &&p.bundle[..],
                &p.origin.map(|o| o.to_string()),
                &p.bytes,
            ],
        )?;
        Ok(())
    }

    fn release(&self, hash: &Hash) -> Result<(), StoreError> {
        self.exec("DELETE FROM pending WHERE hash = $1", &[&&hash[..]])?;
        Ok(())
    }

    fn save_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        self.save(false, kind, id, data, changes, state)
    }

    fn insert_document(
        &self,
        kind: &str,
        id: &str,
        data: &[u8],
        changes: &[NewChange<'_>],
        state: Option<(&StoredSubmission, bool)>,
    ) -> Result<u32, StoreError> {
        self.save(true, kind, id, data, changes, state)
    }
}

// ------------------------------------------------------------ records

const COLUMNS: &str =
    "id, form, form_version, fmp, observed_at, direction, transport, movement_type,
    departure_country, departure_place, next_country, next_place, final_country, final_place,
    adult_male, adult_female, minor_male, minor_female, under5, elderly, disability, pregnant,
    unaccompanied, notes, review_status, review_comment, review_by, review_at, deleted, conflicts,
    (SELECT string_agg(country || '=' || count, ',') FROM submission_nationalities n
       WHERE n.submission_id = s.id)";

fn parse<T: std::str::FromStr>(r: &Row, i: usize) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let s: String = get(r, i)?;
    s.parse().map_err(|e| StoreError::Corrupt {
        what: format!("a column that does not read ({e})"),
    })
}

fn u32_at(r: &Row, i: usize) -> Result<u32, StoreError> {
    let v: i64 = get(r, i)?;
    u32::try_from(v).map_err(|e| StoreError::Corrupt {
        what: format!("a count out of range ({e})"),
    })
}

fn submission_row(r: &Row) -> Result<(StoredSubmission, bool), StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt {
        what: format!("a column that does not read ({e})"),
    };
    let observed: String = get(r, 4)?;
    let observed_at = DateTime::parse_from_rfc3339(&observed)
        .map_err(|e| corrupt(&e))?
        .with_timezone(&Utc);
    let mut nationalities = BTreeMap::new();
    if let Some(s) = get::<Option<String>>(r, 30)? {
        for part in s.split(',') {
            if let Some((c, n)) = part.split_once('=') {
                nationalities.insert(c.to_string(), n.parse().map_err(|e| corrupt(&e))?);
            }
        }
    }
    let unaccompanied: Option<i64> = get(r, 22)?;
    let submission = Submission {
        id: Some(parse(r, 0)?),
        form: get(r, 1)?,
        form_version: u32_at(r, 2)?,
        fmp: get(r, 3)?,
        observed_at,
        direction: parse(r, 5)?,
        transport: parse(r, 6)?,
        movement_type: parse(r, 7)?,
        departure: Place {
            country: get(r, 8)?,
            place: get(r, 9)?,
        },
        next_destination: Place {
            country: get(r, 10)?,
            place: get(r, 11)?,
        },
        final_destination: Place {
            country: get(r, 12)?,
            place: get(r, 13)?,
        },
        people: People {
            adult_male: u32_at(r, 14)?,
            adult_female: u32_at(r, 15)?,
            minor_male: u32_at(r, 16)?,
            minor_female: u32_at(r, 17)?,
        },
        vulnerable: Vulnerable {
            under5: u32_at(r, 18)?,
            elderly: u32_at(r, 19)?,
            disability: u32_at(r, 20)?,
            pregnant: u32_at(r, 21)?,
            unaccompanied_children: unaccompanied.and_then(|v| u32::try_from(v).ok()),
        },
        nationalities,
        notes: get(r, 23)?,
    };
    let review = match get::<Option<String>>(r, 24)? {
        Some(st) => {
            let at: String = get::<Option<String>>(r, 27)?.unwrap_or_default();
            Some(Review {
                status: st.parse().map_err(|e| corrupt(&e))?,
                comment: get::<Option<String>>(r, 25)?.unwrap_or_default(),
                by: get::<Option<String>>(r, 26)?.unwrap_or_default(),
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or_default(),
            })
        }
        None => None,
    };
    let has_conflicts = get::<i64>(r, 29)? > 0;
    Ok((
        StoredSubmission {
            submission,
            review,
            deleted: get::<i64>(r, 28)? != 0,
            conflicts: Vec::new(),
        },
        has_conflicts,
    ))
}

impl RecordReads for PgReader<'_> {
    fn list_rows(&self, f: &Filter) -> Result<Vec<(StoredSubmission, bool)>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM submissions s WHERE true");
        let mut args: Vec<String> = Vec::new();
        let mut add = |sql: &mut String, col: &str, v: String| {
            args.push(v);
            *sql += &format!(" AND {col} ${}", args.len());
        };
        if let Some(fmp) = &f.fmp {
            add(&mut sql, "fmp =", fmp.clone());
        }
        if let Some(from) = f.from {
            add(&mut sql, "day >=", from.to_string());
        }
        if let Some(to) = f.to {
            add(&mut sql, "day <=", to.to_string());
        }
        if let Some(d) = f.direction {
            add(&mut sql, "direction =", d.as_str().into());
        }
        match f.review {
            Some(Some(st)) => add(&mut sql, "review_status =", st.as_str().into()),
            Some(None) => sql += " AND review_status IS NULL",
            None => {}
        }
        if !f.include_deleted {
            sql += " AND deleted = 0";
        }
        sql += " ORDER BY observed_at COLLATE \"C\", id COLLATE \"C\"";
        let params: Vec<P<'_>> = args.iter().map(|a| a as P<'_>).collect();
        self.query(&sql, &params)?
            .iter()
            .map(submission_row)
            .collect()
    }

    fn history_rows(&self, id: Uuid) -> Result<Vec<(HistoryEntry, Vec<u8>)>, StoreError> {
        let me = &self.store.identity;
        let rows = self.query(
            "SELECT c.seq, c.hash, c.author, c.time, c.op,
               CASE WHEN c.author = $2 THEN $3 ELSE coalesce(u.name, d.name) END, c.bytes
             FROM changes c LEFT JOIN hub_upstream u ON u.hub = c.author
             LEFT JOIN hub_devices d ON d.device = c.author
             WHERE c.doc_id = $1 ORDER BY c.seq",
            &[&id.to_string(), &me.device_id.to_string(), &me.name],
        )?;
        rows.iter()
            .map(|r| {
                let h: Vec<u8> = get(r, 1)?;
                let ms: i64 = get(r, 3)?;
                Ok((
                    HistoryEntry {
                        seq: get(r, 0)?,
                        hash: hex::encode(h),
                        author: get(r, 2)?,
                        author_name: get(r, 5)?,
                        fields: Vec::new(),
                        time: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
                        op: get(r, 4)?,
                    },
                    get(r, 6)?,
                ))
            })
            .collect()
    }

    fn to_correct_rows(&self) -> Result<Vec<ToCorrect>, StoreError> {
        let rows = self.query(
            "SELECT s.id, s.fmp, s.review_status, coalesce(s.review_comment, ''),
                   coalesce(s.review_by, ''),
                   coalesce((SELECT max(seq) FROM changes WHERE doc_id = s.id AND op = 'edit'), 0)
                     > coalesce((SELECT max(seq) FROM changes WHERE doc_id = s.id AND op = 'review'), 0)
                 FROM submissions s
                 WHERE s.deleted = 0 AND s.review_status IN ('has_issues', 'rejected')
                 ORDER BY s.observed_at COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ToCorrect {
                    id: get(r, 0)?,
                    fmp: get(r, 1)?,
                    status: get(r, 2)?,
                    comment: get(r, 3)?,
                    by: get(r, 4)?,
                    by_name: None,
                    edited_since: get(r, 5)?,
                })
            })
            .collect()
    }
}

impl PeerReads for PgReader<'_> {
    fn peer_progress(&self) -> Result<Vec<PeerProgress>, StoreError> {
        let rows = self.query(
            "SELECT p.peer, coalesce(u.name, d.name),
               (SELECT count(*) FROM changes ch LEFT JOIN submissions s ON s.id = ch.doc_id
                 WHERE ch.seq > p.acked AND (ch.origin IS NULL OR ch.origin <> p.peer)
                   AND (d.fmps IS NULL OR s.id IS NULL
                        OR strpos(',' || d.fmps || ',', ',' || s.fmp || ',') > 0)),
               p.synced_at
             FROM peers p LEFT JOIN hub_upstream u ON u.hub = p.peer
             LEFT JOIN hub_devices d ON d.device = p.peer ORDER BY p.synced_at DESC NULLS LAST",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(PeerProgress {
                    peer: get(r, 0)?,
                    name: get(r, 1)?,
                    pending: get(r, 2)?,
                    last_sync_ms: get(r, 3)?,
                })
            })
            .collect()
    }

    fn never_sent_to(&self, peer: Option<Uuid>) -> Result<i64, StoreError> {
        let row = match peer {
            Some(p) => self.one(
                "SELECT count(*) FROM changes WHERE origin IS NULL OR origin <> $1",
                &[&p.to_string()],
            )?,
            None => self.one("SELECT count(*) FROM changes WHERE origin IS NULL", &[])?,
        };
        get(&row, 0)
    }
}

// ------------------------------------------------------------ settings, roles

impl SettingsReads for PgReader<'_> {
    fn enrolled_fmps(&self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(split_fmps(self.meta("enrolled_fmps")?))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.meta(key)
    }
}

impl SettingsWrites for PgWriter<'_> {
    fn set_enrolled_fmps(&self, fmps: Option<&[String]>) -> Result<(), StoreError> {
        match fmps {
            Some(list) => self.set_meta("enrolled_fmps", &list.join(",")),
            None => self.del_meta("enrolled_fmps"),
        }
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_meta(key, value)
    }

    fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.del_meta(key)
    }
}

impl RoleReads for PgReader<'_> {
    fn role(&self) -> Result<Option<Role>, StoreError> {
        Ok(self.meta("role")?.as_deref().and_then(Role::parse))
    }

    fn record_author(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let a: Option<String> = self
            .opt(
                "SELECT author FROM changes WHERE doc_id = $1 ORDER BY seq LIMIT 1",
                &[&id.to_string()],
            )?
            .map(|r| get(&r, 0))
            .transpose()?;
        Ok(a.and_then(|a| Uuid::parse_str(&a).ok()))
    }

    fn reference(&self) -> Result<(Registry, Forms), StoreError> {
        let rows = self.query(
            &format!(
                "SELECT d.kind, {DOC_DATA} FROM documents d WHERE (d.id = $1 AND d.kind = $2)
                   OR (d.id >= 'form:' AND d.id < 'form;' AND d.kind = $3)"
            ),
            &[
                &refdoc::REGISTRY_ID,
                &refdoc::REGISTRY_KIND,
                &refdoc::FORM_KIND,
            ],
        )?;
        let rows = rows
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect::<Result<Vec<(String, Vec<u8>)>, StoreError>>()?;
        Ok(crate::store::roles::reference_from(rows))
    }

    fn flagged(&self) -> Result<i64, StoreError> {
        get(
            &self.one(
                "SELECT count(*) FROM submissions WHERE conflicts > 0 AND deleted = 0",
                &[],
            )?,
            0,
        )
    }
}

impl RoleWrites for PgWriter<'_> {
    fn set_role(&self, role: Option<Role>) -> Result<(), StoreError> {
        match role {
            Some(r) => self.set_meta("role", r.as_str()),
            None => self.del_meta("role"),
        }
    }
}

// ------------------------------------------------------------ restore

impl RestoreReads for PgReader<'_> {
    fn actor_epoch(&self) -> Result<u32, StoreError> {
        Ok(self
            .meta("actor_epoch")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    fn restore_state(&self) -> Result<RestoreState, StoreError> {
        let detected_at = self.meta("restored_at")?;
        let taken_back = if detected_at.is_some() {
            get(
                &self.one(
                    "SELECT count(*) FROM changes WHERE author = $1 AND origin IS NOT NULL",
                    &[&self.store.identity.device_id.to_string()],
                )?,
                0,
            )?
        } else {
            0
        };
        Ok(RestoreState {
            detected_at,
            healed_at: self.meta("healed_at")?,
            taken_back,
            epoch: self.actor_epoch()?,
        })
    }

    fn wants_own_back(&self) -> Result<bool, StoreError> {
        Ok(self.meta("take_back")?.is_some())
    }

    fn needs_heal(&self) -> Result<bool, StoreError> {
        Ok(self.meta("restored_at")?.is_some() && self.meta("healed_at")?.is_none())
    }

    fn before_restore(&self, synced_at: Option<i64>) -> Result<bool, StoreError> {
        let Some(at) = self
            .meta("restored_at_ms")?
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return Ok(false);
        };
        Ok(synced_at.is_none_or(|t| t < at))
    }

    fn holds_from(&self, peer: Uuid) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM changes WHERE origin = $1",
            &[&peer.to_string()],
        )
    }

    fn holds_received(&self) -> Result<bool, StoreError> {
        self.exists("SELECT 1 FROM changes WHERE origin IS NOT NULL", &[])
    }

    fn reoffer_until(&self, peer: Uuid) -> Result<i64, StoreError> {
        Ok(self
            .meta(&format!("reoffer:{peer}"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

impl PgWriter<'_> {
    fn fresh_epoch(&self) -> Result<(), StoreError> {
        let next = self
            .actor_epoch()?
            .max(self.max_logged_epoch(self.store.identity.device_id, false)?)
            .saturating_add(1);
        self.set_meta("actor_epoch", &next.to_string())
    }

    fn begin_restore(&self) -> Result<(), StoreError> {
        self.fresh_epoch()?;
        self.set_meta("restored_at", &Utc::now().to_rfc3339())?;
        self.set_meta("restored_at_ms", &now_ms().to_string())?;
        self.del_meta("healed_at")
    }
}

impl RestoreWrites for PgWriter<'_> {
    fn mark_restored(&self, mark: Option<i64>) -> Result<bool, StoreError> {
        let last: Option<i64> = self.meta("restore_mark")?.and_then(|v| v.parse().ok());
        if let (Some(l), Some(m)) = (last, mark)
            && l >= m
        {
            return Ok(false);
        }
        if let Some(m) = mark {
            self.set_meta("restore_mark", &m.to_string())?;
        }
        self.set_meta("take_back", "1")?;
        if self.needs_heal()? {
            return Ok(false);
        }
        self.begin_restore()?;
        Ok(true)
    }

    fn mark_taken_back(&self) -> Result<(), StoreError> {
        self.del_meta("take_back")?;
        self.mark_healed()
    }

    fn mark_healed(&self) -> Result<(), StoreError> {
        if !self.needs_heal()? {
            return Ok(());
        }
        let now = self.actor_epoch()?;
        let back = self.max_logged_epoch(self.store.identity.device_id, true)?;
        if back >= now {
            self.set_meta("actor_epoch", &back.saturating_add(1).to_string())?;
        }
        self.set_meta("healed_at", &Utc::now().to_rfc3339())
    }

    fn set_reoffer(&self, peer: Uuid, upto: i64) -> Result<(), StoreError> {
        self.set_meta(&format!("reoffer:{peer}"), &upto.to_string())
    }

    fn reset_peer_cursor(&self, peer: Uuid, pulled: i64, acked: i64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO peers (peer, pulled, acked) VALUES ($1, $2, $3)
             ON CONFLICT (peer) DO UPDATE SET pulled = $2, acked = $3",
            &[&peer.to_string(), &pulled, &acked],
        )?;
        Ok(())
    }
}

// ------------------------------------------------------------ authority

impl AuthorityReads for PgReader<'_> {
    fn pinned_authority(&self) -> Result<Option<Authority>, StoreError> {
        Ok(self
            .meta(crate::store::authority::KEY)?
            .as_deref()
            .and_then(Authority::decode))
    }

    fn doc_changes(&self, doc_id: &str) -> Result<Vec<DocChange>, StoreError> {
        self.query(
            "SELECT seq, hash, author, origin, bytes FROM changes WHERE doc_id = $1 ORDER BY seq",
            &[&doc_id],
        )?
        .iter()
        .map(|r| {
            Ok(DocChange {
                seq: get(r, 0)?,
                hash: hash(get(r, 1)?)?,
                author: get(r, 2)?,
                origin: get(r, 3)?,
                bytes: get(r, 4)?,
            })
        })
        .collect()
    }
}

// ------------------------------------------------------------ hub

const TRUST_COLUMNS: &str = "device, public_key, fmps, may_enroll, revoked_at";

fn trust_row(r: &Row) -> Result<(String, TrustRow), StoreError> {
    Ok((
        get(r, 0)?,
        TrustRow {
            device: Uuid::nil(),
            public_key: get(r, 1)?,
            fmps: split_fmps(get(r, 2)?),
            may_enroll: get::<i64>(r, 3)? != 0,
            revoked_at: get(r, 4)?,
        },
    ))
}

impl HubReads for PgReader<'_> {
    fn device_name(&self, device: &str) -> Result<Option<String>, StoreError> {
        let me = self.store.identity();
        if me.device_id.to_string() == device {
            return Ok(Some(me.name.clone()));
        }
        self.opt(
            "(SELECT name FROM hub_upstream WHERE hub = $1)
             UNION ALL (SELECT name FROM hub_devices WHERE device = $1) LIMIT 1",
            &[&device],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn unused_codes(&self, now_ms: i64) -> Result<Vec<UnusedCode>, StoreError> {
        self.query(
            "SELECT hash, fmps, may_enroll, created_at, expires_at FROM hub_codes
             WHERE used_by IS NULL AND expires_at > $1 ORDER BY created_at, hash",
            &[&now_ms],
        )?
        .iter()
        .map(|r| {
            Ok(UnusedCode {
                hash: get(r, 0)?,
                fmps: split_fmps(Some(get(r, 1)?)).unwrap_or_default(),
                may_enroll: get::<i64>(r, 2)? != 0,
                created_at: get(r, 3)?,
                expires_at: get(r, 4)?,
            })
        })
        .collect()
    }

    fn enrollment_code(&self, h: &[u8]) -> Result<Option<CodeRow>, StoreError> {
        self.opt(
            "SELECT fmps, may_enroll, expires_at, used_by FROM hub_codes WHERE hash = $1",
            &[&h],
        )?
        .map(|r| {
            Ok(CodeRow {
                fmps: split_fmps(Some(get(&r, 0)?)).unwrap_or_default(),
                may_enroll: get::<i64>(&r, 1)? != 0,
                expires_at: get(&r, 2)?,
                used_by: get(&r, 3)?,
            })
        })
        .transpose()
    }

    fn enrolled_device(&self, device: Uuid) -> Result<Option<TrustRow>, StoreError> {
        self.opt(
            &format!("SELECT {TRUST_COLUMNS} FROM hub_devices WHERE device = $1"),
            &[&device.to_string()],
        )?
        .map(|r| trust_row(&r).map(|(_, t)| TrustRow { device, ..t }))
        .transpose()
    }

    fn trust_version(&self) -> Result<TrustVersion, StoreError> {
        Ok(TrustVersion(self.meta("hub_trust_version")?))
    }

    fn trust_rows(&self) -> Result<Vec<TrustRow>, StoreError> {
        let mut out = Vec::new();
        for r in self.query(&format!("SELECT {TRUST_COLUMNS} FROM hub_devices"), &[])? {
            let (id, t) = trust_row(&r)?;
            if let Ok(device) = Uuid::parse_str(&id) {
                out.push(TrustRow { device, ..t });
            }
        }
        Ok(out)
    }

    fn enrolled_devices(&self) -> Result<Vec<EnrolledDevice>, StoreError> {
        self.query(
            "SELECT device, name, public_key, fmps, may_enroll, enrolled_at, revoked_at, last_sync
             FROM hub_devices ORDER BY enrolled_at, device COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| {
            let id: String = get(r, 0)?;
            Ok(EnrolledDevice {
                device: Uuid::parse_str(&id).unwrap_or_default(),
                name: get(r, 1)?,
                public_key: get(r, 2)?,
                fmps: split_fmps(get(r, 3)?),
                may_enroll: get::<i64>(r, 4)? != 0,
                enrolled_at: get(r, 5)?,
                revoked_at: get(r, 6)?,
                last_sync: get(r, 7)?,
            })
        })
        .collect()
    }

    fn upstream(&self) -> Result<Option<Upstream>, StoreError> {
        self.opt(
            "SELECT hub, url, name, public_key, fmps, tls_cert FROM hub_upstream LIMIT 1",
            &[],
        )?
        .map(|r| {
            let id: String = get(&r, 0)?;
            Ok(Upstream {
                hub: Uuid::parse_str(&id).unwrap_or_default(),
                url: get(&r, 1)?,
                name: get(&r, 2)?,
                public_key: get(&r, 3)?,
                fmps: split_fmps(get(&r, 4)?),
                tls_cert: get(&r, 5)?,
            })
        })
        .transpose()
    }

    fn hq_identity(&self) -> Result<Option<Authority>, StoreError> {
        crate::store::hub::hq_identity(self, self.store.identity())
    }

    fn quarantined(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = self.query(
            "SELECT q.hash, q.doc_id, s.fmp, q.reason, q.at, c.author,
               EXISTS (SELECT 1 FROM changes c2 WHERE c2.doc_id = q.doc_id
                 AND c2.origin IS NULL AND c2.seq > (SELECT seq FROM changes WHERE hash = q.hash))
             FROM hub_quarantine q
             LEFT JOIN submissions s ON s.id = q.doc_id
             LEFT JOIN changes c ON c.hash = q.hash ORDER BY q.at, q.doc_id COLLATE \"C\"",
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let h: Vec<u8> = get(&r, 0)?;
            let Ok(hash) = h.try_into() else { continue };
            out.push(QuarantineEntry {
                hash,
                record: get(&r, 1)?,
                fmp: get(&r, 2)?,
                reason: get(&r, 3)?,
                at: get(&r, 4)?,
                author: get(&r, 5)?,
                edited_since: get(&r, 6)?,
            });
        }
        Ok(out)
    }
}

impl HubWrites for PgWriter<'_> {
    fn add_enrollment_code(
        &self,
        h: &[u8],
        fmps: &[String],
        may_enroll: bool,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO hub_codes (hash, fmps, may_enroll, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &h,
                &fmps.join(","),
                &i64::from(may_enroll),
                &now_ms(),
                &expires_at,
            ],
        )?;
        Ok(())
    }

    fn cancel_enrollment_code(&self, h: &[u8]) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM hub_codes WHERE hash = $1 AND used_by IS NULL",
            &[&h],
        )?;
        Ok(n > 0)
    }

    fn use_enrollment_code(&self, h: &[u8], device: Uuid) -> Result<(), StoreError> {
        self.exec(
            "UPDATE hub_codes SET used_by = $2, used_at = $3 WHERE hash = $1",
            &[&h, &device.to_string(), &now_ms()],
        )?;
        Ok(())
    }

    fn enroll_device(
        &self,
        device: Uuid,
        name: &str,
        public_key: &[u8],
        fmps: Option<&[String]>,
        may_enroll: bool,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO hub_devices (device, name, public_key, fmps, may_enroll, enrolled_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (device) DO UPDATE SET name = $2, fmps = $4,
               may_enroll = $5, enrolled_at = $6
             WHERE hub_devices.public_key = $3 AND hub_devices.revoked_at IS NULL",
            &[
                &device.to_string(),
                &name,
                &public_key,
                &join_fmps(fmps),
                &i64::from(may_enroll),
                &now_ms(),
            ],
        )?;
        self.trust_changed()
    }

    fn revoke_device(&self, device: Uuid) -> Result<usize, StoreError> {
        let n = self.exec(
            "UPDATE hub_devices SET revoked_at = $2 WHERE device = $1 AND revoked_at IS NULL",
            &[&device.to_string(), &now_ms()],
        )?;
        self.trust_changed()?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn note_sync(&self, device: Uuid) -> Result<(), StoreError> {
        self.exec(
            "UPDATE hub_devices SET last_sync = $2 WHERE device = $1",
            &[&device.to_string(), &now_ms()],
        )?;
        Ok(())
    }

    fn set_upstream(&self, up: &Upstream) -> Result<(), StoreError> {
        self.exec("DELETE FROM hub_upstream", &[])?;
        self.exec(
            "INSERT INTO hub_upstream (hub, url, name, public_key, fmps, tls_cert, joined_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &up.hub.to_string(),
                &up.url,
                &up.name,
                &up.public_key,
                &join_fmps(up.fmps.as_deref()),
                &up.tls_cert,
                &now_ms(),
            ],
        )?;
        self.trust_changed()
    }

    fn quarantine<'s>(
        &self,
        peer: Uuid,
        refused: impl IntoIterator<Item = ([u8; 32], &'s str)>,
    ) -> Result<(), StoreError> {
        for (h, reason) in refused {
            let doc: Option<String> = self
                .opt("SELECT doc_id FROM changes WHERE hash = $1", &[&&h[..]])?
                .map(|r| get(&r, 0))
                .transpose()?;
            self.exec(
                "INSERT INTO hub_quarantine (hash, doc_id, peer, reason, at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE SET doc_id = excluded.doc_id,
                   peer = excluded.peer, reason = excluded.reason, at = excluded.at",
                &[
                    &&h[..],
                    &doc.unwrap_or_default(),
                    &peer.to_string(),
                    &reason,
                    &now_ms(),
                ],
            )?;
        }
        Ok(())
    }

    fn unquarantine(&self, hashes: &[[u8; 32]]) -> Result<(), StoreError> {
        let list: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        self.exec("DELETE FROM hub_quarantine WHERE hash = ANY($1)", &[&list])?;
        Ok(())
    }
}

impl EnrollmentReads for PgReader<'_> {
    fn upstream_may_enroll(&self) -> Result<Option<bool>, StoreError> {
        Ok(self.meta("upstream_may_enroll")?.map(|v| v == "1"))
    }

    fn devices_matching(&self, who: &str) -> Result<Vec<DeviceMatch>, StoreError> {
        self.query(
            "SELECT device, name, revoked_at IS NOT NULL FROM hub_devices
             WHERE device = $1 OR name = $1 ORDER BY enrolled_at, device COLLATE \"C\"",
            &[&who],
        )?
        .iter()
        .map(|r| {
            Ok(DeviceMatch {
                device: get(r, 0)?,
                name: get(r, 1)?,
                revoked: get(r, 2)?,
            })
        })
        .collect()
    }

    fn served_at(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .meta("hub_served_at")?
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default())
    }

    fn active_named(&self, name: &str, except: Uuid) -> Result<Vec<DeviceMatch>, StoreError> {
        Ok(self
            .devices_matching(name)?
            .into_iter()
            .filter(|d| d.name == name && !d.revoked && d.device != except.to_string())
            .collect())
    }
}

impl EnrollmentWrites for PgWriter<'_> {
    fn set_upstream_may_enroll(&self, may_enroll: bool) -> Result<(), StoreError> {
        self.set_meta("upstream_may_enroll", if may_enroll { "1" } else { "0" })
    }

    fn set_served_at(&self, urls: &[String]) -> Result<(), StoreError> {
        self.set_meta("hub_served_at", &urls.join("\n"))
    }

    fn reinstate_device(&self, device: Uuid) -> Result<usize, StoreError> {
        let n = self.exec(
            "UPDATE hub_devices SET revoked_at = NULL WHERE device = $1 AND revoked_at IS NOT NULL",
            &[&device.to_string()],
        )?;
        self.trust_changed()?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl NonceReads for PgReader<'_> {
    fn nonce_seen(&self, device: Uuid, nonce: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM request_nonces WHERE device = $1 AND nonce = $2",
            &[&device.to_string(), &nonce],
        )
    }
}

impl NonceWrites for PgWriter<'_> {
    fn remember_nonce(
        &self,
        device: Uuid,
        nonce: &str,
        time: i64,
        forget_before: i64,
    ) -> Result<bool, StoreError> {
        // The primary key (device, nonce) keeps one: a replay to another
        // process on the same database is refused as well.
        let n = self.exec(
            "INSERT INTO request_nonces (device, nonce, time) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&device.to_string(), &nonce, &time],
        )?;
        self.exec(
            "DELETE FROM request_nonces WHERE time < $1",
            &[&forget_before],
        )?;
        Ok(n == 1)
    }
}

// ------------------------------------------------------------ counts, report

impl CountReads for PgReader<'_> {
    fn month_counts(
        &self,
        month: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<MonthCounts, StoreError> {
        let rows = self.query(
            "SELECT fmp, coalesce(review_status, ''), count(*) FROM submissions
             WHERE deleted = 0 AND month = $1 GROUP BY fmp, review_status",
            &[&month],
        )?;
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = MonthCounts::default();
        for r in rows {
            let fmp: String = get(&r, 0)?;
            if !keep(&fmp) {
                continue;
            }
            let n = u64::try_from(get::<i64>(&r, 2)?).unwrap_or(0);
            out.total += n;
            *by.entry(get(&r, 1)?).or_default() += n;
        }
        out.approved = by.get("approved").copied().unwrap_or(0);
        out.rejected = by.get("rejected").copied().unwrap_or(0);
        out.has_issues = by.get("has_issues").copied().unwrap_or(0);
        Ok(out)
    }
}

fn count_at(r: &Row, i: usize) -> Result<u64, StoreError> {
    let v: Option<i64> = get(r, i)?;
    Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

fn direction_at(r: &Row, i: usize) -> Result<Option<crate::model::Direction>, StoreError> {
    let s: String = get(r, i)?;
    Ok(s.parse().ok())
}

fn key_group(r: &Row) -> Result<KeyGroup, StoreError> {
    Ok(KeyGroup {
        month: get(r, 0)?,
        fmp: get(r, 1)?,
        key: get(r, 2)?,
        individuals: count_at(r, 3)?,
    })
}

/// `GROUP BY` and the same `ORDER BY` (text in byte order, as SQLite
/// groups): the report reads groups in SQLite's order.
fn grouped(cols: &[&str]) -> String {
    let order: Vec<String> = cols.iter().map(|c| format!("{c} COLLATE \"C\"")).collect();
    format!("GROUP BY {} ORDER BY {}", cols.join(", "), order.join(", "))
}

impl ReportReads for PgReader<'_> {
    fn report_aggregates(
        &self,
        month: &str,
        previous: &str,
        counted: Counted,
    ) -> Result<ReportAggregates, StoreError> {
        let st = counted.clause();
        let base = format!("FROM submissions s WHERE s.month IN ($1, $2) AND {st}");
        let both: [P<'_>; 2] = [&month, &previous];
        let by_direction = self
            .query(
                &format!(
                    "SELECT s.month, s.fmp, s.direction, SUM(s.total)::bigint,
                        SUM(s.adult_female)::bigint, SUM(s.adult_male)::bigint,
                        SUM(s.minor_female)::bigint, SUM(s.minor_male)::bigint,
                        SUM(s.under5)::bigint, SUM(s.elderly)::bigint, SUM(s.disability)::bigint,
                        SUM(s.pregnant)::bigint, SUM(COALESCE(s.unaccompanied, 0))::bigint
                     {base} {}",
                    grouped(&["s.month", "s.fmp", "s.direction"])
                ),
                &both,
            )?
            .iter()
            .map(|r| {
                Ok(DirectionGroup {
                    month: get(r, 0)?,
                    fmp: get(r, 1)?,
                    direction: direction_at(r, 2)?,
                    total: count_at(r, 3)?,
                    adult_female: count_at(r, 4)?,
                    adult_male: count_at(r, 5)?,
                    minor_female: count_at(r, 6)?,
                    minor_male: count_at(r, 7)?,
                    under5: count_at(r, 8)?,
                    elderly: count_at(r, 9)?,
                    disability: count_at(r, 10)?,
                    pregnant: count_at(r, 11)?,
                    unaccompanied: count_at(r, 12)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let days = self
            .query(
                &format!(
                    "SELECT s.month, s.fmp, s.day {base} {}",
                    grouped(&["s.month", "s.fmp", "s.day"])
                ),
                &both,
            )?
            .iter()
            .map(|r| {
                Ok(DayGroup {
                    month: get(r, 0)?,
                    fmp: get(r, 1)?,
                    day: get(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let by_key = |col: &str, extra: &str| -> Result<Vec<KeyGroup>, StoreError> {
            self.query(
                &format!(
                    "SELECT s.month, s.fmp, {col}, SUM(s.total)::bigint {base} {extra} {}",
                    grouped(&["s.month", "s.fmp", col])
                ),
                &both,
            )?
            .iter()
            .map(key_group)
            .collect()
        };
        let next_country = by_key("s.next_country", "")?;
        let movement_type = by_key("s.movement_type", "")?;
        let final_country_outgoing = by_key("s.final_country", "AND s.direction = 'outgoing'")?;
        let by_movement = |col: &str| -> Result<Vec<MovementGroup>, StoreError> {
            self.query(
                &format!(
                    "SELECT s.fmp, s.movement_type, {col}, SUM(s.total)::bigint
                     FROM submissions s WHERE s.month = $1 AND {st} {}",
                    grouped(&["s.fmp", "s.movement_type", col])
                ),
                &[&month],
            )?
            .iter()
            .map(|r| {
                Ok(MovementGroup {
                    fmp: get(r, 0)?,
                    movement_type: get(r, 1)?,
                    country: get(r, 2)?,
                    individuals: count_at(r, 3)?,
                })
            })
            .collect()
        };
        let departure_by_movement = by_movement("s.departure_country")?;
        let next_by_movement = by_movement("s.next_country")?;
        let nationalities = self
            .query(
                &format!(
                    "SELECT s.month, s.fmp, n.country, SUM(n.count)::bigint
                     FROM submissions s JOIN submission_nationalities n ON n.submission_id = s.id
                     WHERE s.month IN ($1, $2) AND {st} {}",
                    grouped(&["s.month", "s.fmp", "n.country"])
                ),
                &both,
            )?
            .iter()
            .map(key_group)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let series = self
            .query(
                &format!(
                    "SELECT s.month, s.fmp, s.direction, SUM(s.total)::bigint FROM submissions s
                     WHERE s.month <= $1 AND {st} {}",
                    grouped(&["s.month", "s.fmp", "s.direction"])
                ),
                &[&month],
            )?
            .iter()
            .map(|r| {
                Ok(SeriesGroup {
                    month: get(r, 0)?,
                    fmp: get(r, 1)?,
                    direction: direction_at(r, 2)?,
                    individuals: count_at(r, 3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ReportAggregates {
            by_direction,
            days,
            next_country,
            movement_type,
            final_country_outgoing,
            nationalities,
            departure_by_movement,
            next_by_movement,
            series,
        })
    }

    fn records_by_month(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.query(
            "SELECT month, count(*) FROM submissions WHERE deleted = 0
             GROUP BY month ORDER BY month COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, count_at(r, 1)?)))
        .collect()
    }

    fn for_each_export_row<E>(
        &self,
        sel: &ExportSelection,
        mut f: impl FnMut(&ExportRow) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let mut q = EXPORT_SELECT.to_string();
        let mut args: Vec<String> = Vec::new();
        let mut add = |q: &mut String, cond: &str, v: String| {
            args.push(v);
            q.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(from) = sel.from {
            add(&mut q, "s.day >=", from.format("%Y-%m-%d").to_string());
        }
        if let Some(to) = sel.to {
            add(&mut q, "s.day <=", to.format("%Y-%m-%d").to_string());
        }
        if let Some(fmp) = &sel.fmp {
            add(&mut q, "s.fmp =", fmp.clone());
        }
        if sel.exclude_rejected {
            q.push_str(" AND (s.review_status IS NULL OR s.review_status <> 'rejected')");
        }
        q.push_str(" ORDER BY s.observed_at COLLATE \"C\", s.id COLLATE \"C\"");
        // Streamed: one row in memory at a time.
        let mut client = self.c.borrow_mut();
        let mut rows = client
            .query_raw(&q, args.iter())
            .map_err(|e| E::from(pg_err(self.url, e)))?;
        let mut n = 0u64;
        let mut row = ExportRow::default();
        while let Some(r) = rows.next().map_err(|e| E::from(pg_err(self.url, e)))? {
            read_export_row(&r, &mut row)?;
            f(&row)?;
            n += 1;
        }
        Ok(n)
    }
}

const EXPORT_SELECT: &str =
    "SELECT s.id, s.form, s.form_version, s.fmp, s.observed_at, s.day, s.direction,
    s.transport, s.movement_type, s.departure_country, s.departure_place, s.next_country,
    s.next_place, s.final_country, s.final_place, s.adult_male, s.adult_female, s.minor_male,
    s.minor_female, s.total, s.under5, s.elderly, s.disability, s.pregnant, s.unaccompanied,
    (SELECT string_agg(n.country || ':' || n.count, ';' ORDER BY n.country COLLATE \"C\")
       FROM submission_nationalities n WHERE n.submission_id = s.id),
    s.notes, s.review_status, s.review_comment
  FROM submissions s WHERE s.deleted = 0";

fn read_export_row(r: &Row, out: &mut ExportRow) -> Result<(), StoreError> {
    *out = ExportRow {
        id: get(r, 0)?,
        form: get(r, 1)?,
        form_version: get(r, 2)?,
        fmp: get(r, 3)?,
        observed_at: get(r, 4)?,
        day: get(r, 5)?,
        direction: get(r, 6)?,
        transport: get(r, 7)?,
        movement_type: get(r, 8)?,
        departure_country: get(r, 9)?,
        departure_place: get(r, 10)?,
        next_country: get(r, 11)?,
        next_place: get(r, 12)?,
        final_country: get(r, 13)?,
        final_place: get(r, 14)?,
        adult_male: get(r, 15)?,
        adult_female: get(r, 16)?,
        minor_male: get(r, 17)?,
        minor_female: get(r, 18)?,
        total: get(r, 19)?,
        under5: get(r, 20)?,
        elderly: get(r, 21)?,
        disability: get(r, 22)?,
        pregnant: get(r, 23)?,
        unaccompanied: get(r, 24)?,
        nationalities: Vec::new(),
        notes: get(r, 26)?,
        review_status: get(r, 27)?,
        review_comment: get(r, 28)?,
    };
    if let Some(s) = get::<Option<String>>(r, 25)? {
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let bad = || StoreError::Corrupt {
                what: format!("nationalities that do not read: `{part}`"),
            };
            let (c, n) = part.split_once(':').ok_or_else(bad)?;
            let n: i64 = n.parse().map_err(|_| bad())?;
            out.nationalities.push((c.to_string(), n));
        }
    }
    Ok(())
}
