//! fmp-testkit: field conditions for fmp's tests, fuzzers and benchmarks.
//! Test support only; nothing here ships in `fmp`.
//!
//! - `proxy.rs`: [`proxy::FaultProxy`], a seeded fault-injecting TCP proxy
//!   (latency, bandwidth, stalls, cuts after N bytes, link drops on a
//!   schedule, a down link, cuts and drops that close or go silent, a
//!   switchable upstream).
//! - `netns.rs`: bandwidth shaping with network namespaces and the `tbf`
//!   qdisc, where `ip netns` is permitted (skipped cleanly elsewhere).
//! - `fuzz.rs`: the fuzz entry points, shared by `fuzz/` (libFuzzer) and
//!   the regression-corpus test that CI runs on stable.

pub mod fuzz;
pub mod netns;
pub mod proxy;
