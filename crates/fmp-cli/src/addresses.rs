//! The addresses a hub listening on every interface can be reached at, so
//! `fmp serve --listen 0.0.0.0:8080` tells the supervisor what to give the
//! phones rather than `http://0.0.0.0:8080`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

/// The machine's own IPv4 addresses other than loopback (Linux: the
/// `/32 host LOCAL` entries of `/proc/net/fib_trie`; none elsewhere).
pub fn local_ipv4() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| parse_fib_trie(&t))
        .unwrap_or_default()
}

/// The non-loopback addresses a `fib_trie` text names as this host's own.
fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut found = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(a) = last.take().filter(|a| !a.is_loopback())
        {
            found.insert(a);
        }
    }
    found.into_iter().collect()
}

/// What `fmp serve` says of where phones can reach it, when it listens on
/// an unspecified address (`0.0.0.0`); `None` for a specific address.
/// `own` is only called then.
pub fn reach_line(
    scheme: &str,
    listening: SocketAddr,
    own: impl FnOnce() -> Vec<Ipv4Addr>,
) -> Option<String> {
    if !listening.ip().is_unspecified() {
        return None;
    }
    let own = own();
    let port = listening.port();
    Some(if own.is_empty() {
        "listening on every interface, but this machine has no network address \
         other than loopback: phones cannot reach it until it joins a network"
            .to_string()
    } else {
        let urls: Vec<String> = own
            .iter()
            .map(|a| format!("{scheme}://{a}:{port}"))
            .collect();
        format!("phones can reach this hub at {}", urls.join(" or "))
    })
}

/// The URLs phones can use for a hub listening at `listening`: the host's
/// own addresses `own` for an unspecified address, else that address.
pub fn phone_urls(scheme: &str, listening: SocketAddr, own: &[Ipv4Addr]) -> Vec<String> {
    if listening.ip().is_unspecified() {
        own.iter()
            .map(|a| format!("{scheme}://{a}:{}", listening.port()))
            .collect()
    } else {
        vec![format!("{scheme}://{listening}")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 10.0.0.0/24 2 0 2
           |-- 10.0.0.0
              /24 link UNICAST
           |-- 10.0.0.2
              /32 host LOCAL
        |-- 10.0.0.255
           /32 link BROADCAST
Local:
     +-- 192.168.1.0/24 2 0 2
           |-- 192.168.1.7
              /32 host LOCAL
           |-- 10.0.0.2
              /32 host LOCAL
";

    #[test]
    fn the_host_s_own_addresses_are_read_without_loopback_or_broadcast() {
        assert_eq!(
            parse_fib_trie(TRIE),
            [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(192, 168, 1, 7)]
        );
        assert!(parse_fib_trie("").is_empty());
        assert!(parse_fib_trie("|-- not an address\n/32 host LOCAL").is_empty());
    }

    #[test]
    fn an_unspecified_listen_address_is_told_as_the_urls_phones_can_use() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let own = parse_fib_trie(TRIE);
        assert_eq!(
            reach_line("http", any, || own.clone()).unwrap(),
            "phones can reach this hub at http://10.0.0.2:8080 or http://192.168.1.7:8080"
        );
        assert!(
            reach_line("https", any, Vec::new)
                .unwrap()
                .contains("no network address")
        );
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(reach_line("http", loopback, || unreachable!()), None);
        assert_eq!(
            phone_urls("https", any, &own),
            ["https://10.0.0.2:8080", "https://192.168.1.7:8080"]
        );
        assert_eq!(
            phone_urls("http", loopback, &own),
            ["http://127.0.0.1:8080"]
        );
    }
}
