//! libFuzzer target: `fmp_testkit::fuzz::wire`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fmp_testkit::fuzz::wire(data));
