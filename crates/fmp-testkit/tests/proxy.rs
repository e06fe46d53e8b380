//! The fault proxy does what it says: a byte cut delivers exactly that
//! many bytes then closes; the same seed cuts at the same points; a link
//! drop cuts open connections; a new upstream takes new connections.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use fmp_testkit::proxy::{FaultProxy, Faults};

/// A server that swallows everything and answers nothing.
fn sink() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A server that sends `n` bytes and closes.
fn source(n: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let _ = c.write_all(&vec![7u8; n]);
        }
    });
    addr
}

fn received(proxy: &FaultProxy) -> usize {
    let mut c = TcpStream::connect(proxy.addr).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    got.len()
}

#[test]
fn a_byte_cut_delivers_exactly_that_many_bytes_and_replays_by_seed() {
    let up = source(100_000);
    let cuts = |seed| {
        let p =
            FaultProxy::start(&up, Faults::seeded(seed).cut_after(1_000..=20_000, None)).unwrap();
        let got: Vec<usize> = (0..5).map(|_| received(&p)).collect();
        assert_eq!(p.byte_cuts(), 5, "{}", p.describe());
        got
    };
    let a = cuts(42);
    assert!(a.iter().all(|n| (1_000..=20_000).contains(n)), "{a:?}");
    assert_eq!(a, cuts(42), "the same seed cuts at the same bytes");
    assert_ne!(a, cuts(43), "another seed cuts elsewhere");
}

#[test]
fn only_the_first_connections_are_cut_when_asked() {
    let up = source(10_000);
    let p = FaultProxy::start(&up, Faults::seeded(1).cut_after(500..=500, Some(2))).unwrap();
    let got: Vec<usize> = (0..4).map(|_| received(&p)).collect();
    assert_eq!(got, vec![500, 500, 10_000, 10_000]);
}

#[test]
fn a_link_drop_cuts_open_connections_and_a_new_upstream_takes_new_ones() {
    let p = FaultProxy::start(&sink(), Faults::seeded(3).drops(200..=200, 100..=100)).unwrap();
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    // The sink never answers: only the drop ends this read.
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert!(p.drops() >= 1);
    p.set_upstream(&source(3));
    let mut n = 0;
    for _ in 0..50 {
        n = received(&p);
        if n == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        n,
        3,
        "new connections reach the new upstream: {}",
        p.describe()
    );
}
