//! Snapshots of the wire types (STYLE.md §9): a change in the encoding
//! breaks this test before it breaks a phone in the field. Each snapshot
//! holds the postcard body in hex (what is zstd-compressed after the
//! version and type bytes) and the decoded value.

use fmp_sync::Certificate;
use fmp_sync::reconcile::{Bound, Mode, Range};
use fmp_sync::wire::{Batch, DocRef, HashRef, Refusal, Request, Response, WireBundle, WireChange};
use uuid::Uuid;

fn u(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn batch() -> Batch {
    Batch {
        certs: vec![Certificate {
            device: u(1),
            public_key: vec![0xaa; 32],
            fmps: Some(vec!["ML-HER".into()]),
            issuer: u(2),
            sig: vec![0xbb; 64],
            role: Some(fmp_sync::Role::Enumerator),
        }],
        bundles: vec![WireBundle {
            author: u(1),
            hashes: vec![HashRef::Here(0), HashRef::Hash([0xcc; 32])],
            sig: vec![0xdd; 64],
        }],
        changes: vec![
            WireChange {
                doc: DocRef::Submission(u(9)),
                bytes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            },
            WireChange {
                doc: DocRef::InChange,
                bytes: vec![5],
            },
            WireChange {
                doc: DocRef::Dep,
                bytes: vec![6],
            },
            WireChange {
                doc: DocRef::Other {
                    kind: "registry".into(),
                    id: "mali".into(),
                },
                bytes: vec![4],
            },
        ],
    }
}

fn snapshot<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    let body = postcard::to_stdvec(v).expect("postcard");
    format!("{}\n{v:#?}", hex::encode(body))
}

#[test]
fn request_encoding() {
    let req = Request {
        from: u(1),
        to: u(2),
        push: batch(),
        push_upto: 42,
        pull_after: Some(7),
        max_bytes: 65536,
        want: vec![[0xee; 32]],
        reconcile: Some(vec![
            Range {
                upper: Bound::Key {
                    time: 1_592_127_000_000,
                    prefix: vec![0x12],
                },
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::End,
                mode: Mode::Fingerprint {
                    fp: [3; 16],
                    count: 10_000,
                },
            },
        ]),
        push_after: 40,
        log_end: 45,
        restored: true,
    };
    insta::assert_snapshot!(snapshot(&req));
    let bytes = req.encode().expect("encode");
    assert_eq!(&bytes[..2], &[1, b'Q']);
    assert_eq!(Request::decode(&bytes).expect("decode"), req);
}

#[test]
fn response_encoding() {
    let resp = Response {
        from: u(2),
        accepted: 3,
        refused: vec![Refusal {
            hash: [0x11; 32],
            reason: "device may not write ML-GOG".into(),
        }],
        pull: batch(),
        next_cursor: 99,
        more: true,
        log_end: 120,
        reconcile: Some(vec![Range {
            upper: Bound::End,
            mode: Mode::Ids(vec![[0x22; 32]]),
        }]),
        pulled_yours: 45,
        acked_yours: 97,
    };
    insta::assert_snapshot!(snapshot(&resp));
    let bytes = resp.encode().expect("encode");
    assert_eq!(&bytes[..2], &[1, b'R']);
    assert_eq!(Response::decode(&bytes).expect("decode"), resp);
}

#[test]
fn noop_request_is_tiny() {
    let req = Request {
        from: u(1),
        to: u(2),
        push: Batch::default(),
        push_upto: 10_000,
        pull_after: Some(10_150),
        max_bytes: 65536,
        want: vec![],
        reconcile: None,
        push_after: 10_000,
        log_end: 10_000,
        restored: false,
    };
    insta::assert_snapshot!(snapshot(&req));
    assert!(req.encode().expect("encode").len() < 100);
}
