//! Several writers on one PostgreSQL database (ADR 0006): hubs opened from
//! copies of one store directory (as several `fmp serve` processes behind
//! a load balancer) take concurrent pushes that edit the same records, and
//! end holding what one replica that took every push in turn holds.

mod common;

use std::path::Path;

use common::*;
use fmp_core::store::Store;
use fmp_core::store::testing::POSTGRES;
use fmp_sync::sync_in_memory;

/// Copies a store directory (the device key and the file naming the
/// database): a second process's view of the same store.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn hubs_on_one_database_taking_concurrent_pushes_end_as_a_serial_apply() {
    if (POSTGRES.skip)("hubs_on_one_database_taking_concurrent_pushes_end_as_a_serial_apply") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let hub_dir = tmp.path().join("hub");
    let hub = (POSTGRES.init)(&hub_dir, "hub").expect("init hub");
    // Three more "processes" of the same hub: each its own Store (its own
    // connections), opened from a copy of the directory.
    let mut hubs: Vec<Store> = vec![hub];
    for i in 1..4 {
        let dir = tmp.path().join(format!("hub{i}"));
        copy_dir(&hub_dir, &dir);
        hubs.push(Store::open(&dir).expect("open copy"));
    }
    assert!(
        hubs.iter()
            .all(|h| h.identity().device_id == hubs[0].identity().device_id)
    );
    let serial = replica("serial");
    let phones: Vec<Replica> = (0..4).map(|i| replica(&format!("phone{i}"))).collect();
    let hub_view = Replica {
        dir: tempfile::tempdir().expect("tmp"),
        store: Store::open(&hub_dir).expect("open"),
    };
    let mut all: Vec<&Replica> = phones.iter().collect();
    all.extend([&serial, &hub_view]);
    let trust = trust_all(&all);
    let ids: Vec<_> = (0..6)
        .map(|n| {
            phones[0]
                .store
                .record(submission("ML-GOG", n))
                .expect("record")
        })
        .collect();
    for p in &phones[1..] {
        sync_in_memory(&phones[0].store, &trust, &p.store, &trust, 65536).expect("share");
    }
    for round in 0..4 {
        for (i, p) in phones.iter().enumerate() {
            for id in &ids {
                p.store
                    .edit(
                        *id,
                        &serde_json::json!({"notes": format!("round {round} by {i}")}),
                    )
                    .expect("edit");
            }
        }
        // Each phone pushes to another process of the hub, all at once.
        std::thread::scope(|s| {
            for (p, h) in phones.iter().zip(&hubs) {
                let trust = &trust;
                s.spawn(move || {
                    sync_in_memory(&p.store, trust, h, trust, 4096).expect("push");
                });
            }
        });
    }
    for p in &phones {
        sync_in_memory(&p.store, &trust, &serial.store, &trust, 65536).expect("serial");
    }
    for (p, h) in phones.iter().zip(hubs.iter().rev()) {
        sync_in_memory(&p.store, &trust, h, &trust, 65536).expect("settle");
    }
    let want = dump(&serial.store);
    for h in &hubs {
        assert_eq!(dump(h), want);
    }
    // Every change landed once: the log holds each hash once.
    let logged = testing::changes(&hubs[0]).expect("changes");
    let mut hashes: Vec<_> = logged.iter().map(|c| c.hash).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), logged.len());
    assert_eq!(logged.len(), want.changes.len());
}
