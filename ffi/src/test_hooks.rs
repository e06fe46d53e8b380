//! TEST-ONLY exports, compiled with the `test-hooks` feature for the JVM suite
//! and never into the Android library: they provoke failures the real API
//! cannot, to prove the binding turns them into Kotlin exceptions.

/// Panics with `message`. Kotlin must receive `InternalException`, and the
/// JVM (and every open store) must survive. The panic message Rust prints
/// says it is expected, so a passing run's log does not alarm its reader.
#[uniffi::export]
pub fn debug_panic(message: String) {
    panic!(
        "EXPECTED panic from the test hook debug_panic (the JVM suite checks it arrives as InternalException): {message}"
    );
}
