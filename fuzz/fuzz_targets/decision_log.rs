//! The decision-log reader (`report`, `evaluate`, the offline evaluator) on
//! arbitrary bytes: an error or records, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("decisions.jsonl");
    std::fs::write(&path, data).expect("a temporary file");
    if let Ok(contents) = tuneloop_counterfactual::read_log(&path) {
        for record in &contents.records {
            let _ = record.validate();
        }
    }
});
