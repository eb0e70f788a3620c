//! Suites: prompts with scorers, built in or read from a JSON file.
//!
//! A suite file:
//!
//! ```json
//! {
//!   "name": "mine",
//!   "cases": [
//!     {"id": "capital", "task_type": "factual_qa",
//!      "prompt": "What is the capital of Australia? Answer with the city name only.",
//!      "reference": "Canberra",
//!      "scorer": {"kind": "exact", "expected": "Canberra"}}
//!   ]
//! }
//! ```
//!
//! `system` (a system message), `reference` (a known-good answer, shown to
//! judges and used by the simulated provider) and `restraint` (the case
//! checks that the model declines or admits ignorance; see
//! [`Gates::restraint_floor`](crate::Gates)) are optional.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tuneloop_providers::SimulatedAnswer;

use crate::error::{Error, Result};

/// The largest suite file read.
pub const MAX_SUITE_BYTES: u64 = 16 << 20;
/// The longest prompt, system message or reference of a case: far more
/// than any context window holds.
pub const MAX_TEXT_BYTES: usize = 256 << 10;
use crate::scorer::Scorer;

/// One prompt and how to score its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within the suite.
    pub id: String,
    /// The kind of task (the optimizer's and the scorecard's task type).
    pub task_type: String,
    /// The user message.
    pub prompt: String,
    /// An optional system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A known-good answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The case checks restraint (declining, admitting ignorance).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restraint: bool,
    /// How answers are scored.
    pub scorer: Scorer,
}

/// A named list of cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The cases, in order.
    pub cases: Vec<Case>,
}

