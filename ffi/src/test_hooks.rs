//! TEST-ONLY exports, compiled with the `test-hooks` feature for the JVM suite
//! and never into the Android library: they provoke failures the real API
//! cannot, to prove the binding turns them into Kotlin exceptions.

/// Panics with `message`. Kotlin must receive `InternalException`, and the
/// JVM (and every open store) must survive.
#[uniffi::export]
pub fn debug_panic(message: String) {
    panic!("{message}");
}
