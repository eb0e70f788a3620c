//! The benchmark suite parser on arbitrary text: an error naming the entry
//! or a valid suite, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(suite) = tuneloop_eval::Suite::parse(text, "fuzz.json") {
        // A suite that parses is valid, and scoring with it works.
        assert!(suite.validate("fuzz.json").is_ok());
        for case in &suite.cases {
            let _ = case.scorer.score_text(text);
        }
    }
});
