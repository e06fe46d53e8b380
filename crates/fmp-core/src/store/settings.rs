//! The store's settings in `meta`: the FMPs it is enrolled for (set when it
//! joins a hub), and the keyed values other areas keep there (the link
//! learnt per peer, a peer's refusal, HQ's pin).

use rusqlite::{Connection, OptionalExtension};

use super::ops::{SettingsReads, SettingsWrites};
use super::{StoreError, access::SqlReader, access::SqlWriter};

impl SettingsReads for SqlReader<'_> {
    fn enrolled_fmps(&self) -> Result<Option<Vec<String>>, StoreError> {
        enrolled_fmps(self.conn).map_err(self.sql())
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .map_err(self.sql())
    }
}

impl SettingsWrites for SqlWriter<'_> {
    fn set_enrolled_fmps(&self, fmps: Option<&[String]>) -> Result<(), StoreError> {
        match fmps {
            Some(list) => self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('enrolled_fmps', ?1)",
                [list.join(",")],
            ),
            None => self
                .conn
                .execute("DELETE FROM meta WHERE key = 'enrolled_fmps'", []),
        }
        .map_err(self.sql())?;
        Ok(())
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map_err(self.sql())?;
        Ok(())
    }
}

/// The FMPs this store is enrolled for (`meta.enrolled_fmps`, comma-joined);
/// `None`: not restricted.
fn enrolled_fmps(conn: &Connection) -> rusqlite::Result<Option<Vec<String>>> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'enrolled_fmps'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(v.map(|s| {
        s.split(',')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    }))
}
