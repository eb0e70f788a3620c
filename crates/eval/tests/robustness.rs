//! What a model or a file says cannot make scoring or reply parsing panic.

use proptest::prelude::*;
use tuneloop_eval::scorer::{extract_json, last_number, parse_grade};
use tuneloop_eval::{Scorer, Suite, parse_interview};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn replies_and_answers_never_panic(text in "\\PC{0,200}") {
        let _ = parse_interview(&text);
        let _ = parse_grade(&text);
        let _ = last_number(&text);
        let _ = extract_json(&text);
        for c in &Suite::standard().cases {
            if let Ok(q) = c.scorer.score_text(&text) {
                prop_assert!((0.0..=1.0).contains(&q));
            }
        }
    }

    #[test]
    fn headings_in_any_surrounding_text_are_found(
        before in "\\PC{0,40}",
        prompt in "[a-zA-Z ]{1,30}",
    ) {
        let reply = format!("{before}\nImproved prompt: {prompt}\nReasoning: because");
        let (_, p) = parse_interview(&reply);
        if !before.contains("<prompt>") && !before.to_ascii_lowercase().contains("improved prompt:") {
            prop_assert_eq!(p.as_deref(), Some(prompt.trim()).filter(|s| !s.is_empty()));
        }
    }

    #[test]
    fn suite_files_never_panic(text in "\\PC{0,300}") {
        let _ = Suite::parse(&text, "fuzz.json");
    }
}

#[test]
fn a_pattern_beyond_the_regex_size_limit_is_refused_not_fatal() {
    // Unicode \w repeated a million times compiles to far more than the
    // regex crate's default size limit: an error naming the pattern.
    let s = Scorer::Regex {
        pattern: "(\\w{1000}){1000}".into(),
    };
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("pattern"), "{e}");
    assert!(s.score_text("anything").is_err());
}