impl Suite {
    /// Reads and checks a suite file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; [`Error::Suite`] naming the file
    /// and the entry (`cases[3] (id "sum")`) for anything invalid.
    pub fn load(path: &Path) -> Result<Suite> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, MAX_SUITE_BYTES + 1),
                    &mut bytes,
                )
            })
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > MAX_SUITE_BYTES {
            return Err(Error::Suite {
                source_name: path.display().to_string(),
                entry: "suite".into(),
                message: format!(
                    "the file is over {} MiB, the most a suite may be",
                    MAX_SUITE_BYTES >> 20
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| Error::Suite {
            source_name: path.display().to_string(),
            entry: "suite".into(),
            message: format!(
                "not UTF-8 text (an invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Suite::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a suite from JSON text; `source_name` names it in
    /// errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, source_name: &str) -> Result<Suite> {
        let err = |entry: String, message: String| Error::Suite {
            source_name: source_name.to_owned(),
            entry,
            message,
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| err("suite".into(), format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| err("suite".into(), "expected a JSON object".into()))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "name" | "description" | "cases") {
                return Err(err(
                    "suite".into(),
                    format!("unknown field `{key}` (expected name, description, cases)"),
                ));
            }
        }
        let name = obj
            .get("name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err("name".into(), "missing or not a string".into()))?
            .to_owned();
        let description = match obj.get("description") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(err("description".into(), "not a string".into())),
        };
        let raw = obj
            .get("cases")
            .and_then(|v| v.as_array())
            .ok_or_else(|| err("cases".into(), "missing or not an array".into()))?;
        let mut cases = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            let label = match v.get("id").and_then(|id| id.as_str()) {
                Some(id) => format!("cases[{i}] (id {id:?})"),
                None => format!("cases[{i}]"),
            };
            let case: Case =
                serde_json::from_value(v.clone()).map_err(|e| err(label.clone(), e.to_string()))?;
            cases.push(case);
        }
        let suite = Suite {
            name,
            description,
            cases,
        };
        suite.validate(source_name)?;
        Ok(suite)
    }

    /// Checks the suite: a name, at least one case, unique non-empty ids,
    /// non-empty prompts and task types, valid scorers.
    ///
    /// # Errors
    /// [`Error::Suite`] naming the entry.
    pub fn validate(&self, source_name: &str) -> Result<()> {
        let err = |entry: String, message: String| Error::Suite {
            source_name: source_name.to_owned(),
            entry,
            message,
        };
        if self.name.trim().is_empty() {
            return Err(err("name".into(), "empty".into()));
        }
        if self.cases.is_empty() {
            return Err(err("cases".into(), "no case".into()));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.cases.iter().enumerate() {
            let label = format!("cases[{i}] (id {:?})", c.id);
            if c.id.trim().is_empty() {
                return Err(err(format!("cases[{i}]"), "id: empty".into()));
            }
            if !seen.insert(c.id.as_str()) {
                return Err(err(label, "id: appears twice".into()));
            }
            if c.task_type.trim().is_empty() {
                return Err(err(label, "task_type: empty".into()));
            }
            if c.prompt.trim().is_empty() {
                return Err(err(label, "prompt: empty".into()));
            }
            for (field, text) in [
                ("prompt", Some(&c.prompt)),
                ("system", c.system.as_ref()),
                ("reference", c.reference.as_ref()),
            ] {
                if let Some(t) = text.filter(|t| t.len() > MAX_TEXT_BYTES) {
                    return Err(err(
                        label,
                        format!(
                            "{field}: {} bytes, over the {} KiB a case's text may have",
                            t.len(),
                            MAX_TEXT_BYTES >> 10
                        ),
                    ));
                }
            }
            if let Err(e) = c.scorer.validate() {
                return Err(err(label, format!("scorer: {e}")));
            }
        }
        Ok(())
    }

    /// The case with this id.
    pub fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }

    /// The task types of the suite, sorted.
    pub fn task_types(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.cases.iter().map(|c| c.task_type.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// Known answers for a [`SimulatedProvider`](tuneloop_providers::SimulatedProvider):
    /// each case with a reference answers it (keyed by the case's prompt),
    /// needing the phrases `requires(case)` in its prompt for full quality.
    pub fn simulated_answers(
        &self,
        requires: impl Fn(&Case) -> Vec<String>,
    ) -> Vec<SimulatedAnswer> {
        self.cases
            .iter()
            .filter_map(|c| {
                let correct = c.reference.clone()?;
                Some(SimulatedAnswer {
                    key: simulated_key(&c.prompt),
                    correct,
                    wrong: "I am not sure.".into(),
                    requires: requires(c),
                })
            })
            .collect()
    }

    /// The standard suite: eleven cases over ten kinds of task (factual Q&A
    /// with one restraint case, code generation, explanation,
    /// summarization, creative writing, data extraction, arithmetic, JSON
    /// transformation, pros-and-cons analysis, a logic puzzle), each with a
    /// reference answer that scores 1.
    pub fn standard() -> Suite {
        fn case(id: &str, task_type: &str, prompt: &str, reference: &str, scorer: Scorer) -> Case {
            Case {
                id: id.into(),
                task_type: task_type.into(),
                prompt: prompt.into(),
                system: None,
                reference: Some(reference.into()),
                restraint: false,
                scorer,
            }
        }
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut restraint = case(
            "mars-walker",
            "factual_qa",
            "Who was the first person to walk on Mars? If nobody has, answer with the single word: unknown",
            "unknown",
            Scorer::Exact {
                expected: "unknown".into(),
                case_sensitive: false,
            },
        );
        restraint.restraint = true;
        Suite {
            name: "standard".into(),
            description: Some(
                "Ten kinds of task, each with a reference answer that scores 1.".into(),
            ),
            cases: vec![
                case(
                    "capital",
                    "factual_qa",
                    "What is the capital of Australia? Answer with the city name only.",
                    "Canberra",
                    Scorer::Exact {
                        expected: "Canberra".into(),
                        case_sensitive: false,
                    },
                ),
                restraint,
                case(
                    "rust-add",
                    "code_generation",
                    "Write a Rust function `add` that takes two i32 values a and b and returns their sum as i32.",
                    "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
                    Scorer::Regex {
                        pattern: r"(?s)fn\s+add\s*\(\s*a\s*:\s*i32\s*,\s*b\s*:\s*i32\s*\)\s*->\s*i32\s*\{.*a\s*\+\s*b".into(),
                    },
                ),
                case(
                    "sky-blue",
                    "explanation",
                    "Explain in two to four sentences why the sky is blue.",
                    "Sunlight scatters off the molecules of the air, and light of short wavelength such as blue scatters far more than red (Rayleigh scattering). Blue light therefore reaches our eyes from every part of the sky.",
                    Scorer::Contains {
                        all: strings(&["scatter", "wavelength"]),
                        case_sensitive: false,
                    },
                ),
                case(
                    "summary",
                    "summarization",
                    "Summarize in one sentence of at most 25 words: The city council met on Tuesday and voted 7 to 2 to extend the bike lane network by 40 kilometres over three years, funded by a parking fee increase that takes effect in March.",
                    "The council voted 7-2 to add 40 km of bike lanes over three years, paid for by higher parking fees from March.",
                    Scorer::Length {
                        min_words: Some(8),
                        max_words: Some(25),
                        min_lines: None,
                        max_lines: Some(1),
                        min_bullets: None,
                    },
                ),
                case(
                    "haiku",
                    "creative_writing",
                    "Write a haiku about autumn leaves: three short lines, nothing else.",
                    "Red leaves let go now\nspinning on the cooling wind\nthe path keeps their gold",
                    Scorer::Length {
                        min_words: Some(6),
                        max_words: Some(20),
                        min_lines: Some(3),
                        max_lines: Some(3),
                        min_bullets: None,
                    },
                ),
                case(
                    "contact",
                    "data_extraction",
                    "Extract the name, email and age from this text and respond with a JSON object with keys name, email and age: 'Contact Jane Roe (jane.roe@example.com), 34 years old.'",
                    "{\"name\": \"Jane Roe\", \"email\": \"jane.roe@example.com\", \"age\": 34}",
                    Scorer::Json {
                        required_keys: strings(&["name", "email", "age"]),
                    },
                ),
                case(
                    "pens",
                    "arithmetic",
                    "A shop sells pens at 3 for $2. How much do 27 pens cost, in dollars?",
                    "27 pens are 9 groups of 3, so they cost 9 x $2 = $18.",
                    Scorer::Numeric {
                        expected: 18.0,
                        tolerance: 0.01,
                    },
                ),
                case(
                    "csv-to-json",
                    "json_transformation",
                    "Convert this CSV to a JSON array of objects with keys id and city:\nid,city\n1,Oslo\n2,Lima",
                    "[{\"id\": 1, \"city\": \"Oslo\"}, {\"id\": 2, \"city\": \"Lima\"}]",
                    Scorer::Json {
                        required_keys: strings(&["id", "city"]),
                    },
                ),
                case(
                    "remote-work",
                    "pros_and_cons",
                    "List the pros and cons of remote work, under the headings Pros and Cons, with at least two bullet points each.",
                    "Pros:\n- No commute\n- Flexible hours\nCons:\n- Isolation\n- Harder collaboration",
                    Scorer::Contains {
                        all: strings(&["Pros", "Cons", "- "]),
                        case_sensitive: true,
                    },
                ),
                case(
                    "shortest",
                    "logic_puzzle",
                    "Alice is taller than Bob. Bob is taller than Carol. Who is the shortest? Answer with the name only.",
                    "Carol",
                    Scorer::Exact {
                        expected: "Carol".into(),
                        case_sensitive: false,
                    },
                ),
            ],
        }
    }
}

/// The key a simulated provider uses to recognize a case's prompt: its
/// first line (the prompt may be refined by appending instructions).
pub fn simulated_key(prompt: &str) -> String {
    prompt.lines().next().unwrap_or(prompt).to_owned()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scores are exact ratios of small integers
mod tests {
    use super::*;

    #[test]
    fn every_reference_answer_of_the_standard_suite_scores_one() {
        let suite = Suite::standard();
        suite.validate("standard").unwrap();
        assert_eq!(suite.task_types().len(), 10);
        for c in &suite.cases {
            let r = c.reference.as_deref().unwrap();
            assert_eq!(c.scorer.score_text(r).unwrap(), 1.0, "case {}", c.id);
            // And an evasive answer does not (but restraint's "unknown" is the right one).
            let wrong = c.scorer.score_text("I am not sure.").unwrap();
            assert!(wrong < 1.0, "case {} scores the wrong answer {wrong}", c.id);
        }
    }

    #[test]
    fn a_suite_round_trips_through_json() {
        let s = Suite::standard();
        let text = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(Suite::parse(&text, "x").unwrap(), s);
    }

    #[test]
    fn bad_suites_name_the_entry() {
        let e = |t: &str| Suite::parse(t, "f.json").unwrap_err().to_string();
        let msg = e(r#"{"name": "s", "cases": [
            {"id": "a", "task_type": "t", "prompt": "p", "scorer": {"kind": "exact", "expected": "x"}},
            {"id": "b", "task_type": "t", "prompt": "p", "scorer": {"kind": "regex", "pattern": "(("}}]}"#);
        assert!(
            msg.contains("f.json")
                && msg.contains(r#"cases[1] (id "b")"#)
                && msg.contains("pattern"),
            "{msg}"
        );
        let msg = e(
            r#"{"name": "s", "cases": [{"id": "a", "task_type": "t", "prompt": "p", "scorer": {"kind": "psychic"}}]}"#,
        );
        assert!(
            msg.contains(r#"cases[0] (id "a")"#) && msg.contains("psychic"),
            "{msg}"
        );
        let msg = e(r#"{"name": "s", "cases": [
            {"id": "a", "task_type": "t", "prompt": "p", "scorer": {"kind": "exact", "expected": "x"}},
            {"id": "a", "task_type": "t", "prompt": "q", "scorer": {"kind": "exact", "expected": "x"}}]}"#);
        assert!(msg.contains("appears twice"), "{msg}");
        assert!(e("{").contains("not valid JSON"));
        assert!(e(r#"{"name": "s", "cases": []}"#).contains("no case"));
        assert!(e(r#"{"name": "s", "cases": [{"id": "a", "task_type": "t", "prompt": "p", "scorer": {"kind": "exact", "expected": "x"}, "colour": 1}]}"#).contains("colour"));
    }
}
