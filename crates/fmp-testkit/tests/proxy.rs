//! The fault proxy does what it says: a byte cut delivers exactly that
//! many bytes then closes; the same seed cuts at the same points; a link
//! drop cuts open connections; a new upstream takes new connections. Made
//! silent, a cut delivers its bytes and then nothing, not even EOF; a drop
//! freezes open connections and holds new ones; both are released once
//! the client closes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

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

/// A server that echoes what it reads; reports each connection it accepts
/// and each that reaches EOF.
fn echo() -> (String, mpsc::Receiver<&'static str>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let tx = tx.clone();
            let _ = tx.send("accepted");
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = tx.send("closed");
            });
        }
    });
    (addr, rx)
}

/// Reads until the peer is silent for `quiet`: the bytes, and whether the
/// read ended by EOF (`true`) or by silence (`false`).
fn read_until_quiet(c: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    c.set_read_timeout(Some(quiet)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false);
            }
            // A reset is an end the client hears at once, like EOF.
            Err(_) => return (got, true),
        }
    }
}

/// Polls `f` every 20 ms, up to 10 s, until it holds.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    (0..500).any(|_| {
        let ok = f();
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    })
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

#[test]
fn a_silent_cut_delivers_the_same_bytes_and_then_nothing_not_even_eof() {
    let up = source(100_000);
    let faults = Faults::seeded(7).cut_after(1_000..=20_000, Some(1));
    let closing = FaultProxy::start(&up, faults.clone()).unwrap();
    let at = received(&closing);

    let p = FaultProxy::start(&up, faults.silent()).unwrap();
    let mut c = TcpStream::connect(p.addr).unwrap();
    let (got, eof) = read_until_quiet(&mut c, Duration::from_millis(1_500));
    assert_eq!(
        got.len(),
        at,
        "the silent cut falls where the closing one does"
    );
    assert!(!eof, "no EOF after a silent cut: {}", p.describe());
    assert_eq!(p.byte_cuts(), 1);
    assert_eq!(p.silent_freezes(), 1);
    assert_eq!(p.held(), 1, "{}", p.describe());
    // The client still writes into the frozen connection without an error.
    c.write_all(b"anyone there?").unwrap();
    // It gives up: the proxy lets the connection go.
    drop(c);
    assert!(eventually(|| p.held() == 0), "{}", p.describe());
    // Connections past the faulty ones are clean.
    assert_eq!(received(&p), 100_000);
}

#[test]
fn a_silent_link_drop_freezes_open_connections_and_holds_new_ones() {
    let (up, events) = echo();
    // The link drops 2 s in and stays down far longer than the test.
    let p = FaultProxy::start(
        &up,
        Faults::seeded(5)
            .drops(2_000..=2_000, 600_000..=600_000)
            .silent(),
    )
    .unwrap();
    let mut open = TcpStream::connect(p.addr).unwrap();
    open.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    open.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping", "the link works before the drop");
    assert_eq!(events.recv().unwrap(), "accepted");

    assert!(eventually(|| p.drops() >= 1), "{}", p.describe());
    open.write_all(b"pong").unwrap();
    let (got, eof) = read_until_quiet(&mut open, Duration::from_millis(1_500));
    assert!(got.is_empty() && !eof, "frozen, not closed: {got:?} {eof}");

    // A connection made while the link is down is held: no answer, no EOF,
    // and nothing reaches the server.
    let mut late = TcpStream::connect(p.addr).unwrap();
    late.write_all(b"hello").unwrap();
    let (got, eof) = read_until_quiet(&mut late, Duration::from_millis(1_500));
    assert!(got.is_empty() && !eof, "held, not refused: {got:?} {eof}");
    assert!(
        events.try_recv().is_err(),
        "the server heard nothing since the drop"
    );
    assert_eq!(p.silent_freezes(), 2, "{}", p.describe());
    assert_eq!(p.held(), 2);

    // Both clients give up: both connections go, and so does the frozen
    // one's upstream socket.
    drop(open);
    drop(late);
    assert!(eventually(|| p.held() == 0), "{}", p.describe());
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)),
        Ok("closed"),
        "the upstream side of a frozen connection is closed once released"
    );
}
