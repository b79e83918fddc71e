//! A shared library that is not a rinseq plugin (for the loader's error test).

/// An exported symbol, so the library is not empty.
#[no_mangle]
pub extern "C" fn rinseq_test_not_a_plugin() -> u32 {
    42
}
