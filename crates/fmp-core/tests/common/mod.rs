//! What the store's test suites share.

use fmp_core::store::{Filter, Store};

/// Everything a store holds of its records, as text: the list with
/// tombstones, and each record's state and history (for before/after
/// equality: nothing stored changed).
pub fn contents(store: &Store) -> String {
    let list = store
        .list(&Filter {
            include_deleted: true,
            ..Filter::default()
        })
        .expect("list");
    let mut s = serde_json::to_string(&list).expect("json");
    for item in &list {
        let id = item.submission.id.expect("id");
        s.push_str(&serde_json::to_string(&store.get(id).expect("get")).expect("json"));
        s.push_str(&serde_json::to_string(&store.history(id).expect("history")).expect("json"));
    }
    s
}
