//! Runtime-configuration files of arbitrary content: an error or a store,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("runtime.json");
    std::fs::write(&path, data).expect("a temporary file");
    if let Ok(store) = tuneloop_config::RuntimeConfigStore::open(&path) {
        let _ = store.get();
    }
});
