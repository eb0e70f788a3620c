//! The OPE reader (`tuneloop ope --input`) on arbitrary bytes, plain and
//! gzip: an error or rounds, never a panic, never more than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    // The first byte picks the file's name, and so its decoding.
    let name = if first & 1 == 0 { "rounds.jsonl" } else { "rounds.jsonl.gz" };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("a temporary file");
    // A limit a small input can reach: rounds x actions.
    let _ = tuneloop_counterfactual::read_jsonl_limited(&path, 1 << 16);
});
